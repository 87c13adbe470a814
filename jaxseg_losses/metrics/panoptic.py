r"""Panoptic quality: how well the predicted instances (segments) match the true ones.

A *segment* is a set of pixels of one class and one instance: every (class, instance id) pair
of an image, for a class of countable *things*; every pixel of the class, one segment per image,
for a class of amorphous *stuff* (``stuff_classes``: sky, road, tissue). A predicted and a true
segment of the same class *match* when their IoU exceeds ``match_threshold`` (0.5: at most one
partner each, Kirillov et al.; below 0.5 the assignment of largest total IoU, then the pairs
above the threshold, as MONAI). Matched pairs are true positives (TP), unmatched predicted
segments false positives (FP), unmatched true ones false negatives (FN), and per class

.. math::

   \mathrm{PQ} = \frac{\sum_{(p, g) \in TP} \mathrm{IoU}(p, g)}
                      {|TP| + \tfrac12 |FP| + \tfrac12 |FN|}
   = \underbrace{\frac{\sum_{TP} \mathrm{IoU}}{|TP|}}_{\mathrm{SQ}} \times
     \underbrace{\frac{|TP|}{|TP| + \tfrac12 |FP| + \tfrac12 |FN|}}_{\mathrm{RQ}}.

Data contract: ``predictions`` and ``labels`` are each either a pair ``(classes, instances)`` of
integer maps ``[B, *spatial]`` (1 to 3 spatial axes; instance id 0 is no instance, other ids are
any integers, one instance per distinct (class, id) pair) or one integer class map
``[B, *spatial]`` whose instances are the connected components of each class
(``connectivity``). Classes are ``0 .. C-1``; class 0 is the background and is not evaluated
unless ``include_background=True``. A static ``max_instances`` bounds the segments of one image
(every class together, each input alone): an image with more has NaN values, ``jsl.checked``
raises, and a concrete (not traced) input raises ``ValueError`` at once.

Excluded pixels (``mask`` False/0, or a label equal to ``ignore_index``) count nowhere: they
belong to no segment, so no prediction or label there changes any value. *Void* pixels
(``void_index``, a class value of either input) are the unlabelled pixels of COCO and of
torchmetrics: they are left out of every IoU, and an unmatched segment that lies more than half
on the other input's void is neither an FP nor an FN.

:class:`PanopticCounts` holds the additive statistics of each image and class: TP, FP, FN as
exact integers and the sum of the matched IoUs. They add over images, batches and devices, and
PQ, SQ and RQ are finished from them last (of each image, or of the whole dataset per class as
torchmetrics and COCO do).

References:
  Kirillov, He, Girshick, Rother & Dollár, "Panoptic Segmentation", CVPR 2019.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg_losses._core import checks as _checks
from jaxseg_losses._core.engine import divide
from jaxseg_losses._core.exact import ExactCount
from jaxseg_losses.geometry.components import check_connectivity, connected_components
from jaxseg_losses.metrics import _instances
from jaxseg_losses.metrics._prepare import mask_pixels

ArrayLike = jax.typing.ArrayLike

_MAX_SPATIAL_DIMS = 3
_METRICS = ("pq", "sq", "rq")


# ----------------------------------------------------------------------------------------------
# The additive statistics.


@jax.tree_util.register_pytree_node_class
class PanopticCounts:
    r"""Matched, unmatched and IoU statistics of each image and class: a pytree that adds.

    The result of :func:`panoptic_counts`. ``tp``, ``fp`` and ``fn`` are :class:`ExactCount`
    (exact past :math:`2^{31}` without x64), ``iou_sum`` float32, all ``[B, C]`` (or the shape
    left after :meth:`sum`). Statistics of different images add: ``a + b`` adds batches,
    :meth:`sum` pools images (``axis=0``) or classes (``axis=-1``), ``jax.lax.psum`` adds
    devices; indexing applies to every field. :meth:`pq`, :meth:`sq` and :meth:`rq` finish
    them:

    .. math::

       \mathrm{PQ} = \frac{S}{TP + \tfrac12 FP + \tfrac12 FN}, \quad
       \mathrm{SQ} = \frac{S}{TP}, \quad
       \mathrm{RQ} = \frac{TP}{TP + \tfrac12 FP + \tfrac12 FN}

    with :math:`S` the sum of the matched IoUs. Where :math:`TP + FP + FN = 0` (no segment of
    the class in either input) all three are undefined: ``zero_division`` (NaN by default).
    Where :math:`TP = 0` and there are segments, SQ is 0 (as MONAI and torchmetrics), so that
    :math:`\mathrm{PQ} = \mathrm{SQ} \cdot \mathrm{RQ}` everywhere. An image whose segments
    overflowed ``max_instances`` has a NaN ``iou_sum`` (and zero counts): every value finished
    from it, alone or summed with others, is NaN.

    Args:
      tp: matched pairs, integer counts.
      fp: unmatched predicted segments, same shape.
      fn: unmatched true segments, same shape.
      iou_sum: float sum of the IoUs of the matched pairs, same shape.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> from jaxseg_losses.metrics.panoptic import PanopticCounts
      >>> counts = PanopticCounts(jnp.array([[2, 0]]), jnp.array([[1, 0]]),
      ...                         jnp.array([[1, 0]]), jnp.array([[1.5, 0.0]]))
      >>> print(counts.pq(), counts.sq(), counts.rq())
      [[0.5 nan]] [[0.75  nan]] [[0.6666667       nan]]
    """

    __slots__ = ("fn", "fp", "iou_sum", "tp")
    tp: ExactCount
    fp: ExactCount
    fn: ExactCount
    iou_sum: jax.Array

    def __init__(self, tp: Any, fp: Any, fn: Any, iou_sum: Any) -> None:
        fields = {}
        for name, value in (("tp", tp), ("fp", fp), ("fn", fn)):
            try:
                fields[name] = value if isinstance(value, ExactCount) else ExactCount(value)
            except TypeError:
                raise TypeError(
                    f"`{name}` must hold integer counts; got {type(value).__name__}."
                ) from None
        iou = jnp.asarray(iou_sum)
        if not jnp.issubdtype(iou.dtype, jnp.floating):
            iou = iou.astype(jnp.float32)
        shapes = {name: value.shape for name, value in fields.items()}
        shapes["iou_sum"] = tuple(iou.shape)
        if len(set(shapes.values())) != 1:
            raise ValueError(f"The four statistics must have one shape; got {shapes}.")
        for name, value in (*fields.items(), ("iou_sum", iou)):
            object.__setattr__(self, name, value)

    @classmethod
    def _of(cls, tp: Any, fp: Any, fn: Any, iou_sum: Any) -> PanopticCounts:
        counts = object.__new__(cls)
        for name, value in (("tp", tp), ("fp", fp), ("fn", fn), ("iou_sum", iou_sum)):
            object.__setattr__(counts, name, value)
        return counts

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("PanopticCounts is immutable.")

    def tree_flatten(self) -> tuple[tuple[Any, Any, Any, Any], None]:
        return (self.tp, self.fp, self.fn, self.iou_sum), None

    @classmethod
    def tree_unflatten(cls, aux: None, children: Sequence[Any]) -> PanopticCounts:
        return cls._of(*children)

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of each field, e.g. ``(B, C)``."""
        return self.tp.shape

    def __add__(self, other: Any) -> PanopticCounts:
        if isinstance(other, int) and not isinstance(other, bool) and other == 0:
            return self  # sum() starts from 0
        if not isinstance(other, PanopticCounts):
            return NotImplemented
        if other.shape != self.shape:
            raise ValueError(
                f"PanopticCounts add when their shapes match; got {self.shape} and "
                f"{other.shape}. Pool images first with .sum(axis=0)."
            )
        return PanopticCounts._of(
            self.tp + other.tp,
            self.fp + other.fp,
            self.fn + other.fn,
            self.iou_sum + other.iou_sum,
        )

    __radd__ = __add__

    def sum(
        self, axis: int | Sequence[int] | None = None, *, keepdims: bool = False
    ) -> PanopticCounts:
        """The statistics summed over ``axis`` (images: 0, classes: -1; all by default)."""
        axes = None if axis is None else tuple(np.atleast_1d(axis).tolist())
        return PanopticCounts._of(
            self.tp.sum(axes, keepdims=keepdims),
            self.fp.sum(axes, keepdims=keepdims),
            self.fn.sum(axes, keepdims=keepdims),
            jnp.sum(self.iou_sum, axis=axes, keepdims=keepdims),
        )

    def __getitem__(self, index: Any) -> PanopticCounts:
        return PanopticCounts._of(
            self.tp[index], self.fp[index], self.fn[index], self.iou_sum[index]
        )

    def __iter__(self) -> Any:
        raise TypeError(
            "PanopticCounts is not iterable: read .tp, .fp, .fn and .iou_sum, or index images "
            "with counts[b]."
        )

    def __repr__(self) -> str:
        return (
            f"PanopticCounts(tp={self.tp!r}, fp={self.fp!r}, fn={self.fn!r}, "
            f"iou_sum={self.iou_sum!r})"
        )

    def _finish(self, metric: str, zero_division: Any) -> jax.Array:
        _checks.check_real_scalar("zero_division", zero_division)
        tp, fp, fn = (x.to_float(jnp.float32) for x in (self.tp, self.fp, self.fn))
        iou_sum = self.iou_sum.astype(jnp.float32)
        segments = tp + 0.5 * (fp + fn)
        if metric == "pq":
            value = divide(iou_sum, segments, empty=0.0)
        elif metric == "sq":
            value = divide(iou_sum, tp, empty=0.0)
        else:
            value = divide(tp, segments, empty=0.0)
        value = jnp.where(segments == 0, jnp.asarray(zero_division, jnp.float32), value)
        return jnp.where(jnp.isnan(iou_sum), jnp.float32(jnp.nan), value)

    def pq(self, *, zero_division: ArrayLike = math.nan) -> jax.Array:
        """The panoptic quality :math:`S / (TP + FP/2 + FN/2)`, float32 with the fields' shape.

        Args:
          zero_division: the value where there is no segment (NaN by default; MONAI gives 0).
        """
        return self._finish("pq", zero_division)

    def sq(self, *, zero_division: ArrayLike = math.nan) -> jax.Array:
        """The segmentation quality :math:`S / TP` (0 where no pair matched), float32.

        Args:
          zero_division: the value where there is no segment (NaN by default; MONAI gives 0).
        """
        return self._finish("sq", zero_division)

    def rq(self, *, zero_division: ArrayLike = math.nan) -> jax.Array:
        """The recognition quality :math:`TP / (TP + FP/2 + FN/2)`, float32.

        Args:
          zero_division: the value where there is no segment (NaN by default; MONAI gives 0).
        """
        return self._finish("rq", zero_division)


