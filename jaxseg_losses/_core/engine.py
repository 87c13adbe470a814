r"""The evaluation of described losses: terms, additive partial sums, the psum, the values.

A :class:`Term` is a :class:`~jaxseg_losses.LossDefinition` bound to its options, its weight
and the shared options of the call or combination. :func:`evaluate` prepares the inputs once,
computes each term's sums (:func:`term_sums`: per sample, or pooled over the batch), turns them
into additive partial results (:class:`Pooled` sums and counts, or a :class:`Ratio` of weighted
losses to weights), adds those over the devices of ``axis_name`` and only then takes the ratio
(:func:`term_value`): every reduction of every loss is a ratio of additive sums, so the value
is the same however the batch is split. ``combine`` stops after the sums for micro-batch
accumulation (:func:`collect_sums`) and finishes later.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax.core import Tracer

from jaxseg_losses._core import checks as _checks
from jaxseg_losses._core.definition import (
    SHARED_OPTIONS,
    LossDefinition,
    LossFunction,
    Sums,
    divide,
)
from jaxseg_losses._core.inputs import Inputs, prepare

ArrayLike = jax.typing.ArrayLike

# ----------------------------------------------------------------------------------------------
# Terms: a description bound to its options, inside a loss call or a combination.


@dataclasses.dataclass(frozen=True, eq=False)
class Term:
    """One named, weighted term of a loss call or of :func:`jaxseg_losses.combine`.

    ``definition`` is the bound description, or ``None`` for an opaque callable ``call`` (a
    function of ``(logits, labels, **shared options)`` whose value is used as it is).
    ``activation`` is the one the term's inputs use.
    """

    name: str
    weight: Any
    definition: LossDefinition | None
    call: Callable[..., jax.Array] | None
    aggregate: str
    activation: str | None


def unwrap(fn: Callable[..., Any]) -> tuple[Callable[..., Any], dict[str, Any]]:
    """``functools.partial(f, **kw)`` -> ``(f, kw)``, nested partials flattened."""
    keywords: dict[str, Any] = {}
    while isinstance(fn, functools.partial):
        if fn.args:
            raise ValueError(
                f"A term's partial may bind keyword options only, not positional arguments; "
                f"got {fn!r}."
            )
        keywords = {**fn.keywords, **keywords}
        fn = fn.func
    return fn, keywords


def is_described(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` (or the function under its partials) was made by :func:`define_loss`."""
    base, _ = unwrap(fn)
    return callable(getattr(base, "definition", None)) and hasattr(base, "activations")


def bind_term(
    name: str,
    weight: Any,
    fn: Callable[..., Any],
    *,
    activation: str | None,
    reduction: str,
    axis_name: Any,
) -> Term:
    """Binds a term of :func:`jaxseg_losses.combine`: a loss function or a ``functools.partial``
    of one, with its own options bound and the shared ones left to the combination."""
    base, bound = unwrap(fn)
    clash = sorted(set(bound) & set(SHARED_OPTIONS))
    if clash:
        raise ValueError(
            f"Term {name!r} binds {', '.join(clash)} itself; data options are given once to "
            "combine() (and mask to each call) so that every term sees the same pixels."
        )
    if not is_described(base):
        call = functools.partial(base, **bound) if bound else base
        return Term(name, weight, None, call, "sample", activation)
    aggregate = bound.pop("aggregate", "sample")
    return make_term(
        name,
        weight,
        cast(LossFunction, base),
        bound,
        aggregate=aggregate,
        activation=activation,
        reduction=reduction,
        axis_name=axis_name,
    )


def bind_terms(
    named: Iterable[tuple[str, Any, Callable[..., Any]]],
    *,
    activation: str | None,
    reduction: str,
    axis_name: Any,
) -> tuple[Term, ...]:
    """Validates the shared options and binds every ``(name, weight, fn)`` of a combination."""
    _checks.check_choice("activation", activation, _checks.ACTIVATIONS)
    _checks.check_choice("reduction", reduction, _checks.REDUCTIONS)
    terms = []
    for name, weight, fn in named:
        check_weight(name, weight)
        terms.append(
            bind_term(
                name, weight, fn, activation=activation, reduction=reduction, axis_name=axis_name
            )
        )
    return tuple(terms)


