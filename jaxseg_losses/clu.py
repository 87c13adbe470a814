"""CLU metrics of the library's streamed, exact accumulators (``jsl.clu``; needs CLU).

Each class here is a ``clu.metrics.Metric`` (a ``flax.struct`` dataclass: ``empty()``,
``from_model_output(**outputs)``, ``merge``, ``compute``) whose one field, ``accumulator``, is
an accumulator of :mod:`jaxseg_losses.metrics`. Its options (``num_classes``, ``ignore_index``,
...) are fixed by a factory, CLU's idiom for parameterised metrics (``Average.from_output``):
``ConfusionMatrix.create(num_classes=21, ignore_index=255)`` returns a metric class, which goes
into ``clu.metrics.Collection.create(...)`` like CLU's own ones.

* :class:`ConfusionMatrix`: a confusion matrix, pooled over every pixel seen: mIoU, Dice,
  pixel accuracy, per-class scores (:class:`~jaxseg_losses.metrics.ConfusionMatrixAccumulator`);
* :class:`PerImage`: any per-image ``[B, C]`` metric (HD95, per-image Dice, lesion-wise
  scores), reduced over the images seen (:class:`~jaxseg_losses.metrics.PerImageAccumulator`);
* :class:`PanopticQuality`: panoptic counts summed over images, PQ / SQ / RQ per class and
  their class mean (:class:`~jaxseg_losses.metrics.PanopticCounts`);
* :class:`CalibrationError`: the confidence bins of every pixel seen, ECE / RMSCE / MCE
  (:class:`~jaxseg_losses.metrics.CalibrationAccumulator`).

``merge`` adds the accumulators (``+``: exact counts, compensated sums), so merging batches,
and ``Collection.gather_from_model_output`` (an ``all_gather`` over the devices, then
``reduce``, a ``merge`` of the devices' states) give the numbers of all the data at once, not a
mean of per-batch or per-device values. ``from_model_output`` reads the predictions and the
labels from the keywords ``argnames`` (``("logits", "labels")`` by default, as CLU's
``Accuracy``) and ``mask`` (a pixel mask ``[B, *spatial]`` or a ``[B]`` mask of whole images,
CLU's padded examples), and ignores the rest.

CLU is an optional dependency: ``pip install 'jaxseg_losses[clu]'``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

try:
    import flax.struct
    from clu import metrics as clu_metrics
except ImportError as error:  # CLU is optional: only this module needs it.
    raise ImportError(
        "jaxseg_losses.clu needs CLU (clu, with Flax), which is not installed. Install the "
        "extra: pip install 'jaxseg_losses[clu]'."
    ) from error

from jaxseg_losses import _streams

M = TypeVar("M", bound="_StreamedMetric")


@flax.struct.dataclass
class _StreamedMetric(clu_metrics.Metric):
    """A CLU metric whose one field is the accumulator of the stream its class is made with."""

    accumulator: Any
    _stream = None  # set by create(): a class attribute, not a field

    @classmethod
    def _bound_stream(cls) -> Any:
        if cls._stream is None:
            raise TypeError(
                f"Make a metric class with {cls.__name__}.create(...) (its options, such as "
                f"num_classes), then use that class: {cls.__name__} itself has none."
            )
        return cls._stream

    @classmethod
    def _with_stream(cls: type[M], stream: Any) -> type[M]:
        bound = type(
            cls.__name__,
            (cls,),
            {"_stream": stream, "__module__": cls.__module__, "__qualname__": cls.__qualname__},
        )
        return flax.struct.dataclass(bound)  # type: ignore[return-value]

    @classmethod
    def empty(cls: type[M]) -> M:
        """The metric of no data: ``metric.merge(cls.empty())`` is ``metric``."""
        return cls(accumulator=cls._bound_stream().empty())

    @classmethod
    def from_model_output(cls: type[M], **outputs: Any) -> M:
        """The metric of one batch: reads the keywords ``argnames`` and ``mask``, ignores the
        rest."""
        stream = cls._bound_stream()
        return cls(accumulator=stream.update(stream.empty(), outputs))

    def merge(self: M, other: M) -> M:
        """The metric of both: the accumulators added (exact counts, compensated sums)."""
        return type(self)(accumulator=self.accumulator + other.accumulator)

    def compute(self) -> Any:
        """The metric of everything merged."""
        return self._bound_stream().compute(self.accumulator)


@flax.struct.dataclass
class ConfusionMatrix(_StreamedMetric):
    """A confusion matrix over an evaluation, as a CLU metric: exact mIoU, Dice, ....

    Made by :meth:`create`. ``from_model_output`` counts the pixels of a batch in a
    :class:`~jaxseg_losses.metrics.ConfusionMatrixAccumulator` (exact integer counts past
    :math:`2^{31}`), ``merge`` adds matrices, ``compute`` reads ``score`` from the matrix of
    every pixel merged: the score of the whole set, not a mean of per-batch scores.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from clu import metrics
      >>> import jaxseg_losses as jsl
      >>> import jaxseg_losses.clu
      >>> Metrics = metrics.Collection.create(
      ...     iou=jsl.clu.ConfusionMatrix.create(num_classes=3, ignore_index=255),
      ...     accuracy=jsl.clu.ConfusionMatrix.create(num_classes=3, score="pixel_accuracy",
      ...                                             ignore_index=255))
      >>> @jax.jit
      ... def eval_step(state, logits, labels):
      ...     return state.merge(Metrics.single_from_model_output(logits=logits, labels=labels))
      >>> labels = jnp.array([[0, 1, 1, 2], [0, 0, 255, 2]])
      >>> state = Metrics.empty()
      >>> state = eval_step(state, jax.nn.one_hot(labels, 3), labels)       # all right
      >>> state = eval_step(state, jax.nn.one_hot(jnp.zeros_like(labels), 3), labels)
      >>> print({name: round(float(value), 4) for name, value in state.compute().items()})
      {'iou': 0.5333, 'accuracy': 0.7143}
    """

    @classmethod
    def create(
        cls,
        *,
        num_classes: int,
        score: Any = "mean_iou",
        ignore_index: int | None = None,
        class_axis: int = -1,
        threshold: float = 0.0,
        argnames: Sequence[str] = _streams.DEFAULT_ARGNAMES,
    ) -> type[ConfusionMatrix]:
        r"""Returns the metric class of these options.

        Args:
          num_classes: :math:`C \ge 2`, the classes of the matrix.
          score: what ``compute`` returns: a key of
            :func:`~jaxseg_losses.metrics.compute_metrics` (``"mean_iou"``, ``"mean_dice"``,
            ``"pixel_accuracy"``, ``"frequency_weighted_iou"``, per class ``"iou"``,
            ``"dice"``, ``"precision"``, ``"recall"``), a tuple of keys (a dict), ``None`` (the
            dict of all), or a function of the ``[C, C]`` matrix.
          ignore_index: a label value whose pixels count nowhere.
          class_axis: the class axis of scores and dense labels.
          threshold: the decision threshold of single-channel scores (0 for logits).
          argnames: the keywords of ``from_model_output`` that hold the predictions (logits,
            probabilities or integer classes ``[B, *spatial]``) and the labels.

        Returns:
          A subclass of :class:`ConfusionMatrix` (a ``flax.struct`` dataclass).
        """
        stream = _streams.ConfusionStream.of(
            "jsl.clu.ConfusionMatrix",
            num_classes=num_classes,
            score=score,
            ignore_index=ignore_index,
            class_axis=class_axis,
            threshold=threshold,
            argnames=argnames,
            axis_name=None,
        )
        return cls._with_stream(stream)


@flax.struct.dataclass
class PerImage(_StreamedMetric):
    """Any per-image metric over an evaluation, as a CLU metric: HD95, Dice, ....

    Made by :meth:`create`. ``from_model_output`` calls ``fn(predictions, labels)`` (with
    ``mask=`` when a pixel mask is given) for the ``[B, C]`` values of a batch, NaN where
    undefined, into a :class:`~jaxseg_losses.metrics.PerImageAccumulator`; ``merge`` adds the
    compensated sums; ``compute`` reduces everything merged with ``reduction``, equal to
    :func:`~jaxseg_losses.metrics.reduce` on all the images at once. A ``[B]`` mask leaves whole
    images out.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> import jaxseg_losses.clu
      >>> def dice(predictions, labels):                   # one value per image and class
      ...     counts = jsl.metrics.overlap_counts(predictions, labels, num_classes=3)
      ...     return jsl.metrics.dice(counts, ignore_empty=True)
      >>> Dice = jsl.clu.PerImage.create(dice, num_classes=3, include_background=False,
      ...                                argnames=("predictions", "labels"))
      >>> labels = jnp.array([[0, 1, 1, 2], [0, 0, 1, 1]])
      >>> first = Dice.from_model_output(predictions=jnp.array([[0, 1, 2, 2], [0, 0, 1, 1]]),
      ...                                labels=labels)
      >>> both = first.merge(Dice.from_model_output(predictions=labels, labels=labels))
      >>> print(f"{both.compute():.4f}")
      0.9167
    """

    @classmethod
    def create(
        cls,
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
    ) -> type[PerImage]:
        """Returns the metric class of ``fn`` and these options.

        Args:
          fn: ``(predictions, labels, **mask) -> [B, C]`` float values (``[B, C - 1]`` without
            the background), e.g. ``functools.partial(jsl.metrics.hausdorff_distance,
            num_classes=C, percentile=95)``; with ``names``, a mapping (or NamedTuple) holding
            those arrays.
          num_classes: :math:`C`, the classes of the values.
          names: ``None`` (``fn`` returns one array, ``compute`` one value) or the names of the
            arrays ``fn`` returns (``compute`` a dict).
          reduction: a reduction of :data:`~jaxseg_losses.metrics.STREAMED_REDUCTIONS`
            (``"mean"``: each image's class mean, averaged over images, as MONAI).
          ignore_inf: ``True`` leaves ``±inf`` values (a distance to a class missing from one
            side) out like NaN: the reductions of the finite values.
          include_background: ``False`` leaves class 0 out (the surface metrics' default).
          classes: the classes kept (static indices), instead of ``include_background``.
          class_weights: static weights of the classes in the class means.
          argnames: the keywords of ``from_model_output`` that hold the predictions and the
            labels.

        Returns:
          A subclass of :class:`PerImage` (a ``flax.struct`` dataclass).
        """
        stream = _streams.PerImageStream.of(
            "jsl.clu.PerImage",
            fn,
            num_classes=num_classes,
            names=names,
            reduction=reduction,
            ignore_inf=ignore_inf,
            include_background=include_background,
            classes=classes,
            class_weights=class_weights,
            argnames=argnames,
            axis_name=None,
        )
        return cls._with_stream(stream)


@flax.struct.dataclass
class PanopticQuality(_StreamedMetric):
    """Panoptic quality over an evaluation, as a CLU metric (torchmetrics' and COCO's).

    Made by :meth:`create`. ``from_model_output`` matches the segments of each image
    (:func:`~jaxseg_losses.metrics.panoptic_counts`) and sums its
    :class:`~jaxseg_losses.metrics.PanopticCounts` over the images per class (TP, FP, FN
    exact, the IoU sum float32); ``merge`` adds them; ``compute`` finishes PQ (SQ, RQ) of each
    class from the totals and, with ``reduction="mean"``, averages the classes that have a
    segment.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> import jaxseg_losses.clu
      >>> PQ = jsl.clu.PanopticQuality.create(num_classes=3, max_instances=4)
      >>> labels = jnp.array([[[1, 1, 0, 2, 2], [1, 1, 0, 2, 2], [0, 0, 0, 0, 0]]])
      >>> predictions = jnp.array([[[1, 1, 0, 2, 2], [1, 0, 0, 2, 0], [0, 0, 0, 0, 1]]])
      >>> state = PQ.from_model_output(predictions=predictions, labels=labels)
      >>> state = state.merge(PQ.from_model_output(predictions=labels, labels=labels))
      >>> print(f"{state.compute():.4f}")
      0.7875
    """

    @classmethod
    def create(
        cls,
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
    ) -> type[PanopticQuality]:
        """Returns the metric class of these options.

        Args:
          num_classes: :math:`C`, the classes ``0 .. C-1`` (class 0 the background).
          max_instances: the static bound on the segments of one image of either input.
          metric: ``"pq"``, ``"sq"``, ``"rq"``, or a tuple of them (a dict).
          reduction: ``"mean"`` (the class mean, NaN classes left out) or ``"none"``
            (``[C']``).
          match_threshold: a pair matches when its IoU is strictly above it, in ``(0, 1]``.
          stuff_classes: the classes whose pixels form one segment per image.
          include_background: ``True`` evaluates class 0 too.
          connectivity: the adjacency of the connected components of class maps.
          void_index: a class value of unlabelled pixels (see
            :func:`~jaxseg_losses.metrics.panoptic_counts`).
          ignore_index: a label class whose pixels count nowhere.
          zero_division: the value of a class with no segment in either input (NaN: left out
            of the mean).
          argnames: the keywords of ``from_model_output`` that hold the predictions and the
            labels, each an integer class map ``[B, *spatial]`` or a pair
            ``(classes, instances)``.

        Returns:
          A subclass of :class:`PanopticQuality` (a ``flax.struct`` dataclass).
        """
        stream = _streams.PanopticStream.of(
            "jsl.clu.PanopticQuality",
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
            axis_name=None,
        )
        return cls._with_stream(stream)


@flax.struct.dataclass
class CalibrationError(_StreamedMetric):
    """The calibration error of every pixel seen, as a CLU metric (ECE, RMSCE, MCE).

    Made by :meth:`create`. ``from_model_output`` bins the top-label confidences of a batch
    into a :class:`~jaxseg_losses.metrics.CalibrationAccumulator` (exact counts, compensated
    sums of confidences); ``merge`` adds the bins; ``compute`` gives
    :func:`~jaxseg_losses.metrics.calibration_error` of all the pixels merged.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> import jaxseg_losses.clu
      >>> ECE = jsl.clu.CalibrationError.create(num_bins=10)
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]]])
      >>> state = ECE.from_model_output(logits=logits, labels=jnp.array([[0, 1, 1]]))
      >>> print(f"{state.compute():.4f}")
      0.1938
    """

    @classmethod
    def create(
        cls,
        *,
        num_bins: int = 15,
        norm: str | Sequence[str] = "l1",
        activation: str | None = "softmax",
        class_axis: int = -1,
        ignore_index: int | None = None,
        argnames: Sequence[str] = _streams.DEFAULT_ARGNAMES,
    ) -> type[CalibrationError]:
        """Returns the metric class of these options.

        Args:
          num_bins: the number of bins of equal width (and the bin of confidence 1).
          norm: ``"l1"`` (ECE), ``"l2"`` (RMS calibration error), ``"max"`` (MCE), or a tuple
            of them (a dict).
          activation: ``"softmax"``, ``"sigmoid"`` (one channel) or ``None``
            (probabilities).
          class_axis: the class axis of the scores.
          ignore_index: a label value whose pixels count nowhere.
          argnames: the keywords of ``from_model_output`` that hold the scores and the labels.

        Returns:
          A subclass of :class:`CalibrationError` (a ``flax.struct`` dataclass).
        """
        stream = _streams.CalibrationStream.of(
            "jsl.clu.CalibrationError",
            num_bins=num_bins,
            norm=norm,
            activation=activation,
            class_axis=class_axis,
            ignore_index=ignore_index,
            argnames=argnames,
            axis_name=None,
        )
        return cls._with_stream(stream)


__all__ = ["CalibrationError", "ConfusionMatrix", "PanopticQuality", "PerImage"]