# ----------------------------------------------------------------------------------------------
# Validation.


def _check_threshold(match_threshold: Any) -> float:
    """A concrete real in ``(0, 1]``: it picks the matching algorithm, a static choice."""
    if isinstance(match_threshold, bool) or not isinstance(
        match_threshold, numbers.Real | np.ndarray | jax.Array
    ):
        raise TypeError(
            f"`match_threshold` must be a real number in (0, 1]; got "
            f"{type(match_threshold).__name__} {match_threshold!r}."
        )
    try:
        value = float(np.asarray(match_threshold))
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        raise TypeError(
            "`match_threshold` must be a concrete number (it chooses the matching algorithm "
            "at trace time); got a traced value. Pass it as a Python float."
        ) from None
    except TypeError:
        raise TypeError(
            f"`match_threshold` must be a real number in (0, 1]; got {match_threshold!r}."
        ) from None
    if not 0.0 < value <= 1.0:
        raise ValueError(f"`match_threshold` must lie in (0, 1]; got {value}.")
    return value


def _check_stuff(stuff_classes: Any, num_classes: int) -> tuple[int, ...]:
    if isinstance(stuff_classes, Sequence | range) and len(stuff_classes) == 0:
        return ()
    return _checks.class_indices("stuff_classes", stuff_classes, num_classes)


