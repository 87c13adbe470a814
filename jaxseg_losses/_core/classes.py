r"""Which classes count, and how much: one home for the losses and the metrics.

* :func:`kept_classes`: the static class indices a mean over classes reads, from
  ``include_background`` and ``classes`` (``None`` when every class counts);
* :func:`class_mean`: the weighted mean over the kept classes of a per-class loss, with the
  three readings of a class absent from the target (``absent_classes``);
* :func:`class_factors`: per-class factors of a per-pixel loss (class weights, the background
  dropped), for the pixel-wise losses that weigh classes before summing them;
* :func:`generalized_dice_weights`: Sudre's weights from the target volume of each class, read by
  the generalized Dice loss and the generalized Dice metric alike.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxseg_losses._core import checks as _checks
from jaxseg_losses._core.definition import divide

ABSENT_CLASSES = ("keep", "zero", "exclude")
GENERALIZED_DICE_WEIGHTS = ("square", "simple", "uniform")


def check_can_drop_background(num_classes: int) -> None:
    """``include_background=False`` needs a class left after dropping class 0."""
    if num_classes < 2:
        raise ValueError(
            "include_background=False drops class 0, which would leave no class: the logits "
            "have a single channel. Keep include_background=True for binary sigmoid outputs."
        )


def kept_classes(
    num_classes: int,
    *,
    include_background: bool,
    classes: Any = None,
    single_channel_is_foreground: bool = False,
) -> tuple[int, ...] | None:
    """The static class indices of a mean over classes, or ``None`` for all of them.

    ``single_channel_is_foreground=True`` reads one channel as the foreground of a binary
    sigmoid output, kept whatever ``include_background`` says (MONAI's spatial losses); without
    it, dropping the background of a single channel is an error.
    """
    if not include_background and num_classes == 1 and single_channel_is_foreground:
        include_background = True
    if classes is None and include_background:
        return None
    if not include_background:
        check_can_drop_background(num_classes)
    kept = tuple(range(num_classes)) if classes is None else classes
    kept = _checks.class_indices("classes", kept, num_classes)
    if not include_background:
        kept = tuple(c for c in kept if c != 0)
        if not kept:
            raise ValueError(
                f"`classes`={classes!r} with include_background=False leaves no class; keep "
                "class 0 or name a foreground class."
            )
    return kept


def select_classes(x: jax.Array, kept: tuple[int, ...] | None) -> jax.Array:
    """``x[..., kept]``: the kept classes of the last axis (all of them for ``None``)."""
    return x if kept is None else x[..., np.asarray(kept)]


def class_mean(
    per_class: jax.Array,
    *,
    class_weights: Any,
    include_background: bool,
    classes: Any = None,
    absent_classes: str = "keep",
    target_sum: jax.Array | None = None,
) -> jax.Array:
    """Mean over the class axis of ``w_c * loss_c``: ``[..., C] -> [...]``.

    Weights multiply each class's loss and the mean runs over the kept classes, as in MONAI's
    ``DiceLoss(weight=...)`` and optax's ``dice_loss(class_weights=...)``; ``include_background``
    and ``classes`` select the classes after weighting; ``absent_classes`` (with the per-class
    ``target_sum``) decides what a class absent from the target contributes.
    """
    num_classes = per_class.shape[-1]
    if class_weights is not None:
        per_class = per_class * _checks.class_vector(
            "class_weights", class_weights, num_classes, per_class.dtype, rank=per_class.ndim
        )
    kept = kept_classes(num_classes, include_background=include_background, classes=classes)
    per_class = select_classes(per_class, kept)
    if absent_classes == "keep":
        return jnp.mean(per_class, axis=-1)
    assert target_sum is not None
    target_sum = select_classes(target_sum, kept)
    present = target_sum > 0
    zero = jnp.zeros((), per_class.dtype)
    # NaN statistics (a label that is no class) must stay loud: NaN > 0 is False.
    loud = jnp.where(jnp.isnan(target_sum), target_sum, zero)
    per_class = jnp.where(present, per_class, zero) + loud
    if absent_classes == "zero":
        return jnp.mean(per_class, axis=-1)
    count = jnp.sum(present.astype(per_class.dtype), axis=-1)
    return divide(jnp.sum(per_class, axis=-1), count)


def class_factors(
    num_classes: int,
    dtype: Any,
    class_weights: ArrayLike | None,
    include_background: bool,
    *,
    rank: int,
) -> jax.Array | None:
    """Per-class factors ``[1, ..., 1, C]`` of a per-pixel loss: the class weights, with the
    background's set to 0 when it is dropped; ``None`` when every factor is 1."""
    factors = None
    if class_weights is not None:
        factors = _checks.class_vector(
            "class_weights", class_weights, num_classes, dtype, rank=rank
        )
    if not include_background:
        check_can_drop_background(num_classes)
        keep = jnp.ones((1,) * (rank - 1) + (num_classes,), dtype).at[..., 0].set(0.0)
        factors = keep if factors is None else factors * keep
    return factors


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
