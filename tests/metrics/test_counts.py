"""Per-image counts, scores, reductions and the per-image accumulator against NumPy references.

Every check runs under ``jax.jit``, and each test compiles one function that evaluates all of its
cases at once (the machine is shared: few compilations). References: tests/metrics_reference.py,
written from the definitions.
"""

import math

import jax
import jax.numpy as jnp
import metrics_reference as ref
import numpy as np
import pytest

import jaxseg_losses as jsl
from jaxseg_losses import metrics
from jaxseg_losses._core import fused as _fused

M = metrics
NAN = math.nan


def _exact(x):
    return np.asarray(x, np.int64)


def _assert_counts(counts, expected, name=""):
    for field in ("tp", "fp", "fn", "tn"):
        np.testing.assert_array_equal(
            _exact(getattr(counts, field)), expected[field], err_msg=f"{name}: {field}"
        )


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
        _assert_counts(counts, expected, name)


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
        _assert_counts(counts[b], expected, f"image {b}")


def test_large_images_are_counted_in_chunks(monkeypatch):
    r = np.random.default_rng(4)
    labels = r.integers(0, 3, (2, 5, 5)).astype(np.int32)
    predictions = r.integers(0, 3, (2, 5, 5)).astype(np.int32)
    count = lambda p, y: M.overlap_counts(p, y, num_classes=3)  # noqa: E731
    whole = jax.jit(count)(predictions, labels)
    monkeypatch.setattr(metrics, "_MAX_CHUNK_PIXELS", 7)  # 25 pixels: 4 chunks of 7
    chunked = jax.jit(count)(predictions, labels)
    _assert_counts(chunked, {f: _exact(getattr(whole, f)) for f in ("tp", "fp", "fn", "tn")})


# ----------------------------------------------------------------------------------------------
# Scores: one definition each, every empty rule.


def _edge_counts():
    """Counts ``[B, C]`` covering every zero pattern of TP/FP/FN/TN, and random ones."""
    r = np.random.default_rng(5)
    patterns = np.array(
        [[tp, fp, fn, tn] for tp in (0, 3) for fp in (0, 2) for fn in (0, 1) for tn in (0, 5)]
    )  # 16 patterns, all-zero included
    random = r.integers(0, 20, (8, 4))
    table = np.concatenate([patterns, random]).reshape(4, 6, 4)
    return {f: table[..., i] for i, f in enumerate(("tp", "fp", "fn", "tn"))}


SCORE_FUNCTIONS = {name: getattr(M, name) for name in ref.SCORE_NAMES}


def test_scores_match_their_definitions():
    fields = _edge_counts()
    options = [
        {},
        {"zero_division": 1.0},
        {"zero_division": 0.0, "ignore_empty": True},
        {"ignore_empty": True},
    ]

    # The empty rules are one code path shared by every score: all scores with the defaults,
    # the other options on a plain ratio, a composite score and MCC.
    optioned = ("dice", "precision", "balanced_accuracy", "mcc")

    @jax.jit
    def all_scores(tp, fp, fn, tn):
        counts = M.Counts(tp, fp, fn, tn)
        out = {}
        for i, opts in enumerate(options):
            for name, fn_ in SCORE_FUNCTIONS.items():
                if i and name not in optioned:
                    continue
                kwargs = {"beta": 2.0} if name == "f_beta" else {}
                out[f"{name}/{i}"] = fn_(counts, **kwargs, **opts)
        out["f_beta_half"] = M.f_beta(counts, beta=0.5)
        out["f_beta_traced"] = M.f_beta(counts, beta=tp[0, 0].astype(jnp.float32) * 0 + 2.0)
        return out

    results = all_scores(*(fields[f] for f in ("tp", "fp", "fn", "tn")))
    for i, opts in enumerate(options):
        expected_all = ref.scores(**fields, beta=2.0)
        for name in SCORE_FUNCTIONS if i == 0 else optioned:
            expected = ref.apply_empty_rules(expected_all[name], fields["tp"], fields["fn"], **opts)
            actual = results[f"{name}/{i}"]
            assert actual.dtype == jnp.float32 and actual.shape == (4, 6), name
            # The prevalence threshold's numerator cancels: float32 keeps about 5 digits there.
            rtol = 2e-5 if name == "prevalence_threshold" else 2e-6
            np.testing.assert_allclose(actual, expected, rtol=rtol, atol=1e-7, err_msg=name)
    np.testing.assert_allclose(
        results["f_beta_half"], ref.scores(**fields, beta=0.5)["f_beta"], rtol=1e-6
    )
    np.testing.assert_allclose(results["f_beta_traced"], results["f_beta/0"], rtol=1e-6)


