r"""NumPy reference implementations of the region losses, written from the docstring equations.

Everything here runs in float64 NumPy and shares no code with the package, so a test that compares
``jaxseg_losses`` against these functions checks the maths, not a copy of it. The equations are the
ones the docstrings state:

* statistics (``jsl.overlap_stats``), with pixel weights :math:`w` (mask times
  ``labels != ignore_index``):

  - integer labels (hard targets): :math:`TP = \sum w p g`, :math:`FP = \sum w p (1-g)`,
    :math:`FN = \sum w (1-p) g`;
  - dense float targets: :math:`TP = \tfrac12 \sum w (p + g - |p - g|)` (the L1 form),
    :math:`FP = \sum w p - TP`, :math:`FN = \sum w g - TP`;

* ratios: IoU :math:`(TP+s)/(TP+FP+FN+s)`, Dice :math:`(2TP+s)/(2TP+FP+FN+s)`, Tversky
  :math:`(TP+s)/(TP+\alpha FP+\beta FN+s)`, with 0/0 read as a perfect 1;
* class loss :math:`(1-r)^\gamma` or :math:`(-\ln r)^\gamma`, times ``class_weights``, class 0
  dropped when ``include_background=False``, mean over classes, then ``reduction`` over rows;
* generalized Dice (Sudre et al. 2017): :math:`1 - (2\sum_c w_c TP_c + s) / (\sum_c w_c (P_c + T_c)
  + s)` with :math:`w_c = 1/T_c^2` ("square"), :math:`1/T_c` ("simple") or 1 ("uniform"); a class
  absent from the target gets the largest weight of the present classes of the same row, 0 when
  none is present (MONAI's rule); ``class_weights`` multiply :math:`w_c`.

Other references (pixel-wise and spatial losses, metrics) reuse :func:`canonical` and
:func:`reduce_rows`.
"""

from typing import Any

import numpy as np

from tests.helpers import sigmoid, softmax

REGION_LOSSES = ("iou", "dice", "tversky", "generalized_dice")


