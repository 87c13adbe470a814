"""Reductions shared by every loss: over classes, then over the batch (and devices)."""

from typing import Any

import jax
import jax.numpy as jnp

from jaxseg_losses import _checks


def class_mean(per_class: jax.Array, *, class_weights: Any, include_background: bool) -> jax.Array:
    """Mean over the class axis of ``w_c * loss_c``: ``[..., C] -> [...]``.

    Weights multiply each class's loss and the mean runs over the kept classes, as in MONAI's
    ``DiceLoss(weight=...)`` and optax's ``dice_loss(class_weights=...)``; ``include_background``
    drops class 0 after weighting.
    """
    num_classes = per_class.shape[-1]
    if class_weights is not None:
        per_class = per_class * _checks.class_vector(
            "class_weights", class_weights, num_classes, per_class.dtype, rank=per_class.ndim
        )
    if not include_background:
        check_can_drop_background(num_classes)
        per_class = per_class[..., 1:]
    return jnp.mean(per_class, axis=-1)


def check_can_drop_background(num_classes: int) -> None:
    """``include_background=False`` needs a class left after dropping class 0."""
    if num_classes < 2:
        raise ValueError(
            "include_background=False drops class 0, which would leave no class: the logits "
            "have a single channel. Keep include_background=True for binary sigmoid outputs."
        )


def batch_reduce(per_sample: jax.Array, reduction: str, *, axis_name: Any = None) -> jax.Array:
    """Reduces ``[B]`` per-sample losses; with ``axis_name`` the mean and sum span all devices."""
    _checks.check_choice("reduction", reduction, _checks.REDUCTIONS)
    if reduction == "none":
        return per_sample
    total = jnp.sum(per_sample)
    count = jnp.asarray(per_sample.shape[0], per_sample.dtype)
    if axis_name is not None:
        total = jax.lax.psum(total, axis_name)
        count = jax.lax.psum(count, axis_name)
    return total if reduction == "sum" else total / count


def check_reduction_for_aggregate(reduction: str, aggregate: str) -> None:
    """A batch-aggregated loss has one value for the whole batch, not one per sample."""
    _checks.check_choice("reduction", reduction, _checks.REDUCTIONS)
    _checks.check_choice("aggregate", aggregate, _checks.AGGREGATES)
    if aggregate == "batch" and reduction == "none":
        raise ValueError(
            "reduction='none' returns one loss per sample, but aggregate='batch' pools the batch "
            "into one loss; use reduction='mean' (or aggregate='sample')."
        )
