r"""Region losses: soft IoU (Jaccard), Dice, Tversky and generalized Dice.

Each loss is described once (:class:`~jaxseg_losses.LossDefinition`) by the soft overlap
statistics of :mod:`jaxseg_losses.stats` and a finishing step:

1. the sums are the per-class :math:`TP, FP, FN` of each sample (``[B, C]``), pooled over the
   batch with ``aggregate="batch"`` and over devices with ``axis_name`` by the library's core;
2. a ratio per class (IoU, Dice, Tversky) becomes a loss :math:`1 - r` or :math:`-\ln r`;
3. class weights multiply, background may be dropped, and the mean over classes gives one loss
   per sample (or per batch), which ``reduction`` reduces.

Data contract: ``logits`` ``[B, *spatial, C]`` (``class_axis`` moves C), ``labels`` integer
``[B, *spatial]`` or dense float ``[B, *spatial, C]``, ``mask`` ``[B, *spatial]``; the result is
float32 for bf16/f16/f32 logits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxseg_losses._core import checks as _checks
from jaxseg_losses._core.classes import (
    ABSENT_CLASSES,
    GENERALIZED_DICE_WEIGHTS,
    class_mean,
    generalized_dice_weights,
    kept_classes,
    select_classes,
)
from jaxseg_losses._core.define import define_loss
from jaxseg_losses._core.definition import LossDefinition
from jaxseg_losses._core.inputs import Inputs
from jaxseg_losses.losses.stats import (
    OverlapStats,
    dice_from_stats,
    iou_from_stats,
    mcc_from_stats,
    safe_ratio,
    score_to_loss,
    stats_of,
    tversky_from_stats,
)


def _check_region_options(
    smooth: Any,
    log: Any,
    class_weights: Any,
    include_background: Any,
    classes: Any = None,
    absent_classes: Any = "keep",
) -> None:
    """The options every region loss shares, checked when the loss is defined."""
    _checks.check_nonnegative("smooth", smooth)
    _checks.check_bool("log", log)
    _checks.check_bool("include_background", include_background)
    if class_weights is not None:
        _checks.check_real("class_weights", class_weights, vector=True)
    if classes is not None:
        # The range is checked against the number of classes when the loss is called.
        _checks.class_indices("classes", classes, 2**31 - 1)
    _checks.check_choice("absent_classes", absent_classes, ABSENT_CLASSES)


def _target_mass(stats: OverlapStats) -> jax.Array:
    return stats.tp + stats.fn


def overlap_loss(
    per_class_loss: Callable[[Any], jax.Array],
    *,
    class_weights: ArrayLike | None,
    include_background: bool,
    classes: Any = None,
    absent_classes: str = "keep",
    sums: Callable[[Inputs], Any] = stats_of,
    target_mass: Callable[[Any], jax.Array] = _target_mass,
) -> LossDefinition:
    """The description of a region loss: per-class sums (the overlap statistics by default), a
    per-class loss of them, the class mean; ``target_mass(sums)`` ``[..., C]`` is positive
    exactly for the classes present in the target."""

    def finish(s: Any) -> jax.Array:
        return class_mean(
            per_class_loss(s),
            class_weights=class_weights,
            include_background=include_background,
            classes=classes,
            absent_classes=absent_classes,
            target_sum=target_mass(s),
        )

    def present(s: Any) -> jax.Array:
        # 1 for a row with a present kept class, 0 without (left out); NaN statistics stay NaN.
        mass = target_mass(s)
        kept = kept_classes(mass.shape[-1], include_background=include_background, classes=classes)
        return jnp.sign(jnp.sum(select_classes(mass, kept), axis=-1))

    weight = present if absent_classes == "exclude" else None
    return LossDefinition(sums=sums, finish=finish, weight=weight)


@define_loss
def iou_loss(
    *,
    smooth: ArrayLike = 1.0,
    log: bool = False,
    class_weights: ArrayLike | None = None,
    include_background: bool = True,
    classes: tuple[int, ...] | list[int] | None = None,
    absent_classes: str = "keep",
) -> LossDefinition:
    r"""Computes the soft IoU (Jaccard) loss, a differentiable relaxation of 1 − IoU.

    The hard IoU of arg-max predictions has zero gradient almost everywhere; replacing the
    indicator by the predicted probability makes intersection and union differentiable
    (Rahman & Wang 2016). With :math:`X` the probabilities and :math:`Y` the targets of a class,

    .. math::

       I = \sum X Y, \quad U = \sum X + \sum Y - I, \quad
       \mathrm{IoU} = \frac{I + s}{U + s} = \frac{TP + s}{TP + FP + FN + s},

    and the loss of each class is :math:`1 - \mathrm{IoU}` (or :math:`-\ln \mathrm{IoU}` with
    ``log=True``), averaged over classes (``class_weights`` multiply each term) and samples.

    Peers: smp's ``JaccardLoss(mode, classes=K, smooth=s, log_loss=log)`` pools the batch and
    zeroes the loss of classes absent from the target: ``aggregate="batch",
    absent_classes="zero", classes=K``. MONAI's ``DiceLoss(jaccard=True, smooth_nr=s,
    smooth_dr=s)`` (default ``squared_pred=False``) computes
    :math:`1 - (2I + s) / (2U + s)`, which is ``smooth=s / 2``.

    Args:
      <data args>
      <region args>
      <region absent classes>
      <shared args>

    <sample loss returns>

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
    _check_region_options(smooth, log, class_weights, include_background, classes, absent_classes)
    return overlap_loss(
        lambda stats: iou_from_stats(stats, smooth=smooth, log=log),
        class_weights=class_weights,
        include_background=include_background,
        classes=classes,
        absent_classes=absent_classes,
    )


