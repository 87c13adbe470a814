r"""Region losses: soft IoU (Jaccard), Dice, Tversky and generalized Dice.

Each loss is a thin function of the soft overlap statistics of :mod:`jaxseg_losses.stats`:

1. ``overlap_stats`` turns logits and labels into per-class :math:`TP, FP, FN` (``[B, C]``),
   pooled over the batch with ``aggregate="batch"`` and over devices with ``axis_name``;
2. a ratio per class (IoU, Dice, Tversky) becomes a loss :math:`1 - r` or :math:`-\ln r`;
3. class weights multiply, background may be dropped, the mean over classes gives one loss per
   sample, and ``reduction`` reduces the batch.

Data contract: ``logits`` ``[B, *spatial, C]`` (``class_axis`` moves C), ``labels`` integer
``[B, *spatial]`` or dense float ``[B, *spatial, C]``, ``mask`` ``[B, *spatial]``; the result is
float32 for bf16/f16/f32 logits.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxseg_losses import _checks, _inputs, _reduce
from jaxseg_losses.stats import (
    OverlapStats,
    aggregate_stats,
    dice_from_stats,
    iou_from_stats,
    safe_ratio,
    score_to_loss,
    stats_from_canonical,
    tversky_from_stats,
)

_COMMON_ARGS = """\
      logits: ``[B, *spatial, C]`` float logits (probabilities when ``activation=None``), any
        float dtype; 1-D, 2-D or 3-D spatial shape.
      labels: ``[B, *spatial]`` integer class indices, or ``[B, *spatial, C]`` dense float
        targets (one-hot or soft), laid out like ``logits``.
      activation: ``"softmax"`` (exclusive classes, C >= 2), ``"sigmoid"`` (binary with C == 1,
        or multi-label with dense targets) or ``None`` (``logits`` are probabilities).
      class_axis: the axis of ``logits`` holding the classes (``1`` for NCHW).
      smooth: added to numerator and denominator of each ratio (default 1).
      log: use ``-ln(ratio)`` instead of ``1 - ratio``.
      class_weights: ``[C]`` weights multiplying each class's loss before the class mean.
      include_background: ``False`` drops class 0 from the class mean.
      ignore_index: a label value whose pixels count nowhere (e.g. 255).
      mask: ``[B, *spatial]`` bool or float pixel weights; weight 0 removes a pixel.
      aggregate: ``"sample"`` computes statistics per sample (per-image ratios); ``"batch"`` sums
        them over the batch first (nnU-Net's batch Dice, MONAI ``batch=True``, smp's default).
      axis_name: a mapped axis (``shard_map``/``pmap``): batch statistics, and the mean of
        per-sample losses, are summed over it so every device gets the global value.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[B]``, per sample).

    Returns:
      A float32 scalar (float64 for float64 logits under x64), or ``[B]`` per-sample losses for
      ``reduction="none"`` (``aggregate="sample"`` only)."""


def _shares_region_docs(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Writes the arguments every region loss shares into ``fn``'s docstring, once."""
    assert fn.__doc__ is not None
    fn.__doc__ = fn.__doc__.replace("      <common args>", _COMMON_ARGS)
    return fn


def _class_mean_of(
    per_class_loss: Callable[[OverlapStats], jax.Array],
    *,
    class_weights: ArrayLike | None,
    include_background: bool,
) -> Callable[[OverlapStats], jax.Array]:
    """Per-sample loss: the (weighted) mean over classes of a per-class loss."""
    return lambda stats: _reduce.class_mean(
        per_class_loss(stats), class_weights=class_weights, include_background=include_background
    )


def _region_loss(
    per_sample_loss: Callable[[OverlapStats], jax.Array],
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    activation: str | None,
    class_axis: int,
    ignore_index: int | None,
    mask: ArrayLike | None,
    aggregate: str,
    axis_name: Any,
    reduction: str,
) -> jax.Array:
    """Statistics -> per-sample loss -> batch reduction, the pipeline of every region loss."""
    _reduce.check_reduction_for_aggregate(reduction, aggregate)
    inputs = _inputs.canonicalize(
        logits,
        labels,
        activation=activation,
        class_axis=class_axis,
        ignore_index=ignore_index,
        mask=mask,
    )
    stats = aggregate_stats(stats_from_canonical(inputs), aggregate, axis_name)
    per_sample = per_sample_loss(stats)
    # Batch-pooled statistics were already summed over devices: the single value is global.
    device_axis = axis_name if aggregate == "sample" else None
    return _reduce.batch_reduce(per_sample, reduction, axis_name=device_axis)


