"""Flax NNX metrics of the library's streamed, exact accumulators (``jsl.nnx``; needs Flax).

Each class here is an ``nnx.metrics.Metric`` (``update(**outputs)`` / ``compute()`` /
``reset()``) that works in ``nnx.MultiMetric`` and under ``nnx.jit``: its state is an
accumulator of :mod:`jaxseg_losses.metrics` kept in an ``nnx.metrics.MetricState``, so the
metric holds what the accumulator holds (exact integer counts, compensated sums) and gives its
numbers, whatever the batching:

* :class:`ConfusionMatrix`: a confusion matrix, pooled over every pixel seen: mIoU, Dice,
  pixel accuracy, per-class scores (:class:`~jaxseg_losses.metrics.ConfusionMatrixAccumulator`);
* :class:`PerImage`: any per-image ``[B, C]`` metric (HD95, per-image Dice, lesion-wise
  scores), reduced over the images seen (:class:`~jaxseg_losses.metrics.PerImageAccumulator`);
* :class:`PanopticQuality`: panoptic counts summed over images, PQ / SQ / RQ per class and
  their class mean (:class:`~jaxseg_losses.metrics.PanopticCounts`);
* :class:`CalibrationError`: the confidence bins of every pixel seen, ECE / RMSCE / MCE
  (:class:`~jaxseg_losses.metrics.CalibrationAccumulator`).

``nnx.MultiMetric.update`` passes every keyword to every metric: each metric reads the
predictions and the labels from the keywords ``argnames`` (``("logits", "labels")`` by
default, as Flax's ``Accuracy``), and ``mask``, and ignores the rest. ``mask`` is a pixel mask
``[B, *spatial]`` (False/0 counts nowhere) or a ``[B]`` mask of whole images (padded examples).
Over devices (``nnx.shard_map``, ``jax.shard_map``), ``axis_name`` sums each batch over the
mapped axis in ``update``, so every device holds the totals.

Flax is an optional dependency: ``pip install 'jaxseg_losses[nnx]'``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

try:
    from flax import nnx
except ImportError as error:  # Flax is optional: only this module needs it.
    raise ImportError(
        "jaxseg_losses.nnx needs Flax NNX (flax>=0.12), which is not installed. Install the "
        "extra: pip install 'jaxseg_losses[nnx]'."
    ) from error

from jaxseg_losses import _streams


class _StreamedMetric(nnx.metrics.Metric):
    """An ``nnx.metrics.Metric`` whose state is the accumulator of one stream."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.accumulator = nnx.metrics.MetricState(stream.empty())

    def update(self, **outputs: Any) -> None:
        """Folds one batch in: reads the keywords ``argnames`` and ``mask``, ignores the rest."""
        state = self.accumulator.get_value()
        self.accumulator.set_value(self._stream.update(state, outputs))

    def compute(self) -> Any:
        """The metric of everything seen since the last :meth:`reset`."""
        return self._stream.compute(self.accumulator.get_value())

    def reset(self) -> None:
        """Empties the accumulator."""
        self.accumulator.set_value(self._stream.empty())


