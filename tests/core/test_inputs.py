"""The input contract: label formats, activations, masks, dtypes, bad input and checked mode."""

import functools
import re

import jax
import numpy as np
import pytest
import reference as ref
from jax.experimental import checkify

import jaxseg_losses as jsl
from jaxseg_losses._core import checks as _checks
from jaxseg_losses._core import inputs as _inputs

REGION_LOSSES = [jsl.iou_loss, jsl.dice_loss, jsl.tversky_loss, jsl.generalized_dice_loss]
ALL = [*REGION_LOSSES, jsl.overlap_stats]


def jit_call(fn, *args, **options):
    """``fn(*args, **options)`` under ``jax.jit``: shape and option errors raise while tracing."""
    return jax.jit(functools.partial(fn, **options))(*args)


def _close(a, b, rtol=1e-6):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=1e-7)


LOGITS = np.random.default_rng(0).normal(size=(2, 4, 4, 3)).astype(np.float32)
LABELS = np.random.default_rng(1).integers(0, 3, size=(2, 4, 4)).astype(np.int32)


def _names(fns):
    return [fn.__name__ for fn in fns]


# ----------------------------------------------------------------------------------------------
# Label formats and activations.


def test_prepare_canonical_form():
    labels = LABELS.copy()
    labels[0, 0, 0] = 255
    mask = np.ones((2, 4, 4), np.float32)
    mask[1, 3, 3] = 0.5
    inputs = _inputs.prepare(
        np.moveaxis(LOGITS, -1, 1),
        labels,
        activation="softmax",
        class_axis=1,
        ignore_index=255,
        mask=mask,
    )
    assert inputs.targets is None  # integer labels are never one-hot encoded up front
    assert inputs.logits.shape == inputs.dense_targets().shape == (2, 16, 3)
    assert inputs.labels.shape == inputs.weights.shape == (2, 16)
    assert inputs.spatial_shape == (4, 4)
    # The ignored pixel's logits read 0 (inert whatever they were); the others are the input's.
    expected = LOGITS.reshape(2, 16, 3).copy()
    expected[0, 0] = 0.0
    np.testing.assert_allclose(inputs.logits, expected)
    # The ignored label is made safe (0) before the one-hot, and weighs nothing.
    assert int(inputs.labels[0, 0]) == 0 and float(inputs.weights[0, 0]) == 0.0
    np.testing.assert_allclose(inputs.dense_targets()[0, 0], [1.0, 0.0, 0.0])
    assert float(inputs.weights[1, 15]) == 0.5
    np.testing.assert_array_equal(inputs.labels[1], labels[1].reshape(-1))


def test_dtype_decides_label_format_not_rank():
    # [B, P, C] int labels with C == P would be ambiguous by rank; the dtype decides.
    logits = np.random.default_rng(2).normal(size=(2, 3, 3)).astype(np.float32)
    index = np.array([[0, 2, 1], [1, 1, 0]], np.int32)
    one_hot = np.eye(3, dtype=np.float32)[index]
    _close(jit_call(jsl.dice_loss, logits, index), jit_call(jsl.dice_loss, logits, one_hot))
    with pytest.raises(ValueError, match=r"`labels` must have shape \(2, 3\); got \(2, 3, 3\)"):
        jit_call(jsl.dice_loss, logits, one_hot.astype(np.int32))


def test_binary_sigmoid_label_formats_agree():
    logits = LOGITS[..., :1]
    binary = (LABELS > 0).astype(np.int32)
    as_int = jit_call(jsl.iou_loss, logits, binary, activation="sigmoid")
    as_bool = jit_call(jsl.iou_loss, logits, binary.astype(bool), activation="sigmoid")
    as_dense = jit_call(
        jsl.iou_loss, logits, binary[..., None].astype(np.float32), activation="sigmoid"
    )
    _close(as_int, as_bool)
    _close(as_int, as_dense)
    want = ref.region_loss("iou", logits, binary, activation="sigmoid")
    np.testing.assert_allclose(as_int, want, rtol=1e-5)


