r"""NumPy references of the pixel-wise losses (cross-entropy, focal, Poly-1, top-k), float64,
written from the docstring equations; they share no code with the package.

A per-pixel loss :math:`l_i` with normaliser :math:`v_i` and pixel weights :math:`m_i` reduces as

* ``"none"``: :math:`\sum_b m l / \sum_b m v` per sample (0 for a sample without valid pixels),
* ``"sum"``: the sum of those,
* ``"mean"``: :math:`\sum m l / \sum m v` over the whole batch.
"""

import numpy as np

from tests.helpers import log_softmax

TINY32 = float(np.finfo(np.float32).tiny)


def np_log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def np_canonical(logits, labels, *, activation, class_axis, ignore_index, mask):
    """[B, P, C] float64 logits, [B, P, C] targets (one-hot for ints), [B, P] pixel weights."""
    x = np.moveaxis(np.asarray(logits, np.float64), class_axis, -1)
    batch, num_classes = x.shape[0], x.shape[-1]
    x = x.reshape(batch, -1, num_classes)
    labels = np.asarray(labels)
    weights = np.ones(x.shape[:2])
    if mask is not None:
        weights = np.asarray(mask, np.float64).reshape(batch, -1)
    if np.issubdtype(labels.dtype, np.floating):
        g = np.moveaxis(labels.astype(np.float64), class_axis, -1).reshape(x.shape)
    else:
        flat = labels.reshape(batch, -1)
        if ignore_index is not None:
            weights = weights * (flat != ignore_index)
            flat = np.where(flat == ignore_index, 0, flat)
        if num_classes == 1:
            g = (flat == 1)[..., None].astype(np.float64)
        else:
            g = np.eye(num_classes)[flat]
    return x, g, weights


def np_reduce(loss, norm, weights, reduction):
    num, den = weights * loss, weights * norm
    n, d = num.sum(1), den.sum(1)
    per_sample = np.where(d > 0, n / np.where(d > 0, d, 1), 0.0)
    if reduction == "none":
        return per_sample
    if reduction == "sum":
        return per_sample.sum()
    return num.sum() / den.sum() if den.sum() > 0 else 0.0


def binary_form(activation, num_classes):
    return activation == "sigmoid" or (activation is None and num_classes == 1)


def np_cross_entropy(
    logits,
    labels,
    *,
    activation="softmax",
    class_axis=-1,
    class_weights=None,
    pos_weight=None,
    label_smoothing=0.0,
    ignore_index=None,
    mask=None,
    reduction="mean",
):
    x, g, weights = np_canonical(
        logits,
        labels,
        activation=activation,
        class_axis=class_axis,
        ignore_index=ignore_index,
        mask=mask,
    )
    num_classes = x.shape[-1]
    w = np.ones(num_classes) if class_weights is None else np.asarray(class_weights, np.float64)
    eps = label_smoothing
    if binary_form(activation, num_classes):
        if activation == "sigmoid":
            log_p, log_q = np_log_sigmoid(x), np_log_sigmoid(-x)
        else:
            log_p, log_q = np.log(x), np.log(1 - x)
        rho = 1.0 if pos_weight is None else np.asarray(pos_weight, np.float64)
        gs = g * (1 - eps) + eps / 2
        per_channel = w * (-(rho * gs * log_p) - (1 - gs) * log_q)
        return np_reduce(per_channel.mean(-1), np.ones(x.shape[:2]), weights, reduction)
    log_p = log_softmax(x) if activation == "softmax" else np.log(x)
    gs = (1 - eps) * g + eps / num_classes
    loss = -(w * gs * log_p).sum(-1)
    norm = (w * g).sum(-1) if class_weights is not None else np.ones(x.shape[:2])
    return np_reduce(loss, norm, weights, reduction)


def np_focal(
    logits,
    labels,
    *,
    gamma=2.0,
    alpha=None,
    activation="softmax",
    class_axis=-1,
    ignore_index=None,
    mask=None,
    reduction="mean",
):
    x, g, weights = np_canonical(
        logits,
        labels,
        activation=activation,
        class_axis=class_axis,
        ignore_index=ignore_index,
        mask=mask,
    )
    num_classes = x.shape[-1]
    if binary_form(activation, num_classes):
        p = 1 / (1 + np.exp(-x)) if activation == "sigmoid" else x
        p_t = p * g + (1 - p) * (1 - g)
        ce = -(g * np.log(p) + (1 - g) * np.log(1 - p))
        a = 1.0 if alpha is None else np.asarray(alpha, np.float64)
        a_t = 1.0 if alpha is None else a * g + (1 - a) * (1 - g)
        loss = (a_t * (1 - p_t) ** gamma * ce).mean(-1)
        return np_reduce(loss, np.ones(x.shape[:2]), weights, reduction)
    p = np.exp(log_softmax(x)) if activation == "softmax" else x
    if alpha is None:
        a = np.ones(num_classes)
    elif np.ndim(alpha) == 0:
        a = np.array([1 - alpha] + [alpha] * (num_classes - 1))
    else:
        a = np.asarray(alpha, np.float64)
    loss = -(a * g * (1 - p) ** gamma * np.log(p)).sum(-1)
    return np_reduce(loss, np.ones(x.shape[:2]), weights, reduction)


def pixel_cross_entropy(logits, labels, weights=None, smoothing=0.0):
    """Per-pixel PyTorch CE ``[B, *spatial]``, ``-sum_c w_c g~_c log p_c`` with the smoothed
    targets ``g~ = (1 - eps) g + eps / C``, and the class weight of each pixel's label."""
    log_p = log_softmax(logits)
    onehot = np.eye(logits.shape[-1])[labels]
    w = np.ones(logits.shape[-1]) if weights is None else np.asarray(weights, np.float64)
    target = (1 - smoothing) * onehot + smoothing / logits.shape[-1]
    return -(w * target * log_p).sum(-1), w[labels]


def top_k_mean(loss, valid, k):
    """Mean of the largest max(1, floor(n k / 100)) valid entries of each row of ``[N, P]``."""
    out = []
    for row, keep in zip(loss, valid, strict=True):
        values = np.sort(row[keep])[::-1]
        n = max(1, int(np.floor(len(values) * k / 100))) if len(values) else 0
        out.append(values[:n].mean() if n else 0.0)
    return np.array(out)
