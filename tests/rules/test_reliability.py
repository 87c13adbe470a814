"""No silent wrong answers: one parametrised test per rule, over every loss of the library.

The rules (docs/bad_input.md):

1. a label that is neither a class nor ``ignore_index`` makes value *and* gradient NaN;
2. masked and ignored pixels are inert whatever their logits (NaN, +inf, -inf) and labels;
3. ``mask`` ≡ slicing: a fully masked (or ignored) sample is left out as if sliced away, and a
   batch without valid pixels gives 0 with gradient 0;
4. options are validated by type and range, never read by truthiness;
5. ``jsl.checked`` composes with ``jax.jit`` (and vmap, nnx.jit) in any order;
6. (metrics) counts stay exact past 2³¹: tests/metrics/test_counts.py;
7. second order stays finite;
8. integer labels with a class axis of 1 get an error that says to squeeze it.

The cases (tests/rules/cases.py) are one per row of the table of built-in losses
(``jaxseg_losses.registry.BUILTIN_LOSSES``) and the option variants, combinations, deep
supervision and accumulation written there. The rules that touch the fused kernels run every case
with the CPU's way of picking a label's entry ("segments"), and the cases that read the kernels
in each way a loss can also with the GPU/TPU's ("select").
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

import jaxseg_losses as jsl
from jaxseg_losses._core import fused as _fused
from tests.helpers import assert_close, has_nan
from tests.rules.cases import C, rule_cases

P = functools.partial
assert_close = functools.partial(assert_close, atol=1e-6)
CASES = rule_cases()
IDS = [case.name for case in CASES]
# The two strategies differ only inside the kernels of the shared statistics, which a loss reads
# through `Inputs`: the label's log-sum-exp and logit alone (cross-entropy), the per-class sums
# alone (Dice), and everything at once (every softmax term in one call: the per-class sums, the
# label's log-probability, the dense probabilities and the per-pixel cross-entropy maps). Those
# cases run both strategies, every other case the CPU's.
SELECT_CASES = {"cross_entropy_loss", "dice_loss", "combine_every_term"}
assert SELECT_CASES <= set(IDS), SELECT_CASES - set(IDS)
STRATEGY_CASES = [
    pytest.param(case, strategy, id=f"{case.name}-{strategy}")
    for case in CASES
    for strategy in ("segments", "select")
    if strategy == "segments" or case.name in SELECT_CASES
]


@pytest.fixture
def use_strategy(monkeypatch):
    """Sets the way the fused kernels pick a label's entry (CPU's "segments", GPU/TPU's
    "select") for one test."""
    return lambda strategy: monkeypatch.setattr(_fused, "STRATEGY", strategy)


# ----------------------------------------------------------------------------------------------
# Rule 1: a label that is neither a class nor ignore_index makes value and gradient NaN.


@pytest.mark.parametrize(("case", "strategy"), STRATEGY_CASES)
def test_a_label_that_is_no_class_is_loud(case, strategy, use_strategy):
    use_strategy(strategy)
    logits, labels, _ = case.data(1)
    bad_values = (2, 255, -1) if case.binary else (-1, C, 255, -C)

    @jax.jit
    def run(x, y):
        # One traced loss, mapped over the bad values (one compilation, not one per value). The
        # same labels on masked pixels are inert: rule 2.
        bad_labels = jnp.stack([y.at[0, 1, 2].set(bad) for bad in bad_values])
        return jax.vmap(lambda y_bad: case.value_and_grad(x, y_bad))(bad_labels)

    values, grads = run(logits, labels)
    for i, bad in enumerate(bad_values):
        assert has_nan(values[i]), (case.name, bad, "value")
        assert has_nan(grads[i]), (case.name, bad, "gradient")


# ----------------------------------------------------------------------------------------------
# Rule 2: masked and ignored pixels are inert, whatever their logits.


@pytest.mark.parametrize(("case", "strategy"), STRATEGY_CASES)
def test_masked_and_ignored_pixels_are_inert(case, strategy, use_strategy):
    use_strategy(strategy)
    logits, labels, mask = case.data(2)
    mask[0, 0, :] = 0.0  # masked pixels
    labels[1, 2, 1:] = 255  # ignored pixels
    labels[0, 0, 1:3] = 99, -1  # a masked pixel's label does not matter, even if it is no class
    excluded = (mask == 0) | (labels == 255)
    poisoned = logits.copy()
    poison = np.array([np.nan, np.inf, -np.inf], np.float32)
    for i, (b, h, w) in enumerate(zip(*np.nonzero(excluded), strict=True)):
        poisoned[b, h, w, :] = poison[i % 3]
        if i % 3 == 2 and case.channels > 1:
            poisoned[b, h, w, 0] = np.inf  # +inf and -inf in one row
    clean = np.where(excluded[..., None], np.float32(0.0), logits)

    @jax.jit
    def run(x, y, m):
        return case.value_and_grad(x, y, mask=m, ignore_index=255)

    value, grad = run(poisoned, labels, mask)
    ref_value, ref_grad = run(clean, np.where((labels == 99) | (labels == -1), 0, labels), mask)
    assert not has_nan(value) and not has_nan(grad), case.name
    assert_close(value, ref_value, err_msg=case.name)
    assert_close(grad, ref_grad, err_msg=case.name)
    if case.accumulate is None:
        assert np.all(np.asarray(grad)[excluded] == 0.0), case.name


# ----------------------------------------------------------------------------------------------
# Rule 3: mask ≡ slicing, and no valid pixel at all gives 0 with gradient 0.


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_mask_equals_slicing(case):
    logits, labels, _ = case.data(3)
    masked = np.ones(labels.shape, np.float32)
    masked[2] = 0.0  # the last sample fully masked
    ignored = labels.copy()
    ignored[2] = 255  # ... or fully ignored
    # "sum" adds the same per-sample values that "none" returns (one reduction policy for every
    # loss, checked against the references in each family's tests), and a batch-pooled loss
    # reads no reduction at all: "mean" and "none" are the two ways samples are left out.
    reductions = ("mean",) if case.batch_pooled else ("mean", "none")

    @jax.jit
    def run(x, y, m, y_ignored):
        out = {}
        for r in reductions:
            out[r] = (
                case.value(x, y, mask=m, reduction=r),
                case.value(x, y_ignored, ignore_index=255, reduction=r),
            )
        sliced = {
            r: case.value(x[:2], y[:2], reduction=r)
            for r in reductions
            if case.accumulate is None  # micro-batches of one sample need the whole batch
        }
        nothing = case.value_and_grad(x, y, mask=jnp.zeros_like(m))
        return out, sliced, nothing

    out, sliced, (zero, zero_grad) = run(logits, labels, masked, ignored)
    if case.accumulate is not None:
        # The accumulated loss of the masked batch equals the combined loss of the sliced one.
        sliced = {
            r: jax.jit(case.accumulate(None, r))(logits[:2], labels[:2])[0] for r in reductions
        }
    for r in reductions:
        by_mask, by_ignore = out[r]
        expected = sliced[r]
        if r == "none":
            assert float(by_mask[2]) == 0.0 and float(by_ignore[2]) == 0.0, case.name
            by_mask, by_ignore = by_mask[:2], by_ignore[:2]
        assert_close(by_mask, expected, err_msg=f"{case.name} {r} mask")
        assert_close(by_ignore, expected, err_msg=f"{case.name} {r} ignore_index")
    assert float(zero) == 0.0, case.name
    assert not np.any(np.asarray(zero_grad)), case.name


# ----------------------------------------------------------------------------------------------
# Rule 4: options are validated, never read by truthiness.

X4, Y4 = CASES[0].data(4)[:2]
XB, YB = CASES[-1].data(4)[:2]

# (loss, options, exception, message): every option of every loss, with the wrong type or range.
BAD_OPTIONS = [
    (jsl.dice_loss, {"log": "False"}, TypeError, r"`log` must be True or False; got str"),
    (jsl.iou_loss, {"log": 1}, TypeError, r"`log` must be True or False; got int"),
    (jsl.dice_loss, {"include_background": None}, TypeError, r"`include_background` must be"),
    (
        jsl.dice_loss,
        {"ignore_index": "255"},
        TypeError,
        r"`ignore_index` must be None or a Python int",
    ),
    (jsl.cross_entropy_loss, {"ignore_index": True}, TypeError, r"`ignore_index` .* got bool"),
    (jsl.focal_loss, {"ignore_index": [255]}, TypeError, r"`ignore_index` .* got list"),
    (jsl.dice_loss, {"smooth": "1"}, TypeError, r"`smooth` must be a real number"),
    (jsl.dice_loss, {"smooth": True}, TypeError, r"`smooth` must be a real number.*; got bool"),
    (jsl.dice_loss, {"smooth": np.inf}, ValueError, r"`smooth` must be finite"),
    (
        jsl.iou_loss,
        {"smooth": -1.0},
        ValueError,
        r"`smooth` must be finite and non-negative; got -1",
    ),
    (jsl.tversky_loss, {"alpha": -0.1}, ValueError, r"`alpha` must be finite"),
    (jsl.tversky_loss, {"beta": "0.7"}, TypeError, r"`beta` must be a real number"),
    (jsl.tversky_loss, {"gamma": np.nan}, ValueError, r"`gamma` must be finite"),
    (jsl.generalized_dice_loss, {"weight_type": "squared"}, ValueError, r"`weight_type` must"),
    (jsl.dice_loss, {"class_weights": [1.0, -1.0, 1.0, 1.0]}, ValueError, r"`class_weights`"),
    (jsl.dice_loss, {"class_weights": [1.0, np.nan, 1, 1]}, ValueError, r"`class_weights`"),
    (jsl.dice_loss, {"class_weights": [1.0, 1.0]}, ValueError, r"`class_weights` must have"),
    (jsl.cross_entropy_loss, {"class_weights": [1.0, -2, 1, 1]}, ValueError, r"`class_weights`"),
    (jsl.cross_entropy_loss, {"label_smoothing": 1.0}, ValueError, r"`label_smoothing` .*1\)"),
    (jsl.cross_entropy_loss, {"label_smoothing": "0.1"}, TypeError, r"`label_smoothing`"),
    (
        jsl.focal_loss,
        {"gamma": -2.0},
        ValueError,
        r"`gamma` must be finite and non-negative; got -2",
    ),
    (jsl.focal_loss, {"alpha": 1.5}, ValueError, r"`alpha` must be finite and lie in \[0, 1\]"),
    (jsl.focal_loss, {"alpha": [0.5, 1.2, 0, 0]}, ValueError, r"`alpha` .* \[0, 1\]"),
    (jsl.focal_loss, {"alpha": [0.5, 0.5]}, ValueError, r"`alpha` must have shape \(4,\)"),
    (jsl.lovasz_softmax_loss, {"classes": "some"}, ValueError, r"`classes` must be"),
    (jsl.dice_loss, {"classes": "some"}, TypeError, r"`classes` must be a list or tuple"),
    (jsl.iou_loss, {"absent_classes": None}, ValueError, r"`absent_classes` must be one of"),
    (jsl.focal_loss, {"class_weights": [1, -1.0, 1, 1]}, ValueError, r"`class_weights`"),
    (jsl.focal_loss, {"include_background": 0}, TypeError, r"`include_background` must be"),
    (jsl.poly_cross_entropy_loss, {"epsilon": "1"}, TypeError, r"`epsilon` must be a real"),
    (jsl.topk_cross_entropy_loss, {"k": 101}, ValueError, r"`k` must be a percentage"),
    (jsl.dice_loss, {"reduction": "avg"}, ValueError, r"`reduction` must be one of"),
    (jsl.dice_loss, {"aggregate": True}, ValueError, r"`aggregate` must be one of"),
    (jsl.focal_loss, {"activation": "relu"}, ValueError, r"`activation` must be one of"),
    (jsl.dice_loss, {"class_axis": 1.0}, TypeError, r"`class_axis` must be an int"),
]


@pytest.mark.parametrize(
    ("fn", "options", "error", "message"),
    BAD_OPTIONS,
    ids=[f"{fn.__name__}-{next(iter(o))}-{i}" for i, (fn, o, _, _) in enumerate(BAD_OPTIONS)],
)
def test_options_are_validated_by_type_and_range(fn, options, error, message):
    with pytest.raises(error, match=message):
        jax.jit(lambda x, y: fn(x, y, **options))(X4, Y4)


def test_binary_and_combination_options_are_validated():
    with pytest.raises(ValueError, match=r"`pos_weight` must be finite and non-negative"):
        jsl.cross_entropy_loss(XB, YB, activation="sigmoid", pos_weight=-1.0)
    with pytest.raises(TypeError, match=r"`pos_weight` must be a real number"):
        jsl.cross_entropy_loss(XB, YB, activation="sigmoid", pos_weight="2")
    with pytest.raises(ValueError, match=r"The weight of term 'dice' must be finite; got nan"):
        jsl.combine({"ce": 1.0, "dice": float("nan")})
    with pytest.raises(ValueError, match=r"The weight of term 'ce' must be finite; got inf"):
        jsl.combine({"ce": (np.inf, jsl.cross_entropy_loss)})
    with pytest.raises(TypeError, match=r"The weight of term 'ce' must be a number"):
        jsl.combine({"ce": (True, jsl.cross_entropy_loss)})
    with pytest.raises(TypeError, match=r"`log` must be True or False"):
        jsl.dice_from_stats(jsl.overlap_stats(X4, Y4), log="yes")


def test_traced_options_keep_working_and_checked_validates_their_range():
    """A γ or smoothing schedule passed as a traced array under jit."""

    @jax.jit
    def scheduled(x, y, gamma, smooth, weight):
        total, _ = jsl.combine(
            {
                "focal": (1.0, P(jsl.focal_loss, gamma=gamma)),
                "dice": (weight, P(jsl.dice_loss, smooth=smooth)),
            }
        )(x, y)
        return total

    got = scheduled(X4, Y4, 1.5, 0.5, 0.25)
    want = jsl.focal_loss(X4, Y4, gamma=1.5) + 0.25 * jsl.dice_loss(X4, Y4, smooth=0.5)
    assert_close(got, want)
    with pytest.raises(checkify.JaxRuntimeError, match=r"`gamma` must be finite and non-negative"):
        jsl.checked(scheduled)(X4, Y4, -1.0, 0.5, 0.25)
    with pytest.raises(checkify.JaxRuntimeError, match=r"`smooth` must be finite and non-negative"):
        jsl.checked(scheduled)(X4, Y4, 1.5, np.inf, 0.25)
    with pytest.raises(checkify.JaxRuntimeError, match=r"weight of term 'dice' must be finite"):
        jsl.checked(scheduled)(X4, Y4, 1.5, 0.5, np.nan)


# ----------------------------------------------------------------------------------------------
# Rule 5: jsl.checked composes with jit in any order.


def _checked_modes(case):
    """``(name, fn)``: the checked loss called eagerly, around and inside jit, under vmap."""
    loss = case.loss

    def plain(x, y):
        return loss(x, y, mask=None, ignore_index=None, reduction="mean")

    def per_sample(x, y):
        return loss(x[None], y[None], mask=None, ignore_index=None, reduction="mean")

    return {
        "checked(jit(f))": jsl.checked(jax.jit(plain)),
        "jit(checked(f))": jax.jit(jsl.checked(plain)),
        "jit(grad(checked(f)))": jax.jit(jax.grad(jsl.checked(plain))),
        "jit(vmap(checked(f)))": jax.jit(jax.vmap(jsl.checked(per_sample))),
    }


RUNTIME_ERRORS = (checkify.JaxRuntimeError, jax.errors.JaxRuntimeError)


# Every loss runs checked inside jit. The other orders exercise `jsl.checked` itself, the same
# wrapper for every loss, so they run on one loss of each kind of input handling (the label
# kernel, the per-class sums, the probabilities, one binary channel); the compositions (several
# terms on one input, several resolutions) run checked around jit too.
EVERY_ORDER = (
    "checked(jit(f))",
    "jit(checked(f))",
    "jit(grad(checked(f)))",
    "jit(vmap(checked(f)))",
)
ORDERS = {
    "cross_entropy_loss": EVERY_ORDER,
    "dice_loss": EVERY_ORDER,
    "lovasz_softmax_loss": EVERY_ORDER,
    "binary_cross_entropy_loss": EVERY_ORDER,
    "combine_every_term": ("checked(jit(f))", "jit(checked(f))"),
    "deep_supervision": ("checked(jit(f))", "jit(checked(f))"),
}
assert set(ORDERS) <= set(IDS), set(ORDERS) - set(IDS)


@pytest.mark.parametrize("case", [c for c in CASES if c.loss is not None], ids=lambda c: c.name)
def test_checked_composes_with_jit_in_any_order(case):
    logits, labels, _ = case.data(5)
    bad = labels.copy()
    bad[1, 2, 3] = 7
    plain = jax.jit(lambda x, y: case.loss(x, y, mask=None, ignore_index=None, reduction="mean"))
    modes = _checked_modes(case)
    for mode in ORDERS.get(case.name, ("jit(checked(f))",)):
        fn = modes[mode]
        value = jax.block_until_ready(fn(logits, labels))
        if mode == "jit(checked(f))":
            assert_close(value, plain(logits, labels), err_msg=mode)
        with pytest.raises(RUNTIME_ERRORS, match=r"`labels` must lie in \[0, \d\) .* got 7"):
            jax.block_until_ready(fn(logits, bad))


def test_checked_names_the_argument_and_the_first_offending_value():
    logits, labels, _ = CASES[0].data(6)
    step = jax.jit(jsl.checked(jsl.dice_ce_loss))
    logits_nan = logits.copy()
    logits_nan[2, 1, 0, 3] = np.nan
    with pytest.raises(
        RUNTIME_ERRORS, match=r"`logits` must be finite; got nan at index \[2 1 0 3\]"
    ):
        jax.block_until_ready(step(logits_nan, labels))
    # ... but not on a masked pixel, which is inert.
    keep = np.ones(labels.shape, np.float32)
    keep[2, 1, 0] = 0.0
    assert np.isfinite(float(step(logits_nan, labels, mask=keep)))
    with pytest.raises(RUNTIME_ERRORS, match=r"`mask` must hold non-negative weights; got -1"):
        jax.block_until_ready(step(logits, labels, mask=-keep))
    probs = jax.nn.softmax(logits, axis=-1).at[0, 0, 0, 0].set(1.5)
    with pytest.raises(RUNTIME_ERRORS, match=r"`logits` must be probabilities in \[0, 1\]"):
        jsl.checked(jsl.dice_loss)(probs, labels, activation=None)


def test_checked_loss_in_a_flax_nnx_train_step():
    nnx = pytest.importorskip("flax.nnx")
    optax = pytest.importorskip("optax")
    logits, labels, _ = CASES[0].data(7)
    model = nnx.Linear(C, C, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)
    loss_fn = jsl.checked(jsl.combine("ce+dice"))

    @nnx.jit
    def train_step(model, optimizer, x, y):
        (total, _), grads = nnx.value_and_grad(lambda m: loss_fn(m(x), y), has_aux=True)(model)
        optimizer.update(model, grads)
        return total

    first = train_step(model, optimizer, logits, labels)
    assert np.isfinite(float(first))
    bad = labels.copy()
    bad[0, 0, 0] = -3
    with pytest.raises(RUNTIME_ERRORS, match=r"`labels` must lie in \[0, 4\) .* got -3"):
        jax.block_until_ready(train_step(model, optimizer, logits, bad))


# ----------------------------------------------------------------------------------------------
# Rule 7: second order stays finite.


# A combination's Hessian is the weighted sum of its terms' Hessians: the second-order rule runs
# on every loss and option case, and on the sums only where a term is not covered on its own.
@pytest.mark.parametrize(
    "case",
    [c for c in CASES if c.loss is not None and not c.sum_of_terms],
    ids=lambda c: c.name,
)
def test_hessian_vector_products_are_finite_at_confidently_wrong_logits(case):
    _, labels, _ = case.data(8)
    wrong = labels if case.binary else (labels + 1) % C
    if case.binary:
        confident = np.where(labels[..., None] == 1, -100.0, 100.0).astype(np.float32)
    else:
        confident = np.where(np.arange(C) == wrong[..., None], 100.0, -100.0).astype(np.float32)
    direction = np.random.default_rng(8).standard_normal(confident.shape).astype(np.float32)

    def loss(x):
        return case.loss(x, labels, mask=None, ignore_index=None, reduction="mean")

    @jax.jit
    def hvp(x, v):
        return jax.jvp(jax.grad(loss), (x,), (v,))

    grad, product = hvp(confident, direction)
    assert np.all(np.isfinite(grad)) and np.all(np.isfinite(product)), case.name


@pytest.mark.parametrize("fn", [jsl.iou_loss, jsl.dice_loss, jsl.generalized_dice_loss])
def test_log_region_losses_without_smoothing_have_finite_hessians(fn):
    """The log form at no overlap with smooth=0 is floored where its curvature is finite."""
    labels = CASES[0].data(9)[1][:1, :2, :2]
    wrong = np.where(np.arange(C) == ((labels + 1) % C)[..., None], 30.0, -30.0)
    x = jnp.asarray(wrong, jnp.float32)

    def loss(x):
        return fn(x, labels, log=True, smooth=0.0)

    value, hessian = jax.jit(lambda x: (loss(x), jax.hessian(loss)(x)))(x)
    assert np.isfinite(float(value)) and np.all(np.isfinite(hessian))


# ----------------------------------------------------------------------------------------------
# Rule 8: layouts.


@pytest.mark.parametrize("case", [c for c in CASES if c.loss is not None], ids=lambda c: c.name)
def test_labels_with_a_class_axis_of_one_say_to_squeeze_it(case):
    logits, labels, _ = case.data(10)
    message = r"`labels` must have shape .* squeeze axis 1 .*labels\[:, 0\]"
    with pytest.raises(ValueError, match=message):
        case.loss(logits, labels[:, None], mask=None, ignore_index=None, reduction="mean")
    # With NCHW logits (class_axis=1) the same habit gets the same answer.
    nchw = np.moveaxis(logits, -1, 1)
    activation = "sigmoid" if case.binary else "softmax"
    with pytest.raises(ValueError, match=message):
        jsl.dice_loss(nchw, labels[:, None], class_axis=1, activation=activation)
