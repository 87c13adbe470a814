r"""The implementations a benchmark run compares: jaxseg_losses, optax and plain jnp.

Every implementation is a function ``loss(logits, labels) -> scalar`` over the same data: logits
``[B, *spatial, C]`` (float32 or bfloat16) and int32 labels ``[B, *spatial]`` in which
:data:`IGNORE_INDEX` marks ignored pixels. All of them mean the same thing where the library has
the loss: the mean over valid pixels (CE, focal) or the per-sample, per-class mean (IoU, Dice),
with smoothing 1.

* ``jaxseg_losses``: the library's public functions with ``ignore_index=IGNORE_INDEX``: every
  loss of the table of built-in losses (``jaxseg_losses.registry.BUILTIN_LOSSES``) that names a
  benchmark row, with that row's options, plus ``combine("ce+dice")``, CE + Dice as two calls and
  Dice's squared denominator.
* ``optax``: ``softmax_cross_entropy_with_integer_labels`` (``sigmoid_binary_cross_entropy`` for
  one sigmoid channel), ``dice_loss`` on one-hot targets and ``sigmoid_focal_loss``. They cannot
  skip a label value, so ignored pixels get label 0 and a plain-jnp mask multiply removes them
  from the per-pixel losses and from the Dice targets. optax's ``dice_loss`` cannot drop pixels
  from its prediction sums (its ``apply_softmax=False`` path runs a Python value check that does
  not trace), so its Σp still counts the ignored pixels: the same work, a slightly different
  value. optax computes in the logits' dtype, bf16 included.
* ``plain_jnp``: the textbook one-hot formula written in jnp, computed in float32, with autodiff
  gradients: what a user would write without the library.
* ``floor``: the physical floor, the cheapest fwd+bwd that exponentiates every logit once:
  ``jax.nn.logsumexp(x, -1).sum()`` (``softplus(x).sum()`` for one sigmoid channel). Every loss
  is reported as a ratio to it.
"""

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxseg_losses.registry import BUILTIN_LOSSES

IGNORE_INDEX = 255

# Each family's optax function with the same meaning: the ratio column divides by it. IoU has no
# optax counterpart; the target compares it with optax's Dice, which does the same work.
# CE + Dice is compared with optax CE alone: the target is that the region term costs little.
OPTAX_REFERENCE = {
    "iou": "dice",
    "dice": "dice",
    "tversky": "dice",
    "ce": "ce",
    "focal": "focal",
    "ce+dice": "ce",
    "poly": "poly",
    "topk": "ce",
}

FAMILIES = (
    "floor",
    "iou",
    "dice",
    "tversky",
    "ce",
    "focal",
    "poly",
    "topk",
    "ce+dice",
    "lovasz",
    "dice_squared",
    "mcc",
    "boundary",
    "hausdorff",
    "cldice",
)
# Families measured at the reference case only (the suite's REFERENCE_CASE): the distance and
# skeleton losses have no optax or plain-jnp counterpart here, and their rows are ratios to the
# floor, which one shape shows.
REFERENCE_ONLY = ("dice_squared", "mcc", "boundary", "hausdorff", "cldice")
# Families without a plain-jnp version (it would need the library's own distance transform).
NO_PLAIN_JNP = ("boundary", "hausdorff", "cldice")

# The top-k share of the table's top-k row, which the plain version matches.
TOPK_PERCENT = next(e.benchmark_options["k"] for e in BUILTIN_LOSSES if e.benchmark == "topk")