def _check_void(void_index: Any, num_classes: int) -> int | None:
    void_index = _checks.check_label_value("void_index", void_index)
    if void_index is not None and 0 <= void_index < num_classes:
        raise ValueError(
            f"`void_index` marks unlabelled pixels and must not be a class; got {void_index}, "
            f"a class of [0, {num_classes}). Use a value such as -1 or 255."
        )
    return void_index


def _integer_map(name: str, value: Any) -> jax.Array:
    array = jnp.asarray(value)
    if not jnp.issubdtype(array.dtype, jnp.integer):
        raise TypeError(
            f"`{name}` must be an integer map [B, *spatial]; got dtype {array.dtype}. Take the "
            "arg-max of scores first."
        )
    if not 2 <= array.ndim <= _MAX_SPATIAL_DIMS + 1:
        raise ValueError(
            f"`{name}` must be [B, *spatial] with 1 to {_MAX_SPATIAL_DIMS} spatial axes (rank 2 "
            f"to {_MAX_SPATIAL_DIMS + 1}); got shape {tuple(array.shape)}."
        )
    return array.astype(jnp.int32)


def _panoptic_map(name: str, value: Any) -> tuple[jax.Array, jax.Array | None]:
    """``(classes, instances)`` of one input; ``instances`` is ``None`` for a class map."""
    if isinstance(value, tuple | list):
        if len(value) != 2:
            raise ValueError(
                f"`{name}` as a sequence must be a pair (classes, instances) of integer maps "
                f"[B, *spatial]; got {len(value)} items."
            )
        classes = _integer_map(f"{name}[0] (classes)", value[0])
        instances = _integer_map(f"{name}[1] (instances)", value[1])
        if classes.shape != instances.shape:
            raise ValueError(
                f"The classes and instances of `{name}` must have one shape; got "
                f"{tuple(classes.shape)} and {tuple(instances.shape)}."
            )
        return classes, instances
    return _integer_map(name, value), None


