r"""Exact gradient accumulation: batch-level losses over micro-batches.

A batch Dice is a ratio of sums over the whole batch. Averaging the losses (or gradients) of K
micro-batches gives neither its value nor its gradient: the mean of ratios is not the ratio of
sums, and a micro-batch that holds little foreground weighs as much as one that holds a lot.
Every loss of this library whose batch value is a smooth function of *additive* sums can still
be computed exactly, one micro-batch of activations at a time:

.. math::

   L = F\Bigl(\sum_{k=1}^{K} s_k\Bigr), \qquad
   \frac{\partial L}{\partial \theta} = \sum_{k=1}^{K}
   \Bigl(\frac{\partial F}{\partial S}\Big|_{S = \sum_j s_j}\Bigr)^{\!\top}
   \frac{\partial s_k}{\partial \theta},

where :math:`s_k` are the sums of micro-batch :math:`k` (overlap statistics, sums of pixel losses
and of pixel weights, sums of per-sample losses and sample counts) and :math:`F` the final ratio.
:func:`value_and_grad` runs two passes: the first sums :math:`s_k` forward only; the second
back-propagates each micro-batch through its sums with the cotangent
:math:`\partial F / \partial S` taken at the full-batch sums (the loss linearised at the
full-batch statistics). Memory holds one micro-batch of activations at a time; the cost is one
extra forward pass per micro-batch.

Which losses decompose (:func:`additive_loss` accepts them):

* region losses (IoU, Dice, Tversky, generalized Dice) with ``aggregate="batch"``: the sums are
  the batch's :class:`~jaxseg_losses.OverlapStats`;
* every loss with ``aggregate="sample"`` and ``reduction="mean"``/``"sum"`` (region losses,
  Lovász-Softmax, Lovász hinge): a mean of per-sample losses is (sum, count);
* cross-entropy and focal loss: the weighted mean over valid pixels is (sum of pixel losses,
  sum of pixel weights), exact when micro-batches hold different numbers of valid pixels.

Not decomposable: the Lovász losses with ``aggregate="batch"`` (one sort over all the batch's
pixels) and ``reduction="none"`` (a value per sample, not a batch loss).
"""

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from jaxseg_losses import _checks, _reduce, compose, lovasz, pixelwise, region
from jaxseg_losses.stats import (
    OverlapStats,
    dice_from_stats,
    iou_from_stats,
    overlap_stats,
    tversky_from_stats,
)

__all__ = ["AdditiveLoss", "additive_loss", "value_and_grad"]

ArrayLike = jax.typing.ArrayLike
Sums = Any  # a pytree of arrays that add elementwise
Parts = dict[str, jax.Array]

_REGION_LOSSES = (
    region.iou_loss,
    region.dice_loss,
    region.tversky_loss,
    region.generalized_dice_loss,
)
_LOVASZ_LOSSES = (lovasz.lovasz_softmax_loss, lovasz.lovasz_hinge_loss)
_PIXEL_LOSSES = (pixelwise.cross_entropy_loss, pixelwise.focal_loss)
_ADDITIVE_REDUCTIONS = ("mean", "sum")


@dataclasses.dataclass(frozen=True)
class AdditiveLoss:
    """A loss that is a function of sums over the batch: ``loss = finalize(sums(batch))``.

    ``sums(logits, labels, *, mask=None)`` returns a pytree of arrays that add across
    micro-batches, hosts and devices (``jax.tree.map(jnp.add, a, b)``, ``jax.lax.psum``);
    ``finalize(total)`` returns ``(loss, parts)`` like :func:`jaxseg_losses.combine`. Calling
    the object on a whole batch is ``finalize(sums(...))``, equal to the combined loss. Build one
    with :func:`additive_loss`; :func:`value_and_grad` uses the split to accumulate micro-batches
    exactly.

    Attributes:
      sums: ``(logits, labels, *, mask=None) -> sums``, the additive statistics of a batch.
      finalize: ``sums -> (loss, parts)``, the loss of the batch whose statistics these are.
      names: the names of the terms, in order.
    """

    sums: Callable[..., Sums]
    finalize: Callable[[Sums], tuple[jax.Array, Parts]]
    names: tuple[str, ...]

    def __call__(
        self, logits: ArrayLike, labels: ArrayLike, *, mask: ArrayLike | None = None
    ) -> tuple[jax.Array, Parts]:
        return self.finalize(self.sums(logits, labels, mask=mask))


