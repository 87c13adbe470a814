r"""Lesion-wise metrics: the BraTS 2023 lesion-wise Dice and HD95, and lesion detection counts.

Overlap and surface metrics of a whole image are dominated by its largest object: a missed
small lesion barely moves them. Lesion-wise metrics score each lesion by itself, so that every
missed lesion and every false one counts as much as any other.

**Lesions.** Per image and class, with :math:`G` the ground-truth mask and :math:`P` the
prediction:

* the *predicted lesions* :math:`P_1, \dots, P_m` are the connected components of :math:`P`
  (``connectivity``; the BraTS 26-neighbourhood in 3-D is ``connectivity=3``);
* the *true lesions* are those of :math:`G` merged by dilation, as BraTS does: :math:`G` is
  dilated ``dilation_iterations`` times by the cross of ``dilation_connectivity`` (BraTS: 2,
  the 18-neighbourhood), and each connected component :math:`R_l` of the dilated mask (its
  *region*) defines one lesion :math:`G_l = G \cap R_l`; components of :math:`G` closer than
  the dilation join. With no dilation the lesions are the components of :math:`G`;
* a predicted lesion *meets* a true lesion when it has a voxel in the lesion's region,
  :math:`P_p \cap R_l \ne \emptyset` (BraTS), or (``lesion_detection(match="iou")``) when
  their IoU exceeds a threshold;
* the *volume* of a lesion is its number of voxels times the voxel volume (the product of the
  spacing); lesions with volume :math:`\le` ``volume_threshold`` are left out of the scores
  (BraTS's "small lesions"), and a predicted lesion that meets only those is no false positive.

The region of a lesion is then the dilation of the lesion alone (what BraTS computes per
lesion), because every dilated voxel is connected to the voxel it grew from; with excluded
pixels in the way this needs each dilation step to join adjacent voxels, so
``dilation_connectivity <= connectivity`` is required.

**Data contract** (as the surface metrics): ``predictions`` and ``labels`` are integer label maps
``[B, *spatial]`` (with ``num_classes``) or boolean masks ``[B, *spatial, C]`` (``class_axis``
moves C; overlapping masks such as the BraTS regions WT, TC, ET are fine), 1 to 3 spatial axes;
every result is ``[B, C]`` (``C - 1`` columns without the background, the default). Excluded
pixels (``mask`` False/0, or ``ignore_index``) lie outside the image: they are in no lesion,
they separate components, and the dilation does not enter them.

**Bounded lesions.** Shapes are static under ``jax.jit``: ``max_lesions`` bounds the true
lesions (dilated regions) and the predicted lesions of each image and class. Where an image and
class has more, its float results are NaN and its counts -1; with concrete (not traced) inputs
a ``ValueError`` names ``max_lesions``, and under ``jsl.checked`` a traced overflow raises. The
HD95 of each lesion is computed one lesion after the other, skipping empty slots, so the memory
is that of one image whatever ``max_lesions``.

References:
  Saluja et al., "BraTS 2023 Lesion-Wise Performance Metrics for Segmentation Challenges",
  github.com/rachitsaluja/BraTS-2023-Metrics, 2023.

  Nikolov et al., "Clinically Applicable Segmentation of Head and Neck Anatomy for Radiotherapy:
  Deep Learning Algorithm Development and Validation Study", J. Med. Internet Res. 23(7), 2021.
"""

from __future__ import annotations

import itertools
import math
import numbers
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxseg_losses._core import checks as _checks
from jaxseg_losses._core.engine import divide
from jaxseg_losses._core.varying import varying_like
from jaxseg_losses.geometry.components import check_connectivity, connected_components, shifted
from jaxseg_losses.geometry.distance import transform
from jaxseg_losses.geometry.surfels import surface_elements
from jaxseg_losses.metrics._instances import check_max_instances, overflow_error, overlap_table
from jaxseg_losses.metrics._masks import class_masks, spacing_rows
from jaxseg_losses.metrics._prepare import counted_pixels

ArrayLike = jax.typing.ArrayLike

# Non-negative float32 values order like their bit patterns; +inf is the largest of them.
_INF_BITS = 0x7F800000
_BISECTION_STEPS = 31  # ceil(log2(_INF_BITS + 1)): narrows [0, _INF_BITS] to one value
_MATCHES = ("overlap", "iou")

