"""Top-k and Poly-1 cross-entropy, focal class weights, region class options, deep supervision.

Every value is compared under ``jax.jit`` with a float64 NumPy reference written from the
docstring formulas (or the peer's formula: optax's ``poly_loss_cross_entropy`` runs here; MONAI's
``FocalLoss`` and ``DeepSupervisionLoss``, nnU-Net's ``TopKLoss`` and smp's ``DiceLoss`` are
re-derived from their source). Shapes are tiny and each test compiles a handful of programs.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxseg_losses as jsl
from jaxseg_losses.deep_supervision import deep_supervision_weights
from jaxseg_losses.geometry.resize import nearest_exact_indices

B, H, W, C = 2, 4, 5, 3
P = functools.partial


def data(seed=0, channels=C):
    rng = np.random.default_rng(seed)
    logits = (2.0 * rng.standard_normal((B, H, W, channels))).astype(np.float32)
    labels = rng.integers(0, max(channels, 2), (B, H, W)).astype(np.int32)
    mask = (rng.uniform(size=(B, H, W)) > 0.3).astype(np.float32)
    return logits, labels, mask


def np_log_softmax(x):
    x = np.asarray(x, np.float64)
    shifted = x - x.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def np_ce(logits, labels, weights=None, smoothing=0.0):
    """Per-pixel PyTorch CE ``[B, H, W]`` (weighted, smoothed) and the label's class weight."""
    log_p = np_log_softmax(logits)
    onehot = np.eye(logits.shape[-1])[labels]
    w = np.ones(logits.shape[-1]) if weights is None else np.asarray(weights, np.float64)
    target = (1 - smoothing) * onehot + smoothing / logits.shape[-1]
    return -(w * target * log_p).sum(-1), w[labels]


def assert_close(actual, expected, rtol=2e-5, atol=2e-6):
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=rtol, atol=atol)


def finite(tree):
    return all(bool(np.isfinite(np.asarray(leaf)).all()) for leaf in jax.tree.leaves(tree))


# ----------------------------------------------------------------------------------------------
# Poly-1.


@jax.jit
def _poly_values(x, y, onehot, m):
    grad = jax.grad(lambda x: jsl.poly_cross_entropy_loss(x, y, epsilon=2.0, mask=m))(x)
    return {
        "none": jsl.poly_cross_entropy_loss(x, y, epsilon=2.0, reduction="none"),
        "optax": optax.losses.poly_loss_cross_entropy(x, onehot, epsilon=2.0),
        "dense": jsl.poly_cross_entropy_loss(x, onehot, epsilon=2.0, reduction="none"),
        "masked": jsl.poly_cross_entropy_loss(x, y, epsilon=2.0, mask=m),
        "smoothed": jsl.poly_cross_entropy_loss(
            x, y, epsilon=-1.0, label_smoothing=0.1, class_weights=jnp.array([0.5, 1.0, 2.0])
        ),
        "ce": jsl.poly_cross_entropy_loss(x, y, epsilon=0.0, ignore_index=2),
        "ce_ref": jsl.cross_entropy_loss(x, y, ignore_index=2),
        "sigmoid": jsl.poly_cross_entropy_loss(
            x[..., :1], y % 2, activation="sigmoid", epsilon=1.5, label_smoothing=0.2
        ),
        "grad": grad,
    }


def test_poly_matches_optax_and_the_formula():
    x, y, m = data(0)
    onehot = np.eye(C, dtype=np.float32)[y]
    out = _poly_values(x, y, onehot, m)
    optax_per_sample = np.asarray(out["optax"]).reshape(B, -1).mean(1)
    assert_close(out["none"], optax_per_sample)
    assert_close(out["dense"], optax_per_sample)
    p = np.exp(np_log_softmax(x))
    ce, _ = np_ce(x, y)
    per_pixel = ce + 2.0 * (1 - np.take_along_axis(p, y[..., None], -1)[..., 0])
    assert_close(out["masked"], (m * per_pixel).sum() / m.sum())
    # Smoothed, weighted: sum_c w_c g~_c (-log p_c + eps (1 - p_c)) / sum w_y.
    w = np.array([0.5, 1.0, 2.0])
    target = 0.9 * np.eye(C)[y] + 0.1 / C
    loss = (w * target * (-np_log_softmax(x) - 1.0 * (1 - p))).sum(-1)
    assert_close(out["smoothed"], loss.sum() / w[y].sum())
    assert_close(out["ce"], out["ce_ref"])
    # Sigmoid: BCE(g~) + eps (1 - p_t), g~ = 0.8 g + 0.1.
    z = x[..., 0].astype(np.float64)
    g = 0.8 * (y % 2) + 0.1
    q = 1 / (1 + np.exp(-z))
    bce = -(g * np.log(q) + (1 - g) * np.log(1 - q))
    assert_close(out["sigmoid"], (bce + 1.5 * (1 - (g * q + (1 - g) * (1 - q)))).mean())
    assert finite(out["grad"])
    assert not np.any(np.asarray(out["grad"])[m == 0])


