r"""Hard segmentation metrics: per-image counts, every score of them, reductions, streaming.

Losses are soft and differentiable; evaluation counts pixels of hard decisions. Everything here
starts from four counts per image :math:`b` and class :math:`c`, over the pixels :math:`i` that
count (not ignored, not masked),

.. math::

   TP_{bc} = \#\{i : \hat y_{ic} \wedge y_{ic}\}, \quad
   FP_{bc} = \#\{i : \hat y_{ic} \wedge \neg y_{ic}\}, \quad
   FN_{bc} = \#\{i : \neg \hat y_{ic} \wedge y_{ic}\}, \quad
   TN_{bc} = \#\{i : \neg \hat y_{ic} \wedge \neg y_{ic}\},

where :math:`\hat y_{ic}` says "pixel :math:`i` is predicted as class :math:`c`" and
:math:`y_{ic}` "pixel :math:`i` is of class :math:`c`" (one class per pixel for class indices
and arg-max scores, any number for multi-label inputs). :func:`overlap_counts` returns them as
:class:`Counts` ``[B, C]``; every score (:func:`iou`, :func:`dice`, :func:`f_beta`,
:func:`precision`, :func:`recall`, :func:`specificity`, :func:`mcc`, ...) is one function of
them, per image and class or on counts summed over images or classes, and every reduction of
MONAI, segmentation_models_pytorch and torchmetrics is an option of that function
(:func:`reduce`; the mapping is in ``docs/metrics.md``).

Counts are exact integers past :math:`2^{31}` without 64-bit JAX (:class:`ExactCount`), they add
across batches (``+``), images and classes (:meth:`Counts.sum`) and devices (``psum``), and a
score of summed counts is the score of the union. A confusion matrix ``[..., C, C]`` (rows true,
columns predicted, scikit-learn's convention) is accepted wherever counts are, with

.. math::

   TP_c = M_{cc}, \quad FP_c = \sum_{r} M_{rc} - TP_c, \quad FN_c = \sum_{k} M_{ck} - TP_c.

**Undefined values.** A score whose ratio is 0/0 (IoU of a class absent from both the labels
and the prediction, precision of a class never predicted, ...) is NaN, or ``zero_division``
when one is given; ``ignore_empty=True`` makes it NaN wherever the ground truth has no pixel of
the class (MONAI's rule). The reductions skip NaN: a mean over no defined value is NaN and its
count 0, a sum over none is 0. ``±inf`` entries (a distance to an empty prediction) are values:
they make every mean and sum that contains them infinite. ``docs/metrics.md`` lists every case.

**Streaming.** :class:`ConfusionMatrixAccumulator` pools a confusion matrix over an evaluation
loop; :class:`PerImageAccumulator` keeps, for any named per-image ``[B, C]`` metric, the sums and
counts of its defined values, so means over images and classes are those of the whole set.
Both run under ``jax.jit`` and ``nnx.jit``; over devices, pass ``axis_name`` to ``update``
(a ``psum`` of a whole accumulator would add every device's copy of what it already holds, and
is refused).

Everything runs under ``jax.jit`` with static shapes: counting is one scatter-add of
``B·P`` pixels into per-image confusion matrices on CPU and fused comparisons with an iota on
GPU/TPU, never a Python loop.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg_losses._core import checks as _checks
from jaxseg_losses._core import exact as _exact
from jaxseg_losses._core import fused as _fused
from jaxseg_losses._core.classes import generalized_dice_weights
from jaxseg_losses._core.engine import divide
from jaxseg_losses._core.exact import ExactCount
from jaxseg_losses.metrics.surface import (
    average_surface_distance,
    distance_transform,
    hausdorff_distance,
    surface_dice,
)

ArrayLike = jax.typing.ArrayLike

_COUNT_DTYPES = ("int32", "int64", "float32", "float64")
# Every reduction: MONAI's seven names, and two orders of the mean over images and classes.
REDUCTIONS = (
    "none",
    "mean",
    "sum",
    "mean_batch",
    "sum_batch",
    "mean_channel",
    "sum_channel",
    "mean_all",
    "mean_batch_channel",
)
# The reductions that keep no per-image axis: the ones a stream of images can be summed into.
STREAMED_REDUCTIONS = ("mean", "sum", "mean_batch", "sum_batch", "mean_all", "mean_batch_channel")
GENERALIZED_DICE_REDUCTIONS = ("none", "mean", "sum")
# Pixels of one image counted per int32 pass; larger images are counted in chunks.
_MAX_CHUNK_PIXELS = 2**31 - 1


def _check_num_classes(num_classes: Any) -> int:
    if not isinstance(num_classes, numbers.Integral) or isinstance(num_classes, bool):
        raise TypeError(
            f"`num_classes` must be a Python int (a static shape); got "
            f"{type(num_classes).__name__} {num_classes!r}."
        )
    if num_classes < 1:
        raise ValueError(f"`num_classes` must be at least 1; got {num_classes}.")
    return int(num_classes)


def _check_count_dtype(dtype: Any) -> Any:
    try:
        dtype = jnp.dtype(dtype)
    except TypeError:
        raise TypeError(f"`dtype` must be a dtype; got {dtype!r}.") from None
    if dtype.name not in _COUNT_DTYPES:
        shown = ", ".join(_COUNT_DTYPES)
        raise ValueError(f"`dtype` must be one of {shown}; got {dtype.name}.")
    if dtype.itemsize == 8 and not jax.config.read("jax_enable_x64"):
        raise ValueError(
            f"`dtype={dtype.name}` needs 64-bit JAX (jax.config.update('jax_enable_x64', True)); "
            "without it use int32 or float32."
        )
    return dtype


def _predicted_labels(
    predictions: jax.Array,
    label_shape: tuple[int, ...],
    num_classes: int,
    class_axis: int,
    threshold: Any,
) -> jax.Array:
    """Integer predictions with the labels' shape, from logits/probabilities or indices."""
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
            hint="Scores have the labels' shape plus a class axis.",
        )
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


def confusion_matrix(
    predictions: ArrayLike,
    labels: ArrayLike,
    num_classes: int,
    *,
    ignore_index: int | None = None,
    mask: ArrayLike | None = None,
    class_axis: int = -1,
    threshold: ArrayLike = 0.0,
    axis_name: Any = None,
    dtype: Any = jnp.int32,
) -> jax.Array:
    r"""Counts pixels by true and predicted class: the confusion matrix ``[C, C]``.

    .. math::

       M_{rk} = \#\{i : y_i = r,\ \hat y_i = k,\ \text{pixel } i \text{ valid}\}

    with rows the true class and columns the predicted one (scikit-learn's convention). The
    prediction is the arg-max over the class axis of float scores, or given as integer indices;
    single-channel scores are binary, :math:`\hat y = [s > \text{threshold}]` (threshold 0 for
    logits, pass 0.5 for probabilities). Pixels with ``labels == ignore_index``, where ``mask``
    is False/0, or with a label or prediction outside ``[0, C)``, are not counted.

    Counts are computed per call in int32 (exact while one call, summed over ``axis_name``,
    holds fewer than :math:`2^{31}` pixels in a cell) and returned in ``dtype``; float32 is
    exact up to :math:`2^{24}` per cell; ``int64``/``float64`` need ``jax_enable_x64``. Totals
    over an evaluation belong in a :class:`ConfusionMatrixAccumulator`, whose counts stay exact
    past :math:`2^{31}` (to :math:`2^{63}`) without x64.

    Args:
      predictions: ``[B, *spatial, C]`` float logits or probabilities (``class_axis`` moves C),
        or ``[B, *spatial]`` integer predicted classes. Any leading shape works; no batch axis
        is required.
      labels: ``[B, *spatial]`` integer true classes.
      num_classes: :math:`C`, a Python int.
      ignore_index: a label value whose pixels are not counted (e.g. 255).
      mask: ``[B, *spatial]`` bool (or numeric, non-zero counts) pixels to count.
      class_axis: the class axis of float ``predictions``.
      threshold: the decision threshold for single-channel scores.
      axis_name: a mapped device axis (``shard_map``/``pmap``) to sum the matrix over.
      dtype: ``jnp.int32`` (default), ``jnp.float32``, or a 64-bit type under x64.

    Returns:
      ``[C, C]`` counts in ``dtype``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> labels = jnp.array([[0, 0, 1, 2, 255]])
      >>> predictions = jnp.array([[0, 1, 1, 2, 2]])
      >>> print(jsl.metrics.confusion_matrix(predictions, labels, 3, ignore_index=255))
      [[1 1 0]
       [0 1 0]
       [0 0 1]]
    """
    num_classes = _check_num_classes(num_classes)
    dtype = _check_count_dtype(dtype)
    labels = jnp.asarray(labels)
    if not (jnp.issubdtype(labels.dtype, jnp.integer) or labels.dtype == jnp.bool_):
        raise TypeError(
            f"`labels` must be integer class indices; got dtype {labels.dtype}. For one-hot or "
            "multi-label targets [B, *spatial, C] use jsl.metrics.overlap_counts, which takes "
            "them as boolean (or 0/1) arrays."
        )
    label_shape = tuple(labels.shape)
    predicted = _predicted_labels(
        jnp.asarray(predictions), label_shape, num_classes, class_axis, threshold
    )
    labels = labels.astype(jnp.int32)
    valid = (labels >= 0) & (labels < num_classes) & (predicted >= 0) & (predicted < num_classes)
    allowed = valid if ignore_index is None else valid | (labels == ignore_index)
    _checks.check_values(
        jnp.all(allowed),
        f"`labels` and `predictions` must lie in [0, {num_classes}) (labels may equal "
        f"ignore_index={ignore_index}); found a value out of range",
    )
    if mask is not None:
        mask = jnp.asarray(mask)
        _checks.check_shape("mask", mask, label_shape, hint="One entry per pixel, like labels.")
        valid = valid & mask.astype(jnp.bool_)
    if ignore_index is not None:
        valid = valid & (labels != ignore_index)
    # Invalid pixels go to an extra bin past the C*C cells, dropped after counting; a clamped or
    # wrapped index could land in a real cell.
    cells = num_classes * num_classes
    index = jnp.where(valid, labels * num_classes + predicted, cells).reshape(-1)
    count_dtype = dtype if dtype == jnp.int64 else jnp.int32
    counts = jax.ops.segment_sum(jnp.ones(index.shape, count_dtype), index, num_segments=cells + 1)
    matrix = counts[:cells].reshape(num_classes, num_classes).astype(dtype)
    if axis_name is not None:
        matrix = jax.lax.psum(matrix, axis_name)
    return matrix


# ----------------------------------------------------------------------------------------------
# Per-image counts.


def _count_field(name: str, value: Any) -> Any:
    """A field of :class:`Counts`: integer counts become exact, float (soft) counts stay."""
    if isinstance(value, ExactCount):
        return value
    if isinstance(value, jax.Array | np.ndarray) and (jnp.issubdtype(value.dtype, jnp.floating)):
        return jnp.asarray(value)
    try:
        return ExactCount(value)
    except TypeError:
        raise TypeError(
            f"`{name}` must hold counts: integers, an ExactCount or float (soft) counts; got "
            f"{type(value).__name__}."
        ) from None


def _field_shape(x: Any) -> tuple[int, ...]:
    return x.shape if isinstance(x, ExactCount) else tuple(jnp.shape(x))


