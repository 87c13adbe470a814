"""The fused kernels: values against NumPy, custom derivatives against autodiff and finite
differences, in forward and reverse mode; residual memory; NaN weights stay loud."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jaxseg_losses as jsl
from jaxseg_losses._core import fused as _fused
from tests.helpers import assert_close, sigmoid, softmax


@pytest.fixture
def strategy(request, monkeypatch):
    """The way the kernels pick a label's entry: the CPU's "segments" or the GPU's "select"."""
    monkeypatch.setattr(_fused, "STRATEGY", request.param)
    return request.param


# Each test that reads a label's entry runs with both strategies; the log-sum-exp alone and the
# forms without integer labels for the kernel (one channel) do not read one.
BOTH_STRATEGIES = pytest.mark.parametrize("strategy", ["segments", "select"], indirect=True)


def make_inputs(seed, *, batch=2, pixels=9, num_classes=4, dtype=np.float64):
    rng = np.random.default_rng(seed)
    logits = (2.0 * rng.standard_normal((batch, pixels, num_classes))).astype(dtype)
    labels = rng.integers(0, max(num_classes, 2), (batch, pixels)).astype(np.int32)
    weights = rng.uniform(0.0, 1.0, (batch, pixels)).astype(dtype)
    weights[0, :2] = 0.0  # ignored pixels
    return logits, labels, weights


def numpy_probabilities(logits, activation):
    if activation == "softmax":
        return softmax(logits)
    if activation == "sigmoid":
        return sigmoid(logits)
    return np.asarray(logits, np.float64)


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


def numpy_squared_sums(logits, weights, activation):
    """Σ w p² per sample and class, straight from the docstring equation."""
    probs = numpy_probabilities(logits, activation)
    return (np.asarray(weights, np.float64)[..., None] * probs**2).sum(1)


def numpy_label_statistics(logits, labels, weights):
    """lse, the label's logit and TP, Σp, Σg, Σp², straight from the docstring equations."""
    x = np.asarray(logits, np.float64)
    m = x.max(-1, keepdims=True)
    lse = m + np.log(np.exp(x - m).sum(-1, keepdims=True))
    x_label = np.take_along_axis(x, labels[..., None], -1)
    sums = numpy_sums(logits, labels, weights, "softmax")
    return (lse, x_label, *sums, numpy_squared_sums(logits, weights, "softmax"))


def plain_statistics(x, labels, w):
    """The same six outputs with a one-hot array and JAX autodiff: the unfused formula."""
    lse = jax.nn.logsumexp(x, axis=-1, keepdims=True)
    x_label = jnp.take_along_axis(x, labels[..., None], -1)
    pred_sq = jnp.sum(w[..., None] * jax.nn.softmax(x, axis=-1) ** 2, 1)
    return (lse, x_label, *plain_sums(x, labels, w, "softmax"), pred_sq)


def scalar_of_statistics(statistics_fn):
    """A nonlinear scalar of all six outputs, so every cotangent is non-trivial."""

    def loss(x, w):
        lse, x_label, tp, pred_sum, target_sum, pred_sq = statistics_fn(x, w)
        scale = jnp.arange(1.0, tp.shape[-1] + 1.0, dtype=tp.dtype)
        return (
            jnp.sum(jnp.sin(tp) * scale[None])
            + jnp.sum(pred_sum**2)
            + jnp.sum(target_sum * tp)
            + jnp.sum(jnp.cos(lse - 0.5 * x_label))
            + jnp.sum(jnp.sin(pred_sq * scale[None]) * pred_sum)
        )

    return loss


@BOTH_STRATEGIES
def test_label_statistics_match_numpy(strategy):
    logits, labels, weights = make_inputs(0)
    with jax.enable_x64(True):
        got = jax.jit(_fused.label_statistics)(logits, labels, weights)
    want = numpy_label_statistics(logits, labels, weights)
    for actual, expected in zip(got, want, strict=True):
        np.testing.assert_allclose(np.asarray(actual), expected, rtol=1e-12, atol=1e-12)