@define_loss
def dice_loss(
    *,
    smooth: ArrayLike = 1.0,
    log: bool = False,
    squared_pred: bool = False,
    class_weights: ArrayLike | None = None,
    include_background: bool = True,
    classes: tuple[int, ...] | list[int] | None = None,
    absent_classes: str = "keep",
) -> LossDefinition:
    r"""Computes the soft Dice loss (V-Net), 1 − the soft Dice coefficient per class.

    .. math::

       \mathrm{Dice}_c = \frac{2\,TP_c + s}{2\,TP_c + FP_c + FN_c + s}
                       = \frac{2 \sum p g + s}{\sum p + \sum g + s}

    and the loss of each class is :math:`1 - \mathrm{Dice}_c` (or :math:`-\ln \mathrm{Dice}_c`),
    averaged over classes and samples. ``squared_pred=True`` uses V-Net's squared denominator,

    .. math::

       \mathrm{Dice}_c = \frac{2\,TP_c + s}{\sum_i w_i p_{ic}^2 + \sum_i w_i g_{ic}^2 + s},

    whose extra statistic :math:`\sum p^2` is computed only when a term asks for it.

    Peers: MONAI ``DiceLoss(softmax=True, to_onehot_y=True, smooth_nr=s, smooth_dr=s)`` equals
    ``smooth=s`` (MONAI's ``batch=True`` is ``aggregate="batch"``, ``weight`` is
    ``class_weights``, ``squared_pred`` is ``squared_pred`` (for soft dense targets MONAI's
    intersection is :math:`\sum p g`, this library's :math:`\sum \min(p, g)`; equal for hard
    targets); its ``reduction="sum"`` also sums over classes); optax
    ``dice_loss(logits, one_hot, smooth=s)`` is the Tversky form with :math:`\alpha = \beta =
    1/2`, so it equals ``smooth=2 * s`` with ``reduction="none"``; smp ``DiceLoss(mode, classes=K,
    smooth=s)`` pools the batch and zeroes the loss of classes absent from the target:
    ``aggregate="batch", absent_classes="zero", classes=K, smooth=s``.

    Args:
      <data args>
      squared_pred: use :math:`\sum p^2 + \sum g^2` as the denominator (V-Net, MONAI).
      <region args>
      <region absent classes>
      <shared args>

    <sample loss returns>

    Examples:
      <region example setup>
      >>> print(f"{jsl.dice_loss(logits, labels, smooth=0.0):.4f}")
      0.3334
      >>> print(f"{jsl.dice_loss(logits, labels, smooth=0.0, squared_pred=True):.4f}")
      0.3332

    References:
      Milletari, Navab & Ahmadi, "V-Net: Fully Convolutional Neural Networks for Volumetric
      Medical Image Segmentation", 3DV 2016.
    """
    _check_region_options(smooth, log, class_weights, include_background, classes, absent_classes)
    _checks.check_bool("squared_pred", squared_pred)
    options: dict[str, Any] = dict(
        class_weights=class_weights,
        include_background=include_background,
        classes=classes,
        absent_classes=absent_classes,
    )
    if not squared_pred:
        return overlap_loss(lambda stats: dice_from_stats(stats, smooth=smooth, log=log), **options)

    def sums(inputs: Inputs) -> dict[str, jax.Array]:
        pred_sq, target_sq = inputs.squared_sums()
        return {"tp": inputs.overlap_sums()[0], "pred_sq": pred_sq, "target_sq": target_sq}

    def per_class(s: dict[str, jax.Array]) -> jax.Array:
        score = safe_ratio(2.0 * s["tp"] + smooth, s["pred_sq"] + s["target_sq"] + smooth)
        return score_to_loss(score, log=log)

    # Σg² > 0 exactly where Σg > 0: the squared target sums tell the present classes.
    return overlap_loss(per_class, sums=sums, target_mass=lambda s: s["target_sq"], **options)


