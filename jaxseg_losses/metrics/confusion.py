r"""The confusion matrix ``[C, C]`` and the metrics of one: mean IoU and Dice, pixel accuracy,
frequency-weighted IoU.

:func:`confusion_matrix` counts pixels by true and predicted class (rows true, columns
predicted, scikit-learn's convention); every score of counts also reads such a matrix, and
:func:`compute_metrics` gathers what a :class:`ConfusionMatrixAccumulator` reports.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxseg_losses._core import checks as _checks
from jaxseg_losses._core.docs import documented, set_doc
from jaxseg_losses._core.engine import divide
from jaxseg_losses._core.signatures import bind, give_signature
from jaxseg_losses.metrics._prepare import (
    check_count_dtype,
    counted_pixels,
    predicted_labels,
)
from jaxseg_losses.metrics._scoring import FloatCounts, float_counts
from jaxseg_losses.metrics.counts import Counts
from jaxseg_losses.metrics.overlap_scores import dice, iou
from jaxseg_losses.metrics.rate_scores import precision, recall

ArrayLike = jax.typing.ArrayLike


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
    num_classes = check_matrix_classes(num_classes)
    dtype = check_count_dtype(dtype)
    labels = jnp.asarray(labels)
    if not (jnp.issubdtype(labels.dtype, jnp.integer) or labels.dtype == jnp.bool_):
        raise TypeError(
            f"`labels` must be integer class indices; got dtype {labels.dtype}. For one-hot or "
            "multi-label targets [B, *spatial, C] use jsl.metrics.overlap_counts, which takes "
            "them as boolean (or 0/1) arrays."
        )
    label_shape = tuple(labels.shape)
    labels = labels.astype(jnp.int32)
    counted = counted_pixels(mask, label_shape, labels, ignore_index)
    predicted = predicted_labels(
        jnp.asarray(predictions), label_shape, num_classes, class_axis, threshold, counted
    )
    valid = (labels >= 0) & (labels < num_classes) & (predicted >= 0) & (predicted < num_classes)
    _checks.check_values(
        jnp.all(valid | ~counted),
        f"`labels` and `predictions` must lie in [0, {num_classes}) (labels may equal "
        f"ignore_index={ignore_index}); found a value out of range",
    )
    valid = valid & counted
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


def check_matrix_classes(num_classes: Any) -> int:
    """The ``num_classes`` of a confusion matrix: at least 2.

    One class has a single cell, every pixel in it, which is not what a binary problem needs:
    elsewhere (``overlap_counts``, one-channel scores) one class is the foreground of a binary
    problem, whose confusion matrix is 2 x 2.
    """
    num_classes = _checks.check_num_classes(num_classes)
    if num_classes < 2:
        raise ValueError(
            f"A confusion matrix needs num_classes >= 2; got {num_classes}. A binary problem "
            "(background and foreground, integer labels 0 and 1, or one-channel scores) has "
            "num_classes=2; overlap_counts(..., num_classes=1) counts its foreground alone."
        )
    return num_classes


def _class_mean(
    name: str, score: Callable[..., Any], label: str, doc: str
) -> Callable[..., jax.Array]:
    """The mean of ``score`` (``label`` in its docs) over the classes where it is defined (its
    ``"mean_channel"`` reduction), with every other option of ``score`` but ``return_count``."""
    options = inspect.signature(score).parameters.values()
    kept = [p for p in options if p.name not in ("reduction", "return_count")]
    signature = inspect.Signature(kept, return_annotation="jax.Array")

    def mean(*args: Any, **kwargs: Any) -> jax.Array:
        return score(**bind(name, signature, *args, **kwargs), reduction="mean_channel")

    return set_doc(
        give_signature(mean, signature, name), doc, {"class mean args": _class_mean_args(label)}
    )


def _class_mean_args(label: str) -> str:
    """The ``Args`` of a class mean of the score ``label``."""
    return f"""\
