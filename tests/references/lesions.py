r"""NumPy/scipy references of the lesion-wise metrics, written from the BraTS 2023 steps.

Nothing here shares code with the package. One binary mask of one image at a time, as the BraTS
2023 lesion-wise script (``rachitsaluja/BraTS-2023-Metrics``, ``metrics.py``,
``get_LesionWiseScores`` / ``get_LesionWiseResults``) describes its steps:

1. label the ground truth and the prediction (``scipy.ndimage.label`` with the structure of
   ``connectivity``; cc3d's 26-connectivity is connectivity 3);
2. dilate the ground truth ``dilation_iterations`` times with
   ``generate_binary_structure(D, dilation_connectivity)`` (2 in BraTS: the 18-neighbourhood),
   label the dilated mask, and let every dilated component define one lesion: the ground truth
   inside it;
3. for every lesion: dilate the lesion alone the same way (its region of interest); the
   predicted components that meet the region are its match; Dice and the surface-area weighted
   HD95 of the lesion against the union of those components; volume = voxels x voxel volume;
4. predicted components that meet no region are false positives;
5. lesions of volume ``<= volume_threshold`` are left out; the scores are the sums over the kept
   lesions (HD ``inf`` replaced by ``missing_hd``) plus ``missing_hd`` per false positive (Dice
   0), divided by (kept lesions + false positives); 1 and 0 when that is 0.

Excluded pixels (``counted`` False) are outside the image: in no mask, and the dilation does not
enter them (``binary_dilation(..., mask=counted)``).

The HD95 is ``surface_distance.compute_robust_hausdorff(compute_surface_distances(...), 95)``
(DeepMind's ``surface-distance``, vendored in the BraTS repository) written again: surface
elements on the voxel corners, each with its marching-cubes area; the distances from one
surface's elements to the other's, sorted, and the first whose cumulative area fraction reaches
the percentile. The 3-D areas come from the peer's ``neighbour_code_to_normals`` table, held
below for one cell of each of its 22 classes under the cube's symmetries (the table is
symmetric: checked against all 256 entries); the 2-D lengths are its
``create_table_neighbour_code_to_contour_length``.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import scipy.ndimage as ndi

# surface-distance (google-deepmind/surface-distance 1f805ce, lookup_tables.py,
# _NEIGHBOUR_CODE_TO_NORMALS; identical in the copy vendored by BraTS-2023-Metrics 43c9052):
# one cell of each class under the 48 symmetries of the cube, as (voxels in the mask as offsets
# (i, j, k) in the 2x2x2 cell, absolute area vectors of its triangles in eighths of a voxel).
_CUBE_CLASSES = (
    (((1, 1, 1),), [(1, 1, 1)]),
    (((1, 1, 0), (1, 1, 1)), [(2, 2, 0), (2, 2, 0)]),
    (((1, 0, 1), (1, 1, 0)), [(1, 1, 1), (1, 1, 1)]),
    (((1, 0, 1), (1, 1, 0), (1, 1, 1)), [(1, 1, 1), (2, 2, 2), (4, 0, 0)]),
    (((1, 0, 0), (1, 0, 1), (1, 1, 0), (1, 1, 1)), [(4, 0, 0), (4, 0, 0)]),
    (((0, 1, 1), (1, 0, 1), (1, 1, 0)), [(1, 1, 1), (1, 1, 1), (1, 1, 1)]),
    (((0, 1, 1), (1, 0, 1), (1, 1, 0), (1, 1, 1)), [(1, 1, 1), (1, 1, 1), (2, 2, 2), (2, 2, 2)]),
    (((0, 1, 1), (1, 0, 0)), [(1, 1, 1), (1, 1, 1)]),
    (((0, 1, 1), (1, 0, 0), (1, 1, 1)), [(0, 2, 2), (0, 2, 2), (1, 1, 1)]),
    (((0, 1, 1), (1, 0, 0), (1, 1, 0), (1, 1, 1)), [(0, 2, 2), (1, 1, 1), (2, 0, 2), (3, 3, 3)]),
    (((0, 1, 1), (1, 0, 0), (1, 0, 1), (1, 1, 0)), [(1, 1, 1), (1, 1, 1), (2, 2, 2), (4, 0, 0)]),
    (((0, 1, 1), (1, 0, 0), (1, 0, 1), (1, 1, 0), (1, 1, 1)), [(1, 1, 1), (2, 2, 2), (4, 0, 0)]),
    (((0, 1, 0), (0, 1, 1), (1, 0, 0), (1, 0, 1)), [(2, 2, 0)] * 4),
    (((0, 1, 0), (0, 1, 1), (1, 0, 0), (1, 0, 1), (1, 1, 1)), [(1, 1, 1), (2, 2, 0), (2, 2, 0)]),
    (((0, 1, 0), (0, 1, 1), (1, 0, 0), (1, 0, 1), (1, 1, 0), (1, 1, 1)), [(2, 2, 0), (2, 2, 0)]),
    (((0, 0, 1), (0, 1, 0), (1, 0, 0), (1, 1, 1)), [(1, 1, 1)] * 4),
    (((0, 0, 1), (0, 1, 0), (1, 0, 0), (1, 1, 0), (1, 1, 1)), [(1, 1, 1)] * 3),
    (((0, 0, 1), (0, 1, 0), (1, 0, 0), (1, 0, 1), (1, 1, 0), (1, 1, 1)), [(1, 1, 1)] * 2),
    (((0, 0, 1), (0, 1, 0), (0, 1, 1), (1, 0, 0), (1, 0, 1), (1, 1, 0)), [(1, 1, 1)] * 2),
    (((0, 0, 1), (0, 1, 0), (0, 1, 1), (1, 0, 0), (1, 0, 1), (1, 1, 0), (1, 1, 1)), [(1, 1, 1)]),
)
_CELL = tuple(itertools.product((0, 1), repeat=3))


def _cube_normals() -> dict[frozenset, np.ndarray]:
    """Every 3-D cell (its voxels in the mask) -> its area vectors, by the cube's symmetries."""
    table: dict[frozenset, np.ndarray] = {frozenset(): np.zeros((0, 3))}
    table[frozenset(_CELL)] = np.zeros((0, 3))
    for voxels, eighths in _CUBE_CLASSES:
        normals = np.array(eighths, float) / 8.0
        for perm in itertools.permutations(range(3)):
            for flips in itertools.product((0, 1), repeat=3):
                image = frozenset(tuple(v[perm[a]] ^ flips[a] for a in range(3)) for v in voxels)
                table[image] = normals[:, list(perm)]
    assert len(table) == 256
    return table


