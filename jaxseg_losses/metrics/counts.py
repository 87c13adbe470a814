r"""Per-image counts: :class:`Counts` and :func:`overlap_counts`, the input of every score.

:func:`overlap_counts` counts the true/false positives and negatives of each image and class
from class indices, scores or boolean decisions, each read by its dtype; :class:`Counts` holds
them exactly (:class:`ExactCount`) and adds across batches, images, classes and devices.
Counting is one scatter-add of the pixels into per-image confusion matrices on CPU and fused
comparisons with an iota on GPU/TPU, never a Python loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg_losses._core import fused as _fused
from jaxseg_losses._core.exact import ExactCount
from jaxseg_losses.metrics._prepare import CountPixels, count_shape, prepare_counts

ArrayLike = jax.typing.ArrayLike

# Pixels of one image counted per int32 pass; larger images are counted in chunks.
_MAX_CHUNK_PIXELS = 2**31 - 1


def _count_field(name: str, value: Any) -> Any:
    """A field of :class:`Counts`: integer counts become exact, float (soft) counts stay."""
    if isinstance(value, ExactCount):
        return value
    if isinstance(value, jax.Array | np.ndarray) and (jnp.issubdtype(value.dtype, jnp.floating)):
        return jnp.asarray(value)
    try:
        return ExactCount(value)
    except TypeError:
        raise TypeError(
            f"`{name}` must hold counts: integers, an ExactCount or float (soft) counts; got "
            f"{type(value).__name__}."
        ) from None


@jax.tree_util.register_pytree_node_class
class Counts:
    r"""True/false positives and negatives per image and class: a pytree that adds and psums.

    The result of :func:`overlap_counts`, read by every score. Each field is an
    :class:`ExactCount` of shape ``[B, C]`` (or the shape left after :meth:`sum`), exact past
    :math:`2^{31}` without x64. Counts of disjoint pixels add: ``a + b`` adds batches of the same
    shape, :meth:`sum` pools images (``axis=0``) or classes (``axis=-1``), and
    ``jax.lax.psum(counts, axis_name)`` adds devices. Indexing applies to every field
    (``counts[:, 1:]`` drops class 0, ``counts[2]`` is image 2).

    .. math::

       TP + FP + FN + TN = \text{the number of pixels counted in the image}

    Args:
      tp: true positives: integer counts (an :class:`ExactCount`, or any integer array, which
        is converted), or float (soft) counts.
      fp: false positives, same shape.
      fn: false negatives, same shape.
      tn: true negatives, same shape.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> counts = jsl.metrics.overlap_counts(jnp.array([[0, 1, 1]]), jnp.array([[0, 0, 1]]),
      ...                                     num_classes=2)
      >>> print(counts.tp, counts.fp, counts.fn, counts.tn)
      ExactCount([[1, 1]]) ExactCount([[0, 1]]) ExactCount([[1, 0]]) ExactCount([[1, 1]])
      >>> print((counts + counts).sum(axis=0).tp)
      ExactCount([2, 2])
    """

    __slots__ = ("fn", "fp", "tn", "tp")
    tp: Any
    fp: Any
    fn: Any
    tn: Any

    def __init__(self, tp: Any, fp: Any, fn: Any, tn: Any) -> None:
        fields = {
            name: _count_field(name, value)
            for name, value in (("tp", tp), ("fp", fp), ("fn", fn), ("tn", tn))
        }
        shapes = {name: count_shape(value) for name, value in fields.items()}
        if len(set(shapes.values())) != 1:
            raise ValueError(f"The four counts must have one shape; got {shapes}.")
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    @classmethod
    def _of(cls, tp: Any, fp: Any, fn: Any, tn: Any) -> "Counts":
        counts = object.__new__(cls)
        for name, value in (("tp", tp), ("fp", fp), ("fn", fn), ("tn", tn)):
            object.__setattr__(counts, name, value)
        return counts

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Counts is immutable.")

    def tree_flatten(self) -> tuple[tuple[Any, Any, Any, Any], None]:
        return (self.tp, self.fp, self.fn, self.tn), None

    @classmethod
    def tree_unflatten(cls, aux: None, children: Sequence[Any]) -> "Counts":
        return cls._of(*children)

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of each field, e.g. ``(B, C)``."""
        return count_shape(self.tp)

    def _map(self, fn: Callable[[Any], Any]) -> "Counts":
        return Counts._of(fn(self.tp), fn(self.fp), fn(self.fn), fn(self.tn))

    def __add__(self, other: Any) -> "Counts":
        if isinstance(other, int) and not isinstance(other, bool) and other == 0:
            return self  # sum() starts from 0
        if not isinstance(other, Counts):
            return NotImplemented
        if other.shape != self.shape:
            raise ValueError(
                f"Counts add when their shapes match; got {self.shape} and {other.shape}. Pool "
                "images first with .sum(axis=0)."
            )
        return Counts._of(
            self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn
        )

    __radd__ = __add__

    def sum(self, axis: int | Sequence[int] | None = None, *, keepdims: bool = False) -> "Counts":
        """The counts summed over ``axis`` (images: 0, classes: -1; all by default)."""

        def total(x: Any) -> Any:
            if isinstance(x, ExactCount):
                return x.sum(axis, keepdims=keepdims)
            return jnp.sum(
                x, axis=axis if axis is None else tuple(np.atleast_1d(axis)), keepdims=keepdims
            )

        return self._map(total)

    def __getitem__(self, index: Any) -> "Counts":
        return self._map(lambda x: x[index])

    def __iter__(self) -> Any:
        raise TypeError(
            "Counts is not iterable: read counts.tp, counts.fp, counts.fn and counts.tn, or "
            "index images with counts[b]."
        )

    def __repr__(self) -> str:
        return f"Counts(tp={self.tp!r}, fp={self.fp!r}, fn={self.fn!r}, tn={self.tn!r})"