class ConfusionMatrix(_StreamedMetric):
    r"""A confusion matrix over an evaluation loop, as a Flax NNX metric: exact mIoU, Dice, ....

    The state is a :class:`~jaxseg_losses.metrics.ConfusionMatrixAccumulator` (exact integer
    counts past :math:`2^{31}`): :meth:`update` counts the pixels of one batch, :meth:`compute`
    reads ``score`` from the matrix of every pixel seen, as
    ``ConfusionMatrixAccumulator.compute()`` does. A score of pooled counts is the score of the
    whole set, not a mean of per-batch scores.

    Args:
      num_classes: :math:`C \ge 2`, the classes of the matrix.
      score: what :meth:`compute` returns: a key of
        :func:`~jaxseg_losses.metrics.compute_metrics` (``"mean_iou"``, ``"mean_dice"``,
        ``"pixel_accuracy"``, ``"frequency_weighted_iou"``, per class ``"iou"``, ``"dice"``,
        ``"precision"``, ``"recall"``), a tuple of keys (a dict), ``None`` (the dict of all), or
        a function of the ``[C, C]`` matrix (e.g.
        ``functools.partial(jsl.metrics.mean_iou, include_background=False)``).
      ignore_index: a label value whose pixels count nowhere.
      class_axis: the class axis of scores and dense labels.
      threshold: the decision threshold of single-channel scores (0 for logits).
      argnames: the keywords of :meth:`update` that hold the predictions (logits,
        probabilities or integer classes ``[B, *spatial]``) and the labels.
      axis_name: the mapped axis (``shard_map``/``pmap``) to sum each batch's counts over.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> import jaxseg_losses as jsl
      >>> import jaxseg_losses.nnx
      >>> metrics = nnx.MultiMetric(
      ...     iou=jsl.nnx.ConfusionMatrix(num_classes=3, ignore_index=255),
      ...     accuracy=jsl.nnx.ConfusionMatrix(num_classes=3, score="pixel_accuracy",
      ...                                      ignore_index=255))
      >>> @nnx.jit
      ... def eval_step(metrics, logits, labels):
      ...     metrics.update(logits=logits, labels=labels)
      >>> labels = jnp.array([[0, 1, 1, 2], [0, 0, 255, 2]])
      >>> eval_step(metrics, jax.nn.one_hot(labels, 3), labels)       # all right
      >>> eval_step(metrics, jax.nn.one_hot(jnp.zeros_like(labels), 3), labels)
      >>> print({name: round(float(value), 4) for name, value in metrics.compute().items()})
      {'iou': 0.5333, 'accuracy': 0.7143}
      >>> metrics.reset()
    """

    def __init__(
        self,
        *,
        num_classes: int,
        score: Any = "mean_iou",
        ignore_index: int | None = None,
        class_axis: int = -1,
        threshold: float = 0.0,
        argnames: Sequence[str] = _streams.DEFAULT_ARGNAMES,
        axis_name: Any = None,
    ) -> None:
        super().__init__(
            _streams.ConfusionStream.of(
                "jsl.nnx.ConfusionMatrix",
                num_classes=num_classes,
                score=score,
                ignore_index=ignore_index,
                class_axis=class_axis,
                threshold=threshold,
                argnames=argnames,
                axis_name=axis_name,
            )
        )


