r"""Pixel-wise losses: cross-entropy (weighted, label-smoothed) and focal loss.

Each pixel contributes its own loss :math:`\ell_i`, and the reduction is a weighted mean over the
valid pixels. With pixel weights :math:`m_i` (``mask`` times ``labels != ignore_index``) and a
normaliser :math:`v_i` per pixel (the class weight of its label for weighted cross-entropy, 1
otherwise),

.. math::

   \mathrm{mean} = \frac{\sum_i m_i \ell_i}{\sum_i m_i v_i}, \qquad
   \mathrm{sum} = \sum_i m_i \ell_i, \qquad
   \mathrm{none}_b = \frac{\sum_{i \in b} m_i \ell_i}{\sum_{i \in b} m_i v_i},

so ``"mean"`` is PyTorch's ``CrossEntropyLoss`` reduction (the mean over all valid pixels of the
batch, not the mean of per-sample means) and ``"none"`` gives each sample's own mean, ``[B]``. A
sample or batch without a valid pixel has loss 0 and gradient 0. The unreduced per-pixel losses
:math:`m_i \ell_i` (``[B, *spatial]``, 0 at ignored pixels, summing to the ``"sum"`` reduction)
come from :func:`cross_entropy_map` and :func:`focal_map`, for hard-pixel mining or display.

Three forms, picked by ``activation`` and the number of channels :math:`C`:

* categorical (``"softmax"``, or ``None`` with :math:`C \ge 2` for probabilities that sum to 1):
  :math:`\ell_i = -\sum_c g_{ic} \log p_{ic}`, one exclusive class per pixel;
* binary / multi-label (``"sigmoid"``, or ``None`` with :math:`C = 1`): binary cross-entropy per
  channel, averaged over the channels of the pixel (PyTorch's ``BCEWithLogitsLoss`` mean);
* integer labels are gathered (``logsumexp`` minus the label's logit), never one-hot encoded.

Everything is computed in log space (``log_softmax``, ``log_sigmoid``); with ``activation=None``
the logarithm of a probability is clamped at :math:`\max(-100, \tfrac12 \ln \mathrm{tiny})`
(-43.7 in float32; PyTorch's ``BCELoss`` clamps at -100), so a probability of exactly 0 or 1
gives finite values, gradients and Hessians. Computation and output are float32 for
bf16/f16/f32 inputs.
"""

import math
from typing import Any

import jax
import jax.numpy as jnp

from jaxseg_losses import _checks, _fused, _inputs

ArrayLike = jax.typing.ArrayLike

# Internal activation: the "logits" are already log-softmax outputs. The combinator
# (:mod:`jaxseg_losses.compose`) computes the softmax once and hands every term its result.
LOG_SOFTMAX = "log_softmax"

# ----------------------------------------------------------------------------------------------
# Numerics.


def _safe_log(p: jax.Array) -> jax.Array:
    """``log p`` clamped below at ``max(-100, ln(tiny) / 2)``: finite value, slope and curvature.

    PyTorch's ``BCELoss`` clamps the log at -100. In float32 the floor must also keep the second
    derivative ``-1 / p**2`` finite, which sets it at ``sqrt(tiny)`` (``ln`` = -43.7); float64
    reaches -100.
    """
    floor = max(math.sqrt(float(jnp.finfo(p.dtype).tiny)), math.exp(-100.0))
    return jnp.log(jnp.maximum(p, floor))


def _log1mexp(log_p: jax.Array) -> jax.Array:
    r"""``log(1 - exp(log_p))`` for ``log_p <= 0``, stably (Mächler 2012).

    A saturated softmax rounds :math:`\log p` to exactly 0, where :math:`\log(1 - p)` would be
    :math:`-\infty` with an infinite slope; clamping at :math:`-\epsilon` (machine epsilon) keeps
    the focal factor :math:`(1 - p)^\gamma` and its first and second derivatives finite, and
    changes the loss by less than :math:`\epsilon^{\gamma + 1}`.
    """
    eps = float(jnp.finfo(log_p.dtype).eps)
    a = jnp.minimum(log_p, -eps)
    # log(-expm1(a)) is accurate near 0, log1p(-exp(a)) far from it; the switch is at -ln 2.
    return jnp.where(a > -0.6931471805599453, jnp.log(-jnp.expm1(a)), jnp.log1p(-jnp.exp(a)))


