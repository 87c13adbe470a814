r"""Hard segmentation metrics from a confusion matrix: IoU, Dice, accuracy, precision, recall.

Losses are soft and differentiable; evaluation counts pixels of the arg-max prediction. Every
metric here is a function of the confusion matrix :math:`M` (rows: true class, columns: predicted
class, scikit-learn's convention), with per class :math:`c`

.. math::

   TP_c = M_{cc}, \quad FP_c = \sum_{r} M_{rc} - TP_c, \quad FN_c = \sum_{k} M_{ck} - TP_c.

Confusion matrices add: sum them over batches (or keep a :class:`ConfusionMatrixAccumulator`)
and over devices (``jax.lax.psum`` or ``axis_name``), then compute the metrics once at the end.
Averaging per-batch IoUs instead would weigh small batches and empty classes wrongly.

A class that appears in neither the labels nor the predictions has no defined IoU, Dice,
precision or recall: per-class outputs hold NaN for it, and the means (:func:`mean_iou`,
:func:`mean_dice`) skip it, like mmsegmentation's ``nanmean`` (torchmetrics' ``JaccardIndex``
counts it as 0 instead, which lowers the mean for every class a dataset split happens to lack).
A class present in the labels but never predicted scores 0. Functions return NaN when nothing
was counted at all.

Everything runs under ``jax.jit`` with static shapes: the matrix comes from one scatter-add over
``label * C + prediction`` (linear in the number of pixels), not from Python loops.
"""

import dataclasses
import numbers
from typing import Any

import jax
import jax.numpy as jnp

from jaxseg_losses import _checks
from jaxseg_losses._core import divide
from jaxseg_losses.surface import (
    average_surface_distance,
    distance_transform,
    hausdorff_distance,
    surface_dice,
)

ArrayLike = jax.typing.ArrayLike

_COUNT_DTYPES = ("int32", "int64", "float32", "float64")


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

    Counts are computed per call in int32 and returned in ``dtype``. Accumulated int32 counts
    are exact up to :math:`2^{31} - 1 \approx 2.1 \cdot 10^9` per cell (about 1,000 images of
    2048×1024 pixels all in one cell); float32 never overflows, is exact up to :math:`2^{24}`
    per cell and beyond that adds each batch with a relative rounding error of at most
    :math:`2^{-24}`; ``int64``/``float64`` need ``jax_enable_x64``.

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
            f"`labels` must be integer class indices; got dtype {labels.dtype}. Take the "
            "arg-max of one-hot targets first."
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
# Metrics from a confusion matrix.


def _as_matrix(matrix: ArrayLike) -> jax.Array:
    matrix = jnp.asarray(matrix)
    if matrix.ndim < 2 or matrix.shape[-1] != matrix.shape[-2]:
        raise ValueError(
            f"`matrix` must be a confusion matrix of shape [..., C, C]; got {tuple(matrix.shape)}."
        )
    if not (
        jnp.issubdtype(matrix.dtype, jnp.integer) or jnp.issubdtype(matrix.dtype, jnp.floating)
    ):
        raise TypeError(f"`matrix` must hold integer or float counts; got {matrix.dtype}.")
    wide = matrix.dtype.itemsize == 8
    return matrix.astype(jnp.float64 if wide else jnp.float32)


