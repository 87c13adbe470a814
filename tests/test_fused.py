"""The fused kernels: values against NumPy, custom derivatives against autodiff and finite
differences, in forward and reverse mode; residual memory; out-of-range labels."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jaxseg_losses as jsl
from jaxseg_losses import _fused


@pytest.fixture(autouse=True, params=["segments", "select"])
def strategy(request, monkeypatch):
    """Every kernel test runs with both ways of picking the label's entry (CPU's and GPU's)."""
    monkeypatch.setattr(_fused, "STRATEGY", request.param)
    return request.param


def make_inputs(seed, *, batch=2, pixels=9, num_classes=4, dtype=np.float64):
    rng = np.random.default_rng(seed)
    logits = (2.0 * rng.standard_normal((batch, pixels, num_classes))).astype(dtype)
    labels = rng.integers(0, max(num_classes, 2), (batch, pixels)).astype(np.int32)
    weights = rng.uniform(0.0, 1.0, (batch, pixels)).astype(dtype)
    weights[0, :2] = 0.0  # ignored pixels
    return logits, labels, weights


def numpy_probabilities(logits, activation):
    x = np.asarray(logits, np.float64)
    if activation == "softmax":
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)
    if activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    return x


def numpy_sums(logits, labels, weights, activation):
    """TP, Σp, Σg straight from the docstring equation, with a NumPy one-hot."""
    probs = numpy_probabilities(logits, activation)
    num_classes = probs.shape[-1]
    if num_classes == 1:
        targets = (labels == 1)[..., None].astype(np.float64)
    else:
        valid = (labels >= 0) & (labels < num_classes)
        targets = np.zeros(probs.shape)
        b, i = np.nonzero(valid)
        targets[b, i, labels[b, i]] = 1.0
    w = np.asarray(weights, np.float64)[..., None]
    return (w * probs * targets).sum(1), (w * probs).sum(1), (w * targets).sum(1)


def plain_sums(logits, labels, weights, activation):
    """The same sums with a one-hot array and JAX autodiff: the unfused formula."""
    x = logits
    if activation == "softmax":
        probs = jax.nn.softmax(x, axis=-1)
    elif activation == "sigmoid":
        probs = jax.nn.sigmoid(x)
    else:
        probs = x
    num_classes = x.shape[-1]
    if num_classes == 1:
        targets = (labels == 1)[..., None].astype(x.dtype)
    else:
        targets = jax.nn.one_hot(labels, num_classes, dtype=x.dtype)
    w = weights[..., None]
    return jnp.sum(w * probs * targets, 1), jnp.sum(w * probs, 1), jnp.sum(w * targets, 1)


def scalar_of_sums(sums_fn):
    """A nonlinear scalar of all three sums, so every cotangent is non-trivial."""

    def loss(x, w):
        tp, pred_sum, target_sum = sums_fn(x, w)
        scale = jnp.arange(1.0, tp.shape[-1] + 1.0, dtype=tp.dtype)
        return jnp.sum(jnp.sin(tp) * scale[None]) + jnp.sum(pred_sum**2) + jnp.sum(target_sum * tp)

    return loss


FORMS = [("softmax", 4), ("sigmoid", 4), (None, 4), ("sigmoid", 1), (None, 1)]


def form_inputs(seed, activation, num_classes):
    logits, labels, weights = make_inputs(seed, num_classes=num_classes)
    if activation is None:
        logits = numpy_probabilities(logits, "sigmoid")  # probabilities in (0, 1)
    return logits, labels, weights


@pytest.mark.parametrize(("activation", "num_classes"), FORMS)
def test_overlap_sums_match_numpy(activation, num_classes):
    logits, labels, weights = form_inputs(0, activation, num_classes)
    fn = jax.jit(lambda x, y, w: _fused.label_overlap_sums(x, y, w, activation=activation))
    with jax.enable_x64(True):
        got = fn(logits, labels, weights)
    for actual, expected in zip(got, numpy_sums(logits, labels, weights, activation), strict=True):
        np.testing.assert_allclose(np.asarray(actual), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("activation", "num_classes"), FORMS)
def test_overlap_gradients_match_autodiff_of_plain_formula(activation, num_classes):
    logits, labels, weights = form_inputs(1, activation, num_classes)
    fused = scalar_of_sums(
        lambda x, w: _fused.label_overlap_sums(x, labels, w, activation=activation)
    )
    plain = scalar_of_sums(lambda x, w: plain_sums(x, labels, w, activation))
    with jax.enable_x64(True):
        x, w = jnp.asarray(logits), jnp.asarray(weights)
        np.testing.assert_allclose(jax.jit(fused)(x, w), plain(x, w), rtol=1e-12)
        got = jax.jit(jax.grad(fused, argnums=(0, 1)))(x, w)
        want = jax.grad(plain, argnums=(0, 1))(x, w)
        for actual, expected in zip(got, want, strict=True):
            np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-12)
        # Forward mode: the tangent rule itself.
        tangents = (0.3 * jnp.cos(x), 0.1 * jnp.sin(w))
        _, jvp_fused = jax.jit(lambda a, b: jax.jvp(fused, (a, b), tangents))(x, w)
        _, jvp_plain = jax.jvp(plain, (x, w), tangents)
        np.testing.assert_allclose(jvp_fused, jvp_plain, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("activation", "num_classes"), FORMS)