# ----------------------------------------------------------------------------------------------
# Top-k.


def np_topk(loss, valid, k):
    """Mean of the largest max(1, floor(n k / 100)) valid entries of each row of ``[N, P]``."""
    out = []
    for row, keep in zip(loss, valid, strict=True):
        values = np.sort(row[keep])[::-1]
        n = max(1, int(np.floor(len(values) * k / 100))) if len(values) else 0
        out.append(values[:n].mean() if n else 0.0)
    return np.array(out)


@jax.jit
def _topk_values(x, y, m):
    w = jnp.array([0.5, 1.0, 2.0])
    batch = P(jsl.topk_cross_entropy_loss, k=25.0, aggregate="batch")
    return {
        "none": jsl.topk_cross_entropy_loss(x, y, k=10.0, mask=m, reduction="none"),
        "mean": jsl.topk_cross_entropy_loss(x, y, k=10.0, mask=m),
        "ignore": jsl.topk_cross_entropy_loss(x, y, k=30.0, ignore_index=1, reduction="none"),
        "weighted": jsl.topk_cross_entropy_loss(
            x, y, k=50.0, class_weights=w, label_smoothing=0.1, reduction="none"
        ),
        "batch": batch(x, y),
        "all": jsl.topk_cross_entropy_loss(x, y, k=100.0, reduction="none"),
        "ce": jsl.cross_entropy_loss(x, y, reduction="none"),
        "empty": jsl.topk_cross_entropy_loss(x, y, mask=jnp.zeros_like(m)),
        "grad": jax.grad(lambda x: jsl.topk_cross_entropy_loss(x, y, k=10.0, mask=m))(x),
        "empty_grad": jax.grad(lambda x: batch(x, y, mask=jnp.zeros_like(m)))(x),
        "per_sample": jax.vmap(P(jsl.per_sample.topk_cross_entropy_loss, k=10.0))(x, y, mask=m),
    }


def test_topk_matches_the_reference_with_mask_ignore_and_weights():
    x, y, m = data(1)
    out = _topk_values(x, y, m)
    ce, _ = np_ce(x, y)
    flat, valid = ce.reshape(B, -1), (m > 0).reshape(B, -1)
    per_sample = np_topk(flat, valid, 10.0)
    assert_close(out["none"], per_sample)
    assert_close(out["per_sample"], per_sample)
    assert_close(out["mean"], per_sample.mean())
    assert_close(out["ignore"], np_topk(flat, (y != 1).reshape(B, -1), 30.0))
    wce, _ = np_ce(x, y, [0.5, 1.0, 2.0], 0.1)
    assert_close(out["weighted"], np_topk(wce.reshape(B, -1), np.ones_like(valid), 50.0))
    # nnU-Net's TopKLoss(k=25): torch.topk of int(N k / 100) of all the batch's voxels, mean.
    everything = np.sort(ce.ravel())[::-1]
    assert_close(out["batch"], everything[: int(everything.size * 25 / 100)].mean())
    assert_close(out["all"], out["ce"])
    assert float(out["empty"]) == 0.0 and not np.any(np.asarray(out["empty_grad"]))
    grad = np.asarray(out["grad"])
    assert finite(grad) and not np.any(grad[m == 0])
    # Only the selected pixels (1 or 2 per sample) receive gradient.
    assert 2 <= np.count_nonzero(np.abs(grad).sum(-1)) <= 4


