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

import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg_losses._core import checks as _checks
from jaxseg_losses._core.classes import class_factors
from jaxseg_losses._core.docs import documented
from jaxseg_losses._core.engine import LossDefinition, define_loss, divide
from jaxseg_losses._core.inputs import Inputs, prepare, safe_log

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


def _check_focal_options(
    gamma: Any, alpha: Any, class_weights: Any = None, include_background: Any = True
) -> None:
    _checks.check_nonnegative("gamma", gamma)
    if alpha is not None:
        _checks.check_real("alpha", alpha, high=1.0, vector=True)
    if class_weights is not None:
        _checks.check_real("class_weights", class_weights, vector=True)
    _checks.check_bool("include_background", include_background)


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


def _focal_terms(
    inputs: Inputs,
    *,
    gamma: Any,
    alpha: ArrayLike | None,
    class_weights: ArrayLike | None = None,
    include_background: bool = True,
) -> jax.Array:
    x = inputs.logits
    dtype, num_classes = inputs.dtype, inputs.num_classes
    focus = not _is_static_zero(gamma)
    factors = class_factors(num_classes, dtype, class_weights, include_background, rank=3)

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
        if factors is not None:
            loss = factors * loss
        if not include_background:
            # MONAI drops channel 0 before its mean over channels.
            loss = loss[..., 1:]
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
        if factors is not None:
            loss = _at_labels(factors, labels) * loss
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
    if factors is not None:
        per_class = factors * per_class
    return -jnp.sum(per_class, axis=-1)


def _poly_terms(
    inputs: Inputs,
    *,
    epsilon: Any,
    class_weights: ArrayLike | None,
    label_smoothing: Any,
) -> tuple[jax.Array, jax.Array | None]:
    """Poly-1 per pixel: CE's terms plus ``ε Σ_c w_c g̃_c (1 - p_c)``, with CE's normaliser."""
    nll, normaliser = _cross_entropy_terms(
        inputs, class_weights=class_weights, pos_weight=None, label_smoothing=label_smoothing
    )
    miss = _expected_miss(inputs, class_weights=class_weights, label_smoothing=label_smoothing)
    return nll + epsilon * miss, normaliser


def _expected_miss(
    inputs: Inputs, *, class_weights: ArrayLike | None, label_smoothing: Any
) -> jax.Array:
    """``[B, P]``: ``Σ_c w_c g̃_c (1 - p_c)``, the weighted, smoothed probability of missing the
    target, weighted and smoothed as :func:`_cross_entropy_terms` weighs and smooths ``-log p``."""
    dtype, num_classes = inputs.dtype, inputs.num_classes
    smoothing = label_smoothing
    smooth = not _is_static_zero(smoothing)
    weights = None
    if class_weights is not None:
        weights = _checks.class_vector("class_weights", class_weights, num_classes, dtype, rank=3)

    if inputs.is_binary:
        g = inputs.dense_targets()
        if smooth:
            g = g * (1.0 - smoothing) + 0.5 * smoothing
        log_p, log_q = inputs.binary_log_probabilities()
        # 1 - p_t with p_t = g p + (1 - g)(1 - p): the probability of the wrong side.
        one_minus_pt = g * jnp.exp(log_q) + (1.0 - g) * jnp.exp(log_p)
        if weights is not None:
            one_minus_pt = one_minus_pt * weights
        return jnp.mean(one_minus_pt, axis=-1)

    if inputs.labels is not None:
        log_p_label = inputs.label_log_probability()
        p_label = inputs.label_logit() if inputs.activation is None else jnp.exp(log_p_label)
        miss = 1.0 - p_label
        if weights is not None:
            miss = miss * _at_labels(weights, inputs.labels)
        if smooth:
            every = 1.0 - inputs.probabilities()
            if weights is not None:
                every = every * weights
            miss = (1.0 - smoothing) * miss + (smoothing / num_classes) * jnp.sum(every, axis=-1)
        return miss

    smoothed = inputs.dense_targets()
    if smooth:
        smoothed = smoothed * (1.0 - smoothing) + smoothing / num_classes
    every = 1.0 - inputs.probabilities()
    if weights is not None:
        every = every * weights
    return jnp.sum(smoothed * every, axis=-1)


