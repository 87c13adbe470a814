r"""Overlap scores of counts: IoU, Dice, F-beta, and the generalized Dice of each image.

Each score is one definition of the float counts (see :func:`overlap_counts`); its options
(``reduction``, ``zero_division``, ``ignore_empty``, ...) are those of every score.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from jaxseg_losses._core import checks as _checks
from jaxseg_losses._core.classes import generalized_dice_weights
from jaxseg_losses._core.engine import divide
from jaxseg_losses.metrics._reduction import checked_class_weights, reduce_values, selected_classes
from jaxseg_losses.metrics._scoring import FloatCounts, Score, float_counts, ratio, score_function

ArrayLike = jax.typing.ArrayLike

# One score per image, its classes already combined: only images are left to reduce.
GENERALIZED_DICE_REDUCTIONS = ("none", "mean", "sum")


@score_function
def iou(c: FloatCounts) -> Score:
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
      <score example setup>
      >>> m = jnp.array([[3, 1, 0], [1, 1, 0], [0, 0, 0]])
      >>> print(jsl.metrics.iou(m))
      [0.6        0.33333334        nan]
      >>> print(jsl.metrics.iou(m, include_background=False, zero_division=1.0))
      [0.33333334 1.        ]

    References:
      Jaccard, "The distribution of the flora in the alpine zone", New Phytologist 1912.
    """
    return ratio(c.tp, c.tp + c.fp + c.fn)


@score_function
def dice(c: FloatCounts) -> Score:
    r"""Computes the Dice coefficient (F1 score) of each class from counts.

    Twice the overlap over the sum of the two sizes; :math:`D = 2J / (1 + J)` of the IoU
    :math:`J`, so it ranks like the IoU but scores partial overlaps higher.

    .. math::

       \mathrm{Dice} = \frac{2\,TP}{2\,TP + FP + FN}

    Args:
      <score args>

    <score returns>

    Examples:
      <matrix example setup>
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
    return ratio(2.0 * c.tp, 2.0 * c.tp + c.fp + c.fn)


@score_function
def f_beta(c: FloatCounts, *, beta: ArrayLike = 1.0) -> Score:
    r"""Computes the F-beta score of each class: recall weighted beta times as much as precision.

    .. math::

       F_\beta = \frac{(1 + \beta^2)\, TP}{(1 + \beta^2)\, TP + \beta^2 FN + FP}

    :math:`\beta = 1` is the Dice/F1 score, :math:`\beta = 0` the precision.

    Args:
      <score args>
      beta: :math:`\beta \ge 0` (a traced value works).

    <score returns>

    Examples:
      <matrix example setup>
      >>> print(jsl.metrics.f_beta(m, beta=2.0))
      [0.75 0.5 ]

    References:
      van Rijsbergen, "Information Retrieval", 2nd ed., 1979 (ch. 7).
    """
    _checks.check_nonnegative("beta", beta)
    b2 = jnp.square(jnp.asarray(beta, c.tp.dtype))
    weighted = (1.0 + b2) * c.tp
    return ratio(weighted, weighted + b2 * c.fn + c.fp)


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
    floats = float_counts(counts)
    if floats.tp.ndim == 0:
        raise ValueError("`counts` need a class axis to combine; got counts of shape ().")
    num_classes = floats.tp.shape[-1]
    keep = selected_classes(num_classes, include_background, classes)
    tp, fp, fn = (jnp.take(x, jnp.asarray(keep), axis=-1) for x in floats[:3])
    true = tp + fn
    weights = generalized_dice_weights(true, weight_type)
    if class_weights is not None:
        factors = checked_class_weights(class_weights, num_classes, tp.dtype)
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
    result, count = reduce_values(
        value[..., None],
        reduction=reduction,
        include_background=True,
        classes=None,
        class_weights=None,
    )
    if reduction == "none":
        result, count = result[..., 0], count[..., 0]
    return (result, count) if return_count else result


__all__ = ["GENERALIZED_DICE_REDUCTIONS", "dice", "f_beta", "generalized_dice", "iou"]
