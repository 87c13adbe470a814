r"""Scores that combine the rates of the confusion table, from counts: accuracy, balanced
accuracy, informedness, markedness, Fowlkes–Mallows, prevalence threshold and MCC.

Each is one definition of the float counts of each class (a one-vs-rest decision); its options
(``reduction``, ``zero_division``, ``ignore_empty``, ...) are those of every score.
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxseg_losses.metrics._scoring import FloatCounts, Score, either, ratio, score_function
from jaxseg_losses.metrics.rate_scores import (
    for_score,
    fpr_score,
    ppv_score,
    tnr_score,
    tpr_score,
)


@score_function
def accuracy(c: FloatCounts) -> Score:
    r"""Computes the accuracy of each class's one-vs-rest decision: pixels decided right.

    .. math::

       \mathrm{accuracy} = \frac{TP + TN}{TP + FP + FN + TN}

    (:func:`pixel_accuracy` is the multi-class accuracy of a confusion matrix.)

    Args:
      <score args>

    <score returns>

    Examples:
      <score example setup>
      >>> print(jsl.metrics.accuracy(jnp.array([[3, 0], [1, 1]])))
      [0.8 0.8]
    """
    return ratio(c.tp + c.tn, c.tp + c.fp + c.fn + c.tn)


@score_function
def balanced_accuracy(c: FloatCounts) -> Score:
    r"""Computes the balanced accuracy of each class: the mean of recall and specificity.

    .. math::

       \mathrm{BA} = \tfrac12 \left(\frac{TP}{TP + FN} + \frac{TN}{TN + FP}\right)

    Undefined when the class or its complement is absent from the labels.

    Args:
      <score args>

    <score returns>

    Examples:
      <score example setup>
      >>> print(jsl.metrics.balanced_accuracy(jnp.array([[3, 0], [1, 1]])))
      [0.75 0.75]
    """
    tpr, tnr = tpr_score(c), tnr_score(c)
    return either(tpr, tnr, (tpr.value + tnr.value) / 2.0)


@score_function
def informedness(c: FloatCounts) -> Score:
    r"""Computes the informedness (Youden's J, bookmaker informedness) of each class.

    .. math::

       \mathrm{BM} = \frac{TP}{TP + FN} + \frac{TN}{TN + FP} - 1

    Args:
      <score args>

    <score returns>

    Examples:
      <score example setup>
      >>> print(jsl.metrics.informedness(jnp.array([[3, 1], [1, 3]])))
      [0.5 0.5]

    References:
      Youden, "Index for rating diagnostic tests", Cancer 1950.
    """
    # TPR - FPR: TPR + TNR - 1 in floats loses a rate below float32's epsilon to cancellation.
    tpr, fpr = tpr_score(c), fpr_score(c)
    return either(tpr, fpr, tpr.value - fpr.value)


@score_function
def markedness(c: FloatCounts) -> Score:
    r"""Computes the markedness (Δp) of each class: PPV plus NPV minus one.

    .. math::

       \mathrm{MK} = \frac{TP}{TP + FP} + \frac{TN}{TN + FN} - 1

    Args:
      <score args>

    <score returns>

    Examples:
      <score example setup>
      >>> print(jsl.metrics.markedness(jnp.array([[3, 1], [1, 3]])))
      [0.5 0.5]

    References:
      Powers, "Evaluation: from precision, recall and F-measure to ROC, informedness,
      markedness and correlation", Journal of Machine Learning Technologies 2011.
    """
    # PPV - FOR, the same value without the cancellation of PPV + NPV - 1.
    ppv, false_omission = ppv_score(c), for_score(c)
    return either(ppv, false_omission, ppv.value - false_omission.value)


@score_function
def fowlkes_mallows(c: FloatCounts) -> Score:
    r"""Computes the Fowlkes–Mallows index of each class: the geometric mean of PPV and TPR.

    .. math::

       \mathrm{FM} = \sqrt{\frac{TP}{TP + FP} \cdot \frac{TP}{TP + FN}}

    Args:
      <score args>

    <score returns>

    Examples:
      <score example setup>
      >>> print(jsl.metrics.fowlkes_mallows(jnp.array([[3, 1], [1, 3]])))
      [0.75 0.75]

    References:
      Fowlkes & Mallows, "A method for comparing two hierarchical clusterings", JASA 1983.
    """
    ppv, tpr = ppv_score(c), tpr_score(c)
    # A root of each rate: their product can fall below float32's smallest normal number.
    return either(ppv, tpr, jnp.sqrt(ppv.value) * jnp.sqrt(tpr.value))


@score_function
def prevalence_threshold(c: FloatCounts) -> Score:
    r"""Computes the prevalence threshold of each class (Balayla's screening threshold).

    The prevalence below which the positive predictive value falls steeply:

    .. math::

       \mathrm{PT} = \frac{\sqrt{\mathrm{TPR}\,(1 - \mathrm{TNR})} + \mathrm{TNR} - 1}
       {\mathrm{TPR} + \mathrm{TNR} - 1}
       = \frac{\sqrt{\mathrm{FPR}}}{\sqrt{\mathrm{TPR}} + \sqrt{\mathrm{FPR}}}

    computed in the second form, with :math:`\mathrm{FPR} = FP / (FP + TN)` from the counts
    (no cancellation at extreme counts).

    Undefined where the informedness :math:`\mathrm{TPR} + \mathrm{TNR} - 1` is 0 or a rate is.

    Args:
      <score args>

    <score returns>

    Examples:
      <score example setup>
      >>> print(jsl.metrics.prevalence_threshold(jnp.array([[3, 1], [1, 3]])).round(4))
      [0.366 0.366]

    References:
      Balayla, "Prevalence threshold (φe) and the geometry of screening curves", PLoS ONE 2020.
    """
    tpr, fpr = tpr_score(c), fpr_score(c)
    # MONAI's form (sqrt(TPR (1 - TNR)) + TNR - 1) / (TPR + TNR - 1) is, with FPR = 1 - TNR
    # taken from the counts, (sqrt(TPR FPR) - FPR) / (TPR - FPR); dividing out
    # sqrt(TPR) - sqrt(FPR) leaves a sum of positive terms, free of cancellation. Still
    # undefined where MONAI's denominator is 0 (TPR = FPR).
    root_tpr, root_fpr = jnp.sqrt(tpr.value), jnp.sqrt(fpr.value)
    score = ratio(root_fpr, root_tpr + root_fpr)
    undefined = score.undefined | (tpr.value == fpr.value) | tpr.undefined | fpr.undefined
    return Score(jnp.where(undefined, jnp.nan, score.value), undefined)


@score_function
def mcc(c: FloatCounts) -> Score:
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
      <score example setup>
      >>> print(jsl.metrics.mcc(jnp.array([[3, 1], [1, 3]])))
      [0.5 0.5]

    References:
      Matthews, "Comparison of the predicted and observed secondary structure of T4 phage
      lysozyme", Biochimica et Biophysica Acta 1975.
    """
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
    return Score(value, undefined)


__all__ = [
    "accuracy",
    "balanced_accuracy",
    "fowlkes_mallows",
    "informedness",
    "markedness",
    "mcc",
    "prevalence_threshold",
]
