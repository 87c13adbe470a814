"""The per-image accumulators: streamed batches equal the reduction of all images, inside
``nnx.jit`` and on devices; counts stay exact past 2³¹; a psum of an accumulator is refused."""

import math

import jax
import numpy as np
import pytest

import jaxseg_losses as jsl
from jaxseg_losses import metrics
from tests.helpers import exact_ints
from tests.references import metrics as ref

M = metrics
NAN = math.nan


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
    np.testing.assert_array_equal(exact_ints(acc.matrix), expected)
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
        keep, weights = ref.class_selection(selection)
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
