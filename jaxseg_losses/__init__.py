"""jaxseg_losses: segmentation losses for JAX.

Soft IoU (Jaccard), Dice, Tversky and generalized Dice losses built on one core of soft
per-class statistics, as pure functions that run under ``jax.jit``, ``jax.grad``, ``jax.vmap``
and sharding. All functions share one data contract: ``logits`` ``[B, *spatial, C]``
(channels-last; ``class_axis=1`` for NCHW), ``labels`` as integer indices ``[B, *spatial]`` or
dense float targets ``[B, *spatial, C]``, optional ``mask`` ``[B, *spatial]`` and
``ignore_index``; computation in float32 or wider.
"""

from jaxseg_losses import accumulate, metrics, per_sample
from jaxseg_losses._checks import checked
from jaxseg_losses.accumulate import AdditiveLoss, additive_loss
from jaxseg_losses.compose import (
    combine,
    dice_ce_loss,
    dice_focal_loss,
    get_loss,
    iou_ce_loss,
    parse_loss_spec,
    register_loss,
    registered_losses,
)
from jaxseg_losses.lovasz import lovasz_hinge_loss, lovasz_softmax_loss
from jaxseg_losses.pixelwise import cross_entropy_loss, cross_entropy_map, focal_loss, focal_map
from jaxseg_losses.region import dice_loss, generalized_dice_loss, iou_loss, tversky_loss
from jaxseg_losses.stats import (
    OverlapStats,
    dice_from_stats,
    iou_from_stats,
    overlap_stats,
    tversky_from_stats,
)

__version__ = "0.1.0"

__all__ = [
    "AdditiveLoss",
    "OverlapStats",
    "accumulate",
    "additive_loss",
    "checked",
    "combine",
    "cross_entropy_loss",
    "cross_entropy_map",
    "dice_ce_loss",
    "dice_focal_loss",
    "dice_from_stats",
    "dice_loss",
    "focal_loss",
    "focal_map",
    "generalized_dice_loss",
    "get_loss",
    "iou_ce_loss",
    "iou_from_stats",
    "iou_loss",
    "lovasz_hinge_loss",
    "lovasz_softmax_loss",
    "metrics",
    "overlap_stats",
    "parse_loss_spec",
    "per_sample",
    "register_loss",
    "registered_losses",
    "tversky_from_stats",
    "tversky_loss",
]
