r"""Fused kernels for the hot paths: integer labels without one-hot arrays, analytic derivatives.

A loss runs on tensors as large as the model's output, and its cost is the number of
``[B, P, C]`` arrays it streams and materialises. Written naively, a softmax region loss with
autodiff builds several: the one-hot targets, the probabilities (kept as a residual for the
backward pass), their products with the targets, and a scatter for the gradient of every
``take_along_axis`` gather. The kernels here build none of them:

* The only ``[B, P, C]`` array a forward and backward pass writes is the gradient. The forward
  pass is three reductions that read the logits (row maximum, row sum of exponentials, per-class
  column sum of probabilities) and ``[B, P]`` work: the logit of each pixel's label is gathered,
  and the per-class sums over label values (:math:`TP`, :math:`\Sigma g`) are segment sums of
  ``[B, P]`` values into ``[B, C]``, not reductions of a masked ``[B, P, C]`` array.
* Each kernel is a :func:`jax.custom_jvp` with an analytic tangent rule, wrapped in
  :func:`jax.checkpoint`: reverse mode keeps only the inputs and the ``[B, P]`` log-sum-exp (and
  gathered logit) as residuals, and the backward pass recomputes the probabilities inside the one
  elementwise loop that writes the gradient (plus one row reduction for softmax). The tangent
  rule is written so that its transpose has no scatter: the label's entry is picked with a
  select against an iota, whose transpose is a select. A ``custom_jvp`` rather than a
  ``custom_vjp`` keeps forward mode (``jax.jvp``, ``jax.jacfwd``) working.
* The log-sum-exp and the gathered logit are computed in one way everywhere
  (:func:`softmax_lse`, :func:`gather_labels`), so when cross-entropy and a region loss run in one
  jitted function, XLA's common-subexpression pass computes them once, and the two gradients
  fuse into one elementwise loop.

Shapes: ``logits`` ``[B, P, C]`` in any float dtype (upcast to the compute dtype inside the
kernels, so bf16 logits are read as bf16), ``labels`` ``[B, P]`` int32 in ``[0, C)`` (ignored
pixels already replaced by a valid label and given weight 0), ``weights`` ``[B, P]`` in the
compute dtype.
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero


def compute_dtype(dtype: Any) -> Any:
    """float32 for float32 and narrower inputs, float64 for float64."""
    return jnp.dtype(jnp.float64) if jnp.finfo(dtype).bits > 32 else jnp.dtype(jnp.float32)


def upcast(logits: jax.Array) -> jax.Array:
    """``logits`` in the compute dtype."""
    return logits.astype(compute_dtype(logits.dtype))


def softmax_lse(logits: jax.Array) -> jax.Array:
    """Per-pixel log-sum-exp ``[..., 1]`` in the compute dtype, of logits ``[..., C]``.

    Written out (rather than ``jax.nn.logsumexp``, which adds selects for infinite maxima that
    CPU backends do not fuse into the reduction) and shared by every kernel, so that XLA merges
    the computations of two losses on the same logits. The maximum is taken in the input dtype
    (exact), so that a bf16 input is converted inside the reduction loop rather than copied to
    float32 first. Inputs are finite logits.
    """
    m = upcast(jnp.max(logits, axis=-1, keepdims=True))
    return m + jnp.log(jnp.sum(jnp.exp(upcast(logits) - m), axis=-1, keepdims=True))


def gather_labels(x: jax.Array, labels: jax.Array) -> jax.Array:
    """``x[b, i, labels[b, i]]`` as ``[B, P, 1]``: a gather, used on primal values only.

    A label outside ``[0, C)`` gathers NaN (the pixel-wise losses' contract: a forgotten
    ``ignore_index`` shows at once).
    """
    return jnp.take_along_axis(x, labels[..., None], axis=-1, mode="fill", fill_value=jnp.nan)


def tangent_at_labels(dx: jax.Array, labels: jax.Array) -> jax.Array:
    """``dx[b, i, labels[b, i]]`` as ``[B, P, 1]`` for a tangent; 0 for a label out of range.

    A gather, so that reverse mode writes the label's entry of the gradient with a scatter of
    ``B·P`` values into the elementwise gradient, in place. (A select against an iota would be
    the alternative; XLA:CPU cannot fuse a select into its reduction kernels and would
    materialise a ``[B, P, C]`` array for it.)
    """
    return jnp.take_along_axis(dx, labels[..., None], axis=-1, mode="fill", fill_value=0)


def label_segments(labels: jax.Array, num_classes: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(safe_labels, valid, ids)`` for per-sample, per-class segment sums.

    ``valid`` marks labels in ``[0, C)``; the others (which only unchecked inputs hold) count in
    no class, as a zero one-hot row would, and ``safe_labels`` maps them to 0 so that no gather
    reads out of range. ``ids`` are the flat segments ``b * C + safe_label``.
    """
    valid = (labels >= 0) & (labels < num_classes)
    safe = jnp.where(valid, labels, 0)
    rows = jax.lax.broadcasted_iota(jnp.int32, labels.shape, 0)
    return safe, valid, (rows * num_classes + safe).reshape(-1)


