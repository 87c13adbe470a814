"""The input contract: label formats, activations, masks, dtypes and bad input (trace-time errors).

Value checks (``jsl.checked``) and the unchecked behaviour of bad values: test_checks.py.
"""

import functools
import re

import jax
import numpy as np
import pytest

import jaxseg_losses as jsl
from jaxseg_losses._core import inputs as _inputs
from tests.helpers import assert_close, jit_call, softmax
from tests.references import region as ref

REGION_LOSSES = [jsl.iou_loss, jsl.dice_loss, jsl.tversky_loss, jsl.generalized_dice_loss]
ALL = [*REGION_LOSSES, jsl.overlap_stats]


# Equal up to float32 rounding.
_close = functools.partial(assert_close, rtol=1e-6, atol=1e-7)


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
    probs = softmax(LOGITS.astype(np.float64)).astype(np.float32)
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
