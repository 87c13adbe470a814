r"""Exact gradient accumulation: batch-level losses over micro-batches.

A batch Dice is a ratio of sums over the whole batch. Averaging the losses (or gradients) of K
micro-batches gives neither its value nor its gradient: the mean of ratios is not the ratio of
sums, and a micro-batch that holds little foreground weighs as much as one that holds a lot.
Every loss of this library is described by additive sums and a finishing step
(:class:`~jaxseg_losses.LossDefinition`), so it can be computed exactly one micro-batch of
activations at a time:

.. math::

   L = F\Bigl(\sum_{k=1}^{K} s_k\Bigr), \qquad
   \frac{\partial L}{\partial \theta} = \sum_{k=1}^{K}
   \Bigl(\frac{\partial F}{\partial S}\Big|_{S = \sum_j s_j}\Bigr)^{\!\top}
   \frac{\partial s_k}{\partial \theta},

where :math:`s_k` are the sums of micro-batch :math:`k` (:meth:`CombinedLoss.sums
<jaxseg_losses.CombinedLoss.sums>`: overlap statistics for batch-pooled terms, and for the
others the sums of per-sample losses and of their weights) and :math:`F` the finishing step
(:meth:`~jaxseg_losses.CombinedLoss.finalize`). :func:`value_and_grad` runs two passes: the
first sums :math:`s_k` forward only; the second back-propagates each micro-batch through its sums
with the cotangent :math:`\partial F / \partial S` taken at the full-batch sums (the loss
linearised at the full-batch statistics). Memory holds one micro-batch of activations at a time;
the cost is one extra forward pass per micro-batch.

Every term of :func:`jaxseg_losses.combine` decomposes, a user's own loss made with
:func:`jaxseg_losses.define_loss` included, except three, refused with a ``ValueError``: a term
whose sums are not sums over pixels with ``aggregate="batch"`` (the Lovász losses sort all the
batch's pixels at once), ``reduction="none"`` (a value per sample, not a batch loss), and a plain
callable term (its value is opaque).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxseg_losses._core import engine
from jaxseg_losses.combine import CombinedLoss, combine
from jaxseg_losses.deep_supervision import DeepSupervisionLoss

__all__ = ["value_and_grad"]

ArrayLike = jax.typing.ArrayLike
Sums = Any  # a pytree of arrays that add elementwise
Parts = dict[str, jax.Array]


def _as_combined(loss: Any) -> CombinedLoss | DeepSupervisionLoss:
    """A :class:`~jaxseg_losses.CombinedLoss`, or one made of a single loss function."""
    if isinstance(loss, CombinedLoss | DeepSupervisionLoss):
        return loss
    if callable(loss) and engine.is_described(loss):
        base, _ = engine.unwrap(loss)
        return combine({base.__name__: loss})
    raise TypeError(
        "`loss` must be a CombinedLoss from jsl.combine(...), or a loss made by "
        f"jsl.define_loss (such as jsl.dice_loss, or a partial of one); got "
        f"{type(loss).__name__}."
    )


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
    loss: Any,
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
      loss: a :class:`~jaxseg_losses.CombinedLoss` from :func:`jaxseg_losses.combine`, or one
        loss function (a library loss, a ``functools.partial`` of one, or a loss made by
        :func:`jaxseg_losses.define_loss`).
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
      >>> loss = jsl.combine({"ce": 1.0, "dice": (1.0, batch_dice)})
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
    loss = _as_combined(loss)
    loss.check_decomposable()
    if axis_name is None:
        axis_name = loss.axis_name
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
