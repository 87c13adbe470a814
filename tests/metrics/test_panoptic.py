"""Panoptic quality and the instance machinery under it.

References: a brute-force NumPy/scipy implementation of the definitions (segments from
``np.unique`` or ``scipy.ndimage.label``, IoU with void left out, matching above the threshold
or by ``scipy.optimize.linear_sum_assignment`` per class below 0.5, the void rule for FP/FN),
and peer numbers held as literals: MONAI 1.6.1's own test suite
(``tests/metrics/test_compute_panoptic_quality.py``) and torchmetrics 1.9's docstring and test
suite (``tests/unittests/detection/test_panoptic_quality.py``), plus numbers computed once with
those versions where noted.
"""

import itertools
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage
import scipy.optimize
from jax.experimental import checkify

import jaxseg_losses as jsl
from jaxseg_losses.metrics import _instances
from jaxseg_losses.metrics.panoptic import PanopticCounts, panoptic_counts, panoptic_quality

# ----------------------------------------------------------------------------------------------
# The NumPy reference.


def label(mask, structure=None) -> tuple[np.ndarray, int]:
    """``scipy.ndimage.label``: the components of ``mask`` and their number."""
    labels, count = scipy.ndimage.label(mask, structure=structure)  # pyright: ignore
    return labels, int(count)


def reference_segments(classes, instances, counted, *, num_classes, evaluated, stuff, structure):
    """``{(class, id): bool mask}`` of one image, straight from the definition."""
    segments = {}
    for c in range(num_classes):
        if not evaluated[c]:
            continue
        region = (classes == c) & counted
        if c in stuff:
            if region.any():
                segments[(c, 0)] = region
        elif instances is None:
            labels, count = label(region, structure)
            for k in range(1, count + 1):
                segments[(c, k)] = labels == k
        else:
            for k in np.unique(instances[region]):
                if k != 0:
                    segments[(c, int(k))] = region & (instances == k)
    return segments


def reference_counts(
    predictions,
    labels,
    *,
    num_classes,
    threshold=0.5,
    stuff=(),
    include_background=False,
    connectivity=1,
    void=None,
    counted=None,
):
    """``(tp, fp, fn, iou_sum)`` ``[B, C]`` (or ``[B, C - 1]``), brute force."""
    pred_classes, pred_instances = (
        predictions
        if isinstance(predictions, tuple)
        else (
            predictions,
            None,
        )
    )
    true_classes, true_instances = labels if isinstance(labels, tuple) else (labels, None)
    pred_classes, true_classes = np.asarray(pred_classes), np.asarray(true_classes)
    batch = pred_classes.shape[0]
    if counted is None:
        counted = np.ones(pred_classes.shape, bool)
    evaluated = [include_background or c > 0 for c in range(num_classes)]
    structure = scipy.ndimage.generate_binary_structure(pred_classes.ndim - 1, connectivity)
    out = np.zeros((4, batch, num_classes))
    for b in range(batch):
        options = dict(
            num_classes=num_classes, evaluated=evaluated, stuff=stuff, structure=structure
        )
        pi = None if pred_instances is None else np.asarray(pred_instances)[b]
        ti = None if true_instances is None else np.asarray(true_instances)[b]
        pred = reference_segments(pred_classes[b], pi, counted[b], **options)
        true = reference_segments(true_classes[b], ti, counted[b], **options)
        void_p = counted[b] & (pred_classes[b] == void)
        void_t = counted[b] & (true_classes[b] == void)
        for c in range(num_classes):
            ps = [m for (k, _), m in pred.items() if k == c]
            ts = [m for (k, _), m in true.items() if k == c]
            iou = np.zeros((len(ps), len(ts)), np.float32)
            for (i, p), (j, t) in itertools.product(enumerate(ps), enumerate(ts)):
                inter = np.sum(p & t)
                union = np.sum(p & ~void_t) + np.sum(t & ~void_p) - inter
                if union:
                    iou[i, j] = np.float32(inter) / np.float32(union)
            if threshold >= 0.5:
                pairs = list(zip(*np.nonzero(iou > np.float32(threshold)), strict=True))
            else:
                rows, cols = scipy.optimize.linear_sum_assignment(-iou)
                pairs = [(i, j) for i, j in zip(rows, cols, strict=True) if iou[i, j] > threshold]
            matched_p = {i for i, _ in pairs}
            matched_t = {j for _, j in pairs}
            out[0, b, c] = len(pairs)
            out[3, b, c] = sum(float(iou[i, j]) for i, j in pairs)
            out[1, b, c] = sum(
                1
                for i, p in enumerate(ps)
                if i not in matched_p and 2 * np.sum(p & void_t) <= np.sum(p)
            )
            out[2, b, c] = sum(
                1
                for j, t in enumerate(ts)
                if j not in matched_t and 2 * np.sum(t & void_p) <= np.sum(t)
            )
    return out if include_background else out[:, :, 1:]


