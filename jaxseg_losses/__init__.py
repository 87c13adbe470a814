"""jaxseg_losses: segmentation losses and metrics for JAX.

Soft IoU (Jaccard), Dice, Tversky, generalized Dice, Matthews correlation, cross-entropy, focal,
Lovász, boundary, Hausdorff distance-transform and clDice losses, each
described once by additive per-sample statistics and a finishing step
(:class:`LossDefinition`), as pure functions that run under ``jax.jit``, ``jax.grad``,
``jax.vmap`` and sharding. All functions share one data contract: ``logits`` ``[B, *spatial, C]``
(channels-last; ``class_axis=1`` for NCHW), ``labels`` as integer indices ``[B, *spatial]`` or
dense float targets ``[B, *spatial, C]``, optional ``mask`` ``[B, *spatial]`` and
``ignore_index``; computation in float32 or wider.

The metrics as Flax NNX and CLU metrics are ``jaxseg_losses.nnx`` and ``jaxseg_losses.clu``
(the ``nnx`` and ``clu`` extras); ``jsl.nnx`` and ``jsl.clu`` import them on first use.
"""

import importlib

from jaxseg_losses import accumulate, geometry, metrics, per_sample
from jaxseg_losses._core.checks import checked
from jaxseg_losses._core.define import define_loss
from jaxseg_losses._core.definition import LossDefinition
from jaxseg_losses._core.inputs import Inputs
from jaxseg_losses.combine import CombinedLoss, combine
from jaxseg_losses.deep_supervision import DeepSupervisionLoss, deep_supervision
from jaxseg_losses.losses.blob import blob_loss
from jaxseg_losses.losses.focal import focal_loss, focal_map
from jaxseg_losses.losses.lovasz import lovasz_hinge_loss, lovasz_softmax_loss
from jaxseg_losses.losses.nacl import nacl_loss
from jaxseg_losses.losses.pairs import dice_ce_loss, dice_focal_loss, iou_ce_loss
from jaxseg_losses.losses.pixelwise import (
    binary_cross_entropy_loss,
    cross_entropy_loss,
    cross_entropy_map,
    poly_cross_entropy_loss,
    topk_cross_entropy_loss,
)
from jaxseg_losses.losses.region import (
    dice_loss,
    generalized_dice_loss,
    iou_loss,
    mcc_loss,
    tversky_loss,
)
from jaxseg_losses.losses.skeleton_recall import skeleton_recall_loss
from jaxseg_losses.losses.spatial import (
    boundary_distance_maps,
    boundary_loss,
    cldice_loss,
    hausdorff_dt_loss,
)
from jaxseg_losses.losses.stats import (
    OverlapStats,
    dice_from_stats,
    iou_from_stats,
    mcc_from_stats,
    overlap_stats,
    tversky_from_stats,
)
from jaxseg_losses.losses.unified_focal import unified_focal_loss
from jaxseg_losses.losses.wasserstein import generalized_wasserstein_dice_loss
from jaxseg_losses.registry import get_loss, parse_loss_spec, register_loss, registered_losses

__version__ = "0.2.0"

__all__ = [
    "CombinedLoss",
    "DeepSupervisionLoss",
    "Inputs",
    "LossDefinition",
    "OverlapStats",
    "accumulate",
    "binary_cross_entropy_loss",
    "blob_loss",
    "boundary_distance_maps",
    "boundary_loss",
    "checked",
    "cldice_loss",
    "combine",
    "cross_entropy_loss",
    "cross_entropy_map",
    "deep_supervision",
    "define_loss",
    "dice_ce_loss",
    "dice_focal_loss",
    "dice_from_stats",
    "dice_loss",
    "focal_loss",
    "focal_map",
    "generalized_dice_loss",
    "generalized_wasserstein_dice_loss",
    "geometry",
    "get_loss",
    "hausdorff_dt_loss",
    "iou_ce_loss",
    "iou_from_stats",
    "iou_loss",
    "lovasz_hinge_loss",
    "lovasz_softmax_loss",
    "mcc_from_stats",
    "mcc_loss",
    "metrics",
    "nacl_loss",
    "overlap_stats",
    "parse_loss_spec",
    "per_sample",
    "poly_cross_entropy_loss",
    "register_loss",
    "registered_losses",
    "skeleton_recall_loss",
    "topk_cross_entropy_loss",
    "tversky_from_stats",
    "tversky_loss",
    "unified_focal_loss",
]


def __getattr__(name: str):
    """``jsl.nnx`` and ``jsl.clu`` import their optional dependencies on first use."""
    if name in ("nnx", "clu"):
        return importlib.import_module(f"jaxseg_losses.{name}")
    raise AttributeError(f"module 'jaxseg_losses' has no attribute {name!r}")
