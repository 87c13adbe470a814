"""NumPy references of the metrics, written from their definitions (docs/metrics.md).

Float64 throughout; NaN marks an undefined value. Inputs are turned into per-pixel memberships
``[B, P, C]`` (is the pixel predicted as / labelled with class c) and a validity ``[B, P]``, and
everything is counted from those with plain NumPy sums; reductions are Python loops over the
definitions, so they share nothing with the library's vectorised code.
"""

import math

import numpy as np


def hits_of_classes(classes, num_classes):
    """``[B, P, C]`` memberships of integer classes (one channel: the value 1)."""
    classes = np.asarray(classes).reshape(len(classes), -1)
    if num_classes == 1:
        return (classes == 1)[..., None]
    return classes[..., None] == np.arange(num_classes)


def counts_of_hits(predicted, true, valid):
    """TP, FP, FN, TN ``[B, C]`` int64 of memberships ``[B, P, C]`` over valid pixels ``[B, P]``."""
    v = np.asarray(valid, bool)[..., None]
    p, t = np.asarray(predicted, bool), np.asarray(true, bool)
    count = lambda x: np.sum(x & v, axis=1, dtype=np.int64)  # noqa: E731
    return {
        "tp": count(p & t),
        "fp": count(p & ~t),
        "fn": count(~p & t),
        "tn": count(~p & ~t),
    }


def _div(a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b == 0, np.nan, a / np.where(b == 0, 1, b))


def scores(tp, fp, fn, tn, beta=1.0):
    """Every score of the definitions, NaN where undefined."""
    tp, fp, fn, tn = (np.asarray(x, np.float64) for x in (tp, fp, fn, tn))
    tpr, tnr = _div(tp, tp + fn), _div(tn, tn + fp)
    ppv, npv = _div(tp, tp + fp), _div(tn, tn + fn)
    b2 = beta**2
    with np.errstate(invalid="ignore"):
        mcc_den = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        pt = _div(np.sqrt(tpr * (1 - tnr)) + tnr - 1, tpr + tnr - 1)
        fm = np.sqrt(ppv * tpr)
    return {
        "iou": _div(tp, tp + fp + fn),
        "dice": _div(2 * tp, 2 * tp + fp + fn),
        "f_beta": _div((1 + b2) * tp, (1 + b2) * tp + b2 * fn + fp),
        "precision": ppv,
        "recall": tpr,
        "specificity": tnr,
        "negative_predictive_value": npv,
        "accuracy": _div(tp + tn, tp + fp + fn + tn),
        "balanced_accuracy": (tpr + tnr) / 2,
        "miss_rate": _div(fn, tp + fn),
        "fall_out": _div(fp, fp + tn),
        "false_discovery_rate": _div(fp, fp + tp),
        "false_omission_rate": _div(fn, fn + tn),
        "prevalence_threshold": pt,
        "mcc": _div(tp * tn - fp * fn, mcc_den),
        "fowlkes_mallows": fm,
        "informedness": tpr + tnr - 1,
        "markedness": ppv + npv - 1,
    }


SCORE_NAMES = tuple(scores(1, 1, 1, 1))


def apply_empty_rules(value, tp, fn, *, zero_division=math.nan, ignore_empty=False):
    value = np.where(np.isnan(value), zero_division, value)
    if ignore_empty:
        value = np.where(np.asarray(tp) + np.asarray(fn) == 0, np.nan, value)
    return value


