r"""The one description of a loss, and everything derived from it.

Every loss of the library, and any loss a user writes the same way, is described once, at its
source, by a :class:`LossDefinition`: additive per-sample statistics and a finishing step,

.. math::

   S_b = \mathrm{sums}(\text{inputs})_b, \qquad \ell_n = \mathrm{finish}(S)_n,

where :math:`S_b` are sums over the pixels of sample :math:`b` (overlap statistics, sums of
pixel losses and of pixel weights, or a loss per sample) and :math:`\ell_n` is the loss of row
:math:`n`: a sample, or the whole batch once the statistics are pooled. Everything else is
derived from that description, generically, in this module:

* the public function: :func:`define_loss` turns a factory ``(**options) -> LossDefinition``
  into ``loss(logits, labels, *, **options, activation, class_axis, ignore_index, mask,
  aggregate, axis_name, reduction)``, its signature and its docstring;
* ``aggregate``: ``"sample"`` finishes each sample's sums; ``"batch"`` adds them over the batch
  first (or, for a definition whose sums are not additive over pixels, such as the Lovász
  losses, computes them on the batch taken as one sample);
* ``reduction``, one policy for every loss: ``"none"`` gives the ``[B]`` per-sample values,
  ``"sum"`` their sum, ``"mean"`` :math:`\sum_n v_n \ell_n / \sum_n v_n` with :math:`v_n` the
  row's weight (1 for a sample with a valid pixel and 0 for one without, so a fully masked
  sample is left out exactly as if it were sliced away; the summed pixel weights for the
  pixel-wise means, which makes ``"mean"`` PyTorch's pooled mean);
* ``axis_name``: every reduction is a ratio of additive sums, psummed over the mapped axis
  before the ratio is taken;
* :func:`jaxseg_losses.combine` evaluates several definitions on one shared
  :class:`~jaxseg_losses.Inputs`, so statistics they have in common are computed once;
* :func:`jaxseg_losses.accumulate.value_and_grad` adds the same sums over micro-batches;
* :mod:`jaxseg_losses.per_sample` wraps the public function for ``jax.vmap``.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax.core import Tracer

from jaxseg_losses._core import checks as _checks
from jaxseg_losses._core import docs
from jaxseg_losses._core.inputs import Inputs, prepare

ArrayLike = jax.typing.ArrayLike
Sums = Any  # a pytree of arrays, each with a leading batch axis

# Options that describe the data and how to reduce it: given once to combine(), and to every
# term of it identically.
DATA_OPTIONS = ("activation", "class_axis", "ignore_index", "mask")
SHARED_OPTIONS = (*DATA_OPTIONS, "axis_name", "reduction")
# The one generic option of a single term.
TERM_OPTIONS = ("aggregate",)
ALL_OPTIONS = (*SHARED_OPTIONS, *TERM_OPTIONS)


def divide(numerator: jax.Array, denominator: jax.Array, *, empty: Any = 0.0) -> jax.Array:
    """``numerator / denominator``, and ``empty`` where the denominator is exactly 0.

    The library's one safe division: 0 for an empty mean (no valid pixel, no valid sample), 1 for
    a ratio of two empty sums (a perfect score), NaN for an undefined metric. The double
    ``where`` keeps the gradient finite where the denominator is 0; only an exact 0 counts as
    empty, so a NaN denominator stays NaN.
    """
    nothing = denominator == 0
    safe = jnp.where(nothing, jnp.ones((), denominator.dtype), denominator)
    return jnp.where(nothing, empty, numerator / safe)


# ----------------------------------------------------------------------------------------------
# The description.


@dataclasses.dataclass(frozen=True)
class LossDefinition:
    r"""A loss described by additive per-sample sums and a finishing step.

    This is the one description from which the library derives a loss's public function,
    ``aggregate``, ``reduction``, ``axis_name``, :func:`jaxseg_losses.combine`, micro-batch
    accumulation and the per-sample variant (see :func:`jaxseg_losses.define_loss`).

    .. math::

       S = \mathrm{sums}(\text{inputs}), \qquad \ell = \mathrm{finish}(S), \qquad
       \mathrm{mean} = \frac{\sum_n v_n \ell_n}{\sum_n v_n}, \quad v = \mathrm{weight}(S)

    Attributes:
      sums: ``(inputs: Inputs) -> pytree`` of arrays with a leading batch axis ``[B, ...]``:
        sums over the pixels of each sample (read the inputs' shared statistics, e.g.
        ``inputs.overlap_sums()``, so that terms of a combination share them).
      finish: ``pytree -> [N]``: the loss of each row of the sums, where the rows are the
        ``B`` samples, or one row of batch-pooled sums. It must be finite for rows whose sums
        are all 0 (a sample without valid pixels), which the reductions leave out.
      weight: optional ``pytree -> [N]``: each row's weight in the mean over rows. By default
        1 for a row with a valid pixel and 0 for one without. Pixel-wise means pass the summed
        pixel weights, which makes the mean over samples the mean over pixels.
      pools: whether ``sums`` are sums over pixels, so that the sums of several samples,
        devices or micro-batches add up to those of their union (``aggregate="batch"``,
        ``axis_name`` with batch pooling, micro-batches). ``False`` for a loss that is only a
        function of a whole sample (the Lovász losses sort its pixels): ``aggregate="batch"``
        then evaluates the batch as one sample and cannot be split.

    Examples:
      A mean absolute error of the probabilities, pixel-weighted, as a loss of its own:

      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> definition = jsl.LossDefinition.pixel_mean(
      ...     lambda inputs: jnp.abs(inputs.probabilities() - inputs.dense_targets()).sum(-1))
      >>> inputs = jsl.Inputs.prepare(jnp.zeros((1, 2, 2)), jnp.array([[0, 1]]))
      >>> sums = definition.sums(inputs)
      >>> print(definition.finish(sums))
      [1.]
    """

    sums: Callable[[Inputs], Sums]
    finish: Callable[[Sums], jax.Array]
    weight: Callable[[Sums], jax.Array] | None = None
    pools: bool = True

    @classmethod
    def pixel_mean(
        cls,
        pixel_loss: Callable[[Inputs], jax.Array | tuple[jax.Array, jax.Array | None]],
    ) -> "LossDefinition":
        r"""The weighted mean of a per-pixel loss over the valid pixels.

        .. math::

           \ell_b = \frac{\sum_{i \in b} m_i \ell_i}{\sum_{i \in b} m_i u_i}, \qquad
           \mathrm{mean} = \frac{\sum_i m_i \ell_i}{\sum_i m_i u_i}

        with :math:`m` the pixel weights and :math:`u_i` an optional normaliser per pixel (the
        class weight of the label for PyTorch's weighted cross-entropy; 1 by default). The
        mean over samples weighs each sample by :math:`\sum m u`, so it is the mean over all
        valid pixels of the batch (and of all devices and micro-batches).

        Args:
          pixel_loss: ``(inputs) -> [B, P]`` per-pixel losses, or ``(loss, normaliser)``, both
            ``[B, P]``. Pixel weights are applied here: do not multiply by them.

        Returns:
          The :class:`LossDefinition`.

        Examples:
          >>> import jax.numpy as jnp
          >>> import jaxseg_losses as jsl
          >>> nll = jsl.LossDefinition.pixel_mean(lambda inputs: -inputs.label_log_probability())
          >>> inputs = jsl.Inputs.prepare(jnp.zeros((1, 3, 2)), jnp.array([[0, 1, 1]]))
          >>> print(nll.finish(nll.sums(inputs)))   # ln 2
          [0.6931472]
        """

        def sums(inputs: Inputs) -> dict[str, jax.Array]:
            out = pixel_loss(inputs)
            loss, normaliser = out if isinstance(out, tuple) else (out, None)
            weights = inputs.weights
            count = inputs.valid_count() if normaliser is None else jnp.sum(weights * normaliser, 1)
            return {"loss": jnp.sum(weights * loss, axis=1), "weight": count}

        return cls(
            sums=sums,
            finish=lambda s: divide(s["loss"], s["weight"]),
            weight=lambda s: s["weight"],
        )


class LossFunction(Protocol):
    """A loss function made by :func:`define_loss`: callable, and carrying its description."""

    __name__: str
    activations: tuple[str | None, ...]

    def definition(self, **options: Any) -> LossDefinition: ...

    def __call__(self, logits: ArrayLike, labels: ArrayLike, /, **options: Any) -> jax.Array: ...


# Annotations of the generated signatures, as strings so that `help()` and the docs read the
# alias `ArrayLike`, not the Union it stands for.
_SHARED_ANNOTATIONS: dict[str, str] = {
    "activation": "str | None",
    "class_axis": "int",
    "ignore_index": "int | None",
    "mask": "ArrayLike | None",
    "aggregate": "str",
    "axis_name": "Hashable | None",
    "reduction": "str",
}
_SHARED_DEFAULTS: dict[str, Any] = {
    "class_axis": -1,
    "ignore_index": None,
    "mask": None,
    "aggregate": "sample",
    "axis_name": None,
    "reduction": "mean",
}


def define_loss(
    factory: Callable[..., LossDefinition] | None = None,
    /,
    *,
    activations: Sequence[str | None] = _checks.ACTIVATIONS,
) -> Any:
    r"""Makes a loss function from its description: ``(**options) -> LossDefinition``.

    The factory takes the loss's own options (keyword-only, with defaults) and returns its
    :class:`LossDefinition`. The result is the public loss function

    .. code-block:: text

       loss(logits, labels, *, <the factory's options>, activation, class_axis, ignore_index,
            mask, aggregate, axis_name, reduction) -> jax.Array

    with the library's data contract and reduction policy, which works in
    :func:`jaxseg_losses.combine` (and its statistics are shared with the other terms), in
    :func:`jaxseg_losses.accumulate.value_and_grad`, with ``axis_name``, and in
    :func:`jaxseg_losses.per_sample.single_example`, exactly like a built-in loss. Every loss of
    the library is written this way. The factory's docstring becomes the function's; the
    marker lines ``<data args>`` and ``<shared options>`` in its ``Args:`` section are replaced by
    the documentation of ``logits``/``labels`` and of the shared options (and any other
    ``<block>`` by the library's shared paragraph of that name).

    Args:
      factory: ``(**options) -> LossDefinition``; it validates its options (they are Python
        values or traced scalars) and builds the description.
      activations: the activations the loss accepts, the first being the default. A single
        one fixes it: the function then has no ``activation`` option (e.g. a hinge on raw
        logits, ``("sigmoid",)``).

    Returns:
      The loss function. ``fn.definition(**options)`` returns its :class:`LossDefinition`.

    Examples:
      A cross-entropy whose pixels near a label boundary weigh more (Ronneberger et al.'s
      idea, with a 4-neighbour boundary for brevity):

      >>> import jax, jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> @jsl.define_loss
      ... def boundary_weighted_ce(*, boundary_weight=5.0):
      ...     '''Cross-entropy with heavier pixels on label boundaries.'''
      ...     def pixel_loss(inputs):
      ...         labels = inputs.unflatten(inputs.labels)           # [B, H, W]
      ...         edge = (labels != jnp.roll(labels, 1, 1)) | (labels != jnp.roll(labels, 1, 2))
      ...         weight = 1.0 + boundary_weight * edge.reshape(inputs.labels.shape).astype(float)
      ...         return -weight * inputs.label_log_probability(), weight
      ...     return jsl.LossDefinition.pixel_mean(pixel_loss)
      >>> logits = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
      >>> labels = jax.random.randint(jax.random.key(1), (2, 8, 8), 0, 3)
      >>> loss = boundary_weighted_ce(logits, labels, boundary_weight=2.0)
      >>> total, parts = jsl.combine({"bce": boundary_weighted_ce, "dice": jsl.dice_loss})(
      ...     logits, labels)
      >>> bool(jnp.allclose(parts["bce"], boundary_weighted_ce(logits, labels)))
      True
    """
    if factory is None:
        return functools.partial(define_loss, activations=activations)
    accepted: tuple[str | None, ...] = tuple(activations)
    if not accepted or any(a not in _checks.ACTIVATIONS for a in accepted):
        raise ValueError(
            f"`activations` must be a non-empty subset of {_checks.ACTIVATIONS}; got {accepted!r}."
        )
    default_activation = accepted[0]
    options = _factory_options(factory)
    parameters = [
        inspect.Parameter(
            "logits", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation="ArrayLike"
        ),
        inspect.Parameter(
            "labels", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation="ArrayLike"
        ),
        *(p.replace(annotation=_annotation_name(p.annotation)) for p in options.values()),
    ]
    shared = dict(_SHARED_DEFAULTS)
    if len(accepted) > 1:
        shared = {"activation": default_activation, **shared}
    parameters += [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=default,
            annotation=_SHARED_ANNOTATIONS.get(name, inspect.Parameter.empty),
        )
        for name, default in shared.items()
    ]
    signature = inspect.Signature(parameters, return_annotation="jax.Array")
    name = factory.__name__

    @functools.wraps(factory)
    def loss_fn(logits: ArrayLike, labels: ArrayLike, **kwargs: Any) -> jax.Array:
        try:
            bound = signature.bind(logits, labels, **kwargs)
        except TypeError as error:
            raise TypeError(f"{name}() {error}") from None
        bound.apply_defaults()
        arguments = bound.arguments
        term = make_term(
            name,
            1.0,
            cast(LossFunction, loss_fn),
            {k: arguments[k] for k in options},
            aggregate=arguments["aggregate"],
            activation=arguments.get("activation", default_activation),
            reduction=arguments["reduction"],
            axis_name=arguments["axis_name"],
        )
        total, _ = evaluate(
            (term,),
            arguments["logits"],
            arguments["labels"],
            mask=arguments["mask"],
            activation=arguments.get("activation", default_activation),
            class_axis=arguments["class_axis"],
            ignore_index=arguments["ignore_index"],
            axis_name=arguments["axis_name"],
            reduction=arguments["reduction"],
        )
        return total

    def definition(**kwargs: Any) -> LossDefinition:
        unknown = sorted(set(kwargs) - set(options))
        if unknown:
            raise TypeError(
                f"{name}() got an unexpected keyword {unknown[0]!r}; its options are "
                f"{', '.join(options) or 'none'}."
            )
        built = factory(**kwargs)
        if not isinstance(built, LossDefinition):
            raise TypeError(
                f"The factory of {name} must return a LossDefinition; got {type(built).__name__}."
            )
        return built

    loss_fn.__signature__ = signature  # type: ignore[attr-defined]
    loss_fn.__annotations__ = {
        **{p.name: p.annotation for p in parameters if p.annotation is not p.empty},
        "return": signature.return_annotation,
    }
    loss_fn.__doc__ = docs.fill(factory.__doc__ or "", {"shared options": docs.option_docs(shared)})
    loss_fn.definition = definition  # type: ignore[attr-defined]
    loss_fn.activations = accepted  # type: ignore[attr-defined]
    return cast(LossFunction, loss_fn)


def _annotation_name(annotation: Any) -> Any:
    """Names ``jax.typing.ArrayLike`` as such in a generated signature (not its expanded Union)."""
    if annotation == ArrayLike:
        return "ArrayLike"
    if annotation == (ArrayLike | None):
        return "ArrayLike | None"
    return annotation


def _factory_options(factory: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    if not callable(factory):
        raise TypeError(f"`factory` must be callable; got {type(factory).__name__}.")
    options = {}
    for parameter in inspect.signature(factory).parameters.values():
        if parameter.kind is not inspect.Parameter.KEYWORD_ONLY or (
            parameter.default is inspect.Parameter.empty
        ):
            raise TypeError(
                f"The options of {factory.__name__} must be keyword-only with defaults, as in "
                f"`def {factory.__name__}(*, smooth=1.0)`; got parameter {parameter.name!r}."
            )
        if parameter.name in (*ALL_OPTIONS, "logits", "labels"):
            raise TypeError(
                f"{factory.__name__} cannot take the shared option {parameter.name!r}: the "
                "library handles it for every loss."
            )
        options[parameter.name] = parameter
    return options


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


def collect_sums(
    terms: Sequence[Term],
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    mask: ArrayLike | None,
    activation: str | None,
    class_axis: int,
    ignore_index: int | None,
    reduction: str,
) -> dict[str, Any]:
    """Every described term's partial result, from one shared :class:`Inputs` per activation."""
    described = [term for term in terms if term.definition is not None]
    inputs_by_activation: dict[str | None, Inputs] = {}
    for term in described:
        if term.activation not in inputs_by_activation:
            inputs = prepare(
                logits,
                labels,
                activation=term.activation,
                class_axis=class_axis,
                ignore_index=ignore_index,
                mask=mask,
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
    terms: Sequence[Term],
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    mask: ArrayLike | None,
    activation: str | None,
    class_axis: int,
    ignore_index: int | None,
    axis_name: Any,
    reduction: str,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """``(Σ_k λ_k L_k, {name: L_k})``: the one evaluation path of every loss call."""
    _checks.check_choice("reduction", reduction, _checks.REDUCTIONS)
    partials = collect_sums(
        terms,
        logits,
        labels,
        mask=mask,
        activation=activation,
        class_axis=class_axis,
        ignore_index=ignore_index,
        reduction=reduction,
    )
    if axis_name is not None and reduction != "none" and partials:
        # Sums, not per-device ratios, cross the devices: the ratio taken after the psum is the
        # global one, whatever each device holds.
        partials = jax.lax.psum(partials, axis_name)
    parts = {}
    for term in terms:
        if term.definition is None:
            assert term.call is not None
            parts[term.name] = term.call(
                logits,
                labels,
                activation=activation,
                class_axis=class_axis,
                ignore_index=ignore_index,
                mask=mask,
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
