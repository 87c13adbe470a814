r"""Reductions of per-image, per-class values over images and classes: :func:`reduce`.

The one implementation of every reduction of MONAI, segmentation_models_pytorch and
torchmetrics, for the scores' ``reduction`` option and for any per-image metric (a surface
distance, a user's own). NaN marks an undefined value, which no mean or sum counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax

from jaxseg_losses._core import checks as _checks
from jaxseg_losses.metrics._reduction import finite_only, infinite_counts, reduce_values

ArrayLike = jax.typing.ArrayLike

# Every reduction: MONAI's seven names, and two orders of the mean over images and classes.
REDUCTIONS = (
    "none",
    "mean",
    "sum",
    "mean_batch",
    "sum_batch",
    "mean_channel",
    "sum_channel",
    "mean_all",
    "mean_batch_channel",
)
# The reductions that keep no per-image axis: the ones a stream of images can be summed into.
STREAMED_REDUCTIONS = ("mean", "sum", "mean_batch", "sum_batch", "mean_all", "mean_batch_channel")


def reduce(
    values: ArrayLike,
    *,
    reduction: str = "mean",
    include_background: bool = True,
    classes: Sequence[int] | None = None,
    class_weights: ArrayLike | None = None,
    return_count: bool = False,
    ignore_inf: bool = False,
) -> Any:
    r"""Reduces per-image, per-class values ``[B, C]`` over images and classes, skipping NaN.

    The one implementation of every reduction of the scores (and of any per-image metric, such
    as a surface distance): NaN marks an undefined value, which no mean or sum counts; a mean
    over no defined value is NaN (with a count of 0) and a sum over none is 0. ``±inf`` are
    values: they make the means and sums that contain them infinite. With :math:`v_{bc}` the
    defined values and :math:`w_c` the class weights (1 by default):

    ========================  ======================================================  =========
    ``reduction``             value                                                   shape
    ========================  ======================================================  =========
    ``"none"``                the values                                              ``[B, C]``
    ``"mean_channel"``        :math:`m_b = \sum_c w_c v_{bc} / \sum_c w_c`            ``[B]``
    ``"sum_channel"``         :math:`\sum_c w_c v_{bc}`                               ``[B]``
    ``"mean_batch"``          :math:`\bar v_c = \frac{1}{n_c} \sum_b v_{bc}`           ``[C]``
    ``"sum_batch"``           :math:`\sum_b v_{bc}`                                   ``[C]``
    ``"mean"``                :math:`\frac{1}{|B'|} \sum_{b \in B'} m_b` (MONAI)       ``[]``
    ``"sum"``                 :math:`\sum_{b, c} w_c v_{bc}`                          ``[]``
    ``"mean_all"``            :math:`\sum_{b,c} w_c v_{bc} / \sum_{b,c} w_c`           ``[]``
    ``"mean_batch_channel"``  :math:`\sum_c w_c \bar v_c / \sum_c w_c`                ``[]``
    ========================  ======================================================  =========

    where every sum runs over the defined values only and :math:`B'` are the images with a
    defined value. ``"mean"`` is the mean over images of each image's class mean (MONAI's
    ``DiceMetric`` default); ``"mean_batch_channel"`` the class mean of the per-class means
    over images (smp's ``macro-imagewise``); ``"mean_all"`` weighs every defined value alike
    (torchmetrics' ``MeanIoU``). Values ``[C]`` (one image, or counts pooled over images) are
    one row; leading axes beyond ``[B, C]`` are kept by ``"none"`` and the ``*_channel``
    reductions.

    ``ignore_inf=True`` leaves ``±inf`` out as well, as if undefined: the mean of the finite
    values (``values[jnp.isfinite(values)].mean()`` for ``"mean_all"``). A surface distance is
    ``inf`` where a class is in only one of the prediction and the ground truth, so one image
    missing a class makes its class's mean ``inf``; this reads the distances of the others.

    .. math::

       \mathrm{mean} = \frac{1}{|B'|} \sum_{b \in B'}
       \frac{\sum_{c \in K_b} w_c v_{bc}}{\sum_{c \in K_b} w_c}, \qquad
       K_b = \{c : v_{bc} \text{ defined}\}

    Args:
      values: ``[B, C]`` (or ``[C]``) float values, NaN where undefined.
      reduction: one of ``"none"``, ``"mean"``, ``"sum"``, ``"mean_batch"``, ``"sum_batch"``,
        ``"mean_channel"``, ``"sum_channel"``, ``"mean_all"``, ``"mean_batch_channel"``.
      include_background: ``False`` leaves class 0 out.
      classes: a sequence of class indices to keep, e.g. ``(1, 2)`` (all by default).
      class_weights: ``[C]`` non-negative weights of the classes where classes are averaged or
        summed (not with ``"none"``, ``"mean_batch"``, ``"sum_batch"``).
      return_count: also return the number of defined values behind each result (MONAI's
        ``get_not_nans``; for ``"mean"``, the images with a defined value).
      ignore_inf: ``True`` leaves ``±inf`` out like NaN (``"none"`` returns them as NaN).

    Returns:
      The reduced values (shape in the table, float like ``values``); with
      ``return_count=True``, a pair ``(value, count)`` with an int32 count of the same shape,
      and with ``ignore_inf=True`` as well a triple ``(value, count, left_out)``: ``count``
      the finite values (images, for ``"mean"``) behind each result and ``left_out`` the
      number of ``±inf`` values of the kept classes that it left out, int32 of the same shape.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> nan = float("nan")
      >>> dice = jnp.array([[0.8, 0.6, nan], [0.4, nan, nan]])
      >>> print(jsl.metrics.reduce(dice, reduction="mean"))            # (0.7 + 0.4) / 2
      0.55
      >>> print(jsl.metrics.reduce(dice, reduction="mean_batch"))
      [0.6 0.6 nan]
      >>> value, count = jsl.metrics.reduce(dice, reduction="mean_all", return_count=True)
      >>> print(value, count)
      0.6 3
      >>> print(jsl.metrics.reduce(dice, reduction="mean", include_background=False))
      0.6
      >>> hd = jnp.array([[2.0, float("inf")], [4.0, 1.0]])   # image 0 misses class 1
      >>> print(jsl.metrics.reduce(hd, reduction="mean_batch"))
      [ 3. inf]
      >>> value, count, left_out = jsl.metrics.reduce(
      ...     hd, reduction="mean_batch", ignore_inf=True, return_count=True)
      >>> print(value, count, left_out)
      [3. 1.] [2 1] [0 1]
    """
    values = _checks.as_float_array("values", values)
    _checks.check_choice("reduction", reduction, REDUCTIONS)
    _checks.check_bool("return_count", return_count)
    ignore_inf = _checks.check_bool("ignore_inf", ignore_inf)
    value, count = reduce_values(
        finite_only(values) if ignore_inf else values,
        reduction=reduction,
        include_background=include_background,
        classes=classes,
        class_weights=class_weights,
    )
    if not return_count:
        return value
    if not ignore_inf:
        return value, count
    left_out = infinite_counts(
        values, reduction=reduction, include_background=include_background, classes=classes
    )
    return value, count, left_out


__all__ = ["REDUCTIONS", "STREAMED_REDUCTIONS", "reduce"]