def class_sums(values: jax.Array, ids: jax.Array, batch: int, num_classes: int) -> jax.Array:
    """``[B, C]`` sums of per-pixel ``values`` ``[B, P]`` grouped by label.

    A segment sum reads ``B·P`` values instead of a masked ``[B, P, C]`` array; its transpose is
    a gather of the ``[B, C]`` cotangent by label.
    """
    sums = jax.ops.segment_sum(values.reshape(-1), ids, num_segments=batch * num_classes)
    return sums.reshape(batch, num_classes)


def _float0_zeros(x: jax.Array) -> np.ndarray:
    return np.zeros(x.shape, dtype=jax.dtypes.float0)


def _tangent_or_none(t: Any) -> Any:
    return None if isinstance(t, SymbolicZero) else t


# How the label's entry of each pixel is picked: "segments" (gather on the primal, scatter in the
# backward pass, per-class sums as segment sums of [B, P] values) or "select" (compare with an
# iota inside the reductions and the elementwise gradient). XLA:CPU cannot fuse a select into
# its reduction kernels and would store a [B, P, C] array for each, while segment sums of
# B·P values are cheap there; on GPU and TPU the select fuses into the reduction and
# elementwise kernels for free, while a segment sum is a scatter whose few (B·C) targets are
# hit by atomics from every pixel. None chooses by the default backend at trace time.
STRATEGY: str | None = None


def strategy() -> str:
    """``"segments"`` on CPU, ``"select"`` elsewhere, unless :data:`STRATEGY` fixes one."""
    if STRATEGY is not None:
        return STRATEGY
    return "segments" if jax.default_backend() == "cpu" else "select"


def label_hits(labels: jax.Array, num_classes: int) -> jax.Array:
    """``[B, P, C]`` booleans ``labels == c`` from a comparison with an iota (never stored on
    backends that fuse it); a label outside ``[0, C)`` hits no class."""
    classes = jax.lax.broadcasted_iota(jnp.int32, (*labels.shape, num_classes), labels.ndim)
    return labels[..., None] == classes


def select_labels(x: jax.Array, labels: jax.Array) -> jax.Array:
    """``x[b, i, labels[b, i]]`` as ``[B, P, 1]`` by select and sum (0 out of range); its
    transpose is a select, fused into the elementwise gradient."""
    hits = label_hits(labels, x.shape[-1])
    return jnp.sum(jnp.where(hits, x, jnp.zeros((), x.dtype)), axis=-1, keepdims=True)


# ----------------------------------------------------------------------------------------------
# Overlap sums for integer labels.


