r"""Streaming evaluation: a running confusion matrix and running sums of per-image metrics.

:class:`ConfusionMatrixAccumulator` pools a confusion matrix over an evaluation loop;
:class:`PerImageAccumulator` keeps, for any named per-image ``[B, C]`` metric, the sums and
counts of its defined values, so means over images and classes are those of the whole set. Both
are immutable pytrees (additive state, then a finishing step, as CLU's and Flax NNX's metrics)
that run under ``jax.jit`` and ``nnx.jit``; over devices, ``update`` takes ``axis_name``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg_losses._core import checks as _checks
from jaxseg_losses._core import exact as _exact
from jaxseg_losses._core.exact import ExactCount
from jaxseg_losses.metrics._prepare import check_count_dtype, count_shape
from jaxseg_losses.metrics._reduction import (
    Partials,
    checked_class_weights,
    finish,
    finite_only,
    partials_of,
    selected_classes,
)
from jaxseg_losses.metrics.confusion import (
    check_matrix_classes,
    compute_metrics,
    confusion_matrix,
)
from jaxseg_losses.metrics.reductions import STREAMED_REDUCTIONS

ArrayLike = jax.typing.ArrayLike


def _copies_one() -> jax.Array:
    return jnp.ones((), jnp.int32)


@jax.tree_util.register_pytree_node_class
class ConfusionMatrixAccumulator:
    """A running confusion matrix for an evaluation loop, as an immutable pytree.

    Start with :meth:`empty`, fold in each batch with :meth:`update` (inside ``jax.jit`` or a
    Flax NNX ``nnx.jit`` eval step: the accumulator is an ordinary argument and return value),
    add accumulators of different hosts or loops with ``+`` (of the same ``num_classes`` and
    count dtype: others raise ``ValueError``), and read the metrics with
    :meth:`compute`, or any score of the matrix (``jsl.metrics.f_beta(acc.matrix, beta=2)``,
    ``jsl.metrics.mean_iou(acc.matrix, include_background=False)``).

    Counts are exact integers past :math:`2^{31}` (to :math:`2^{63}`) without x64: the matrix
    is an :class:`ExactCount` (``dtype=jnp.int32``, the default), plain float32 (never
    overflows, exact to :math:`2^{24}`), or int64/float64 under x64.

    **Devices.** Inside ``shard_map``/``pmap``, pass ``axis_name`` to :meth:`update`: the batch's
    counts are summed over the devices once, and every device holds the same totals. Do not
    ``jax.lax.psum`` the accumulator itself: it already holds totals on every device, so a psum
    would multiply them by the device count. Such an accumulator is refused: its ``copies``
    count (1) becomes the device count, :meth:`compute` then raises (or, traced, returns NaN,
    and ``jsl.checked`` raises).

    Attributes:
      matrix: ``[C, C]`` counts, rows true class, columns predicted class.
      copies: ``[]`` int32, 1 (see above).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> @jax.jit
      ... def eval_step(acc, logits, labels):
      ...     return acc.update(logits, labels, ignore_index=255)
      >>> acc = jsl.metrics.ConfusionMatrixAccumulator.empty(3)
      >>> for seed in range(4):
      ...     logits = jax.random.normal(jax.random.key(seed), (2, 8, 8, 3))
      ...     labels = jnp.argmax(logits, axis=-1).at[:, 0].set(255)   # perfect, row 0 ignored
      ...     acc = eval_step(acc, logits, labels)
      >>> int(acc.matrix.sum()), float(acc.compute()["mean_iou"])
      (448, 1.0)
    """

    __slots__ = ("copies", "matrix")
    matrix: Any
    copies: jax.Array

    def __init__(self, matrix: Any, copies: Any = None) -> None:
        if not isinstance(matrix, ExactCount):
            # Integer counts become exact (64-bit ones stay plain under x64, as with dtype).
            host = isinstance(matrix, np.ndarray)
            array = matrix if host else jnp.asarray(matrix)
            integer = np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_
            if integer and (host or array.dtype.itemsize < 8):
                matrix = ExactCount(array)
            else:
                matrix = jnp.asarray(array)
        shape = count_shape(matrix)
        if len(shape) != 2 or shape[0] != shape[1]:
            raise ValueError(f"`matrix` must be a confusion matrix [C, C]; got shape {shape}.")
        check_matrix_classes(shape[0])
        object.__setattr__(self, "matrix", matrix)
        object.__setattr__(self, "copies", _copies_one() if copies is None else copies)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("ConfusionMatrixAccumulator is immutable.")

    def tree_flatten(self) -> tuple[tuple[Any, Any], None]:
        return (self.matrix, self.copies), None

    @classmethod
    def tree_unflatten(cls, aux: None, children: Sequence[Any]) -> "ConfusionMatrixAccumulator":
        acc = object.__new__(cls)
        object.__setattr__(acc, "matrix", children[0])
        object.__setattr__(acc, "copies", children[1])
        return acc

    @classmethod
    def _of(cls, matrix: Any, copies: jax.Array) -> "ConfusionMatrixAccumulator":
        return cls.tree_unflatten(None, (matrix, copies))

    @classmethod
    def empty(cls, num_classes: int, *, dtype: Any = jnp.int32) -> "ConfusionMatrixAccumulator":
        """An accumulator with no pixel counted; ``int32`` (default) gives exact counts."""
        num_classes = check_matrix_classes(num_classes)
        dtype = check_count_dtype(dtype)
        if dtype == jnp.int32:
            return cls._of(ExactCount.zeros((num_classes, num_classes)), _copies_one())
        return cls._of(jnp.zeros((num_classes, num_classes), dtype), _copies_one())

    @property
    def num_classes(self) -> int:
        return count_shape(self.matrix)[-1]

    def update(
        self,
        predictions: ArrayLike,
        labels: ArrayLike,
        *,
        ignore_index: int | None = None,
        mask: ArrayLike | None = None,
        class_axis: int = -1,
        threshold: ArrayLike = 0.0,
        axis_name: Any = None,
    ) -> "ConfusionMatrixAccumulator":
        """Returns the accumulator with one more batch counted (see :func:`confusion_matrix`).

        With ``axis_name`` the batch's counts are summed over that mapped axis (exactly, below
        :math:`2^{15}` devices) before they are added, so every device holds the totals.
        """
        exact = isinstance(self.matrix, ExactCount)
        batch = confusion_matrix(
            predictions,
            labels,
            self.num_classes,
            ignore_index=ignore_index,
            mask=mask,
            class_axis=class_axis,
            threshold=threshold,
            dtype=jnp.int32 if exact else self.matrix.dtype,
        )
        if exact:
            counted = ExactCount(batch)
            if axis_name is not None:
                counted = _exact.psum(counted, axis_name)
            return ConfusionMatrixAccumulator._of(self.matrix + counted, self.copies)
        if axis_name is not None:
            batch = jax.lax.psum(batch, axis_name)
        return ConfusionMatrixAccumulator._of(self.matrix + batch, self.copies)

    def __add__(self, other: "ConfusionMatrixAccumulator") -> "ConfusionMatrixAccumulator":
        if not isinstance(other, ConfusionMatrixAccumulator):
            return NotImplemented
        if self._layout() != other._layout():
            raise ValueError(
                "ConfusionMatrixAccumulators add only when they count the same classes in the "
                f"same dtype; got {self._layout()} and {other._layout()}."
            )
        copies = jnp.maximum(self.copies, other.copies)
        return ConfusionMatrixAccumulator._of(self.matrix + other.matrix, copies)

    def _layout(self) -> str:
        """What must agree for two accumulators to add: the matrix shape and how it counts."""
        shape = list(count_shape(self.matrix))
        kind = "exact int" if isinstance(self.matrix, ExactCount) else self.matrix.dtype.name
        return f"a {shape} matrix of {kind} counts"

    def compute(self) -> dict[str, jax.Array]:
        """Every metric of :func:`compute_metrics` for the pixels counted so far."""
        # One compiled program, also when called outside jit (inlined when traced).
        results = _compute_metrics_jit(self.matrix)
        return _exact.refuse_if_summed(self.copies, "ConfusionMatrixAccumulator", results)


@jax.jit
def _compute_metrics_jit(matrix: Any) -> dict[str, jax.Array]:
    return compute_metrics(matrix)


# Each metric keeps two sets of sums: of its defined values (prefix ""), and of its finite
# values alone (prefix "finite_"), which compute(ignore_inf=True) reads.
_SETS = ("", "finite_")


@functools.partial(jax.jit, static_argnames=("reduction", "ignore_inf"))
def _finish_sums_jit(
    sums: Any, weights: jax.Array, reduction: str, ignore_inf: bool
) -> dict[str, Any]:
    """``(value, count, left_out)`` of every metric's compensated sums: of its finite values
    with ``ignore_inf``, then ``left_out`` the ``±inf`` values left out, else of all its
    defined values."""
    finished = {}
    for name, s in sums.items():
        prefix = "finite_" if ignore_inf else ""
        partials = Partials(
            class_sum=s[f"{prefix}class_sum"] + s[f"{prefix}class_error"],
            class_count=s[f"{prefix}class_count"],
            case_sum=s[f"{prefix}case_sum"] + s[f"{prefix}case_error"],
            case_count=s[f"{prefix}case_count"],
        )
        value, count = finish(partials, reduction, weights)
        infinite = s["class_count"] - s["finite_class_count"]
        left_out = infinite if reduction in ("mean_batch", "sum_batch") else jnp.sum(infinite)
        finished[name] = (value, count, left_out)
    return finished


def _added(
    sums: dict[str, jax.Array],
    batch: Partials,
    errors: tuple[jax.Array, jax.Array] | None = None,
    prefix: str = "",
) -> dict[str, jax.Array]:
    """The ``prefix`` set of one metric's ``sums`` with ``batch`` added (and the compensations
    ``errors`` of another accumulator's sums): compensated float sums, exact counts."""
    class_error, case_error = sums[f"{prefix}class_error"], sums[f"{prefix}case_error"]
    if errors is not None:
        class_error, case_error = class_error + errors[0], case_error + errors[1]
    class_sum, class_error = _exact.compensated_add(
        sums[f"{prefix}class_sum"], class_error, batch.class_sum
    )
    case_sum, case_error = _exact.compensated_add(
        sums[f"{prefix}case_sum"], case_error, batch.case_sum
    )
    return {
        f"{prefix}class_sum": class_sum,
        f"{prefix}class_error": class_error,
        f"{prefix}class_count": sums[f"{prefix}class_count"] + batch.class_count,
        f"{prefix}case_sum": case_sum,
        f"{prefix}case_error": case_error,
        f"{prefix}case_count": sums[f"{prefix}case_count"] + batch.case_count,
    }