def derivatives(fn, tangents):
    """Value, gradient and forward-mode tangent with respect to every argument of a scalar
    ``fn(x, w)`` or ``fn(x)``, and its Hessian with respect to the logits ``x`` in three modes
    (forward over reverse, reverse over reverse, forward over forward)."""

    def all_of(*args):
        argnums = tuple(range(len(args)))
        return {
            "value": fn(*args),
            "grad": jax.grad(fn, argnums)(*args),
            "jvp": jax.jvp(fn, args, tangents)[1],
            "hessian": jax.jacfwd(jax.jacrev(fn))(*args),
            "hessian_rev_rev": jax.jacrev(jax.jacrev(fn))(*args),
            "hessian_fwd_fwd": jax.jacfwd(jax.jacfwd(fn))(*args),
        }

    return all_of


def assert_derivatives_equal(fused, plain, args, tangents):
    """The fused kernel's custom rules equal autodiff of the plain formula, in one program."""
    got, want = jax.jit(
        lambda *a: (derivatives(fused, tangents)(*a), derivatives(plain, tangents)(*a))
    )(*args)
    assert_close(got["value"], want["value"], rtol=1e-12, atol=0)
    for key in ("grad", "jvp"):
        assert_close(got[key], want[key], rtol=1e-10, atol=1e-12, err_msg=key)
    for key in ("hessian", "hessian_rev_rev", "hessian_fwd_fwd"):
        assert_close(got[key], want[key], rtol=1e-8, atol=1e-10, err_msg=key)


@BOTH_STRATEGIES
def test_label_statistics_derivatives_match_autodiff_of_plain_formula(strategy):
    logits, labels, weights = make_inputs(1)
    fused = scalar_of_statistics(lambda x, w: _fused.label_statistics(x, labels, w))
    plain = scalar_of_statistics(lambda x, w: plain_statistics(x, labels, w))
    with jax.enable_x64(True):
        x, w = jnp.asarray(logits), jnp.asarray(weights)
        assert_derivatives_equal(fused, plain, (x, w), (0.3 * jnp.cos(x), 0.1 * jnp.sin(w)))


def test_label_statistics_derivatives_match_finite_differences():
    """Against finite differences, with the CPU's strategy; the other strategy's rules equal
    these in every mode up to second order (the autodiff test above)."""
    logits, labels, weights = make_inputs(2)
    # Mask weights are non-negative (the kernel reads log w): difference away from 0.
    weights = 0.5 + weights
    fused = scalar_of_statistics(lambda x, w: _fused.label_statistics(x, labels, w))
    with jax.enable_x64(True):
        # Jitted: the differences evaluate one compiled program each, not op by op.
        check_grads(
            jax.jit(fused),
            (jnp.asarray(logits), jnp.asarray(weights)),
            order=2,
            modes=("fwd", "rev"),
        )


@BOTH_STRATEGIES
def test_log_sum_exp_and_label_kernel_matches_autodiff(strategy):
    """Without the per-class sums (cross-entropy alone): lse and the label's logit."""
    logits, labels, weights = make_inputs(7)

    def fused(x):
        s = _fused.label_statistics(x, labels, weights, class_sums=False)
        assert s.tp is None and s.pred_sum is None and s.pred_sq is None
        return jnp.sum(jnp.cos(s.lse - 0.5 * s.label_logit))

    def plain(x):
        lse = jax.nn.logsumexp(x, axis=-1, keepdims=True)
        return jnp.sum(jnp.cos(lse - 0.5 * jnp.take_along_axis(x, labels[..., None], -1)))

    with jax.enable_x64(True):
        x = jnp.asarray(logits)
        assert_derivatives_equal(fused, plain, (x,), (0.3 * jnp.cos(x),))
        check_grads(jax.jit(fused), (x,), order=2, modes=("fwd", "rev"))


def _primitives(fn, *args):
    names = set()

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            names.add(eqn.primitive.name)
            for value in eqn.params.values():
                for sub in value if isinstance(value, tuple | list) else (value,):
                    inner = getattr(sub, "jaxpr", sub)
                    if hasattr(inner, "eqns"):
                        walk(inner)

    walk(jax.make_jaxpr(fn)(*args).jaxpr)
    return names


@BOTH_STRATEGIES
def test_the_losses_of_a_call_decide_which_kernel_runs(strategy):
    """Cross-entropy alone needs no per-class sums: its gradient has no scatter of the label's
    entries; with Dice in the same call one kernel serves both (its sums are segment sums)."""
    logits, labels, _ = make_inputs(8, dtype=np.float32)
    ce = jax.grad(lambda x: jsl.cross_entropy_loss(x, labels))
    both = jax.grad(lambda x: jsl.combine("ce+dice")(x, labels)[0])
    assert "scatter-add" not in _primitives(ce, logits)
    if _fused.strategy() == "segments":
        assert "scatter-add" in _primitives(both, logits)


