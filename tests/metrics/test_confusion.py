"""Hard metrics: confusion matrix vs NumPy (np.add.at), metrics from their formulas, streaming."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxseg_losses as jsl
from jaxseg_losses import metrics

C = 5


def np_confusion(predicted, labels, num_classes, *, ignore_index=None, mask=None):
    """Reference: rows true class, columns predicted class, one np.add.at per pixel."""
    predicted, labels = np.asarray(predicted).ravel(), np.asarray(labels).ravel()
    keep = (labels >= 0) & (labels < num_classes) & (predicted >= 0) & (predicted < num_classes)
    if ignore_index is not None:
        keep &= labels != ignore_index
    if mask is not None:
        keep &= np.asarray(mask).ravel() != 0
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (labels[keep], predicted[keep]), 1)
    return matrix


def np_metrics(matrix):
    """Per-class and mean metrics from the module docstring's formulas, NaN where undefined."""
    m = np.asarray(matrix, np.float64)
    tp = np.diag(m)
    true, predicted = m.sum(1), m.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(true + predicted - tp > 0, tp / (true + predicted - tp), np.nan)
        dice = np.where(true + predicted > 0, 2 * tp / (true + predicted), np.nan)
        precision = np.where(predicted > 0, tp / predicted, np.nan)
        recall = np.where(true > 0, tp / true, np.nan)
    total = m.sum()
    present = ~np.isnan(iou)
    return {
        "iou": iou,
        "dice": dice,
        "precision": precision,
        "recall": recall,
        "mean_iou": iou[present].mean() if present.any() else np.nan,
        "mean_dice": dice[present].mean() if present.any() else np.nan,
        "pixel_accuracy": tp.sum() / total if total else np.nan,
        "frequency_weighted_iou": (
            sum(true[c] / total * iou[c] for c in range(len(tp)) if true[c] > 0)
            if total
            else np.nan
        ),
    }


def make_data(seed, shape=(3, 7, 6), *, num_classes=C, ignore=True, absent=(3,)):
    r = np.random.default_rng(seed)
    logits = r.standard_normal((*shape, num_classes)).astype(np.float32)
    labels = r.integers(0, num_classes, shape).astype(np.int32)
    for c in absent:  # a class absent from the labels
        labels = np.where(labels == c, 0, labels)
    if ignore:
        labels = np.where(r.uniform(size=shape) < 0.2, 255, labels).astype(np.int32)
    mask = r.uniform(size=shape) > 0.3
    return logits, labels, mask


@pytest.mark.parametrize(
    "options",
    [{}, {"ignore_index": 255}, {"ignore_index": 255, "mask": True}],
    ids=["plain", "ignore", "ignore_mask"],
)
def test_confusion_matrix_from_logits_and_labels_matches_numpy(options):
    logits, labels, mask = make_data(0, ignore="ignore_index" in options)
    kwargs = dict(options)
    if kwargs.pop("mask", False):
        kwargs["mask"] = mask
    fn = jax.jit(
        lambda x, y, **kw: (
            metrics.confusion_matrix(x, y, C, **kw),
            metrics.confusion_matrix(jnp.argmax(x, -1), y, C, **kw),
            metrics.confusion_matrix(jnp.moveaxis(x, -1, 1), y, C, class_axis=1, **kw),
            metrics.confusion_matrix(x, y, C, dtype=jnp.float32, **kw),
        )
    )
    from_logits, from_labels, nchw, as_float = fn(logits, labels, **kwargs)
    expected = np_confusion(np.argmax(logits, -1), labels, C, **kwargs)
    assert from_logits.dtype == jnp.int32 and from_logits.shape == (C, C)
    np.testing.assert_array_equal(from_logits, expected)
    np.testing.assert_array_equal(from_labels, expected)
    np.testing.assert_array_equal(nchw, expected)
    assert as_float.dtype == jnp.float32
    np.testing.assert_array_equal(as_float, expected.astype(np.float32))


def test_confusion_matrix_matches_scikit_learn():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    logits, labels, _ = make_data(1)
    predicted = np.argmax(logits, -1)
    keep = labels != 255
    expected = sklearn_metrics.confusion_matrix(
        labels[keep], predicted[keep], labels=list(range(C))
    )
    actual = jax.jit(lambda p, y: metrics.confusion_matrix(p, y, C, ignore_index=255))(
        predicted, labels
    )
    np.testing.assert_array_equal(actual, expected)
    iou = sklearn_metrics.jaccard_score(
        labels[keep], predicted[keep], labels=list(range(C)), average=None, zero_division=0
    )
    ours = np.asarray(metrics.iou(actual))
    present = ~np.isnan(ours)  # scikit-learn scores an absent class 0; we leave it undefined
    np.testing.assert_allclose(ours[present], iou[present], rtol=1e-6)
    assert np.all(iou[~present] == 0)