def test_multilabel_sigmoid_with_dense_targets():
    targets = (np.random.default_rng(3).random(LOGITS.shape) < 0.4).astype(np.float32)
    got = jit_call(jsl.dice_loss, LOGITS, targets, activation="sigmoid", reduction="none")
    want = ref.region_loss("dice", LOGITS, targets, activation="sigmoid", reduction="none")
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_activation_none_takes_probabilities():
    probs = ref.softmax(LOGITS.astype(np.float64)).astype(np.float32)
    _close(
        jit_call(jsl.dice_loss, probs, LABELS, activation=None),
        jit_call(jsl.dice_loss, LOGITS, LABELS),
        rtol=1e-5,
    )


def test_mask_kinds_agree():
    keep = np.random.default_rng(4).random(LABELS.shape) < 0.6
    by_bool = jit_call(jsl.tversky_loss, LOGITS, LABELS, mask=keep)
    by_float = jit_call(jsl.tversky_loss, LOGITS, LABELS, mask=keep.astype(np.float32))
    by_int = jit_call(jsl.tversky_loss, LOGITS, LABELS, mask=keep.astype(np.int32))
    _close(by_bool, by_float)
    _close(by_bool, by_int)


def test_uint8_labels_with_ignore_index():
    labels = LABELS.astype(np.uint8)
    labels[0, :2] = 255
    got = jit_call(jsl.dice_loss, LOGITS, labels, ignore_index=255)
    want = jit_call(jsl.dice_loss, LOGITS, np.where(labels == 255, 0, labels), mask=labels != 255)
    _close(got, want)


def test_negative_class_axis_counts_from_the_end():
    nchw = np.moveaxis(LOGITS, -1, 1)
    _close(
        jit_call(jsl.iou_loss, nchw, LABELS, class_axis=-3),
        jit_call(jsl.iou_loss, nchw, LABELS, class_axis=1),
    )


def test_python_lists_are_accepted():
    logits = [[[2.0, -1.0], [0.5, 0.5], [-1.0, 3.0]]]
    labels = [[0, 1, 1]]
    got = jit_call(jsl.dice_loss, logits, labels, mask=[[True, True, False]])
    want = ref.region_loss("dice", logits, labels, mask=[[1, 1, 0]])
    np.testing.assert_allclose(got, want, rtol=1e-5)


# ----------------------------------------------------------------------------------------------
# Bad input: ValueError/TypeError at trace time, naming the argument, the expected and the received.


def _raises(exc, pattern, fn, *args, **options):
    with pytest.raises(exc) as info:
        jit_call(fn, *args, **options)
    assert re.search(pattern, str(info.value)), str(info.value)
    return str(info.value)


@pytest.mark.parametrize("fn", ALL, ids=_names(ALL))
def test_integer_logits(fn):
    _raises(TypeError, r"`logits`.*floating.*got int32", fn, LOGITS.astype(np.int32), LABELS)


@pytest.mark.parametrize("fn", ALL, ids=_names(ALL))
def test_labels_shape_mismatch(fn):
    _raises(
        ValueError,
        r"`labels` must have shape \(2, 4, 4\); got \(2, 4, 5\)",
        fn,
        LOGITS,
        np.zeros((2, 4, 5), np.int32),
    )
    # One-hot integer labels: the message says to cast them to float.
    message = _raises(
        ValueError, r"`labels`.*got \(2, 4, 4, 3\)", fn, LOGITS, np.zeros((2, 4, 4, 3), np.int32)
    )
    assert "float" in message


@pytest.mark.parametrize("fn", ALL, ids=_names(ALL))
def test_dense_targets_with_wrong_number_of_classes(fn):
    _raises(
        ValueError,
        r"`labels` must have shape \(2, 4, 4, 3\); got \(2, 4, 4, 2\)",
        fn,
        LOGITS,
        np.zeros((2, 4, 4, 2), np.float32),
    )


@pytest.mark.parametrize("fn", REGION_LOSSES, ids=_names(REGION_LOSSES))
def test_class_weights_of_wrong_length(fn):
    _raises(
        ValueError,
        r"`class_weights` must have shape \(3,\).*got \(2,\)",
        fn,
        LOGITS,
        LABELS,
        class_weights=[1.0, 2.0],
    )


