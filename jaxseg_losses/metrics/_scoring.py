"""What every score of counts shares: the counts as floats, undefined values, the reduction.

A score is one definition, ``FloatCounts -> Score`` (its value and where it is 0/0), and
:func:`apply_score` does the rest the same way for all of them: reads counts or a confusion
matrix as float TP/FP/FN/TN, fills the undefined values (``zero_division``, ``ignore_empty``) and
reduces (:func:`~jaxseg_losses.metrics.reduce`). :func:`score_function` makes the public score
of a definition, with the options of every score. Private: the score modules share it.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg_losses._core import checks as _checks
from jaxseg_losses._core.docs import documented
from jaxseg_losses._core.engine import divide
from jaxseg_losses._core.exact import ExactCount
from jaxseg_losses._core.signatures import (
    bind,
    give_signature,
    keyword_parameters,
    positional_parameters,
)
from jaxseg_losses.metrics._prepare import count_shape
from jaxseg_losses.metrics._reduction import reduce_values
from jaxseg_losses.metrics.counts import Counts
from jaxseg_losses.metrics.reductions import REDUCTIONS

ArrayLike = jax.typing.ArrayLike


class FloatCounts(NamedTuple):
    """The four counts as floats, ``[..., C]``."""

    tp: jax.Array
    fp: jax.Array
    fn: jax.Array
    tn: jax.Array


def _float_dtype_of(x: Any) -> Any:
    if isinstance(x, ExactCount):
        return jnp.float64 if jax.config.read("jax_enable_x64") else jnp.float32
    dtype = jnp.dtype(x.dtype)
    return jnp.float64 if dtype.itemsize == 8 else jnp.float32


def _to_float(x: Any, dtype: Any) -> jax.Array:
    return x.to_float(dtype) if isinstance(x, ExactCount) else jnp.asarray(x).astype(dtype)


def _exact_matrix_floats(matrix: ExactCount, dtype: Any) -> FloatCounts:
    """TP/FP/FN/TN ``[..., C]`` of an exact confusion matrix ``[..., C, C]``, counted exactly
    and then converted to ``dtype``."""
    diagonal = jnp.diagonal(matrix.limbs, axis1=-3, axis2=-2)
    tp = ExactCount.from_limbs(jnp.moveaxis(diagonal, -2, -1))
    true, predicted = matrix.sum(-1), matrix.sum(-2)
    total = matrix.sum((-2, -1), keepdims=True)[..., 0]
    fp, fn = predicted - tp, true - tp
    exact = (tp, fp, fn, total - true - predicted + tp)
    return FloatCounts(*(x.to_float(dtype) for x in exact))


def _check_matrix(matrix: Any) -> tuple[int, ...]:
    shape = count_shape(matrix)
    if len(shape) < 2 or shape[-1] != shape[-2]:
        raise ValueError(
            f"A `matrix` must be a confusion matrix of shape [..., C, C] (counts given as an "
            f"array); got shape {shape}. Per-image counts are Counts, from overlap_counts."
        )
    return shape


def float_counts(counts: Any) -> FloatCounts:
    """Counts, an exact confusion matrix or an array one, as float TP/FP/FN/TN ``[..., C]``."""
    if isinstance(counts, Counts):
        dtype = _float_dtype_of(counts.tp)
        fields = (counts.tp, counts.fp, counts.fn, counts.tn)
        return FloatCounts(*(_to_float(x, dtype) for x in fields))
    if isinstance(counts, ExactCount):
        _check_matrix(counts)
        return _exact_matrix_floats(counts, _float_dtype_of(counts))
    if isinstance(counts, np.ndarray) and np.issubdtype(counts.dtype, np.integer):
        _check_matrix(counts)
        return float_counts(ExactCount(counts))
    matrix = jnp.asarray(counts)
    _check_matrix(matrix)
    if jnp.issubdtype(matrix.dtype, jnp.integer) or matrix.dtype == jnp.bool_:
        return _exact_matrix_floats(ExactCount(matrix), _float_dtype_of(matrix))
    if not jnp.issubdtype(matrix.dtype, jnp.floating):
        raise TypeError(f"`counts` must hold integer or float counts; got {matrix.dtype}.")
    m = matrix.astype(_float_dtype_of(matrix))
    # Each count a sum of its own entries, not a difference of totals: FP = column total - TP
    # in floats loses an FP of 1 next to a TP of 1e8.
    diagonal = jnp.eye(m.shape[-1], dtype=bool)
    zero = jnp.zeros((), m.dtype)
    tp = jnp.diagonal(m, axis1=-2, axis2=-1)
    off = jnp.where(diagonal, zero, m)
    fp, fn = jnp.sum(off, axis=-2), jnp.sum(off, axis=-1)

    def others(x: jax.Array) -> jax.Array:
        # Entry c: the sum of x over the classes other than c.
        return jnp.sum(jnp.where(diagonal, zero, x[..., None, :]), axis=-1)

    # TN of class c: the other classes' TP, and their FN less those that are class c's FP.
    return FloatCounts(tp, fp, fn, others(tp) + jnp.maximum(others(fn) - fp, zero))


class Score(NamedTuple):
    """A score and where it is undefined (a 0/0 somewhere in its definition)."""

    value: jax.Array
    undefined: jax.Array


def ratio(numerator: jax.Array, denominator: jax.Array) -> Score:
    """``numerator / denominator``, undefined (NaN) where the denominator is 0."""
    return Score(divide(numerator, denominator, empty=jnp.nan), denominator == 0)


def either(a: Score, b: Score, value: jax.Array) -> Score:
    """``value``, a function of ``a`` and ``b``: undefined wherever either of them is."""
    return Score(value, a.undefined | b.undefined)


def apply_score(
    definition: Callable[[FloatCounts], Score],
    counts: Any,
    *,
    reduction: str,
    include_background: bool,
    classes: Sequence[int] | None,
    class_weights: ArrayLike | str | None,
    zero_division: ArrayLike,
    ignore_empty: bool,
    return_count: bool,
) -> Any:
    """The public score of ``definition``: its options validated, undefined values filled,
    the result reduced."""
    _checks.check_choice("reduction", reduction, REDUCTIONS)
    _checks.check_bool("ignore_empty", ignore_empty)
    _checks.check_real_scalar("zero_division", zero_division)
    _checks.check_bool("return_count", return_count)
    floats = float_counts(counts)
    score = definition(floats)
    fill = jnp.asarray(zero_division, score.value.dtype)
    value = jnp.where(score.undefined, fill, score.value)
    if ignore_empty:
        value = jnp.where(floats.tp + floats.fn == 0, jnp.nan, value)
    support = isinstance(class_weights, str)
    if support and class_weights != "support":
        raise ValueError(
            f'`class_weights` must be [C] weights or "support"; got {class_weights!r}.'
        )
    result, count = reduce_values(
        value,
        reduction=reduction,
        include_background=include_background,
        classes=classes,
        class_weights=None if support else class_weights,
        value_weights=floats.tp + floats.fn if support else None,
    )
    return (result, count) if return_count else result


# The options every score of counts takes after its own, with their defaults and annotations
# (strings, as help() and the docs show them).
SCORE_OPTIONS: dict[str, tuple[Any, str]] = {
    "reduction": ("none", "str"),
    "include_background": (True, "bool"),
    "classes": (None, "Sequence[int] | None"),
    "class_weights": (None, "ArrayLike | str | None"),
    "zero_division": (math.nan, "ArrayLike"),
    "ignore_empty": (False, "bool"),
    "return_count": (False, "bool"),
}


def score_function(definition: Callable[..., Score]) -> Callable[..., Any]:
    """The public score of ``definition(c: FloatCounts, *, <own options>) -> Score`` (a
    decorator): ``name(counts, *, <own options>, <SCORE_OPTIONS>)``, named and documented as the
    definition, its docstring's shared blocks filled."""
    own = list(inspect.signature(definition).parameters.values())[1:]
    counts = positional_parameters(("counts",), "Any")
    signature = inspect.Signature(
        [*counts, *own, *keyword_parameters(SCORE_OPTIONS)], return_annotation="Any"
    )

    @functools.wraps(definition)
    def score(*args: Any, **kwargs: Any) -> Any:
        arguments = bind(definition.__name__, signature, *args, **kwargs)
        options = {p.name: arguments.pop(p.name) for p in own}
        return apply_score(functools.partial(definition, **options), **arguments)

    return documented(give_signature(score, signature))