def test_out_of_range_values_are_not_counted():
    labels = np.array([[0, 1, 7, -1, 2, 1]])
    predicted = np.array([[0, 9, 1, 1, -3, 1]])
    matrix = metrics.confusion_matrix(predicted, labels, 3)
    np.testing.assert_array_equal(matrix, np_confusion(predicted, labels, 3))
    assert int(matrix.sum()) == 2


def test_binary_single_channel_scores():
    r = np.random.default_rng(2)
    logits = r.standard_normal((2, 9, 1)).astype(np.float32)
    labels = r.integers(0, 2, (2, 9))
    expected = np_confusion((logits[..., 0] > 0).astype(int), labels, 2)
    np.testing.assert_array_equal(metrics.confusion_matrix(logits, labels, 2), expected)
    probs = 1 / (1 + np.exp(-logits))
    np.testing.assert_array_equal(
        metrics.confusion_matrix(probs, labels, 2, threshold=0.5), expected
    )


@pytest.mark.parametrize("seed", range(4))
def test_metrics_match_formulas(seed):
    logits, labels, _ = make_data(seed, absent=(3,) if seed % 2 else (2, 4))
    predicted = np.argmax(logits, -1)
    if seed == 3:
        predicted = np.where(predicted == 1, 0, predicted)  # a class never predicted
    matrix = np_confusion(predicted, labels, C, ignore_index=255)
    expected = np_metrics(matrix)
    actual = jax.jit(metrics.compute_metrics)(matrix)
    assert set(actual) == set(expected)
    for name, value in expected.items():
        assert actual[name].dtype == jnp.float32, name
        np.testing.assert_allclose(actual[name], value, rtol=1e-6, err_msg=name)
        fn = getattr(metrics, name)
        np.testing.assert_allclose(fn(matrix), value, rtol=1e-6, err_msg=name)


def test_absent_classes_are_nan_and_skipped():
    # Class 2 appears nowhere; class 1 is in the labels but never predicted.
    matrix = np.array([[4, 0, 0], [2, 0, 0], [0, 0, 0]])
    iou = metrics.iou(matrix)
    assert np.isnan(iou[2]) and iou[1] == 0.0
    np.testing.assert_allclose(metrics.mean_iou(matrix), (4 / 6 + 0.0) / 2, rtol=1e-6)
    assert np.isnan(metrics.precision(matrix)[1])
    assert metrics.recall(matrix)[1] == 0.0
    np.testing.assert_allclose(metrics.frequency_weighted_iou(matrix), 4 / 6 * 4 / 6, rtol=1e-6)


def test_empty_matrix_gives_nan_not_errors():
    empty = np.zeros((3, 3), np.int32)
    results = jax.jit(metrics.compute_metrics)(empty)
    for name, value in results.items():
        assert np.all(np.isnan(value)), name


def test_batched_matrices():
    matrices = np.stack([np.array([[3, 1], [1, 1]]), np.array([[2, 0], [0, 2]])])
    np.testing.assert_allclose(metrics.mean_iou(matrices), [0.4666667, 1.0], rtol=1e-6)
    assert metrics.iou(matrices).shape == (2, 2)


def test_int32_counts_do_not_overflow_below_two_to_the_31():
    # Accumulating realistic evaluation sets in int32: exact counts near the documented bound.
    near = np.array([[2**31 - 10, 0], [0, 5]], np.int32)
    acc = metrics.ConfusionMatrixAccumulator(matrix=jnp.asarray(near))
    acc = acc.update(np.array([[0, 0, 1]]), np.array([[0, 0, 1]]))
    assert int(acc.matrix[0, 0]) == 2**31 - 8
    np.testing.assert_allclose(acc.compute()["pixel_accuracy"], 1.0)
    # float32 never overflows.
    big = metrics.ConfusionMatrixAccumulator.empty(2, dtype=jnp.float32)
    big = metrics.ConfusionMatrixAccumulator(matrix=big.matrix + 3e9)
    np.testing.assert_allclose(big.compute()["mean_iou"], 1 / 3, rtol=1e-6)


def test_accumulator_streams_batches_under_jit():
    step = jax.jit(lambda acc, x, y: acc.update(x, y, ignore_index=255))
    acc = metrics.ConfusionMatrixAccumulator.empty(C)
    total = np.zeros((C, C), np.int64)
    traces = []
    counted_step = jax.jit(
        lambda acc, x, y: (traces.append(1), acc.update(x, y, ignore_index=255))[1]
    )
    counted = metrics.ConfusionMatrixAccumulator.empty(C)
    for seed in range(4):
        logits, labels, _ = make_data(10 + seed)
        acc = step(acc, logits, labels)
        counted = counted_step(counted, logits, labels)
        total += np_confusion(np.argmax(logits, -1), labels, C, ignore_index=255)
    assert len(traces) == 1
    np.testing.assert_array_equal(acc.matrix, total)
    np.testing.assert_array_equal(counted.matrix, total)
    results = acc.compute()
    expected = np_metrics(total)
    np.testing.assert_allclose(results["mean_iou"], expected["mean_iou"], rtol=1e-6)
    # Accumulators add, e.g. across hosts or eval loops.
    np.testing.assert_array_equal((acc + acc).matrix, 2 * total)


