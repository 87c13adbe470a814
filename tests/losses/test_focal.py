"""The focal loss: NumPy reference (tests/references/pixelwise.py) for every option branch,
optax's sigmoid focal loss per pixel, MONAI's class weights and background rule, γ = 0 is
cross-entropy, finite gradients where (1 - p)^γ has an infinite slope.

The properties it shares with cross-entropy (masks, layouts, dtypes, extremes, devices) are in
test_pixelwise.py, over both losses.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxseg_losses as jsl
from tests.helpers import assert_close, log_softmax, one_hot, random_batch, sigmoid
from tests.losses.pixel_cases import (
    C,
    check_all_reductions,
    make_data,
    multilabel,
    probabilities_of,
    resolve_case,
    rng,
)
from tests.references.pixelwise import np_focal

SHAPE = (2, 4, 5)  # the MONAI class-weight test


FOCAL_CASES = {
    "int": {},
    "int_alpha_scalar": {"alpha": 0.25},
    "int_alpha_vector_ignore": {
        "alpha": np.array([0.2, 0.5, 0.3], np.float32),
        "ignore_index": 255,
    },
    "int_gamma_half_mask": {"gamma": 0.5, "mask": "float"},
    "onehot_alpha": {"labels": "onehot", "alpha": 0.75},
    "soft_gamma3": {"labels": "soft", "gamma": 3.0},
    "probs_int_alpha": {"activation": None, "alpha": np.array([1.0, 0.25, 0.5], np.float32)},
    "probs_soft": {"activation": None, "labels": "soft", "gamma": 1.0},
    "nchw": {"class_axis": 1, "gamma": 1.5},
}


@pytest.mark.parametrize("case", list(FOCAL_CASES), ids=list(FOCAL_CASES))
def test_focal_matches_reference(case):
    logits, labels, options = resolve_case(FOCAL_CASES[case], seed=1)
    check_all_reductions(jsl.focal_loss, np_focal, logits, labels, **options)


SIGMOID_FOCAL_CASES = {
    "binary_int": {"num_classes": 1},
    "binary_int_alpha_ignore": {"num_classes": 1, "alpha": 0.25, "ignore_index": 255},
    "multilabel_alpha_vector": {"alpha": np.array([0.25, 0.5, 0.9], np.float32), "gamma": 0.5},
    "multilabel_soft_targets": {"soft": True, "alpha": 0.25},
    "binary_probs": {"num_classes": 1, "activation": None, "gamma": 1.0},
}


@pytest.mark.parametrize("case", list(SIGMOID_FOCAL_CASES), ids=list(SIGMOID_FOCAL_CASES))
def test_sigmoid_focal_matches_reference(case):
    options = dict(SIGMOID_FOCAL_CASES[case])
    num_classes = options.pop("num_classes", C)
    activation = options.pop("activation", "sigmoid")
    if num_classes == 1:
        logits, labels, _ = make_data(
            4, num_classes=1, ignore=options.get("ignore_index") is not None
        )
        labels = labels if options.get("ignore_index") is not None else labels % 2
    else:
        logits, labels = multilabel(4)
        if options.pop("soft", False):
            labels = rng(5).uniform(size=labels.shape).astype(np.float32)
    if activation is None:
        logits = sigmoid(logits).astype(np.float32)
    check_all_reductions(jsl.focal_loss, np_focal, logits, labels, activation=activation, **options)


def test_focal_map_equals_optax_sigmoid_focal_loss():
    logits, targets = multilabel(13)
    soft = rng(14).uniform(size=targets.shape).astype(np.float32)

    @jax.jit
    def pairs(x, t, g):
        out = []
        for alpha in (None, 0.25):
            for gamma in (0.0, 0.5, 2.0):
                for y in (t, g):
                    out.append(
                        (
                            jsl.focal_map(x, y, activation="sigmoid", alpha=alpha, gamma=gamma),
                            optax.sigmoid_focal_loss(x, y, alpha=alpha, gamma=gamma).mean(-1),
                        )
                    )
        return out

    for actual, expected in pairs(logits, targets, soft):
        assert_close(actual, np.asarray(expected))


@pytest.mark.parametrize(
    "form", ["int", "onehot", "soft", "sigmoid", "binary", "probs", "probs_binary"]
)
def test_focal_gamma_zero_is_cross_entropy_exactly(form):
    logits, labels, soft = make_data(20, ignore=form == "int")
    options = {"ignore_index": 255} if form == "int" else {}
    if form == "onehot":
        labels = one_hot(labels, C)
    elif form == "soft":
        labels = soft
    elif form == "sigmoid":
        logits, labels = multilabel(20)
        options = {"activation": "sigmoid"}
    elif form == "binary":
        logits, labels = logits[..., :1], labels % 2
        options = {"activation": "sigmoid"}
    elif form == "probs":
        logits, options = probabilities_of(logits), {"activation": None}
    elif form == "probs_binary":
        logits, labels = sigmoid(logits[..., :1]).astype(np.float32), labels % 2
        options = {"activation": None}
    for reduction in ("mean", "none"):
        focal = functools.partial(jsl.focal_loss, gamma=0.0, reduction=reduction, **options)
        ce = functools.partial(jsl.cross_entropy_loss, reduction=reduction, **options)
        np.testing.assert_array_equal(jax.jit(focal)(logits, labels), jax.jit(ce)(logits, labels))


def test_focal_saturated_correct_prediction_has_finite_gradient_for_small_gamma():
    # (1 - p)^γ with γ < 1 has an infinite slope at p = 1; the log-space factor does not.
    logits = jnp.array([[[30.0, -30.0], [-30.0, 30.0]]])
    labels = jnp.array([[0, 1]])
    grads = jax.jit(
        lambda x: [
            jax.grad(lambda z, g=g: jsl.focal_loss(z, labels, gamma=g))(x) for g in (0.1, 0.5, 0.9)
        ]
    )(logits)
    for grad in grads:
        assert np.all(np.isfinite(grad))
        assert np.all(np.abs(grad) < 1e-6)


# ----------------------------------------------------------------------------------------------
# Focal: class weights and include_background.


@jax.jit
def _focal_values(x, y, xb, yb):
    w = jnp.array([0.5, 1.0, 2.0])
    onehot = jax.nn.one_hot(y, C)
    return {
        "softmax": jsl.focal_loss(x, y, gamma=2.0, class_weights=w, include_background=False),
        "dense": jsl.focal_loss(x, onehot, gamma=2.0, class_weights=w, include_background=False),
        "sigmoid": jsl.focal_loss(
            xb, yb, activation="sigmoid", gamma=2.0, alpha=0.25, class_weights=w
        ),
        "sigmoid_fg": jsl.focal_loss(
            xb, yb, activation="sigmoid", gamma=2.0, class_weights=w, include_background=False
        ),
        "plain": jsl.focal_loss(x, y, gamma=2.0),
    }


def test_focal_class_weights_and_background_match_monai():
    x, y, _ = random_batch(3, SHAPE, C, masked=0.3)
    rng = np.random.default_rng(3)
    yb = (rng.uniform(size=(*SHAPE, C)) > 0.5).astype(np.float32)
    out = _focal_values(x, y, x, yb)
    w = np.array([0.5, 1.0, 2.0])
    log_p = log_softmax(x)
    onehot = np.eye(C)[y]
    # MONAI softmax_focal_loss per element [B, C, H, W], times weight, .mean() over B*C*H*W.
    monai = -((1 - np.exp(log_p)) ** 2) * log_p * onehot * w
    assert_close(out["plain"] / C * 1.0, (-((1 - np.exp(log_p)) ** 2) * log_p * onehot).mean())
    # include_background=False here keeps the softmax over all classes, drops class 0's terms.
    assert_close(out["softmax"], monai[..., 1:].sum(-1).mean())
    assert_close(out["dense"], out["softmax"])
    # MONAI sigmoid_focal_loss, alpha, weight, mean over B*C*H*W: identical.
    z = x.astype(np.float64)
    bce = z - z * yb - (-np.logaddexp(0, -z))
    inv = -np.logaddexp(0, z * (yb * 2 - 1))
    element = np.exp(inv * 2.0) * bce
    assert_close(out["sigmoid"], (w * (yb * 0.25 + (1 - yb) * 0.75) * element).mean())
    assert_close(out["sigmoid_fg"], (w * element)[..., 1:].mean())