class _Options(NamedTuple):
    num_classes: int
    max_instances: int
    threshold: float
    stuff: np.ndarray  # [C] bool
    evaluated: np.ndarray  # [C] bool: the classes that have segments
    connectivity: int
    void_index: int | None


# ----------------------------------------------------------------------------------------------
# Segments.


def _segments(
    classes: jax.Array,
    instances: jax.Array | None,
    counted: jax.Array,
    options: _Options,
) -> _instances.Compacted:
    """The segments of one input in slots ``1 .. N``; ``keys[0]`` is each slot's class."""
    num_classes = options.num_classes
    in_range = (classes >= 0) & (classes < num_classes)
    safe = jnp.where(in_range, classes, 0)
    evaluated = jnp.asarray(options.evaluated)[safe] & in_range & counted
    stuff = jnp.asarray(options.stuff)[safe]
    if instances is not None:
        present = evaluated & (stuff | (instances != 0))
        ids = (classes, jnp.where(stuff, 0, instances))
        return _instances.compact_instances(ids, present, max_instances=options.max_instances)
    groups = np.flatnonzero(options.evaluated)
    group_classes = jnp.asarray(groups, jnp.int32).reshape((1, -1) + (1,) * (classes.ndim - 1))
    masks = (classes[:, None] == group_classes) & counted[:, None]  # [B, G, *spatial]
    batch, spatial = classes.shape[0], classes.shape[1:]
    things = np.flatnonzero(~options.stuff[groups])
    labels = masks.astype(jnp.int32)
    counts = jnp.any(masks.reshape(batch, len(groups), -1), axis=-1).astype(jnp.int32)
    if things.size:
        thing_masks = masks[:, things].reshape(batch * things.size, *spatial)
        thing_labels, thing_counts = connected_components(
            thing_masks, connectivity=options.connectivity
        )
        labels = labels.at[:, things].set(thing_labels.reshape(batch, things.size, *spatial))
        counts = counts.at[:, things].set(thing_counts.reshape(batch, things.size))
    stacked = _instances.stack_components(labels, counts, max_instances=options.max_instances)
    group, label = stacked.keys
    slot_classes = jnp.where(stacked.used, jnp.asarray(groups, jnp.int32)[group], 0)
    return stacked._replace(keys=(slot_classes, label))


