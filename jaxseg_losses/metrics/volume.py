r"""Volume difference: how much larger (or smaller) the predicted volume is than the true one.

Overlap and surface metrics ask where a segmentation is wrong; the volume difference asks only
how much it holds, the quantity a volumetry study reports (a tumour burden, an organ volume in
millilitres). Two segmentations can differ everywhere and have the same volume: the volume
difference complements the overlap scores and never replaces them (Maier-Hein et al., 2024).

Data contract: that of the surface metrics (:mod:`~jaxseg_losses.metrics.surface`).
``predictions`` and ``labels`` are either integer label maps ``[B, *spatial]`` (with
``num_classes``) or boolean one-hot masks ``[B, *spatial, C]`` (``class_axis`` moves C),
decided by dtype; 1, 2 or 3 spatial axes; ``spacing`` a scalar, one value per spatial axis, or
one row per image ``[B, D]``. The result is ``[B, C]`` float32, one value per image and class
(``C - 1`` columns without the background, the default). An excluded pixel (``mask`` False/0,
or its label ``ignore_index``) counts in neither volume.

The voxel counts are exact int32 sums (one image of one device never holds :math:`2^{31}`
voxels) and their difference is taken in integers; the only roundings are the conversion to
float32 and the product with the voxel volume (or the division by the true count).

References:
  Maier-Hein et al., "Metrics reloaded: recommendations for image analysis validation",
  Nature Methods 21, 2024.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxseg_losses._core import checks as _checks
from jaxseg_losses._core.docs import documented
from jaxseg_losses._core.engine import divide
from jaxseg_losses.metrics._masks import class_masks, spacing_rows

ArrayLike = jax.typing.ArrayLike


@documented
def volume_difference(
    predictions: ArrayLike,
    labels: ArrayLike,
    *,
    num_classes: int | None = None,
    absolute: bool = False,
    relative: bool = False,
    ignore_empty: bool = False,
    spacing: ArrayLike | None = None,
    include_background: bool = False,
    class_axis: int = -1,
    ignore_index: int | None = None,
    mask: ArrayLike | None = None,
) -> jax.Array:
    r"""Computes the difference between the predicted and the true volume of each class.

    Positive where the prediction over-segments, negative where it under-segments. The signed
    difference (the default) keeps that direction, so its mean over images is the bias of a
    volumetry method; ``absolute=True`` gives its size (the absolute volume difference of
    MONAI and Metrics Reloaded); ``relative=True`` divides by the true volume, a fraction of
    the object independent of its size and of the voxel spacing.

    .. math::

       \Delta V = V_P - V_G = v \,(|P| - |G|), \qquad
       \Delta V_{\mathrm{rel}} = \frac{|P| - |G|}{|G|}

    with :math:`|P|, |G|` the voxel counts of the class in the prediction and the ground truth,
    and :math:`v = \prod_a s_a` the volume of one voxel (1 without ``spacing``: the result is
    in voxels). ``absolute=True`` takes :math:`|\Delta V|` (or :math:`|\Delta V_{\mathrm{rel}}|`).

    Empty masks: the difference is defined everywhere (0 when the class is in neither mask,
    where the surface metrics give NaN: a volume of 0 is a measurement, and an over-segmented
    absent class is an error worth averaging). The relative difference is NaN wherever the
    ground truth has no voxel of the class, whatever the prediction, as in Metrics Reloaded
    (``absolute_volume_difference_ratio``). ``ignore_empty=True`` makes every variant NaN
    there, as MONAI's ``compute_absolute_volume_difference`` does by default; NaN is what the
    reductions skip.

    Args:
      <surface args>
      absolute: ``True`` returns the magnitude of the difference.
      relative: ``True`` divides by the true volume (``spacing`` then cancels out).
      ignore_empty: ``True`` makes the value NaN wherever the ground truth holds no voxel of
        the class, whatever the prediction (MONAI's ``ignore_empty``).
      spacing: the voxel size: a scalar, ``[D]`` (one value per spatial axis) or ``[B, D]`` (one
        row per image); positive and finite. ``None`` is 1 along every axis. The difference is
        in the units of the product of the spacings (mm³ for spacings in mm).
      include_background: ``False`` (the default, as the surface metrics) drops class 0 from
        the result.
      class_axis: the class axis of one-hot masks (``1`` for ``[B, C, *spatial]``).
      ignore_index: a label value of integer ``labels`` whose pixels are excluded (e.g. 255).
      mask: ``[B, *spatial]`` bool (or numeric: non-zero counts) pixels to count; the others
        are excluded.

    <surface returns>

    Examples:
      <surface example setup>
      >>> print(jsl.metrics.volume_difference(predictions, labels, num_classes=2))
      [[4.]]
      >>> print(jsl.metrics.volume_difference(
      ...     predictions, labels, num_classes=2, spacing=(0.5, 0.8)))
      [[1.6]]
      >>> print(jsl.metrics.volume_difference(predictions, labels, num_classes=2, relative=True))
      [[0.25]]

    References:
      Maier-Hein et al., "Metrics reloaded: recommendations for image analysis validation",
      Nature Methods 21, 2024.
    """
    absolute = _checks.check_bool("absolute", absolute)
    relative = _checks.check_bool("relative", relative)
    ignore_empty = _checks.check_bool("ignore_empty", ignore_empty)
    predicted, truth = class_masks(
        predictions,
        labels,
        num_classes=num_classes,
        class_axis=class_axis,
        include_background=include_background,
        ignore_index=ignore_index,
        mask=mask,
    )
    batch, classes = predicted.shape[:2]
    dims = predicted.ndim - 2
    voxel_volume = jnp.prod(spacing_rows(spacing, (batch,), dims), axis=-1)
    predicted_count = jnp.sum(predicted.reshape(batch, classes, -1), axis=-1, dtype=jnp.int32)
    true_count = jnp.sum(truth.reshape(batch, classes, -1), axis=-1, dtype=jnp.int32)
    # Exact in int32: both counts lie in [0, 2**31).
    difference = (predicted_count - true_count).astype(jnp.float32)
    if relative:
        value = divide(difference, true_count.astype(jnp.float32), empty=jnp.float32(jnp.nan))
    else:
        value = difference * voxel_volume[:, None]
    if ignore_empty:
        value = jnp.where(true_count == 0, jnp.float32(jnp.nan), value)
    return jnp.abs(value) if absolute else value


__all__ = ["volume_difference"]
