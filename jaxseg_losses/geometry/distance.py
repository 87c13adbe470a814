r"""Exact distance transforms on static shapes, and the distance maps of masks built on them.

For every element the distance to the nearest *site* (a ``True`` of ``sites``) is computed over the
last ``D`` axes of the array, with one spacing per axis; every leading axis is a batch axis. All
three metrics are separable: the distance is a minimum over sites of a sum (Euclidean, squared;
taxicab) or a maximum (chessboard) of one term per axis, so it is computed by one pass per axis,
each pass a one-dimensional transform of every line of the array along that axis. Every pass runs
on all lines of all images at once (the lines are the lanes of wide vectorised operations), with
static shapes and a fixed number of steps; the parabola envelope touches each element a bounded
number of times, the doubling and bisection passes ``O(log n)`` times.

Euclidean (squared distances, square root at the end), the separable scheme of Felzenszwalb &
Huttenlocher (2012):

* the first pass is the distance along the line to the nearest site, from the nearest site at or
  before and at or after each element, found by doubling (``log2 n`` shifted maxima/minima);
* every later pass computes, for the squared distances :math:`g` of the previous passes,

  .. math::

     f(x) = \min_y \; s^2 (x - y)^2 + g(y),

  the lower envelope of the parabolas rooted at the finite :math:`g(y)`. The envelope is built
  with Felzenszwalb & Huttenlocher's stack (each parabola pushed once, popped at most once), as
  ``2n - 1`` micro-steps in which every line either pops its top parabola or pushes its next one:
  each line advances at its own pace, so the loop has a fixed trip count and no inner loop whose
  length depends on the data. The envelope's parabolas and the boundaries between them are then
  read back at every element with a counting pass (a scatter-add of the boundaries and a
  cumulative sum) and two gathers.

Taxicab: each pass is :math:`f(x) = \min_j g(x - j) + s |j|`, computed exactly by doubling
(``2 log2 n`` shifted minima): after the shifts by 1, 2, 4, ... every offset has been covered once
as a sum of distinct powers of two, and a path's cost is additive.

Chessboard: each pass is :math:`f(x) = \min_j \max(s |j|, g(x - j)) = \min_j \max(s j, m_j(x))`
with :math:`m_j(x)` the minimum of :math:`g` over the window :math:`[x - j, x + j]`, which does
not increase with :math:`j` while :math:`s j` grows. The crossing point is found per element by a
binary search over :math:`j`, each window minimum an O(1) lookup in a sparse table of
power-of-two window minima (``log2 n`` levels, built by doubling).

Elements whose image holds no site get ``inf``.

References:
  Felzenszwalb & Huttenlocher, "Distance Transforms of Sampled Functions", Theory of Computing
  8(19), 2012.

:func:`signed_distance_map` (the boundary loss) and :func:`unsigned_distance_field` (the
Hausdorff distance-transform loss) are Euclidean transforms of ``[B, C, *spatial]`` masks.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxseg_losses._core.docs import documented
from jaxseg_losses._core.varying import varying_like

METRICS = ("euclidean", "chessboard", "taxicab")

# A line pass maps per-line values [n, L] and a per-line spacing [L] to new values [n, L].
LinePass = Callable[[jax.Array, jax.Array], jax.Array]


def transform(sites: jax.Array, spacing: jax.Array, metric: str) -> jax.Array:
    """Distances to the nearest site over the last ``D`` axes, ``D = spacing.shape[-1]``.

    Args:
      sites: bool ``[*batch, *spatial]``; ``True`` marks the elements distances are measured to.
      spacing: float32 ``[*batch, D]``, one positive spacing per spatial axis and image.
      metric: one of :data:`METRICS`.

    The distances are computed in units of each image's largest spacing and scaled back, so any
    positive float32 spacing works without overflow or underflow of the squared distances; only
    a ratio of smallest to largest spacing below about ``1e-19`` (squares past float32's normal
    range) loses the short axis's distances where they are not dominated by the long one.

    Returns:
      float32 ``[*batch, *spatial]``: 0 on sites, the distance to the nearest site elsewhere,
      ``inf`` in an image without any site.
    """
    dims = spacing.shape[-1]
    batch_rank = sites.ndim - dims
    if sites.size == 0:
        return jnp.zeros(sites.shape, jnp.float32)
    spatial = sites.shape[batch_rank:]
    # Distances in units of each image's largest spacing, scaled back at the end: the squared
    # distances of the Euclidean passes then neither overflow (spacing 1e20) nor underflow
    # (spacing 1e-20) float32, whatever the spacing's magnitude.
    unit = jnp.max(spacing, axis=-1, keepdims=True)
    scale = unit.reshape(unit.shape[:-1] + (1,) * dims)
    return _transform(sites, spacing / unit, metric, spatial) * scale


def _transform(
    sites: jax.Array, spacing: jax.Array, metric: str, spatial: tuple[int, ...]
) -> jax.Array:
    """:func:`transform` with spacings at most 1."""
    dims = spacing.shape[-1]
    if metric == "euclidean":
        # The first pass is the cheap one (doubling, no envelope); giving it the longest axis
        # leaves the envelope's sequential micro-steps to the shorter ones.
        first = max(range(dims), key=lambda a: spatial[a])
        values = _along(sites, spacing, first, _squared_distance_on_line)
        for axis in range(dims):
            if axis != first:
                values = _along(values, spacing, axis, _parabola_envelope)
        return jnp.sqrt(values)
    values = jnp.where(sites, jnp.float32(0.0), jnp.float32(jnp.inf))
    line_pass = _cone_sum if metric == "taxicab" else _cone_max
    for axis in range(dims):
        values = _along(values, spacing, axis, line_pass)
    return values


def _along(values: jax.Array, spacing: jax.Array, axis: int, line_pass: LinePass) -> jax.Array:
    """Applies a line pass to every line of ``values`` along spatial axis ``axis``."""
    dims = spacing.shape[-1]
    batch_rank = values.ndim - dims
    position = batch_rank + axis
    moved = jnp.moveaxis(values, position, 0)
    lines = moved.reshape(moved.shape[0], -1)
    # One spacing per line: the image's spacing of this axis, repeated over the image's lines.
    per_image = spacing[..., axis].reshape(spacing.shape[:-1] + (1,) * (dims - 1))
    per_line = jnp.broadcast_to(per_image, moved.shape[1:]).reshape(-1)
    result = line_pass(lines, per_line)
    return jnp.moveaxis(result.reshape(moved.shape), 0, position)


def _doublings(n: int) -> int:
    """How many shifts by 1, 2, 4, ... it takes for their sums to cover every offset in [0, n)."""
    return max(n - 1, 0).bit_length()


def _shift_by_doubling(x: jax.Array, k: jax.Array, fill: jax.Array, *, forward: bool) -> jax.Array:
    """``x`` moved by ``2**k`` rows along axis 0 (down when ``forward``), ``fill`` shifted in.

    The shift is traced, so that the doubling steps run as one loop (one compiled kernel per
    operation, not one per step).
    """
    n = x.shape[0]
    step = jnp.left_shift(jnp.int32(1), k)
    padding = jnp.broadcast_to(fill, x.shape)
    if forward:
        return jax.lax.dynamic_slice_in_dim(jnp.concatenate([padding, x]), n - step, n, axis=0)
    return jax.lax.dynamic_slice_in_dim(jnp.concatenate([x, padding]), step, n, axis=0)


def _squared_distance_on_line(sites: jax.Array, spacing: jax.Array) -> jax.Array:
    """``(s * |x - nearest site on the line|)^2``, ``inf`` on a line without sites."""
    n = sites.shape[0]
    index = jax.lax.broadcasted_iota(jnp.int32, sites.shape, 0)
    far = jnp.int32(2 * n + 1)

    def double(k: jax.Array, nearest: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        before, after = nearest
        before = jnp.maximum(before, _shift_by_doubling(before, k, -far, forward=True))
        after = jnp.minimum(after, _shift_by_doubling(after, k, far, forward=False))
        return before, after

    nearest = (jnp.where(sites, index, -far), jnp.where(sites, index, far))
    before, after = jax.lax.fori_loop(0, _doublings(n), double, nearest)
    steps = jnp.minimum(index - before, after - index)
    distance = steps.astype(jnp.float32) * spacing[None, :]
    return jnp.where(steps > n, jnp.float32(jnp.inf), distance * distance)


def _parabola_envelope(g: jax.Array, spacing: jax.Array) -> jax.Array:
    r"""``min_y s^2 (x - y)^2 + g(y)`` for every line (column) of ``g``; ``inf`` values skipped."""
    n, lanes = g.shape
    s2 = (spacing * spacing)[None, :]
    lane = jnp.arange(lanes)
    # The stack of each line holds, per parabola of its lower envelope: its root y, its g(y) and
    # the left end z of the interval where it is lowest (-inf for the bottom one).
    stack = jnp.zeros((n, lanes, 3), jnp.float32)
    nxt = jnp.zeros((lanes,), jnp.int32)  # the next root each line looks at
    top = jnp.full((lanes,), -1, jnp.int32)  # the line's top of stack (-1: empty)

    def micro_step(_: int, state: tuple[jax.Array, jax.Array, jax.Array]) -> tuple:
        stack, nxt, top = state
        q = jnp.minimum(nxt, n - 1)
        gq = g[q, lane]
        candidate = (nxt < n) & jnp.isfinite(gq)
        empty = top < 0
        root, value, start = jnp.moveaxis(stack[jnp.maximum(top, 0), lane], -1, 0)
        qf = q.astype(jnp.float32)
        # Where the new parabola (root q) meets the top one; written as a midpoint plus an offset
        # so that the integer part stays exact.
        gap = jnp.where(empty, jnp.float32(1.0), qf - root)
        meet = 0.5 * (qf + root) + (gq - value) / (2.0 * s2[0] * gap)
        # The top parabola is never lowest if the new one is lower from its left end on; the
        # bottom one (start -inf) always stays.
        pop = candidate & (top > 0) & (meet <= start)
        push = candidate & ~pop
        new_top = jnp.where(pop, top - 1, jnp.where(push, top + 1, top))
        entry = jnp.stack([qf, gq, jnp.where(empty, -jnp.inf, meet)], axis=-1)
        row = jnp.where(push, new_top, n)  # row n is out of bounds: nothing written
        stack = stack.at[row, lane].set(entry, mode="drop")
        # A line that popped looks at the same root again; one that pushed or skipped moves on.
        nxt = jnp.where(pop | (nxt >= n), nxt, nxt + 1)
        return stack, nxt, new_top

    # Every root is pushed (or skipped) once and popped at most once: 2n - 1 micro-steps suffice.
    start = varying_like((stack, nxt, top), g)
    stack, _, top = jax.lax.fori_loop(0, 2 * n - 1, micro_step, start)
    root, value, start = jnp.moveaxis(stack, -1, 0)
    # Parabola j of the envelope is lowest on [start_j, start_{j+1}); element x reads parabola
    # #{j >= 1 : start_j <= x}, counted by scattering a 1 at ceil(start_j) and summing up.
    depth = jax.lax.broadcasted_iota(jnp.int32, (n, lanes), 0)
    live = (depth >= 1) & (depth <= top[None, :])
    first_x = jnp.clip(jnp.ceil(start), 0.0, float(n)).astype(jnp.int32)
    first_x = jnp.where(live, first_x, n)
    counts = jnp.zeros((n + 1, lanes), jnp.int32).at[first_x, lane[None, :]].add(1)
    which = jnp.cumsum(counts[:n], axis=0)
    root_x = jnp.take_along_axis(root, which, axis=0)
    value_x = jnp.take_along_axis(value, which, axis=0)
    x = depth.astype(jnp.float32)
    envelope = s2 * (x - root_x) ** 2 + value_x
    return jnp.where(top[None, :] >= 0, envelope, jnp.float32(jnp.inf))


def _cone_sum(g: jax.Array, spacing: jax.Array) -> jax.Array:
    """``min_j g(x - j) + s |j|`` along every line (taxicab pass)."""
    inf = jnp.float32(jnp.inf)

    def double(k: jax.Array, g: jax.Array) -> jax.Array:
        cost = (spacing * jnp.left_shift(jnp.int32(1), k).astype(jnp.float32))[None, :]
        g = jnp.minimum(g, _shift_by_doubling(g, k, inf, forward=True) + cost)
        return jnp.minimum(g, _shift_by_doubling(g, k, inf, forward=False) + cost)

    # Forward and backward shifts interleaved: every offset in (-n, n) is still a sum of
    # distinct forward or distinct backward powers of two, and a path's cost is additive.
    return jax.lax.fori_loop(0, _doublings(g.shape[0]), double, g)


def _cone_max(g: jax.Array, spacing: jax.Array) -> jax.Array:
    """``min_j max(s |j|, g(x - j))`` along every line (chessboard pass)."""
    n, lanes = g.shape
    inf = jnp.float32(jnp.inf)
    # Sparse table: level k holds the minimum of g over [x, x + 2^k), k = 0 .. floor(log2 n).
    levels = [g]
    while 2 * (1 << (len(levels) - 1)) <= n:
        half = 1 << (len(levels) - 1)
        levels.append(levels[-1].at[:-half].min(levels[-1][half:]))
    table = jnp.stack(levels).reshape(len(levels) * n, lanes)
    x = jax.lax.broadcasted_iota(jnp.int32, (n, lanes), 0)
    lane = jax.lax.broadcasted_iota(jnp.int32, (n, lanes), 1)

    def window_minimum(radius: jax.Array) -> jax.Array:
        lo = jnp.maximum(x - radius, 0)
        hi = jnp.minimum(x + radius, n - 1)
        level = 31 - jax.lax.clz(hi - lo + 1)  # floor(log2(length))
        width = jnp.left_shift(jnp.int32(1), level)
        left = table[level * n + lo, lane]
        right = table[level * n + hi - width + 1, lane]
        return jnp.minimum(left, right)

    s = spacing[None, :]

    # The first radius j in [0, n) with s j >= m_j(x) (n when there is none), by bisection.
    def bisect(_: int, bounds: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        lo, hi = bounds
        mid = (lo + hi) // 2
        reached = s * mid.astype(jnp.float32) >= window_minimum(jnp.minimum(mid, n - 1))
        reached = reached & (mid < n)
        return jnp.where(reached, lo, mid + 1), jnp.where(reached, mid, hi)

    bounds = (jnp.zeros((n, lanes), jnp.int32), jnp.full((n, lanes), n, jnp.int32))
    bounds = varying_like(bounds, g)
    crossing, _ = jax.lax.fori_loop(0, n.bit_length(), bisect, bounds)
    # Radii from the crossing on cost s j (least at the crossing); radii before it cost m_j
    # (least just before it).
    at_crossing = jnp.where(crossing < n, s * crossing.astype(jnp.float32), inf)
    before = jnp.where(crossing > 0, window_minimum(jnp.maximum(crossing - 1, 0)), inf)
    return jnp.minimum(at_crossing, before)


# ----------------------------------------------------------------------------------------------
# Distance maps of masks.


def _distance_to(sites: jax.Array, spacing: jax.Array) -> jax.Array:
    """Euclidean distance of every element of ``[*spatial]`` to the nearest site; ``spacing``
    ``[D]``."""
    return transform(sites[None], spacing[None], "euclidean")[0]


def _each_mask_with_an_interface(
    field: Callable[[jax.Array, jax.Array], jax.Array], mask: jax.Array, spacing: jax.Array
) -> jax.Array:
    """``field(mask, spacing)`` of every image and class ``[B, C, *spatial]``, one after the
    other; 0 for a mask that is empty or full (no interface), whose transforms are skipped.

    A class is absent from most images of a many-class batch, so skipping its transforms saves
    most of the work; taken in turn, the pairs also need the temporaries of one transform only
    (at ``[8, 21, 256, 256]``: 4 MB instead of 631 MB, and faster even when every class is
    present). Under ``vmap`` the skip becomes a select: both branches run.
    """
    batch, classes, *grid = mask.shape
    masks = mask.reshape((batch * classes, *grid))
    spacings = jnp.repeat(spacing, classes, axis=0)

    def one(pair: tuple[jax.Array, jax.Array]) -> jax.Array:
        m, s = pair
        interface = jnp.any(m) & ~jnp.all(m)
        nothing = varying_like(jnp.zeros(m.shape, jnp.float32), m, s)
        return jax.lax.cond(interface, lambda: field(m, s), lambda: nothing)

    return jax.lax.map(one, (masks, spacings)).reshape(mask.shape)


@documented
def signed_distance_map(mask: jax.Array, spacing: jax.Array) -> jax.Array:
    r"""Computes Kervadec's signed distance map of boolean masks.

    Outside the mask, the distance to the nearest foreground element; inside, minus the
    distance to the nearest background element plus one element (so the foreground's boundary
    elements read 0, as in Kervadec's ``one_hot2dist`` and MONAI's ``BoundaryLoss``); 0 on a
    mask that is empty or full (no interface). Euclidean, exact, with one spacing per axis.

    Args:
      <distance map args>

    Returns:
      ``[B, C, *spatial]`` float32 signed distances.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> mask = jnp.zeros((1, 1, 1, 6), bool).at[0, 0, 0, 1:3].set(True)
      >>> print(jsl.geometry.signed_distance_map(mask, jnp.ones((1, 2)))[0, 0, 0])
      [1. 0. 0. 1. 2. 3.]

    References:
      Kervadec et al., "Boundary loss for highly unbalanced segmentation", MIDL 2019.
    """

    def signed(m: jax.Array, s: jax.Array) -> jax.Array:
        return jnp.where(m, 1.0 - _distance_to(~m, s), _distance_to(m, s))

    return _each_mask_with_an_interface(signed, mask, spacing)


@documented
def unsigned_distance_field(mask: jax.Array, spacing: jax.Array) -> jax.Array:
    r"""Computes the distance of every element to the other side of the mask's boundary.

    ``edt(mask) + edt(~mask)``: inside the mask the distance to the nearest background element,
    outside it the distance to the nearest foreground element; 0 on an empty or full mask (MONAI's
    ``HausdorffDTLoss.distance_field``). Euclidean, exact, with one spacing per axis.

    Args:
      <distance map args>

    Returns:
      ``[B, C, *spatial]`` float32 non-negative distances.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> mask = jnp.zeros((1, 1, 2, 6), bool).at[0, 0, :, 1:3].set(True)   # [B, C, H, W]
      >>> spacing = jnp.array([[1.0, 0.5]])   # rows 1 apart, columns 0.5 apart
      >>> print(jsl.geometry.unsigned_distance_field(mask, spacing)[0, 0, 0])
      [0.5 0.5 0.5 0.5 1.  1.5]

    References:
      Karimi & Salcudean, "Reducing the Hausdorff Distance in Medical Image Segmentation with
      Convolutional Neural Networks", IEEE TMI 2019.
    """

    def unsigned(m: jax.Array, s: jax.Array) -> jax.Array:
        return jnp.where(m, _distance_to(~m, s), _distance_to(m, s))

    return _each_mask_with_an_interface(unsigned, mask, spacing)
