"""Evaluation helpers: reductions that leave ``inf`` out, and per-image metrics of scores.

``ignore_inf=True`` of ``jsl.metrics.reduce`` and ``PerImageAccumulator.compute`` against the
loop reference of tests/references/metrics.py on the values with ``±inf`` made NaN, and against
MONAI users' ``values[isfinite].mean()``; the per-class geometric metrics given logits or
probabilities against the same metric of their arg-max.
"""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

import jaxseg_losses as jsl
from jaxseg_losses import metrics as M
from tests.helpers import IGNORE, assert_close
from tests.references import metrics as ref

INF, NAN = np.inf, np.nan
RUNTIME_ERRORS = (checkify.JaxRuntimeError, jax.errors.JaxRuntimeError)


# ----------------------------------------------------------------------------------------------
# Reductions that leave inf out.


def _distances():
    """Per-image distances ``[6, 4]``: NaN (a class in neither mask), inf (in one only)."""
    return np.array(
        [
            [1.0, 2.0, INF, NAN],
            [3.0, INF, INF, 4.0],
            [NAN, NAN, NAN, NAN],
            [INF, INF, INF, INF],  # an image whose every value is inf
            [0.5, 6.0, NAN, 2.5],
            [2.0, -INF, 1.5, NAN],
        ],
        np.float32,
    )


SELECTIONS = [
    {},
    {"include_background": False},
    {"classes": (1, 2)},
    {"class_weights": [1.0, 2.0, 0.5, 0.0]},
]
# The axes each reduction sums the left-out values over (of the kept classes).
LEFT_OUT_AXES = {"none": (), "mean_channel": (1,), "sum_channel": (1,)}
LEFT_OUT_AXES |= {"mean_batch": (0,), "sum_batch": (0,)}


def _cases():
    for reduction in M.REDUCTIONS:
        for options in SELECTIONS:
            if "class_weights" in options and reduction in ("none", "mean_batch", "sum_batch"):
                continue
            yield reduction, options


def test_reduce_ignore_inf_matches_the_reference_of_finite_values():
    x = _distances()
    cases = list(_cases())

    @jax.jit
    def run(x):
        return [M.reduce(x, reduction=r, ignore_inf=True, return_count=True, **o) for r, o in cases]

    finite = np.where(np.isinf(x), NAN, x)
    for (reduction, options), (value, count, left_out) in zip(cases, run(x), strict=True):
        keep, weights = ref.class_selection(options, num_classes=4)
        expected, expected_count = ref.reduce(finite, reduction, keep=keep, weights=weights)
        what = f"{reduction} {options}"
        assert count.dtype == left_out.dtype == jnp.int32, what
        np.testing.assert_allclose(value, expected, rtol=1e-6, err_msg=what)
        np.testing.assert_array_equal(count, expected_count, err_msg=what)
        axes = LEFT_OUT_AXES.get(reduction, (0, 1))
        expected_left_out = np.isinf(x[:, keep]).sum(axis=axes)
        np.testing.assert_array_equal(left_out, expected_left_out, err_msg=what)


def test_reduce_ignore_inf_is_the_finite_mean_of_numpy():
    x = _distances()

    @jax.jit
    def run(x):
        return {
            "mean_all": M.reduce(x, reduction="mean_all", ignore_inf=True),
            "mean_batch": M.reduce(x, reduction="mean_batch", ignore_inf=True),
            "kept": M.reduce(x, reduction="mean_batch"),
            "none": M.reduce(x, reduction="none", ignore_inf=True),
        }

    got = run(x)
    np.testing.assert_allclose(got["mean_all"], x[np.isfinite(x)].mean(), rtol=1e-6)
    columns = [x[np.isfinite(x[:, c]), c].mean() for c in range(4)]
    np.testing.assert_allclose(got["mean_batch"], columns, rtol=1e-6)
    # Without it inf is a value, as in MONAI: every class mean that meets one is infinite (NaN
    # where +inf meets -inf).
    np.testing.assert_array_equal(got["kept"], [INF, NAN, INF, INF])
    np.testing.assert_array_equal(got["none"], np.where(np.isinf(x), NAN, x))


