"""Single-example variants of every loss: no batch axis, for ``jax.vmap``.

``per_sample.dice_loss(logits_i, labels_i)`` takes one example, ``logits_i`` ``[*spatial, C]``
and ``labels_i`` ``[*spatial]`` (or dense ``[*spatial, C]``), ``mask_i`` ``[*spatial]``, and
returns a scalar. ``jax.vmap(per_sample.dice_loss)(logits, labels)`` equals
``dice_loss(logits, labels, reduction="none")``. ``class_axis`` counts the axes of one example
(``0`` for CHW). Batch-only options (``aggregate``, ``axis_name``, ``reduction``) do not apply.

Examples:
  >>> import jax, jax.numpy as jnp
  >>> import jaxseg_losses as jsl
  >>> logits = jax.random.normal(jax.random.key(0), (4, 8, 8, 3))
  >>> labels = jax.random.randint(jax.random.key(1), (4, 8, 8), 0, 3)
  >>> per_image = jax.vmap(jsl.per_sample.dice_loss)(logits, labels)
  >>> per_image.shape
  (4,)
  >>> bool(jnp.allclose(per_image, jsl.dice_loss(logits, labels, reduction="none")))
  True
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxseg_losses._core import checks as _checks
from jaxseg_losses._core.docs import set_doc
from jaxseg_losses._core.signatures import give_signature
from jaxseg_losses.registry import BUILTIN_LOSSES

_BATCH_ONLY = ("aggregate", "axis_name", "reduction")


def single_example(batch_loss: Callable[..., jax.Array]) -> Callable[..., jax.Array]:
    """Makes the single-example variant of a batched loss ``f(logits, labels, *, ...)``.

    The variant takes one example without its batch axis, calls ``batch_loss`` on a batch of one
    with ``reduction="none"`` and returns that sample's loss, so ``jax.vmap`` of it equals the
    batched loss with ``reduction="none"``. Its ``class_axis`` counts the axes of one example (0
    for CHW); the batch-only options ``aggregate``, ``axis_name`` and ``reduction`` are refused.

    Args:
      batch_loss: a loss ``f(logits, labels, *, class_axis, mask, ...)`` over batched
        ``[B, *spatial, C]`` logits.

    Returns:
      The single-example loss ``(logits_i, labels_i, *, ...)`` over ``[*spatial, C]`` logits,
      returning the loss of that one example.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> per_image_iou = jsl.per_sample.single_example(jsl.iou_loss)
      >>> logits = jnp.zeros((2, 4, 4, 3))
      >>> labels = jnp.zeros((2, 4, 4), jnp.int32)
      >>> jax.vmap(per_image_iou)(logits, labels).shape
      (2,)
    """
    parameters = inspect.signature(batch_loss).parameters

    @functools.wraps(batch_loss)
    def loss(logits: Any, labels: Any, *, class_axis: int = -1, mask: Any = None, **options):
        for name in options:
            if name in _BATCH_ONLY or name not in parameters:
                raise TypeError(
                    f"per_sample.{batch_loss.__name__} got an unexpected keyword {name!r}."
                )
        logits, labels = jnp.asarray(logits), jnp.asarray(labels)
        # Checked against one example's rank, so an error names the axis the caller passed.
        batched_axis = _checks.normalize_axis("class_axis", class_axis, logits.ndim) + 1
        batched_mask = None if mask is None else jnp.asarray(mask)[None]
        extra = {"reduction": "none"} if "reduction" in parameters else {}
        per_sample = batch_loss(
            logits[None],
            labels[None],
            class_axis=batched_axis,
            mask=batched_mask,
            **options,
            **extra,
        )
        # Combined losses may return (total, parts): drop the batch axis of every leaf.
        return jax.tree.map(lambda x: x[0], per_sample)

    keep = [p for name, p in parameters.items() if name not in _BATCH_ONLY]
    give_signature(loss, inspect.Signature(keep, return_annotation="jax.Array"))
    return set_doc(
        loss,
        f"Single-example :func:`jaxseg_losses.{batch_loss.__name__}`: ``logits`` ``[*spatial, C]``,"
        f" ``labels`` ``[*spatial]`` or ``[*spatial, C]``; returns a scalar. See the module doc.",
    )


# One variant per built-in loss, named as the loss; the table of the built-in losses is the list.
_VARIANTS = {entry.name: single_example(entry.fn) for entry in BUILTIN_LOSSES}
globals().update(_VARIANTS)

__all__ = sorted([*_VARIANTS, "single_example"])  # pyright: ignore[reportUnsupportedDunderAll]