def test_accumulator_in_flax_nnx_eval_step():
    nnx = pytest.importorskip("flax.nnx")
    model = nnx.Linear(3, C, rngs=nnx.Rngs(0))

    @nnx.jit
    def eval_step(model, acc, x, y):
        return acc.update(model(x), y, ignore_index=255)

    acc = metrics.ConfusionMatrixAccumulator.empty(C)
    total = np.zeros((C, C), np.int64)
    for seed in range(3):
        r = np.random.default_rng(seed)
        x = r.standard_normal((2, 4, 4, 3)).astype(np.float32)
        _, labels, _ = make_data(seed, shape=(2, 4, 4))
        acc = eval_step(model, acc, x, labels)
        total += np_confusion(np.argmax(model(x), -1), labels, C, ignore_index=255)
    np.testing.assert_array_equal(acc.matrix, total)


def test_psum_across_devices():
    # vmap with an axis name stands in for shard_map/pmap.
    logits, labels, _ = make_data(20, shape=(4, 5, 5))
    split = lambda a: a.reshape(2, 2, *a.shape[1:])  # noqa: E731
    per_device = jax.jit(
        jax.vmap(
            lambda x, y: metrics.confusion_matrix(x, y, C, ignore_index=255, axis_name="d"),
            axis_name="d",
        )
    )(split(logits), split(labels))
    expected = np_confusion(np.argmax(logits, -1), labels, C, ignore_index=255)
    np.testing.assert_array_equal(per_device[0], expected)
    np.testing.assert_array_equal(per_device[1], expected)
    summed = jax.jit(
        jax.vmap(
            lambda acc, x, y: jax.lax.psum(acc.update(x, y, ignore_index=255), "d"),
            in_axes=(None, 0, 0),
            axis_name="d",
        )
    )(metrics.ConfusionMatrixAccumulator.empty(C), split(logits), split(labels))
    np.testing.assert_array_equal(summed.matrix[0], expected)


def test_int64_under_x64():
    with jax.enable_x64(True):
        matrix = metrics.confusion_matrix(
            np.array([0, 1, 1]), np.array([0, 1, 0]), 2, dtype=jnp.int64
        )
        assert matrix.dtype == jnp.int64
        assert metrics.iou(matrix).dtype == jnp.float64
        np.testing.assert_array_equal(matrix, [[1, 1], [0, 1]])


def test_exposed_as_jsl_metrics():
    assert jsl.metrics is metrics
    for name in metrics.__all__:
        assert hasattr(jsl.metrics, name)


def test_errors():
    logits, labels, _ = make_data(30)
    with pytest.raises(TypeError, match="`num_classes` must be a Python int"):
        metrics.confusion_matrix(logits, labels, jnp.array(5))
    with pytest.raises(ValueError, match="`num_classes` must be at least 1"):
        metrics.confusion_matrix(labels, labels, 0)
    with pytest.raises(ValueError, match=r"have 5 classes along `class_axis`, but num_classes=4"):
        metrics.confusion_matrix(logits, labels, 4)
    with pytest.raises(ValueError, match="Float `predictions` are scores with a class axis"):
        metrics.confusion_matrix(logits[..., 0], labels, C)
    with pytest.raises(ValueError, match="`predictions` must have shape"):
        metrics.confusion_matrix(labels[:, :2], labels, C)
    with pytest.raises(TypeError, match="`labels` must be integer class indices"):
        metrics.confusion_matrix(logits, labels.astype(np.float32), C)
    with pytest.raises(ValueError, match="`mask` must have shape"):
        metrics.confusion_matrix(logits, labels, C, mask=np.ones((2, 2), bool))
    with pytest.raises(ValueError, match="`dtype` must be one of"):
        metrics.confusion_matrix(logits, labels, C, dtype=jnp.int8)
    with pytest.raises(ValueError, match="needs 64-bit JAX"):
        metrics.confusion_matrix(logits, labels, C, dtype=jnp.int64)
    with pytest.raises(ValueError, match="`num_classes` must be 2"):
        metrics.confusion_matrix(logits[..., :1], labels, 3)
    with pytest.raises(ValueError, match=r"`matrix` must be a confusion matrix of shape"):
        metrics.iou(np.ones((3, 4)))
    with pytest.raises(ValueError, match="out of range"):
        metrics.confusion_matrix(logits, labels, C, class_axis=7)


def test_checked_mode_flags_out_of_range_labels():
    checked = jsl.checked(metrics.confusion_matrix)
    with pytest.raises(Exception, match=r"must lie in \[0, 3\)"):
        checked(np.array([[0, 1]]), np.array([[0, 9]]), 3)
    # ignore_index is allowed.
    checked(np.array([[0, 1]]), np.array([[0, 255]]), 3, ignore_index=255)
