"""Combining losses: totals and gradients equal the weighted sums of the terms, the terms share
their statistics (one log-sum-exp, no stored probabilities), options and errors."""

import functools

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

import jaxseg_losses as jsl
from tests.helpers import assert_close, random_batch

B, H, W, C = 2, 6, 5, 4


def make_data(seed, *, ignore=True):
    """Logits, labels (a quarter ignored, with ``ignore``) and a mask of the combine tests."""
    return random_batch(seed, (B, H, W), C, ignored=0.25 if ignore else 0.0)


SPECS = {
    "ce+dice": {"ce": (1.0, jsl.cross_entropy_loss), "dice": (1.0, jsl.dice_loss)},
    "focal+iou": {
        "focal": (0.7, functools.partial(jsl.focal_loss, gamma=1.5, alpha=0.25)),
        "iou": (0.3, functools.partial(jsl.iou_loss, log=True)),
    },
    "everything": {
        "ce": (1.0, functools.partial(jsl.cross_entropy_loss, label_smoothing=0.1)),
        "dice": (0.5, functools.partial(jsl.dice_loss, smooth=1e-5, include_background=False)),
        "tversky": (0.25, functools.partial(jsl.tversky_loss, alpha=0.3, beta=0.7)),
        "gdl": (0.25, jsl.generalized_dice_loss),
        "lovasz": (0.5, jsl.lovasz_softmax_loss),
        "custom": (2.0, lambda logits, labels, **kw: jsl.focal_loss(logits, labels, **kw)),
    },
}


SHARED = {
    "plain": {},
    "ignore": {"ignore_index": 255},
    "none": {"ignore_index": 255, "reduction": "none"},
    "nchw_sum": {"class_axis": 1, "ignore_index": 255, "reduction": "sum"},
}
COMBINATIONS = [
    ("ce+dice", "plain"),
    ("ce+dice", "ignore"),
    ("ce+dice", "none"),
    ("ce+dice", "nchw_sum"),
    ("focal+iou", "none"),
    ("everything", "ignore"),
    ("everything", "nchw_sum"),
]


@pytest.mark.parametrize(
    ("spec", "shared"), COMBINATIONS, ids=[f"{a}-{b}" for a, b in COMBINATIONS]
)
def test_total_and_gradient_equal_weighted_sum_of_terms(spec, shared):
    terms, shared = SPECS[spec], SHARED[shared]
    logits, labels, mask = make_data(1, ignore="ignore_index" in shared)
    if shared.get("class_axis") == 1:
        logits = np.moveaxis(logits, -1, 1)
    loss_fn = jsl.combine(terms, **shared)

    def separate(x, y, m):
        parts = {name: fn(x, y, mask=m, **shared) for name, (_, fn) in terms.items()}
        total = sum(weight * parts[name] for name, (weight, _) in terms.items())
        return total, parts

    def summed(fn):
        # Gradients of the summed loss also cover reduction="none".
        def wrapped(*args, **kwargs):
            total, parts = fn(*args, **kwargs)
            return jnp.sum(total), (total, parts)

        return wrapped

    @jax.jit
    def both(x, y, m):
        (_, combined), grad = jax.value_and_grad(summed(loss_fn), has_aux=True)(x, y, mask=m)
        (_, reference), ref_grad = jax.value_and_grad(summed(separate), has_aux=True)(x, y, m)
        return (combined, grad), (reference, ref_grad)

    ((total, parts), grad), ((ref_total, ref_parts), ref_grad) = both(logits, labels, mask)
    assert total.dtype == jnp.float32
    assert total.shape == ((B,) if shared.get("reduction") == "none" else ())
    assert set(parts) == set(terms)
    for name in terms:
        assert_close(parts[name], ref_parts[name])
    assert_close(total, ref_total)
    assert_close(grad, ref_grad, atol=1e-6)


