"""Lesion-wise metrics against the BraTS 2023 script's numbers and a NumPy/scipy reference
(tests/references/lesions.py).

The reference follows the BraTS steps one lesion at a time (scipy labelling and dilation, the
surface-distance HD95 in float64); it reproduces the script's numbers exactly, and the JAX
functions agree with it on random volumes with many lesions. Every comparison runs under
``jax.jit``, each jitted function computing many cases at once so that the file compiles few
programs.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage as ndi

import jaxseg_losses as jsl
from jaxseg_losses.geometry.surfels import surface_elements, surfel_areas
from jaxseg_losses.metrics.lesions import lesion_detection, lesion_wise_scores
from tests.helpers import IGNORE, assert_close
from tests.references import lesions as ref

SCORE_FIELDS = ("dice", "hausdorff")
COUNT_FIELDS = ("tp", "fp", "fn", "true_lesions", "predicted_lesions")

# BraTS-2023-Metrics (rachitsaluja, commit 43c905242b2eecf421d4ab2da7af8ece9777d322),
# metrics.get_LesionWiseResults(pred.nii.gz, gt.nii.gz, challenge) on the label maps of
# tests.references.lesions.brats_case(k) saved as NIfTI with their spacing as zooms, run with
# the script's pinned requirements (numpy 1.24.3, scipy 1.11.1, connected-components-3d
# 3.12.1, pandas 1.3.4, nibabel 5.1.0): (LesionWise_Score_Dice, LesionWise_Score_HD95,
# Num_TP, Num_FP, Num_FN) per case and region.
BRATS = {
    (0, "WT"): (0.2104813929668829, 280.8535533905933, 1, 2, 1),
    (0, "TC"): (0.3862622658340767, 187.70710678118655, 1, 1, 0),
    (0, "ET"): (0.30514285714285716, 187.5, 1, 1, 0),
    (1, "WT"): (0.3675784999314411, 94.66257038496822, 3, 1, 0),
    (1, "TC"): (0.26180926916221037, 187.60355339059328, 2, 1, 1),
    (1, "ET"): (0.12121212121212122, 299.4, 1, 1, 3),
    (2, "WT"): (0.3588403041825095, 190.75, 1, 1, 0),
    (2, "TC"): (0.0, 374.0, 0, 1, 0),
    (2, "ET"): (1.0, 0.0, 0, 0, 0),
}


def _fields(result, names, b, c):
    return {name: np.asarray(getattr(result, name))[b, c] for name in names}


def _expected(rows, names):
    return {name: np.array([[row[name] for row in image] for image in rows]) for name in names}


def assert_rows(got, rows, scores=SCORE_FIELDS, counts=COUNT_FIELDS):
    """The ``[B, C]`` fields of a result against the reference's rows (one dict per class)."""
    expected = _expected(rows, scores + counts)
    assert_close({f: getattr(got, f) for f in scores}, {f: expected[f] for f in scores}, rtol=1e-5)
    for field in counts:
        assert np.array_equal(getattr(got, field), expected[field]), field
    return expected


# ----------------------------------------------------------------------------------------------
# Surface elements and their areas.


@pytest.mark.parametrize(
    "spacing", [(1.0,), (2.5,), (1.0, 1.0), (0.7, 1.9), (1.0, 1.0, 1.0), (1.0, 1.25, 2.0)]
)
def test_surfel_areas_are_the_peer_tables(spacing):
    """Every cell code's area against surface-distance's tables (3-D: its normals table, held in
    the reference for one cell of each class; 2-D: its contour lengths; 1-D: points of 1)."""
    areas = surfel_areas(jnp.asarray(spacing, jnp.float32))
    assert_close(areas, ref.cell_areas(spacing), rtol=1e-6)


