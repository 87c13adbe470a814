"""Reductions of per-image, per-class scores (means over images and classes, class selections,
weights, empty rules) against NumPy loops over the definitions (tests/references/metrics.py)."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg_losses import metrics
from tests.references import metrics as ref

M = metrics
NAN = math.nan


# ----------------------------------------------------------------------------------------------
# Reductions.


def _values():
    x = np.array(
        [
            [0.9, 0.5, NAN, 0.2, 0.7],
            [NAN, NAN, NAN, NAN, NAN],  # an image with nothing defined
            [0.1, 0.4, NAN, NAN, 1.0],
            [0.3, NAN, NAN, 0.8, 0.6],  # class 2: defined nowhere
        ],
        np.float32,
    )
    return x


SELECTIONS = [
    {},
    {"include_background": False},
    {"classes": (1, 3)},
    {"class_weights": [1.0, 2.0, 0.5, 0.0, 3.0]},
    {"class_weights": [1.0, 2.0, 0.5, 0.0, 3.0], "include_background": False},
]


def test_reductions_match_numpy():
    x = _values()
    x_inf = x.copy()
    x_inf[2, 1] = np.inf

    cases = []
    for reduction in M.REDUCTIONS:
        for options in SELECTIONS:
            if "class_weights" in options and reduction in ("none", "mean_batch", "sum_batch"):
                continue
            for values in ("x", "row") if options else ("x", "x_inf", "row"):
                cases.append((reduction, options, values))

    @jax.jit
    def run(x, x_inf):
        inputs = {"x": x, "x_inf": x_inf, "row": x[0]}
        return [M.reduce(inputs[v], reduction=r, return_count=True, **o) for r, o, v in cases]

    results = run(x, x_inf)
    inputs = {"x": x, "x_inf": x_inf, "row": x[0]}
    for (reduction, options, values), (value, count) in zip(cases, results, strict=True):
        keep, weights = ref.class_selection(options)
        expected, expected_count = ref.reduce(inputs[values], reduction, keep=keep, weights=weights)
        what = f"{reduction} {options} {values}"
        assert value.dtype == jnp.float32 and count.dtype == jnp.int32, what
        np.testing.assert_allclose(value, expected, rtol=1e-6, err_msg=what)
        np.testing.assert_array_equal(count, expected_count, err_msg=what)


def test_scores_reduce_like_reduce_of_scores_and_means_select_classes():
    r = np.random.default_rng(8)
    labels = r.integers(0, 4, (3, 5, 5))
    labels[0][labels[0] == 3] = 0
    predictions = np.where(
        r.uniform(size=labels.shape) < 0.5, labels, r.integers(0, 4, labels.shape)
    )

    @jax.jit
    def run(p, y):
        m = M.confusion_matrix(p, y, 4)
        counts = M.overlap_counts(p, y, num_classes=4)
        per_image = M.dice(counts, ignore_empty=True)
        return {
            "mean": (
                M.dice(counts, ignore_empty=True, reduction="mean"),
                M.reduce(per_image, reduction="mean"),
            ),
            "foreground": (
                M.mean_iou(m, include_background=False),
                M.reduce(M.iou(m), reduction="mean", include_background=False),
            ),
            "subset": (M.mean_dice(m, classes=(1, 2)), jnp.nanmean(M.dice(m)[jnp.array([1, 2])])),
            "pooled": (M.iou(counts.sum(axis=0)), M.iou(m)),
            "micro": (M.iou(counts.sum()), M.iou(counts.sum(axis=(0, 1)))),
        }

    for name, (a, b) in run(predictions, labels).items():
        np.testing.assert_allclose(a, b, rtol=1e-6, err_msg=name)