# ----------------------------------------------------------------------------------------------
# Matching.


def _assignment(iou: jax.Array) -> jax.Array:
    """bool ``[B, Np, Nt]``: the pairs of an assignment of largest total IoU, per image."""
    try:
        from optax import assignment
    except ImportError:
        raise ImportError(
            "`match_threshold` below 0.5 matches segments by the Hungarian algorithm of optax, "
            "which is not installed: pip install optax."
        ) from None
    # One image after another: a vmap would batch the algorithm's while loops, which
    # jsl.checked (checkify) cannot trace.
    rows, cols = jax.lax.map(assignment.hungarian_algorithm, -iou)
    image = jnp.arange(iou.shape[0], dtype=jnp.int32)[:, None]
    return jnp.zeros(iou.shape, jnp.bool_).at[image, rows, cols].set(True)


def _per_class(values: jax.Array, classes: jax.Array, num_classes: int) -> jax.Array:
    """``[B, C]``: the sums of ``values`` ``[B, N]`` over the slots of each class."""
    image = jnp.arange(values.shape[0], dtype=jnp.int32)[:, None]
    return jnp.zeros((values.shape[0], num_classes), values.dtype).at[image, classes].add(values)


def _statistics(
    table: jax.Array,
    pred: _instances.Compacted,
    true: _instances.Compacted,
    options: _Options,
) -> PanopticCounts:
    """TP, FP, FN and the matched IoU sum of each image and class from the overlap table
    ``[B, N + 2, N + 2]`` (slot ``N + 1``: void)."""
    void = options.max_instances + 1
    inter = table[:, 1:void, 1:void]
    p_full = jnp.sum(table[:, 1:void, :], axis=2, dtype=jnp.int32)
    t_full = jnp.sum(table[:, :, 1:void], axis=1, dtype=jnp.int32)
    p_void, t_void = table[:, 1:void, void], table[:, void, 1:void]
    # The IoU leaves void pixels out of both areas (COCO's rule).
    p_area, t_area = p_full - p_void, t_full - t_void
    p_class, t_class = pred.keys[0][:, 1:], true.keys[0][:, 1:]
    p_used, t_used = pred.used[:, 1:], true.used[:, 1:]
    same = (p_class[:, :, None] == t_class[:, None, :]) & p_used[:, :, None] & t_used[:, None, :]
    union = p_area[:, :, None] + t_area[:, None, :] - inter
    iou = divide(inter.astype(jnp.float32), union.astype(jnp.float32), empty=0.0)
    iou = jnp.where(same, iou, jnp.float32(0.0))
    # Strictly above the threshold; from 0.5 up at most one partner each, without a search.
    matched = iou > jnp.float32(options.threshold)
    if options.threshold < 0.5:
        matched = matched & _assignment(iou)
    p_matched, t_matched = jnp.any(matched, axis=2), jnp.any(matched, axis=1)
    matched_iou = jnp.sum(jnp.where(matched, iou, jnp.float32(0.0)), axis=2)
    # An unmatched segment mostly on the other input's void is no error.
    fp = p_used & ~p_matched & (p_void <= p_full - p_void)
    fn = t_used & ~t_matched & (t_void <= t_full - t_void)
    num_classes = options.num_classes
    overflow = (pred.overflow | true.overflow)[:, None]

    def exact(x: jax.Array, classes: jax.Array) -> ExactCount:
        total = _per_class(x.astype(jnp.int32), classes, num_classes)
        return ExactCount(jnp.where(overflow, 0, total))

    iou_sum = _per_class(matched_iou, p_class, num_classes)
    return PanopticCounts._of(
        exact(p_matched, p_class),
        exact(fp, p_class),
        exact(fn, t_class),
        jnp.where(overflow, jnp.float32(jnp.nan), iou_sum),
    )


