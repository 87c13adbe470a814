"""The metrics' data contract: validated inputs, laid out for counting.

The metric-side counterpart of the losses' ``prepare``: what the counting functions of
:mod:`~jaxseg_losses.metrics` read from their arguments, checked once at trace time with errors
that name the argument. :func:`prepare_counts` turns the predictions and labels of
``overlap_counts`` (class indices, float scores, boolean decisions, dense targets, any class
axis) into the pixels of each image, ``[B, P]``; :func:`predicted_labels` turns the predictions
of ``confusion_matrix`` into class indices. Private: the metric modules share it.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxseg_losses._core import checks as _checks
from jaxseg_losses._core.exact import ExactCount

COUNT_DTYPES = ("int32", "int64", "float32", "float64")


def check_count_dtype(dtype: Any) -> Any:
    """The dtype of a confusion matrix: int32 or float32, or a 64-bit one under x64."""
    try:
        dtype = jnp.dtype(dtype)
    except TypeError:
        raise TypeError(f"`dtype` must be a dtype; got {dtype!r}.") from None
    if dtype.name not in COUNT_DTYPES:
        shown = ", ".join(COUNT_DTYPES)
        raise ValueError(f"`dtype` must be one of {shown}; got {dtype.name}.")
    if dtype.itemsize == 8 and not jax.config.read("jax_enable_x64"):
        raise ValueError(
            f"`dtype={dtype.name}` needs 64-bit JAX (jax.config.update('jax_enable_x64', True)); "
            "without it use int32 or float32."
        )
    return dtype


def count_shape(x: Any) -> tuple[int, ...]:
    """The shape of counts held as an :class:`ExactCount` or as an array."""
    return x.shape if isinstance(x, ExactCount) else tuple(jnp.shape(x))


def predicted_labels(
    predictions: jax.Array,
    label_shape: tuple[int, ...],
    num_classes: int,
    class_axis: int,
    threshold: Any,
    counted: jax.Array,
) -> jax.Array:
    """Integer predictions with the labels' shape, from logits/probabilities or indices.

    ``jsl.checked`` reports non-finite scores on the ``counted`` pixels (``label_shape``
    bool); unchecked, a NaN row is decided like any other (arg-max, or the threshold).
    """
    if jnp.issubdtype(predictions.dtype, jnp.floating):
        if predictions.ndim != len(label_shape) + 1:
            raise ValueError(
                f"Float `predictions` are scores with a class axis: expected rank "
                f"{len(label_shape) + 1} for labels of shape {label_shape}; got shape "
                f"{tuple(predictions.shape)}. Pass predicted class indices as integers."
            )
        axis = _checks.normalize_axis("class_axis", class_axis, predictions.ndim)
        scores = jnp.moveaxis(predictions, axis, -1)
        _checks.check_shape(
            "predictions",
            scores,
            (*label_shape, scores.shape[-1]),
            hint=_checks.class_axis_hint(
                "labels", label_shape, "predictions", predictions.shape, axis
            )
            or "Scores have the labels' shape plus a class axis.",
        )
        check_finite_scores(predictions, axis, counted)
        channels = scores.shape[-1]
        if channels == 1:
            if num_classes != 2:
                raise ValueError(
                    f"Single-channel scores are a binary prediction (score > threshold); "
                    f"`num_classes` must be 2, got {num_classes}."
                )
            return (scores[..., 0] > threshold).astype(jnp.int32)
        if channels != num_classes:
            raise ValueError(
                f"`predictions` have {channels} classes along `class_axis`, but "
                f"num_classes={num_classes}."
            )
        return jnp.argmax(scores, axis=-1).astype(jnp.int32)
    if jnp.issubdtype(predictions.dtype, jnp.integer) or predictions.dtype == jnp.bool_:
        _checks.check_shape(
            "predictions",
            predictions,
            label_shape,
            hint="Integer predictions are class indices with the labels' shape.",
        )
        return predictions.astype(jnp.int32)
    raise TypeError(
        f"`predictions` must be float scores (logits or probabilities) or integer class "
        f"indices; got dtype {predictions.dtype}."
    )


def check_finite_scores(scores: jax.Array, axis: int, counted: jax.Array) -> None:
    """In checked mode, requires finite ``scores`` (class axis ``axis``) on ``counted`` pixels."""
    ok = jnp.isfinite(scores) | ~jnp.expand_dims(counted, axis)
    _checks.check_elements("predictions", ok, scores, "be finite scores")


# ----------------------------------------------------------------------------------------------
# The inputs of overlap_counts.


class CountPixels(NamedTuple):
    """The inputs of ``overlap_counts`` as the pixels of each image.

    Each side is either the class of each pixel (``*_classes``, int32 ``[B, P]``, 0 where the
    pixel does not count) or its membership of every class (``*_hits``, bool ``[B, P, C]``);
    the other is ``None``.
    """

    valid: jax.Array
    label_classes: jax.Array | None
    label_hits: jax.Array | None
    predicted_classes: jax.Array | None
    predicted_hits: jax.Array | None
    num_classes: int
    # One channel is the foreground of a binary problem: its integer values are 0 and 1.
    num_values: int


class _Layout(NamedTuple):
    """Where the classes and the pixels of the inputs lie."""

    prediction_kind: str  # "classes", "scores" or "decisions"
    label_axis: int | None  # the class axis of dense labels; None for class indices
    prediction_axis: int | None
    pixel_shape: tuple[int, ...]  # [B, *spatial]
    num_classes: int


def prepare_counts(
    predictions: Any,
    labels: Any,
    *,
    num_classes: int | None,
    class_axis: int,
    ignore_index: int | None,
    mask: Any,
) -> CountPixels:
    """Validates the arguments of ``overlap_counts`` and lays them out as :class:`CountPixels`.

    Each kind of input is read from its dtype; a pixel counts unless ``mask`` is False/0 there,
    its label equals ``ignore_index``, or a value is not a class (reported by ``jsl.checked``).
    """
    predictions = jnp.asarray(predictions)
    labels = jnp.asarray(labels)
    ignore_index = _checks.check_label_value("ignore_index", ignore_index)
    if num_classes is not None:
        num_classes = _checks.check_num_classes(num_classes)
    layout = _layout(predictions, labels, num_classes, class_axis, ignore_index)
    num_values = max(layout.num_classes, 2)
    batch, *spatial = layout.pixel_shape
    valid = mask_pixels(mask, layout.pixel_shape).reshape(batch, math.prod(spatial))
    valid, label_classes, label_hits = _label_pixels(
        labels, layout, valid, ignore_index, num_values
    )
    valid, predicted_classes, predicted_hits = _prediction_pixels(
        predictions, layout, valid, num_values
    )
    return CountPixels(
        valid,
        label_classes,
        label_hits,
        predicted_classes,
        predicted_hits,
        num_classes=layout.num_classes,
        num_values=num_values,
    )


def _layout(
    predictions: jax.Array,
    labels: jax.Array,
    num_classes: int | None,
    class_axis: Any,
    ignore_index: int | None,
) -> _Layout:
    dense_labels = labels.dtype == jnp.bool_ or jnp.issubdtype(labels.dtype, jnp.floating)
    if not (dense_labels or jnp.issubdtype(labels.dtype, jnp.integer)):
        raise TypeError(
            f"`labels` must be integer classes, or boolean / 0-1 float targets; got dtype "
            f"{labels.dtype}."
        )
    prediction_kind = _prediction_kind(predictions)
    channels: dict[str, int] = {}
    if dense_labels:
        if ignore_index is not None:
            raise ValueError(_dense_ignore_index_message(predictions, labels, class_axis))
        _checks.check_min_rank("labels", labels, 2, "[batch, *spatial, num_classes]")
        label_axis = _class_axis("labels", labels, class_axis)
        pixel_shape = _without_axis(tuple(labels.shape), label_axis)
        channels["labels"] = labels.shape[label_axis]
    else:
        _checks.check_min_rank("labels", labels, 1, "[batch, *spatial]")
        label_axis = None
        pixel_shape = tuple(labels.shape)
    prediction_axis = _prediction_axis(
        predictions, labels, prediction_kind, pixel_shape, class_axis, dense_labels
    )
    if prediction_axis is not None:
        channels["predictions"] = predictions.shape[prediction_axis]
    if num_classes is not None:
        channels["num_classes"] = num_classes
    if len(set(channels.values())) > 1:
        hint = ""
        if dense_labels or prediction_kind == "decisions":
            hint = (
                " Boolean and float arrays always carry a class axis (class_axis): a binary "
                "mask [B, *spatial] is [B, *spatial, 1], mask[..., None]."
            )
        raise ValueError(f"The number of classes disagrees: {channels}.{hint}")
    if not channels:
        raise ValueError(
            "`num_classes` is required when predictions and labels are both integer classes."
        )
    num_classes = next(iter(channels.values()))
    return _Layout(prediction_kind, label_axis, prediction_axis, pixel_shape, num_classes)


def _dense_ignore_index_message(predictions: jax.Array, labels: jax.Array, class_axis: Any) -> str:
    """Why ``ignore_index`` does not apply to boolean or float ``labels``, and the fix: float
    labels without a class axis are class indices stored as floats."""
    shape = tuple(labels.shape)
    float_labels = jnp.issubdtype(labels.dtype, jnp.floating)
    if float_labels and predictions.ndim == labels.ndim + 1 and _is_dense(predictions):
        axis = _checks.normalize_axis("class_axis", class_axis, predictions.ndim)
        pixels = _without_axis(tuple(predictions.shape), axis)
        channels_first = _checks.class_axis_hint(
            "labels", shape, "predictions", predictions.shape, axis
        )
        if pixels == shape or channels_first:
            return (
                f"`ignore_index` applies to integer labels; got float `labels` of shape {shape}, "
                "without a class axis: class indices stored as floats. Cast them: "
                f"`labels.astype(jnp.int32)`. {channels_first}".rstrip()
            )
    if float_labels and shape == tuple(predictions.shape) and not _is_dense(predictions):
        return (
            f"`ignore_index` applies to integer labels; got float `labels` of the integer "
            f"predictions' shape {shape}: class indices stored as floats. Cast them: "
            "`labels.astype(jnp.int32)`."
        )
    return (
        "`ignore_index` applies to integer labels; dense targets were given. Pass `mask` to "
        "exclude pixels."
    )


def _is_dense(x: jax.Array) -> bool:
    return x.dtype == jnp.bool_ or jnp.issubdtype(x.dtype, jnp.floating)


def _prediction_kind(predictions: jax.Array) -> str:
    if predictions.dtype == jnp.bool_:
        return "decisions"
    if jnp.issubdtype(predictions.dtype, jnp.floating):
        return "scores"
    if jnp.issubdtype(predictions.dtype, jnp.integer):
        return "classes"
    raise TypeError(
        f"`predictions` must be integer classes, float scores or boolean decisions; got "
        f"dtype {predictions.dtype}."
    )


def _prediction_axis(
    predictions: jax.Array,
    labels: jax.Array,
    prediction_kind: str,
    pixel_shape: tuple[int, ...],
    class_axis: Any,
    dense_labels: bool,
) -> int | None:
    """The class axis of scores or decisions (``None`` for class indices), checked against the
    labels' pixels."""
    if prediction_kind == "classes":
        hint = "Integer predictions are classes with the labels' pixel shape [B, *spatial]."
        _checks.check_shape("predictions", predictions, pixel_shape, hint=hint)
        return None
    _checks.check_min_rank("predictions", predictions, 2, "[batch, *spatial, num_classes]")
    axis = _class_axis("predictions", predictions, class_axis)
    if _without_axis(tuple(predictions.shape), axis) != pixel_shape:
        if dense_labels:
            hint = _checks.moved_axis_hint(
                "labels", labels.shape, "predictions", predictions.shape, axis
            ) or ("Dense labels and predictions share their shape, class axis included.")
        else:
            hint = _layout_hint(labels, predictions, axis)
        raise ValueError(
            f"`labels` of shape {tuple(labels.shape)} do not fit `predictions` of shape "
            f"{tuple(predictions.shape)} (class_axis={class_axis}). {hint}"
        )
    if prediction_kind == "scores" and predictions.shape[axis] == 1:
        raise ValueError(
            "Float `predictions` with a single channel are binary scores, and a metric "
            "counts decisions: threshold them first (e.g. `logits > 0`, or "
            "`probabilities > 0.5`) and pass the boolean array."
        )
    return axis


