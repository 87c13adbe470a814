r"""Hard segmentation metrics: per-image counts, every score of them, reductions, streaming.

Losses are soft and differentiable; evaluation counts pixels of hard decisions. Everything here
starts from four counts per image :math:`b` and class :math:`c`, over the pixels :math:`i` that
count (not ignored, not masked),

.. math::

   TP_{bc} = \#\{i : \hat y_{ic} \wedge y_{ic}\}, \quad
   FP_{bc} = \#\{i : \hat y_{ic} \wedge \neg y_{ic}\}, \quad
   FN_{bc} = \#\{i : \neg \hat y_{ic} \wedge y_{ic}\}, \quad
   TN_{bc} = \#\{i : \neg \hat y_{ic} \wedge \neg y_{ic}\},

where :math:`\hat y_{ic}` says "pixel :math:`i` is predicted as class :math:`c`" and
:math:`y_{ic}` "pixel :math:`i` is of class :math:`c`" (one class per pixel for class indices
and arg-max scores, any number for multi-label inputs). :func:`overlap_counts` returns them as
:class:`Counts` ``[B, C]``; every score (:func:`iou`, :func:`dice`, :func:`f_beta`,
:func:`precision`, :func:`recall`, :func:`specificity`, :func:`mcc`, ...) is one function of
them, per image and class or on counts summed over images or classes, and every reduction of
MONAI, segmentation_models_pytorch and torchmetrics is an option of that function
(:func:`reduce`; the mapping is in ``docs/metrics.md``).

Counts are exact integers past :math:`2^{31}` without 64-bit JAX (:class:`ExactCount`), they add
across batches (``+``), images and classes (:meth:`Counts.sum`) and devices (``psum``), and a
score of summed counts is the score of the union. A confusion matrix ``[..., C, C]`` (rows true,
columns predicted, scikit-learn's convention) is accepted wherever counts are, with

.. math::

   TP_c = M_{cc}, \quad FP_c = \sum_{r} M_{rc} - TP_c, \quad FN_c = \sum_{k} M_{ck} - TP_c.

**Undefined values.** A score whose ratio is 0/0 (IoU of a class absent from both the labels
and the prediction, precision of a class never predicted, ...) is NaN, or ``zero_division``
when one is given; ``ignore_empty=True`` makes it NaN wherever the ground truth has no pixel of
the class (MONAI's rule). The reductions skip NaN: a mean over no defined value is NaN and its
count 0, a sum over none is 0. ``±inf`` entries (a distance to an empty prediction) are values:
they make every mean and sum that contains them infinite. ``docs/metrics.md`` lists every case.

**Streaming.** :class:`ConfusionMatrixAccumulator` pools a confusion matrix over an evaluation
loop; :class:`PerImageAccumulator` keeps, for any named per-image ``[B, C]`` metric, the sums and
counts of its defined values, so means over images and classes are those of the whole set.
Both run under ``jax.jit`` and ``nnx.jit``; over devices, pass ``axis_name`` to ``update``
(a ``psum`` of a whole accumulator would add every device's copy of what it already holds, and
is refused).

Everything runs under ``jax.jit`` with static shapes: counting is one scatter-add of
``B·P`` pixels into per-image confusion matrices on CPU and fused comparisons with an iota on
GPU/TPU, never a Python loop.
"""

from jaxseg_losses._core.exact import ExactCount
from jaxseg_losses.geometry.components import connected_components
from jaxseg_losses.metrics.accumulators import ConfusionMatrixAccumulator, PerImageAccumulator
from jaxseg_losses.metrics.boundary_iou import boundary_iou
from jaxseg_losses.metrics.calibration import (
    CALIBRATION_NORMS,
    CALIBRATION_REDUCTIONS,
    CalibrationAccumulator,
    ReliabilityDiagram,
    bin_edges,
    calibration_error,
    per_class_calibration_error,
    reliability_diagram,
)
from jaxseg_losses.metrics.composite_scores import (
    accuracy,
    balanced_accuracy,
    fowlkes_mallows,
    informedness,
    markedness,
    mcc,
    prevalence_threshold,
)
from jaxseg_losses.metrics.confusion import (
    compute_metrics,
    confusion_matrix,
    frequency_weighted_iou,
    mean_dice,
    mean_iou,
    pixel_accuracy,
)
from jaxseg_losses.metrics.counts import Counts, overlap_counts
from jaxseg_losses.metrics.lesions import (
    LesionDetection,
    LesionScores,
    lesion_detection,
    lesion_wise_scores,
)
from jaxseg_losses.metrics.overlap_scores import (
    GENERALIZED_DICE_REDUCTIONS,
    dice,
    f_beta,
    generalized_dice,
    iou,
)
from jaxseg_losses.metrics.panoptic import PanopticCounts, panoptic_counts, panoptic_quality
from jaxseg_losses.metrics.rate_scores import (
    fall_out,
    false_discovery_rate,
    false_omission_rate,
    miss_rate,
    negative_predictive_value,
    precision,
    recall,
    specificity,
)
from jaxseg_losses.metrics.reductions import REDUCTIONS, STREAMED_REDUCTIONS, reduce
from jaxseg_losses.metrics.surface import (
    average_surface_distance,
    distance_transform,
    hausdorff_distance,
    surface_dice,
)
from jaxseg_losses.metrics.topology import betti_errors, betti_numbers, cldice
from jaxseg_losses.metrics.volume import volume_difference

__all__ = [
    "CALIBRATION_NORMS",
    "CALIBRATION_REDUCTIONS",
    "GENERALIZED_DICE_REDUCTIONS",
    "REDUCTIONS",
    "STREAMED_REDUCTIONS",
    "CalibrationAccumulator",
    "ConfusionMatrixAccumulator",
    "Counts",
    "ExactCount",
    "LesionDetection",
    "LesionScores",
    "PanopticCounts",
    "PerImageAccumulator",
    "ReliabilityDiagram",
    "accuracy",
    "average_surface_distance",
    "balanced_accuracy",
    "betti_errors",
    "betti_numbers",
    "bin_edges",
    "boundary_iou",
    "calibration_error",
    "cldice",
    "compute_metrics",
    "confusion_matrix",
    "connected_components",
    "dice",
    "distance_transform",
    "f_beta",
    "fall_out",
    "false_discovery_rate",
    "false_omission_rate",
    "fowlkes_mallows",
    "frequency_weighted_iou",
    "generalized_dice",
    "hausdorff_distance",
    "informedness",
    "iou",
    "lesion_detection",
    "lesion_wise_scores",
    "markedness",
    "mcc",
    "mean_dice",
    "mean_iou",
    "miss_rate",
    "negative_predictive_value",
    "overlap_counts",
    "panoptic_counts",
    "panoptic_quality",
    "per_class_calibration_error",
    "pixel_accuracy",
    "precision",
    "prevalence_threshold",
    "recall",
    "reduce",
    "reliability_diagram",
    "specificity",
    "surface_dice",
    "volume_difference",
]