def _stored(
    sums: dict[str, jax.Array], prefix: str
) -> tuple[Partials, tuple[jax.Array, jax.Array]]:
    """The ``prefix`` set of one metric's ``sums`` as partials and their compensations."""
    partials = Partials(
        sums[f"{prefix}class_sum"],
        sums[f"{prefix}class_count"],
        sums[f"{prefix}case_sum"],
        sums[f"{prefix}case_count"],
    )
    return partials, (sums[f"{prefix}class_error"], sums[f"{prefix}case_error"])


def _check_metric_names(names: Any) -> tuple[str, ...]:
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise TypeError(
            f"`names` must be a sequence of metric names, e.g. ('dice', 'hd95'); got "
            f"{type(names).__name__} {names!r}."
        )
    names = tuple(names)
    if not names or not all(isinstance(name, str) and name for name in names):
        raise ValueError(f"`names` must be non-empty strings; got {names!r}.")
    if len(set(names)) != len(names):
        raise ValueError(f"`names` must not repeat a metric; got {names!r}.")
    return names


@jax.tree_util.register_pytree_node_class
class PerImageAccumulator:
    r"""Sums of per-image ``[B, C]`` metrics over an evaluation loop: exact means over images.

    Any metric with one value per image and class streams into it: the scores of this module
    (``jsl.metrics.dice(counts)``), a surface distance, a user's own. For each named metric it
    keeps, over the images seen, the sum and the number of the defined values of each class and
    the sum and number of the images' class means, with compensated (error-free) float sums, so
    that :meth:`compute` gives what :func:`reduce` gives on all the images at once, whatever
    the batching:

    .. math::

       \text{mean} = \frac{1}{|B'|} \sum_{b \in B'} \frac{\sum_{c \in K_b} w_c v_{bc}}
       {\sum_{c \in K_b} w_c}, \qquad
       \text{mean\_batch}_c = \frac{\sum_b [v_{bc} \text{ defined}]\, v_{bc}}
       {\sum_b [v_{bc} \text{ defined}]}

    **NaN and inf.** A NaN value is undefined (an empty ground truth under
    ``ignore_empty=True``, a distance between two empty masks): it adds to no sum and no count,
    and a class or image without a defined value is left out of the means, whose value is NaN
    when nothing is defined. ``±inf`` (a distance to an empty prediction) is a value: it makes
    every sum and mean that contains it infinite (NaN where +inf meets −inf), as in MONAI.
    ``compute(ignore_inf=True)`` leaves it out as well (the sums of the finite values are kept
    beside the others) and counts what it left out: MONAI users' ``values[isfinite].mean()``.

    The kept classes (``include_background``, ``classes``) and the ``class_weights`` of the
    class means are fixed by :meth:`empty`, because each image's class mean is summed as it
    arrives; accumulators add (``+``) only when made by the same :meth:`empty` arguments (others
    raise ``ValueError`` naming both). Reductions with one value per image (``"none"``,
    ``"mean_channel"``, ``"sum_channel"``) are those of each batch: :func:`reduce` them there.

    **Devices.** Inside ``shard_map``/``pmap`` pass ``axis_name`` to :meth:`update`; a
    ``jax.lax.psum`` of the accumulator itself would add every device's copy of the totals and
    is refused (``copies``, as for :class:`ConfusionMatrixAccumulator`).

    Attributes:
      sums: per metric name, a dict of ``class_sum``, ``class_error`` (the compensation),
        ``class_count`` (``[C']``, the kept classes), ``case_sum``, ``case_error`` and
        ``case_count`` (``[]``) of the defined values, and the same six prefixed
        ``finite_`` of the finite values alone.
      images: ``[]`` int32, the number of images seen.
      copies: ``[]`` int32, 1 unless the accumulator went through a collective sum.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> @jax.jit
      ... def eval_step(acc, predictions, labels):
      ...     counts = jsl.metrics.overlap_counts(predictions, labels, num_classes=3)
      ...     return acc.update({"dice": jsl.metrics.dice(counts, ignore_empty=True),
      ...                        "iou": jsl.metrics.iou(counts, ignore_empty=True)})
      >>> acc = jsl.metrics.PerImageAccumulator.empty(("dice", "iou"), num_classes=3,
      ...                                             include_background=False)
      >>> labels = jnp.array([[0, 1, 1, 2], [0, 0, 1, 1]])
      >>> for predictions in (jnp.array([[0, 1, 2, 2], [0, 0, 1, 1]]), labels):
      ...     acc = eval_step(acc, predictions, labels)
      >>> results = acc.compute()                        # per-image foreground mean, then mean
      >>> print(f"{results['dice']:.4f} {results['iou']:.4f} {int(acc.images)}")
      0.9167 0.8750 4
      >>> print(acc.compute(reduction="mean_batch")["dice"])   # per class, over images
      [0.9166667 0.8333334]
    """

    __slots__ = ("_spec", "copies", "images", "sums")
    sums: dict[str, dict[str, jax.Array]]
    images: jax.Array
    copies: jax.Array
    _spec: tuple[Any, ...]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("Create a PerImageAccumulator with PerImageAccumulator.empty(...).")

    @classmethod
    def _of(
        cls, spec: tuple[Any, ...], sums: Any, images: Any, copies: Any
    ) -> "PerImageAccumulator":
        acc = object.__new__(cls)
        for name, value in (
            ("_spec", spec),
            ("sums", sums),
            ("images", images),
            ("copies", copies),
        ):
            object.__setattr__(acc, name, value)
        return acc

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("PerImageAccumulator is immutable.")

    def tree_flatten(self) -> tuple[tuple[Any, Any, Any], tuple[Any, ...]]:
        return (self.sums, self.images, self.copies), self._spec

    @classmethod
    def tree_unflatten(
        cls, spec: tuple[Any, ...], children: Sequence[Any]
    ) -> "PerImageAccumulator":
        return cls._of(spec, *children)

    @classmethod
    def empty(
        cls,
        names: Sequence[str],
        num_classes: int,
        *,
        include_background: bool = True,
        classes: Sequence[int] | None = None,
        class_weights: Sequence[float] | None = None,
        dtype: Any = None,
    ) -> "PerImageAccumulator":
        """An accumulator for the metrics ``names``, each ``[B, num_classes]``, with no image.

        ``include_background``, ``classes`` and ``class_weights`` (static numbers) are those of
        :func:`reduce`; ``dtype`` of the sums is float32 (float64 under x64) by default.
        """
        names = _check_metric_names(names)
        num_classes = _checks.check_num_classes(num_classes)
        keep = selected_classes(num_classes, include_background, classes)
        if dtype is None:
            dtype = jnp.float64 if jax.config.read("jax_enable_x64") else jnp.float32
        dtype = jnp.dtype(dtype)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(f"`dtype` must be a float dtype; got {dtype}.")
        weights = None
        if class_weights is not None:
            try:
                full = np.asarray(class_weights, np.float64)
            except (TypeError, jax.errors.TracerArrayConversionError):
                raise TypeError(
                    "`class_weights` of an accumulator must be static numbers (a list or "
                    "NumPy array), as they fix its structure."
                ) from None
            checked_class_weights(full.astype(np.float32), num_classes, jnp.float32)
            weights = tuple(float(full[c]) for c in keep)
        spec = (names, num_classes, keep, weights, dtype.name)
        kept = len(keep)

        def zeros() -> dict[str, jax.Array]:
            sums = {}
            for prefix in _SETS:
                sums[f"{prefix}class_sum"] = jnp.zeros((kept,), dtype)
                sums[f"{prefix}class_error"] = jnp.zeros((kept,), dtype)
                sums[f"{prefix}class_count"] = jnp.zeros((kept,), jnp.int32)
                sums[f"{prefix}case_sum"] = jnp.zeros((), dtype)
                sums[f"{prefix}case_error"] = jnp.zeros((), dtype)
                sums[f"{prefix}case_count"] = jnp.zeros((), jnp.int32)
            return sums

        sums = {name: zeros() for name in names}
        return cls._of(spec, sums, jnp.zeros((), jnp.int32), _copies_one())

    @property
    def names(self) -> tuple[str, ...]:
        return self._spec[0]

    @property
    def num_classes(self) -> int:
        return self._spec[1]

    @property
    def classes(self) -> tuple[int, ...]:
        """The kept classes, in the order of the per-class results."""
        return self._spec[2]

    def _weights(self) -> jax.Array:
        dtype = jnp.dtype(self._spec[4])
        weights = self._spec[3]
        if weights is None:
            return jnp.ones((len(self.classes),), dtype)
        return jnp.asarray(weights, dtype)

    def _kept_values(self, name: str, values: ArrayLike) -> jax.Array:
        """One metric's ``[B, C]`` (or ``[B, C']``) values of a batch, as ``[B, C']`` of the
        kept classes in the dtype of the sums."""
        array = _checks.as_float_array(f"values[{name!r}]", values)
        kept_only = len(self.classes) != self.num_classes
        if array.ndim != 2 or array.shape[1] not in (self.num_classes, len(self.classes)):
            also = f" or [B, {len(self.classes)}] (the kept classes)" if kept_only else ""
            raise ValueError(
                f"`values[{name!r}]` must be [B, {self.num_classes}] per-image values{also}; "
                f"got shape {tuple(array.shape)}."
            )
        kept = array.astype(jnp.dtype(self._spec[4]))
        if array.shape[1] == self.num_classes:
            kept = jnp.take(kept, jnp.asarray(self.classes), axis=1)
        return kept

    def update(
        self, values: Mapping[str, ArrayLike], *, axis_name: Any = None
    ) -> "PerImageAccumulator":
        """Returns the accumulator with one more batch of per-image values folded in.

        ``values`` maps every metric name to its ``[B, C]`` float values of the batch (NaN
        where undefined), or to ``[B, C']`` values of the kept classes alone when they are
        fewer than ``C`` (the surface metrics leave the background out by default, so
        ``hausdorff_distance(...)`` streams into an accumulator made with
        ``include_background=False``). With ``axis_name`` the batch's sums are added over that
        mapped axis first, so every device holds the totals.
        """
        if not isinstance(values, Mapping):
            raise TypeError(
                f"`values` must map metric names to [B, C] arrays; got {type(values).__name__}."
            )
        if set(values) != set(self.names):
            raise ValueError(
                f"`values` must hold exactly the metrics {list(self.names)}; got {list(values)}."
            )
        weights = self._weights()
        batch_size = None
        sums = {}
        for name in self.names:
            kept = self._kept_values(name, values[name])
            if batch_size is not None and kept.shape[0] != batch_size:
                raise ValueError(
                    f"Every metric of a batch has one row per image; `values[{name!r}]` has "
                    f"{kept.shape[0]} rows, another has {batch_size}."
                )
            batch_size = kept.shape[0]
            batches = (partials_of(kept, weights), partials_of(finite_only(kept), weights))
            if axis_name is not None:
                batches = jax.lax.psum(batches, axis_name)
            sums[name] = {}
            for prefix, batch in zip(_SETS, batches, strict=True):
                sums[name].update(_added(self.sums[name], batch, prefix=prefix))
        images = jnp.asarray(batch_size, jnp.int32)
        if axis_name is not None:
            images = jax.lax.psum(images, axis_name)
        return PerImageAccumulator._of(self._spec, sums, self.images + images, self.copies)

    def __add__(self, other: "PerImageAccumulator") -> "PerImageAccumulator":
        if not isinstance(other, PerImageAccumulator):
            return NotImplemented
        if other._spec != self._spec:
            raise ValueError(
                "PerImageAccumulators add only when made alike (the same `empty(...)` "
                f"arguments); got {self._layout()} and {other._layout()}."
            )
        sums = {}
        for name in self.names:
            sums[name] = {}
            for prefix in _SETS:
                added, errors = _stored(other.sums[name], prefix)
                sums[name].update(_added(self.sums[name], added, errors, prefix))
        copies = jnp.maximum(self.copies, other.copies)
        return PerImageAccumulator._of(self._spec, sums, self.images + other.images, copies)

    def _layout(self) -> str:
        """What must agree for two accumulators to add: the metrics and their per-image layout."""
        names, num_classes, keep, weights, dtype = self._spec
        return (
            f"names={list(names)}, per-image values [B, {num_classes}], kept classes "
            f"{list(keep)}, class_weights={None if weights is None else list(weights)}, "
            f"dtype={dtype}"
        )

    def compute(
        self, *, reduction: str = "mean", return_count: bool = False, ignore_inf: bool = False
    ) -> dict[str, Any]:
        """Each metric reduced over the images seen, as :func:`reduce` on all of them.

        Args:
          reduction: a reduction of :data:`STREAMED_REDUCTIONS`: ``"mean"``, ``"sum"``,
            ``"mean_batch"``, ``"sum_batch"``, ``"mean_all"``, ``"mean_batch_channel"``.
          return_count: also return the number of values behind each result.
          ignore_inf: ``True`` leaves ``±inf`` out like NaN: the reductions of the finite
            values (a surface distance to a class missing from one image is ``inf``).

        Returns:
          Per metric name its value; with ``return_count``, a pair ``(value, count)``, and
          with ``ignore_inf`` as well a triple ``(value, count, left_out)``, ``left_out`` the
          number of ``±inf`` values left out (per class for ``"mean_batch"`` and
          ``"sum_batch"``), as :func:`reduce` returns them.
        """
        _checks.check_bool("return_count", return_count)
        ignore_inf = _checks.check_bool("ignore_inf", ignore_inf)
        if reduction in ("none", "mean_channel", "sum_channel"):
            raise ValueError(
                f"reduction={reduction!r} keeps one value per image, which an accumulator of "
                "sums does not hold: reduce each batch's values with jsl.metrics.reduce."
            )
        _checks.check_choice("reduction", reduction, STREAMED_REDUCTIONS)
        finished = _finish_sums_jit(self.sums, self._weights(), reduction, ignore_inf)
        results = {}
        for name, (value, count, left_out) in finished.items():
            if not return_count:
                results[name] = value
            else:
                results[name] = (value, count, left_out) if ignore_inf else (value, count)
        return _exact.refuse_if_summed(self.copies, "PerImageAccumulator", results)

    def __repr__(self) -> str:
        return (
            f"PerImageAccumulator(names={self.names}, num_classes={self.num_classes}, "
            f"classes={self.classes})"
        )


__all__ = ["ConfusionMatrixAccumulator", "PerImageAccumulator"]