# ----------------------------------------------------------------------------------------------
# One term: (sums, finalize) for each decomposable family.


@dataclasses.dataclass(frozen=True)
class _Term:
    name: str
    weight: Any
    sums: Callable[..., Sums]
    finalize: Callable[[Sums], jax.Array]


def _region_score_fn(base: Callable[..., Any], options: dict[str, Any]) -> Callable[..., Any]:
    """The batch loss of a region term as a function of pooled ``[1, C]`` statistics.

    Mirrors the per-sample pipeline of :mod:`jaxseg_losses.region` (per-class loss, class
    weights, background, class mean; Sudre's weights for generalized Dice); the test suite
    checks that the two agree for every option.
    """
    smooth, log = options["smooth"], options["log"]
    class_weights = options["class_weights"]
    include_background = options["include_background"]
    if base is region.generalized_dice_loss:
        weight_type = options["weight_type"]
        _checks.check_choice("weight_type", weight_type, region.GENERALIZED_DICE_WEIGHTS)
        _checks.check_nonnegative("smooth", smooth)

        def generalized(stats: OverlapStats) -> jax.Array:
            return region.generalized_dice_from_stats(
                stats,
                weight_type=weight_type,
                smooth=smooth,
                log=log,
                class_weights=class_weights,
                include_background=include_background,
            )[0]

        return generalized

    def per_class(stats: OverlapStats) -> jax.Array:
        if base is region.iou_loss:
            return iou_from_stats(stats, smooth=smooth, log=log)
        if base is region.dice_loss:
            return dice_from_stats(stats, smooth=smooth, log=log)
        return tversky_from_stats(
            stats,
            alpha=options["alpha"],
            beta=options["beta"],
            gamma=options["gamma"],
            smooth=smooth,
            log=log,
        )

    def class_mean(stats: OverlapStats) -> jax.Array:
        return _reduce.class_mean(
            per_class(stats), class_weights=class_weights, include_background=include_background
        )[0]

    return class_mean


def _pixel_sums(
    base: Callable[..., Any], options: dict[str, Any], data: dict[str, Any]
) -> Callable[..., Sums]:
    """``(Σ m·ℓ, Σ m·v)``: the numerator and denominator of a pixel-wise weighted mean."""
    if base is pixelwise.cross_entropy_loss:
        pixelwise._check_ce_options(options["label_smoothing"])
    else:
        pixelwise._check_focal_options(options["gamma"], options["alpha"])

    def sums(logits: ArrayLike, labels: ArrayLike, *, mask: ArrayLike | None) -> Sums:
        inputs = pixelwise._canonical(logits, labels, mask=mask, **data)
        if base is pixelwise.cross_entropy_loss:
            loss, normaliser = pixelwise._cross_entropy_terms(
                inputs,
                class_weights=options["class_weights"],
                pos_weight=options["pos_weight"],
                label_smoothing=options["label_smoothing"],
            )
        else:
            loss, normaliser = pixelwise._focal_terms(
                inputs, gamma=options["gamma"], alpha=options["alpha"]
            )
        return jnp.sum(inputs.weights * loss), jnp.sum(inputs.weights * normaliser)

    return sums


def _mean_or_sum(reduction: str) -> Callable[[Sums], jax.Array]:
    def finalize(sums: Sums) -> jax.Array:
        total, count = sums
        if reduction == "sum":
            return total
        # 0 (with zero gradient) when nothing was counted, as the losses' own means.
        positive = count > 0
        return jnp.where(positive, total / jnp.where(positive, count, 1.0), 0.0)

    return finalize