def _is_static_zero(value: Any) -> bool:
    return isinstance(value, int | float) and value == 0


def _focal_factor(log_one_minus_p: jax.Array, gamma: Any) -> jax.Array:
    r""":math:`(1 - p)^\gamma` as :math:`\exp(\gamma \log(1 - p))`: finite slopes for any γ ≥ 0."""
    return jnp.exp(gamma * log_one_minus_p)


def _binary_cross_entropy(
    g: jax.Array, log_p: jax.Array, log_q: jax.Array, pos_weight: jax.Array | None = None
) -> jax.Array:
    """``-(ρ g log p + (1 - g) log(1 - p))`` per channel; shared by CE and focal (γ=0 ≡ CE)."""
    positive = g * log_p
    if pos_weight is not None:
        positive = positive * pos_weight
    return -(positive + (1.0 - g) * log_q)


# ----------------------------------------------------------------------------------------------
# Option handling.


def _is_binary_form(inputs: _inputs.Canonical) -> bool:
    """Sigmoid, or probabilities with one channel: per-channel binary cross-entropy."""
    return inputs.activation == "sigmoid" or (inputs.activation is None and inputs.num_classes == 1)


def _class_option(name: str, value: Any, num_classes: int, dtype: Any) -> jax.Array:
    """A scalar or ``[C]`` option, returned as ``[1, 1, C]`` for ``[B, P, C]`` arrays."""
    array = jnp.asarray(value, dtype=dtype)
    if array.ndim == 0:
        return jnp.broadcast_to(array, (1, 1, num_classes))
    return _checks.class_vector(name, array, num_classes, dtype, rank=3)


def _check_alpha(alpha: Any) -> None:
    if alpha is None:
        return
    if jnp.ndim(alpha) == 0:
        _checks.check_in_unit_interval("alpha", alpha)


def _binary_targets(inputs: _inputs.Canonical) -> jax.Array:
    """``[B, P, C]`` float targets for the binary form (integer labels mean class 1 vs 0)."""
    if inputs.targets is not None:
        return inputs.targets
    assert inputs.labels is not None
    return (inputs.labels == 1)[..., None].astype(inputs.logits.dtype)


def _binary_log_probs(inputs: _inputs.Canonical) -> tuple[jax.Array, jax.Array]:
    """``(log p, log(1 - p))`` per channel, ``[B, P, C]`` each."""
    x = inputs.logits
    if inputs.activation == "sigmoid":
        return jax.nn.log_sigmoid(x), jax.nn.log_sigmoid(-x)
    return _safe_log(x), _safe_log(1.0 - x)


def _categorical_log_probs(inputs: _inputs.Canonical) -> jax.Array:
    """``log p`` over the class axis, ``[B, P, C]``."""
    if inputs.activation == LOG_SOFTMAX:
        return inputs.logits
    if inputs.activation == "softmax":
        return jax.nn.log_softmax(inputs.logits, axis=-1)
    return _safe_log(inputs.logits)


def _gather(values: jax.Array, labels: jax.Array) -> jax.Array:
    """``values[..., y]`` per pixel, from ``[B, P, C]`` values or a ``[1, C]`` class vector.

    A label outside ``[0, C)`` that is not ``ignore_index`` gathers NaN, so a forgotten
    ``ignore_index=255`` shows at once instead of training silently on a wrong target.
    """
    if values.ndim == 2:
        return jnp.take(values[0], labels, mode="fill", fill_value=jnp.nan)
    picked = jnp.take_along_axis(
        values, labels[..., None], axis=-1, mode="fill", fill_value=jnp.nan
    )
    return picked[..., 0]


