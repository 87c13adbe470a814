r"""Skeleton Recall loss: the soft recall of the ground truth's tubed skeleton.

Kirchhoff et al.'s loss for thin tubular structures (vessels, nerves, roads, cracks): the
skeleton of the ground-truth foreground is computed once, without gradient, thickened into a
tube by a few dilations and split by class; the loss is one minus the fraction of that tube
that the predicted probabilities cover. A break in a predicted vessel leaves a piece of the
tube uncovered however thin the gap, as with clDice, but the skeleton is the exact binary one
of the labels, not a differentiable soft skeleton of the prediction: the loss is a pixel-wise
weighted sum, a fraction of clDice's cost in time and memory.

Data contract: ``logits`` ``[B, H, W, C]`` (``class_axis`` moves C), ``labels`` integer
``[B, H, W]`` or dense float ``[B, H, W, C]``, ``mask`` ``[B, H, W]``; float32 results for
bf16/f16/f32 logits. With ``precomputed=True`` the labels are already the tubed skeletons and
any number of spatial axes (1, 2 or 3) is accepted: the 3-D skeleton of the authors
(scikit-image's ``skeletonize`` of a volume, Lee et al.'s sequential thinning) is not
computed here.
"""

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxseg_losses._core import checks as _checks
from jaxseg_losses._core.classes import kept_classes, select_classes
from jaxseg_losses._core.define import define_loss
from jaxseg_losses._core.definition import LossDefinition
from jaxseg_losses._core.inputs import Inputs
from jaxseg_losses.geometry.morphology import soft_erode
from jaxseg_losses.geometry.skeleton import skeletonize


def _tube(skeleton: jax.Array, iterations: int) -> jax.Array:
    """``[B, *spatial]`` float 0/1 skeletons dilated ``iterations`` times by the cross of
    connectivity 1 (scikit-image's default footprint), borders seeing only the image."""
    image = skeleton[..., None]
    for _ in range(iterations):
        # A dilation is the erosion of the complement: max over the cross = -min over it of -x.
        image = -soft_erode(-image)
    return image[..., 0]


def tubed_skeleton_targets(inputs: Inputs, tube_iterations: int) -> jax.Array:
    """``[B, P, C]`` targets on the tubed skeleton of the foreground of each 2-D sample.

    The foreground is every kept pixel whose targets put at least half their weight on the
    classes other than 0; its skeleton (:func:`jaxseg_losses.geometry.skeleton.skeletonize`)
    is dilated ``tube_iterations`` times and multiplied with the targets, so each tube pixel
    belongs to the class of its label (tube pixels outside the foreground to none).
    """
    targets = inputs.dense_targets()
    kept = inputs.weights != 0
    if targets.shape[-1] == 1:
        foreground_share = targets[..., 0]
    else:
        foreground_share = 1.0 - targets[..., 0]
    foreground = (foreground_share >= 0.5) & kept
    shape = (foreground.shape[0], *inputs.spatial_shape)
    skeleton = skeletonize(foreground.reshape(shape)).astype(targets.dtype)
    tube = _tube(skeleton, tube_iterations).reshape(foreground.shape)
    return jnp.where(kept, tube, 0.0)[..., None] * targets