@_shares_region_docs
def iou_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    activation: str | None = "softmax",
    class_axis: int = -1,
    smooth: ArrayLike = 1.0,
    log: bool = False,
    class_weights: ArrayLike | None = None,
    include_background: bool = True,
    ignore_index: int | None = None,
    mask: ArrayLike | None = None,
    aggregate: str = "sample",
    axis_name: Any = None,
    reduction: str = "mean",
) -> jax.Array:
    r"""Computes the soft IoU (Jaccard) loss, a differentiable relaxation of 1 − IoU.

    The hard IoU of arg-max predictions has zero gradient almost everywhere; replacing the
    indicator by the predicted probability makes intersection and union differentiable
    (Rahman & Wang 2016). With :math:`X` the probabilities and :math:`Y` the targets of a class,

    .. math::

       I = \sum X Y, \quad U = \sum X + \sum Y - I, \quad
       \mathrm{IoU} = \frac{I + s}{U + s} = \frac{TP + s}{TP + FP + FN + s},

    and the loss of each class is :math:`1 - \mathrm{IoU}` (or :math:`-\ln \mathrm{IoU}` with
    ``log=True``), averaged over classes (``class_weights`` multiply each term) and samples.

    Peers: smp's ``JaccardLoss(mode, smooth=s, log_loss=log)`` pools the batch and skips classes
    absent from the target, so it matches ``aggregate="batch"`` on batches where every class is
    present. MONAI's ``DiceLoss(jaccard=True, smooth_nr=s, smooth_dr=s)`` (default
    ``squared_pred=False``) computes :math:`1 - (2I + s) / (2U + s)`, which is ``smooth=s / 2``.

    Args:
      <common args>
    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> logits = jnp.array([[[4.0, -4.0], [-4.0, 4.0], [4.0, -4.0]]])   # [B=1, P=3, C=2]
      >>> labels = jnp.array([[0, 1, 1]])   # each class: I = 1, U = 2
      >>> print(f"{jsl.iou_loss(logits, labels, smooth=0.0):.4f}")
      0.5001
      >>> jax.jit(jsl.iou_loss)(logits, labels).dtype
      dtype('float32')

    References:
      Rahman & Wang, "Optimizing Intersection-Over-Union in Deep Neural Networks for Image
      Segmentation", ISVC 2016.
    """
    per_sample_loss = _class_mean_of(
        lambda stats: iou_from_stats(stats, smooth=smooth, log=log),
        class_weights=class_weights,
        include_background=include_background,
    )
    return _region_loss(
        per_sample_loss,
        logits,
        labels,
        activation=activation,
        class_axis=class_axis,
        ignore_index=ignore_index,
        mask=mask,
        aggregate=aggregate,
        axis_name=axis_name,
        reduction=reduction,
    )


@_shares_region_docs
def dice_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    activation: str | None = "softmax",
    class_axis: int = -1,
    smooth: ArrayLike = 1.0,
    log: bool = False,
    class_weights: ArrayLike | None = None,
    include_background: bool = True,
    ignore_index: int | None = None,
    mask: ArrayLike | None = None,
    aggregate: str = "sample",
    axis_name: Any = None,
    reduction: str = "mean",
) -> jax.Array:
    r"""Computes the soft Dice loss (V-Net), 1 − the soft Dice coefficient per class.

    .. math::

       \mathrm{Dice}_c = \frac{2\,TP_c + s}{2\,TP_c + FP_c + FN_c + s}
                       = \frac{2 \sum p g + s}{\sum p + \sum g + s}

    and the loss of each class is :math:`1 - \mathrm{Dice}_c` (or :math:`-\ln \mathrm{Dice}_c`),
    averaged over classes and samples.

    Peers: MONAI ``DiceLoss(softmax=True, to_onehot_y=True, smooth_nr=s, smooth_dr=s)`` equals
    ``smooth=s`` (MONAI's ``batch=True`` is ``aggregate="batch"``, ``weight`` is
    ``class_weights``; its ``reduction="sum"`` also sums over classes); optax
    ``dice_loss(logits, one_hot, smooth=s)`` is the Tversky form with :math:`\alpha = \beta =
    1/2`, so it equals ``smooth=2 * s`` with ``reduction="none"``; smp ``DiceLoss`` pools the
    batch and skips classes absent from the target (``aggregate="batch"`` when every class is
    present).

    Args:
      <common args>
    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> logits = jnp.array([[[4.0, -4.0], [-4.0, 4.0], [4.0, -4.0]]])   # [B=1, P=3, C=2]
      >>> labels = jnp.array([[0, 1, 1]])
      >>> print(f"{jsl.dice_loss(logits, labels, smooth=0.0):.4f}")
      0.3334

    References:
      Milletari, Navab & Ahmadi, "V-Net: Fully Convolutional Neural Networks for Volumetric
      Medical Image Segmentation", 3DV 2016.
    """
    per_sample_loss = _class_mean_of(
        lambda stats: dice_from_stats(stats, smooth=smooth, log=log),
        class_weights=class_weights,
        include_background=include_background,
    )
    return _region_loss(
        per_sample_loss,
        logits,
        labels,
        activation=activation,
        class_axis=class_axis,
        ignore_index=ignore_index,
        mask=mask,
        aggregate=aggregate,
        axis_name=axis_name,
        reduction=reduction,
    )


