"""The streamed metrics behind ``jsl.nnx`` and ``jsl.clu``, each described once.

A *stream* is a frozen, hashable description of one metric over an evaluation loop: its
options, its empty state (an accumulator of :mod:`jaxseg_losses.metrics`, a pytree that adds
with ``+``), how one batch of model outputs folds in (``update(state, outputs)``, reading the
keywords ``argnames`` and ``mask`` of ``outputs`` and ignoring the rest, as Flax's and CLU's
metrics do) and how the totals finish (``compute``). ``jsl.nnx`` keeps the state in an
``nnx.metrics.MetricState`` and ``jsl.clu`` in a ``flax.struct`` field; both read the same
stream, so the two integrations give the same numbers as the plain accumulators.

Masks: a ``[B]`` mask marks whole images (padded examples of a last batch, CLU's convention);
anything else is a pixel mask ``[B, *spatial]`` and goes to the accumulator as it is.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg_losses._core import checks as _checks
from jaxseg_losses._core import exact as _exact
from jaxseg_losses.metrics._instances import check_max_instances
from jaxseg_losses.metrics.accumulators import ConfusionMatrixAccumulator, PerImageAccumulator
from jaxseg_losses.metrics.calibration import CALIBRATION_NORMS, CalibrationAccumulator
from jaxseg_losses.metrics.panoptic import PanopticCounts, panoptic_counts
from jaxseg_losses.metrics.reductions import STREAMED_REDUCTIONS, reduce

# The keys of ConfusionMatrixAccumulator.compute() (jsl.metrics.compute_metrics).
CONFUSION_SCORES = (
    "pixel_accuracy",
    "mean_iou",
    "mean_dice",
    "frequency_weighted_iou",
    "iou",
    "dice",
    "precision",
    "recall",
)
PANOPTIC_METRICS = ("pq", "sq", "rq")
PANOPTIC_REDUCTIONS = ("mean", "none")
DEFAULT_ARGNAMES = ("logits", "labels")


# ----------------------------------------------------------------------------------------------
# Validation of the options.


def check_argnames(argnames: Any) -> tuple[str, str]:
    """Two distinct keyword names: where ``update`` reads the predictions and the labels."""
    if isinstance(argnames, str) or not isinstance(argnames, Sequence) or len(argnames) != 2:
        raise TypeError(
            "`argnames` must be a pair of keyword names (predictions, labels), e.g. "
            f"('logits', 'labels'); got {type(argnames).__name__} {argnames!r}."
        )
    names = tuple(argnames)
    if not all(isinstance(n, str) and n.isidentifier() for n in names) or names[0] == names[1]:
        raise ValueError(f"`argnames` must be two distinct identifiers; got {names!r}.")
    if "mask" in names:
        raise ValueError(f"`argnames` must not name 'mask', which is always the mask; got {names}.")
    return names[0], names[1]


def check_selection(name: str, value: Any, choices: Sequence[str]) -> str | tuple[str, ...]:
    """One of ``choices`` (the result is that value) or a non-empty sequence of them (a dict)."""
    if isinstance(value, str):
        _checks.check_choice(name, value, choices)
        return value
    if not isinstance(value, Sequence) or not value:
        raise TypeError(
            f"`{name}` must be one of {list(choices)} or a non-empty tuple of them; got "
            f"{type(value).__name__} {value!r}."
        )
    for item in value:
        if not isinstance(item, str):
            raise TypeError(f"`{name}` must hold names; got {type(item).__name__} {item!r}.")
        _checks.check_choice(name, item, choices)
    if len(set(value)) != len(value):
        raise ValueError(f"`{name}` must not repeat a name; got {tuple(value)!r}.")
    return tuple(value)


def _check_axis(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an int; got {type(value).__name__} {value!r}.")
    return int(value)


def _check_hashable(name: str, value: Any) -> Any:
    """A static option: it becomes part of the metric's (hashable) description."""
    try:
        hash(value)
    except TypeError:
        raise TypeError(
            f"`{name}` must be hashable (a static option); got {type(value).__name__}."
        ) from None
    return value


def _check_static_real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real | np.ndarray | np.generic):
        raise TypeError(f"`{name}` must be a Python number; got {type(value).__name__} {value!r}.")
    return float(np.asarray(value))