# ----------------------------------------------------------------------------------------------
# Validation.


def _static_int(name: str, value: Any, low: int) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(
            f"`{name}` must be a Python int (a static shape); got {type(value).__name__} {value!r}."
        )
    if value < low:
        raise ValueError(f"`{name}` must be at least {low}; got {value}.")
    return int(value)


def _connectivities(connectivity: Any, dilation_connectivity: Any, dims: int) -> tuple[int, int]:
    """``(connectivity, dilation_connectivity)``: defaults ``D`` and ``min(2, D)``."""
    connectivity = check_connectivity(dims if connectivity is None else connectivity, dims)
    if dilation_connectivity is None:
        return connectivity, min(2, connectivity)
    if not isinstance(dilation_connectivity, numbers.Integral) or isinstance(
        dilation_connectivity, bool
    ):
        raise TypeError(
            f"`dilation_connectivity` must be an int in [1, {connectivity}] or None; got "
            f"{type(dilation_connectivity).__name__} {dilation_connectivity!r}."
        )
    dilation_connectivity = int(dilation_connectivity)
    if not 1 <= dilation_connectivity <= connectivity:
        raise ValueError(
            f"`dilation_connectivity` must lie in [1, connectivity={connectivity}] (each "
            f"dilation step must join voxels that `connectivity` counts as adjacent); got "
            f"{dilation_connectivity}."
        )
    return connectivity, dilation_connectivity


# ----------------------------------------------------------------------------------------------
# Lesions and their overlaps.


class _Inputs(NamedTuple):
    """Validated inputs, one row per image and class (``N = B·C``)."""

    predicted: jax.Array  # bool [N, *spatial], False on excluded pixels
    truth: jax.Array  # bool [N, *spatial], False on excluded pixels
    counted: jax.Array  # bool [N, *spatial]
    spacing: jax.Array  # float32 [N, D]
    shape: tuple[int, int]  # (B, C)


def _prepare(predictions: Any, labels: Any, spacing: Any, **options: Any) -> _Inputs:
    masks = class_masks(predictions, labels, **options)
    batch, classes, *spatial = masks.predicted.shape
    counted = counted_pixels(
        options["mask"], (batch, *spatial), jnp.asarray(labels), options["ignore_index"]
    )
    counted = jnp.broadcast_to(counted[:, None], masks.truth.shape)
    rows = spacing_rows(spacing, (batch,), len(spatial))
    rows = jnp.broadcast_to(rows[:, None], (batch, classes, len(spatial)))
    return _Inputs(
        masks.predicted.reshape(-1, *spatial),
        masks.truth.reshape(-1, *spatial),
        counted.reshape(-1, *spatial),
        rows.reshape(-1, len(spatial)),
        (batch, classes),
    )


class _Lesions(NamedTuple):
    """The lesions of every row and the overlap tables (``L = max_lesions`` slots).

    Attributes:
      predicted: int32 ``[N, *spatial]``, the predicted lesion of each voxel (0: none).
      lesions: int32 ``[N, *spatial]``, the true lesion of each ground-truth voxel (0: none).
      reach: int32 ``[N, L + 1, L + 1]``: voxels of predicted lesion p in the region of l.
      inside: int32 ``[N, L + 1, L + 1]``: voxels of predicted lesion p in true lesion l.
      true_count, predicted_count: int32 ``[N]`` numbers of lesions (may exceed L).
    """

    predicted: jax.Array
    lesions: jax.Array
    reach: jax.Array
    inside: jax.Array
    true_count: jax.Array
    predicted_count: jax.Array


def _dilate(masks: jax.Array, counted: jax.Array, connectivity: int, iterations: int) -> jax.Array:
    """``iterations`` binary dilations of ``[N, *spatial]`` by the cross of ``connectivity``,
    each kept inside ``counted`` (scipy's ``binary_dilation(..., mask=counted)``)."""
    dims = masks.ndim - 1
    offsets = [
        o
        for o in itertools.product((-1, 0, 1), repeat=dims)
        if 1 <= sum(map(abs, o)) <= connectivity
    ]

    def grow(_: Any, x: jax.Array) -> jax.Array:
        grown = x
        for offset in offsets:
            grown = grown | shifted(x, offset, False)
        return grown & counted

    return jax.lax.fori_loop(0, iterations, grow, masks)