# ----------------------------------------------------------------------------------------------
# Public functions.


def _prepare(
    predictions: Any,
    labels: Any,
    num_classes: Any,
    max_instances: Any,
    match_threshold: Any,
    stuff_classes: Any,
    include_background: Any,
    connectivity: Any,
    void_index: Any,
    ignore_index: Any,
    mask: Any,
) -> tuple[_Options, tuple[Any, Any], tuple[Any, Any], jax.Array]:
    """Validated options, ``(classes, instances)`` of both inputs, the pixels that count."""
    num_classes = _checks.check_num_classes(num_classes)
    max_instances = _instances.check_max_instances(max_instances)
    threshold = _check_threshold(match_threshold)
    stuff = np.zeros(num_classes, bool)
    stuff[list(_check_stuff(stuff_classes, num_classes))] = True
    include_background = _checks.check_bool("include_background", include_background)
    if not include_background and num_classes < 2:
        raise ValueError(
            "include_background=False leaves class 0 out, which would leave no class: there "
            "is a single class. Pass include_background=True or num_classes >= 2."
        )
    evaluated = np.ones(num_classes, bool)
    evaluated[0] = include_background
    void_index = _check_void(void_index, num_classes)
    ignore_index = _checks.check_label_value("ignore_index", ignore_index)
    pred_classes, pred_instances = _panoptic_map("predictions", predictions)
    true_classes, true_instances = _panoptic_map("labels", labels)
    if pred_classes.shape != true_classes.shape:
        raise ValueError(
            f"`predictions` and `labels` must have one shape [B, *spatial]; got "
            f"{tuple(pred_classes.shape)} and {tuple(true_classes.shape)}."
        )
    connectivity = check_connectivity(connectivity, pred_classes.ndim - 1)
    counted = mask_pixels(mask, tuple(pred_classes.shape))
    if ignore_index is not None:
        counted = counted & (true_classes != ignore_index)
    for name, classes in (("predictions", pred_classes), ("labels", true_classes)):
        ok = ((classes >= 0) & (classes < num_classes)) | ~counted
        allowed = ""
        if void_index is not None:
            ok = ok | (classes == void_index)
            allowed = f" or equal void_index ({void_index})"
        _checks.check_elements(name, ok, classes, f"be classes in [0, {num_classes}){allowed}")
    options = _Options(
        num_classes, max_instances, threshold, stuff, evaluated, connectivity, void_index
    )
    return options, (pred_classes, pred_instances), (true_classes, true_instances), counted