def test_surface_elements_of_a_random_mask():
    rng = np.random.default_rng(0)
    masks = rng.random((2, 7, 8, 9)) < 0.4
    spacing = np.array([[1.0, 2.0, 0.5], [1.5, 1.0, 1.0]], np.float32)
    elements, areas = jax.jit(surface_elements)(masks, spacing)
    for b in range(2):
        codes = ref._codes(masks[b])
        assert np.array_equal(elements[b], (codes != 0) & (codes != 255))
        assert_close(areas[b], ref.cell_areas(spacing[b])[codes], rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# The BraTS 2023 script.


@pytest.mark.parametrize("case", range(len(ref.BRATS_CASES)))
def test_reference_reproduces_the_brats_script(case):
    gt, pred, spacing, challenge = ref.brats_case(case)
    dilation, threshold = ref.CHALLENGES[challenge]
    for r, region in enumerate(ref.REGIONS):
        got = ref.lesion_wise(
            ref.brats_regions(pred)[..., r],
            ref.brats_regions(gt)[..., r],
            spacing=spacing,
            dilation_iterations=dilation,
            volume_threshold=threshold,
        )
        dice, hd, tp, fp, fn = BRATS[case, region]
        np.testing.assert_allclose([got["dice"], got["hausdorff"]], [dice, hd], rtol=1e-12)
        assert (got["tp"], got["fp"], got["fn"]) == (tp, fp, fn)


@functools.partial(jax.jit, static_argnames="dilation")
def _brats_metrics(pred, gt, spacing, threshold, *, dilation):
    options = {
        "max_lesions": 8,
        "dilation_iterations": dilation,
        "volume_threshold": threshold,
        "spacing": spacing,
        "include_background": True,
    }
    return lesion_wise_scores(pred, gt, **options), lesion_detection(pred, gt, **options)


@pytest.mark.parametrize("challenge", ["BraTS-GLI", "BraTS-MET"])
def test_lesion_wise_scores_reproduce_the_brats_script(challenge):
    """The BraTS regions as boolean masks, the cases of one challenge as one batch; the
    detection counts with the same options are the script's Num_TP / Num_FP / Num_FN."""
    cases = [k for k, case in enumerate(ref.BRATS_CASES) if case[3] == challenge]
    volumes = [ref.brats_case(k) for k in cases]
    gt = np.stack([ref.brats_regions(v[0]) for v in volumes])
    pred = np.stack([ref.brats_regions(v[1]) for v in volumes])
    spacing = np.array([v[2] for v in volumes], np.float32)
    dilation, threshold = ref.CHALLENGES[challenge]
    scores, found = _brats_metrics(pred, gt, spacing, threshold, dilation=dilation)
    for b, k in enumerate(cases):
        for r, region in enumerate(ref.REGIONS):
            dice, hd, tp, fp, fn = BRATS[k, region]
            assert_close([scores.dice[b, r], scores.hausdorff[b, r]], [dice, hd], rtol=1e-6)
            for result in (scores, found):
                assert (result.tp[b, r], result.fp[b, r], result.fn[b, r]) == (tp, fp, fn)


# ----------------------------------------------------------------------------------------------
# Random volumes against the reference.


def _ball(shape, centre, radius):
    grid = np.indices(shape)
    return sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)) <= radius**2


def lesion_volumes(seed, shape, num_classes, lesions, jitter=2):
    """``(labels, predictions)`` int32 ``[*shape]``: balls of random classes; each predicted
    shifted by up to ``jitter`` and scaled, missed, or split in two; a few false ones; a pair
    of lesions two voxels apart (merged by any dilation) and a single-voxel lesion."""
    rng = np.random.default_rng(seed)
    gt = np.zeros(shape, np.int32)
    pred = np.zeros(shape, np.int32)
    dims = len(shape)
    for _ in range(lesions):
        c = int(rng.integers(1, num_classes))
        centre = rng.uniform(2, np.array(shape) - 2)
        radius = rng.uniform(0.5, 4.0)
        gt[_ball(shape, centre, radius)] = c
        fate = rng.random()
        if fate < 0.2:
            continue
        shift = rng.integers(-jitter, jitter + 1, dims)
        pred[_ball(shape, centre + shift, radius * rng.uniform(0.6, 1.4))] = c
        if fate > 0.8:
            pred[_ball(shape, centre - 2 * shift, 1.0)] = c
    for _ in range(3):
        pred[_ball(shape, rng.uniform(1, np.array(shape) - 1), rng.uniform(0.8, 2.5))] = int(
            rng.integers(1, num_classes)
        )
    near = np.array(shape) // 2
    gt[_ball(shape, near, 2.0)] = 1
    gt[_ball(shape, near + np.eye(dims, dtype=int)[0] * 7, 2.0)] = 1
    gt[tuple(np.array(shape) - 2)] = 1
    return gt, pred


