"""NumPy references of the losses beyond overlap: MCC (MONAI's MCCLoss formula), V-Net's squared
Dice, boundary (Kervadec et al.'s signed maps), Hausdorff-DT (MONAI's distance fields) and clDice
(Shit et al.'s soft skeleton), with ``scipy.ndimage`` for the distance maps and the min/max filters,
so none shares code with the library (which uses its own exact transform and
``lax.reduce_window``).
"""

import numpy as np
from scipy import ndimage

from tests.references import region as ref


def ref_mcc(x, y, *, activation="softmax", mask=None, ignore_index=None, smooth_nr=0.0,
            smooth_dr=1e-5, include_background=True, aggregate="sample"):  # fmt: skip
    """MONAI MCCLoss's formula per sample and class, MONAI's perfect rule, the class mean."""
    p, g, w, dense = ref.canonical(
        x, y, activation=activation, ignore_index=ignore_index, mask=mask
    )
    w = w[..., None]
    if dense:
        tp = np.sum(w * np.minimum(p, g), 1)
    else:
        tp = np.sum(w * p * g, 1)
    fp = np.sum(w * p, 1) - tp
    fn = np.sum(w * g, 1) - tp
    tn = np.sum(w, 1) - tp - fp - fn
    if aggregate == "batch":
        tp, fp, fn, tn = (a.sum(0, keepdims=True) for a in (tp, fp, fn, tn))
    fp, fn, tn = (np.maximum(a, 0.0) for a in (fp, fn, tn))
    mcc = (tp * tn - fp * fn + smooth_nr) / np.sqrt(
        (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn) + smooth_dr
    )
    loss = np.where((fp == 0) & (fn == 0), 0.0, 1.0 - mcc)
    if not include_background:
        loss = loss[:, 1:]
    return loss.mean(-1)


def ref_signed_map(fg, sampling=None):
    """Kervadec's ``one_hot2dist`` (and MONAI BoundaryLoss's map) of one boolean image."""
    if not fg.any() or fg.all():
        return np.zeros(fg.shape)
    inside = ndimage.distance_transform_edt(fg, sampling=sampling)
    outside = ndimage.distance_transform_edt(~fg, sampling=sampling)
    return np.where(fg, 1.0 - inside, outside)


def ref_field(fg, sampling=None):
    """MONAI HausdorffDTLoss.distance_field of one boolean image."""
    if not fg.any() or fg.all():
        return np.zeros(fg.shape)
    return ndimage.distance_transform_edt(fg, sampling=sampling) + ndimage.distance_transform_edt(
        ~fg, sampling=sampling
    )


def _images(x, y, activation, mask, ignore_index):
    """Probabilities and targets ``[B, *spatial, C]``, weights ``[B, *spatial]`` (float64)."""
    p, g, w, _ = ref.canonical(x, y, activation=activation, ignore_index=ignore_index, mask=mask)
    shape = np.shape(x)[:-1]
    return p.reshape(*shape, -1), g.reshape(*shape, -1), w.reshape(shape)


def ref_boundary(x, y, *, activation="softmax", mask=None, ignore_index=None, spacing=None,
                 include_background=True):  # fmt: skip
    p, g, w = _images(x, y, activation, mask, ignore_index)
    keep = w != 0
    out = []
    for b in range(p.shape[0]):
        classes = range(0 if include_background or p.shape[-1] == 1 else 1, p.shape[-1])
        per_class = []
        for c in classes:
            phi = ref_signed_map((g[b, ..., c] > 0.5) & keep[b], spacing)
            per_class.append(np.sum(w[b] * p[b, ..., c] * phi) / max(np.sum(w[b]), 1e-300))
        out.append(np.mean(per_class) if np.sum(w[b]) > 0 else 0.0)
    return np.array(out)


def ref_hausdorff(x, y, *, activation="softmax", mask=None, ignore_index=None, alpha=2.0,
                  log=False, include_background=False, spacing=None):  # fmt: skip
    p, g, w = _images(x, y, activation, mask, ignore_index)
    keep = w != 0
    out = []
    for b in range(p.shape[0]):
        classes = range(0 if include_background or p.shape[-1] == 1 else 1, p.shape[-1])
        per_class = []
        for c in classes:
            d_p = ref_field((p[b, ..., c] > 0.5) & keep[b], spacing)
            d_g = ref_field((g[b, ..., c] > 0.5) & keep[b], spacing)
            error = (p[b, ..., c] - g[b, ..., c]) ** 2 * (d_p**alpha + d_g**alpha)
            per_class.append(np.sum(w[b] * error) / max(np.sum(w[b]), 1e-300))
        value = np.mean(per_class) if np.sum(w[b]) > 0 else 0.0
        out.append(np.log1p(value) if log else value)
    return np.array(out)


def ref_soft_skeleton(img, iterations):
    """Shit et al.'s soft skeleton of one ``[*spatial]`` image (scipy filters; borders padded
    with the identity of the operation, as PyTorch's pools)."""
    dims = img.ndim

    def erode(a):
        crosses = [
            ndimage.minimum_filter(
                a, size=tuple(3 if i == axis else 1 for i in range(dims)), mode="constant",
                cval=np.inf,
            )
            for axis in range(dims)
        ]  # fmt: skip
        return np.minimum.reduce(crosses)

    def dilate(a):
        return ndimage.maximum_filter(a, size=3, mode="constant", cval=-np.inf)

    def relu(a):
        return np.maximum(a, 0.0)

    skel = relu(img - dilate(erode(img)))
    for _ in range(iterations):
        img = erode(img)
        delta = relu(img - dilate(erode(img)))
        skel = skel + relu(delta - skel * delta)
    return skel


def ref_cldice(x, y, *, activation="softmax", mask=None, ignore_index=None, iterations=3,
               smooth=1.0, include_background=True):  # fmt: skip
    """MONAI 1.6 SoftclDiceLoss: per-sample sums over the kept classes and the pixels."""
    p, g, w = _images(x, y, activation, mask, ignore_index)
    keep = (w != 0)[..., None]
    p, g = p * keep, g * keep
    start = 0 if include_background or p.shape[-1] == 1 else 1
    out = []
    for b in range(p.shape[0]):
        sp = np.stack([ref_soft_skeleton(p[b, ..., c], iterations) for c in range(p.shape[-1])], -1)
        sg = np.stack([ref_soft_skeleton(g[b, ..., c], iterations) for c in range(p.shape[-1])], -1)
        wb = w[b][..., None]
        sl = (Ellipsis, slice(start, None))
        tprec = (np.sum((wb * sp * g[b])[sl]) + smooth) / (np.sum((wb * sp)[sl]) + smooth)
        tsens = (np.sum((wb * sg * p[b])[sl]) + smooth) / (np.sum((wb * sg)[sl]) + smooth)
        value = 1.0 - 2.0 * tprec * tsens / (tprec + tsens)
        out.append(value if np.sum(w[b]) > 0 else 0.0)
    return np.array(out)


def ref_squared_dice(x, y, *, mask=None, smooth=1.0):
    """MONAI DiceLoss(squared_pred=True): (2 Σpg + s) / (Σp² + Σg² + s), class mean."""
    p, g, w, _ = ref.canonical(x, y, mask=mask)
    w = w[..., None]
    score = (2 * np.sum(w * p * g, 1) + smooth) / (
        np.sum(w * p * p, 1) + np.sum(w * g * g, 1) + smooth
    )
    return (1 - score).mean(-1)