def _make_term(
    name: str,
    weight: Any,
    fn: Callable[..., Any],
    data: dict[str, Any],
    reduction: str,
) -> _Term:
    base, bound = compose._unwrap(fn)
    options = compose._defaults(base) | bound
    if base in _PIXEL_LOSSES:
        return _Term(name, weight, _pixel_sums(base, options, data), _mean_or_sum(reduction))
    if base not in _REGION_LOSSES and base not in _LOVASZ_LOSSES:
        raise ValueError(
            f"Term {name!r} ({getattr(base, '__name__', base)!r}) has no additive decomposition "
            "known to additive_loss; decomposable terms are the region losses (iou, dice, "
            "tversky, gdl), cross-entropy, focal, and the Lovász losses with "
            "aggregate='sample'."
        )
    aggregate = options.get("aggregate", "sample")
    _checks.check_choice("aggregate", aggregate, _checks.AGGREGATES)
    call_data = dict(data)
    if base is lovasz.lovasz_hinge_loss:
        # The hinge reads logits; it has no activation option.
        call_data.pop("activation")
    if aggregate == "sample":
        # A mean of per-sample losses: (Σ_b loss_b, B). Each sample's loss needs only its own
        # pixels, so micro-batches of whole samples add exactly.
        def sample_sums(logits: ArrayLike, labels: ArrayLike, *, mask: ArrayLike | None) -> Sums:
            total = fn(logits, labels, mask=mask, reduction="sum", **call_data)
            return total, jnp.asarray(jnp.shape(logits)[0], total.dtype)

        return _Term(name, weight, sample_sums, _mean_or_sum(reduction))
    if base in _LOVASZ_LOSSES:
        raise ValueError(
            f"Term {name!r}: the Lovász loss with aggregate='batch' sorts the errors of all the "
            "batch's pixels at once, which is not a function of additive sums; use "
            "aggregate='sample' to accumulate micro-batches."
        )
    score = _region_score_fn(base, options)

    def batch_stats(logits: ArrayLike, labels: ArrayLike, *, mask: ArrayLike | None) -> Sums:
        return overlap_stats(logits, labels, mask=mask, aggregate="batch", **data)

    return _Term(name, weight, batch_stats, score)


def additive_loss(
    terms: str | Mapping[str, Any],
    *,
    activation: str | None = "softmax",
    class_axis: int = -1,
    ignore_index: int | None = None,
    reduction: str = "mean",
) -> AdditiveLoss:
    r"""Builds a combined loss split into additive batch sums and a final function of them.

    Same terms and data options as :func:`jaxseg_losses.combine`; the result computes the same
    ``(loss, parts)``, and also exposes the split that makes the loss exact over micro-batches,
    hosts or devices: with :math:`s_k` the sums of part :math:`k` of a batch,

    .. math::

       L = \sum_t \lambda_t F_t\Bigl(\sum_k s_{t,k}\Bigr)

    where :math:`F_t` is a ratio of pooled :math:`TP, FP, FN` for a batch-aggregated region
    term, :math:`\sum_i m_i \ell_i / \sum_i m_i v_i` for cross-entropy and focal, and
    :math:`\sum_b \ell_b / B` for a sample-aggregated term.

    Args:
      terms: ``{name: weight}`` for registered names, ``{name: fn}`` or ``{name: (weight, fn)}``
        with a library loss (options bound by ``functools.partial``, e.g.
        ``functools.partial(jsl.dice_loss, aggregate="batch")``), or a string ``"ce+dice"``.
        A term without a decomposition (Lovász with ``aggregate="batch"``, a loss this module
        does not know) raises ``ValueError``.
      activation: ``"softmax"``, ``"sigmoid"`` or ``None``, for every term.
      class_axis: the class axis of ``logits``, for every term.
      ignore_index: a label value whose pixels count nowhere, for every term.
      reduction: ``"mean"`` or ``"sum"`` (a per-sample ``"none"`` is not a batch loss).

    Returns:
      An :class:`AdditiveLoss`: ``loss.sums(logits, labels, mask=None)`` gives the additive
      statistics (a pytree of float32 arrays), ``loss.finalize(sums)`` gives ``(total, parts)``,
      and ``loss(logits, labels, mask=None)`` both at once.

    Examples:
      >>> import functools, jax, jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> loss = jsl.additive_loss(
      ...     {"dice": (1.0, functools.partial(jsl.dice_loss, aggregate="batch")), "ce": 1.0})
      >>> logits = jax.random.normal(jax.random.key(0), (4, 8, 8, 3))
      >>> labels = jax.random.randint(jax.random.key(1), (4, 8, 8), 0, 3)
      >>> halves = [jax.jit(loss.sums)(logits[i::2], labels[i::2]) for i in range(2)]
      >>> total, parts = jax.jit(loss.finalize)(jax.tree.map(jnp.add, *halves))
      >>> whole, _ = jax.jit(loss)(logits, labels)
      >>> print(f"{total:.4f} {whole:.4f}")
      2.1340 2.1340

    References:
      Isensee et al., "nnU-Net", Nature Methods 2021 (batch Dice).
    """
    _checks.check_choice("activation", activation, _checks.ACTIVATIONS)
    _checks.check_choice("reduction", reduction, _ADDITIVE_REDUCTIONS)
    data = {"activation": activation, "class_axis": class_axis, "ignore_index": ignore_index}
    built = [
        _make_term(name, weight, fn, data, reduction)
        for name, weight, fn, _ in compose._normalise_terms(terms)
    ]

    def sums(logits: ArrayLike, labels: ArrayLike, *, mask: ArrayLike | None = None) -> Sums:
        return {term.name: term.sums(logits, labels, mask=mask) for term in built}

    def finalize(total: Sums) -> tuple[jax.Array, Parts]:
        parts = {term.name: term.finalize(total[term.name]) for term in built}
        value = built[0].weight * parts[built[0].name]
        for term in built[1:]:
            value = value + term.weight * parts[term.name]
        return value, parts

    return AdditiveLoss(sums=sums, finalize=finalize, names=tuple(t.name for t in built))