def test_sigmoid_terms_share_the_options_too():
    r = np.random.default_rng(2)
    logits = r.standard_normal((B, H, W, 1)).astype(np.float32)
    labels = r.integers(0, 2, (B, H, W)).astype(np.int32)
    loss_fn = jax.jit(jsl.combine("ce+dice:0.5+focal", activation="sigmoid"))
    total, parts = loss_fn(logits, labels)
    assert_close(parts["ce"], jsl.cross_entropy_loss(logits, labels, activation="sigmoid"))
    assert_close(parts["dice"], jsl.dice_loss(logits, labels, activation="sigmoid"))
    assert_close(total, parts["ce"] + 0.5 * parts["dice"] + parts["focal"])


def test_lovasz_hinge_term_gets_no_activation():
    r = np.random.default_rng(15)
    logits = r.standard_normal((B, H, W, 1)).astype(np.float32)
    labels = r.integers(0, 2, (B, H, W)).astype(np.int32)
    total, parts = jax.jit(jsl.combine("ce+lovasz_hinge", activation="sigmoid"))(logits, labels)
    assert_close(parts["lovasz_hinge"], jsl.lovasz_hinge_loss(logits, labels))
    assert_close(total, parts["ce"] + parts["lovasz_hinge"])


def test_probabilities_input_terms():
    logits, labels, _ = make_data(3, ignore=False)
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    _, parts = jax.jit(jsl.combine("ce+dice", activation=None))(probs, labels)
    assert_close(parts["dice"], jsl.dice_loss(probs, labels, activation=None))
    assert_close(parts["ce"], jsl.cross_entropy_loss(logits, labels), rtol=1e-4)


def _equations(jaxpr):
    """Every equation of a jaxpr and of the jaxprs inside it (custom rules, jit, remat).

    The branches of a ``cond`` are left out: the kernels recompute on cleaned logits there, a
    branch taken only when a masked pixel holds a non-finite logit.
    """
    for eqn in jaxpr.eqns:
        yield eqn
        if eqn.primitive.name == "cond":
            continue
        for value in eqn.params.values():
            for sub in value if isinstance(value, tuple | list) else (value,):
                inner = getattr(sub, "jaxpr", sub)
                if isinstance(inner, jax.extend.core.Jaxpr):
                    yield from _equations(inner)


def class_axis_log_sum_exps(fn, *args):
    """How many log-sum-exps over the class axis the traced program computes.

    Each one starts with a maximum over the class axis of a ``[B, P, C]`` array (the shift that
    keeps the exponentials finite); the backward pass reuses the forward one.
    """
    jaxpr = jax.make_jaxpr(fn)(*args).jaxpr
    return sum(
        eqn.primitive.name == "reduce_max"
        and eqn.params["axes"] == (2,)
        and eqn.invars[0].aval.shape[-1] == C
        for eqn in _equations(jaxpr)
    )


@pytest.mark.parametrize("spec", ["ce+dice", "ce+dice+iou+focal+tversky+gdl"])
def test_terms_share_one_log_sum_exp(spec):
    """One log-sum-exp over the class axis serves every term, forward and backward, and value
    and gradient equal the separate calls (which compute one each)."""
    logits, labels, mask = make_data(4)
    loss_fn = jsl.combine(spec, ignore_index=255)
    terms = jsl.parse_loss_spec(spec)

    def combined(x, y, m):
        return loss_fn(x, y, mask=m)[0]

    def separate(x, y, m):
        return sum(w * fn(x, y, ignore_index=255, mask=m) for w, fn in terms.values())

    assert class_axis_log_sum_exps(jax.value_and_grad(combined), logits, labels, mask) == 1
    assert class_axis_log_sum_exps(combined, logits, labels, mask) == 1
    assert class_axis_log_sum_exps(separate, logits, labels, mask) == len(terms)
    if spec == "ce+dice":
        dice_ce = functools.partial(jsl.dice_ce_loss, ignore_index=255)
        assert class_axis_log_sum_exps(jax.grad(dice_ce), logits, labels) == 1

    @jax.jit
    def both(x, y, m):
        return (
            jax.value_and_grad(combined)(x, y, m),
            jax.value_and_grad(separate)(x, y, m),
        )

    (value, grad), (ref_value, ref_grad) = both(logits, labels, mask)
    assert_close(value, ref_value)
    assert_close(grad, ref_grad, atol=1e-6)