def _check_topk(k: Any) -> float:
    if isinstance(k, bool) or not isinstance(k, numbers.Real):
        raise TypeError(
            f"`k` must be a Python number, the percentage of pixels kept (static: it sets the "
            f"size of the top-k); got {type(k).__name__} {k!r}."
        )
    value = float(k)
    if not (math.isfinite(value) and 0 < value <= 100):
        raise ValueError(f"`k` must be a percentage in (0, 100]; got {k!r}.")
    return value


def _top_fraction_mean(loss: jax.Array, valid: jax.Array, k: float) -> jax.Array:
    r"""Mean of the largest ``⌊n k / 100⌋`` (at least 1) of the valid entries of each row.

    ``loss`` and ``valid`` are ``[N, P]``; ``n`` is the row's valid count. The static size of the
    top-k is that of a row whose every pixel is valid; the entries past the row's own count are
    masked out, so excluded pixels are never candidates and the result is the same as removing
    them. A row without a valid entry gives 0.
    """
    size = loss.shape[-1]
    largest = min(size, max(1, int(size * k / 100)))
    keys = jnp.where(valid, loss, -jnp.inf)
    top, _ = jax.lax.top_k(keys, largest)
    count = jnp.sum(valid, axis=-1).astype(loss.dtype)
    kept = jnp.where(count > 0, jnp.maximum(jnp.floor(count * k / 100.0), 1.0), 0.0)
    rank = jax.lax.broadcasted_iota(loss.dtype, top.shape, top.ndim - 1)
    chosen = rank < kept[:, None]
    total = jnp.sum(jnp.where(chosen, top, jnp.zeros((), loss.dtype)), axis=-1)
    return divide(total, kept)


# ----------------------------------------------------------------------------------------------
# Docstrings.


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
      <shared options>

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