def _gathered_log_prob(inputs: _inputs.Canonical, labels: jax.Array) -> jax.Array:
    """``log p_y`` per pixel, ``[B, P]``, gathered without a one-hot array."""
    if inputs.activation == "softmax":
        # Fused log-sum-exp minus the label's logit: its gradient is one elementwise loop, with
        # no stored probabilities, and the log-sum-exp is shared with region losses under jit.
        return -_fused.label_nll(inputs.logits, labels)
    x = inputs.logits
    picked = _gather(x, labels)
    if inputs.activation == LOG_SOFTMAX:
        return picked
    if inputs.activation == "softmax":
        return picked - jax.nn.logsumexp(x, axis=-1)
    return _safe_log(picked)


# ----------------------------------------------------------------------------------------------
# Per-pixel terms: (loss l_i, normaliser v_i), both [B, P], before the pixel weights m_i.


def _cross_entropy_terms(
    inputs: _inputs.Canonical,
    *,
    class_weights: ArrayLike | None,
    pos_weight: ArrayLike | None,
    label_smoothing: Any,
) -> tuple[jax.Array, jax.Array]:
    x = inputs.logits
    dtype, num_classes = x.dtype, inputs.num_classes
    smoothing = label_smoothing
    smooth = not _is_static_zero(smoothing)
    weights = None
    if class_weights is not None:
        weights = _checks.class_vector("class_weights", class_weights, num_classes, dtype, rank=3)
    ones = jnp.ones(x.shape[:2], dtype)

    if _is_binary_form(inputs):
        g = _binary_targets(inputs)
        if smooth:
            # Keras' binary rule: pull each target towards 1/2, the uniform binary distribution.
            g = g * (1.0 - smoothing) + 0.5 * smoothing
        log_p, log_q = _binary_log_probs(inputs)
        rho = None
        if pos_weight is not None:
            rho = _class_option("pos_weight", pos_weight, num_classes, dtype)
        per_channel = _binary_cross_entropy(g, log_p, log_q, rho)
        if weights is not None:
            per_channel = per_channel * weights
        return jnp.mean(per_channel, axis=-1), ones

    if pos_weight is not None:
        raise ValueError(
            "`pos_weight` weighs the positive term of the binary (sigmoid) cross-entropy; with "
            f"activation={inputs.activation!r} and {num_classes} classes the loss is "
            "categorical. Use `class_weights` to weigh classes."
        )
    if inputs.labels is not None:
        labels = inputs.labels
        nll = -_gathered_log_prob(inputs, labels)
        label_weight = ones
        if weights is not None:
            label_weight = _gather(weights[0], labels)
            nll = nll * label_weight
        if smooth:
            # PyTorch: (1 - ε) w_y (-log p_y) + ε/C Σ_c w_c (-log p_c), normalised by Σ w_y.
            neg_log_p = -_categorical_log_probs(inputs)
            if weights is not None:
                neg_log_p = neg_log_p * weights
            nll = (1.0 - smoothing) * nll + (smoothing / num_classes) * jnp.sum(neg_log_p, axis=-1)
        return nll, label_weight

    assert inputs.targets is not None
    targets = inputs.targets
    smoothed = targets
    if smooth:
        smoothed = targets * (1.0 - smoothing) + smoothing / num_classes
    log_p = _categorical_log_probs(inputs)
    if weights is None:
        return -jnp.sum(smoothed * log_p, axis=-1), ones
    # The normaliser is the target's expected class weight Σ_c w_c g_c: w_y for a one-hot row,
    # so dense one-hot targets and integer labels give the same weighted mean.
    loss = -jnp.sum(weights * smoothed * log_p, axis=-1)
    return loss, jnp.sum(weights * targets, axis=-1)


