"""The neighbour-aware calibration loss: MONAI 1.6.1's numbers and test-suite cases, a NumPy
reference written from the docstring (box and Gaussian kernels, odd and even sizes, L1 and L2,
1-D/2-D/3-D, masks, ignore_index, soft targets), and the rule that an excluded pixel's label
never enters its neighbours' smoothed targets.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseg_losses.losses.nacl import nacl_loss
from tests.helpers import assert_close

# Project-MONAI/MONAI tests/losses/test_nacl_loss.py: [1, 3, 4, 4] inputs (used as logits) and
# [1, 4, 4] labels.
MONAI_INPUTS = np.array(
    [
        [
            [0.1498, 0.1158, 0.3996, 0.3730],
            [0.2155, 0.1585, 0.8541, 0.8579],
            [0.6640, 0.2424, 0.0774, 0.0324],
            [0.0580, 0.2180, 0.3447, 0.8722],
        ],
        [
            [0.3908, 0.9366, 0.1779, 0.1003],
            [0.9630, 0.6118, 0.4405, 0.7916],
            [0.5782, 0.9515, 0.4088, 0.3946],
            [0.7860, 0.3910, 0.0324, 0.9568],
        ],
        [
            [0.0759, 0.0238, 0.5570, 0.1691],
            [0.2703, 0.7722, 0.1611, 0.6431],
            [0.8051, 0.6596, 0.4121, 0.1125],
            [0.5283, 0.6746, 0.5528, 0.7913],
        ],
    ],
    np.float32,
)[None]
MONAI_TARGETS = np.array([[[1, 1, 1, 1], [1, 1, 1, 0], [0, 0, 1, 0], [0, 1, 0, 0]]])


def formula_logits(shape, phase=0.3):
    n = int(np.prod(shape))
    return np.round(3.0 * np.sin(1.7 * np.arange(n) + phase), 2).astype(np.float32).reshape(shape)


def formula_labels(shape, k, a=7, b=3):
    return ((np.arange(int(np.prod(shape))) * a + b) % 11 % k).reshape(shape)


def np_kernel(ops, size, sigma):
    if ops == "mean":
        return np.full(size, 1.0 / size)
    tail = int(max(4 * sigma, 0.5) + 0.5)
    x = np.arange(-tail, tail + 1)
    erf = np.vectorize(math.erf)
    t = 1 / (math.sqrt(2) * sigma)
    return 0.5 * (erf(t * (x + 0.5)) - erf(t * (x - 0.5)))


def np_smooth(targets, kernel):
    """Zero-padded 'same' cross-correlation along every spatial axis of ``[B, *S, C]``."""
    out = np.asarray(targets, np.float64)
    size = len(kernel)
    before = (size - 1) // 2
    for axis in range(1, out.ndim - 1):
        pads = [(0, 0)] * out.ndim
        pads[axis] = (before, size - 1 - before)
        padded = np.pad(out, pads)
        n = out.shape[axis]
        taps = [w * np.take(padded, np.arange(t, t + n), axis=axis) for t, w in enumerate(kernel)]
        out = np.sum(taps, axis=0)
    return out


def np_nacl(logits, targets, weights, *, kernel_ops="mean", kernel_size=3, sigma=1.0,
            distance_type="l1", alpha=0.1):  # fmt: skip
    """Per-sample losses from the docstring; channels-last ``[B, *S, C]``."""
    x = np.asarray(logits, np.float64)
    w = np.asarray(weights, np.float64)
    g = np.asarray(targets, np.float64)
    log_p = x - x.max(-1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(-1, keepdims=True))
    ce = -(g * log_p).sum(-1)
    t = np_smooth(np.where((w != 0)[..., None], g, 0.0), np_kernel(kernel_ops, kernel_size, sigma))
    gap = t - x
    pen = np.abs(gap) if distance_type == "l1" else gap**2
    pixel = ce + alpha * pen.mean(-1)
    axes = tuple(range(1, w.ndim))
    return (w * pixel).sum(axes) / (w.sum(axes)), (w * pixel).sum() / w.sum()


def test_monai_test_suite_cases():
    # Expected values from MONAI's test file (atol 1e-4 there): box kernel 1.1442 (also for the
    # batch repeated 4 times), Gaussian 1.1433, Gaussian sigma 0.5 1.1469, L2 1.1269,
    # alpha 0.2 1.1790.
    x = jnp.asarray(MONAI_INPUTS)
    y = jnp.asarray(MONAI_TARGETS)

    @jax.jit
    def run(x, y):
        kw = {"class_axis": 1}
        return [
            nacl_loss(x, y, **kw),
            nacl_loss(jnp.tile(x, (4, 1, 1, 1)), jnp.tile(y, (4, 1, 1)), **kw),
            nacl_loss(x, y, kernel_ops="gaussian", **kw),
            nacl_loss(x, y, kernel_ops="gaussian", sigma=0.5, **kw),
            nacl_loss(x, y, distance_type="l2", **kw),
            nacl_loss(x, y, alpha=0.2, **kw),
        ]

    expected = [1.1442, 1.1442, 1.1433, 1.1469, 1.1269, 1.1790]
    np.testing.assert_allclose(np.array(run(x, y)), expected, atol=1e-4, rtol=1e-4)


def test_matches_monai_numbers():
    # MONAI 1.6.1 NACLLoss(classes=3, dim=2 or 3, ...) on these [B, C, *S] logits and [B, *S]
    # labels, computed once with torch 2 on CPU (scratch script, not part of the suite); the
    # even kernel_size=4 pins PyTorch's "same" padding (1 before, 2 after).
    x = formula_logits((2, 3, 3, 4))
    y = formula_labels((2, 3, 4), 3)
    x3 = formula_logits((1, 3, 3, 3, 4), 1.1)
    y3 = formula_labels((1, 3, 3, 4), 3, 4, 2)
    cases = [
        ({}, 2.6880810260772705),
        ({"distance_type": "l2"}, 2.9504470825195312),
        ({"kernel_ops": "gaussian"}, 2.688314199447632),
        ({"kernel_ops": "gaussian", "distance_type": "l2"}, 2.950026035308838),
        ({"kernel_size": 4, "alpha": 0.5}, 3.445233106613159),
        ({"kernel_ops": "gaussian", "sigma": 0.5, "distance_type": "l2"}, 2.956289291381836),
    ]

    @jax.jit
    def run(x, y, x3, y3):
        values = [nacl_loss(x, y, class_axis=1, **kw) for kw, _ in cases]
        return [*values, nacl_loss(x3, y3, class_axis=1)]

    expected = [v for _, v in cases] + [2.796971082687378]
    assert_close(np.array(run(x, y, x3, y3)), expected, rtol=2e-6)


CASES = {
    "mean3_mask": {"mask": True},
    "mean5_ignore_l2": {"ignore": True, "kernel_size": 5, "distance_type": "l2"},
    "gauss_soft": {"soft": True, "kernel_ops": "gaussian", "sigma": 0.7},
    "mean2_1d": {"spatial": (9,), "kernel_size": 2, "alpha": 0.3},
    "gauss_3d_ignore": {"spatial": (3, 4, 3), "ignore": True, "kernel_ops": "gaussian"},
}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_numpy_reference(name):
    case = dict(CASES[name])
    spatial = case.pop("spatial", (4, 5))
    rng = np.random.default_rng(list(CASES).index(name))
    shape = (3, *spatial)
    logits = (rng.normal(size=(*shape, 3)) * 2).astype(np.float32)
    labels = rng.integers(0, 3, size=shape)
    g = np.eye(3, dtype=np.float32)[labels]
    w = np.ones(shape, np.float32)
    kw = {}
    if case.pop("mask", False):
        w = rng.choice([0.0, 0.5, 1.0, 2.0], size=shape).astype(np.float32)
        kw["mask"] = w
    if case.pop("ignore", False):
        ignored = rng.random(shape) < 0.3
        labels = np.where(ignored, 255, labels)
        w = np.where(ignored, 0.0, 1.0).astype(np.float32)
        kw["ignore_index"] = 255
    if case.pop("soft", False):
        g = rng.dirichlet(np.ones(3), size=shape).astype(np.float32)
        labels = g
    got = jax.jit(
        lambda x, y: [nacl_loss(x, y, reduction=r, **case, **kw) for r in ("none", "mean")]
    )(logits, labels)
    per_sample, pooled = np_nacl(logits, g, w, **case)
    assert_close(got[0], per_sample, rtol=2e-5)
    assert_close(got[1], pooled, rtol=2e-5)


def test_excluded_labels_do_not_reach_their_neighbours():
    # The centre pixel is excluded: changing its label (or its logits) changes nothing, and
    # its neighbours' smoothed targets are those of a pixel outside the image.
    rng = np.random.default_rng(3)
    logits = jnp.asarray(rng.normal(size=(1, 3, 3, 3)), jnp.float32)
    labels = np.zeros((1, 3, 3), np.int32)
    mask = np.ones((1, 3, 3), bool)
    mask[0, 1, 1] = False
    other = labels.copy()
    other[0, 1, 1] = 2
    changed = logits.at[0, 1, 1].set(50.0)

    @jax.jit
    def run(x, y, mask):
        return nacl_loss(x, y, mask=mask), nacl_loss(x, y, ignore_index=9)

    a, _ = run(logits, labels, mask)
    b, _ = run(changed, other, mask)
    _, c = run(logits, np.where(mask, labels, 9), mask)
    assert_close(a, b, rtol=0, atol=0)
    assert_close(a, c, rtol=1e-6)
    g = np.where(mask[..., None], np.eye(3)[labels], 0.0)
    assert_close(a, np_nacl(logits, np.eye(3)[labels], mask.astype(np.float32))[1], rtol=2e-6)
    assert np_smooth(g, np_kernel("mean", 3, 1.0))[0, 0, 1, 0] == pytest.approx(
        5 / 9
    )  # 6 in the image, 1 excluded


def test_saturated_logits_have_finite_derivatives():
    labels = jnp.array([[[0, 1], [2, 1]]])
    x = 100.0 * jnp.array([[[[1.0, -1, -1], [-1, -1, 1]], [[1, -1, -1], [-1, 1, -1]]]])
    for distance_type in ("l1", "l2"):

        def loss(x, distance_type=distance_type):
            return nacl_loss(x, labels, distance_type=distance_type)

        hvp = jax.jvp(jax.grad(loss), (x,), (jnp.ones_like(x),))[1]
        assert np.all(np.isfinite(jax.grad(loss)(x))) and np.all(np.isfinite(hvp))


def test_bad_options_are_loud():
    x, y = jnp.zeros((1, 4, 3)), jnp.zeros((1, 4), jnp.int32)
    with pytest.raises(ValueError, match="kernel_ops"):
        nacl_loss(x, y, kernel_ops="box")
    with pytest.raises(ValueError, match="distance_type"):
        nacl_loss(x, y, distance_type="l3")
    with pytest.raises(ValueError, match="kernel_size"):
        nacl_loss(x, y, kernel_size=0)
    with pytest.raises(TypeError, match="kernel_size"):
        nacl_loss(x, y, kernel_size=3.0)
    with pytest.raises(ValueError, match="sigma"):
        nacl_loss(x, y, sigma=0.0)
    with pytest.raises(TypeError, match="sigma"):
        nacl_loss(x, y, sigma=jnp.array(1.0))
    with pytest.raises(ValueError, match="alpha"):
        nacl_loss(x, y, alpha=-1.0)
