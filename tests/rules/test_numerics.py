"""Numerics and sizes: results that float32 rounding, cancellation or the magnitude of an input
must not decide (docs/bad_input.md, "Numerics and sizes").

1. the top-k cross-entropy selects and divides by one count, nnU-Net's ``int(n * k / 100)``;
2. every score of counts stays accurate at extreme counts (no ``1 - rate`` cancellation);
3. distance transforms, surface metrics and distance losses agree with scipy for any spacing
   float32 can hold (squared distances neither overflow nor underflow), and a traced spacing of
   0 is refused by ``jsl.checked``;
4. (``define_loss``'s checks of a user's sums: tests/core/test_define_errors.py);
5. ``hausdorff_dt_loss(alpha=0)`` weighs every pixel by ``0**0 + 0**0 = 2``, as MONAI does.
"""

import decimal
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify
from scipy import ndimage

import jaxseg_losses as jsl
from jaxseg_losses.metrics import Counts, ExactCount
from tests.references.spatial import ref_boundary, ref_hausdorff
from tests.references.surface import hausdorff_distance as ref_hausdorff_distance

RUNTIME_ERRORS = (checkify.JaxRuntimeError, jax.errors.JaxRuntimeError)

# ----------------------------------------------------------------------------------------------
# 1. Top-k: one count.


def _ref_topk(pixel_losses: np.ndarray, k: float) -> float:
    """nnU-Net's TopKLoss of the valid pixels: the mean of the int(n * k / 100) largest."""
    n = pixel_losses.size
    kept = max(1, int(n * k / 100))
    return float(np.mean(np.sort(pixel_losses)[::-1][:kept]))


