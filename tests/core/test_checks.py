"""Value checks: the opt-in ``jsl.checked`` mode, and the documented unchecked behaviour.

Unchecked, a label that is no class and a non-finite logit make the loss NaN; probabilities are
used as given. Checked, each raises at run time naming the argument and the offending value.
"""

import functools

import jax
import numpy as np
import pytest
from jax.experimental import checkify

import jaxseg_losses as jsl
from jaxseg_losses._core import checks as _checks
from tests.helpers import assert_close, jit_call

REGION_LOSSES = [jsl.iou_loss, jsl.dice_loss, jsl.tversky_loss, jsl.generalized_dice_loss]


# Equal up to float32 rounding.
_close = functools.partial(assert_close, rtol=1e-6, atol=1e-7)


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
