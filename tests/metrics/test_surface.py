"""Surface metrics against a NumPy/scipy reference (tests/references/surface.py) and MONAI's
numbers.

Every comparison runs under ``jax.jit``, and each jitted function computes many cases at once so
that the file compiles few programs: every metric option of one data set in one program. The
distance transform itself: tests/geometry/test_distance.py.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxseg_losses as jsl
from jaxseg_losses.metrics import surface
from tests.helpers import one_hot
from tests.references import surface as ref

metrics = jsl.metrics
METRICS = ("euclidean", "taxicab", "chessboard")


# ----------------------------------------------------------------------------------------------
# The surface metrics against the NumPy/scipy reference.


def blobs(rng, shape, num_classes, count):
    """Integer label maps with a few random boxes per class drawn over background 0."""
    maps = np.zeros((count, *shape), np.int32)
    for b in range(count):
        for c in range(1, num_classes):
            for _ in range(2):
                lo = [rng.integers(0, n - 2) for n in shape]
                hi = [
                    rng.integers(low + 2, min(n, low + n // 2 + 2) + 1)
                    for low, n in zip(lo, shape, strict=True)
                ]
                maps[(b, *(slice(a, z) for a, z in zip(lo, hi, strict=True)))] = c
    return maps


def perturbed(rng, maps, num_classes):
    """A prediction: the labels shifted by a voxel, with some voxels flipped to another class."""
    shifted = np.roll(maps, rng.integers(-1, 2, maps.ndim - 1), axis=tuple(range(1, maps.ndim)))
    flips = rng.random(maps.shape) < 0.04
    return np.where(flips, rng.integers(0, num_classes, maps.shape), shifted).astype(np.int32)


def with_empty_cases(predictions, labels):
    """Image 0: class 1 missing from the prediction, class 2 from the labels, class 3 from both."""
    predictions, labels = predictions.copy(), labels.copy()
    predictions[0][predictions[0] == 1] = 0
    labels[0][labels[0] == 2] = 0
    predictions[0][predictions[0] == 3] = 0
    labels[0][labels[0] == 3] = 0
    return predictions, labels


PERCENTILES = np.array([0.0, 50.0, 95.0, 100.0], np.float32)


@functools.partial(
    jax.jit, static_argnames=("num_classes", "class_axis", "distance_metric", "one_way")
)
def all_metrics(
    predictions, labels, spacing, tolerance, *, num_classes, class_axis, distance_metric, one_way
):
    """Every option of every metric on one data set, in one program. The options measuring both
    directions share one distance computation (XLA merges the identical transforms), the one-way
    options (``one_way``) a second one."""
    options = dict(
        num_classes=num_classes,
        spacing=spacing,
        class_axis=class_axis,
        distance_metric=distance_metric,
    )
    percentile_hd = jax.vmap(
        lambda q: metrics.hausdorff_distance(predictions, labels, percentile=q, **options)
    )
    results = {
        "hd": metrics.hausdorff_distance(predictions, labels, **options),
        "hd_percentile": percentile_hd(PERCENTILES),
        "assd": metrics.average_surface_distance(predictions, labels, symmetric=True, **options),
        "nsd": metrics.surface_dice(predictions, labels, tolerance=tolerance, **options),
    }
    if one_way:
        results["hd_directed"] = metrics.hausdorff_distance(
            predictions, labels, directed=True, **options
        )
        results["asd"] = metrics.average_surface_distance(predictions, labels, **options)
    return results


def reference_metrics(predictions, labels, spacing, tolerance, distance_metric, one_way):
    """The same dictionary from the reference, on one-hot ``[B, *spatial, C]`` arrays."""
    options = dict(spacing=spacing, distance_metric=distance_metric)
    percentiles = [
        ref.hausdorff_distance(predictions, labels, percentile=q, **options) for q in PERCENTILES
    ]
    results = {
        "hd": ref.hausdorff_distance(predictions, labels, **options),
        "hd_percentile": np.stack(percentiles),
        "assd": ref.average_surface_distance(predictions, labels, symmetric=True, **options),
        "nsd": ref.surface_dice(predictions, labels, tolerance=tolerance, **options),
    }
    if one_way:
        results["hd_directed"] = ref.hausdorff_distance(
            predictions, labels, directed=True, **options
        )
        results["asd"] = ref.average_surface_distance(predictions, labels, **options)
    return results


def assert_same(ours, expected):
    assert set(ours) == set(expected)
    for name, value in expected.items():
        got = np.asarray(ours[name])
        assert got.dtype == np.float32 and got.shape == value.shape, name
        np.testing.assert_allclose(got, value, rtol=2e-5, atol=1e-5, err_msg=name)


@pytest.fixture(scope="module")
def data_2d():
    """Integer label maps [B, 19, 23] with 4 classes, the empty cases, per-image spacing [B, 2];
    the batch holds (P, G), then (G, P), then (G, G) for the symmetry and identity checks."""
    rng = np.random.default_rng(0)
    labels = blobs(rng, (19, 23), 4, count=3)
    predictions, labels = with_empty_cases(perturbed(rng, labels, 4), labels)
    spacing = rng.uniform(0.5, 2.0, (3, 2)).astype(np.float32)
    batch_p = np.concatenate([predictions, labels, labels])
    batch_g = np.concatenate([labels, predictions, labels])
    return batch_p, batch_g, np.concatenate([spacing] * 3), np.array([1.3, 0.9, 2.1], np.float32)


@pytest.fixture(scope="module")
def euclidean_2d(data_2d):
    predictions, labels, spacing, tolerance = data_2d
    options = dict(num_classes=4, class_axis=-1, distance_metric="euclidean", one_way=True)
    return all_metrics(predictions, labels, spacing, tolerance, **options)


@pytest.mark.parametrize("distance_metric", METRICS)
def test_metrics_match_reference_2d_integer_labels(data_2d, euclidean_2d, distance_metric):
    """Per-image anisotropic spacing; taxicab and chessboard scale each axis by its spacing."""
    predictions, labels, spacing, tolerance = data_2d
    one_way = distance_metric == "euclidean"  # the one-way options do not depend on the metric
    if one_way:
        ours = euclidean_2d
    else:
        options = dict(num_classes=4, class_axis=-1, one_way=False)
        ours = all_metrics(
            predictions, labels, spacing, tolerance, distance_metric=distance_metric, **options
        )
    p_hot, g_hot = one_hot(predictions, 4, bool), one_hot(labels, 4, bool)
    assert_same(ours, reference_metrics(p_hot, g_hot, spacing, tolerance, distance_metric, one_way))


def test_properties(euclidean_2d):
    """On the batch (P, G) + (G, P) + (G, G): symmetry, zero distance and NSD 1 for identical
    masks, HD >= HD95 >= HD50 >= HD0 >= 0, directed <= undirected, NSD in [0, 1]."""
    ours = {name: np.asarray(value) for name, value in euclidean_2d.items()}
    hd, hd_q, nsd = ours["hd"], ours["hd_percentile"], ours["nsd"]
    forward, backward, same = slice(0, 3), slice(3, 6), slice(6, 9)
    for name in ("hd", "assd", "nsd"):
        np.testing.assert_array_equal(ours[name][forward], ours[name][backward], err_msg=name)
    present = ~np.isnan(hd[same])
    assert present.sum() >= 7
    for name in ("hd", "hd_directed", "asd", "assd"):
        np.testing.assert_array_equal(ours[name][same][present], 0.0, err_msg=name)
    np.testing.assert_array_equal(nsd[same][present], 1.0)
    np.testing.assert_array_equal(hd_q[:, same][:, present], 0.0)
    finite = np.isfinite(hd)
    assert finite.sum() >= 14
    ordered = np.concatenate([hd[None], hd_q[::-1]])[:, finite]
    assert np.all(np.diff(ordered, axis=0) <= 0) and np.all(ordered >= 0)
    np.testing.assert_array_equal(hd_q[-1], hd)
    assert np.all(ours["hd_directed"][finite] <= hd[finite])
    assert np.all((nsd[finite] >= 0) & (nsd[finite] <= 1))
    assert np.any((nsd[finite] > 0) & (nsd[finite] < 1))


def test_streamed_into_a_per_image_accumulator(data_2d, euclidean_2d):
    """HD and NSD of the batch folded in two pieces into an accumulator of the foreground classes
    give the means over all images of the reference's values (NaN left out, inf kept)."""
    predictions, labels, spacing, _ = data_2d
    p_hot, g_hot = one_hot(predictions, 4, bool), one_hot(labels, 4, bool)
    expected = {
        "hd": ref.hausdorff_distance(p_hot, g_hot, spacing=spacing, distance_metric="euclidean"),
        "nsd": np.asarray(euclidean_2d["nsd"]),
    }
    acc = metrics.PerImageAccumulator.empty(("hd", "nsd"), 4, include_background=False)
    for piece in (slice(0, 4), slice(4, None)):
        acc = acc.update({name: euclidean_2d[name][piece] for name in ("hd", "nsd")})
    assert int(acc.images) == len(predictions)
    per_class = acc.compute(reduction="mean_batch")
    for name, values in expected.items():
        with np.errstate(invalid="ignore"):
            np.testing.assert_allclose(
                per_class[name], np.nanmean(values, axis=0), rtol=1e-5, err_msg=name
            )
    with pytest.raises(ValueError, match=r"\[B, 4\] per-image values or \[B, 3\]"):
        acc.update({"hd": np.zeros((2, 2)), "nsd": np.zeros((2, 3))})


