"""Cross-entropy and focal loss: NumPy references, peers (optax, PyTorch semantics), properties."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads

import jaxseg_losses as jsl

# ----------------------------------------------------------------------------------------------
# NumPy reference, float64, written from the docstring equations (shares no code with the
# package): per-pixel loss l_i and normaliser v_i, pixel weights m_i, then
#   none_b = sum_b m l / sum_b m v  (0 when empty),  sum = sum_b none_b,  mean = sum m l / sum m v.

TINY32 = float(np.finfo(np.float32).tiny)


def np_log_softmax(x):
    shifted = x - x.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def np_log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def np_canonical(logits, labels, *, activation, class_axis, ignore_index, mask):
    """[B, P, C] float64 logits, [B, P, C] targets (one-hot for ints), [B, P] pixel weights."""
    x = np.moveaxis(np.asarray(logits, np.float64), class_axis, -1)
    batch, num_classes = x.shape[0], x.shape[-1]
    x = x.reshape(batch, -1, num_classes)
    labels = np.asarray(labels)
    weights = np.ones(x.shape[:2])
    if mask is not None:
        weights = np.asarray(mask, np.float64).reshape(batch, -1)
    if np.issubdtype(labels.dtype, np.floating):
        g = np.moveaxis(labels.astype(np.float64), class_axis, -1).reshape(x.shape)
    else:
        flat = labels.reshape(batch, -1)
        if ignore_index is not None:
            weights = weights * (flat != ignore_index)
            flat = np.where(flat == ignore_index, 0, flat)
        if num_classes == 1:
            g = (flat == 1)[..., None].astype(np.float64)
        else:
            g = np.eye(num_classes)[flat]
    return x, g, weights


def np_reduce(loss, norm, weights, reduction):
    num, den = weights * loss, weights * norm
    n, d = num.sum(1), den.sum(1)
    per_sample = np.where(d > 0, n / np.where(d > 0, d, 1), 0.0)
    if reduction == "none":
        return per_sample
    if reduction == "sum":
        return per_sample.sum()
    return num.sum() / den.sum() if den.sum() > 0 else 0.0


def binary_form(activation, num_classes):
    return activation == "sigmoid" or (activation is None and num_classes == 1)


def np_cross_entropy(
    logits,
    labels,
    *,
    activation="softmax",
    class_axis=-1,
    class_weights=None,
    pos_weight=None,
    label_smoothing=0.0,
    ignore_index=None,
    mask=None,
    reduction="mean",
):
    x, g, weights = np_canonical(
        logits,
        labels,
        activation=activation,
        class_axis=class_axis,
        ignore_index=ignore_index,
        mask=mask,
    )
    num_classes = x.shape[-1]
    w = np.ones(num_classes) if class_weights is None else np.asarray(class_weights, np.float64)
    eps = label_smoothing
    if binary_form(activation, num_classes):
        if activation == "sigmoid":
            log_p, log_q = np_log_sigmoid(x), np_log_sigmoid(-x)
        else:
            log_p, log_q = np.log(x), np.log(1 - x)
        rho = 1.0 if pos_weight is None else np.asarray(pos_weight, np.float64)
        gs = g * (1 - eps) + eps / 2
        per_channel = w * (-(rho * gs * log_p) - (1 - gs) * log_q)
        return np_reduce(per_channel.mean(-1), np.ones(x.shape[:2]), weights, reduction)
    log_p = np_log_softmax(x) if activation == "softmax" else np.log(x)
    gs = (1 - eps) * g + eps / num_classes
    loss = -(w * gs * log_p).sum(-1)
    norm = (w * g).sum(-1) if class_weights is not None else np.ones(x.shape[:2])
    return np_reduce(loss, norm, weights, reduction)


def np_focal(
    logits,
    labels,
    *,
    gamma=2.0,
    alpha=None,
    activation="softmax",
    class_axis=-1,
    ignore_index=None,
    mask=None,
    reduction="mean",
):
    x, g, weights = np_canonical(
        logits,
        labels,
        activation=activation,
        class_axis=class_axis,
        ignore_index=ignore_index,
        mask=mask,
    )
    num_classes = x.shape[-1]
    if binary_form(activation, num_classes):
        p = 1 / (1 + np.exp(-x)) if activation == "sigmoid" else x
        p_t = p * g + (1 - p) * (1 - g)
        ce = -(g * np.log(p) + (1 - g) * np.log(1 - p))
        a = 1.0 if alpha is None else np.asarray(alpha, np.float64)
        a_t = 1.0 if alpha is None else a * g + (1 - a) * (1 - g)
        loss = (a_t * (1 - p_t) ** gamma * ce).mean(-1)
        return np_reduce(loss, np.ones(x.shape[:2]), weights, reduction)
    p = np.exp(np_log_softmax(x)) if activation == "softmax" else x
    if alpha is None:
        a = np.ones(num_classes)
    elif np.ndim(alpha) == 0:
        a = np.array([1 - alpha] + [alpha] * (num_classes - 1))
    else:
        a = np.asarray(alpha, np.float64)
    loss = -(a * g * (1 - p) ** gamma * np.log(p)).sum(-1)
    return np_reduce(loss, np.ones(x.shape[:2]), weights, reduction)


# ----------------------------------------------------------------------------------------------
# Data.

B, H, W, C = 2, 5, 4, 3


def rng(seed):
    return np.random.default_rng(seed)


def np_softmax(x):
    return np.exp(np_log_softmax(x))


def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def one_hot(labels, num_classes):
    return np.eye(num_classes, dtype=np.float32)[np.asarray(labels)]


def make_data(seed=0, *, num_classes=C, scale=2.0, ignore=False, shape=(B, H, W)):
    """float32 logits, int32 labels (30% set to 255 with ``ignore``), soft targets: NumPy."""
    r = rng(seed)
    logits = (scale * r.standard_normal((*shape, num_classes))).astype(np.float32)
    labels = r.integers(0, max(num_classes, 2), shape).astype(np.int32)
    if ignore:
        labels = np.where(r.uniform(size=shape) < 0.3, 255, labels).astype(np.int32)
    soft = np_softmax(r.standard_normal((*shape, num_classes))).astype(np.float32)
    return logits, labels, soft


def probabilities_of(logits):
    return np_softmax(logits).astype(np.float32)


def multilabel(seed=0, num_classes=C):
    r = rng(seed)
    logits = (2.0 * r.standard_normal((B, H, W, num_classes))).astype(np.float32)
    targets = (r.uniform(size=(B, H, W, num_classes)) < 0.4).astype(np.float32)
    return logits, targets


def assert_close(actual, expected, *, rtol=2e-5, atol=2e-6):
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=rtol, atol=atol)


REDUCTIONS = ("mean", "sum", "none")


def check_all_reductions(loss_fn, reference, logits, labels, **options):
    """One jit computes every reduction; each must match the NumPy reference."""
    fn = jax.jit(lambda x, y: {r: loss_fn(x, y, reduction=r, **options) for r in REDUCTIONS})
    actual = fn(logits, labels)
    for reduction in REDUCTIONS:
        value = actual[reduction]
        assert value.dtype == jnp.float32
        assert value.shape == (() if reduction != "none" else (logits.shape[0],))
        assert_close(value, reference(logits, labels, reduction=reduction, **options))


# ----------------------------------------------------------------------------------------------
# Cross-entropy against the reference, every option branch, under jit.

WEIGHTS = np.array([0.5, 2.0, 1.5], np.float32)

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


def resolve_case(case, seed=0):
    case = dict(case)
    logits, labels, soft = make_data(seed, ignore=case.get("ignore_index") is not None)
    kind = case.pop("labels", "int")
    if kind == "onehot":
        labels = one_hot(labels, C)
    elif kind == "soft":
        labels = soft
    if case.get("activation", "softmax") is None:
        logits = probabilities_of(logits)
    mask = case.pop("mask", None)
    if mask is not None:
        u = rng(seed + 7).uniform(size=labels.shape[:3]).astype(np.float32)
        case["mask"] = u > 0.3 if mask == "bool" else np.where(u > 0.3, u, np.float32(0.0))
    if case.get("class_axis") == 1:
        logits = np.moveaxis(logits, -1, 1)
        if kind != "int":
            labels = np.moveaxis(labels, -1, 1)
    return logits, labels, case


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
        logits = np_sigmoid(logits).astype(np.float32)
    if options.pop("mask", False):
        options["mask"] = rng(9).uniform(size=(B, H, W)).astype(np.float32)
    check_all_reductions(
        jsl.cross_entropy_loss, np_cross_entropy, logits, labels, activation=activation, **options
    )


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
        logits = np_sigmoid(logits).astype(np.float32)
    check_all_reductions(jsl.focal_loss, np_focal, logits, labels, activation=activation, **options)


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
        logits, labels = np_sigmoid(logits[..., :1]).astype(np.float32), labels % 2
        options = {"activation": None}
    for reduction in ("mean", "none"):
        focal = functools.partial(jsl.focal_loss, gamma=0.0, reduction=reduction, **options)
        ce = functools.partial(jsl.cross_entropy_loss, reduction=reduction, **options)
        np.testing.assert_array_equal(jax.jit(focal)(logits, labels), jax.jit(ce)(logits, labels))


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