def panoptic_counts(
    predictions: Any,
    labels: Any,
    *,
    num_classes: int,
    max_instances: int,
    match_threshold: float = 0.5,
    stuff_classes: Sequence[int] = (),
    include_background: bool = False,
    connectivity: int = 1,
    void_index: int | None = None,
    ignore_index: int | None = None,
    mask: ArrayLike | None = None,
) -> PanopticCounts:
    r"""Counts the matched and unmatched segments of each image and class, and their IoU sum.

    The additive statistics of the panoptic quality (see the module for segments, matching,
    void and the bound): per image :math:`b` and class :math:`c`, :math:`TP` the matched pairs
    of segments, :math:`FP` the unmatched predicted segments, :math:`FN` the unmatched true
    ones, and :math:`S = \sum_{TP} \mathrm{IoU}`, with

    .. math::

       \mathrm{IoU}(p, g) = \frac{|p \cap g|}{|p \setminus V_g| + |g \setminus V_p| - |p \cap g|}

    counted over the pixels that count, :math:`V_g, V_p` the void pixels of the labels and of
    the predictions. They add over images, batches and devices; finish them with
    :meth:`PanopticCounts.pq` (``.sq``, ``.rq``), per image or after
    ``counts.sum(axis=0)`` (the dataset's PQ of each class, as torchmetrics and COCO).

    Everything runs under ``jax.jit``: segments are numbered into ``max_instances`` slots per
    image (a linear-time pass when the (class, id) pairs pack into an integer below the pixel
    count ``P``, else one sort of each image's pixels), one scatter-add counts every pair's
    overlap, and matching below 0.5 runs optax's Hungarian algorithm on each image's
    ``[N, N]`` IoU table.

    Args:
      predictions: a pair ``(classes, instances)`` of integer maps ``[B, *spatial]``, or an
        integer class map ``[B, *spatial]`` whose instances are the connected components of
        each class.
      labels: the ground truth, in either form (independently of ``predictions``).
      num_classes: :math:`C`, the classes ``0 .. C-1`` (class 0 the background).
      max_instances: the static bound on the segments of one image of either input (every
        class together, each stuff class present counting one). An image with more is NaN
        (``iou_sum`` NaN, counts 0); ``jsl.checked`` raises, and so does a concrete input.
      match_threshold: a pair matches when its IoU is strictly above it, in ``(0, 1]``; below
        0.5 among the pairs of a maximum-total-IoU assignment (needs optax).
      stuff_classes: the classes whose pixels form one segment per image, instance ids
        ignored.
      include_background: ``True`` evaluates class 0 too (as a thing, unless it is stuff).
      connectivity: the adjacency of the connected components of class maps, in ``[1, D]``
        (1: faces; ``D``: faces, edges and corners).
      void_index: a class value of unlabelled pixels, in either input (not a class): left out
        of every IoU, and an unmatched segment more than half on the other input's void is
        neither an FP nor an FN.
      ignore_index: a label class whose pixels count nowhere.
      mask: ``[B, *spatial]`` bool (or numeric: non-zero counts): the pixels that count.

    Returns:
      :class:`PanopticCounts` ``[B, C]`` (``[B, C - 1]`` for classes ``1 .. C-1`` without the
      background, the default).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxseg_losses.metrics.panoptic import panoptic_counts
      >>> labels = jnp.array([[[1, 1, 0, 2, 2],
      ...                      [1, 1, 0, 2, 2],
      ...                      [0, 0, 0, 0, 0],
      ...                      [1, 1, 0, 0, 1]]])
      >>> predictions = jnp.array([[[1, 1, 0, 2, 2],
      ...                           [1, 0, 0, 2, 0],
      ...                           [0, 0, 0, 0, 0],
      ...                           [0, 0, 0, 1, 1]]])
      >>> counts = panoptic_counts(predictions, labels, num_classes=3, max_instances=4)
      >>> print(counts.tp, counts.fp, counts.fn)
      ExactCount([[1, 1]]) ExactCount([[1, 0]]) ExactCount([[2, 0]])
      >>> print(counts.iou_sum, counts.pq())
      [[0.75 0.75]] [[0.3  0.75]]
      >>> print(panoptic_counts(predictions, labels, num_classes=3, max_instances=4,
      ...                       match_threshold=0.3).pq())
      [[0.5  0.75]]

    References:
      Kirillov, He, Girshick, Rother & Dollár, "Panoptic Segmentation", CVPR 2019.
    """
    options, (pred_classes, pred_instances), (true_classes, true_instances), counted = _prepare(
        predictions,
        labels,
        num_classes,
        max_instances,
        match_threshold,
        stuff_classes,
        include_background,
        connectivity,
        void_index,
        ignore_index,
        mask,
    )
    pred = _segments(pred_classes, pred_instances, counted, options)
    true = _segments(true_classes, true_instances, counted, options)
    _instances.overflow_error(
        jnp.maximum(pred.count, true.count), options.max_instances, "segments"
    )
    void = options.max_instances + 1
    pred_slots, true_slots = pred.slots, true.slots
    if options.void_index is not None:
        pred_slots = jnp.where(pred_classes == options.void_index, void, pred_slots)
        true_slots = jnp.where(true_classes == options.void_index, void, true_slots)
    table = _instances.overlap_table(
        pred_slots, true_slots, counted, num_predicted=void, num_true=void
    )
    counts = _statistics(table, pred, true, options)
    return counts if include_background else counts[:, 1:]


