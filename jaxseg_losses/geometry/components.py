r"""Connected components of boolean masks: exact labels on static shapes, under ``jax.jit``.

Two foreground elements are *adjacent* when their coordinates differ by at most 1 along every
axis and along at most ``connectivity`` axes (scikit-image's count: 1 joins faces, 4 neighbours
in 2-D and 6 in 3-D; 2 adds the edges, 8 in 2-D and 18 in 3-D; 3 the corners, 26 in 3-D); a
*connected component* is a class of the transitive closure of adjacency.

**The algorithm** works on one flat array ``parent`` over every element of the batch (a forest
whose roots name the components, ``parent[x] <= x`` always):

1. *runs*: along the last axis, each foreground element points at the first element of its run
   (a prefix maximum in ``log2`` of the axis's length steps);
2. *hooking*: every element proposes the smallest root in its neighbourhood (a separable
   minimum filter), and each root goes under the smallest proposal of its tree when that is
   smaller (one scatter-min of one proposal per element, whatever the connectivity);
3. *pointer jumping*: ``parent = parent[parent]`` until every element points at its root, which
   halves every path per step (``ceil(log2(depth))`` steps for a chain of that depth).

Steps 2 and 3 repeat until no pair of adjacent elements has two roots. A round hooks every tree
that touches a smaller one, so the rounds depend on how the trees' minima lie, not on the length
of a component, and the jumping steps grow with the logarithm of the longest chain: a serpentine
filling a 512 × 512 image takes 1 round along its rows and 2 across them (10 and 20 jumping
steps); random masks of 8 × 512 × 512 take 3 to 4 rounds (12 to 28 steps). At the end each
component's root is its first element in raster (C) order, so numbering the roots by a
cumulative sum gives ``scipy.ndimage.label``'s numbering exactly.
"""

from __future__ import annotations

import itertools
import numbers
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxseg_losses._core.varying import varying_like

ArrayLike = jax.typing.ArrayLike

_MAX_SPATIAL_DIMS = 3
_INT32_LIMIT = 2**31 - 1


class Labelling(NamedTuple):
    """The components of a batch and what finding them took.

    Attributes:
      labels: int32 ``[B, *spatial]``, 0 on the background, ``1 .. K_b`` on the components of
        image ``b`` in the raster order of their first element.
      counts: int32 ``[B]``, the number of components ``K_b`` of each image.
      rounds: int32 ``[]``, the hooking rounds until no adjacent pair had two roots.
      jumps: int32 ``[]``, the pointer-jumping steps of all rounds together.
    """

    labels: jax.Array
    counts: jax.Array
    rounds: jax.Array
    jumps: jax.Array


def check_connectivity(connectivity: Any, dims: int) -> int:
    """``connectivity`` as an int in ``[1, dims]``, or a ``TypeError``/``ValueError``."""
    if not isinstance(connectivity, numbers.Integral) or isinstance(connectivity, bool):
        raise TypeError(
            f"`connectivity` must be an int in [1, {dims}]; got "
            f"{type(connectivity).__name__} {connectivity!r}."
        )
    if not 1 <= int(connectivity) <= dims:
        raise ValueError(
            f"`connectivity` must lie in [1, {dims}] for {dims} spatial axes (1: faces, {dims}: "
            f"faces, edges and corners); got {connectivity}."
        )
    return int(connectivity)


def check_masks(name: str, value: Any) -> jax.Array:
    """``value`` as a boolean ``[B, *spatial]`` array with 1 to 3 spatial axes."""
    array = jnp.asarray(value)
    if array.dtype != jnp.bool_:
        raise TypeError(
            f"`{name}` must be a boolean mask [B, *spatial]; got dtype {array.dtype}. Pass "
            f"`{name} != 0` for the nonzero elements, or `labels == c` for one class."
        )
    if not 2 <= array.ndim <= _MAX_SPATIAL_DIMS + 1:
        raise ValueError(
            f"`{name}` must be [B, *spatial] with 1 to {_MAX_SPATIAL_DIMS} spatial axes (rank 2 "
            f"to {_MAX_SPATIAL_DIMS + 1}); got shape {tuple(array.shape)}. Add a batch axis with "
            f"`{name}[None]`."
        )
    if array.size >= _INT32_LIMIT:
        raise ValueError(
            f"`{name}` has {array.size} elements; the labelling indexes them with int32 and "
            f"takes fewer than 2**31 - 1. Label the batch in parts (jax.lax.map over images)."
        )
    return array


