r"""``define_loss``: the public loss function made from its description.

A factory ``(**options) -> LossDefinition`` becomes ``loss(logits, labels, *, <options>,
activation, class_axis, ignore_index, mask, aggregate, axis_name, reduction)``: its signature
(the factory's options, then the shared ones), its docstring (the factory's, with the shared
paragraphs of :mod:`jaxseg_losses._core.docs` filled in) and ``loss.definition(**options)``,
through which ``combine``, ``accumulate`` and ``per_sample`` reach the description. A call binds
the arguments and evaluates the one term through :mod:`jaxseg_losses._core.engine`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import jax

from jaxseg_losses._core import checks as _checks
from jaxseg_losses._core import docs
from jaxseg_losses._core.definition import ALL_OPTIONS, LossDefinition, LossFunction
from jaxseg_losses._core.engine import Data, evaluate, make_term
from jaxseg_losses._core.signatures import (
    bind,
    give_signature,
    keyword_parameters,
    positional_parameters,
)

ArrayLike = jax.typing.ArrayLike

# The shared options of every generated loss, with their defaults and annotations (strings, so
# that `help()` and the docs read the alias `ArrayLike`, not the Union it stands for). A loss
# that accepts several activations defaults to the first; one with a single activation has no
# `activation` option.
SHARED_PARAMETERS: dict[str, tuple[Any, str]] = {
    "activation": ("softmax", "str | None"),
    "class_axis": (-1, "int"),
    "ignore_index": (None, "int | None"),
    "mask": (None, "ArrayLike | None"),
    "aggregate": ("sample", "str"),
    "axis_name": (None, "Hashable | None"),
    "reduction": ("mean", "str"),
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
    marker lines ``<data args>`` and ``<shared args>`` in its ``Args:`` section are replaced by
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
    options = _factory_options(factory)
    default_activation = accepted[0]
    shared = dict(SHARED_PARAMETERS)
    if len(accepted) == 1:
        del shared["activation"]
    else:
        shared["activation"] = (default_activation, shared["activation"][1])
    signature = _signature(options, shared)
    loss_fn = _loss_function(factory, signature, options, default_activation)
    give_signature(loss_fn, signature)
    loss_fn.__doc__ = docs.fill(
        factory.__doc__ or "", {"shared args": docs.option_docs(shared)}, strict=False
    )
    loss_fn.definition = _definition_builder(factory, options)  # type: ignore[attr-defined]
    loss_fn.activations = accepted  # type: ignore[attr-defined]
    return cast(LossFunction, loss_fn)


def _signature(
    options: Mapping[str, inspect.Parameter], shared: Mapping[str, tuple[Any, str]]
) -> inspect.Signature:
    """``(logits, labels, *, <the factory's options>, <the shared options>) -> jax.Array``."""
    data = positional_parameters(("logits", "labels"), "ArrayLike")
    own = [p.replace(annotation=_annotation_name(p.annotation)) for p in options.values()]
    common = keyword_parameters(shared)
    return inspect.Signature([*data, *own, *common], return_annotation="jax.Array")


def _loss_function(
    factory: Callable[..., LossDefinition],
    signature: inspect.Signature,
    options: Mapping[str, inspect.Parameter],
    default_activation: str | None,
) -> Callable[..., jax.Array]:
    """The public function: binds its arguments and evaluates the one term it describes."""
    name = factory.__name__

    @functools.wraps(factory)
    def loss_fn(logits: ArrayLike, labels: ArrayLike, **kwargs: Any) -> jax.Array:
        arguments = bind(name, signature, logits, labels, **kwargs)
        activation = arguments.get("activation", default_activation)
        term = make_term(
            name,
            1.0,
            cast(LossFunction, loss_fn),
            {k: arguments[k] for k in options},
            aggregate=arguments["aggregate"],
            activation=activation,
            reduction=arguments["reduction"],
            axis_name=arguments["axis_name"],
        )
        data = Data.of_call(arguments, activation)
        total, _ = evaluate((term,), data, arguments["axis_name"], arguments["reduction"])
        return total

    return loss_fn


def _definition_builder(
    factory: Callable[..., LossDefinition], options: Mapping[str, inspect.Parameter]
) -> Callable[..., LossDefinition]:
    """``fn.definition(**options)``: the factory's description, its options checked by name."""
    name = factory.__name__

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

    return definition


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