def test_topk_over_the_batch_is_refused_where_it_cannot_be_split():
    x, y, _ = data(2)
    batch = P(jsl.topk_cross_entropy_loss, aggregate="batch")
    with pytest.raises(ValueError, match="cannot be pooled over the mapped axis"):
        jsl.topk_cross_entropy_loss(x, y, aggregate="batch", axis_name="data")
    with pytest.raises(ValueError, match="aggregate='sample' to accumulate"):
        jsl.accumulate.value_and_grad(
            lambda p, v: v + p, jnp.zeros(()), x, y, loss=batch, num_microbatches=2
        )
    with pytest.raises(TypeError, match=r"`k` must be a Python number.*got str"):
        jsl.topk_cross_entropy_loss(x, y, k="10")
    with pytest.raises(ValueError, match=r"`k` must be a percentage in \(0, 100\]; got 0"):
        jsl.topk_cross_entropy_loss(x, y, k=0)
    with pytest.raises(ValueError, match=r"`epsilon` must be finite and lie in \[-1"):
        jsl.poly_cross_entropy_loss(x, y, epsilon=-2.0)


# ----------------------------------------------------------------------------------------------
# Focal: class weights and include_background.


@jax.jit
def _focal_values(x, y, xb, yb):
    w = jnp.array([0.5, 1.0, 2.0])
    onehot = jax.nn.one_hot(y, C)
    return {
        "softmax": jsl.focal_loss(x, y, gamma=2.0, class_weights=w, include_background=False),
        "dense": jsl.focal_loss(x, onehot, gamma=2.0, class_weights=w, include_background=False),
        "sigmoid": jsl.focal_loss(
            xb, yb, activation="sigmoid", gamma=2.0, alpha=0.25, class_weights=w
        ),
        "sigmoid_fg": jsl.focal_loss(
            xb, yb, activation="sigmoid", gamma=2.0, class_weights=w, include_background=False
        ),
        "plain": jsl.focal_loss(x, y, gamma=2.0),
    }


def test_focal_class_weights_and_background_match_monai():
    x, y, _ = data(3)
    rng = np.random.default_rng(3)
    yb = (rng.uniform(size=(B, H, W, C)) > 0.5).astype(np.float32)
    out = _focal_values(x, y, x, yb)
    w = np.array([0.5, 1.0, 2.0])
    log_p = np_log_softmax(x)
    onehot = np.eye(C)[y]
    # MONAI softmax_focal_loss per element [B, C, H, W], times weight, .mean() over B*C*H*W.
    monai = -((1 - np.exp(log_p)) ** 2) * log_p * onehot * w
    assert_close(out["plain"] / C * 1.0, (-((1 - np.exp(log_p)) ** 2) * log_p * onehot).mean())
    # include_background=False here keeps the softmax over all classes, drops class 0's terms.
    assert_close(out["softmax"], monai[..., 1:].sum(-1).mean())
    assert_close(out["dense"], out["softmax"])
    # MONAI sigmoid_focal_loss, alpha, weight, mean over B*C*H*W: identical.
    z = x.astype(np.float64)
    bce = z - z * yb - (-np.logaddexp(0, -z))
    inv = -np.logaddexp(0, z * (yb * 2 - 1))
    element = np.exp(inv * 2.0) * bce
    assert_close(out["sigmoid"], (w * (yb * 0.25 + (1 - yb) * 0.75) * element).mean())
    assert_close(out["sigmoid_fg"], (w * element)[..., 1:].mean())


# ----------------------------------------------------------------------------------------------
# Region losses: absent classes and a subset of classes.


@jax.jit
def _region_values(x, y, m):
    out = {}
    for absent in ("keep", "zero", "exclude"):
        out[absent] = jsl.dice_loss(x, y, absent_classes=absent, mask=m, reduction="none")
        out[absent + "_sub"] = jsl.iou_loss(
            x, y, absent_classes=absent, classes=[1, 2], smooth=0.5, reduction="none"
        )
    out["exclude_mean"] = jsl.dice_loss(x, y, absent_classes="exclude", classes=(2,))
    out["batch_zero"] = jsl.dice_loss(x, y, absent_classes="zero", aggregate="batch")
    out["gdl_sub"] = jsl.generalized_dice_loss(x, y, classes=[0, 2], reduction="none")
    out["grad"] = jax.grad(lambda x: jsl.dice_loss(x, y, absent_classes="exclude", mask=m))(x)
    return out