@pytest.mark.parametrize("fn", ALL, ids=_names(ALL))
def test_mask_of_wrong_shape(fn):
    _raises(
        ValueError,
        r"`mask` must have shape \(2, 4, 4\); got \(2, 4\)",
        fn,
        LOGITS,
        LABELS,
        mask=np.ones((2, 4), bool),
    )


@pytest.mark.parametrize("fn", ALL, ids=_names(ALL))
def test_unknown_option_values(fn):
    _raises(
        ValueError,
        r"`activation` must be one of .*'softmax'.*got 'relu'",
        fn,
        LOGITS,
        LABELS,
        activation="relu",
    )
    _raises(
        ValueError,
        r"`aggregate` must be one of .*'batch'.*got 'pixel'",
        fn,
        LOGITS,
        LABELS,
        aggregate="pixel",
    )
    if fn is not jsl.overlap_stats:
        _raises(
            ValueError,
            r"`reduction` must be one of .*'none'.*got 'avg'",
            fn,
            LOGITS,
            LABELS,
            reduction="avg",
        )


def test_unknown_weight_type():
    _raises(
        ValueError,
        r"`weight_type` must be one of 'square', 'simple', 'uniform'; got 'log'",
        jsl.generalized_dice_loss,
        LOGITS,
        LABELS,
        weight_type="log",
    )


@pytest.mark.parametrize("fn", ALL, ids=_names(ALL))
def test_class_axis_out_of_range(fn):
    _raises(
        ValueError,
        r"`class_axis`=4 is out of range.*rank 4.*\[-4, 3\]",
        fn,
        LOGITS,
        LABELS,
        class_axis=4,
    )
    _raises(ValueError, r"`class_axis`=-5 is out of range", fn, LOGITS, LABELS, class_axis=-5)
    _raises(
        ValueError, r"`class_axis` cannot be the batch axis 0", fn, LOGITS, LABELS, class_axis=0
    )
    _raises(
        TypeError, r"`class_axis` must be an int; got float 1.0", fn, LOGITS, LABELS, class_axis=1.0
    )


@pytest.mark.parametrize("fn", ALL, ids=_names(ALL))
def test_softmax_with_a_single_channel_suggests_sigmoid(fn):
    message = _raises(
        ValueError,
        r"activation='softmax'.*got logits of shape \(2, 4, 4, 1\)",
        fn,
        LOGITS[..., :1],
        LABELS,
    )
    assert "activation='sigmoid'" in message


@pytest.mark.parametrize("fn", ALL, ids=_names(ALL))
def test_integer_labels_with_multichannel_sigmoid(fn):
    message = _raises(
        ValueError,
        r"activation='sigmoid' with 3 channels.*dense float targets.*got integer "
        r"labels of shape \(2, 4, 4\)",
        fn,
        LOGITS,
        LABELS,
        activation="sigmoid",
    )
    assert "softmax" in message


@pytest.mark.parametrize(
    "fn,name",
    [(fn, "smooth") for fn in REGION_LOSSES]
    + [(jsl.tversky_loss, "alpha"), (jsl.tversky_loss, "beta"), (jsl.tversky_loss, "gamma")],
    ids=lambda x: getattr(x, "__name__", x),
)
def test_negative_scalar_options(fn, name):
    _raises(
        ValueError,
        rf"`{name}` must be finite and non-negative; got -0.5",
        fn,
        LOGITS,
        LABELS,
        **{name: -0.5},
    )


@pytest.mark.parametrize(
    "fn,name",
    [
        (jsl.iou_from_stats, "smooth"),
        (jsl.dice_from_stats, "smooth"),
        (jsl.tversky_from_stats, "alpha"),
        (jsl.tversky_from_stats, "beta"),
        (jsl.tversky_from_stats, "gamma"),
    ],
)
def test_negative_options_of_from_stats(fn, name):
    stats = jsl.OverlapStats(*(np.ones((1, 2), np.float32) for _ in range(3)))
    with pytest.raises(ValueError, match=rf"`{name}` must be finite and non-negative; got -1.0"):
        jax.jit(functools.partial(fn, **{name: -1.0}))(stats)