def overlap_counts(
    predictions: ArrayLike,
    labels: ArrayLike,
    *,
    num_classes: int | None = None,
    class_axis: int = -1,
    ignore_index: int | None = None,
    mask: ArrayLike | None = None,
) -> Counts:
    r"""Counts true/false positives and negatives of each image and class: ``Counts`` ``[B, C]``.

    Every hard metric is a function of these four counts (see the module docstring). Each kind
    of input is read by its dtype, never guessed from its values:

    * ``predictions``: integer predicted classes ``[B, *spatial]``; float scores (logits or
      probabilities) ``[B, *spatial, C]``, decided by their arg-max over the classes; or
      **boolean** decisions ``[B, *spatial, C]`` (multi-label, or binary with ``C = 1``), already
      thresholded. Float scores with one channel are refused: a threshold is the user's choice
      (0 for logits, 0.5 for probabilities), so nothing here picks one.
    * ``labels``: integer classes ``[B, *spatial]``, or boolean / 0-1 float targets
      ``[B, *spatial, C]`` (one-hot or multi-label).

    With one channel (``C = 1``) the channel is the foreground of a binary problem, and integer
    values are 0 (background) or 1. A pixel counts unless ``mask`` is False/0 there, its label
    equals ``ignore_index``, or a value is not a class (an integer label or prediction outside
    ``[0, C)``, a float target other than 0 or 1): such pixels are left out of all four counts,
    and ``jsl.checked`` reports values that are not classes.

    .. math::

       TP_{bc} = \sum_{i \in b} v_i\, \hat y_{ic}\, y_{ic}, \quad
       FP_{bc} = \sum_{i \in b} v_i\, \hat y_{ic} (1 - y_{ic}), \quad
       FN_{bc} = \sum_{i \in b} v_i (1 - \hat y_{ic})\, y_{ic}, \quad
       TN_{bc} = \sum_{i \in b} v_i (1 - \hat y_{ic}) (1 - y_{ic})

    with :math:`v_i \in \{0, 1\}` whether pixel :math:`i` counts. Counting runs in int32 per
    image (images of :math:`2^{31}` pixels or more are counted in chunks) and the result is
    exact (:class:`ExactCount`).

    Args:
      predictions: ``[B, *spatial]`` integer classes, ``[B, *spatial, C]`` float scores or
        ``[B, *spatial, C]`` booleans (``class_axis`` moves C).
      labels: ``[B, *spatial]`` integer classes, or ``[B, *spatial, C]`` booleans or 0/1 floats.
      num_classes: :math:`C`; required when both inputs are integer classes, else read from
        the class axis (and checked against it when given).
      class_axis: the class axis of float/boolean ``predictions`` and of dense ``labels``
        (``1`` for NCHW).
      ignore_index: an integer label value whose pixels count nowhere (e.g. 255).
      mask: ``[B, *spatial]`` bool (or numeric: non-zero counts) pixels to count.

    Returns:
      :class:`Counts` with ``[B, C]`` fields.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> labels = jnp.array([[0, 0, 1, 2, 255], [1, 1, 1, 1, 1]])
      >>> predictions = jnp.array([[0, 1, 1, 2, 2], [1, 1, 1, 0, 1]])
      >>> counts = jsl.metrics.overlap_counts(predictions, labels, num_classes=3,
      ...                                     ignore_index=255)
      >>> print(counts.tp)
      ExactCount([[1, 1, 1], [0, 4, 0]])
      >>> print(jsl.metrics.dice(counts))   # image 1 has no class 2 anywhere: undefined
      [[0.6666667 0.6666667 1.       ]
       [0.        0.8888889       nan]]

      Multi-label decisions against multi-label targets:

      >>> decided = jnp.array([[[True, False], [True, True]]])
      >>> targets = jnp.array([[[1.0, 0.0], [0.0, 1.0]]])
      >>> print(jsl.metrics.overlap_counts(decided, targets).fp)
      ExactCount([[1, 0]])
    """
    inputs = prepare_counts(
        predictions,
        labels,
        num_classes=num_classes,
        class_axis=class_axis,
        ignore_index=ignore_index,
        mask=mask,
    )
    return _count_pixels(inputs)