def reduce(values, reduction, *, keep=None, weights=None):
    """``(value, count)`` of a reduction, by loops over the defined values."""
    x = np.asarray(values, np.float64)
    if x.ndim == 1:
        x = x[None]
        one_row = True
    else:
        one_row = False
    B, C = x.shape
    keep = list(range(C)) if keep is None else list(keep)
    w = np.ones(C) if weights is None else np.asarray(weights, np.float64)
    x, w = x[:, keep], w[keep]
    defined = ~np.isnan(x)

    def wmean(row, mask, weights):
        den = sum(weights[c] for c in range(len(row)) if mask[c] and weights[c] > 0)
        num = sum(weights[c] * row[c] for c in range(len(row)) if mask[c] and weights[c] > 0)
        return num / den if den > 0 else np.nan

    if reduction == "none":
        out, count = x, defined.astype(int)
    elif reduction == "mean_channel":
        out = np.array([wmean(x[b], defined[b], w) for b in range(B)])
        count = defined.sum(1)
    elif reduction == "sum_channel":
        out = np.array(
            [
                sum(w[c] * x[b, c] for c in range(len(keep)) if defined[b, c] and w[c] > 0)
                for b in range(B)
            ],
            np.float64,
        )
        count = defined.sum(1)
    elif reduction == "mean_batch":
        out = np.array(
            [
                np.mean(x[defined[:, c], c]) if defined[:, c].any() else np.nan
                for c in range(len(keep))
            ]
        )
        count = defined.sum(0)
    elif reduction == "sum_batch":
        out = np.array([x[defined[:, c], c].sum() for c in range(len(keep))])
        count = defined.sum(0)
    elif reduction == "mean":
        means = [wmean(x[b], defined[b], w) for b in range(B)]
        means = [m for m in means if not np.isnan(m)]
        out, count = (np.mean(means) if means else np.nan), len(means)
    elif reduction == "sum":
        out = sum(
            w[c] * x[b, c] for b in range(B) for c in range(len(keep)) if defined[b, c] and w[c] > 0
        )
        count = defined.sum()
    elif reduction == "mean_all":
        num = sum(
            w[c] * x[b, c] for b in range(B) for c in range(len(keep)) if defined[b, c] and w[c] > 0
        )
        den = sum(w[c] for b in range(B) for c in range(len(keep)) if defined[b, c] and w[c] > 0)
        out, count = (num / den if den > 0 else np.nan), defined.sum()
    elif reduction == "mean_batch_channel":
        per_class, _ = reduce(x, "mean_batch")
        out = wmean(per_class, ~np.isnan(per_class), w)
        count = (~np.isnan(per_class)).sum()
    else:
        raise ValueError(reduction)
    if one_row and reduction in ("none", "mean_channel", "sum_channel"):
        out, count = out[0], np.asarray(count)[0]
    return np.asarray(out, np.float64), np.asarray(count)


def generalized_dice(
    tp,
    fp,
    fn,
    *,
    weight_type="square",
    keep=None,
    class_weights=None,
    zero_division=math.nan,
    ignore_empty=False,
):
    """Per-image generalized Dice ``[B]`` by the definition (Sudre; MONAI's absent-class rule)."""
    tp, fp, fn = (np.atleast_2d(np.asarray(x, np.float64)) for x in (tp, fp, fn))
    keep = list(range(tp.shape[1])) if keep is None else list(keep)
    out = []
    for b in range(tp.shape[0]):
        t, p_, n = tp[b, keep], fp[b, keep], fn[b, keep]
        true = t + n
        if weight_type == "uniform":
            w = np.ones_like(true)
        else:
            power = 2 if weight_type == "square" else 1
            w = np.array([1 / v**power if v > 0 else 0.0 for v in true])
            w = np.where(true > 0, w, w.max())
        if class_weights is not None:
            w = w * np.asarray(class_weights, np.float64)[keep]
        den = np.sum(w * (2 * t + p_ + n))
        if den == 0:
            value = zero_division if np.sum(t + p_) == 0 else 0.0
        else:
            value = 2 * np.sum(w * t) / den
        if ignore_empty and true.sum() == 0:
            value = np.nan
        out.append(value)
    return np.array(out)


def class_selection(options, num_classes=5):
    """The classes kept by ``classes`` and ``include_background``, and the ``class_weights``."""
    keep = list(options.get("classes", range(num_classes)))
    if options.get("include_background") is False:
        keep = [c for c in keep if c != 0]
    return keep, options.get("class_weights")
