"""Calibration error: torchmetrics' top-label form, MONAI's per-class form, the accumulator.

Values are checked against a NumPy reference written here from the formulas of the module
docstring (bins by explicit interval tests, float64 sums) and against numbers of the peers
computed once on the inputs below and held as literals: torchmetrics 1.9.0 and MONAI 1.6.1
(torch 2.13.0, CPU, float32). The inputs put confidences on the bins' edges, where PyTorch's
float32 ``linspace`` differs from the nearest float32 of ``k / n``.
"""

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxseg_losses as jsl
from jaxseg_losses.metrics.calibration import (
    CalibrationAccumulator,
    bin_edges,
    calibration_error,
    per_class_calibration_error,
    reliability_diagram,
)
from tests.helpers import assert_close, exact_ints

IGNORE = 255
NORMS = ("l1", "l2", "max")
REDUCTIONS = ("expected", "average", "maximum")
MONAI_END = 1.0 + 2.0**-23

# ----------------------------------------------------------------------------------------------
# Inputs shared with the peers' scripts (channels last; the peers got them channels first).

# Top-label probabilities [2, 2, 3, 3]: confidences on edges, a confidence of exactly 1.
BOUNDARY_PROBS = np.array(
    [
        [[[0.4, 0.35, 0.25], [0.2, 0.6, 0.2], [0.1, 0.1, 0.8]],
         [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.5, 0.3, 0.2]]],
        [[[0.7, 0.2, 0.1], [0.6, 0.4, 0.0], [0.2, 0.2, 0.6]],
         [[0.25, 0.35, 0.4], [0.3, 0.3, 0.4], [0.1, 0.8, 0.1]]],
    ],
    np.float32,
)  # fmt: skip
BOUNDARY_LABELS = np.array([[[0, 1, 2], [0, 2, 1]], [[1, 0, 2], [2, IGNORE, 0]]], np.int32)
# One channel: foreground probabilities [2, 6, 1].
BINARY_PROBS = np.array(
    [[0.0, 0.2, 0.4, 0.5, 0.6, 1.0], [0.8, 1.0, 0.2, 0.9, 0.75, 0.4]], np.float32
)[..., None]
BINARY_LABELS = np.array([[0, 1, 0, 1, 1, 1], [1, 1, 0, 0, 1, IGNORE]], np.int32)
# Confidences on torch's 15-bin edges where they are not the nearest float32 of k / 15, each with
# a neighbour that shares its bin under one edge set only.
EDGE_PROBS = np.array(
    [[[[0.4, 0.3, 0.3], [0.41, 0.3, 0.29], [0.59999996, 0.2, 0.2], [0.59, 0.21, 0.2]],
      [[0.6666666, 0.2, 0.1333], [0.65, 0.2, 0.15], [0.46666667, 0.3, 0.23333333],
       [0.47, 0.3, 0.23]]]],
    np.float32,
)  # fmt: skip
EDGE_LABELS = np.array([[[1, 0, 0, 2], [0, 1, 0, 2]]], np.int32)
EDGE_BINARY = np.array(
    [[0.2, 0.21, 0.4, 0.41, 0.59999996, 0.59, 0.46666667, 0.47, 0.5333333, 0.52]], np.float32
)[..., None]
EDGE_BINARY_LABELS = np.array([[0, 1, 0, 1, 1, 0, 1, 0, 1, 0]], np.int32)
# MONAI's 20-bin upper edges (to 1 + 2**-23) and neighbours, as [1, 8, 2] probabilities.
MONAI_EDGE = np.array(
    [0.20000002, 0.19, 0.40000004, 0.41, 0.50000006, 0.49, 0.7000001, 0.71], np.float32
)
MONAI_EDGE_PROBS = np.stack([MONAI_EDGE, 1 - MONAI_EDGE], -1)[None]
MONAI_EDGE_LABELS = np.array([[0, 1, 1, 0, 0, 0, 1, 0]], np.int32)


def formula_logits(shape, scale=3.0):
    """Deterministic logits without a random generator (the peers' scripts made the same)."""
    i = np.arange(math.prod(shape))
    return (scale * np.sin(0.7 * i + 0.3) + np.cos(1.3 * i)).reshape(shape).astype(np.float32)