_CUBE_NORMALS = _cube_normals()


def cell_areas(spacing: Any) -> np.ndarray:
    """``[2^(2^D)]`` float64: the surface area of each cell code (bit ``j`` = voxel offset
    ``itertools.product((0, 1), repeat=D)[j]``) for the spacing."""
    s = np.asarray(spacing, float)
    dims = s.size
    cell = tuple(itertools.product((0, 1), repeat=dims))
    areas = np.zeros(2 ** len(cell))
    for code in range(1, 2 ** len(cell) - 1):
        inside = [c for j, c in enumerate(cell) if code >> j & 1]
        if dims == 1:
            areas[code] = 1.0
        elif dims == 2:
            # create_table_neighbour_code_to_contour_length.
            diag = 0.5 * np.hypot(s[0], s[1])
            if len(inside) != 2:
                areas[code] = diag
            elif inside[0][0] == inside[1][0]:
                areas[code] = s[1]  # a pair on one row: a segment along axis 1
            elif inside[0][1] == inside[1][1]:
                areas[code] = s[0]
            else:
                areas[code] = 2 * diag
        else:
            normals = _CUBE_NORMALS[frozenset(inside)]
            scale = np.array([s[1] * s[2], s[0] * s[2], s[0] * s[1]])
            areas[code] = np.linalg.norm(normals * scale, axis=1).sum()
    return areas