def _focal_terms(
    inputs: _inputs.Canonical, *, gamma: Any, alpha: ArrayLike | None
) -> tuple[jax.Array, jax.Array]:
    x = inputs.logits
    dtype, num_classes = x.dtype, inputs.num_classes
    ones = jnp.ones(x.shape[:2], dtype)

    if _is_binary_form(inputs):
        g = _binary_targets(inputs)
        log_p, log_q = _binary_log_probs(inputs)
        loss = _binary_cross_entropy(g, log_p, log_q)
        if not _is_static_zero(gamma):
            # 1 - p_t = p (1 - g) + (1 - p) g, in log space; logsumexp drops terms whose b is 0.
            log_one_minus_pt = jax.nn.logsumexp(
                jnp.stack([log_p, log_q], axis=-1), axis=-1, b=jnp.stack([1.0 - g, g], axis=-1)
            )
            loss = _focal_factor(log_one_minus_pt, gamma) * loss
        if alpha is not None:
            a = _class_option("alpha", alpha, num_classes, dtype)
            loss = (a * g + (1.0 - a) * (1.0 - g)) * loss
        return jnp.mean(loss, axis=-1), ones

    if alpha is None:
        alpha_c = None
    elif jnp.ndim(alpha) == 0:
        # The binary convention for exclusive classes (MONAI): 1 - α for the background class 0,
        # α for every foreground class.
        a = jnp.asarray(alpha, dtype)
        alpha_c = jnp.concatenate([(1.0 - a)[None], jnp.broadcast_to(a, (num_classes - 1,))])
        alpha_c = alpha_c.reshape(1, 1, num_classes)
    else:
        alpha_c = _checks.class_vector("alpha", alpha, num_classes, dtype, rank=3)

    if inputs.labels is not None:
        labels = inputs.labels
        log_p = _gathered_log_prob(inputs, labels)
        loss = -log_p
        if not _is_static_zero(gamma):
            if inputs.activation in ("softmax", LOG_SOFTMAX):
                log_one_minus_p = _log1mexp(log_p)
            else:
                picked = _gather(x, labels)
                log_one_minus_p = _safe_log(1.0 - picked)
            loss = _focal_factor(log_one_minus_p, gamma) * loss
        if alpha_c is not None:
            loss = _gather(alpha_c[0], labels) * loss
        return loss, ones

    assert inputs.targets is not None
    log_p = _categorical_log_probs(inputs)
    if not _is_static_zero(gamma):
        if inputs.activation in ("softmax", LOG_SOFTMAX):
            log_one_minus_p = _log1mexp(log_p)
        else:
            log_one_minus_p = _safe_log(1.0 - x)
        log_p = _focal_factor(log_one_minus_p, gamma) * log_p
    per_class = inputs.targets * log_p
    if alpha_c is not None:
        per_class = alpha_c * per_class
    return -jnp.sum(per_class, axis=-1), ones


# ----------------------------------------------------------------------------------------------
# Reductions.


def _safe_divide(numerator: jax.Array, denominator: jax.Array) -> jax.Array:
    """``numerator / denominator``, 0 where nothing was counted (value and gradient).

    Only an exact 0 counts as empty: a NaN denominator (a label out of range) stays NaN.
    """
    counted = denominator != 0
    return jnp.where(counted, numerator / jnp.where(counted, denominator, 1.0), 0.0)


def _reduce_pixels(
    loss: jax.Array,
    normaliser: jax.Array,
    pixel_weights: jax.Array,
    *,
    reduction: str,
    axis_name: Any,
) -> jax.Array:
    """Weighted mean / sum over valid pixels; see the module docstring."""
    numerator = pixel_weights * loss
    if reduction == "none":
        return _safe_divide(jnp.sum(numerator, axis=1), jnp.sum(pixel_weights * normaliser, axis=1))
    total = jnp.sum(numerator)
    if reduction == "sum":
        return total if axis_name is None else jax.lax.psum(total, axis_name)
    count = jnp.sum(pixel_weights * normaliser)
    if axis_name is not None:
        # Sums, not per-device means, cross the devices: the global mean is exact even when the
        # devices hold different numbers of valid pixels.
        total, count = jax.lax.psum((total, count), axis_name)
    return _safe_divide(total, count)


def _canonical(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    activation: str | None,
    class_axis: int,
    ignore_index: int | None,
    mask: ArrayLike | None,
) -> _inputs.Canonical:
    inputs = _inputs.canonicalize(
        logits,
        labels,
        activation="softmax" if activation == LOG_SOFTMAX else activation,
        class_axis=class_axis,
        ignore_index=ignore_index,
        mask=mask,
    )
    return inputs._replace(activation=activation)


