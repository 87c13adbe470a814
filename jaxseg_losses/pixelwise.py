r"""Pixel-wise losses: cross-entropy (weighted, label-smoothed) and focal loss.

Each pixel contributes its own loss :math:`\ell_i`, and each sample's loss is a weighted mean
over its valid pixels. With pixel weights :math:`m_i` (``mask`` times ``labels != ignore_index``)
and a normaliser :math:`v_i` per pixel (the class weight of its label for weighted
cross-entropy, 1 otherwise),

.. math::

   \mathrm{none}_b = \frac{\sum_{i \in b} m_i \ell_i}{\sum_{i \in b} m_i v_i}, \qquad
   \mathrm{mean} = \frac{\sum_i m_i \ell_i}{\sum_i m_i v_i}, \qquad
   \mathrm{sum} = \sum_b \mathrm{none}_b,

so ``"mean"`` is PyTorch's ``CrossEntropyLoss`` reduction (the mean over all valid pixels of the
batch: each sample weighs as much as its valid pixels) and ``"none"`` gives each sample's own
mean, ``[B]``. This is the library's one reduction policy (``reduction`` acts on per-sample
values). A sample or batch without a valid pixel has loss 0 and gradient 0. The unreduced
per-pixel losses :math:`m_i \ell_i` (``[B, *spatial]``, 0 at ignored pixels) come from
:func:`cross_entropy_map` and :func:`focal_map`, for hard-pixel mining or display; their sum is
PyTorch's ``reduction="sum"`` (a sum over pixels).

Three forms, picked by ``activation`` and the number of channels :math:`C`:

* categorical (``"softmax"``, or ``None`` with :math:`C \ge 2` for probabilities that sum to 1):
  :math:`\ell_i = -\sum_c g_{ic} \log p_{ic}`, one exclusive class per pixel;
* binary / multi-label (``"sigmoid"``, or ``None`` with :math:`C = 1`): binary cross-entropy per
  channel, averaged over the channels of the pixel (PyTorch's ``BCEWithLogitsLoss`` mean);
* integer labels are gathered (the label's logit minus the log-sum-exp), never one-hot encoded.

Everything is computed in log space (log-sum-exp, ``log_sigmoid``); with ``activation=None``
the logarithm of a probability is clamped at :math:`\max(-100, \tfrac12 \ln \mathrm{tiny})`
(-43.7 in float32; PyTorch's ``BCELoss`` clamps at -100), so a probability of exactly 0 or 1
gives finite values, gradients and Hessians. Computation and output are float32 for
bf16/f16/f32 inputs.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg_losses import _checks
from jaxseg_losses._core import LossDefinition, define_loss
from jaxseg_losses._inputs import Inputs, prepare, safe_log

ArrayLike = jax.typing.ArrayLike

# ----------------------------------------------------------------------------------------------
# Numerics.


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
# Options.


def _class_option(name: str, value: Any, num_classes: int, dtype: Any) -> jax.Array:
    """A scalar or ``[C]`` option, returned as ``[1, 1, C]`` for ``[B, P, C]`` arrays."""
    array = jnp.asarray(value, dtype=dtype)
    if array.ndim == 0:
        return jnp.broadcast_to(array, (1, 1, num_classes))
    return _checks.class_vector(name, array, num_classes, dtype, rank=3)


def _check_ce_options(class_weights: Any, pos_weight: Any, label_smoothing: Any) -> None:
    _checks.check_in_unit_interval("label_smoothing", label_smoothing, closed_right=False)
    for name, value in (("class_weights", class_weights), ("pos_weight", pos_weight)):
        if value is not None:
            _checks.check_real(name, value, vector=True)


def _check_focal_options(gamma: Any, alpha: Any) -> None:
    _checks.check_nonnegative("gamma", gamma)
    if alpha is not None:
        _checks.check_real("alpha", alpha, high=1.0, vector=True)


def _at_labels(vector: jax.Array, labels: jax.Array) -> jax.Array:
    """``vector[0, 0, labels]``: a ``[1, 1, C]`` class vector read at each pixel's label."""
    return jnp.take(vector[0, 0], labels, mode="clip")


# ----------------------------------------------------------------------------------------------
# Per-pixel terms: (loss l_i, normaliser v_i), both [B, P], before the pixel weights m_i.


