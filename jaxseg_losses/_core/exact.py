r"""Exact integer counts without 64-bit JAX, compensated float sums, the collective-sum guard.

Pixel counts outgrow int32: one class of a Cityscapes-sized evaluation (1,000 images of
2048×1024 pixels) holds :math:`2^{31}` pixels, and an int32 count wraps there silently. JAX runs
without 64-bit types by default, so :class:`ExactCount` keeps each count as three int32 *limbs*,

.. math::

   n = l_0 + 2^{16} l_1 + 2^{32} l_2, \qquad 0 \le l_0, l_1 < 2^{16},

exact for every :math:`|n| < 2^{63}`. Counting happens in int32 (a batch of one device never
holds :math:`2^{31}` pixels of one image); the limbs take over where counts are added across
batches, images and devices. Adding two normalised counts adds limbs below :math:`2^{17}` and
propagates the carries; a sum over an axis adds at most :data:`SUM_CHUNK` limbs before carrying;
a ``psum`` over :math:`D` devices adds :math:`D` limbs below :math:`2^{16}`, exact for
:math:`D < 2^{15}` devices, and the next operation carries. The cost is that of three ``[..., C]``
int32 arrays, nothing next to the pass over the pixels that produced the counts.

:func:`two_sum` is Knuth's error-free addition: ``(s, e)`` with :math:`s + e = a + b` exactly, so a
running float sum kept as a pair does not drift over thousands of batches.

:func:`check_copies` enforces the accumulators' rule for devices: a ``jax.lax.psum`` of a whole
accumulator adds every device's copy of what was already summed, so the accumulators carry a
``copies`` count (1) that such a psum turns into the device count, and refuse to report then.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg_losses._core import checks as _checks

LIMB_BITS = 16
LIMB_MASK = (1 << LIMB_BITS) - 1
NUM_LIMBS = 3
# Limbs added by one reduction before the carry: 2^14 values below 2^16 stay below 2^30.
SUM_CHUNK = 1 << 14


def _normalize(limbs: jax.Array) -> jax.Array:
    """Carries propagated: ``l_0, l_1`` in ``[0, 2^16)``, the sign in ``l_2`` (floor shifts)."""
    l0, l1, l2 = limbs[..., 0], limbs[..., 1], limbs[..., 2]
    l1 = l1 + (l0 >> LIMB_BITS)
    l0 = l0 & LIMB_MASK
    l2 = l2 + (l1 >> LIMB_BITS)
    l1 = l1 & LIMB_MASK
    return jnp.stack([l0, l1, l2], axis=-1)


def _limbs_of_int32(x: jax.Array) -> jax.Array:
    x = x.astype(jnp.int32)
    return _normalize(jnp.stack([x & LIMB_MASK, x >> LIMB_BITS, jnp.zeros_like(x)], axis=-1))


def _limbs_of_int64(x: Any) -> jax.Array:
    """Limbs of a 64-bit integer array (NumPy on the host, or JAX under x64)."""
    xp = np if isinstance(x, np.ndarray) else jnp
    parts = [x & LIMB_MASK, (x >> LIMB_BITS) & LIMB_MASK, x >> (2 * LIMB_BITS)]
    if xp is np and np.any((parts[2] < -(2**31)) | (parts[2] >= 2**31)):
        raise ValueError("Counts must lie in (-2**63, 2**63) to be held exactly.")
    return jnp.stack([jnp.asarray(p.astype(xp.int32)) for p in parts], axis=-1)


def _index_tuple(index: Any) -> tuple[Any, ...]:
    return index if isinstance(index, tuple) else (index,)


@jax.tree_util.register_pytree_node_class
class ExactCount:
    r"""Exact integer counts of any shape, as int32 limbs: exact to :math:`2^{63}` without x64.

    The counts of :func:`overlap_counts` and of :class:`ConfusionMatrixAccumulator`. It is a
    pytree (one ``[*shape, 3]`` int32 leaf), so it passes through ``jax.jit``, ``jax.vmap``,
    ``jax.lax.scan`` and ``psum`` (a psum over fewer than :math:`2^{15}` devices stays exact).
    It adds (``+``, ``-``, :meth:`sum`), indexes like an array over its own shape, converts to
    floats with :meth:`to_float` (what the scores read) and to exact NumPy ``int64`` with
    ``np.asarray`` (or ``int`` for one count).

    .. math::

       n = l_0 + 2^{16} l_1 + 2^{32} l_2

    Args:
      value: integer counts: a JAX or NumPy integer array, a Python int or nested lists
        (NumPy ``int64`` values stay exact), or another :class:`ExactCount`.

    Examples:
      >>> import numpy as np
      >>> import jaxseg_losses as jsl
      >>> big = jsl.metrics.ExactCount(np.array([2**31 - 1, 2**40], np.int64))
      >>> total = big + jsl.metrics.ExactCount(np.array([1, 1]))
      >>> print(np.asarray(total), int(total.sum()) == 2**31 + 2**40 + 1)
      [    2147483648 1099511627777] True
    """

    __slots__ = ("limbs",)
    limbs: jax.Array

    def __init__(self, value: Any) -> None:
        if isinstance(value, ExactCount):
            limbs = value.limbs
        elif isinstance(value, jax.Array):
            if not (jnp.issubdtype(value.dtype, jnp.integer) or value.dtype == jnp.bool_):
                raise TypeError(f"`value` must hold integer counts; got dtype {value.dtype}.")
            limbs = _limbs_of_int64(value) if value.dtype.itemsize == 8 else _limbs_of_int32(value)
        else:
            array = np.asarray(value)
            if not (np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_):
                raise TypeError(f"`value` must hold integer counts; got dtype {array.dtype}.")
            limbs = _limbs_of_int64(array.astype(np.int64))
        object.__setattr__(self, "limbs", limbs)

    @classmethod
    def from_limbs(cls, limbs: jax.Array) -> "ExactCount":
        """The count held by ``limbs`` ``[*shape, 3]`` int32 (normalised or not)."""
        count = object.__new__(cls)
        object.__setattr__(count, "limbs", limbs)
        return count

    @classmethod
    def zeros(cls, shape: Sequence[int]) -> "ExactCount":
        """Counts of 0 with ``shape``."""
        return cls.from_limbs(jnp.zeros((*shape, NUM_LIMBS), jnp.int32))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("ExactCount is immutable.")

    # Pytree.
    def tree_flatten(self) -> tuple[tuple[jax.Array], None]:
        return (self.limbs,), None

    @classmethod
    def tree_unflatten(cls, aux: None, children: Sequence[Any]) -> "ExactCount":
        return cls.from_limbs(children[0])

    # Array-like.
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.limbs.shape[:-1])

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d ExactCount.")
        return self.shape[0]

    def __iter__(self) -> Any:
        return (self[i] for i in range(len(self)))

    def __getitem__(self, index: Any) -> "ExactCount":
        return ExactCount.from_limbs(self.limbs[(*_index_tuple(index), slice(None))])

    def normalized(self) -> "ExactCount":
        """The same count with its carries propagated (what every operation returns)."""
        return ExactCount.from_limbs(_normalize(self.limbs))

    def _broadcast(self, other: Any) -> tuple[jax.Array, jax.Array]:
        other = other if isinstance(other, ExactCount) else ExactCount(other)
        shape = jnp.broadcast_shapes(self.shape, other.shape)
        full = (*shape, NUM_LIMBS)
        return jnp.broadcast_to(self.limbs, full), jnp.broadcast_to(other.limbs, full)

    def __add__(self, other: Any) -> "ExactCount":
        if isinstance(other, int) and not isinstance(other, bool) and other == 0:
            return self.normalized()  # sum() starts from 0
        a, b = self._broadcast(other)
        return ExactCount.from_limbs(_normalize(_normalize(a) + _normalize(b)))

    __radd__ = __add__

    def __neg__(self) -> "ExactCount":
        return ExactCount.from_limbs(_normalize(-_normalize(self.limbs)))

    def __sub__(self, other: Any) -> "ExactCount":
        a, b = self._broadcast(other)
        return ExactCount.from_limbs(_normalize(_normalize(a) - _normalize(b)))

    def __rsub__(self, other: Any) -> "ExactCount":
        return ExactCount(other) - self

    def sum(
        self, axis: int | Sequence[int] | None = None, *, keepdims: bool = False
    ) -> "ExactCount":
        """The exact sum over ``axis`` (all axes by default), as an :class:`ExactCount`."""
        ndim = self.ndim
        if axis is None:
            axes = tuple(range(ndim))
        else:
            axes = tuple(axis) if isinstance(axis, Sequence) else (axis,)
            for a in axes:
                if not isinstance(a, int) or isinstance(a, bool) or not -ndim <= a < ndim:
                    raise ValueError(
                        f"`axis` must be ints in [{-ndim}, {ndim - 1}] for counts of shape "
                        f"{self.shape}; got {axis!r}."
                    )
            axes = tuple(a % ndim for a in axes)
        limbs = _normalize(self.limbs)
        for a in sorted(axes, reverse=True):
            limbs = _sum_axis(limbs, a, keepdims=keepdims)
        return ExactCount.from_limbs(limbs)

    def to_float(self, dtype: Any = None) -> jax.Array:
        """The counts as floats: ``float64`` under x64, else ``float32`` (relative error
        below :math:`2^{-23}`)."""
        if dtype is None:
            dtype = jnp.float64 if jax.config.read("jax_enable_x64") else jnp.float32
        limbs = _normalize(self.limbs).astype(dtype)
        high = limbs[..., 2] * float(2 ** (2 * LIMB_BITS)) + limbs[..., 1] * float(2**LIMB_BITS)
        return high + limbs[..., 0]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        limbs = np.asarray(self.limbs).astype(np.int64)
        value = (limbs[..., 2] << (2 * LIMB_BITS)) + (limbs[..., 1] << LIMB_BITS) + limbs[..., 0]
        return np.asarray(value, dtype=dtype)

    def __int__(self) -> int:
        return int(np.asarray(self).item())

    def __float__(self) -> float:
        return float(np.asarray(self).item())

    def __repr__(self) -> str:
        try:
            return f"ExactCount({np.asarray(self).tolist()})"
        except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
            return f"ExactCount(shape={self.shape}, traced)"
        except (TypeError, AttributeError):
            return f"ExactCount({self.limbs!r})"


def _sum_axis(limbs: jax.Array, axis: int, *, keepdims: bool) -> jax.Array:
    """Exact sum of normalised limbs over one axis of the count, in chunks of SUM_CHUNK."""
    size = limbs.shape[axis]
    while size > SUM_CHUNK:
        chunks = -(-size // SUM_CHUNK)
        padding = [(0, 0)] * limbs.ndim
        padding[axis] = (0, chunks * SUM_CHUNK - size)
        padded = jnp.pad(limbs, padding)
        shape = (*limbs.shape[:axis], chunks, SUM_CHUNK, *limbs.shape[axis + 1 :])
        limbs = _normalize(jnp.sum(padded.reshape(shape), axis=axis + 1, dtype=jnp.int32))
        size = chunks
    return _normalize(jnp.sum(limbs, axis=axis, keepdims=keepdims, dtype=jnp.int32))


def as_exact(x: Any) -> ExactCount:
    """``x`` as an :class:`ExactCount` (integer arrays are converted)."""
    return x if isinstance(x, ExactCount) else ExactCount(x)


def psum(count: ExactCount, axis_name: Any) -> ExactCount:
    """Exact ``psum`` of normalised limbs (below :math:`2^{15}` devices), carried after."""
    return ExactCount.from_limbs(_normalize(jax.lax.psum(_normalize(count.limbs), axis_name)))


# ----------------------------------------------------------------------------------------------
# Compensated float sums.


def two_sum(a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(s, e)`` with ``s = fl(a + b)`` and ``s + e == a + b`` exactly (Knuth's TwoSum)."""
    s = a + b
    b_virtual = s - a
    a_virtual = s - b_virtual
    return s, (a - a_virtual) + (b - b_virtual)


