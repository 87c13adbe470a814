r"""The generalized Wasserstein Dice loss: a Dice loss that knows which mistakes are worse.

With :math:`M` a ``[C, C]`` matrix of distances between classes (scaled so that its largest
entry is 1), the Wasserstein distance between a pixel's predicted distribution :math:`p_i` and
its one-hot label :math:`y_i` is :math:`d_i = \sum_{c'} M_{y_i c'}\, p_{ic'}`: 0 for a perfect
prediction, 1 for all the mass on a class at the largest distance. Per sample and class the
loss keeps two additive sums,

.. math::

   V_c = \sum_i m_i\, g_{ic}, \qquad T_c = \sum_i m_i\, g_{ic}\,(1 - d_{ic}), \qquad
   d_{ic} = \sum_{c'} M_{c c'}\, p_{ic'},

(:math:`m` the pixel weights, :math:`g` the one-hot or soft targets), from which the
generalized true positives and the denominator are formed in the finishing step, so the loss
pools over the batch (``aggregate="batch"``), over devices (``axis_name``) and over
micro-batches like every other region loss.

Data contract: ``logits`` ``[B, *spatial, C]`` (``class_axis`` moves C), ``labels`` integer
``[B, *spatial]`` or dense float ``[B, *spatial, C]``, ``mask`` ``[B, *spatial]``; float32
results for bf16/f16/f32 logits.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxseg_losses._core import checks as _checks
from jaxseg_losses._core.define import define_loss
from jaxseg_losses._core.definition import LossDefinition, divide
from jaxseg_losses._core.inputs import Inputs

WEIGHTING_MODES = ("default", "GDL")


def _check_distance_matrix(dist_matrix: Any) -> None:
    """Shape (square, 2-D) and, when concrete, finite non-negative entries with a positive max."""
    if dist_matrix is None:
        return
    if isinstance(dist_matrix, bool | str) or not isinstance(
        dist_matrix, list | tuple | np.ndarray | jax.Array
    ):
        raise TypeError(
            "`dist_matrix` must be None or a [C, C] array of distances between classes; got "
            f"{type(dist_matrix).__name__}."
        )
    shape = np.shape(dist_matrix)
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"`dist_matrix` must be a square [C, C] matrix; got shape {shape}.")
    try:
        values = np.asarray(dist_matrix, dtype=np.float64)
    except jax.errors.TracerArrayConversionError:
        # Traced: checked under `jsl.checked`, like every traced option.
        matrix = jnp.asarray(dist_matrix)
        ok = jnp.all(jnp.isfinite(matrix)) & jnp.all(matrix >= 0) & jnp.any(matrix > 0)
        _checks.check_values(ok, "`dist_matrix` must hold finite non-negative distances, not all 0")
        return
    if not np.all(np.isfinite(values)) or np.any(values < 0) or not np.any(values > 0):
        raise ValueError(
            "`dist_matrix` must hold finite non-negative distances, not all 0; got "
            f"{values.tolist()}."
        )


def _distances(dist_matrix: Any, num_classes: int, dtype: Any) -> jax.Array:
    """``[C, C]`` distances scaled to a largest entry of 1 (the 0-1 distance by default)."""
    if dist_matrix is None:
        return 1.0 - jnp.eye(num_classes, dtype=dtype)
    if np.shape(dist_matrix)[0] != num_classes:
        raise ValueError(
            f"`dist_matrix` must be [C, C] with C = {num_classes} classes (the logits' class "
            f"axis); got shape {np.shape(dist_matrix)}."
        )
    matrix = jnp.asarray(dist_matrix, dtype)
    return divide(matrix, jnp.max(matrix))


def _wasserstein_sums(inputs: Inputs, dist_matrix: Any) -> dict[str, jax.Array]:
    if inputs.is_binary:
        raise ValueError(
            "generalized_wasserstein_dice_loss compares distributions over C >= 2 exclusive "
            f"classes; got {inputs.num_classes} channel(s) with activation "
            f"{inputs.activation!r}. Use two channels with activation='softmax'."
        )
    distances = _distances(dist_matrix, inputs.num_classes, inputs.dtype)
    probs = inputs.probabilities()
    # d_ic: the distance of the prediction from class c, for every class the target may hold.
    to_class = jnp.einsum("bpk,ck->bpc", probs, distances)
    mass = inputs.weights[..., None] * inputs.dense_targets()
    return {
        "volume": jnp.sum(mass, axis=1),
        "true": jnp.sum(mass * (1.0 - to_class), axis=1),
    }


def _finish(
    sums: dict[str, jax.Array], weighting_mode: str, smooth_nr: Any, smooth_dr: Any
) -> jax.Array:
    volume, true = sums["volume"], sums["true"]
    if weighting_mode == "GDL":
        alpha = 1.0 / (volume + 1.0)
        true_pos = jnp.sum(alpha * true, axis=-1)
        denominator = jnp.sum(alpha * (volume + true), axis=-1)
    else:
        # α = 0 for the background class 0, 1 for every other class; the error sum Σ m_i d_i
        # counts every pixel, background included.
        true_pos = jnp.sum(true[..., 1:], axis=-1)
        denominator = 2.0 * true_pos + jnp.sum(volume - true, axis=-1)
    # A row without valid pixels (or with smooth_dr = 0 and nothing to compare) scores 1.
    return 1.0 - divide(2.0 * true_pos + smooth_nr, denominator + smooth_dr, empty=1.0)


@define_loss(activations=("softmax", None))
def generalized_wasserstein_dice_loss(
    *,
    dist_matrix: ArrayLike | None = None,
    weighting_mode: str = "default",
    smooth_nr: ArrayLike = 1e-5,
    smooth_dr: ArrayLike = 1e-5,
) -> LossDefinition:
    r"""Computes the generalized Wasserstein Dice loss (Fidon et al. 2017).

    A Dice loss in which a wrong class costs its distance from the right one: confusing two
    tumour sub-regions can cost less than calling tumour background. The pixel's error is the
    Wasserstein distance :math:`d_i = \sum_{c'} M_{y_i c'} p_{ic'}` between the prediction and
    the label under the class distances :math:`M` (scaled to a largest entry of 1). With
    :math:`\alpha_c` the class weights,

    .. math::

       TP = \sum_c \alpha_c T_c, \qquad T_c = \sum_{i: y_i = c} m_i (1 - d_i), \qquad
       \ell = 1 - \frac{2\,TP + s_{nr}}{D + s_{dr}},

    where ``weighting_mode="default"`` (the paper) takes :math:`\alpha_0 = 0` for the background
    and 1 for the other classes and :math:`D = 2\,TP + \sum_i m_i d_i`; ``"GDL"`` (Tilborghs et
    al. 2020) takes :math:`\alpha_c = 1 / (V_c + 1)` with :math:`V_c = \sum_{i: y_i = c} m_i` the
    class volume of the row, and :math:`D = \sum_c \alpha_c \sum_{i: y_i = c} m_i (2 - d_i)`.
    Soft targets enter as a mixture: :math:`T_c = \sum_i m_i g_{ic} (1 - d_{ic})` with
    :math:`d_{ic} = \sum_{c'} M_{c c'} p_{ic'}`. With the 0-1 distance (the default) the error
    of a pixel is :math:`1 - p_{i y_i}`.

    Peers: MONAI ``GeneralizedWassersteinDiceLoss(dist_matrix=M, weighting_mode=w,
    reduction=r, smooth_nr=s, smooth_dr=t)`` on ``[B, C, *spatial]`` logits and integer
    labels is ``dist_matrix=M, weighting_mode=w, smooth_nr=s, smooth_dr=t, reduction=r,
    class_axis=1`` (MONAI always applies the softmax; it has no mask, ignore index or batch
    pooling; its per-sample values are ``reduction="none"``).

    Args:
      <data args>
      dist_matrix: ``None`` (the 0-1 distance, :math:`M = 1 - I`) or a ``[C, C]`` array of
        non-negative distances between classes (NumPy, a list, or a JAX array that may be
        traced); divided by its largest entry. Its diagonal is normally 0.
      weighting_mode: ``"default"`` (Fidon et al.: background weight 0, others 1) or ``"GDL"``
        (inverse class volumes plus one, Tilborghs et al.).
      smooth_nr: added to the numerator :math:`2\,TP` (MONAI's ``smooth_nr``).
      smooth_dr: added to the denominator (MONAI's ``smooth_dr``).
      <shared args>

    <sample loss returns>

    Examples:
      >>> import numpy as np, jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> dist = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.5], [1.0, 0.5, 0.0]])
      >>> logits = 10.0 * jnp.eye(3)[None]        # [B=1, P=3, C=3], each pixel sure of its class
      >>> labels = jnp.array([[0, 1, 2]])
      >>> print(f"{jsl.generalized_wasserstein_dice_loss(logits, labels, dist_matrix=dist):.4f}")
      0.0001
      >>> swapped = jnp.array([[0, 2, 1]])        # classes 1 and 2 confused: half the distance
      >>> print(f"{jsl.generalized_wasserstein_dice_loss(logits, swapped, dist_matrix=dist):.4f}")
      0.3334

    References:
      Fidon, Li, Garcia-Peraza-Herrera, Ekanayake, Kitchen, Ourselin & Vercauteren,
      "Generalised Wasserstein Dice Score for Imbalanced Multi-class Segmentation using
      Holistic Convolutional Networks", BrainLes 2017.
      Tilborghs et al., "Comparative study of deep learning methods for the automatic
      segmentation of lung, lesion and lesion type in CT scans of COVID-19 patients", 2020.
    """
    _check_distance_matrix(dist_matrix)
    _checks.check_choice("weighting_mode", weighting_mode, WEIGHTING_MODES)
    _checks.check_nonnegative("smooth_nr", smooth_nr)
    _checks.check_nonnegative("smooth_dr", smooth_dr)
    return LossDefinition(
        sums=lambda inputs: _wasserstein_sums(inputs, dist_matrix),
        finish=lambda sums: _finish(sums, weighting_mode, smooth_nr, smooth_dr),
    )