def label_overlap_sums(
    logits: jax.Array, labels: jax.Array, weights: jax.Array, *, activation: str | None
) -> tuple[jax.Array, jax.Array, jax.Array]:
    r"""Per-sample, per-class overlap sums for integer labels, without one-hot targets.

    .. math::

       TP_{bc} = \sum_i w_{bi}\, p_{bic}\, [y_{bi} = c], \quad
       \Sigma p_{bc} = \sum_i w_{bi}\, p_{bic}, \quad
       \Sigma g_{bc} = \sum_i w_{bi}\, [y_{bi} = c]

    with :math:`p` the softmax or sigmoid of the logits, or the logits themselves for
    ``activation=None``. With one channel, :math:`[y = c]` reads :math:`[y = 1]`.

    Args:
      logits: ``[B, P, C]`` logits (probabilities for ``activation=None``), any float dtype.
      labels: ``[B, P]`` int32 class indices in ``[0, C)`` (``{0, 1}`` for one channel).
      weights: ``[B, P]`` pixel weights in the compute dtype.
      activation: ``"softmax"``, ``"sigmoid"`` or ``None``.

    Returns:
      ``(tp, pred_sum, target_sum)``, each ``[B, C]`` in the compute dtype, differentiable in
      ``logits`` and ``weights`` in forward and reverse mode.
    """
    return _label_overlap_sums(logits, labels, weights, activation)


@functools.partial(jax.custom_jvp, nondiff_argnums=(3,))
def _label_overlap_sums(
    logits: jax.Array, labels: jax.Array, weights: jax.Array, activation: str | None
) -> tuple[jax.Array, jax.Array, jax.Array]:
    sums, _ = _overlap_primal(logits, labels, weights, activation)
    return sums


def _overlap_primal(
    logits: jax.Array, labels: jax.Array, weights: jax.Array, activation: str | None
) -> tuple[tuple[jax.Array, jax.Array, jax.Array], tuple[Any, ...]]:
    """The sums and the per-pixel residuals ``(lse, x_label)`` their tangent needs."""
    x = upcast(logits)
    batch, _, num_classes = x.shape
    w = weights.astype(x.dtype)
    if num_classes == 1:
        # One channel: every array is [B, P, 1], no bigger than the labels; no segments needed.
        probs = jax.nn.sigmoid(x) if activation == "sigmoid" else x
        hit = (labels == 1)[..., None]
        weighted = w[..., None] * probs
        zero = jnp.zeros((), x.dtype)
        tp = jnp.sum(jnp.where(hit, weighted, zero), axis=1)
        target_sum = jnp.sum(jnp.where(hit, w[..., None], zero), axis=1)
        return (tp, jnp.sum(weighted, axis=1), target_sum), (None, None)
    lse = None
    if activation == "softmax":
        lse = softmax_lse(logits)
        probs = jnp.exp(x - lse)
    elif activation == "sigmoid":
        probs = jax.nn.sigmoid(x)
    else:
        probs = x
    weighted = w[..., None] * probs
    pred_sum = jnp.sum(weighted, axis=1)
    if strategy() == "select":
        hits = label_hits(labels, num_classes)
        zero = jnp.zeros((), x.dtype)
        tp = jnp.sum(jnp.where(hits, weighted, zero), axis=1)
        target_sum = jnp.sum(jnp.where(hits, w[..., None], zero), axis=1)
        return (tp, pred_sum, target_sum), (lse, None)
    safe, valid, ids = label_segments(labels, num_classes)
    x_label = upcast(gather_labels(logits, safe))
    if lse is not None:
        p_label = jnp.exp(x_label - lse)[..., 0]
    elif activation == "sigmoid":
        p_label = jax.nn.sigmoid(x_label)[..., 0]
    else:
        p_label = x_label[..., 0]
    label_weight = jnp.where(valid, w, 0.0)
    tp = class_sums(label_weight * p_label, ids, batch, num_classes)
    target_sum = class_sums(label_weight, ids, batch, num_classes)
    return (tp, pred_sum, target_sum), (lse, x_label)