@define_loss
def tversky_loss(
    *,
    alpha: ArrayLike = 0.5,
    beta: ArrayLike = 0.5,
    gamma: ArrayLike = 1.0,
    smooth: ArrayLike = 1.0,
    log: bool = False,
    class_weights: ArrayLike | None = None,
    include_background: bool = True,
    classes: tuple[int, ...] | list[int] | None = None,
    absent_classes: str = "keep",
) -> LossDefinition:
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
    smp ``TverskyLoss(alpha, beta)`` pools the batch like ``aggregate="batch",
    absent_classes="zero"``, but its
    ``gamma`` raises the mean over classes rather than each class's loss (equal for
    ``gamma=1``).

    Args:
      <data args>
      alpha: weight of false positives (non-negative, default 0.5).
      beta: weight of false negatives (non-negative, default 0.5).
      gamma: focal exponent of each class's loss (non-negative, default 1).
      <region args>
      <region absent classes>
      <shared args>

    <sample loss returns>

    Examples:
      <region example setup>
      >>> print(f"{jsl.tversky_loss(logits, labels, alpha=0.3, beta=0.7, smooth=0.0):.4f}")
      0.3214

    References:
      Salehi, Erdogmus & Gholipour, "Tversky loss function for image segmentation using 3D fully
      convolutional deep networks", MLMI 2017. Abraham & Khan, "A Novel Focal Tversky Loss
      Function with Improved Attention U-Net for Lesion Segmentation", ISBI 2019.
    """
    for name, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        _checks.check_nonnegative(name, value)
    _check_region_options(smooth, log, class_weights, include_background, classes, absent_classes)
    return overlap_loss(
        lambda stats: tversky_from_stats(
            stats, alpha=alpha, beta=beta, gamma=gamma, smooth=smooth, log=log
        ),
        class_weights=class_weights,
        include_background=include_background,
        classes=classes,
        absent_classes=absent_classes,
    )


@define_loss
def generalized_dice_loss(
    *,
    weight_type: str = "square",
    smooth: ArrayLike = 1.0,
    log: bool = False,
    class_weights: ArrayLike | None = None,
    include_background: bool = True,
    classes: tuple[int, ...] | list[int] | None = None,
) -> LossDefinition:
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
      <data args>
      weight_type: ``"square"``, ``"simple"`` or ``"uniform"``.
      <region args>
      <shared args>

    <sample loss returns>

    Examples:
      <region example setup>
      >>> print(f"{jsl.generalized_dice_loss(logits, labels, smooth=0.0):.4f}")
      0.3335

    References:
      Sudre, Li, Vercauteren, Ourselin & Cardoso, "Generalised Dice overlap as a deep learning
      loss function for highly unbalanced segmentations", DLMIA 2017.
    """
    _checks.check_choice("weight_type", weight_type, GENERALIZED_DICE_WEIGHTS)
    _check_region_options(smooth, log, class_weights, include_background, classes)

    def finish(stats: OverlapStats) -> jax.Array:
        # The classes are combined in the sums, before the ratio: one loss per row.
        num_classes = stats.tp.shape[-1]
        tp, pred_sum, target_sum = stats.tp, stats.tp + stats.fp, stats.tp + stats.fn
        factors = jnp.ones((1, num_classes), tp.dtype)
        if class_weights is not None:
            factors = _checks.class_vector(
                "class_weights", class_weights, num_classes, tp.dtype, rank=2
            )
        kept = kept_classes(num_classes, include_background=include_background, classes=classes)
        tp, pred_sum, target_sum, factors = (
            select_classes(x, kept) for x in (tp, pred_sum, target_sum, factors)
        )
        weights = factors * generalized_dice_weights(target_sum, weight_type)
        numerator = 2.0 * jnp.sum(weights * tp, axis=-1) + smooth
        denominator = jnp.sum(weights * (pred_sum + target_sum), axis=-1) + smooth
        return score_to_loss(safe_ratio(numerator, denominator), log=log)

    return LossDefinition(sums=stats_of, finish=finish)