def test_reduce_return_count_stays_a_pair_without_ignore_inf():
    x = _distances()
    value, count = M.reduce(x, reduction="mean_all", return_count=True)
    assert np.isnan(value) and int(count) == 17  # +inf and -inf meet: NaN, as in NumPy
    with pytest.raises(TypeError, match=r"`ignore_inf` must be True or False; got str 'yes'"):
        M.reduce(x, ignore_inf="yes")


def _stream(acc, batches):
    step = jax.jit(lambda acc, v: acc.update({"hd": v, "asd": v * 2}))
    for batch in batches:
        acc = step(acc, batch)
    return acc


@pytest.mark.parametrize(
    "options", [{}, {"include_background": False, "class_weights": [1.0, 2.0, 0.5, 3.0]}]
)
def test_accumulator_ignore_inf_streams_like_reduce_of_every_image(options):
    x = _distances()
    empty = M.PerImageAccumulator.empty(("hd", "asd"), 4, **options)
    acc = _stream(empty, [x[:2], x[2:3], x[3:]])
    # Two accumulators of a split loop add to the same sums.
    added = _stream(empty, [x[:3]]) + _stream(empty, [x[3:]])

    @jax.jit
    def compute(acc):
        return {
            r: acc.compute(reduction=r, ignore_inf=True, return_count=True)
            for r in M.STREAMED_REDUCTIONS
        }

    weights = options.get("class_weights")
    selection = {k: v for k, v in options.items() if k != "class_weights"}
    for name, got in (("streamed", compute(acc)), ("added", compute(added))):
        for reduction in M.STREAMED_REDUCTIONS:
            use = {} if reduction in ("mean_batch", "sum_batch") else {"class_weights": weights}
            expected = M.reduce(
                x, reduction=reduction, ignore_inf=True, return_count=True, **selection, **use
            )
            what = f"{name} {reduction} {options}"
            value, count, left_out = got[reduction]["hd"]
            assert_close(value, expected[0], rtol=1e-6, err_msg=what)
            np.testing.assert_array_equal(count, expected[1], err_msg=what)
            np.testing.assert_array_equal(left_out, expected[2], err_msg=what)
            assert_close(got[reduction]["asd"][0], expected[0] * 2, rtol=1e-6, err_msg=what)
    # The default reads every defined value, inf included, and its count stays a pair.
    value, count = acc.compute(reduction="mean_batch", return_count=True)["hd"]
    expected = M.reduce(x, reduction="mean_batch", return_count=True, **selection)
    assert_close(value, expected[0], rtol=1e-6)
    np.testing.assert_array_equal(count, expected[1])


# ----------------------------------------------------------------------------------------------
# The per-class geometric metrics of scores: the arg-max, as the counts decide it.


def _segmentation():
    r = np.random.default_rng(5)
    labels = np.zeros((2, 10, 10), np.int32)
    labels[0, 2:7, 2:6] = 1
    labels[0, 5:9, 6:9] = 2
    labels[1, 1:5, 4:9] = 2
    logits = r.normal(size=(2, 10, 10, 3)).astype(np.float32)
    # Confident where the labels are, noisy elsewhere: surfaces near, not equal.
    logits += 3.0 * np.eye(3, dtype=np.float32)[labels] * (r.uniform(size=(2, 10, 10, 1)) < 0.8)
    return logits, labels


METRICS = {
    "hausdorff_distance": functools.partial(M.hausdorff_distance, percentile=95),
    "average_surface_distance": functools.partial(M.average_surface_distance, symmetric=True),
    "surface_dice": functools.partial(M.surface_dice, tolerance=1.0),
    "boundary_iou": functools.partial(M.boundary_iou, dilation_ratio=0.2),
    "volume_difference": M.volume_difference,
    "cldice": M.cldice,
    "betti_errors": M.betti_errors,
    "lesion_wise_scores": functools.partial(M.lesion_wise_scores, max_lesions=4),
}


