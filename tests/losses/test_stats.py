"""Overlap statistics: values against the NumPy reference, the pytree contract, aggregation."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxseg_losses as jsl
from jaxseg_losses.losses.stats import safe_ratio
from tests.helpers import jit_call, random_inputs, softmax
from tests.references import region as ref

RTOL, ATOL = 2e-5, 2e-5


def _jit_stats(**options):
    """``overlap_stats`` under ``jax.jit`` with the static options bound."""
    return jax.jit(lambda x, y, m: jsl.overlap_stats(x, y, mask=m, **options))


def _assert_stats(stats, expected, rtol=RTOL, atol=ATOL):
    for got, want, name in zip(
        (stats.tp, stats.fp, stats.fn), expected, "tp fp fn".split(), strict=True
    ):
        np.testing.assert_allclose(np.asarray(got), want, rtol=rtol, atol=atol, err_msg=name)


# (spatial, num_classes, target, activation, ignore_index, mask, aggregate, class_axis): every
# input branch once, over 1-D, 2-D and 3-D spatial shapes.
STATS_CASES = [
    ((7,), 3, "int", "softmax", None, None, "sample", -1),
    ((4, 5), 3, "int", "softmax", 255, "bool", "sample", -1),
    ((2, 3, 4), 4, "int", "softmax", None, "float", "batch", 1),
    ((4, 5), 1, "int", "sigmoid", None, None, "sample", -1),
    ((6,), 1, "int", "sigmoid", 255, "float", "batch", 1),
    ((2, 3, 2), 1, "onehot", "sigmoid", None, "bool", "sample", 1),
    ((3, 4), 3, "onehot", "sigmoid", None, None, "sample", -1),
    ((3, 4), 3, "soft", "sigmoid", None, "float", "batch", -1),
    ((5,), 3, "onehot", "softmax", None, None, "sample", 1),
    ((2, 2, 3), 3, "soft", "softmax", None, "bool", "sample", -1),
    ((4, 4), 3, "int", None, 255, None, "sample", 1),
    ((6,), 2, "soft", None, None, None, "batch", -1),
]


@pytest.mark.parametrize(
    "spatial,num_classes,target,activation,ignore_index,mask,aggregate,class_axis", STATS_CASES
)
def test_overlap_stats_matches_reference(
    spatial, num_classes, target, activation, ignore_index, mask, aggregate, class_axis
):
    data = random_inputs(
        len(spatial) * 10 + num_classes,
        batch=3,
        spatial=spatial,
        num_classes=num_classes,
        target=target,
        activation=activation,
        ignore_index=ignore_index,
        mask=mask,
        class_axis=class_axis,
    )
    options = dict(
        activation=activation, class_axis=class_axis, ignore_index=ignore_index, aggregate=aggregate
    )
    stats = _jit_stats(**options)(data["logits"], data["labels"], data.get("mask"))
    expected = ref.stats(data["logits"], data["labels"], mask=data.get("mask"), **options)
    rows = 1 if aggregate == "batch" else 3
    assert stats.tp.shape == stats.fp.shape == stats.fn.shape == (rows, num_classes)
    assert stats.tp.dtype == jnp.float32
    _assert_stats(stats, expected)


def test_overlap_stats_by_hand():
    # class 0: p = (.9, .2, .6), g = (1, 0, 0); class 1: p = (.1, .8, .4), g = (0, 1, 1).
    probs = np.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]], np.float32)
    stats = jit_call(jsl.overlap_stats, probs, np.array([[0, 1, 1]]), activation=None)
    _assert_stats(stats, ([[0.9, 1.2]], [[0.8, 0.1]], [[0.1, 0.8]]), atol=1e-6)


def test_one_hot_float_targets_equal_integer_labels():
    data = random_inputs(0, spatial=(3, 4), num_classes=4)
    one_hot = (data["labels"][..., None] == np.arange(4)).astype(np.float32)
    by_index = jit_call(jsl.overlap_stats, data["logits"], data["labels"])
    by_dense = jit_call(jsl.overlap_stats, data["logits"], one_hot)
    _assert_stats(by_dense, (by_index.tp, by_index.fp, by_index.fn), atol=1e-5)


def test_soft_targets_use_the_l1_intersection():
    # TP = sum(min(p, g)): minimal FP and FN exactly at p == g, unlike sum(p * g).
    probs = np.array([[[0.3, 0.7], [0.6, 0.4]]], np.float32)
    stats = jit_call(jsl.overlap_stats, probs, probs, activation=None)
    _assert_stats(stats, ([[0.9, 1.1]], [[0.0, 0.0]], [[0.0, 0.0]]), atol=1e-6)
    other = np.array([[[0.5, 0.5], [0.2, 0.8]]], np.float32)
    stats = jit_call(jsl.overlap_stats, probs, other, activation=None)
    # class 0: min = (.3, .2) -> TP .5, FP .9 - .5, FN .7 - .5
    _assert_stats(stats, ([[0.5, 0.9]], [[0.4, 0.2]], [[0.2, 0.4]]), atol=1e-6)


def test_statistics_are_non_negative_and_sum_to_the_volumes():
    data = random_inputs(1, batch=3, spatial=(5, 5), num_classes=3, target="soft")
    stats = jit_call(jsl.overlap_stats, data["logits"], data["labels"])
    for field in (stats.tp, stats.fp, stats.fn):
        assert np.all(np.asarray(field) >= 0)
    probs = softmax(data["logits"].astype(np.float64))
    np.testing.assert_allclose(stats.tp + stats.fp, probs.sum(axis=(1, 2)), rtol=1e-5)
    np.testing.assert_allclose(stats.tp + stats.fn, data["labels"].sum(axis=(1, 2)), rtol=1e-5)


# ----------------------------------------------------------------------------------------------
# The pytree: micro-batches and aggregation.


def test_micro_batch_stats_add_up():
    data = random_inputs(2, batch=4, spatial=(3, 3), num_classes=3, mask="float")
    logits, labels, mask = data["logits"], data["labels"], data["mask"]

    @jax.jit
    def accumulate(x, y, m):
        def pooled(x, y, m):
            return jsl.overlap_stats(x, y, mask=m, aggregate="batch")

        parts = pooled(x[:1], y[:1], m[:1]) + pooled(x[1:], y[1:], m[1:])
        # A ratio of sums is not a sum of ratios: the loss from added stats is the pooled loss.
        loss = jnp.mean(jsl.dice_from_stats(parts))
        return parts, loss, jsl.dice_loss(x, y, mask=m, aggregate="batch")

    parts, loss_from_parts, pooled_loss = accumulate(logits, labels, mask)
    assert isinstance(parts, jsl.OverlapStats)
    _assert_stats(parts, ref.stats(logits, labels, mask=mask, aggregate="batch"))
    np.testing.assert_allclose(loss_from_parts, pooled_loss, rtol=1e-6)


def test_aggregate_batch_is_sum_over_batch():
    data = random_inputs(3, batch=3, spatial=(8,), num_classes=2)
    per_sample = jit_call(jsl.overlap_stats, data["logits"], data["labels"])
    pooled = jit_call(jsl.overlap_stats, data["logits"], data["labels"], aggregate="batch")
    summed = jax.jit(jsl.OverlapStats.sum_over_batch)(per_sample)
    assert summed.tp.shape == (1, 2)
    _assert_stats(pooled, (summed.tp, summed.fp, summed.fn), atol=1e-6)
    leaves = jax.tree.leaves(per_sample)  # tp, fp, fn, tn: every field adds over the batch
    assert len(leaves) == 4
    _assert_stats(pooled, tuple(np.sum(f, axis=0, keepdims=True) for f in leaves[:3]))
    np.testing.assert_allclose(pooled.tn, np.sum(leaves[3], axis=0, keepdims=True), rtol=2e-5)


def test_overlap_stats_is_a_pytree():
    ones = np.ones((2, 3), np.float32)
    stats = jsl.OverlapStats(tp=ones, fp=0 * ones, fn=2 * ones)
    assert len(jax.tree.leaves(stats)) == 3
    doubled = jax.jit(lambda s: jax.tree.map(lambda x: 2 * x, s))(stats)
    assert isinstance(doubled, jsl.OverlapStats)
    np.testing.assert_allclose(doubled.fn, 4.0)
    total = jax.jit(lambda a, b: a + b)(stats, doubled)
    assert isinstance(total, jsl.OverlapStats)
    np.testing.assert_allclose(total.tp, 3.0)
    with pytest.raises(dataclasses_frozen_error()):
        stats.tp = jnp.zeros((2, 3))  # type: ignore[misc]


def dataclasses_frozen_error():
    import dataclasses

    return dataclasses.FrozenInstanceError


def test_axis_name_sums_stats_over_a_mapped_axis():
    # Two "devices" of 2 samples each, mapped with vmap: every device sees the global statistics.
    data = random_inputs(4, batch=4, spatial=(3, 2), num_classes=3, mask="bool")
    shards = [np.reshape(data[k], (2, 2, *data[k].shape[1:])) for k in ("logits", "labels", "mask")]

    def device_stats(x, y, m):
        return jsl.overlap_stats(x, y, mask=m, aggregate="batch", axis_name="devices")

    mapped = jax.jit(jax.vmap(device_stats, axis_name="devices"))(*shards)
    whole = ref.stats(data["logits"], data["labels"], mask=data["mask"], aggregate="batch")
    assert mapped.tp.shape == (2, 1, 3)
    for device in range(2):
        got = jax.tree.map(lambda f, d=device: f[d], mapped)
        _assert_stats(got, whole)


def test_axis_name_under_shard_map_on_one_device():
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
    spec = jax.sharding.PartitionSpec("data")
    data = random_inputs(5, batch=2, spatial=(4,), num_classes=2)

    @jax.jit
    @functools.partial(jax.shard_map, mesh=mesh, in_specs=(spec, spec), out_specs=spec)
    def sharded(x, y):
        return jsl.overlap_stats(x, y, aggregate="batch", axis_name="data")

    got = sharded(data["logits"], data["labels"])
    want = ref.stats(data["logits"], data["labels"], aggregate="batch")
    _assert_stats(got, want)


def test_axis_name_is_ignored_for_sample_statistics():
    data = random_inputs(6, batch=2, spatial=(4,), num_classes=2)
    mapped = jax.jit(
        jax.vmap(lambda x, y: jsl.overlap_stats(x[None], y[None], axis_name="i"), axis_name="i")
    )(data["logits"], data["labels"])
    tp, _, _ = ref.stats(data["logits"], data["labels"])
    np.testing.assert_allclose(mapped.tp[:, 0], tp, rtol=RTOL, atol=ATOL)


# ----------------------------------------------------------------------------------------------
# From statistics to per-class losses.


def _random_stats(seed, shape=(3, 4)):
    rng = np.random.default_rng(seed)
    tp, fp, fn = (rng.uniform(0, 5, size=shape).astype(np.float32) for _ in range(3))
    tp[0, 0] = fp[0, 0] = fn[0, 0] = 0.0  # a class absent from prediction and target
    fp[1, 1] = fn[1, 1] = 0.0  # a perfect class
    tp[2, 2] = 0.0  # no overlap at all
    return tp, fp, fn


@pytest.mark.parametrize("smooth", [0.0, 1.0, 1e-5])
@pytest.mark.parametrize("log", [False, True])
def test_from_stats_match_reference(smooth, log):
    tp, fp, fn = _random_stats(7)

    @jax.jit
    def losses(tp, fp, fn):
        stats = jsl.OverlapStats(tp=tp, fp=fp, fn=fn)
        return (
            jsl.iou_from_stats(stats, smooth=smooth, log=log),
            jsl.dice_from_stats(stats, smooth=smooth, log=log),
            jsl.tversky_from_stats(stats, alpha=0.3, beta=0.7, gamma=0.75, smooth=smooth, log=log),
        )

    got = losses(tp, fp, fn)
    tp, fp, fn = (a.astype(np.float64) for a in (tp, fp, fn))
    scores = (
        ref.iou_score(tp, fp, fn, smooth=smooth),
        ref.dice_score(tp, fp, fn, smooth=smooth),
        ref.tversky_score(tp, fp, fn, alpha=0.3, beta=0.7, smooth=smooth),
    )
    for value, score, gamma in zip(got, scores, (1.0, 1.0, 0.75), strict=True):
        want = ref.score_to_loss(score, log=log, gamma=gamma)
        value = np.asarray(value)
        assert value.shape == tp.shape and value.dtype == np.float32
        assert np.all(np.isfinite(value))
        # -ln(0) (no overlap, smooth=0) is floored at -ln(sqrt(float32 tiny)) ~ 43.7, not inf.
        if log and smooth == 0.0:
            assert value[2, 2] > 43.0**gamma
        np.testing.assert_allclose(value, want, rtol=1e-5, atol=1e-6)


def test_from_stats_by_hand():
    @jax.jit
    def losses(stats):
        return (
            jsl.iou_from_stats(stats, smooth=0.0),
            jsl.dice_from_stats(stats, smooth=0.0),
            jsl.iou_from_stats(stats, smooth=1.0),
            jsl.iou_from_stats(stats, smooth=0.0, log=True),
            jsl.tversky_from_stats(stats, alpha=1.0, beta=0.5, gamma=2.0, smooth=0.0),
            jsl.tversky_from_stats(stats, alpha=0.5, beta=1.0, smooth=2.0, log=True),
        )

    stats = jsl.OverlapStats(tp=np.array([3.0]), fp=np.array([1.0]), fn=np.array([2.0]))
    want = [
        1 - 3 / 6,
        1 - 6 / 9,
        1 - 4 / 7,
        -np.log(3 / 6),
        (1 - 3 / 5) ** 2,
        -np.log(5 / 7.5),
    ]
    got = [float(v[0]) for v in losses(stats)]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_absent_class_with_zero_smooth_scores_perfect_with_finite_gradient():
    def total(tp, fp, fn):
        stats = jsl.OverlapStats(tp=tp, fp=fp, fn=fn)
        return (
            jsl.iou_from_stats(stats, smooth=0.0).sum()
            + jsl.dice_from_stats(stats, smooth=0.0, log=True).sum()
            + jsl.tversky_from_stats(stats, gamma=0.5, smooth=0.0).sum()
        )

    zeros = np.zeros((1, 2), np.float32)
    value, grads = jax.jit(jax.value_and_grad(total, argnums=(0, 1, 2)))(zeros, zeros, zeros)
    assert float(value) == 0.0
    for grad in grads:
        assert np.all(np.isfinite(grad))


def test_safe_ratio():
    out = jax.jit(safe_ratio)(np.array([1.0, 0.0, 2.0, 1.0]), np.array([2.0, 0.0, 4.0, np.nan]))
    # 0/0 is a perfect score; a NaN denominator (NaN logits) must stay NaN, not look perfect.
    np.testing.assert_allclose(out, [0.5, 1.0, 0.5, np.nan])


def test_stats_dtypes():
    data = random_inputs(8, spatial=(4,), num_classes=3)
    for dtype in (jnp.bfloat16, jnp.float16, jnp.float32):
        stats = jit_call(jsl.overlap_stats, data["logits"].astype(dtype), data["labels"])
        assert stats.tp.dtype == jnp.float32, dtype
    with jax.enable_x64(True):
        stats = jit_call(jsl.overlap_stats, np.asarray(data["logits"], np.float64), data["labels"])
        assert stats.tp.dtype == jnp.float64
        _assert_stats(stats, ref.stats(data["logits"], data["labels"]), rtol=1e-12, atol=1e-12)