def _cross_entropy_terms(
    inputs: Inputs,
    *,
    class_weights: ArrayLike | None,
    pos_weight: ArrayLike | None,
    label_smoothing: Any,
) -> tuple[jax.Array, jax.Array | None]:
    dtype, num_classes = inputs.dtype, inputs.num_classes
    smoothing = label_smoothing
    smooth = not _is_static_zero(smoothing)
    weights = None
    if class_weights is not None:
        weights = _checks.class_vector("class_weights", class_weights, num_classes, dtype, rank=3)

    if inputs.is_binary:
        g = inputs.dense_targets()
        if smooth:
            # Keras' binary rule: pull each target towards 1/2, the uniform binary distribution.
            g = g * (1.0 - smoothing) + 0.5 * smoothing
        log_p, log_q = inputs.binary_log_probabilities()
        rho = None
        if pos_weight is not None:
            rho = _class_option("pos_weight", pos_weight, num_classes, dtype)
        per_channel = _binary_cross_entropy(g, log_p, log_q, rho)
        if weights is not None:
            per_channel = per_channel * weights
        return jnp.mean(per_channel, axis=-1), None

    if pos_weight is not None:
        raise ValueError(
            "`pos_weight` weighs the positive term of the binary (sigmoid) cross-entropy; with "
            f"activation={inputs.activation!r} and {num_classes} classes the loss is "
            "categorical. Use `class_weights` to weigh classes."
        )
    if inputs.labels is not None:
        labels = inputs.labels
        nll = -inputs.label_log_probability()
        label_weight = None
        if weights is not None:
            label_weight = _at_labels(weights, labels)
            nll = nll * label_weight
        if smooth:
            # PyTorch: (1 - ε) w_y (-log p_y) + ε/C Σ_c w_c (-log p_c), normalised by Σ w_y.
            neg_log_p = -inputs.log_probabilities()
            if weights is not None:
                neg_log_p = neg_log_p * weights
            nll = (1.0 - smoothing) * nll + (smoothing / num_classes) * jnp.sum(neg_log_p, axis=-1)
        return nll, label_weight

    targets = inputs.dense_targets()
    smoothed = targets
    if smooth:
        smoothed = targets * (1.0 - smoothing) + smoothing / num_classes
    log_p = inputs.log_probabilities()
    if weights is None:
        return -jnp.sum(smoothed * log_p, axis=-1), None
    # The normaliser is the target's expected class weight Σ_c w_c g_c: w_y for a one-hot row,
    # so dense one-hot targets and integer labels give the same weighted mean.
    loss = -jnp.sum(weights * smoothed * log_p, axis=-1)
    return loss, jnp.sum(weights * targets, axis=-1)


def _focal_terms(inputs: Inputs, *, gamma: Any, alpha: ArrayLike | None) -> jax.Array:
    x = inputs.logits
    dtype, num_classes = inputs.dtype, inputs.num_classes
    focus = not _is_static_zero(gamma)

    if inputs.is_binary:
        g = inputs.dense_targets()
        log_p, log_q = inputs.binary_log_probabilities()
        loss = _binary_cross_entropy(g, log_p, log_q)
        if focus:
            # 1 - p_t = p (1 - g) + (1 - p) g, in log space; logsumexp drops terms whose b is 0.
            log_one_minus_pt = jax.nn.logsumexp(
                jnp.stack([log_p, log_q], axis=-1), axis=-1, b=jnp.stack([1.0 - g, g], axis=-1)
            )
            loss = _focal_factor(log_one_minus_pt, gamma) * loss
        if alpha is not None:
            a = _class_option("alpha", alpha, num_classes, dtype)
            loss = (a * g + (1.0 - a) * (1.0 - g)) * loss
        return jnp.mean(loss, axis=-1)

    if alpha is None:
        alpha_c = None
    elif np.ndim(alpha) == 0:
        # The binary convention for exclusive classes (MONAI): 1 - α for the background class 0,
        # α for every foreground class.
        a = jnp.asarray(alpha, dtype)
        alpha_c = jnp.concatenate([(1.0 - a)[None], jnp.broadcast_to(a, (num_classes - 1,))])
        alpha_c = alpha_c.reshape(1, 1, num_classes)
    else:
        alpha_c = _checks.class_vector("alpha", alpha, num_classes, dtype, rank=3, high=1.0)

    if inputs.labels is not None:
        labels = inputs.labels
        log_p = inputs.label_log_probability()
        loss = -log_p
        if focus:
            if inputs.activation == "softmax":
                log_one_minus_p = _log1mexp(log_p)
            else:
                log_one_minus_p = safe_log(1.0 - inputs.label_logit())
            loss = _focal_factor(log_one_minus_p, gamma) * loss
        if alpha_c is not None:
            loss = _at_labels(alpha_c, labels) * loss
        return loss

    log_p = inputs.log_probabilities()
    if focus:
        if inputs.activation == "softmax":
            log_one_minus_p = _log1mexp(log_p)
        else:
            log_one_minus_p = safe_log(1.0 - x)
        log_p = _focal_factor(log_one_minus_p, gamma) * log_p
    per_class = inputs.dense_targets() * log_p
    if alpha_c is not None:
        per_class = alpha_c * per_class
    return -jnp.sum(per_class, axis=-1)


# ----------------------------------------------------------------------------------------------
# Docstrings.

_CE_ARGS = """\
      logits: ``[B, *spatial, C]`` float logits (probabilities when ``activation=None``), any
        float dtype; 1-D, 2-D or 3-D spatial shape.
      labels: ``[B, *spatial]`` integer class indices, or ``[B, *spatial, C]`` dense float
        targets (one-hot or soft), laid out like ``logits``."""