def jitted(fn=None, **options):
    """``panoptic_counts`` (or ``fn``) with static ``options``, under ``jax.jit``."""
    fn = panoptic_counts if fn is None else fn
    return jax.jit(lambda p, t: fn(p, t, **options))


def assert_counts(counts, expected, atol=1e-5):
    """``counts`` (PanopticCounts) against ``(tp, fp, fn, iou_sum)``."""
    for got, want in zip((counts.tp, counts.fp, counts.fn), expected[:3], strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    np.testing.assert_allclose(np.asarray(counts.iou_sum), expected[3], atol=atol)


def blocky(rng, shape, values, noise=0.15):
    """Random maps of 2-pixel blocks with some noise: instances that overlap partly."""
    coarse = tuple(-(-s // 2) for s in shape[1:])
    block = np.kron(rng.choice(values, (shape[0], *coarse)), np.ones((1,) + (2,) * len(coarse)))
    block = block[(slice(None), *(slice(0, s) for s in shape[1:]))]
    return np.where(rng.random(shape) < noise, rng.choice(values, shape), block).astype(np.int32)


# ----------------------------------------------------------------------------------------------
# Instance machinery.


def test_compaction_numbers_ids_in_ascending_order_by_both_paths():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 9, (3, 6, 7)).astype(np.int32)
    present = rng.random(ids.shape) < 0.8
    large = np.where(ids % 2 == 0, ids * 100_003 - 50, -ids).astype(np.int32)  # sort path
    compact = jax.jit(lambda x, v: _instances.compact_instances(x, v, max_instances=9))
    for values in (ids, large):
        result = compact(values, present)
        for b in range(3):
            distinct = np.unique(values[b][present[b]])
            slots = np.where(present[b], np.searchsorted(distinct, values[b]) + 1, 0)
            np.testing.assert_array_equal(result.slots[b], slots)
            assert int(result.count[b]) == len(distinct)
            np.testing.assert_array_equal(result.keys[0][b, 1 : len(distinct) + 1], distinct)
            slot = np.arange(10)
            np.testing.assert_array_equal(result.used[b], (slot >= 1) & (slot <= len(distinct)))
    small = jax.jit(lambda x, v: _instances.compact_instances(x, v, max_instances=3))(ids, present)
    np.testing.assert_array_equal(small.overflow, np.asarray(compact(ids, present).count) > 3)


def test_pairs_of_keys_and_stacked_components_give_the_same_slots():
    rng = np.random.default_rng(1)
    classes = rng.integers(0, 3, (2, 8, 9)).astype(np.int32)
    labels = np.zeros((2, 3, 8, 9), np.int32)
    counts = np.zeros((2, 3), np.int32)
    for b, g in itertools.product(range(2), range(3)):
        labels[b, g], counts[b, g] = label(classes[b] == g)
    instances = labels.sum(axis=1)
    stacked = _instances.stack_components(
        jnp.asarray(labels), jnp.asarray(counts), max_instances=40
    )
    pairs = _instances.compact_instances(
        (jnp.asarray(classes), jnp.asarray(instances)),
        jnp.ones(classes.shape, bool),
        max_instances=40,
    )
    for a, b in zip(jax.tree.leaves(stacked), jax.tree.leaves(pairs), strict=True):
        np.testing.assert_array_equal(a, b)
    # Negative instance ids take the sort path: the same slots, the ids themselves as keys.
    shifted = _instances.compact_instances(
        (jnp.asarray(classes), jnp.asarray(instances) - 5),
        jnp.ones(classes.shape, bool),
        max_instances=40,
    )
    np.testing.assert_array_equal(shifted.slots, pairs.slots)
    np.testing.assert_array_equal(shifted.keys[0], pairs.keys[0])
    np.testing.assert_array_equal(shifted.keys[1], np.where(pairs.used, pairs.keys[1] - 5, 0))


def test_overlap_table_counts_every_pair_and_nothing_excluded():
    rng = np.random.default_rng(2)
    predicted = rng.integers(0, 4, (2, 5, 6, 3)).astype(np.int32)
    true = rng.integers(0, 5, (2, 5, 6, 3)).astype(np.int32)
    counted = rng.random(predicted.shape) < 0.7
    table = _instances.overlap_table(
        jnp.asarray(predicted), jnp.asarray(true), jnp.asarray(counted), num_predicted=3, num_true=4
    )
    expected = np.zeros((2, 4, 5), np.int64)
    for b in range(2):
        np.add.at(expected[b], (predicted[b][counted[b]], true[b][counted[b]]), 1)
    np.testing.assert_array_equal(table, expected)
    assert table.dtype == jnp.int32
    sizes = _instances.areas(table)
    np.testing.assert_array_equal(sizes.predicted, expected.sum(axis=2))
    iou = _instances.pairwise_iou(table)
    union = expected.sum(2)[:, 1:, None] + expected.sum(1)[:, None, 1:] - expected[:, 1:, 1:]
    np.testing.assert_allclose(iou, expected[:, 1:, 1:] / np.maximum(union, 1), rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# Against the reference, every option branch under jax.jit.

C = 4
CONFIGS = {
    "pairs": {},
    "pairs, Hungarian below 0.5": {"threshold": 0.3},
    "class maps": {"form": "maps"},
    "class maps, connectivity 2": {"form": "maps", "connectivity": 2},
    "mixed forms, stuff, background": {
        "form": "mixed",
        "stuff": (2,),
        "include_background": True,
    },
    "void and mask weights": {"void": -1, "exclude": "mask"},
    "ignore_index, stuff, Hungarian": {"exclude": "ignore", "stuff": (1,), "threshold": 0.2},
    "1-D class maps, Hungarian": {"dims": 1, "form": "maps", "threshold": 0.25},
    "3-D pairs, Hungarian": {"dims": 3, "threshold": 0.4},
    "3-D class maps, connectivity 3, void": {
        "dims": 3,
        "form": "maps",
        "connectivity": 3,
        "void": 9,
    },
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_counts_match_the_reference(name):
    config = CONFIGS[name]
    rng = np.random.default_rng(sorted(CONFIGS).index(name))
    shape = {1: (3, 24), 2: (3, 9, 10), 3: (3, 5, 6, 4)}[config.get("dims", 2)]
    form = config.get("form", "pairs")
    void = config.get("void")

    def perturbed(x, values, share):
        return np.where(rng.random(shape) < share, rng.choice(values, shape), x).astype(np.int32)

    classes = blocky(rng, shape, np.arange(C))
    instances = blocky(rng, shape, np.arange(4))
    # The prediction: the truth with noise, its instance ids renumbered.
    pred_classes = perturbed(classes, np.arange(C), 0.15)
    pred_instances = perturbed(np.array([0, 9, -3, 2**30])[instances], [0, 9, -3, 5], 0.1)
    if void is not None:
        classes = perturbed(classes, [void], 0.1)
        pred_classes = perturbed(pred_classes, [void], 0.1)
    pred, true = (pred_classes, pred_instances), (classes, instances * 7 + 100 * (instances > 0))
    excluded = rng.random(shape) < 0.15
    counted = ~excluded
    kwargs = {
        "num_classes": C,
        "max_instances": 40,
        "match_threshold": config.get("threshold", 0.5),
        "stuff_classes": config.get("stuff", ()),
        "include_background": config.get("include_background", False),
        "connectivity": config.get("connectivity", 1),
        "void_index": void,
    }
    extra = {}
    if config.get("exclude") == "mask":
        extra["mask"] = np.where(excluded, 0.0, 0.5).astype(np.float32)
    elif config.get("exclude") == "ignore":
        true = (np.where(excluded, 255, true[0]).astype(np.int32), true[1])
        kwargs["ignore_index"] = 255
    else:
        counted = np.ones(shape, bool)
    pred_in = pred[0] if form in ("maps", "mixed") else pred
    true_in = true[0] if form == "maps" else true
    fn = jax.jit(lambda p, t, e: panoptic_counts(p, t, **kwargs, **e))
    counts = fn(pred_in, true_in, extra)
    expected = reference_counts(
        pred_in,
        true_in,
        num_classes=C,
        threshold=kwargs["match_threshold"],
        stuff=kwargs["stuff_classes"],
        include_background=kwargs["include_background"],
        connectivity=kwargs["connectivity"],
        void=void,
        counted=counted,
    )
    assert expected[0].sum() > 0 and expected[1].sum() + expected[2].sum() > 0
    assert_counts(counts, expected)
    assert counts.shape == expected.shape[1:]
    # The finished values of each image and class are the formulas of the counts.
    tp, fp, fn_, iou = expected
    with np.errstate(invalid="ignore", divide="ignore"):
        pq = iou / (tp + 0.5 * fp + 0.5 * fn_)
    np.testing.assert_allclose(counts.pq(), pq, rtol=1e-5)


def test_hand_checked_case():
    """Class 1: a square found at IoU 3/4, a pair of pixels found at IoU 1/2 (no match at 0.5,
    a match at 0.3), a lone pixel missed; class 2: a square found at IoU 3/4."""
    labels = np.array([[[1, 1, 0, 2, 2], [1, 1, 0, 2, 2], [0, 0, 0, 0, 0], [1, 1, 0, 0, 1]]])
    predictions = np.array([[[1, 1, 0, 2, 2], [1, 0, 0, 2, 0], [0, 0, 0, 0, 0], [0, 0, 0, 1, 1]]])
    counts = jitted(num_classes=3, max_instances=4)(predictions, labels)
    assert_counts(counts, ([[1, 1]], [[1, 0]], [[2, 0]], [[0.75, 0.75]]))
    np.testing.assert_allclose(counts.pq(), [[0.75 / 2.5, 0.75]])
    np.testing.assert_allclose(counts.sq(), [[0.75, 0.75]])
    np.testing.assert_allclose(counts.rq(), [[1 / 2.5, 1.0]])
    lower = jitted(num_classes=3, max_instances=4, match_threshold=0.3)(predictions, labels)
    assert_counts(lower, ([[2, 1]], [[0, 0]], [[1, 0]], [[1.25, 0.75]]))
    # With connectivity 2 the true pixel (3, 4) stays alone; the prediction's (1, 3) joins
    # nothing new: the same counts.
    assert_counts(
        jitted(num_classes=3, max_instances=4, connectivity=2)(predictions, labels),
        ([[1, 1]], [[1, 0]], [[2, 0]], [[0.75, 0.75]]),
    )


def test_empty_classes_and_unmatched_segments():
    labels = np.zeros((1, 4, 4), np.int32)
    labels[0, :2, :2] = 1
    predictions = np.zeros((1, 4, 4), np.int32)
    predictions[0, 2:, 2:] = 1
    counts = jitted(num_classes=3, max_instances=2)(predictions, labels)
    assert_counts(counts, ([[0, 0]], [[1, 0]], [[1, 0]], [[0.0, 0.0]]))
    np.testing.assert_array_equal(counts.pq(), [[0.0, np.nan]])
    np.testing.assert_array_equal(counts.sq(), [[0.0, np.nan]])  # no match, but segments: 0
    np.testing.assert_array_equal(counts.rq(zero_division=0.0), [[0.0, 0.0]])
    sq = jitted(panoptic_quality, num_classes=3, max_instances=2, metric="sq", zero_division=-1.0)
    np.testing.assert_array_equal(sq(predictions, labels), [[0.0, -1.0]])
    perfect = jitted(panoptic_quality, num_classes=3, max_instances=2, metric="rq")(labels, labels)
    np.testing.assert_array_equal(perfect, [[1.0, np.nan]])
    assert perfect.dtype == jnp.float32


# ----------------------------------------------------------------------------------------------
# MONAI 1.6.1: tests/metrics/test_compute_panoptic_quality.py (its cases and expected numbers).

MONAI_SAMPLE_2_PRED = np.array([[0, 1, 1, 1], [0, 0, 0, 0], [2, 0, 3, 3], [4, 2, 2, 0]])
MONAI_SAMPLE_2_PRED_REMAP = np.array([[0, 7, 7, 7], [0, 0, 0, 0], [1, 0, 8, 8], [9, 1, 1, 0]])
MONAI_SAMPLE_2_GT = np.array([[1, 1, 2, 1], [0, 0, 0, 0], [1, 3, 0, 0], [4, 3, 3, 3]])
# [B, 2, H, W]: channel 0 the instances, channel 1 the classes.
MONAI_SAMPLE_3_PRED = np.array(
    [
        [[[2, 0, 1], [2, 1, 1], [0, 1, 1]], [[0, 1, 3], [0, 0, 0], [1, 2, 1]]],
        [[[1, 1, 1], [3, 2, 0], [3, 2, 1]], [[1, 1, 3], [3, 1, 1], [0, 3, 0]]],
    ]
)
MONAI_SAMPLE_3_GT = np.array(
    [
        [[[2, 0, 0], [2, 0, 0], [2, 2, 3]], [[3, 3, 3], [3, 2, 1], [2, 2, 3]]],
        [[[1, 1, 1], [0, 0, 3], [0, 0, 3]], [[0, 1, 3], [2, 1, 0], [3, 0, 3]]],
    ]
)
MONAI_SAMPLE_3D_PRED = np.array(
    [[[[[2, 0], [1, 1]], [[0, 1], [2, 1]]], [[[0, 1], [3, 0]], [[1, 0], [1, 1]]]]]
)
MONAI_SAMPLE_3D_GT = np.array(
    [[[[[2, 0], [0, 0]], [[2, 2], [2, 3]]], [[[3, 3], [3, 2]], [[2, 2], [3, 3]]]]]
)


def monai_pair(y):
    """MONAI's ``[B, 2, *spatial]`` (instances, classes) as ``(classes, instances)``."""
    return jnp.asarray(y[:, 1]), jnp.asarray(y[:, 0])


def agnostic(instances):
    """``compute_panoptic_quality``'s single instance map: every instance of class 1."""
    instances = jnp.asarray(instances)[None]
    return (instances != 0).astype(jnp.int32), instances


@pytest.mark.parametrize(
    ("pred", "threshold", "metric", "expected"),
    [
        (MONAI_SAMPLE_2_PRED, 0.5, "pq", 0.25),  # TEST_FUNC_CASE_2
        (MONAI_SAMPLE_2_PRED, 0.3, "sq", 0.6),  # TEST_FUNC_CASE_3
        (MONAI_SAMPLE_2_PRED_REMAP, 0.3, "rq", 0.75),  # TEST_FUNC_CASE_4
    ],
)
def test_monai_single_image_cases(pred, threshold, metric, expected):
    value = jax.jit(
        lambda p, t: panoptic_quality(
            p, t, num_classes=2, max_instances=8, match_threshold=threshold, metric=metric
        )
    )(agnostic(pred), agnostic(MONAI_SAMPLE_2_GT))
    np.testing.assert_allclose(value, [[expected]], atol=1e-4)


def test_monai_identical_maps_score_one():
    """TEST_FUNC_CASE_1: a random 64 x 64 instance map against itself at threshold 0.99."""
    sample = np.random.default_rng(0).integers(0, 5, (64, 64))
    value = jitted(panoptic_quality, num_classes=2, max_instances=4, match_threshold=0.99)(
        agnostic(sample), agnostic(sample)
    )
    np.testing.assert_allclose(value, [[1.0]])


@pytest.mark.parametrize(
    ("num_classes", "threshold", "metric", "expected"),
    [
        (3, 0.5, "pq", [0.0, 0.0, 0.25]),  # TEST_CLS_CASE_1 (reduction "mean_batch")
        (3, 0.3, "pq", [0.25, 0.5, 0.25]),  # TEST_CLS_CASE_2
        (4, 0.3, "sq", [0.5, 0.5, 1.0, 0.0]),  # TEST_CLS_CASE_3
    ],
)
def test_monai_class_cases_pooled_over_images(num_classes, threshold, metric, expected):
    """MONAI's ``num_classes`` leaves out the background: ours is one more; its "mean_batch"
    averages the counts over images before finishing (the ratio of sums, up to its 1e-6)."""
    counts = jax.jit(
        lambda p, t: panoptic_counts(
            p, t, num_classes=num_classes + 1, max_instances=6, match_threshold=threshold
        )
    )(monai_pair(MONAI_SAMPLE_3_PRED), monai_pair(MONAI_SAMPLE_3_GT))
    pooled = counts.sum(axis=0)
    value = pooled.pq(zero_division=0.0) if metric == "pq" else pooled.sq(zero_division=0.0)
    np.testing.assert_allclose(value, expected, atol=1e-4)


def test_monai_class_cases_per_image():
    """TEST_CLS_CASE_4 and 5 (reduction "none", threshold 0.4), and the counts that MONAI 1.6.1
    returns with ``return_confusion_matrix=True`` (computed once: tp, fp, fn, iou_sum)."""
    fn = jax.jit(
        lambda p, t, threshold: panoptic_counts(
            p, t, num_classes=4, max_instances=6, match_threshold=threshold
        ),
        static_argnums=2,
    )
    pred, gt = monai_pair(MONAI_SAMPLE_3_PRED), monai_pair(MONAI_SAMPLE_3_GT)
    counts = fn(pred, gt, 0.4)
    np.testing.assert_allclose(
        counts.rq(zero_division=0.0), [[0.0, 1.0, 0.0], [0.6667, 0.0, 0.4]], atol=1e-4
    )
    np.testing.assert_allclose(
        counts.pq(zero_division=0.0), [[0.0, 0.5, 0.0], [0.3333, 0.0, 0.4]], atol=1e-4
    )
    monai_matrices = {
        0.5: [
            [[0, 1, 0, 0.0], [0, 1, 1, 0.0], [0, 1, 2, 0.0]],
            [[0, 2, 1, 0.0], [0, 0, 0, 0.0], [1, 2, 1, 1.0]],
        ],
        0.3: [
            [[0, 1, 0, 0.0], [1, 0, 0, 0.5], [0, 1, 2, 0.0]],
            [[1, 1, 0, 0.5], [0, 0, 0, 0.0], [1, 2, 1, 1.0]],
        ],
    }
    for threshold, matrix in monai_matrices.items():
        assert_counts(fn(pred, gt, threshold), np.moveaxis(np.array(matrix), -1, 0))


def test_monai_3d_case():
    """The 3-D sample of MONAI's suite (which asserts only the shape); counts from MONAI 1.6.1
    with ``return_confusion_matrix=True``, the same at thresholds 0.5 and 0.3."""
    expected = np.moveaxis(np.array([[[0, 2, 0, 0.0], [0, 0, 1, 0.0], [0, 1, 2, 0.0]]]), -1, 0)
    for threshold in (0.5, 0.3):
        counts = jitted(num_classes=4, max_instances=8, match_threshold=threshold)(
            monai_pair(MONAI_SAMPLE_3D_PRED), monai_pair(MONAI_SAMPLE_3D_GT)
        )
        assert_counts(counts, expected)
        np.testing.assert_array_equal(counts.pq(zero_division=0.0), [[0.0, 0.0, 0.0]])


# ----------------------------------------------------------------------------------------------
# torchmetrics 1.9: PanopticQuality's docstring and tests/unittests/detection.

TM_DOC_PREDS = np.array(
    [
        [
            [[6, 0], [0, 0], [6, 0], [6, 0]],
            [[0, 0], [0, 0], [6, 0], [0, 1]],
            [[0, 0], [0, 0], [6, 0], [0, 1]],
            [[0, 0], [7, 0], [6, 0], [1, 0]],
            [[0, 0], [7, 0], [7, 0], [7, 0]],
        ]
    ]
)
TM_DOC_TARGET = np.array(
    [
        [
            [[6, 0], [0, 1], [6, 0], [0, 1]],
            [[0, 1], [0, 1], [6, 0], [0, 1]],
            [[0, 1], [0, 1], [6, 0], [1, 0]],
            [[0, 1], [7, 0], [1, 0], [1, 0]],
            [[0, 1], [7, 0], [7, 0], [7, 0]],
        ]
    ]
)
TM_TEST_PREDS = np.array(
    [
        [
            [[6, 0], [0, 0], [6, 0], [6, 0], [0, 1]],
            [[0, 0], [0, 0], [6, 0], [0, 1], [0, 1]],
            [[0, 0], [0, 0], [6, 0], [0, 1], [1, 0]],
            [[0, 0], [7, 0], [6, 0], [1, 0], [1, 0]],
            [[0, 0], [7, 0], [7, 0], [7, 0], [7, 0]],
        ]
    ]
)
TM_TEST_TARGET = np.array(
    [
        [
            [[6, 0], [6, 0], [6, 0], [6, 0], [0, 0]],
            [[0, 1], [0, 1], [6, 0], [0, 0], [0, 0]],
            [[0, 1], [0, 1], [6, 0], [1, 0], [1, 0]],
            [[0, 1], [7, 0], [7, 0], [1, 0], [1, 0]],
            [[0, 1], [7, 0], [7, 0], [7, 0], [7, 0]],
        ]
    ]
)
TM_THINGS, TM_STUFFS, TM_VOID = (0, 1), (6, 7), -1
TM_ORDER = [0, 1, 6, 7]  # torchmetrics orders things, then stuffs


def torchmetrics_pair(x):
    """torchmetrics' ``[..., 2]`` (category, instance): instance ids start at 0 for things, and
    categories that are neither things nor stuff are void."""
    known = np.isin(x[..., 0], TM_THINGS + TM_STUFFS)
    return (
        jnp.asarray(np.where(known, x[..., 0], TM_VOID), jnp.int32),
        jnp.asarray(x[..., 1] + 1, jnp.int32),
    )


def torchmetrics_counts(preds, target):
    fn = jax.jit(
        lambda p, t: panoptic_counts(
            p,
            t,
            num_classes=8,
            max_instances=8,
            stuff_classes=TM_STUFFS,
            include_background=True,
            void_index=TM_VOID,
        )
    )
    return fn(torchmetrics_pair(preds), torchmetrics_pair(target)).sum(axis=0)[
        jnp.asarray(TM_ORDER)
    ]


def test_torchmetrics_docstring_example():
    counts = torchmetrics_counts(TM_DOC_PREDS, TM_DOC_TARGET)
    per_class = np.stack(
        [counts.pq(zero_division=0.0), counts.sq(zero_division=0.0), counts.rq(zero_division=0.0)],
        -1,
    )
    # return_per_class=True, return_sq_and_rq=True
    expected = [[0.5185, 0.7778, 0.6667], [0.0, 0.0, 0.0], [0.6667, 0.6667, 1.0], [1.0, 1.0, 1.0]]
    np.testing.assert_allclose(per_class, expected, atol=1e-4)
    # The default: the mean over the classes that have a segment (class 1 has none).
    means = [jsl.metrics.reduce(f(), reduction="mean") for f in (counts.pq, counts.sq, counts.rq)]
    np.testing.assert_allclose(means, [0.5463, 0.6111, 0.6667], atol=1e-4)


def test_torchmetrics_test_suite_input():
    counts = torchmetrics_counts(TM_TEST_PREDS, TM_TEST_TARGET)
    np.testing.assert_allclose(jsl.metrics.reduce(counts.pq(), reduction="mean"), 0.7753, atol=1e-4)
    # Per class, computed once with torchmetrics 1.9 (return_per_class=True).
    np.testing.assert_allclose(counts.pq(), [0.803571, 0.75, 0.714286, 0.833333], atol=1e-5)


def test_torchmetrics_void_rule():
    """Unknown categories (8 in the predictions, with allow_unknown_preds_category=True; 9 in
    the target) are void. Per-class PQ computed once with torchmetrics 1.9:
    [1.0, 0.75, 0.8, 0.75]; the same inputs against the NumPy reference."""
    preds, target = TM_TEST_PREDS.copy(), TM_TEST_TARGET.copy()
    target[0, 0, 4] = target[0, 1, 3:] = target[0, 0, 0:2] = [9, 0]
    preds[0, 4, 3:] = preds[0, 2, 0] = [8, 0]
    counts = torchmetrics_counts(preds, target)
    np.testing.assert_allclose(counts.pq(), [1.0, 0.75, 0.8, 0.75], atol=1e-6)
    p, t = torchmetrics_pair(preds), torchmetrics_pair(target)
    expected = reference_counts(
        p, t, num_classes=8, stuff=TM_STUFFS, include_background=True, void=TM_VOID
    )
    assert_counts(torchmetrics_counts(preds, target), expected.sum(axis=1)[:, TM_ORDER])


# ----------------------------------------------------------------------------------------------
# The bound, streaming, exclusion, errors.


def test_overflowing_the_bound_is_loud():
    labels = np.zeros((2, 5, 5), np.int32)
    labels[0, ::2, ::2] = 1  # 9 separate pixels: 9 segments
    labels[1, :2, :2] = 1
    options: dict[str, Any] = {"num_classes": 2, "max_instances": 4}
    # A concrete input raises at once (given as (classes, instances): no labelling pass).
    pair = (labels, np.arange(1, labels.size + 1, dtype=np.int32).reshape(labels.shape))
    with pytest.raises(ValueError, match=r"`max_instances`=4 is too small: an image has 9"):
        panoptic_counts(pair, pair, **options)
    counts = jitted(**options)(labels, labels)
    np.testing.assert_array_equal(np.asarray(counts.tp), [[0], [1]])
    np.testing.assert_array_equal(counts.iou_sum, [[np.nan], [1.0]])
    for finish in (counts.pq, counts.sq, counts.rq):
        np.testing.assert_array_equal(finish(zero_division=0.0), [[np.nan], [1.0]])
        np.testing.assert_array_equal(counts.sum(axis=0).pq(), [np.nan])
    with pytest.raises(checkify.JaxRuntimeError, match="max_instances"):
        jsl.checked(jitted(**options))(labels, labels)
    jsl.checked(jitted(**options))(labels[1:], labels[1:])  # within the bound: no error


def test_counts_add_over_batches_images_and_devices():
    rng = np.random.default_rng(5)
    labels = blocky(rng, (4, 8, 8), np.arange(3))
    predictions = np.where(rng.random(labels.shape) < 0.2, 0, labels).astype(np.int32)
    fn = jitted(num_classes=3, max_instances=20)
    whole = fn(predictions, labels)
    halves = fn(predictions[:2], labels[:2]).sum(axis=0) + fn(predictions[2:], labels[2:]).sum(
        axis=0
    )
    exact = [np.asarray(x).sum(axis=0) for x in (whole.tp, whole.fp, whole.fn)]
    assert_counts(halves, (*exact, np.asarray(whole.iou_sum).sum(axis=0)))
    assert (whole[0] + whole[1]).shape == (2,)
    psummed = jax.vmap(lambda c: jax.lax.psum(c, "devices"), axis_name="devices")(whole)
    np.testing.assert_array_equal(np.asarray(psummed.tp)[0], np.asarray(whole.tp.sum(axis=0)))
    total = whole.sum()
    assert total.shape == ()
    np.testing.assert_allclose(
        total.pq(),
        float(np.asarray(whole.iou_sum).sum())
        / (int(whole.tp.sum()) + 0.5 * (int(whole.fp.sum()) + int(whole.fn.sum()))),
        rtol=1e-6,
    )
    with pytest.raises(ValueError, match="shapes match"):
        _ = whole + whole[0]
    with pytest.raises(ValueError, match="one shape"):
        PanopticCounts(np.zeros((2, 1), int), np.zeros((2, 1), int), np.zeros(2, int), np.zeros(2))
    with pytest.raises(TypeError, match="integer counts"):
        PanopticCounts(np.zeros(2), np.zeros(2, int), np.zeros(2, int), np.zeros(2))


@pytest.mark.parametrize("exclusion", ["ignore_index", "mask"])
def test_excluded_pixels_are_inert(exclusion):
    rng = np.random.default_rng(6)
    shape = (2, 8, 9)
    labels = blocky(rng, shape, np.arange(3))
    predictions = np.where(rng.random(shape) < 0.2, 0, labels).astype(np.int32)
    instances = blocky(rng, shape, np.arange(3))
    excluded = rng.random(shape) < 0.2
    options: dict[str, Any] = {"num_classes": 3, "max_instances": 30, "match_threshold": 0.3}
    if exclusion == "ignore_index":
        labels = np.where(excluded, 255, labels).astype(np.int32)
        options["ignore_index"] = 255
        fn = jitted(**options)
    else:
        fn = jax.jit(lambda p, t: panoptic_counts(p, t, mask=~excluded, **options))
    expected = fn((predictions, instances), labels)
    noise = rng.integers(-5, 9, shape).astype(np.int32)
    changed_predictions = (
        np.where(excluded, noise, predictions),
        np.where(excluded, noise, instances),
    )
    changed_labels = labels if exclusion == "ignore_index" else np.where(excluded, noise, labels)
    got = jsl.checked(fn)(changed_predictions, changed_labels)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
        np.testing.assert_array_equal(a, b)


def test_values_that_are_no_class_are_reported_by_checked():
    labels = np.array([[[1, 1, 0], [0, 7, 0]]], np.int32)
    fn = jitted(num_classes=3, max_instances=4, void_index=-1)
    with pytest.raises(
        checkify.JaxRuntimeError,
        match=r"`labels` must be classes in \[0, 3\) or equal void_index \(-1\); got 7",
    ):
        jsl.checked(fn)(labels % 7, labels)
    jsl.checked(fn)(labels % 7, np.where(labels == 7, -1, labels))


def test_hungarian_matching_needs_optax(monkeypatch):
    monkeypatch.setitem(sys.modules, "optax", None)
    labels = np.array([[[1, 1, 0, 1]]], np.int32)
    options: dict[str, Any] = {"num_classes": 2, "max_instances": 2, "match_threshold": 0.3}
    with pytest.raises(ImportError, match="pip install optax"):
        jax.eval_shape(lambda x: panoptic_counts(x, x, **options), labels)


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"max_instances": 0}, ValueError, "`max_instances` must be at least 1"),
        ({"max_instances": 2.0}, TypeError, "`max_instances` must be a Python int"),
        ({"match_threshold": 0.0}, ValueError, r"`match_threshold` must lie in \(0, 1\]"),
        ({"match_threshold": "0.5"}, TypeError, "`match_threshold` must be a real number"),
        ({"void_index": 1}, ValueError, "`void_index` marks unlabelled pixels"),
        ({"stuff_classes": (3,)}, ValueError, "`stuff_classes` holds class 3"),
        ({"connectivity": 3}, ValueError, r"`connectivity` must lie in \[1, 2\]"),
        ({"num_classes": 1}, ValueError, "include_background=False"),
        ({"metric": "PQ"}, ValueError, "`metric` must be one of"),
        ({"include_background": 1}, TypeError, "`include_background` must be True or False"),
    ],
)
def test_bad_options_raise_at_trace_time(options, error, match):
    labels = np.zeros((1, 3, 3), np.int32)
    arguments = {"num_classes": 3, "max_instances": 2, **options}
    with pytest.raises(error, match=match):
        jax.jit(lambda x: panoptic_quality(x, x, **arguments)).lower(labels)


def test_bad_inputs_raise_at_trace_time():
    labels = np.zeros((1, 3, 3), np.int32)
    options: dict[str, Any] = {"num_classes": 3, "max_instances": 2}
    with pytest.raises(TypeError, match="`predictions` must be an integer map"):
        panoptic_counts(labels.astype(np.float32), labels, **options)
    with pytest.raises(ValueError, match="must have one shape"):
        panoptic_counts(labels, labels[:, :2], **options)
    with pytest.raises(ValueError, match=r"a pair \(classes, instances\)"):
        panoptic_counts((labels, labels, labels), labels, **options)
    with pytest.raises(ValueError, match="classes and instances of `labels`"):
        panoptic_counts(labels, (labels, labels[:, :2]), **options)
    with pytest.raises(ValueError, match="1 to 3 spatial axes"):
        panoptic_counts(labels[0, 0], labels[0, 0], **options)
    with pytest.raises(TypeError, match="`match_threshold` must be a concrete number"):
        jax.jit(lambda t: panoptic_counts(labels, labels, match_threshold=t, **options))(0.5)