@documented
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
      <data args>
      <map args>
      class_weights: ``[C]`` class weights (see :func:`cross_entropy_loss`).
      pos_weight: scalar or ``[C]`` positive weight of the sigmoid form.
      label_smoothing: :math:`\varepsilon \in [0, 1)`.
      <map mask args>

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
def poly_cross_entropy_loss(
    *,
    epsilon: ArrayLike = 1.0,
    class_weights: ArrayLike | None = None,
    label_smoothing: ArrayLike = 0.0,
) -> LossDefinition:
    r"""Computes the Poly-1 loss: cross-entropy plus :math:`\varepsilon (1 - p_t)` per pixel.

    The Taylor expansion of cross-entropy in :math:`1 - p_t` is
    :math:`\sum_{j \ge 1} (1 - p_t)^j / j`; PolyLoss perturbs its leading coefficient, which
    controls how strongly the gradient keeps pushing already-confident pixels (Leng et al.
    2022). Categorical form, with the smoothed targets :math:`\tilde g = (1 - s)\,g + s / C`
    (one-hot :math:`g` for integer labels) and class weights :math:`w`:

    .. math::

       \ell_i = \sum_c w_c\, \tilde g_{ic} \bigl[-\log p_{ic} + \varepsilon (1 - p_{ic})\bigr],
       \qquad \mathrm{mean} = \frac{\sum_i m_i \ell_i}{\sum_i m_i \sum_c w_c g_{ic}},

    which for a one-hot label without smoothing is :math:`w_y [-\log p_y + \varepsilon (1 -
    p_y)]`, normalised by :math:`\sum m_i w_{y_i}`, as :func:`cross_entropy_loss` (PyTorch's
    weighted mean). :math:`\varepsilon = 0` is exactly :func:`cross_entropy_loss`; the
    cross-entropy part reads the same shared statistics (log-sum-exp and the label's logit), so
    in :func:`~jaxseg_losses.combine` with CE or Dice nothing is computed twice. Sigmoid form,
    per channel, with :math:`p_t = \tilde g p + (1 - \tilde g)(1 - p)` and
    :math:`\tilde g = (1 - s) g + s / 2`: :math:`\ell_{ic} = w_c [\mathrm{BCE}_{ic} +
    \varepsilon (1 - p_t)]`, averaged over channels (Leng et al.'s Poly-1 for sigmoid outputs).
    Sums over pixels, so it adds over samples, micro-batches and devices like CE.

    Peers: optax ``poly_loss_cross_entropy(logits, one_hot, epsilon=e)`` is :math:`\ell_i`
    with ``epsilon=e`` and ``reduction="none"`` per pixel (optax's default ε is 2, this
    function's 1, the value of the paper's Poly-1 formula); pass
    ``optax.smooth_labels(one_hot, s)`` there for ``label_smoothing=s``. The paper's
    TensorFlow snippet (``poly1_cross_entropy``) smooths the labels the same way.

    Args:
      <data args>
      epsilon: the coefficient :math:`\varepsilon` of the first polynomial term; a real number
        :math:`\ge -1` (the loss stays non-negative; the paper uses 2 for ImageNet and -1 for
        detection), default 1.
      class_weights: ``[C]`` class weights, as in :func:`cross_entropy_loss`.
      label_smoothing: :math:`s \in [0, 1)`.
      <shared options>

    Returns:
      A float32 scalar, or ``[B]`` for ``reduction="none"``; 0 without any valid pixel.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 2.0], [1.0, 0.0]]])   # [B=1, P=3, C=2]
      >>> labels = jnp.array([[0, 1, 255]])
      >>> loss = jsl.poly_cross_entropy_loss(logits, labels, ignore_index=255)
      >>> print(f"{loss:.4f}")   # ln(1 + e^-2) + 1 - σ(2)
      0.2461
      >>> ce = jsl.cross_entropy_loss(logits, labels, ignore_index=255)
      >>> bool(jsl.poly_cross_entropy_loss(logits, labels, epsilon=0.0, ignore_index=255) == ce)
      True

    References:
      Leng, Tan, Liu, Cubuk, Shi, Cheng, Anguelov & Tan, "PolyLoss: A Polynomial Expansion
      Perspective of Classification Loss Functions", ICLR 2022.
    """
    _checks.check_real("epsilon", epsilon, low=-1.0)
    _check_ce_options(class_weights, None, label_smoothing)
    return LossDefinition.pixel_mean(
        lambda inputs: _poly_terms(
            inputs,
            epsilon=epsilon,
            class_weights=class_weights,
            label_smoothing=label_smoothing,
        )
    )


