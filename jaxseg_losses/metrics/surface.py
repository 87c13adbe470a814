r"""Surface metrics: Hausdorff distance (and HD95), average surface distance, surface Dice.

Overlap scores (Dice, IoU) count voxels; surface metrics measure how far the boundary of a
prediction lies from the boundary of the ground truth, in the units of the voxel spacing
(millimetres for most medical images). All of them are built on :func:`distance_transform`, an
exact Euclidean (or taxicab, chessboard) distance transform computed in JAX with static shapes,
so they run under ``jax.jit`` and ``jax.vmap``, for a whole batch and every class at once, on CPU,
GPU and TPU.

Data contract: ``predictions`` and ``labels`` are either integer label maps ``[B, *spatial]``
(with ``num_classes``) or boolean one-hot masks ``[B, *spatial, C]`` (``class_axis`` moves C),
decided by dtype, and ``predictions`` may be float logits or probabilities ``[B, *spatial, C]``,
read as their arg-max (the rule of ``confusion_matrix``); 1, 2 or 3 spatial axes; ``spacing``
a scalar, one value per spatial axis, or one row per image ``[B, D]``. Every metric returns
``[B, C]`` float32 values, one per image and class (``C - 1`` columns without the background,
the default): NaN where a class is in neither the prediction nor the ground truth, ``inf`` (the
distances) or 0 (surface Dice) where it is in only one of them (``jsl.metrics.reduce(...,
ignore_inf=True)`` leaves those out of a mean).

The semantics are MONAI's ``compute_hausdorff_distance``, ``compute_average_surface_distance``
and ``compute_surface_dice`` (``use_subvoxels=False``):

* the surface of a mask :math:`M` is :math:`\partial M = M \setminus \mathrm{erode}(M)`, the
  erosion by the cross of connectivity 1 with everything outside the image counted as
  background (a mask touching the border has its border voxels on its surface);
* an excluded pixel (``mask`` False/0 there, or its label ``ignore_index``) is in neither mask
  and lies outside both, like a pixel beyond the image: a mask next to it has a surface voxel
  there, and it is never a surface voxel itself (masking is cropping). A perfect prediction
  scores 0 / 0 / 1 whatever is excluded, and an excluded pixel's values change nothing;
* :math:`d(x, \partial G)` is the distance from a voxel to the nearest surface voxel of the other
  mask, scaled by ``spacing``; the distances from :math:`\partial P` to :math:`\partial G` form
  the set :math:`D_{P \to G}`, and those the other way :math:`D_{G \to P}`.

References:
  Nikolov et al., "Clinically Applicable Segmentation of Head and Neck Anatomy for Radiotherapy:
  Deep Learning Algorithm Development and Validation Study", J. Med. Internet Res. 23(7), 2021.

  Felzenszwalb & Huttenlocher, "Distance Transforms of Sampled Functions", Theory of Computing
  8(19), 2012.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg_losses._core import checks as _checks
from jaxseg_losses._core.docs import documented
from jaxseg_losses._core.engine import divide
from jaxseg_losses._core.varying import varying_like
from jaxseg_losses.geometry import distance as _distance
from jaxseg_losses.geometry.morphology import surface
from jaxseg_losses.geometry.surfels import surface_elements
from jaxseg_losses.metrics._masks import (
    MAX_SPATIAL_DIMS,
    class_masks,
    concrete,
    real_array,
    spacing_rows,
)

ArrayLike = jax.typing.ArrayLike

# Non-negative float32 values order like their bit patterns; +inf is the largest of them.
_INF_BITS = 0x7F800000
_BISECTION_STEPS = 31  # ceil(log2(_INF_BITS + 1)): narrows [0, _INF_BITS] to one value

# ----------------------------------------------------------------------------------------------
# Validation.


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"`{name}` must be a bool; got {type(value).__name__} {value!r}.")
    return bool(value)


def _check_metric(distance_metric: Any) -> str:
    _checks.check_choice("distance_metric", distance_metric, _distance.METRICS)
    return str(distance_metric)


class _Masks(NamedTuple):
    """The validated inputs of a surface metric."""

    predicted: jax.Array  # [B, C, *spatial] bool, False on excluded pixels
    truth: jax.Array  # [B, C, *spatial] bool, False on excluded pixels
    spacing: jax.Array  # [B, D] float32
    metric: str


def _prepare(
    predictions: Any,
    labels: Any,
    num_classes: Any,
    class_axis: Any,
    include_background: Any,
    spacing: Any,
    distance_metric: Any,
    excluded: tuple[Any, Any] = (None, None),
) -> _Masks:
    """Validated inputs: masks ``[B, C, *spatial]`` of both arguments, spacing ``[B, D]``.

    An excluded pixel (``mask`` 0/False there, or a label equal to ``ignore_index``) is in no
    mask: it lies outside every mask like a pixel beyond the image.
    """
    ignore_index, mask = excluded
    metric = _check_metric(distance_metric)
    predicted, truth = class_masks(
        predictions,
        labels,
        num_classes=num_classes,
        class_axis=class_axis,
        include_background=include_background,
        ignore_index=ignore_index,
        mask=mask,
    )
    dims = predicted.ndim - 2
    return _Masks(predicted, truth, spacing_rows(spacing, predicted.shape[:1], dims), metric)


# ----------------------------------------------------------------------------------------------
# Surfaces and the distances between them.


# The crop sizes: each image and class is transformed in the smallest cube (cut to the image)
# of side k/4 of the largest image axis, k = 1 .. 4, that holds both its surfaces; sides below
# _SMALLEST_CROP are not worth a branch of their own.
_CROP_LEVELS = 4
_SMALLEST_CROP = 16

# A reduction of one image and class: (values [K, V], origins [K, V], weights [K, V], extra)
# -> a pytree of per-pair results.
Reduce = Callable[[jax.Array, jax.Array, jax.Array, Any], Any]


class _Surfaces(NamedTuple):
    """The surfaces of both masks, bool ``[B, C, *grid]``, and what to measure them with.

    The grid is that of the voxels (surface voxels) or of the voxel corners (surface elements).
    ``weights`` is ``[2, B, C, *grid]`` float32 (the prediction's then the ground truth's) or
    None (every surface point weighs 1).
    """

    predicted: jax.Array
    true: jax.Array
    spacing: jax.Array  # [B, D] float32
    metric: str
    weights: jax.Array | None = None

    @classmethod
    def of_voxels(cls, masks: _Masks) -> _Surfaces:
        dims = masks.predicted.ndim - 2
        predicted, true = surface(masks.predicted, dims), surface(masks.truth, dims)
        return cls(predicted, true, masks.spacing, masks.metric)

    def finish(self, value: jax.Array, *, one_empty: float) -> jax.Array:
        """``value`` where both masks have a surface; NaN where neither has; else ``one_empty``."""
        axes = tuple(range(2, self.predicted.ndim))
        predicted_empty = ~jnp.any(self.predicted, axis=axes)
        true_empty = ~jnp.any(self.true, axis=axes)
        value = jnp.where(predicted_empty | true_empty, jnp.float32(one_empty), value)
        return jnp.where(predicted_empty & true_empty, jnp.float32(jnp.nan), value)


def _crop_shapes(grid: tuple[int, ...]) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    """The cube sides of the crops (ascending, the last the largest axis) and their shapes."""
    top = max(grid)
    floor = min(top, _SMALLEST_CROP)
    sides = sorted({max(-(-k * top // _CROP_LEVELS), floor) for k in range(1, _CROP_LEVELS + 1)})
    return np.asarray(sides, np.int32), [tuple(min(side, n) for n in grid) for side in sides]


def _bounding_box(union: jax.Array) -> tuple[jax.Array, jax.Array]:
    """First index and extent ``[D]`` of the ``True`` elements along each axis (1 if none)."""
    firsts, extents = [], []
    for axis, n in enumerate(union.shape):
        others = tuple(a for a in range(union.ndim) if a != axis)
        occupied = jnp.any(union, axis=others)
        first = jnp.argmax(occupied).astype(jnp.int32)
        last = (n - 1 - jnp.argmax(occupied[::-1])).astype(jnp.int32)
        firsts.append(first)
        extents.append(jnp.where(jnp.any(occupied), last - first + 1, 1))
    return jnp.stack(firsts), jnp.stack(extents)


def _per_pair(surfaces: _Surfaces, reduce: Reduce, *, both: bool, extra: Any = None) -> Any:
    """``reduce`` applied to the distances of every image and class, results ``[B, C, ...]``.

    Every distance runs between two surface points, so each image and class is transformed in
    a crop that holds the bounding box of both its surfaces: the distances there are the exact
    ones of the whole image. The crop is the smallest of a few static sizes that fits (one
    branch of a ``lax.switch`` per size; only the chosen one runs), and the pairs run one after
    the other (``lax.map``).

    ``extra`` is a pytree of ``[B, C, ...]`` arrays handed to ``reduce`` pair by pair.
    """
    batch, classes = surfaces.predicted.shape[:2]
    grid = surfaces.predicted.shape[2:]
    pairs = batch * classes
    dims = len(grid)
    predicted = surfaces.predicted.reshape(pairs, *grid)
    true = surfaces.true.reshape(pairs, *grid)
    if surfaces.weights is None:
        weights = jnp.stack([predicted, true], axis=1).astype(jnp.float32)
    else:
        weights = jnp.moveaxis(surfaces.weights.reshape(2, pairs, *grid), 0, 1)
    spacing = jnp.repeat(surfaces.spacing, classes, axis=0)
    flat_extra = jax.tree.map(lambda x: x.reshape(pairs, *x.shape[2:]), extra)
    sides, shapes = _crop_shapes(grid)

    def in_crop(shape: tuple[int, ...], inputs: tuple, first: jax.Array) -> Any:
        p, t, w, sp, ex = inputs
        start = [
            jnp.clip(first[a], 0, n - c) for a, (n, c) in enumerate(zip(grid, shape, strict=True))
        ]
        p = jax.lax.dynamic_slice(p, start, shape)
        t = jax.lax.dynamic_slice(t, start, shape)
        w = jax.lax.dynamic_slice(w, [jnp.int32(0), *start], (2, *shape))
        if both:
            targets, origins = jnp.stack([t, p]), jnp.stack([p, t])
        else:
            targets, origins, w = t[None], p[None], w[:1]
        k = targets.shape[0]
        values = _distance.transform(targets, jnp.broadcast_to(sp, (k, dims)), surfaces.metric)
        return reduce(values.reshape(k, -1), origins.reshape(k, -1), w.reshape(k, -1), ex)

    def one(inputs: tuple) -> Any:
        first, extent = _bounding_box(inputs[0] | inputs[1])
        if len(shapes) == 1:
            return in_crop(shapes[0], inputs, first)
        level = jnp.sum(jnp.asarray(sides) < jnp.max(extent))
        branches = [functools.partial(in_crop, shape) for shape in shapes]
        return jax.lax.switch(level, branches, inputs, first)

    results = jax.lax.map(one, (predicted, true, weights, spacing, flat_extra))
    return jax.tree.map(lambda x: x.reshape(batch, classes, *x.shape[1:]), results)


def _kth_smallest(values: jax.Array, mask: jax.Array, rank: jax.Array) -> jax.Array:
    """The ``rank``-th smallest (0-based) of the non-negative ``values`` where ``mask``, ``[...]``.

    Exact and on static shapes: a bisection over the float32 bit patterns, which order like the
    values, counting the masked values at or below the midpoint (31 counting passes, no sort).
    """
    bits = jax.lax.bitcast_convert_type(jnp.where(mask, values, jnp.float32(0.0)), jnp.int32)

    def narrow(_: int, bounds: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        lo, hi = bounds
        mid = lo + (hi - lo) // 2
        enough = jnp.sum(mask & (bits <= mid[..., None]), axis=-1, dtype=jnp.int32) >= rank + 1
        return jnp.where(enough, lo, mid + 1), jnp.where(enough, mid, hi)

    lo = jnp.zeros(rank.shape, jnp.int32)
    hi = jnp.full(rank.shape, _INF_BITS, jnp.int32)
    lo, _ = jax.lax.fori_loop(0, _BISECTION_STEPS, narrow, varying_like((lo, hi), mask, rank))
    return jax.lax.bitcast_convert_type(lo, jnp.float32)


def _masked_percentile(values: jax.Array, mask: jax.Array, q: jax.Array) -> jax.Array:
    """The ``q``-quantile (``q`` in [0, 1]) of ``values`` where ``mask``, over the last axis.

    Linear interpolation between the order statistics around position :math:`q (m - 1)`, as
    ``torch.quantile`` and ``numpy.quantile`` do, in float32.
    """
    count = jnp.sum(mask, axis=-1, dtype=jnp.int32)
    position = q * jnp.maximum(count - 1, 0).astype(jnp.float32)
    rank = jnp.floor(position).astype(jnp.int32)
    weight = position - rank.astype(jnp.float32)
    low = _kth_smallest(values, mask, rank)
    masked = jnp.where(mask, values, jnp.float32(jnp.inf))
    at_most_low = jnp.sum(masked <= low[..., None], axis=-1, dtype=jnp.int32)
    above = jnp.min(jnp.where(masked > low[..., None], masked, jnp.float32(jnp.inf)), axis=-1)
    high = jnp.where(at_most_low >= rank + 2, low, above)
    return jnp.where(weight > 0, low + weight * (high - low), low)


# ----------------------------------------------------------------------------------------------
# Public functions.


def distance_transform(
    mask: ArrayLike, *, spacing: ArrayLike | None = None, distance_metric: str = "euclidean"
) -> jax.Array:
    r"""Computes the exact distance from every element of a mask to the nearest zero element.

    The Euclidean distance transform of a boolean mask: 0 on ``False`` elements, and on every
    ``True`` element the distance to the nearest ``False`` one, each axis scaled by its spacing —
    ``scipy.ndimage.distance_transform_edt(mask, sampling=spacing)`` in JAX, to float32
    rounding. It is exact (not a chamfer or jump-flooding approximation), its work and memory
    grow linearly with the number of elements (temporary buffers of about 12 float32 copies of
    the array), and it runs under ``jax.jit`` with static shapes; batch it with ``jax.vmap``.

    .. math::

       d(x) = \min_{y \,:\, m(y) = 0} \Big( \sum_a s_a^2 (x_a - y_a)^2 \Big)^{1/2}

    with :math:`s_a` the spacing of axis :math:`a` (taxicab: :math:`\sum_a s_a |x_a - y_a|`;
    chessboard: :math:`\max_a s_a |x_a - y_a|`). A mask without any zero has no distance to
    measure: every element is ``inf`` (scipy instead measures to an imaginary zero just before
    the first element, 1, 2, 3, ... along a 1-D mask).

    The transform is separable: one pass per axis over every line of the array. The Euclidean
    passes after the first compute the lower envelope of parabolas of Felzenszwalb &
    Huttenlocher (2012), all lines at once, in ``2n - 1`` fixed micro-steps for lines of length
    ``n``; the taxicab and chessboard passes use ``O(log n)`` doubling steps.

    Args:
      mask: boolean ``[*spatial]`` with 1, 2 or 3 axes; ``True`` elements get a distance.
      spacing: the element size: a scalar or ``[D]``, one positive value per axis (``None``:
        1 along every axis).
      distance_metric: ``"euclidean"`` (default), ``"taxicab"`` or ``"chessboard"``.

    Returns:
      float32 ``[*spatial]`` distances, in the units of ``spacing``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> mask = jnp.array([[0, 1, 1, 1], [0, 1, 1, 1], [0, 0, 1, 1]], dtype=bool)
      >>> print(jsl.metrics.distance_transform(mask))
      [[0.        1.        2.        2.828427 ]
       [0.        1.        1.4142135 2.236068 ]
       [0.        0.        1.        2.       ]]
      >>> print(jsl.metrics.distance_transform(mask, spacing=(2.0, 0.5))[0])
      [0.  0.5 1.  1.5]

    References:
      Felzenszwalb & Huttenlocher, "Distance Transforms of Sampled Functions", Theory of
      Computing 8(19), 2012.
    """
    array = jnp.asarray(mask)
    if array.dtype != jnp.bool_:
        raise TypeError(
            f"`mask` must be boolean; got dtype {array.dtype}. Pass `mask != 0` for the "
            "nonzero elements."
        )
    if not 1 <= array.ndim <= MAX_SPATIAL_DIMS:
        raise ValueError(
            f"`mask` must have 1 to {MAX_SPATIAL_DIMS} axes; got shape {tuple(array.shape)}. "
            "Batch images with jax.vmap."
        )
    metric = _check_metric(distance_metric)
    return _distance.transform(~array, spacing_rows(spacing, (), array.ndim), metric)


def _check_percentile(percentile: Any) -> jax.Array | None:
    if percentile is None:
        return None
    if isinstance(percentile, bool | np.bool_ | str):
        raise TypeError(
            f"`percentile` must be a real number in [0, 100] or None; got "
            f"{type(percentile).__name__} {percentile!r}."
        )
    q = real_array("percentile", percentile)
    if q.ndim != 0:
        raise ValueError(f"`percentile` must be a scalar; got shape {tuple(q.shape)}.")
    known = concrete(percentile)
    if known is None:
        _checks.check_values((q >= 0) & (q <= 100), "`percentile` must lie in [0, 100]")
        return q / 100.0
    value = float(known)
    if not 0.0 <= value <= 100.0:
        raise ValueError(f"`percentile` must lie in [0, 100]; got {value}.")
    # Divided in float64 and then rounded, like MONAI's `percentile / 100`.
    return jnp.float32(value / 100.0)


@documented
def hausdorff_distance(
    predictions: ArrayLike,
    labels: ArrayLike,
    *,
    num_classes: int | None = None,
    percentile: ArrayLike | None = None,
    directed: bool = False,
    spacing: ArrayLike | None = None,
    include_background: bool = False,
    class_axis: int = -1,
    distance_metric: str = "euclidean",
    ignore_index: int | None = None,
    mask: ArrayLike | None = None,
) -> jax.Array:
    r"""Computes the Hausdorff distance (or a percentile, HD95) between the surfaces of masks.

    The largest distance from a point on one surface to the nearest point on the other: how far
    the worst part of the predicted boundary lies from the true one. HD95 takes the 95th
    percentile of each direction's distances instead of the maximum, so that a few stray voxels
    do not decide it.

    .. math::

       \mathrm{HD}_p(P, G) = \max\big( Q_p(D_{P \to G}),\; Q_p(D_{G \to P}) \big), \qquad
       D_{P \to G} = \{ d(x, \partial G) : x \in \partial P \}

    with :math:`\partial P, \partial G` the surfaces (see the module), :math:`Q_p` the
    :math:`p`-th percentile (:math:`Q_{100} = \max`) by linear interpolation between order
    statistics (``torch.quantile``, ``numpy.quantile``), and ``directed=True`` keeping only
    :math:`Q_p(D_{P \to G})`. The percentile is exact, found by a bisection on static shapes.

    Empty masks (as MONAI): NaN when the class is in neither mask, ``inf`` when it is in only
    one. Two deliberate differences from MONAI 1.5: with a percentile and one empty mask MONAI
    returns NaN (``torch.quantile`` of infinities), here ``inf`` as without a percentile; and
    ``percentile=0`` is the minimum here, where MONAI returns the maximum.

    Args:
      <surface args>
      percentile: ``None`` for the maximum (the Hausdorff distance), or a percentile in
        ``[0, 100]`` of each direction's distances (95 for HD95), linearly interpolated.
      directed: ``True`` measures from the prediction to the ground truth only.
      <surface options>

    <surface returns>

    Examples:
      <surface example setup>
      >>> print(jsl.metrics.hausdorff_distance(predictions, labels, num_classes=2))
      [[2.]]
      >>> print(jsl.metrics.hausdorff_distance(
      ...     predictions, labels, num_classes=2, percentile=95, spacing=(1.0, 0.5)))
      [[1.]]

    References:
      Huttenlocher, Klanderman & Rucklidge, "Comparing Images Using the Hausdorff Distance",
      IEEE TPAMI 15(9), 1993.
    """
    directed = _check_bool("directed", directed)
    q = _check_percentile(percentile)
    options = (include_background, spacing, distance_metric, (ignore_index, mask))
    masks = _prepare(predictions, labels, num_classes, class_axis, *options)
    surfaces = _Surfaces.of_voxels(masks)

    def reduce(values: jax.Array, origins: jax.Array, _: jax.Array, __: Any) -> jax.Array:
        if q is None:
            return jnp.max(jnp.where(origins, values, jnp.float32(0.0)), axis=-1)
        return _masked_percentile(values, origins, q)

    per_direction = _per_pair(surfaces, reduce, both=not directed)
    return surfaces.finish(jnp.max(per_direction, axis=-1), one_empty=jnp.inf)


@documented
def average_surface_distance(
    predictions: ArrayLike,
    labels: ArrayLike,
    *,
    num_classes: int | None = None,
    symmetric: bool = False,
    spacing: ArrayLike | None = None,
    include_background: bool = False,
    class_axis: int = -1,
    distance_metric: str = "euclidean",
    ignore_index: int | None = None,
    mask: ArrayLike | None = None,
) -> jax.Array:
    r"""Computes the mean distance from the predicted surface to the true surface.

    How far, on average, the predicted boundary lies from the true one; ``symmetric=True`` also
    measures the true boundary against the predicted one and averages all the distances together
    (each surface voxel counts once, so the larger surface weighs more).

    .. math::

       \mathrm{ASD}(P, G) = \frac{1}{|\partial P|} \sum_{d \in D_{P \to G}} d, \qquad
       \mathrm{ASSD}(P, G) = \frac{\sum_{d \in D_{P \to G}} d + \sum_{d \in D_{G \to P}} d}
                                  {|\partial P| + |\partial G|}

    Empty masks (as MONAI): NaN when the class is in neither mask, ``inf`` when it is in only
    one.

    Args:
      <surface args>
      symmetric: ``True`` averages the distances of both directions pooled together (the
        average symmetric surface distance, ASSD).
      <surface options>

    <surface returns>

    Examples:
      <surface example setup>
      >>> print(jsl.metrics.average_surface_distance(predictions, labels, num_classes=2))
      [[0.85714287]]
      >>> print(jsl.metrics.average_surface_distance(
      ...     predictions, labels, num_classes=2, symmetric=True))
      [[0.6923077]]

    References:
      Heimann et al., "Comparison and Evaluation of Methods for Liver Segmentation From CT
      Datasets", IEEE TMI 28(8), 2009.
    """
    symmetric = _check_bool("symmetric", symmetric)
    options = (include_background, spacing, distance_metric, (ignore_index, mask))
    masks = _prepare(predictions, labels, num_classes, class_axis, *options)
    surfaces = _Surfaces.of_voxels(masks)

    def reduce(values: jax.Array, origins: jax.Array, _: jax.Array, __: Any) -> tuple:
        total = jnp.sum(jnp.where(origins, values, jnp.float32(0.0)))
        return total, jnp.sum(origins, dtype=jnp.int32)

    total, count = _per_pair(surfaces, reduce, both=symmetric)
    return surfaces.finish(
        divide(total, count.astype(jnp.float32), empty=jnp.nan), one_empty=jnp.inf
    )


@documented
def surface_dice(
    predictions: ArrayLike,
    labels: ArrayLike,
    *,
    tolerance: ArrayLike,
    num_classes: int | None = None,
    spacing: ArrayLike | None = None,
    include_background: bool = False,
    class_axis: int = -1,
    distance_metric: str = "euclidean",
    use_subvoxels: bool = False,
    ignore_index: int | None = None,
    mask: ArrayLike | None = None,
) -> jax.Array:
    r"""Computes the normalized surface Dice: the fraction of both surfaces within a tolerance.

    The share of boundary voxels, of the prediction and of the ground truth together, that lie
    within ``tolerance`` of the other boundary, in ``[0, 1]``: 1 when every part of each
    boundary is close to the other, 0 when none is. Unlike the Dice of volumes it ignores errors
    smaller than the tolerance (the acceptable deviation, e.g. the inter-observer variation in
    millimetres) and penalises every larger one by its extent along the boundary.

    .. math::

       \mathrm{NSD}_\tau(P, G) = \frac{|\{d \in D_{P \to G} : d \le \tau\}| +
                                       |\{d \in D_{G \to P} : d \le \tau\}|}
                                      {|\partial P| + |\partial G|}

    counting surface voxels (MONAI's ``use_subvoxels=False``). With ``use_subvoxels=True`` each
    part of a surface is weighed by its area instead, as Nikolov et al. and DeepMind's
    ``surface-distance`` do: the surfaces are the surface elements on the grid of voxel corners
    (:func:`jaxseg_losses.geometry.surfels.surface_elements`, the corners whose cell of
    :math:`2^D` voxels is mixed), each with the area :math:`a(x)` of the marching-cubes surface
    through its cell (in 2-D the length of the contour), and

    .. math::

       \mathrm{NSD}_\tau(P, G) = \frac{\sum_{\partial P} a_P(x)\,[d(x, \partial G) \le \tau]
                                       + \sum_{\partial G} a_G(x)\,[d(x, \partial P) \le \tau]}
                                      {\sum_{\partial P} a_P(x) + \sum_{\partial G} a_G(x)}

    with the distances measured between corners (MONAI's ``use_subvoxels=True``). Empty masks
    (as MONAI): NaN when the class is in neither mask, 0 when it is in only one.

    Args:
      <surface args>
      tolerance: the largest distance that counts as on the surface, in the units of
        ``spacing``: a scalar, or ``[C]`` with one value per class of the result (without the
        background, the default, ``C - 1`` values for classes ``1 .. C-1``); finite and
        non-negative.
      <surface options>
      use_subvoxels: ``True`` weighs the surface elements on the corner grid by their areas
        (MONAI's ``use_subvoxels=True``); ``False`` (default) counts surface voxels.

    <surface returns>

    Examples:
      <surface example setup>
      >>> print(jsl.metrics.surface_dice(predictions, labels, num_classes=2, tolerance=1.0))
      [[0.84615386]]
      >>> print(jsl.metrics.surface_dice(
      ...     predictions, labels, num_classes=2, tolerance=1.0, use_subvoxels=True).round(4))
      [[0.829]]

    References:
      Nikolov et al., "Clinically Applicable Segmentation of Head and Neck Anatomy for
      Radiotherapy: Deep Learning Algorithm Development and Validation Study", J. Med.
      Internet Res. 23(7), 2021.
    """
    use_subvoxels = _check_bool("use_subvoxels", use_subvoxels)
    options = (include_background, spacing, distance_metric, (ignore_index, mask))
    masks = _prepare(predictions, labels, num_classes, class_axis, *options)
    classes = masks.predicted.shape[1]
    tol = _tolerance(tolerance, classes, include_background)
    surfaces = _surfels(masks) if use_subvoxels else _Surfaces.of_voxels(masks)

    def reduce(values: jax.Array, origins: jax.Array, weights: jax.Array, tau: jax.Array) -> tuple:
        within = origins & (values <= tau)
        correct = jnp.sum(jnp.where(within, weights, jnp.float32(0.0)))
        return correct, jnp.sum(jnp.where(origins, weights, jnp.float32(0.0)))

    per_pair_tolerance = jnp.broadcast_to(tol, masks.predicted.shape[:2])
    correct, complete = _per_pair(surfaces, reduce, both=True, extra=per_pair_tolerance)
    return surfaces.finish(divide(correct, complete, empty=jnp.nan), one_empty=0.0)


def _surfels(masks: _Masks) -> _Surfaces:
    """The surface elements of the masks on the corner grid, weighed by their areas."""
    batch, classes = masks.predicted.shape[:2]
    dims = masks.spacing.shape[-1]
    per_image = jnp.broadcast_to(masks.spacing[:, None, :], (batch, classes, dims))
    predicted, predicted_areas = surface_elements(masks.predicted, per_image)
    true, true_areas = surface_elements(masks.truth, per_image)
    weights = jnp.stack([predicted_areas, true_areas])
    return _Surfaces(predicted, true, masks.spacing, masks.metric, weights)


def _tolerance(tolerance: Any, classes: int, include_background: bool) -> jax.Array:
    """``tolerance`` as float32 ``[C]``, one per class of the result."""
    array = real_array("tolerance", tolerance)
    if array.shape not in ((), (classes,)):
        reported = "classes 0 .. C-1" if include_background else "classes 1 .. C-1"
        raise ValueError(
            f"`tolerance` must be a scalar or have shape ({classes},), one value per class of "
            f"the result ({reported}); got shape {tuple(array.shape)}."
        )
    known = concrete(tolerance)
    if known is not None:
        if not np.all(np.isfinite(known) & (known >= 0)):
            raise ValueError(f"`tolerance` must be finite and non-negative; got {known.tolist()}.")
    else:
        _checks.check_values(
            jnp.all(jnp.isfinite(array) & (array >= 0)),
            "`tolerance` must be finite and non-negative",
        )
    return jnp.broadcast_to(array, (classes,))


__all__ = [
    "average_surface_distance",
    "distance_transform",
    "hausdorff_distance",
    "surface_dice",
]