def _class_axis(name: str, x: jax.Array, class_axis: Any) -> int:
    axis = _checks.normalize_axis("class_axis", class_axis, x.ndim)
    if axis == 0:
        raise ValueError(
            f"`class_axis` cannot be the batch axis 0; `{name}` has shape {tuple(x.shape)} "
            "([B, *spatial, C])."
        )
    return axis


def _without_axis(shape: tuple[int, ...], axis: int) -> tuple[int, ...]:
    return tuple(s for i, s in enumerate(shape) if i != axis)


def _layout_hint(labels: jax.Array, predictions: jax.Array, axis: int) -> str:
    """How to fix integer labels that do not have the predictions' pixel shape."""
    if labels.ndim >= 2 and labels.shape[1] == 1 and labels.ndim == predictions.ndim:
        return (
            "Integer labels [B, 1, *spatial] (the PyTorch habit) have a class axis of size 1: "
            "squeeze axis 1 (labels[:, 0]); NCHW scores also need class_axis=1."
        )
    if tuple(labels.shape) == tuple(predictions.shape) and predictions.dtype == jnp.bool_:
        return (
            "Boolean predictions are decisions with a class axis [B, *spatial, C]: a binary "
            "mask [B, *spatial] is the foreground channel of a binary problem, "
            "predictions[..., None] (C = 1)."
        )
    if tuple(labels.shape) == tuple(predictions.shape):
        return (
            "Integer labels are class indices without a class axis; pass one-hot or "
            "multi-label targets as booleans (labels.astype(bool)) to count them per channel."
        )
    return _checks.class_axis_hint(
        "labels", labels.shape, "predictions", predictions.shape, axis
    ) or ("Labels have the predictions' shape without the class axis (class_axis moves it).")