def compensated_add(
    total: jax.Array, error: jax.Array, value: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Adds ``value`` to the running sum ``total + error``, keeping the rounding error.

    An infinite sum has no rounding error to keep (TwoSum would make it NaN: inf - inf).
    """
    total, e = two_sum(total, value)
    return total, error + jnp.where(jnp.isfinite(total), e, jnp.zeros((), e.dtype))


# ----------------------------------------------------------------------------------------------
# The collective-sum guard of the accumulators.


def check_copies(copies: jax.Array, owner: str) -> jax.Array | None:
    """Refuses an accumulator that went through a collective sum of the whole pytree.

    Raises ``ValueError`` when ``copies`` is concrete and not all 1 (``None`` when all are);
    when traced, returns a boolean that the caller uses to make its results NaN (and
    ``jsl.checked`` raises).
    """
    message = (
        f"This {owner} went through a collective sum of the whole accumulator (such as "
        "jax.lax.psum(acc, axis_name)), which adds every device's copy of the counts already "
        "summed, so its values are multiplied by the device count. Sum over devices with "
        "acc.update(..., axis_name=...), which adds each batch once."
    )
    try:
        concrete = np.asarray(copies)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        ok = jnp.all(copies == 1)
        _checks.check_values(ok, message)
        return ok
    if not np.all(concrete == 1):
        raise ValueError(f"{message} (copies={concrete.tolist()})")
    return None


def refuse_if_summed(copies: jax.Array, owner: str, results: Any) -> Any:
    """The results, or NaN in every float leaf (traced) / an error (concrete) after a collective
    sum of the whole accumulator (see :func:`check_copies`)."""
    ok = check_copies(copies, owner)
    if ok is None:
        return results
    return jax.tree.map(
        lambda x: jnp.where(ok, x, jnp.nan) if jnp.issubdtype(x.dtype, jnp.floating) else x,
        results,
    )