def test_scores_of_a_matrix_equal_scores_of_its_counts_and_perfect_ones_are_one():
    r = np.random.default_rng(6)
    matrices = r.integers(0, 9, (4, 4, 4))
    matrices[:2, 2, :] = 0  # class 2 absent from the labels
    matrices[:2, :, 3] = 0  # class 3 never predicted
    matrices[3] = np.diag([5, 1, 7, 2])  # a perfect prediction
    tp = np.einsum("bcc->bc", matrices)
    fields = {
        "tp": tp,
        "fp": matrices.sum(1) - tp,
        "fn": matrices.sum(2) - tp,
        "tn": matrices.sum((1, 2))[:, None] - matrices.sum(1) - matrices.sum(2) + tp,
    }

    @jax.jit
    def both(m, tp, fp, fn, tn):
        counts = M.Counts(tp, fp, fn, tn)
        out = {n: (f(m), f(counts)) for n, f in SCORE_FUNCTIONS.items()}
        out["generalized_dice"] = (M.generalized_dice(m), M.generalized_dice(counts))
        return out

    # Error rates are 0, and so is the prevalence threshold: sqrt(1 * 0) + 1 - 1 over 1.
    zero = {
        "miss_rate",
        "fall_out",
        "false_discovery_rate",
        "false_omission_rate",
        "prevalence_threshold",
    }
    for name, (of_matrix, of_counts) in both(matrices, *fields.values()).items():
        ideal = 0.0 if name in zero else 1.0
        np.testing.assert_allclose(of_matrix[3], ideal, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(of_counts[3], ideal, atol=1e-6, err_msg=name)
        if name == "generalized_dice":
            continue
        expected = ref.scores(**fields)[name]
        rtol = 2e-5 if name == "prevalence_threshold" else 2e-6
        np.testing.assert_allclose(of_matrix, expected, rtol=rtol, atol=1e-7, err_msg=name)
        np.testing.assert_allclose(of_counts, expected, rtol=rtol, atol=1e-7, err_msg=name)


# ----------------------------------------------------------------------------------------------
# Reductions.


def _values():
    x = np.array(
        [
            [0.9, 0.5, NAN, 0.2, 0.7],
            [NAN, NAN, NAN, NAN, NAN],  # an image with nothing defined
            [0.1, 0.4, NAN, NAN, 1.0],
            [0.3, NAN, NAN, 0.8, 0.6],  # class 2: defined nowhere
        ],
        np.float32,
    )
    return x


SELECTIONS = [
    {},
    {"include_background": False},
    {"classes": (1, 3)},
    {"class_weights": [1.0, 2.0, 0.5, 0.0, 3.0]},
    {"class_weights": [1.0, 2.0, 0.5, 0.0, 3.0], "include_background": False},
]


def _np_selection(options, num_classes=5):
    keep = list(options.get("classes", range(num_classes)))
    if options.get("include_background") is False:
        keep = [c for c in keep if c != 0]
    return keep, options.get("class_weights")


def test_reductions_match_numpy():
    x = _values()
    x_inf = x.copy()
    x_inf[2, 1] = np.inf

    cases = []
    for reduction in M.REDUCTIONS:
        for options in SELECTIONS:
            if "class_weights" in options and reduction in ("none", "mean_batch", "sum_batch"):
                continue
            for values in ("x", "row") if options else ("x", "x_inf", "row"):
                cases.append((reduction, options, values))

    @jax.jit
    def run(x, x_inf):
        inputs = {"x": x, "x_inf": x_inf, "row": x[0]}
        return [M.reduce(inputs[v], reduction=r, return_count=True, **o) for r, o, v in cases]

    results = run(x, x_inf)
    inputs = {"x": x, "x_inf": x_inf, "row": x[0]}
    for (reduction, options, values), (value, count) in zip(cases, results, strict=True):
        keep, weights = _np_selection(options)
        expected, expected_count = ref.reduce(inputs[values], reduction, keep=keep, weights=weights)
        what = f"{reduction} {options} {values}"
        assert value.dtype == jnp.float32 and count.dtype == jnp.int32, what
        np.testing.assert_allclose(value, expected, rtol=1e-6, err_msg=what)
        np.testing.assert_array_equal(count, expected_count, err_msg=what)


def test_scores_reduce_like_reduce_of_scores_and_means_select_classes():
    r = np.random.default_rng(8)
    labels = r.integers(0, 4, (3, 5, 5))
    labels[0][labels[0] == 3] = 0
    predictions = np.where(
        r.uniform(size=labels.shape) < 0.5, labels, r.integers(0, 4, labels.shape)
    )

    @jax.jit
    def run(p, y):
        m = M.confusion_matrix(p, y, 4)
        counts = M.overlap_counts(p, y, num_classes=4)
        per_image = M.dice(counts, ignore_empty=True)
        return {
            "mean": (
                M.dice(counts, ignore_empty=True, reduction="mean"),
                M.reduce(per_image, reduction="mean"),
            ),
            "foreground": (
                M.mean_iou(m, include_background=False),
                M.reduce(M.iou(m), reduction="mean", include_background=False),
            ),
            "subset": (M.mean_dice(m, classes=(1, 2)), jnp.nanmean(M.dice(m)[jnp.array([1, 2])])),
            "pooled": (M.iou(counts.sum(axis=0)), M.iou(m)),
            "micro": (M.iou(counts.sum()), M.iou(counts.sum(axis=(0, 1)))),
        }

    for name, (a, b) in run(predictions, labels).items():
        np.testing.assert_allclose(a, b, rtol=1e-6, err_msg=name)


def test_generalized_dice_matches_its_definition():
    fields = _edge_counts()
    fields["tp"][0, :] = 0  # an image with no ground truth
    fields["fn"][0, :] = 0
    options = [
        {},
        {"weight_type": "simple"},
        {"weight_type": "uniform"},
        {"include_background": False, "zero_division": 1.0},
        {"classes": (1, 2, 4), "class_weights": [1.0, 2.0, 1.0, 1.0, 0.5, 1.0]},
        {"ignore_empty": True},
    ]

    @jax.jit
    def run(tp, fp, fn, tn):
        counts = M.Counts(tp, fp, fn, tn)
        out = [M.generalized_dice(counts, **o) for o in options]
        return out, M.generalized_dice(counts, reduction="mean", return_count=True)

    results, (mean, count) = run(*(fields[f] for f in ("tp", "fp", "fn", "tn")))
    for opts, actual in zip(options, results, strict=True):
        keep, _ = _np_selection(opts, 6)
        np_opts = {k: v for k, v in opts.items() if k not in ("include_background", "classes")}
        expected = ref.generalized_dice(
            fields["tp"], fields["fp"], fields["fn"], keep=keep, **np_opts
        )
        np.testing.assert_allclose(actual, expected, rtol=1e-6, err_msg=str(opts))
    np.testing.assert_allclose(mean, np.nanmean(np.asarray(results[0])), rtol=1e-6)
    assert int(count) == int(np.sum(~np.isnan(np.asarray(results[0]))))


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
        whole = _exact(getattr(out["whole"], f))
        np.testing.assert_array_equal(_exact(getattr(out["concatenated"], f)), whole)
        np.testing.assert_array_equal(_exact(getattr(out["pooled"], f)), whole.sum(0))
        np.testing.assert_array_equal(_exact(getattr(out["device"], f)), whole.sum(0))
    np.testing.assert_allclose(out["pooled_iou"], out["union_iou"], rtol=1e-6)
    np.testing.assert_allclose(out["pooled_mcc"], out["union_mcc"], rtol=1e-6)
    np.testing.assert_array_equal(_exact(out["builtin_sum"].tp), _exact(out["whole"].tp)[:2].sum(0))


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
    np.testing.assert_array_equal(_exact(out["add"]), big + 1)
    np.testing.assert_array_equal(_exact(out["double"]), 2 * big)
    np.testing.assert_array_equal(_exact(out["sub"]), big)
    np.testing.assert_array_equal(_exact(out["sum0"]), big.sum(0))
    assert int(out["sum"]) == int(big.sum())
    np.testing.assert_array_equal(_exact(out["psum"]), 3 * big)
    np.testing.assert_allclose(out["float"], big.astype(np.float64), rtol=2**-23)
    # A sum over more values than one reduction may add before carrying (2**14).
    many = M.ExactCount(np.full((40000,), 2**20 + 3, np.int64))
    assert int(many.sum()) == 40000 * (2**20 + 3)


def test_accumulator_counts_stay_exact_past_two_to_the_31():
    # A cell near 2**31 and one near 2**53: int32 counts would wrap (and report mIoU 1.0).
    start = np.array([[2**31 - 2, 5], [3, 2**53 - 10]], np.int64)
    acc = M.ConfusionMatrixAccumulator(matrix=start)
    labels = np.array([[0, 0, 0, 1, 1, 1, 1]])
    predictions = np.array([[0, 0, 1, 1, 1, 1, 0]])

    step = jax.jit(lambda acc, p, y: acc.update(p, y))
    on_devices = jax.jit(
        lambda acc, p, y: jax.tree.map(
            lambda a: a[0],  # device 0's
            jax.vmap(
                lambda acc, p, y: acc.update(p, y, axis_name="d"),
                in_axes=(None, 0, 0),
                axis_name="d",
            )(acc, p, y),
        )
    )
    for _ in range(3):
        acc = step(acc, predictions, labels)
    acc = on_devices(acc, np.stack([predictions] * 2), np.stack([labels] * 2))
    batch = np.array([[2, 1], [1, 3]])
    expected = start + 5 * batch
    np.testing.assert_array_equal(_exact(acc.matrix), expected)
    assert int(acc.matrix[1, 1]) == 2**53 + 5
    iou = expected.diagonal() / (expected.sum(0) + expected.sum(1) - expected.diagonal())
    np.testing.assert_allclose(acc.compute()["iou"], iou, rtol=1e-6)
    counts_iou = jax.jit(M.iou)(acc.matrix)  # any score of the exact matrix
    np.testing.assert_allclose(counts_iou, iou, rtol=1e-6)


def test_psum_of_an_accumulator_is_refused():
    r = np.random.default_rng(10)
    labels = r.integers(0, 3, (2, 4, 4)).astype(np.int32)
    logits = r.standard_normal((2, 4, 4, 3)).astype(np.float32)
    values = {"dice": r.uniform(size=(2, 3)).astype(np.float32)}
    cm = M.ConfusionMatrixAccumulator.empty(3)
    per_image = M.PerImageAccumulator.empty(("dice",), 3)

    @jax.jit
    def wrong_and_right(cm, per_image, x, y, v):
        def step(cm, per_image, x, y, v):
            right = (cm.update(x, y, axis_name="d"), per_image.update(v, axis_name="d"))
            wrong = jax.lax.psum((cm.update(x, y), per_image.update(v)), "d")
            traced = (wrong[0].compute()["mean_iou"], wrong[1].compute()["dice"])
            return right, wrong, traced

        expected = (
            M.mean_iou(M.confusion_matrix(x, y, 3)),
            M.reduce(v["dice"], reduction="mean"),
        )

        per_device = jax.vmap(step, in_axes=(None, None, 0, 0, 0), axis_name="d")(
            cm, per_image, x[:, None], y[:, None], jax.tree.map(lambda a: a[:, None], v)
        )
        return expected, jax.tree.map(lambda a: a[0], per_device)  # device 0's

    expected, (right, wrong, traced) = wrong_and_right(cm, per_image, logits, labels, values)
    assert np.all(np.isnan(traced[0])) and np.all(np.isnan(traced[1]))
    np.testing.assert_allclose(right[0].compute()["mean_iou"], expected[0], rtol=1e-6)
    np.testing.assert_allclose(right[1].compute()["dice"], expected[1], rtol=1e-6)
    for acc in wrong:
        assert int(acc.copies) == 2
        with pytest.raises(ValueError, match=r"collective sum .* axis_name="):
            acc.compute()
    with pytest.raises(ValueError, match="collective sum"):
        (wrong[0] + right[0]).compute()  # merging keeps the mark
    with pytest.raises(Exception, match="collective sum"):
        jsl.checked(lambda acc: acc.compute())(wrong[0])


# ----------------------------------------------------------------------------------------------
# The per-image accumulator.


def test_per_image_accumulator_equals_reduce_of_all_images():
    r = np.random.default_rng(11)
    batches = []
    for size in (3, 3, 2):
        values = r.uniform(size=(size, 5)).astype(np.float32)
        values[r.uniform(size=values.shape) < 0.3] = np.nan
        distance = (10 * r.uniform(size=(size, 5))).astype(np.float32)
        distance[0, 4] = np.inf  # an empty prediction: its distance is infinite
        distance[1, :] = np.nan  # nothing defined in this image
        batches.append({"dice": values, "hd95": distance})
    everything = {n: np.concatenate([b[n] for b in batches]) for n in ("dice", "hd95")}
    selections = [{}, {"include_background": False, "class_weights": [1.0, 2.0, 1.0, 0.5, 1.0]}]

    @jax.jit
    def step(accs, batch):
        return [acc.update(batch) for acc in accs]

    accs = [M.PerImageAccumulator.empty(("dice", "hd95"), 5, **s) for s in selections]
    for batch in batches:
        accs = step(accs, batch)
    assert int(accs[0].images) == 8
    for acc, selection in zip(accs, selections, strict=True):
        keep, weights = _np_selection(selection)
        assert acc.classes == tuple(keep)
        for reduction in M.STREAMED_REDUCTIONS:
            results = acc.compute(reduction=reduction, return_count=True)
            for name in ("dice", "hd95"):
                value, count = results[name]
                expected, expected_count = ref.reduce(
                    everything[name], reduction, keep=keep, weights=weights
                )
                what = f"{name} {reduction} {selection}"
                np.testing.assert_allclose(value, expected, rtol=1e-6, err_msg=what)
                np.testing.assert_array_equal(count, expected_count, err_msg=what)
    merged = jax.jit(lambda a: a + a)(accs[0])
    np.testing.assert_allclose(merged.compute()["dice"], accs[0].compute()["dice"], rtol=1e-6)
    assert int(merged.images) == 16


def test_per_image_accumulator_in_nnx_jit_and_on_devices():
    nnx = pytest.importorskip("flax.nnx")
    r = np.random.default_rng(12)
    model = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
    images = r.standard_normal((4, 5, 5, 2)).astype(np.float32)
    labels = r.integers(0, 3, (4, 5, 5)).astype(np.int32)

    @nnx.jit
    def eval_step(model, acc, x, y):
        counts = M.overlap_counts(model(x), y)
        return acc.update({"dice": M.dice(counts, ignore_empty=True)})

    acc = M.PerImageAccumulator.empty(("dice",), 3)
    for i in (0, 2):
        acc = eval_step(model, acc, images[i : i + 2], labels[i : i + 2])
    dice = jax.jit(lambda x, y: M.dice(M.overlap_counts(x, y), ignore_empty=True))(
        model(images), labels
    )
    expected, _ = ref.reduce(np.asarray(dice), "mean")
    np.testing.assert_allclose(acc.compute()["dice"], expected, rtol=1e-6)

    on_one = jax.jit(
        lambda acc, v: jax.tree.map(
            lambda a: a[0],  # device 0's
            jax.vmap(
                lambda acc, v: acc.update({"dice": v}, axis_name="d"),
                in_axes=(None, 0),
                axis_name="d",
            )(acc, v),
        )
    )(M.PerImageAccumulator.empty(("dice",), 3), np.asarray(dice).reshape(2, 2, 3))
    np.testing.assert_allclose(on_one.compute()["dice"], acc.compute()["dice"], rtol=1e-6)
    assert int(on_one.images) == 4


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