def mask_pixels(mask: Any, pixel_shape: tuple[int, ...]) -> jax.Array:
    """``pixel_shape`` bool: the pixels that ``mask`` (``[B, *spatial]``, bool or numeric,
    non-zero counts) lets count; all of them without one."""
    if mask is None:
        return jnp.ones(pixel_shape, jnp.bool_)
    mask = jnp.asarray(mask)
    _checks.check_shape("mask", mask, pixel_shape, hint="One entry per pixel: [B, *spatial].")
    if not (jnp.issubdtype(mask.dtype, jnp.number) or mask.dtype == jnp.bool_):
        raise TypeError(f"`mask` must be bool or numeric; got dtype {mask.dtype}.")
    return mask.astype(jnp.bool_)


def counted_pixels(
    mask: Any, pixel_shape: tuple[int, ...], labels: jax.Array, ignore_index: int | None
) -> jax.Array:
    """``pixel_shape`` bool: the pixels that count, neither masked out nor labelled
    ``ignore_index`` (``labels`` integer class indices of that shape when it is given)."""
    counted = mask_pixels(mask, pixel_shape)
    return counted if ignore_index is None else counted & (labels != ignore_index)


def _channels_last(x: jax.Array, axis: int | None, valid: jax.Array, layout: _Layout) -> jax.Array:
    """``[B, P, C]``: the classes of ``x`` last, its pixels flattened like ``valid``."""
    assert axis is not None
    return jnp.moveaxis(x, axis, -1).reshape(*valid.shape, layout.num_classes)


