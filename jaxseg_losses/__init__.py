"""jaxseg_losses: segmentation losses for JAX.

Soft IoU (Jaccard), Dice, Tversky and generalized Dice losses built on one core of soft
per-class statistics, as pure functions that run under ``jax.jit``, ``jax.grad``, ``jax.vmap``
and sharding. All functions share one data contract: ``logits`` ``[B, *spatial, C]``
(channels-last; ``class_axis=1`` for NCHW), ``labels`` as integer indices ``[B, *spatial]`` or
dense float targets ``[B, *spatial, C]``, optional ``mask`` ``[B, *spatial]`` and
``ignore_index``; computation in float32 or wider.
"""

from jaxseg_losses import per_sample
from jaxseg_losses._checks import checked
from jaxseg_losses.lovasz import lovasz_hinge_loss, lovasz_softmax_loss
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
    "OverlapStats",
    "checked",
    "dice_from_stats",
    "dice_loss",
    "generalized_dice_loss",
    "iou_from_stats",
    "iou_loss",
    "lovasz_hinge_loss",
    "lovasz_softmax_loss",
    "overlap_stats",
    "per_sample",
    "tversky_from_stats",
    "tversky_loss",
]
