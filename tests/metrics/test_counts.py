"""Per-image counts (``overlap_counts``) against NumPy references: every input kind, both
kernel strategies, chunked large images, additivity over micro-batches and devices, exactness past
2³¹ without x64; bad input.

Every check runs under ``jax.jit``, and each test compiles one function that evaluates all of its
cases at once. References: tests/references/metrics.py, written from the definitions.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxseg_losses as jsl
from jaxseg_losses import metrics
from jaxseg_losses._core import fused as _fused
from tests.helpers import assert_counts, exact_ints
from tests.references import metrics as ref

M = metrics
NAN = math.nan


# ----------------------------------------------------------------------------------------------
# overlap_counts: every input kind, 2-D and 3-D, empty classes and images, ignored pixels.


def _count_cases(seed=0):
    """``(static options, arrays, expected counts)`` for each kind of input."""
    r = np.random.default_rng(seed)
    cases = []

    def add(name, static, arrays, predicted_hits, true_hits, valid):
        expected = ref.counts_of_hits(predicted_hits, true_hits, valid)
        cases.append((name, static, arrays, expected))

    # Integer classes, 2-D, ignore_index and mask; class 3 absent; image 2 entirely ignored.
    C = 4
    labels = r.integers(0, 3, (3, 5, 6)).astype(np.int32)
    labels[r.uniform(size=labels.shape) < 0.2] = 255
    labels[2] = 255
    predictions = r.integers(0, C, labels.shape).astype(np.int32)
    mask = r.uniform(size=labels.shape) > 0.25
    valid = ((labels != 255) & mask).reshape(3, -1)
    add(
        "classes 2-D",
        dict(num_classes=C, ignore_index=255),
        dict(predictions=predictions, labels=labels, mask=mask),
        ref.hits_of_classes(predictions, C),
        ref.hits_of_classes(np.where(labels == 255, 0, labels), C),
        valid,
    )
    # Float scores of a 3-D volume, arg-max; one image with an empty foreground.
    C = 3
    labels = r.integers(0, C, (2, 3, 4, 5)).astype(np.int32)
    labels[1] = 0
    scores = r.standard_normal((*labels.shape, C)).astype(np.float32)
    add(
        "scores 3-D",
        dict(),
        dict(predictions=scores, labels=labels),
        ref.hits_of_classes(np.argmax(scores, -1), C),
        ref.hits_of_classes(labels, C),
        np.ones((2, 60), bool),
    )
    # NCHW scores (class_axis=1) with ignore_index.
    labels = r.integers(0, C, (2, 4, 5)).astype(np.int32)
    labels[0, 0] = 255
    scores = r.standard_normal((2, C, 4, 5)).astype(np.float32)
    add(
        "scores NCHW",
        dict(class_axis=1, ignore_index=255),
        dict(predictions=scores, labels=labels),
        ref.hits_of_classes(np.argmax(scores, 1), C),
        ref.hits_of_classes(np.where(labels == 255, 0, labels), C),
        (labels != 255).reshape(2, -1),
    )
    # Multi-label booleans against boolean targets, with a mask; an empty channel.
    decided = r.uniform(size=(2, 4, 4, 3)) < 0.4
    targets = r.uniform(size=(2, 4, 4, 3)) < 0.5
    targets[..., 2] = False
    mask = r.uniform(size=(2, 4, 4)) > 0.2
    add(
        "multi-label bool",
        dict(),
        dict(predictions=decided, labels=targets, mask=mask),
        decided.reshape(2, 16, 3),
        targets.reshape(2, 16, 3),
        mask.reshape(2, 16),
    )
    # Booleans against 0/1 float targets; a target of 0.5 is not a class: its pixel is left out.
    decided = r.uniform(size=(2, 6, 2)) < 0.5
    targets = (r.uniform(size=(2, 6, 2)) < 0.5).astype(np.float32)
    targets[0, 3, 1] = 0.5
    valid = np.all((targets == 0) | (targets == 1), -1)
    add(
        "bool vs 0/1 floats",
        dict(),
        dict(predictions=decided, labels=targets),
        decided,
        targets == 1,
        valid,
    )
    # Integer predictions against one-hot boolean targets, and booleans against classes.
    labels = r.integers(0, C, (2, 5)).astype(np.int32)
    one_hot = np.eye(C, dtype=bool)[labels]
    predictions = r.integers(0, C, (2, 5)).astype(np.int32)
    add(
        "classes vs one-hot",
        dict(),
        dict(predictions=predictions, labels=one_hot),
        ref.hits_of_classes(predictions, C),
        one_hot,
        np.ones((2, 5), bool),
    )
    decided = r.uniform(size=(2, 5, C)) < 0.5
    add(
        "bool vs classes",
        dict(),
        dict(predictions=decided, labels=labels),
        decided,
        ref.hits_of_classes(labels, C),
        np.ones((2, 5), bool),
    )
    # Binary: one boolean channel against labels {0, 1}; a 2 is not a class.
    decided = r.uniform(size=(2, 7, 1)) < 0.5
    binary = r.integers(0, 2, (2, 7)).astype(np.int32)
    binary[1, 0] = 2
    add(
        "binary bool",
        dict(),
        dict(predictions=decided, labels=binary),
        decided,
        (binary == 1)[..., None],
        binary != 2,
    )
    predictions = r.integers(0, 2, (2, 7)).astype(np.int32)
    add(
        "binary classes",
        dict(num_classes=1),
        dict(predictions=predictions, labels=binary),
        (predictions == 1)[..., None],
        (binary == 1)[..., None],
        binary != 2,
    )
    # ignore_index may be a class value: label 0 ignored, class 0 then never true.
    labels = r.integers(0, 3, (2, 6)).astype(np.int32)
    predictions = r.integers(0, 3, (2, 6)).astype(np.int32)
    add(
        "ignore class 0",
        dict(num_classes=3, ignore_index=0),
        dict(predictions=predictions, labels=labels),
        ref.hits_of_classes(predictions, 3),
        ref.hits_of_classes(labels, 3),
        labels != 0,
    )
    # Classification: one "pixel" per image, out-of-range predictions not counted.
    labels = r.integers(0, 3, (6,)).astype(np.int32)
    predictions = r.integers(0, 3, (6,)).astype(np.int32)
    predictions[0] = 7
    add(
        "classification",
        dict(num_classes=3),
        dict(predictions=predictions, labels=labels),
        ref.hits_of_classes(np.where(predictions == 7, 0, predictions), 3),
        ref.hits_of_classes(labels, 3),
        (predictions != 7)[:, None],
    )
    return cases


@pytest.mark.parametrize("strategy", ["segments", "select"])
def test_overlap_counts_match_numpy_for_every_input_kind(strategy, monkeypatch):
    monkeypatch.setattr(_fused, "STRATEGY", strategy)
    cases = _count_cases()
    statics = [static for _, static, _, _ in cases]

    @jax.jit
    def count_all(arrays):
        return [M.overlap_counts(**a, **s) for a, s in zip(arrays, statics, strict=True)]

    results = count_all([arrays for _, _, arrays, _ in cases])
    for (name, _, _, expected), counts in zip(cases, results, strict=True):
        assert isinstance(counts.tp, M.ExactCount)
        assert counts.shape == expected["tp"].shape, name
        assert_counts(counts, expected, name)


def test_overlap_counts_match_scikit_learn_per_image():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    r = np.random.default_rng(3)
    labels = r.integers(0, 5, (3, 40))
    predictions = np.where(r.uniform(size=labels.shape) < 0.6, labels, r.integers(0, 5, (3, 40)))
    counts = jax.jit(lambda p, y: M.overlap_counts(p, y, num_classes=5))(predictions, labels)
    for b in range(3):
        # multilabel_confusion_matrix: [[tn, fp], [fn, tp]] per class.
        cm = sklearn_metrics.multilabel_confusion_matrix(
            labels[b], predictions[b], labels=list(range(5))
        )
        expected = {"tn": cm[:, 0, 0], "fp": cm[:, 0, 1], "fn": cm[:, 1, 0], "tp": cm[:, 1, 1]}
        assert_counts(counts[b], expected, f"image {b}")


def test_large_images_are_counted_in_chunks(monkeypatch):
    r = np.random.default_rng(4)
    labels = r.integers(0, 3, (2, 5, 5)).astype(np.int32)
    predictions = r.integers(0, 3, (2, 5, 5)).astype(np.int32)
    count = lambda p, y: M.overlap_counts(p, y, num_classes=3)  # noqa: E731
    whole = jax.jit(count)(predictions, labels)
    monkeypatch.setattr("jaxseg_losses.metrics.counts._MAX_CHUNK_PIXELS", 7)  # 4 chunks of 7
    chunked = jax.jit(count)(predictions, labels)
    assert_counts(chunked, {f: exact_ints(getattr(whole, f)) for f in ("tp", "fp", "fn", "tn")})


# ----------------------------------------------------------------------------------------------
# Counts add: micro-batches, devices, pooled scores.


def test_counts_add_over_micro_batches_and_devices():
    r = np.random.default_rng(9)
    labels = r.integers(0, 3, (4, 6, 5)).astype(np.int32)
    labels[r.uniform(size=labels.shape) < 0.1] = 255
    predictions = r.integers(0, 3, (4, 6, 5)).astype(np.int32)
    count = lambda p, y: M.overlap_counts(p, y, num_classes=3, ignore_index=255)  # noqa: E731

    @jax.jit
    def run(p, y):
        whole = count(p, y)
        halves = count(p[:2], y[:2]), count(p[2:], y[2:])
        on_devices = jax.vmap(
            lambda p, y: jax.lax.psum(count(p, y).sum(axis=0), "d"), axis_name="d"
        )(p.reshape(2, 2, 6, 5), y.reshape(2, 2, 6, 5))
        pooled = halves[0].sum(axis=0) + halves[1].sum(axis=0)
        return {
            "whole": whole,
            "concatenated": jax.tree.map(lambda a, b: jnp.concatenate([a, b]), *halves),
            "pooled": pooled,
            "device": on_devices[0],
            "pooled_iou": M.iou(pooled),
            "union_iou": M.iou(M.confusion_matrix(p, y, 3, ignore_index=255)),
            "pooled_mcc": M.mcc(pooled),
            "union_mcc": M.mcc(whole.sum(axis=0)),
            "builtin_sum": sum([whole[0], whole[1]]),
        }

    out = run(predictions, labels)
    for f in ("tp", "fp", "fn", "tn"):
        whole = exact_ints(getattr(out["whole"], f))
        np.testing.assert_array_equal(exact_ints(getattr(out["concatenated"], f)), whole)
        np.testing.assert_array_equal(exact_ints(getattr(out["pooled"], f)), whole.sum(0))
        np.testing.assert_array_equal(exact_ints(getattr(out["device"], f)), whole.sum(0))
    np.testing.assert_allclose(out["pooled_iou"], out["union_iou"], rtol=1e-6)
    np.testing.assert_allclose(out["pooled_mcc"], out["union_mcc"], rtol=1e-6)
    np.testing.assert_array_equal(
        exact_ints(out["builtin_sum"].tp), exact_ints(out["whole"].tp)[:2].sum(0)
    )


# ----------------------------------------------------------------------------------------------
# Exact counts past 2**31 and near 2**53, without x64.


def test_exact_counts_past_two_to_the_31_and_near_two_to_the_53():
    assert not jax.config.read("jax_enable_x64")
    big = np.array([[2**31 - 1, 2**31, 2**53 - 3], [2**52 + 1, 7, 0]], np.int64)
    values = M.ExactCount(big)

    @jax.jit
    def arithmetic(x, ones):
        doubled = x + x
        return {
            "add": x + ones,
            "double": doubled,
            "sub": doubled - x,
            "sum0": x.sum(axis=0),
            "sum": x.sum(),
            "float": x.to_float(),
            "psum": jax.vmap(lambda c: jax.lax.psum(c, "d"), axis_name="d")(
                M.ExactCount.from_limbs(jnp.stack([x.limbs] * 3))
            )[0],
        }

    out = arithmetic(values, M.ExactCount(np.ones((2, 3), np.int64)))
    np.testing.assert_array_equal(exact_ints(out["add"]), big + 1)
    np.testing.assert_array_equal(exact_ints(out["double"]), 2 * big)
    np.testing.assert_array_equal(exact_ints(out["sub"]), big)
    np.testing.assert_array_equal(exact_ints(out["sum0"]), big.sum(0))
    assert int(out["sum"]) == int(big.sum())
    np.testing.assert_array_equal(exact_ints(out["psum"]), 3 * big)
    np.testing.assert_allclose(out["float"], big.astype(np.float64), rtol=2**-23)
    # A sum over more values than one reduction may add before carrying (2**14).
    many = M.ExactCount(np.full((40000,), 2**20 + 3, np.int64))
    assert int(many.sum()) == 40000 * (2**20 + 3)


# ----------------------------------------------------------------------------------------------
# Bad input: errors name the argument, the expected and the received.


def test_errors():
    r = np.random.default_rng(13)
    labels = r.integers(0, 3, (2, 4, 4)).astype(np.int32)
    scores = r.standard_normal((2, 4, 4, 3)).astype(np.float32)
    counts = M.Counts(*np.ones((4, 2, 3), np.int32))
    with pytest.raises(ValueError, match=r"single channel .* threshold them"):
        M.overlap_counts(scores[..., :1], labels)
    with pytest.raises(ValueError, match=r"\[B, 1, \*spatial\].*squeeze axis 1"):
        M.overlap_counts(np.moveaxis(scores, -1, 1), labels[:, None], class_axis=1)
    with pytest.raises(ValueError, match="pass one-hot or multi-label targets as booleans"):
        M.overlap_counts(scores, np.eye(3, dtype=np.int32)[labels])
    with pytest.raises(ValueError, match="`num_classes` is required"):
        M.overlap_counts(labels, labels)
    with pytest.raises(ValueError, match="number of classes disagrees"):
        M.overlap_counts(scores, labels, num_classes=4)
    with pytest.raises(ValueError, match="`ignore_index` applies to integer labels"):
        M.overlap_counts(scores > 0, scores > 0, ignore_index=255)
    with pytest.raises(TypeError, match=r"`ignore_index` must be None or a Python int"):
        M.overlap_counts(scores, labels, ignore_index="255")
    with pytest.raises(TypeError, match=r"`ignore_index` must be None or a Python int"):
        M.overlap_counts(scores, labels, ignore_index=True)
    with pytest.raises(ValueError, match="`mask` must have shape"):
        M.overlap_counts(scores, labels, mask=np.ones((2, 4), bool))
    with pytest.raises(ValueError, match="`class_axis` cannot be the batch axis"):
        M.overlap_counts(scores, labels, class_axis=0)
    with pytest.raises(TypeError, match="`predictions` must be integer classes"):
        M.overlap_counts(scores.astype(np.complex64), labels)
    with pytest.raises(TypeError, match=r"`include_background` must be True or False"):
        M.iou(counts, include_background="False")
    with pytest.raises(TypeError, match=r"`include_background` must be True or False"):
        M.reduce(np.ones((2, 3), np.float32), include_background=None)
    with pytest.raises(TypeError, match=r"`ignore_empty` must be True or False"):
        M.dice(counts, ignore_empty=1)
    with pytest.raises(ValueError, match=r"`reduction` must be one of 'none', 'mean'"):
        M.dice(counts, reduction="micro")
    with pytest.raises(ValueError, match=r"`reduction` must be one of 'none', 'mean', 'sum'"):
        M.generalized_dice(counts, reduction="mean_batch")
    with pytest.raises(TypeError, match="`zero_division` must be a real number"):
        M.iou(counts, zero_division="1")
    with pytest.raises(ValueError, match="`class_weights` must be finite and non-negative"):
        M.iou(counts, reduction="mean", class_weights=[1.0, -1.0, 1.0])
    with pytest.raises(ValueError, match=r"`class_weights` must have shape \(3,\)"):
        M.iou(counts, reduction="mean", class_weights=[1.0, 1.0])
    with pytest.raises(ValueError, match="`class_weights` weigh classes where classes are"):
        M.iou(counts, class_weights=[1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match='class_weights="support" weighs the classes'):
        M.dice(counts, class_weights="support", reduction="mean_batch_channel")
    with pytest.raises(ValueError, match=r'must be \[C\] weights or "support"'):
        M.dice(counts, class_weights="suport", reduction="mean")
    with pytest.raises(ValueError, match=r"`classes` holds class 5, out of range"):
        M.iou(counts, reduction="mean", classes=(1, 5))
    with pytest.raises(ValueError, match="would leave no class"):
        M.iou(M.Counts(*np.ones((4, 2, 1), np.int32)), include_background=False)
    with pytest.raises(ValueError, match="only reduction='none' applies"):
        M.iou(M.Counts(*np.ones((4,), np.int32)), reduction="mean")
    with pytest.raises(ValueError, match="`beta` must be finite and non-negative"):
        M.f_beta(counts, beta=-1.0)
    with pytest.raises(ValueError, match="confusion matrix of shape"):
        M.iou(np.ones((3, 4)))
    with pytest.raises(TypeError, match="`values` must have a floating dtype"):
        M.reduce(np.ones((2, 3), np.int32))
    with pytest.raises(ValueError, match="Counts add when their shapes match"):
        _ = counts + M.Counts(*np.ones((4, 3), np.int32))
    with pytest.raises(TypeError, match="Counts is not iterable"):
        _tp, _fp, _fn, _tn = counts
    with pytest.raises(TypeError, match="`value` must hold integer counts"):
        M.ExactCount(np.ones(3, np.float32))
    acc = M.PerImageAccumulator.empty(("dice", "hd95"), 3)
    with pytest.raises(ValueError, match=r"must hold exactly the metrics \['dice', 'hd95'\]"):
        acc.update({"dice": np.ones((2, 3), np.float32)})
    with pytest.raises(ValueError, match=r"`values\['dice'\]` must be \[B, 3\]"):
        acc.update({"dice": np.ones((2, 4), np.float32), "hd95": np.ones((2, 3), np.float32)})
    with pytest.raises(ValueError, match="keeps one value per image"):
        acc.compute(reduction="none")
    with pytest.raises(ValueError, match="must not repeat a metric"):
        M.PerImageAccumulator.empty(("dice", "dice"), 3)
    with pytest.raises(TypeError, match=r"PerImageAccumulator\.empty"):
        M.PerImageAccumulator()


def test_checked_mode_reports_values_that_are_not_classes():
    with pytest.raises(Exception, match=r"`labels` must lie in \[0, 3\)"):
        jsl.checked(M.overlap_counts)(np.array([[0, 1]]), np.array([[0, 9]]), num_classes=3)
    with pytest.raises(Exception, match="dense `labels` must be 0 or 1"):
        jsl.checked(M.overlap_counts)(np.array([[[True]]]), np.array([[[0.5]]]))