@define_loss
def mcc_loss(
    *,
    smooth_nr: ArrayLike = 0.0,
    smooth_dr: ArrayLike = 1e-5,
    class_weights: ArrayLike | None = None,
    include_background: bool = True,
) -> LossDefinition:
    r"""Computes the soft Matthews correlation loss, 1 − MCC per class (Abhishek & Hamarneh).

    Dice, IoU and Tversky ignore the true negatives; the Matthews correlation coefficient reads
    all four entries of the soft confusion matrix, so a false positive on a large background
    costs what it costs on a small one, which helps on strongly imbalanced images. Per class,

    .. math::

       \mathrm{MCC}_c = \frac{TP_c\,TN_c - FP_c\,FN_c + s_n}
       {\sqrt{(TP_c + FP_c)(TP_c + FN_c)(TN_c + FP_c)(TN_c + FN_c) + s_d}},

    with :math:`TN_c = \sum_i w_i - TP_c - FP_c - FN_c` (no extra pass over the logits). The
    loss of a class is :math:`1 - \mathrm{MCC}_c \in [0, 2]`, and exactly 0 where
    :math:`FP_c = FN_c = 0` (a perfect prediction, also of a class that fills the image or is
    absent from it, whose denominator vanishes); classes are averaged (``class_weights``
    multiply each term), then samples. A sample without a valid pixel has loss 0 and is left
    out of the mean.

    Peers: MONAI ``MCCLoss(softmax=True, to_onehot_y=True, smooth_nr=a, smooth_dr=b,
    batch=False)`` equals ``smooth_nr=a, smooth_dr=b`` (the same defaults, 0 and 1e-5, and the
    same rule for perfect predictions); its ``batch=True`` is ``aggregate="batch"``, its
    ``reduction="sum"`` also sums over classes. smp ``MCCLoss(eps=e)`` (binary, probabilities,
    the batch pooled) is ``activation=None`` (or ``"sigmoid"`` on logits) with
    ``aggregate="batch"``: smp adds ``e`` to each of TP, TN, FP, FN instead, a difference of
    order ``e`` (below 1e-4 on any image of more than a few pixels).

    Args:
      <data args>
      smooth_nr: added to the numerator (non-negative, default 0).
      smooth_dr: added under the square root of the denominator (non-negative, default 1e-5).
      class_weights: ``[C]`` weights multiplying each class's loss before the class mean.
      include_background: ``False`` drops class 0 from the class mean.
      <shared args>

    <loss returns>

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> probs = jnp.array([[[0.9], [0.2], [0.7], [0.1]]])   # [B=1, P=4, C=1]
      >>> labels = jnp.array([[1, 0, 1, 0]])   # TP 1.6, FP 0.3, FN 0.4, TN 1.7
      >>> print(f"{jsl.mcc_loss(probs, labels, activation=None, smooth_dr=0.0):.4f}")
      0.3492
      >>> perfect = jnp.array([[[1.0], [0.0], [1.0], [0.0]]])
      >>> print(f"{jax.jit(lambda x: jsl.mcc_loss(x, labels, activation=None))(perfect):.4f}")
      0.0000

    References:
      Abhishek & Hamarneh, "Matthews Correlation Coefficient Loss for Deep Convolutional
      Networks: Application to Skin Lesion Segmentation", ISBI 2021.
    """
    _checks.check_nonnegative("smooth_nr", smooth_nr)
    _checks.check_nonnegative("smooth_dr", smooth_dr)
    _check_region_options(0.0, False, class_weights, include_background)
    return overlap_loss(
        lambda stats: mcc_from_stats(stats, smooth_nr=smooth_nr, smooth_dr=smooth_dr),
        class_weights=class_weights,
        include_background=include_background,
    )