@pytest.mark.parametrize("name", list(METRICS))
def test_metrics_of_scores_equal_the_metric_of_their_arg_max(name):
    metric = METRICS[name]
    logits, labels = _segmentation()
    one_hot = np.eye(3, dtype=bool)[labels]
    mask = np.ones(labels.shape, bool)
    mask[1, :, :3] = False
    ignored = np.where(np.arange(10) < 2, IGNORE, labels).astype(np.int32)

    @jax.jit
    def run(logits):
        classes = jnp.argmax(logits, axis=-1)
        probabilities = jax.nn.softmax(logits, axis=-1)
        nchw = jnp.moveaxis(logits, -1, 1)
        return {
            "logits": (metric(logits, labels), metric(classes, labels, num_classes=3)),
            "probabilities": (
                metric(probabilities, labels, num_classes=3),
                metric(classes, labels, num_classes=3),
            ),
            "class_axis=1": (
                metric(nchw, labels, class_axis=1),
                metric(classes, labels, num_classes=3),
            ),
            "one-hot labels": (
                metric(nchw, jnp.moveaxis(one_hot, -1, 1), class_axis=1),
                metric(classes, labels, num_classes=3),
            ),
            "mask": (
                metric(logits, labels, mask=mask),
                metric(classes, labels, num_classes=3, mask=mask),
            ),
            "ignore_index": (
                metric(logits, ignored, ignore_index=IGNORE),
                metric(classes, ignored, num_classes=3, ignore_index=IGNORE),
            ),
        }

    for case, (got, expected) in run(logits).items():
        assert jax.tree.structure(got) == jax.tree.structure(expected), case
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
            assert a.shape[:2] == (2, 2), case  # [B, C - 1] per image and class
            np.testing.assert_array_equal(a, b, err_msg=f"{name}: {case}")


def test_metrics_of_scores_name_the_fix_of_bad_scores():
    logits, labels = _segmentation()
    hd = M.hausdorff_distance
    cases = [
        (ValueError, "threshold them into integer classes, e.g. "
         "`(logits[..., 0] > 0).astype(jnp.int32)`", lambda: hd(logits[..., :1], labels)),
        (ValueError, "`predictions` have 3 classes along `class_axis`, but num_classes=4",
         lambda: hd(logits, labels, num_classes=4)),
        (TypeError, "got float `predictions` of the labels' shape (2, 10, 10): class indices "
         "stored as floats? Cast them, `predictions.astype(jnp.int32)`",
         lambda: hd(labels.astype(np.float32), labels, num_classes=3)),
        (ValueError, "`labels` have the shape of `predictions` without axis 1: pass "
         "`class_axis=1`", lambda: hd(np.moveaxis(logits, -1, 1), labels)),
        (ValueError, "Integer labels [B, 1, *spatial] (the PyTorch habit) have a class axis of "
         "size 1: squeeze it, `labels[:, 0]`.",
         lambda: hd(np.moveaxis(logits, -1, 1), labels[:, None], class_axis=1)),
    ]  # fmt: skip
    for error, message, call in cases:
        with pytest.raises(error, match=re.escape(message)):
            jax.jit(call)()


def test_checked_reports_non_finite_scores_on_counted_pixels_only():
    logits, labels = _segmentation()
    bad = logits.copy()
    bad[1, 3, 4, 2] = NAN
    step = jax.jit(jsl.checked(functools.partial(M.surface_dice, tolerance=1.0)))
    with pytest.raises(RUNTIME_ERRORS, match=r"`predictions` must be finite scores; got nan"):
        jax.block_until_ready(step(bad, labels))
    mask = np.ones(labels.shape, bool)
    mask[1, 3, 4] = False
    masked = jax.jit(jsl.checked(functools.partial(M.surface_dice, tolerance=1.0, mask=mask)))
    plain = functools.partial(M.surface_dice, num_classes=3, tolerance=1.0, mask=mask)
    expected = jax.jit(plain)(np.argmax(logits, -1), labels)
    np.testing.assert_array_equal(masked(bad, labels), expected)