def test_empty_cases_follow_monai(euclidean_2d):
    """Image 0: class 1 absent from the prediction, class 2 from the labels, class 3 from both
    (columns are classes 1, 2, 3: the background is dropped)."""
    ours = euclidean_2d
    for name in ("hd", "hd_directed", "asd", "assd"):
        np.testing.assert_array_equal(ours[name][0], [np.inf, np.inf, np.nan], err_msg=name)
    np.testing.assert_array_equal(ours["hd_percentile"][:, 0], [[np.inf, np.inf, np.nan]] * 4)
    np.testing.assert_array_equal(ours["nsd"][0], [0.0, 0.0, np.nan])


def test_metrics_match_reference_3d_one_hot_channels_first():
    """Boolean one-hot [B, C, *spatial] (class_axis=1), 3 spatial axes, per-axis spacing."""
    rng = np.random.default_rng(1)
    labels = blobs(rng, (9, 12, 10), 3, count=2)
    predictions = perturbed(rng, labels, 3)
    predictions[1][predictions[1] == 2] = 0  # a class missed by the prediction
    p_hot, g_hot = one_hot(predictions, 3, bool), one_hot(labels, 3, bool)
    spacing = np.array([0.8, 1.3, 1.1], np.float32)
    # The one-way options are checked in 2-D and, in 3-D, on MONAI's spheres.
    options = dict(num_classes=None, class_axis=1, distance_metric="euclidean", one_way=False)
    p_first, g_first = np.moveaxis(p_hot, -1, 1), np.moveaxis(g_hot, -1, 1)
    ours = all_metrics(p_first, g_first, spacing, np.float32(1.25), **options)
    assert_same(ours, reference_metrics(p_hot, g_hot, spacing, 1.25, "euclidean", False))
    assert np.isinf(ours["hd"][1, 1]) and ours["nsd"][1, 1] == 0


