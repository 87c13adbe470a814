"""Fuzzing of every built-in loss and every pixel metric against the bad-input policy.

Hypothesis draws shapes (1-D to 3-D spatial, sizes up to 6, batch 1-3), class counts, the
activations a loss accepts, the logits' dtype (float32, bfloat16, float16), a mask (none,
boolean, float weights), ``ignore_index`` with ignored pixels, a label that is no class (on a
pixel that counts, or on a masked one), NaN/inf logits on an excluded pixel, saturated logits,
``reduction`` and ``aggregate``. Each example asserts only ``docs/bad_input.md``:

* an error is a ``TypeError``/``ValueError`` whose message names an argument (a backtick-quoted
  name; two documented messages name it bare, see :func:`assert_clear`), or
* the value and the gradient are finite (with a gradient of exactly 0 at a pixel whose non-finite
  logits are excluded), except that a label that is neither a class nor ``ignore_index`` on a
  pixel that counts makes value **and** gradient NaN;
* metrics: counts equal NumPy counting, a score of counts is NaN exactly where its denominator
  is 0, and a surface metric is NaN exactly where a class is absent from both counted masks
  (``inf`` where absent from one), otherwise finite.

Where cheap, results are compared with slow references: ``cross_entropy_loss`` and ``dice_loss``
with ``tests/references/`` (on the logits as rounded to their dtype, since the library computes
in float32), ``overlap_counts``/``confusion_matrix`` with NumPy counting, and the surface metrics
with the brute-force reference of ``tests/metrics/test_metric_rules.py`` when it is importable.

The list of losses is read from ``registry.BUILTIN_LOSSES``, so a new loss is fuzzed without
editing this file (the spatial family draws 2-D/3-D images only). Every example compiles (its
shapes differ), so the budget is small and fixed, and ``derandomize=True`` makes the examples the
same on every run (the pytest plugin adds the node id to the seed, so each loss draws its own).

Budget: ``EXAMPLES_PER_LOSS`` = 8 per row of the table (18 rows: 144 examples),
``METRIC_EXAMPLES`` = 25 (``overlap_counts`` with ``dice``/``iou``/``recall`` of its counts, and
``confusion_matrix``) and ``SURFACE_EXAMPLES`` = 8 (six surface metrics each): 177 examples, plus
the regression test of its finding. Measured with ``/usr/bin/time -f "%e s" .venv/bin/python -m
pytest -q -p no:cacheprovider tests/rules/test_fuzz.py``: 55 s single-process on the 2-core CPU
dev machine, which is shared (other runs on it at the same time; an idle machine is faster).

Its one finding, now fixed and kept as a regression test
(:func:`test_gradient_is_nan_for_a_label_that_is_no_class`): the losses that sort or select
pixels (top-k CE, the Lovász losses) gave a NaN value but a zero gradient when the pixel with a
label that is no class was the only one counted.
"""

import functools
import inspect
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

import jaxseg_losses as jsl
from jaxseg_losses import registry
from tests.helpers import sigmoid, softmax
from tests.references import pixelwise as ref_pixelwise
from tests.references import region as ref_region
from tests.references.metrics import counts_of_hits, hits_of_classes

try:  # the brute-force surface reference lives in a test module, which may move
    from tests.metrics.test_metric_rules import reference_metrics as surface_reference
except ImportError:  # pragma: no cover
    surface_reference = None

IGNORE = 255
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
# The policy's form of naming an argument: `name`.
BACKTICKED = re.compile(r"`[A-Za-z_][\w.\[\]]*`")

EXAMPLES_PER_LOSS = 8
METRIC_EXAMPLES = 25
SURFACE_EXAMPLES = 8

