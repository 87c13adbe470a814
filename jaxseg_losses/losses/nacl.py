r"""The neighbour-aware calibration loss (NACL): cross-entropy plus a pull towards local labels.

Murugesan et al. (2023, 2024) add to the cross-entropy a linear (or quadratic) penalty between
each pixel's logits and the class proportions of its neighbourhood, the one-hot labels smoothed
by a spatial kernel :math:`k` (a box of side ``kernel_size`` averaged, or MONAI's erf-sampled
Gaussian of standard deviation ``sigma``):

.. math::

   t_{ic} = \sum_{j} k_{j - i}\, v_j\, g_{jc}, \qquad
   \ell_i = -\log p_{i y_i} + \frac{\alpha}{C} \sum_c \lVert t_{ic} - x_{ic} \rVert, \qquad
   \mathrm{mean} = \frac{\sum_i m_i \ell_i}{\sum_i m_i},

with :math:`x` the logits, :math:`\lVert\cdot\rVert` the absolute value (``"l1"``) or the square
(``"l2"``), :math:`m` the pixel weights and :math:`v_j = [m_j \neq 0]`. The kernel is applied
per spatial axis with zero padding ("same" size), as MONAI's filters do, and it is never
renormalised: a pixel outside the image and an excluded pixel (masked, or labelled
``ignore_index``) are the same thing to their neighbours, a label of nobody's class, so an
excluded pixel's label never enters another pixel's smoothed target. The loss is a weighted mean
over the valid pixels of each sample, like the pixel-wise losses.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxseg_losses._core import checks as _checks
from jaxseg_losses._core.define import define_loss
from jaxseg_losses._core.definition import LossDefinition
from jaxseg_losses._core.inputs import Inputs

KERNEL_OPS = ("mean", "gaussian")
DISTANCE_TYPES = ("l1", "l2")


def smoothing_kernel(kernel_ops: str, kernel_size: int, sigma: float) -> np.ndarray:
    """The 1-D kernel applied along every spatial axis (float64, not renormalised).

    ``"mean"``: ``kernel_size`` entries of ``1 / kernel_size``. ``"gaussian"``: MONAI's
    ``gaussian_1d(sigma, truncated=4, approx="erf")``, the Gaussian's mass over each unit cell
    of :math:`[-t, t]` with :math:`t = \\lfloor \\max(4\\sigma, 0.5) + 0.5 \\rfloor`
    (``kernel_size`` plays no part).
    """
    if kernel_ops == "mean":
        return np.full(kernel_size, 1.0 / kernel_size)
    tail = int(max(sigma * 4.0, 0.5) + 0.5)
    scale = 1.0 / (math.sqrt(2.0) * sigma)
    return np.array(
        [
            max(0.5 * (math.erf(scale * (x + 0.5)) - math.erf(scale * (x - 0.5))), 0.0)
            for x in range(-tail, tail + 1)
        ]
    )


def _filter_axis(x: jax.Array, kernel: np.ndarray, axis: int) -> jax.Array:
    """Cross-correlates ``x`` with ``kernel`` along ``axis``, zero-padded to the same size.

    PyTorch's ``padding="same"``: ``(K - 1) // 2`` zeros before, the rest after.
    """
    size = len(kernel)
    before = (size - 1) // 2
    pads = [(0, 0)] * x.ndim
    pads[axis] = (before, size - 1 - before)
    padded = jnp.pad(x, pads)
    length = x.shape[axis]
    return sum(
        (
            float(w) * jax.lax.slice_in_dim(padded, t, t + length, axis=axis)
            for t, w in enumerate(kernel)
        ),
        start=jnp.zeros_like(x),
    )


def smoothed_targets(inputs: Inputs, kernel: np.ndarray) -> jax.Array:
    """``[B, P, C]`` the targets of the counted pixels, smoothed over each spatial axis."""
    counted = (inputs.weights != 0)[..., None]
    targets = jnp.where(counted, inputs.dense_targets(), 0.0)
    grid = targets.reshape((targets.shape[0], *inputs.spatial_shape, targets.shape[-1]))
    for axis in range(1, grid.ndim - 1):
        grid = _filter_axis(grid, kernel, axis)
    return grid.reshape(targets.shape)


def _nacl_pixels(inputs: Inputs, kernel: np.ndarray, distance_type: str, alpha: Any) -> jax.Array:
    if inputs.targets is None:
        cross_entropy = -inputs.label_log_probability()
    else:
        cross_entropy = -jnp.sum(inputs.targets * inputs.log_probabilities(), axis=-1)
    gap = smoothed_targets(inputs, kernel) - inputs.logits
    penalty = jnp.abs(gap) if distance_type == "l1" else gap * gap
    return cross_entropy + alpha * jnp.mean(penalty, axis=-1)


@define_loss(activations=("softmax",))
def nacl_loss(
    *,
    kernel_size: int = 3,
    kernel_ops: str = "mean",
    distance_type: str = "l1",
    alpha: ArrayLike = 0.1,
    sigma: float = 1.0,
) -> LossDefinition:
    r"""Computes the neighbour-aware calibration loss (NACL), CE plus a local-label penalty.

    Cross-entropy alone drives the logits apart without bound, which makes networks
    over-confident. NACL pulls each pixel's logits towards the proportions of the classes
    around it, its one-hot label smoothed by a spatial kernel: near a boundary the target is
    mixed and confidence is penalised, inside a region it is not (Murugesan et al.).

    .. math::

       \ell_i = -\log \mathrm{softmax}(x_i)_{y_i}
                + \frac{\alpha}{C} \sum_c \lVert t_{ic} - x_{ic} \rVert, \qquad
       t_{ic} = \sum_j k_{j - i}\, [m_j \neq 0]\, g_{jc},

    averaged over the valid pixels, with :math:`\lVert\cdot\rVert` the absolute value or the
    square, :math:`k` the product over the spatial axes of a 1-D kernel (a box of
    ``kernel_size`` entries :math:`1/K`, or the erf-sampled Gaussian of ``sigma``), zero-padded
    at the image border. An excluded pixel (mask 0 or ``ignore_index``) is treated as lying
    outside the image: it gets no loss and its label adds nothing to its neighbours' targets.
    The penalty acts on the logits themselves, as in the paper and MONAI. Dense targets are
    smoothed the same way and the cross-entropy becomes :math:`-\sum_c g_{ic} \log p_{ic}`.

    Peers: MONAI ``NACLLoss(classes=C, dim=d, kernel_size=K, kernel_ops=o, distance_type=t,
    alpha=a, sigma=s)`` on ``[B, C, *spatial]`` logits and ``[B, *spatial]`` labels is
    ``kernel_size=K, kernel_ops=o, distance_type=t, alpha=a, sigma=s, class_axis=1`` (``classes``
    and ``dim`` are read from the data; 1-D spatial data works too). MONAI returns the mean over
    the batch's pixels, which is ``reduction="mean"`` here; it has no mask or ignore index.

    Args:
      <data args>
      kernel_size: the side :math:`K \ge 1` of the box kernel (``kernel_ops="mean"``; even
        sizes pad one more zero after than before, as PyTorch's ``"same"``).
      kernel_ops: ``"mean"`` (box average) or ``"gaussian"``.
      distance_type: ``"l1"`` (absolute) or ``"l2"`` (squared) penalty.
      alpha: :math:`\alpha \ge 0`, the weight of the penalty.
      sigma: the Gaussian's standard deviation (a static positive number;
        ``kernel_ops="gaussian"`` only; its kernel spans :math:`\pm\lfloor 4\sigma + 0.5
        \rfloor` pixels).
      <shared args>

    <pixel loss returns>

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 2.0], [1.0, 0.0], [0.0, 1.0]]])  # 1-D, P = 4
      >>> labels = jnp.array([[0, 1, 1, 1]])
      >>> print(f"{jsl.nacl_loss(logits, labels):.4f}")
      0.5451
      >>> print(f"{jsl.nacl_loss(logits, labels, alpha=0.0):.4f}")   # cross-entropy
      0.4701

    References:
      Murugesan, Adiga Vasudeva, Liu, Lombaert, Ben Ayed & Dolz, "Trust your neighbours:
      Penalty-based constraints for model calibration", MICCAI 2023.
      Murugesan et al., "Neighbor-Aware Calibration of Segmentation Networks with
      Penalty-Based Constraints", arXiv:2401.14487, 2024.
    """
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int | np.integer):
        raise TypeError(
            f"`kernel_size` must be a positive int; got {type(kernel_size).__name__} "
            f"{kernel_size!r}."
        )
    if kernel_size < 1:
        raise ValueError(f"`kernel_size` must be a positive int; got {kernel_size}.")
    _checks.check_choice("kernel_ops", kernel_ops, KERNEL_OPS)
    _checks.check_choice("distance_type", distance_type, DISTANCE_TYPES)
    _checks.check_nonnegative("alpha", alpha)
    if isinstance(sigma, bool) or not isinstance(sigma, int | float | np.floating | np.integer):
        raise TypeError(
            f"`sigma` must be a static positive number; got {type(sigma).__name__} {sigma!r}."
        )
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"`sigma` must be a finite positive number; got {sigma}.")
    kernel = smoothing_kernel(kernel_ops, int(kernel_size), float(sigma))
    return LossDefinition.pixel_mean(
        lambda inputs: _nacl_pixels(inputs, kernel, distance_type, alpha)
    )