def _codes(mask: np.ndarray) -> np.ndarray:
    padded = np.pad(np.asarray(mask, bool), 1)
    cell = tuple(itertools.product((0, 1), repeat=mask.ndim))
    out = np.zeros(tuple(n + 1 for n in mask.shape), np.int64)
    for bit, offset in enumerate(cell):
        index = tuple(slice(o, o + n + 1) for o, n in zip(offset, mask.shape, strict=True))
        out |= padded[index].astype(np.int64) << bit
    return out


def _directed(a_codes, b_border, areas, spacing):
    """(distances, areas) of A's surface elements to B's surface, sorted like the peer."""
    full = areas.size - 1
    a_border = (a_codes != 0) & (a_codes != full)
    if b_border.any():
        field = np.asarray(ndi.distance_transform_edt(~b_border, sampling=spacing))
    else:
        field = np.full(b_border.shape, np.inf)
    pairs = sorted(zip(field[a_border], areas[a_codes[a_border]], strict=True))
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])


def robust_hausdorff(gt: np.ndarray, pred: np.ndarray, spacing: Any, percent: float) -> float:
    """compute_robust_hausdorff(compute_surface_distances(gt, pred, spacing), percent)."""
    spacing = np.asarray(spacing, float)
    areas = cell_areas(spacing)
    gt_codes, pred_codes = _codes(gt), _codes(pred)
    full = areas.size - 1
    gt_border = (gt_codes != 0) & (gt_codes != full)
    pred_border = (pred_codes != 0) & (pred_codes != full)
    result = 0.0
    for codes, other in ((gt_codes, pred_border), (pred_codes, gt_border)):
        distances, weights = _directed(codes, other, areas, spacing)
        if distances.size == 0:
            return np.inf
        fraction = np.cumsum(weights) / np.sum(weights)
        index = np.searchsorted(fraction, percent / 100.0)
        result = max(result, distances[min(index, distances.size - 1)])
    return float(result)


def _structure(dims: int, connectivity: int) -> np.ndarray:
    return ndi.generate_binary_structure(dims, connectivity)


def _label(mask: np.ndarray, connectivity: int) -> tuple[np.ndarray, int]:
    result: Any = ndi.label(mask, structure=_structure(mask.ndim, connectivity))
    return np.asarray(result[0]), int(result[1])


def _dilate(mask, dims, dilation_connectivity, iterations, counted):
    if iterations == 0:
        return mask.copy()
    grown = ndi.binary_dilation(
        mask,
        structure=_structure(dims, dilation_connectivity),
        iterations=iterations,
        mask=counted,
    )
    return np.asarray(grown, bool)


def true_lesions(gt, *, connectivity, dilation_connectivity, dilation_iterations, counted):
    """int ``[*spatial]``: the lesion of each ground-truth voxel (get_GTseg_combinedByDilation),
    and the number of lesions."""
    dims = gt.ndim
    dilated = _dilate(gt, dims, dilation_connectivity, dilation_iterations, counted)
    regions, count = _label(dilated, connectivity)
    return np.where(gt, regions, 0), count


