r"""The per-pixel terms that the cross-entropy family and the focal loss share.

Each term is ``(loss l_i, normaliser v_i)``, both ``[B, P]``, before the pixel weights
:math:`m_i`; a pixel-wise loss of a sample is :math:`\sum_i m_i \ell_i / \sum_i m_i v_i`. Every
form is computed in log space: the label's log-probability from the shared log-sum-exp,
``log_sigmoid`` for binary channels, :math:`\log(1 - e^{x})` without cancellation.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

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


class Weighting(NamedTuple):
    """How a cross-entropy-family term weighs classes and smooths targets."""

    weights: jax.Array | None  # [1, 1, C] class weights, or None
    smoothing: Any  # the label smoothing ε
    smooth: bool  # False when ε is a static 0 (nothing to compute)


def weighting(inputs: Inputs, class_weights: ArrayLike | None, label_smoothing: Any) -> Weighting:
    weights = None
    if class_weights is not None:
        weights = _checks.class_vector(
            "class_weights", class_weights, inputs.num_classes, inputs.dtype, rank=3
        )
    return Weighting(weights, label_smoothing, not is_static_zero(label_smoothing))


def weighted(x: jax.Array, w: Weighting) -> jax.Array:
    """``w_c x_c`` (``x`` unchanged without class weights)."""
    return x if w.weights is None else x * w.weights


def binary_targets(inputs: Inputs, w: Weighting) -> jax.Array:
    """Targets of the binary form; Keras' rule pulls each towards 1/2, the uniform binary
    distribution."""
    g = inputs.dense_targets()
    return g * (1.0 - w.smoothing) + 0.5 * w.smoothing if w.smooth else g


def smoothed_dense_targets(targets: jax.Array, w: Weighting, num_classes: int) -> jax.Array:
    """``(1 - ε) g + ε / C``: dense targets pulled towards the uniform distribution."""
    return targets * (1.0 - w.smoothing) + w.smoothing / num_classes if w.smooth else targets


def at_label_smoothed(
    label_term: jax.Array, every_class: Callable[[], jax.Array], inputs: Inputs, w: Weighting
) -> jax.Array:
    """``(1 - ε) w_y t_y + ε/C Σ_c w_c t_c`` for integer labels (PyTorch's label smoothing),
    from the label's term ``t_y`` ``[B, P]`` and, only when smoothing, every class's ``[B, P, C]``.
    """
    assert inputs.labels is not None
    if w.weights is not None:
        label_term = label_term * at_labels(w.weights, inputs.labels)
    if not w.smooth:
        return label_term
    spread = jnp.sum(weighted(every_class(), w), axis=-1)
    return (1.0 - w.smoothing) * label_term + (w.smoothing / inputs.num_classes) * spread


def cross_entropy_terms(
    inputs: Inputs,
    *,
    class_weights: ArrayLike | None,
    pos_weight: ArrayLike | None,
    label_smoothing: Any,
) -> tuple[jax.Array, jax.Array | None]:
    num_classes = inputs.num_classes
    w = weighting(inputs, class_weights, label_smoothing)
    if inputs.is_binary:
        log_p, log_q = inputs.binary_log_probabilities()
        rho = None
        if pos_weight is not None:
            rho = class_option("pos_weight", pos_weight, num_classes, inputs.dtype)
        per_channel = binary_cross_entropy(binary_targets(inputs, w), log_p, log_q, rho)
        return jnp.mean(weighted(per_channel, w), axis=-1), None

    if pos_weight is not None:
        raise ValueError(
            "`pos_weight` weighs the positive term of the binary (sigmoid) cross-entropy; with "
            f"activation={inputs.activation!r} and {num_classes} classes the loss is "
            "categorical. Use `class_weights` to weigh classes."
        )
    if inputs.labels is not None:
        # PyTorch: (1 - ε) w_y (-log p_y) + ε/C Σ_c w_c (-log p_c), normalised by Σ w_y.
        nll = at_label_smoothed(
            -inputs.label_log_probability(), lambda: -inputs.log_probabilities(), inputs, w
        )
        label_weight = None if w.weights is None else at_labels(w.weights, inputs.labels)
        return nll, label_weight

    targets = inputs.dense_targets()
    smoothed = smoothed_dense_targets(targets, w, num_classes)
    loss = -jnp.sum(weighted(smoothed * inputs.log_probabilities(), w), axis=-1)
    if w.weights is None:
        return loss, None
    # The normaliser is the target's expected class weight Σ_c w_c g_c: w_y for a one-hot row,
    # so dense one-hot targets and integer labels give the same weighted mean.
    return loss, jnp.sum(w.weights * targets, axis=-1)


def cross_entropy_pixels(
    class_weights: Any, pos_weight: Any, label_smoothing: Any
) -> Callable[[Inputs], tuple[jax.Array, jax.Array | None]]:
    """:func:`cross_entropy_terms` with these options (checked): what the cross-entropy loss,
    its map and the top-k loss compute per pixel."""
    check_ce_options(class_weights, pos_weight, label_smoothing)
    return functools.partial(
        cross_entropy_terms,
        class_weights=class_weights,
        pos_weight=pos_weight,
        label_smoothing=label_smoothing,
    )


def pixel_map(
    pixel_loss: Any,
    logits: ArrayLike,
    labels: ArrayLike,
    activation: str | None,
    class_axis: int,
    ignore_index: int | None,
    mask: ArrayLike | None,
) -> jax.Array:
    """``m_i ℓ_i`` as ``[B, *spatial]``, for a per-pixel loss of :class:`Inputs`."""
    inputs = prepare(logits, labels, activation, class_axis, ignore_index, mask)
    out = pixel_loss(inputs)
    loss = out[0] if isinstance(out, tuple) else out
    return inputs.unflatten(inputs.weights * loss)
