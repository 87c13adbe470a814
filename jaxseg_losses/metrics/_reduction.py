"""The machinery of every reduction: kept classes, class weights and additive partials.

A reduction of per-image, per-class values ``[B, C]`` that keeps no per-image axis is a ratio
of additive sums (:class:`Partials`: per class, and per image's class mean), so a stream of
batches reduces exactly: :func:`~jaxseg_losses.metrics.reduce`, the scores' ``reduction`` and
the per-image accumulator are all :func:`reduce_values`, :func:`partials_of` and :func:`finish`.
Private: the reduction, score and accumulator modules share it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg_losses._core import checks as _checks
from jaxseg_losses._core.engine import divide

ArrayLike = jax.typing.ArrayLike


def selected_classes(
    num_classes: int, include_background: Any, classes: Sequence[int] | None
) -> tuple[int, ...]:
    """The kept class indices: ``classes`` (all by default), without 0 unless included."""
    _checks.check_bool("include_background", include_background)
    keep = (
        tuple(range(num_classes))
        if classes is None
        else _checks.class_indices("classes", classes, num_classes)
    )
    if not include_background:
        if num_classes < 2:
            raise ValueError(
                "include_background=False drops class 0, which would leave no class: the "
                "values have a single channel (the foreground of a binary problem). Keep "
                "include_background=True."
            )
        keep = tuple(c for c in keep if c != 0)
        if not keep:
            raise ValueError(
                f"`classes`={classes!r} hold only class 0, which include_background=False drops."
            )
    return keep


def checked_class_weights(class_weights: ArrayLike, num_classes: int, dtype: Any) -> jax.Array:
    """``[C]`` class weights, finite and non-negative: checked now when concrete, by
    ``jsl.checked`` when traced."""
    weights = _checks.class_vector("class_weights", class_weights, num_classes, dtype)
    try:
        concrete = np.asarray(weights)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        _checks.check_values(
            jnp.all((weights >= 0) & jnp.isfinite(weights)),
            "`class_weights` must be finite and non-negative",
        )
        return weights
    if not np.all(np.isfinite(concrete) & (concrete >= 0)):
        raise ValueError(f"`class_weights` must be finite and non-negative; got {concrete}.")
    return weights


class Partials(NamedTuple):
    """The additive summary of ``[B, C]`` values behind every reduction without a batch axis.

    ``class_*``: the sum and number of the defined values of each (kept) class; ``case_*``: the
    sum of each image's (weighted) class mean, over the images that have one, and their number.
    """

    class_sum: jax.Array
    class_count: jax.Array
    case_sum: jax.Array
    case_count: jax.Array


def _weighted(defined: jax.Array, weights: jax.Array, x: jax.Array) -> jax.Array:
    """``w * x`` where defined and weighted, else 0 (a weight of 0 never meets an inf)."""
    take = defined & (weights > 0)
    return jnp.where(take, weights * jnp.where(take, x, jnp.zeros((), x.dtype)), 0.0)


def partials_of(values: jax.Array, weights: jax.Array) -> Partials:
    """Partials of ``[B, C]`` values (NaN undefined) with class weights ``[C]``."""
    defined = ~jnp.isnan(values)
    zero = jnp.zeros((), values.dtype)
    w = weights if weights.shape == values.shape else jnp.broadcast_to(weights, values.shape)
    numerator = jnp.sum(_weighted(defined, w, values), axis=1)
    denominator = jnp.sum(_weighted(defined, w, jnp.ones_like(values)), axis=1)
    has_mean = denominator > 0
    image_mean = numerator / jnp.where(has_mean, denominator, jnp.ones((), values.dtype))
    return Partials(
        class_sum=jnp.sum(jnp.where(defined, values, zero), axis=0),
        class_count=jnp.sum(defined, axis=0, dtype=jnp.int32),
        case_sum=jnp.sum(jnp.where(has_mean, image_mean, zero)),
        case_count=jnp.sum(has_mean, dtype=jnp.int32),
    )


def finish(p: Partials, reduction: str, weights: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(value, count)`` of a reduction without a batch axis, from its partials."""
    dtype = p.class_sum.dtype
    defined = p.class_count > 0
    if reduction == "mean":
        return divide(p.case_sum, p.case_count.astype(dtype), empty=jnp.nan), p.case_count
    if reduction == "mean_batch":
        return divide(p.class_sum, p.class_count.astype(dtype), empty=jnp.nan), p.class_count
    if reduction == "sum_batch":
        return p.class_sum, p.class_count
    total_count = jnp.sum(p.class_count)
    if reduction == "sum":
        return jnp.sum(_weighted(defined, weights, p.class_sum)), total_count
    if reduction == "mean_all":
        numerator = jnp.sum(_weighted(defined, weights, p.class_sum))
        counts = p.class_count.astype(dtype)
        denominator = jnp.sum(_weighted(defined, weights, counts))
        return divide(numerator, denominator, empty=jnp.nan), total_count
    assert reduction == "mean_batch_channel"
    class_means = divide(p.class_sum, p.class_count.astype(dtype), empty=jnp.nan)
    numerator = jnp.sum(_weighted(defined, weights, class_means))
    denominator = jnp.sum(_weighted(defined, weights, jnp.ones_like(class_means)))
    return divide(numerator, denominator, empty=jnp.nan), jnp.sum(defined, dtype=jnp.int32)