def _unflatten(pixel_map: jax.Array, inputs: _inputs.Canonical) -> jax.Array:
    return pixel_map.reshape((pixel_map.shape[0], *inputs.spatial_shape))


_CE_ARGS = """\
      logits: ``[B, *spatial, C]`` float logits (probabilities when ``activation=None``), any
        float dtype; 1-D, 2-D or 3-D spatial shape.
      labels: ``[B, *spatial]`` integer class indices, or ``[B, *spatial, C]`` dense float
        targets (one-hot or soft), laid out like ``logits``.
      activation: ``"softmax"`` (categorical, C >= 2), ``"sigmoid"`` (binary with C == 1, or
        multi-label with dense targets) or ``None`` (``logits`` are probabilities: categorical
        for C >= 2, binary for C == 1).
      class_axis: the axis of ``logits`` holding the classes (``1`` for NCHW)."""

_DATA_ARGS = """\
      ignore_index: a label value whose pixels count nowhere (e.g. 255).
      mask: ``[B, *spatial]`` bool or float pixel weights; weight 0 removes a pixel."""

_REDUCE_ARGS = """\
      axis_name: a mapped axis (``shard_map``/``pmap``); the sums of losses and of pixel weights
        are summed over it, so ``"mean"`` is the exact mean over all devices' pixels.
      reduction: ``"mean"`` (over the valid pixels of the batch), ``"sum"`` or ``"none"``
        (``[B]``, each sample's mean over its valid pixels)."""


def _shares_docs(fn: Any) -> Any:
    fn.__doc__ = (
        fn.__doc__.replace("      <logit args>", _CE_ARGS)
        .replace("      <data args>", _DATA_ARGS)
        .replace("      <reduce args>", _REDUCE_ARGS)
    )
    return fn


def _check_ce_options(label_smoothing: Any) -> None:
    _checks.check_in_unit_interval("label_smoothing", label_smoothing, closed_right=False)


def _check_focal_options(gamma: Any, alpha: Any) -> None:
    _checks.check_nonnegative("gamma", gamma)
    _check_alpha(alpha)


def _cross_entropy_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    activation: str | None,
    class_axis: int,
    class_weights: ArrayLike | None,
    pos_weight: ArrayLike | None,
    label_smoothing: ArrayLike,
    ignore_index: int | None,
    mask: ArrayLike | None,
    axis_name: Any,
    reduction: str,
) -> jax.Array:
    """:func:`cross_entropy_loss`, also accepting the internal ``activation=LOG_SOFTMAX``."""
    _check_ce_options(label_smoothing)
    _checks.check_choice("reduction", reduction, _checks.REDUCTIONS)
    inputs = _canonical(
        logits,
        labels,
        activation=activation,
        class_axis=class_axis,
        ignore_index=ignore_index,
        mask=mask,
    )
    loss, normaliser = _cross_entropy_terms(
        inputs, class_weights=class_weights, pos_weight=pos_weight, label_smoothing=label_smoothing
    )
    return _reduce_pixels(
        loss, normaliser, inputs.weights, reduction=reduction, axis_name=axis_name
    )


def _focal_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    gamma: ArrayLike,
    alpha: ArrayLike | None,
    activation: str | None,
    class_axis: int,
    ignore_index: int | None,
    mask: ArrayLike | None,
    axis_name: Any,
    reduction: str,
) -> jax.Array:
    """:func:`focal_loss`, also accepting the internal ``activation=LOG_SOFTMAX``."""
    _check_focal_options(gamma, alpha)
    _checks.check_choice("reduction", reduction, _checks.REDUCTIONS)
    inputs = _canonical(
        logits,
        labels,
        activation=activation,
        class_axis=class_axis,
        ignore_index=ignore_index,
        mask=mask,
    )
    loss, normaliser = _focal_terms(inputs, gamma=gamma, alpha=alpha)
    return _reduce_pixels(
        loss, normaliser, inputs.weights, reduction=reduction, axis_name=axis_name
    )