LossFn = Callable[[jax.Array, jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class Impl:
    """One implementation of one loss family."""

    family: str
    source: str  # "jaxseg_losses", "optax", "plain_jnp" or "floor"
    name: str  # what is called, for the tables
    fn: LossFn


# ----------------------------------------------------------------------------------------------
# Shared pieces of the plain-jnp formulas.


def _valid(labels: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Safe labels (ignored -> 0) and float32 pixel weights."""
    valid = labels != IGNORE_INDEX
    return jnp.where(valid, labels, 0), valid.astype(jnp.float32)


def _pixel_mean(per_pixel: jax.Array, weights: jax.Array) -> jax.Array:
    total = jnp.sum(per_pixel.astype(jnp.float32) * weights)
    return total / jnp.maximum(jnp.sum(weights), 1.0)


def _one_hot_targets(labels: jax.Array, num_classes: int, dtype=jnp.float32) -> jax.Array:
    """``[B, *spatial, C]`` one-hot targets (``label == 1`` for one sigmoid channel)."""
    if num_classes == 1:
        return (labels == 1)[..., None].astype(dtype)
    return jax.nn.one_hot(labels, num_classes, dtype=dtype)


def _probs(logits: jax.Array, activation: str) -> jax.Array:
    x = logits.astype(jnp.float32)
    return jax.nn.softmax(x, axis=-1) if activation == "softmax" else jax.nn.sigmoid(x)


def _spatial_axes(x: jax.Array) -> tuple[int, ...]:
    return tuple(range(1, x.ndim - 1))


def floor(logits: jax.Array, labels: jax.Array, *, activation: str) -> jax.Array:
    """The cheapest fwd+bwd that exponentiates every logit: a row log-sum-exp (softplus, the
    log-sum-exp of ``[0, x]``, for one sigmoid channel), summed."""
    del labels
    x = logits.astype(jnp.float32)
    if activation == "softmax":
        return jnp.sum(jax.nn.logsumexp(x, axis=-1))
    return jnp.sum(jax.nn.softplus(x))


def plain_region(logits: jax.Array, labels: jax.Array, *, activation: str, kind: str) -> jax.Array:
    """Soft IoU, Dice or Tversky (α = 0.3, β = 0.7) loss per sample and class, smoothing 1, mean
    over classes and batch."""
    safe, w = _valid(labels)
    probs = _probs(logits, activation) * w[..., None]
    targets = _one_hot_targets(safe, logits.shape[-1]) * w[..., None]
    axes = _spatial_axes(probs)
    tp = jnp.sum(probs * targets, axis=axes)
    pred_sum = jnp.sum(probs, axis=axes)
    target_sum = jnp.sum(targets, axis=axes)
    if kind == "iou":
        score = (tp + 1.0) / (pred_sum + target_sum - tp + 1.0)
    elif kind == "tversky":
        score = (tp + 1.0) / (tp + 0.3 * (pred_sum - tp) + 0.7 * (target_sum - tp) + 1.0)
    else:
        score = (2.0 * tp + 1.0) / (pred_sum + target_sum + 1.0)
    return jnp.mean(1.0 - score)


def plain_squared_dice(logits: jax.Array, labels: jax.Array, *, activation: str) -> jax.Array:
    """V-Net's Dice, (2 Σpg + 1) / (Σp² + Σg² + 1), per sample and class (MONAI
    ``squared_pred=True``)."""
    safe, w = _valid(labels)
    probs = _probs(logits, activation) * w[..., None]
    targets = _one_hot_targets(safe, logits.shape[-1]) * w[..., None]
    axes = _spatial_axes(probs)
    numerator = 2.0 * jnp.sum(probs * targets, axis=axes) + 1.0
    denominator = jnp.sum(probs * probs, axis=axes) + jnp.sum(targets * targets, axis=axes) + 1.0
    return jnp.mean(1.0 - numerator / denominator)


def plain_mcc(logits: jax.Array, labels: jax.Array, *, activation: str) -> jax.Array:
    """1 - soft MCC per sample and class from the four one-hot sums (MONAI ``MCCLoss``)."""
    safe, w = _valid(labels)
    probs = _probs(logits, activation) * w[..., None]
    targets = _one_hot_targets(safe, logits.shape[-1]) * w[..., None]
    axes = _spatial_axes(probs)
    tp = jnp.sum(probs * targets, axis=axes)
    fp = jnp.sum(probs * (w[..., None] - targets), axis=axes)
    fn = jnp.sum((w[..., None] - probs) * targets, axis=axes)
    tn = jnp.sum((w[..., None] - probs) * (w[..., None] - targets), axis=axes)
    mcc = (tp * tn - fp * fn) / jnp.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn) + 1e-5)
    return jnp.mean(jnp.where((fp == 0) & (fn == 0), 0.0, 1.0 - mcc))


def plain_ce(logits: jax.Array, labels: jax.Array, *, activation: str) -> jax.Array:
    """Cross-entropy: ``-Σ_c g_c log p_c`` per pixel (binary form for one sigmoid channel)."""
    safe, w = _valid(labels)
    x = logits.astype(jnp.float32)
    if activation == "softmax":
        targets = _one_hot_targets(safe, x.shape[-1])
        per_pixel = -jnp.sum(targets * jax.nn.log_softmax(x, axis=-1), axis=-1)
    else:
        g = (safe == 1).astype(jnp.float32)
        z = x[..., 0]
        per_pixel = -(g * jax.nn.log_sigmoid(z) + (1.0 - g) * jax.nn.log_sigmoid(-z))
    return _pixel_mean(per_pixel, w)


def plain_focal(
    logits: jax.Array, labels: jax.Array, *, activation: str, gamma: float = 2.0
) -> jax.Array:
    """Focal loss ``-(1 - p_t)^γ log p_t`` per pixel, γ = 2, no α."""
    safe, w = _valid(labels)
    x = logits.astype(jnp.float32)
    if activation == "softmax":
        targets = _one_hot_targets(safe, x.shape[-1])
        log_pt = jnp.sum(targets * jax.nn.log_softmax(x, axis=-1), axis=-1)
    else:
        g = (safe == 1).astype(jnp.float32)
        z = x[..., 0]
        log_pt = g * jax.nn.log_sigmoid(z) + (1.0 - g) * jax.nn.log_sigmoid(-z)
    per_pixel = -((1.0 - jnp.exp(log_pt)) ** gamma) * log_pt
    return _pixel_mean(per_pixel, w)


def _plain_pixel_ce(x: jax.Array, safe: jax.Array, activation: str) -> tuple[jax.Array, jax.Array]:
    """Per-pixel CE and the label's probability (binary form for one sigmoid channel)."""
    if activation == "softmax":
        targets = _one_hot_targets(safe, x.shape[-1])
        log_pt = jnp.sum(targets * jax.nn.log_softmax(x, axis=-1), axis=-1)
        return -log_pt, jnp.exp(log_pt)
    g = (safe == 1).astype(jnp.float32)
    z = x[..., 0]
    ce = -(g * jax.nn.log_sigmoid(z) + (1.0 - g) * jax.nn.log_sigmoid(-z))
    p = jax.nn.sigmoid(z)
    return ce, g * p + (1.0 - g) * (1.0 - p)


def plain_poly(
    logits: jax.Array, labels: jax.Array, *, activation: str, epsilon: float = 1.0
) -> jax.Array:
    """Poly-1: ``CE + ε (1 - p_t)`` per pixel, mean over valid pixels."""
    safe, w = _valid(labels)
    ce, pt = _plain_pixel_ce(logits.astype(jnp.float32), safe, activation)
    return _pixel_mean(ce + epsilon * (1.0 - pt), w)


def plain_topk(
    logits: jax.Array, labels: jax.Array, *, activation: str, k: float = TOPK_PERCENT
) -> jax.Array:
    """Per-sample mean of the largest ``max(1, ⌊n k / 100⌋)`` valid pixel CEs (a full sort)."""
    safe, w = _valid(labels)
    ce, _ = _plain_pixel_ce(logits.astype(jnp.float32), safe, activation)
    batch = ce.shape[0]
    ce, valid = ce.reshape(batch, -1), w.reshape(batch, -1) > 0
    ordered = -jnp.sort(-jnp.where(valid, ce, -jnp.inf), axis=-1)
    count = jnp.sum(valid, axis=-1).astype(jnp.float32)
    kept = jnp.where(count > 0, jnp.maximum(jnp.floor(count * k / 100.0), 1.0), 0.0)
    rank = jnp.arange(ordered.shape[-1], dtype=jnp.float32)[None, :]
    total = jnp.sum(jnp.where(rank < kept[:, None], ordered, 0.0), axis=-1)
    per_sample = total / jnp.maximum(kept, 1.0)
    return jnp.sum(per_sample) / jnp.maximum(jnp.sum((count > 0).astype(jnp.float32)), 1.0)


def _lovasz_grad(gt_sorted: jax.Array) -> jax.Array:
    """Gradient of the Lovász extension of the Jaccard loss at sorted errors (Berman, Alg. 1)."""
    gts = jnp.sum(gt_sorted, axis=-1, keepdims=True)
    intersection = gts - jnp.cumsum(gt_sorted, axis=-1)
    union = gts + jnp.cumsum(1.0 - gt_sorted, axis=-1)
    jaccard = 1.0 - intersection / union
    return jnp.concatenate([jaccard[..., :1], jnp.diff(jaccard, axis=-1)], axis=-1)


def plain_lovasz(logits: jax.Array, labels: jax.Array, *, activation: str) -> jax.Array:
    """Lovász-Softmax per image over the classes present in its labels (Lovász hinge for one
    sigmoid channel), mean over images. Ignored pixels get zero error and no target.
    """
    safe, w = _valid(labels)
    batch, num_classes = logits.shape[0], logits.shape[-1]
    wf = w.reshape(batch, -1)
    if activation == "softmax":
        probs = _probs(logits, activation).reshape(batch, -1, num_classes)
        targets = _one_hot_targets(safe.reshape(batch, -1), num_classes) * wf[..., None]
        errors = jnp.swapaxes(jnp.abs(targets - probs) * wf[..., None], 1, 2)  # [B, C, P]
        targets = jnp.swapaxes(targets, 1, 2)
        order = jnp.argsort(-errors, axis=-1)  # descending errors per image and class
        errors_sorted = jnp.take_along_axis(errors, order, axis=-1)
        targets_sorted = jnp.take_along_axis(targets, order, axis=-1)
        per_class = jnp.sum(errors_sorted * _lovasz_grad(targets_sorted), axis=-1)  # [B, C]
        present = (jnp.sum(targets, axis=-1) > 0).astype(jnp.float32)
        per_image = jnp.sum(per_class * present, axis=-1) / jnp.maximum(
            jnp.sum(present, axis=-1), 1.0
        )
        return jnp.mean(per_image)
    z = logits.astype(jnp.float32).reshape(batch, -1)
    g = (safe == 1).astype(jnp.float32).reshape(batch, -1)
    errors = (1.0 - z * (2.0 * g - 1.0)) * wf
    order = jnp.argsort(-errors, axis=-1)
    errors_sorted = jnp.take_along_axis(errors, order, axis=-1)
    g_sorted = jnp.take_along_axis(g * wf, order, axis=-1)
    return jnp.mean(jnp.sum(jax.nn.relu(errors_sorted) * _lovasz_grad(g_sorted), axis=-1))


# ----------------------------------------------------------------------------------------------
# optax, with the ignored pixels removed by a mask multiply.


def optax_ce(logits: jax.Array, labels: jax.Array, *, activation: str) -> jax.Array:
    import optax

    safe, w = _valid(labels)
    if activation == "softmax":
        per_pixel = optax.losses.softmax_cross_entropy_with_integer_labels(logits, safe)
    else:
        g = (safe == 1).astype(logits.dtype)
        per_pixel = optax.losses.sigmoid_binary_cross_entropy(logits[..., 0], g)
    return _pixel_mean(per_pixel, w)


def optax_dice(logits: jax.Array, labels: jax.Array, *, activation: str) -> jax.Array:
    import optax

    del activation  # optax picks sigmoid for one channel and softmax otherwise
    safe, w = _valid(labels)
    targets = _one_hot_targets(safe, logits.shape[-1], logits.dtype) * w[..., None].astype(
        logits.dtype
    )
    return jnp.mean(optax.losses.dice_loss(logits, targets)).astype(jnp.float32)


def optax_focal(logits: jax.Array, labels: jax.Array, *, activation: str) -> jax.Array:
    import optax

    safe, w = _valid(labels)
    if activation == "softmax":
        # optax has only the sigmoid (per-class binary) focal loss: summed over classes, it does
        # the same per-pixel work as a softmax focal loss but is a different loss.
        targets = _one_hot_targets(safe, logits.shape[-1], logits.dtype)
        per_pixel = jnp.sum(optax.losses.sigmoid_focal_loss(logits, targets, gamma=2.0), axis=-1)
    else:
        g = (safe == 1).astype(logits.dtype)
        per_pixel = optax.losses.sigmoid_focal_loss(logits[..., 0], g, gamma=2.0)
    return _pixel_mean(per_pixel, w)


def optax_poly(logits: jax.Array, labels: jax.Array, *, activation: str) -> jax.Array:
    import optax

    safe, w = _valid(labels)
    if activation == "softmax":
        targets = _one_hot_targets(safe, logits.shape[-1], logits.dtype)
        per_pixel = optax.losses.poly_loss_cross_entropy(logits, targets, epsilon=1.0)
    else:
        # optax's PolyLoss is softmax-only: the binary problem as two logits [0, z].
        z = logits[..., 0]
        two = jnp.stack([jnp.zeros_like(z), z], axis=-1)
        per_pixel = optax.losses.poly_loss_cross_entropy(
            two, _one_hot_targets((safe == 1).astype(safe.dtype), 2, logits.dtype), epsilon=1.0
        )
    return _pixel_mean(per_pixel, w)


# ----------------------------------------------------------------------------------------------
# The registry.


def _table_rows(activation: str) -> list[Any]:
    """The built-in losses that have a benchmark row, for ``activation``: every row of
    ``jsl.registry.BUILTIN_LOSSES`` with a ``benchmark`` family that accepts it. Where a family
    has a loss made for this activation alone (the Lovász hinge for "sigmoid"), it takes the row."""
    rows = [e for e in BUILTIN_LOSSES if e.benchmark and activation in e.activations]
    dedicated = {e.benchmark for e in rows if e.activations == (activation,)}
    return [e for e in rows if e.benchmark not in dedicated or e.activations == (activation,)]


def _jsl_impls(activation: str) -> list[Impl]:
    """The library's losses: one row per benchmarked entry of the table of built-in losses,
    plus the ways of combining CE and Dice and Dice's squared denominator."""
    import jaxseg_losses as jsl

    common = {"activation": activation, "ignore_index": IGNORE_INDEX}
    impls: list[Impl] = []

    def add(family: str, name: str, fn: LossFn) -> None:
        impls.append(Impl(family, "jaxseg_losses", name, fn))

    def add_loss(family: str, loss: Any, name: str, **options: Any) -> None:
        """``loss(logits, labels, **common, **options)`` (a fixed activation is not passed)."""
        accepts = inspect.signature(loss).parameters
        kwargs = {k: v for k, v in {**common, **options}.items() if k in accepts}
        add(family, name, lambda x, y: loss(x, y, **kwargs))

    for entry in _table_rows(activation):
        add_loss(entry.benchmark, entry.fn, f"jsl.{entry.name}", **entry.benchmark_options)
    combined = jsl.combine("ce+dice", **common)
    add("ce+dice", 'jsl.combine("ce+dice")', lambda x, y: combined(x, y)[0])
    ce, dice = jsl.cross_entropy_loss, jsl.dice_loss
    add(
        "ce+dice",
        "jsl.cross_entropy_loss + jsl.dice_loss",
        lambda x, y: ce(x, y, **common) + dice(x, y, **common),
    )
    add_loss("dice_squared", dice, "jsl.dice_loss(squared_pred=True)", squared_pred=True)
    return impls


def implementations(activation: str, families: tuple[str, ...] = FAMILIES) -> list[Impl]:
    """Every implementation of the given families for ``activation`` ("softmax" or "sigmoid")."""
    act = {"activation": activation}
    impls = [Impl("floor", "floor", "floor: logsumexp fwd+bwd", lambda x, y: floor(x, y, **act))]
    impls += _jsl_impls(activation)
    impls += [
        Impl("iou", "plain_jnp", "one-hot IoU", lambda x, y: plain_region(x, y, kind="iou", **act)),
        Impl(
            "tversky",
            "plain_jnp",
            "one-hot Tversky",
            lambda x, y: plain_region(x, y, kind="tversky", **act),
        ),
        Impl("dice", "optax", "optax.dice_loss (one-hot)", lambda x, y: optax_dice(x, y, **act)),
        Impl(
            "dice", "plain_jnp", "one-hot Dice", lambda x, y: plain_region(x, y, kind="dice", **act)
        ),
        Impl(
            "ce",
            "optax",
            "optax CE (integer labels)"
            if activation == "softmax"
            else "optax.sigmoid_binary_cross_entropy",
            lambda x, y: optax_ce(x, y, **act),
        ),
        Impl("ce", "plain_jnp", "one-hot CE", lambda x, y: plain_ce(x, y, **act)),
        Impl("focal", "optax", "optax.sigmoid_focal_loss", lambda x, y: optax_focal(x, y, **act)),
        Impl("focal", "plain_jnp", "one-hot focal", lambda x, y: plain_focal(x, y, **act)),
        Impl(
            "poly",
            "optax",
            "optax.poly_loss_cross_entropy (one-hot)",
            lambda x, y: optax_poly(x, y, **act),
        ),
        Impl("poly", "plain_jnp", "one-hot Poly-1", lambda x, y: plain_poly(x, y, **act)),
        Impl("topk", "plain_jnp", "one-hot CE, full sort", lambda x, y: plain_topk(x, y, **act)),
        Impl(
            "ce+dice",
            "optax",
            "optax CE + optax.dice_loss",
            lambda x, y: optax_ce(x, y, **act) + optax_dice(x, y, **act),
        ),
        Impl(
            "ce+dice",
            "plain_jnp",
            "one-hot CE + Dice",
            lambda x, y: plain_ce(x, y, **act) + plain_region(x, y, kind="dice", **act),
        ),
        Impl(
            "lovasz", "plain_jnp", "Lovász (sort, one-hot)", lambda x, y: plain_lovasz(x, y, **act)
        ),
        Impl(
            "dice_squared",
            "plain_jnp",
            "one-hot Dice, Σp² + Σg²",
            lambda x, y: plain_squared_dice(x, y, **act),
        ),
        Impl("mcc", "plain_jnp", "one-hot MCC", lambda x, y: plain_mcc(x, y, **act)),
    ]
    return [impl for impl in impls if impl.family in families]
