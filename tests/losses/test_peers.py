"""Published numbers and formulas of peer libraries, where their options coincide with ours.

* MONAI: expected values from its own test suite (Project-MONAI/MONAI, tests/losses/
  test_dice_loss.py, test_tversky_loss.py, test_generalized_dice_loss.py). MONAI is channels-first
  (``class_axis=1`` here); ``smooth_nr = smooth_dr = s`` is ``smooth=s``; ``batch=True`` is
  ``aggregate="batch"``; ``sigmoid=True``/``softmax=True`` is ``activation``; ``to_onehot_y=True``
  is integer labels (or, with ``sigmoid=True`` and several channels, one-hot float targets);
  ``soft_label=True`` is our only form for dense targets (the L1 intersection). MONAI's
  ``reduction="sum"`` sums over batch *and* classes, ours sums the per-sample class means, so it
  is ours times C. MONAI's ``jaccard=True`` doubles the whole denominator:
  ``1 - (2I + s) / (2U + s)`` is ``iou_loss(smooth=s / 2)``.
* optax (a test dependency, called directly): ``optax.losses.dice_loss`` is the Tversky form
  ``(I + s) / (I + a FP + b FN + s)`` per sample and class, so ``smooth=s`` is our
  ``tversky_loss(smooth=s)`` and our ``dice_loss(smooth=2 s)``; its class mean per sample is our
  ``reduction="none"``.
* segmentation_models_pytorch (smp): pools the batch and zeroes classes absent from the target
  before the class mean; on batches where every class is present that is ``aggregate="batch"``.
  Numbers from qubvel-org/segmentation_models.pytorch, tests/test_losses.py.

Cases whose semantics differ from ours are left out and named here: MONAI ``soft_label=False``
(product intersection for soft targets), ``squared_pred``, ``other_act`` (tanh, log_softmax) and
unequal ``smooth_nr``/``smooth_dr``; smp's skipping of absent classes (its "worst case" of an empty
target scores 0; here a prediction on an empty target is a loss of 1 with ``smooth=0``).
"""

import jax
import numpy as np
import optax
import pytest

import jaxseg_losses as jsl
from tests.helpers import jit_call, random_inputs, softmax
from tests.references import region as ref


def f32(x):
    return np.asarray(x, np.float32)


# ----------------------------------------------------------------------------------------------
# MONAI. Inputs shared by many of its cases (shapes in its NCHW / NCL layout).