# ----------------------------------------------------------------------------------------------
# Public API.


@_shares_docs
def cross_entropy_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    activation: str | None = "softmax",
    class_axis: int = -1,
    class_weights: ArrayLike | None = None,
    pos_weight: ArrayLike | None = None,
    label_smoothing: ArrayLike = 0.0,
    ignore_index: int | None = None,
    mask: ArrayLike | None = None,
    axis_name: Any = None,
    reduction: str = "mean",
) -> jax.Array:
    r"""Computes the pixel-wise cross-entropy, optionally class-weighted (WCE) and smoothed.

    Each pixel is a classification problem of its own. Class weights counter the bias towards
    frequent classes; label smoothing discourages over-confident logits (Müller et al. 2019).

    Categorical form (``activation="softmax"``), for pixel :math:`i` with label :math:`y_i`,
    class weights :math:`w` (all 1 by default) and smoothing :math:`\varepsilon`:

    .. math::

       \ell_i = (1 - \varepsilon)\, w_{y_i} (-\log p_{i y_i})
                + \frac{\varepsilon}{C} \sum_c w_c (-\log p_{ic}), \qquad
       \mathrm{mean} = \frac{\sum_i m_i \ell_i}{\sum_i m_i w_{y_i}}

    with :math:`-\log p_{iy} = \operatorname{logsumexp}_c x_{ic} - x_{iy}` and :math:`m_i` the
    pixel weights (``mask``, ``ignore_index``): PyTorch's ``CrossEntropyLoss(weight,
    ignore_index, label_smoothing)`` exactly, including its weighted mean. Dense (soft) targets
    :math:`g` give :math:`\ell_i = -\sum_c w_c \tilde g_{ic} \log p_{ic}` with
    :math:`\tilde g = (1 - \varepsilon) g + \varepsilon / C` (optax ``smooth_labels``); the
    weighted mean then divides by :math:`\sum_i m_i \sum_c w_c g_{ic}`, the expected class weight
    of the target, so one-hot float targets and integer labels agree. (PyTorch divides soft
    targets by the pixel count instead; the two agree without ``class_weights`` whenever each
    target row sums to 1.)

    Binary / multi-label form (``activation="sigmoid"``), per channel :math:`c`, with the
    positive weight :math:`\rho_c` and smoothed targets :math:`\tilde g = (1-\varepsilon) g +
    \varepsilon/2` (Keras' binary rule):

    .. math::

       \ell_i = \frac{1}{C} \sum_c w_c \bigl[-\rho_c \tilde g_{ic} \log \sigma(x_{ic})
                - (1 - \tilde g_{ic}) \log \sigma(-x_{ic})\bigr], \qquad
       \mathrm{mean} = \frac{\sum_i m_i \ell_i}{\sum_i m_i},

    PyTorch's ``BCEWithLogitsLoss(weight, pos_weight)``: class weights rescale, they do not
    renormalise. Integer labels ``{0, 1}`` are accepted with one channel.

    Args:
      <logit args>
      class_weights: ``[C]`` class weights: the weighted mean above for the categorical form, a
        per-channel factor for the sigmoid form.
      pos_weight: scalar or ``[C]`` weight of the positive term of the sigmoid form (e.g.
        negatives / positives); an error for the categorical form.
      label_smoothing: :math:`\varepsilon \in [0, 1)`.
      <data args>
      <reduce args>

    Returns:
      A float32 scalar (float64 for float64 logits under x64), or ``[B]`` for
      ``reduction="none"``. Without any valid pixel the loss is 0, with zero gradient. An
      integer label outside ``[0, C)`` that is not ``ignore_index`` makes it NaN (a forgotten
      ``ignore_index=255`` shows at once; :func:`jaxseg_losses.checked` names it).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 2.0], [1.0, 0.0]]])   # [B=1, P=3, C=2]
      >>> labels = jnp.array([[0, 1, 255]])
      >>> print(f"{jsl.cross_entropy_loss(logits, labels, ignore_index=255):.4f}")   # ln(1+e^-2)
      0.1269
      >>> w = jnp.array([1.0, 3.0])
      >>> loss = jax.jit(jsl.cross_entropy_loss)(logits, labels % 2, class_weights=w)
      >>> print(f"{loss:.4f}")   # (0.1269 + 3 * 0.1269 + 3 * 1.3133) / 7
      0.6354

    References:
      PyTorch ``torch.nn.CrossEntropyLoss`` and ``BCEWithLogitsLoss`` documentation. Müller,
      Kornblith & Hinton, "When does label smoothing help?", NeurIPS 2019.
    """
    _checks.check_choice("activation", activation, _checks.ACTIVATIONS)
    return _cross_entropy_loss(
        logits,
        labels,
        activation=activation,
        class_axis=class_axis,
        class_weights=class_weights,
        pos_weight=pos_weight,
        label_smoothing=label_smoothing,
        ignore_index=ignore_index,
        mask=mask,
        axis_name=axis_name,
        reduction=reduction,
    )


