"""The generalized Wasserstein Dice loss: MONAI 1.6.1's numbers and test-suite cases, a NumPy
reference written from the docstring for every option branch (weighting modes, static and
traced distance matrices, masks, ignore_index, soft targets, batch pooling), and the option
checks.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxseg_losses as jsl
from jaxseg_losses.losses.wasserstein import generalized_wasserstein_dice_loss as gwdl
from tests.helpers import assert_close

DIST = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.5], [1.0, 0.5, 0.0]], np.float32)
DIST2 = np.array([[0.0, 2.0, 4.0], [2.0, 0.0, 1.0], [4.0, 1.0, 0.0]], np.float32)


def formula_logits(shape, phase=0.3):
    n = int(np.prod(shape))
    return np.round(3.0 * np.sin(1.7 * np.arange(n) + phase), 2).astype(np.float32).reshape(shape)


def formula_labels(shape, k, a=7, b=3):
    return ((np.arange(int(np.prod(shape))) * a + b) % 11 % k).reshape(shape)


def np_gwdl(logits, targets, weights, dist, mode, smooth=1e-5, pooled=False):
    """Per-row losses from the docstring; logits ``[B, P, C]``, targets ``[B, P, C]``."""
    x = np.asarray(logits, np.float64)
    p = np.exp(x - x.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    m = np.asarray(dist, np.float64) / np.max(dist)
    d = np.einsum("bpk,ck->bpc", p, m)
    mass = np.asarray(weights, np.float64)[..., None] * targets
    if pooled:
        mass, d = mass.reshape(1, -1, mass.shape[-1]), d.reshape(1, -1, d.shape[-1])
    volume, true = mass.sum(1), (mass * (1 - d)).sum(1)
    if mode == "GDL":
        alpha = 1 / (volume + 1)
        tp, den = (alpha * true).sum(-1), (alpha * (volume + true)).sum(-1)
    else:
        tp = true[:, 1:].sum(-1)
        den = 2 * tp + (volume - true).sum(-1)
    return 1 - (2 * tp + smooth) / (den + smooth)


def test_matches_monai_numbers():
    # MONAI 1.6.1 GeneralizedWassersteinDiceLoss(dist_matrix, weighting_mode, reduction="none")
    # on these inputs ([B, C, H, W] logits, [B, H, W] labels), computed once with torch 2 on
    # CPU (scratch script, not part of the suite).
    x = formula_logits((2, 3, 3, 4))
    y = formula_labels((2, 3, 4), 3)
    expected = {
        ("default", 0): [0.6089147329330444, 0.5886603593826294],
        ("GDL", 0): [0.487318754196167, 0.5417066216468811],
        ("default", 1): [0.3749306797981262, 0.39581626653671265],
    }

    @jax.jit
    def run(x, y, dist2):
        kw = {"class_axis": 1, "reduction": "none"}
        return {
            ("default", 0): gwdl(x, y, dist_matrix=DIST, **kw),
            ("GDL", 0): gwdl(x, y, dist_matrix=DIST, weighting_mode="GDL", **kw),
            # A traced distance matrix, scaled by its largest entry as MONAI does.
            ("default", 1): gwdl(x, y, dist_matrix=dist2, **kw),
        }

    got = run(x, y, jnp.asarray(DIST2))
    for key, value in expected.items():
        assert_close(got[key], value, rtol=1e-5, atol=1e-6, err_msg=str(key))
    # MONAI's "mean" is the mean of those two: 0.5987875461578369 and 0.5145126581192017.
    assert_close(gwdl(x, y, dist_matrix=DIST, class_axis=1), 0.5987875461578369, rtol=1e-5)


def test_monai_test_suite_cases():
    # Project-MONAI/MONAI tests/losses/test_generalized_wasserstein_dice_loss.py: a 4x4 square
    # target (and an empty one, and the 3-D stack of three), logits 1000 * one-hot of the target
    # ("very good", loss 0 to 3 places) or of its complement ("very poor", loss 1), both
    # weighting modes; a batch of two identical samples gives the single sample's loss.
    square = np.array([[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]])
    targets = np.stack([square, np.zeros_like(square)])  # [2, 4, 4]: square, empty class 1
    stack = np.stack([square] * 3)[None]  # [1, 3, 4, 4]
    binary = np.array([[0.0, 1.0], [1.0, 0.0]])

    @jax.jit
    def run(targets, stack):
        out = {}
        for mode in ("default", "GDL"):
            kw = {"dist_matrix": binary, "weighting_mode": mode, "reduction": "none"}
            out[mode] = (
                gwdl(1000.0 * jax.nn.one_hot(targets, 2), targets, **kw),
                gwdl(1000.0 * jax.nn.one_hot(1 - targets, 2), targets, **kw),
                gwdl(1000.0 * jax.nn.one_hot(stack, 2), stack, **kw),
                gwdl(1000.0 * jax.nn.one_hot(1 - stack, 2), stack, **kw),
            )
        return out

    for mode, (good, poor, good3, poor3) in run(targets, stack).items():
        np.testing.assert_allclose(good, 0.0, atol=1e-3, err_msg=mode)
        np.testing.assert_allclose(poor, 1.0, atol=1e-3, err_msg=mode)
        np.testing.assert_allclose(good3, 0.0, atol=1e-3, err_msg=mode)
        np.testing.assert_allclose(poor3, 1.0, atol=1e-3, err_msg=mode)


CASES = {
    "default_int": {},
    "gdl_int": {"weighting_mode": "GDL"},
    "default_mask_float": {"mask": "float"},
    "gdl_ignore": {"weighting_mode": "GDL", "ignore_index": 255},
    "default_soft": {"soft": True},
    "gdl_probabilities": {"weighting_mode": "GDL", "activation": None},
    "default_batch": {"aggregate": "batch"},
    "gdl_batch_dist2": {"weighting_mode": "GDL", "aggregate": "batch", "dist": DIST2},
    "zero_one_default": {"dist": None},
}


def _case_data(case):
    rng = np.random.default_rng(7)
    logits = rng.normal(size=(3, 4, 5, 3)).astype(np.float32) * 2
    labels = rng.integers(0, 3, size=(3, 4, 5))
    weights = np.ones((3, 4, 5), np.float32)
    targets = np.eye(3, dtype=np.float32)[labels]
    kw = {}
    if case.get("mask") == "float":
        weights = rng.choice([0.0, 0.5, 1.0, 2.0], size=(3, 4, 5)).astype(np.float32)
        weights[2] = 0.0  # a sample without valid pixels: loss 0, left out of the mean
        kw["mask"] = weights
    if case.get("ignore_index") is not None:
        ignored = rng.random((3, 4, 5)) < 0.3
        labels = np.where(ignored, 255, labels)
        weights = np.where(ignored, 0.0, 1.0).astype(np.float32)
        targets = np.where(ignored[..., None], 0.0, targets)
        kw["ignore_index"] = 255
    if case.get("soft"):
        targets = rng.dirichlet(np.ones(3), size=(3, 4, 5)).astype(np.float32)
        labels = targets
    inputs = logits
    if case.get("activation", "softmax") is None:
        inputs = np.asarray(jax.nn.softmax(logits, -1))
        kw["activation"] = None
    return inputs, logits, labels, targets, weights, kw


@pytest.mark.parametrize("name", list(CASES))
def test_matches_numpy_reference(name):
    case = CASES[name]
    inputs, logits, labels, targets, weights, kw = _case_data(case)
    dist = case.get("dist", DIST)
    mode = case.get("weighting_mode", "default")
    aggregate = case.get("aggregate", "sample")
    options = {"dist_matrix": dist, "weighting_mode": mode, "aggregate": aggregate, **kw}
    reductions = ("mean",) if aggregate == "batch" else ("none", "mean")
    fn = jax.jit(lambda x, y: {r: gwdl(x, y, reduction=r, **options) for r in reductions})
    got = fn(inputs, labels)
    matrix = 1.0 - np.eye(3) if dist is None else dist
    flat = lambda a: a.reshape(3, 20, *a.shape[3:])  # noqa: E731
    ref = np_gwdl(flat(logits), flat(targets), flat(weights), matrix, mode)
    if aggregate == "batch":
        pooled = np_gwdl(flat(logits), flat(targets), flat(weights), matrix, mode, pooled=True)
        assert_close(got["mean"], pooled[0], rtol=2e-5)
        return
    assert_close(got["none"], ref, rtol=2e-5)
    valid = flat(weights).sum(1) > 0
    assert_close(got["mean"], ref[valid].mean(), rtol=2e-5)


def test_saturated_logits_and_empty_masks_have_finite_gradients():
    labels = jnp.array([[0, 1, 2, 1]])
    logits = 100.0 * jnp.array([[[1, -1, -1], [-1, -1, 1], [1, -1, -1], [-1, 1, -1]]], jnp.float32)
    for mode in ("default", "GDL"):
        for mask in (None, jnp.zeros((1, 4))):
            g = jax.grad(lambda x: gwdl(x, labels, weighting_mode=mode, mask=mask))(logits)  # noqa: B023
            assert np.all(np.isfinite(g)), (mode, mask)
    assert gwdl(logits, labels, mask=jnp.zeros((1, 4)), smooth_dr=0.0) == 0.0


def test_bad_options_are_loud():
    x, y = jnp.zeros((1, 4, 3)), jnp.zeros((1, 4), jnp.int32)
    with pytest.raises(ValueError, match="dist_matrix"):
        gwdl(x, y, dist_matrix=np.ones((2, 3)))
    with pytest.raises(ValueError, match="C = 3"):
        gwdl(x, y, dist_matrix=np.ones((2, 2)))
    with pytest.raises(ValueError, match="dist_matrix"):
        gwdl(x, y, dist_matrix=-DIST)
    with pytest.raises(TypeError, match="dist_matrix"):
        gwdl(x, y, dist_matrix="l1")
    with pytest.raises(ValueError, match="weighting_mode"):
        gwdl(x, y, weighting_mode="gdl")
    checked = jsl.checked(jax.jit(lambda d: gwdl(x, y, dist_matrix=d)))
    with pytest.raises(ValueError, match="dist_matrix"):
        checked(jnp.asarray(-DIST))
    with pytest.raises(ValueError, match="C >= 2"):
        gwdl(jnp.zeros((1, 4, 1)), y, activation=None)