def formula_labels(shape, classes):
    i = np.arange(math.prod(shape))
    return ((i * 7 + i // 5) % classes).reshape(shape).astype(np.int32)


# ----------------------------------------------------------------------------------------------
# The NumPy reference, from the formulas.


def ref_edges(n, end=1.0):
    """torch.linspace(0, end, n + 1) in float32: the step rounded, each edge rounded once (the
    float64 products and differences are exact for these n)."""
    end = np.float64(np.float32(end))
    step = np.float64(np.float32(np.float32(end) / np.float32(n)))
    half = (n + 1) // 2
    edges = [k * step if k < half else end - (n - k) * step for k in range(n + 1)]
    return np.array(edges, np.float64).astype(np.float32)


def ref_top_label(probs, labels, counted, n, norm, edges=None):
    """torchmetrics' binning: [e_k, e_k+1) for k < n and a bin of confidence >= 1."""
    c = probs.shape[-1]
    probs = probs.reshape(-1, c).astype(np.float64)
    labels, counted = labels.reshape(-1), counted.reshape(-1)
    if c == 1:
        conf, right = probs[:, 0], labels == 1
    else:
        conf, right = probs.max(1), probs.argmax(1) == labels
    conf, right = conf[counted], right[counted].astype(np.float64)
    if conf.size == 0:
        return np.nan
    e = (ref_edges(n) if edges is None else edges).astype(np.float64)
    gaps, shares = [], []
    for k in range(n + 1):
        inside = conf >= e[k] if k == n else (conf >= e[k]) & (conf < e[k + 1])
        if inside.any():
            gaps.append(abs(right[inside].mean() - conf[inside].mean()))
            shares.append(inside.sum() / conf.size)
    gaps, shares = np.array(gaps), np.array(shares)
    if norm == "l1":
        return float(np.sum(gaps * shares))
    if norm == "l2":
        return float(np.sqrt(np.sum(gaps**2 * shares)))
    return float(gaps.max())


def ref_per_class(probs, targets, counted, n, reduction, right):
    """MONAI's binning: upper edges u_k of linspace(0, 1 + eps); (u_k-1, u_k] (right: [ , )),
    the first and last bins open below and above. [B, P, C] inputs, [B, C] values."""
    upper = ref_edges(n, MONAI_END)[1:].astype(np.float64)
    batch, _, classes = probs.shape
    out = np.full((batch, classes), np.nan)
    for b in range(batch):
        for c in range(classes):
            p = probs[b, counted[b], c].astype(np.float64)
            y = targets[b, counted[b], c].astype(np.float64)
            gaps, sizes = [], []
            for k in range(n):
                lo = upper[k - 1] if k > 0 else -np.inf
                hi = upper[k] if k < n - 1 else np.inf
                inside = (lo <= p) & (p < hi) if right else (lo < p) & (p <= hi)
                if inside.any():
                    gaps.append(abs(p[inside].mean() - y[inside].mean()))
                    sizes.append(inside.sum())
            if gaps:
                gaps, sizes = np.array(gaps), np.array(sizes)
                out[b, c] = {
                    "expected": np.sum(gaps * sizes) / sizes.sum(),
                    "average": gaps.mean(),
                    "maximum": gaps.max(),
                }[reduction]
    return out


def softmax32(logits):
    return np.asarray(jax.nn.softmax(jnp.asarray(logits), axis=-1))


def random_case(seed, shape=(3, 5, 6), classes=4):
    """Probabilities (float32), labels with ignored pixels, a mask, and what counts."""
    r = np.random.default_rng(seed)
    logits = (2.0 * r.standard_normal((*shape, classes))).astype(np.float32)
    probs = softmax32(logits)
    labels = r.integers(0, classes, shape).astype(np.int32)
    labels = np.where(r.random(shape) < 0.1, IGNORE, labels).astype(np.int32)
    mask = r.random(shape) > 0.15
    return logits, probs, labels, mask, mask & (labels != IGNORE)


@functools.partial(jax.jit, static_argnames=("num_bins", "activation", "class_axis"))
def all_norms(p, y, mask, *, num_bins, activation=None, class_axis=-1):
    options: dict[str, Any] = dict(num_bins=num_bins, activation=activation, class_axis=class_axis)
    return [
        calibration_error(p, y, norm=m, ignore_index=IGNORE, mask=mask, **options) for m in NORMS
    ]


@functools.partial(jax.jit, static_argnames=("num_bins", "activation", "right", "background"))
def all_reductions(p, y, mask, *, num_bins, activation=None, right=False, background=True):
    options: dict[str, Any] = dict(
        num_bins=num_bins, activation=activation, right=right, include_background=background
    )
    return [
        per_class_calibration_error(p, y, calibration_reduction=r, mask=mask, **options)
        for r in REDUCTIONS
    ]


# ----------------------------------------------------------------------------------------------
# Edges.


def test_bin_edges_are_torch_linspace():
    # torch 2.13.0: torch.linspace(0, 1, 16) and torch.linspace(0, 1 + 2**-23, 21), float32.
    torch_15 = [0.0, 0.06666667014360428, 0.13333334028720856, 0.20000001788139343,
                0.2666666805744171, 0.3333333432674408, 0.40000003576278687,
                0.46666669845581055, 0.5333333015441895, 0.5999999642372131,
                0.6666666269302368, 0.7333333492279053, 0.800000011920929, 0.8666666746139526,
                0.9333333373069763, 1.0]  # fmt: skip
    torch_monai_20 = [0.0, 0.05000000447034836, 0.10000000894069672, 0.15000000596046448,
                      0.20000001788139343, 0.2500000298023224, 0.30000001192092896,
                      0.3500000238418579, 0.40000003576278687, 0.4500000476837158,
                      0.5000000596046448, 0.5500000715255737, 0.6000000834465027,
                      0.6500000953674316, 0.7000001072883606, 0.7500001192092896,
                      0.8000000715255737, 0.8500000834465027, 0.9000000953674316,
                      0.9500001072883606, 1.0000001192092896]  # fmt: skip
    np.testing.assert_array_equal(bin_edges(15), np.array(torch_15, np.float32))
    np.testing.assert_array_equal(
        bin_edges(20, end=MONAI_END), np.array(torch_monai_20, np.float32)
    )
    for n in range(1, 130):
        np.testing.assert_array_equal(bin_edges(n), ref_edges(n), err_msg=str(n))
        np.testing.assert_array_equal(bin_edges(n, end=MONAI_END), ref_edges(n, MONAI_END))
    # Not the nearest float32 of k / 15 everywhere: the edges decide values on them.
    assert np.sum(bin_edges(15) != np.float32(np.arange(16) / 15)) == 6


# ----------------------------------------------------------------------------------------------
# The top-label form against torchmetrics and the reference.

# torchmetrics 1.9.0: multiclass_calibration_error(preds NCHW, target, 3, n_bins, norm,
# ignore_index=255) and binary_calibration_error(preds, target, n_bins, norm, ignore_index=255),
# [l1, l2, max]. Formula inputs: multiclass formula_logits((2, 4, 5, 3)) (moved to NCHW) with
# formula_labels((2, 4, 5), 3); binary formula_logits((3, 7), 2.0) with formula_labels(.., 2).
TORCHMETRICS = {
    ("boundary", 5): [0.2545454800128937, 0.2869642674922943, 0.5],
    ("boundary", 15): [0.47272729873657227, 0.48803871870040894, 0.699999988079071],
    ("edge", 15): [0.3958333432674408, 0.4333445429801941, 0.5899999737739563],
    ("edge", 20): [0.09499998390674591, 0.10502643138170242, 0.15833330154418945],
    ("logits", 15): [0.4498697519302368, 0.48650678992271423, 0.7600637078285217],
    ("logits", 10): [0.4498697519302368, 0.4785682260990143, 0.7508105039596558],
    ("binary", 5): [0.18636365234851837, 0.24144452810287476, 0.3500000238418579],
    ("binary", 15): [0.29545456171035767, 0.38876262307167053, 0.8999999761581421],
    ("binary edge", 15): [0.40266668796539307, 0.45964059233665466, 0.7900000214576721],
    ("binary edge", 20): [0.10866665840148926, 0.14614300429821014, 0.29500001668930054],
    ("binary logits", 15): [0.4110054075717926, 0.5088669657707214, 0.8814958333969116],
    ("binary logits", 4): [0.36822471022605896, 0.42610958218574524, 0.6123178601264954],
}


def _torchmetrics_inputs(name):
    """(predictions, labels, activation)"""
    return {
        "boundary": (BOUNDARY_PROBS, BOUNDARY_LABELS, None),
        "edge": (EDGE_PROBS, EDGE_LABELS, None),
        "logits": (formula_logits((2, 4, 5, 3)), formula_labels((2, 4, 5), 3), "softmax"),
        "binary": (BINARY_PROBS, BINARY_LABELS, None),
        "binary edge": (EDGE_BINARY, EDGE_BINARY_LABELS, None),
        "binary logits": (
            formula_logits((3, 7), 2.0)[..., None],
            formula_labels((3, 7), 2),
            "sigmoid",
        ),
    }[name]


@pytest.mark.parametrize(("name", "num_bins"), list(TORCHMETRICS))
def test_calibration_error_matches_torchmetrics(name, num_bins):
    predictions, labels, activation = _torchmetrics_inputs(name)
    ones = np.ones(labels.shape, bool)
    ours = all_norms(predictions, labels, ones, num_bins=num_bins, activation=activation)
    assert_close(ours, TORCHMETRICS[name, num_bins], rtol=1e-6, atol=1e-7)
    # The reference agrees (the activation of the formula inputs computed as ours does).
    probs = np.asarray(jax.nn.sigmoid(predictions)) if activation == "sigmoid" else predictions
    probs = softmax32(predictions) if activation == "softmax" else probs
    counted = labels != IGNORE
    expected = [ref_top_label(probs, labels, counted, num_bins, m) for m in NORMS]
    assert_close(ours, expected, rtol=1e-6, atol=1e-7)


def test_the_edges_decide_values_on_them():
    """With the nearest float32 of k / n as edges, the edge inputs give other values."""
    counted = np.ones(EDGE_LABELS.shape, bool)
    naive = np.float32(np.arange(16) / 15)
    moved = ref_top_label(EDGE_PROBS, EDGE_LABELS, counted, 15, "l1", edges=naive)
    assert abs(moved - TORCHMETRICS["edge", 15][0]) > 0.01


@pytest.mark.parametrize("seed", range(3))
def test_calibration_error_matches_the_reference(seed):
    logits, probs, labels, mask, counted = random_case(seed)
    for num_bins in (1, 7, 15):
        ours = all_norms(probs, labels, mask, num_bins=num_bins)
        expected = [ref_top_label(probs, labels, counted, num_bins, m) for m in NORMS]
        assert_close(ours, expected, rtol=2e-6, atol=1e-7, err_msg=str(num_bins))
    # The softmax of the logits, NCHW: the same bins.
    from_logits = all_norms(logits, labels, mask, num_bins=15, activation="softmax")
    nchw = all_norms(np.moveaxis(probs, -1, 1), labels, mask, num_bins=15, class_axis=1)
    expected = [ref_top_label(probs, labels, counted, 15, m) for m in NORMS]
    assert_close(from_logits, expected, rtol=2e-6, atol=1e-7)
    assert_close(nchw, expected, rtol=2e-6, atol=1e-7)


def test_a_confidence_of_one_has_a_bin_of_its_own():
    """torchmetrics' n + 1-th bin: a saturated pixel right and a 0.95 pixel wrong do not mix."""
    probs = np.array([[[1.0, 0.0], [0.95, 0.05]]], np.float32)
    labels = np.array([[0, 1]], np.int32)
    ones = np.ones(labels.shape, bool)
    ece, _, mce = all_norms(probs, labels, ones, num_bins=10)
    assert float(ece) == pytest.approx(0.5 * 0.95) and float(mce) == pytest.approx(0.95)
    diagram = reliability_diagram(probs, labels, activation=None, num_bins=10)
    np.testing.assert_array_equal(diagram.count, [0] * 9 + [1, 1])
    assert float(diagram.lower[-1]) == float(diagram.upper[-1]) == 1.0


def test_reliability_diagram_matches_the_reference():
    _, probs, labels, mask, counted = random_case(3)
    diagram = jax.jit(
        lambda p, y, m: reliability_diagram(
            p, y, num_bins=5, activation=None, ignore_index=IGNORE, mask=m
        )
    )(probs, labels, mask)
    conf = probs.max(-1)[counted].astype(np.float64)
    right = (probs.argmax(-1) == labels)[counted]
    e = ref_edges(5).astype(np.float64)
    for k in range(6):
        inside = conf >= 1 if k == 5 else (conf >= e[k]) & (conf < e[k + 1])
        assert int(diagram.count[k]) == inside.sum()
        if inside.any():
            assert float(diagram.confidence[k]) == pytest.approx(conf[inside].mean(), rel=1e-6)
            assert float(diagram.accuracy[k]) == pytest.approx(right[inside].mean(), rel=1e-6)
        else:  # an empty bin has no mean: NaN, as MONAI's calibration_binning
            assert np.isnan(diagram.confidence[k]) and np.isnan(diagram.accuracy[k])
    np.testing.assert_array_equal(diagram.lower, np.append(e[:-1], 1.0).astype(np.float32))
    np.testing.assert_array_equal(diagram.upper, np.append(e[1:], 1.0).astype(np.float32))
    count, gap = np.asarray(diagram.count), np.abs(diagram.accuracy - diagram.confidence)
    ece = np.nansum(count * np.asarray(gap, np.float64)) / counted.sum()
    assert ece == pytest.approx(ref_top_label(probs, labels, counted, 5, "l1"), rel=1e-6)


# ----------------------------------------------------------------------------------------------
# The per-class form against MONAI and the reference.

# MONAI 1.6.1: CalibrationErrorMetric(num_bins, include_background, calibration_reduction,
# metric_reduction="none", right)(y_pred=probabilities NCHW, y=one-hot NCHW), [B, C] per
# reduction (expected, average, maximum). Boundary inputs with label 255 replaced by 0 (MONAI has
# no ignore_index); "softmax": torch.softmax of formula_logits((2, 4, 5, 3)) against
# formula_labels((2, 4, 5), 3), 20 bins; "sigmoid": torch.sigmoid of the same logits against the
# dense targets formula_labels((2, 4, 5, 3), 2), 10 bins; "binary": the one-channel
# BINARY_PROBS against label == 1 (255 -> 0), 5 bins.
MONAI = {
    ("boundary", 5, False): [
        [[0.23333334922790527, 0.3083333373069763, 0.17499999701976776],
         [0.375, 0.40833333134651184, 0.13333332538604736]],
        [[0.30000001192092896, 0.4062499701976776, 0.20000000298023224],
         [0.41874998807907104, 0.4833333492279053, 0.18888886272907257]],
        [[0.6000000238418579, 1.0, 0.25],
         [0.699999988079071, 0.800000011920929, 0.3999999761581421]],
    ],
    ("boundary", 20, False): [
        [[0.23333334922790527, 0.42499998211860657, 0.30833330750465393],
         [0.5250000357627869, 0.40833333134651184, 0.13333332538604736]],
        [[0.23333334922790527, 0.42499998211860657, 0.2874999940395355],
         [0.5250000357627869, 0.4300000071525574, 0.14999999105930328]],
        [[0.6000000238418579, 1.0, 0.5],
         [0.8999999761581421, 0.800000011920929, 0.3999999761581421]],
    ],
    ("boundary", 20, True): [
        [[0.23333334922790527, 0.3083333373069763, 0.30833330750465393],
         [0.5250000357627869, 0.40833333134651184, 0.13333332538604736]],
        [[0.23333334922790527, 0.3349999785423279, 0.2874999940395355],
         [0.5250000357627869, 0.45625001192092896, 0.14999999105930328]],
        [[0.6000000238418579, 1.0, 0.5],
         [0.8999999761581421, 0.800000011920929, 0.3999999761581421]],
    ],
    ("edge", 20, False): [
        [[0.45000001788139343, 0.32499998807907104]],
        [[0.4650000333786011, 0.38333332538604736]],
        [[0.7000001072883606, 0.7999999523162842]],
    ],
    ("edge", 20, True): [
        [[0.32499998807907104, 0.32499998807907104]],
        [[0.383333295583725, 0.38333332538604736]],
        [[0.7999999523162842, 0.7999999523162842]],
    ],
    ("softmax", 20, False): [
        [[0.4320827126502991, 0.2989029586315155, 0.2899318337440491],
         [0.5352709293365479, 0.26074129343032837, 0.4270326495170593]],
        [[0.496601939201355, 0.3206080198287964, 0.3385281264781952],
         [0.5039219856262207, 0.32289978861808777, 0.48389148712158203]],
        [[0.9088129997253418, 0.5974759459495544, 0.7340461611747742],
         [0.9745571613311768, 0.9568093419075012, 0.9158263206481934]],
    ],
    ("sigmoid", 10, False): [
        [[0.4505428671836853, 0.3189702033996582, 0.4247164726257324],
         [0.303885817527771, 0.4317720830440521, 0.46286916732788086]],
        [[0.3467971384525299, 0.29526275396347046, 0.41533762216567993],
         [0.3512156307697296, 0.4425123929977417, 0.482465535402298]],
        [[0.7041506171226501, 0.5342686176300049, 0.5624021291732788],
         [0.6622295379638672, 0.6490435004234314, 0.8836066722869873]],
    ],
    ("binary", 5, False): [
        [[0.3499999940395355], [0.32500001788139343]],
        [[0.3125], [0.3187499940395355]],
        [[0.44999998807907104], [0.44999998807907104]],
    ],
}  # fmt: skip


def _monai_inputs(name):
    """(predictions, labels, activation)"""
    return {
        "boundary": (BOUNDARY_PROBS, np.where(BOUNDARY_LABELS == IGNORE, 0, BOUNDARY_LABELS), None),
        "edge": (MONAI_EDGE_PROBS, MONAI_EDGE_LABELS, None),
        "softmax": (formula_logits((2, 4, 5, 3)), formula_labels((2, 4, 5), 3), "softmax"),
        "sigmoid": (
            formula_logits((2, 4, 5, 3)),
            formula_labels((2, 4, 5, 3), 2).astype(np.float32),
            "sigmoid",
        ),
        "binary": (BINARY_PROBS, np.where(BINARY_LABELS == IGNORE, 0, BINARY_LABELS), None),
    }[name]


@pytest.mark.parametrize(("name", "num_bins", "right"), list(MONAI))
def test_per_class_calibration_error_matches_monai(name, num_bins, right):
    predictions, labels, activation = _monai_inputs(name)
    ones = np.ones(predictions.shape[:-1], bool)
    ours = all_reductions(
        predictions, labels, ones, num_bins=num_bins, activation=activation, right=right
    )
    assert_close(ours, MONAI[name, num_bins, right], rtol=1e-6, atol=1e-7)
    if name == "softmax":  # include_background=False drops column 0
        without = all_reductions(predictions, labels, ones, num_bins=20, activation="softmax",
                                 background=False)  # fmt: skip
        assert_close(without, [np.asarray(v)[:, 1:] for v in MONAI[name, 20, False]], rtol=1e-6)


@pytest.mark.parametrize("seed", range(2))
def test_per_class_calibration_error_matches_the_reference(seed):
    _, probs, labels, mask, counted = random_case(seed + 10)
    b, c = probs.shape[0], probs.shape[-1]
    flat = probs.reshape(b, -1, c)
    hot = (labels.reshape(b, -1)[..., None] == np.arange(c)).astype(np.float32)
    where = counted.reshape(b, -1)
    for right in (False, True):
        ours = jax.jit(
            lambda p, y, m, right=right: [
                per_class_calibration_error(
                    p,
                    y,
                    num_bins=6,
                    calibration_reduction=r,
                    activation=None,
                    right=right,
                    ignore_index=IGNORE,
                    mask=m,
                )
                for r in REDUCTIONS
            ]
        )(probs, labels, mask)
        expected = [ref_per_class(flat, hot, where, 6, r, right) for r in REDUCTIONS]
        assert_close(ours, expected, rtol=2e-6, atol=1e-7)
    # Dense targets in NCHW (soft targets are means like any other).
    soft = np.random.default_rng(seed).uniform(size=probs.shape).astype(np.float32)
    nchw = jax.jit(
        lambda p, y, m: per_class_calibration_error(
            p, y, num_bins=6, activation=None, class_axis=1, mask=m
        )
    )(np.moveaxis(probs, -1, 1), np.moveaxis(soft, -1, 1), mask)
    expected = ref_per_class(flat, soft.reshape(b, -1, c), mask.reshape(b, -1), 6, "expected",
                             False)  # fmt: skip
    assert_close(nchw, expected, rtol=2e-6, atol=1e-7)


def test_per_image_values_stream_into_the_per_image_accumulator():
    _, probs, labels, mask, counted = random_case(20)
    acc = jsl.metrics.PerImageAccumulator.empty(("ece",), 4)
    step = jax.jit(
        lambda acc, p, y, m: acc.update(
            {"ece": per_class_calibration_error(p, y, activation=None, ignore_index=IGNORE, mask=m)}
        )
    )
    for i in range(3):
        acc = step(acc, probs[i : i + 1], labels[i : i + 1], mask[i : i + 1])
    b, c = probs.shape[0], probs.shape[-1]
    hot = (labels.reshape(b, -1)[..., None] == np.arange(c)).astype(np.float32)
    values = ref_per_class(probs.reshape(b, -1, c), hot, counted.reshape(b, -1), 20, "expected",
                           False)  # fmt: skip
    assert float(acc.compute()["ece"]) == pytest.approx(np.nanmean(values), rel=1e-6)


# ----------------------------------------------------------------------------------------------
# Empty bins, empty images, excluded pixels.


def test_empty_bins_give_no_nan_and_no_pixel_gives_nan():
    probs = np.array([[[0.9, 0.1], [0.85, 0.15], [0.3, 0.7]]], np.float32)  # 2 of 16 bins
    labels = np.array([[0, 1, 1]], np.int32)
    ones = np.ones(labels.shape, bool)
    values = all_norms(probs, labels, ones, num_bins=15)
    assert np.all(np.isfinite(values))
    per_class = all_reductions(probs, labels, ones, num_bins=20)
    assert np.all(np.isfinite(per_class))
    # Nothing counts: NaN for every norm (torchmetrics: NaN for l1, 0 for l2 and max).
    none = all_norms(probs, labels, np.zeros(labels.shape, bool), num_bins=15)
    assert np.all(np.isnan(none))
    # An image without a counted pixel is NaN in the per-class form, the others are values.
    two = np.concatenate([probs, probs])
    mask = np.array([[True, True, True], [False, False, False]])
    rows = all_reductions(two, np.concatenate([labels, labels]), mask, num_bins=20)
    for value in rows:
        assert np.all(np.isfinite(value[0])) and np.all(np.isnan(value[1]))


def _perturbed(probs, labels, excluded, seed=5):
    r = np.random.default_rng(seed)
    junk = r.choice([np.nan, np.inf, -np.inf, 7.0], probs.shape).astype(np.float32)
    return (
        np.where(excluded[..., None], junk, probs).astype(np.float32),
        np.where(excluded, r.choice([-1, 7, 99], labels.shape), labels).astype(np.int32),
    )


@pytest.mark.parametrize("activation", [None, "softmax"])
def test_excluded_pixels_are_inert(activation):
    _, probs, labels, mask, _ = random_case(30)
    bad_probs, bad_labels = _perturbed(probs, labels, ~mask)
    bad_labels = np.where(labels == IGNORE, IGNORE, bad_labels).astype(np.int32)
    ignored = labels == IGNORE
    bad_probs = np.where(ignored[..., None], np.float32(np.nan), bad_probs).astype(np.float32)

    def everything(p, y, m):
        ex: dict[str, Any] = dict(ignore_index=IGNORE, mask=m, activation=activation)
        acc = CalibrationAccumulator.empty(8).update(p, y, **ex)
        return (
            [calibration_error(p, y, norm=n, **ex) for n in NORMS],
            per_class_calibration_error(p, y, **ex),
            reliability_diagram(p, y, **ex),
            acc.compute(),
            acc.reliability_diagram().count,
        )

    expected = jax.jit(everything)(probs, labels, mask)
    for got in (
        jax.jit(everything)(bad_probs, bad_labels, mask),
        jsl.checked(everything)(bad_probs, bad_labels, mask),  # nothing flagged
    ):
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_checked_reports_bad_values_on_counted_pixels():
    probs = np.array([[[0.7, 0.3], [0.4, 0.6]]], np.float32)
    labels = np.array([[0, 1]], np.int32)
    fn = jsl.checked(calibration_error)
    with pytest.raises(Exception, match=r"`labels` must lie in \[0, 2\) or equal ignore_index"):
        fn(probs, np.array([[0, 7]], np.int32), activation=None, ignore_index=IGNORE)
    with pytest.raises(Exception, match=r"`predictions` must be probabilities in \[0, 1\]"):
        fn(probs * 2, labels, activation=None)
    with pytest.raises(Exception, match="`predictions` must be finite"):
        fn(np.where(probs > 0.5, np.nan, probs).astype(np.float32), labels)
    with pytest.raises(Exception, match=r"dense `labels` must lie in \[0, 1\]"):
        jsl.checked(per_class_calibration_error)(probs, probs * 3, activation=None)
    # Unchecked, a pixel whose label is no class does not count.
    one = calibration_error(probs[:, :1], labels[:, :1], activation=None, num_bins=4)
    dropped = calibration_error(probs, np.array([[0, 7]], np.int32), activation=None, num_bins=4)
    assert float(one) == float(dropped) == pytest.approx(0.3)


def test_low_precision_scores_compute_in_float32():
    logits, _, labels, mask, _ = random_case(40)
    half = jnp.asarray(logits, jnp.bfloat16)
    ours = all_norms(half, labels, mask, num_bins=10, activation="softmax")
    wide = all_norms(np.asarray(half.astype(jnp.float32)), labels, mask, num_bins=10,
                     activation="softmax")  # fmt: skip
    assert all(v.dtype == jnp.float32 for v in ours)
    assert_close(ours, wide, rtol=0, atol=0)


# ----------------------------------------------------------------------------------------------
# The accumulator.


def test_accumulator_over_three_batches_equals_one_shot():
    _, probs, labels, mask, _ = random_case(50, shape=(6, 4, 5), classes=3)
    step = jax.jit(
        lambda acc, p, y, m: acc.update(p, y, activation=None, ignore_index=IGNORE, mask=m)
    )
    acc = CalibrationAccumulator.empty(num_bins=7)
    for i in range(0, 6, 2):
        acc = step(acc, probs[i : i + 2], labels[i : i + 2], mask[i : i + 2])
    one_shot = all_norms(probs, labels, mask, num_bins=7)
    computed = jax.jit(lambda acc: [acc.compute(norm=m) for m in NORMS])(acc)
    assert_close(computed, one_shot, rtol=1e-6, atol=1e-7)
    assert_close([acc.compute(norm=m) for m in NORMS], one_shot, rtol=1e-6, atol=1e-7)
    ours, full = (
        acc.reliability_diagram(),
        reliability_diagram(
            probs, labels, num_bins=7, activation=None, ignore_index=IGNORE, mask=mask
        ),
    )
    np.testing.assert_array_equal(exact_ints(ours.count), np.asarray(full.count))
    assert_close(ours[:4], full[:4], rtol=1e-6, atol=1e-7)
    # Accumulators of parts add up to the whole.
    part = CalibrationAccumulator.empty(7)
    halves = step(part, probs[:3], labels[:3], mask[:3]) + step(
        part, probs[3:], labels[3:], mask[3:]
    )
    assert_close(halves.compute(norm="l2"), one_shot[1], rtol=1e-6)
    assert repr(acc) == "CalibrationAccumulator(num_bins=7)"


def test_accumulator_on_devices_equals_one_shot():
    _, probs, labels, mask, _ = random_case(60, shape=(4, 3, 5), classes=3)

    @jax.jit
    def on_devices(acc, p, y, m):
        def device(acc, p, y, m):
            return acc.update(p, y, activation=None, ignore_index=IGNORE, mask=m, axis_name="d")

        return jax.vmap(device, in_axes=(None, 0, 0, 0), axis_name="d")(acc, p, y, m)

    split = lambda x: x.reshape(2, 2, *x.shape[1:])  # noqa: E731
    per_device = on_devices(CalibrationAccumulator.empty(5), *map(split, (probs, labels, mask)))
    one_shot = all_norms(probs, labels, mask, num_bins=5)
    for d in range(2):  # every device holds the totals
        acc = jax.tree.map(lambda a, d=d: a[d], per_device)
        assert_close([acc.compute(norm=m) for m in NORMS], one_shot, rtol=1e-6, atol=1e-7)


def test_accumulator_in_shard_map_equals_one_shot():
    """Over the devices there are (one on a plain CPU run: the psum and its typing still run)."""
    devices = jax.devices()
    _, probs, labels, mask, _ = random_case(65, shape=(2 * len(devices), 3, 4), classes=3)
    mesh = jax.sharding.Mesh(np.array(devices), ("d",))
    spec = jax.sharding.PartitionSpec

    @jax.jit
    @functools.partial(
        jax.shard_map,
        mesh=mesh,
        in_specs=(spec(), spec("d"), spec("d"), spec("d")),
        out_specs=spec(),
    )
    def sharded(acc, p, y, m):
        return acc.update(p, y, activation=None, ignore_index=IGNORE, mask=m, axis_name="d")

    acc = sharded(CalibrationAccumulator.empty(5), probs, labels, mask)
    one_shot = all_norms(probs, labels, mask, num_bins=5)
    assert_close([acc.compute(norm=m) for m in NORMS], one_shot, rtol=1e-6, atol=1e-7)


def test_psum_of_an_accumulator_is_refused():
    _, probs, labels, _, _ = random_case(70, shape=(2, 3, 4), classes=3)

    @jax.jit
    def wrong(acc, p, y):
        def device(acc, p, y):
            summed = jax.lax.psum(acc.update(p, y, activation=None, ignore_index=IGNORE), "d")
            return summed, summed.compute()

        return jax.vmap(device, in_axes=(None, 0, 0), axis_name="d")(acc, p, y)

    summed, traced = wrong(CalibrationAccumulator.empty(5), probs[:, None], labels[:, None])
    assert np.all(np.isnan(traced))
    acc = jax.tree.map(lambda a: a[0], summed)
    assert int(acc.copies) == 2
    with pytest.raises(ValueError, match=r"collective sum .* axis_name="):
        acc.compute()
    with pytest.raises(ValueError, match="collective sum"):
        acc.reliability_diagram()


def test_accumulators_add_only_like_with_like():
    a, b = CalibrationAccumulator.empty(15), CalibrationAccumulator.empty(10)
    with pytest.raises(ValueError, match=r"add only when.*15 bins.*and 10 bins"):
        _ = a + b
    with pytest.raises(TypeError):
        _ = a + jsl.metrics.ConfusionMatrixAccumulator.empty(3)  # pyright: ignore
    with pytest.raises(TypeError, match=r"CalibrationAccumulator.empty"):
        CalibrationAccumulator()
    with pytest.raises(AttributeError, match="immutable"):
        a.copies = 2  # type: ignore[misc]
    assert math.isnan(float(a.compute()))  # nothing seen


# ----------------------------------------------------------------------------------------------
# Bad arguments.


def test_bad_arguments_raise_naming_the_argument():
    probs = np.full((1, 2, 3), 1 / 3, np.float32)
    labels = np.zeros((1, 2), np.int32)
    ce, pc = calibration_error, per_class_calibration_error
    cases = [
        (ValueError, r"`num_bins` must be at least 1; got 0",
         lambda: ce(probs, labels, num_bins=0)),
        (TypeError, r"`num_bins` must be a Python int", lambda: ce(probs, labels, num_bins=2.0)),  # pyright: ignore
        (TypeError, r"`num_bins` must be a Python int", lambda: pc(probs, labels, num_bins=True)),
        (ValueError, r"`norm` must be one of 'l1', 'l2', 'max'; got 'l3'",
         lambda: ce(probs, labels, norm="l3")),
        (ValueError, r"`calibration_reduction` must be one of",
         lambda: pc(probs, labels, calibration_reduction="l1")),
        (ValueError, r"`activation` must be one of", lambda: ce(probs, labels, activation="relu")),
        (ValueError, r"`labels` must have shape \(1, 2\); got \(1, 3\)",
         lambda: ce(probs, np.zeros((1, 3), np.int32))),
        (ValueError, r"`mask` must have shape \(1, 2\)",
         lambda: ce(probs, labels, mask=np.ones((2,), bool))),
        (TypeError, r"`labels` must be integer class indices",
         lambda: ce(probs, labels.astype(np.float32))),
        (TypeError, r"`predictions` must have a floating dtype",
         lambda: ce(labels[..., None], labels)),
        (ValueError, r"activation='softmax' needs C >= 2",
         lambda: ce(probs[..., :1], labels)),
        (ValueError, r"activation='sigmoid' with C >= 2",
         lambda: ce(probs, labels, activation="sigmoid")),
        (ValueError, r"include_background=False drops channel 0",
         lambda: pc(probs[..., :1], labels, activation=None, include_background=False)),
        (ValueError, r"`ignore_index` applies to integer labels",
         lambda: pc(probs, probs, ignore_index=IGNORE)),
        (ValueError, r"`class_axis` cannot be the batch axis",
         lambda: ce(probs, labels, class_axis=0)),
        (TypeError, r"`right` must be True or False", lambda: pc(probs, labels, right=1)),  # pyright: ignore
        (TypeError, r"`include_background` must be True or False",
         lambda: pc(probs, labels, include_background="no")),  # pyright: ignore
        (ValueError, r"`num_bins` must be at least 1", lambda: CalibrationAccumulator.empty(0)),
        (ValueError, r"`norm` must be one of",
         lambda: CalibrationAccumulator.empty(3).compute(norm="l0")),
        (ValueError, r"`end` must be a positive finite number", lambda: bin_edges(3, end=0.0)),
    ]  # fmt: skip
    for error, message, call in cases:
        with pytest.raises(error, match=message):
            call()
