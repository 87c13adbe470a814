r"""NumPy/scipy references of the surface metrics, written from MONAI's documented algorithm.

Nothing here shares code with the package. Per image and class, as MONAI's
``get_mask_edges`` / ``get_surface_distance`` and the ``compute_*`` functions describe them:

* surfaces: ``mask ^ scipy.ndimage.binary_erosion(mask)`` (the default structure is the cross of
  connectivity 1, the default border value 0);
* distances from the surface voxels of A to the surface of B: a KD-tree (``scipy.spatial``) on
  B's surface voxel coordinates scaled by the spacing, queried with the metric's Minkowski norm
  (2: Euclidean, 1: taxicab, inf: chessboard); :func:`edt_distances` computes the Euclidean ones
  with ``scipy.ndimage.distance_transform_edt`` instead, as MONAI does;
* empty surfaces, as in MONAI: if B has no surface every distance from A is ``inf``; if A has
  none (and B has), the "distances" are ``inf`` once per surface voxel of B;
* Hausdorff: each direction's maximum, or its percentile by ``numpy.quantile`` (linear, as
  ``torch.quantile``), NaN for an empty set; the larger of the two directions. One documented
  difference from MONAI 1.5: the percentile of a set of infinities is ``inf`` (MONAI's
  ``torch.quantile`` returns NaN there, Project-MONAI/MONAI#9095);
* average surface distance: the mean of one direction, or of both pooled (symmetric), NaN for
  an empty set;
* surface Dice: both directions' counts of distances ``<= tolerance`` over their sizes, NaN when
  both are empty.
"""

from typing import Any

import numpy as np
import scipy.ndimage as ndi
import scipy.spatial

NORMS = {"euclidean": 2.0, "taxicab": 1.0, "chessboard": np.inf}


def edges(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask, bool)
    return mask ^ ndi.binary_erosion(mask)


def directed_distances(
    a_edges: np.ndarray, b_edges: np.ndarray, spacing: Any, metric: str
) -> np.ndarray:
    """Distances from the surface voxels of A to the nearest surface voxel of B (MONAI's rules)."""
    if not b_edges.any():
        return np.full(int(a_edges.sum()), np.inf)
    if not a_edges.any():
        return np.full(int(b_edges.sum()), np.inf)
    scale = np.broadcast_to(np.ones(a_edges.ndim) if spacing is None else spacing, a_edges.ndim)
    tree = scipy.spatial.cKDTree(np.argwhere(b_edges) * scale)
    distances, _ = tree.query(np.argwhere(a_edges) * scale, p=NORMS[metric])
    # MONAI hands on float32 distances (and compares them with the tolerance in float32).
    return np.asarray(distances, np.float32)


def edt_distances(a_edges: np.ndarray, b_edges: np.ndarray, spacing: Any) -> np.ndarray:
    """The Euclidean distances of :func:`directed_distances` by scipy's EDT (both non-empty)."""
    return ndi.distance_transform_edt(~b_edges, sampling=spacing)[a_edges]


def _percentile(distances: np.ndarray, percentile: float | None) -> float:
    if distances.size == 0:
        return np.nan
    if percentile is None:
        return float(distances.max())
    if np.isinf(distances).all():
        return np.inf
    return float(np.quantile(distances, percentile / 100.0))


def _pairs(predictions: np.ndarray, labels: np.ndarray, include_background: bool):
    """``(b, c, prediction mask, label mask)`` for one-hot ``[B, *spatial, C]`` arrays."""
    first = 0 if include_background else 1
    for b in range(predictions.shape[0]):
        for c in range(first, predictions.shape[-1]):
            yield b, c - first, predictions[b, ..., c], labels[b, ..., c]


def _result(predictions: np.ndarray, include_background: bool) -> np.ndarray:
    classes = predictions.shape[-1] - (0 if include_background else 1)
    return np.zeros((predictions.shape[0], classes))


def _spacing_of(spacing: Any, b: int) -> Any:
    if spacing is None:
        return None
    spacing = np.asarray(spacing, np.float64)
    return spacing[b] if spacing.ndim == 2 else spacing


def hausdorff_distance(
    predictions: np.ndarray,
    labels: np.ndarray,
    *,
    percentile: float | None = None,
    directed: bool = False,
    spacing: Any = None,
    include_background: bool = False,
    distance_metric: str = "euclidean",
) -> np.ndarray:
    out = _result(predictions, include_background)
    for b, c, p, g in _pairs(predictions, labels, include_background):
        pe, ge = edges(p), edges(g)
        sp = _spacing_of(spacing, b)
        values = [_percentile(directed_distances(pe, ge, sp, distance_metric), percentile)]
        if not directed:
            values.append(_percentile(directed_distances(ge, pe, sp, distance_metric), percentile))
        out[b, c] = np.max(values)
    return out


def average_surface_distance(
    predictions: np.ndarray,
    labels: np.ndarray,
    *,
    symmetric: bool = False,
    spacing: Any = None,
    include_background: bool = False,
    distance_metric: str = "euclidean",
) -> np.ndarray:
    out = _result(predictions, include_background)
    for b, c, p, g in _pairs(predictions, labels, include_background):
        pe, ge = edges(p), edges(g)
        sp = _spacing_of(spacing, b)
        pooled = [directed_distances(pe, ge, sp, distance_metric)]
        if symmetric:
            pooled.append(directed_distances(ge, pe, sp, distance_metric))
        distances = np.concatenate(pooled)
        out[b, c] = distances.mean() if distances.size else np.nan
    return out


def surface_dice(
    predictions: np.ndarray,
    labels: np.ndarray,
    *,
    tolerance: Any,
    spacing: Any = None,
    include_background: bool = False,
    distance_metric: str = "euclidean",
) -> np.ndarray:
    out = _result(predictions, include_background)
    tolerances = np.broadcast_to(np.asarray(tolerance, np.float64), out.shape[1:])
    for b, c, p, g in _pairs(predictions, labels, include_background):
        pe, ge = edges(p), edges(g)
        sp = _spacing_of(spacing, b)
        forward = directed_distances(pe, ge, sp, distance_metric)
        backward = directed_distances(ge, pe, sp, distance_metric)
        complete = forward.size + backward.size
        correct = np.sum(forward <= tolerances[c]) + np.sum(backward <= tolerances[c])
        out[b, c] = correct / complete if complete else np.nan
    return out