def lesion_wise(
    pred: np.ndarray,
    gt: np.ndarray,
    *,
    spacing: Any = None,
    connectivity: int | None = None,
    dilation_connectivity: int | None = None,
    dilation_iterations: int = 3,
    volume_threshold: float = 50.0,
    missing_hd: float = 374.0,
    percent: float = 95.0,
    counted: np.ndarray | None = None,
) -> dict[str, float]:
    """BraTS 2023 lesion-wise scores of one binary mask of one image."""
    dims = gt.ndim
    connectivity = dims if connectivity is None else connectivity
    dilation_connectivity = min(2, dims) if dilation_connectivity is None else dilation_connectivity
    counted = np.ones(gt.shape, bool) if counted is None else counted
    gt, pred = gt & counted, pred & counted
    spacing = np.ones(dims) if spacing is None else np.broadcast_to(spacing, (dims,))
    voxel = float(np.prod(spacing))
    lesions, count = true_lesions(
        gt,
        connectivity=connectivity,
        dilation_connectivity=dilation_connectivity,
        dilation_iterations=dilation_iterations,
        counted=counted,
    )
    pred_cc, pred_count = _label(pred, connectivity)
    hit_components: set[int] = set()
    dice_sum = hd_sum = 0.0
    tp = fn = kept = 0
    for lesion in range(1, count + 1):
        gt_tmp = lesions == lesion
        region = _dilate(gt_tmp, dims, dilation_connectivity, dilation_iterations, counted)
        hits = set(np.unique(pred_cc[region]).tolist()) - {0}
        hit_components |= hits
        pred_tmp = np.isin(pred_cc, sorted(hits)) & (pred_cc > 0)
        dice = 2.0 * (pred_tmp & gt_tmp).sum() / (pred_tmp.sum() + gt_tmp.sum())
        hd = robust_hausdorff(gt_tmp, pred_tmp, spacing, percent)
        if gt_tmp.sum() * voxel <= volume_threshold:
            continue
        kept += 1
        tp += bool(hits)
        fn += not hits
        dice_sum += dice
        hd_sum += missing_hd if np.isinf(hd) else hd
    fp = pred_count - len(hit_components)
    total = kept + fp
    return {
        "dice": dice_sum / total if total else 1.0,
        "hausdorff": (hd_sum + fp * missing_hd) / total if total else 0.0,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "true_lesions": count,
        "predicted_lesions": pred_count,
    }


def lesion_detection(
    pred: np.ndarray,
    gt: np.ndarray,
    *,
    match: str = "overlap",
    iou_threshold: float = 0.5,
    spacing: Any = None,
    connectivity: int | None = None,
    dilation_connectivity: int | None = None,
    dilation_iterations: int = 0,
    volume_threshold: float = 0.0,
    counted: np.ndarray | None = None,
) -> dict[str, float]:
    """Lesion detection counts of one binary mask of one image, by brute force over pairs.

    ``overlap``: a predicted component matches a lesion when it meets the lesion's dilated
    region (the lesion itself without dilation); ``iou``: when the IoU of the component and
    the lesion exceeds the threshold. TP: kept lesions with a match; FN: kept lesions without;
    FP: components that match no lesion (kept or not).
    """
    dims = gt.ndim
    connectivity = dims if connectivity is None else connectivity
    dilation_connectivity = min(2, dims) if dilation_connectivity is None else dilation_connectivity
    counted = np.ones(gt.shape, bool) if counted is None else counted
    gt, pred = gt & counted, pred & counted
    spacing = np.ones(dims) if spacing is None else np.broadcast_to(spacing, (dims,))
    voxel = float(np.prod(spacing))
    lesions, count = true_lesions(
        gt,
        connectivity=connectivity,
        dilation_connectivity=dilation_connectivity,
        dilation_iterations=dilation_iterations,
        counted=counted,
    )
    pred_cc, pred_count = _label(pred, connectivity)
    matched = np.zeros((pred_count + 1, count + 1), bool)
    for lesion in range(1, count + 1):
        gt_tmp = lesions == lesion
        region = _dilate(gt_tmp, dims, dilation_connectivity, dilation_iterations, counted)
        for component in range(1, pred_count + 1):
            p = pred_cc == component
            if match == "overlap":
                matched[component, lesion] = (p & region).any()
            else:
                iou = (p & gt_tmp).sum() / (p | gt_tmp).sum()
                matched[component, lesion] = iou > iou_threshold
    kept = np.array(
        [False] + [(lesions == k).sum() * voxel > volume_threshold for k in range(1, count + 1)]
    )
    hit = matched.any(axis=0)
    tp = int((kept & hit).sum())
    fn = int((kept & ~hit).sum())
    fp = int((~matched[1:].any(axis=1)).sum())
    f1 = 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else np.nan
    return {"tp": tp, "fp": fp, "fn": fn, "f1": f1}


# ----------------------------------------------------------------------------------------------
# Volumes of the BraTS comparison: label maps (0 background, 1 NCR, 2 ED, 3 ET) painted from
# balls and boxes, so that the test rebuilds exactly what the BraTS script scored.


