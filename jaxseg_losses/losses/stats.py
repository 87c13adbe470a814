r"""Soft overlap statistics: the shared core of every region loss.

For class :math:`c` of one sample (or of the whole batch), with soft predictions :math:`p`,
targets :math:`g` and pixel weights :math:`w` (the mask),

.. math::

   TP_c = \sum_i w_i\, p_{ic} g_{ic}, \quad
   FP_c = \sum_i w_i\, p_{ic} - TP_c, \quad
   FN_c = \sum_i w_i\, g_{ic} - TP_c, \quad
   TN_c = \sum_i w_i - TP_c - FP_c - FN_c.

:math:`TN_c` (for the Matthews correlation) needs no pass of its own: the valid pixel count
:math:`\sum_i w_i` is read by every loss anyway. For dense float targets the intersection uses
the L1 form
:math:`TP_c = \tfrac12 \sum_i w_i (p_{ic} + g_{ic} - |p_{ic} - g_{ic}|)`, which equals
:math:`\sum_i w_i p_{ic} g_{ic}` for hard targets and makes every ratio below maximal exactly at
:math:`p = g` for soft ones.

IoU, Dice and Tversky are ratios of these sums. A ratio of sums is not a sum of ratios, so the
statistics, not the losses, are what must be added across micro-batches (``stats_a + stats_b``)
and devices (``axis_name``); :class:`OverlapStats` is a pytree made for that.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp

from jaxseg_losses._core import checks as _checks
from jaxseg_losses._core.definition import divide
from jaxseg_losses._core.docs import documented
from jaxseg_losses._core.inputs import Inputs, prepare


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class OverlapStats:
    r"""Soft true positives, false positives, false negatives (and true negatives) per class.

    Each field has shape ``[B, C]`` (``[1, C]`` after batch aggregation) and a float dtype.
    ``tn`` is the soft true negatives :math:`\sum_i w_i - TP - FP - FN` (the L1 form
    :math:`\sum_i w_i (1 - \max(p, g))` for dense targets, :math:`\sum_i w_i (1 - p)(1 - g)`
    for hard ones); it is ``None`` for statistics built by hand without it. Instances are
    pytrees: they pass through ``jax.jit``, ``jax.lax.psum`` and ``jax.tree.map``, and ``a + b``
    adds them field by field (accumulating micro-batches).
    """

    tp: jax.Array
    fp: jax.Array
    fn: jax.Array
    tn: jax.Array | None = None

    def __add__(self, other: "OverlapStats") -> "OverlapStats":
        return jax.tree.map(jnp.add, self, other)

    def sum_over_batch(self) -> "OverlapStats":
        """Pools the batch: each field becomes ``[1, C]`` (nnU-Net's "batch Dice")."""
        return jax.tree.map(lambda x: jnp.sum(x, axis=0, keepdims=True), self)


def stats_of(inputs: Inputs) -> OverlapStats:
    """Per-sample statistics ``[B, C]`` of canonical inputs (their shared overlap sums)."""
    tp, pred_sum, target_sum = inputs.overlap_sums()
    count = inputs.valid_count()[:, None]
    # Rounding can leave FP, FN or TN a hair below zero when a class is predicted perfectly.
    fp = jnp.maximum(pred_sum - tp, 0.0)
    # TN is [B, C] arithmetic on sums every loss reads already (XLA drops it when unused),
    # ordered as Σw(1 - g) - FP: the first difference is exact for hard targets, so a class
    # that fills the image gets TN = 0, not the rounding of Σw - Σp - Σg + TP.
    return OverlapStats(
        tp=tp,
        fp=fp,
        fn=jnp.maximum(target_sum - tp, 0.0),
        tn=jnp.maximum((count - target_sum) - fp, 0.0),
    )


def aggregate_stats(stats: OverlapStats, aggregate: str, axis_name: Any = None) -> OverlapStats:
    """Pools statistics over the batch (``"batch"``) and, given ``axis_name``, over devices."""
    _checks.check_choice("aggregate", aggregate, _checks.AGGREGATES)
    if aggregate == "batch":
        stats = stats.sum_over_batch()
        if axis_name is not None:
            stats = jax.lax.psum(stats, axis_name)
    return stats


def overlap_stats(
    logits: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    activation: str | None = "softmax",
    class_axis: int = -1,
    ignore_index: int | None = None,
    mask: jax.typing.ArrayLike | None = None,
    aggregate: str = "sample",
    axis_name: Any = None,
) -> OverlapStats:
    r"""Computes soft per-class TP, FP, FN and TN, the statistics every region loss is built from.

    .. math::

       TP_c = \sum_i w_i\, p_{ic} g_{ic}, \quad FP_c = \sum_i w_i\, p_{ic} (1 - g_{ic}), \quad
       FN_c = \sum_i w_i\, (1 - p_{ic}) g_{ic}, \quad TN_c = \sum_i w_i\, (1 - p_{ic})(1 - g_{ic})

    where :math:`p = \mathrm{activation}(\mathrm{logits})`, :math:`g` the one-hot (or dense)
    targets and :math:`w` the pixel weights (``mask`` and ``ignore_index``). Dense float targets
    use the L1 intersection :math:`\tfrac12\sum_i w_i(p_{ic} + g_{ic} - |p_{ic} - g_{ic}|)`.

    Args:
      logits: ``[B, *spatial, C]`` float logits (probabilities when ``activation=None``).
      labels: ``[B, *spatial]`` integer class indices or ``[B, *spatial, C]`` dense float targets.
      activation: ``"softmax"``, ``"sigmoid"`` or ``None``.
      class_axis: the axis of ``logits`` (and dense ``labels``) holding the classes.
      ignore_index: a label value whose pixels are excluded.
      mask: ``[B, *spatial]`` bool or float pixel weights.
      aggregate: ``"sample"`` keeps one row per sample; ``"batch"`` sums the batch into one row.
      axis_name: with ``aggregate="batch"``, a mapped axis name (``shard_map``/``pmap``) over
        which the statistics are summed too.

    Returns:
      :class:`OverlapStats` with fields of shape ``[B, C]`` (``[1, C]`` for ``"batch"``), float32
      for bf16/f16/f32 inputs.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> import numpy as np
      >>> probs = jnp.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]])   # [B=1, P=3, C=2]
      >>> labels = jnp.array([[0, 1, 1]])
      >>> stats = jsl.overlap_stats(probs, labels, activation=None)
      >>> with np.printoptions(precision=3):
      ...     print(stats.tp, stats.fp, stats.fn, stats.tn)
      [[0.9 1.2]] [[0.8 0.1]] [[0.1 0.8]] [[1.2 0.9]]
    """
    inputs = prepare(logits, labels, activation, class_axis, ignore_index, mask)
    return aggregate_stats(stats_of(inputs), aggregate, axis_name)


# ----------------------------------------------------------------------------------------------
# From statistics to per-class losses.


def safe_ratio(numerator: jax.Array, denominator: jax.Array) -> jax.Array:
    """``numerator / denominator``, defined as 1 (a perfect score) where both are 0.

    Only reachable with ``smooth=0`` for a class absent from both prediction and target; the
    double ``where`` keeps the gradient finite there too. The test is ``== 0``, not ``> 0``, so a
    NaN denominator (non-finite logits) stays NaN instead of passing for a perfect score.
    """
    return divide(numerator, denominator, empty=1.0)


def score_to_loss(score: jax.Array, *, log: bool, gamma: Any = 1.0) -> jax.Array:
    r"""``(1 - score) ** gamma``, or ``(-ln score) ** gamma`` with ``log=True``.

    The log form floors the score at :math:`\sqrt{\mathrm{tiny}}` (``-ln`` = 43.7 in float32),
    as :func:`~jaxseg_losses._inputs.safe_log` does: the second derivative :math:`1 / r^2` then
    stays finite, so Hessian-vector products at a class with no overlap (``smooth=0``) are too.
    """
    if log:
        floor = math.sqrt(float(jnp.finfo(score.dtype).tiny))
        loss = -jnp.log(jnp.maximum(score, floor))
    else:
        loss = 1.0 - score
    loss = jnp.maximum(loss, 0.0)
    if isinstance(gamma, int | float) and gamma == 1:
        return loss
    # x ** gamma has an infinite slope at x = 0 for gamma < 1; at x = 0 the loss is at its
    # minimum, so the double where returns a zero gradient there instead of NaN.
    positive = loss > 0
    return jnp.where(positive, jnp.where(positive, loss, 1.0) ** gamma, 0.0)


def _check_ratio_options(smooth: Any, log: Any) -> None:
    _checks.check_nonnegative("smooth", smooth)
    _checks.check_bool("log", log)


@documented
def iou_from_stats(
    stats: OverlapStats, *, smooth: jax.typing.ArrayLike = 1.0, log: bool = False
) -> jax.Array:
    r"""Per-class soft IoU (Jaccard) loss from overlap statistics.

    .. math::

       \mathrm{IoU}_c = \frac{TP_c + s}{TP_c + FP_c + FN_c + s}, \qquad
       \ell_c = 1 - \mathrm{IoU}_c \quad\text{or}\quad \ell_c = -\ln \mathrm{IoU}_c

    Args:
      stats: :class:`OverlapStats` with fields ``[..., C]``.
      smooth: :math:`s`, added to numerator and denominator (non-negative).
      log: use :math:`-\ln \mathrm{IoU}` instead of :math:`1 - \mathrm{IoU}`.

    Returns:
      ``[..., C]`` per-class losses. With ``smooth=0`` a class absent from prediction and target
      scores a perfect 1 (loss 0) instead of 0/0.

    Examples:
      <stats example setup>
      >>> print(jsl.iou_from_stats(stats, smooth=0.0))     # 1 - 3/5
      [[0.39999998]]
    """
    _check_ratio_options(smooth, log)
    score = safe_ratio(stats.tp + smooth, stats.tp + stats.fp + stats.fn + smooth)
    return score_to_loss(score, log=log)


@documented
def dice_from_stats(
    stats: OverlapStats, *, smooth: jax.typing.ArrayLike = 1.0, log: bool = False
) -> jax.Array:
    r"""Per-class soft Dice loss from overlap statistics.

    .. math::

       \mathrm{Dice}_c = \frac{2\,TP_c + s}{2\,TP_c + FP_c + FN_c + s}, \qquad
       \ell_c = 1 - \mathrm{Dice}_c \quad\text{or}\quad \ell_c = -\ln \mathrm{Dice}_c

    Args:
      stats: :class:`OverlapStats` with fields ``[..., C]``.
      smooth: :math:`s`, added to numerator and denominator (non-negative).
      log: use :math:`-\ln \mathrm{Dice}` instead of :math:`1 - \mathrm{Dice}`.

    <stats returns>

    Examples:
      <stats example setup>
      >>> jsl.dice_from_stats(stats, smooth=0.0)    # 1 - 6/8
      Array([[0.25]], dtype=float32)
    """
    _check_ratio_options(smooth, log)
    score = safe_ratio(2.0 * stats.tp + smooth, 2.0 * stats.tp + stats.fp + stats.fn + smooth)
    return score_to_loss(score, log=log)


@documented
def tversky_from_stats(
    stats: OverlapStats,
    *,
    alpha: jax.typing.ArrayLike = 0.5,
    beta: jax.typing.ArrayLike = 0.5,
    gamma: jax.typing.ArrayLike = 1.0,
    smooth: jax.typing.ArrayLike = 1.0,
    log: bool = False,
) -> jax.Array:
    r"""Per-class (focal) Tversky loss from overlap statistics.

    .. math::

       T_c = \frac{TP_c + s}{TP_c + \alpha\,FP_c + \beta\,FN_c + s}, \qquad
       \ell_c = (1 - T_c)^{\gamma} \quad\text{or}\quad \ell_c = (-\ln T_c)^{\gamma}

    :math:`\alpha` weighs false positives and :math:`\beta` false negatives; with ``smooth=0``,
    :math:`\alpha = \beta = 1/2` is Dice and :math:`\alpha = \beta = 1` is IoU. :math:`\gamma`
    is the focal Tversky exponent (Abraham & Khan 2019); with ``log=True`` it gives the
    exponential logarithmic form of Wong et al. 2018.

    Args:
      stats: :class:`OverlapStats` with fields ``[..., C]``.
      alpha: weight of false positives (non-negative).
      beta: weight of false negatives (non-negative).
      gamma: exponent applied to each class's loss (non-negative).
      smooth: :math:`s`, added to numerator and denominator (non-negative).
      log: use :math:`-\ln T_c` instead of :math:`1 - T_c` before the exponent.

    <stats returns>

    Examples:
      <stats example setup>
      >>> jsl.tversky_from_stats(stats, alpha=0.2, beta=0.8, smooth=0.0)   # 1 - 3/4
      Array([[0.25]], dtype=float32)
    """
    for name, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        _checks.check_nonnegative(name, value)
    _check_ratio_options(smooth, log)
    score = safe_ratio(stats.tp + smooth, stats.tp + alpha * stats.fp + beta * stats.fn + smooth)
    return score_to_loss(score, log=log, gamma=gamma)


@documented
def mcc_from_stats(
    stats: OverlapStats,
    *,
    smooth_nr: jax.typing.ArrayLike = 0.0,
    smooth_dr: jax.typing.ArrayLike = 1e-5,
) -> jax.Array:
    r"""Per-class soft Matthews correlation loss from overlap statistics (``tn`` needed).

    .. math::

       \mathrm{MCC}_c = \frac{TP_c\,TN_c - FP_c\,FN_c + s_n}
       {\sqrt{(TP_c + FP_c)(TP_c + FN_c)(TN_c + FP_c)(TN_c + FN_c) + s_d}}, \qquad
       \ell_c = 1 - \mathrm{MCC}_c \in [0, 2],

    and :math:`\ell_c = 0` where :math:`FP_c = FN_c = 0` (a perfect prediction, whose
    denominator vanishes when the class fills the image or is absent from it): MONAI's rule.

    Args:
      stats: :class:`OverlapStats` with fields ``[..., C]``, ``tn`` included.
      smooth_nr: :math:`s_n`, added to the numerator (non-negative).
      smooth_dr: :math:`s_d`, added under the square root (non-negative).

    <stats returns>

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> stats = jsl.OverlapStats(tp=jnp.array([[3.0]]), fp=jnp.array([[1.0]]),
      ...                          fn=jnp.array([[1.0]]), tn=jnp.array([[3.0]]))
      >>> print(jsl.mcc_from_stats(stats, smooth_dr=0.0))     # 1 - (9 - 1) / 16
      [[0.5]]
    """
    _checks.check_nonnegative("smooth_nr", smooth_nr)
    _checks.check_nonnegative("smooth_dr", smooth_dr)
    if stats.tn is None:
        raise ValueError(
            "mcc_from_stats needs true negatives: `stats.tn` must be a [..., C] array; got None. "
            "Statistics from jsl.overlap_stats carry it."
        )
    tp, fp, fn, tn = stats.tp, stats.fp, stats.fn, stats.tn
    product = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn) + smooth_dr
    # The double where keeps the square root's slope finite at a zero product (smooth_dr=0).
    empty = product == 0
    root = jnp.sqrt(jnp.where(empty, jnp.ones((), product.dtype), product))
    mcc = jnp.where(empty, 0.0, (tp * tn - fp * fn + smooth_nr) / root)
    perfect = (fp == 0) & (fn == 0)
    return jnp.where(perfect, jnp.zeros((), mcc.dtype), 1.0 - mcc)