def test_one_dimensional_vmap_and_mixed_inputs():
    """1-D label maps; vmap over images equals the batch; an integer prediction against one-hot
    labels; a per-image spacing under vmap."""
    rng = np.random.default_rng(2)
    labels = np.zeros((4, 30), np.int32)
    for b in range(4):
        for c in (1, 2):
            start = rng.integers(0, 24)
            labels[b, start : start + rng.integers(2, 7)] = c
    predictions = np.roll(labels, 1, axis=1)
    spacing = rng.uniform(0.5, 2.0, (4, 1)).astype(np.float32)

    @jax.jit
    def run(predictions, labels, spacing):
        one_image = jax.vmap(
            lambda p, g, s: metrics.hausdorff_distance(
                p[None], g[None], num_classes=3, spacing=s, percentile=95
            )[0]
        )
        batch = metrics.hausdorff_distance(
            predictions, labels, num_classes=3, spacing=spacing, percentile=95
        )
        one_hot_labels = jax.nn.one_hot(labels, 3, dtype=jnp.bool_)
        mixed = metrics.hausdorff_distance(
            predictions, one_hot_labels, num_classes=3, spacing=spacing, percentile=95
        )
        return one_image(predictions, labels, spacing), batch, mixed

    per_image, batch, mixed = run(predictions, labels, spacing)
    np.testing.assert_array_equal(per_image, batch)
    np.testing.assert_array_equal(mixed, batch)
    p_hot, g_hot = one_hot(predictions, 3, bool), one_hot(labels, 3, bool)
    expected = ref.hausdorff_distance(p_hot, g_hot, percentile=95, spacing=spacing)
    np.testing.assert_allclose(batch, expected, rtol=2e-6)


