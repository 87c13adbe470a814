"""The cross-entropy family (cross-entropy, binary cross-entropy, Poly-1, top-k): NumPy references
(tests/references/pixelwise.py) for every option branch, peers (optax, PyTorch, nnU-Net), and
properties.

The properties the per-pixel losses share run on cross-entropy and focal together (both read the
per-pixel terms of ``losses/_pixel_terms.py``); the focal loss's own tests are in test_focal.py.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads

import jaxseg_losses as jsl
from tests.helpers import (
    all_finite,
    assert_close,
    log_softmax,
    random_batch,
    sigmoid,
)
from tests.losses.pixel_cases import (
    REDUCTIONS,
    WEIGHTS,
    B,
    C,
    H,
    W,
    check_all_reductions,
    make_data,
    multilabel,
    resolve_case,
    rng,
)
from tests.references.pixelwise import (
    TINY32,
    np_cross_entropy,
    np_focal,
    pixel_cross_entropy,
    top_k_mean,
)

# ----------------------------------------------------------------------------------------------
# Cross-entropy against the reference, every option branch, under jit.

CE_CASES = {
    "int": {},
    "int_weights": {"class_weights": WEIGHTS},
    "int_smoothing": {"label_smoothing": 0.2},
    "int_weights_smoothing_ignore": {
        "class_weights": WEIGHTS,
        "label_smoothing": 0.1,
        "ignore_index": 255,
    },
    "int_ignore": {"ignore_index": 255},
    "int_mask_float": {"mask": "float"},
    "int_mask_bool_ignore": {"mask": "bool", "ignore_index": 255},
    "onehot": {"labels": "onehot"},
    "soft": {"labels": "soft"},
    "soft_weights_smoothing_mask": {
        "labels": "soft",
        "class_weights": WEIGHTS,
        "label_smoothing": 0.3,
        "mask": "float",
    },
    "probs_int": {"activation": None},
    "probs_soft_smoothing": {"activation": None, "labels": "soft", "label_smoothing": 0.1},
    "probs_int_weights_ignore": {
        "activation": None,
        "class_weights": WEIGHTS,
        "ignore_index": 255,
    },
    "nchw_weights": {"class_axis": 1, "class_weights": WEIGHTS},
    "nchw_soft": {"class_axis": 1, "labels": "soft"},
}


@pytest.mark.parametrize("case", list(CE_CASES), ids=list(CE_CASES))
def test_cross_entropy_matches_reference(case):
    logits, labels, options = resolve_case(CE_CASES[case])
    check_all_reductions(jsl.cross_entropy_loss, np_cross_entropy, logits, labels, **options)


SIGMOID_CASES = {
    "binary_int": {"num_classes": 1},
    "binary_int_ignore_pos_weight": {"num_classes": 1, "ignore_index": 255, "pos_weight": 3.0},
    "multilabel": {},
    "multilabel_all_options": {
        "class_weights": WEIGHTS,
        "pos_weight": np.array([1.0, 2.0, 4.0], np.float32),
        "label_smoothing": 0.1,
        "mask": True,
    },
    "binary_probs": {"num_classes": 1, "activation": None, "label_smoothing": 0.2},
}


@pytest.mark.parametrize("case", list(SIGMOID_CASES), ids=list(SIGMOID_CASES))
def test_binary_cross_entropy_matches_reference(case):
    options = dict(SIGMOID_CASES[case])
    num_classes = options.pop("num_classes", C)
    activation = options.pop("activation", "sigmoid")
    if num_classes == 1:
        logits, labels, _ = make_data(
            3, num_classes=1, ignore=options.get("ignore_index") is not None
        )
        labels = labels if options.get("ignore_index") is not None else labels % 2
    else:
        logits, labels = multilabel(3)
    if activation is None:
        logits = sigmoid(logits).astype(np.float32)
    if options.pop("mask", False):
        options["mask"] = rng(9).uniform(size=(B, H, W)).astype(np.float32)
    check_all_reductions(
        jsl.cross_entropy_loss, np_cross_entropy, logits, labels, activation=activation, **options
    )


# ----------------------------------------------------------------------------------------------
# Peers: optax per pixel, PyTorch's CrossEntropyLoss reduction.


def test_maps_equal_optax_per_pixel():
    logits, labels, soft = make_data(10, scale=5.0)
    mlogits, targets = multilabel(12)

    @jax.jit
    def pairs(x, y, g, mx, t):
        return {
            "integer": (
                jsl.cross_entropy_map(x, y),
                optax.softmax_cross_entropy_with_integer_labels(x, y),
            ),
            "soft": (jsl.cross_entropy_map(x, g), optax.softmax_cross_entropy(x, g)),
            "smoothing": (
                jsl.cross_entropy_map(x, y, label_smoothing=0.1),
                optax.softmax_cross_entropy(x, optax.smooth_labels(jax.nn.one_hot(y, C), 0.1)),
            ),
            # The sigmoid form averages the channels of a pixel.
            "sigmoid": (
                jsl.cross_entropy_map(mx, t, activation="sigmoid"),
                optax.sigmoid_binary_cross_entropy(mx, t).mean(-1),
            ),
        }

    for name, (actual, expected) in pairs(logits, labels, soft, mlogits, targets).items():
        assert actual.shape == (B, H, W), name
        assert_close(actual, np.asarray(expected))


def test_pytorch_cross_entropy_weighted_smoothed_ignored():
    # torch.nn.CrossEntropyLoss(weight=w, ignore_index=255, label_smoothing=eps), reduction
    # "mean", from its documentation and aten/src/ATen/native/LossNLL.cpp
    # (cross_entropy_loss_label_smoothing):
    #   loss = (1 - eps) * sum_n w_{y_n} l_{n,y_n} / sum_n w_{y_n}
    #          + eps / C * sum_n sum_c w_c l_{n,c} / sum_n w_{y_n},  ignored n excluded.
    # Worked by hand for logits rows [2, 0, 1], [0, 1, 0], [1, 1, 1] (ignored), labels 0, 2,
    # w = [1, 2, 3], eps = 0.1:
    #   row 0: lse = ln(e^2 + 1 + e) = 2.40760596; l = [0.40760596, 2.40760596, 1.40760596]
    #   row 1: lse = ln(2 + e) = 1.55144471;       l = [1.55144471, 0.55144471, 1.55144471]
    #   nll = (1 * 0.40760596 + 3 * 1.55144471) / 4 = 1.26548503
    #   smooth = (9.44563579 + 7.30866828) / 4 / 3 = 1.39619201   (sum_c w_c l_c per row)
    #   loss = 0.9 * 1.26548503 + 0.1 * 1.39619201 = 1.27855572
    logits = np.array([[[2.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 1.0, 1.0]]], np.float32)
    labels = np.array([[0, 2, 255]])
    weights = np.array([1.0, 2.0, 3.0], np.float32)
    options = {"class_weights": weights, "ignore_index": 255}
    loss, summed, pixel_sum = jax.jit(
        lambda x, y: (
            jsl.cross_entropy_loss(x, y, label_smoothing=0.1, **options),
            jsl.cross_entropy_loss(x, y, reduction="sum", **options),
            jsl.cross_entropy_map(x, y, **options).sum(),
        )
    )(logits, labels)
    assert_close(loss, 1.27855572, rtol=1e-6)
    # PyTorch's reduction="sum", the unnormalised terms w_y l_y (0 when ignored), is the sum of
    # the per-pixel map; reduction="sum" here adds per-sample means (one sample: 1.26548503).
    assert_close(pixel_sum, 0.40760596 + 3 * 1.55144471, rtol=1e-6)
    assert_close(summed, 1.26548503, rtol=1e-6)


def test_pytorch_bce_with_logits_pos_weight():
    # torch.nn.BCEWithLogitsLoss(pos_weight=p): l = -[p y log s(x) + (1 - y) log s(-x)], mean
    # over elements. x = [1, -2], y = [1, 0], p = 3:
    #   3 * ln(1 + e^-1) = 0.93978506,  ln(1 + e^-2) = 0.12692801,  mean = 0.53335654
    logits = np.array([[[1.0], [-2.0]]], np.float32)
    labels = np.array([[1, 0]])
    loss = jax.jit(lambda x, y: jsl.cross_entropy_loss(x, y, activation="sigmoid", pos_weight=3.0))(
        logits, labels
    )
    assert_close(loss, 0.53335654, rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# Properties.


LOSSES = [jsl.cross_entropy_loss, jsl.focal_loss]


@pytest.mark.parametrize("loss_fn", LOSSES)
def test_mask_equals_slicing(loss_fn):
    # 1-D spatial: masking the last pixels equals dropping them.
    logits, labels, _ = make_data(21, shape=(3, 10))
    mask = jnp.broadcast_to(jnp.arange(10)[None, :] < 6, (3, 10))

    @jax.jit
    def both(x, y, m):
        masked = {r: loss_fn(x, y, mask=m, reduction=r) for r in REDUCTIONS}
        sliced = {r: loss_fn(x[:, :6], y[:, :6], reduction=r) for r in REDUCTIONS}
        return masked, sliced

    masked, sliced = both(logits, labels, mask)
    for reduction in REDUCTIONS:
        assert_close(masked[reduction], np.asarray(sliced[reduction]))


@pytest.mark.parametrize("loss_fn", LOSSES)
def test_ignore_index_equals_mask(loss_fn):
    logits, labels, _ = make_data(22, ignore=True)

    @jax.jit
    def both(x, y):
        ignored = loss_fn(x, y, ignore_index=255, reduction="none")
        masked = loss_fn(x, jnp.where(y == 255, 0, y), mask=y != 255, reduction="none")
        return ignored, masked

    ignored, masked = both(logits, labels)
    assert_close(ignored, np.asarray(masked), rtol=1e-6)


def test_onehot_targets_equal_integer_labels_with_weights_and_smoothing():
    logits, labels, _ = make_data(23)
    options = {"class_weights": WEIGHTS, "label_smoothing": 0.15}

    @jax.jit
    def both(x, y):
        dense = {
            r: jsl.cross_entropy_loss(x, jax.nn.one_hot(y, C), reduction=r, **options)
            for r in REDUCTIONS
        }
        sparse = {r: jsl.cross_entropy_loss(x, y, reduction=r, **options) for r in REDUCTIONS}
        return dense, sparse

    dense, sparse = both(logits, labels)
    for reduction in REDUCTIONS:
        assert_close(dense[reduction], np.asarray(sparse[reduction]))


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("cross_entropy_loss", {"class_weights": WEIGHTS, "label_smoothing": 0.1}),
        ("focal_loss", {"gamma": 2.0, "alpha": 0.25}),
    ],
)
def test_vmap_per_sample_equals_reduction_none(name, options):
    logits, labels, _ = make_data(24, ignore=True)
    mask = rng(3).uniform(size=labels.shape).astype(np.float32)
    per_sample = getattr(jsl.per_sample, name)
    batched = getattr(jsl, name)

    @jax.jit
    def both(x, y, m):
        vmapped = jax.vmap(lambda a, b, c: per_sample(a, b, mask=c, ignore_index=255, **options))
        return vmapped(x, y, m), batched(
            x, y, mask=m, ignore_index=255, reduction="none", **options
        )

    vmapped, expected = both(logits, labels, mask)
    assert_close(vmapped, np.asarray(expected), rtol=1e-6)


@pytest.mark.parametrize("loss_fn", LOSSES)
@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
def test_bf16_matches_f32(loss_fn, activation):
    logits, labels, _ = make_data(25)
    if activation == "sigmoid":
        logits, labels = multilabel(25)
    fn = jax.jit(functools.partial(loss_fn, activation=activation))
    low = logits.astype(jnp.bfloat16)
    out = fn(low, labels)
    assert out.dtype == jnp.float32
    # Exactly the f32 computation on the bf16-rounded logits: nothing is summed in bf16.
    assert_close(out, np.asarray(fn(low.astype(jnp.float32), labels)), rtol=1e-6)
    assert_close(out, np.asarray(fn(logits, labels)), rtol=2e-2)


def test_class_axis_one_equals_moveaxis():
    logits, labels, soft = make_data(26)

    @jax.jit
    def pairs(x, y, g):
        out = []
        for fn in LOSSES:
            out.append((fn(jnp.moveaxis(x, -1, 1), y, class_axis=1), fn(x, y)))
            out.append((fn(jnp.moveaxis(x, -1, 1), jnp.moveaxis(g, -1, 1), class_axis=1), fn(x, g)))
        return out

    for nchw, nhwc in pairs(logits, labels, soft):
        assert_close(nchw, np.asarray(nhwc))


EXTREME_FORMS = ["int", "dense", "sigmoid", "probs"]


def extreme_inputs(form, magnitude):
    # Confident right and confident wrong pixels, plus an ignored one.
    signs = jnp.array([1.0, -1.0, 1.0, -1.0])
    if form == "sigmoid":
        logits = (magnitude * signs).reshape(1, 4, 1)
        labels = jnp.array([[1, 1, 0, 255]])
        return logits, labels, {"activation": "sigmoid", "ignore_index": 255}
    logits = jnp.stack([magnitude * signs, -magnitude * signs, jnp.zeros(4)], axis=-1)[None]
    labels = jnp.array([[0, 0, 2, 255]])
    if form == "dense":
        return logits, jax.nn.one_hot(labels, 3), {}
    if form == "probs":
        probs = jnp.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.5, 0.0], [1.0, 0.0, 0.0]]])
        return probs, labels, {"activation": None, "ignore_index": 255}
    return logits, labels, {"ignore_index": 255}


@pytest.mark.parametrize("magnitude", [100.0, 1e4])
@pytest.mark.parametrize("form", EXTREME_FORMS)
def test_finite_values_gradients_hessians_at_extremes(form, magnitude):
    logits, labels, options = extreme_inputs(form, magnitude)
    gammas = (0.0, 0.25, 0.5, 2.0)

    def losses(x):
        ce = jsl.cross_entropy_loss(x, labels, label_smoothing=0.1, **options)
        focal = [jsl.focal_loss(x, labels, gamma=g, alpha=0.25, **options) for g in gammas]
        return jnp.stack([ce, *focal])

    @jax.jit
    def derivatives(x):
        # Rows: CE, then focal for each γ; gradients (and Hessians at ±100) of each row.
        hessians = jax.jacfwd(jax.jacrev(losses))(x) if magnitude == 100.0 else jnp.zeros(())
        return losses(x), jax.jacrev(losses)(x), hessians

    values, grads, hessians = derivatives(logits)
    assert np.all(np.isfinite(values)) and np.all(np.asarray(values) > 0)
    assert np.all(np.isfinite(grads))
    assert np.all(np.isfinite(hessians))


@pytest.mark.parametrize("loss_fn", LOSSES)
def test_all_ignored_gives_zero_loss_and_zero_gradient(loss_fn):
    logits, _, _ = make_data(27, scale=50.0)
    labels = jnp.full((B, H, W), 255)

    @jax.jit
    def everything(x):
        out = {}
        for r in REDUCTIONS:
            fn = lambda z, r=r: jnp.sum(loss_fn(z, labels, ignore_index=255, reduction=r))  # noqa: E731
            out[r] = jax.value_and_grad(fn)(x)
            out["masked_" + r] = loss_fn(x, labels % 3, mask=jnp.zeros((B, H, W)), reduction=r)
        return out

    out = everything(logits)
    for r in REDUCTIONS:
        value, grad = out[r]
        assert value == 0.0
        assert np.all(grad == 0.0)
        assert np.all(np.asarray(out["masked_" + r]) == 0.0)


def test_one_sample_fully_ignored_gives_zero_for_that_sample_only():
    logits, labels, _ = make_data(28)
    labels[0] = 255
    fn = jax.jit(
        lambda x, y: [
            jsl.cross_entropy_loss(x, y, ignore_index=255, reduction=r) for r in ("none", "mean")
        ]
    )
    per_sample, mean = fn(logits, labels)
    assert per_sample[0] == 0.0 and per_sample[1] > 0.0
    # The batch mean is over valid pixels, so it equals the second sample's mean.
    assert_close(mean, float(per_sample[1]))


def test_label_out_of_range_without_ignore_index_is_nan():
    logits, labels, _ = make_data(34)
    labels[0, 0, 0] = 255
    values = jax.jit(
        lambda x, y: [
            jsl.cross_entropy_loss(x, y),
            jsl.cross_entropy_loss(x, y, class_weights=WEIGHTS),
            jsl.focal_loss(x, y, alpha=0.25),
        ]
    )(logits, labels)
    assert all(np.isnan(v) for v in values)


def test_probabilities_of_zero_are_clamped():
    # log 0 would be -inf; float32 clamps the log at ln(tiny) / 2 (PyTorch's BCELoss at -100).
    probs = jnp.array([[[0.0, 1.0], [1.0, 0.0]]])
    labels = jnp.array([[0, 0]])
    value, grad = jax.jit(
        jax.value_and_grad(lambda p: jsl.cross_entropy_loss(p, labels, activation=None))
    )(probs)
    assert_close(value, -np.log(TINY32) / 4, rtol=1e-6)
    assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("loss_fn", LOSSES)
def test_check_grads(loss_fn):
    logits, labels, _ = make_data(29, shape=(1, 3, 2))
    fn = jax.jit(
        lambda x: (
            loss_fn(x, labels, label_smoothing=0.1)
            if loss_fn is jsl.cross_entropy_loss
            else loss_fn(x, labels, gamma=1.5, alpha=0.25)
        )
    )
    check_grads(fn, (logits,), order=1, modes=("rev",), atol=1e-2, rtol=1e-2)


def test_maps_are_the_per_pixel_terms_of_the_means_and_zero_where_ignored():
    logits, labels, _ = make_data(30, ignore=True)
    valid = np.asarray(labels) != 255
    # Each sample's mean divides its map's sum by its valid weight: Σ w_y for weighted CE (the
    # label's class weight), the number of valid pixels for focal.
    label_weight = WEIGHTS[np.where(valid, labels, 0)] * valid
    cases = [
        (jsl.cross_entropy_map, jsl.cross_entropy_loss, {"class_weights": WEIGHTS}, label_weight),
        (jsl.focal_map, jsl.focal_loss, {"alpha": 0.25}, valid.astype(np.float64)),
    ]

    @jax.jit
    def maps_and_means(x, y):
        return [
            (
                map_fn(x, y, ignore_index=255, **options),
                loss_fn(x, y, ignore_index=255, reduction="none", **options),
                loss_fn(x, y, ignore_index=255, **options),
            )
            for map_fn, loss_fn, options, _ in cases
        ]

    for (pixel_map, per_sample, mean), case in zip(
        maps_and_means(logits, labels), cases, strict=True
    ):
        normaliser = case[3]
        assert pixel_map.shape == (B, H, W)
        assert np.all(np.asarray(pixel_map)[~valid] == 0.0)
        pixel_map = np.asarray(pixel_map, np.float64)
        assert_close(per_sample, pixel_map.sum((1, 2)) / normaliser.sum((1, 2)))
        assert_close(mean, pixel_map.sum() / normaliser.sum())


def test_axis_name_mean_is_exact_across_devices():
    # vmap with an axis name stands in for shard_map/pmap: psum works the same way.
    logits, labels, _ = make_data(31, shape=(4, 3, 2), ignore=True)
    labels[0] = 255  # devices hold different numbers of valid pixels

    def split(a):
        return a.reshape(2, 2, *a.shape[1:])

    @jax.jit
    def sharded_and_global(x, y):
        out = []
        for loss_fn in LOSSES:
            for r in ("mean", "sum"):
                per_device = jax.vmap(
                    lambda a, b, f=loss_fn, r=r: f(
                        a, b, ignore_index=255, axis_name="devices", reduction=r
                    ),
                    axis_name="devices",
                )(split(x), split(y))
                out.append((per_device, loss_fn(x, y, ignore_index=255, reduction=r)))
        return out

    for per_device, expected in sharded_and_global(logits, labels):
        assert_close(per_device, np.full(2, float(expected)))


def test_one_compilation_per_shape():
    traces = []

    @jax.jit
    def step(logits, labels):
        traces.append(1)
        return jsl.cross_entropy_loss(logits, labels, ignore_index=255) + jsl.focal_loss(
            logits, labels, ignore_index=255
        )

    for seed in range(3):
        logits, labels, _ = make_data(seed, ignore=True)
        step(logits, labels)
    assert len(traces) == 1
    logits, labels, _ = make_data(0, shape=(B, 3, 3))
    step(logits, labels)
    assert len(traces) == 2


def test_traced_options():
    logits, labels, _ = make_data(32)
    fn = jax.jit(
        lambda x, y, gamma, eps: (
            jsl.focal_loss(x, y, gamma=gamma) + jsl.cross_entropy_loss(x, y, label_smoothing=eps)
        )
    )
    expected = np_focal(logits, labels, gamma=2.0) + np_cross_entropy(
        logits, labels, label_smoothing=0.1
    )
    assert_close(fn(logits, labels, 2.0, 0.1), expected)


# The Poly-1 and top-k tests and the focal class-weight tests below use their own shape.
SHAPE = (2, 4, 5)
P = functools.partial


# ----------------------------------------------------------------------------------------------
# Poly-1.


@jax.jit
def _poly_values(x, y, onehot, m):
    grad = jax.grad(lambda x: jsl.poly_cross_entropy_loss(x, y, epsilon=2.0, mask=m))(x)
    return {
        "none": jsl.poly_cross_entropy_loss(x, y, epsilon=2.0, reduction="none"),
        "optax": optax.losses.poly_loss_cross_entropy(x, onehot, epsilon=2.0),
        "dense": jsl.poly_cross_entropy_loss(x, onehot, epsilon=2.0, reduction="none"),
        "masked": jsl.poly_cross_entropy_loss(x, y, epsilon=2.0, mask=m),
        "smoothed": jsl.poly_cross_entropy_loss(
            x, y, epsilon=-1.0, label_smoothing=0.1, class_weights=jnp.array([0.5, 1.0, 2.0])
        ),
        "ce": jsl.poly_cross_entropy_loss(x, y, epsilon=0.0, ignore_index=2),
        "ce_ref": jsl.cross_entropy_loss(x, y, ignore_index=2),
        "sigmoid": jsl.poly_cross_entropy_loss(
            x[..., :1], y % 2, activation="sigmoid", epsilon=1.5, label_smoothing=0.2
        ),
        "grad": grad,
    }


def test_poly_matches_optax_and_the_formula():
    x, y, m = random_batch(0, SHAPE, C, masked=0.3)
    onehot = np.eye(C, dtype=np.float32)[y]
    out = _poly_values(x, y, onehot, m)
    optax_per_sample = np.asarray(out["optax"]).reshape(B, -1).mean(1)
    assert_close(out["none"], optax_per_sample)
    assert_close(out["dense"], optax_per_sample)
    p = np.exp(log_softmax(x))
    ce, _ = pixel_cross_entropy(x, y)
    per_pixel = ce + 2.0 * (1 - np.take_along_axis(p, y[..., None], -1)[..., 0])
    assert_close(out["masked"], (m * per_pixel).sum() / m.sum())
    # Smoothed, weighted: sum_c w_c g~_c (-log p_c + eps (1 - p_c)) / sum w_y.
    w = np.array([0.5, 1.0, 2.0])
    target = 0.9 * np.eye(C)[y] + 0.1 / C
    loss = (w * target * (-log_softmax(x) - 1.0 * (1 - p))).sum(-1)
    assert_close(out["smoothed"], loss.sum() / w[y].sum())
    assert_close(out["ce"], out["ce_ref"])
    # Sigmoid: BCE(g~) + eps (1 - p_t), g~ = 0.8 g + 0.1.
    z = x[..., 0].astype(np.float64)
    g = 0.8 * (y % 2) + 0.1
    q = 1 / (1 + np.exp(-z))
    bce = -(g * np.log(q) + (1 - g) * np.log(1 - q))
    assert_close(out["sigmoid"], (bce + 1.5 * (1 - (g * q + (1 - g) * (1 - q)))).mean())
    assert all_finite(out["grad"])
    assert not np.any(np.asarray(out["grad"])[m == 0])


# ----------------------------------------------------------------------------------------------
# Top-k.


@jax.jit
def _topk_values(x, y, m):
    w = jnp.array([0.5, 1.0, 2.0])
    batch = P(jsl.topk_cross_entropy_loss, k=25.0, aggregate="batch")
    return {
        "none": jsl.topk_cross_entropy_loss(x, y, k=10.0, mask=m, reduction="none"),
        "mean": jsl.topk_cross_entropy_loss(x, y, k=10.0, mask=m),
        "ignore": jsl.topk_cross_entropy_loss(x, y, k=30.0, ignore_index=1, reduction="none"),
        "weighted": jsl.topk_cross_entropy_loss(
            x, y, k=50.0, class_weights=w, label_smoothing=0.1, reduction="none"
        ),
        "batch": batch(x, y),
        "all": jsl.topk_cross_entropy_loss(x, y, k=100.0, reduction="none"),
        "ce": jsl.cross_entropy_loss(x, y, reduction="none"),
        "empty": jsl.topk_cross_entropy_loss(x, y, mask=jnp.zeros_like(m)),
        "grad": jax.grad(lambda x: jsl.topk_cross_entropy_loss(x, y, k=10.0, mask=m))(x),
        "empty_grad": jax.grad(lambda x: batch(x, y, mask=jnp.zeros_like(m)))(x),
        "per_sample": jax.vmap(P(jsl.per_sample.topk_cross_entropy_loss, k=10.0))(x, y, mask=m),
    }


def test_topk_matches_the_reference_with_mask_ignore_and_weights():
    x, y, m = random_batch(1, SHAPE, C, masked=0.3)
    out = _topk_values(x, y, m)
    ce, _ = pixel_cross_entropy(x, y)
    flat, valid = ce.reshape(B, -1), (m > 0).reshape(B, -1)
    per_sample = top_k_mean(flat, valid, 10.0)
    assert_close(out["none"], per_sample)
    assert_close(out["per_sample"], per_sample)
    assert_close(out["mean"], per_sample.mean())
    assert_close(out["ignore"], top_k_mean(flat, (y != 1).reshape(B, -1), 30.0))
    wce, _ = pixel_cross_entropy(x, y, [0.5, 1.0, 2.0], 0.1)
    assert_close(out["weighted"], top_k_mean(wce.reshape(B, -1), np.ones_like(valid), 50.0))
    # nnU-Net's TopKLoss(k=25): torch.topk of int(N k / 100) of all the batch's voxels, mean.
    everything = np.sort(ce.ravel())[::-1]
    assert_close(out["batch"], everything[: int(everything.size * 25 / 100)].mean())
    assert_close(out["all"], out["ce"])
    assert float(out["empty"]) == 0.0 and not np.any(np.asarray(out["empty_grad"]))
    grad = np.asarray(out["grad"])
    assert all_finite(grad) and not np.any(grad[m == 0])
    # Only the selected pixels (1 or 2 per sample) receive gradient.
    assert 2 <= np.count_nonzero(np.abs(grad).sum(-1)) <= 4


def test_topk_over_the_batch_is_refused_where_it_cannot_be_split():
    x, y, _ = random_batch(2, SHAPE, C, masked=0.3)
    batch = P(jsl.topk_cross_entropy_loss, aggregate="batch")
    with pytest.raises(ValueError, match="cannot be pooled over the mapped axis"):
        jsl.topk_cross_entropy_loss(x, y, aggregate="batch", axis_name="data")
    with pytest.raises(ValueError, match="aggregate='sample' to accumulate"):
        jsl.accumulate.value_and_grad(
            lambda p, v: v + p, jnp.zeros(()), x, y, loss=batch, num_microbatches=2
        )
    with pytest.raises(TypeError, match=r"`k` must be a Python number.*got str"):
        jsl.topk_cross_entropy_loss(x, y, k="10")
    with pytest.raises(ValueError, match=r"`k` must be a percentage in \(0, 100\]; got 0"):
        jsl.topk_cross_entropy_loss(x, y, k=0)
    with pytest.raises(ValueError, match=r"`epsilon` must be finite and lie in \[-1"):
        jsl.poly_cross_entropy_loss(x, y, epsilon=-2.0)


# ----------------------------------------------------------------------------------------------
# axis_name: Poly-1, top-k and class-weighted focal, psummed over a mapped axis, equal the whole
# batch.


@jax.jit
def _mapped_and_whole(x, y, m):
    losses = {
        "poly": P(jsl.poly_cross_entropy_loss, label_smoothing=0.1),
        "topk": P(jsl.topk_cross_entropy_loss, k=30.0),
        "focal": P(jsl.focal_loss, class_weights=jnp.array([0.5, 1.0, 2.0])),
    }

    def call(x, y, m, axis_name):
        return {
            k: fn(x, y, mask=m, ignore_index=2, axis_name=axis_name) for k, fn in losses.items()
        }

    def split(a):
        return a.reshape(2, 1, *a.shape[1:])

    mapped = jax.vmap(P(call, axis_name="devices"), axis_name="devices")(
        split(x), split(y), split(m)
    )
    return mapped, call(x, y, m, None)


def test_poly_topk_and_weighted_focal_add_over_a_mapped_axis():
    x, y, m = random_batch(7, SHAPE, C, masked=0.3)
    mapped, whole = _mapped_and_whole(x, y, m)
    for name, value in whole.items():
        assert_close(mapped[name][0], value, err_msg=name)
        assert_close(mapped[name][1], value, err_msg=name)


# ----------------------------------------------------------------------------------------------
# Bad input.


def test_errors():
    logits, labels, _ = make_data(33)
    with pytest.raises(ValueError, match=r"`class_weights` must have shape \(3,\).*got \(2,\)"):
        jsl.cross_entropy_loss(logits, labels, class_weights=jnp.ones(2))
    with pytest.raises(ValueError, match=r"`pos_weight`.*categorical"):
        jsl.cross_entropy_loss(logits, labels, pos_weight=2.0)
    with pytest.raises(ValueError, match=r"`pos_weight` must have shape \(3,\)"):
        mlogits, targets = multilabel(0)
        jsl.cross_entropy_loss(mlogits, targets, activation="sigmoid", pos_weight=jnp.ones(2))
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"`label_smoothing` must .*\[0, 1\)"):
            jsl.cross_entropy_loss(logits, labels, label_smoothing=bad)
    with pytest.raises(ValueError, match=r"`gamma` must be finite and non-negative; got -1\.0"):
        jsl.focal_loss(logits, labels, gamma=-1.0)
    with pytest.raises(ValueError, match=r"`alpha` must be finite and lie in \[0, 1\]; got 1.5"):
        jsl.focal_loss(logits, labels, alpha=1.5)
    with pytest.raises(ValueError, match=r"`alpha` must have shape \(3,\)"):
        jsl.focal_loss(logits, labels, alpha=jnp.ones(4))
    for fn in (jsl.cross_entropy_loss, jsl.focal_loss, jsl.cross_entropy_map, jsl.focal_map):
        with pytest.raises(ValueError, match="`activation` must be one of"):
            fn(logits, labels, activation="log_softmax")
        with pytest.raises(ValueError, match="`labels` must have shape"):
            fn(logits, labels[:, :2])
        with pytest.raises(TypeError, match="`logits` must have a floating dtype"):
            fn(labels[..., None].repeat(3, -1), labels)
    for fn in (jsl.cross_entropy_loss, jsl.focal_loss):
        with pytest.raises(ValueError, match="`reduction` must be one of"):
            fn(logits, labels, reduction="batch")
    with pytest.raises(ValueError, match="`ignore_index` applies to integer labels"):
        jsl.cross_entropy_loss(logits, jax.nn.one_hot(labels, C), ignore_index=255)
    with pytest.raises(ValueError, match="needs dense float targets"):
        jsl.cross_entropy_loss(logits, labels, activation="sigmoid")