def make_term(
    name: str,
    weight: Any,
    loss: LossFunction,
    options: Mapping[str, Any],
    *,
    aggregate: str,
    activation: str | None,
    reduction: str,
    axis_name: Any,
) -> Term:
    """A described loss bound to its options, with the generic options checked once."""
    _checks.check_choice("aggregate", aggregate, _checks.AGGREGATES)
    _checks.check_choice("reduction", reduction, _checks.REDUCTIONS)
    term_activation = _term_activation(name, loss.activations, activation)
    definition = loss.definition(**options)
    if aggregate == "batch" and reduction == "none":
        raise ValueError(
            "reduction='none' returns one loss per sample, but aggregate='batch' pools the batch "
            "into one loss; use reduction='mean' (or aggregate='sample')."
        )
    if aggregate == "batch" and not definition.pools and axis_name is not None:
        raise ValueError(
            f"{name}: aggregate='batch' is a function of all the pixels of the batch at once "
            f"(it is not a sum over pixels), which cannot be pooled over the mapped axis "
            f"{axis_name!r}; use aggregate='sample' with axis_name, or call the loss under "
            "jax.jit on sharded arrays (no axis_name needed)."
        )
    return Term(name, weight, definition, None, aggregate, term_activation)


def _term_activation(
    name: str, accepted: tuple[str | None, ...], activation: str | None
) -> str | None:
    if len(accepted) == 1:
        return accepted[0]
    _checks.check_choice("activation", activation, accepted)
    return activation


# ----------------------------------------------------------------------------------------------
# The engine: sums -> additive partial results -> values.


class Pooled(NamedTuple):
    """Batch-pooled sums of a term (``aggregate="batch"``) and the pooled valid count."""

    sums: Sums
    count: jax.Array


class Ratio(NamedTuple):
    """A reduction over rows as two additive sums: ``Σ v ℓ`` (or ``Σ ℓ``) and ``Σ v``."""

    numerator: jax.Array
    denominator: jax.Array