def canonical(
    logits: Any,
    labels: Any,
    *,
    activation: str | None = "softmax",
    class_axis: int = -1,
    ignore_index: int | None = None,
    mask: Any = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Probabilities ``[B, P, C]``, targets ``[B, P, C]``, weights ``[B, P]`` and whether dense.

    Integer labels become one-hot rows (a label outside ``[0, C)`` gives an all-zero row); with a
    single channel the target is ``label == 1``.
    """
    x = np.moveaxis(np.asarray(logits, dtype=np.float64), class_axis, -1)
    batch, num_classes = x.shape[0], x.shape[-1]
    x = x.reshape(batch, -1, num_classes)
    if activation == "softmax":
        probs = softmax(x)
    elif activation == "sigmoid":
        probs = sigmoid(x)
    else:
        probs = x
    y = np.asarray(labels)
    weights = np.ones(x.shape[:2])
    if y.dtype.kind == "f" or y.dtype.name == "bfloat16":
        dense = True
        targets = np.moveaxis(y.astype(np.float64), class_axis, -1).reshape(x.shape)
    else:
        dense = False
        y = y.astype(np.int64).reshape(batch, -1)
        if ignore_index is not None:
            weights = weights * (y != ignore_index)
        if num_classes == 1:
            targets = (y == 1).astype(np.float64)[..., None]
        else:
            targets = (y[..., None] == np.arange(num_classes)).astype(np.float64)
    if mask is not None:
        weights = weights * np.asarray(mask, dtype=np.float64).reshape(batch, -1)
    return probs, targets, weights, dense


def stats(
    logits: Any,
    labels: Any,
    *,
    activation: str | None = "softmax",
    class_axis: int = -1,
    ignore_index: int | None = None,
    mask: Any = None,
    aggregate: str = "sample",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(TP, FP, FN)``, each ``[B, C]`` (``[1, C]`` with ``aggregate="batch"``), float64."""
    p, g, w, dense = canonical(
        logits,
        labels,
        activation=activation,
        class_axis=class_axis,
        ignore_index=ignore_index,
        mask=mask,
    )
    w = w[..., None]
    if dense:
        tp = 0.5 * np.sum(w * (p + g - np.abs(p - g)), axis=1)
        fp = np.sum(w * p, axis=1) - tp
        fn = np.sum(w * g, axis=1) - tp
    else:
        tp = np.sum(w * p * g, axis=1)
        fp = np.sum(w * p * (1.0 - g), axis=1)
        fn = np.sum(w * (1.0 - p) * g, axis=1)
    if aggregate == "batch":
        tp, fp, fn = (np.sum(a, axis=0, keepdims=True) for a in (tp, fp, fn))
    return tp, fp, fn


def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator``, read as 1 (perfect) where the denominator is 0."""
    numerator, denominator = np.broadcast_arrays(
        np.asarray(numerator, np.float64), np.asarray(denominator, np.float64)
    )
    out = np.ones(numerator.shape)
    positive = denominator > 0
    out[positive] = numerator[positive] / denominator[positive]
    return out


def iou_score(tp, fp, fn, *, smooth=1.0):
    return ratio(tp + smooth, tp + fp + fn + smooth)


def dice_score(tp, fp, fn, *, smooth=1.0):
    return ratio(2 * tp + smooth, 2 * tp + fp + fn + smooth)


def tversky_score(tp, fp, fn, *, alpha=0.5, beta=0.5, smooth=1.0):
    return ratio(tp + smooth, tp + alpha * fp + beta * fn + smooth)


# The library keeps -ln(r) finite at r = 0 (no overlap with smooth=0) by flooring the ratio at the
# square root of the smallest normal float32, where the curvature 1/r^2 is still finite:
# -ln(sqrt(tiny)) ~ 43.7.
LOG_FLOOR = float(np.sqrt(np.finfo(np.float32).tiny))


def score_to_loss(score: np.ndarray, *, log: bool = False, gamma: float = 1.0) -> np.ndarray:
    """``(1 - r) ** gamma`` or ``(-ln r) ** gamma``; a perfect class (loss 0) stays 0."""
    loss = -np.log(np.maximum(score, LOG_FLOOR)) if log else 1.0 - score
    loss = np.maximum(loss, 0.0)
    return np.where(loss > 0, loss ** float(gamma), 0.0)


def class_mean(
    per_class: np.ndarray, *, class_weights: Any = None, include_background: bool = True
) -> np.ndarray:
    """``[rows, C] -> [rows]``: weight each class's loss, drop class 0 if asked, then mean."""
    if class_weights is not None:
        per_class = per_class * np.asarray(class_weights, np.float64)[None, :]
    if not include_background:
        per_class = per_class[:, 1:]
    return np.mean(per_class, axis=-1)


def reduce_rows(rows: np.ndarray, reduction: str, valid: Any = None) -> np.ndarray:
    """``reduction`` of per-row losses; the mean leaves out the rows without a valid pixel
    (``valid`` False), as if sliced away, and is 0 when no row has one."""
    if reduction == "mean":
        if valid is not None:
            kept = np.asarray(rows)[np.asarray(valid, bool)]
            return np.mean(kept) if kept.size else np.float64(0.0)
        return np.mean(rows)
    if reduction == "sum":
        return np.sum(rows)
    return rows


def generalized_dice_rows(
    tp: np.ndarray,
    fp: np.ndarray,
    fn: np.ndarray,
    *,
    weight_type: str = "square",
    smooth: float = 1.0,
    log: bool = False,
    class_weights: Any = None,
    include_background: bool = True,
) -> np.ndarray:
    """Generalized Dice loss of each row of ``[rows, C]`` statistics, MONAI's absent-class rule."""
    pred = tp + fp
    target = tp + fn
    factors = np.ones(tp.shape[-1]) if class_weights is None else np.asarray(class_weights, float)
    if not include_background:
        tp, pred, target, factors = tp[:, 1:], pred[:, 1:], target[:, 1:], factors[1:]
    out = np.empty(tp.shape[0])
    for row in range(tp.shape[0]):
        t = target[row]
        if weight_type == "uniform":
            w = np.ones_like(t)
        else:
            present = t > 0
            w = np.zeros_like(t)
            power = 2.0 if weight_type == "square" else 1.0
            w[present] = 1.0 / t[present] ** power
            w[~present] = w[present].max() if present.any() else 0.0
        w = w * factors
        score = ratio(
            2 * np.sum(w * tp[row]) + smooth, np.sum(w * (pred[row] + target[row])) + smooth
        )
        out[row] = score_to_loss(score, log=log)
    return out


def region_loss(
    kind: str,
    logits: Any,
    labels: Any,
    *,
    activation: str | None = "softmax",
    class_axis: int = -1,
    smooth: float = 1.0,
    log: bool = False,
    class_weights: Any = None,
    include_background: bool = True,
    ignore_index: int | None = None,
    mask: Any = None,
    aggregate: str = "sample",
    reduction: str = "mean",
    alpha: float = 0.5,
    beta: float = 0.5,
    gamma: float = 1.0,
    weight_type: str = "square",
) -> np.ndarray:
    """The reference of ``jsl.<kind>_loss`` with the same keywords (``axis_name`` aside)."""
    _, _, weights, _ = canonical(
        logits,
        labels,
        activation=activation,
        class_axis=class_axis,
        ignore_index=ignore_index,
        mask=mask,
    )
    valid = weights.sum(1) > 0 if aggregate == "sample" else np.array([weights.sum() > 0])
    tp, fp, fn = stats(
        logits,
        labels,
        activation=activation,
        class_axis=class_axis,
        ignore_index=ignore_index,
        mask=mask,
        aggregate=aggregate,
    )
    if kind == "generalized_dice":
        rows = generalized_dice_rows(
            tp,
            fp,
            fn,
            weight_type=weight_type,
            smooth=smooth,
            log=log,
            class_weights=class_weights,
            include_background=include_background,
        )
        return reduce_rows(rows, reduction, valid)
    if kind == "iou":
        score = iou_score(tp, fp, fn, smooth=smooth)
    elif kind == "dice":
        score = dice_score(tp, fp, fn, smooth=smooth)
    elif kind == "tversky":
        score = tversky_score(tp, fp, fn, alpha=alpha, beta=beta, smooth=smooth)
    else:
        raise ValueError(kind)
    per_class = score_to_loss(score, log=log, gamma=gamma if kind == "tversky" else 1.0)
    rows = class_mean(per_class, class_weights=class_weights, include_background=include_background)
    return reduce_rows(rows, reduction, valid)