@define_loss
def skeleton_recall_loss(
    *,
    smooth: ArrayLike = 1e-5,
    tube_iterations: int = 2,
    precomputed: bool = False,
) -> LossDefinition:
    r"""Computes the Skeleton Recall loss of Kirchhoff et al. for thin tubular structures.

    The skeleton of the ground-truth foreground (scikit-image's 2-D skeleton, exactly), dilated
    ``tube_iterations`` times by the cross of connectivity 1, gives for each foreground class
    :math:`k` a tube :math:`T_k` (the tube pixels labelled :math:`k`). The loss is one minus
    the mean over the foreground classes of their soft recall:

    .. math::

       R_k = \frac{\sum_i w_i\, p_{ik}\, T_{ik} + s}{\max(\sum_i w_i\, T_{ik} + s,\ 10^{-8})},
       \qquad \mathcal{L} = 1 - \frac{1}{C - 1} \sum_{k \ge 1} R_k,

    sums over the pixels of a sample (of the batch with ``aggregate="batch"``, the authors'
    ``batch_dice``). Class 0 is never counted (a single sigmoid channel is the foreground).
    Only the prediction is differentiated: the skeleton is computed from the labels, without
    gradient, so the loss costs about as much as a Dice loss. Combine it with a region loss, as
    the authors do (``combine("ce+dice+skeleton_recall")``). Masked and ignored pixels are
    background before the skeleton is taken and count nowhere in the sums.

    Peers: the authors' nnU-Net ``SoftSkeletonRecallLoss(apply_nonlin=softmax, do_bg=False,
    batch_dice=b, smooth=s)(x, skel)`` with ``skel`` from their ``SkeletonTransform(do_tube=True)``
    equals ``1 +`` it with ``smooth=s, aggregate="batch" if b else "sample"`` (they return
    minus the recall; their trainer uses ``smooth=1e-5``). Their transform skeletonises
    ``seg > 0`` including ignore-labelled pixels; here excluded pixels are background, so that
    they are inert. Their 3-D transform uses scikit-image's 3-D skeleton, which this library
    does not compute: pass its tubed skeleton labels with ``precomputed=True``.

    Args:
      <data args>
      smooth: added to numerator and denominator of each recall (non-negative, default
        ``1e-5``, the authors' trainer's).
      tube_iterations: dilations of the skeleton by the cross of connectivity 1 (an int >= 0,
        default 2, the authors' "tube").
      precomputed: ``True`` reads ``labels`` as the tubed skeleton labels themselves (class
        :math:`k` on the tube pixels of class :math:`k`, 0 elsewhere), computed outside, e.g.
        in the data pipeline; required for 1-D and 3-D images.
      <shared args>

    <sample loss returns>

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jaxseg_losses.losses.skeleton_recall import skeleton_recall_loss
      >>> vessel = jnp.zeros((1, 7, 9), jnp.int32).at[0, 2:5, :].set(1)    # a 3-pixel band
      >>> perfect = jax.nn.one_hot(vessel, 2)                               # probabilities
      >>> broken = perfect.at[0, :, 4].set(jnp.array([1.0, 0.0]))           # cut across
      >>> print(f"{skeleton_recall_loss(perfect, vessel, activation=None):.4f}")
      0.0000
      >>> print(f"{skeleton_recall_loss(broken, vessel, activation=None):.4f}")
      0.1154

    References:
      Kirchhoff, Rokuss, Roy, Kovacs, Ulrich, Wald, Zenk, Vollmuth, Kleesiek, Isensee & Maier-
      Hein, "Skeleton Recall Loss for Connectivity Conserving and Resource Efficient
      Segmentation of Thin Tubular Structures", ECCV 2024.
    """
    _checks.check_nonnegative("smooth", smooth)
    tube_iterations = _checks.check_static_int("tube_iterations", tube_iterations, 0)
    _checks.check_bool("precomputed", precomputed)

    def sums(inputs: Inputs) -> dict[str, jax.Array]:
        dims = len(inputs.spatial_shape)
        if precomputed:
            tube = inputs.dense_targets()
        elif dims == 2:
            tube = tubed_skeleton_targets(inputs, tube_iterations)
        else:
            raise ValueError(
                "skeleton_recall_loss computes the skeleton of 2-D images only: `logits` must "
                f"be [B, H, W, C]; got {dims} spatial axes {inputs.spatial_shape}. Pass the "
                "tubed skeleton labels with precomputed=True for other images."
            )
        kept = kept_classes(
            inputs.num_classes, include_background=False, single_channel_is_foreground=True
        )
        tube = jax.lax.stop_gradient(select_classes(tube, kept))
        probs = select_classes(inputs.probabilities(), kept)
        weights = inputs.weights[..., None]
        return {
            "hits": jnp.sum(weights * probs * tube, axis=1),
            "tube": jnp.sum(weights * tube, axis=1),
        }

    def finish(s: dict[str, jax.Array]) -> jax.Array:
        recall = (s["hits"] + smooth) / jnp.maximum(s["tube"] + smooth, 1e-8)
        return 1.0 - jnp.mean(recall, axis=-1)

    return LossDefinition(sums=sums, finish=finish)


__all__ = ["skeleton_recall_loss", "tubed_skeleton_targets"]