@_shares_docs
def cross_entropy_map(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    activation: str | None = "softmax",
    class_axis: int = -1,
    class_weights: ArrayLike | None = None,
    pos_weight: ArrayLike | None = None,
    label_smoothing: ArrayLike = 0.0,
    ignore_index: int | None = None,
    mask: ArrayLike | None = None,
) -> jax.Array:
    r"""Computes the unreduced cross-entropy of every pixel, for hard-pixel mining or display.

    The map holds :math:`m_i \ell_i` with :math:`\ell_i` as in :func:`cross_entropy_loss`
    (class weights included, as PyTorch's ``reduction="none"``) and :math:`m_i` the pixel weight:
    0 at ignored and masked pixels. Its sum is ``cross_entropy_loss(..., reduction="sum")``.

    .. math::

       \mathrm{map}_i = m_i \ell_i

    Args:
      <logit args>
      class_weights: ``[C]`` class weights (see :func:`cross_entropy_loss`).
      pos_weight: scalar or ``[C]`` positive weight of the sigmoid form.
      label_smoothing: :math:`\varepsilon \in [0, 1)`.
      <data args>

    Returns:
      ``[B, *spatial]`` float32 per-pixel losses.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 2.0], [1.0, 0.0]]])
      >>> labels = jnp.array([[0, 0, 255]])
      >>> print(jnp.round(jsl.cross_entropy_map(logits, labels, ignore_index=255), 4))
      [[0.1269 2.1269 0.    ]]

    References:
      PyTorch ``torch.nn.CrossEntropyLoss(reduction="none")`` documentation.
    """
    _checks.check_choice("activation", activation, _checks.ACTIVATIONS)
    _check_ce_options(label_smoothing)
    inputs = _canonical(
        logits,
        labels,
        activation=activation,
        class_axis=class_axis,
        ignore_index=ignore_index,
        mask=mask,
    )
    loss, _ = _cross_entropy_terms(
        inputs, class_weights=class_weights, pos_weight=pos_weight, label_smoothing=label_smoothing
    )
    return _unflatten(inputs.weights * loss, inputs)