@_shares_region_docs
def tversky_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    alpha: ArrayLike = 0.5,
    beta: ArrayLike = 0.5,
    gamma: ArrayLike = 1.0,
    activation: str | None = "softmax",
    class_axis: int = -1,
    smooth: ArrayLike = 1.0,
    log: bool = False,
    class_weights: ArrayLike | None = None,
    include_background: bool = True,
    ignore_index: int | None = None,
    mask: ArrayLike | None = None,
    aggregate: str = "sample",
    axis_name: Any = None,
    reduction: str = "mean",
) -> jax.Array:
    r"""Computes the Tversky loss, or the focal Tversky loss with ``gamma != 1``.

    Tversky's index weighs false positives by :math:`\alpha` and false negatives by
    :math:`\beta`, trading precision for recall; :math:`\beta > \alpha` favours recall of small
    structures (Salehi et al. 2017). Per class,

    .. math::

       T_c = \frac{TP_c + s}{TP_c + \alpha\,FP_c + \beta\,FN_c + s}, \qquad
       \ell_c = (1 - T_c)^{\gamma}

    With ``smooth=0``, :math:`\alpha=\beta=1/2` is the Dice loss and :math:`\alpha=\beta=1` the
    IoU loss. :math:`\gamma` is applied per class before the class mean (Abraham & Khan 2019
    write the exponent as :math:`1/\gamma` with :math:`\gamma \in [1, 3]`: pass its inverse).
    With ``log=True`` the class loss is :math:`(-\ln T_c)^{\gamma}`.

    Peers: MONAI ``TverskyLoss(alpha, beta, smooth_nr=s, smooth_dr=s)`` equals ``gamma=1`` and
    ``smooth=s``; optax ``dice_loss(alpha=a, beta=b, smooth=s)`` equals ``reduction="none"``;
    smp ``TverskyLoss(alpha, beta)`` pools the batch like ``aggregate="batch"``, but its
    ``gamma`` raises the mean over classes rather than each class's loss (equal for
    ``gamma=1``).

    Args:
      alpha: weight of false positives (non-negative, default 0.5).
      beta: weight of false negatives (non-negative, default 0.5).
      gamma: focal exponent of each class's loss (non-negative, default 1).
      <common args>
    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> logits = jnp.array([[[4.0, -4.0], [-4.0, 4.0], [4.0, -4.0]]])   # [B=1, P=3, C=2]
      >>> labels = jnp.array([[0, 1, 1]])
      >>> print(f"{jsl.tversky_loss(logits, labels, alpha=0.3, beta=0.7, smooth=0.0):.4f}")
      0.3214

    References:
      Salehi, Erdogmus & Gholipour, "Tversky loss function for image segmentation using 3D fully
      convolutional deep networks", MLMI 2017. Abraham & Khan, "A Novel Focal Tversky Loss
      Function with Improved Attention U-Net for Lesion Segmentation", ISBI 2019.
    """
    per_sample_loss = _class_mean_of(
        lambda stats: tversky_from_stats(
            stats, alpha=alpha, beta=beta, gamma=gamma, smooth=smooth, log=log
        ),
        class_weights=class_weights,
        include_background=include_background,
    )
    return _region_loss(
        per_sample_loss,
        logits,
        labels,
        activation=activation,
        class_axis=class_axis,
        ignore_index=ignore_index,
        mask=mask,
        aggregate=aggregate,
        axis_name=axis_name,
        reduction=reduction,
    )


GENERALIZED_DICE_WEIGHTS = ("square", "simple", "uniform")


def generalized_dice_weights(target_sum: jax.Array, weight_type: str) -> jax.Array:
    """Sudre's class weights ``[..., C]`` from the target volume of each class.

    ``"square"`` is :math:`1 / (\\sum g)^2`, ``"simple"`` :math:`1 / \\sum g`, ``"uniform"`` 1. A
    class absent from the target would get an infinite weight; it gets the largest weight of the
    classes present in the same row instead (MONAI's rule), and 0 when no class is present.
    """
    _checks.check_choice("weight_type", weight_type, GENERALIZED_DICE_WEIGHTS)
    if weight_type == "uniform":
        return jnp.ones_like(target_sum)
    present = target_sum > 0
    safe_sum = jnp.where(present, target_sum, 1.0)
    weights = 1.0 / (safe_sum * safe_sum if weight_type == "square" else safe_sum)
    weights = jnp.where(present, weights, 0.0)
    largest = jnp.max(weights, axis=-1, keepdims=True)
    return jax.lax.stop_gradient(jnp.where(present, weights, largest))