# ----------------------------------------------------------------------------------------------
# Micro-batching.


def _microbatches(tree: Any, num_microbatches: int, batch: int) -> Any:
    """``[B, ...] -> [K, B/K, ...]`` with micro-batch ``k`` holding rows ``k, k + K, ...``.

    Strided rather than contiguous rows: when the batch axis is sharded over devices, every
    micro-batch keeps rows on every device, so each scan step stays data-parallel.
    """

    def split(x: jax.Array) -> jax.Array:
        x = jnp.asarray(x)
        rows = x.reshape((batch // num_microbatches, num_microbatches, *x.shape[1:]))
        return jnp.swapaxes(rows, 0, 1)

    return jax.tree.map(split, tree)


def _batch_size(name: str, tree: Any) -> int:
    leaves = jax.tree.leaves(tree)
    if not leaves:
        raise ValueError(f"`{name}` holds no arrays; expected arrays with a leading batch axis.")
    # -1 marks a scalar, which has no batch axis.
    sizes = {int(jnp.shape(leaf)[0]) if jnp.ndim(leaf) else -1 for leaf in leaves}
    if len(sizes) != 1 or -1 in sizes:
        shapes = [tuple(jnp.shape(leaf)) for leaf in leaves]
        raise ValueError(
            f"Every array in `{name}` needs the same leading batch axis; got {shapes}."
        )
    (size,) = sizes
    return size


def value_and_grad(
    apply_fn: Callable[[Any, Any], jax.Array],
    params: Any,
    inputs: Any,
    labels: ArrayLike,
    *,
    loss: AdditiveLoss,
    num_microbatches: int,
    mask: ArrayLike | None = None,
    axis_name: Any = None,
) -> tuple[tuple[jax.Array, Parts], Any]:
    r"""Computes the full-batch loss and its parameter gradient over micro-batches, exactly.

    Gradient accumulation that averages micro-batch losses is wrong for batch-level losses (a
    batch Dice is a ratio of sums). This helper is exact, while holding the activations of one
    micro-batch at a time: pass 1 sums each micro-batch's additive statistics forward only;
    pass 2 back-propagates each micro-batch through its statistics with the cotangent of the
    loss at the full-batch statistics, and adds the parameter gradients. Both passes are
    :func:`jax.lax.scan` loops, so the whole step jits; the cost is about one extra forward pass
    per micro-batch.

    .. math::

       S = \sum_k s_k(\theta), \qquad L = F(S), \qquad
       \nabla_\theta L = \sum_k J_{s_k}(\theta)^{\top}\, \nabla F(S)

    Micro-batch :math:`k` holds rows :math:`k, k + K, k + 2K, \dots` of the batch (every row
    once; the loss does not depend on the order), so a batch sharded over devices stays sharded
    in every micro-batch.

    With Flax NNX, split the model into its parameters and the rest, and merge inside
    ``apply_fn`` (the rest, e.g. BatchNorm running statistics, is read, not updated):

    .. code-block:: python

       graphdef, params, rest = nnx.split(model, nnx.Param, ...)

       @jax.jit
       def train_step(params, rest, opt_state, images, labels):
           apply_fn = lambda p, x: nnx.merge(graphdef, p, rest)(x)
           (value, parts), grads = jsl.accumulate.value_and_grad(
               apply_fn, params, images, labels, loss=loss, num_microbatches=4)
           updates, opt_state = tx.update(grads, opt_state, params)
           return optax.apply_updates(params, updates), opt_state, value

    or, keeping an ``nnx.Optimizer``: ``optimizer.update(model, grads)`` with
    ``params = nnx.state(model, nnx.Param)``.

    Args:
      apply_fn: ``(params, inputs_k) -> logits_k``, the model on one micro-batch; pure.
      params: the pytree to differentiate (floating-point leaves).
      inputs: an array or pytree of arrays ``[B, ...]``, the model's input batch.
      labels: ``[B, *spatial]`` integer labels or ``[B, *spatial, C]`` dense targets.
      loss: an :class:`AdditiveLoss` from :func:`additive_loss`.
      num_microbatches: :math:`K`, a static positive divisor of the batch size ``B``.
      mask: ``[B, *spatial]`` optional pixel weights.
      axis_name: inside ``shard_map``/``pmap``, the device axis over which the statistics and
        the gradients are summed, so every device returns the global loss and gradient.
        Not needed under ``jax.jit`` with sharded arrays.

    Returns:
      ``((loss, parts), grads)`` as from ``jax.value_and_grad(..., has_aux=True)``: the float32
      loss of the whole batch, its unweighted parts, and gradients shaped like ``params``.

    Examples:
      >>> import functools, jax, jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> batch_dice = functools.partial(jsl.dice_loss, aggregate="batch")
      >>> loss = jsl.additive_loss({"ce": 1.0, "dice": (1.0, batch_dice)})
      >>> def apply_fn(w, x):                  # a 1x1 convolution: [B, H, W, 2] -> 3 classes
      ...     return x @ w
      >>> w = jax.random.normal(jax.random.key(0), (2, 3))
      >>> images = jax.random.normal(jax.random.key(1), (8, 4, 4, 2))
      >>> labels = jax.random.randint(jax.random.key(2), (8, 4, 4), 0, 3)
      >>> step = jax.jit(functools.partial(
      ...     jsl.accumulate.value_and_grad, apply_fn, loss=loss, num_microbatches=4))
      >>> (value, parts), grads = step(w, images, labels)
      >>> (direct, _), direct_grads = jax.jit(jax.value_and_grad(
      ...     lambda w: loss(apply_fn(w, images), labels), has_aux=True))(w)
      >>> print(f"{value:.5f} {direct:.5f}", bool(jnp.allclose(grads, direct_grads, atol=1e-6)))
      2.29937 2.29937 True
      >>> naive = [jax.jit(loss)(apply_fn(w, images[k::4]), labels[k::4])[0] for k in range(4)]
      >>> print(f"{sum(naive) / 4:.5f}")   # averaging micro-batch losses: wrong
      2.28203

    References:
      Isensee et al., "nnU-Net", Nature Methods 2021 (batch Dice, and the all-gather it needs
      across devices).
    """
    if not isinstance(loss, AdditiveLoss):
        raise TypeError(
            "`loss` must be an AdditiveLoss from jsl.additive_loss(...), whose statistics add "
            f"across micro-batches; got {type(loss).__name__}."
        )
    if (
        isinstance(num_microbatches, bool)
        or not isinstance(num_microbatches, int)
        or num_microbatches < 1
    ):
        raise ValueError(
            f"`num_microbatches` must be a positive Python int; got {num_microbatches!r}."
        )
    batch = _batch_size("labels", labels)
    for name, tree in (("inputs", inputs), ("mask", mask)):
        if tree is not None and _batch_size(name, tree) != batch:
            raise ValueError(
                f"`{name}` has batch size {_batch_size(name, tree)} but `labels` has {batch}."
            )
    if batch % num_microbatches:
        raise ValueError(
            f"`num_microbatches`={num_microbatches} must divide the batch size {batch}; "
            f"divisors are {[k for k in range(1, batch + 1) if batch % k == 0]}."
        )
    micro = _microbatches((inputs, labels, mask), num_microbatches, batch)

    def micro_sums(p: Any, batch_k: tuple[Any, Any, Any]) -> Sums:
        inputs_k, labels_k, mask_k = batch_k
        return loss.sums(apply_fn(p, inputs_k), labels_k, mask=mask_k)

    # Under shard_map(check_vma=True) the statistics vary across devices like the data: the
    # running total is typed so from the start.
    varying = _vma((params, micro))

    # Pass 1: the full-batch statistics, forward only.
    first = jax.tree.map(lambda x: x[0], micro)
    zeros = jax.tree.map(
        lambda s: _pcast_varying(jnp.zeros(s.shape, s.dtype), varying),
        jax.eval_shape(micro_sums, params, first),
    )

    def add_sums(total: Sums, batch_k: Any) -> tuple[Sums, None]:
        return jax.tree.map(jnp.add, total, micro_sums(params, batch_k)), None

    total, _ = jax.lax.scan(add_sums, zeros, micro)
    if axis_name is not None:
        total = jax.lax.psum(total, axis_name)
    # The loss is a function of the total only: its gradient there is each micro-batch's
    # cotangent, whatever the micro-batch holds.
    (value, parts), cotangent = jax.value_and_grad(loss.finalize, has_aux=True)(total)

    # Pass 2: back-propagate every micro-batch through its own statistics.
    def add_grads(grads: Any, batch_k: Any) -> tuple[Any, None]:
        sums_k, pullback = jax.vjp(lambda p: micro_sums(p, batch_k), params)
        # The cotangent is the same on every device; it takes the type of the sums it meets.
        (grads_k,) = pullback(
            jax.tree.map(lambda c, s: _pcast_varying(c, _vma(s)), cotangent, sums_k)
        )
        return jax.tree.map(jnp.add, grads, grads_k), None

    grads, _ = jax.lax.scan(add_grads, jax.tree.map(jnp.zeros_like, params), micro)
    if axis_name is not None:
        grads = _sum_over_devices(grads, axis_name, labels)
    return (value, parts), grads


def _vma(tree: Any) -> frozenset:
    """The mapped axes any leaf of ``tree`` varies over (empty outside ``shard_map``)."""
    axes: set = set()
    for leaf in jax.tree.leaves(tree):
        aval = jax.typeof(leaf)
        # JAX 0.10 types it as `manual_axis_type.varying`; JAX 0.7-0.9 as `vma`.
        manual = getattr(aval, "manual_axis_type", None)
        axes |= manual.varying if manual is not None else getattr(aval, "vma", frozenset())
    return frozenset(axes)


def _pcast_varying(x: jax.Array, axes: frozenset) -> jax.Array:
    """``x`` typed as varying over ``axes`` (a no-op where it already is, or with no axes)."""
    missing = tuple(sorted(axes - _vma(x)))
    if not missing:
        return x
    if hasattr(jax.lax, "pcast"):
        return jax.lax.pcast(x, missing, to="varying")
    return jax.lax.pvary(x, missing)  # pyright: ignore[reportAttributeAccessIssue]  # older JAX


def _varies_over(x: Any, axis_name: Any) -> bool:
    """Whether ``x``'s type says it differs across ``axis_name`` (``shard_map(check_vma=True)``)."""
    names = axis_name if isinstance(axis_name, tuple) else (axis_name,)
    return any(name in _vma(x) for name in names)


def _sum_over_devices(grads: Any, axis_name: Any, labels: Any) -> Any:
    """The global gradient on every device, whichever way the mapped axis types its values.

    With ``shard_map(check_vma=True)`` (the default) replicated parameters are device-invariant,
    and JAX already summed their gradient over devices (the transpose of the implicit
    broadcast); summing again would multiply it by the device count. Varying parameters, and
    everything under ``pmap`` or ``check_vma=False`` (where nothing is typed as varying, the
    labels included), hold this device's contribution and are summed here.
    """
    tracked = _varies_over(jnp.asarray(labels), axis_name)

    def total(g: jax.Array) -> jax.Array:
        if tracked and not _varies_over(g, axis_name):
            return g
        return jax.lax.psum(g, axis_name)

    return jax.tree.map(total, grads)
