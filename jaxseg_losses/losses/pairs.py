r"""The ready-made pairs of a region loss and a pixel-wise loss: Dice + CE, Dice + focal, IoU + CE.

Each is the combination of its two terms with the data options given once (as
:func:`jaxseg_losses.combine` builds it), evaluated on one shared
:class:`~jaxseg_losses.Inputs`: CE + Dice reads one log-sum-exp per pixel, in one pass over the
logits forward and one backward. They are functions (not combinations) so that their
signatures name each term's weight and options, as MONAI's ``DiceCELoss`` does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax

from jaxseg_losses._core import engine
from jaxseg_losses._core.docs import documented
from jaxseg_losses.losses import focal, pixelwise, region

ArrayLike = jax.typing.ArrayLike
LossFn = Callable[..., Any]


def _two_terms(
    logits: ArrayLike,
    labels: ArrayLike,
    terms: dict[str, tuple[Any, LossFn, Mapping[str, Any] | None]],
    *,
    activation: str | None,
    class_axis: int,
    ignore_index: int | None,
    mask: ArrayLike | None,
    axis_name: Any,
    reduction: str,
    return_parts: bool,
) -> Any:
    bound = engine.bind_terms(
        (
            (name, weight, functools.partial(fn, **dict(options or {})))
            for name, (weight, fn, options) in terms.items()
        ),
        activation=activation,
        reduction=reduction,
        axis_name=axis_name,
    )
    total, parts = engine.evaluate(
        bound,
        logits,
        labels,
        mask=mask,
        activation=activation,
        class_axis=class_axis,
        ignore_index=ignore_index,
        axis_name=axis_name,
        reduction=reduction,
    )
    return (total, parts) if return_parts else total


@documented
def dice_ce_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    dice_weight: ArrayLike = 1.0,
    ce_weight: ArrayLike = 1.0,
    dice_options: Mapping[str, Any] | None = None,
    ce_options: Mapping[str, Any] | None = None,
    activation: str | None = "softmax",
    class_axis: int = -1,
    ignore_index: int | None = None,
    mask: ArrayLike | None = None,
    axis_name: Any = None,
    reduction: str = "mean",
    return_parts: bool = False,
) -> Any:
    r"""Computes Dice + cross-entropy, the nnU-Net recipe, with one pass over the logits.

    .. math::

       L = \lambda_{\mathrm{dice}}\, L_{\mathrm{Dice}} + \lambda_{\mathrm{ce}}\, L_{\mathrm{CE}}

    The data options apply to both terms; options of one term go in its dict, e.g.
    ``dice_options={"smooth": 1e-5, "include_background": False, "aggregate": "batch"}`` (nnU-Net)
    or ``ce_options={"class_weights": w}``. See :func:`jaxseg_losses.dice_loss` and
    :func:`jaxseg_losses.cross_entropy_loss`.

    Args:
      dice_weight: :math:`\lambda_{\mathrm{dice}}`.
      ce_weight: :math:`\lambda_{\mathrm{ce}}`.
      dice_options: keyword options of :func:`jaxseg_losses.dice_loss`.
      ce_options: keyword options of :func:`jaxseg_losses.cross_entropy_loss`.
      <pair args>

    <pair returns>

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 2.0], [1.0, 0.0]]])
      >>> labels = jnp.array([[0, 1, 1]])
      >>> total, parts = jsl.dice_ce_loss(logits, labels, return_parts=True)
      >>> print(f"{total:.4f} = {parts['dice']:.4f} + {parts['ce']:.4f}")
      0.7658 = 0.2435 + 0.5224

    References:
      Isensee et al., "nnU-Net", Nature Methods 2021. Milletari et al., "V-Net", 3DV 2016.
    """
    return _two_terms(
        logits,
        labels,
        {
            "dice": (dice_weight, region.dice_loss, dice_options),
            "ce": (ce_weight, pixelwise.cross_entropy_loss, ce_options),
        },
        activation=activation,
        class_axis=class_axis,
        ignore_index=ignore_index,
        mask=mask,
        axis_name=axis_name,
        reduction=reduction,
        return_parts=return_parts,
    )


@documented
def dice_focal_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    dice_weight: ArrayLike = 1.0,
    focal_weight: ArrayLike = 1.0,
    dice_options: Mapping[str, Any] | None = None,
    focal_options: Mapping[str, Any] | None = None,
    activation: str | None = "softmax",
    class_axis: int = -1,
    ignore_index: int | None = None,
    mask: ArrayLike | None = None,
    axis_name: Any = None,
    reduction: str = "mean",
    return_parts: bool = False,
) -> Any:
    r"""Computes Dice + focal loss, with one pass over the logits.

    .. math::

       L = \lambda_{\mathrm{dice}}\, L_{\mathrm{Dice}} + \lambda_{\mathrm{focal}}\,
           L_{\mathrm{focal}}

    Focal options (``gamma``, ``alpha``) go in ``focal_options``; see
    :func:`jaxseg_losses.focal_loss`.

    Args:
      dice_weight: :math:`\lambda_{\mathrm{dice}}`.
      focal_weight: :math:`\lambda_{\mathrm{focal}}`.
      dice_options: keyword options of :func:`jaxseg_losses.dice_loss`.
      focal_options: keyword options of :func:`jaxseg_losses.focal_loss`.
      <pair args>

    <pair returns>

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 2.0], [1.0, 0.0]]])
      >>> labels = jnp.array([[0, 1, 1]])
      >>> print(f"{jsl.dice_focal_loss(logits, labels, focal_options={'gamma': 2.0}):.4f}")
      0.4786

    References:
      Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017. Zhu et al., "AnatomyNet",
      Medical Physics 2019 (Dice + focal).
    """
    return _two_terms(
        logits,
        labels,
        {
            "dice": (dice_weight, region.dice_loss, dice_options),
            "focal": (focal_weight, focal.focal_loss, focal_options),
        },
        activation=activation,
        class_axis=class_axis,
        ignore_index=ignore_index,
        mask=mask,
        axis_name=axis_name,
        reduction=reduction,
        return_parts=return_parts,
    )


@documented
def iou_ce_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    iou_weight: ArrayLike = 1.0,
    ce_weight: ArrayLike = 1.0,
    iou_options: Mapping[str, Any] | None = None,
    ce_options: Mapping[str, Any] | None = None,
    activation: str | None = "softmax",
    class_axis: int = -1,
    ignore_index: int | None = None,
    mask: ArrayLike | None = None,
    axis_name: Any = None,
    reduction: str = "mean",
    return_parts: bool = False,
) -> Any:
    r"""Computes soft IoU (Jaccard) + cross-entropy, with one pass over the logits.

    .. math::

       L = \lambda_{\mathrm{iou}}\, L_{\mathrm{IoU}} + \lambda_{\mathrm{ce}}\, L_{\mathrm{CE}}

    Args:
      iou_weight: :math:`\lambda_{\mathrm{iou}}`.
      ce_weight: :math:`\lambda_{\mathrm{ce}}`.
      iou_options: keyword options of :func:`jaxseg_losses.iou_loss` (e.g. ``{"log": True}``).
      ce_options: keyword options of :func:`jaxseg_losses.cross_entropy_loss`.
      <pair args>

    <pair returns>

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 2.0], [1.0, 0.0]]])
      >>> labels = jnp.array([[0, 1, 1]])
      >>> print(f"{jsl.iou_ce_loss(logits, labels):.4f}")
      0.8478

    References:
      Rahman & Wang, "Optimizing Intersection-Over-Union in Deep Neural Networks for Image
      Segmentation", ISVC 2016.
    """
    return _two_terms(
        logits,
        labels,
        {
            "iou": (iou_weight, region.iou_loss, iou_options),
            "ce": (ce_weight, pixelwise.cross_entropy_loss, ce_options),
        },
        activation=activation,
        class_axis=class_axis,
        ignore_index=ignore_index,
        mask=mask,
        axis_name=axis_name,
        reduction=reduction,
        return_parts=return_parts,
    )