def shifted(x: jax.Array, offset: tuple[int, ...], fill: Any) -> jax.Array:
    """``y[b, p] = x[b, p + offset]`` where ``p + offset`` lies in the image, else ``fill``."""
    config = [(0, 0, 0)] + [(-o, o, 0) for o in offset]
    return jax.lax.pad(x, jnp.asarray(fill, x.dtype), config)


def _runs(foreground: jax.Array, index: jax.Array) -> jax.Array:
    """Every foreground element pointing at the first element of its run along the last axis
    (a prefix maximum of the runs' first indices), background elements at themselves."""
    last = (0,) * (foreground.ndim - 2) + (-1,)
    starts = foreground & ~shifted(foreground, last, False)
    first = jax.lax.associative_scan(
        jnp.maximum, jnp.where(starts, index, -1), axis=foreground.ndim - 1
    )
    return jnp.where(foreground, first, index)


def _compress(parent: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Pointer jumping until every element points at its root; returns the steps taken.

    ``parent`` keeps the shape of the masks (its values are flat indices): a reshape inside a
    fused elementwise computation costs a division per element on XLA:CPU, while one at a
    gather's operand is free.
    """

    def up(p: jax.Array) -> jax.Array:
        return p.reshape(-1)[p]

    def not_flat(state: tuple[jax.Array, jax.Array, jax.Array]) -> jax.Array:
        return state[2]

    def jump(
        state: tuple[jax.Array, jax.Array, jax.Array],
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        # Two steps per test of flatness: the test costs as much as a step.
        p, steps, _ = state
        grand = up(p)
        great_grand = up(grand)
        return great_grand, steps + 2, jnp.any(great_grand != grand)

    start = (parent, *varying_like((jnp.int32(0),), parent), jnp.any(up(parent) != parent))
    parent, steps, _ = jax.lax.while_loop(not_flat, jump, start)
    return parent, steps


def _axis_step(dims: int, axis: int, step: int) -> tuple[int, ...]:
    return tuple(step if a == axis else 0 for a in range(dims))


def _smallest_adjacent(values: jax.Array, connectivity: int, fill: int) -> jax.Array:
    """The minimum of ``values [B, *spatial]`` over each element's neighbourhood (itself
    included), ``fill`` beyond the image.

    The neighbourhood of connectivity ``k`` is the union, over every ``k`` of the ``D`` axes, of
    the 3 × ... × 3 box spanning those axes; each box minimum is separable, two shifts per axis.
    """
    dims = values.ndim - 1

    def window_min(x: jax.Array, axis: int) -> jax.Array:
        before = shifted(x, _axis_step(dims, axis, -1), fill)
        after = shifted(x, _axis_step(dims, axis, 1), fill)
        return jnp.minimum(x, jnp.minimum(before, after))

    smallest = values
    for axes in itertools.combinations(range(dims), connectivity):
        box = values
        for axis in axes:
            box = window_min(box, axis)
        smallest = jnp.minimum(smallest, box)
    return smallest


def _hook(
    parent: jax.Array, foreground: jax.Array, index: jax.Array, connectivity: int
) -> tuple[jax.Array, jax.Array]:
    """One hooking step over the fully compressed ``parent``: every root goes under the
    smallest root adjacent to its tree, when that is smaller. Returns the new parents and
    whether any root was hooked.

    Each element proposes the smallest root in its neighbourhood (a separable minimum filter),
    so the step is one scatter-min of one proposal per element whatever the connectivity.
    """
    none = parent.size  # larger than every root
    roots = jnp.where(foreground, parent, none)
    smallest = _smallest_adjacent(roots, connectivity, none)
    hooks = foreground & (smallest < roots)
    # An element that hooks nothing proposes its own root to itself, a no-op of the minimum:
    # XLA:CPU scatters several times faster to spread targets than to one spare slot.
    target = jnp.where(hooks, parent, index)
    proposal = jnp.where(hooks, smallest, parent)
    # Materialised before the scatter, whose operands are then flat views (no index arithmetic).
    target, proposal = jax.lax.optimization_barrier((target, proposal))
    hooked = parent.reshape(-1).at[target.reshape(-1)].min(proposal.reshape(-1))
    return hooked.reshape(parent.shape), jnp.any(hooks)


def _label(foreground: jax.Array, connectivity: int) -> Labelling:
    """The components of the boolean ``[B, *spatial]`` ``foreground``."""
    shape = foreground.shape
    index = jnp.arange(foreground.size, dtype=jnp.int32).reshape(shape)
    parent, jumps = _runs(foreground, index), jnp.int32(0)

    def unfinished(state: tuple[jax.Array, ...]) -> jax.Array:
        return state[3]

    def round_(state: tuple[jax.Array, ...]) -> tuple[jax.Array, ...]:
        parent, rounds, jumps, _ = state
        parent, hooked = _hook(parent, foreground, index, connectivity)
        parent, steps = _compress(parent)
        return parent, rounds + hooked.astype(jnp.int32), jumps + steps, hooked

    rounds = jnp.int32(0)
    if foreground.ndim > 2:  # in 1-D the runs are the components
        state = varying_like((parent, rounds, jumps, jnp.bool_(True)), foreground)
        parent, rounds, jumps, _ = jax.lax.while_loop(unfinished, round_, state)
    is_root = jax.lax.optimization_barrier(foreground & (parent == index)).reshape(shape[0], -1)
    numbers_ = jnp.cumsum(is_root, axis=1, dtype=jnp.int32).reshape(-1)
    labels = jnp.where(foreground, numbers_[parent], 0)
    counts = jnp.sum(is_root, axis=1, dtype=jnp.int32)
    return Labelling(labels, counts, rounds, jumps)


def label_components(mask: ArrayLike, *, connectivity: int = 1) -> Labelling:
    """:func:`connected_components` with the rounds and jumping steps it took (a
    :class:`Labelling`)."""
    array = check_masks("mask", mask)
    connectivity = check_connectivity(connectivity, array.ndim - 1)
    return _label(array, connectivity)


def connected_components(mask: ArrayLike, *, connectivity: int = 1) -> tuple[jax.Array, jax.Array]:
    r"""Labels the connected components of each boolean mask of a batch.

    ``scipy.ndimage.label`` (and ``skimage.measure.label``, ``cc3d.connected_components``) in
    JAX, for a whole batch at once, on static shapes: every foreground element gets the number
    of its component, ``1 .. K`` in the raster order of each component's first element, which is
    scipy's numbering exactly; the background is 0.

    Two foreground elements are adjacent when their coordinates differ by at most 1 along every
    axis and along at most ``connectivity`` axes:

    .. list-table::
       :header-rows: 1

       * - ``connectivity``
         - 1-D
         - 2-D
         - 3-D
       * - 1 (faces)
         - 2
         - 4
         - 6
       * - 2 (and edges)
         -
         - 8
         - 18
       * - 3 (and corners)
         -
         -
         - 26

    The work is a few rounds of hooking trees of elements under their smallest neighbouring
    root, each followed by pointer jumping (see the module); the rounds do not grow with the
    length of a component, and the jumping steps grow with its logarithm.

    Args:
      mask: boolean ``[B, *spatial]``, 1 to 3 spatial axes; ``True`` elements are foreground.
      connectivity: the number of axes along which two adjacent elements may differ, in
        ``[1, D]`` for ``D`` spatial axes (scipy's ``generate_binary_structure(D,
        connectivity)``).

    Returns:
      ``(labels, counts)``: int32 ``[B, *spatial]`` component numbers (0 on the background)
      and int32 ``[B]``, the number of components of each image.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> mask = jnp.array([[[1, 1, 0, 0],
      ...                    [0, 0, 0, 1],
      ...                    [1, 0, 1, 1]]], dtype=bool)
      >>> labels, counts = jsl.metrics.connected_components(mask)
      >>> print(labels[0]); print(counts)
      [[1 1 0 0]
       [0 0 0 2]
       [3 0 2 2]]
      [3]
      >>> labels, counts = jsl.metrics.connected_components(mask, connectivity=2)
      >>> print(counts)
      [3]

    References:
      Shiloach & Vishkin, "An O(log n) Parallel Connectivity Algorithm", Journal of Algorithms
      3(1), 1982.
    """
    labelling = label_components(mask, connectivity=connectivity)
    return labelling.labels, labelling.counts


__all__ = ["Labelling", "connected_components", "label_components"]