def _count_pixels(inputs: CountPixels) -> Counts:
    """The counts of prepared pixels, in chunks of fewer than :math:`2^{31}` pixels an image."""
    batch, pixels = inputs.valid.shape
    num_classes = inputs.num_classes
    arrays = inputs[:5]
    chunks = -(-pixels // _MAX_CHUNK_PIXELS)
    if chunks > 1:
        arrays = tuple(None if x is None else _split_pixels(x, chunks) for x in arrays)
    valid, label_classes, label_hits, predicted_classes, predicted_hits = arrays
    assert valid is not None
    tp, predicted, true, counted = _count(
        valid,
        label_classes,
        label_hits,
        predicted_classes,
        predicted_hits,
        num_classes=num_classes,
        num_values=inputs.num_values,
    )
    fp, fn = predicted - tp, true - tp
    tn = counted - true - predicted + tp
    counts = Counts._of(*(ExactCount(x) for x in (tp, fp, fn, tn)))
    if chunks > 1:
        counts = counts._map(
            lambda x: ExactCount.from_limbs(x.limbs.reshape(batch, chunks, num_classes, -1))
        ).sum(axis=1)
    return counts


def _split_pixels(x: jax.Array, chunks: int) -> jax.Array:
    """``[B, P, ...]`` -> ``[B * chunks, P / chunks, ...]``, padded with pixels that do not count
    (``valid`` pads with False, the class arrays with 0)."""
    batch, pixels = x.shape[:2]
    size = -(-pixels // chunks)
    padding = [(0, 0), (0, size * chunks - pixels)] + [(0, 0)] * (x.ndim - 2)
    padded = jnp.pad(x, padding)
    return padded.reshape(batch * chunks, size, *x.shape[2:])


def _count(
    valid: jax.Array,
    label_classes: jax.Array | None,
    label_hits: jax.Array | None,
    predicted_classes: jax.Array | None,
    predicted_hits: jax.Array | None,
    *,
    num_classes: int,
    num_values: int,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """``(TP, predicted, true, counted)`` int32 ``[B, C]`` from one side each of classes or hits."""
    batch = valid.shape[0]
    cells = batch * num_values * num_values
    if label_classes is not None and predicted_classes is not None:
        if _fused.strategy() == "segments" and cells < 2**31 - 1:
            # One scatter-add of the pixels into per-image confusion matrices; invalid pixels
            # go past the last cell and are dropped.
            image = jnp.arange(batch, dtype=jnp.int32)[:, None] * (num_values * num_values)
            index = image + label_classes * num_values + predicted_classes
            index = jnp.where(valid, index, cells).reshape(-1)
            matrices = jnp.zeros((cells,), jnp.int32).at[index].add(1, mode="drop")
            matrices = matrices.reshape(batch, num_values, num_values)
            tp = jnp.diagonal(matrices, axis1=1, axis2=2)
            true = jnp.sum(matrices, axis=2, dtype=jnp.int32)
            predicted = jnp.sum(matrices, axis=1, dtype=jnp.int32)
            counted = jnp.sum(true, axis=1, keepdims=True, dtype=jnp.int32)
            counted = jnp.broadcast_to(counted, true.shape)
            if num_classes == 1:
                tp, true, predicted, counted = (x[:, 1:] for x in (tp, true, predicted, counted))
            return tp, predicted, true, counted
        # Elsewhere comparisons with an iota fuse into the reductions (no [B, P, C] array).
        agree = (label_classes == predicted_classes) & valid
        label_hits = _hits(label_classes, num_classes)
        predicted_hits = _hits(predicted_classes, num_classes)
        tp = _count_true(label_hits & agree[..., None])
    elif label_classes is not None and _fused.strategy() == "segments" and num_classes > 1:
        # Class labels against per-channel decisions: the bit at each pixel's label, and the
        # labels themselves, are scatter-added; only the decisions are read as [B, P, C].
        assert predicted_hits is not None
        labelled = jnp.take_along_axis(predicted_hits, label_classes[..., None], axis=-1)[..., 0]
        true = _count_classes(label_classes, valid, num_classes)
        tp = _count_classes(label_classes, valid & labelled, num_classes)
        predicted = _count_true(predicted_hits & valid[..., None])
        counted = jnp.broadcast_to(_count_true(valid[..., None]), tp.shape)
        return tp, predicted, true, counted
    else:
        if label_hits is None:
            assert label_classes is not None
            label_hits = _hits(label_classes, num_classes)
        if predicted_hits is None:
            assert predicted_classes is not None
            predicted_hits = _hits(predicted_classes, num_classes)
        tp = _count_true(label_hits & predicted_hits & valid[..., None])
    predicted = _count_true(predicted_hits & valid[..., None])
    true = _count_true(label_hits & valid[..., None])
    counted = jnp.broadcast_to(_count_true(valid[..., None]), tp.shape)
    return tp, predicted, true, counted


def _hits(classes: jax.Array, num_classes: int) -> jax.Array:
    """``[B, P, C]`` membership of integer classes (with one channel, the value 1)."""
    if num_classes == 1:
        return (classes == 1)[..., None]
    iota = jax.lax.broadcasted_iota(jnp.int32, (*classes.shape, num_classes), classes.ndim)
    return classes[..., None] == iota


def _count_classes(classes: jax.Array, where: jax.Array, num_classes: int) -> jax.Array:
    """``[B, C]`` int32: how many pixels of each image have each class, among ``where``."""
    batch = classes.shape[0]
    cells = batch * num_classes
    image = jnp.arange(batch, dtype=jnp.int32)[:, None] * num_classes
    index = jnp.where(where, image + classes, cells).reshape(-1)
    counts = jnp.zeros((cells,), jnp.int32).at[index].add(1, mode="drop")
    return counts.reshape(batch, num_classes)


_INT8_GROUP = 64


def _count_true(x: jax.Array) -> jax.Array:
    """``[B, P, C]`` bool -> ``[B, C]`` int32 counts along the pixels.

    The pixels are first summed in groups of 64 as int8 (which cannot overflow): XLA then reads
    the booleans once, where a direct int32 sum materialises a ``[B, P, C]`` int32 copy (on CPU
    2.6x the time and 4x the memory, ``benchmarks/metrics_suite.py``).
    """
    batch, pixels, channels = x.shape
    groups = -(-pixels // _INT8_GROUP)
    x = jnp.pad(x, [(0, 0), (0, groups * _INT8_GROUP - pixels), (0, 0)])
    grouped = x.reshape(batch, groups, _INT8_GROUP, channels).astype(jnp.int8)
    partial = jnp.sum(grouped, axis=2, dtype=jnp.int8)
    return jnp.sum(partial, axis=1, dtype=jnp.int32)


__all__ = ["Counts", "overlap_counts"]