def test_combined_loss_stores_no_probabilities():
    """fwd+bwd temporary memory of CE + Dice stays below the logits' own size (no [B, P, C]
    probabilities or one-hot array is kept), as for Dice alone."""
    shape = (4, 64, 64, 21)
    logits = jnp.zeros(shape, jnp.float32)
    labels = jnp.zeros(shape[:-1], jnp.int32)
    loss_fn = jsl.combine("ce+dice", ignore_index=255)
    compiled = (
        jax.jit(jax.value_and_grad(lambda x, y: loss_fn(x, y)[0])).lower(logits, labels).compile()
    )
    temp = compiled.memory_analysis().temp_size_in_bytes
    assert temp < logits.nbytes


def test_works_in_a_flax_nnx_train_step():
    nnx = pytest.importorskip("flax.nnx")
    optax = pytest.importorskip("optax")
    _, labels, _ = make_data(7)
    features = np.random.default_rng(8).standard_normal((B, H, W, 3)).astype(np.float32)
    model = nnx.Linear(3, C, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)
    loss_fn = jsl.combine({"ce": 1.0, "dice": 1.0}, ignore_index=255)

    @nnx.jit
    def train_step(model, optimizer, x, y):
        def objective(model):
            return loss_fn(model(x), y)

        (total, parts), grads = nnx.value_and_grad(objective, has_aux=True)(model)
        optimizer.update(model, grads)
        return total, parts

    first, parts = train_step(model, optimizer, features, labels)
    assert set(parts) == {"ce", "dice"}
    assert_close(first, parts["ce"] + parts["dice"])
    for _ in range(5):
        last, _ = train_step(model, optimizer, features, labels)
    assert last < first


def test_one_compilation_per_shape():
    traces = []
    loss_fn = jsl.combine("ce+dice", ignore_index=255)

    @jax.jit
    def step(x, y):
        traces.append(1)
        return loss_fn(x, y)

    for seed in range(3):
        logits, labels, _ = make_data(seed)
        step(logits, labels)
    assert len(traces) == 1


def test_bf16_logits():
    logits, labels, _ = make_data(9)
    loss_fn = jax.jit(jsl.combine("ce+dice+focal", ignore_index=255))
    low, _ = loss_fn(logits.astype(jnp.bfloat16), labels)
    rounded, _ = loss_fn(np.asarray(jnp.asarray(logits, jnp.bfloat16).astype(jnp.float32)), labels)
    assert low.dtype == jnp.float32
    assert_close(low, rounded, rtol=1e-6)


def test_combine_errors():
    with pytest.raises(ValueError, match=r"Term 'ce' binds class_axis itself"):
        jsl.combine({"ce": (1.0, functools.partial(jsl.cross_entropy_loss, class_axis=1))})
    with pytest.raises(ValueError, match=r"binds ignore_index, mask itself"):
        jsl.combine({"dice": functools.partial(jsl.dice_loss, mask=None, ignore_index=0)})
    with pytest.raises(TypeError, match="must be a non-empty mapping"):
        jsl.combine({})
    with pytest.raises(TypeError, match=r"Term 'ce' must be a weight"):
        jsl.combine({"ce": "heavy"})
    with pytest.raises(TypeError, match="The weight of term 'ce' must be a number"):
        jsl.combine({"ce": ("1", jsl.cross_entropy_loss)})
    with pytest.raises(ValueError, match="Unknown loss 'bcel'"):
        jsl.combine({"bcel": 1.0})
    with pytest.raises(ValueError, match="`activation` must be one of"):
        jsl.combine("ce", activation="relu")
    with pytest.raises(ValueError, match="`reduction` must be one of"):
        jsl.combine("ce", reduction="batch")
    logits, labels, _ = make_data(13)
    with pytest.raises(ValueError, match="needs at least 2 classes"):
        jsl.combine("ce+dice")(logits[..., :1], labels % 2)
    with pytest.raises(ValueError, match="`class_axis`=5 is out of range"):
        jsl.combine("ce+dice", class_axis=5)(logits, labels)