@_shares_docs
def focal_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    gamma: ArrayLike = 2.0,
    alpha: ArrayLike | None = None,
    activation: str | None = "softmax",
    class_axis: int = -1,
    ignore_index: int | None = None,
    mask: ArrayLike | None = None,
    axis_name: Any = None,
    reduction: str = "mean",
) -> jax.Array:
    r"""Computes the focal loss, cross-entropy down-weighted on well-classified pixels.

    The factor :math:`(1 - p_t)^\gamma` fades the loss of pixels already predicted with
    confidence, so the many easy background pixels stop dominating the gradient (Lin et al.
    2017). Categorical form (``"softmax"``), for a pixel with label :math:`y`:

    .. math::

       \ell_i = -\alpha_{y_i}\, (1 - p_{i y_i})^{\gamma} \log p_{i y_i}, \qquad
       \mathrm{mean} = \frac{\sum_i m_i \ell_i}{\sum_i m_i}

    and :math:`-\sum_c \alpha_c g_{ic} (1 - p_{ic})^\gamma \log p_{ic}` for dense targets. A
    scalar :math:`\alpha` gives :math:`1 - \alpha` to the background class 0 and :math:`\alpha`
    to the other classes (MONAI's ``FocalLoss`` rule); a vector gives one factor per class.

    Sigmoid form, per channel, with :math:`p_t = p g + (1 - p)(1 - g)` and
    :math:`\alpha_t = \alpha g + (1 - \alpha)(1 - g)` (α scalar or per channel), averaged over the
    channels of a pixel (optax ``sigmoid_focal_loss``, torchvision ``sigmoid_focal_loss``):

    .. math::

       \ell_{ic} = -\alpha_t (1 - p_t)^{\gamma} \bigl[g \log p + (1 - g) \log(1 - p)\bigr]

    The factor is computed as :math:`\exp(\gamma \log(1 - p_t))` from log-probabilities, so
    values, gradients and Hessians stay finite at logits of ±100 and gradients stay finite for
    :math:`0 < \gamma < 1` at saturated predictions. With :math:`\gamma = 0` and no α the loss is
    exactly :func:`cross_entropy_loss`. α is a balancing factor, not a class weight: the mean
    divides by the pixel count, as in Lin et al., optax, torchvision and MONAI.

    Args:
      <logit args>
      gamma: the focusing exponent :math:`\gamma \ge 0` (2 in Lin et al.).
      alpha: ``None``, a scalar in [0, 1], or ``[C]`` per-class factors.
      <data args>
      <reduce args>

    Returns:
      A float32 scalar, or ``[B]`` for ``reduction="none"``; 0 without any valid pixel.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 2.0], [1.0, 0.0]]])
      >>> labels = jnp.array([[0, 1, 1]])
      >>> print(f"{jsl.focal_loss(logits, labels, gamma=2.0):.4f}")
      0.2352
      >>> ce = jsl.cross_entropy_loss(logits, labels)
      >>> bool(jsl.focal_loss(logits, labels, gamma=0.0) == ce)
      True

    References:
      Lin, Goyal, Girshick, He & Dollár, "Focal Loss for Dense Object Detection", ICCV 2017.
    """
    _checks.check_choice("activation", activation, _checks.ACTIVATIONS)
    return _focal_loss(
        logits,
        labels,
        gamma=gamma,
        alpha=alpha,
        activation=activation,
        class_axis=class_axis,
        ignore_index=ignore_index,
        mask=mask,
        axis_name=axis_name,
        reduction=reduction,
    )


@_shares_docs
def focal_map(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    gamma: ArrayLike = 2.0,
    alpha: ArrayLike | None = None,
    activation: str | None = "softmax",
    class_axis: int = -1,
    ignore_index: int | None = None,
    mask: ArrayLike | None = None,
) -> jax.Array:
    r"""Computes the unreduced focal loss of every pixel.

    .. math::

       \mathrm{map}_i = m_i \ell_i

    with :math:`\ell_i` as in :func:`focal_loss` and :math:`m_i` the pixel weight (0 at ignored
    and masked pixels); the map sums to ``focal_loss(..., reduction="sum")``.

    Args:
      <logit args>
      gamma: the focusing exponent :math:`\gamma \ge 0`.
      alpha: ``None``, a scalar in [0, 1], or ``[C]`` per-class factors.
      <data args>

    Returns:
      ``[B, *spatial]`` float32 per-pixel losses.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 2.0], [1.0, 0.0]]])
      >>> labels = jnp.array([[0, 0, 1]])
      >>> print(jnp.round(jsl.focal_map(logits, labels, gamma=2.0), 4))
      [[0.0018 1.6501 0.7019]]

    References:
      Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017.
    """
    _checks.check_choice("activation", activation, _checks.ACTIVATIONS)
    _check_focal_options(gamma, alpha)
    inputs = _canonical(
        logits,
        labels,
        activation=activation,
        class_axis=class_axis,
        ignore_index=ignore_index,
        mask=mask,
    )
    loss, _ = _focal_terms(inputs, gamma=gamma, alpha=alpha)
    return _unflatten(inputs.weights * loss, inputs)