def _components(mask) -> int:
    labelled: Any = ndi.label(mask, np.ones((3,) * mask.ndim))
    return int(labelled[1])


def with_empty_cases(pred, gt):
    """Image 1: class 1 missing from the prediction, class 2 from the labels, 3 from both."""
    pred, gt = pred.copy(), gt.copy()
    pred[1][pred[1] == 1] = 0
    gt[1][gt[1] == 2] = 0
    pred[1][pred[1] == 3] = 0
    gt[1][gt[1] == 3] = 0
    return pred, gt


def reference_rows(pred, gt, fn, num_classes, **options):
    spacing = options.pop("spacing", None)
    counted = options.pop("counted", None)
    rows = []
    for b in range(gt.shape[0]):
        row = []
        for c in range(1, num_classes):
            kwargs = dict(options)
            if spacing is not None:
                kwargs["spacing"] = spacing[b]
            if counted is not None:
                kwargs["counted"] = counted[b]
            row.append(fn(pred[b] == c, gt[b] == c, **kwargs))
        rows.append(row)
    return rows


@jax.jit
def _random_3d(pred, gt, spacing, threshold):
    options = {
        "num_classes": 4,
        "max_lesions": 16,
        "dilation_iterations": 2,
        "volume_threshold": threshold,
        "spacing": spacing,
    }
    return lesion_wise_scores(pred, gt, **options), lesion_detection(pred, gt, **options)


def test_random_volumes_agree_with_the_reference():
    """[2, 32, 32, 32] with a dozen lesions per image over three classes, anisotropic
    spacing per image, an empty prediction, empty labels and a class in neither."""
    gt, pred = zip(*(lesion_volumes(seed, (32, 32, 32), 4, 12) for seed in range(2)), strict=True)
    pred, gt = with_empty_cases(np.stack(pred), np.stack(gt))
    spacing = np.array([[1.0, 1.0, 1.5], [0.8, 1.0, 1.0]], np.float32)
    for threshold in (0.0, 10.0):
        scores, found = _random_3d(pred, gt, spacing, threshold)
        options = {"spacing": spacing, "dilation_iterations": 2, "volume_threshold": threshold}
        rows = reference_rows(pred, gt, ref.lesion_wise, 4, **options)
        expected = assert_rows(scores, rows)
        assert_rows(found, rows, scores=(), counts=("tp", "fp", "fn"))
    # The data holds what the test is about: merged lesions, lesions left out, many lesions.
    components = np.array([[_components(gt[b] == c) for c in (1, 2, 3)] for b in range(2)])
    assert np.any(expected["true_lesions"] < components)
    assert np.any(expected["tp"] + expected["fn"] < expected["true_lesions"])
    assert expected["true_lesions"][0].sum() >= 8 and expected["tp"].sum() >= 5
    assert np.array_equal(expected["dice"][1], [0.0, 0.0, 1.0])
    assert np.array_equal(expected["hausdorff"][1], [374.0, 374.0, 0.0])


@jax.jit
def _by_iou(pred, gt, iou_threshold, zero_division):
    return lesion_detection(
        pred,
        gt,
        num_classes=4,
        max_lesions=16,
        match="iou",
        iou_threshold=iou_threshold,
        zero_division=zero_division,
    )


