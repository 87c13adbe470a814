"""The common mistakes of a newcomer, each caught with a message that names the fix.

Channels-first (NCHW) data with the default ``class_axis=-1``, class indices stored as floats,
and, under ``jsl.checked``, one-hot targets read along the wrong axis and probabilities passed
as logits. Each test quotes the message, and checks that the fix it names gives the value of
the channels-last call. The rows of docs/bad_input.md.
"""

import functools
import re
import warnings

import jax
import numpy as np
import pytest
from jax.experimental import checkify

import jaxseg_losses as jsl
from jaxseg_losses._core import checks as _checks
from tests.helpers import IGNORE, assert_close, jit_call, softmax

M = jsl.metrics
# Raised by checked(jit(f)), and from the running program by jit(checked(f)).
RUNTIME_ERRORS = (checkify.JaxRuntimeError, jax.errors.JaxRuntimeError)
_close = functools.partial(assert_close, rtol=1e-6, atol=1e-7)

_rng = np.random.default_rng(23)
NHWC = _rng.normal(size=(2, 4, 4, 3)).astype(np.float32)  # channels-last logits
NCHW = np.ascontiguousarray(np.moveaxis(NHWC, -1, 1))  # the same logits, channels-first
LABELS = _rng.integers(0, 3, size=(2, 4, 4)).astype(np.int32)
ONE_HOT = np.eye(3, dtype=np.float32)[LABELS]  # [B, H, W, C]
ONE_HOT_NCHW = np.ascontiguousarray(np.moveaxis(ONE_HOT, -1, 1))

CLASS_AXIS_FIX = re.escape(
    "`labels` have the shape of `logits` without axis 1: pass `class_axis=1` (the class "
    "axis of channels-first `logits`, [B, C, *spatial])."
)
SOFTMAX_LOSSES = [jsl.dice_loss, jsl.cross_entropy_loss, jsl.lovasz_softmax_loss]


# ----------------------------------------------------------------------------------------------
# Channels-first logits with the default class_axis: the shape error names class_axis=1.


@pytest.mark.parametrize("loss", SOFTMAX_LOSSES, ids=lambda f: f.__name__)
def test_channels_first_labels_name_class_axis_and_the_fix_gives_the_channels_last_value(loss):
    with pytest.raises(ValueError, match=r"`labels` must have shape \(2, 3, 4\); got \(2, 4, 4\)"):
        jit_call(loss, NCHW, LABELS)
    with pytest.raises(ValueError, match=CLASS_AXIS_FIX):
        jit_call(loss, NCHW, LABELS)
    _close(jit_call(loss, NCHW, LABELS, class_axis=1), jit_call(loss, NHWC, LABELS))


def test_channels_first_labels_in_combine_name_class_axis():
    with pytest.raises(ValueError, match=CLASS_AXIS_FIX):
        jit_call(jsl.combine("ce+dice"), NCHW, LABELS)