def np_region(x, y, m, *, smooth, iou=False, axis=(1, 2)):
    p = np.exp(np_log_softmax(x)) * m[..., None]
    g = np.eye(C)[y] * m[..., None]
    tp, ps, ts = (p * g).sum(axis), p.sum(axis), g.sum(axis)
    if iou:
        return 1 - (tp + smooth) / (ps + ts - tp + smooth), ts
    return 1 - (2 * tp + smooth) / (ps + ts + smooth), ts


def test_region_absent_classes_and_class_subsets():
    x, _, m = data(4)
    y = np.zeros((B, H, W), np.int32)
    y[0, :2] = 1  # sample 0: classes 0 and 1; sample 1: class 0 only; class 2 absent everywhere
    out = _region_values(x, y, m)
    dice, ts = np_region(x, y, m, smooth=1.0)
    present = ts > 0
    assert_close(out["keep"], dice.mean(1))
    assert_close(out["zero"], (dice * present).mean(1))  # smp
    assert_close(out["exclude"], (dice * present).sum(1) / present.sum(1))
    iou, ts = np_region(x, y, np.ones_like(m), smooth=0.5, iou=True)
    present = ts[:, 1:] > 0
    sub = iou[:, 1:]
    assert_close(out["keep_sub"], sub.mean(1))
    assert_close(out["zero_sub"], (sub * present).mean(1))
    assert_close(out["exclude_sub"], [sub[0, 0], 0.0])  # sample 1 has none: 0, left out
    assert float(out["exclude_mean"]) == 0.0  # class 2 absent from every sample
    tv, ts = np_region(x, y, np.ones_like(m), smooth=1.0, axis=(0, 1, 2))
    assert_close(out["batch_zero"], (tv * (ts > 0)).mean())
    assert finite(out["grad"])
    with pytest.raises(ValueError, match=r"`absent_classes` must be one of"):
        jsl.dice_loss(x, y, absent_classes="skip")
    with pytest.raises(ValueError, match=r"`classes` holds class 3, out of range for 3"):
        jsl.dice_loss(x, y, classes=[3])
    with pytest.raises(ValueError, match=r"leaves no class"):
        jsl.dice_loss(x, y, classes=[0], include_background=False)


# ----------------------------------------------------------------------------------------------
# Deep supervision.


def test_deep_supervision_weights_and_nearest_exact():
    weights = deep_supervision_weights
    assert weights("exp", 6) == (1.0, 0.5, 0.25, 0.125, 0.0625, 0.0625)  # MONAI
    assert weights("two", 3) == (1.0, 0.5, 0.5)
    assert weights("same", 2) == (1.0, 1.0)
    assert np.allclose(weights("nnunet", 4), np.array([8, 4, 2, 0]) / 14)  # nnU-Net v2
    assert weights([1, 0.3], 2) == (1.0, 0.3)
    # torch.nn.functional.interpolate(mode="nearest-exact") source indices.
    index = nearest_exact_indices
    assert index(8, 4).tolist() == [1, 3, 5, 7]
    assert index(5, 2).tolist() == [1, 3]
    assert index(7, 3).tolist() == [1, 3, 5]
    assert index(3, 6).tolist() == [0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match=r"`weights` must be one of"):
        jsl.deep_supervision(jsl.dice_loss, weights="half")
    with pytest.raises(ValueError, match=r"`weights` has 2 entries but the loss got 3 outputs"):
        jsl.deep_supervision(jsl.dice_loss, weights=[1.0, 0.5])(
            [jnp.zeros((1, 2, 3))] * 3, [[0, 1]]
        )
    with pytest.raises(TypeError, match=r"`loss` must be a CombinedLoss"):
        jsl.deep_supervision(len)


