r"""The per-pixel terms that the cross-entropy family and the focal loss share.

Each term is ``(loss l_i, normaliser v_i)``, both ``[B, P]``, before the pixel weights
:math:`m_i`; a pixel-wise loss of a sample is :math:`\sum_i m_i \ell_i / \sum_i m_i v_i`. Every
form is computed in log space: the label's log-probability from the shared log-sum-exp,
``log_sigmoid`` for binary channels, :math:`\log(1 - e^{x})` without cancellation.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxseg_losses._core import checks as _checks
from jaxseg_losses._core.inputs import Inputs, prepare

ArrayLike = jax.typing.ArrayLike


def log1mexp(log_p: jax.Array) -> jax.Array:
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


def is_static_zero(value: Any) -> bool:
    return isinstance(value, int | float) and value == 0


def binary_cross_entropy(
    g: jax.Array, log_p: jax.Array, log_q: jax.Array, pos_weight: jax.Array | None = None
) -> jax.Array:
    """``-(ρ g log p + (1 - g) log(1 - p))`` per channel; shared by CE and focal (γ=0 ≡ CE)."""
    positive = g * log_p
    if pos_weight is not None:
        positive = positive * pos_weight
    return -(positive + (1.0 - g) * log_q)


def class_option(name: str, value: Any, num_classes: int, dtype: Any) -> jax.Array:
    """A scalar or ``[C]`` option, returned as ``[1, 1, C]`` for ``[B, P, C]`` arrays."""
    array = jnp.asarray(value, dtype=dtype)
    if array.ndim == 0:
        return jnp.broadcast_to(array, (1, 1, num_classes))
    return _checks.class_vector(name, array, num_classes, dtype, rank=3)


def check_ce_options(class_weights: Any, pos_weight: Any, label_smoothing: Any) -> None:
    _checks.check_in_unit_interval("label_smoothing", label_smoothing, closed_right=False)
    for name, value in (("class_weights", class_weights), ("pos_weight", pos_weight)):
        if value is not None:
            _checks.check_real(name, value, vector=True)


def at_labels(vector: jax.Array, labels: jax.Array) -> jax.Array:
    """``vector[0, 0, labels]``: a ``[1, 1, C]`` class vector read at each pixel's label."""
    return jnp.take(vector[0, 0], labels, mode="clip")


def cross_entropy_terms(
    inputs: Inputs,
    *,
    class_weights: ArrayLike | None,
    pos_weight: ArrayLike | None,
    label_smoothing: Any,
) -> tuple[jax.Array, jax.Array | None]:
    dtype, num_classes = inputs.dtype, inputs.num_classes
    smoothing = label_smoothing
    smooth = not is_static_zero(smoothing)
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
            rho = class_option("pos_weight", pos_weight, num_classes, dtype)
        per_channel = binary_cross_entropy(g, log_p, log_q, rho)
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
            label_weight = at_labels(weights, labels)
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


def pixel_map(
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