def _find_lesions(
    inputs: _Inputs, *, max_lesions: int, connectivity: int, dilation: tuple[int, int]
) -> _Lesions:
    """The predicted and true lesions of every row, and how they overlap."""
    dilation_connectivity, iterations = dilation
    predicted, predicted_count = connected_components(inputs.predicted, connectivity=connectivity)
    grown = _dilate(inputs.truth, inputs.counted, dilation_connectivity, iterations)
    regions, true_count = connected_components(grown, connectivity=connectivity)
    # A lesion past the bound falls into slot 0; its row is NaN anyway.
    predicted = jnp.where(predicted <= max_lesions, predicted, 0)
    regions = jnp.where(regions <= max_lesions, regions, 0)
    lesions = jnp.where(inputs.truth, regions, 0)
    every = jnp.ones(inputs.truth.shape, jnp.bool_)
    bounds = {"num_predicted": max_lesions, "num_true": max_lesions}
    reach = overlap_table(predicted, regions, every, **bounds)
    inside = overlap_table(predicted, lesions, every, **bounds)
    overflow_error(
        jnp.maximum(true_count, predicted_count),
        max_lesions,
        "lesions (true or predicted) in one class",
        name="max_lesions",
        consequence="its values are NaN, its counts -1",
    )
    return _Lesions(predicted, lesions, reach, inside, true_count, predicted_count)


class _Matches(NamedTuple):
    """Which predicted lesions meet which true lesions (``[N, L + 1, L]``: predicted slots
    ``0 .. L``, row 0 never matched; true lesions ``1 .. L``), and what follows."""

    matched: jax.Array  # bool [N, L + 1, L]
    hit: jax.Array  # bool [N, L]: an existing lesion that a predicted lesion meets
    kept: jax.Array  # bool [N, L]: an existing lesion above the volume threshold
    false: jax.Array  # int32 [N]: predicted lesions that meet no true lesion
    overflow: jax.Array  # bool [N]


def _match(
    found: _Lesions,
    volume: jax.Array,
    volume_threshold: jax.Array,
    iou_threshold: jax.Array | None,
) -> _Matches:
    """Matches by overlap of the regions, or by IoU above ``iou_threshold`` when it is given."""
    slots = found.reach.shape[-1] - 1
    slot = jnp.arange(1, slots + 1, dtype=jnp.int32)
    exists = slot[None] <= found.true_count[:, None]  # [N, L]
    real = slot[None] <= found.predicted_count[:, None]
    if iou_threshold is None:
        matched = found.reach[:, :, 1:] > 0
    else:
        inside = found.inside[:, :, 1:]
        predicted_area = jnp.sum(found.reach, axis=2, dtype=jnp.int32)[:, :, None]
        lesion_area = jnp.sum(found.inside, axis=1, dtype=jnp.int32)[:, None, 1:]
        union = (predicted_area + lesion_area - inside).astype(jnp.float32)
        iou = divide(inside.astype(jnp.float32), union, empty=0.0)
        matched = iou > iou_threshold
    matched = matched.at[:, 0].set(False) & exists[:, None, :]
    hit = jnp.any(matched, axis=1)
    lesion_area = jnp.sum(found.inside, axis=1, dtype=jnp.int32)[:, 1:]
    kept = exists & (lesion_area.astype(jnp.float32) * volume[:, None] > volume_threshold)
    lonely = real & ~jnp.any(matched[:, 1:], axis=2)
    false = jnp.sum(lonely, axis=1, dtype=jnp.int32)
    overflow = (found.true_count > slots) | (found.predicted_count > slots)
    return _Matches(matched, hit, kept, false, overflow)