def test_deep_supervision_values_accumulation_and_parts():
    rng = np.random.default_rng(5)
    y = rng.integers(0, C, (4, 8, 8)).astype(np.int32)
    y[:, ::3, ::2] = 255
    m = (rng.uniform(size=(4, 8, 8)) > 0.2).astype(np.float32)
    images = rng.standard_normal((4, 8, 8, 2)).astype(np.float32)
    params = jnp.asarray(rng.standard_normal((2, C)).astype(np.float32))
    inner = jsl.combine(
        {"ce": 1.0, "dice": (1.0, P(jsl.dice_loss, aggregate="batch"))}, ignore_index=255
    )
    loss_fn = jsl.deep_supervision(inner, weights="exp")

    def apply_fn(w, v):
        full = v @ w
        return [full, full[:, 1::2, 1::2] * 0.5, full[:, 1::4, 1::4] + 1.0]

    @jax.jit
    def run(w):
        (value, parts), grads = jax.value_and_grad(
            lambda w: loss_fn(apply_fn(w, images), y, mask=m), has_aux=True
        )(w)
        accumulated = jsl.accumulate.value_and_grad(
            apply_fn, w, images, y, loss=loss_fn, num_microbatches=2, mask=m
        )
        levels = apply_fn(w, images)
        manual = [
            inner(levels[0], y, mask=m)[0],
            inner(levels[1], y[:, 1::2, 1::2], mask=m[:, 1::2, 1::2])[0],
            inner(levels[2], y[:, 2::4, 2::4], mask=m[:, 2::4, 2::4])[0],
        ]
        return value, parts, grads, accumulated, manual

    value, parts, grads, ((acc_value, acc_parts), acc_grads), manual = run(params)
    assert_close(value, manual[0] + 0.5 * manual[1] + 0.25 * manual[2])
    assert_close(parts["level1"], manual[1])
    assert set(parts) == {f"level{i}{t}" for i in range(3) for t in ("", "/ce", "/dice")}
    assert_close(acc_value, value)
    assert_close(acc_parts["level2/dice"], parts["level2/dice"])
    assert_close(acc_grads, grads, rtol=1e-4, atol=1e-5)
    assert finite(grads)


# ----------------------------------------------------------------------------------------------
# The "bce" name.


def test_bce_is_the_sigmoid_cross_entropy_in_the_registry():
    x, y, m = data(6, channels=1)
    _, parts = jax.jit(lambda x, y, m: jsl.combine("bce+dice", activation="sigmoid")(x, y, mask=m))(
        x, y, m
    )
    direct = jsl.cross_entropy_loss(x, y, activation="sigmoid", mask=m)
    assert_close(parts["bce"], direct)
    assert jsl.get_loss("poly") is jsl.poly_cross_entropy_loss
    assert jsl.get_loss("topk") is jsl.topk_cross_entropy_loss


# ----------------------------------------------------------------------------------------------
# axis_name: every new loss and option, psummed over a mapped axis, equals the whole batch.


@jax.jit
def _mapped_and_whole(x, y, m):
    losses = {
        "poly": P(jsl.poly_cross_entropy_loss, label_smoothing=0.1),
        "topk": P(jsl.topk_cross_entropy_loss, k=30.0),
        "focal": P(jsl.focal_loss, class_weights=jnp.array([0.5, 1.0, 2.0])),
        "dice": P(jsl.dice_loss, absent_classes="exclude", classes=[1, 2], aggregate="batch"),
    }

    def call(x, y, m, axis_name):
        out = {k: fn(x, y, mask=m, ignore_index=2, axis_name=axis_name) for k, fn in losses.items()}
        ds = jsl.deep_supervision(jsl.combine("ce+dice", axis_name=axis_name), weights="two")
        out["ds"] = ds([x, x[:, 1::2, 1::2]], y, mask=m)[0]
        return out

    def split(a):
        return a.reshape(2, 1, *a.shape[1:])

    mapped = jax.vmap(P(call, axis_name="devices"), axis_name="devices")(
        split(x), split(y), split(m)
    )
    return mapped, call(x, y, m, None)


def test_every_new_loss_adds_over_a_mapped_axis():
    x, y, m = data(7)
    mapped, whole = _mapped_and_whole(x, y, m)
    for name, value in whole.items():
        assert_close(mapped[name][0], value)
        assert_close(mapped[name][1], value)
