r"""Deep supervision: one loss applied to the outputs of several decoder levels.

A deeply supervised network (nnU-Net, MONAI's DynUNet) predicts logits at several resolutions;
:func:`deep_supervision` compares each with the labels and mask resized to it (nearest-exact
gathers of :mod:`jaxseg_losses.geometry.resize`) and adds the weighted losses. The loss of each
level is a :class:`~jaxseg_losses.CombinedLoss`, so every level's statistics are additive sums
and :func:`jaxseg_losses.accumulate.value_and_grad` accumulates a deeply supervised loss exactly.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from jaxseg_losses._core import checks as _checks
from jaxseg_losses._core import engine
from jaxseg_losses.combine import CombinedLoss, combine
from jaxseg_losses.geometry.resize import resize_nearest

ArrayLike = jax.typing.ArrayLike
Parts = dict[str, jax.Array]


DEEP_SUPERVISION_WEIGHTS = ("exp", "same", "two", "nnunet")


def deep_supervision_weights(spec: Any, levels: int) -> tuple[float, ...]:
    """The weight of each of ``levels`` outputs, full resolution first.

    ``"exp"``: :math:`\\max(2^{-l}, 1/16)` (MONAI); ``"same"``: 1; ``"two"``: 1 then 1/2
    (MONAI); ``"nnunet"``: :math:`2^{-l}`, the lowest resolution 0, normalised to sum 1; a
    sequence: one weight per level, as given.
    """
    if isinstance(spec, str):
        _checks.check_choice("weights", spec, DEEP_SUPERVISION_WEIGHTS)
        if spec == "exp":
            return tuple(max(0.5**level, 0.0625) for level in range(levels))
        if spec == "same":
            return (1.0,) * levels
        if spec == "two":
            return tuple(1.0 if level == 0 else 0.5 for level in range(levels))
        raw = [0.5**level for level in range(levels)]
        if levels > 1:
            raw[-1] = 0.0
        total = sum(raw)
        return tuple(w / total for w in raw)
    if not isinstance(spec, list | tuple) or not all(
        isinstance(w, numbers.Real) and not isinstance(w, bool) and math.isfinite(w) for w in spec
    ):
        raise TypeError(
            f"`weights` must be one of {DEEP_SUPERVISION_WEIGHTS} or a list of finite numbers, "
            f"one per output; got {spec!r}."
        )
    if len(spec) != levels:
        raise ValueError(
            f"`weights` has {len(spec)} entries but the loss got {levels} outputs; give one "
            "weight per output, full resolution first."
        )
    return tuple(float(w) for w in spec)


@dataclasses.dataclass(frozen=True, eq=False)
class DeepSupervisionLoss:
    """A loss applied to the outputs of several decoder levels, made by :func:`deep_supervision`.

    Calling it, ``loss_fn(outputs, labels, *, mask=None)`` with ``outputs`` a sequence of logits
    (full resolution first), returns ``(total, parts)``. Like :class:`CombinedLoss` it splits into
    additive :meth:`sums` and a :meth:`finalize` step, so
    :func:`jaxseg_losses.accumulate.value_and_grad` accumulates it exactly (``apply_fn`` then
    returns the sequence of outputs).

    Attributes:
      loss: the :class:`CombinedLoss` applied at every level.
      weights: the weight spec (``"exp"``, ``"same"``, ``"two"``, ``"nnunet"`` or a sequence).
    """

    loss: CombinedLoss
    weights: Any

    @property
    def axis_name(self) -> Any:
        return self.loss.axis_name

    def _levels(
        self, outputs: Any, labels: ArrayLike, mask: ArrayLike | None
    ) -> list[tuple[jax.Array, jax.Array, jax.Array | None]]:
        """``(logits_l, labels_l, mask_l)`` of each level, the targets resized to its logits."""
        if not isinstance(outputs, list | tuple) or not outputs:
            raise TypeError(
                "deep supervision expects a non-empty list or tuple of logits, full resolution "
                f"first; got {type(outputs).__name__}."
            )
        labels = jnp.asarray(labels)
        mask = None if mask is None else jnp.asarray(mask)
        class_axis = self.loss.class_axis
        levels = []
        for logits in outputs:
            logits = jnp.asarray(logits)
            axis = _checks.normalize_axis("class_axis", class_axis, logits.ndim)
            spatial = tuple(s for a, s in enumerate(logits.shape) if a not in (0, axis))
            dense = jnp.issubdtype(labels.dtype, jnp.floating)
            labels_l, mask_l = labels, mask
            # Targets of another rank go to the loss as they are, which names the problem.
            if labels.ndim == (logits.ndim if dense else logits.ndim - 1):
                # Dense targets keep their class axis where the logits have it.
                labels_l = resize_nearest(labels, spatial, 2 if dense and axis == 1 else 1)
            if mask is not None and mask.ndim == logits.ndim - 1:
                mask_l = resize_nearest(mask, spatial, 1)
            levels.append((logits, labels_l, mask_l))
        return levels

    def __call__(
        self, outputs: Any, labels: ArrayLike, *, mask: ArrayLike | None = None
    ) -> tuple[jax.Array, Parts]:
        levels = self._levels(outputs, labels, mask)
        weights = deep_supervision_weights(self.weights, len(levels))
        total = None
        parts: Parts = {}
        for level, ((logits, labels_l, mask_l), weight) in enumerate(
            zip(levels, weights, strict=True)
        ):
            value, level_parts = self.loss(logits, labels_l, mask=mask_l)
            parts.update(_level_parts(level, value, level_parts))
            total = weight * value if total is None else total + weight * value
        assert total is not None
        return total, parts

    def check_decomposable(self) -> None:
        """Raises ``ValueError`` unless the loss of every level splits into additive sums."""
        self.loss.check_decomposable()

    def sums(
        self, outputs: Any, labels: ArrayLike, *, mask: ArrayLike | None = None
    ) -> dict[str, Any]:
        """The additive statistics of every level, ``{"level{l}": sums}``."""
        return {
            f"level{level}": self.loss.sums(logits, labels_l, mask=mask_l)
            for level, (logits, labels_l, mask_l) in enumerate(self._levels(outputs, labels, mask))
        }

    def finalize(self, sums: Mapping[str, Any]) -> tuple[jax.Array, Parts]:
        """``(total, parts)`` from the (added) :meth:`sums` of every level."""
        weights = deep_supervision_weights(self.weights, len(sums))
        total = None
        parts: Parts = {}
        for level, weight in enumerate(weights):
            value, level_parts = self.loss.finalize(sums[f"level{level}"])
            parts.update(_level_parts(level, value, level_parts))
            total = weight * value if total is None else total + weight * value
        assert total is not None
        return total, parts


def _level_parts(level: int, value: jax.Array, level_parts: Parts) -> Parts:
    parts = {f"level{level}": value}
    if len(level_parts) > 1:
        parts.update({f"level{level}/{name}": v for name, v in level_parts.items()})
    return parts


def deep_supervision(loss: Any, *, weights: Any = "exp") -> DeepSupervisionLoss:
    r"""Applies a loss to the outputs of several decoder levels (deep supervision).

    A deeply supervised network (nnU-Net, MONAI's DynUNet) predicts logits at several
    resolutions; each is compared with the labels resized to it, and the weighted losses add:

    .. math::

       L = \sum_{l=0}^{L-1} \lambda_l\, \mathcal{L}\bigl(x^{(l)}, \downarrow_l y,
           \downarrow_l m\bigr),

    with :math:`x^{(0)}` the full-resolution logits and :math:`\downarrow_l` the nearest-neighbour
    resize of the labels, the mask and the ignored pixels (``ignore_index`` values are kept by
    the resize) to the spatial shape of :math:`x^{(l)}`: PyTorch's ``nearest-exact``, output
    index :math:`j` reads input index :math:`\min(\lfloor (j + \tfrac12) n / m \rfloor, n - 1)`
    (static gathers, so it jits; a factor-2 downsampling reads the odd pixels, as MONAI's).

    Weights :math:`\lambda_l`: ``"exp"`` :math:`\max(2^{-l}, 1/16)` (MONAI's default), ``"two"``
    1 then 1/2, ``"same"`` 1, ``"nnunet"`` :math:`2^{-l}` with the lowest resolution set to 0,
    normalised to sum 1 (nnU-Net v2's ``DeepSupervisionWrapper`` weights), or a sequence with
    one weight per output.

    Peers: MONAI ``DeepSupervisionLoss(loss, weight_mode=m)`` is ``weights=m`` (MONAI's
    ``weights=list`` is a sequence; MONAI takes the first entries of a longer list, here the
    lengths must agree); nnU-Net's ``DeepSupervisionWrapper(loss, weights)`` receives labels
    already downsampled by its data-loading transforms (its own nearest-neighbour resize, whose
    pixel choice this function does not promise to reproduce); ``weights="nnunet"`` gives its
    weights.

    Args:
      loss: the loss of each level: a :class:`CombinedLoss` from :func:`combine` (its data
        options, ``axis_name`` and ``reduction`` apply at every level) or a loss function made
        by :func:`~jaxseg_losses.define_loss` (a library loss, or a ``functools.partial`` of
        one).
      weights: ``"exp"`` (default), ``"same"``, ``"two"``, ``"nnunet"`` or a sequence of
        numbers, one per output, full resolution first.

    Returns:
      A :class:`DeepSupervisionLoss`, ``loss_fn(outputs, labels, *, mask=None) -> (total,
      parts)``: ``outputs`` a list/tuple of ``[B, *spatial_l, C]`` logits, full resolution
      first; ``labels`` and ``mask`` at full resolution. ``parts["level{l}"]`` is the
      unweighted loss of level :math:`l` and, for a combination of several terms,
      ``parts["level{l}/{term}"]`` each term's.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> loss_fn = jsl.deep_supervision(jsl.combine("ce+dice"), weights="nnunet")
      >>> labels = jax.random.randint(jax.random.key(0), (2, 8, 8), 0, 3)
      >>> outputs = [jax.random.normal(jax.random.key(l), (2, 8 >> l, 8 >> l, 3))
      ...            for l in range(3)]
      >>> total, parts = jax.jit(loss_fn)(outputs, labels)
      >>> sorted(parts)[:3]
      ['level0', 'level0/ce', 'level0/dice']
      >>> bool(jnp.isclose(total, (4 * parts["level0"] + 2 * parts["level1"]) / 6))
      True

    References:
      Lee, Xie, Gallagher, Zhang & Tu, "Deeply-Supervised Nets", AISTATS 2015. Isensee et al.,
      "nnU-Net", Nature Methods 2021.
    """
    if isinstance(loss, CombinedLoss):
        combined = loss
    elif callable(loss) and engine.is_described(loss):
        base, _ = engine.unwrap(loss)
        combined = combine({base.__name__: loss})
    else:
        raise TypeError(
            "`loss` must be a CombinedLoss from jsl.combine(...) or a loss made by "
            f"jsl.define_loss (such as jsl.dice_loss, or a partial of one); got "
            f"{type(loss).__name__}."
        )
    deep_supervision_weights(weights, len(weights) if isinstance(weights, list | tuple) else 1)
    return DeepSupervisionLoss(loss=combined, weights=weights)