# ----------------------------------------------------------------------------------------------
# MONAI's own numbers, from its test suite (Project-MONAI/MONAI, tests/metrics/).


def sphere(radius, centre, shape=(99, 99, 99), spacing=(1.0, 1.0, 1.0)):
    """A ball of voxels whose scaled coordinates lie within ``radius`` of ``centre`` (the masks of
    MONAI's ``create_spherical_seg_3d``)."""
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    squared = sum((g * s - c) ** 2 for g, s, c in zip(grid, spacing, centre, strict=True))
    return squared <= radius * radius


def cropped(pairs):
    """Stacks ``(prediction, label)`` masks as one-hot ``[B, *spatial, 1]``, cropped to the box
    ``[0, last foreground + 2)`` of all of them. MONAI crops each pair to its foreground box
    with a margin of one zero voxel itself, so the distances do not change."""
    union = np.any([p | g for p, g in pairs], axis=0)
    stop = np.minimum(np.argwhere(union).max(axis=0) + 2, union.shape)
    box = tuple(slice(0, s) for s in stop)
    predictions = np.stack([p[box] for p, _ in pairs])[..., None]
    labels = np.stack([g[box] for _, g in pairs])[..., None]
    return predictions, labels


SPACING = (0.85, 1.2, 0.9)  # MONAI's test_spacing
EMPTY = np.zeros((99, 99, 99), bool)


def test_hausdorff_and_surface_distance_match_monai_test_suite():
    """test_hausdorff_distance.py TEST_CASES and the percentile=95 case (euclidean, directed and
    not) and test_surface_distance.py TEST_CASES (euclidean, [symmetric, not]) on the same
    spheres, in one program (the options measuring the same directions share a transform)."""
    cases = [  # prediction, labels, spacing, HD directed, HD, ASSD, ASD (None: not in MONAI)
        (sphere(20, (49,) * 3), sphere(20, (49,) * 3), None, 0, 0, 0, 0),
        (
            sphere(20, (20,) * 3),
            sphere(20, (19,) * 3),
            None,
            1.7320508075688772,
            1.7320508075688772,
            None,
            None,
        ),
        (
            sphere(33, (19, 33, 22)),
            sphere(33, (20, 33, 22)),
            None,
            1,
            1,
            0.350217,
            0.3483278807706289,
        ),
        (
            sphere(20, (20, 33, 22)),
            sphere(40, (20, 33, 22)),
            None,
            20.09975124224178,
            20.223748416156685,
            15.117741,
            12.040033513150455,
        ),
        (EMPTY, sphere(40, (20, 33, 22)), None, np.inf, np.inf, np.inf, np.inf),
        (sphere(20, (49,) * 3), EMPTY, None, np.inf, np.inf, np.inf, np.inf),
        (
            sphere(20, (20,) * 3, spacing=SPACING),
            sphere(20, (19,) * 3, spacing=SPACING),
            SPACING,
            2.0808651447296143,
            2.2671568,
            None,
            None,
        ),
        (
            sphere(15, (20, 33, 22), spacing=SPACING),
            sphere(30, (20, 33, 22), spacing=SPACING),
            SPACING,
            15.439640998840332,
            15.62594,
            None,
            None,
        ),
    ]
    predictions, labels = cropped([(p, g) for p, g, *_ in cases])
    spacing = np.array([c[2] or (1.0, 1.0, 1.0) for c in cases], np.float32)

    @jax.jit
    def run(predictions, labels, spacing):
        options = dict(spacing=spacing, include_background=True)
        return (
            metrics.hausdorff_distance(predictions, labels, directed=True, **options),
            metrics.hausdorff_distance(predictions, labels, **options),
            metrics.average_surface_distance(predictions, labels, symmetric=True, **options),
            metrics.average_surface_distance(predictions, labels, **options),
            metrics.hausdorff_distance(
                predictions, labels, directed=True, percentile=95, **options
            ),
            metrics.hausdorff_distance(predictions, labels, percentile=95, **options),
        )

    *results, hd95_directed, hd95 = run(predictions, labels, spacing)
    # The percentile=95 case: the spheres of radius 20 and 40 around (20, 33, 22), case 3.
    np.testing.assert_allclose(hd95_directed[3, 0], 19.924858845171276, rtol=1e-6)
    np.testing.assert_allclose(hd95[3, 0], 20.09975124224178, rtol=1e-6)
    for column, result in enumerate(results, start=3):
        listed = [i for i, case in enumerate(cases) if case[column] is not None]
        expected = [cases[i][column] for i in listed]
        rtol = 1e-6 if column < 5 else 1e-5  # MONAI's tolerances
        np.testing.assert_allclose(result[listed, 0], expected, rtol=rtol, err_msg=str(column))