class PerImage(_StreamedMetric):
    """Any per-image metric over an evaluation loop, as a Flax NNX metric: HD95, Dice, ....

    :meth:`update` calls ``fn(predictions, labels)`` (with ``mask=`` when a pixel mask is
    given) for the ``[B, C]`` values of a batch, NaN where undefined, and adds them to a
    :class:`~jaxseg_losses.metrics.PerImageAccumulator`; :meth:`compute` reduces everything
    seen with ``reduction``, equal to :func:`~jaxseg_losses.metrics.reduce` on all the images
    at once. A ``[B]`` mask leaves whole images out (their values become NaN).

    Args:
      fn: ``(predictions, labels, **mask) -> [B, C]`` float values (``[B, C - 1]`` without the
        background), e.g. ``functools.partial(jsl.metrics.hausdorff_distance, num_classes=C,
        percentile=95)``; with ``names``, a mapping (or NamedTuple) holding those arrays.
      num_classes: :math:`C`, the classes of the values.
      names: ``None`` (``fn`` returns one array, :meth:`compute` one value) or the names of
        the arrays ``fn`` returns (:meth:`compute` a dict).
      reduction: a reduction of :data:`~jaxseg_losses.metrics.STREAMED_REDUCTIONS`
        (``"mean"``: each image's class mean, averaged over images, as MONAI).
      ignore_inf: ``True`` leaves ``±inf`` values (a distance to a class missing from one
        side) out like NaN: the reductions of the finite values.
      include_background: ``False`` leaves class 0 out (the surface metrics' default; their
        ``[B, C - 1]`` values are taken as they are).
      classes: the classes kept (static indices), instead of ``include_background``.
      class_weights: static weights of the classes in the class means.
      argnames: the keywords of :meth:`update` that hold the predictions and the labels.
      axis_name: the mapped axis (``shard_map``/``pmap``) to sum each batch's sums over.

    Examples:
      >>> import functools
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> import jaxseg_losses as jsl
      >>> import jaxseg_losses.nnx
      >>> def dice(predictions, labels):                   # one value per image and class
      ...     counts = jsl.metrics.overlap_counts(predictions, labels, num_classes=3)
      ...     return jsl.metrics.dice(counts, ignore_empty=True)
      >>> metric = jsl.nnx.PerImage(dice, num_classes=3, include_background=False,
      ...                           argnames=("predictions", "labels"))
      >>> labels = jnp.array([[0, 1, 1, 2], [0, 0, 1, 1]])
      >>> metric.update(predictions=jnp.array([[0, 1, 2, 2], [0, 0, 1, 1]]), labels=labels)
      >>> metric.update(predictions=labels, labels=labels)
      >>> print(f"{metric.compute():.4f}")
      0.9167
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        num_classes: int,
        names: Sequence[str] | None = None,
        reduction: str = "mean",
        ignore_inf: bool = False,
        include_background: bool = True,
        classes: Sequence[int] | None = None,
        class_weights: Sequence[float] | None = None,
        argnames: Sequence[str] = _streams.DEFAULT_ARGNAMES,
        axis_name: Any = None,
    ) -> None:
        super().__init__(
            _streams.PerImageStream.of(
                "jsl.nnx.PerImage",
                fn,
                num_classes=num_classes,
                names=names,
                reduction=reduction,
                ignore_inf=ignore_inf,
                include_background=include_background,
                classes=classes,
                class_weights=class_weights,
                argnames=argnames,
                axis_name=axis_name,
            )
        )


class PanopticQuality(_StreamedMetric):
    """Panoptic quality over an evaluation loop, as a Flax NNX metric (torchmetrics' and COCO's).

    :meth:`update` matches the segments of each image
    (:func:`~jaxseg_losses.metrics.panoptic_counts`) and adds its
    :class:`~jaxseg_losses.metrics.PanopticCounts` to the totals of each class (TP, FP, FN
    exact, the IoU sum float32); :meth:`compute` finishes PQ (SQ, RQ) of each class from the
    totals and, with ``reduction="mean"``, averages the classes that have a segment: the
    dataset's PQ of torchmetrics' ``PanopticQuality``, not a mean of per-batch PQs.

    Args:
      num_classes: :math:`C`, the classes ``0 .. C-1`` (class 0 the background).
      max_instances: the static bound on the segments of one image of either input.
      metric: ``"pq"``, ``"sq"``, ``"rq"``, or a tuple of them (a dict).
      reduction: ``"mean"`` (the class mean, NaN classes left out) or ``"none"`` (``[C']``).
      match_threshold: a pair matches when its IoU is strictly above it, in ``(0, 1]``.
      stuff_classes: the classes whose pixels form one segment per image.
      include_background: ``True`` evaluates class 0 too.
      connectivity: the adjacency of the connected components of class maps.
      void_index: a class value of unlabelled pixels (see
        :func:`~jaxseg_losses.metrics.panoptic_counts`).
      ignore_index: a label class whose pixels count nowhere.
      zero_division: the value of a class with no segment in either input (NaN: left out of
        the mean).
      argnames: the keywords of :meth:`update` that hold the predictions and the labels, each
        an integer class map ``[B, *spatial]`` or a pair ``(classes, instances)``.
      axis_name: the mapped axis (``shard_map``/``pmap``) to sum each batch's counts over.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> import jaxseg_losses.nnx
      >>> metric = jsl.nnx.PanopticQuality(num_classes=3, max_instances=4,
      ...                                  argnames=("predictions", "labels"))
      >>> labels = jnp.array([[[1, 1, 0, 2, 2], [1, 1, 0, 2, 2], [0, 0, 0, 0, 0]]])
      >>> predictions = jnp.array([[[1, 1, 0, 2, 2], [1, 0, 0, 2, 0], [0, 0, 0, 0, 1]]])
      >>> metric.update(predictions=predictions, labels=labels)
      >>> metric.update(predictions=labels, labels=labels)
      >>> print(f"{metric.compute():.4f}")
      0.7875
    """

    def __init__(
        self,
        *,
        num_classes: int,
        max_instances: int,
        metric: str | Sequence[str] = "pq",
        reduction: str = "mean",
        match_threshold: float = 0.5,
        stuff_classes: Sequence[int] = (),
        include_background: bool = False,
        connectivity: int = 1,
        void_index: int | None = None,
        ignore_index: int | None = None,
        zero_division: float = float("nan"),
        argnames: Sequence[str] = ("predictions", "labels"),
        axis_name: Any = None,
    ) -> None:
        super().__init__(
            _streams.PanopticStream.of(
                "jsl.nnx.PanopticQuality",
                num_classes=num_classes,
                max_instances=max_instances,
                metric=metric,
                reduction=reduction,
                match_threshold=match_threshold,
                stuff_classes=stuff_classes,
                include_background=include_background,
                connectivity=connectivity,
                void_index=void_index,
                ignore_index=ignore_index,
                zero_division=zero_division,
                argnames=argnames,
                axis_name=axis_name,
            )
        )


class CalibrationError(_StreamedMetric):
    """The calibration error of every pixel seen, as a Flax NNX metric (ECE, RMSCE, MCE).

    :meth:`update` bins the top-label confidences of a batch into a
    :class:`~jaxseg_losses.metrics.CalibrationAccumulator` (exact counts, compensated sums of
    confidences); :meth:`compute` gives :func:`~jaxseg_losses.metrics.calibration_error` of
    all the pixels at once (torchmetrics' ``MulticlassCalibrationError``).

    Args:
      num_bins: the number of bins of equal width (and the bin of confidence 1).
      norm: ``"l1"`` (ECE), ``"l2"`` (RMS calibration error), ``"max"`` (MCE), or a tuple of
        them (a dict).
      activation: ``"softmax"``, ``"sigmoid"`` (one channel) or ``None`` (probabilities).
      class_axis: the class axis of the scores.
      ignore_index: a label value whose pixels count nowhere.
      argnames: the keywords of :meth:`update` that hold the scores and the labels.
      axis_name: the mapped axis (``shard_map``/``pmap``) to sum each batch's bins over.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> import jaxseg_losses.nnx
      >>> metric = jsl.nnx.CalibrationError(num_bins=10)
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]]])
      >>> metric.update(logits=logits, labels=jnp.array([[0, 1, 1]]))
      >>> print(f"{metric.compute():.4f}")
      0.1938
    """

    def __init__(
        self,
        *,
        num_bins: int = 15,
        norm: str | Sequence[str] = "l1",
        activation: str | None = "softmax",
        class_axis: int = -1,
        ignore_index: int | None = None,
        argnames: Sequence[str] = _streams.DEFAULT_ARGNAMES,
        axis_name: Any = None,
    ) -> None:
        super().__init__(
            _streams.CalibrationStream.of(
                "jsl.nnx.CalibrationError",
                num_bins=num_bins,
                norm=norm,
                activation=activation,
                class_axis=class_axis,
                ignore_index=ignore_index,
                argnames=argnames,
                axis_name=axis_name,
            )
        )


__all__ = ["CalibrationError", "ConfusionMatrix", "PanopticQuality", "PerImage"]