def _pixel_ce(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    log_p = x - np.log(np.sum(np.exp(x - x.max(-1, keepdims=True)), -1, keepdims=True))
    log_p -= x.max(-1, keepdims=True)
    return -np.take_along_axis(log_p, labels[..., None], axis=-1)[..., 0]


@pytest.mark.parametrize("masked", [False, True])
def test_topk_reported_case_divides_by_the_count_it_selects(masked):
    # 375 valid pixels, k = 18.4: 375 * 18.4 / 100 is 68.99999999999999 in float64 (nnU-Net
    # keeps 68) but 69.0 in float32; the mean must be that of exactly the top 68, not the sum
    # of 68 over 69 (the reported value) nor the top-69 mean.
    rng = np.random.default_rng(0)
    size = 400 if masked else 375
    logits = rng.normal(size=(1, size, 3)).astype(np.float32) * 3
    labels = rng.integers(0, 3, size=(1, size))
    mask = np.zeros((1, size), bool)
    mask[0, :375] = True
    losses = _pixel_ce(logits, labels)[0, :375]
    assert int(375 * 18.4 / 100) == 68
    top = np.sort(losses)[::-1]

    def fn(x, y, m):
        return jsl.topk_cross_entropy_loss(x, y, k=18.4, mask=m)

    # Eagerly and under jit (XLA may turn the float32 division by 100 into a product that
    # happens to floor the other way): the result must not depend on it.
    for call in (fn, jax.jit(fn)):
        got = float(call(logits, labels, mask))
        np.testing.assert_allclose(got, _ref_topk(losses, 18.4), rtol=1e-6)
        assert not np.isclose(got, top[:69].mean(), rtol=1e-6)
        assert not np.isclose(got, top[:68].sum() / 69, rtol=1e-6)


@pytest.mark.parametrize("k", [0.5, 7.0, 10.0, 18.4, 33.3, 57.1, 99.9, 100.0])
@pytest.mark.parametrize("aggregate", ["sample", "batch"])
def test_topk_matches_nnunet_count_for_every_valid_count(k, aggregate):
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, 25, 15, 2)).astype(np.float32) * 2
    labels = rng.integers(0, 2, size=(3, 25, 15))
    # Valid counts 375, 250 and 1: floors that fall on and off integers.
    mask = np.zeros((3, 25, 15), bool)
    mask[0] = True
    mask[1, :, :10] = True
    mask[2, 3, 4] = True
    losses = _pixel_ce(logits, labels)
    fn = jax.jit(
        lambda x, y, m: jsl.topk_cross_entropy_loss(
            x,
            y,
            k=k,
            mask=m,
            aggregate=aggregate,
            reduction="none" if aggregate == "sample" else "mean",
        )
    )
    got = np.asarray(fn(logits, labels, mask))
    if aggregate == "sample":
        expected = [_ref_topk(losses[b][mask[b]], k) for b in range(3)]
    else:
        expected = _ref_topk(losses[mask], k)
    np.testing.assert_allclose(got, expected, rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# 2. Scores of counts at extreme counts.

decimal.getcontext().prec = 50
D = decimal.Decimal


def _sqrt(x: decimal.Decimal) -> decimal.Decimal:
    return x.sqrt()


# High-precision references straight from the docstrings' formulas (MONAI's forms, 1 - TNR and
# all): exact enough that only the library's own rounding can differ.
REFERENCES = {
    "iou": lambda tp, fp, fn, tn: tp / (tp + fp + fn),
    "dice": lambda tp, fp, fn, tn: 2 * tp / (2 * tp + fp + fn),
    "f_beta": lambda tp, fp, fn, tn: 5 * tp / (5 * tp + 4 * fn + fp),
    "precision": lambda tp, fp, fn, tn: tp / (tp + fp),
    "recall": lambda tp, fp, fn, tn: tp / (tp + fn),
    "specificity": lambda tp, fp, fn, tn: tn / (tn + fp),
    "negative_predictive_value": lambda tp, fp, fn, tn: tn / (tn + fn),
    "miss_rate": lambda tp, fp, fn, tn: 1 - tp / (tp + fn),
    "fall_out": lambda tp, fp, fn, tn: 1 - tn / (tn + fp),
    "false_discovery_rate": lambda tp, fp, fn, tn: 1 - tp / (tp + fp),
    "false_omission_rate": lambda tp, fp, fn, tn: 1 - tn / (tn + fn),
    "accuracy": lambda tp, fp, fn, tn: (tp + tn) / (tp + fp + fn + tn),
    "balanced_accuracy": lambda tp, fp, fn, tn: (tp / (tp + fn) + tn / (tn + fp)) / 2,
    "informedness": lambda tp, fp, fn, tn: tp / (tp + fn) + tn / (tn + fp) - 1,
    "markedness": lambda tp, fp, fn, tn: tp / (tp + fp) + tn / (tn + fn) - 1,
    "fowlkes_mallows": lambda tp, fp, fn, tn: _sqrt(tp / (tp + fp) * (tp / (tp + fn))),
    "prevalence_threshold": lambda tp, fp, fn, tn: _prevalence_threshold(tp, fp, fn, tn),
    "mcc": lambda tp, fp, fn, tn: (
        (tp * tn - fp * fn) / _sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    ),
}


def _prevalence_threshold(tp, fp, fn, tn):
    tpr, tnr = tp / (tp + fn), tn / (tn + fp)
    return (_sqrt(tpr * (1 - tnr)) + tnr - 1) / (tpr + tnr - 1)


# (TP, FP, FN, TN): a count of 1 or a few next to 1e8 (float32 holds it; 1 - rate does not)
# and next to 1e12 (past 2^31: ExactCount holds it exactly).
EXTREME_COUNTS = [
    (1, 3, 2, 10**8),
    (3, 1, 1, 10**8),
    (10**8, 1, 2, 3),
    (10**8, 2, 1, 10**8),
    (2, 10**8, 1, 5),
    (1, 2, 10**8, 7),
    (5, 1, 3, 10**12),
    (10**12, 3, 1, 7),
    (10**12, 1, 2, 10**12),
    (123, 10**8 - 7, 10**12, 10**12 + 1),
    (1, 10**8, 1, 10**12),
    (1, 1, 10**8, 10**12),
]


def _exact_counts(counts):
    return Counts(*(ExactCount(np.array([[v]], np.int64)) for v in counts))


@pytest.mark.parametrize("name", sorted(REFERENCES))
@pytest.mark.parametrize("counts", EXTREME_COUNTS, ids=str)
def test_scores_at_extreme_counts_match_a_high_precision_reference(name, counts):
    expected = float(REFERENCES[name](*(D(v) for v in counts)))
    options = {"beta": 2.0} if name == "f_beta" else {}
    score = getattr(jsl.metrics, name)
    got = float(jax.jit(lambda c: score(c, **options))(_exact_counts(counts))[0, 0])
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=0, err_msg=f"{name} {counts}")