def _reduce_rows(
    values: jax.Array, reduction: str, weights: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """``"none"``, ``"mean_channel"``, ``"sum_channel"``: one result per row, any leading shape."""
    defined = ~jnp.isnan(values)
    if reduction == "none":
        return values, defined.astype(jnp.int32)
    if weights.shape != values.shape:
        weights = jnp.broadcast_to(weights.reshape((1,) * (values.ndim - 1) + (-1,)), values.shape)
    w = weights
    numerator = jnp.sum(_weighted(defined, w, values), axis=-1)
    count = jnp.sum(defined, axis=-1, dtype=jnp.int32)
    if reduction == "sum_channel":
        return numerator, count
    denominator = jnp.sum(_weighted(defined, w, jnp.ones_like(values)), axis=-1)
    return divide(numerator, denominator, empty=jnp.nan), count


def reduce_values(
    values: jax.Array,
    *,
    reduction: str,
    include_background: Any,
    classes: Sequence[int] | None,
    class_weights: ArrayLike | None,
    value_weights: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """``(value, count)`` of validated values ``[..., C]``; see :func:`reduce`.

    ``value_weights`` (of the values' shape) weigh each value in the means over classes
    instead of ``class_weights`` (the scores' ``class_weights="support"``).
    """
    if values.ndim == 0:
        return _reduce_scalar(
            values, reduction, include_background, classes, class_weights, value_weights
        )
    num_classes = values.shape[-1]
    keep = selected_classes(num_classes, include_background, classes)
    if keep != tuple(range(num_classes)):
        values = jnp.take(values, jnp.asarray(keep), axis=-1)
    if value_weights is not None:
        weights = jnp.take(value_weights, jnp.asarray(keep), axis=-1).astype(values.dtype)
        return _reduce_by_value_weights(values, reduction, weights)
    if class_weights is None:
        weights = jnp.ones((len(keep),), values.dtype)
    else:
        if reduction in ("none", "mean_batch", "sum_batch"):
            raise ValueError(
                f"`class_weights` weigh classes where classes are averaged or summed; "
                f"reduction={reduction!r} keeps one value per class."
            )
        weights = jnp.take(
            checked_class_weights(class_weights, num_classes, values.dtype), jnp.asarray(keep)
        )
    if reduction in ("none", "mean_channel", "sum_channel"):
        return _reduce_rows(values, reduction, weights)
    if values.ndim == 1:
        values = values[None, :]
    if values.ndim != 2:
        raise ValueError(
            f"reduction={reduction!r} reduces images and classes of values [B, C]; got shape "
            f"{tuple(values.shape)}."
        )
    return finish(partials_of(values, weights), reduction, weights)


# The reduction that counts what another one reads: the same axes kept, everything summed.
_COUNTED_BY = {
    "none": "none",
    "mean_channel": "sum_channel",
    "sum_channel": "sum_channel",
    "mean_batch": "sum_batch",
    "sum_batch": "sum_batch",
}


def finite_only(values: jax.Array) -> jax.Array:
    """``values`` with ``±inf`` made NaN (undefined): what the reductions read with
    ``ignore_inf=True``."""
    return jnp.where(jnp.isinf(values), jnp.full((), jnp.nan, values.dtype), values)


def infinite_counts(
    values: jax.Array,
    *,
    reduction: str,
    include_background: Any,
    classes: Sequence[int] | None,
) -> jax.Array:
    """The number of ``±inf`` values behind each result of ``reduction`` (of the kept
    classes): what ``ignore_inf=True`` leaves out, int32 of the result's shape."""
    marks = jnp.where(
        jnp.isinf(values), jnp.ones((), values.dtype), jnp.full((), jnp.nan, values.dtype)
    )
    _, count = reduce_values(
        marks,
        reduction=_COUNTED_BY.get(reduction, "sum"),
        include_background=include_background,
        classes=classes,
        class_weights=None,
    )
    return count


def _reduce_scalar(
    values: jax.Array,
    reduction: str,
    include_background: Any,
    classes: Sequence[int] | None,
    class_weights: ArrayLike | None,
    value_weights: jax.Array | None,
) -> tuple[jax.Array, jax.Array]:
    """Values of shape ``()`` (counts pooled over classes): nothing to reduce or select."""
    weighted = class_weights is not None or value_weights is not None
    if reduction != "none" or classes is not None or weighted:
        raise ValueError(
            f"`values` of shape () have no class axis, so only reduction='none' applies; got "
            f"reduction={reduction!r}. Reduce before pooling the counts over classes."
        )
    _checks.check_bool("include_background", include_background)
    if not include_background:
        raise ValueError("include_background=False needs a class axis; the values have none.")
    return values, (~jnp.isnan(values)).astype(jnp.int32)


def _reduce_by_value_weights(
    values: jax.Array, reduction: str, weights: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """A mean or sum over classes with one weight per value (``class_weights="support"``)."""
    if reduction not in ("mean", "sum", "mean_channel", "sum_channel", "mean_all"):
        raise ValueError(
            f'class_weights="support" weighs the classes of each image by their ground-truth '
            f"pixels; reduction={reduction!r} does not average the classes of an image."
        )
    if reduction in ("mean_channel", "sum_channel"):
        return _reduce_rows(values, reduction, weights)
    rows = values.reshape(-1, values.shape[-1])
    weights = weights.reshape(rows.shape)
    if reduction == "mean":
        return finish(partials_of(rows, weights), "mean", weights)
    defined = ~jnp.isnan(rows)
    total = jnp.sum(_weighted(defined, weights, rows))
    count = jnp.sum(defined, dtype=jnp.int32)
    if reduction == "sum":
        return total, count
    denominator = jnp.sum(_weighted(defined, weights, jnp.ones_like(rows)))
    return divide(total, denominator, empty=jnp.nan), count