def _overlap_tangent(
    logits: jax.Array,
    labels: jax.Array,
    weights: jax.Array,
    residuals: tuple[Any, ...],
    dlogits: jax.Array | None,
    dweights: jax.Array | None,
    *,
    activation: str | None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    r"""The linear map ``(dx, dw) -> (dTP, dΣp, dΣg)`` at ``logits``.

    With :math:`\dot p` the tangent of the probabilities (softmax :math:`p \odot (\dot x -
    r)`, :math:`r = \sum_c p \dot x`; sigmoid :math:`p (1 - p) \dot x`; none :math:`\dot x`),

    .. math::

       \dot{TP}_c = \sum_{i: y_i = c} w_i \dot p_{i y_i} + \dot w_i p_{i y_i}, \quad
       \dot{\Sigma p}_c = \sum_i w_i \dot p_{ic} + \dot w_i p_{ic}, \quad
       \dot{\Sigma g}_c = \sum_{i: y_i = c} \dot w_i.

    Its transpose (reverse mode) is the analytic gradient: with :math:`a_i =
    \overline{TP}_{y_i}` gathered from the ``[B, C]`` cotangent and :math:`\overline{\Sigma p}`
    broadcast, softmax gives :math:`\bar x_{ic} = w_i p_{ic} (\overline{\Sigma p}_c - s_i) +
    [c = y_i]\, w_i p_{i y_i} a_i`, :math:`s_i = p_{i y_i} a_i + \sum_c p_{ic}
    \overline{\Sigma p}_c`: one row reduction and one elementwise loop.
    """
    x = upcast(logits)
    batch, _, num_classes = x.shape
    w = weights.astype(x.dtype)
    lse, x_label = residuals
    shape = (batch, num_classes)
    # zeros_like keeps the type of x: varying over a shard_map axis, as the tangents must be.
    d_tp = d_pred = d_target = jnp.zeros_like(x, shape=shape)
    if num_classes == 1:
        probs = jax.nn.sigmoid(x) if activation == "sigmoid" else x
        hit = (labels == 1)[..., None]
        zero = jnp.zeros((), x.dtype)
        if dlogits is not None:
            dx = dlogits.astype(x.dtype)
            dp = probs * (1.0 - probs) * dx if activation == "sigmoid" else dx
            weighted = w[..., None] * dp
            d_tp = d_tp + jnp.sum(jnp.where(hit, weighted, zero), axis=1)
            d_pred = d_pred + jnp.sum(weighted, axis=1)
        if dweights is not None:
            dw = dweights.astype(x.dtype)[..., None]
            d_tp = d_tp + jnp.sum(jnp.where(hit, dw * probs, zero), axis=1)
            d_pred = d_pred + jnp.sum(dw * probs, axis=1)
            d_target = d_target + jnp.sum(jnp.where(hit, dw, zero), axis=1)
        return d_tp, d_pred, d_target

    if activation == "softmax":
        probs = jnp.exp(x - lse)
    elif activation == "sigmoid":
        probs = jax.nn.sigmoid(x)
    else:
        probs = x
    dp = r = None
    if dlogits is not None:
        dx = dlogits.astype(x.dtype)
        if activation == "softmax":
            r = jnp.sum(probs * dx, axis=-1, keepdims=True)
            dp = probs * (dx - r)
        elif activation == "sigmoid":
            dp = probs * (1.0 - probs) * dx
        else:
            dp = dx
        d_pred = d_pred + jnp.sum(w[..., None] * dp, axis=1)
    dw = None if dweights is None else dweights.astype(x.dtype)
    if dw is not None:
        d_pred = d_pred + jnp.sum(dw[..., None] * probs, axis=1)

    if strategy() == "select":
        hits = label_hits(labels, num_classes)
        zero = jnp.zeros((), x.dtype)
        if dp is not None:
            d_tp = d_tp + jnp.sum(jnp.where(hits, w[..., None] * dp, zero), axis=1)
        if dw is not None:
            d_tp = d_tp + jnp.sum(jnp.where(hits, dw[..., None] * probs, zero), axis=1)
            d_target = d_target + jnp.sum(jnp.where(hits, dw[..., None], zero), axis=1)
        return d_tp, d_pred, d_target

    # Segments: the label's entry per pixel, [B, P], then a segment sum per class.
    safe, valid, ids = label_segments(labels, num_classes)
    label_weight = jnp.where(valid, w, 0.0)
    if activation == "softmax":
        p_label = jnp.exp(x_label - lse)
    elif activation == "sigmoid":
        p_label = jax.nn.sigmoid(x_label)
    else:
        p_label = x_label
    if dlogits is not None:
        dx = dlogits.astype(x.dtype)
        dx_label = tangent_at_labels(dx, safe)
        if activation == "softmax":
            assert r is not None
            dp_label = p_label * (dx_label - r)
        elif activation == "sigmoid":
            dp_label = p_label * (1.0 - p_label) * dx_label
        else:
            dp_label = dx_label
        d_tp = d_tp + class_sums(label_weight * dp_label[..., 0], ids, batch, num_classes)
    if dw is not None:
        dw_label = jnp.where(valid, dw, 0.0)
        d_tp = d_tp + class_sums(dw_label * p_label[..., 0], ids, batch, num_classes)
        d_target = d_target + class_sums(dw_label, ids, batch, num_classes)
    return d_tp, d_pred, d_target


def _label_overlap_sums_jvp(
    activation: str | None, primals: tuple[Any, ...], tangents: tuple[Any, ...]
) -> tuple[Any, Any]:
    logits, labels, weights = primals
    sums, residuals = _overlap_primal(logits, labels, weights, activation)
    dlogits, dweights = _tangent_or_none(tangents[0]), _tangent_or_none(tangents[2])
    if dlogits is None and dweights is None:
        return sums, tuple(jnp.zeros_like(s) for s in sums)
    # Recompute the probabilities in the tangent, and so in the backward pass, instead of
    # keeping a [B, P, C] residual.
    tangent = jax.checkpoint(functools.partial(_overlap_tangent, activation=activation))(
        logits, labels, weights, residuals, dlogits, dweights
    )
    return sums, tangent


_label_overlap_sums.defjvp(_label_overlap_sums_jvp, symbolic_zeros=True)


# ----------------------------------------------------------------------------------------------
# Negative log-likelihood of the label under a softmax.


def label_nll(logits: jax.Array, labels: jax.Array) -> jax.Array:
    r"""Per-pixel :math:`-\log \mathrm{softmax}(x)_{y} = \mathrm{lse}(x) - x_y`, ``[B, P]``.

    Args:
      logits: ``[B, P, C]`` logits, any float dtype.
      labels: ``[B, P]`` int32 class indices in ``[0, C)``.

    Returns:
      ``[B, P]`` in the compute dtype. The gradient is :math:`\mathrm{softmax}(x) - [c = y]`
      times the cotangent, in one elementwise loop over the logits (no scatter, no stored
      probabilities); forward mode works too.
    """
    return _label_nll(logits, labels)


def _logit_at_labels(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """The label's logit ``[B, P, 1]`` in the compute dtype; NaN for a label out of range."""
    if strategy() == "select":
        x = upcast(logits)
        valid = (labels >= 0) & (labels < x.shape[-1])
        picked = select_labels(x, labels)
        return jnp.where(valid[..., None], picked, jnp.nan)
    return upcast(gather_labels(logits, labels))


@jax.custom_jvp
def _label_nll(logits: jax.Array, labels: jax.Array) -> jax.Array:
    return (softmax_lse(logits) - _logit_at_labels(logits, labels))[..., 0]


def _nll_tangent(
    logits: jax.Array, labels: jax.Array, lse: jax.Array, dlogits: jax.Array
) -> jax.Array:
    x = upcast(logits)
    dx = dlogits.astype(x.dtype)
    r = jnp.sum(jnp.exp(x - lse) * dx, axis=-1, keepdims=True)
    at_label = (
        select_labels(dx, labels) if strategy() == "select" else tangent_at_labels(dx, labels)
    )
    return (r - at_label)[..., 0]


@_label_nll.defjvp
def _label_nll_jvp(primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> tuple[Any, Any]:
    logits, labels = primals
    lse = softmax_lse(logits)
    nll = (lse - _logit_at_labels(logits, labels))[..., 0]
    tangent = jax.checkpoint(_nll_tangent)(logits, labels, lse, tangents[0])
    return nll, tangent