def _lesion_dice(found: _Lesions, matched: jax.Array) -> jax.Array:
    """float32 ``[N, L]``: the Dice of each true lesion with the union of the predicted lesions
    that meet it (0 for a lesion that none meets)."""
    predicted_area = jnp.sum(found.reach, axis=2, dtype=jnp.int32)  # [N, L + 1]
    lesion_area = jnp.sum(found.inside, axis=1, dtype=jnp.int32)[:, 1:]
    hits = matched.astype(jnp.int32)
    overlap = jnp.sum(hits * found.inside[:, :, 1:], axis=1, dtype=jnp.int32)
    union_area = jnp.sum(hits * predicted_area[:, :, None], axis=1, dtype=jnp.int32)
    total = (union_area + lesion_area).astype(jnp.float32)
    return divide(2.0 * overlap.astype(jnp.float32), total, empty=0.0)


# ----------------------------------------------------------------------------------------------
# The surface-area weighted Hausdorff distance of each lesion.


def _weighted_percentile(values: jax.Array, weights: jax.Array, q: jax.Array) -> jax.Array:
    """``[K]``: per row of ``[K, M]``, the smallest value whose cumulative weight (values in
    increasing order) reaches the fraction ``q`` of the total; ``inf`` without weight.

    Exact on static shapes: a bisection over the float32 bit patterns of the non-negative
    values, which order like the values. Where rounding keeps the cumulative weight below the
    target even at the largest value (``q`` near 1), the largest value is the answer, as
    ``surface_distance`` takes its last element then.
    """
    bits = jax.lax.bitcast_convert_type(values, jnp.int32)
    total = jnp.sum(weights, axis=-1)
    target = q * total

    def narrow(_: Any, bounds: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        lo, hi = bounds
        mid = lo + (hi - lo) // 2
        below = jnp.sum(jnp.where(bits <= mid[:, None], weights, 0.0), axis=-1)
        enough = (below >= target) & (below > 0)
        return jnp.where(enough, lo, jnp.minimum(mid + 1, hi)), jnp.where(enough, mid, hi)

    rows = values.shape[0]
    lo = jnp.zeros((rows,), jnp.int32)
    hi = jnp.full((rows,), _INF_BITS, jnp.int32)
    lo, _ = jax.lax.fori_loop(0, _BISECTION_STEPS, narrow, varying_like((lo, hi), values))
    largest = jnp.max(jnp.where(weights > 0, values, jnp.float32(0.0)), axis=-1)
    found = jnp.minimum(jax.lax.bitcast_convert_type(lo, jnp.float32), largest)
    return jnp.where(total > 0, found, jnp.float32(jnp.inf))


def _robust_hausdorff(
    truth: jax.Array, predicted: jax.Array, spacing: jax.Array, q: jax.Array
) -> jax.Array:
    """The surface-area weighted ``q``-quantile Hausdorff distance of two masks ``[*spatial]``
    (``surface_distance.compute_robust_hausdorff``); ``inf`` when either is empty."""
    masks = jnp.stack([truth, predicted])
    rows = jnp.broadcast_to(spacing, (2, spacing.shape[-1]))
    elements, areas = surface_elements(masks, rows)
    # Row 0: from the true surface to the predicted one; row 1: back.
    field = transform(elements[::-1], rows, "euclidean")
    directions = _weighted_percentile(field.reshape(2, -1), areas.reshape(2, -1), q)
    return jnp.max(directions)


def _lesion_hausdorff(
    found: _Lesions, matches: _Matches, spacing: jax.Array, q: jax.Array
) -> jax.Array:
    """float32 ``[N, L]``: the HD of each kept lesion that a predicted lesion meets, against
    their union; ``inf`` elsewhere. One lesion at a time, the others skipped."""
    rows, slots = matches.kept.shape
    active = (matches.kept & matches.hit).reshape(-1)

    def one(item: jax.Array) -> jax.Array:
        row, lesion = item // slots, item % slots

        def measure() -> jax.Array:
            truth = found.lesions[row] == lesion + 1
            union = matches.matched[row, :, lesion][found.predicted[row]]
            return _robust_hausdorff(truth, union, spacing[row], q)

        skipped = varying_like(jnp.float32(jnp.inf), found.lesions, matches.matched, spacing)
        return jax.lax.cond(active[item], measure, lambda: skipped)

    return jax.lax.map(one, jnp.arange(rows * slots, dtype=jnp.int32)).reshape(rows, slots)


# ----------------------------------------------------------------------------------------------
# Public functions.


class LesionScores(NamedTuple):
    """The BraTS lesion-wise scores of each image and class, ``[B, C]`` each.

    Attributes:
      dice: float32, the lesion-wise Dice.
      hausdorff: float32, the lesion-wise Hausdorff distance (HD95 by default).
      tp: int32, kept true lesions that a predicted lesion meets.
      fp: int32, predicted lesions that meet no true lesion.
      fn: int32, kept true lesions that no predicted lesion meets.
      true_lesions: int32, all true lesions (after merging), those left out included.
      predicted_lesions: int32, all predicted lesions.

    An image and class with more lesions than ``max_lesions`` has NaN scores and -1 counts.
    """

    dice: jax.Array
    hausdorff: jax.Array
    tp: jax.Array
    fp: jax.Array
    fn: jax.Array
    true_lesions: jax.Array
    predicted_lesions: jax.Array


class LesionDetection(NamedTuple):
    """Lesion detection counts and F1 of each image and class, ``[B, C]`` each.

    Attributes:
      tp: int32, kept true lesions matched by a predicted lesion.
      fp: int32, predicted lesions that match no true lesion.
      fn: int32, kept true lesions that no predicted lesion matches.
      f1: float32, :math:`2 TP / (2 TP + FP + FN)`.

    An image and class with more lesions than ``max_lesions`` has NaN F1 and -1 counts.
    """

    tp: jax.Array
    fp: jax.Array
    fn: jax.Array
    f1: jax.Array


def _per_image(values: jax.Array, overflow: jax.Array, shape: tuple[int, int]) -> jax.Array:
    """``[N]`` values as ``[B, C]``, NaN (floats) or -1 (counts) where the row overflows."""
    fill = jnp.nan if jnp.issubdtype(values.dtype, jnp.floating) else -1
    return jnp.where(overflow, jnp.asarray(fill, values.dtype), values).reshape(shape)


def _options(
    num_classes: Any, class_axis: Any, include_background: Any, ignore_index: Any, mask: Any
) -> dict[str, Any]:
    return {
        "num_classes": num_classes,
        "class_axis": class_axis,
        "include_background": include_background,
        "ignore_index": ignore_index,
        "mask": mask,
    }


def lesion_wise_scores(
    predictions: ArrayLike,
    labels: ArrayLike,
    *,
    max_lesions: int,
    num_classes: int | None = None,
    dilation_iterations: int = 3,
    volume_threshold: ArrayLike = 50.0,
    missing_hd: ArrayLike = 374.0,
    percentile: ArrayLike = 95.0,
    connectivity: int | None = None,
    dilation_connectivity: int | None = None,
    spacing: ArrayLike | None = None,
    include_background: bool = False,
    class_axis: int = -1,
    ignore_index: int | None = None,
    mask: ArrayLike | None = None,
) -> LesionScores:
    r"""Computes the BraTS 2023 lesion-wise Dice and HD95 of every image and class.

    Each true lesion is scored against the predicted lesions that meet it (see the module for
    the lesions, their merging by dilation and the matching); every missed lesion and every
    false predicted lesion scores Dice 0 and HD ``missing_hd``, and the scores are averaged over
    all of them, so that a small missed lesion counts as much as a large found one.

    .. math::

       \mathrm{Dice}_{LW} = \frac{\sum_{l \in K} \mathrm{Dice}(G_l, U_l)}{|K| + FP},
       \qquad
       \mathrm{HD}_{LW} = \frac{\sum_{l \in K} \mathrm{HD}_{p}(G_l, U_l) + FP \cdot h}
                               {|K| + FP}

    with :math:`K` the kept true lesions (volume above ``volume_threshold``), :math:`U_l` the
    union of the predicted lesions that meet :math:`G_l` (empty for a missed lesion: Dice 0, HD
    :math:`h` = ``missing_hd``), :math:`FP` the predicted lesions that meet no true lesion
    (kept or not). With no kept lesion and no false one the scores are Dice 1 and HD 0.

    :math:`\mathrm{HD}_p` is the HD95 of DeepMind's ``surface-distance``
    (``compute_robust_hausdorff``), which BraTS uses: the surface elements lie on the voxel
    corners, each weighted by its marching-cubes area (:mod:`jaxseg_losses.geometry.surfels`),
    and each direction's distance is the smallest one whose cumulative area reaches the
    fraction ``percentile / 100`` of the surface, without interpolation; the larger direction
    counts. This differs from :func:`hausdorff_distance` (MONAI's voxel-count percentile with
    interpolation between order statistics).

    BraTS 2023 scores the regions WT (labels 1, 2, 3), TC (1, 3) and ET (3) of a label map with
    ``dilation_iterations=3, volume_threshold=50`` (GLI, SSA, PED), ``1, 50`` (MEN) or ``1, 2``
    (MET), on 1 mm voxels; pass the regions as boolean masks ``[B, *spatial, 3]`` with
    ``include_background=True`` (every channel is a region, none is a background).

    Args:
      predictions: integer predicted classes ``[B, *spatial]``, or boolean masks
        ``[B, *spatial, C]`` (one per class or region; they may overlap).
      labels: the ground truth, in either form.
      max_lesions: a static bound on the true lesions (after merging) and on the predicted
        lesions of one image and class.
      num_classes: the number of classes of integer inputs.
      dilation_iterations: how many times the ground truth is dilated to merge nearby lesions
        (0: no merging).
      volume_threshold: true lesions of volume at most this (voxels times the voxel volume of
        ``spacing``) are left out.
      missing_hd: the HD of a missed lesion and of a false predicted lesion (BraTS: 374, about
        the diagonal of its 240 x 240 x 155 volumes).
      percentile: the percentile of each direction's area-weighted distances, in [0, 100].
      connectivity: the adjacency of lesion voxels, in ``[1, D]`` (``None``: ``D``, the
        26-neighbourhood in 3-D).
      dilation_connectivity: the cross of each dilation step, in ``[1, connectivity]``
        (``None``: ``min(2, connectivity)``, the 18-neighbourhood in 3-D).
      spacing: the voxel size: a scalar, ``[D]``, or ``[B, D]`` per image (``None``: 1).
      include_background: ``False`` (default) drops class 0 (integer inputs or masks).
      class_axis: the class axis of boolean masks.
      ignore_index: a label value whose pixels are outside the image.
      mask: ``[B, *spatial]`` bool or weights; pixels with 0 are outside the image.

    Returns:
      :class:`LesionScores` of ``[B, C]`` arrays: float32 ``dice`` and ``hausdorff``, int32
      ``tp``, ``fp``, ``fn``, ``true_lesions``, ``predicted_lesions``.

    Examples:
      Two true lesions, one found with an extra column, one missed, and a false one:

      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> from jaxseg_losses.metrics.lesions import lesion_wise_scores
      >>> truth = jnp.zeros((1, 12, 12), bool).at[0, 1:5, 1:5].set(True).at[0, 9:11, 8:10].set(True)
      >>> guess = jnp.zeros((1, 12, 12), bool).at[0, 1:5, 1:6].set(True).at[0, 10, 1].set(True)
      >>> scores = lesion_wise_scores(guess[..., None], truth[..., None], max_lesions=4,
      ...                             dilation_iterations=1, volume_threshold=0,
      ...                             include_background=True)
      >>> print(scores.dice, scores.hausdorff)
      [[0.2962963]] [[249.66667]]
      >>> print(scores.tp, scores.fp, scores.fn)
      [[1]] [[1]] [[1]]

    References:
      Saluja et al., "BraTS 2023 Lesion-Wise Performance Metrics for Segmentation
      Challenges", github.com/rachitsaluja/BraTS-2023-Metrics, 2023.

      Nikolov et al., "Clinically Applicable Segmentation of Head and Neck Anatomy for
      Radiotherapy", J. Med. Internet Res. 23(7), 2021.
    """
    max_lesions = check_max_instances(max_lesions, "max_lesions")
    iterations = _static_int("dilation_iterations", dilation_iterations, 0)
    _checks.check_real("volume_threshold", volume_threshold, low=0.0)
    _checks.check_real("missing_hd", missing_hd, low=0.0)
    _checks.check_real("percentile", percentile, low=0.0, high=100.0)
    options = _options(num_classes, class_axis, include_background, ignore_index, mask)
    inputs = _prepare(predictions, labels, spacing, **options)
    dims = inputs.spacing.shape[-1]
    connectivity, dilation_connectivity = _connectivities(connectivity, dilation_connectivity, dims)
    found = _find_lesions(
        inputs,
        max_lesions=max_lesions,
        connectivity=connectivity,
        dilation=(dilation_connectivity, iterations),
    )
    volume = jnp.prod(inputs.spacing, axis=-1)
    matches = _match(found, volume, jnp.asarray(volume_threshold, jnp.float32), None)
    missing = jnp.asarray(missing_hd, jnp.float32)
    q = jnp.asarray(percentile, jnp.float32) / 100.0
    distance = _lesion_hausdorff(found, matches, inputs.spacing, q)
    distance = jnp.where(jnp.isinf(distance), missing, distance)
    kept = matches.kept
    scored = (jnp.sum(kept, axis=1, dtype=jnp.int32) + matches.false).astype(jnp.float32)
    false = matches.false.astype(jnp.float32)
    dice_sum = jnp.sum(jnp.where(kept, _lesion_dice(found, matches.matched), 0.0), axis=1)
    hd_sum = jnp.sum(jnp.where(kept, distance, 0.0), axis=1) + false * missing
    counts = {
        "tp": jnp.sum(kept & matches.hit, axis=1, dtype=jnp.int32),
        "fp": matches.false,
        "fn": jnp.sum(kept & ~matches.hit, axis=1, dtype=jnp.int32),
        "true_lesions": found.true_count,
        "predicted_lesions": found.predicted_count,
    }
    shape, overflow = inputs.shape, matches.overflow
    return LesionScores(
        dice=_per_image(divide(dice_sum, scored, empty=1.0), overflow, shape),
        hausdorff=_per_image(divide(hd_sum, scored, empty=0.0), overflow, shape),
        **{name: _per_image(value, overflow, shape) for name, value in counts.items()},
    )


def lesion_detection(
    predictions: ArrayLike,
    labels: ArrayLike,
    *,
    max_lesions: int,
    num_classes: int | None = None,
    match: str = "overlap",
    iou_threshold: ArrayLike = 0.5,
    dilation_iterations: int = 0,
    volume_threshold: ArrayLike = 0.0,
    connectivity: int | None = None,
    dilation_connectivity: int | None = None,
    spacing: ArrayLike | None = None,
    include_background: bool = False,
    class_axis: int = -1,
    zero_division: ArrayLike = math.nan,
    ignore_index: int | None = None,
    mask: ArrayLike | None = None,
) -> LesionDetection:
    r"""Counts detected, missed and false lesions of every image and class, and their F1.

    A lesion-level confusion count: how many true lesions were found, how many were missed,
    how many predicted lesions are false alarms, whatever their sizes. The lesions are those of
    the module (components, optionally merged by dilation and thresholded by volume).

    .. math::

       TP = |\{l \in K : \exists p,\ p \sim l\}|, \quad
       FN = |\{l \in K : \nexists p,\ p \sim l\}|, \quad
       FP = |\{p : \nexists l,\ p \sim l\}|, \quad
       F_1 = \frac{2\,TP}{2\,TP + FP + FN}

    with :math:`K` the kept true lesions and :math:`p \sim l` the match: ``"overlap"``
    (default) when the predicted lesion has a voxel in the lesion's region (the lesion itself
    without dilation), the counts of BraTS's ``Num_TP``, ``Num_FP``, ``Num_FN``; ``"iou"``
    when :math:`|P_p \cap G_l| / |P_p \cup G_l| >` ``iou_threshold`` (at least 0.5, so each
    lesion matches at most one predicted lesion and the other way: the one-to-one matching of
    panoptic quality, whose :math:`F_1` is its recognition quality). With ``"overlap"`` one
    predicted lesion may detect several true ones. The counts are exact and add over images.

    Args:
      predictions: integer predicted classes ``[B, *spatial]``, or boolean masks
        ``[B, *spatial, C]``.
      labels: the ground truth, in either form.
      max_lesions: a static bound on the true and on the predicted lesions of one image and
        class.
      num_classes: the number of classes of integer inputs.
      match: ``"overlap"`` or ``"iou"``.
      iou_threshold: the IoU a match must exceed with ``match="iou"``, in ``[0.5, 1)``.
      dilation_iterations: dilations of the ground truth that merge nearby lesions (BraTS: 3
        or 1; 0, the default, keeps the components).
      volume_threshold: true lesions of volume at most this are left out (0: none).
      connectivity: the adjacency of lesion voxels, in ``[1, D]`` (``None``: ``D``).
      dilation_connectivity: the cross of each dilation step, in ``[1, connectivity]``
        (``None``: ``min(2, connectivity)``).
      spacing: the voxel size, for the volumes: a scalar, ``[D]`` or ``[B, D]``.
      include_background: ``False`` (default) drops class 0.
      class_axis: the class axis of boolean masks.
      zero_division: the F1 of an image and class with no lesion at all (NaN by default).
      ignore_index: a label value whose pixels are outside the image.
      mask: ``[B, *spatial]`` bool or weights; pixels with 0 are outside the image.

    Returns:
      :class:`LesionDetection` of ``[B, C]`` arrays: int32 ``tp``, ``fp``, ``fn``; float32
      ``f1``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxseg_losses.metrics.lesions import lesion_detection
      >>> truth = jnp.array([[0, 1, 1, 0, 0, 2, 0, 1, 0, 0, 0, 0]])
      >>> guess = jnp.array([[0, 1, 1, 1, 0, 2, 0, 1, 1, 1, 0, 1]])
      >>> found = lesion_detection(guess, truth, num_classes=3, max_lesions=3)
      >>> print(found.tp, found.fp, found.fn, found.f1)
      [[2 1]] [[1 0]] [[0 0]] [[0.8 1. ]]
      >>> by_iou = lesion_detection(guess, truth, num_classes=3, max_lesions=3, match="iou")
      >>> print(by_iou.tp, by_iou.fp, by_iou.fn, by_iou.f1)
      [[1 1]] [[2 0]] [[1 0]] [[0.4 1. ]]

    References:
      Kirillov et al., "Panoptic Segmentation", CVPR 2019.

      Saluja et al., "BraTS 2023 Lesion-Wise Performance Metrics for Segmentation
      Challenges", github.com/rachitsaluja/BraTS-2023-Metrics, 2023.
    """
    max_lesions = check_max_instances(max_lesions, "max_lesions")
    iterations = _static_int("dilation_iterations", dilation_iterations, 0)
    _checks.check_choice("match", match, _MATCHES)
    _checks.check_real("iou_threshold", iou_threshold, low=0.5, high=1.0, high_open=True)
    _checks.check_real("volume_threshold", volume_threshold, low=0.0)
    _checks.check_real_scalar("zero_division", zero_division)
    options = _options(num_classes, class_axis, include_background, ignore_index, mask)
    inputs = _prepare(predictions, labels, spacing, **options)
    connectivity, dilation_connectivity = _connectivities(
        connectivity, dilation_connectivity, inputs.spacing.shape[-1]
    )
    found = _find_lesions(
        inputs,
        max_lesions=max_lesions,
        connectivity=connectivity,
        dilation=(dilation_connectivity, iterations),
    )
    threshold = jnp.asarray(iou_threshold, jnp.float32) if match == "iou" else None
    volume = jnp.prod(inputs.spacing, axis=-1)
    matches = _match(found, volume, jnp.asarray(volume_threshold, jnp.float32), threshold)
    tp = jnp.sum(matches.kept & matches.hit, axis=1, dtype=jnp.int32)
    fn = jnp.sum(matches.kept & ~matches.hit, axis=1, dtype=jnp.int32)
    fp = matches.false
    f1 = divide(
        (2 * tp).astype(jnp.float32),
        (2 * tp + fp + fn).astype(jnp.float32),
        empty=jnp.asarray(zero_division, jnp.float32),
    )
    shape, overflow = inputs.shape, matches.overflow
    return LesionDetection(
        *(_per_image(value, overflow, shape) for value in (tp, fp, fn, f1)),
    )


__all__ = ["LesionDetection", "LesionScores", "lesion_detection", "lesion_wise_scores"]