def test_fowlkes_mallows_of_tiny_rates_does_not_underflow():
    # PPV = TPR = 1e-20 (float counts): their product 1e-40 is below float32's normal range.
    counts = Counts(*(jnp.array([[v]], jnp.float32) for v in (1.0, 1e20, 1e20, 1.0)))
    np.testing.assert_allclose(float(jsl.metrics.fowlkes_mallows(counts)[0, 0]), 1e-20, rtol=1e-6)


def test_prevalence_threshold_reported_case_is_not_zero():
    # FPR = 3 / (1e8 + 3): 1 - TNR is 0 in float32, the fall-out is not.
    counts = _exact_counts((1, 3, 2, 10**8))
    assert float(jsl.metrics.fall_out(counts)[0, 0]) > 0
    value = float(jsl.metrics.prevalence_threshold(counts)[0, 0])
    np.testing.assert_allclose(value, 2.99913e-4, rtol=1e-5)


def test_prevalence_threshold_is_undefined_where_monai_divides_by_zero():
    # TPR = FPR = 1/2: MONAI's denominator TPR + TNR - 1 is 0.
    counts = _exact_counts((1, 2, 1, 2))
    assert math.isnan(float(jsl.metrics.prevalence_threshold(counts)[0, 0]))
    filled = jsl.metrics.prevalence_threshold(counts, zero_division=0.25)
    assert float(filled[0, 0]) == 0.25


@pytest.mark.parametrize("counts", EXTREME_COUNTS[:6], ids=str)
def test_generalized_dice_at_extreme_counts(counts):
    tp, fp, fn, _ = counts
    other = (7, 1, 10**8, 2)
    two = Counts(
        *(ExactCount(np.array([[a, b]], np.int64)) for a, b in zip(counts, other, strict=True))
    )
    w = [D(1) / (D(t) + D(f)) ** 2 for t, f in ((tp, fn), (other[0], other[2]))]
    numerator = 2 * (w[0] * tp + w[1] * other[0])
    denominator = w[0] * (2 * tp + fp + fn) + w[1] * (2 * other[0] + other[1] + other[2])
    got = float(jsl.metrics.generalized_dice(two)[0])
    np.testing.assert_allclose(got, float(numerator / denominator), rtol=1e-6)


def test_float_confusion_matrix_counts_each_entry():
    # FP = column total - TP in float32 loses an FP of 1 next to a TP of 1e8.
    matrix = np.array([[1e8, 1.0, 2.0], [3.0, 5.0, 7.0], [11.0, 13.0, 1e7]])
    for name in ("precision", "false_discovery_rate", "fall_out", "miss_rate", "specificity"):
        score = getattr(jsl.metrics, name)
        from_float = np.asarray(score(jnp.asarray(matrix, jnp.float32)))
        from_int = np.asarray(score(matrix.astype(np.int64)))
        np.testing.assert_allclose(from_float, from_int, rtol=1e-6, err_msg=name)
    fdr = float(jsl.metrics.false_discovery_rate(jnp.asarray(matrix, jnp.float32))[0])
    np.testing.assert_allclose(fdr, 14 / (1e8 + 14), rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# 3. Spacing of any magnitude.

SPACINGS = [1e-20, 1e-3, 1.0, 1e19, 1e20]


def _mask(shape, seed=0):
    return np.random.default_rng(seed).random(shape) > 0.25


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("anisotropic", [False, True])
def test_distance_transform_matches_scipy_at_any_spacing(spacing, anisotropic):
    mask = _mask((9, 11))
    sampling = (spacing, 3.5 * spacing) if anisotropic else (spacing, spacing)
    expected = ndimage.distance_transform_edt(mask, sampling=sampling)
    got = jax.jit(lambda m: jsl.metrics.distance_transform(m, spacing=sampling))(mask)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-6, atol=0)