@BOTH_STRATEGIES
def test_unused_outputs_cost_nothing(strategy):
    """Cross-entropy reads only the log-sum-exp and the label's logit: the compiled program has
    no per-class column sums, as if the kernel computed nothing else."""
    logits, labels, weights = make_inputs(3, num_classes=5, dtype=np.float32)

    def nll(x):
        s = _fused.label_statistics(x, labels, weights)
        return jnp.sum(weights * (s.lse - s.label_logit)[..., 0])

    hlo = jax.jit(jax.value_and_grad(nll)).lower(logits).compile().as_text()
    assert "f32[2,5]" not in hlo  # no [B, C] sum was left in the program


@BOTH_STRATEGIES
def test_nan_weight_makes_every_output_and_gradient_loud(strategy):
    logits, labels, weights = make_inputs(4, dtype=np.float32)
    weights[1, 4] = np.nan
    fused = scalar_of_statistics(lambda x, w: _fused.label_statistics(x, labels, w))
    s, grad = jax.jit(lambda x, w: (_fused.label_statistics(x, labels, w), jax.grad(fused)(x, w)))(
        logits, weights
    )
    assert np.isnan(s.pred_sum[1]).all() and np.isfinite(s.pred_sum[0]).all()
    assert np.isnan(s.pred_sq[1]).all() and np.isfinite(s.pred_sq[0]).all()
    assert np.isfinite(s.lse).all()  # the per-pixel outputs do not read the weights
    assert np.isnan(grad).any()


def test_log_sum_exp_matches_numpy_and_autodiff():
    """The log-sum-exp alone reads no label: one strategy."""
    logits, _, _ = make_inputs(5, num_classes=5)
    with jax.enable_x64(True):
        x = jnp.asarray(logits)
        got = jax.jit(_fused.log_sum_exp)(x)
        np.testing.assert_allclose(got, numpy_label_statistics(logits, *make_inputs(5)[1:])[0])

        def fused(x):
            return jnp.sum(jnp.cos(_fused.log_sum_exp(x)))

        def plain(x):
            return jnp.sum(jnp.cos(jax.nn.logsumexp(x, axis=-1, keepdims=True)))

        assert_derivatives_equal(fused, plain, (x,), (0.3 * jnp.cos(x),))
        check_grads(jax.jit(fused), (x,), order=2, modes=("fwd", "rev"))


# (activation, classes, strategy): the integer-label forms read a label's entry, with both
# strategies; one channel compares with the label, with the backend's own (None).
FORMS = [
    ("softmax", 4, "segments"),
    ("softmax", 4, "select"),
    (None, 4, "segments"),
    (None, 4, "select"),
    ("sigmoid", 1, None),
    (None, 1, None),
]


@pytest.mark.parametrize(("activation", "num_classes", "strategy"), FORMS, indirect=["strategy"])
def test_shared_overlap_sums_of_every_form_match_numpy_and_autodiff(
    activation, num_classes, strategy
):
    """The overlap sums the losses read (fused for softmax, plain JAX otherwise)."""
    logits, labels, weights = make_inputs(6, num_classes=num_classes)
    if activation is None:
        logits = numpy_probabilities(logits, "sigmoid")  # probabilities in (0, 1)

    def fused(x, w):
        return jsl.Inputs.prepare(x, labels, activation=activation, mask=w).overlap_sums()

    with jax.enable_x64(True):
        got = jax.jit(fused)(logits, weights)
        want = numpy_sums(logits, labels, weights, activation)
        for actual, expected in zip(got, want, strict=True):
            np.testing.assert_allclose(np.asarray(actual), expected, rtol=1e-12, atol=1e-12)
        x, w = jnp.asarray(logits), jnp.asarray(weights)
        plain = scalar_of_sums(lambda x, w: plain_sums(x, labels, w, activation))
        got, want = jax.jit(
            lambda x, w: (
                jax.grad(scalar_of_sums(fused), argnums=(0, 1))(x, w),
                jax.grad(plain, argnums=(0, 1))(x, w),
            )
        )(x, w)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-10, atol=1e-12)
        # A pixel of weight 0 is not read (its logits are inert); the derivative with respect
        # to its weight is taken where the weight is positive.
        kept = weights > 0
        np.testing.assert_allclose(got[1][kept], want[1][kept], rtol=1e-10, atol=1e-12)