def test_other_rejected_options():
    _raises(
        ValueError,
        r"`smooth` must be finite and non-negative; got nan",
        jsl.dice_loss,
        LOGITS,
        LABELS,
        smooth=float("nan"),
    )
    _raises(
        ValueError,
        r"`smooth` must be a scalar; got an array of shape \(2,\)",
        jsl.dice_loss,
        LOGITS,
        LABELS,
        smooth=np.ones(2),
    )
    _raises(
        ValueError,
        r"`ignore_index` applies to integer labels",
        jsl.dice_loss,
        LOGITS,
        np.zeros(LOGITS.shape, np.float32),
        ignore_index=255,
    )
    _raises(
        ValueError,
        r"include_background=False.*single channel",
        jsl.dice_loss,
        LOGITS[..., :1],
        LABELS > 0,
        activation="sigmoid",
        include_background=False,
    )
    _raises(
        ValueError,
        r"`logits` must have at least 2 dimensions.*got shape \(3,\)",
        jsl.dice_loss,
        np.zeros(3, np.float32),
        np.zeros((), np.int32),
    )
    _raises(
        TypeError,
        r"`labels` must be integer class indices or dense float targets; got "
        r"dtype complex64",
        jsl.dice_loss,
        LOGITS,
        np.zeros(LABELS.shape, np.complex64),
    )


def test_traced_options_are_not_value_checked():
    # A traced smooth cannot be inspected at trace time; the loss simply uses it.
    loss = jax.jit(lambda s: jsl.dice_loss(LOGITS, LABELS, smooth=s))
    np.testing.assert_allclose(
        loss(np.float32(0.5)), ref.region_loss("dice", LOGITS, LABELS, smooth=0.5), rtol=1e-5
    )


# ----------------------------------------------------------------------------------------------
# Value checks: opt-in checked mode, and the documented unchecked behaviour.

SMALL_LOGITS = np.zeros((1, 2, 2, 3), np.float32)
SMALL_LABELS = np.array([[[0, 1], [2, 1]]], np.int32)
CheckError = checkify.JaxRuntimeError


@pytest.mark.parametrize("bad_label", [3, 7, -1])
def test_checked_rejects_labels_out_of_range(bad_label):
    labels = SMALL_LABELS.copy()
    labels[0, 1, 1] = bad_label
    with pytest.raises(CheckError, match=r"`labels` must lie in \[0, 3\)"):
        jsl.checked(jsl.dice_loss)(SMALL_LOGITS, labels)


def test_checked_accepts_ignore_index_and_matches_plain_value():
    labels = SMALL_LABELS.copy()
    labels[0, 0, 0] = 255
    got = jsl.checked(jsl.dice_loss)(SMALL_LOGITS, labels, ignore_index=255)
    _close(got, jit_call(jsl.dice_loss, SMALL_LOGITS, labels, ignore_index=255))
    with pytest.raises(CheckError, match=r"equal ignore_index \(None\)"):
        jsl.checked(jsl.dice_loss)(SMALL_LOGITS, labels)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_checked_rejects_non_finite_logits(bad):
    logits = SMALL_LOGITS.copy()
    logits[0, 0, 1, 2] = bad
    with pytest.raises(CheckError, match=r"`logits` must be finite"):
        jsl.checked(jsl.iou_loss)(logits, SMALL_LABELS)


@pytest.mark.parametrize("bad", [1.5, -0.25])
def test_checked_rejects_probabilities_outside_unit_interval(bad):
    probs = np.full((1, 2, 2, 3), 1 / 3, np.float32)
    probs[0, 1, 0, 0] = bad
    with pytest.raises(CheckError, match=r"probabilities in \[0, 1\]"):
        jsl.checked(jsl.dice_loss)(probs, SMALL_LABELS, activation=None)
    targets = np.full((1, 2, 2, 3), 1 / 3, np.float32)
    targets[0, 0, 0, 1] = bad
    with pytest.raises(CheckError, match=r"`labels` must lie in \[0, 1\] \(dense\); got"):
        jsl.checked(jsl.dice_loss)(SMALL_LOGITS, targets)