def _counts(matrix: ArrayLike) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(TP, true count, predicted count)`` per class, ``[..., C]`` floats."""
    m = _as_matrix(matrix)
    tp = jnp.diagonal(m, axis1=-2, axis2=-1)
    return tp, jnp.sum(m, axis=-1), jnp.sum(m, axis=-2)


def _nan_ratio(numerator: jax.Array, denominator: jax.Array) -> jax.Array:
    """``numerator / denominator``, NaN where the denominator is 0 (undefined, not 0 or 1)."""
    return divide(numerator, denominator, empty=jnp.nan)


def iou(matrix: ArrayLike) -> jax.Array:
    r"""Computes the IoU (Jaccard index) of each class from a confusion matrix.

    .. math::

       \mathrm{IoU}_c = \frac{TP_c}{TP_c + FP_c + FN_c}

    Args:
      matrix: ``[..., C, C]`` confusion matrix (rows true, columns predicted).

    Returns:
      ``[..., C]`` float32 IoUs; NaN for a class absent from both labels and predictions.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> m = jnp.array([[3, 1, 0], [1, 1, 0], [0, 0, 0]])
      >>> print(jsl.metrics.iou(m))
      [0.6        0.33333334        nan]
    """
    tp, true, predicted = _counts(matrix)
    return _nan_ratio(tp, true + predicted - tp)


def dice(matrix: ArrayLike) -> jax.Array:
    r"""Computes the Dice coefficient (F1 score) of each class from a confusion matrix.

    .. math::

       \mathrm{Dice}_c = \frac{2\,TP_c}{2\,TP_c + FP_c + FN_c}

    Args:
      matrix: ``[..., C, C]`` confusion matrix.

    Returns:
      ``[..., C]`` float32 Dice scores; NaN for a class absent from labels and predictions.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> m = jnp.array([[3, 1], [1, 1]])
      >>> print(jsl.metrics.dice(m))
      [0.75 0.5 ]
    """
    tp, true, predicted = _counts(matrix)
    return _nan_ratio(2.0 * tp, true + predicted)


def precision(matrix: ArrayLike) -> jax.Array:
    r"""Computes the precision of each class: the fraction of its predictions that are right.

    .. math::

       \mathrm{precision}_c = \frac{TP_c}{TP_c + FP_c}

    Args:
      matrix: ``[..., C, C]`` confusion matrix.

    Returns:
      ``[..., C]`` float32; NaN for a class never predicted.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> m = jnp.array([[3, 1], [1, 1]])
      >>> print(jsl.metrics.precision(m))
      [0.75 0.5 ]
    """
    tp, _, predicted = _counts(matrix)
    return _nan_ratio(tp, predicted)


def recall(matrix: ArrayLike) -> jax.Array:
    r"""Computes the recall (per-class accuracy) of each class: the fraction of it found.

    .. math::

       \mathrm{recall}_c = \frac{TP_c}{TP_c + FN_c}

    Args:
      matrix: ``[..., C, C]`` confusion matrix.

    Returns:
      ``[..., C]`` float32; NaN for a class absent from the labels.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> m = jnp.array([[3, 0], [1, 1]])
      >>> print(jsl.metrics.recall(m))
      [1.  0.5]
    """
    tp, true, _ = _counts(matrix)
    return _nan_ratio(tp, true)


def mean_iou(matrix: ArrayLike) -> jax.Array:
    r"""Computes the mean IoU over the classes present in the labels or the predictions.

    .. math::

       \mathrm{mIoU} = \frac{1}{|K|} \sum_{c \in K} \mathrm{IoU}_c, \qquad
       K = \{c : TP_c + FP_c + FN_c > 0\}

    Classes absent from both labels and predictions are excluded, not counted as 0 or 1.

    Args:
      matrix: ``[..., C, C]`` confusion matrix.

    Returns:
      ``[...]`` float32; NaN when nothing was counted.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> m = jnp.array([[3, 1, 0], [1, 1, 0], [0, 0, 0]])   # class 2 absent: skipped
      >>> print(f"{jsl.metrics.mean_iou(m):.4f}")
      0.4667
    """
    return _nanmean(iou(matrix))


def mean_dice(matrix: ArrayLike) -> jax.Array:
    r"""Computes the mean Dice over the classes present in the labels or the predictions.

    .. math::

       \mathrm{mDice} = \frac{1}{|K|} \sum_{c \in K} \mathrm{Dice}_c, \qquad
       K = \{c : TP_c + FP_c + FN_c > 0\}

    Args:
      matrix: ``[..., C, C]`` confusion matrix.

    Returns:
      ``[...]`` float32; NaN when nothing was counted.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> m = jnp.array([[3, 1], [1, 1]])
      >>> print(f"{jsl.metrics.mean_dice(m):.4f}")
      0.6250
    """
    return _nanmean(dice(matrix))


def _nanmean(values: jax.Array) -> jax.Array:
    present = ~jnp.isnan(values)
    count = jnp.sum(present, axis=-1)
    total = jnp.sum(jnp.where(present, values, 0.0), axis=-1)
    return jnp.where(count > 0, total / jnp.maximum(count, 1).astype(total.dtype), jnp.nan)


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
    tp, true, _ = _counts(matrix)
    return _nan_ratio(jnp.sum(tp, axis=-1), jnp.sum(true, axis=-1))


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
    _, true, _ = _counts(matrix)
    total = jnp.sum(true, axis=-1, keepdims=True)
    frequency = _nan_ratio(true, total)
    weighted = jnp.where(true > 0, frequency * jnp.nan_to_num(iou(matrix)), 0.0)
    return jnp.where(total[..., 0] > 0, jnp.sum(weighted, axis=-1), jnp.nan)


def compute_metrics(matrix: ArrayLike) -> dict[str, jax.Array]:
    """Computes every metric of this module from one confusion matrix.

    Args:
      matrix: ``[..., C, C]`` confusion matrix.

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


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ConfusionMatrixAccumulator:
    """A running confusion matrix for an evaluation loop, as an immutable pytree.

    Start with :meth:`empty`, fold in each batch with :meth:`update` (inside ``jax.jit`` or a
    Flax NNX ``nnx.jit`` eval step: the accumulator is an ordinary argument and return value),
    add accumulators from different hosts or loops with ``+``, sum over devices with
    ``jax.lax.psum(acc, axis_name)``, and read the metrics with :meth:`compute`.

    Attributes:
      matrix: ``[C, C]`` counts, rows true class, columns predicted class.

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

    matrix: jax.Array

    @classmethod
    def empty(cls, num_classes: int, *, dtype: Any = jnp.int32) -> "ConfusionMatrixAccumulator":
        """An accumulator with no pixel counted; ``dtype`` as in :func:`confusion_matrix`."""
        num_classes = _check_num_classes(num_classes)
        return cls(matrix=jnp.zeros((num_classes, num_classes), _check_count_dtype(dtype)))

    @property
    def num_classes(self) -> int:
        return self.matrix.shape[-1]

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
        """Returns the accumulator with one more batch counted (see :func:`confusion_matrix`)."""
        batch = confusion_matrix(
            predictions,
            labels,
            self.num_classes,
            ignore_index=ignore_index,
            mask=mask,
            class_axis=class_axis,
            threshold=threshold,
            axis_name=axis_name,
            dtype=self.matrix.dtype,
        )
        return ConfusionMatrixAccumulator(matrix=self.matrix + batch)

    def __add__(self, other: "ConfusionMatrixAccumulator") -> "ConfusionMatrixAccumulator":
        if not isinstance(other, ConfusionMatrixAccumulator):
            return NotImplemented
        return ConfusionMatrixAccumulator(matrix=self.matrix + other.matrix)

    def compute(self) -> dict[str, jax.Array]:
        """Every metric of :func:`compute_metrics` for the pixels counted so far."""
        return compute_metrics(self.matrix)


__all__ = [
    "ConfusionMatrixAccumulator",
    "average_surface_distance",
    "compute_metrics",
    "confusion_matrix",
    "dice",
    "distance_transform",
    "frequency_weighted_iou",
    "hausdorff_distance",
    "iou",
    "mean_dice",
    "mean_iou",
    "pixel_accuracy",
    "precision",
    "recall",
    "surface_dice",
]