def _ball(shape, centre, radius):
    grid = np.indices(shape)
    squared = sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True))
    return squared <= radius**2


def _paint(shape, strokes):
    out = np.zeros(shape, np.int16)
    for label, kind, a, b in strokes:
        if kind == "ball":
            region = _ball(shape, a, b)
        else:
            region = np.zeros(shape, bool)
            region[tuple(slice(lo, hi) for lo, hi in zip(a, b, strict=True))] = True
        out[region] = label
    return out


BRATS_SHAPE = (40, 40, 40)
# (ground-truth strokes, predicted strokes, spacing, challenge) of each case.
BRATS_CASES = (
    (
        [
            (2, "ball", (12, 12, 14), 7),
            (3, "ball", (12, 12, 14), 5),
            (1, "ball", (12, 12, 14), 3),
            (3, "box", (10, 22, 12), (13, 25, 15)),
            (2, "ball", (30, 30, 28), 4),
            (3, "ball", (30, 30, 28), 2),
            (3, "box", (35, 4, 4), (37, 6, 6)),
        ],
        [
            (2, "ball", (13, 12, 13), 7),
            (3, "ball", (13, 12, 13), 5),
            (1, "ball", (13, 12, 13), 3),
            (3, "box", (10, 22, 12), (14, 26, 16)),
            (3, "box", (35, 4, 4), (37, 6, 7)),
            (3, "ball", (5, 32, 10), 2),
            (2, "ball", (30, 8, 30), 3),
        ],
        (1.0, 1.0, 1.0),
        "BraTS-GLI",
    ),
    (
        [
            (3, "ball", (8, 8, 8), 2),
            (2, "ball", (20, 10, 10), 3),
            (3, "ball", (20, 10, 10), 1),
            (3, "box", (8, 30, 8), (10, 31, 9)),
            (3, "box", (8, 30, 12), (9, 31, 13)),
            (1, "ball", (30, 30, 30), 3),
            (3, "box", (31, 25, 24), (33, 27, 26)),
            (3, "box", (31, 25, 29), (33, 27, 30)),
        ],
        [
            (3, "ball", (9, 8, 8), 2),
            (2, "ball", (20, 11, 10), 2),
            (1, "box", (30, 25, 24), (33, 27, 30)),
            (1, "ball", (30, 31, 30), 2),
            (3, "box", (2, 36, 2), (4, 38, 3)),
            (3, "box", (8, 30, 12), (9, 31, 13)),
        ],
        (1.0, 1.0, 1.0),
        "BraTS-MET",
    ),
    (
        [
            (2, "ball", (16, 20, 12), 6),
            (2, "box", (28, 8, 20), (34, 14, 30)),
            (2, "box", (28, 18, 22), (32, 22, 26)),
        ],
        [
            (2, "ball", (17, 20, 12), 5),
            (2, "box", (28, 9, 20), (34, 14, 28)),
            (1, "ball", (6, 32, 30), 2),
        ],
        (1.0, 1.25, 2.0),
        "BraTS-GLI",
    ),
)
CHALLENGES = {"BraTS-GLI": (3, 50.0), "BraTS-MET": (1, 2.0)}
REGIONS = ("WT", "TC", "ET")


def brats_case(index: int) -> tuple[np.ndarray, np.ndarray, tuple[float, ...], str]:
    """``(ground truth, prediction, spacing, challenge)`` label maps of one BraTS case."""
    gt_strokes, pred_strokes, spacing, challenge = BRATS_CASES[index]
    return (
        _paint(BRATS_SHAPE, gt_strokes),
        _paint(BRATS_SHAPE, pred_strokes),
        spacing,
        challenge,
    )


def brats_regions(label_map: np.ndarray) -> np.ndarray:
    """bool ``[*spatial, 3]``: the WT, TC, ET regions of a BraTS label map."""
    return np.stack([label_map > 0, (label_map == 1) | (label_map == 3), label_map == 3], axis=-1)