def test_detection_by_iou_agrees_with_the_reference():
    gt, pred = zip(
        *(lesion_volumes(seed, (20, 20, 20), 4, 8, jitter=1) for seed in (5, 6)), strict=True
    )
    pred, gt = with_empty_cases(np.stack(pred), np.stack(gt))
    for iou_threshold, zero_division in ((0.5, np.nan), (0.3 + 0.4, 1.0)):
        found = _by_iou(pred, gt, iou_threshold, zero_division)
        rows = reference_rows(
            pred, gt, ref.lesion_detection, 4, match="iou", iou_threshold=iou_threshold
        )
        for row in (r for image in rows for r in image):
            row["f1"] = zero_division if np.isnan(row["f1"]) else row["f1"]
        assert_rows(found, rows, scores=("f1",), counts=("tp", "fp", "fn"))
        if iou_threshold == 0.5:
            assert found.tp.sum() > 0 and found.fp.sum() > 0 and found.fn.sum() > 0


# ----------------------------------------------------------------------------------------------
# Options, in 2-D and 1-D.


@jax.jit
def _options_2d(pred, gt, spacing, threshold, missing, percentile, mask):
    return lesion_wise_scores(
        pred,
        gt,
        num_classes=3,
        max_lesions=12,
        dilation_iterations=2,
        connectivity=1,
        dilation_connectivity=1,
        volume_threshold=threshold,
        missing_hd=missing,
        percentile=percentile,
        spacing=spacing,
        mask=mask,
    )


def test_options_agree_with_the_reference_2d():
    """Connectivity 1, per-image spacing, the traced options and a mask (excluded pixels lie
    outside the image: they separate lesions and stop the dilation)."""
    gt, pred = zip(*(lesion_volumes(seed, (24, 24), 3, 8) for seed in (11, 12)), strict=True)
    gt, pred = np.stack(gt), np.stack(pred)
    mask = np.ones(gt.shape, bool)
    mask[:, :, 11] = False  # a wall through both images
    spacing = np.array([[1.0, 0.5], [2.0, 1.0]], np.float32)
    for threshold, missing, percentile in ((0.0, 374.0, 95.0), (3.0, 50.0, 100.0), (1.0, 9, 50)):
        got = _options_2d(pred, gt, spacing, threshold, missing, percentile, mask)
        options = {
            "spacing": spacing,
            "connectivity": 1,
            "dilation_connectivity": 1,
            "dilation_iterations": 2,
            "volume_threshold": threshold,
            "missing_hd": missing,
            "percent": percentile,
            "counted": mask,
        }
        assert_rows(got, reference_rows(pred, gt, ref.lesion_wise, 3, **options))


@jax.jit
def _layouts(pred, gt, ignored_gt, pred_1d, gt_1d):
    common = {"max_lesions": 10, "dilation_iterations": 1, "volume_threshold": 1.0}
    ignored = lesion_wise_scores(pred, ignored_gt, num_classes=3, ignore_index=IGNORE, **common)
    channels = lesion_wise_scores(
        jax.nn.one_hot(pred, 3, axis=1, dtype=jnp.bool_),
        jax.nn.one_hot(gt, 3, axis=1, dtype=jnp.bool_),
        class_axis=1,
        include_background=True,
        **common,
    )
    line = lesion_wise_scores(pred_1d, gt_1d, num_classes=2, **common)
    return ignored, channels, line


def test_ignore_index_channels_first_and_1d():
    gt, pred = zip(*(lesion_volumes(seed, (20, 20), 3, 8) for seed in (21, 22)), strict=True)
    gt, pred = np.stack(gt), np.stack(pred)
    ignored_gt = gt.copy()
    ignored_gt[:, 5:8, :] = IGNORE
    gt_1d = np.array([[0, 1, 1, 0, 0, 1, 0, 0, 0, 1, 1, 1, 0, 1, 0]] * 2, np.int32)
    pred_1d = np.array([[0, 1, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1]] * 2, np.int32)
    pred_1d[1] = 0
    ignored, channels, line = _layouts(pred, gt, ignored_gt, pred_1d, gt_1d)
    common = {"dilation_iterations": 1, "volume_threshold": 1.0}
    cases = [
        (ignored, pred, gt, 3, 1, ignored_gt != IGNORE),
        (channels, pred, gt, 3, 0, None),
        (line, pred_1d, gt_1d, 2, 1, None),
    ]
    for got, p, g, classes, first, counted in cases:
        rows = [
            [
                ref.lesion_wise(
                    p[b] == c,
                    g[b] == c,
                    counted=None if counted is None else counted[b],
                    **common,
                )
                for c in range(first, classes)
            ]
            for b in range(2)
        ]
        assert_rows(got, rows)