counts: a confusion matrix ``[..., C, C]`` or :class:`Counts` ``[..., C]``.
include_background: ``False`` leaves class 0 out.
classes: a sequence of class indices to average (all by default).
class_weights: ``[C]`` non-negative weights of the classes in the mean, or
  ``"support"`` (each class weighs its ground-truth pixels).
zero_division: the {label} of a class absent from labels and predictions (NaN: left out).
ignore_empty: ``True`` leaves out every class absent from the labels."""


mean_iou = _class_mean(
    "mean_iou",
    iou,
    "IoU",
    r"""Computes the mean IoU over the classes where it is defined (foreground with one option).

    .. math::

       \mathrm{mIoU} = \frac{\sum_{c \in K} w_c \mathrm{IoU}_c}{\sum_{c \in K} w_c}, \qquad
       K = \{c \text{ kept} : TP_c + FP_c + FN_c > 0\}

    Classes absent from both labels and predictions are left out, not counted as 0 or 1 (unless
    ``zero_division`` gives them a value). On a confusion matrix pooled over a dataset this is
    the usual semantic-segmentation mIoU; ``include_background=False`` is the foreground mIoU.
    The mean runs over the class axis: on per-image counts ``[B, C]`` it gives ``[B]``.

    Args:
      <class mean args>

    <class mean returns>

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> m = jnp.array([[3, 1, 0], [1, 1, 0], [0, 0, 0]])   # class 2 absent: skipped
      >>> print(f"{jsl.metrics.mean_iou(m):.4f}")
      0.4667
      >>> print(f"{jsl.metrics.mean_iou(m, include_background=False):.4f}")
      0.3333
    """,
)

mean_dice = _class_mean(
    "mean_dice",
    dice,
    "Dice",
    r"""Computes the mean Dice over the classes where it is defined.

    .. math::

       \mathrm{mDice} = \frac{\sum_{c \in K} w_c \mathrm{Dice}_c}{\sum_{c \in K} w_c}, \qquad
       K = \{c \text{ kept} : TP_c + FP_c + FN_c > 0\}

    Args:
      <class mean args>

    <class mean returns>

    Examples:
      <matrix example setup>
      >>> print(f"{jsl.metrics.mean_dice(m):.4f}")
      0.6250
    """,
)


def _matrix_floats(matrix: Any) -> FloatCounts:
    if isinstance(matrix, Counts):
        raise TypeError(
            "This metric needs a confusion matrix [..., C, C] (one class per pixel); got Counts."
        )
    return float_counts(matrix)


@documented
def pixel_accuracy(matrix: ArrayLike) -> jax.Array:
    r"""Computes the fraction of counted pixels whose predicted class is right.

    .. math::

       \mathrm{acc} = \frac{\sum_c TP_c}{\sum_{r,k} M_{rk}}

    Args:
      matrix: ``[..., C, C]`` confusion matrix.

    <matrix returns>

    Examples:
      <matrix example setup>
      >>> print(f"{jsl.metrics.pixel_accuracy(m):.4f}")
      0.6667
    """
    c = _matrix_floats(matrix)
    total = (c.tp + c.fp + c.fn + c.tn)[..., 0]
    return divide(jnp.sum(c.tp, axis=-1), total, empty=jnp.nan)


@documented
def frequency_weighted_iou(matrix: ArrayLike) -> jax.Array:
    r"""Computes the IoU averaged with each class weighted by its frequency in the labels.

    .. math::

       \mathrm{fwIoU} = \sum_c \frac{TP_c + FN_c}{\sum_{r,k} M_{rk}}\, \mathrm{IoU}_c

    (Long, Shelhamer & Darrell 2015). A class absent from the labels has weight 0.

    Args:
      matrix: ``[..., C, C]`` confusion matrix.

    <matrix returns>

    Examples:
      <matrix example setup>
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
    per_class = iou(matrix)
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


__all__ = [
    "compute_metrics",
    "confusion_matrix",
    "frequency_weighted_iou",
    "mean_dice",
    "mean_iou",
    "pixel_accuracy",
]
