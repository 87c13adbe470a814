"""NumPy port of the Lovász-Softmax and Lovász hinge losses of Berman et al. 2018, Algorithm 1.

Ignored and masked pixels are removed by boolean indexing, exactly as the paper's released code
does (dynamic shapes, float64, no JAX); it shares no code with the package.
"""

import numpy as np


def np_lovasz_grad(gt_sorted: np.ndarray) -> np.ndarray:
    """Algorithm 1: increments of 1 - I/U along the sorted foreground (differencing, float64)."""
    gt_sorted = gt_sorted.astype(np.float64)
    gts = gt_sorted.sum()
    intersection = gts - np.cumsum(gt_sorted)
    union = gts + np.cumsum(1.0 - gt_sorted)
    jaccard = 1.0 - intersection / union
    jaccard[1:] = jaccard[1:] - jaccard[:-1]
    return jaccard


def np_lovasz_softmax_flat(probs, foreground, classes):
    """``probs`` and 0/1 ``foreground`` ``[P, C]`` of the kept pixels only; one loss."""
    if probs.shape[0] == 0:
        return 0.0
    num_classes = probs.shape[1]
    class_list = range(num_classes) if classes in ("present", "all") else classes
    losses = []
    for c in class_list:
        fg = foreground[:, c].astype(np.float64)
        if classes == "present" and fg.sum() == 0:
            continue
        errors = np.abs(fg - probs[:, c])
        order = np.argsort(-errors, kind="stable")
        losses.append(errors[order] @ np_lovasz_grad(fg[order]))
    return float(np.mean(losses)) if losses else 0.0


def np_lovasz_hinge_flat(logits, foreground):
    """``logits`` and 0/1 ``foreground`` ``[P, C]`` of the kept pixels; mean over channels."""
    if logits.shape[0] == 0:
        return 0.0
    losses = []
    for c in range(logits.shape[1]):
        fg = foreground[:, c].astype(np.float64)
        errors = 1.0 - logits[:, c] * (2.0 * fg - 1.0)
        order = np.argsort(-errors, kind="stable")
        losses.append(np.maximum(errors[order], 0.0) @ np_lovasz_grad(fg[order]))
    return float(np.mean(losses))


def np_rows(x, foreground, keep, aggregate):
    """Splits ``[B, *spatial, C]`` arrays into the kept pixels of each sample (or the batch)."""
    batch, num_classes = x.shape[0], x.shape[-1]
    x = x.reshape(batch, -1, num_classes)
    foreground = foreground.reshape(batch, -1, num_classes)
    keep = keep.reshape(batch, -1)
    if aggregate == "batch":
        return [(x[keep], foreground[keep])]
    return [(x[b][keep[b]], foreground[b][keep[b]]) for b in range(batch)]


def ref_softmax_loss(probs, foreground, keep, *, classes, aggregate, reduction="mean"):
    rows = np_rows(probs, foreground, keep, aggregate)
    losses = np.array([np_lovasz_softmax_flat(p, f, classes) for p, f in rows])
    return reduce_rows(losses, [len(p) > 0 for p, _ in rows], reduction)


def ref_hinge_loss(logits, foreground, keep, *, aggregate, reduction="mean"):
    rows = np_rows(logits.astype(np.float64), foreground, keep, aggregate)
    losses = np.array([np_lovasz_hinge_flat(x, f) for x, f in rows])
    return reduce_rows(losses, [len(x) > 0 for x, _ in rows], reduction)


def reduce_rows(losses, nonempty, reduction):
    """The library's reduction policy: a row without kept pixels is left out of the mean, as
    if sliced away (Berman's reference averages its 0 in)."""
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    kept = losses[np.asarray(nonempty, bool)]
    return kept.mean() if kept.size else 0.0
