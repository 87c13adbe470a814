r"""The asymmetric unified focal loss: an asymmetric focal loss plus an asymmetric focal Tversky.

Yeung et al. (2022) combine a distribution loss and a region loss, each made asymmetric: the
background class 0 is *suppressed* (its cross-entropy gets the focal factor, its Tversky term
stays linear) and the foreground is *enhanced* (plain cross-entropy, Tversky term raised to
:math:`1 - \gamma < 1`). With :math:`\hat p` the probabilities clamped to
:math:`[\epsilon, 1 - \epsilon]`, :math:`\epsilon = 10^{-7}` (as the authors and MONAI do),
and :math:`K` classes (two for a single sigmoid channel, read as :math:`[1 - p, p]`):

.. math::

   \mathrm{AF}_i = \frac{1}{K}\Bigl[-(1 - \delta)\,(1 - \hat p_{i0})^{\gamma}\, g_{i0}
       \log \hat p_{i0} \;-\; \delta \sum_{c \ge 1} g_{ic} \log \hat p_{ic}\Bigr], \qquad
   x_c = \frac{\delta\,FN_c + (1 - \delta)\,FP_c}{TP_c + \delta\,FN_c + (1 - \delta)\,FP_c
       + \epsilon},

.. math::

   \ell = w\, \frac{\sum_i m_i \mathrm{AF}_i}{\sum_i m_i}
        + (1 - w)\, \frac{1}{K}\Bigl[x_0 + \sum_{c \ge 1} x_c^{\,1 - \gamma}\Bigr],

with :math:`x_c = 1 - \mathrm{TI}_c` the Tversky loss of class :math:`c` from the clamped
soft counts :math:`TP_c = \sum_i m_i g_{ic} \hat p_{ic}`, :math:`FN_c = \sum_i m_i g_{ic}
(1 - \hat p_{ic})`, :math:`FP_c = \sum_i m_i (1 - g_{ic}) \hat p_{ic}`. The sums (the focal
sum, the pixel count and the three counts per class) are additive, so the loss pools over the
batch, devices and micro-batches. The logarithms are taken in log space (``log_softmax``,
``log_sigmoid``) and clamped at :math:`\log \epsilon` and :math:`\log(1 - \epsilon)`, which is
the authors' clamp of :math:`p` without ever forming :math:`\log 0`.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxseg_losses._core import checks as _checks
from jaxseg_losses._core.define import define_loss
from jaxseg_losses._core.definition import LossDefinition, divide
from jaxseg_losses._core.inputs import Inputs
from jaxseg_losses.losses import _pixel_terms as _terms

EPSILON = 1e-7


def _log_probabilities_and_targets(inputs: Inputs) -> tuple[jax.Array, jax.Array]:
    """``(log p, g)``, ``[B, P, K]`` each; one binary channel becomes ``[1 - p, p]``."""
    if inputs.activation == "sigmoid" and inputs.num_classes > 1:
        raise ValueError(
            "unified_focal_loss with activation='sigmoid' needs one binary channel; got "
            f"{inputs.num_classes} channels. Use activation='softmax' for exclusive classes."
        )
    targets = inputs.dense_targets()
    if inputs.is_binary:
        log_p, log_q = inputs.binary_log_probabilities()
        return jnp.concatenate([log_q, log_p], -1), jnp.concatenate([1.0 - targets, targets], -1)
    return inputs.log_probabilities(), targets


def _unified_sums(inputs: Inputs, gamma: Any, delta: Any) -> dict[str, jax.Array]:
    log_p, g = _log_probabilities_and_targets(inputs)
    # The authors' clamp of p to [ε, 1 - ε], in log space; it also bounds the focal factor's
    # slope, (1 - p0)^γ with γ < 1 being steep near p0 = 1.
    log_p = jnp.clip(log_p, math.log(EPSILON), math.log1p(-EPSILON))
    p = jnp.exp(log_p)
    cross_entropy = -g * log_p
    focal = jnp.exp(gamma * _terms.log1mexp(log_p[..., 0]))
    background = (1.0 - delta) * focal * cross_entropy[..., 0]
    foreground = delta * jnp.sum(cross_entropy[..., 1:], axis=-1)
    pixel = (background + foreground) / g.shape[-1]
    m = inputs.weights
    mw = m[..., None]
    return {
        "focal": jnp.sum(m * pixel, axis=1),
        "count": inputs.valid_count(),
        "tp": jnp.sum(mw * g * p, axis=1),
        "fn": jnp.sum(mw * g * (1.0 - p), axis=1),
        "fp": jnp.sum(mw * (1.0 - g) * p, axis=1),
    }


def _safe_power(x: jax.Array, exponent: Any) -> jax.Array:
    """``x ** exponent`` for ``x >= 0``, with value 0 and a finite (zero) slope at ``x = 0``."""
    positive = x > 0
    return jnp.where(positive, jnp.where(positive, x, 1.0) ** exponent, 0.0)


def _finish(sums: dict[str, jax.Array], weight: Any, gamma: Any, delta: Any) -> jax.Array:
    tp, fn, fp = sums["tp"], sums["fn"], sums["fp"]
    errors = delta * fn + (1.0 - delta) * fp
    # 1 - TI written as errors / (tp + errors + ε): no cancellation near a perfect overlap.
    tversky = errors / (tp + errors + EPSILON)
    per_class = jnp.concatenate(
        [tversky[..., :1], _safe_power(tversky[..., 1:], 1.0 - gamma)], axis=-1
    )
    focal = divide(sums["focal"], sums["count"])
    return weight * focal + (1.0 - weight) * jnp.mean(per_class, axis=-1)


@define_loss(activations=("softmax", "sigmoid", None))
def unified_focal_loss(
    *,
    weight: ArrayLike = 0.5,
    gamma: ArrayLike = 0.5,
    delta: ArrayLike = 0.7,
) -> LossDefinition:
    r"""Computes the asymmetric unified focal loss (Yeung et al. 2022).

    A weighted sum of two asymmetric terms for class-imbalanced segmentation: an asymmetric
    focal loss, whose focal factor :math:`(1 - p)^\gamma` fades only the background's easy
    pixels, and an asymmetric focal Tversky loss, whose exponent :math:`1 - \gamma` sharpens
    only the foreground's region term. :math:`\delta` weighs false negatives against false
    positives (and foreground against background in the focal term); :math:`w` weighs the two
    terms. Class 0 is the background; every other class is foreground (the paper and MONAI
    define the binary case, which this is for two classes or one sigmoid channel).

    .. math::

       \ell = w\, \overline{\mathrm{AF}} + (1 - w)\, \frac{1}{K}\Bigl[(1 - \mathrm{TI}_0)
              + \sum_{c \ge 1} (1 - \mathrm{TI}_c)^{1 - \gamma}\Bigr], \qquad
       \mathrm{TI}_c = \frac{TP_c + \epsilon}{TP_c + \delta FN_c + (1 - \delta) FP_c
       + \epsilon},

    with :math:`\overline{\mathrm{AF}}` the mean over valid pixels of
    :math:`\frac{1}{K}[-(1 - \delta)(1 - \hat p_0)^\gamma g_0 \log \hat p_0 - \delta \sum_{c
    \ge 1} g_c \log \hat p_c]`, :math:`\hat p` the probabilities clamped to
    :math:`[10^{-7}, 1 - 10^{-7}]` and :math:`K` the number of classes (2 for one sigmoid
    channel). The clamp (the authors' and MONAI's) leaves a pixel predicted beyond it without
    gradient, as in their implementations.

    Peers: MONAI ``AsymmetricUnifiedFocalLoss(to_onehot_y=True, num_classes=2, weight=w,
    gamma=γ, delta=δ)`` applies no activation despite its docstring: its input is
    probabilities, i.e. ``activation=None, weight=w, gamma=γ, delta=δ, class_axis=1`` here on
    the same ``[B, 2, *spatial]`` (or ``[B, 1, *spatial]``) input, with integer labels for
    ``to_onehot_y=True`` (pass ``labels[:, 0]``) and float one-hot labels otherwise. Its
    ``reduction`` acts on an already averaged scalar (its two terms are built with
    ``reduction="mean"``), so ``"sum"`` and ``"none"`` return that same mean; here ``"sum"``
    adds and ``"none"`` returns the per-sample losses, whose mean is MONAI's value when the
    samples have equal valid pixel counts. With MONAI's ``ignore_index``, ignored pixels still
    count in the pixel mean of its focal term and add :math:`\epsilon` to the false positives;
    here they count nowhere. MONAI reads only channels 0 and 1 of a wider input; here every
    class :math:`c \ge 1` is foreground. The authors' Keras code sums (rather than averages)
    the focal term over the two classes: their :math:`\overline{\mathrm{AF}}` is twice this
    one.

    Args:
      <data args>
      weight: :math:`w \in [0, 1]`, the share of the focal term (MONAI's ``weight``).
      gamma: :math:`\gamma \in [0, 1]`: the background's focal exponent and
        :math:`1 - \gamma` the foreground's Tversky exponent.
      delta: :math:`\delta \in [0, 1]`: the weight of false negatives in the Tversky index
        and of the foreground in the focal term.
      <shared args>

    <sample loss returns>

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> probs = jnp.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]])   # [B=1, P=3, K=2]
      >>> labels = jnp.array([[0, 1, 1]])
      >>> print(f"{jsl.unified_focal_loss(probs, labels, activation=None):.4f}")
      0.2749
      >>> x = jnp.array([[[-3.0], [2.0], [0.5]]])                      # one sigmoid channel
      >>> print(f"{jsl.unified_focal_loss(x, labels, activation='sigmoid'):.4f}")
      0.1856

    References:
      Yeung, Sala, Schönlieb & Rundo, "Unified Focal loss: Generalising Dice and cross
      entropy-based losses to handle class imbalanced medical image segmentation",
      Computerized Medical Imaging and Graphics 95, 2022.
    """
    _checks.check_real("weight", weight, high=1.0)
    _checks.check_real("gamma", gamma, high=1.0)
    _checks.check_real("delta", delta, high=1.0)
    return LossDefinition(
        sums=lambda inputs: _unified_sums(inputs, gamma, delta),
        finish=lambda sums: _finish(sums, weight, gamma, delta),
    )
