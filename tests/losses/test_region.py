"""Region losses: values against the NumPy reference for every option branch, and properties."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxseg_losses as jsl
from tests.helpers import (
    all_finite,
    assert_close,
    jit_call,
    log_softmax,
    random_batch,
    random_inputs,
    softmax,
)
from tests.references import region as ref

LOSSES = {
    "iou": jsl.iou_loss,
    "dice": jsl.dice_loss,
    "tversky": jsl.tversky_loss,
    "generalized_dice": jsl.generalized_dice_loss,
}
RTOL, ATOL = 2e-5, 2e-6


def all_losses(logits, labels, *, mask=None, per_loss=None, **options):
    """Every region loss of the same inputs, as a dict, from one jitted function.

    ``options`` are bound statically (lists become tuples); the jitted function is cached per
    option set, so equal shapes and options compile once.
    """
    per_loss = tuple((k, tuple(sorted(v.items()))) for k, v in (per_loss or {}).items())
    static = tuple(
        sorted((k, tuple(v) if isinstance(v, list | np.ndarray) else v) for k, v in options.items())
    )
    return _all_losses_fn(static, per_loss)(logits, labels, mask)


@functools.cache
def _all_losses_fn(static, per_loss):
    options, extra = dict(static), {k: dict(v) for k, v in per_loss}

    @jax.jit
    def run(x, y, mask):
        return {
            name: fn(x, y, mask=mask, **options, **extra.get(name, {}))
            for name, fn in LOSSES.items()
        }

    return run


# ----------------------------------------------------------------------------------------------
# Every option branch against the reference, on 1-D, 2-D and 3-D inputs, under jax.jit.

TVERSKY_OPTIONS = [
    dict(alpha=0.3, beta=0.7, gamma=1.0),
    dict(alpha=0.7, beta=0.3, gamma=2.0),
    dict(alpha=0.5, beta=0.5, gamma=0.5),
    dict(alpha=1.0, beta=1.0, gamma=4 / 3),
    dict(alpha=0.2, beta=0.8, gamma=0.75),
]
GDL_OPTIONS = [dict(weight_type=w) for w in ("square", "simple", "uniform")]

# (data options, loss options). Data: spatial, num_classes, target, activation, ignore_index,
# mask, class_axis, and "absent" (labels restricted to {0, 1} so other classes are absent).
REFERENCE_CASES = [
    (dict(spatial=(7,), num_classes=3), dict()),
    (dict(spatial=(4, 5), num_classes=3), dict(smooth=0.0, log=True, reduction="none")),
    (
        dict(spatial=(2, 3, 4), num_classes=4, ignore_index=255, mask="bool", class_axis=1),
        dict(class_weights=[0.5, 1.0, 2.0, 0.25], reduction="sum"),
    ),
    (dict(spatial=(4, 5), num_classes=1, activation="sigmoid"), dict(aggregate="batch")),
    (
        dict(spatial=(6,), num_classes=1, target="onehot", activation="sigmoid", mask="float"),
        dict(log=True, smooth=0.5),
    ),
    (
        dict(
            spatial=(2, 3, 2), num_classes=1, activation="sigmoid", ignore_index=255, class_axis=1
        ),
        dict(smooth=0.0, reduction="none"),
    ),
    (
        dict(spatial=(3, 4), num_classes=3, target="onehot", activation="sigmoid"),
        dict(include_background=False, reduction="none"),
    ),
    (
        dict(spatial=(3, 4), num_classes=3, target="soft", activation="sigmoid"),
        dict(aggregate="batch", smooth=0.5),
    ),
    (
        dict(spatial=(5,), num_classes=3, target="onehot", class_axis=1),
        dict(include_background=False, class_weights=[3.0, 1.0, 0.5]),
    ),
    (
        dict(spatial=(2, 2, 3), num_classes=3, target="soft", mask="bool"),
        dict(log=True, smooth=1e-5),
    ),
    (
        dict(spatial=(4, 4), num_classes=3, activation=None, ignore_index=255, class_axis=1),
        dict(aggregate="batch", reduction="sum"),
    ),
    (dict(spatial=(6,), num_classes=2, target="soft", activation=None), dict(smooth=2.0)),
    (
        dict(spatial=(2, 2, 2), num_classes=2, mask="float"),
        dict(aggregate="batch", log=True, include_background=False),
    ),
    (
        dict(spatial=(3, 3), num_classes=4, absent=True),
        dict(smooth=0.0, class_weights=[1.0, 2.0, 1.0, 1.0], reduction="none"),
    ),
    (
        dict(spatial=(3, 3), num_classes=4, absent=True, mask="bool"),
        dict(smooth=1e-5, aggregate="batch", include_background=False),
    ),
]


@pytest.mark.parametrize("index", range(len(REFERENCE_CASES)))
def test_losses_match_reference(index):
    data_options, loss_options = REFERENCE_CASES[index]
    data_options = dict(data_options)
    absent = data_options.pop("absent", False)
    data = random_inputs(100 + index, batch=3, **data_options)
    if absent:
        data["labels"] = data["labels"] % 2
    options = dict(loss_options)
    options.update(
        activation=data_options.get("activation", "softmax"),
        class_axis=data_options.get("class_axis", -1),
        ignore_index=data_options.get("ignore_index"),
    )
    if "mask" in data:
        options["mask"] = data["mask"]
    per_loss = {
        "tversky": TVERSKY_OPTIONS[index % len(TVERSKY_OPTIONS)],
        "generalized_dice": GDL_OPTIONS[index % len(GDL_OPTIONS)],
    }
    got = all_losses(data["logits"], data["labels"], per_loss=per_loss, **options)
    for name, value in got.items():
        want = ref.region_loss(
            name, data["logits"], data["labels"], **options, **per_loss.get(name, {})
        )
        assert value.dtype == jnp.float32
        assert value.shape == np.shape(want), name
        np.testing.assert_allclose(value, want, rtol=RTOL, atol=ATOL, err_msg=name)


def test_docstring_example_values():
    logits = np.array([[[4.0, -4.0], [-4.0, 4.0], [4.0, -4.0]]], np.float32)
    labels = np.array([[0, 1, 1]])
    got = all_losses(logits, labels, smooth=0.0, per_loss={"tversky": dict(alpha=0.3, beta=0.7)})
    for name, value in got.items():
        want = ref.region_loss(
            name,
            logits,
            labels,
            smooth=0.0,
            **({"alpha": 0.3, "beta": 0.7} if name == "tversky" else {}),
        )
        np.testing.assert_allclose(value, want, rtol=1e-5, err_msg=name)


# ----------------------------------------------------------------------------------------------
# The reference article and the special cases.


@pytest.mark.parametrize("num_classes", [1, 3])
def test_article_formula_literally(num_classes):
    # Rahman & Wang 2016: I = sum(X * Y), U = sum(X) + sum(Y) - I, loss = 1 - (I + 1) / (U + 1),
    # or -ln((I + 1) / (U + 1)); per sample and class, then averaged.
    activation = "sigmoid" if num_classes == 1 else "softmax"
    data = random_inputs(7, batch=2, spatial=(4, 4), num_classes=num_classes, activation=activation)
    x = data["logits"].astype(np.float64)
    if num_classes == 1:
        X = 1.0 / (1.0 + np.exp(-x))
        Y = (data["labels"] == 1)[..., None].astype(np.float64)
    else:
        X = np.exp(x) / np.exp(x).sum(-1, keepdims=True)
        Y = np.eye(num_classes)[data["labels"]]
    intersection = (X * Y).sum(axis=(1, 2))
    union = X.sum(axis=(1, 2)) + Y.sum(axis=(1, 2)) - intersection
    article_ratio = (intersection + 1.0) / (union + 1.0)

    @jax.jit
    def losses(logits, labels):
        return (
            jsl.iou_loss(logits, labels, activation=activation, smooth=1.0),
            jsl.iou_loss(logits, labels, activation=activation, smooth=1.0, log=True),
        )

    plain, log = losses(data["logits"], data["labels"])
    np.testing.assert_allclose(plain, np.mean(1.0 - article_ratio), rtol=1e-5)
    np.testing.assert_allclose(log, np.mean(-np.log(article_ratio)), rtol=1e-5)


@pytest.mark.parametrize(
    "target,activation,num_classes",
    [("int", "softmax", 3), ("soft", "softmax", 3), ("onehot", "sigmoid", 1), ("soft", None, 2)],
)
def test_tversky_special_cases(target, activation, num_classes):
    data = random_inputs(
        11, spatial=(3, 5), num_classes=num_classes, target=target, activation=activation
    )
    common = dict(activation=activation)

    @jax.jit
    def run(x, y):
        def tversky(a, b, **kw):
            return jsl.tversky_loss(x, y, alpha=a, beta=b, **common, **kw)

        return {
            "dice": (tversky(0.5, 0.5, smooth=0.0), jsl.dice_loss(x, y, smooth=0.0, **common)),
            "iou": (tversky(1.0, 1.0, smooth=0.0), jsl.iou_loss(x, y, smooth=0.0, **common)),
            "dice_log": (
                tversky(0.5, 0.5, smooth=0.0, log=True),
                jsl.dice_loss(x, y, smooth=0.0, log=True, **common),
            ),
            # (TP + s) / (TP + FP/2 + FN/2 + s) = (2TP + 2s) / (2TP + FP + FN + 2s)
            "dice_smooth": (
                tversky(0.5, 0.5, smooth=0.7),
                jsl.dice_loss(x, y, smooth=1.4, **common),
            ),
            "gamma_one": (
                tversky(0.3, 0.7, gamma=1.0),
                jsl.tversky_loss(x, y, alpha=0.3, beta=0.7, **common),
            ),
        }

    for name, (got, want) in run(data["logits"], data["labels"]).items():
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, err_msg=name)


def test_focal_tversky_exponent_is_per_class():
    data = random_inputs(12, spatial=(6,), num_classes=3)

    @jax.jit
    def run(x, y):
        per_class = jsl.tversky_from_stats(jsl.overlap_stats(x, y), alpha=0.3, beta=0.7)
        return (
            jsl.tversky_loss(x, y, alpha=0.3, beta=0.7, gamma=2.0, reduction="none"),
            jnp.mean(per_class**2, axis=-1),
        )

    got, want = run(data["logits"], data["labels"])
    np.testing.assert_allclose(got, want, rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# Properties of every loss.


@pytest.mark.parametrize(
    "target,activation,num_classes",
    [("int", "softmax", 3), ("int", "sigmoid", 1), ("onehot", "sigmoid", 3), ("soft", None, 3)],
)
def test_perfect_prediction_is_near_zero(target, activation, num_classes):
    data = random_inputs(
        13, spatial=(4, 3), num_classes=num_classes, target=target, activation=activation
    )
    labels = data["labels"]
    if target == "int" and num_classes > 1:
        logits = 30.0 * np.eye(num_classes, dtype=np.float32)[labels]
    elif target == "int":
        logits = np.where(labels == 1, 30.0, -30.0)[..., None].astype(np.float32)
    elif activation == "sigmoid":
        logits = np.where(labels > 0.5, 30.0, -30.0).astype(np.float32)
    else:
        logits = labels  # probabilities equal to the soft targets
    # smooth=0 with log=True is the strictest: -ln of a ratio a hair below 1.
    got = all_losses(logits, labels, activation=activation, smooth=0.0, log=True)
    for name, value in got.items():
        assert abs(float(value)) < 1e-5, (name, float(value))


def _nchw(x):
    return np.moveaxis(x, -1, 1)


@pytest.mark.parametrize("target", ["int", "soft"])
def test_class_axis_one_equals_moved_axis(target):
    data = random_inputs(14, spatial=(3, 4), num_classes=3, target=target, mask="float")
    labels = data["labels"] if target == "int" else _nchw(data["labels"])
    last = all_losses(data["logits"], data["labels"], mask=data["mask"])
    first = all_losses(_nchw(data["logits"]), labels, mask=data["mask"], class_axis=1)
    for name in LOSSES:
        np.testing.assert_allclose(first[name], last[name], rtol=1e-6, err_msg=name)


@pytest.mark.parametrize("spatial,aggregate", [((9,), "sample"), ((5, 4), "batch")])
def test_mask_equals_slicing(spatial, aggregate):
    data = random_inputs(15, batch=3, spatial=spatial, num_classes=3)
    logits, labels = data["logits"], data["labels"]
    mask = np.zeros(labels.shape, bool)
    mask[:, :4] = True
    options = dict(aggregate=aggregate, smooth=0.5)
    masked = all_losses(logits, labels, mask=mask, **options)
    sliced = all_losses(logits[:, :4], labels[:, :4], **options)
    for name in LOSSES:
        np.testing.assert_allclose(masked[name], sliced[name], rtol=1e-6, err_msg=name)


def test_masking_a_whole_sample_drops_it_from_batch_statistics():
    data = random_inputs(16, batch=3, spatial=(5,), num_classes=3)
    mask = np.ones(data["labels"].shape, np.float32)
    mask[1] = 0.0
    masked = all_losses(data["logits"], data["labels"], mask=mask, aggregate="batch")
    keep = [0, 2]
    sliced = all_losses(data["logits"][keep], data["labels"][keep], aggregate="batch")
    for name in LOSSES:
        np.testing.assert_allclose(masked[name], sliced[name], rtol=1e-6, err_msg=name)


def test_float_mask_weights_scale_pixels():
    # A weight of 2 on a pixel counts it twice: the same as duplicating it.
    data = random_inputs(17, batch=2, spatial=(4,), num_classes=3)
    logits, labels = data["logits"], data["labels"]
    weights = np.array([[2.0, 1.0, 1.0, 1.0]] * 2, np.float32)
    weighted = all_losses(logits, labels, mask=weights)
    duplicated = all_losses(
        np.concatenate([logits[:, :1], logits], axis=1),
        np.concatenate([labels[:, :1], labels], axis=1),
    )
    for name in LOSSES:
        np.testing.assert_allclose(weighted[name], duplicated[name], rtol=1e-6, err_msg=name)


@pytest.mark.parametrize("num_classes,activation", [(3, "softmax"), (1, "sigmoid")])
def test_ignore_index_equals_mask(num_classes, activation):
    data = random_inputs(
        18, spatial=(4, 4), num_classes=num_classes, activation=activation, ignore_index=255
    )
    labels = data["labels"]
    valid = labels != 255
    # The same pixels excluded by a mask, with an arbitrary in-range label underneath.
    relabelled = np.where(valid, labels, 0)
    by_index = all_losses(data["logits"], labels, activation=activation, ignore_index=255)
    by_mask = all_losses(data["logits"], relabelled, activation=activation, mask=valid)
    for name in LOSSES:
        np.testing.assert_allclose(by_index[name], by_mask[name], rtol=1e-6, err_msg=name)


FULLY_MASKED_OPTIONS = [dict(), dict(smooth=0.0, log=True, aggregate="batch")]


@pytest.mark.parametrize(
    "how,activation,num_classes,options",
    [
        ("mask", "softmax", 3, FULLY_MASKED_OPTIONS[0]),
        ("ignore_index", "softmax", 3, FULLY_MASKED_OPTIONS[1]),
        ("mask", "sigmoid", 1, FULLY_MASKED_OPTIONS[1]),
        ("ignore_index", "sigmoid", 1, FULLY_MASKED_OPTIONS[0]),
    ],
)
def test_fully_masked_gives_zero_loss_and_zero_gradient(how, activation, num_classes, options):
    data = random_inputs(19, spatial=(3, 3), num_classes=num_classes, activation=activation)
    labels = data["labels"]
    if how == "mask":
        extra = dict(mask=np.zeros(labels.shape, bool))
    else:
        labels = np.full(labels.shape, 255, np.int32)
        extra = dict(ignore_index=255)

    @jax.jit
    def run(x, y):
        out = {}
        for name, fn in LOSSES.items():
            loss = functools.partial(fn, activation=activation, **extra, **options)
            out[name] = jax.value_and_grad(loss)(x, y)
        return out

    for key, (value, grad) in run(data["logits"], labels).items():
        assert float(value) == 0.0, key
        assert np.all(np.asarray(grad) == 0.0), key


@pytest.mark.parametrize("activation,num_classes", [("softmax", 3), ("sigmoid", 1), ("sigmoid", 3)])
def test_finite_gradients_at_saturated_logits(activation, num_classes):
    rng = np.random.default_rng(20)
    logits = (1e4 * rng.choice([-1.0, 1.0], size=(2, 3, 4, num_classes))).astype(np.float32)
    logits[0, 0, 0] = 100.0
    if num_classes == 3 and activation == "sigmoid":
        labels = (rng.random(logits.shape) < 0.5).astype(np.float32)
    else:
        labels = rng.integers(0, max(num_classes, 2), size=(2, 3, 4)).astype(np.int32)
    option_sets = [
        dict(smooth=0.0, log=True),
        dict(aggregate="batch", class_weights=np.linspace(0.5, 1.5, num_classes, dtype=np.float32)),
    ]
    if activation == "sigmoid":  # one set each for the sigmoid cases, both for softmax
        option_sets = option_sets[num_classes == 1 :][:1]

    @jax.jit
    def run(x, y):
        out = {}
        for name, fn in LOSSES.items():
            for i, options in enumerate(option_sets):
                loss = functools.partial(fn, activation=activation, **options)
                out[f"{name}-{i}"] = jax.value_and_grad(loss)(x, y)
            if name == "tversky":
                out[f"{name}-focal"] = jax.value_and_grad(
                    functools.partial(fn, activation=activation, gamma=0.5, smooth=0.0)
                )(x, y)
        return out

    for key, (value, grad) in run(logits, labels).items():
        assert np.isfinite(float(value)), key
        assert np.all(np.isfinite(grad)), key


LOSS_GRAD_OPTIONS = {
    "iou": dict(log=True),
    "dice": dict(aggregate="batch", class_weights=[1.0, 2.0, 0.5]),
    "tversky": dict(alpha=0.3, beta=0.7, gamma=1.5),
    "generalized_dice": dict(weight_type="simple", include_background=False),
}


def test_check_grads():
    """Every loss with its own options, against finite differences, in one program."""
    data = random_inputs(21, batch=2, spatial=(4,), num_classes=3, mask="float", scale=1.0)
    with jax.enable_x64(True):
        logits = data["logits"].astype(np.float64)

        @jax.jit
        def losses(x):
            return jnp.stack(
                [
                    fn(x, data["labels"], mask=data["mask"], smooth=0.5, **LOSS_GRAD_OPTIONS[name])
                    for name, fn in LOSSES.items()
                ]
            )

        jax.test_util.check_grads(losses, (logits,), order=1, modes=("fwd", "rev"), eps=1e-4)


def test_check_grads_soft_targets_float32():
    data = random_inputs(22, batch=2, spatial=(3,), num_classes=3, target="soft", scale=1.0)
    loss = jax.jit(lambda x: jsl.dice_loss(x, data["labels"]))
    jax.test_util.check_grads(
        loss, (data["logits"],), order=1, modes=("fwd", "rev"), eps=1e-2, atol=2e-2, rtol=2e-2
    )


def test_bf16_inputs_agree_with_float32():
    data = random_inputs(23, batch=2, spatial=(8, 8), num_classes=3, mask="float")
    logits16 = data["logits"].astype(jnp.bfloat16)
    mask16 = data["mask"].astype(jnp.bfloat16)
    low = all_losses(logits16, data["labels"], mask=mask16)
    # The same bf16 values in float32: computing in float32 makes these agree to f32 rounding.
    same_values = all_losses(
        logits16.astype(np.float32), data["labels"], mask=mask16.astype(np.float32)
    )
    full = all_losses(data["logits"], data["labels"], mask=data["mask"])
    for name in LOSSES:
        assert low[name].dtype == jnp.float32, name
        np.testing.assert_allclose(low[name], same_values[name], rtol=1e-6, err_msg=name)
        np.testing.assert_allclose(low[name], full[name], rtol=2e-2, err_msg=name)


def test_bf16_dense_targets_and_f16_logits():
    data = random_inputs(24, batch=2, spatial=(6,), num_classes=3, target="soft")
    low = all_losses(data["logits"].astype(np.float16), data["labels"].astype(jnp.bfloat16))
    full = all_losses(data["logits"], data["labels"])
    for name in LOSSES:
        assert low[name].dtype == jnp.float32, name
        np.testing.assert_allclose(low[name], full[name], rtol=2e-2, err_msg=name)


def test_float64_stays_float64_under_x64():
    data = random_inputs(25, spatial=(5,), num_classes=3)
    with jax.enable_x64(True):
        got = all_losses(data["logits"].astype(np.float64), data["labels"])
        for name, value in got.items():
            assert value.dtype == jnp.float64, name
            want = ref.region_loss(name, data["logits"], data["labels"])
            np.testing.assert_allclose(value, want, rtol=1e-12, err_msg=name)


def test_one_compilation_per_shape():
    traces = []

    @jax.jit
    def step(x, y):
        traces.append(x.shape)  # runs only while tracing
        return [fn(x, y, smooth=0.5) for fn in LOSSES.values()]

    a = random_inputs(26, spatial=(4, 4), num_classes=3)
    b = random_inputs(27, spatial=(4, 4), num_classes=3)
    c = random_inputs(28, spatial=(5, 4), num_classes=3)
    step(a["logits"], a["labels"])
    step(b["logits"], b["labels"])
    assert len(traces) == 1
    step(c["logits"], c["labels"])
    assert len(traces) == 2
    step(b["logits"], b["labels"])
    assert len(traces) == 2


# ----------------------------------------------------------------------------------------------
# Aggregation, devices and reductions.


def test_aggregate_batch_equals_loss_of_summed_stats():
    data = random_inputs(29, batch=3, spatial=(3, 3), num_classes=3, mask="bool")

    @jax.jit
    def run(x, y, m):
        pooled = jsl.overlap_stats(x, y, mask=m).sum_over_batch()
        return {
            "iou": (
                jsl.iou_loss(x, y, mask=m, aggregate="batch"),
                jnp.mean(jsl.iou_from_stats(pooled)),
            ),
            "dice": (
                jsl.dice_loss(x, y, mask=m, aggregate="batch", log=True),
                jnp.mean(jsl.dice_from_stats(pooled, log=True)),
            ),
            "tversky": (
                jsl.tversky_loss(x, y, mask=m, aggregate="batch", alpha=0.2, beta=0.8),
                jnp.mean(jsl.tversky_from_stats(pooled, alpha=0.2, beta=0.8)),
            ),
        }

    for name, (got, want) in run(data["logits"], data["labels"], data["mask"]).items():
        np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=name)


@pytest.mark.parametrize(
    "aggregate,reduction", [("batch", "mean"), ("sample", "mean"), ("sample", "sum")]
)
def test_axis_name_gives_the_global_loss_on_every_device(aggregate, reduction):
    data = random_inputs(30, batch=4, spatial=(3, 2), num_classes=3, mask="float")
    shards = [np.reshape(data[k], (2, 2, *data[k].shape[1:])) for k in ("logits", "labels", "mask")]
    options = dict(aggregate=aggregate, reduction=reduction, smooth=0.5)

    def device_losses(x, y, m):
        return [fn(x, y, mask=m, axis_name="devices", **options) for fn in LOSSES.values()]

    mapped = jax.jit(jax.vmap(device_losses, axis_name="devices"))(*shards)
    whole = all_losses(data["logits"], data["labels"], mask=data["mask"], **options)
    for name, per_device in zip(LOSSES, mapped, strict=True):
        assert per_device.shape == (2,)
        np.testing.assert_allclose(per_device, [whole[name]] * 2, rtol=1e-6, err_msg=name)


@pytest.mark.parametrize("name", list(LOSSES))
def test_reduction_none_with_batch_aggregate_raises(name):
    data = random_inputs(32, spatial=(4,), num_classes=3)
    with pytest.raises(ValueError, match=r"reduction='none'.*aggregate='batch'"):
        jit_call(LOSSES[name], data["logits"], data["labels"], aggregate="batch", reduction="none")


def test_losses_lie_in_unit_interval():
    data = random_inputs(33, batch=4, spatial=(5, 5), num_classes=4, target="soft", scale=4.0)
    got = all_losses(data["logits"], data["labels"], reduction="none", smooth=0.0)
    for name, value in got.items():
        assert np.all((np.asarray(value) >= 0) & (np.asarray(value) <= 1)), name


# ----------------------------------------------------------------------------------------------
# Generalized Dice: absent classes.


def test_generalized_dice_absent_class_gets_largest_present_weight():
    # Sample 0 has no pixel of class 2; sample 1 has none of classes 1 and 2.
    logits = np.array(
        [[[2.0, 0.0, 1.0], [0.0, 2.0, 0.0], [1.0, 0.0, 0.5]], [[0.0, 0.5, 1.0]] * 3], np.float32
    )
    labels = np.array([[0, 1, 1], [0, 0, 0]], np.int32)

    @jax.jit
    def run(x, y):
        out = {}
        for weight_type in ("square", "simple", "uniform"):
            loss = functools.partial(jsl.generalized_dice_loss, weight_type=weight_type, smooth=0.0)
            out[weight_type] = loss(x, y, reduction="none")
        grad = jax.grad(functools.partial(jsl.generalized_dice_loss, smooth=0.0))(x, y)
        return out, grad

    values, grad = run(logits, labels)
    assert np.all(np.isfinite(grad))
    for weight_type, value in values.items():
        assert np.all(np.isfinite(value))
        want = ref.region_loss(
            "generalized_dice",
            logits,
            labels,
            weight_type=weight_type,
            smooth=0.0,
            reduction="none",
        )
        np.testing.assert_allclose(value, want, rtol=1e-5, err_msg=weight_type)
    # The rule by hand for sample 1, "square": only class 0 is present (T = 3, w = 1/9); the two
    # absent classes get w = 1/9 too, so the weights cancel and GDL is plain pooled Dice.
    p = softmax(logits[1].astype(np.float64))
    tp = p[:, 0].sum()
    dice = 2 * tp / (p.sum() + 3.0)
    np.testing.assert_allclose(values["square"][1], 1 - dice, rtol=1e-5)


# ----------------------------------------------------------------------------------------------
# Absent classes and a subset of classes.

SHAPE, C = (2, 4, 5), 3


@jax.jit
def _region_values(x, y, m):
    out = {}
    for absent in ("keep", "zero", "exclude"):
        out[absent] = jsl.dice_loss(x, y, absent_classes=absent, mask=m, reduction="none")
        out[absent + "_sub"] = jsl.iou_loss(
            x, y, absent_classes=absent, classes=[1, 2], smooth=0.5, reduction="none"
        )
    out["exclude_mean"] = jsl.dice_loss(x, y, absent_classes="exclude", classes=(2,))
    out["batch_zero"] = jsl.dice_loss(x, y, absent_classes="zero", aggregate="batch")
    out["gdl_sub"] = jsl.generalized_dice_loss(x, y, classes=[0, 2], reduction="none")
    out["grad"] = jax.grad(lambda x: jsl.dice_loss(x, y, absent_classes="exclude", mask=m))(x)
    return out


def np_region(x, y, m, *, smooth, iou=False, axis=(1, 2)):
    p = np.exp(log_softmax(x)) * m[..., None]
    g = np.eye(C)[y] * m[..., None]
    tp, ps, ts = (p * g).sum(axis), p.sum(axis), g.sum(axis)
    if iou:
        return 1 - (tp + smooth) / (ps + ts - tp + smooth), ts
    return 1 - (2 * tp + smooth) / (ps + ts + smooth), ts


def test_region_absent_classes_and_class_subsets():
    x, _, m = random_batch(4, SHAPE, C, masked=0.3)
    y = np.zeros(SHAPE, np.int32)
    y[0, :2] = 1  # sample 0: classes 0 and 1; sample 1: class 0 only; class 2 absent everywhere
    out = _region_values(x, y, m)
    dice, ts = np_region(x, y, m, smooth=1.0)
    present = ts > 0
    assert_close(out["keep"], dice.mean(1))
    assert_close(out["zero"], (dice * present).mean(1))  # smp
    assert_close(out["exclude"], (dice * present).sum(1) / present.sum(1))
    iou, ts = np_region(x, y, np.ones_like(m), smooth=0.5, iou=True)
    present = ts[:, 1:] > 0
    sub = iou[:, 1:]
    assert_close(out["keep_sub"], sub.mean(1))
    assert_close(out["zero_sub"], (sub * present).mean(1))
    assert_close(out["exclude_sub"], [sub[0, 0], 0.0])  # sample 1 has none: 0, left out
    assert float(out["exclude_mean"]) == 0.0  # class 2 absent from every sample
    tv, ts = np_region(x, y, np.ones_like(m), smooth=1.0, axis=(0, 1, 2))
    assert_close(out["batch_zero"], (tv * (ts > 0)).mean())
    assert all_finite(out["grad"])
    with pytest.raises(ValueError, match=r"`absent_classes` must be one of"):
        jsl.dice_loss(x, y, absent_classes="skip")
    with pytest.raises(ValueError, match=r"`classes` holds class 3, out of range for 3"):
        jsl.dice_loss(x, y, classes=[3])
    with pytest.raises(ValueError, match=r"leaves no class"):
        jsl.dice_loss(x, y, classes=[0], include_background=False)


def test_class_subsets_with_absent_classes_add_over_a_mapped_axis():
    x, y, m = random_batch(7, SHAPE, C, masked=0.3)
    dice = functools.partial(
        jsl.dice_loss, absent_classes="exclude", classes=[1, 2], aggregate="batch", ignore_index=2
    )

    def split(a):
        return a.reshape(2, 1, *a.shape[1:])

    @jax.jit
    def run(x, y, m):
        mapped = jax.vmap(
            lambda a, b, c: dice(a, b, mask=c, axis_name="devices"), axis_name="devices"
        )(split(x), split(y), split(m))
        return mapped, dice(x, y, mask=m)

    mapped, whole = run(x, y, m)
    assert_close(mapped, [whole, whole])