@define_loss
def topk_cross_entropy_loss(
    *,
    k: float = 10.0,
    class_weights: ArrayLike | None = None,
    label_smoothing: ArrayLike = 0.0,
) -> LossDefinition:
    r"""Computes the top-k cross-entropy: the mean of the largest k % of the pixel losses.

    Hard-pixel mining (nnU-Net's ``TopKLoss``, after Wu et al. 2016's bootstrapped CE): only
    the worst-predicted pixels train, so the many easy background pixels stop diluting the
    gradient. With :math:`\ell_i` the per-pixel cross-entropy of :func:`cross_entropy_map`
    (class weights and smoothing included, :math:`w_{y_i}(-\log p_{iy_i})` without smoothing),
    :math:`V` the valid pixels of a row (a sample, or the batch with ``aggregate="batch"``) and
    :math:`T` the :math:`n = \max(1, \lfloor |V| k / 100 \rfloor)` largest :math:`\ell_i` in
    :math:`V`:

    .. math::

       \ell = \frac{1}{n} \sum_{i \in T} \ell_i

    (a plain mean: class weights scale the pixel losses, they do not renormalise). Ignored and
    masked pixels are not candidates at all, exactly as if they were removed; ``mask`` is binary
    here (weight ``> 0`` keeps a pixel), as for the Lovász losses. ``k`` is static: the top-k has
    the static size of a row whose every pixel is valid, and the entries past a row's own
    :math:`n` are masked out, so the loss jits with any mask. Gradients flow to the selected
    pixels only; the selection itself is piecewise constant.

    ``aggregate="sample"`` (the default) selects within each sample: the per-sample values add
    over samples, micro-batches and devices (``axis_name``, ``accumulate``), and the mean over
    samples is taken as for every loss. ``aggregate="batch"`` selects over the whole batch
    (nnU-Net): that is not a sum over pixels, so it cannot be split over micro-batches or a
    mapped axis, and is refused there with a ``ValueError`` (under ``jax.jit`` on sharded arrays
    it needs no ``axis_name``).

    Peers: nnU-Net's ``TopKLoss(k=k, ignore_index=255)`` on ``[B, C, *spatial]`` logits equals
    ``k=k, aggregate="batch", class_axis=1`` when no pixel is ignored. nnU-Net takes
    :math:`\lfloor N k / 100 \rfloor` of all :math:`N` voxels, ignored ones included (their loss
    0 can then be selected and dilutes the mean); here ignored pixels are removed from the
    candidates and the count, which is what slicing them away would give. nnU-Net's count can
    be 0 (a NaN mean for tiny inputs); here it is at least 1.

    Args:
      <data args>
      k: the percentage of the valid pixels kept, a Python number in (0, 100] (default 10,
        nnU-Net's); ``k=100`` is the cross-entropy mean.
      class_weights: ``[C]`` factors of each pixel's loss by its label's class.
      label_smoothing: :math:`s \in [0, 1)`, as in :func:`cross_entropy_loss`.
      <shared options>

    Returns:
      A float32 scalar, or ``[B]`` for ``reduction="none"``; 0 without any valid pixel.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 2.0], [1.0, 0.0], [0.0, 1.0]]])   # [1, 4, 2]
      >>> labels = jnp.array([[0, 0, 1, 255]])
      >>> jsl.cross_entropy_map(logits, labels, ignore_index=255).round(4)
      Array([[0.1269, 2.1269, 1.3133, 0.    ]], dtype=float32)
      >>> loss = jax.jit(lambda x, y: jsl.topk_cross_entropy_loss(x, y, k=70.0, ignore_index=255))
      >>> print(f"{loss(logits, labels):.4f}")   # ⌊3 · 0.7⌋ = 2 pixels: (2.1269 + 1.3133) / 2
      1.7201

    References:
      Wu, Shen & van den Hengel, "Bridging Category-level and Instance-level Semantic Image
      Segmentation", arXiv:1605.06885, 2016 (online bootstrapping). Isensee et al., "nnU-Net",
      Nature Methods 2021 (``TopKLoss``).
    """
    k = _check_topk(k)
    _check_ce_options(class_weights, None, label_smoothing)

    def sums(inputs: Inputs) -> dict[str, jax.Array]:
        loss, _ = _cross_entropy_terms(
            inputs, class_weights=class_weights, pos_weight=None, label_smoothing=label_smoothing
        )
        return {"loss": _top_fraction_mean(loss, inputs.weights > 0, k)}

    return LossDefinition(sums=sums, finish=lambda s: s["loss"], pools=False)