def test_reverse_mode_keeps_no_class_wide_residual(monkeypatch):
    """The backward pass recomputes the probabilities: the compiled fwd+bwd program of CE, of
    Dice (with either denominator) and of CE + Dice combined, on float32 logits, needs less
    temporary memory than one copy of the logits (autodiff of the one-hot formula needs several),
    with the strategy the backend picks for itself."""
    monkeypatch.setattr(_fused, "STRATEGY", None)
    shape = (2, 64 * 64, 21)
    logits = jnp.zeros(shape, jnp.float32)
    labels = jnp.zeros(shape[:2], jnp.int32)

    losses = {
        "ce": functools.partial(jsl.cross_entropy_loss, ignore_index=255),
        "dice": functools.partial(jsl.dice_loss, ignore_index=255),
        "squared dice": functools.partial(jsl.dice_loss, ignore_index=255, squared_pred=True),
        "ce+dice": lambda x, y: jsl.combine("ce+dice", ignore_index=255)(x, y)[0],
    }
    float32_bytes = int(np.prod(shape)) * 4
    for name, loss in losses.items():
        compiled = jax.jit(jax.value_and_grad(loss)).lower(logits, labels).compile()
        analysis = compiled.memory_analysis()
        if analysis is None:
            pytest.skip("this backend reports no memory analysis")
        assert analysis.temp_size_in_bytes < float32_bytes, name


@pytest.mark.parametrize(("activation", "num_classes", "strategy"), FORMS, indirect=["strategy"])
def test_shared_squared_sums_of_every_form_match_numpy_and_autodiff(
    activation, num_classes, strategy
):
    """Σp² and Σg² (the squared Dice denominator): fused for softmax, plain JAX otherwise."""
    logits, labels, weights = make_inputs(9, num_classes=num_classes)
    if activation is None:
        logits = numpy_probabilities(logits, "sigmoid")

    def fused(x, w):
        return jsl.Inputs.prepare(x, labels, activation=activation, mask=w).squared_sums()

    def plain(x, w):
        _, _, target_sum = plain_sums(x, labels, w, activation)
        if activation == "softmax":
            p = jax.nn.softmax(x, axis=-1)
        else:
            p = jax.nn.sigmoid(x) if activation == "sigmoid" else x
        return jnp.sum(w[..., None] * p * p, 1), target_sum

    def scalar(sums_fn):
        def loss(x, w):
            pred_sq, target_sq = sums_fn(x, w)
            return jnp.sum(jnp.sin(pred_sq) * target_sq) + jnp.sum(pred_sq**2)

        return loss

    with jax.enable_x64(True):
        got = jax.jit(fused)(logits, weights)
        want = (
            numpy_squared_sums(logits, weights, activation),
            numpy_sums(logits, labels, weights, activation)[2],
        )
        for actual, expected in zip(got, want, strict=True):
            np.testing.assert_allclose(np.asarray(actual), expected, rtol=1e-12, atol=1e-12)
        x, w = jnp.asarray(logits), jnp.asarray(weights)
        grads = jax.jit(
            lambda x, w: (
                jax.grad(scalar(fused), argnums=(0, 1))(x, w),
                jax.grad(scalar(plain), argnums=(0, 1))(x, w),
            )
        )(x, w)
        np.testing.assert_allclose(grads[0][0], grads[1][0], rtol=1e-10, atol=1e-12)
        kept = weights > 0  # an excluded pixel's logits are not read (see the overlap test)
        np.testing.assert_allclose(grads[0][1][kept], grads[1][1][kept], rtol=1e-10, atol=1e-12)


def test_squared_dice_reads_the_fused_kernel():
    """dice_loss(squared_pred=True) on softmax logits with integer labels reads Σp² from the
    kernel that gives the overlap sums: no [B, P, C] probabilities are built (their memory is
    held by the residual test above, their value by the test before)."""
    logits, labels, weights = make_inputs(10, num_classes=5, dtype=np.float32)
    inputs = jsl.Inputs.prepare(logits, labels, mask=weights)
    definition = jsl.dice_loss.definition(squared_pred=True)
    inputs.plan(definition.sums)
    definition.sums(inputs)
    assert "label_statistics" in inputs._cache
    assert "probabilities" not in inputs._cache and "log_probabilities" not in inputs._cache