@pytest.mark.parametrize("spacing", [(1e-20, 2e-20, 5e-21), (1e20, 2.5e19, 1e19), (1e-3, 1, 7)])
def test_distance_transform_3d_anisotropic_matches_scipy(spacing):
    mask = _mask((5, 6, 7), seed=2)
    expected = ndimage.distance_transform_edt(mask, sampling=spacing)
    got = jsl.metrics.distance_transform(mask, spacing=spacing)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-6, atol=0)


@pytest.mark.parametrize("spacing", SPACINGS)
def test_hausdorff_distance_matches_reference_at_any_spacing(spacing):
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, size=(2, 8, 9))
    predictions = np.where(rng.random((2, 8, 9)) < 0.2, 1 - labels, labels)
    sampling = (spacing, 2.0 * spacing)
    got = jsl.metrics.hausdorff_distance(
        jnp.asarray(predictions), jnp.asarray(labels), num_classes=2, spacing=sampling
    )
    one_hot = np.eye(2, dtype=bool)
    expected = ref_hausdorff_distance(
        one_hot[predictions], one_hot[labels], spacing=np.asarray(sampling)
    )
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-6, atol=0)


def _spatial_batch(seed=4):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(2, 7, 8, 3)).astype(np.float32) * 2
    labels = rng.integers(0, 3, size=(2, 7, 8))
    return logits, labels


@pytest.mark.parametrize("spacing", SPACINGS)
def test_distance_losses_match_scipy_references_at_any_spacing(spacing):
    logits, labels = _spatial_batch()
    sampling = (spacing, 1.5 * spacing)
    # alpha = 1: the weights scale with the spacing (alpha = 2 at 1e20 leaves float32's range).
    got = jsl.hausdorff_dt_loss(logits, labels, alpha=1.0, spacing=sampling, reduction="none")
    expected = ref_hausdorff(logits, labels, alpha=1.0, spacing=sampling)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=0)
    got = jsl.boundary_loss(logits, labels, spacing=sampling, reduction="none")
    expected = ref_boundary(logits, labels, spacing=sampling)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("loss", [jsl.boundary_loss, jsl.hausdorff_dt_loss])
@pytest.mark.parametrize("bad", [[0.0, 1.0], 0.0, [-1.0, 1.0]])
def test_checked_refuses_a_traced_spacing_of_zero(loss, bad):
    logits, labels = _spatial_batch()

    def fn(x, y, s):
        return loss(x, y, spacing=s)

    spacing = jnp.asarray(bad, jnp.float32)
    assert np.isfinite(float(jax.jit(fn)(logits, labels, jnp.ones_like(spacing))))
    for wrapped in (jsl.checked(jax.jit(fn)), jax.jit(jsl.checked(fn))):
        with pytest.raises(RUNTIME_ERRORS, match=r"`spacing` must be"):
            jax.block_until_ready(wrapped(logits, labels, spacing))
    good = jsl.checked(jax.jit(fn))(logits, labels, jnp.full_like(spacing, 0.5))
    assert np.isfinite(float(good))


# ----------------------------------------------------------------------------------------------
# 5. hausdorff_dt_loss with alpha = 0.


def test_hausdorff_alpha_zero_weighs_every_pixel_two_as_monai():
    # Class 2 absent from the labels and (thresholded) from the prediction: its fields are 0,
    # and 0**0 = 1 (MONAI's pred_dt ** alpha) makes its weight 2, not 0.
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(1, 6, 6, 3)).astype(np.float32)
    logits[..., 2] -= 3.0
    labels = (rng.random((1, 6, 6)) < 0.5).astype(np.int32)
    p = jax.nn.softmax(jnp.asarray(logits), axis=-1)
    assert not bool(jnp.any(p[..., 2] > 0.5))
    got = float(jsl.hausdorff_dt_loss(logits, labels, alpha=0.0))
    g = np.eye(3)[labels]
    squared = (np.asarray(p, np.float64) - g) ** 2
    expected = np.mean(2.0 * squared[..., 1:].mean(axis=(0, 1, 2)))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    np.testing.assert_allclose(got, ref_hausdorff(logits, labels, alpha=0.0)[0], rtol=1e-5)
    absent_class_cost = float(
        jsl.hausdorff_dt_loss(logits, labels, alpha=0.0, include_background=True)
    )
    assert absent_class_cost > 0