_MAP_ARGS = """\
      activation: ``"softmax"`` (categorical, C >= 2), ``"sigmoid"`` (binary with C == 1, or
        multi-label with dense targets) or ``None`` (``logits`` are probabilities: categorical
        for C >= 2, binary for C == 1).
      class_axis: the axis of ``logits`` holding the classes (``1`` for NCHW)."""

_MASK_ARGS = """\
      ignore_index: a label value whose pixels count nowhere (e.g. 255).
      mask: ``[B, *spatial]`` bool or float pixel weights; weight 0 removes a pixel."""


def _shares_docs(fn: Any) -> Any:
    fn.__doc__ = (
        fn.__doc__.replace("      <logit args>", _CE_ARGS)
        .replace("      <map args>", _MAP_ARGS)
        .replace("      <mask args>", _MASK_ARGS)
    )
    return fn


def _pixel_map(
    pixel_loss: Any,
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    activation: str | None,
    class_axis: int,
    ignore_index: int | None,
    mask: ArrayLike | None,
) -> jax.Array:
    """``m_i ℓ_i`` as ``[B, *spatial]``, for a per-pixel loss of :class:`Inputs`."""
    inputs = prepare(
        logits,
        labels,
        activation=activation,
        class_axis=class_axis,
        ignore_index=ignore_index,
        mask=mask,
    )
    out = pixel_loss(inputs)
    loss = out[0] if isinstance(out, tuple) else out
    return inputs.unflatten(inputs.weights * loss)


# ----------------------------------------------------------------------------------------------
# Public API.


@define_loss
@_shares_docs
def cross_entropy_loss(
    *,
    class_weights: ArrayLike | None = None,
    pos_weight: ArrayLike | None = None,
    label_smoothing: ArrayLike = 0.0,
) -> LossDefinition:
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
      <data args>
      class_weights: ``[C]`` class weights: the weighted mean above for the categorical form, a
        per-channel factor for the sigmoid form.
      pos_weight: scalar or ``[C]`` weight of the positive term of the sigmoid form (e.g.
        negatives / positives); an error for the categorical form.
      label_smoothing: :math:`\varepsilon \in [0, 1)`.
      <shared args>

    Returns:
      A float32 scalar (float64 for float64 logits under x64), or ``[B]`` for
      ``reduction="none"``. Without any valid pixel the loss is 0, with zero gradient. An
      integer label outside ``[0, C)`` that is not ``ignore_index`` makes value and gradient
      NaN (a forgotten ``ignore_index=255`` shows at once; :func:`jaxseg_losses.checked` names
      it).

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
    _check_ce_options(class_weights, pos_weight, label_smoothing)
    return LossDefinition.pixel_mean(
        lambda inputs: _cross_entropy_terms(
            inputs,
            class_weights=class_weights,
            pos_weight=pos_weight,
            label_smoothing=label_smoothing,
        )
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
    0 at ignored and masked pixels. Its sum is PyTorch's ``reduction="sum"`` (a sum over pixels;
    ``cross_entropy_loss(..., reduction="sum")`` adds the per-sample means instead).

    .. math::

       \mathrm{map}_i = m_i \ell_i

    Args:
      <logit args>
      <map args>
      class_weights: ``[C]`` class weights (see :func:`cross_entropy_loss`).
      pos_weight: scalar or ``[C]`` positive weight of the sigmoid form.
      label_smoothing: :math:`\varepsilon \in [0, 1)`.
      <mask args>

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
    _check_ce_options(class_weights, pos_weight, label_smoothing)
    return _pixel_map(
        lambda inputs: _cross_entropy_terms(
            inputs,
            class_weights=class_weights,
            pos_weight=pos_weight,
            label_smoothing=label_smoothing,
        ),
        logits,
        labels,
        activation=activation,
        class_axis=class_axis,
        ignore_index=ignore_index,
        mask=mask,
    )


@define_loss
@_shares_docs
def focal_loss(*, gamma: ArrayLike = 2.0, alpha: ArrayLike | None = None) -> LossDefinition:
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
      <data args>
      gamma: the focusing exponent :math:`\gamma \ge 0` (2 in Lin et al.).
      alpha: ``None``, a scalar in [0, 1], or ``[C]`` per-class factors.
      <shared args>

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
    _check_focal_options(gamma, alpha)
    return LossDefinition.pixel_mean(lambda inputs: _focal_terms(inputs, gamma=gamma, alpha=alpha))


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
    and masked pixels); its sum is the sum over pixels (``focal_loss(..., reduction="sum")``
    adds the per-sample means instead).

    Args:
      <logit args>
      <map args>
      gamma: the focusing exponent :math:`\gamma \ge 0`.
      alpha: ``None``, a scalar in [0, 1], or ``[C]`` per-class factors.
      <mask args>

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
    _check_focal_options(gamma, alpha)
    return _pixel_map(
        lambda inputs: _focal_terms(inputs, gamma=gamma, alpha=alpha),
        logits,
        labels,
        activation=activation,
        class_axis=class_axis,
        ignore_index=ignore_index,
        mask=mask,
    )