# ----------------------------------------------------------------------------------------------
# The bound on the lesions, and bad input.


def _dots(count):
    """``[2, 12]`` labels: image 0 with ``count`` single-pixel lesions, image 1 with one."""
    labels = np.zeros((2, 12), np.int32)
    labels[0, : 2 * count : 2] = 1
    labels[1, 3] = 1
    return labels


def test_too_many_lesions_are_nan_and_minus_one_under_jit():
    labels = _dots(4)
    options: dict[str, Any] = {
        "num_classes": 2,
        "max_lesions": 3,
        "dilation_iterations": 0,
        "volume_threshold": 0,
    }
    scores = jax.jit(lambda p, g: lesion_wise_scores(p, g, **options))(labels, labels)
    found = jax.jit(lambda p, g: lesion_detection(p, g, **options))(labels, labels)
    assert np.isnan(scores.dice[0, 0]) and np.isnan(scores.hausdorff[0, 0])
    assert scores.tp[0, 0] == scores.true_lesions[0, 0] == found.fp[0, 0] == -1
    assert np.isnan(found.f1[0, 0])
    # The other image is scored: a perfect prediction.
    assert (scores.dice[1, 0], scores.hausdorff[1, 0], scores.tp[1, 0]) == (1.0, 0.0, 1)
    assert (found.tp[1, 0], found.f1[1, 0]) == (1, 1.0)


@pytest.mark.parametrize("fn", [lesion_wise_scores, lesion_detection])
def test_too_many_lesions_raise_on_concrete_input_and_when_checked(fn):
    labels = _dots(4)
    options = {"num_classes": 2, "max_lesions": 3, "dilation_iterations": 0}
    with pytest.raises(ValueError, match="max_lesions"):
        fn(labels, labels, **options)
    with pytest.raises(Exception, match="max_lesions"):
        jsl.checked(jax.jit(lambda p, g: fn(p, g, **options)))(labels, labels)


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"max_lesions": 2.0}, TypeError, "max_lesions"),
        ({"max_lesions": 0}, ValueError, "max_lesions"),
        ({"dilation_iterations": -1}, ValueError, "dilation_iterations"),
        ({"dilation_iterations": 1.5}, TypeError, "dilation_iterations"),
        ({"connectivity": 3}, ValueError, "connectivity"),
        ({"connectivity": 1, "dilation_connectivity": 2}, ValueError, "dilation_connectivity"),
        ({"dilation_connectivity": True}, TypeError, "dilation_connectivity"),
        ({"volume_threshold": -1.0}, ValueError, "volume_threshold"),
        ({"volume_threshold": "50"}, TypeError, "volume_threshold"),
        ({"missing_hd": np.inf}, ValueError, "missing_hd"),
        ({"percentile": 101}, ValueError, "percentile"),
        ({"spacing": (1.0, 2.0, 3.0)}, ValueError, "spacing"),
        ({"num_classes": None}, ValueError, "num_classes"),
        ({"ignore_index": 1.5}, TypeError, "ignore_index"),
        ({"mask": np.ones((2, 3), bool)}, ValueError, "mask"),
    ],
)
def test_bad_options_raise_naming_the_argument(options, error, match):
    labels = np.zeros((2, 6, 6), np.int32)
    kwargs = {"num_classes": 2, "max_lesions": 4} | options
    with pytest.raises(error, match=match):
        lesion_wise_scores(labels, labels, **kwargs)


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"match": "dice"}, ValueError, "match"),
        ({"iou_threshold": 0.3}, ValueError, "iou_threshold"),
        ({"iou_threshold": 1.0}, ValueError, "iou_threshold"),
        ({"zero_division": "nan"}, TypeError, "zero_division"),
    ],
)
def test_bad_detection_options_raise_naming_the_argument(options, error, match):
    labels = np.zeros((2, 6, 6), np.int32)
    with pytest.raises(error, match=match):
        lesion_detection(labels, labels, num_classes=2, max_lesions=4, **options)