@jax.tree_util.register_pytree_node_class
class Counts:
    r"""True/false positives and negatives per image and class: a pytree that adds and psums.

    The result of :func:`overlap_counts`, read by every score. Each field is an
    :class:`ExactCount` of shape ``[B, C]`` (or the shape left after :meth:`sum`), exact past
    :math:`2^{31}` without x64. Counts of disjoint pixels add: ``a + b`` adds batches of the same
    shape, :meth:`sum` pools images (``axis=0``) or classes (``axis=-1``), and
    ``jax.lax.psum(counts, axis_name)`` adds devices. Indexing applies to every field
    (``counts[:, 1:]`` drops class 0, ``counts[2]`` is image 2).

    .. math::

       TP + FP + FN + TN = \text{the number of pixels counted in the image}

    Args:
      tp: true positives: integer counts (an :class:`ExactCount`, or any integer array, which
        is converted), or float (soft) counts.
      fp: false positives, same shape.
      fn: false negatives, same shape.
      tn: true negatives, same shape.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> counts = jsl.metrics.overlap_counts(jnp.array([[0, 1, 1]]), jnp.array([[0, 0, 1]]),
      ...                                     num_classes=2)
      >>> print(counts.tp, counts.fp, counts.fn, counts.tn)
      ExactCount([[1, 1]]) ExactCount([[0, 1]]) ExactCount([[1, 0]]) ExactCount([[1, 1]])
      >>> print((counts + counts).sum(axis=0).tp)
      ExactCount([2, 2])
    """

    __slots__ = ("fn", "fp", "tn", "tp")
    tp: Any
    fp: Any
    fn: Any
    tn: Any

    def __init__(self, tp: Any, fp: Any, fn: Any, tn: Any) -> None:
        fields = {
            name: _count_field(name, value)
            for name, value in (("tp", tp), ("fp", fp), ("fn", fn), ("tn", tn))
        }
        shapes = {name: _field_shape(value) for name, value in fields.items()}
        if len(set(shapes.values())) != 1:
            raise ValueError(f"The four counts must have one shape; got {shapes}.")
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    @classmethod
    def _of(cls, tp: Any, fp: Any, fn: Any, tn: Any) -> "Counts":
        counts = object.__new__(cls)
        for name, value in (("tp", tp), ("fp", fp), ("fn", fn), ("tn", tn)):
            object.__setattr__(counts, name, value)
        return counts

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Counts is immutable.")

    def tree_flatten(self) -> tuple[tuple[Any, Any, Any, Any], None]:
        return (self.tp, self.fp, self.fn, self.tn), None

    @classmethod
    def tree_unflatten(cls, aux: None, children: Sequence[Any]) -> "Counts":
        return cls._of(*children)

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of each field, e.g. ``(B, C)``."""
        return _field_shape(self.tp)

    def _map(self, fn: Callable[[Any], Any]) -> "Counts":
        return Counts._of(fn(self.tp), fn(self.fp), fn(self.fn), fn(self.tn))

    def __add__(self, other: Any) -> "Counts":
        if isinstance(other, int) and not isinstance(other, bool) and other == 0:
            return self  # sum() starts from 0
        if not isinstance(other, Counts):
            return NotImplemented
        if other.shape != self.shape:
            raise ValueError(
                f"Counts add when their shapes match; got {self.shape} and {other.shape}. Pool "
                "images first with .sum(axis=0)."
            )
        return Counts._of(
            self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn
        )

    __radd__ = __add__

    def sum(self, axis: int | Sequence[int] | None = None, *, keepdims: bool = False) -> "Counts":
        """The counts summed over ``axis`` (images: 0, classes: -1; all by default)."""

        def total(x: Any) -> Any:
            if isinstance(x, ExactCount):
                return x.sum(axis, keepdims=keepdims)
            return jnp.sum(
                x, axis=axis if axis is None else tuple(np.atleast_1d(axis)), keepdims=keepdims
            )

        return self._map(total)

    def __getitem__(self, index: Any) -> "Counts":
        return self._map(lambda x: x[index])

    def __iter__(self) -> Any:
        raise TypeError(
            "Counts is not iterable: read counts.tp, counts.fp, counts.fn and counts.tn, or "
            "index images with counts[b]."
        )

    def __repr__(self) -> str:
        return f"Counts(tp={self.tp!r}, fp={self.fp!r}, fn={self.fn!r}, tn={self.tn!r})"


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


def _layout_hint(labels: jax.Array, predictions: jax.Array) -> str:
    """How to fix integer labels that do not have the predictions' pixel shape."""
    if labels.ndim >= 2 and labels.shape[1] == 1 and labels.ndim == predictions.ndim:
        return (
            "Integer labels [B, 1, *spatial] (the PyTorch habit) have a class axis of size 1: "
            "squeeze axis 1 (labels[:, 0]); NCHW scores also need class_axis=1."
        )
    if tuple(labels.shape) == tuple(predictions.shape):
        return (
            "Integer labels are class indices without a class axis; pass one-hot or "
            "multi-label targets as booleans (labels.astype(bool)) to count them per channel."
        )
    return "Labels have the predictions' shape without the class axis (class_axis moves it)."


