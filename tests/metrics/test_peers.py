"""The metrics against the numbers of MONAI, segmentation_models_pytorch and torchmetrics.

No peer is a dependency: each expected number is copied from the peer's own test suite (MONAI,
cited by file and case) or computed by hand from the peer's source formula on the small inputs
below (smp and torchmetrics: their test suites compare against random inputs only; the formula
is cited by file and function). scikit-learn, which torchmetrics' own tests use as the reference
for ``DiceScore``, is compared directly. The mapping of each peer call to ours is in
docs/metrics.md; every call below is that mapping. Peer sources read at MONAI d388d1c, smp
5006616, torchmetrics dab0333.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseg_losses import metrics as M

# MONAI's inputs are one-hot NCHW float tensors: boolean decisions and 0/1 targets here.
CH = 1  # class_axis of NCHW


def _nchw(x):
    return np.asarray(x, np.float32)


# tests/metrics/test_compute_meandice.py and test_compute_meaniou.py (the same inputs).
CASE_1 = (_nchw([[[[1.0, 0.0], [0.0, 1.0]]]]), _nchw([[[[1.0, 0.0], [1.0, 1.0]]]]))
CASE_2 = (
    _nchw(
        [
            [[[0.0, 1.0], [0.0, 0.0]], [[0.0, 0.0], [1.0, 1.0]], [[1.0, 0.0], [0.0, 0.0]]],
            [[[0.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 0.0]], [[0.0, 1.0], [1.0, 0.0]]],
        ]
    ),
    _nchw(
        [
            [[[0.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 0.0]]],
            [[[0.0, 0.0], [0.0, 1.0]], [[1.0, 1.0], [0.0, 0.0]], [[0.0, 0.0], [1.0, 0.0]]],
        ]
    ),
)
CASE_3 = (
    _nchw(
        [
            [[[0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]]],
            [[[0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]]],
        ]
    ),
    _nchw(
        [
            [[[1.0, 1.0], [1.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]],
            [[[0.0, 1.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]]],
        ]
    ),
)
PRED_4 = _nchw(
    [
        [[[1.0, 1.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 0.0]], [[0.0, 1.0], [1.0, 1.0]]],
        [[[1.0, 0.0], [1.0, 1.0]], [[0.0, 1.0], [1.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]]],
    ]
)
CASE_4 = (
    PRED_4,
    _nchw(
        [
            [[[1.0, 1.0], [1.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]],
            [[[0.0, 0.0], [0.0, 1.0]], [[1.0, 1.0], [0.0, 0.0]], [[0.0, 0.0], [1.0, 0.0]]],
        ]
    ),
)
CASE_6 = (
    PRED_4,
    _nchw(
        [
            [[[1.0, 1.0], [1.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]],
            [[[1.0, 1.0], [1.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]],
        ]
    ),
)
ZEROS, ONES = np.zeros((2, 2, 3, 3), np.float32), np.ones((2, 2, 3, 3), np.float32)


def _counts(case):
    predictions, labels = case
    return M.overlap_counts(predictions.astype(bool), labels, class_axis=CH)


def test_monai_dice_metric_and_mean_iou():
    @jax.jit
    def run(c1, c2, c3, c4, c6, zeros, ones):
        c1, c2, c3, c4, c6 = map(_counts, (c1, c2, c3, c4, c6))
        empty, full = _counts((zeros, zeros)), _counts((ones, zeros))
        out = {}
        for name, score in (("dice", M.dice), ("iou", M.iou)):
            # DiceMetric(...) / MeanIoU(...): ignore_empty=True by default.
            s = lambda c, **kw: score(c, ignore_empty=True, **kw)  # noqa: B023, E731
            out[name] = {
                "1": s(c1),
                "2": s(c2, include_background=False),
                "3": s(c3),
                "4": s(c4, reduction="mean_batch", return_count=True),
                "5": s(c4, reduction="mean", return_count=True),
                "6": s(c6, reduction="sum_batch"),
                "7": s(c6, reduction="mean"),
                "8": s(c6, reduction="sum_batch", include_background=False),
                # ignore_empty=False: 1 where prediction and ground truth are both empty.
                "11": score(empty, zero_division=1.0),
                "12": score(full, zero_division=1.0),
            }
        return out

    out = run(CASE_1, CASE_2, CASE_3, CASE_4, CASE_6, ZEROS, ONES)
    # tests/metrics/test_compute_meandice.py, TEST_CASE_1 ... TEST_CASE_12.
    dice = out["dice"]
    np.testing.assert_allclose(dice["1"], [[0.8]], atol=1e-4)
    np.testing.assert_allclose(dice["2"], [[0.5, 0.0], [0.6667, 0.6667]], atol=1e-4)
    np.testing.assert_array_equal(np.isnan(dice["3"]), [[False, True, True], [False, False, True]])
    np.testing.assert_allclose(dice["4"][0], [0.6786, 0.4000, 0.6667], atol=1e-4)
    np.testing.assert_array_equal(dice["4"][1], [2, 1, 1])  # get_not_nans
    np.testing.assert_allclose(dice["5"][0], 0.689683, atol=1e-4)
    np.testing.assert_allclose(dice["6"], [1.7143, 0.0, 0.0], atol=1e-4)
    np.testing.assert_allclose(dice["7"], 0.857143, atol=1e-4)
    np.testing.assert_allclose(dice["8"], [0.0, 0.0], atol=1e-4)
    np.testing.assert_allclose(dice["11"], np.ones((2, 2)))
    np.testing.assert_allclose(dice["12"], np.zeros((2, 2)))
    # tests/metrics/test_compute_meaniou.py, TEST_CASE_1 ... TEST_CASE_12.
    iou = out["iou"]
    np.testing.assert_allclose(iou["1"], [[0.6667]], atol=1e-4)
    np.testing.assert_allclose(iou["2"], [[0.3333, 0.0], [0.5, 0.5]], atol=1e-4)
    np.testing.assert_array_equal(np.isnan(iou["3"]), [[False, True, True], [False, False, True]])
    np.testing.assert_allclose(iou["4"][0], [0.5416, 0.2500, 0.5000], atol=1e-4)
    np.testing.assert_allclose(iou["5"][0], 0.5555, atol=1e-4)
    np.testing.assert_allclose(iou["6"], [1.5, 0.0, 0.0], atol=1e-4)
    np.testing.assert_allclose(iou["7"], 0.75, atol=1e-4)
    np.testing.assert_allclose(iou["8"], [0.0, 0.0], atol=1e-4)
    np.testing.assert_allclose(iou["11"], np.ones((2, 2)))
    np.testing.assert_allclose(iou["12"], np.zeros((2, 2)))


# tests/metrics/test_compute_confusion_matrix.py: `data`, `data_nan`, `data_clf`.
CM_DATA = CASE_2
CM_NAN = (
    _nchw(
        [
            [[[0.0, 1.0], [0.0, 0.0]], [[0.0, 0.0], [1.0, 1.0]], [[1.0, 0.0], [0.0, 0.0]]],
            [[[0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]]],
            [[[0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]]],
        ]
    ),
    _nchw(
        [
            [[[0.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 0.0]]],
            [[[1.0, 1.0], [1.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]],
            [[[0.0, 1.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]]],
        ]
    ),
)
MONAI_NAMES = {  # MONAI's short name -> ours
    "tpr": "recall",
    "fpr": "fall_out",
    "tnr": "specificity",
    "ppv": "precision",
    "npv": "negative_predictive_value",
    "fnr": "miss_rate",
    "fdr": "false_discovery_rate",
    "for": "false_omission_rate",
    "pt": "prevalence_threshold",
    "ts": "iou",
    "acc": "accuracy",
    "ba": "balanced_accuracy",
    "f1": "dice",
    "mcc": "mcc",
    "fm": "fowlkes_mallows",
    "bm": "informedness",
    "mk": "markedness",
}
# result_mean_batch and result_mean, in the order of MONAI_NAMES.
MONAI_MEAN_BATCH = [
    [0.5000, 0.5000, 0.5000],
    [0.1667, 0.2500, 0.3333],
    [0.8333, 0.7500, 0.6667],
    [0.5000, 0.7500, 0.2500],
    [0.8333, 0.5833, 0.8333],
    [0.5000, 0.5000, 0.5000],
    [0.5000, 0.2500, 0.7500],
    [0.1667, 0.4167, 0.1667],
    [0.5000, 0.0000, 0.6830],
    [0.5000, 0.4167, 0.2500],
    [0.7500, 0.6250, 0.6250],
    [0.6667, 0.6250, 0.5833],
    [0.5000, 0.5833, 0.3333],
    [0.3333, 0.2887, 0.1220],
    [0.5000, 0.6036, 0.3536],
    [0.3333, 0.2500, 0.1667],
    [0.3333, 0.3333, 0.0833],
]
MONAI_MEAN = [
    0.5000, 0.2500, 0.7500, 0.5000, 0.7500, 0.5000, 0.5000, 0.2500, 0.5610,
    0.3889, 0.6667, 0.6250, 0.4722, 0.2480, 0.4857, 0.2500, 0.2500,
]  # fmt: skip


def test_monai_confusion_matrix_metric():
    @jax.jit
    def run(p, y, p_nan, y_nan, p_clf, y_clf):
        counts, with_nan = _counts((p, y)), _counts((p_nan, y_nan))
        clf = M.overlap_counts(p_clf.astype(bool), y_clf)  # classification: [B, C]
        out = {"counts": counts, "clf": clf}
        for short, name in MONAI_NAMES.items():
            score = getattr(M, name)
            # compute_sample=True: each image's score, then the reduction.
            out[short] = (score(counts, reduction="mean_batch"), score(counts, reduction="mean"))
        for short in ("tpr", "tnr"):
            score = getattr(M, MONAI_NAMES[short])
            out[f"{short}_nan"] = (
                score(with_nan, reduction="sum", return_count=True),
                score(with_nan, reduction="sum_batch", return_count=True),
            )
        # compute_sample=False, reduction="mean_channel": the counts pooled over classes.
        out["clf_tpr"] = M.recall(clf.sum(axis=1))
        return out

    p_clf, y_clf = np.array([[1, 0, 0], [0, 0, 1]]), np.array([[1, 0, 0], [0, 1, 0]], np.float32)
    out = run(*CM_DATA, *CM_NAN, p_clf, y_clf)
    # TEST_CASE_CONFUSION_MATRIX: [tp, fp, tn, fn] per image and class.
    c = out["counts"]
    monai = np.stack([np.asarray(c.tp), np.asarray(c.fp), np.asarray(c.tn), np.asarray(c.fn)], -1)
    expected = [
        [[0, 1, 2, 1], [1, 1, 1, 1], [0, 1, 2, 1]],
        [[1, 0, 3, 0], [1, 0, 2, 1], [1, 1, 2, 0]],
    ]
    np.testing.assert_array_equal(monai, expected)
    for i, short in enumerate(MONAI_NAMES):
        mean_batch, mean = out[short]
        np.testing.assert_allclose(mean_batch, MONAI_MEAN_BATCH[i], atol=1e-4, err_msg=short)
        np.testing.assert_allclose(mean, MONAI_MEAN[i], atol=1e-4, err_msg=short)
    # TEST_CASES_COMPUTE_SAMPLE_NAN: sums and not-NaN counts.
    (tpr_sum, tpr_n), (tpr_batch, tpr_batch_n) = out["tpr_nan"]
    (tnr_sum, tnr_n), (tnr_batch, tnr_batch_n) = out["tnr_nan"]
    np.testing.assert_allclose([tpr_sum, tnr_sum], [0.5, 4.8333], atol=1e-4)
    np.testing.assert_array_equal([tpr_n, tnr_n], [6, 8])
    np.testing.assert_allclose(tpr_batch, [0.0, 0.5, 0.0], atol=1e-4)
    np.testing.assert_allclose(tnr_batch, [1.6667, 2.5, 0.6667], atol=1e-4)
    np.testing.assert_array_equal(tpr_batch_n, [3, 2, 1])
    np.testing.assert_array_equal(tnr_batch_n, [2, 3, 3])
    # TEST_CASES_CLF: counts of the classification data, then "mean_channel" on the counts.
    clf = out["clf"]
    np.testing.assert_array_equal(
        np.stack(
            [np.asarray(clf.tp), np.asarray(clf.fp), np.asarray(clf.tn), np.asarray(clf.fn)], -1
        ),
        [[[1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 1, 0]], [[0, 0, 1, 0], [0, 0, 0, 1], [0, 1, 0, 0]]],
    )
    np.testing.assert_allclose(out["clf_tpr"], [1.0, 0.0], atol=1e-6)


def test_monai_generalized_dice_score():
    @jax.jit
    def run(c1, c2, c4, c6, zeros, ones):
        c1, c2, c4, c6 = map(_counts, (c1, c2, c4, c6))
        return {
            # compute_generalized_dice (per class; 1 where both are empty) is Dice with
            # zero_division=1.0.
            "1": M.dice(c1, zero_division=1.0),
            "2": M.dice(c2, zero_division=1.0, include_background=False, reduction="mean_batch"),
            "3": M.generalized_dice(c4, zero_division=1.0, reduction="mean"),
            "4": M.generalized_dice(c6, zero_division=1.0, reduction="sum"),
            "5": M.dice(_counts((ones, ones)), zero_division=1.0),
            "6": M.dice(_counts((ones, zeros)), zero_division=1.0),
            "7": M.dice(_counts((zeros, ones)), zero_division=1.0),
            "8": M.dice(_counts((zeros, zeros)), zero_division=1.0),
            "9": M.generalized_dice(c4, zero_division=1.0),
            "10": M.dice(c4, zero_division=1.0),
            "8_combined": M.generalized_dice(_counts((zeros, zeros)), zero_division=1.0),
            "6_combined": M.generalized_dice(_counts((ones, zeros)), zero_division=1.0),
        }

    out = run(CASE_1, CASE_2, CASE_4, CASE_6, ZEROS, ONES)
    # tests/metrics/test_compute_generalized_dice.py, TEST_CASE_1 ... TEST_CASE_11.
    np.testing.assert_allclose(out["1"], [[0.8]], atol=1e-4)
    np.testing.assert_allclose(out["2"], [0.583333, 0.333333], atol=1e-4)
    np.testing.assert_allclose(out["3"], 0.5454, atol=1e-4)
    np.testing.assert_allclose(out["4"], 1.045455, atol=1e-4)
    np.testing.assert_allclose(out["5"], np.ones((2, 2)))
    np.testing.assert_allclose(out["6"], np.zeros((2, 2)))
    np.testing.assert_allclose(out["7"], np.zeros((2, 2)))
    np.testing.assert_allclose(out["8"], np.ones((2, 2)))
    np.testing.assert_allclose(out["9"], [0.545455, 0.545455], atol=1e-4)
    np.testing.assert_allclose(out["10"], [[0.857143, 0.0, 0.0], [0.5, 0.4, 0.666667]], atol=1e-4)
    np.testing.assert_allclose(out["8_combined"], [1.0, 1.0])
    np.testing.assert_allclose(out["6_combined"], [0.0, 0.0])


# segmentation_models_pytorch: get_stats output and the score functions' reductions,
# computed from segmentation_models_pytorch/metrics/functional.py (_compute_metric and the
# _<score> formulas) by hand on these counts (N=2 images, C=3 classes; image 0 lacks class 2).
SMP_TP = np.array([[4, 2, 0], [6, 0, 1]])
SMP_FP = np.array([[1, 0, 0], [2, 1, 1]])
SMP_FN = np.array([[1, 2, 0], [0, 3, 1]])
SMP_TN = np.array([[10, 12, 16], [8, 12, 13]])
SMP_WEIGHTS = [1.0, 2.0, 1.0]
# score -> micro, macro, micro-imagewise, macro-imagewise, weighted, weighted-imagewise
# (zero_division=1.0, class_weights=SMP_WEIGHTS for the weighted ones), and smp's own
# weighted-imagewise value, which divides by C a second time (see docs/metrics.md).
SMP = {
    "iou_score": [0.52, 0.43254, 0.533333, 0.541667, 0.386905, 0.46875],
    "f1_score": [0.684211, 0.577778, 0.693182, 0.637302, 0.533333, 0.561310],
    "fbeta_score": [0.663265, 0.566591, 0.667019, 0.632176, 0.505589, 0.543576],
    "accuracy": [0.875, 0.875, 0.875, 0.875, 0.859375, 0.859375],
    "recall": [0.65, 0.564935, 0.651515, 0.633333, 0.49513, 0.5375],
    "precision": [0.722222, 0.645299, 0.746753, 0.675, 0.650641, 0.63125],
    "specificity": [0.934211, 0.927937, 0.933125, 0.92679, 0.935952, 0.935478],
    "balanced_accuracy": [0.792105, 0.746436, 0.79232, 0.780062, 0.715541, 0.736488],
}
SMP_NONE_IOU = [[0.666667, 0.5, 1.0], [0.75, 0.0, 0.333333]]
SMP_OURS = {
    "iou_score": M.iou,
    "f1_score": M.dice,
    "fbeta_score": lambda c, **kw: M.f_beta(c, beta=2.0, **kw),
    "accuracy": M.accuracy,
    "recall": M.recall,
    "precision": M.precision,
    "specificity": M.specificity,
    "balanced_accuracy": M.balanced_accuracy,
}


def test_smp_reductions():
    @jax.jit
    def run(tp, fp, fn, tn):
        counts = M.Counts(tp, fp, fn, tn)  # smp.metrics.get_stats returns these four
        z = {"zero_division": 1.0}
        w = {"class_weights": SMP_WEIGHTS}
        out = {}
        for name, score in SMP_OURS.items():
            out[name] = [
                score(counts.sum(), **z),  # micro
                score(counts.sum(axis=0), reduction="mean", **z),  # macro
                score(counts.sum(axis=1, keepdims=True), reduction="mean", **z),  # micro-imagewise
                score(counts, reduction="mean_batch_channel", **z),  # macro-imagewise
                score(counts.sum(axis=0), reduction="mean", **z, **w),  # weighted
                score(counts, reduction="mean_batch_channel", **z, **w),  # weighted-imagewise
            ]
        out["none"] = M.iou(counts, **z)
        out["all_empty_micro"] = M.iou(M.Counts(*(jnp.zeros_like(tp),) * 4).sum(), **z)
        return out

    out = run(SMP_TP, SMP_FP, SMP_FN, SMP_TN)
    for name, expected in SMP.items():
        np.testing.assert_allclose(out[name], expected, atol=2e-6, err_msg=name)
        # smp's weighted-imagewise is ours divided by C = 3 (the class weights sum to 1 and
        # are then averaged); smp's "macro" with class_weights likewise gives weighted / 3.
    np.testing.assert_allclose(SMP["iou_score"][5] / 3, 0.15625, atol=1e-6)  # smp's number
    np.testing.assert_allclose(out["none"], SMP_NONE_IOU, atol=2e-6)
    # smp's micro skips zero_division (0/0 stays NaN); zero_division applies here.
    np.testing.assert_allclose(out["all_empty_micro"], 1.0)


def test_smp_get_stats_multiclass_with_ignore_index():
    # _get_stats_multiclass: ignored pixels leave all four counts (tn minus the ignored).
    output = np.array([[0, 1, 2, 2, 1, 0], [1, 1, 0, 0, 2, 2]])
    target = np.array([[0, 1, 1, 2, 255, 255], [1, 0, 0, 0, 2, 255]])
    counts = jax.jit(lambda p, y: M.overlap_counts(p, y, num_classes=3, ignore_index=255))(
        output, target
    )
    # Hand count per image and class of the valid pixels (4 and 5 of them).
    np.testing.assert_array_equal(np.asarray(counts.tp), [[1, 1, 1], [2, 1, 1]])
    np.testing.assert_array_equal(np.asarray(counts.fp), [[0, 0, 1], [0, 1, 0]])
    np.testing.assert_array_equal(np.asarray(counts.fn), [[0, 1, 0], [1, 0, 0]])
    np.testing.assert_array_equal(np.asarray(counts.tn), [[3, 2, 2], [2, 3, 4]])


# torchmetrics: functional/segmentation/mean_iou.py (_mean_iou_compute, mean_iou),
# segmentation/mean_iou.py (MeanIoU.update/compute), functional/segmentation/dice.py
# (_dice_score_compute), segmentation/dice.py (DiceScore.compute: nanmean over images) and
# generalized_dice.py, by hand on index inputs (image 1 lacks class 2).
TM_PREDS = np.array([[0, 1, 1, 1, 2, 0], [0, 0, 1, 1, 1, 1]])
TM_TARGET = np.array([[0, 0, 1, 1, 2, 2], [0, 0, 0, 1, 1, 1]])


def test_torchmetrics_mean_iou_dice_and_generalized_dice():
    @jax.jit
    def run(p, y):
        counts = M.overlap_counts(p, y, num_classes=3)  # input_format="index"
        pooled = counts.sum(axis=0)  # aggregation_level="global"
        return {
            "mean_iou": M.iou(counts, reduction="mean_channel"),
            "mean_iou_per_class": M.iou(counts),
            "MeanIoU": M.iou(counts, reduction="mean_all"),
            "MeanIoU_per_class": M.iou(counts, reduction="mean_batch"),
            "micro": M.dice(counts.sum(axis=1, keepdims=True), reduction="mean"),
            "macro": M.dice(counts, reduction="mean"),
            "weighted": M.dice(counts, class_weights="support", reduction="mean"),
            "none": M.dice(counts, reduction="mean_batch"),
            "global_micro": M.dice(pooled.sum()),
            "global_macro": M.dice(pooled, reduction="mean"),
            "global_weighted": M.dice(pooled, class_weights="support", reduction="mean"),
            "global_none": M.dice(pooled),
            "gds": M.generalized_dice(counts, zero_division=0.0, reduction="mean"),
            "gds_per_image": M.generalized_dice(counts, zero_division=0.0),
            "gds_per_class": M.dice(counts, zero_division=0.0, reduction="mean_batch"),
        }

    out = run(TM_PREDS, TM_TARGET)
    nan = np.nan  # torchmetrics writes -1 where we write NaN (a class absent from both)
    np.testing.assert_allclose(out["mean_iou"], [0.5, 0.708333], atol=1e-6)
    np.testing.assert_allclose(
        out["mean_iou_per_class"], [[1 / 3, 2 / 3, 0.5], [2 / 3, 0.75, nan]], atol=1e-6
    )
    np.testing.assert_allclose(out["MeanIoU"], 0.583333, atol=1e-6)
    np.testing.assert_allclose(out["MeanIoU_per_class"], [0.5, 0.708333, 0.5], atol=1e-6)
    np.testing.assert_allclose(out["micro"], 0.75, atol=1e-6)
    np.testing.assert_allclose(out["macro"], 0.742063, atol=1e-6)
    np.testing.assert_allclose(out["weighted"], 0.742063, atol=1e-6)
    np.testing.assert_allclose(out["none"], [0.65, 0.828571, 0.666667], atol=1e-6)
    np.testing.assert_allclose(out["global_micro"], 0.75, atol=1e-6)
    np.testing.assert_allclose(out["global_macro"], 0.722222, atol=1e-6)
    np.testing.assert_allclose(out["global_weighted"], 0.736111, atol=1e-6)
    np.testing.assert_allclose(out["global_none"], [2 / 3, 0.833333, 2 / 3], atol=1e-6)
    np.testing.assert_allclose(out["gds"], 0.75, atol=1e-6)
    np.testing.assert_allclose(out["gds_per_image"], [2 / 3, 0.833333], atol=1e-6)
    np.testing.assert_allclose(out["gds_per_class"], [0.65, 0.828571, 1 / 3], atol=1e-6)


def test_dice_matches_scikit_learn_f1_as_torchmetrics_tests_it():
    # torchmetrics' tests/unittests/segmentation/test_dice.py::_reference_dice_score: sklearn's
    # f1_score per image (samplewise, then the mean) or on all pixels (global).
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    r = np.random.default_rng(0)
    preds = r.integers(0, 4, (3, 50))
    target = r.integers(0, 4, (3, 50))

    @jax.jit
    def run(p, y):
        counts = M.overlap_counts(p, y, num_classes=4)
        foreground = {"include_background": False}
        return {
            ("samplewise", "micro"): M.dice(counts.sum(axis=1, keepdims=True), reduction="mean"),
            ("samplewise", "macro"): M.dice(counts, reduction="mean"),
            ("samplewise", "weighted"): M.dice(counts, class_weights="support", reduction="mean"),
            ("samplewise", "none"): M.dice(counts, reduction="mean_batch"),
            ("global", "micro"): M.dice(counts.sum()),
            ("global", "macro"): M.dice(counts.sum(axis=0), reduction="mean"),
            ("global", "weighted"): M.dice(
                counts.sum(axis=0), class_weights="support", reduction="mean"
            ),
            ("global", "none"): M.dice(counts.sum(axis=0)),
            ("foreground", "macro"): M.dice(counts, reduction="mean", **foreground),
        }

    out = run(preds, target)
    labels = list(range(4))
    for (level, name), value in out.items():
        average = None if name == "none" else name
        if level == "global":
            expected = sklearn_metrics.f1_score(
                target.ravel(), preds.ravel(), average=average, labels=labels
            )
        else:
            keep = labels[1:] if level == "foreground" else labels
            expected = np.mean(
                [
                    sklearn_metrics.f1_score(t, p, average=average, labels=keep)
                    for t, p in zip(target, preds, strict=True)
                ],
                axis=0,
            )
        np.testing.assert_allclose(value, expected, rtol=1e-5, err_msg=f"{level} {name}")
