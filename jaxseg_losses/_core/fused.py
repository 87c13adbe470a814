r"""Fused kernels for the hot paths: softmax statistics of integer labels, analytic derivatives.

A loss runs on tensors as large as the model's output, and its cost is the number of passes it
makes over the ``[B, P, C]`` logits and the number of ``[B, P, C]`` arrays it writes. Written
naively, a softmax Dice + cross-entropy with autodiff builds several: one-hot targets, the
probabilities (kept for the backward pass), their products with the targets, and a scatter for
the gradient of every gather. The kernels here build none of them.

:func:`label_statistics` returns, from one call, everything the softmax losses need from the
logits of integer-labelled pixels:

.. math::

   \mathrm{lse}_i = \log \textstyle\sum_c e^{x_{ic}}, \quad x_{i y_i}, \quad
   TP_{bc} = \sum_{i: y_i = c} w_i\, p_{i y_i}, \quad
   \Sigma p_{bc} = \sum_i w_i\, p_{ic}, \quad
   \Sigma p^2_{bc} = \sum_i w_i\, p_{ic}^2, \quad
   \Sigma g_{bc} = \sum_{i: y_i = c} w_i,

with :math:`p = e^{x - \mathrm{lse}}`. Cross-entropy reads :math:`\mathrm{lse}_i - x_{iy_i}`,
the region losses read the sums (:math:`\Sigma p^2` is V-Net's squared Dice denominator), and a
combination of both reads one call: one row log-sum-exp, the column sums of probabilities
(and of their squares), ``[B, P]`` gathers and segment sums forward;
one row reduction and one elementwise loop backward, whichever outputs are used. (Unused
outputs cost nothing: XLA removes their forward computation, and JAX's transposition skips the
branches of the tangent whose cotangents are zero.)

* The kernel is a :func:`jax.custom_jvp` with an analytic tangent rule, wrapped in
  :func:`jax.checkpoint`: reverse mode keeps only the inputs and the ``[B, P]`` log-sum-exp and
  gathered logit as residuals, and the backward pass recomputes the probabilities inside the
  loops that write the gradient. A ``custom_jvp`` rather than a ``custom_vjp`` keeps forward mode
  (``jax.jvp``, ``jax.jacfwd``, Hessian-vector products) working.
* Pixel weights enter the column sum as a shift of the exponent,
  :math:`w_i p_{ic} = e^{x_{ic} - (\mathrm{lse}_i - \log w_i)}`, so the reduction reads the
  logits and one ``[B, P]`` vector, as an unweighted one does (a weight of 0 gives
  :math:`e^{-\infty} = 0`; a NaN weight, or a negative one, which the data contract excludes,
  gives NaN).

Pixels of weight 0 (masked or ignored) are inert whatever their logits, NaN and infinities
included, at no cost when they are finite: each kernel detects a non-finite logit on a pixel of
weight 0 from its own log-sum-exp (a ``[B, P]`` test), and only then recomputes on logits whose
excluded pixels are zeroed (:func:`jax.lax.cond`); the gradient is guarded the same way
(:func:`_clean_tangent`). A select on every ``[B, P, C]`` element would instead stop XLA:CPU from
fusing the reductions, at several times the cost.

How the label's entry of each pixel is picked depends on the backend (:func:`strategy`):
``"segments"`` gathers it and sums per class with segment sums of ``B·P`` values (XLA:CPU cannot
fuse a select into its reduction kernels and would write a ``[B, P, C]`` array for each), and
``"select"`` compares with an iota inside the reductions and the elementwise gradient (free on
GPU and TPU, where a segment sum is a scatter whose ``B·C`` targets are hit by atomics from
every pixel).

:func:`log_sum_exp` is the row log-sum-exp alone, with the same tangent, for dense targets.

Shapes: ``logits`` ``[B, P, C]`` in the compute dtype, ``labels`` ``[B, P]`` int32 in
``[0, C)`` (ignored and invalid pixels already replaced by a valid label and given weight 0 or
NaN), ``weights`` ``[B, P]`` in the compute dtype.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

# How the label's entry of each pixel is picked: "segments" or "select" (module docstring).
# None chooses by the default backend at trace time.
STRATEGY: str | None = None


def strategy() -> str:
    """``"segments"`` on CPU, ``"select"`` elsewhere, unless :data:`STRATEGY` fixes one."""
    if STRATEGY is not None:
        return STRATEGY
    return "segments" if jax.default_backend() == "cpu" else "select"


def _row_log_sum_exp(x: jax.Array) -> jax.Array:
    """``[..., C] -> [..., 1]``, shifted by the row maximum (finite logits give finite values)."""
    m = jnp.max(x, axis=-1, keepdims=True)
    return m + jnp.log(jnp.sum(jnp.exp(x - m), axis=-1, keepdims=True))


def _label_hits(labels: jax.Array, num_classes: int) -> jax.Array:
    """``[B, P, C]`` booleans ``labels == c``, from a comparison with an iota (fused, not stored,
    on backends that fuse selects)."""
    classes = jax.lax.broadcasted_iota(jnp.int32, (*labels.shape, num_classes), labels.ndim)
    return labels[..., None] == classes


def at_labels(x: jax.Array, labels: jax.Array) -> jax.Array:
    """``x[b, i, labels[b, i]]`` as ``[B, P, 1]``, by the strategy's means.

    A gather (whose transpose is a scatter of ``B·P`` values, applied in place to the rest of the
    gradient) or a select against an iota summed over classes (whose transpose is a select fused
    into the elementwise gradient).
    """
    if strategy() == "select":
        hits = _label_hits(labels, x.shape[-1])
        return jnp.sum(jnp.where(hits, x, jnp.zeros((), x.dtype)), axis=-1, keepdims=True)
    return jnp.take_along_axis(x, labels[..., None], axis=-1, mode="promise_in_bounds")


def _segment_ids(labels: jax.Array, num_classes: int) -> jax.Array:
    """Flat per-sample, per-class segments ``b * C + label`` of ``[B, P]`` labels."""
    rows = jax.lax.broadcasted_iota(jnp.int32, labels.shape, 0)
    return (rows * num_classes + labels).reshape(-1)


def class_sums(values: jax.Array, labels: jax.Array, num_classes: int) -> jax.Array:
    """``[B, C]`` sums of per-pixel ``values`` ``[B, P]`` grouped by label (a segment sum: reads
    ``B·P`` values; its transpose is a gather of the ``[B, C]`` cotangent by label)."""
    batch = labels.shape[0]
    ids = _segment_ids(labels, num_classes)
    sums = jax.ops.segment_sum(values.reshape(-1), ids, num_segments=batch * num_classes)
    return sums.reshape(batch, num_classes)


def _label_column_sums(
    per_class: Callable[[], jax.Array],
    per_pixel: Callable[[], jax.Array],
    labels: jax.Array,
    num_classes: int,
) -> jax.Array:
    """``Σ_{i: y_i = c} v_{i y_i}`` as ``[B, C]``, for a per-pixel quantity ``v``.

    ``per_pixel()`` gives ``v`` at each pixel's label, ``[B, P]``, and ``per_class()`` gives it for
    every class, ``[B, P, C]``: the segments strategy segment-sums the first, the select strategy
    sums the hits of the second (built inside the reduction, never stored).
    """
    if strategy() == "select":
        values = per_class()
        hits = _label_hits(labels, num_classes)
        return jnp.sum(jnp.where(hits, values, jnp.zeros((), values.dtype)), axis=1)
    return class_sums(per_pixel(), labels, num_classes)


# ----------------------------------------------------------------------------------------------
# Excluded pixels with non-finite logits.


def _excluded_non_finite(lse: jax.Array, weights: jax.Array) -> jax.Array:
    """Whether a pixel of weight 0 has a NaN or infinite log-sum-exp (a NaN or +inf logit, or
    all logits -inf): a scalar bool, from ``[B, P, 1]`` values."""
    return jnp.any((weights == 0)[..., None] & ~jnp.isfinite(lse))


def _zero_excluded(x: jax.Array, weights: jax.Array) -> jax.Array:
    """``x`` with the rows of pixels of weight 0 set to 0 (taken only when one is non-finite)."""
    return jnp.where((weights == 0)[..., None], jnp.zeros((), x.dtype), x)


def _clean_tangent(dx: jax.Array, weights: jax.Array, non_finite: jax.Array) -> jax.Array:
    """``dx`` with the rows of excluded pixels zeroed when one holds a non-finite logit.

    The kernels apply it to their input tangent, so in reverse mode it zeroes the gradient of
    those rows (which would otherwise be ``0 · NaN``); finite rows already get an exact 0.
    """
    return jax.lax.cond(non_finite, lambda d: _zero_excluded(d, weights), lambda d: d, dx)


# ----------------------------------------------------------------------------------------------
# Row log-sum-exp alone.


@jax.custom_jvp
def log_sum_exp(x: jax.Array) -> jax.Array:
    r"""Row log-sum-exp :math:`\log \sum_c e^{x_{ic}}` of ``[..., C]`` logits, as ``[..., 1]``.

    Its tangent :math:`\sum_c p_{ic} \dot x_{ic}` recomputes :math:`p` in the backward pass
    instead of keeping it.
    """
    return _row_log_sum_exp(x)


def _lse_tangent(x: jax.Array, lse: jax.Array, dx: jax.Array) -> jax.Array:
    return jnp.sum(jnp.exp(x - lse) * dx, axis=-1, keepdims=True)


@log_sum_exp.defjvp
def _log_sum_exp_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> tuple[Any, Any]:
    (x,), (dx,) = primals, tangents
    lse = _row_log_sum_exp(x)
    return lse, jax.checkpoint(_lse_tangent)(x, lse, dx)


# ----------------------------------------------------------------------------------------------
# Softmax statistics of integer labels.


class LabelStatistics(NamedTuple):
    """What the softmax losses read from the logits of integer-labelled pixels.

    Attributes:
      lse: ``[B, P, 1]`` row log-sum-exp.
      label_logit: ``[B, P, 1]`` the logit of each pixel's label.
      tp: ``[B, C]`` soft true positives :math:`\\sum_{i: y_i = c} w_i p_{i y_i}`.
      pred_sum: ``[B, C]`` :math:`\\sum_i w_i p_{ic}`.
      target_sum: ``[B, C]`` :math:`\\sum_{i: y_i = c} w_i`.
      pred_sq: ``[B, C]`` :math:`\\sum_i w_i p_{ic}^2` (V-Net's squared denominator).
    """

    lse: jax.Array
    label_logit: jax.Array
    tp: jax.Array | None
    pred_sum: jax.Array | None
    target_sum: jax.Array | None
    pred_sq: jax.Array | None = None


def label_statistics(
    logits: jax.Array, labels: jax.Array, weights: jax.Array, *, class_sums: bool = True
) -> LabelStatistics:
    r"""Softmax statistics of integer labels in one kernel (module docstring).

    Args:
      logits: ``[B, P, C]`` logits in the compute dtype, ``C >= 2``.
      labels: ``[B, P]`` int32 class indices in ``[0, C)``.
      weights: ``[B, P]`` pixel weights in the compute dtype (0 excludes a pixel).
      class_sums: whether the per-class sums are wanted. Without them (cross-entropy alone) the
        label's entry of the gradient is written by a select inside the elementwise loop of the
        softmax gradient, which on CPU is cheaper than the in-place scatter that the sums'
        gradient shares with it.

    Returns:
      :class:`LabelStatistics` (``tp``, ``pred_sum``, ``target_sum``, ``pred_sq`` are ``None``
      without ``class_sums``), differentiable in ``logits`` and ``weights`` in forward and
      reverse mode.
    """
    if not class_sums:
        return LabelStatistics(*_label_log_sum_exp(logits, labels, weights), None, None, None, None)
    return LabelStatistics(*_label_statistics(logits, labels, weights))


def _select_labels(x: jax.Array, labels: jax.Array) -> jax.Array:
    """``x[b, i, labels[b, i]]`` by a select summed over classes; its transpose is a select."""
    hits = _label_hits(labels, x.shape[-1])
    return jnp.sum(jnp.where(hits, x, jnp.zeros((), x.dtype)), axis=-1, keepdims=True)


@jax.custom_jvp
def _label_log_sum_exp(
    logits: jax.Array, labels: jax.Array, weights: jax.Array
) -> tuple[jax.Array, jax.Array]:
    return _lse_and_label_primal(logits, labels, weights)


def _lse_and_label_primal(
    x: jax.Array, labels: jax.Array, w: jax.Array
) -> tuple[jax.Array, jax.Array]:
    return _lse_and_label_flagged(x, labels, w)[0]


def _lse_and_label_flagged(
    x: jax.Array, labels: jax.Array, w: jax.Array
) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
    """The outputs, and whether an excluded pixel has a non-finite logit."""
    lse = _row_log_sum_exp(x)
    non_finite = _excluded_non_finite(lse, w)

    def recompute() -> tuple[jax.Array, jax.Array]:
        inert = _zero_excluded(x, w)
        return _row_log_sum_exp(inert), at_labels(inert, labels)

    return jax.lax.cond(non_finite, recompute, lambda: (lse, at_labels(x, labels))), non_finite


def _lse_and_label_tangent(
    x: jax.Array, labels: jax.Array, lse: jax.Array, dx: jax.Array
) -> tuple[jax.Array, jax.Array]:
    return jnp.sum(jnp.exp(x - lse) * dx, axis=-1, keepdims=True), _select_labels(dx, labels)


@_label_log_sum_exp.defjvp
def _label_log_sum_exp_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> tuple[Any, Any]:
    (x, labels, w), (dx, _, _) = primals, tangents
    out, non_finite = _lse_and_label_flagged(x, labels, w)

    def tangent(x: jax.Array, lse: jax.Array, dx: jax.Array) -> tuple[jax.Array, jax.Array]:
        return _lse_and_label_tangent(x, labels, lse, _clean_tangent(dx, w, non_finite))

    return out, jax.checkpoint(tangent)(x, out[0], dx)


@jax.custom_jvp
def _label_statistics(
    logits: jax.Array, labels: jax.Array, weights: jax.Array
) -> tuple[jax.Array, ...]:
    return _statistics_primal(logits, labels, weights)


def _statistics_primal(x: jax.Array, labels: jax.Array, w: jax.Array) -> tuple[jax.Array, ...]:
    return _statistics_flagged(x, labels, w)[0]


def _statistics_flagged(
    x: jax.Array, labels: jax.Array, w: jax.Array
) -> tuple[tuple[jax.Array, ...], jax.Array]:
    """The outputs, and whether an excluded pixel has a non-finite logit."""
    lse = _row_log_sum_exp(x)
    non_finite = _excluded_non_finite(lse, w)

    def recompute() -> tuple[jax.Array, ...]:
        inert = _zero_excluded(x, w)
        return _statistics_given_lse(inert, _row_log_sum_exp(inert), labels, w)

    fast = lambda: _statistics_given_lse(x, lse, labels, w)  # noqa: E731
    return jax.lax.cond(non_finite, recompute, fast), non_finite


def _statistics_given_lse(
    x: jax.Array, lse: jax.Array, labels: jax.Array, w: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]:
    num_classes = x.shape[-1]
    x_label = at_labels(x, labels)
    # w p = exp(x - (lse - log w)): the column sum reads the logits and one [B, P] shift.
    shift = lse - jnp.log(w)[..., None]
    weighted = jnp.exp(x - shift)
    pred_sum = jnp.sum(weighted, axis=1)
    # w p² = exp(2 (x - (lse - log(w) / 2))): again one [B, P] shift, no overflow (x <= lse).
    pred_sq = jnp.sum(jnp.exp(2.0 * (x - (lse - 0.5 * jnp.log(w)[..., None]))), axis=1)
    tp = _label_column_sums(
        lambda: weighted, lambda: jnp.exp(x_label - shift)[..., 0], labels, num_classes
    )
    target_sum = _label_column_sums(
        lambda: jnp.broadcast_to(w[..., None], x.shape), lambda: w, labels, num_classes
    )
    return lse, x_label, tp, pred_sum, target_sum, pred_sq


def _statistics_tangent(
    x: jax.Array,
    labels: jax.Array,
    w: jax.Array,
    lse: jax.Array,
    x_label: jax.Array,
    dx: jax.Array | None,
    dw: jax.Array | None,
) -> tuple[jax.Array, ...]:
    r"""The linear map ``(dx, dw) -> (dlse, dx_y, dTP, dΣp, dΣg, dΣp²)`` at ``x``.

    With :math:`p = e^{x - \mathrm{lse}}` and :math:`\dot{\mathrm{lse}}_i = \sum_c p_{ic}
    \dot x_{ic}`,

    .. math::

       \dot{\Sigma p}_c = \sum_i w_i p_{ic} (\dot x_{ic} - \dot{\mathrm{lse}}_i)
                          + \dot w_i p_{ic}, \quad
       \dot{TP}_c = \sum_{i: y_i = c} w_i p_{iy_i} (\dot x_{iy_i} - \dot{\mathrm{lse}}_i)
                    + \dot w_i p_{iy_i}, \quad
       \dot{\Sigma g}_c = \sum_{i: y_i = c} \dot w_i, \quad
       \dot{\Sigma p^2}_c = \sum_i 2 w_i p_{ic}^2 (\dot x_{ic} - \dot{\mathrm{lse}}_i)
                            + \dot w_i p_{ic}^2.

    Its transpose (reverse mode) is the analytic gradient: with :math:`q_{ic} = w_i
    (\overline{\Sigma p}_c + 2 p_{ic} \overline{\Sigma p^2}_c)`, :math:`\bar a_i =
    \overline{\mathrm{lse}}_i - \sum_c p_{ic} q_{ic} - w_i p_{iy_i} \overline{TP}_{y_i}` and
    :math:`\bar x_{ic} = p_{ic} (\bar a_i + q_{ic}) + [c = y_i] (\bar x_{y,i} + w_i p_{iy_i}
    \overline{TP}_{y_i})`: one row reduction (only when the sums are used) and one elementwise
    loop, with one exponential per logit (:math:`w p` is formed from :math:`p`).
    """
    num_classes = x.shape[-1]
    zeros = jnp.zeros_like(x, shape=(x.shape[0], num_classes))
    d_lse = jnp.zeros_like(lse)
    d_label = jnp.zeros_like(x_label)
    d_tp = d_pred = d_target = d_sq = zeros
    p = jnp.exp(x - lse)
    p_label = jnp.exp(x_label - lse)
    if dx is not None:
        d_lse = jnp.sum(p * dx, axis=-1, keepdims=True)
        d_label = at_labels(dx, labels)
        # w p from the p of the row term: one exponential per logit in the backward loop.
        weighted, centred = w[..., None] * p, dx - d_lse
        d_pred = d_pred + jnp.sum(weighted * centred, axis=1)
        d_sq = d_sq + jnp.sum(2.0 * weighted * p * centred, axis=1)
        d_tp = d_tp + _label_column_sums(
            lambda: weighted * centred,
            lambda: (w[..., None] * p_label * (d_label - d_lse))[..., 0],
            labels,
            num_classes,
        )
    if dw is not None:
        d_pred = d_pred + jnp.sum(dw[..., None] * p, axis=1)
        d_sq = d_sq + jnp.sum(dw[..., None] * p * p, axis=1)
        d_tp = d_tp + _label_column_sums(
            lambda: dw[..., None] * p, lambda: dw * p_label[..., 0], labels, num_classes
        )
        d_target = d_target + _label_column_sums(
            lambda: jnp.broadcast_to(dw[..., None], x.shape), lambda: dw, labels, num_classes
        )
    return d_lse, d_label, d_tp, d_pred, d_target, d_sq


def _tangent_or_none(t: Any) -> Any:
    return None if isinstance(t, SymbolicZero) else t


@functools.partial(_label_statistics.defjvp, symbolic_zeros=True)
def _label_statistics_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> tuple[Any, Any]:
    x, labels, w = primals
    out, non_finite = _statistics_flagged(x, labels, w)
    dx, dw = _tangent_or_none(tangents[0]), _tangent_or_none(tangents[2])
    if dx is None and dw is None:
        return out, tuple(jnp.zeros_like(o) for o in out)
    lse, x_label = out[0], out[1]

    def tangent(x: jax.Array, lse: jax.Array, x_label: jax.Array, dx: Any, dw: Any) -> Any:
        if dx is not None:
            dx = _clean_tangent(dx, w, non_finite)
        return _statistics_tangent(x, labels, w, lse, x_label, dx, dw)

    # Checkpointed: the backward pass recomputes the probabilities instead of keeping a
    # [B, P, C] residual.
    return out, jax.checkpoint(tangent)(x, lse, x_label, dx, dw)