def _static_weights(weights: Any) -> tuple[float, ...] | None:
    """Class weights as a tuple of numbers: they fix the accumulator's class means."""
    if weights is None:
        return None
    if isinstance(weights, str):
        raise TypeError(
            "`class_weights` of a streamed per-image metric must be static numbers, one per "
            f"class (the class means are summed as images arrive); got {weights!r}."
        )
    return tuple(np.asarray(weights, np.float64).tolist())


def _select(results: Mapping[str, Any], selection: str | tuple[str, ...] | None) -> Any:
    if selection is None:
        return dict(results)
    if isinstance(selection, str):
        return results[selection]
    return {name: results[name] for name in selection}


# ----------------------------------------------------------------------------------------------
# Reading the model outputs.


def read_inputs(outputs: Mapping[str, Any], argnames: tuple[str, str], owner: str) -> Any:
    """``(predictions, labels, mask)`` from the keywords of one ``update``."""
    missing = [name for name in argnames if name not in outputs]
    if missing:
        raise TypeError(
            f"{owner} reads the keywords {list(argnames)} (its `argnames`); missing "
            f"{missing}, got {sorted(outputs)}."
        )
    return outputs[argnames[0]], outputs[argnames[1]], outputs.get("mask")


def pixel_shape(labels: Any, class_axis: int) -> tuple[int, ...]:
    """``[B, *spatial]`` of labels: integer maps as they are, dense targets without their
    class axis, a panoptic pair ``(classes, instances)`` by its classes."""
    if isinstance(labels, tuple | list):
        return tuple(jnp.shape(labels[0]))
    shape = tuple(jnp.shape(labels))
    if jnp.issubdtype(jnp.result_type(labels), jnp.integer) or not shape:
        return shape
    axis = class_axis % len(shape)
    return shape[:axis] + shape[axis + 1 :]


def is_image_mask(mask: Any) -> bool:
    return mask is not None and jnp.ndim(mask) == 1


def pixel_mask(mask: Any, shape: tuple[int, ...]) -> Any:
    """A ``[B]`` mask of whole images spread over their pixels; any other mask as it is."""
    if not is_image_mask(mask) or len(shape) < 2:
        return mask
    array = jnp.asarray(mask)
    if array.shape[0] != shape[0]:
        raise ValueError(
            f"A [B] `mask` marks images and needs one entry per image, {shape[0]}; got shape "
            f"{tuple(array.shape)}. A pixel mask is [B, *spatial] = {list(shape)}."
        )
    return jnp.broadcast_to(array.reshape((-1,) + (1,) * (len(shape) - 1)), shape)


# ----------------------------------------------------------------------------------------------
# The streams.


@dataclasses.dataclass(frozen=True)
class ConfusionStream:
    """A confusion matrix (:class:`ConfusionMatrixAccumulator`) and the scores read from it."""

    num_classes: int
    score: Any
    ignore_index: int | None
    class_axis: int
    threshold: float
    argnames: tuple[str, str]
    axis_name: Any
    owner: str

    @classmethod
    def of(cls, owner: str, *, num_classes: Any, score: Any, **options: Any) -> ConfusionStream:
        if score is not None and not callable(score):
            score = check_selection("score", score, CONFUSION_SCORES)
        stream = cls(
            num_classes=num_classes,
            score=_check_hashable("score", score),
            ignore_index=_checks.check_label_value("ignore_index", options["ignore_index"]),
            class_axis=_check_axis("class_axis", options["class_axis"]),
            threshold=_check_static_real("threshold", options["threshold"]),
            argnames=check_argnames(options["argnames"]),
            axis_name=_check_hashable("axis_name", options["axis_name"]),
            owner=owner,
        )
        stream.empty()  # validates num_classes
        return stream

    def empty(self) -> ConfusionMatrixAccumulator:
        return ConfusionMatrixAccumulator.empty(self.num_classes)

    def update(
        self, state: ConfusionMatrixAccumulator, outputs: Mapping[str, Any]
    ) -> ConfusionMatrixAccumulator:
        predictions, labels, mask = read_inputs(outputs, self.argnames, self.owner)
        return state.update(
            predictions,
            labels,
            ignore_index=self.ignore_index,
            mask=pixel_mask(mask, pixel_shape(labels, self.class_axis)),
            class_axis=self.class_axis,
            threshold=self.threshold,
            axis_name=self.axis_name,
        )

    def compute(self, state: ConfusionMatrixAccumulator) -> Any:
        if callable(self.score):
            value = self.score(state.matrix)
            return _exact.refuse_if_summed(state.copies, "ConfusionMatrixAccumulator", value)
        return _select(state.compute(), self.score)


