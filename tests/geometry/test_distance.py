"""The exact distance transform (``jsl.metrics.distance_transform``) against scipy and brute
force: Euclidean, taxicab and chessboard, 1-D to 3-D, unit and anisotropic spacing, masks with
no zero, one zero, one foreground voxel. Every mask of a shape runs in one ``vmap``.
"""

import functools

import jax
import numpy as np
import pytest
import scipy.ndimage as ndi

import jaxseg_losses as jsl

metrics = jsl.metrics
METRICS = ("euclidean", "taxicab", "chessboard")


def brute_force_transform(mask, spacing, metric):
    """Distance to the nearest zero, over all pairs (small masks only); inf without a zero."""
    zeros = np.argwhere(~mask)
    if len(zeros) == 0:
        return np.full(mask.shape, np.inf)
    points = np.argwhere(np.ones(mask.shape, bool))
    offsets = np.abs(points[:, None, :] - zeros[None, :, :]) * np.asarray(spacing)
    if metric == "euclidean":
        distances = np.sqrt(np.sum(offsets**2, axis=-1))
    elif metric == "taxicab":
        distances = np.sum(offsets, axis=-1)
    else:
        distances = np.max(offsets, axis=-1)
    return distances.min(axis=1).reshape(mask.shape)


def transform_cases(shape, seed):
    """Masks of one shape (random densities, one zero, one foreground voxel, none, all) and
    spacings (unit, anisotropic)."""
    rng = np.random.default_rng(seed)
    masks = [rng.random(shape) < p for p in (0.3, 0.7, 0.97)]
    one_zero = np.ones(shape, bool)
    one_zero[tuple(rng.integers(0, n) for n in shape)] = False
    one_foreground = np.zeros(shape, bool)
    one_foreground[tuple(n // 2 for n in shape)] = True
    masks += [one_zero, one_foreground, np.zeros(shape, bool), np.ones(shape, bool)]
    masks = masks + masks  # the second half with anisotropic spacing
    spacings = [np.ones(len(shape))] * (len(masks) // 2)
    spacings += [rng.uniform(0.4, 2.5, len(shape)) for _ in range(len(masks) // 2)]
    return np.stack(masks), np.stack(spacings).astype(np.float32)


@functools.partial(jax.jit, static_argnames="distance_metrics")
def batched_transforms(masks, spacings, distance_metrics):
    return {
        metric: jax.vmap(
            lambda m, s, metric=metric: metrics.distance_transform(
                m, spacing=s, distance_metric=metric
            )
        )(masks, spacings)
        for metric in distance_metrics
    }


@pytest.mark.parametrize(
    "shape, distance_metrics",
    [((37,), ("euclidean",)), ((13, 17), METRICS), ((6, 9, 7), ("euclidean",))],
)
def test_distance_transform_matches_scipy(shape, distance_metrics):
    masks, spacings = transform_cases(shape, seed=len(shape))
    results = batched_transforms(masks, spacings, distance_metrics)
    for metric, result in results.items():
        result = np.asarray(result)
        assert result.dtype == np.float32 and result.shape == masks.shape
        for mask, spacing, ours in zip(masks, spacings, result, strict=True):
            if mask.all():
                # No zero to measure to: inf everywhere (scipy measures to an imaginary zero).
                np.testing.assert_array_equal(ours, np.inf)
                continue
            if metric == "euclidean":
                expected = ndi.distance_transform_edt(mask, sampling=spacing)
            elif np.all(spacing == 1):
                expected = ndi.distance_transform_cdt(mask, metric=metric).astype(np.float64)
            else:
                expected = brute_force_transform(mask, spacing, metric)
            np.testing.assert_allclose(ours, expected, rtol=2e-6, atol=1e-6, err_msg=metric)
            np.testing.assert_array_equal(ours[~mask], 0.0)
