r"""The rates of the confusion table, from counts: precision, recall, specificity, NPV and
their complements (miss rate, fall-out, false discovery and false omission rates).

Each is one ratio of the float counts of each class; its options (``reduction``,
``zero_division``, ``ignore_empty``, ...) are those of every score. The definitions of the eight
rates (``tpr_score``, ``fpr_score``, ``for_score``, ...; not exported) are shared with the
composite scores, which combine them; a complement is always its own ratio of counts, never
``1 - rate``.
"""

from __future__ import annotations

from jaxseg_losses.metrics._scoring import FloatCounts, Score, ratio, score_function


# The four rates, which the composite scores combine too.
def tpr_score(c: FloatCounts) -> Score:
    """The true positive rate (recall)."""
    return ratio(c.tp, c.tp + c.fn)


def tnr_score(c: FloatCounts) -> Score:
    """The true negative rate (specificity)."""
    return ratio(c.tn, c.tn + c.fp)


def ppv_score(c: FloatCounts) -> Score:
    """The positive predictive value (precision)."""
    return ratio(c.tp, c.tp + c.fp)


def npv_score(c: FloatCounts) -> Score:
    """The negative predictive value."""
    return ratio(c.tn, c.tn + c.fn)


# Their complements, from the counts (1 - rate in floats cancels when the rate is near 1).
def fnr_score(c: FloatCounts) -> Score:
    """The false negative rate (miss rate)."""
    return ratio(c.fn, c.tp + c.fn)


def fpr_score(c: FloatCounts) -> Score:
    """The false positive rate (fall-out)."""
    return ratio(c.fp, c.fp + c.tn)


def fdr_score(c: FloatCounts) -> Score:
    """The false discovery rate."""
    return ratio(c.fp, c.fp + c.tp)


def for_score(c: FloatCounts) -> Score:
    """The false omission rate."""
    return ratio(c.fn, c.fn + c.tn)


@score_function
def precision(c: FloatCounts) -> Score:
    r"""Computes the precision (positive predictive value) of each class: predictions right.

    .. math::

       \mathrm{precision} = \frac{TP}{TP + FP}

    Undefined for a class never predicted.

    Args:
      <score args>

    <score returns>

    Examples:
      <score example setup>
      >>> print(jsl.metrics.precision(jnp.array([[3, 1], [1, 1]])))
      [0.75 0.5 ]
    """
    return ppv_score(c)


@score_function
def recall(c: FloatCounts) -> Score:
    r"""Computes the recall (sensitivity, hit rate, TPR) of each class: the fraction found.

    .. math::

       \mathrm{recall} = \frac{TP}{TP + FN}

    Undefined for a class absent from the labels.

    Args:
      <score args>

    <score returns>

    Examples:
      <score example setup>
      >>> print(jsl.metrics.recall(jnp.array([[3, 0], [1, 1]])))
      [1.  0.5]
    """
    return tpr_score(c)


@score_function
def specificity(c: FloatCounts) -> Score:
    r"""Computes the specificity (selectivity, TNR) of each class: negatives left negative.

    .. math::

       \mathrm{specificity} = \frac{TN}{TN + FP}

    Args:
      <score args>

    <score returns>

    Examples:
      <score example setup>
      >>> print(jsl.metrics.specificity(jnp.array([[3, 0], [1, 1]])))
      [0.5 1. ]
    """
    return tnr_score(c)


@score_function
def negative_predictive_value(c: FloatCounts) -> Score:
    r"""Computes the negative predictive value (NPV) of each class: negative calls right.

    .. math::

       \mathrm{NPV} = \frac{TN}{TN + FN}

    Args:
      <score args>

    <score returns>

    Examples:
      <score example setup>
      >>> print(jsl.metrics.negative_predictive_value(jnp.array([[3, 0], [1, 1]])))
      [1.   0.75]
    """
    return npv_score(c)


@score_function
def miss_rate(c: FloatCounts) -> Score:
    r"""Computes the miss rate (false negative rate) of each class: the fraction missed.

    .. math::

       \mathrm{FNR} = \frac{FN}{TP + FN} = 1 - \mathrm{recall}

    Args:
      <score args>

    <score returns>

    Examples:
      <score example setup>
      >>> print(jsl.metrics.miss_rate(jnp.array([[3, 0], [1, 1]])))
      [0.  0.5]
    """
    return fnr_score(c)


@score_function
def fall_out(c: FloatCounts) -> Score:
    r"""Computes the fall-out (false positive rate) of each class: negatives called positive.

    .. math::

       \mathrm{FPR} = \frac{FP}{FP + TN} = 1 - \mathrm{specificity}

    Args:
      <score args>

    <score returns>

    Examples:
      <score example setup>
      >>> print(jsl.metrics.fall_out(jnp.array([[3, 0], [1, 1]])))
      [0.5 0. ]
    """
    return fpr_score(c)


@score_function
def false_discovery_rate(c: FloatCounts) -> Score:
    r"""Computes the false discovery rate of each class: the fraction of its predictions wrong.

    .. math::

       \mathrm{FDR} = \frac{FP}{FP + TP} = 1 - \mathrm{precision}

    Args:
      <score args>

    <score returns>

    Examples:
      <score example setup>
      >>> print(jsl.metrics.false_discovery_rate(jnp.array([[3, 0], [1, 1]])))
      [0.25 0.  ]
    """
    return fdr_score(c)


@score_function
def false_omission_rate(c: FloatCounts) -> Score:
    r"""Computes the false omission rate of each class: the fraction of negative calls wrong.

    .. math::

       \mathrm{FOR} = \frac{FN}{FN + TN} = 1 - \mathrm{NPV}

    Args:
      <score args>

    <score returns>

    Examples:
      <score example setup>
      >>> print(jsl.metrics.false_omission_rate(jnp.array([[3, 0], [1, 1]])))
      [0.   0.25]
    """
    return for_score(c)


__all__ = [
    "fall_out",
    "false_discovery_rate",
    "false_omission_rate",
    "miss_rate",
    "negative_predictive_value",
    "precision",
    "recall",
    "specificity",
]
