"""Lovász-Softmax and Lovász hinge against a NumPy port of Berman et al. 2018, Algorithm 1
(tests/references/lovasz.py).

The reference removes ignored and masked pixels by boolean indexing, exactly as the paper's
released code does; the library keeps every pixel and must agree with it under ``jax.jit``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

import jaxseg_losses as jsl
from jaxseg_losses.losses import lovasz
from tests.helpers import IGNORE, assert_close, one_hot, softmax
from tests.references.lovasz import np_lovasz_grad, ref_hinge_loss, ref_softmax_loss

# One compiled function per shape and option set, shared by every test: eager calls would compile
# each primitive separately, and lambdas would recompile identical configurations.
softmax_loss = jax.jit(
    jsl.lovasz_softmax_loss,
    static_argnames=(
        "activation",
        "class_axis",
        "classes",
        "ignore_index",
        "aggregate",
        "axis_name",
        "reduction",
    ),
)
hinge_loss = jax.jit(
    jsl.lovasz_hinge_loss, static_argnames=("class_axis", "ignore_index", "aggregate", "reduction")
)
softmax_value_and_grad = jax.jit(
    jax.value_and_grad(jsl.lovasz_softmax_loss),
    static_argnames=("classes", "ignore_index", "aggregate"),
)
hinge_value_and_grad = jax.jit(
    jax.value_and_grad(jsl.lovasz_hinge_loss), static_argnames=("ignore_index", "aggregate")
)


def make_case(spatial=(6, 5), num_classes=4, batch=3, seed=0, absent=(2,)):
    """Logits, labels with ignored pixels and an absent class; the last sample fully ignored."""
    rng = np.random.default_rng(seed)
    logits = (2.0 * rng.normal(size=(batch, *spatial, num_classes))).astype(np.float32)
    choices = [c for c in range(num_classes) if c not in absent]
    labels = rng.choice(choices, size=(batch, *spatial)).astype(np.int32)
    labels = np.where(rng.random((batch, *spatial)) < 0.25, IGNORE, labels)
    labels[-1] = IGNORE
    return logits, labels


def split_labels(labels, num_classes):
    keep = labels != IGNORE
    return one_hot(np.where(keep, labels, 0), num_classes), keep


# ----------------------------------------------------------------------------------------------
# Values against the reference.


@pytest.mark.parametrize("aggregate", ["sample", "batch"])
@pytest.mark.parametrize("classes", ["present", "all", (0, 2, 3)])
@pytest.mark.parametrize("spatial", [(17,), (6, 5), (3, 4, 5)], ids=["1d", "2d", "3d"])
def test_softmax_matches_reference(spatial, classes, aggregate):
    logits, labels = make_case(spatial)
    foreground, keep = split_labels(labels, 4)
    loss = softmax_loss(logits, labels, classes=classes, ignore_index=IGNORE, aggregate=aggregate)
    assert loss.dtype == jnp.float32
    expected = ref_softmax_loss(
        softmax(logits), foreground, keep, classes=classes, aggregate=aggregate
    )
    assert_close(loss, expected)


@pytest.mark.parametrize("reduction", ["none", "sum"])
def test_softmax_reductions(reduction):
    logits, labels = make_case()
    foreground, keep = split_labels(labels, 4)
    loss = softmax_loss(logits, labels, ignore_index=IGNORE, reduction=reduction)
    expected = ref_softmax_loss(
        softmax(logits),
        foreground,
        keep,
        classes="present",
        aggregate="sample",
        reduction=reduction,
    )
    assert_close(loss, expected)
    if reduction == "none":
        assert loss.shape == (3,) and float(loss[-1]) == 0.0  # the fully ignored sample


def test_batch_sum_is_the_pooled_loss():
    logits, labels = make_case()
    pooled = softmax_loss(logits, labels, ignore_index=IGNORE, aggregate="batch")
    summed = softmax_loss(logits, labels, ignore_index=IGNORE, aggregate="batch", reduction="sum")
    assert_close(summed, float(pooled), rtol=0, atol=0)


def test_mask_float_bool_and_ignore_index_agree():
    logits, labels = make_case()
    keep = labels != IGNORE
    safe = np.where(keep, labels, 0)
    weights = np.where(keep, np.linspace(0.1, 3.0, keep.size).reshape(keep.shape), 0.0)
    by_bool = softmax_loss(logits, safe, mask=keep)
    by_float = softmax_loss(logits, safe, mask=weights.astype(np.float32))
    by_ignore = softmax_loss(logits, labels, ignore_index=IGNORE)
    assert_close(by_bool, float(by_ignore), rtol=0, atol=0)
    # Lovász counts pixels: positive float weights select, they do not scale.
    assert_close(by_float, float(by_ignore), rtol=0, atol=0)


def test_mask_and_ignore_index_combine():
    logits, labels = make_case(seed=3)
    rng = np.random.default_rng(4)
    mask = rng.random(labels.shape) < 0.7
    foreground, keep = split_labels(labels, 4)
    loss = softmax_loss(logits, labels, ignore_index=IGNORE, mask=mask)
    expected = ref_softmax_loss(
        softmax(logits), foreground, keep & mask, classes="present", aggregate="sample"
    )
    assert_close(loss, expected)


def test_dense_one_hot_targets_equal_integer_labels():
    logits, labels = make_case()
    foreground, keep = split_labels(labels, 4)
    dense = softmax_loss(logits, foreground.astype(np.float32), mask=keep, classes="all")
    indices = softmax_loss(logits, np.where(keep, labels, 0), mask=keep, classes="all")
    assert_close(dense, float(indices), rtol=1e-6, atol=1e-7)


def test_class_axis_one_equals_channels_last():
    logits, labels = make_case((6, 5))
    nchw = np.moveaxis(logits, -1, 1)
    last = softmax_loss(logits, labels, ignore_index=IGNORE, reduction="none")
    first = softmax_loss(nchw, labels, class_axis=1, ignore_index=IGNORE, reduction="none")
    assert_close(first, np.asarray(last), rtol=0, atol=0)


@pytest.mark.parametrize("classes", ["present", "all"])
def test_sigmoid_binary_matches_reference(classes):
    rng = np.random.default_rng(5)
    logits = (2.0 * rng.normal(size=(3, 7, 6, 1))).astype(np.float32)
    labels = (rng.random((3, 7, 6)) < 0.3).astype(np.int32)
    labels[1] = 0  # an image without foreground: skipped by "present", costed by "all"
    labels = np.where(rng.random(labels.shape) < 0.2, IGNORE, labels)
    keep = labels != IGNORE
    foreground = (labels == 1)[..., None].astype(np.float64)
    probs = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    loss = softmax_loss(
        logits,
        labels,
        activation="sigmoid",
        classes=classes,
        ignore_index=IGNORE,
        reduction="none",
    )
    expected = ref_softmax_loss(
        probs, foreground, keep, classes=classes, aggregate="sample", reduction="none"
    )
    assert_close(loss, expected)
    assert (float(loss[1]) == 0.0) == (classes == "present")


def test_sigmoid_multilabel_dense_targets():
    rng = np.random.default_rng(6)
    logits = rng.normal(size=(2, 5, 6, 3)).astype(np.float32)
    targets = (rng.random((2, 5, 6, 3)) < 0.4).astype(np.float32)
    mask = rng.random((2, 5, 6)) < 0.8
    probs = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    loss = softmax_loss(
        logits, targets, activation="sigmoid", classes="all", mask=mask, aggregate="batch"
    )
    expected = ref_softmax_loss(probs, targets, mask, classes="all", aggregate="batch")
    assert_close(loss, expected)


def test_ties_and_zero_error_pixels_tied_with_ignored_ones():
    # Quantised probabilities make many errors equal, and p == target gives valid pixels with
    # zero error, tied with the ignored pixels (whose error is zero too).
    rng = np.random.default_rng(7)
    fg_labels = rng.integers(0, 3, size=(2, 40))
    probs = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], size=(2, 40, 3)).astype(np.float32)
    exact = rng.random((2, 40)) < 0.3
    probs = np.where(exact[..., None], one_hot(fg_labels, 3), probs).astype(np.float32)
    labels = np.where(rng.random((2, 40)) < 0.3, IGNORE, fg_labels).astype(np.int32)
    foreground, keep = split_labels(labels, 3)
    for aggregate in ("sample", "batch"):
        options = dict(activation=None, classes="all", ignore_index=IGNORE, aggregate=aggregate)
        expected = ref_softmax_loss(
            probs.astype(np.float64), foreground, keep, classes="all", aggregate=aggregate
        )
        assert_close(softmax_loss(probs, labels, **options), expected)
        # The Lovász extension does not depend on how ties are broken: reversing the pixel
        # order (which reverses the stable order of tied errors) gives the same value.
        assert_close(softmax_loss(probs[:, ::-1], labels[:, ::-1], **options), expected)


def test_ignored_pixels_sort_strictly_after_zero_error_valid_pixels():
    # Row: valid errors [0.5, 0, 0.25, 0] (foreground [1, 0, 0, 1]) interleaved with ignored
    # pixels. The gradient with respect to the errors must be the reference increments of the
    # valid pixels alone, the zero-error ones included, and exactly zero for ignored pixels.
    errors = jnp.array([[0.0, 0.5, 0.0, 0.0, 0.0, 0.25, 0.0, 0.0]])
    valid = jnp.array([[False, True, False, True, False, True, True, False]])
    foreground = jnp.array([[0, 1, 0, 0, 0, 0, 1, 0]], jnp.int32)

    def row_loss(e):
        loss, _ = lovasz._lovasz_rows(e, foreground, valid, hinge=False)
        return loss[0]

    value, grad = jax.jit(jax.value_and_grad(row_loss))(errors)
    grad = np.asarray(grad)[0]
    kept = np.flatnonzero(np.asarray(valid[0]))
    kept_errors = np.asarray(errors[0])[kept]
    order = np.argsort(-kept_errors, kind="stable")
    increments = np_lovasz_grad(np.asarray(foreground[0])[kept][order])
    expected = np.zeros(8)
    expected[kept[order]] = increments
    assert_close(grad, expected, rtol=1e-6, atol=1e-7)
    assert float(value) == pytest.approx(kept_errors[order] @ increments)


@pytest.mark.parametrize("classes", ["all", "present"])
def test_gradient_is_the_lovasz_gradient(classes):
    # With activation=None, d loss / d p_ic = g_c[rank of i] * sign(p_ic - y_ic) / (B * K).
    rng = np.random.default_rng(8)
    batch, pixels, num_classes = 2, 30, 3
    probs = rng.uniform(0.02, 0.98, size=(batch, pixels, num_classes)).astype(np.float32)
    labels = rng.choice([0, 2], size=(batch, pixels)).astype(np.int32)  # class 1 absent
    labels = np.where(rng.random(labels.shape) < 0.2, IGNORE, labels)
    foreground, keep = split_labels(labels, num_classes)
    grad = jax.jit(
        jax.grad(
            lambda p: jsl.lovasz_softmax_loss(
                p, labels, activation=None, classes=classes, ignore_index=IGNORE
            )
        )
    )(probs)
    expected = np.zeros((batch, pixels, num_classes))
    for b in range(batch):
        kept = np.flatnonzero(keep[b])
        present = [c for c in range(num_classes) if foreground[b, kept, c].sum() > 0]
        used = present if classes == "present" else range(num_classes)
        for c in used:
            fg = foreground[b, kept, c]
            diff = probs[b, kept, c].astype(np.float64) - fg
            order = np.argsort(-np.abs(diff), kind="stable")
            expected[b, kept[order], c] = (
                np_lovasz_grad(fg[order]) * np.sign(diff[order]) / (batch * len(used))
            )
    assert_close(grad, expected, rtol=1e-5, atol=1e-8)


def test_increments_keep_float32_precision_on_large_rows():
    # 2**17 pixels: late increments are ~1e-11, far below the float32 spacing of 1 - I/U near 1,
    # so differencing in float32 would lose them; the closed form keeps them.
    rng = np.random.default_rng(9)
    pixels = 2**17
    probs = rng.uniform(0.0, 1.0, size=(1, pixels, 2)).astype(np.float32)
    labels = (rng.random((1, pixels)) < 0.3).astype(np.int32)
    grad = jax.jit(
        jax.grad(lambda p: jsl.lovasz_softmax_loss(p, labels, activation=None, classes=[1]))
    )(probs)
    fg = (labels[0] == 1).astype(np.float64)
    diff = probs[0, :, 1].astype(np.float64) - fg
    order = np.argsort(-np.abs(diff), kind="stable")
    expected = np.zeros(pixels)
    expected[order] = np_lovasz_grad(fg[order]) * np.sign(diff[order])
    got = np.asarray(grad)[0, :, 1]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-14)
    assert np.all(np.asarray(grad)[0, :, 0] == 0.0)


# ----------------------------------------------------------------------------------------------
# Lovász hinge.


@pytest.mark.parametrize("aggregate", ["sample", "batch"])
@pytest.mark.parametrize("spatial", [(23,), (6, 7), (3, 4, 5)], ids=["1d", "2d", "3d"])
def test_hinge_matches_reference(spatial, aggregate):
    rng = np.random.default_rng(10)
    logits = (2.0 * rng.normal(size=(3, *spatial, 1))).astype(np.float32)
    labels = (rng.random((3, *spatial)) < 0.4).astype(np.int32)
    labels[0] = 0  # no foreground: the loss is the largest false-positive margin
    labels = np.where(rng.random(labels.shape) < 0.2, IGNORE, labels)
    labels[-1] = IGNORE
    keep = labels != IGNORE
    foreground = (labels == 1)[..., None]
    loss = hinge_loss(logits, labels, ignore_index=IGNORE, aggregate=aggregate)
    assert loss.dtype == jnp.float32
    assert_close(loss, ref_hinge_loss(logits, foreground, keep, aggregate=aggregate))


def test_hinge_no_foreground_is_largest_margin():
    logits = np.array([[[0.5], [-2.0], [1.5]]], np.float32)
    loss = hinge_loss(logits, np.zeros((1, 3), np.int32))
    assert float(loss) == pytest.approx(2.5)  # 1 + 1.5


def test_hinge_multilabel_dense_targets_and_nchw():
    rng = np.random.default_rng(11)
    logits = rng.normal(size=(2, 3, 5, 6)).astype(np.float32)  # NCHW
    targets = (rng.random((2, 3, 5, 6)) < 0.5).astype(np.float32)
    mask = rng.random((2, 5, 6)) < 0.8
    loss = hinge_loss(logits, targets, class_axis=1, mask=mask, reduction="none")
    expected = ref_hinge_loss(
        np.moveaxis(logits, 1, -1),
        np.moveaxis(targets, 1, -1),
        mask,
        aggregate="sample",
        reduction="none",
    )
    assert_close(loss, expected)


# ----------------------------------------------------------------------------------------------
# Properties.


def test_perfect_prediction_is_zero():
    labels = np.array([[0, 1, 2, 1], [2, 2, 0, IGNORE]], np.int32)
    probs = one_hot(np.where(labels == IGNORE, 0, labels), 3).astype(np.float32)
    for aggregate in ("sample", "batch"):
        loss = softmax_loss(
            probs,
            labels,
            activation=None,
            classes="all",
            ignore_index=IGNORE,
            aggregate=aggregate,
        )
        assert float(loss) == 0.0
    binary = np.array([[1, 0, 0, 1], [0, 0, 1, IGNORE]], np.int32)
    margins = np.where(binary == 1, 1.0, -1.0)[..., None].astype(np.float32)
    assert float(hinge_loss(margins, binary, ignore_index=IGNORE)) == 0.0


@pytest.mark.parametrize("aggregate", ["sample", "batch"])
def test_fully_masked_is_zero_without_nan(aggregate):
    logits, labels = make_case(seed=12)
    mask = np.zeros(labels.shape, bool)
    for classes in ("present", "all"):
        value, grad = softmax_value_and_grad(
            logits, labels, classes=classes, mask=mask, aggregate=aggregate
        )
        assert float(value) == 0.0
        assert np.all(np.asarray(grad) == 0.0)
    binary = np.zeros(labels.shape, np.int32)
    value, grad = hinge_value_and_grad(logits[..., :1], binary, mask=mask, aggregate=aggregate)
    assert float(value) == 0.0
    assert np.all(np.asarray(grad) == 0.0)


@pytest.mark.parametrize("scale", [1e4, -1e4, 100.0])
def test_finite_gradients_at_extreme_logits(scale):
    logits, labels = make_case(seed=13)
    saturated = (scale * np.sign(logits)).astype(np.float32)
    binary = np.where(labels == IGNORE, IGNORE, labels % 2)
    for aggregate in ("sample", "batch"):
        value, grad = softmax_value_and_grad(
            saturated, labels, ignore_index=IGNORE, aggregate=aggregate
        )
        assert np.isfinite(float(value)) and np.all(np.isfinite(np.asarray(grad)))
        value, grad = hinge_value_and_grad(
            saturated[..., :1], binary, ignore_index=IGNORE, aggregate=aggregate
        )
        assert np.isfinite(float(value)) and np.all(np.isfinite(np.asarray(grad)))
        assert float(value) >= 0.0


def test_bfloat16_agrees_with_float32():
    logits, labels = make_case(seed=14)
    low = jnp.asarray(logits, jnp.bfloat16)
    from_bf16 = softmax_loss(low, labels, ignore_index=IGNORE)
    assert from_bf16.dtype == jnp.float32
    # Same values upcast: the computation itself runs in float32.
    upcast = softmax_loss(low.astype(jnp.float32), labels, ignore_index=IGNORE)
    assert_close(from_bf16, float(upcast), rtol=1e-6, atol=1e-7)
    assert_close(
        from_bf16, float(softmax_loss(logits, labels, ignore_index=IGNORE)), rtol=2e-2, atol=2e-3
    )
    binary = np.where(labels == IGNORE, IGNORE, labels % 2)
    hinge_bf16 = hinge_loss(low[..., :1], binary, ignore_index=IGNORE)
    assert hinge_bf16.dtype == jnp.float32
    hinge_f32 = hinge_loss(logits[..., :1], binary, ignore_index=IGNORE)
    assert_close(hinge_bf16, float(hinge_f32), rtol=2e-2, atol=2e-3)


def test_float64_stays_float64_under_x64():
    logits, labels = make_case(seed=17)
    foreground, keep = split_labels(labels, 4)
    with jax.enable_x64(True):
        loss = jax.jit(lambda x, y: jsl.lovasz_softmax_loss(x, y, ignore_index=IGNORE))(
            logits.astype(np.float64), labels
        )
        assert loss.dtype == jnp.float64
    expected = ref_softmax_loss(
        softmax(logits.astype(np.float64)),
        foreground,
        keep,
        classes="present",
        aggregate="sample",
    )
    assert_close(loss, expected, rtol=1e-12, atol=1e-14)


def test_vmap_of_per_sample_equals_reduction_none():
    logits, labels = make_case(seed=15)
    mask = np.random.default_rng(15).random(labels.shape) < 0.9
    batched = softmax_loss(
        logits, labels, ignore_index=IGNORE, mask=mask, classes="all", reduction="none"
    )
    mapped = jax.jit(
        jax.vmap(
            lambda x, y, m: jsl.per_sample.lovasz_softmax_loss(
                x, y, ignore_index=IGNORE, mask=m, classes="all"
            )
        )
    )(logits, labels, mask)
    assert_close(mapped, np.asarray(batched), rtol=1e-6, atol=1e-7)
    binary = np.where(labels == IGNORE, IGNORE, labels % 2)
    batched = hinge_loss(logits[..., :1], binary, ignore_index=IGNORE, reduction="none")
    mapped = jax.jit(
        jax.vmap(lambda x, y: jsl.per_sample.lovasz_hinge_loss(x, y, ignore_index=IGNORE))
    )(logits[..., :1], binary)
    assert_close(mapped, np.asarray(batched), rtol=1e-6, atol=1e-7)


def test_axis_name_means_over_the_mapped_axis():
    # vmap with an axis name stands in for shard_map: two "devices" of two samples each.
    logits, labels = make_case(batch=4, seed=16)
    binary = np.where(labels == IGNORE, IGNORE, labels % 2)
    split = [x.reshape(2, 2, *x.shape[1:]) for x in (logits, labels, binary)]

    def per_device(x, y, b):
        return (
            jsl.lovasz_softmax_loss(x, y, ignore_index=IGNORE, axis_name="d"),
            jsl.lovasz_hinge_loss(x[..., :1], b, ignore_index=IGNORE, axis_name="d"),
        )

    softmax, hinge = jax.jit(jax.vmap(per_device, axis_name="d"))(*split)
    expected_softmax = softmax_loss(logits, labels, ignore_index=IGNORE)
    expected_hinge = hinge_loss(logits[..., :1], binary, ignore_index=IGNORE)
    assert_close(softmax, np.full(2, float(expected_softmax)), rtol=1e-6, atol=1e-7)
    assert_close(hinge, np.full(2, float(expected_hinge)), rtol=1e-6, atol=1e-7)


def test_per_sample_rejects_batch_options():
    with pytest.raises(TypeError, match="aggregate"):
        jsl.per_sample.lovasz_softmax_loss(
            np.zeros((4, 3), np.float32), [0, 1, 2, 0], aggregate="batch"
        )


# ----------------------------------------------------------------------------------------------
# Errors.


@pytest.mark.parametrize(
    ("classes", "error", "match"),
    [
        ("some", ValueError, "'present', 'all' or a list"),
        ([0, 5], ValueError, "out of range for 4 classes"),
        ([], ValueError, "at least one class"),
        ([1, 1], ValueError, "must not repeat"),
        ([0.5], TypeError, "Python ints"),
        (2, TypeError, "list or tuple"),
    ],
)
def test_bad_classes_raise(classes, error, match):
    logits, labels = make_case()
    with pytest.raises(error, match=match):
        jax.jit(lambda x, y: jsl.lovasz_softmax_loss(x, y, classes=classes))(logits, labels)


def test_bad_inputs_raise():
    logits, labels = make_case()
    with pytest.raises(ValueError, match="aggregate='batch'"):
        softmax_loss(logits, labels, aggregate="batch", reduction="none")
    with pytest.raises(ValueError, match="cannot be pooled"):
        softmax_loss(logits, labels, aggregate="batch", axis_name="d")
    with pytest.raises(ValueError, match="`aggregate`"):
        hinge_loss(logits[..., :1], labels, aggregate="image")
    with pytest.raises(ValueError, match="`labels` must have shape"):
        softmax_loss(logits, labels[:, :-1])
    with pytest.raises(ValueError, match="at least 2 classes"):
        softmax_loss(logits[..., :1], labels)
    with pytest.raises(TypeError, match="floating dtype"):
        softmax_loss(labels, labels)
    with pytest.raises(ValueError, match=r"a binary loss .* needs logits with 1 channel"):
        hinge_loss(logits, labels)
    with pytest.raises(ValueError, match="`ignore_index` applies to integer labels"):
        hinge_loss(logits[..., :1], logits[..., :1], ignore_index=IGNORE)


def test_checked_mode_rejects_soft_dense_targets():
    logits = np.zeros((1, 4, 2), np.float32)
    soft = np.full((1, 4, 2), 0.5, np.float32)
    with pytest.raises(checkify.JaxRuntimeError, match="must be 0 or 1"):
        # Jitted inside `checked`: one compilation instead of op-by-op execution.
        jsl.checked(jax.jit(jsl.lovasz_softmax_loss))(logits, soft)