def test_chessboard_and_taxicab_match_monai_test_suite():
    """The spheres of radius 20 and 40 around (20, 33, 22) in the chessboard and taxicab metrics,
    both directions: HD (TEST_CASES), HD95 (the percentile=95 case) and the average surface
    distances (test_surface_distance.py). MONAI ignores spacing there; these spheres have none."""
    predictions, labels = cropped([(sphere(20, (20, 33, 22)), sphere(40, (20, 33, 22)))])

    @jax.jit
    def run(predictions, labels):
        results = {}
        for metric in ("chessboard", "taxicab"):
            options = dict(include_background=True, distance_metric=metric)
            for directed in (True, False):
                results["hd", metric, directed] = metrics.hausdorff_distance(
                    predictions, labels, directed=directed, **options
                )[0, 0]
                results["hd95", metric, directed] = metrics.hausdorff_distance(
                    predictions, labels, percentile=95, directed=directed, **options
                )[0, 0]
                results["asd", metric, directed] = metrics.average_surface_distance(
                    predictions, labels, symmetric=not directed, **options
                )[0, 0]
        return results

    results = run(predictions, labels)
    expected = {  # [directed / one-way, undirected / symmetric]
        ("hd", "chessboard"): [15, 20],
        ("hd", "taxicab"): [24, 35],
        ("hd95", "chessboard"): [14, 18],
        ("hd95", "taxicab"): [22, 33],
        ("asd", "chessboard"): [9.605067064083457, 11.492719],
        ("asd", "taxicab"): [12.432687531048186, 20.214613],
    }
    for (name, metric), values in expected.items():
        got = [results[name, metric, True], results[name, metric, False]]
        rtol = 1e-5 if name == "asd" else 1e-6
        np.testing.assert_allclose(got, values, rtol=rtol, err_msg=f"{name} {metric}")