@dataclasses.dataclass(frozen=True)
class PerImageStream:
    """Per-image ``[B, C]`` values of a function, summed by :class:`PerImageAccumulator`."""

    fn: Callable[..., Any]
    names: tuple[str, ...] | None
    num_classes: int
    reduction: str
    ignore_inf: bool
    include_background: bool
    classes: tuple[int, ...] | None
    class_weights: tuple[float, ...] | None
    argnames: tuple[str, str]
    axis_name: Any
    owner: str

    @classmethod
    def of(cls, owner: str, fn: Any, **options: Any) -> PerImageStream:
        if not callable(fn):
            raise TypeError(
                "`fn` must be a function (predictions, labels) -> [B, C] per-image values, e.g. "
                f"functools.partial(jsl.metrics.hausdorff_distance, ...); got {type(fn).__name__}."
            )
        names = options["names"]
        if names is not None:
            if isinstance(names, str) or not isinstance(names, Sequence):
                raise TypeError(
                    "`names` must be None (fn returns one array) or a tuple of the names of "
                    f"the arrays fn returns; got {type(names).__name__} {names!r}."
                )
            names = tuple(names)
        _checks.check_choice("reduction", options["reduction"], STREAMED_REDUCTIONS)
        classes = options["classes"]
        stream = cls(
            fn=_check_hashable("fn", fn),
            names=names,
            num_classes=options["num_classes"],
            reduction=options["reduction"],
            ignore_inf=_checks.check_bool("ignore_inf", options["ignore_inf"]),
            include_background=_checks.check_bool(
                "include_background", options["include_background"]
            ),
            classes=None if classes is None else tuple(classes),
            class_weights=_static_weights(options["class_weights"]),
            argnames=check_argnames(options["argnames"]),
            axis_name=_check_hashable("axis_name", options["axis_name"]),
            owner=owner,
        )
        stream.empty()  # validates names, num_classes, classes and class_weights
        return stream

    def empty(self) -> PerImageAccumulator:
        return PerImageAccumulator.empty(
            self.names or ("value",),
            self.num_classes,
            include_background=self.include_background,
            classes=self.classes,
            class_weights=self.class_weights,
        )

    def _values(self, predictions: Any, labels: Any, mask: Any) -> dict[str, Any]:
        pixels = {} if mask is None or is_image_mask(mask) else {"mask": mask}
        output = self.fn(predictions, labels, **pixels)
        if self.names is None:
            return {"value": output}
        if hasattr(output, "_asdict"):  # a NamedTuple such as LesionScores
            output = output._asdict()
        if not isinstance(output, Mapping) or not set(self.names) <= set(output):
            got = sorted(output) if isinstance(output, Mapping) else type(output).__name__
            raise ValueError(
                f"{self.owner}: with names={list(self.names)}, fn must return a mapping (or "
                f"NamedTuple) holding those [B, C] arrays; got {got}."
            )
        return {name: output[name] for name in self.names}

    def update(self, state: PerImageAccumulator, outputs: Mapping[str, Any]) -> PerImageAccumulator:
        predictions, labels, mask = read_inputs(outputs, self.argnames, self.owner)
        values = self._values(predictions, labels, mask)
        if is_image_mask(mask):
            # A left-out image has no defined value: NaN is what every reduction skips.
            keep = jnp.asarray(mask).astype(jnp.bool_)[:, None]
            values = {
                name: jnp.where(keep, v, jnp.asarray(jnp.nan, jnp.result_type(v)))
                for name, v in values.items()
            }
        return state.update(values, axis_name=self.axis_name)

    def compute(self, state: PerImageAccumulator) -> Any:
        # ignore_inf is passed only when set: the reductions of every value need no option.
        finite = {"ignore_inf": True} if self.ignore_inf else {}
        results = state.compute(reduction=self.reduction, **finite)
        return results["value"] if self.names is None else results