def _label_pixels(
    labels: jax.Array,
    layout: _Layout,
    valid: jax.Array,
    ignore_index: int | None,
    num_values: int,
) -> tuple[jax.Array, jax.Array | None, jax.Array | None]:
    """``(valid, label_classes, label_hits)``: pixels whose label is no class do not count."""
    if layout.label_axis is not None:
        targets = _channels_last(labels, layout.label_axis, valid, layout)
        if targets.dtype == jnp.bool_:
            return valid, None, targets
        known = jnp.all((targets == 0) | (targets == 1), axis=-1)
        _checks.check_values(jnp.all(known | ~valid), "dense `labels` must be 0 or 1")
        return valid & known, None, targets == 1
    flat = labels.reshape(valid.shape).astype(jnp.int32)
    in_range = (flat >= 0) & (flat < num_values)
    ignored = None if ignore_index is None else flat == ignore_index
    _checks.check_values(
        jnp.all(in_range | ~valid if ignored is None else in_range | ignored | ~valid),
        f"`labels` must lie in [0, {num_values}) or equal ignore_index ({ignore_index}); "
        "found a label out of range",
    )
    valid = valid & in_range if ignored is None else valid & in_range & ~ignored
    return valid, jnp.where(in_range, flat, 0), None


def _prediction_pixels(
    predictions: jax.Array, layout: _Layout, valid: jax.Array, num_values: int
) -> tuple[jax.Array, jax.Array | None, jax.Array | None]:
    """``(valid, predicted_classes, predicted_hits)``: the arg-max of scores is a class."""
    if layout.prediction_kind == "classes":
        flat = predictions.reshape(valid.shape).astype(jnp.int32)
        in_range = (flat >= 0) & (flat < num_values)
        _checks.check_values(
            jnp.all(in_range | ~valid),
            f"`predictions` must lie in [0, {num_values}); found a class out",
        )
        return valid & in_range, jnp.where(in_range, flat, 0), None
    if layout.prediction_kind == "scores":
        assert layout.prediction_axis is not None
        check_finite_scores(predictions, layout.prediction_axis, valid.reshape(layout.pixel_shape))
        scores = _channels_last(predictions, layout.prediction_axis, valid, layout)
        return valid, jnp.argmax(scores, axis=-1).astype(jnp.int32), None
    return valid, None, _channels_last(predictions, layout.prediction_axis, valid, layout)