def test_surface_dice_matches_monai_test_suite():
    """tests/metrics/test_surface_dice.py: test_tolerance_all_distances (10x10, all metrics),
    test_not_predicted_not_present, and test_tolerance_euclidean_distance_with_spacing
    (480x640, a 10 px shift)."""
    small_p = np.zeros((1, 10, 10), np.int32)
    small_g = np.zeros((1, 10, 10), np.int32)
    small_p[0, 1:4, 1] = 1
    small_g[0, 5:8, 6] = 1
    absent_p = np.zeros((1, 80, 80), np.int32)
    absent_g = np.zeros((1, 80, 80), np.int32)
    absent_p[0, 10:20, 10:20] = 1
    absent_g[0, 10:20, 10:20] = 2
    shift_p = np.zeros((2, 480, 640), np.int32)
    shift_g = np.zeros((2, 480, 640), np.int32)
    shift_p[0, :, 50:] = 1
    shift_g[0, :, 60:] = 1
    thresholds = {
        "euclidean": [[0, 0], [2.8, 5.5], [3, 6]],
        "chessboard": [[0, 0], [1, 4.999], [2, 5]],
        "taxicab": [[0, 0], [1, 7], [3, 9]],
    }
    shift_tolerances = np.array([0, 1, 9, 10, 11, 12, 13], np.float32)

    @jax.jit
    def run():
        small = {
            metric: jax.vmap(
                lambda t, metric=metric: metrics.surface_dice(
                    small_p,
                    small_g,
                    num_classes=2,
                    tolerance=t,
                    include_background=True,
                    distance_metric=metric,
                )
            )(jnp.asarray(values, jnp.float32))
            for metric, values in thresholds.items()
        }
        absent = metrics.surface_dice(
            absent_p, absent_g, num_classes=4, tolerance=[1.0] * 4, include_background=True
        )
        shifted = jax.vmap(
            lambda t: metrics.surface_dice(
                shift_p,
                shift_g,
                num_classes=2,
                tolerance=t,
                spacing=(0.85, 1.2),
                include_background=True,
            )
        )(shift_tolerances)
        return small, absent, shifted

    small, absent, shifted = run()
    boundary = 36 * 2 + 8 + 4
    expected_small = {
        "euclidean": [
            [1 - 12 / boundary, 0],
            [1 - 3 / boundary, 1 - 4 / 6],
            [1 - 1 / boundary, 1 - 2 / 6],
        ],
        "chessboard": [[1 - 12 / boundary, 0], [1 - 9 / boundary, 0], [1 - 3 / boundary, 1]],
        "taxicab": [[1 - 12 / boundary, 0], [1 - 9 / boundary, 1 - 4 / 6], [1 - 1 / boundary, 1]],
    }
    for metric, expected in expected_small.items():
        np.testing.assert_allclose(small[metric][:, 0], expected, atol=1e-6, err_msg=metric)
    # With the background [[1, 0, 0, nan]]; without it MONAI's [[0, 0, nan]] are the same
    # columns (dropping class 0 changes no other class's value).
    np.testing.assert_array_equal(absent, [[1, 0, 0, np.nan]])
    expected_res0 = [
        [
            1 - (478 + 480 + 9 * 2) / (480 * 4 + 48 * 2 + 58 * 2),
            1 - (478 + 480 + 9 * 2) / (480 * 4 + 588 * 2 + 578 * 2),
        ],
        [1, np.nan],
    ]
    np.testing.assert_allclose(shifted[0], expected_res0, rtol=1e-6)
    first = np.asarray(shifted[:, 0])  # tolerances 0, 1, 9, 10, 11, 12, 13 on image 0
    assert np.all(np.diff(first[:5], axis=0) > 0)
    np.testing.assert_array_equal(first[5], first[6])


# Label maps of the sub-voxel test, one string of class digits per row: the argmax of 3
# smoothed noise fields (scipy.ndimage.gaussian_filter, sigma 1.5).
SUBVOXEL_LABELS_TEXT = [
    [
        "11111111222",
        "00011111222",
        "00011111222",
        "00001111221",
        "00001110011",
        "00001110001",
        "00001110001",
        "00001112222",
        "00011122222",
        "00001222222",
        "20002222222",
        "00002222220",
    ],
    [
        "11110112220",
        "11111112200",
        "11111122200",
        "01111122200",
        "01111222220",
        "21111222222",
        "22111002222",
        "22111002222",
        "22222002220",
        "22222002000",
        "22220000000",
        "22200000000",
    ],
]
SUBVOXEL_PREDICTIONS_TEXT = [
    [
        "22222222222",
        "22222222222",
        "22202202222",
        "20000000000",
        "00000011002",
        "11111000122",
        "11111000222",
        "11111000222",
        "11111100222",
        "11111111222",
        "00001111000",
        "00002211000",
    ],
    [
        "22112222000",
        "22112222100",
        "22212211100",
        "22211111100",
        "22211111100",
        "22111111111",
        "11111111111",
        "11111111111",
        "11111111111",
        "12101111111",
        "10000002200",
        "00000000200",
    ],
]