@dataclasses.dataclass(frozen=True)
class PanopticStream:
    """Panoptic counts of each class summed over images (:class:`PanopticCounts` ``[C']``)."""

    num_classes: int
    max_instances: int
    metric: str | tuple[str, ...]
    reduction: str
    options: tuple[tuple[str, Any], ...]  # the other options of panoptic_counts
    zero_division: float
    argnames: tuple[str, str]
    axis_name: Any
    owner: str

    @classmethod
    def of(cls, owner: str, **options: Any) -> PanopticStream:
        metric = check_selection("metric", options.pop("metric"), PANOPTIC_METRICS)
        reduction = options.pop("reduction")
        _checks.check_choice("reduction", reduction, PANOPTIC_REDUCTIONS)
        stuff = options["stuff_classes"]
        options["stuff_classes"] = tuple(stuff) if isinstance(stuff, Sequence | range) else stuff
        stream = cls(
            num_classes=_checks.check_num_classes(options.pop("num_classes")),
            max_instances=options.pop("max_instances"),
            metric=metric,
            reduction=reduction,
            zero_division=_check_static_real("zero_division", options.pop("zero_division")),
            argnames=check_argnames(options.pop("argnames")),
            axis_name=_check_hashable("axis_name", options.pop("axis_name")),
            owner=owner,
            options=tuple((k, _check_hashable(k, v)) for k, v in sorted(options.items())),
        )
        # The options that shape the state are checked here, the others at the first update.
        check_max_instances(stream.max_instances)
        _checks.check_bool("include_background", dict(stream.options)["include_background"])
        return stream

    def _count_options(self) -> dict[str, Any]:
        return {
            "num_classes": self.num_classes,
            "max_instances": self.max_instances,
            **dict(self.options),
        }

    def empty(self) -> PanopticCounts:
        kept = self.num_classes - (0 if dict(self.options)["include_background"] else 1)
        zeros = jnp.zeros((kept,), jnp.int32)
        return PanopticCounts(zeros, zeros, zeros, jnp.zeros((kept,), jnp.float32))

    def update(self, state: PanopticCounts, outputs: Mapping[str, Any]) -> PanopticCounts:
        predictions, labels, mask = read_inputs(outputs, self.argnames, self.owner)
        mask = pixel_mask(mask, pixel_shape(labels, -1))
        counts = panoptic_counts(predictions, labels, mask=mask, **self._count_options())
        counts = counts.sum(axis=0)
        if self.axis_name is not None:
            counts = PanopticCounts(
                *(_exact.psum(c, self.axis_name) for c in (counts.tp, counts.fp, counts.fn)),
                jax.lax.psum(counts.iou_sum, self.axis_name),
            )
        return state + counts

    def compute(self, state: PanopticCounts) -> Any:
        results = {}
        for metric in (self.metric,) if isinstance(self.metric, str) else self.metric:
            per_class = getattr(state, metric)(zero_division=self.zero_division)
            if self.reduction == "mean":
                per_class = reduce(per_class, reduction="mean")
            results[metric] = per_class
        return _select(results, self.metric)


@dataclasses.dataclass(frozen=True)
class CalibrationStream:
    """The confidence bins of :class:`CalibrationAccumulator` and their calibration errors."""

    num_bins: int
    norm: str | tuple[str, ...]
    activation: str | None
    class_axis: int
    ignore_index: int | None
    argnames: tuple[str, str]
    axis_name: Any
    owner: str

    @classmethod
    def of(cls, owner: str, **options: Any) -> CalibrationStream:
        stream = cls(
            num_bins=options["num_bins"],
            norm=check_selection("norm", options["norm"], CALIBRATION_NORMS),
            activation=options["activation"],
            class_axis=_check_axis("class_axis", options["class_axis"]),
            ignore_index=_checks.check_label_value("ignore_index", options["ignore_index"]),
            argnames=check_argnames(options["argnames"]),
            axis_name=_check_hashable("axis_name", options["axis_name"]),
            owner=owner,
        )
        _checks.check_choice("activation", stream.activation, ("softmax", "sigmoid", None))
        stream.empty()  # validates num_bins
        return stream

    def empty(self) -> CalibrationAccumulator:
        return CalibrationAccumulator.empty(self.num_bins)

    def update(
        self, state: CalibrationAccumulator, outputs: Mapping[str, Any]
    ) -> CalibrationAccumulator:
        predictions, labels, mask = read_inputs(outputs, self.argnames, self.owner)
        return state.update(
            predictions,
            labels,
            activation=self.activation,
            class_axis=self.class_axis,
            ignore_index=self.ignore_index,
            mask=pixel_mask(mask, pixel_shape(labels, self.class_axis)),
            axis_name=self.axis_name,
        )

    def compute(self, state: CalibrationAccumulator) -> Any:
        norms = (self.norm,) if isinstance(self.norm, str) else self.norm
        return _select({norm: state.compute(norm=norm) for norm in norms}, self.norm)