def test_pytorch_labels_of_one_channel_name_squeeze_and_class_axis():
    message = (
        "squeeze axis 1 (`labels.squeeze(1)`; the PyTorch habit [B, 1, H, W] is `labels[:, 0]`)."
        " Squeezed, `labels` have the shape of `logits` without axis 1: pass `class_axis=1`"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        jit_call(jsl.dice_loss, NCHW, LABELS[:, None])


def test_dense_targets_with_the_class_axis_moved_name_moveaxis():
    channels_first_logits = (
        "`labels` have the shape of `logits` with axis 1 moved to 3: for channels-first "
        "`logits` pass `class_axis=1` and move the classes of `labels` there: "
        "`jnp.moveaxis(labels, 3, 1)`."
    )
    with pytest.raises(ValueError, match=re.escape(channels_first_logits)):
        jit_call(jsl.dice_loss, NCHW, ONE_HOT)
    class_axis_given = (
        "`labels` have the shape of `logits` with the class axis at 3 instead of 1: dense "
        "targets share the layout of `logits`; move it: `jnp.moveaxis(labels, 3, 1)`."
    )
    with pytest.raises(ValueError, match=re.escape(class_axis_given)):
        jit_call(jsl.dice_loss, NCHW, ONE_HOT, class_axis=1)
    with pytest.raises(ValueError, match=re.escape("move it: `jnp.moveaxis(labels, 1, 3)`")):
        jit_call(jsl.dice_loss, NHWC, ONE_HOT_NCHW)
    fixed = jit_call(jsl.dice_loss, NCHW, np.moveaxis(ONE_HOT, 3, 1), class_axis=1)
    _close(fixed, jit_call(jsl.dice_loss, NHWC, LABELS))


def test_channels_first_scores_in_the_metrics_name_class_axis():
    fix = re.escape(
        "`labels` have the shape of `predictions` without axis 1: pass `class_axis=1` (the "
        "class axis of channels-first `predictions`, [B, C, *spatial])."
    )
    calls = {
        "confusion_matrix": lambda **o: M.confusion_matrix(NCHW, LABELS, 3, **o),
        "overlap_counts": lambda **o: M.overlap_counts(NCHW, LABELS, **o),
        "accumulator": lambda **o: (
            M.ConfusionMatrixAccumulator.empty(3, dtype=np.float32).update(NCHW, LABELS, **o).matrix
        ),
        "hausdorff_distance": lambda **o: M.hausdorff_distance(NCHW, LABELS, **o),
    }
    expected = jax.jit(
        lambda x: {
            "confusion_matrix": M.confusion_matrix(x, LABELS, 3),
            "overlap_counts": M.overlap_counts(x, LABELS),
            "accumulator": M.confusion_matrix(x, LABELS, 3, dtype=np.float32),
            "hausdorff_distance": M.hausdorff_distance(x, LABELS),
        }
    )(NHWC)
    for name, call in calls.items():
        with pytest.raises(ValueError, match=fix):
            jax.jit(call)()
        _close(jax.jit(functools.partial(call, class_axis=1))(), expected[name])


# ----------------------------------------------------------------------------------------------
# Class indices stored as floats.

AS_INT = re.escape("Cast them: `labels.astype(jnp.int32)`.")


@pytest.mark.parametrize("loss", [jsl.dice_loss, jsl.cross_entropy_loss], ids=lambda f: f.__name__)
def test_float_labels_with_ignore_index_name_astype(loss):
    labels = np.where(LABELS == 0, IGNORE, LABELS).astype(np.float32)
    message = (
        "`ignore_index` applies to integer labels; got float `labels` of shape (2, 4, 4), "
        "without a class axis: class indices stored as floats. Cast them: "
        "`labels.astype(jnp.int32)`."
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        jit_call(loss, NHWC, labels, ignore_index=IGNORE)
    # Channels-first too: both fixes named.
    with pytest.raises(ValueError, match=AS_INT + " " + CLASS_AXIS_FIX):
        jit_call(loss, NCHW, labels, ignore_index=IGNORE)
    fixed = jit_call(loss, NHWC, labels.astype(np.int32), ignore_index=IGNORE)
    _close(fixed, jit_call(loss, NHWC, LABELS, mask=LABELS != 0))


def test_float_labels_without_ignore_index_name_astype():
    message = (
        "`labels` must have shape (2, 4, 4, 3); got (2, 4, 4). Float labels without a class "
        "axis are class indices stored as floats: cast them, `labels.astype(jnp.int32)`."
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        jit_call(jsl.dice_loss, NHWC, LABELS.astype(np.float32))


def test_soft_targets_with_ignore_index_still_name_mask():
    # Concrete fractional values are no class indices: the fix is a mask, as before.
    soft = np.full((2, 4, 4), 0.5, np.float32)
    with pytest.raises(ValueError, match=re.escape("Pass `mask` to exclude pixels")):
        jsl.dice_loss(NHWC[..., :1], soft, activation="sigmoid", ignore_index=IGNORE)


def test_float_labels_with_ignore_index_in_the_metrics_name_astype():
    labels = LABELS.astype(np.float32)
    with pytest.raises(ValueError, match=AS_INT):
        jax.jit(lambda: M.overlap_counts(NHWC, labels, ignore_index=IGNORE))()
    with pytest.raises(TypeError, match=re.escape("cast them, `labels.astype(jnp.int32)`")):
        jax.jit(lambda: M.hausdorff_distance(LABELS, labels, num_classes=3))()


# ----------------------------------------------------------------------------------------------
# jsl.checked: dense targets of a softmax loss are one distribution per pixel.

SUMS_TO_ONE = re.escape(
    "`labels` must sum to 1 over the class axis (axis 3 of (2, 3, 4, 4)) at every pixel, as "
    "dense targets of activation='softmax' do; got 2.0 at index [0 0 0]. If the classes of "
    "`logits` and `labels` lie on another axis, pass it as `class_axis` (`class_axis=1` for "
    "channels-first [B, C, *spatial]); multi-label targets need activation='sigmoid'"
)


def _targets_read_along_the_width():
    # NCHW one-hot targets of the NCHW logits, class_axis left at -1: the shapes agree, so no
    # trace-time check can see it; the value is silently another loss. At pixel [0, 0, 0]
    # (batch 0, channel 0, row 0) the "classes" are the 4 pixels of the row, two of class 0.
    targets = ONE_HOT_NCHW.copy()
    targets[0, :, 0, :] = np.eye(3, dtype=np.float32)[[0, 0, 1, 2]].T
    return targets


@pytest.mark.parametrize("order", ["checked(jit(f))", "jit(checked(f))"])
def test_checked_rejects_dense_targets_that_do_not_sum_to_one(order):
    targets = _targets_read_along_the_width()
    plain = jit_call(jsl.dice_loss, NCHW, targets)
    assert abs(float(plain) - float(jit_call(jsl.dice_loss, NCHW, targets, class_axis=1))) > 0.01
    step = (
        jsl.checked(jax.jit(jsl.dice_loss))
        if order == "checked(jit(f))"
        else jax.jit(jsl.checked(jsl.dice_loss))
    )
    with pytest.raises(RUNTIME_ERRORS, match=SUMS_TO_ONE):
        jax.block_until_ready(step(NCHW, targets))
    fixed = jax.jit(jsl.checked(functools.partial(jsl.dice_loss, class_axis=1)))(NCHW, targets)
    _close(fixed, jit_call(jsl.dice_loss, NHWC, np.moveaxis(targets, 1, -1)))


def test_checked_accepts_soft_targets_sigmoid_targets_and_masked_rows():
    smoothed = (0.9 * ONE_HOT + 0.1 / 3).astype(np.float32)
    got = jax.jit(jsl.checked(jsl.cross_entropy_loss))(NHWC, smoothed)
    _close(got, jit_call(jsl.cross_entropy_loss, NHWC, smoothed))
    # Multi-label targets of sigmoid logits need not sum to 1.
    both = np.ones_like(ONE_HOT)
    got = jax.jit(jsl.checked(functools.partial(jsl.dice_loss, activation="sigmoid")))(NHWC, both)
    _close(got, jit_call(jsl.dice_loss, NHWC, both, activation="sigmoid"))
    # A masked pixel is inert whatever its targets.
    bad = ONE_HOT.copy()
    bad[1, 2, 3] = 0.0
    mask = np.ones((2, 4, 4), bool)
    mask[1, 2, 3] = False
    got = jax.jit(jsl.checked(jsl.dice_loss))(NHWC, bad, mask=mask)
    _close(got, jit_call(jsl.dice_loss, NHWC, bad, mask=mask))
    with pytest.raises(RUNTIME_ERRORS, match=r"must sum to 1 .* got 0\.0 at index \[1 2 3\]"):
        jax.jit(jsl.checked(jsl.dice_loss))(NHWC, bad)


# ----------------------------------------------------------------------------------------------
# jsl.checked: probabilities passed as softmax logits warn, once per process.

PROBABILITIES = re.escape(
    "`logits` look like probabilities: at every pixel that counts they lie in [0, 1] and sum "
    "to 1 over the class axis. activation='softmax' takes logits and applies a softmax, which "
    "flattens probabilities (and gives a wrong loss and weak gradients). Pass the logits "
    "(before the softmax), or pass probabilities with activation=None."
)


@pytest.fixture
def fresh_warnings(monkeypatch):
    """A process that has given no warning yet (they are given once per process)."""
    monkeypatch.setattr(_checks, "_WARNED", set())


def _run(fn, *args):
    out = jax.block_until_ready(fn(*args))
    jax.effects_barrier()  # the warning comes from the running program
    return out


@pytest.mark.parametrize("order", ["checked(jit(f))", "jit(checked(f))"])
def test_checked_warns_once_when_logits_look_like_probabilities(order, fresh_warnings):
    probs = softmax(NHWC).astype(np.float32)
    loss = jsl.cross_entropy_loss
    step = jsl.checked(jax.jit(loss)) if order == "checked(jit(f))" else jax.jit(jsl.checked(loss))
    with pytest.warns(UserWarning, match=PROBABILITIES):
        got = _run(step, probs, LABELS)
    _close(got, jit_call(loss, probs, LABELS))  # a warning: the value is computed as asked
    with warnings.catch_warnings(record=True) as later:
        warnings.simplefilter("always")
        _run(step, probs, LABELS)
    assert not [w for w in later if "look like probabilities" in str(w.message)]


def test_no_probability_warning_for_logits_activation_none_or_unchecked(fresh_warnings):
    probs = softmax(NHWC).astype(np.float32)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        _run(jax.jit(jsl.checked(jsl.dice_loss)), NHWC, LABELS)
        none = functools.partial(jsl.dice_loss, activation=None)
        _run(jax.jit(jsl.checked(none)), probs, LABELS)
        _run(jax.jit(jsl.dice_loss), probs, LABELS)
        # Probabilities on the pixels that count, and a logit row on a masked one: the check
        # reads the pixels that count only, so it warns (below); an unmasked logit row does not.
        mixed = probs.copy()
        mixed[0, 0, 0] = NHWC[0, 0, 0]
        _run(jax.jit(jsl.checked(jsl.dice_loss)), mixed, LABELS)
    assert not [w for w in seen if "look like probabilities" in str(w.message)]
    mask = np.ones((2, 4, 4), bool)
    mask[0, 0, 0] = False
    masked = jax.jit(jsl.checked(functools.partial(jsl.dice_loss, mask=mask)))
    with pytest.warns(UserWarning, match=PROBABILITIES):
        _run(masked, mixed, LABELS)