def _rows(definition: LossDefinition, sums: Sums, count: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(values, weights)`` of each row, ``[N]`` each; rows of weight 0 have value 0."""
    values = definition.finish(sums)
    if jnp.shape(values) != jnp.shape(count):
        raise ValueError(
            f"A LossDefinition's finish must return one loss per row, shape "
            f"{tuple(jnp.shape(count))}; got shape {tuple(jnp.shape(values))}."
        )
    # sign(count): 1 with a valid pixel, 0 without, NaN when a label was invalid.
    weights = jnp.sign(count) if definition.weight is None else definition.weight(sums)
    # A row of weight 0 is left out (value and gradient 0); a NaN weight makes the value and
    # its gradient NaN, whatever the finishing step did with the sums (a loud invalid label).
    loud = values * jnp.sign(weights)
    return jnp.where(weights == 0, jnp.zeros((), values.dtype), loud), weights


def _check_sums(name: str, sums: Sums, rows: int) -> None:
    """Requires every leaf of a term's sums to have the leading axis ``[B, ...]`` of its rows.

    Checked by shape, at trace time: a leaf without the batch axis would otherwise fail later
    with an unrelated message, or (a leaf ``[1]``) broadcast silently over the batch.
    """
    for path, leaf in jax.tree_util.tree_flatten_with_path(sums)[0]:
        shape = tuple(jnp.shape(leaf))
        if not shape or shape[0] != rows:
            raise ValueError(
                f"The sums of loss {name!r} must be arrays [B, ...] with a leading axis of one "
                f"row per sample (B = {rows} here); leaf sums{jax.tree_util.keystr(path)} has "
                f"shape {shape}. Sum over the pixels of each sample, keeping axis 0."
            )


def term_sums(term: Term, inputs: Inputs, reduction: str) -> Any:
    """A term's additive partial result on ``inputs`` (``[B]`` values for ``"none"``).

    ``Pooled`` for batch-pooled terms and ``Ratio`` otherwise: both add across micro-batches
    and devices, and :func:`term_value` turns the total into the loss.
    """
    definition = term.definition
    assert definition is not None
    if term.aggregate == "batch" and not definition.pools:
        inputs = inputs.pooled()
    sums = definition.sums(inputs)
    count = inputs.valid_count()
    _check_sums(term.name, sums, count.shape[0])
    if term.aggregate == "batch" and definition.pools:
        pool = functools.partial(jnp.sum, axis=0, keepdims=True)
        return Pooled(jax.tree.map(pool, sums), pool(count))
    values, weights = _rows(definition, sums, count)
    if reduction == "none":
        return values
    if reduction == "sum":
        return Ratio(jnp.sum(values), jnp.sum(weights))
    return Ratio(jnp.sum(weights * values), jnp.sum(weights))


def term_value(term: Term, partial: Any, reduction: str) -> jax.Array:
    """The loss of a term from its (total) partial result."""
    assert term.definition is not None
    if isinstance(partial, Pooled):
        values, _ = _rows(term.definition, partial.sums, partial.count)
        return values[0]
    if isinstance(partial, Ratio):
        if reduction == "sum":
            return partial.numerator
        return divide(partial.numerator, partial.denominator)
    return partial


class Data(NamedTuple):
    """The data of a loss call, and how every term reads it (``activation``, ``class_axis``,
    ``ignore_index``; a term with a fixed activation keeps its own)."""

    logits: ArrayLike
    labels: ArrayLike
    mask: ArrayLike | None
    activation: str | None
    class_axis: int
    ignore_index: int | None

    @classmethod
    def of_call(cls, arguments: Mapping[str, Any], activation: str | None) -> Data:
        """The data of a call from its arguments by name (``logits``, ``labels``, ``mask``,
        ``class_axis``, ``ignore_index``)."""
        logits, labels, mask = arguments["logits"], arguments["labels"], arguments["mask"]
        return cls(
            logits, labels, mask, activation, arguments["class_axis"], arguments["ignore_index"]
        )


def collect_sums(terms: Sequence[Term], data: Data, reduction: str) -> dict[str, Any]:
    """Every described term's partial result, from one shared :class:`Inputs` per activation."""
    described = [term for term in terms if term.definition is not None]
    inputs_by_activation: dict[str | None, Inputs] = {}
    for term in described:
        if term.activation not in inputs_by_activation:
            inputs = prepare(
                data.logits,
                data.labels,
                term.activation,
                data.class_axis,
                data.ignore_index,
                data.mask,
            )
            # What the terms on these inputs read decides how the shared statistics are
            # computed (one kernel for all of them, the cheapest one that has everything).
            users = [t for t in described if t.activation == term.activation]
            inputs.plan(lambda probe, users=users: [term_sums(t, probe, reduction) for t in users])
            inputs_by_activation[term.activation] = inputs
    return {
        term.name: term_sums(term, inputs_by_activation[term.activation], reduction)
        for term in described
    }


def weighted_total(terms: Sequence[Term], parts: Mapping[str, jax.Array]) -> jax.Array:
    total = None
    for term in terms:
        value = term.weight * parts[term.name]
        total = value if total is None else total + value
    assert total is not None
    return total


def evaluate(
    terms: Sequence[Term], data: Data, axis_name: Any, reduction: str
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """``(Σ_k λ_k L_k, {name: L_k})``: the one evaluation path of every loss call."""
    _checks.check_choice("reduction", reduction, _checks.REDUCTIONS)
    partials = collect_sums(terms, data, reduction)
    if axis_name is not None and reduction != "none" and partials:
        # Sums, not per-device ratios, cross the devices: the ratio taken after the psum is the
        # global one, whatever each device holds.
        partials = jax.lax.psum(partials, axis_name)
    parts = {}
    for term in terms:
        if term.definition is None:
            assert term.call is not None
            parts[term.name] = term.call(
                data.logits,
                data.labels,
                activation=data.activation,
                class_axis=data.class_axis,
                ignore_index=data.ignore_index,
                mask=data.mask,
                axis_name=axis_name,
                reduction=reduction,
            )
        else:
            parts[term.name] = term_value(term, partials[term.name], reduction)
    return weighted_total(terms, parts), parts


def check_weight(name: str, weight: Any) -> None:
    """A term's weight: a finite real number, or a traced scalar (checked by ``checked``)."""
    if isinstance(weight, bool) or not isinstance(weight, numbers.Real | jax.Array | np.number):
        raise TypeError(f"The weight of term {name!r} must be a number; got {weight!r}.")
    value: Any = weight
    if np.ndim(value) != 0:
        raise ValueError(f"The weight of term {name!r} must be a scalar; got {weight!r}.")
    if not isinstance(value, Tracer) and not np.isfinite(np.asarray(value)):
        raise ValueError(f"The weight of term {name!r} must be finite; got {weight!r}.")
    _checks.check_values(jnp.isfinite(value), f"The weight of term {name!r} must be finite")