# (1, 1, 2, 2) logits and target.
ONE_IMAGE = f32([[[[1.0, -1.0], [-1.0, 1.0]]]])
ONE_TARGET = f32([[[[1.0, 0.0], [1.0, 1.0]]]])
# (2, 1, 2, 2)
TWO_IMAGES = f32([[[[1.0, -1.0], [-1.0, 1.0]]], [[[1.0, -1.0], [-1.0, 1.0]]]])
TWO_TARGETS = f32([[[[1.0, 1.0], [1.0, 1.0]]], [[[1.0, 0.0], [1.0, 0.0]]]])
# (2, 1, 2, 2) probabilities used as their own soft target.
SOFT = f32([[[[0.3, 0.4], [0.7, 0.9]]], [[[1.0, 0.1], [0.5, 0.3]]]])
# (2, 2, 3) logits with (2, 1, 3) index targets [[1, 0, 0]], [[1, 1, 0]] (to_onehot_y=True).
NCL = f32([[[-1.0, 0.0, 1.0], [1.0, 0.0, -1.0]], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
NCL_LABELS = np.array([[1, 0, 0], [1, 1, 0]], np.int32)
NCL_ONE_HOT = np.moveaxis(np.eye(2, dtype=np.float32)[NCL_LABELS], -1, 1)
# (2, 2, 3) probabilities with index targets [[0, 0, 1]], [[0, 1, 0]]: a perfect foreground.
PROBS = f32([[[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]], [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]])
PROBS_LABELS = np.array([[0, 0, 1], [0, 1, 0]], np.int32)

SIGMOID = dict(activation="sigmoid", class_axis=1)
SOFTMAX = dict(activation="softmax", class_axis=1)
NONE = dict(activation=None, class_axis=1)

MONAI_CASES = [
    # name, loss, logits, labels, options, expected
    # test_dice_loss.py
    ("dice-1", "dice", ONE_IMAGE, ONE_TARGET, dict(SIGMOID, smooth=1e-6), 0.307576),
    ("dice-2", "dice", TWO_IMAGES, TWO_TARGETS, dict(SIGMOID, smooth=1e-4), 0.416657),
    ("dice-3-soft-label", "dice", SOFT, SOFT, dict(NONE, smooth=1e-4), 0.0),
    (
        "dice-5-no-background",
        "dice",
        PROBS,
        PROBS_LABELS,
        dict(NONE, smooth=0.0, include_background=False),
        0.0,
    ),
    ("dice-6-sigmoid", "dice", NCL, NCL_ONE_HOT, dict(SIGMOID, smooth=1e-4), 0.435050),
    ("dice-8-softmax", "dice", NCL, NCL_LABELS, dict(SOFTMAX, smooth=1e-4), 0.383713),
    # MONAI sums over batch and the 2 classes: ours (sum of class means over the batch) x 2.
    (
        "dice-9-sum",
        "dice",
        NCL,
        NCL_LABELS,
        dict(SOFTMAX, smooth=1e-4, reduction="sum"),
        1.534853 / 2,
    ),
    # jaccard=True with MONAI's default smooth 1e-5: iou_loss(smooth=1e-5 / 2).
    ("dice-11-jaccard", "iou", ONE_IMAGE, ONE_TARGET, dict(SIGMOID, smooth=0.5e-5), 0.470451),
    # test_tversky_loss.py
    ("tversky-1", "tversky", ONE_IMAGE, ONE_TARGET, dict(SIGMOID, smooth=1e-6), 0.307576),
    ("tversky-2", "tversky", TWO_IMAGES, TWO_TARGETS, dict(SIGMOID, smooth=1e-4), 0.416657),
    ("tversky-3-soft-label", "tversky", SOFT, SOFT, dict(NONE, smooth=1e-4), 0.0),
    ("tversky-7-sigmoid", "tversky", NCL, NCL_ONE_HOT, dict(SIGMOID, smooth=1e-4), 0.435050),
    (
        "tversky-8-batch",
        "tversky",
        NCL,
        NCL_ONE_HOT,
        dict(SIGMOID, smooth=1e-5, aggregate="batch"),
        0.422979,
    ),
    (
        "tversky-9-sum",
        "tversky",
        NCL,
        NCL_ONE_HOT,
        dict(SIGMOID, smooth=1e-4, reduction="sum"),
        1.74013 / 2,
    ),
    ("tversky-10-softmax", "tversky", NCL, NCL_LABELS, dict(SOFTMAX, smooth=1e-4), 0.383713),
    (
        "tversky-12-alpha-0.3",
        "tversky",
        ONE_IMAGE,
        ONE_TARGET,
        dict(SIGMOID, smooth=1e-6, alpha=0.3, beta=0.7),
        0.3589,
    ),
    (
        "tversky-13-alpha-0.7",
        "tversky",
        ONE_IMAGE,
        ONE_TARGET,
        dict(SIGMOID, smooth=1e-6, alpha=0.7, beta=0.3),
        0.247366,
    ),
    # test_generalized_dice_loss.py
    ("gdl-1", "generalized_dice", ONE_IMAGE, ONE_TARGET, dict(SIGMOID, smooth=1e-6), 0.307576),
    ("gdl-2", "generalized_dice", TWO_IMAGES, TWO_TARGETS, dict(SIGMOID, smooth=1e-4), 0.416597),
    ("gdl-3-soft-label", "generalized_dice", SOFT, SOFT, dict(NONE, smooth=1e-4), 0.0),
    (
        "gdl-5-no-background",
        "generalized_dice",
        PROBS,
        PROBS_LABELS,
        dict(NONE, smooth=0.0, include_background=False),
        0.0,
    ),
    ("gdl-6-sigmoid", "generalized_dice", NCL, NCL_ONE_HOT, dict(SIGMOID, smooth=1e-4), 0.469964),
    ("gdl-7-softmax", "generalized_dice", NCL, NCL_LABELS, dict(SOFTMAX, smooth=1e-4), 0.414507),
    # One generalized Dice per sample: MONAI's sum over batch and its single "class" is ours.
    (
        "gdl-8-sum",
        "generalized_dice",
        NCL,
        NCL_LABELS,
        dict(SOFTMAX, smooth=1e-4, reduction="sum"),
        0.829015,
    ),
    (
        "gdl-9-none",
        "generalized_dice",
        NCL,
        NCL_LABELS,
        dict(SOFTMAX, smooth=1e-4, reduction="none"),
        [0.273476, 0.555539],
    ),
    # Every kept class absent from every target: all weights are 0 and the loss is 0 (MONAI rule).
    (
        "gdl-10-all-absent",
        "generalized_dice",
        PROBS,
        np.zeros((2, 3), np.int32),
        dict(NONE, smooth=1e-8, include_background=False),
        0.0,
    ),
    (
        "gdl-11-simple",
        "generalized_dice",
        f32([[[0.0, 10.0, 10.0, 10.0], [10.0, 0.0, 0.0, 0.0]]]),
        np.array([[1, 1, 0, 0]], np.int32),
        dict(SOFTMAX, smooth=0.0, weight_type="simple"),
        0.250023,
    ),
]
LOSSES = {
    "iou": jsl.iou_loss,
    "dice": jsl.dice_loss,
    "tversky": jsl.tversky_loss,
    "generalized_dice": jsl.generalized_dice_loss,
}


@pytest.mark.parametrize("case", MONAI_CASES, ids=[c[0] for c in MONAI_CASES])
def test_monai_published_values(case):
    _, kind, logits, labels, options, expected = case
    got = jit_call(LOSSES[kind], logits, labels, **options)
    # MONAI's own tolerance for these cases is rtol=1e-5 (1e-4 for Tversky).
    np.testing.assert_allclose(got, expected, rtol=1e-4 if kind == "tversky" else 1e-5, atol=1e-6)


def test_monai_binary_target_as_integer_labels():
    # The single-channel target of dice-1 as [B, H, W] 0/1 labels: the same 0.307576.
    labels = ONE_TARGET[:, 0].astype(np.int32)
    got = jit_call(jsl.dice_loss, ONE_IMAGE, labels, smooth=1e-6, **SIGMOID)
    np.testing.assert_allclose(got, 0.307576, rtol=1e-5)


def test_monai_per_class_values():
    # reduction="none" in MONAI keeps [B, C]: our per-class losses from the statistics.
    @jax.jit
    def per_class(x, one_hot, labels):
        sigmoid = jsl.overlap_stats(x, one_hot, **SIGMOID)
        softmax = jsl.overlap_stats(x, labels, **SOFTMAX)
        return (
            jsl.dice_from_stats(sigmoid, smooth=1e-4),
            jsl.tversky_from_stats(softmax, smooth=1e-4),
        )

    dice, tversky = per_class(NCL, NCL_ONE_HOT, NCL_LABELS)
    # test_dice_loss.py case 7 (sigmoid, reduction="none").
    np.testing.assert_allclose(dice, [[0.296529, 0.415136], [0.599976, 0.428559]], rtol=1e-5)
    # test_tversky_loss.py case 11 (softmax, reduction="none").
    np.testing.assert_allclose(tversky, [[0.210961, 0.295339], [0.599952, 0.428547]], rtol=1e-4)


def test_monai_jaccard_formula_is_iou_with_half_smooth():
    # MONAI DiceLoss(jaccard=True): f = 1 - (2 I + s) / (2 (P + G - I) + s), written out here
    # with a smooth large enough to tell s from s / 2.
    data = random_inputs(50, batch=2, spatial=(4, 4), num_classes=3)
    tp, fp, fn = ref.stats(data["logits"], data["labels"])
    s = 1.0
    monai = 1.0 - (2 * tp + s) / (2 * (tp + fp + fn) + s)
    got = jit_call(jsl.iou_loss, data["logits"], data["labels"], smooth=s / 2)
    np.testing.assert_allclose(got, monai.mean(), rtol=1e-5)
    other = jit_call(jsl.iou_loss, data["logits"], data["labels"], smooth=s)
    assert abs(float(other) - monai.mean()) > 1e-4


# ----------------------------------------------------------------------------------------------
# optax.losses.dice_loss, called directly.


@pytest.mark.parametrize(
    "num_classes,options",
    [
        (3, dict()),
        (3, dict(smooth=0.5, alpha=0.3, beta=0.7)),
        (4, dict(smooth=0.0, class_weights=(1.0, 2.0, 0.5, 0.25), ignore_background=True)),
        (1, dict(smooth=2.0)),
    ],
)
def test_optax_dice_loss(num_classes, options):
    activation = "softmax" if num_classes > 1 else "sigmoid"
    data = random_inputs(
        51, batch=3, spatial=(4, 5), num_classes=num_classes, activation=activation
    )
    logits, labels = data["logits"], data["labels"]
    if num_classes > 1:
        one_hot = np.eye(num_classes, dtype=np.float32)[labels]
    else:
        one_hot = (labels == 1).astype(np.float32)[..., None]
    # optax multiplies [B, C] by class_weights [C] with implicit rank promotion.
    with jax.numpy_rank_promotion("allow"):
        expected = optax.losses.dice_loss(
            logits,
            one_hot,
            **{k: np.asarray(v) if k == "class_weights" else v for k, v in options.items()},
        )
    smooth = options.get("smooth", 1.0)
    ours = dict(
        activation=activation,
        smooth=smooth,
        alpha=options.get("alpha", 0.5),
        beta=options.get("beta", 0.5),
        class_weights=options.get("class_weights"),
        include_background=not options.get("ignore_background", False),
        reduction="none",
    )

    @jax.jit
    def run(x, y, y_dense):
        tversky = jsl.tversky_loss(x, y, **ours)
        dense = jsl.tversky_loss(x, y_dense, **ours)
        return tversky, dense

    tversky, dense = run(logits, labels, one_hot)
    assert tversky.shape == expected.shape == (3,)
    np.testing.assert_allclose(tversky, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dense, expected, rtol=1e-5, atol=1e-6)
    if "alpha" not in options:
        # Dice: optax's smooth s is our smooth 2 s.
        dice_options = {k: v for k, v in ours.items() if k not in ("alpha", "beta")}
        dice_options["smooth"] = 2 * smooth
        dice = jit_call(jsl.dice_loss, logits, labels, **dice_options)
        np.testing.assert_allclose(dice, expected, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# segmentation_models_pytorch.


def smp_dice_loss(probs, labels, *, smooth=0.0, eps=1e-7, log_loss=False):
    """smp ``DiceLoss(mode="multiclass", from_logits=False)``, NumPy, NCHW (losses/dice.py).

    Statistics pooled over batch and pixels (dims=(0, 2)), score clamped at eps, classes absent
    from the target zeroed, then the mean over all classes.
    """
    batch, num_classes = probs.shape[:2]
    y_pred = probs.reshape(batch, num_classes, -1).astype(np.float64)
    y_true = np.moveaxis(np.eye(num_classes)[labels.reshape(batch, -1)], -1, 1)
    intersection = np.sum(y_pred * y_true, axis=(0, 2))
    cardinality = np.sum(y_pred + y_true, axis=(0, 2))
    score = np.maximum((2 * intersection + smooth) / (cardinality + smooth), eps)
    loss = -np.log(score) if log_loss else 1.0 - score
    loss = loss * (np.sum(y_true, axis=(0, 2)) > 0)
    return loss.mean()


@pytest.mark.parametrize("log_loss,smooth", [(False, 0.0), (True, 0.0), (False, 1.0)])
def test_smp_dice_formula_when_every_class_is_present(log_loss, smooth):
    data = random_inputs(52, batch=2, spatial=(4, 4), num_classes=3, class_axis=1)
    labels = data["labels"]
    assert len(np.unique(labels)) == 3  # every class present: smp's skipping changes nothing
    probs = softmax(data["logits"].astype(np.float64), axis=1)
    expected = smp_dice_loss(probs, labels, smooth=smooth, log_loss=log_loss)
    got = jit_call(
        jsl.dice_loss,
        data["logits"],
        labels,
        class_axis=1,
        smooth=smooth,
        log=log_loss,
        aggregate="batch",
    )
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_smp_published_values():
    # tests/test_losses.py: test_multiclass_jaccard_loss, "1 - 1/3 case" (from_logits=False).
    probs = f32([[[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]]])
    labels = np.array([[1, 1, 0, 0]], np.int32)
    got = jit_call(jsl.iou_loss, probs, labels, aggregate="batch", smooth=0.0, **NONE)
    np.testing.assert_allclose(got, 1.0 - 1.0 / 3.0, atol=1e-5)
    # test_multilabel_jaccard_loss, "1 - 1/3 case".
    probs = f32([[[0.0, 1.0, 1.0, 0.0], [0.0, 1.0, 1.0, 0.0]]])
    targets = f32([[[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]]])
    got = jit_call(jsl.iou_loss, probs, targets, aggregate="batch", smooth=0.0, **NONE)
    np.testing.assert_allclose(got, 1.0 - 1.0 / 3.0, atol=1e-5)
    # test_soft_dice_score / test_soft_jaccard_score / test_soft_tversky_score (alpha = beta =
    # 0.5): prediction [1, 1, 0, 0] against target [1, 1, 1, 1] scores 2/3, 1/2 and 2/3.
    pred = f32([[[1.0], [1.0], [0.0], [0.0]]])
    target = np.ones((1, 4), np.int32)
    binary = dict(activation=None, smooth=0.0)

    @jax.jit
    def scores(p, t):
        return (
            jsl.dice_loss(p, t, **binary),
            jsl.iou_loss(p, t, **binary),
            jsl.tversky_loss(p, t, alpha=0.5, beta=0.5, **binary),
        )

    np.testing.assert_allclose(scores(pred, target), [1 - 2 / 3, 1 - 1 / 2, 1 - 2 / 3], atol=1e-6)