def generalized_dice_from_stats(
    stats: OverlapStats,
    *,
    weight_type: str,
    smooth: ArrayLike,
    log: bool,
    class_weights: ArrayLike | None,
    include_background: bool,
) -> jax.Array:
    """Generalized Dice loss ``[...]`` from statistics ``[..., C]`` (classes combined).

    The per-sample step of :func:`generalized_dice_loss`, shared with the micro-batch
    accumulation of :mod:`jaxseg_losses.accumulate`, which applies it to pooled statistics.
    """
    num_classes = stats.tp.shape[-1]
    tp, pred_sum, target_sum = stats.tp, stats.tp + stats.fp, stats.tp + stats.fn
    factors = jnp.ones((1, num_classes), tp.dtype)
    if class_weights is not None:
        factors = _checks.class_vector(
            "class_weights", class_weights, num_classes, tp.dtype, rank=2
        )
    if not include_background:
        _reduce.check_can_drop_background(num_classes)
        tp, pred_sum, target_sum, factors = (
            x[..., 1:] for x in (tp, pred_sum, target_sum, factors)
        )
    weights = factors * generalized_dice_weights(target_sum, weight_type)
    numerator = 2.0 * jnp.sum(weights * tp, axis=-1) + smooth
    denominator = jnp.sum(weights * (pred_sum + target_sum), axis=-1) + smooth
    return score_to_loss(safe_ratio(numerator, denominator), log=log)


@_shares_region_docs
def generalized_dice_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    weight_type: str = "square",
    activation: str | None = "softmax",
    class_axis: int = -1,
    smooth: ArrayLike = 1.0,
    log: bool = False,
    class_weights: ArrayLike | None = None,
    include_background: bool = True,
    ignore_index: int | None = None,
    mask: ArrayLike | None = None,
    aggregate: str = "sample",
    axis_name: Any = None,
    reduction: str = "mean",
) -> jax.Array:
    r"""Computes the generalized Dice loss of Sudre et al., robust to class imbalance.

    Class weights inversely proportional to the (squared) target volume enter the sums *before*
    the ratio, so a rare class counts as much as a frequent one:

    .. math::

       \mathrm{GDL} = 1 - \frac{2 \sum_c w_c\, TP_c + s}{\sum_c w_c (\textstyle\sum p_c +
       \sum g_c) + s}, \qquad w_c = \frac{1}{(\sum_i g_{ic})^2}

    ``weight_type="simple"`` uses :math:`1/\sum g_c` and ``"uniform"`` :math:`w_c = 1`. A class
    absent from the target (of the sample, or of the batch with ``aggregate="batch"``) gets the
    largest weight among the present classes, so it is never inf or NaN; ``class_weights``
    multiply :math:`w_c`. ``log=True`` gives :math:`-\ln` of the ratio.

    Peers: MONAI ``GeneralizedDiceLoss(w_type=weight_type, smooth_nr=s, smooth_dr=s)`` equals
    ``smooth=s`` (same rule for absent classes); ``batch=True`` is ``aggregate="batch"``.

    Args:
      weight_type: ``"square"``, ``"simple"`` or ``"uniform"``.
      <common args>
    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> logits = jnp.array([[[4.0, -4.0], [-4.0, 4.0], [4.0, -4.0]]])   # [B=1, P=3, C=2]
      >>> labels = jnp.array([[0, 1, 1]])
      >>> print(f"{jsl.generalized_dice_loss(logits, labels, smooth=0.0):.4f}")
      0.3335

    References:
      Sudre, Li, Vercauteren, Ourselin & Cardoso, "Generalised Dice overlap as a deep learning
      loss function for highly unbalanced segmentations", DLMIA 2017.
    """
    _checks.check_choice("weight_type", weight_type, GENERALIZED_DICE_WEIGHTS)
    _checks.check_nonnegative("smooth", smooth)

    def per_sample_loss(stats: OverlapStats) -> jax.Array:
        return generalized_dice_from_stats(
            stats,
            weight_type=weight_type,
            smooth=smooth,
            log=log,
            class_weights=class_weights,
            include_background=include_background,
        )

    return _region_loss(
        per_sample_loss,
        logits,
        labels,
        activation=activation,
        class_axis=class_axis,
        ignore_index=ignore_index,
        mask=mask,
        aggregate=aggregate,
        axis_name=axis_name,
        reduction=reduction,
    )
