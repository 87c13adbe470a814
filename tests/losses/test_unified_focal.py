"""The asymmetric unified focal loss: MONAI 1.6.1's numbers and test-suite case, a NumPy
reference written from the docstring for every activation (probabilities with one or two
channels, sigmoid, softmax with more classes), masks, ignore_index, soft targets and batch
pooling; finite gradients at saturated logits and on empty masks.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseg_losses.losses.unified_focal import unified_focal_loss as ufl
from tests.helpers import assert_close

EPS = 1e-7


def formula_probs(shape):
    n = int(np.prod(shape))
    return (
        np.round(0.5 + 0.47 * np.sin(2.3 * np.arange(n) + 0.1), 3).astype(np.float32).reshape(shape)
    )


def formula_labels(shape, k, a=7, b=3):
    return ((np.arange(int(np.prod(shape))) * a + b) % 11 % k).reshape(shape)


def np_unified(p, g, m, *, weight=0.5, gamma=0.5, delta=0.7, pooled=False):
    """Per-row losses from the docstring: probabilities p, targets g ``[B, P, K]``, m ``[B, P]``."""
    p = np.clip(np.asarray(p, np.float64), EPS, 1 - EPS)
    g = np.asarray(g, np.float64)
    m = np.asarray(m, np.float64)
    if pooled:
        p, g, m = p.reshape(1, -1, p.shape[-1]), g.reshape(1, -1, g.shape[-1]), m.reshape(1, -1)
    k = p.shape[-1]
    ce = -g * np.log(p)
    af = ((1 - delta) * (1 - p[..., 0]) ** gamma * ce[..., 0] + delta * ce[..., 1:].sum(-1)) / k
    count = m.sum(1)
    focal = np.where(count > 0, (m * af).sum(1) / np.where(count > 0, count, 1), 0.0)
    tp = (m[..., None] * g * p).sum(1)
    fn = (m[..., None] * g * (1 - p)).sum(1)
    fp = (m[..., None] * (1 - g) * p).sum(1)
    ti = (tp + EPS) / (tp + delta * fn + (1 - delta) * fp + EPS)
    terms = np.concatenate([1 - ti[:, :1], np.maximum(1 - ti[:, 1:], 0) ** (1 - gamma)], -1)
    return weight * focal + (1 - weight) * terms.mean(-1)


def test_matches_monai_numbers():
    # MONAI 1.6.1 AsymmetricUnifiedFocalLoss(to_onehot_y=True, num_classes=2, weight, gamma,
    # delta) on [B, 2, H, W] probabilities [1 - p, p] with [B, 1, H, W] integer labels, and
    # AsymmetricUnifiedFocalLoss(to_onehot_y=False, ...) on the [B, 1, H, W] probabilities p
    # with float labels, gave the same numbers; computed once with torch 2 on CPU.
    p1 = formula_probs((2, 1, 3, 4))
    p2 = np.concatenate([1 - p1, p1], 1)
    y = formula_labels((2, 1, 3, 4), 2, 5, 1)[:, 0]
    logit = np.log(p1) - np.log1p(-p1)
    expected = {(0.5, 0.5, 0.7): 0.3935060501098633, (0.3, 0.2, 0.6): 0.4190666079521179}

    @jax.jit
    def run(p1, p2, logit, y):
        out = {}
        for w, g, d in expected:
            kw = {"weight": w, "gamma": g, "delta": d, "class_axis": 1}
            out[w, g, d] = (
                ufl(p2, y, activation=None, **kw),
                ufl(p1, y, activation=None, **kw),
                ufl(logit, y, activation="sigmoid", **kw),
                ufl(jnp.log(p2), y, activation="softmax", **kw),
                ufl(p2, jnp.moveaxis(jax.nn.one_hot(y, 2), -1, 1), activation=None, **kw),
            )
        return out

    for key, values in run(p1, p2, logit, y).items():
        for value in values:
            assert_close(value, expected[key], rtol=2e-5, err_msg=str(key))


def test_monai_test_suite_case():
    # Project-MONAI/MONAI tests/losses/test_unified_focal_loss.py (1.6.1): one channel of
    # probabilities equal to its float target [[1, 0], [0, 1]] for both samples: loss 0 (atol
    # 1e-4); MONAI's default options.
    y = np.array([[[1.0, 0.0], [0.0, 1.0]]] * 2, np.float32)
    got = jax.jit(lambda p, y: ufl(p, y, activation=None))(y[..., None], y[..., None])
    np.testing.assert_allclose(got, 0.0, atol=1e-4)


def _data(seed, channels, *, soft=False, ignore=False, mask=False):
    rng = np.random.default_rng(seed)
    logits = (rng.normal(size=(3, 4, 5, channels)) * 2).astype(np.float32)
    k = max(channels, 2)
    labels = rng.integers(0, k, size=(3, 4, 5))
    g = np.eye(k, dtype=np.float32)[labels]
    m = np.ones((3, 4, 5), np.float32)
    kw = {}
    if soft:
        g = rng.dirichlet(np.ones(k), size=(3, 4, 5)).astype(np.float32)
        labels = g if channels > 1 else g[..., 1:]
    if ignore:
        ignored = rng.random((3, 4, 5)) < 0.3
        labels = np.where(ignored, 255, labels)
        m = np.where(ignored, 0.0, 1.0).astype(np.float32)
        kw["ignore_index"] = 255
    if mask:
        m = rng.choice([0.0, 0.5, 1.0, 2.0], size=(3, 4, 5)).astype(np.float32)
        m[1] = 0.0
        kw["mask"] = m
    return logits, labels, g, m, kw


CASES = {
    "softmax4": {"channels": 4},
    "softmax2_mask": {"channels": 2, "mask": True, "weight": 0.3, "gamma": 0.2, "delta": 0.6},
    "softmax3_ignore": {"channels": 3, "ignore": True},
    "softmax3_soft": {"channels": 3, "soft": True, "gamma": 0.0},
    "sigmoid_ignore": {"channels": 1, "activation": "sigmoid", "ignore": True},
    "probs1": {"channels": 1, "activation": None, "gamma": 1.0},
    "probs3_soft": {"channels": 3, "activation": None, "soft": True},
    "softmax3_batch": {"channels": 3, "aggregate": "batch", "mask": True},
}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_numpy_reference(name):
    case = dict(CASES[name])
    channels = case.pop("channels")
    activation = case.pop("activation", "softmax")
    aggregate = case.pop("aggregate", "sample")
    data = {k: case.pop(k) for k in ("soft", "ignore", "mask") if k in case}
    logits, labels, g, m, kw = _data(list(CASES).index(name), channels, **data)
    if activation == "softmax":
        p = np.asarray(jax.nn.softmax(logits, -1))
        inputs = logits
    elif activation == "sigmoid":
        s = np.asarray(jax.nn.sigmoid(logits))
        p, inputs = np.concatenate([1 - s, s], -1), logits
    else:
        p = np.asarray(jax.nn.softmax(logits, -1)) if channels > 1 else 1 / (1 + np.exp(-logits))
        inputs = p
        if channels == 1:
            p = np.concatenate([1 - p, p], -1)
    options = {"activation": activation, "aggregate": aggregate, **case, **kw}
    reductions = ("mean",) if aggregate == "batch" else ("none", "mean")
    got = jax.jit(lambda x, y: {r: ufl(x, y, reduction=r, **options) for r in reductions})(
        inputs, labels
    )
    flat = lambda a: a.reshape(3, 20, *a.shape[3:])  # noqa: E731
    ref = np_unified(flat(p), flat(g), flat(m), pooled=aggregate == "batch", **case)
    if aggregate == "batch":
        assert_close(got["mean"], ref[0], rtol=2e-5)
        return
    assert_close(got["none"], ref, rtol=2e-5)
    valid = flat(m).sum(1) > 0
    assert_close(got["mean"], ref[valid].mean(), rtol=2e-5)


def test_saturated_logits_and_empty_masks_have_finite_derivatives():
    labels = jnp.array([[0, 1, 1, 0]])
    x2 = 100.0 * jnp.array([[[1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, -1.0]]])
    x1 = 100.0 * jnp.array([[[-1.0], [1.0], [-1.0], [1.0]]])
    for x, activation in ((x2, "softmax"), (x1, "sigmoid")):
        for mask in (None, jnp.zeros((1, 4))):

            def loss(x, mask=mask, activation=activation):
                return ufl(x, labels, activation=activation, mask=mask)

            grad = jax.grad(loss)(x)
            hvp = jax.jvp(jax.grad(loss), (x,), (jnp.ones_like(x),))[1]
            assert np.all(np.isfinite(grad)) and np.all(np.isfinite(hvp)), (activation, mask)
    assert ufl(x2, labels, mask=jnp.zeros((1, 4))) == 0.0


def test_bad_options_are_loud():
    x, y = jnp.zeros((1, 4, 2)), jnp.zeros((1, 4), jnp.int32)
    for name in ("weight", "gamma", "delta"):
        with pytest.raises(ValueError, match=name):
            ufl(x, y, **{name: 1.5})
    with pytest.raises(TypeError, match="gamma"):
        ufl(x, y, gamma="0.5")
    with pytest.raises(ValueError, match="one binary channel"):
        ufl(x, jnp.zeros((1, 4, 2)), activation="sigmoid")
