r"""Boundary IoU: the IoU of the bands along the inside of the predicted and true contours.

Mask IoU counts every pixel of an object, so for a large object the pixels near its contour,
where predictions differ, weigh little. Boundary IoU (Cheng et al., 2021) keeps only the pixels
of each mask within :math:`d` pixels of its contour and takes the IoU of those bands: it
measures the quality of the boundary at every object size, and it is mask IoU again when
:math:`d` is large enough to cover whole objects.

Data contract: that of the surface metrics (:mod:`~jaxseg_losses.metrics.surface`).
``predictions`` and ``labels`` are either integer label maps ``[B, *spatial]`` (with
``num_classes``) or boolean one-hot masks ``[B, *spatial, C]`` (``class_axis`` moves C),
decided by dtype; 1, 2 or 3 spatial axes. The result is ``[B, C]`` float32, one value per image
and class (``C - 1`` columns without the background, the default).

The band is that of the authors' reference code (``boundary_iou/utils/boundary_utils.py``,
``mask_to_boundary``):

* the width is :math:`d = \max(1, \operatorname{round}(r \cdot \sqrt{\sum_a n_a^2}))` pixels for
  a ``dilation_ratio`` :math:`r` and an image of :math:`n_a` pixels along each axis (the image
  diagonal :math:`\sqrt{h^2 + w^2}` in 2-D, the volume diagonal in 3-D), rounded half to even
  as Python's ``round`` does;
* the band of a mask :math:`M` is :math:`M_d = M \setminus \mathrm{erode}_d(M)`, the erosion by
  the cube of side :math:`2d + 1` (``cv2.erode`` with a 3×3 kernel, ``d`` iterations; a 3×3×3
  cube in 3-D) with everything outside the image counted as background, so an object cut by
  the image border has a band along it (the reference pads the mask with one row of zeros
  before eroding);
* an excluded pixel (``mask`` False/0 there, or its label ``ignore_index``) is in neither mask
  and lies outside both, like a pixel beyond the image: a mask next to it has a band along it,
  and it is in no band itself. What an excluded pixel holds changes nothing, and a perfect
  prediction scores 1 whatever is excluded.

References:
  Cheng, Girshick, Dollár, Berg & Kirillov, "Boundary IoU: Improving Object-Centric Image
  Segmentation Evaluation", CVPR 2021.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg_losses._core.docs import documented
from jaxseg_losses._core.engine import divide
from jaxseg_losses.metrics._masks import class_masks

ArrayLike = jax.typing.ArrayLike


def _check_dilation_ratio(dilation_ratio: Any) -> float:
    """A static, finite, non-negative Python number: it decides the band width, a shape."""
    if isinstance(dilation_ratio, bool | np.bool_) or not isinstance(dilation_ratio, numbers.Real):
        raise TypeError(
            "`dilation_ratio` must be a Python float (static: it sets the band width in "
            f"pixels); got {type(dilation_ratio).__name__} {dilation_ratio!r}."
        )
    ratio = float(dilation_ratio)
    if not (math.isfinite(ratio) and ratio >= 0.0):
        raise ValueError(f"`dilation_ratio` must be finite and non-negative; got {ratio}.")
    return ratio


def _band_width(spatial_shape: tuple[int, ...], dilation_ratio: float) -> int:
    """The band width :math:`d` in pixels: ``max(1, round(ratio * diagonal))``.

    In float64 and with Python's ``round`` (half to even), as the reference computes it from
    ``np.sqrt(h ** 2 + w ** 2)``.
    """
    diagonal = math.sqrt(sum(n * n for n in spatial_shape))
    return max(1, round(dilation_ratio * diagonal))


def _erode_line(masks: jax.Array, axis: int, radius: int) -> jax.Array:
    """Erosion along ``axis`` by the segment ``[-radius, radius]``, background outside.

    The AND over each window of ``2 radius + 1`` elements, by doubling: after the k-th step
    ``run[j]`` is the AND of ``2^k`` elements from ``j``, and two runs that overlap cover the
    window, so the cost is ``log2(radius)`` passes whatever the width.
    """
    n = masks.shape[axis]
    # A window reaching past both ends of the line holds background: wider ones change nothing.
    radius = min(radius, n)
    window = 2 * radius + 1
    widths = [(0, 0)] * masks.ndim
    widths[axis] = (radius, radius)
    run = jnp.pad(masks, widths, constant_values=False)
    span = 1
    while 2 * span <= window:
        length = run.shape[axis]
        run = jax.lax.slice_in_dim(run, 0, length - span, axis=axis) & jax.lax.slice_in_dim(
            run, span, length, axis=axis
        )
        span *= 2
    first = jax.lax.slice_in_dim(run, 0, n, axis=axis)
    last = jax.lax.slice_in_dim(run, window - span, window - span + n, axis=axis)
    return first & last


def _inner_band(masks: jax.Array, dims: int, width: int) -> jax.Array:
    r"""The pixels of each mask within ``width`` pixels (chessboard) of its outside:
    :math:`M \setminus \mathrm{erode}(M)` by the cube of side ``2 width + 1``, the image
    surrounded by background.

    Args:
      masks: ``[..., *spatial]`` bool; every leading axis is a batch axis.
      dims: the number of spatial axes, the last ``dims`` axes.
      width: :math:`d \ge 1`, the erosion radius in pixels.

    Returns:
      Bool, the shape of ``masks``.
    """
    interior = masks
    # The cube is the product of one segment per axis: erode along each axis in turn.
    for axis in range(masks.ndim - dims, masks.ndim):
        interior = _erode_line(interior, axis, width)
    return masks & ~interior


@documented
def boundary_iou(
    predictions: ArrayLike,
    labels: ArrayLike,
    *,
    num_classes: int | None = None,
    dilation_ratio: float = 0.02,
    include_background: bool = False,
    class_axis: int = -1,
    ignore_index: int | None = None,
    mask: ArrayLike | None = None,
) -> jax.Array:
    r"""Computes the Boundary IoU of Cheng et al.: the IoU of the masks' bands along their contours.

    Each mask is reduced to its pixels within :math:`d` pixels of its contour (the inner band),
    and the IoU of the two bands is taken: 1 when the boundaries agree everywhere, small when
    they run apart, whatever the size of the object. The band width grows with the image,
    :math:`d = \max(1, \operatorname{round}(r \sqrt{\sum_a n_a^2}))` for ``dilation_ratio``
    :math:`r` (2% of the image diagonal by default, as in the paper).

    .. math::

       \mathrm{BIoU}(P, G) = \frac{|P_d \cap G_d|}{|P_d \cup G_d|}, \qquad
       M_d = M \setminus \mathrm{erode}_d(M)

    with :math:`\mathrm{erode}_d` the erosion by the cube of side :math:`2d + 1` with a
    background border (see the module). The paper writes :math:`M_d` as
    :math:`(M^{\mathrm{contour}}_{\oplus d}) \cap M`; the erosion is how its reference code
    computes it, and this function matches that code pixel for pixel. With :math:`d` at least
    half the largest object, :math:`M_d = M` and this is mask IoU. The reference's COCO and
    panoptic evaluations score :math:`\min(\text{mask IoU}, \text{Boundary IoU})`; take that
    minimum with :func:`iou` where it is wanted.

    Empty masks: NaN when the class is in neither mask (both bands are empty: a mask is empty
    exactly when its band is), the undefined 0/0 of IoU that the reductions skip; 0 when it is
    in only one of them.

    Args:
      <surface args>
      dilation_ratio: :math:`r`, the band width as a fraction of the image diagonal; a static
        Python number, finite and non-negative (the width is at least 1 pixel). A fixed width
        of :math:`d` pixels is ``dilation_ratio = d / diagonal``.
      include_background: ``False`` (the default, as the surface metrics) drops class 0 from
        the result.
      class_axis: the class axis of one-hot masks (``1`` for ``[B, C, *spatial]``).
      ignore_index: a label value of integer ``labels`` whose pixels are excluded (e.g. 255).
      mask: ``[B, *spatial]`` bool (or numeric: non-zero counts) pixels to count; the others
        are excluded.

    <surface returns>

    Examples:
      <surface example setup>
      >>> print(jsl.metrics.boundary_iou(predictions, labels, num_classes=2))
      [[0.3]]
      >>> print(jsl.metrics.boundary_iou(predictions, labels, num_classes=2, dilation_ratio=1.0))
      [[0.5]]

    References:
      Cheng, Girshick, Dollár, Berg & Kirillov, "Boundary IoU: Improving Object-Centric Image
      Segmentation Evaluation", CVPR 2021.
    """
    ratio = _check_dilation_ratio(dilation_ratio)
    predicted, truth = class_masks(
        predictions,
        labels,
        num_classes=num_classes,
        class_axis=class_axis,
        include_background=include_background,
        ignore_index=ignore_index,
        mask=mask,
    )
    spatial = predicted.shape[2:]
    width = _band_width(spatial, ratio)
    predicted_band = _inner_band(predicted, len(spatial), width)
    true_band = _inner_band(truth, len(spatial), width)
    batch, classes = predicted.shape[:2]

    def count(pixels: jax.Array) -> jax.Array:
        # Exact int32 counts: one image of one device never holds 2**31 pixels.
        total = jnp.sum(pixels.reshape(batch, classes, -1), axis=-1, dtype=jnp.int32)
        return total.astype(jnp.float32)

    intersection = count(predicted_band & true_band)
    union = count(predicted_band | true_band)
    return divide(intersection, union, empty=jnp.float32(jnp.nan))


__all__ = ["boundary_iou"]