SETTINGS = functools.partial(
    settings,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def assert_clear(error: Exception, *functions) -> None:
    """A policy error: a TypeError/ValueError whose message names an argument.

    The policy's form is a backtick-quoted name; two documented messages name their argument
    bare instead (``reduction='none' ... aggregate='batch' ...`` and ``A confusion matrix needs
    num_classes >= 2``), so a parameter name of the called function as a word also counts.
    """
    assert isinstance(error, (TypeError, ValueError)), repr(error)
    message = str(error)
    event(f"refused: {message[:60]}")
    names = {n for fn in functions for n in inspect.signature(fn).parameters}
    bare = any(re.search(rf"\b{name}\b", message) for name in names)
    assert BACKTICKED.search(message) or bare, f"error names no argument: {error!r}"


def finite(tree) -> bool:
    return all(np.isfinite(np.asarray(x, np.float64)).all() for x in jax.tree.leaves(tree))


def any_nan(tree) -> bool:
    return any(np.isnan(np.asarray(x, np.float64)).any() for x in jax.tree.leaves(tree))


# ----------------------------------------------------------------------------------------------
# Losses.

LOSSES = {entry.name: entry for entry in registry.BUILTIN_LOSSES}


@st.composite
def loss_cases(draw, entry: registry.BuiltinLoss):
    """``(logits, labels, mask, options, bad, poisoned)``: ``bad`` is whether a label that is no
    class sits on a pixel that counts, ``poisoned`` the excluded pixel (if any) whose logits are
    NaN or infinite."""
    spatial_family = entry.family == "spatial"
    ndim = draw(st.integers(2, 3) if spatial_family else st.integers(1, 3))
    top = {1: 6, 2: 5, 3: 3}[ndim] if not spatial_family else {2: 5, 3: 3}[ndim]
    spatial = tuple(draw(st.integers(1 if not spatial_family else 2, top)) for _ in range(ndim))
    batch = draw(st.integers(1, 3))
    activation = draw(st.sampled_from(tuple(entry.activations)))
    if tuple(entry.activations) == ("sigmoid",):
        channels = 1
    elif activation == "softmax":
        channels = draw(st.integers(2, 5))
    else:
        channels = draw(st.sampled_from((1, 1, 2, 3)))
    dtype = draw(st.sampled_from(tuple(DTYPES)))
    scale = draw(st.sampled_from((2.0, 2.0, 100.0)))
    mask_kind = draw(st.sampled_from((None, "bool", "float")))
    ignore_index = draw(st.sampled_from((None, IGNORE)))
    bad_where = draw(st.sampled_from(("none", "none", "counted", "masked")))
    poison = draw(st.sampled_from((None, None, np.nan, np.inf, -np.inf)))
    options = {"reduction": draw(st.sampled_from(("mean", "sum", "none")))}
    parameters = inspect.signature(entry.fn).parameters
    if "aggregate" in parameters:
        options["aggregate"] = draw(st.sampled_from(("sample", "batch")))
    if "activation" in parameters:
        options["activation"] = activation
    options["ignore_index"] = ignore_index
    seed = draw(st.integers(0, 2**31 - 1))

    rng = np.random.default_rng(seed)
    shape = (batch, *spatial)
    x = scale * rng.standard_normal((*shape, channels))
    if activation is None:  # probabilities, kept off 0 and 1 so that rounding keeps them inside
        x = softmax(x) if channels > 1 else sigmoid(x)
        x = np.clip(x, 0.01, 0.99)
    dense = activation == "sigmoid" and channels > 1  # multi-label: dense targets
    if dense:
        labels = (rng.random((*shape, channels)) < 0.5).astype(np.float32)
    else:
        labels = rng.integers(0, max(channels, 2), shape).astype(np.int32)
        if ignore_index is not None:
            labels = np.where(rng.random(shape) < 0.25, IGNORE, labels).astype(np.int32)
    if mask_kind is None:
        mask = None
        weight = np.ones(shape)
    elif mask_kind == "bool":
        mask = rng.random(shape) < 0.75
        weight = mask.astype(np.float64)
    else:
        mask = np.where(rng.random(shape) < 0.25, 0.0, rng.random(shape)).astype(np.float32)
        weight = mask.astype(np.float64)
    bad = False
    if not dense and bad_where != "none":
        counted = weight > 0
        if ignore_index is not None:
            counted &= labels != ignore_index
        spots = np.argwhere(counted if bad_where == "counted" else weight == 0)
        if len(spots):
            no_class = int(rng.choice([-1, max(channels, 2), 7]))
            labels[tuple(spots[rng.integers(len(spots))])] = no_class
            bad = bad_where == "counted"
    excluded = weight == 0
    if ignore_index is not None and not dense:
        excluded |= labels == ignore_index
    poisoned = np.zeros(shape, bool)
    if poison is not None and excluded.any():  # a non-finite logit on an excluded pixel: inert
        spots = np.argwhere(excluded)
        poisoned[tuple(spots[rng.integers(len(spots))])] = True
        x = np.where(poisoned[..., None], poison, x)
    logits = jnp.asarray(x.astype(DTYPES[dtype]))  # rounded on the host: no compilation
    return logits, labels, mask, options, bad, poisoned


def loss_value_and_grad(fn, logits, labels, mask, options):
    def total(x, y, m):
        value = fn(x, y, mask=m, **options)
        return jnp.sum(value.astype(jnp.float32)), value

    return jax.jit(jax.value_and_grad(total, has_aux=True))(logits, labels, mask)


def reference(name, logits, labels, mask, options):
    """The NumPy reference of ``cross_entropy_loss`` / ``dice_loss`` (None for other losses)."""
    x = np.asarray(logits).astype(np.float64)  # the logits as rounded to their dtype
    if labels.dtype.kind == "i":  # a label that is no class on an excluded pixel is inert: 0
        top = max(x.shape[-1], 2)
        known = (labels >= 0) & (labels < top) | (labels == options["ignore_index"])
        labels = np.where(known, labels, 0).astype(np.int32)
    kw = {
        "activation": options.get("activation", "softmax"),
        "ignore_index": options["ignore_index"],
        "mask": mask,
        "reduction": options["reduction"],
    }
    if name == "cross_entropy_loss" and options.get("aggregate", "sample") == "sample":
        return ref_pixelwise.np_cross_entropy(x, labels, **kw)
    if name == "dice_loss":
        return ref_region.region_loss("dice", x, labels, aggregate=options["aggregate"], **kw)
    return None


def check_loss(name, case):
    logits, labels, mask, options, bad, poisoned = case
    note(f"{name}: logits {logits.dtype}{logits.shape}, options {options}, bad label {bad}")
    note(f"non-finite logits on excluded pixels: {np.argwhere(poisoned).tolist()}")
    note(f"labels={labels.tolist()}\nmask={None if mask is None else mask.tolist()}")
    try:
        (_, value), grad = loss_value_and_grad(LOSSES[name].fn, logits, labels, mask, options)
    except Exception as error:  # the policy decides whether an error is clear
        assert_clear(error, LOSSES[name].fn)
        return
    event("NaN by a label that is no class" if bad else "computed")
    if bad:
        assert any_nan(value), f"a label that is no class gave a non-NaN value {value}"
        assert any_nan(grad), "a label that is no class gave a non-NaN gradient"
        return
    assert finite(value), f"non-finite value {value}"
    assert finite(grad), "non-finite gradient"
    assert not np.asarray(grad, np.float64)[poisoned].any(), "excluded pixel with a gradient"
    # the reference reads finite logits there (0.5: a logit and a probability alike)
    finite_logits = np.where(poisoned[..., None], 0.5, np.asarray(logits).astype(np.float64))
    expected = reference(name, finite_logits, labels, mask, options)
    if expected is not None:
        np.testing.assert_allclose(
            np.asarray(value, np.float64), expected, rtol=1e-4, atol=1e-5, err_msg=name
        )


# The losses that sort or select pixels, where a bad pixel is left out of what is differentiated.
SORTING_LOSSES = ("topk_cross_entropy_loss", "lovasz_softmax_loss", "lovasz_hinge_loss")


@pytest.mark.parametrize("name", SORTING_LOSSES)
def test_gradient_is_nan_for_a_label_that_is_no_class(name):
    channels = 1 if tuple(LOSSES[name].activations) == ("sigmoid",) else 3
    logits = jnp.linspace(-0.5, 0.5, channels).reshape(1, 1, channels)  # one pixel
    labels = jnp.array([[-1]])

    value, grad = jax.value_and_grad(lambda x: LOSSES[name].fn(x, labels))(logits)
    assert np.isnan(value)
    assert any_nan(grad), f"gradient without NaN: {grad.tolist()}"


@pytest.mark.parametrize("name", sorted(LOSSES))
@SETTINGS(max_examples=EXAMPLES_PER_LOSS)
@given(data=st.data())
def test_loss_follows_the_policy(name, data):
    # Each parametrized case draws its own examples (hypothesis's pytest plugin adds the node id
    # to the derandomized seed).
    check_loss(name, data.draw(loss_cases(LOSSES[name]), label="case"))


# ----------------------------------------------------------------------------------------------
# Pixel metrics: overlap_counts, scores of its counts, confusion_matrix.

SCORES = {  # name: (numerator, denominator) of TP, FP, FN
    "dice": (lambda tp, fp, fn: 2 * tp, lambda tp, fp, fn: 2 * tp + fp + fn),
    "iou": (lambda tp, fp, fn: tp, lambda tp, fp, fn: tp + fp + fn),
    "recall": (lambda tp, fp, fn: tp, lambda tp, fp, fn: tp + fn),
}


@st.composite
def metric_cases(draw):
    ndim = draw(st.integers(1, 3))
    top = {1: 6, 2: 5, 3: 3}[ndim]
    spatial = tuple(draw(st.integers(1, top)) for _ in range(ndim))
    batch = draw(st.integers(1, 3))
    channels = draw(st.integers(1, 5))
    kind = draw(st.sampled_from(("int", "scores")))
    dtype = draw(st.sampled_from(tuple(DTYPES)))
    mask_kind = draw(st.sampled_from((None, "bool", "float")))
    ignore_index = draw(st.sampled_from((None, IGNORE)))
    no_class = draw(st.booleans())
    seed = draw(st.integers(0, 2**31 - 1))

    rng = np.random.default_rng(seed)
    shape = (batch, *spatial)
    classes = max(channels, 2)
    labels = rng.integers(0, classes, shape).astype(np.int32)
    if ignore_index is not None:
        labels = np.where(rng.random(shape) < 0.2, IGNORE, labels).astype(np.int32)
    if kind == "int":
        predictions = rng.integers(0, classes, shape).astype(np.int32)
    else:
        predictions = (2 * rng.standard_normal((*shape, channels))).astype(DTYPES[dtype])
    if kind == "scores" and draw(st.booleans()):  # non-finite scores, anywhere
        spots = rng.random((*shape, channels)) < 0.1
        predictions = np.where(
            spots, rng.choice([np.nan, np.inf, -np.inf], spots.shape), predictions
        )
        predictions = predictions.astype(DTYPES[dtype])
    if no_class:  # values that are no class, anywhere
        spots = rng.random(shape) < 0.15
        labels = np.where(spots, rng.choice([-1, classes, 7], shape), labels).astype(np.int32)
        if kind == "int":
            spots = rng.random(shape) < 0.15
            predictions = np.where(spots, rng.choice([-1, classes], shape), predictions)
            predictions = predictions.astype(np.int32)
    mask = {
        None: None,
        "bool": rng.random(shape) < 0.75,
        "float": np.where(rng.random(shape) < 0.25, 0.0, rng.random(shape)).astype(np.float32),
    }[mask_kind]
    return predictions, labels, mask, channels, ignore_index


@functools.partial(jax.jit, static_argnames=("num_classes", "ignore_index"))
def pixel_metrics(predictions, labels, mask, *, num_classes, ignore_index):
    counts = jsl.metrics.overlap_counts(
        predictions, labels, num_classes=num_classes, ignore_index=ignore_index, mask=mask
    )
    out = {"counts": counts}
    for name in SCORES:
        out[name] = getattr(jsl.metrics, name)(counts)
    return out


@functools.partial(jax.jit, static_argnames=("num_classes", "ignore_index"))
def confusion(predictions, labels, mask, *, num_classes, ignore_index):
    return jsl.metrics.confusion_matrix(
        predictions, labels, num_classes, ignore_index=ignore_index, mask=mask
    )


def numpy_decisions(predictions, channels):
    """Predicted class per pixel ``[B, P]`` (int), as the metrics decide it: the arg-max, the
    first NaN of a row with NaN (the policy's ``jnp.argmax`` rule)."""
    batch = predictions.shape[0]
    if np.issubdtype(predictions.dtype, np.integer):
        return predictions.reshape(batch, -1)
    scores = np.asarray(predictions, np.float32).reshape(batch, -1, channels)
    return np.argmax(scores, axis=-1)


def numpy_valid(decided, labels, mask, channels, ignore_index):
    batch = labels.shape[0]
    flat = labels.reshape(batch, -1)
    top = 2 if channels == 1 else channels
    valid = (flat >= 0) & (flat < top) & (decided >= 0) & (decided < top)
    if ignore_index is not None:
        valid &= flat != ignore_index
    if mask is not None:
        valid &= np.asarray(mask).reshape(batch, -1) != 0
    return flat, valid


@SETTINGS(max_examples=METRIC_EXAMPLES)
@given(case=metric_cases())
def test_pixel_metrics_follow_the_policy(case):
    predictions, labels, mask, channels, ignore_index = case
    note(f"predictions {predictions.dtype}{predictions.shape}, C={channels}, ii={ignore_index}")
    decided = numpy_decisions(predictions, channels)
    flat, valid = numpy_valid(decided, labels, mask, channels, ignore_index)
    try:
        out = pixel_metrics(
            predictions, labels, mask, num_classes=channels, ignore_index=ignore_index
        )
    except Exception as error:  # the policy decides whether an error is clear
        assert_clear(error, jsl.metrics.overlap_counts)
    else:
        expected = counts_of_hits(
            hits_of_classes(decided, channels), hits_of_classes(flat, channels), valid
        )
        counts = out["counts"]
        for field in ("tp", "fp", "fn", "tn"):
            got = np.asarray(getattr(counts, field), np.int64)
            np.testing.assert_array_equal(got, expected[field], err_msg=field)
        tp, fp, fn = (expected[k].astype(np.float64) for k in ("tp", "fp", "fn"))
        for name, (numerator, denominator) in SCORES.items():
            got = np.asarray(out[name], np.float64)
            den = denominator(tp, fp, fn)
            assert np.array_equal(np.isnan(got), den == 0), (name, got, den)
            want = numerator(tp, fp, fn) / np.where(den == 0, 1, den)
            np.testing.assert_allclose(got[den > 0], want[den > 0], rtol=1e-6, err_msg=name)

    try:
        matrix = confusion(
            predictions, labels, mask, num_classes=channels, ignore_index=ignore_index
        )
    except Exception as error:  # the policy decides whether an error is clear
        assert_clear(error, jsl.metrics.confusion_matrix)
        return
    expected = np.zeros((channels, channels), np.int64)
    np.add.at(expected, (flat[valid], decided[valid]), 1)
    np.testing.assert_array_equal(np.asarray(matrix, np.int64), expected)


# ----------------------------------------------------------------------------------------------
# Surface metrics.


@st.composite
def surface_cases(draw):
    ndim = draw(st.integers(2, 3))
    top = 6 if ndim == 2 else 4
    spatial = tuple(draw(st.integers(2, top)) for _ in range(ndim))
    batch = draw(st.integers(1, 2))
    channels = draw(st.integers(2, 3))
    ignore_index = draw(st.sampled_from((None, IGNORE)))
    masked = draw(st.booleans())
    isotropic = draw(st.booleans())
    seed = draw(st.integers(0, 2**31 - 1))

    rng = np.random.default_rng(seed)
    shape = (batch, *spatial)
    # few classes per image: blobs are more typical than noise, and empty classes happen
    labels = (rng.random(shape) < 0.4).astype(np.int32) * rng.integers(1, channels, shape)
    predictions = np.where(rng.random(shape) < 0.3, rng.integers(0, channels, shape), labels)
    predictions = predictions.astype(np.int32)
    counted = np.ones(shape, bool)
    if ignore_index is not None:
        holes = rng.random(shape) < 0.2
        labels = np.where(holes, IGNORE, labels).astype(np.int32)
        counted &= ~holes
    mask = rng.random(shape) > 0.2 if masked else None
    if mask is not None:
        counted &= mask
    # values that are no class on excluded pixels (inert) and predictions on counted ones
    predictions = np.where(
        (~counted | (rng.random(shape) < 0.1)) & (rng.random(shape) < 0.5), 7, predictions
    ).astype(np.int32)
    spacing = np.ones(ndim, np.float32) if isotropic else rng.uniform(0.5, 2.0, ndim)
    return predictions, labels, mask, spacing.astype(np.float32), channels, ignore_index, counted


@functools.partial(jax.jit, static_argnames=("num_classes", "ignore_index"))
def surface_metrics(predictions, labels, mask, spacing, *, num_classes, ignore_index):
    options = dict(num_classes=num_classes, spacing=spacing, ignore_index=ignore_index, mask=mask)
    m = jsl.metrics
    return {
        "hd": m.hausdorff_distance(predictions, labels, **options),
        "hd95": m.hausdorff_distance(predictions, labels, percentile=95, **options),
        "hd_directed": m.hausdorff_distance(predictions, labels, directed=True, **options),
        "asd": m.average_surface_distance(predictions, labels, **options),
        "assd": m.average_surface_distance(predictions, labels, symmetric=True, **options),
        "nsd": m.surface_dice(predictions, labels, tolerance=1.5, **options),
    }


@SETTINGS(max_examples=SURFACE_EXAMPLES)
@given(case=surface_cases())
def test_surface_metrics_follow_the_policy(case):
    predictions, labels, mask, spacing, channels, ignore_index, counted = case
    note(f"labels={labels.tolist()}\npredictions={predictions.tolist()}")
    note(f"mask={None if mask is None else mask.tolist()}, spacing={spacing}")
    try:
        out = surface_metrics(
            predictions, labels, mask, spacing, num_classes=channels, ignore_index=ignore_index
        )
    except Exception as error:  # the policy decides whether an error is clear
        assert_clear(error, jsl.metrics.hausdorff_distance, jsl.metrics.surface_dice)
        return
    batch = labels.shape[0]
    in_prediction = np.zeros((batch, channels - 1), bool)
    in_labels = np.zeros((batch, channels - 1), bool)
    for c in range(1, channels):
        in_prediction[:, c - 1] = ((predictions == c) & counted).reshape(batch, -1).any(1)
        in_labels[:, c - 1] = ((labels == c) & counted).reshape(batch, -1).any(1)
    neither, one = ~in_prediction & ~in_labels, in_prediction ^ in_labels
    for name, value in out.items():
        value = np.asarray(value, np.float64)
        assert value.shape == (batch, channels - 1), name
        assert np.array_equal(np.isnan(value), neither), (name, value)
        if name == "nsd":
            assert np.all(value[one] == 0) and np.isfinite(value[~neither]).all(), value
        else:
            assert np.array_equal(np.isinf(value), one), (name, value)
    if surface_reference is not None:
        expected = surface_reference(predictions, labels, counted, channels, spacing, 1.5)
        for name, value in expected.items():
            np.testing.assert_allclose(
                np.asarray(out[name]), value, rtol=2e-6, atol=2e-6, err_msg=name
            )