def overlap_counts(
    predictions: ArrayLike,
    labels: ArrayLike,
    *,
    num_classes: int | None = None,
    class_axis: int = -1,
    ignore_index: int | None = None,
    mask: ArrayLike | None = None,
) -> Counts:
    r"""Counts true/false positives and negatives of each image and class: ``Counts`` ``[B, C]``.

    Every hard metric is a function of these four counts (see the module docstring). Each kind
    of input is read by its dtype, never guessed from its values:

    * ``predictions``: integer predicted classes ``[B, *spatial]``; float scores (logits or
      probabilities) ``[B, *spatial, C]``, decided by their arg-max over the classes; or
      **boolean** decisions ``[B, *spatial, C]`` (multi-label, or binary with ``C = 1``), already
      thresholded. Float scores with one channel are refused: a threshold is the user's choice
      (0 for logits, 0.5 for probabilities), so nothing here picks one.
    * ``labels``: integer classes ``[B, *spatial]``, or boolean / 0-1 float targets
      ``[B, *spatial, C]`` (one-hot or multi-label).

    With one channel (``C = 1``) the channel is the foreground of a binary problem, and integer
    values are 0 (background) or 1. A pixel counts unless ``mask`` is False/0 there, its label
    equals ``ignore_index``, or a value is not a class (an integer label or prediction outside
    ``[0, C)``, a float target other than 0 or 1): such pixels are left out of all four counts,
    and ``jsl.checked`` reports values that are not classes.

    .. math::

       TP_{bc} = \sum_{i \in b} v_i\, \hat y_{ic}\, y_{ic}, \quad
       FP_{bc} = \sum_{i \in b} v_i\, \hat y_{ic} (1 - y_{ic}), \quad
       FN_{bc} = \sum_{i \in b} v_i (1 - \hat y_{ic})\, y_{ic}, \quad
       TN_{bc} = \sum_{i \in b} v_i (1 - \hat y_{ic}) (1 - y_{ic})

    with :math:`v_i \in \{0, 1\}` whether pixel :math:`i` counts. Counting runs in int32 per
    image (images of :math:`2^{31}` pixels or more are counted in chunks) and the result is
    exact (:class:`ExactCount`).

    Args:
      predictions: ``[B, *spatial]`` integer classes, ``[B, *spatial, C]`` float scores or
        ``[B, *spatial, C]`` booleans (``class_axis`` moves C).
      labels: ``[B, *spatial]`` integer classes, or ``[B, *spatial, C]`` booleans or 0/1 floats.
      num_classes: :math:`C`; required when both inputs are integer classes, else read from
        the class axis (and checked against it when given).
      class_axis: the class axis of float/boolean ``predictions`` and of dense ``labels``
        (``1`` for NCHW).
      ignore_index: an integer label value whose pixels count nowhere (e.g. 255).
      mask: ``[B, *spatial]`` bool (or numeric: non-zero counts) pixels to count.

    Returns:
      :class:`Counts` with ``[B, C]`` fields.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> labels = jnp.array([[0, 0, 1, 2, 255], [1, 1, 1, 1, 1]])
      >>> predictions = jnp.array([[0, 1, 1, 2, 2], [1, 1, 1, 0, 1]])
      >>> counts = jsl.metrics.overlap_counts(predictions, labels, num_classes=3,
      ...                                     ignore_index=255)
      >>> print(counts.tp)
      ExactCount([[1, 1, 1], [0, 4, 0]])
      >>> print(jsl.metrics.dice(counts))   # image 1 has no class 2 anywhere: undefined
      [[0.6666667 0.6666667 1.       ]
       [0.        0.8888889       nan]]

      Multi-label decisions against multi-label targets:

      >>> decided = jnp.array([[[True, False], [True, True]]])
      >>> targets = jnp.array([[[1.0, 0.0], [0.0, 1.0]]])
      >>> print(jsl.metrics.overlap_counts(decided, targets).fp)
      ExactCount([[1, 0]])
    """
    predictions = jnp.asarray(predictions)
    labels = jnp.asarray(labels)
    ignore_index = _checks.check_label_value("ignore_index", ignore_index)
    if num_classes is not None:
        num_classes = _check_num_classes(num_classes)

    dense_labels = labels.dtype == jnp.bool_ or jnp.issubdtype(labels.dtype, jnp.floating)
    if not (dense_labels or jnp.issubdtype(labels.dtype, jnp.integer)):
        raise TypeError(
            f"`labels` must be integer classes, or boolean / 0-1 float targets; got dtype "
            f"{labels.dtype}."
        )
    if predictions.dtype == jnp.bool_:
        prediction_kind = "decisions"
    elif jnp.issubdtype(predictions.dtype, jnp.floating):
        prediction_kind = "scores"
    elif jnp.issubdtype(predictions.dtype, jnp.integer):
        prediction_kind = "classes"
    else:
        raise TypeError(
            f"`predictions` must be integer classes, float scores or boolean decisions; got "
            f"dtype {predictions.dtype}."
        )

    channels: dict[str, int] = {}
    if dense_labels:
        if ignore_index is not None:
            raise ValueError(
                "`ignore_index` applies to integer labels; dense targets were given. Pass "
                "`mask` to exclude pixels."
            )
        _checks.check_min_rank("labels", labels, 2, "[batch, *spatial, num_classes]")
        label_axis = _class_axis("labels", labels, class_axis)
        pixel_shape = _without_axis(tuple(labels.shape), label_axis)
        channels["labels"] = labels.shape[label_axis]
    else:
        _checks.check_min_rank("labels", labels, 1, "[batch, *spatial]")
        label_axis = None
        pixel_shape = tuple(labels.shape)
    if prediction_kind == "classes":
        hint = "Integer predictions are classes with the labels' pixel shape [B, *spatial]."
        _checks.check_shape("predictions", predictions, pixel_shape, hint=hint)
        prediction_axis = None
    else:
        _checks.check_min_rank("predictions", predictions, 2, "[batch, *spatial, num_classes]")
        prediction_axis = _class_axis("predictions", predictions, class_axis)
        predicted_pixels = _without_axis(tuple(predictions.shape), prediction_axis)
        if predicted_pixels != pixel_shape:
            if dense_labels:
                hint = "Dense labels and predictions share their shape, class axis included."
            else:
                hint = _layout_hint(labels, predictions)
            raise ValueError(
                f"`labels` of shape {tuple(labels.shape)} do not fit `predictions` of shape "
                f"{tuple(predictions.shape)} (class_axis={class_axis}). {hint}"
            )
        channels["predictions"] = predictions.shape[prediction_axis]
        if prediction_kind == "scores" and channels["predictions"] == 1:
            raise ValueError(
                "Float `predictions` with a single channel are binary scores, and a metric "
                "counts decisions: threshold them first (e.g. `logits > 0`, or "
                "`probabilities > 0.5`) and pass the boolean array."
            )
    if num_classes is not None:
        channels["num_classes"] = num_classes
    if len(set(channels.values())) > 1:
        raise ValueError(f"The number of classes disagrees: {channels}.")
    if not channels:
        raise ValueError(
            "`num_classes` is required when predictions and labels are both integer classes."
        )
    num_classes = next(iter(channels.values()))
    # One channel is the foreground of a binary problem: its integer values are 0 and 1.
    num_values = max(num_classes, 2)

    batch = pixel_shape[0]
    pixels = math.prod(pixel_shape[1:])
    valid = jnp.ones((batch, pixels), jnp.bool_)
    if mask is not None:
        mask = jnp.asarray(mask)
        _checks.check_shape("mask", mask, pixel_shape, hint="One entry per pixel: [B, *spatial].")
        if not (jnp.issubdtype(mask.dtype, jnp.number) or mask.dtype == jnp.bool_):
            raise TypeError(f"`mask` must be bool or numeric; got dtype {mask.dtype}.")
        valid = mask.reshape(batch, pixels).astype(jnp.bool_)

    def channels_last(x: jax.Array, axis: int | None) -> jax.Array:
        assert axis is not None
        return jnp.moveaxis(x, axis, -1).reshape(batch, pixels, num_classes)

    label_classes = label_hits = None
    if dense_labels:
        targets = channels_last(labels, label_axis)
        if targets.dtype == jnp.bool_:
            label_hits = targets
        else:
            known = jnp.all((targets == 0) | (targets == 1), axis=-1)
            _checks.check_values(jnp.all(known), "dense `labels` must be 0 or 1")
            valid = valid & known
            label_hits = targets == 1
    else:
        flat = labels.reshape(batch, pixels).astype(jnp.int32)
        in_range = (flat >= 0) & (flat < num_values)
        ignored = None if ignore_index is None else flat == ignore_index
        _checks.check_values(
            jnp.all(in_range if ignored is None else in_range | ignored),
            f"`labels` must lie in [0, {num_values}) or equal ignore_index ({ignore_index}); "
            "found a label out of range",
        )
        valid = valid & in_range if ignored is None else valid & in_range & ~ignored
        label_classes = jnp.where(in_range, flat, 0)

    predicted_classes = predicted_hits = None
    if prediction_kind == "classes":
        flat = predictions.reshape(batch, pixels).astype(jnp.int32)
        in_range = (flat >= 0) & (flat < num_values)
        _checks.check_values(
            jnp.all(in_range), f"`predictions` must lie in [0, {num_values}); found a class out"
        )
        valid = valid & in_range
        predicted_classes = jnp.where(in_range, flat, 0)
    elif prediction_kind == "scores":
        scores = channels_last(predictions, prediction_axis)
        _checks.check_values(jnp.all(jnp.isfinite(scores)), "`predictions` scores must be finite")
        predicted_classes = jnp.argmax(scores, axis=-1).astype(jnp.int32)
    else:
        predicted_hits = channels_last(predictions, prediction_axis)

    chunks = -(-pixels // _MAX_CHUNK_PIXELS)
    if chunks > 1:
        valid, label_classes, label_hits, predicted_classes, predicted_hits = (
            None if x is None else _split_pixels(x, chunks)
            for x in (valid, label_classes, label_hits, predicted_classes, predicted_hits)
        )
    assert valid is not None
    tp, predicted, true, counted = _count(
        valid,
        label_classes,
        label_hits,
        predicted_classes,
        predicted_hits,
        num_classes=num_classes,
        num_values=num_values,
    )
    fp, fn = predicted - tp, true - tp
    tn = counted - true - predicted + tp
    counts = Counts._of(*(ExactCount(x) for x in (tp, fp, fn, tn)))
    if chunks > 1:
        counts = counts._map(
            lambda x: ExactCount.from_limbs(x.limbs.reshape(batch, chunks, num_classes, -1))
        ).sum(axis=1)
    return counts


def _split_pixels(x: jax.Array, chunks: int) -> jax.Array:
    """``[B, P, ...]`` -> ``[B * chunks, P / chunks, ...]``, padded with pixels that do not count
    (``valid`` pads with False, the class arrays with 0)."""
    batch, pixels = x.shape[:2]
    size = -(-pixels // chunks)
    padding = [(0, 0), (0, size * chunks - pixels)] + [(0, 0)] * (x.ndim - 2)
    padded = jnp.pad(x, padding)
    return padded.reshape(batch * chunks, size, *x.shape[2:])


def _count(
    valid: jax.Array,
    label_classes: jax.Array | None,
    label_hits: jax.Array | None,
    predicted_classes: jax.Array | None,
    predicted_hits: jax.Array | None,
    *,
    num_classes: int,
    num_values: int,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """``(TP, predicted, true, counted)`` int32 ``[B, C]`` from one side each of classes or hits."""
    batch = valid.shape[0]
    cells = batch * num_values * num_values
    if label_classes is not None and predicted_classes is not None:
        if _fused.strategy() == "segments" and cells < 2**31 - 1:
            # One scatter-add of the pixels into per-image confusion matrices; invalid pixels
            # go past the last cell and are dropped.
            image = jnp.arange(batch, dtype=jnp.int32)[:, None] * (num_values * num_values)
            index = image + label_classes * num_values + predicted_classes
            index = jnp.where(valid, index, cells).reshape(-1)
            matrices = jnp.zeros((cells,), jnp.int32).at[index].add(1, mode="drop")
            matrices = matrices.reshape(batch, num_values, num_values)
            tp = jnp.diagonal(matrices, axis1=1, axis2=2)
            true = jnp.sum(matrices, axis=2, dtype=jnp.int32)
            predicted = jnp.sum(matrices, axis=1, dtype=jnp.int32)
            counted = jnp.sum(true, axis=1, keepdims=True, dtype=jnp.int32)
            counted = jnp.broadcast_to(counted, true.shape)
            if num_classes == 1:
                tp, true, predicted, counted = (x[:, 1:] for x in (tp, true, predicted, counted))
            return tp, predicted, true, counted
        # Elsewhere comparisons with an iota fuse into the reductions (no [B, P, C] array).
        agree = (label_classes == predicted_classes) & valid
        label_hits = _hits(label_classes, num_classes)
        predicted_hits = _hits(predicted_classes, num_classes)
        tp = _count_true(label_hits & agree[..., None])
    elif label_classes is not None and _fused.strategy() == "segments" and num_classes > 1:
        # Class labels against per-channel decisions: the bit at each pixel's label, and the
        # labels themselves, are scatter-added; only the decisions are read as [B, P, C].
        assert predicted_hits is not None
        labelled = jnp.take_along_axis(predicted_hits, label_classes[..., None], axis=-1)[..., 0]
        true = _count_classes(label_classes, valid, num_classes)
        tp = _count_classes(label_classes, valid & labelled, num_classes)
        predicted = _count_true(predicted_hits & valid[..., None])
        counted = jnp.broadcast_to(_count_true(valid[..., None]), tp.shape)
        return tp, predicted, true, counted
    else:
        if label_hits is None:
            assert label_classes is not None
            label_hits = _hits(label_classes, num_classes)
        if predicted_hits is None:
            assert predicted_classes is not None
            predicted_hits = _hits(predicted_classes, num_classes)
        tp = _count_true(label_hits & predicted_hits & valid[..., None])
    predicted = _count_true(predicted_hits & valid[..., None])
    true = _count_true(label_hits & valid[..., None])
    counted = jnp.broadcast_to(_count_true(valid[..., None]), tp.shape)
    return tp, predicted, true, counted


def _hits(classes: jax.Array, num_classes: int) -> jax.Array:
    """``[B, P, C]`` membership of integer classes (with one channel, the value 1)."""
    if num_classes == 1:
        return (classes == 1)[..., None]
    iota = jax.lax.broadcasted_iota(jnp.int32, (*classes.shape, num_classes), classes.ndim)
    return classes[..., None] == iota


def _count_classes(classes: jax.Array, where: jax.Array, num_classes: int) -> jax.Array:
    """``[B, C]`` int32: how many pixels of each image have each class, among ``where``."""
    batch = classes.shape[0]
    cells = batch * num_classes
    image = jnp.arange(batch, dtype=jnp.int32)[:, None] * num_classes
    index = jnp.where(where, image + classes, cells).reshape(-1)
    counts = jnp.zeros((cells,), jnp.int32).at[index].add(1, mode="drop")
    return counts.reshape(batch, num_classes)


_INT8_GROUP = 64


def _count_true(x: jax.Array) -> jax.Array:
    """``[B, P, C]`` bool -> ``[B, C]`` int32 counts along the pixels.

    The pixels are first summed in groups of 64 as int8 (which cannot overflow): XLA then reads
    the booleans once, where a direct int32 sum materialises a ``[B, P, C]`` int32 copy (on CPU
    2.6x the time and 4x the memory, ``benchmarks/metrics_suite.py``).
    """
    batch, pixels, channels = x.shape
    groups = -(-pixels // _INT8_GROUP)
    x = jnp.pad(x, [(0, 0), (0, groups * _INT8_GROUP - pixels), (0, 0)])
    grouped = x.reshape(batch, groups, _INT8_GROUP, channels).astype(jnp.int8)
    partial = jnp.sum(grouped, axis=2, dtype=jnp.int8)
    return jnp.sum(partial, axis=1, dtype=jnp.int32)


# ----------------------------------------------------------------------------------------------
# Scores of counts.


class _Floats(NamedTuple):
    """The four counts as floats, ``[..., C]``."""

    tp: jax.Array
    fp: jax.Array
    fn: jax.Array
    tn: jax.Array


def _float_dtype_of(x: Any) -> Any:
    if isinstance(x, ExactCount):
        return jnp.float64 if jax.config.read("jax_enable_x64") else jnp.float32
    dtype = jnp.dtype(x.dtype)
    return jnp.float64 if dtype.itemsize == 8 else jnp.float32


def _to_float(x: Any, dtype: Any) -> jax.Array:
    return x.to_float(dtype) if isinstance(x, ExactCount) else jnp.asarray(x).astype(dtype)


def _matrix_counts(matrix: ExactCount) -> Counts:
    """Exact TP/FP/FN/TN ``[..., C]`` of an exact confusion matrix ``[..., C, C]``."""
    diagonal = jnp.diagonal(matrix.limbs, axis1=-3, axis2=-2)
    tp = ExactCount.from_limbs(jnp.moveaxis(diagonal, -2, -1))
    true, predicted = matrix.sum(-1), matrix.sum(-2)
    total = matrix.sum((-2, -1), keepdims=True)[..., 0]
    fp, fn = predicted - tp, true - tp
    return Counts._of(tp, fp, fn, total - true - predicted + tp)


def _check_matrix(matrix: Any) -> tuple[int, ...]:
    shape = _field_shape(matrix)
    if len(shape) < 2 or shape[-1] != shape[-2]:
        raise ValueError(
            f"A `matrix` must be a confusion matrix of shape [..., C, C] (counts given as an "
            f"array); got shape {shape}. Per-image counts are Counts, from overlap_counts."
        )
    return shape


def _float_counts(counts: Any) -> _Floats:
    """Counts, an exact confusion matrix or an array one, as float TP/FP/FN/TN ``[..., C]``."""
    if isinstance(counts, Counts):
        dtype = _float_dtype_of(counts.tp)
        return _Floats(*(_to_float(x, dtype) for x in counts.tree_flatten()[0]))
    if isinstance(counts, ExactCount):
        _check_matrix(counts)
        dtype = _float_dtype_of(counts)
        exact = _matrix_counts(counts)
        return _Floats(*(x.to_float(dtype) for x in exact.tree_flatten()[0]))
    if isinstance(counts, np.ndarray) and np.issubdtype(counts.dtype, np.integer):
        _check_matrix(counts)
        return _float_counts(ExactCount(counts))
    matrix = jnp.asarray(counts)
    _check_matrix(matrix)
    if jnp.issubdtype(matrix.dtype, jnp.integer) or matrix.dtype == jnp.bool_:
        dtype = _float_dtype_of(matrix)
        exact = _matrix_counts(ExactCount(matrix))
        return _Floats(*(x.to_float(dtype) for x in exact.tree_flatten()[0]))
    if not jnp.issubdtype(matrix.dtype, jnp.floating):
        raise TypeError(f"`counts` must hold integer or float counts; got {matrix.dtype}.")
    m = matrix.astype(_float_dtype_of(matrix))
    tp = jnp.diagonal(m, axis1=-2, axis2=-1)
    true, predicted = jnp.sum(m, axis=-1), jnp.sum(m, axis=-2)
    total = jnp.sum(m, axis=(-2, -1))[..., None]
    return _Floats(tp, predicted - tp, true - tp, total - true - predicted + tp)


class _Score(NamedTuple):
    """A score and where it is undefined (a 0/0 somewhere in its definition)."""

    value: jax.Array
    undefined: jax.Array


def _ratio(numerator: jax.Array, denominator: jax.Array) -> _Score:
    return _Score(divide(numerator, denominator, empty=jnp.nan), denominator == 0)


def _true_positive_rate(c: _Floats) -> _Score:
    return _ratio(c.tp, c.tp + c.fn)


def _true_negative_rate(c: _Floats) -> _Score:
    return _ratio(c.tn, c.tn + c.fp)


def _positive_predictive_value(c: _Floats) -> _Score:
    return _ratio(c.tp, c.tp + c.fp)


def _negative_predictive_value(c: _Floats) -> _Score:
    return _ratio(c.tn, c.tn + c.fn)


def _either(a: _Score, b: _Score, value: jax.Array) -> _Score:
    return _Score(value, a.undefined | b.undefined)


# The one definition of each score, from float counts.
def _iou_score(c: _Floats) -> _Score:
    return _ratio(c.tp, c.tp + c.fp + c.fn)


def _f_beta_score(c: _Floats, beta: Any) -> _Score:
    b2 = jnp.square(jnp.asarray(beta, c.tp.dtype))
    weighted = (1.0 + b2) * c.tp
    return _ratio(weighted, weighted + b2 * c.fn + c.fp)


def _dice_score(c: _Floats) -> _Score:
    return _ratio(2.0 * c.tp, 2.0 * c.tp + c.fp + c.fn)


def _accuracy_score(c: _Floats) -> _Score:
    return _ratio(c.tp + c.tn, c.tp + c.fp + c.fn + c.tn)


def _balanced_accuracy_score(c: _Floats) -> _Score:
    tpr, tnr = _true_positive_rate(c), _true_negative_rate(c)
    return _either(tpr, tnr, (tpr.value + tnr.value) / 2.0)


def _miss_rate_score(c: _Floats) -> _Score:
    return _ratio(c.fn, c.tp + c.fn)


def _fall_out_score(c: _Floats) -> _Score:
    return _ratio(c.fp, c.fp + c.tn)


def _false_discovery_rate_score(c: _Floats) -> _Score:
    return _ratio(c.fp, c.fp + c.tp)


def _false_omission_rate_score(c: _Floats) -> _Score:
    return _ratio(c.fn, c.fn + c.tn)


def _prevalence_threshold_score(c: _Floats) -> _Score:
    tpr, tnr = _true_positive_rate(c), _true_negative_rate(c)
    # MONAI's form: (sqrt(TPR (1 - TNR)) + TNR - 1) / (TPR + TNR - 1).
    numerator = jnp.sqrt(tpr.value * (1.0 - tnr.value)) + tnr.value - 1.0
    score = _ratio(numerator, tpr.value + tnr.value - 1.0)
    return _Score(score.value, score.undefined | tpr.undefined | tnr.undefined)


def _mcc_score(c: _Floats) -> _Score:
    # Fractions of the total keep the products of four counts (past 2^31 each) in range; each
    # square root takes a pair of complementary factors (they sum to 1, so one is >= 1/2), which
    # keeps the products far from float32's smallest normal number.
    total = c.tp + c.fp + c.fn + c.tn
    s = jnp.where(total == 0, jnp.ones((), total.dtype), total)
    tp, fp, fn, tn = c.tp / s, c.fp / s, c.fn / s, c.tn / s
    factors = (c.tp + c.fp, c.tp + c.fn, c.tn + c.fp, c.tn + c.fn)
    undefined = (factors[0] == 0) | (factors[1] == 0) | (factors[2] == 0) | (factors[3] == 0)
    root = jnp.sqrt((tp + fp) * (tn + fn)) * jnp.sqrt((tp + fn) * (tn + fp))
    safe = jnp.where(undefined, jnp.ones((), root.dtype), root)
    value = jnp.where(undefined, jnp.nan, (tp * tn - fp * fn) / safe)
    return _Score(value, undefined)


def _fowlkes_mallows_score(c: _Floats) -> _Score:
    ppv, tpr = _positive_predictive_value(c), _true_positive_rate(c)
    return _either(ppv, tpr, jnp.sqrt(ppv.value * tpr.value))


def _informedness_score(c: _Floats) -> _Score:
    tpr, tnr = _true_positive_rate(c), _true_negative_rate(c)
    return _either(tpr, tnr, tpr.value + tnr.value - 1.0)


def _markedness_score(c: _Floats) -> _Score:
    ppv, npv = _positive_predictive_value(c), _negative_predictive_value(c)
    return _either(ppv, npv, ppv.value + npv.value - 1.0)


_SCORE_ARGS = """\
      counts: :class:`Counts` ``[B, C]`` from :func:`overlap_counts` (or summed: ``[C]`` pooled
        over images, ``[B, 1]`` over classes, ``[]`` over both), or a confusion matrix
        ``[..., C, C]`` (rows true, columns predicted).
      reduction: ``"none"`` (every score, ``[..., C]``) or a reduction of :func:`reduce`:
        ``"mean"`` (over the classes of each image, then over images), ``"mean_batch"``,
        ``"mean_channel"``, ``"mean_all"``, ``"mean_batch_channel"`` and their sums.
      include_background: ``False`` leaves class 0 out (of the result and of every mean).
      classes: a sequence of class indices to keep, e.g. ``(1, 2)`` (all by default).
      class_weights: ``[C]`` non-negative weights of the classes where classes are averaged,
        or ``"support"``: each class of each image (or of pooled counts) weighs its number of
        ground-truth pixels (scikit-learn's and torchmetrics' ``average="weighted"``).
      zero_division: the value of an undefined score (a 0/0 in its definition); NaN by
        default, which the reductions skip.
      ignore_empty: ``True`` makes the score NaN wherever the ground truth holds no pixel of the
        class, whatever the prediction (MONAI's ``ignore_empty``).
      return_count: also return how many defined values each result averages or sums."""

_SCORE_RETURNS = """\
    Returns:
      ``[..., C]`` float32 scores (float64 under x64 for exact counts) for
      ``reduction="none"``, else the reduced value (see :func:`reduce`); with
      ``return_count=True``, a pair ``(value, count)`` with an int32 count of the same shape."""


def _score_docs(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Writes the options every score shares into its docstring."""
    assert fn.__doc__ is not None
    fn.__doc__ = fn.__doc__.replace("    <score args>", _SCORE_ARGS).replace(
        "    <score returns>", _SCORE_RETURNS
    )
    return fn


def _score(
    definition: Callable[[_Floats], _Score],
    counts: Any,
    *,
    reduction: str,
    include_background: bool,
    classes: Sequence[int] | None,
    class_weights: ArrayLike | str | None,
    zero_division: ArrayLike,
    ignore_empty: bool,
    return_count: bool,
) -> Any:
    _checks.check_choice("reduction", reduction, REDUCTIONS)
    _checks.check_bool("ignore_empty", ignore_empty)
    _checks.check_real_scalar("zero_division", zero_division)
    _checks.check_bool("return_count", return_count)
    floats = _float_counts(counts)
    score = definition(floats)
    fill = jnp.asarray(zero_division, score.value.dtype)
    value = jnp.where(score.undefined, fill, score.value)
    if ignore_empty:
        value = jnp.where(floats.tp + floats.fn == 0, jnp.nan, value)
    support = isinstance(class_weights, str)
    if support and class_weights != "support":
        raise ValueError(
            f'`class_weights` must be [C] weights or "support"; got {class_weights!r}.'
        )
    result, count = _reduce(
        value,
        reduction=reduction,
        include_background=include_background,
        classes=classes,
        class_weights=None if support else class_weights,
        value_weights=floats.tp + floats.fn if support else None,
    )
    return (result, count) if return_count else result


@_score_docs
def iou(
    counts: Any,
    *,
    reduction: str = "none",
    include_background: bool = True,
    classes: Sequence[int] | None = None,
    class_weights: ArrayLike | str | None = None,
    zero_division: ArrayLike = math.nan,
    ignore_empty: bool = False,
    return_count: bool = False,
) -> Any:
    r"""Computes the IoU (Jaccard index, threat score) of each class from counts.

    The overlap of prediction and ground truth over their union: 1 when they coincide, 0 when
    they do not meet.

    .. math::

       \mathrm{IoU} = \frac{TP}{TP + FP + FN}

    Undefined (NaN, or ``zero_division``) for a class absent from both the labels and the
    prediction.

    Args:
    <score args>

    <score returns>

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> m = jnp.array([[3, 1, 0], [1, 1, 0], [0, 0, 0]])
      >>> print(jsl.metrics.iou(m))
      [0.6        0.33333334        nan]
      >>> print(jsl.metrics.iou(m, include_background=False, zero_division=1.0))
      [0.33333334 1.        ]

    References:
      Jaccard, "The distribution of the flora in the alpine zone", New Phytologist 1912.
    """
    return _score(
        _iou_score,
        counts,
        reduction=reduction,
        include_background=include_background,
        classes=classes,
        class_weights=class_weights,
        zero_division=zero_division,
        ignore_empty=ignore_empty,
        return_count=return_count,
    )


@_score_docs
def dice(
    counts: Any,
    *,
    reduction: str = "none",
    include_background: bool = True,
    classes: Sequence[int] | None = None,
    class_weights: ArrayLike | str | None = None,
    zero_division: ArrayLike = math.nan,
    ignore_empty: bool = False,
    return_count: bool = False,
) -> Any:
    r"""Computes the Dice coefficient (F1 score) of each class from counts.

    Twice the overlap over the sum of the two sizes; :math:`D = 2J / (1 + J)` of the IoU
    :math:`J`, so it ranks like the IoU but scores partial overlaps higher.

    .. math::

       \mathrm{Dice} = \frac{2\,TP}{2\,TP + FP + FN}

    Args:
    <score args>

    <score returns>

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> m = jnp.array([[3, 1], [1, 1]])
      >>> print(jsl.metrics.dice(m))
      [0.75 0.5 ]

      MONAI's ``DiceMetric()`` (NaN for an empty ground truth, per-image class means, then the
      mean over images):

      >>> counts = jsl.metrics.overlap_counts(jnp.array([[1, 1, 0], [0, 0, 0]]),
      ...                                     jnp.array([[1, 0, 0], [0, 0, 0]]), num_classes=2)
      >>> print(jsl.metrics.dice(counts, ignore_empty=True))
      [[0.6666667 0.6666667]
       [1.              nan]]
      >>> print(jsl.metrics.dice(counts, ignore_empty=True, reduction="mean"))
      0.8333334

    References:
      Dice, "Measures of the amount of ecologic association between species", Ecology 1945.
    """
    return _score(
        _dice_score,
        counts,
        reduction=reduction,
        include_background=include_background,
        classes=classes,
        class_weights=class_weights,
        zero_division=zero_division,
        ignore_empty=ignore_empty,
        return_count=return_count,
    )


@_score_docs
def f_beta(
    counts: Any,
    *,
    beta: ArrayLike = 1.0,
    reduction: str = "none",
    include_background: bool = True,
    classes: Sequence[int] | None = None,
    class_weights: ArrayLike | str | None = None,
    zero_division: ArrayLike = math.nan,
    ignore_empty: bool = False,
    return_count: bool = False,
) -> Any:
    r"""Computes the F-beta score of each class: recall weighted beta times as much as precision.

    .. math::

       F_\beta = \frac{(1 + \beta^2)\, TP}{(1 + \beta^2)\, TP + \beta^2 FN + FP}

    :math:`\beta = 1` is the Dice/F1 score, :math:`\beta = 0` the precision.

    Args:
    <score args>
      beta: :math:`\beta \ge 0` (a traced value works).

    <score returns>

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> m = jnp.array([[3, 1], [1, 1]])
      >>> print(jsl.metrics.f_beta(m, beta=2.0))
      [0.75 0.5 ]

    References:
      van Rijsbergen, "Information Retrieval", 2nd ed., 1979 (ch. 7).
    """
    _checks.check_nonnegative("beta", beta)
    return _score(
        lambda c: _f_beta_score(c, beta),
        counts,
        reduction=reduction,
        include_background=include_background,
        classes=classes,
        class_weights=class_weights,
        zero_division=zero_division,
        ignore_empty=ignore_empty,
        return_count=return_count,
    )


def _simple_score(
    definition: Callable[[_Floats], _Score], name: str, doc: str
) -> Callable[..., Any]:
    """A public score function of one definition, with the shared options and docstring."""

    def score(
        counts: Any,
        *,
        reduction: str = "none",
        include_background: bool = True,
        classes: Sequence[int] | None = None,
        class_weights: ArrayLike | str | None = None,
        zero_division: ArrayLike = math.nan,
        ignore_empty: bool = False,
        return_count: bool = False,
    ) -> Any:
        return _score(
            definition,
            counts,
            reduction=reduction,
            include_background=include_background,
            classes=classes,
            class_weights=class_weights,
            zero_division=zero_division,
            ignore_empty=ignore_empty,
            return_count=return_count,
        )

    score.__name__ = score.__qualname__ = name
    score.__module__ = __name__
    score.__doc__ = doc
    return _score_docs(score)


precision = _simple_score(
    _positive_predictive_value,
    "precision",
    r"""Computes the precision (positive predictive value) of each class: predictions right.

    .. math::

       \mathrm{precision} = \frac{TP}{TP + FP}

    Undefined for a class never predicted.

    Args:
    <score args>

    <score returns>

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> print(jsl.metrics.precision(jnp.array([[3, 1], [1, 1]])))
      [0.75 0.5 ]
    """,
)

recall = _simple_score(
    _true_positive_rate,
    "recall",
    r"""Computes the recall (sensitivity, hit rate, TPR) of each class: the fraction found.

    .. math::

       \mathrm{recall} = \frac{TP}{TP + FN}

    Undefined for a class absent from the labels.

    Args:
    <score args>

    <score returns>

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> print(jsl.metrics.recall(jnp.array([[3, 0], [1, 1]])))
      [1.  0.5]
    """,
)

specificity = _simple_score(
    _true_negative_rate,
    "specificity",
    r"""Computes the specificity (selectivity, TNR) of each class: negatives left negative.

    .. math::

       \mathrm{specificity} = \frac{TN}{TN + FP}

    Args:
    <score args>

    <score returns>

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> print(jsl.metrics.specificity(jnp.array([[3, 0], [1, 1]])))
      [0.5 1. ]
    """,
)

negative_predictive_value = _simple_score(
    _negative_predictive_value,
    "negative_predictive_value",
    r"""Computes the negative predictive value (NPV) of each class: negative calls right.

    .. math::

       \mathrm{NPV} = \frac{TN}{TN + FN}

    Args:
    <score args>

    <score returns>

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> print(jsl.metrics.negative_predictive_value(jnp.array([[3, 0], [1, 1]])))
      [1.   0.75]
    """,
)

accuracy = _simple_score(
    _accuracy_score,
    "accuracy",
    r"""Computes the accuracy of each class's one-vs-rest decision: pixels decided right.

    .. math::

       \mathrm{accuracy} = \frac{TP + TN}{TP + FP + FN + TN}

    (:func:`pixel_accuracy` is the multi-class accuracy of a confusion matrix.)

    Args:
    <score args>

    <score returns>

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> print(jsl.metrics.accuracy(jnp.array([[3, 0], [1, 1]])))
      [0.8 0.8]
    """,
)

balanced_accuracy = _simple_score(
    _balanced_accuracy_score,
    "balanced_accuracy",
    r"""Computes the balanced accuracy of each class: the mean of recall and specificity.

    .. math::

       \mathrm{BA} = \tfrac12 \left(\frac{TP}{TP + FN} + \frac{TN}{TN + FP}\right)

    Undefined when the class or its complement is absent from the labels.

    Args:
    <score args>

    <score returns>

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> print(jsl.metrics.balanced_accuracy(jnp.array([[3, 0], [1, 1]])))
      [0.75 0.75]
    """,
)

miss_rate = _simple_score(
    _miss_rate_score,
    "miss_rate",
    r"""Computes the miss rate (false negative rate) of each class: the fraction missed.

    .. math::

       \mathrm{FNR} = \frac{FN}{TP + FN} = 1 - \mathrm{recall}

    Args:
    <score args>

    <score returns>

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> print(jsl.metrics.miss_rate(jnp.array([[3, 0], [1, 1]])))
      [0.  0.5]
    """,
)

fall_out = _simple_score(
    _fall_out_score,
    "fall_out",
    r"""Computes the fall-out (false positive rate) of each class: negatives called positive.

    .. math::

       \mathrm{FPR} = \frac{FP}{FP + TN} = 1 - \mathrm{specificity}

    Args:
    <score args>

    <score returns>

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> print(jsl.metrics.fall_out(jnp.array([[3, 0], [1, 1]])))
      [0.5 0. ]
    """,
)

false_discovery_rate = _simple_score(
    _false_discovery_rate_score,
    "false_discovery_rate",
    r"""Computes the false discovery rate of each class: the fraction of its predictions wrong.

    .. math::

       \mathrm{FDR} = \frac{FP}{FP + TP} = 1 - \mathrm{precision}

    Args:
    <score args>

    <score returns>

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> print(jsl.metrics.false_discovery_rate(jnp.array([[3, 0], [1, 1]])))
      [0.25 0.  ]
    """,
)

false_omission_rate = _simple_score(
    _false_omission_rate_score,
    "false_omission_rate",
    r"""Computes the false omission rate of each class: the fraction of negative calls wrong.

    .. math::

       \mathrm{FOR} = \frac{FN}{FN + TN} = 1 - \mathrm{NPV}

    Args:
    <score args>

    <score returns>

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> print(jsl.metrics.false_omission_rate(jnp.array([[3, 0], [1, 1]])))
      [0.   0.25]
    """,
)

prevalence_threshold = _simple_score(
    _prevalence_threshold_score,
    "prevalence_threshold",
    r"""Computes the prevalence threshold of each class (Balayla's screening threshold).

    The prevalence below which the positive predictive value falls steeply:

    .. math::

       \mathrm{PT} = \frac{\sqrt{\mathrm{TPR}\,(1 - \mathrm{TNR})} + \mathrm{TNR} - 1}
       {\mathrm{TPR} + \mathrm{TNR} - 1}

    Undefined where the informedness :math:`\mathrm{TPR} + \mathrm{TNR} - 1` is 0 or a rate is.

    Args:
    <score args>

    <score returns>

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> print(jsl.metrics.prevalence_threshold(jnp.array([[3, 1], [1, 3]])).round(4))
      [0.366 0.366]

    References:
      Balayla, "Prevalence threshold (φe) and the geometry of screening curves", PLoS ONE 2020.
    """,
)

mcc = _simple_score(
    _mcc_score,
    "mcc",
    r"""Computes the Matthews correlation coefficient of each class's one-vs-rest decision.

    The correlation of prediction and truth, in :math:`[-1, 1]`:

    .. math::

       \mathrm{MCC} = \frac{TP \cdot TN - FP \cdot FN}
       {\sqrt{(TP + FP)(TP + FN)(TN + FP)(TN + FN)}}

    Undefined (MONAI's rule; scikit-learn's ``matthews_corrcoef`` returns 0, i.e.
    ``zero_division=0.0``) when a factor of the denominator is 0.

    Args:
    <score args>

    <score returns>

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> print(jsl.metrics.mcc(jnp.array([[3, 1], [1, 3]])))
      [0.5 0.5]

    References:
      Matthews, "Comparison of the predicted and observed secondary structure of T4 phage
      lysozyme", Biochimica et Biophysica Acta 1975.
    """,
)

fowlkes_mallows = _simple_score(
    _fowlkes_mallows_score,
    "fowlkes_mallows",
    r"""Computes the Fowlkes–Mallows index of each class: the geometric mean of PPV and TPR.

    .. math::

       \mathrm{FM} = \sqrt{\frac{TP}{TP + FP} \cdot \frac{TP}{TP + FN}}

    Args:
    <score args>

    <score returns>

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> print(jsl.metrics.fowlkes_mallows(jnp.array([[3, 1], [1, 3]])))
      [0.75 0.75]

    References:
      Fowlkes & Mallows, "A method for comparing two hierarchical clusterings", JASA 1983.
    """,
)

informedness = _simple_score(
    _informedness_score,
    "informedness",
    r"""Computes the informedness (Youden's J, bookmaker informedness) of each class.

    .. math::

       \mathrm{BM} = \frac{TP}{TP + FN} + \frac{TN}{TN + FP} - 1

    Args:
    <score args>

    <score returns>

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> print(jsl.metrics.informedness(jnp.array([[3, 1], [1, 3]])))
      [0.5 0.5]

    References:
      Youden, "Index for rating diagnostic tests", Cancer 1950.
    """,
)

markedness = _simple_score(
    _markedness_score,
    "markedness",
    r"""Computes the markedness (Δp) of each class: PPV plus NPV minus one.

    .. math::

       \mathrm{MK} = \frac{TP}{TP + FP} + \frac{TN}{TN + FN} - 1

    Args:
    <score args>

    <score returns>

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> print(jsl.metrics.markedness(jnp.array([[3, 1], [1, 3]])))
      [0.5 0.5]

    References:
      Powers, "Evaluation: from precision, recall and F-measure to ROC, informedness,
      markedness and correlation", Journal of Machine Learning Technologies 2011.
    """,
)


def generalized_dice(
    counts: Any,
    *,
    weight_type: str = "square",
    reduction: str = "none",
    include_background: bool = True,
    classes: Sequence[int] | None = None,
    class_weights: ArrayLike | None = None,
    zero_division: ArrayLike = math.nan,
    ignore_empty: bool = False,
    return_count: bool = False,
) -> Any:
    r"""Computes the generalized Dice score of each image, its classes combined (Sudre et al.).

    Class weights inversely proportional to the (squared) ground-truth size enter the sums
    before the ratio, so a small class weighs as much as a large one:

    .. math::

       \mathrm{GDS} = \frac{2 \sum_c w_c\, TP_c}{\sum_c w_c (2\,TP_c + FP_c + FN_c)}, \qquad
       w_c = \frac{1}{(TP_c + FN_c)^2}

    (``weight_type="simple"``: :math:`1 / (TP_c + FN_c)`, ``"uniform"``: 1). A class absent from
    the ground truth gets the largest weight of the classes present in the image (MONAI's rule),
    and ``class_weights`` multiply :math:`w_c`. An image without ground truth in the kept
    classes scores 0 if anything is predicted and is undefined (``zero_division``; MONAI: 1)
    if nothing is.

    Args:
      counts: :class:`Counts` ``[B, C]`` or ``[C]`` (pooled), or a confusion matrix.
      weight_type: ``"square"``, ``"simple"`` or ``"uniform"``.
      reduction: ``"none"`` (``[B]``), ``"mean"`` (over images) or ``"sum"``.
      include_background: ``False`` leaves class 0 out before the classes are combined.
      classes: a sequence of class indices to combine (all by default).
      class_weights: ``[C]`` non-negative factors of the Sudre weights.
      zero_division: the value of an undefined image; NaN by default, skipped by ``"mean"``.
      ignore_empty: ``True`` makes an image without ground truth in the kept classes NaN.
      return_count: also return how many defined values the result holds.

    Returns:
      ``[B]`` float32 scores (``[]`` for pooled counts) for ``reduction="none"``, else a
      scalar; with ``return_count=True``, a pair ``(value, count)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> counts = jsl.metrics.overlap_counts(jnp.array([[0, 0, 1, 1]]),
      ...                                     jnp.array([[0, 0, 0, 1]]), num_classes=2)
      >>> print(jsl.metrics.generalized_dice(counts))   # 2 (2/9 + 1/1) / (5/9 + 3/1)
      [0.6875]

    References:
      Sudre, Li, Vercauteren, Ourselin & Cardoso, "Generalised Dice overlap as a deep learning
      loss function for highly unbalanced segmentations", DLMIA 2017.
    """
    _checks.check_choice("reduction", reduction, GENERALIZED_DICE_REDUCTIONS)
    _checks.check_bool("ignore_empty", ignore_empty)
    _checks.check_real_scalar("zero_division", zero_division)
    floats = _float_counts(counts)
    if floats.tp.ndim == 0:
        raise ValueError("`counts` need a class axis to combine; got counts of shape ().")
    num_classes = floats.tp.shape[-1]
    keep = _selection(num_classes, include_background, classes)
    tp, fp, fn = (jnp.take(x, jnp.asarray(keep), axis=-1) for x in floats[:3])
    true = tp + fn
    weights = generalized_dice_weights(true, weight_type)
    if class_weights is not None:
        factors = _class_weights(class_weights, num_classes, tp.dtype)
        weights = weights * jnp.take(factors, jnp.asarray(keep)).reshape(
            (1,) * (tp.ndim - 1) + (len(keep),)
        )
    numerator = 2.0 * jnp.sum(weights * tp, axis=-1)
    denominator = jnp.sum(weights * (2.0 * tp + fp + fn), axis=-1)
    predicted = jnp.sum(tp + fp, axis=-1)
    fill = jnp.asarray(zero_division, numerator.dtype)
    # A zero denominator with predictions means no kept class has ground truth: a score of 0.
    empty = jnp.where(predicted == 0, fill, jnp.zeros((), numerator.dtype))
    value = jnp.where(denominator == 0, empty, divide(numerator, denominator))
    if ignore_empty:
        value = jnp.where(jnp.sum(true, axis=-1) == 0, jnp.nan, value)
    _checks.check_bool("return_count", return_count)
    result, count = _reduce(
        value[..., None],
        reduction=reduction,
        include_background=True,
        classes=None,
        class_weights=None,
    )
    if reduction == "none":
        result, count = result[..., 0], count[..., 0]
    return (result, count) if return_count else result


# ----------------------------------------------------------------------------------------------
# Reductions.


def _selection(
    num_classes: int, include_background: Any, classes: Sequence[int] | None
) -> tuple[int, ...]:
    """The kept class indices: ``classes`` (all by default), without 0 unless included."""
    _checks.check_bool("include_background", include_background)
    keep = (
        tuple(range(num_classes))
        if classes is None
        else _checks.class_indices("classes", classes, num_classes)
    )
    if not include_background:
        if num_classes < 2:
            raise ValueError(
                "include_background=False drops class 0, which would leave no class: the "
                "values have a single channel (the foreground of a binary problem). Keep "
                "include_background=True."
            )
        keep = tuple(c for c in keep if c != 0)
        if not keep:
            raise ValueError(
                f"`classes`={classes!r} hold only class 0, which include_background=False drops."
            )
    return keep


def _class_weights(class_weights: ArrayLike, num_classes: int, dtype: Any) -> jax.Array:
    weights = _checks.class_vector("class_weights", class_weights, num_classes, dtype)
    try:
        concrete = np.asarray(weights)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        _checks.check_values(
            jnp.all((weights >= 0) & jnp.isfinite(weights)),
            "`class_weights` must be finite and non-negative",
        )
        return weights
    if not np.all(np.isfinite(concrete) & (concrete >= 0)):
        raise ValueError(f"`class_weights` must be finite and non-negative; got {concrete}.")
    return weights


class _Partials(NamedTuple):
    """The additive summary of ``[B, C]`` values behind every reduction without a batch axis.

    ``class_*``: the sum and number of the defined values of each (kept) class; ``case_*``: the
    sum of each image's (weighted) class mean, over the images that have one, and their number.
    """

    class_sum: jax.Array
    class_count: jax.Array
    case_sum: jax.Array
    case_count: jax.Array


def _weighted(defined: jax.Array, weights: jax.Array, x: jax.Array) -> jax.Array:
    """``w * x`` where defined and weighted, else 0 (a weight of 0 never meets an inf)."""
    take = defined & (weights > 0)
    return jnp.where(take, weights * jnp.where(take, x, jnp.zeros((), x.dtype)), 0.0)


def _partials(values: jax.Array, weights: jax.Array) -> _Partials:
    """Partials of ``[B, C]`` values (NaN undefined) with class weights ``[C]``."""
    defined = ~jnp.isnan(values)
    zero = jnp.zeros((), values.dtype)
    w = weights if weights.shape == values.shape else jnp.broadcast_to(weights, values.shape)
    numerator = jnp.sum(_weighted(defined, w, values), axis=1)
    denominator = jnp.sum(_weighted(defined, w, jnp.ones_like(values)), axis=1)
    has_mean = denominator > 0
    image_mean = numerator / jnp.where(has_mean, denominator, jnp.ones((), values.dtype))
    return _Partials(
        class_sum=jnp.sum(jnp.where(defined, values, zero), axis=0),
        class_count=jnp.sum(defined, axis=0, dtype=jnp.int32),
        case_sum=jnp.sum(jnp.where(has_mean, image_mean, zero)),
        case_count=jnp.sum(has_mean, dtype=jnp.int32),
    )


def _finish(partials: _Partials, reduction: str, weights: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(value, count)`` of a reduction without a batch axis, from partials."""
    p = partials
    dtype = p.class_sum.dtype
    defined = p.class_count > 0
    if reduction == "mean":
        return divide(p.case_sum, p.case_count.astype(dtype), empty=jnp.nan), p.case_count
    if reduction == "mean_batch":
        return divide(p.class_sum, p.class_count.astype(dtype), empty=jnp.nan), p.class_count
    if reduction == "sum_batch":
        return p.class_sum, p.class_count
    total_count = jnp.sum(p.class_count)
    if reduction == "sum":
        return jnp.sum(_weighted(defined, weights, p.class_sum)), total_count
    if reduction == "mean_all":
        numerator = jnp.sum(_weighted(defined, weights, p.class_sum))
        counts = p.class_count.astype(dtype)
        denominator = jnp.sum(_weighted(defined, weights, counts))
        return divide(numerator, denominator, empty=jnp.nan), total_count
    assert reduction == "mean_batch_channel"
    class_means = divide(p.class_sum, p.class_count.astype(dtype), empty=jnp.nan)
    numerator = jnp.sum(_weighted(defined, weights, class_means))
    denominator = jnp.sum(_weighted(defined, weights, jnp.ones_like(class_means)))
    return divide(numerator, denominator, empty=jnp.nan), jnp.sum(defined, dtype=jnp.int32)


def _reduce_rows(
    values: jax.Array, reduction: str, weights: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """``"none"``, ``"mean_channel"``, ``"sum_channel"``: one result per row, any leading shape."""
    defined = ~jnp.isnan(values)
    if reduction == "none":
        return values, defined.astype(jnp.int32)
    if weights.shape != values.shape:
        weights = jnp.broadcast_to(weights.reshape((1,) * (values.ndim - 1) + (-1,)), values.shape)
    w = weights
    numerator = jnp.sum(_weighted(defined, w, values), axis=-1)
    count = jnp.sum(defined, axis=-1, dtype=jnp.int32)
    if reduction == "sum_channel":
        return numerator, count
    denominator = jnp.sum(_weighted(defined, w, jnp.ones_like(values)), axis=-1)
    return divide(numerator, denominator, empty=jnp.nan), count


def _reduce(
    values: jax.Array,
    *,
    reduction: str,
    include_background: Any,
    classes: Sequence[int] | None,
    class_weights: ArrayLike | None,
    value_weights: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """``(value, count)`` of validated values ``[..., C]``; see :func:`reduce`.

    ``value_weights`` (of the values' shape) weigh each value in the means over classes
    instead of ``class_weights`` (the scores' ``class_weights="support"``).
    """
    if values.ndim == 0:
        weighted = class_weights is not None or value_weights is not None
        if reduction != "none" or classes is not None or weighted:
            raise ValueError(
                f"`values` of shape () have no class axis, so only reduction='none' applies; got "
                f"reduction={reduction!r}. Reduce before pooling the counts over classes."
            )
        _checks.check_bool("include_background", include_background)
        if not include_background:
            raise ValueError("include_background=False needs a class axis; the values have none.")
        return values, (~jnp.isnan(values)).astype(jnp.int32)
    num_classes = values.shape[-1]
    keep = _selection(num_classes, include_background, classes)
    if keep != tuple(range(num_classes)):
        values = jnp.take(values, jnp.asarray(keep), axis=-1)
    if value_weights is not None:
        if reduction not in ("mean", "sum", "mean_channel", "sum_channel", "mean_all"):
            raise ValueError(
                f'class_weights="support" weighs the classes of each image by their ground-truth '
                f"pixels; reduction={reduction!r} does not average the classes of an image."
            )
        weights = jnp.take(value_weights, jnp.asarray(keep), axis=-1).astype(values.dtype)
        if reduction in ("mean_channel", "sum_channel"):
            return _reduce_rows(values, reduction, weights)
        rows = values.reshape(-1, values.shape[-1])
        weights = weights.reshape(rows.shape)
        if reduction == "mean":
            return _finish(_partials(rows, weights), "mean", weights)
        defined = ~jnp.isnan(rows)
        total = jnp.sum(_weighted(defined, weights, rows))
        count = jnp.sum(defined, dtype=jnp.int32)
        if reduction == "sum":
            return total, count
        denominator = jnp.sum(_weighted(defined, weights, jnp.ones_like(rows)))
        return divide(total, denominator, empty=jnp.nan), count
    if class_weights is None:
        weights = jnp.ones((len(keep),), values.dtype)
    else:
        if reduction in ("none", "mean_batch", "sum_batch"):
            raise ValueError(
                f"`class_weights` weigh classes where classes are averaged or summed; "
                f"reduction={reduction!r} keeps one value per class."
            )
        weights = jnp.take(
            _class_weights(class_weights, num_classes, values.dtype), jnp.asarray(keep)
        )
    if reduction in ("none", "mean_channel", "sum_channel"):
        return _reduce_rows(values, reduction, weights)
    if values.ndim == 1:
        values = values[None, :]
    if values.ndim != 2:
        raise ValueError(
            f"reduction={reduction!r} reduces images and classes of values [B, C]; got shape "
            f"{tuple(values.shape)}."
        )
    return _finish(_partials(values, weights), reduction, weights)


def reduce(
    values: ArrayLike,
    *,
    reduction: str = "mean",
    include_background: bool = True,
    classes: Sequence[int] | None = None,
    class_weights: ArrayLike | None = None,
    return_count: bool = False,
) -> Any:
    r"""Reduces per-image, per-class values ``[B, C]`` over images and classes, skipping NaN.

    The one implementation of every reduction of the scores (and of any per-image metric, such
    as a surface distance): NaN marks an undefined value, which no mean or sum counts; a mean
    over no defined value is NaN (with a count of 0) and a sum over none is 0. ``±inf`` are
    values: they make the means and sums that contain them infinite. With :math:`v_{bc}` the
    defined values and :math:`w_c` the class weights (1 by default):

    ========================  ======================================================  =========
    ``reduction``             value                                                   shape
    ========================  ======================================================  =========
    ``"none"``                the values                                              ``[B, C]``
    ``"mean_channel"``        :math:`m_b = \sum_c w_c v_{bc} / \sum_c w_c`            ``[B]``
    ``"sum_channel"``         :math:`\sum_c w_c v_{bc}`                               ``[B]``
    ``"mean_batch"``          :math:`\bar v_c = \frac{1}{n_c} \sum_b v_{bc}`           ``[C]``
    ``"sum_batch"``           :math:`\sum_b v_{bc}`                                   ``[C]``
    ``"mean"``                :math:`\frac{1}{|B'|} \sum_{b \in B'} m_b` (MONAI)       ``[]``
    ``"sum"``                 :math:`\sum_{b, c} w_c v_{bc}`                          ``[]``
    ``"mean_all"``            :math:`\sum_{b,c} w_c v_{bc} / \sum_{b,c} w_c`           ``[]``
    ``"mean_batch_channel"``  :math:`\sum_c w_c \bar v_c / \sum_c w_c`                ``[]``
    ========================  ======================================================  =========

    where every sum runs over the defined values only and :math:`B'` are the images with a
    defined value. ``"mean"`` is the mean over images of each image's class mean (MONAI's
    ``DiceMetric`` default); ``"mean_batch_channel"`` the class mean of the per-class means
    over images (smp's ``macro-imagewise``); ``"mean_all"`` weighs every defined value alike
    (torchmetrics' ``MeanIoU``). Values ``[C]`` (one image, or counts pooled over images) are
    one row; leading axes beyond ``[B, C]`` are kept by ``"none"`` and the ``*_channel``
    reductions.

    .. math::

       \mathrm{mean} = \frac{1}{|B'|} \sum_{b \in B'}
       \frac{\sum_{c \in K_b} w_c v_{bc}}{\sum_{c \in K_b} w_c}, \qquad
       K_b = \{c : v_{bc} \text{ defined}\}

    Args:
      values: ``[B, C]`` (or ``[C]``) float values, NaN where undefined.
      reduction: one of ``"none"``, ``"mean"``, ``"sum"``, ``"mean_batch"``, ``"sum_batch"``,
        ``"mean_channel"``, ``"sum_channel"``, ``"mean_all"``, ``"mean_batch_channel"``.
      include_background: ``False`` leaves class 0 out.
      classes: a sequence of class indices to keep, e.g. ``(1, 2)`` (all by default).
      class_weights: ``[C]`` non-negative weights of the classes where classes are averaged or
        summed (not with ``"none"``, ``"mean_batch"``, ``"sum_batch"``).
      return_count: also return the number of defined values behind each result (MONAI's
        ``get_not_nans``; for ``"mean"``, the images with a defined value).

    Returns:
      The reduced values (shape in the table, float like ``values``); with
      ``return_count=True``, a pair ``(value, count)`` with an int32 count of the same shape.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> nan = float("nan")
      >>> dice = jnp.array([[0.8, 0.6, nan], [0.4, nan, nan]])
      >>> print(jsl.metrics.reduce(dice, reduction="mean"))            # (0.7 + 0.4) / 2
      0.55
      >>> print(jsl.metrics.reduce(dice, reduction="mean_batch"))
      [0.6 0.6 nan]
      >>> value, count = jsl.metrics.reduce(dice, reduction="mean_all", return_count=True)
      >>> print(value, count)
      0.6 3
      >>> print(jsl.metrics.reduce(dice, reduction="mean", include_background=False))
      0.6
    """
    values = _checks.as_float_array("values", values)
    _checks.check_choice("reduction", reduction, REDUCTIONS)
    _checks.check_bool("return_count", return_count)
    value, count = _reduce(
        values,
        reduction=reduction,
        include_background=include_background,
        classes=classes,
        class_weights=class_weights,
    )
    return (value, count) if return_count else value


# ----------------------------------------------------------------------------------------------
# Means over classes and metrics of a confusion matrix.


def mean_iou(
    counts: Any,
    *,
    include_background: bool = True,
    classes: Sequence[int] | None = None,
    class_weights: ArrayLike | str | None = None,
    zero_division: ArrayLike = math.nan,
    ignore_empty: bool = False,
) -> jax.Array:
    r"""Computes the mean IoU over the classes where it is defined (foreground with one option).

    .. math::

       \mathrm{mIoU} = \frac{\sum_{c \in K} w_c \mathrm{IoU}_c}{\sum_{c \in K} w_c}, \qquad
       K = \{c \text{ kept} : TP_c + FP_c + FN_c > 0\}

    Classes absent from both labels and predictions are left out, not counted as 0 or 1 (unless
    ``zero_division`` gives them a value). On a confusion matrix pooled over a dataset this is
    the usual semantic-segmentation mIoU; ``include_background=False`` is the foreground mIoU.
    The mean runs over the class axis: on per-image counts ``[B, C]`` it gives ``[B]``.

    Args:
      counts: a confusion matrix ``[..., C, C]`` or :class:`Counts` ``[..., C]``.
      include_background: ``False`` leaves class 0 out.
      classes: a sequence of class indices to average (all by default).
      class_weights: ``[C]`` non-negative weights of the classes in the mean, or
        ``"support"`` (each class weighs its ground-truth pixels).
      zero_division: the IoU of a class absent from labels and predictions (NaN: left out).
      ignore_empty: ``True`` leaves out every class absent from the labels.

    Returns:
      ``[...]`` float32; NaN when no kept class is defined.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> m = jnp.array([[3, 1, 0], [1, 1, 0], [0, 0, 0]])   # class 2 absent: skipped
      >>> print(f"{jsl.metrics.mean_iou(m):.4f}")
      0.4667
      >>> print(f"{jsl.metrics.mean_iou(m, include_background=False):.4f}")
      0.3333
    """
    return iou(
        counts,
        reduction="mean_channel",
        include_background=include_background,
        classes=classes,
        class_weights=class_weights,
        zero_division=zero_division,
        ignore_empty=ignore_empty,
    )


def mean_dice(
    counts: Any,
    *,
    include_background: bool = True,
    classes: Sequence[int] | None = None,
    class_weights: ArrayLike | str | None = None,
    zero_division: ArrayLike = math.nan,
    ignore_empty: bool = False,
) -> jax.Array:
    r"""Computes the mean Dice over the classes where it is defined.

    .. math::

       \mathrm{mDice} = \frac{\sum_{c \in K} w_c \mathrm{Dice}_c}{\sum_{c \in K} w_c}, \qquad
       K = \{c \text{ kept} : TP_c + FP_c + FN_c > 0\}

    Args:
      counts: a confusion matrix ``[..., C, C]`` or :class:`Counts` ``[..., C]``.
      include_background: ``False`` leaves class 0 out.
      classes: a sequence of class indices to average (all by default).
      class_weights: ``[C]`` non-negative weights of the classes in the mean, or
        ``"support"`` (each class weighs its ground-truth pixels).
      zero_division: the Dice of a class absent from labels and predictions (NaN: left out).
      ignore_empty: ``True`` leaves out every class absent from the labels.

    Returns:
      ``[...]`` float32; NaN when no kept class is defined.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> m = jnp.array([[3, 1], [1, 1]])
      >>> print(f"{jsl.metrics.mean_dice(m):.4f}")
      0.6250
    """
    return dice(
        counts,
        reduction="mean_channel",
        include_background=include_background,
        classes=classes,
        class_weights=class_weights,
        zero_division=zero_division,
        ignore_empty=ignore_empty,
    )


def _matrix_floats(matrix: Any) -> _Floats:
    if isinstance(matrix, Counts):
        raise TypeError(
            "This metric needs a confusion matrix [..., C, C] (one class per pixel); got Counts."
        )
    return _float_counts(matrix)


def pixel_accuracy(matrix: ArrayLike) -> jax.Array:
    r"""Computes the fraction of counted pixels whose predicted class is right.

    .. math::

       \mathrm{acc} = \frac{\sum_c TP_c}{\sum_{r,k} M_{rk}}

    Args:
      matrix: ``[..., C, C]`` confusion matrix.

    Returns:
      ``[...]`` float32; NaN when nothing was counted.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> m = jnp.array([[3, 1], [1, 1]])
      >>> print(f"{jsl.metrics.pixel_accuracy(m):.4f}")
      0.6667
    """
    c = _matrix_floats(matrix)
    total = (c.tp + c.fp + c.fn + c.tn)[..., 0]
    return divide(jnp.sum(c.tp, axis=-1), total, empty=jnp.nan)


def frequency_weighted_iou(matrix: ArrayLike) -> jax.Array:
    r"""Computes the IoU averaged with each class weighted by its frequency in the labels.

    .. math::

       \mathrm{fwIoU} = \sum_c \frac{TP_c + FN_c}{\sum_{r,k} M_{rk}}\, \mathrm{IoU}_c

    (Long, Shelhamer & Darrell 2015). A class absent from the labels has weight 0.

    Args:
      matrix: ``[..., C, C]`` confusion matrix.

    Returns:
      ``[...]`` float32; NaN when nothing was counted.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> m = jnp.array([[3, 1], [1, 1]])
      >>> print(f"{jsl.metrics.frequency_weighted_iou(m):.4f}")   # 4/6 * 3/5 + 2/6 * 1/3
      0.5111

    References:
      Long, Shelhamer & Darrell, "Fully Convolutional Networks for Semantic Segmentation",
      CVPR 2015.
    """
    c = _matrix_floats(matrix)
    true = c.tp + c.fn
    total = jnp.sum(true, axis=-1, keepdims=True)
    frequency = divide(true, total, empty=jnp.nan)
    per_class = _iou_score(c).value
    weighted = jnp.where(true > 0, frequency * jnp.nan_to_num(per_class), 0.0)
    return jnp.where(total[..., 0] > 0, jnp.sum(weighted, axis=-1), jnp.nan)


def compute_metrics(matrix: ArrayLike) -> dict[str, jax.Array]:
    """Computes every metric of a confusion matrix that the accumulator reports.

    Args:
      matrix: ``[..., C, C]`` confusion matrix (an array or an :class:`ExactCount`).

    Returns:
      A dict with the scalars ``"pixel_accuracy"``, ``"mean_iou"``, ``"mean_dice"``,
      ``"frequency_weighted_iou"`` and the per-class ``[C]`` arrays ``"iou"``, ``"dice"``,
      ``"precision"``, ``"recall"``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> results = jsl.metrics.compute_metrics(jnp.array([[3, 1], [1, 1]]))
      >>> print(f"{results['mean_iou']:.4f}")
      0.4667
    """
    return {
        "pixel_accuracy": pixel_accuracy(matrix),
        "mean_iou": mean_iou(matrix),
        "mean_dice": mean_dice(matrix),
        "frequency_weighted_iou": frequency_weighted_iou(matrix),
        "iou": iou(matrix),
        "dice": dice(matrix),
        "precision": precision(matrix),
        "recall": recall(matrix),
    }


# ----------------------------------------------------------------------------------------------
# Streaming evaluation.


def _copies_one() -> jax.Array:
    return jnp.ones((), jnp.int32)


def _refuse_if_summed(copies: jax.Array, owner: str, results: Any) -> Any:
    """The results, or NaN everywhere (traced) / an error (concrete) after a collective sum."""
    ok = _exact.check_copies(copies, owner)
    if ok is not None:
        return jax.tree.map(
            lambda x: jnp.where(ok, x, jnp.nan) if jnp.issubdtype(x.dtype, jnp.floating) else x,
            results,
        )
    return results


@jax.tree_util.register_pytree_node_class
class ConfusionMatrixAccumulator:
    """A running confusion matrix for an evaluation loop, as an immutable pytree.

    Start with :meth:`empty`, fold in each batch with :meth:`update` (inside ``jax.jit`` or a
    Flax NNX ``nnx.jit`` eval step: the accumulator is an ordinary argument and return value),
    add accumulators of different hosts or loops with ``+``, and read the metrics with
    :meth:`compute`, or any score of the matrix (``jsl.metrics.f_beta(acc.matrix, beta=2)``,
    ``jsl.metrics.mean_iou(acc.matrix, include_background=False)``).

    Counts are exact integers past :math:`2^{31}` (to :math:`2^{63}`) without x64: the matrix
    is an :class:`ExactCount` (``dtype=jnp.int32``, the default), plain float32 (never
    overflows, exact to :math:`2^{24}`), or int64/float64 under x64.

    **Devices.** Inside ``shard_map``/``pmap``, pass ``axis_name`` to :meth:`update`: the batch's
    counts are summed over the devices once, and every device holds the same totals. Do not
    ``jax.lax.psum`` the accumulator itself: it already holds totals on every device, so a psum
    would multiply them by the device count. Such an accumulator is refused: its ``copies``
    count (1) becomes the device count, :meth:`compute` then raises (or, traced, returns NaN,
    and ``jsl.checked`` raises).

    Attributes:
      matrix: ``[C, C]`` counts, rows true class, columns predicted class.
      copies: ``[]`` int32, 1 (see above).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> @jax.jit
      ... def eval_step(acc, logits, labels):
      ...     return acc.update(logits, labels, ignore_index=255)
      >>> acc = jsl.metrics.ConfusionMatrixAccumulator.empty(3)
      >>> for seed in range(4):
      ...     logits = jax.random.normal(jax.random.key(seed), (2, 8, 8, 3))
      ...     labels = jnp.argmax(logits, axis=-1).at[:, 0].set(255)   # perfect, row 0 ignored
      ...     acc = eval_step(acc, logits, labels)
      >>> int(acc.matrix.sum()), float(acc.compute()["mean_iou"])
      (448, 1.0)
    """

    __slots__ = ("copies", "matrix")
    matrix: Any
    copies: jax.Array

    def __init__(self, matrix: Any, copies: Any = None) -> None:
        if not isinstance(matrix, ExactCount):
            # Integer counts become exact (64-bit ones stay plain under x64, as with dtype).
            host = isinstance(matrix, np.ndarray)
            array = matrix if host else jnp.asarray(matrix)
            integer = np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_
            if integer and (host or array.dtype.itemsize < 8):
                matrix = ExactCount(array)
            else:
                matrix = jnp.asarray(array)
        shape = _field_shape(matrix)
        if len(shape) != 2 or shape[0] != shape[1]:
            raise ValueError(f"`matrix` must be a confusion matrix [C, C]; got shape {shape}.")
        object.__setattr__(self, "matrix", matrix)
        object.__setattr__(self, "copies", _copies_one() if copies is None else copies)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("ConfusionMatrixAccumulator is immutable.")

    def tree_flatten(self) -> tuple[tuple[Any, Any], None]:
        return (self.matrix, self.copies), None

    @classmethod
    def tree_unflatten(cls, aux: None, children: Sequence[Any]) -> "ConfusionMatrixAccumulator":
        acc = object.__new__(cls)
        object.__setattr__(acc, "matrix", children[0])
        object.__setattr__(acc, "copies", children[1])
        return acc

    @classmethod
    def _of(cls, matrix: Any, copies: jax.Array) -> "ConfusionMatrixAccumulator":
        return cls.tree_unflatten(None, (matrix, copies))

    @classmethod
    def empty(cls, num_classes: int, *, dtype: Any = jnp.int32) -> "ConfusionMatrixAccumulator":
        """An accumulator with no pixel counted; ``int32`` (default) gives exact counts."""
        num_classes = _check_num_classes(num_classes)
        dtype = _check_count_dtype(dtype)
        if dtype == jnp.int32:
            return cls._of(ExactCount.zeros((num_classes, num_classes)), _copies_one())
        return cls._of(jnp.zeros((num_classes, num_classes), dtype), _copies_one())

    @property
    def num_classes(self) -> int:
        return _field_shape(self.matrix)[-1]

    def update(
        self,
        predictions: ArrayLike,
        labels: ArrayLike,
        *,
        ignore_index: int | None = None,
        mask: ArrayLike | None = None,
        class_axis: int = -1,
        threshold: ArrayLike = 0.0,
        axis_name: Any = None,
    ) -> "ConfusionMatrixAccumulator":
        """Returns the accumulator with one more batch counted (see :func:`confusion_matrix`).

        With ``axis_name`` the batch's counts are summed over that mapped axis (exactly, below
        :math:`2^{15}` devices) before they are added, so every device holds the totals.
        """
        exact = isinstance(self.matrix, ExactCount)
        batch = confusion_matrix(
            predictions,
            labels,
            self.num_classes,
            ignore_index=ignore_index,
            mask=mask,
            class_axis=class_axis,
            threshold=threshold,
            dtype=jnp.int32 if exact else self.matrix.dtype,
        )
        if exact:
            counted = ExactCount(batch)
            if axis_name is not None:
                counted = _exact.psum(counted, axis_name)
            return ConfusionMatrixAccumulator._of(self.matrix + counted, self.copies)
        if axis_name is not None:
            batch = jax.lax.psum(batch, axis_name)
        return ConfusionMatrixAccumulator._of(self.matrix + batch, self.copies)

    def __add__(self, other: "ConfusionMatrixAccumulator") -> "ConfusionMatrixAccumulator":
        if not isinstance(other, ConfusionMatrixAccumulator):
            return NotImplemented
        copies = jnp.maximum(self.copies, other.copies)
        return ConfusionMatrixAccumulator._of(self.matrix + other.matrix, copies)

    def compute(self) -> dict[str, jax.Array]:
        """Every metric of :func:`compute_metrics` for the pixels counted so far."""
        # One compiled program, also when called outside jit (inlined when traced).
        results = _compute_metrics_jit(self.matrix)
        return _refuse_if_summed(self.copies, "ConfusionMatrixAccumulator", results)


@jax.jit
def _compute_metrics_jit(matrix: Any) -> dict[str, jax.Array]:
    return compute_metrics(matrix)


@functools.partial(jax.jit, static_argnames="reduction")
def _finish_sums_jit(sums: Any, weights: jax.Array, reduction: str) -> dict[str, Any]:
    """``(value, count)`` of every metric's compensated sums."""
    finished = {}
    for name, s in sums.items():
        partials = _Partials(
            class_sum=s["class_sum"] + s["class_error"],
            class_count=s["class_count"],
            case_sum=s["case_sum"] + s["case_error"],
            case_count=s["case_count"],
        )
        finished[name] = _finish(partials, reduction, weights)
    return finished


def _check_metric_names(names: Any) -> tuple[str, ...]:
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise TypeError(
            f"`names` must be a sequence of metric names, e.g. ('dice', 'hd95'); got "
            f"{type(names).__name__} {names!r}."
        )
    names = tuple(names)
    if not names or not all(isinstance(name, str) and name for name in names):
        raise ValueError(f"`names` must be non-empty strings; got {names!r}.")
    if len(set(names)) != len(names):
        raise ValueError(f"`names` must not repeat a metric; got {names!r}.")
    return names


@jax.tree_util.register_pytree_node_class
class PerImageAccumulator:
    r"""Sums of per-image ``[B, C]`` metrics over an evaluation loop: exact means over images.

    Any metric with one value per image and class streams into it: the scores of this module
    (``jsl.metrics.dice(counts)``), a surface distance, a user's own. For each named metric it
    keeps, over the images seen, the sum and the number of the defined values of each class and
    the sum and number of the images' class means, with compensated (error-free) float sums, so
    that :meth:`compute` gives what :func:`reduce` gives on all the images at once, whatever
    the batching:

    .. math::

       \text{mean} = \frac{1}{|B'|} \sum_{b \in B'} \frac{\sum_{c \in K_b} w_c v_{bc}}
       {\sum_{c \in K_b} w_c}, \qquad
       \text{mean\_batch}_c = \frac{\sum_b [v_{bc} \text{ defined}]\, v_{bc}}
       {\sum_b [v_{bc} \text{ defined}]}

    **NaN and inf.** A NaN value is undefined (an empty ground truth under
    ``ignore_empty=True``, a distance between two empty masks): it adds to no sum and no count,
    and a class or image without a defined value is left out of the means, whose value is NaN
    when nothing is defined. ``±inf`` (a distance to an empty prediction) is a value: it makes
    every sum and mean that contains it infinite (NaN where +inf meets −inf), as in MONAI.

    The kept classes (``include_background``, ``classes``) and the ``class_weights`` of the
    class means are fixed by :meth:`empty`, because each image's class mean is summed as it
    arrives. Reductions with one value per image (``"none"``, ``"mean_channel"``,
    ``"sum_channel"``) are those of each batch: :func:`reduce` them there.

    **Devices.** Inside ``shard_map``/``pmap`` pass ``axis_name`` to :meth:`update`; a
    ``jax.lax.psum`` of the accumulator itself would add every device's copy of the totals and
    is refused (``copies``, as for :class:`ConfusionMatrixAccumulator`).

    Attributes:
      sums: per metric name, a dict of ``class_sum``, ``class_error`` (the compensation),
        ``class_count`` (``[C']``, the kept classes), ``case_sum``, ``case_error`` and
        ``case_count`` (``[]``).
      images: ``[]`` int32, the number of images seen.
      copies: ``[]`` int32, 1 unless the accumulator went through a collective sum.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> @jax.jit
      ... def eval_step(acc, predictions, labels):
      ...     counts = jsl.metrics.overlap_counts(predictions, labels, num_classes=3)
      ...     return acc.update({"dice": jsl.metrics.dice(counts, ignore_empty=True),
      ...                        "iou": jsl.metrics.iou(counts, ignore_empty=True)})
      >>> acc = jsl.metrics.PerImageAccumulator.empty(("dice", "iou"), num_classes=3,
      ...                                             include_background=False)
      >>> labels = jnp.array([[0, 1, 1, 2], [0, 0, 1, 1]])
      >>> for predictions in (jnp.array([[0, 1, 2, 2], [0, 0, 1, 1]]), labels):
      ...     acc = eval_step(acc, predictions, labels)
      >>> results = acc.compute()                        # per-image foreground mean, then mean
      >>> print(f"{results['dice']:.4f} {results['iou']:.4f} {int(acc.images)}")
      0.9167 0.8750 4
      >>> print(acc.compute(reduction="mean_batch")["dice"])   # per class, over images
      [0.9166667 0.8333334]
    """

    __slots__ = ("_spec", "copies", "images", "sums")
    sums: dict[str, dict[str, jax.Array]]
    images: jax.Array
    copies: jax.Array
    _spec: tuple[Any, ...]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("Create a PerImageAccumulator with PerImageAccumulator.empty(...).")

    @classmethod
    def _of(
        cls, spec: tuple[Any, ...], sums: Any, images: Any, copies: Any
    ) -> "PerImageAccumulator":
        acc = object.__new__(cls)
        for name, value in (
            ("_spec", spec),
            ("sums", sums),
            ("images", images),
            ("copies", copies),
        ):
            object.__setattr__(acc, name, value)
        return acc

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("PerImageAccumulator is immutable.")

    def tree_flatten(self) -> tuple[tuple[Any, Any, Any], tuple[Any, ...]]:
        return (self.sums, self.images, self.copies), self._spec

    @classmethod
    def tree_unflatten(
        cls, spec: tuple[Any, ...], children: Sequence[Any]
    ) -> "PerImageAccumulator":
        return cls._of(spec, *children)

    @classmethod
    def empty(
        cls,
        names: Sequence[str],
        num_classes: int,
        *,
        include_background: bool = True,
        classes: Sequence[int] | None = None,
        class_weights: Sequence[float] | None = None,
        dtype: Any = None,
    ) -> "PerImageAccumulator":
        """An accumulator for the metrics ``names``, each ``[B, num_classes]``, with no image.

        ``include_background``, ``classes`` and ``class_weights`` (static numbers) are those of
        :func:`reduce`; ``dtype`` of the sums is float32 (float64 under x64) by default.
        """
        names = _check_metric_names(names)
        num_classes = _check_num_classes(num_classes)
        keep = _selection(num_classes, include_background, classes)
        if dtype is None:
            dtype = jnp.float64 if jax.config.read("jax_enable_x64") else jnp.float32
        dtype = jnp.dtype(dtype)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(f"`dtype` must be a float dtype; got {dtype}.")
        weights = None
        if class_weights is not None:
            try:
                full = np.asarray(class_weights, np.float64)
            except (TypeError, jax.errors.TracerArrayConversionError):
                raise TypeError(
                    "`class_weights` of an accumulator must be static numbers (a list or "
                    "NumPy array), as they fix its structure."
                ) from None
            _class_weights(full.astype(np.float32), num_classes, jnp.float32)
            weights = tuple(float(full[c]) for c in keep)
        spec = (names, num_classes, keep, weights, dtype.name)
        kept = len(keep)

        def zeros() -> dict[str, jax.Array]:
            return {
                "class_sum": jnp.zeros((kept,), dtype),
                "class_error": jnp.zeros((kept,), dtype),
                "class_count": jnp.zeros((kept,), jnp.int32),
                "case_sum": jnp.zeros((), dtype),
                "case_error": jnp.zeros((), dtype),
                "case_count": jnp.zeros((), jnp.int32),
            }

        sums = {name: zeros() for name in names}
        return cls._of(spec, sums, jnp.zeros((), jnp.int32), _copies_one())

    @property
    def names(self) -> tuple[str, ...]:
        return self._spec[0]

    @property
    def num_classes(self) -> int:
        return self._spec[1]

    @property
    def classes(self) -> tuple[int, ...]:
        """The kept classes, in the order of the per-class results."""
        return self._spec[2]

    def _weights(self) -> jax.Array:
        dtype = jnp.dtype(self._spec[4])
        weights = self._spec[3]
        if weights is None:
            return jnp.ones((len(self.classes),), dtype)
        return jnp.asarray(weights, dtype)

    def update(
        self, values: Mapping[str, ArrayLike], *, axis_name: Any = None
    ) -> "PerImageAccumulator":
        """Returns the accumulator with one more batch of per-image values folded in.

        ``values`` maps every metric name to its ``[B, C]`` float values of the batch (NaN
        where undefined), or to ``[B, C']`` values of the kept classes alone when they are
        fewer than ``C`` (the surface metrics leave the background out by default, so
        ``hausdorff_distance(...)`` streams into an accumulator made with
        ``include_background=False``). With ``axis_name`` the batch's sums are added over that
        mapped axis first, so every device holds the totals.
        """
        if not isinstance(values, Mapping):
            raise TypeError(
                f"`values` must map metric names to [B, C] arrays; got {type(values).__name__}."
            )
        if set(values) != set(self.names):
            raise ValueError(
                f"`values` must hold exactly the metrics {list(self.names)}; got {list(values)}."
            )
        dtype = jnp.dtype(self._spec[4])
        weights = self._weights()
        keep = jnp.asarray(self.classes)
        batch_size = None
        sums = {}
        for name in self.names:
            array = _checks.as_float_array(f"values[{name!r}]", values[name])
            kept_only = len(self.classes) != self.num_classes
            if array.ndim != 2 or array.shape[1] not in (self.num_classes, len(self.classes)):
                also = f" or [B, {len(self.classes)}] (the kept classes)" if kept_only else ""
                raise ValueError(
                    f"`values[{name!r}]` must be [B, {self.num_classes}] per-image values{also}; "
                    f"got shape {tuple(array.shape)}."
                )
            if batch_size is not None and array.shape[0] != batch_size:
                raise ValueError(
                    f"Every metric of a batch has one row per image; `values[{name!r}]` has "
                    f"{array.shape[0]} rows, another has {batch_size}."
                )
            batch_size = array.shape[0]
            kept = array.astype(dtype)
            if array.shape[1] == self.num_classes:
                kept = jnp.take(kept, keep, axis=1)
            partials = _partials(kept, weights)
            if axis_name is not None:
                partials = jax.lax.psum(partials, axis_name)
            old = self.sums[name]
            class_sum, class_error = _exact.compensated_add(
                old["class_sum"], old["class_error"], partials.class_sum
            )
            case_sum, case_error = _exact.compensated_add(
                old["case_sum"], old["case_error"], partials.case_sum
            )
            sums[name] = {
                "class_sum": class_sum,
                "class_error": class_error,
                "class_count": old["class_count"] + partials.class_count,
                "case_sum": case_sum,
                "case_error": case_error,
                "case_count": old["case_count"] + partials.case_count,
            }
        images = jnp.asarray(batch_size, jnp.int32)
        if axis_name is not None:
            images = jax.lax.psum(images, axis_name)
        return PerImageAccumulator._of(self._spec, sums, self.images + images, self.copies)

    def __add__(self, other: "PerImageAccumulator") -> "PerImageAccumulator":
        if not isinstance(other, PerImageAccumulator):
            return NotImplemented
        if other._spec != self._spec:
            raise ValueError("Only accumulators made by the same `empty(...)` call add.")
        sums = {}
        for name in self.names:
            a, b = self.sums[name], other.sums[name]
            class_sum, class_error = _exact.compensated_add(
                a["class_sum"], a["class_error"] + b["class_error"], b["class_sum"]
            )
            case_sum, case_error = _exact.compensated_add(
                a["case_sum"], a["case_error"] + b["case_error"], b["case_sum"]
            )
            sums[name] = {
                "class_sum": class_sum,
                "class_error": class_error,
                "class_count": a["class_count"] + b["class_count"],
                "case_sum": case_sum,
                "case_error": case_error,
                "case_count": a["case_count"] + b["case_count"],
            }
        copies = jnp.maximum(self.copies, other.copies)
        return PerImageAccumulator._of(self._spec, sums, self.images + other.images, copies)

    def compute(self, *, reduction: str = "mean", return_count: bool = False) -> dict[str, Any]:
        """Each metric reduced over the images seen (a reduction of :data:`STREAMED_REDUCTIONS`:
        ``"mean"``, ``"sum"``, ``"mean_batch"``, ``"sum_batch"``, ``"mean_all"``,
        ``"mean_batch_channel"``); with ``return_count``, ``(value, count)`` pairs."""
        _checks.check_bool("return_count", return_count)
        if reduction in ("none", "mean_channel", "sum_channel"):
            raise ValueError(
                f"reduction={reduction!r} keeps one value per image, which an accumulator of "
                "sums does not hold: reduce each batch's values with jsl.metrics.reduce."
            )
        _checks.check_choice("reduction", reduction, STREAMED_REDUCTIONS)
        finished = _finish_sums_jit(self.sums, self._weights(), reduction)
        results = {
            name: (value, count) if return_count else value
            for name, (value, count) in finished.items()
        }
        return _refuse_if_summed(self.copies, "PerImageAccumulator", results)

    def __repr__(self) -> str:
        return (
            f"PerImageAccumulator(names={self.names}, num_classes={self.num_classes}, "
            f"classes={self.classes})"
        )


__all__ = [
    "GENERALIZED_DICE_REDUCTIONS",
    "REDUCTIONS",
    "STREAMED_REDUCTIONS",
    "ConfusionMatrixAccumulator",
    "Counts",
    "ExactCount",
    "PerImageAccumulator",
    "accuracy",
    "average_surface_distance",
    "balanced_accuracy",
    "compute_metrics",
    "confusion_matrix",
    "dice",
    "distance_transform",
    "f_beta",
    "fall_out",
    "false_discovery_rate",
    "false_omission_rate",
    "fowlkes_mallows",
    "frequency_weighted_iou",
    "generalized_dice",
    "hausdorff_distance",
    "informedness",
    "iou",
    "markedness",
    "mcc",
    "mean_dice",
    "mean_iou",
    "miss_rate",
    "negative_predictive_value",
    "overlap_counts",
    "pixel_accuracy",
    "precision",
    "prevalence_threshold",
    "recall",
    "reduce",
    "specificity",
    "surface_dice",
]