def digit_maps(text):
    return np.array([[[int(c) for c in row] for row in image] for image in text], np.int32)


def test_surface_dice_with_subvoxels_matches_monai():
    """MONAI 1.6.1 ``compute_surface_dice(..., use_subvoxels=True)`` on one-hot tensors of these
    label maps (``torch.nn.functional.one_hot``), computed once with torch 2 on CPU. Its
    surfaces are DeepMind's surface elements weighed by their areas, its distances between the
    corners; ignore_index: MONAI zeroes both one-hot tensors on the excluded pixels."""
    labels = digit_maps(SUBVOXEL_LABELS_TEXT)
    predictions = digit_maps(SUBVOXEL_PREDICTIONS_TEXT)
    excluded = labels.copy()
    excluded[0, :3, :4] = 255
    excluded[1, 5:8, 5:9] = 255
    doc_g = np.zeros((1, 8, 8), np.int32)
    doc_g[0, 2:6, 2:6] = 1
    doc_p = np.zeros((1, 8, 8), np.int32)
    doc_p[0, 2:6, 3:8] = 1
    z, y, x = np.ogrid[:7, :8, :9]
    volume_g = np.zeros((1, 7, 8, 9), np.int32)
    volume_g[0][(z - 3) ** 2 + (y - 3.5) ** 2 + (x - 4) ** 2 <= 6.5] = 1
    volume_g[0][(x >= 6) & (y <= 3) & (z >= 1)] = 2
    volume_p = np.zeros((1, 7, 8, 9), np.int32)
    volume_p[0][(z - 3) ** 2 + (y - 4) ** 2 + (x - 3.5) ** 2 <= 5] = 1
    volume_p[0][(x >= 5) & (y <= 4) & (z <= 5)] = 2
    empty = np.zeros((1, 6, 6), np.int32)
    square = empty.copy()
    square[0, 2:4, 2:4] = 1
    tolerances = jnp.asarray([[1.0, 1.5], [0.0, 2.0]], jnp.float32)
    spacing = np.array([[0.8, 1.3], [1.0, 1.0]], np.float32)

    @jax.jit
    def run():
        nsd = functools.partial(metrics.surface_dice, num_classes=3, use_subvoxels=True)
        per_metric = {
            metric: jax.vmap(
                lambda t, metric=metric: nsd(
                    predictions,
                    labels,
                    tolerance=t,
                    distance_metric=metric,
                    spacing=spacing if metric == "euclidean" else None,
                )
            )(tolerances)
            for metric in METRICS
        }
        return per_metric, {
            "doc": metrics.surface_dice(
                doc_p, doc_g, num_classes=2, tolerance=1.0, use_subvoxels=True
            ),
            "ignore": nsd(predictions, excluded, tolerance=[1.0, 1.5], ignore_index=255),
            "empty": nsd(square, empty, tolerance=1.0),
            "volume": nsd(
                volume_p,
                volume_g,
                tolerance=[0.5, 1.0, 1.0],
                include_background=True,
                spacing=(0.85, 1.2, 0.9),
            ),
        }

    per_metric, other = run()
    expected = {  # [tolerances [1, 1.5] then [0, 2]] x images x classes 1, 2
        "euclidean": [
            [[0.36371126770973206, 0.6481865644454956], [0.4377763867378235, 0.576351523399353]],
            [[0.17195561528205872, 0.7399216294288635], [0.20052209496498108, 0.7111155986785889]],
        ],
        "taxicab": [
            [[0.48086339235305786, 0.657497763633728], [0.4377763867378235, 0.4766349494457245]],
            [[0.1669762283563614, 0.7849076390266418], [0.20052209496498108, 0.7111155986785889]],
        ],
        "chessboard": [
            [[0.5439578890800476, 0.6924053430557251], [0.5416706800460815, 0.576351523399353]],
            [[0.1669762283563614, 0.7849076390266418], [0.20052209496498108, 0.8569751381874084]],
        ],
    }
    for metric, values in expected.items():
        np.testing.assert_allclose(per_metric[metric], values, rtol=1e-5, err_msg=metric)
    np.testing.assert_allclose(other["doc"], [[0.8289718627929688]], rtol=1e-6)
    np.testing.assert_allclose(
        other["ignore"],
        [[0.527974009513855, 0.7577796578407288], [0.4782879054546356, 0.5542445778846741]],
        rtol=1e-5,
    )
    np.testing.assert_array_equal(other["empty"], [[0.0, np.nan]])
    np.testing.assert_allclose(
        other["volume"], [[0.8718156814575195, 0.9694511294364929, 0.866933286190033]], rtol=1e-5
    )