def test_overlap_derivatives_match_finite_differences(activation, num_classes):
    logits, labels, weights = form_inputs(2, activation, num_classes)
    fused = scalar_of_sums(
        lambda x, w: _fused.label_overlap_sums(x, labels, w, activation=activation)
    )
    with jax.enable_x64(True):
        check_grads(
            fused, (jnp.asarray(logits), jnp.asarray(weights)), order=2, modes=("fwd", "rev")
        )


def test_overlap_sums_out_of_range_labels_count_in_no_class():
    logits, labels, weights = make_inputs(3, num_classes=3)
    labels[0, 3], labels[1, 5], labels[1, 6] = 255, -1, 3
    fused = jax.jit(lambda x, w: _fused.label_overlap_sums(x, labels, w, activation="softmax"))
    with jax.enable_x64(True):
        got = fused(logits, weights)
        grads = jax.grad(scalar_of_sums(fused), argnums=(0, 1))(logits, weights)
    for actual, expected in zip(got, numpy_sums(logits, labels, weights, "softmax"), strict=True):
        np.testing.assert_allclose(np.asarray(actual), expected, rtol=1e-12, atol=1e-12)
    assert all(np.all(np.isfinite(g)) for g in grads)


def test_overlap_sums_bf16_input_computes_in_float32():
    logits, labels, weights = make_inputs(4, pixels=64, num_classes=5, dtype=np.float32)
    bf16 = jnp.asarray(logits, jnp.bfloat16)
    got = _fused.label_overlap_sums(bf16, labels, weights, activation="softmax")
    want = numpy_sums(np.asarray(bf16, np.float32), labels, weights, "softmax")
    for actual, expected in zip(got, want, strict=True):
        assert actual.dtype == jnp.float32
        np.testing.assert_allclose(np.asarray(actual), expected, rtol=1e-5, atol=1e-5)
    grad = jax.grad(
        scalar_of_sums(lambda x, w: _fused.label_overlap_sums(x, labels, w, activation="softmax")),
    )(bf16, jnp.asarray(weights))
    assert grad.dtype == jnp.bfloat16


def test_label_nll_matches_numpy_and_autodiff():
    logits, labels, _ = make_inputs(5, num_classes=5)
    with jax.enable_x64(True):
        got = jax.jit(_fused.label_nll)(logits, labels)
        log_p = np.log(numpy_probabilities(logits, "softmax"))
        want = -np.take_along_axis(log_p, labels[..., None], -1)[..., 0]
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12)

        def fused(x):
            return jnp.sum(jnp.cos(_fused.label_nll(x, labels)))

        def plain(x):
            picked = jnp.take_along_axis(jax.nn.log_softmax(x), labels[..., None], -1)[..., 0]
            return jnp.sum(jnp.cos(-picked))

        x = jnp.asarray(logits)
        np.testing.assert_allclose(jax.jit(jax.grad(fused))(x), jax.grad(plain)(x), rtol=1e-10)
        np.testing.assert_allclose(
            jax.jit(jax.hessian(fused))(x), jax.hessian(plain)(x), rtol=1e-8, atol=1e-12
        )
        check_grads(fused, (x,), order=2, modes=("fwd", "rev"))


def test_label_nll_out_of_range_label_is_nan():
    logits, labels, _ = make_inputs(6, num_classes=3, dtype=np.float32)
    labels[0, 0] = 255
    nll = _fused.label_nll(logits, labels)
    assert np.isnan(nll[0, 0]) and np.all(np.isfinite(nll[0, 1:]))


def test_reverse_mode_keeps_no_class_wide_residual(strategy, monkeypatch):
    """The backward pass recomputes the probabilities: the compiled fwd+bwd program of CE + Dice
    on float32 logits needs less temporary memory than one copy of the logits (autodiff of the
    one-hot formula needs several), with the strategy the backend picks for itself."""
    if strategy == "select":
        pytest.skip("memory is checked once, for the backend's own strategy")
    monkeypatch.setattr(_fused, "STRATEGY", None)
    shape = (2, 64 * 64, 21)
    logits = jnp.zeros(shape, jnp.float32)
    labels = jnp.zeros(shape[:2], jnp.int32)

    def loss(x, y):
        return jsl.cross_entropy_loss(x, y, ignore_index=255) + jsl.dice_loss(
            x, y, ignore_index=255
        )

    compiled = jax.jit(jax.value_and_grad(loss)).lower(logits, labels).compile()
    analysis = compiled.memory_analysis()
    if analysis is None:
        pytest.skip("this backend reports no memory analysis")
    float32_bytes = int(np.prod(shape)) * 4
    assert analysis.temp_size_in_bytes < float32_bytes
