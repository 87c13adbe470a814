"""The per-class masks that the per-image metrics read: validated, excluded pixels removed.

The surface metrics, Boundary IoU, the volume difference, the topology and lesion-wise metrics
take the same inputs: integer label maps ``[B, *spatial]`` (with ``num_classes``) or boolean
one-hot masks ``[B, *spatial, C]`` (``class_axis`` moves C), decided by each argument's dtype,
with 1 to 3 spatial axes, and ``ignore_index`` / ``mask`` to exclude pixels. Predictions may
also be float scores (logits or probabilities) ``[B, *spatial, C]``: as in ``confusion_matrix``
and ``overlap_counts``, a float array carries a class axis and a pixel's class is its arg-max.
:func:`class_masks` checks them once and lays them out as boolean masks ``[B, C, *spatial]``,
an excluded pixel in no mask; :func:`spacing_rows` reads ``spacing``. Private: the metric
modules share it.
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg_losses._core import checks as _checks
from jaxseg_losses.metrics._prepare import check_finite_scores, counted_pixels

MAX_SPATIAL_DIMS = 3


def concrete(value: Any) -> np.ndarray | None:
    """The value as a NumPy array, or ``None`` when it is traced (checked at run time only)."""
    try:
        return np.asarray(value)
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
        return None


def real_array(name: str, value: Any) -> jax.Array:
    """``value`` as a float32 array, refusing booleans and non-numbers (``TypeError``)."""
    try:
        array = jnp.asarray(value)
    except TypeError:
        raise TypeError(
            f"`{name}` must hold real numbers; got {type(value).__name__} {value!r}."
        ) from None
    if array.dtype == jnp.bool_ or not (
        jnp.issubdtype(array.dtype, jnp.integer) or jnp.issubdtype(array.dtype, jnp.floating)
    ):
        raise TypeError(f"`{name}` must hold real numbers; got dtype {array.dtype}.")
    return array.astype(jnp.float32)


def spacing_rows(spacing: Any, batch: tuple[int, ...], dims: int) -> jax.Array:
    """``spacing`` as float32 ``[*batch, D]``: ``None``, a scalar, ``[D]`` or ``[*batch, D]``."""
    if spacing is None:
        return jnp.ones((*batch, dims), jnp.float32)
    array = real_array("spacing", spacing)
    shapes = [(), (dims,), (*batch, dims)] if batch else [(), (dims,)]
    if array.shape not in shapes:
        shown = " or ".join(str(s) for s in shapes)
        raise ValueError(
            f"`spacing` must be a scalar or have shape {shown} (one value per spatial axis"
            f"{', or one row per image' if batch else ''}); got shape {tuple(array.shape)}."
        )
    known = concrete(spacing)
    if known is not None:
        if not np.all(np.isfinite(known) & (known > 0)):
            raise ValueError(f"`spacing` must be positive and finite; got {known.tolist()}.")
    else:
        _checks.check_values(
            jnp.all(jnp.isfinite(array) & (array > 0)), "`spacing` must be positive and finite"
        )
    if array.ndim < 2:
        array = jnp.broadcast_to(array, (*batch, dims))
    return array


class ClassMasks(NamedTuple):
    """Both arguments as boolean masks ``[B, C, *spatial]``, False on excluded pixels."""

    predicted: jax.Array
    truth: jax.Array


def class_masks(
    predictions: Any,
    labels: Any,
    *,
    num_classes: Any,
    class_axis: Any,
    include_background: Any,
    ignore_index: Any,
    mask: Any,
) -> ClassMasks:
    """Validated masks ``[B, C, *spatial]`` of both arguments (class 0 dropped unless
    ``include_background``).

    An excluded pixel (``mask`` 0/False there, or a label equal to ``ignore_index``) is in no
    mask: it lies outside every mask like a pixel beyond the image (see :func:`_counted`).
    """
    ignore_index = _checks.check_label_value("ignore_index", ignore_index)
    if not isinstance(class_axis, numbers.Integral) or isinstance(class_axis, bool):
        raise TypeError(
            f"`class_axis` must be an int; got {type(class_axis).__name__} {class_axis!r}."
        )
    if num_classes is not None:
        num_classes = _checks.check_num_classes(num_classes, none_allowed=True)
    include_background = _checks.check_bool("include_background", include_background)
    predictions, labels = jnp.asarray(predictions), jnp.asarray(labels)
    _check_dtype("predictions", predictions)
    _check_dtype("labels", labels)
    scores = None
    if jnp.issubdtype(predictions.dtype, jnp.floating):
        scores = predictions
        predictions, num_classes, score_axis = _decided(scores, labels, num_classes, class_axis)
    predicted = _masks_of("predictions", predictions, num_classes, class_axis)
    truth = _masks_of("labels", labels, num_classes, class_axis)
    if predicted.shape != truth.shape:
        hint = ""
        if predictions.dtype == jnp.bool_ and labels.dtype == jnp.bool_:
            axis = _class_axis(class_axis, labels.ndim)
            hint = _checks.moved_axis_hint(
                "labels", labels.shape, "predictions", predictions.shape, axis
            )
        raise ValueError(
            f"`predictions` and `labels` must describe the same images and classes: as masks "
            f"[B, C, *spatial] they have shapes {tuple(predicted.shape)} and "
            f"{tuple(truth.shape)}. {hint}".rstrip()
        )
    one_hot = predictions.dtype == jnp.bool_ or labels.dtype == jnp.bool_
    if not one_hot and scores is None and class_axis != -1:
        raise ValueError(
            f"`class_axis`={class_axis} applies to one-hot masks and float scores, but both "
            "`predictions` and `labels` are integer class indices (which have no class axis)."
        )
    counted = _counted(predictions, labels, predicted, num_classes, ignore_index, mask)
    if scores is not None:
        check_finite_scores(scores, score_axis, counted)
    predicted = predicted & counted[:, None]
    truth = truth & counted[:, None]
    if not include_background:
        if predicted.shape[1] < 2:
            raise ValueError(
                "include_background=False drops class 0, which would leave no class: there is "
                "a single class. Pass include_background=True."
            )
        predicted, truth = predicted[:, 1:], truth[:, 1:]
    return ClassMasks(predicted, truth)


def _check_dtype(name: str, array: jax.Array) -> None:
    """Integer class indices or boolean one-hot masks (and, for predictions, float scores)."""
    if array.dtype == jnp.bool_ or jnp.issubdtype(array.dtype, jnp.integer):
        return
    if name == "predictions" and jnp.issubdtype(array.dtype, jnp.floating):
        return
    fix = ""
    if jnp.issubdtype(array.dtype, jnp.floating):
        fix = (
            f" Class indices stored as floats: cast them, `{name}.astype(jnp.int32)`; one-hot "
            f"targets: `{name}.astype(bool)`."
        )
    raise TypeError(
        f"`{name}` must be integer class indices or boolean one-hot masks; got dtype "
        f"{array.dtype}.{fix}"
    )


def _decided(
    scores: jax.Array, labels: jax.Array, num_classes: int | None, class_axis: Any
) -> tuple[jax.Array, int, int]:
    """Float scores (logits or probabilities) ``[B, *spatial, C]`` as their arg-max classes
    ``[B, *spatial]``: ``(classes, C, the class axis)``, checked against the labels.

    The rule of ``confusion_matrix`` and ``overlap_counts``: a float array carries a class
    axis (``class_axis``) and the predicted class of a pixel is its arg-max. A single channel
    has no arg-max, and no threshold fits both logits and probabilities: it is refused.
    """
    dense_labels = labels.dtype == jnp.bool_
    pixel_rank = labels.ndim - 1 if dense_labels else labels.ndim
    if not dense_labels and scores.shape == labels.shape:
        raise TypeError(
            f"`predictions` must be integer class indices or boolean one-hot masks, or float "
            f"scores with a class axis [B, *spatial, C]; got float `predictions` of the labels' "
            f"shape {tuple(labels.shape)}: class indices stored as floats? Cast them, "
            "`predictions.astype(jnp.int32)`."
        )
    if scores.ndim != pixel_rank + 1:
        squeeze = ""
        if not dense_labels and labels.ndim == scores.ndim >= 2 and labels.shape[1] == 1:
            squeeze = (
                " Integer labels [B, 1, *spatial] (the PyTorch habit) have a class axis of "
                "size 1: squeeze it, `labels[:, 0]`."
            )
        raise ValueError(
            f"Float `predictions` are scores (logits or probabilities) with a class axis: "
            f"expected rank {pixel_rank + 1} for `labels` of shape {tuple(labels.shape)}; got "
            f"shape {tuple(scores.shape)}.{squeeze}"
        )
    axis = _class_axis(class_axis, scores.ndim)
    if axis == 0:
        raise ValueError("`class_axis` must not be the batch axis 0.")
    channels = scores.shape[axis]
    pixels = tuple(s for i, s in enumerate(scores.shape) if i != axis)
    label_pixels = tuple(labels.shape)
    if dense_labels:
        label_axis = _class_axis(class_axis, labels.ndim)
        label_pixels = tuple(s for i, s in enumerate(labels.shape) if i != label_axis)
    if pixels != label_pixels:
        hint = (
            _checks.moved_axis_hint("labels", labels.shape, "predictions", scores.shape, axis)
            if dense_labels
            else _checks.class_axis_hint("labels", labels.shape, "predictions", scores.shape, axis)
        )
        raise ValueError(
            f"`labels` of shape {tuple(labels.shape)} do not fit the scores `predictions` of "
            f"shape {tuple(scores.shape)} (class_axis={class_axis}). {hint}".rstrip()
        )
    if channels == 1:
        raise ValueError(
            "Float `predictions` with a single channel are binary scores, which have no "
            "arg-max: threshold them into integer classes, e.g. "
            "`(logits[..., 0] > 0).astype(jnp.int32)` (`probabilities[..., 0] > 0.5` for "
            "probabilities), and pass num_classes=2."
        )
    if num_classes is not None and num_classes != channels:
        raise ValueError(
            f"`predictions` have {channels} classes along `class_axis`, but "
            f"num_classes={num_classes}."
        )
    classes = jnp.argmax(jnp.moveaxis(scores, axis, -1), axis=-1).astype(jnp.int32)
    return classes, channels, axis


def _masks_of(name: str, value: Any, num_classes: int | None, class_axis: Any) -> jax.Array:
    """One argument as boolean masks ``[B, C, *spatial]``, from label indices or one-hot masks."""
    array = jnp.asarray(value)
    if array.dtype == jnp.bool_:
        if not 3 <= array.ndim <= MAX_SPATIAL_DIMS + 2:
            raise ValueError(
                f"Boolean `{name}` are one-hot masks [B, *spatial, C] with 1 to "
                f"{MAX_SPATIAL_DIMS} spatial axes (rank 3 to {MAX_SPATIAL_DIMS + 2}); got shape "
                f"{tuple(array.shape)}."
            )
        axis = _class_axis(class_axis, array.ndim)
        if axis == 0:
            raise ValueError("`class_axis` must not be the batch axis 0.")
        channels = array.shape[axis]
        if num_classes is not None and num_classes != channels:
            raise ValueError(
                f"`{name}` have {channels} classes along `class_axis`, but "
                f"num_classes={num_classes}."
            )
        return jnp.moveaxis(array, axis, 1)
    if jnp.issubdtype(array.dtype, jnp.integer):
        if num_classes is None:
            raise ValueError(
                f"Integer `{name}` are class indices [B, *spatial] and need `num_classes`; "
                "pass num_classes=C, or boolean one-hot masks."
            )
        if not 2 <= array.ndim <= MAX_SPATIAL_DIMS + 1:
            raise ValueError(
                f"Integer `{name}` are class indices [B, *spatial] with 1 to {MAX_SPATIAL_DIMS} "
                f"spatial axes (rank 2 to {MAX_SPATIAL_DIMS + 1}); got shape "
                f"{tuple(array.shape)}."
            )
        indices = array.astype(jnp.int32)
        classes = jnp.arange(num_classes, dtype=jnp.int32).reshape(
            (1, num_classes) + (1,) * (array.ndim - 1)
        )
        return indices[:, None] == classes
    raise TypeError(
        f"`{name}` must be integer class indices or boolean one-hot masks; got dtype {array.dtype}."
    )


def _class_axis(class_axis: Any, ndim: int) -> int:
    axis = int(class_axis)
    if not -ndim <= axis < ndim:
        raise ValueError(
            f"`class_axis`={axis} is out of range for one-hot masks of rank {ndim}; expected an "
            f"axis in [{-ndim}, {ndim - 1}]."
        )
    return axis % ndim


def _counted(
    predictions: Any,
    labels: Any,
    predicted: jax.Array,
    num_classes: int | None,
    ignore_index: int | None,
    mask: Any,
) -> jax.Array:
    """``[B, *spatial]`` bool: the pixels that count (not masked, not ``ignore_index``).

    ``jsl.checked`` reports integer classes outside ``[0, C)`` on these pixels only: whatever
    an excluded pixel holds is inert.
    """
    pixel_shape = (predicted.shape[0], *predicted.shape[2:])
    labels = jnp.asarray(labels)
    if ignore_index is not None and not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(
            "`ignore_index` applies to integer labels; boolean one-hot masks were given. "
            "Pass `mask` to exclude pixels."
        )
    counted = counted_pixels(mask, pixel_shape, labels, ignore_index)
    for name, value in (("predictions", jnp.asarray(predictions)), ("labels", labels)):
        if jnp.issubdtype(value.dtype, jnp.integer):
            assert num_classes is not None
            in_range = (value >= 0) & (value < num_classes)
            allowed = f" or equal ignore_index ({ignore_index})" if name == "labels" else ""
            _checks.check_elements(
                name, in_range | ~counted, value, f"lie in [0, {num_classes}){allowed}"
            )
    return counted