# ----------------------------------------------------------------------------------------------
# Errors and value checks.


def test_bad_inputs_name_the_argument():
    labels = jnp.zeros((2, 8, 8), jnp.int32)
    hot = jnp.zeros((2, 8, 8, 3), bool)
    hd = metrics.hausdorff_distance
    cases = [
        (TypeError, "`mask` must be boolean", lambda: metrics.distance_transform(labels[0])),
        (ValueError, "`mask` must have 1 to 3 axes", lambda: metrics.distance_transform(hot)),
        (ValueError, "need `num_classes`", lambda: hd(labels, labels)),
        (
            TypeError,
            "`predictions` must be integer",
            lambda: hd(labels.astype(jnp.float32), labels, num_classes=3),
        ),
        (ValueError, "same images and classes", lambda: hd(labels[:, :4], labels, num_classes=3)),
        (ValueError, "have 3 classes", lambda: hd(hot, hot, num_classes=4)),
        (
            ValueError,
            "`class_axis`=1 applies to one-hot",
            lambda: hd(labels, labels, num_classes=3, class_axis=1),
        ),
        (ValueError, "`class_axis`=4 is out of range", lambda: hd(hot, hot, class_axis=4)),
        (TypeError, "`directed` must be a bool", lambda: hd(hot, hot, directed=1)),
        (
            ValueError,
            "`percentile` must lie in [0, 100]",
            lambda: hd(hot, hot, percentile=101),
        ),
        (
            TypeError,
            "`percentile` must be a real number",
            lambda: hd(hot, hot, percentile=True),
        ),
        (
            ValueError,
            "`spacing` must be positive",
            lambda: hd(hot, hot, spacing=(1.0, 0.0)),
        ),
        (
            ValueError,
            "`spacing` must be a scalar or have shape",
            lambda: hd(hot, hot, spacing=(1.0, 1.0, 1.0)),
        ),
        (
            ValueError,
            "`distance_metric` must be one of",
            lambda: hd(hot, hot, distance_metric="l2"),
        ),
        (ValueError, "would leave no class", lambda: hd(hot[..., :1], hot[..., :1])),
        (
            ValueError,
            "`tolerance` must be a scalar or have shape (2,)",
            lambda: metrics.surface_dice(hot, hot, tolerance=[1.0, 1.0, 1.0]),
        ),
        (
            ValueError,
            "`tolerance` must be finite and non-negative",
            lambda: metrics.surface_dice(hot, hot, tolerance=-1.0),
        ),
        (
            TypeError,
            "`symmetric` must be a bool",
            lambda: metrics.average_surface_distance(hot, hot, symmetric=None),
        ),
    ]
    for error, message, call in cases:
        with pytest.raises(error) as raised:
            call()
        assert message in str(raised.value), (message, str(raised.value))


def test_checked_mode_catches_labels_out_of_range():
    labels = jnp.array([[0, 1, 1, 0, 5]], jnp.int32)
    with pytest.raises(Exception, match=r"`labels` must lie in \[0, 2\)"):
        jsl.checked(surface.hausdorff_distance)(labels % 2, labels, num_classes=2)