@define_loss
def focal_loss(
    *,
    gamma: ArrayLike = 2.0,
    alpha: ArrayLike | None = None,
    class_weights: ArrayLike | None = None,
    include_background: bool = True,
) -> LossDefinition:
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
    exactly :func:`cross_entropy_loss`.

    ``class_weights`` :math:`w_c` multiply the term of class :math:`c` (the class of the label,
    or each channel of the sigmoid form), and ``include_background=False`` drops class 0's term
    (the pixels labelled 0 for integer labels; channel 0 of the sigmoid form, whose mean then
    runs over the :math:`C - 1` other channels). Neither α nor :math:`w` renormalises: the mean
    divides by the valid pixel count :math:`\sum_i m_i`, as in Lin et al., optax and
    torchvision.

    Peers: MONAI ``FocalLoss(gamma=γ, alpha=a, weight=w, include_background=ib,
    use_softmax=False, reduction="mean")`` on one-hot targets is ``activation="sigmoid",
    gamma=γ, alpha=a, class_weights=w, include_background=ib`` exactly (MONAI's mean over
    :math:`B \cdot C \cdot H \cdot W` elements is the mean over pixels of the mean over
    channels). Its softmax form, ``FocalLoss(use_softmax=True, to_onehot_y=True,
    reduction="mean")``, also averages over :math:`B \cdot C \cdot H \cdot W` elements of which
    only the label's is non-zero, so it is this loss divided by :math:`C`; with
    ``include_background=False`` MONAI takes the softmax over the :math:`C - 1` foreground
    channels only (a different distribution) and divides by :math:`C - 1`, while here the
    softmax keeps every class and only the term of class 0 is dropped. optax
    ``sigmoid_focal_loss(logits, labels, alpha, gamma)`` is the sigmoid form per element
    (``.mean()`` of it is ``reduction="mean"``); torchvision's ``sigmoid_focal_loss`` likewise.

    Args:
      <data args>
      gamma: the focusing exponent :math:`\gamma \ge 0` (2 in Lin et al.).
      alpha: ``None``, a scalar in [0, 1], or ``[C]`` per-class factors.
      class_weights: ``None`` or ``[C]`` non-negative factors of each class's term (MONAI's
        ``weight``).
      include_background: ``False`` drops the term of class 0 (channel 0).
      <shared options>

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
    _check_focal_options(gamma, alpha, class_weights, include_background)
    return LossDefinition.pixel_mean(
        lambda inputs: _focal_terms(
            inputs,
            gamma=gamma,
            alpha=alpha,
            class_weights=class_weights,
            include_background=include_background,
        )
    )


@documented
def focal_map(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    gamma: ArrayLike = 2.0,
    alpha: ArrayLike | None = None,
    class_weights: ArrayLike | None = None,
    include_background: bool = True,
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
      <data args>
      <map args>
      gamma: the focusing exponent :math:`\gamma \ge 0`.
      alpha: ``None``, a scalar in [0, 1], or ``[C]`` per-class factors.
      class_weights: ``None`` or ``[C]`` factors of each class's term.
      include_background: ``False`` drops the term of class 0.
      <map mask args>

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
    _check_focal_options(gamma, alpha, class_weights, include_background)
    return _pixel_map(
        lambda inputs: _focal_terms(
            inputs,
            gamma=gamma,
            alpha=alpha,
            class_weights=class_weights,
            include_background=include_background,
        ),
        logits,
        labels,
        activation=activation,
        class_axis=class_axis,
        ignore_index=ignore_index,
        mask=mask,
    )


@define_loss(activations=("sigmoid",))
def binary_cross_entropy_loss(
    *,
    class_weights: ArrayLike | None = None,
    pos_weight: ArrayLike | None = None,
    label_smoothing: ArrayLike = 0.0,
) -> LossDefinition:
    r"""The sigmoid cross-entropy, registered as ``"bce"``.

    :func:`jaxseg_losses.cross_entropy_loss` with ``activation="sigmoid"`` fixed, so that a
    combination such as ``combine("bce+dice", activation="sigmoid")`` or a softmax combination
    with a binary side term can name it (PyTorch ``BCEWithLogitsLoss``).

    Args:
      <data args>
      class_weights: ``[C]`` per-channel factors.
      pos_weight: scalar or ``[C]`` weight of the positive term.
      label_smoothing: :math:`\varepsilon \in [0, 1)`, targets pulled towards 1/2.
      <shared options>

    Returns:
      A float32 scalar, or ``[B]`` for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> logits = jnp.array([[[2.0], [-1.0]]])   # [B=1, P=2, C=1]
      >>> labels = jnp.array([[1, 0]])
      >>> total, parts = jsl.combine("bce+dice", activation="sigmoid")(logits, labels)
      >>> print(f"{parts['bce']:.4f}")   # (ln(1 + e^-2) + ln(1 + e^-1)) / 2
      0.2201
    """
    return cross_entropy_loss.definition(
        class_weights=class_weights, pos_weight=pos_weight, label_smoothing=label_smoothing
    )
