r"""The focal loss: cross-entropy with easy pixels down-weighted.

.. math::

   \ell_i = -\alpha_{y_i} (1 - p_{i,y_i})^\gamma \log p_{i,y_i}

for exclusive classes (and its per-channel binary form for sigmoid outputs), a weighted mean over
the valid pixels of each sample like every pixel-wise loss (:mod:`jaxseg_losses.losses.pixelwise`
describes the reduction and the three forms). The focal factor is computed in log space,
:math:`(1 - p)^\gamma = e^{\gamma \log(1 - p)}`, so values, gradients and Hessians stay finite at
logits of ±100.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg_losses._core import checks as _checks
from jaxseg_losses._core.classes import class_factors
from jaxseg_losses._core.define import define_loss
from jaxseg_losses._core.definition import LossDefinition
from jaxseg_losses._core.docs import documented
from jaxseg_losses._core.inputs import Inputs, safe_log
from jaxseg_losses.losses import _pixel_terms as _terms

ArrayLike = jax.typing.ArrayLike


def _focal_factor(log_one_minus_p: jax.Array, gamma: Any) -> jax.Array:
    r""":math:`(1 - p)^\gamma` as :math:`\exp(\gamma \log(1 - p))`: finite slopes for any γ ≥ 0."""
    return jnp.exp(gamma * log_one_minus_p)


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
    focus = not _terms.is_static_zero(gamma)
    factors = class_factors(num_classes, dtype, class_weights, include_background, rank=3)

    if inputs.is_binary:
        g = inputs.dense_targets()
        log_p, log_q = inputs.binary_log_probabilities()
        loss = _terms.binary_cross_entropy(g, log_p, log_q)
        if focus:
            # 1 - p_t = p (1 - g) + (1 - p) g, in log space; logsumexp drops terms whose b is 0.
            log_one_minus_pt = jax.nn.logsumexp(
                jnp.stack([log_p, log_q], axis=-1), axis=-1, b=jnp.stack([1.0 - g, g], axis=-1)
            )
            loss = _focal_factor(log_one_minus_pt, gamma) * loss
        if alpha is not None:
            a = _terms.class_option("alpha", alpha, num_classes, dtype)
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
                log_one_minus_p = _terms.log1mexp(log_p)
            else:
                log_one_minus_p = safe_log(1.0 - inputs.label_logit())
            loss = _focal_factor(log_one_minus_p, gamma) * loss
        if alpha_c is not None:
            loss = _terms.at_labels(alpha_c, labels) * loss
        if factors is not None:
            loss = _terms.at_labels(factors, labels) * loss
        return loss

    log_p = inputs.log_probabilities()
    if focus:
        if inputs.activation == "softmax":
            log_one_minus_p = _terms.log1mexp(log_p)
        else:
            log_one_minus_p = safe_log(1.0 - x)
        log_p = _focal_factor(log_one_minus_p, gamma) * log_p
    per_class = inputs.dense_targets() * log_p
    if alpha_c is not None:
        per_class = alpha_c * per_class
    if factors is not None:
        per_class = factors * per_class
    return -jnp.sum(per_class, axis=-1)


def _focal_pixels(
    gamma: Any, alpha: Any, class_weights: Any, include_background: Any
) -> Callable[[Inputs], jax.Array]:
    """The focal loss of each pixel with these options (checked), for the loss and its map."""
    _checks.check_nonnegative("gamma", gamma)
    if alpha is not None:
        _checks.check_real("alpha", alpha, high=1.0, vector=True)
    if class_weights is not None:
        _checks.check_real("class_weights", class_weights, vector=True)
    _checks.check_bool("include_background", include_background)
    return functools.partial(
        _focal_terms,
        gamma=gamma,
        alpha=alpha,
        class_weights=class_weights,
        include_background=include_background,
    )


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
      <shared args>

    <pixel loss returns>

    Examples:
      <loss example setup>
      >>> print(f"{jsl.focal_loss(logits, labels, gamma=2.0):.4f}")
      0.2352
      >>> ce = jsl.cross_entropy_loss(logits, labels)
      >>> bool(jsl.focal_loss(logits, labels, gamma=0.0) == ce)
      True

    References:
      Lin, Goyal, Girshick, He & Dollár, "Focal Loss for Dense Object Detection", ICCV 2017.
    """
    return LossDefinition.pixel_mean(_focal_pixels(gamma, alpha, class_weights, include_background))


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

    <map returns>

    Examples:
      <map example setup>
      >>> labels = jnp.array([[0, 0, 1]])
      >>> print(jnp.round(jsl.focal_map(logits, labels, gamma=2.0), 4))
      [[0.0018 1.6501 0.7019]]

    References:
      Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017.
    """
    terms = _focal_pixels(gamma, alpha, class_weights, include_background)
    return _terms.pixel_map(terms, logits, labels, activation, class_axis, ignore_index, mask)