def test_checked_rejects_negative_mask_weights():
    mask = np.ones((1, 2, 2), np.float32)
    mask[0, 0, 0] = -1.0
    with pytest.raises(CheckError, match=r"`mask` must hold non-negative weights; got -"):
        jsl.checked(jsl.tversky_loss)(SMALL_LOGITS, SMALL_LABELS, mask=mask)


def test_checked_wraps_user_functions_and_keeps_metadata():
    def total(logits, labels):
        return jsl.dice_loss(logits, labels) + jsl.iou_loss(logits, labels, log=True)

    checked_total = jsl.checked(total)
    assert checked_total.__name__ == "total"
    assert jsl.checked(jsl.dice_loss).__doc__ == jsl.dice_loss.__doc__
    _close(checked_total(SMALL_LOGITS, SMALL_LABELS), jax.jit(total)(SMALL_LOGITS, SMALL_LABELS))
    bad = SMALL_LABELS.copy()
    bad[0, 0, 0] = 9
    with pytest.raises(CheckError, match="`labels`"):
        checked_total(SMALL_LOGITS, bad)


@pytest.mark.parametrize("user_context", [True, False], ids=["user-context", "disable-jit"])
def test_checked_and_plain_jit_do_not_share_traces(user_context, monkeypatch):
    # jax.jit caches by function and shapes: checked mode must neither reuse the unchecked trace
    # (skipping the checks) nor leave its checkify.check behind for plain calls.
    if not user_context:
        monkeypatch.setattr(_checks, "_CHECKS_IN_JIT_KEY", None)
    bad = SMALL_LABELS.copy()
    bad[0, 1, 1] = 7

    def plain_first(x, y):
        return jsl.iou_loss(x, y)

    jitted = jax.jit(plain_first)
    unchecked = jitted(SMALL_LOGITS, bad)
    with pytest.raises(CheckError, match="`labels`"):
        jsl.checked(jitted)(SMALL_LOGITS, bad)

    def checked_first(x, y):
        return jsl.dice_loss(x, y)

    jitted = jax.jit(checked_first)
    with pytest.raises(CheckError, match="`labels`"):
        jsl.checked(jitted)(SMALL_LOGITS, bad)
    # Plain calls stay unchecked afterwards: the bad label is a loud NaN, not an exception.
    assert np.isnan(float(jitted(SMALL_LOGITS, bad)))
    assert np.isnan(float(unchecked))


def test_unchecked_out_of_range_label_is_nan_in_value_and_gradient():
    labels = SMALL_LABELS.copy()
    labels[0, 1, 1] = 7
    logits = np.random.default_rng(5).normal(size=SMALL_LOGITS.shape).astype(np.float32)
    for fn in REGION_LOSSES:
        value, grad = jax.jit(jax.value_and_grad(fn))(logits, labels)
        assert np.isnan(float(value)) and np.isnan(np.asarray(grad)).any(), fn.__name__
    # With one sigmoid channel the labels are 0 and 1: a 2 is no class either.
    binary = np.array([[[0, 1], [2, 1]]], np.int32)
    value = jit_call(jsl.dice_loss, logits[:1, :2, :2, :1], binary, activation="sigmoid")
    assert np.isnan(float(value))
    # Masked away, the same label is inert.
    mask = binary != 2
    _close(
        jit_call(jsl.dice_loss, logits[:1, :2, :2, :1], binary, activation="sigmoid", mask=mask),
        jit_call(
            jsl.dice_loss, logits[:1, :2, :2, :1], binary % 2, activation="sigmoid", mask=mask
        ),
    )


def test_unchecked_non_finite_logits_propagate_nan():
    logits = SMALL_LOGITS.copy()
    logits[0, 0, 0, 0] = np.nan
    for fn in REGION_LOSSES:
        assert np.isnan(float(jit_call(fn, logits, SMALL_LABELS))), fn.__name__


def test_unchecked_probabilities_are_used_as_given():
    probs = np.array([[[1.5, 0.0], [0.25, 0.5]]], np.float32)
    stats = jit_call(jsl.overlap_stats, probs, np.array([[0, 1]]), activation=None)
    np.testing.assert_allclose(stats.tp, [[1.5, 0.5]])
    assert np.isfinite(float(jit_call(jsl.dice_loss, probs, np.array([[0, 1]]), activation=None)))