def panoptic_quality(
    predictions: Any,
    labels: Any,
    *,
    num_classes: int,
    max_instances: int,
    metric: str = "pq",
    match_threshold: float = 0.5,
    stuff_classes: Sequence[int] = (),
    include_background: bool = False,
    connectivity: int = 1,
    void_index: int | None = None,
    ignore_index: int | None = None,
    mask: ArrayLike | None = None,
    zero_division: ArrayLike = math.nan,
) -> jax.Array:
    r"""Computes the panoptic quality (or SQ, RQ) of each image and class.

    How well the predicted instances match the true ones, one number that is the product of how
    many of them are found (recognition quality, an F1 score of matched segments) and how well
    the found ones are delineated (segmentation quality, their mean IoU):

    .. math::

       \mathrm{PQ} = \frac{\sum_{TP} \mathrm{IoU}}{|TP| + \tfrac12 |FP| + \tfrac12 |FN|}
       = \mathrm{SQ} \times \mathrm{RQ}

    :func:`panoptic_counts` finished per image (see it for every option): ``zero_division``
    (NaN by default) where a class has no segment in either input, SQ 0 where none matched.
    For the dataset's PQ of each class (torchmetrics, COCO), add the counts over images first:
    ``panoptic_counts(...).sum(axis=0).pq()``.

    Args:
      predictions: a pair ``(classes, instances)`` of integer maps ``[B, *spatial]``, or an
        integer class map ``[B, *spatial]`` (instances: connected components of each class).
      labels: the ground truth, in either form.
      num_classes: :math:`C`, the classes ``0 .. C-1`` (class 0 the background).
      max_instances: the static bound on the segments of one image of either input.
      metric: ``"pq"`` (default), ``"sq"`` or ``"rq"``.
      match_threshold: a pair matches when its IoU is strictly above it, in ``(0, 1]``.
      stuff_classes: the classes whose pixels form one segment per image.
      include_background: ``True`` evaluates class 0 too.
      connectivity: the adjacency of the connected components of class maps.
      void_index: a class value of unlabelled pixels (see :func:`panoptic_counts`).
      ignore_index: a label class whose pixels count nowhere.
      mask: ``[B, *spatial]`` bool (or numeric: non-zero counts): the pixels that count.
      zero_division: the value where a class has no segment in either input.

    Returns:
      float32 ``[B, C]`` (``[B, C - 1]`` without the background, the default).

    Examples:
      Two nuclei of class 1 in the ground truth, the prediction finds one well and splits
      nothing; MONAI's ``(instances, classes)`` channels become a pair:

      >>> import jax.numpy as jnp
      >>> from jaxseg_losses.metrics.panoptic import panoptic_quality
      >>> instances = jnp.array([[[1, 1, 0, 2], [1, 1, 0, 2]]])
      >>> classes = jnp.array([[[1, 1, 0, 1], [1, 1, 0, 1]]])
      >>> found = jnp.array([[[3, 3, 0, 0], [3, 0, 0, 0]]])
      >>> print(panoptic_quality((classes, found), (classes, instances), num_classes=2,
      ...                        max_instances=4))
      [[0.5]]
      >>> print(panoptic_quality((classes, found), (classes, instances), num_classes=2,
      ...                        max_instances=4, metric="sq"))
      [[0.75]]

    References:
      Kirillov, He, Girshick, Rother & Dollár, "Panoptic Segmentation", CVPR 2019.
    """
    _checks.check_choice("metric", metric, _METRICS)
    counts = panoptic_counts(
        predictions,
        labels,
        num_classes=num_classes,
        max_instances=max_instances,
        match_threshold=match_threshold,
        stuff_classes=stuff_classes,
        include_background=include_background,
        connectivity=connectivity,
        void_index=void_index,
        ignore_index=ignore_index,
        mask=mask,
    )
    return counts._finish(metric, zero_division)


__all__ = ["PanopticCounts", "panoptic_counts", "panoptic_quality"]
