"""The signatures of the generated public functions: losses, ready-made pairs, scores.

A generated function takes ``(*args, **kwargs)`` and carries the signature it documents: built
from tables of options (:func:`keyword_parameters`), given to the function with the matching
``__annotations__`` (:func:`give_signature`, which ``help()``, :mod:`inspect` and the docs
read), and bound on every call (:func:`bind`), with the errors Python gives a written function.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def positional_parameters(names: Iterable[str], annotation: Any) -> list[inspect.Parameter]:
    """The data arguments ``names`` (positional or keyword, no default)."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    return [inspect.Parameter(name, kind, annotation=annotation) for name in names]


def keyword_parameters(options: Mapping[str, tuple[Any, Any]]) -> list[inspect.Parameter]:
    """Keyword-only parameters from ``{name: (default, annotation)}``, in that order."""
    kind = inspect.Parameter.KEYWORD_ONLY
    return [
        inspect.Parameter(name, kind, default=default, annotation=annotation)
        for name, (default, annotation) in options.items()
    ]


def give_signature(fn: F, signature: inspect.Signature, name: str | None = None) -> F:
    """Gives ``fn`` ``signature`` and the ``__annotations__`` that go with it (and, with
    ``name``, that name)."""
    if name is not None:
        fn.__name__ = fn.__qualname__ = name
    fn.__signature__ = signature  # type: ignore[attr-defined]
    fn.__annotations__ = {
        **{
            p.name: p.annotation
            for p in signature.parameters.values()
            if p.annotation is not p.empty
        },
        "return": signature.return_annotation,
    }
    return fn


def bind(name: str, signature: inspect.Signature, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """The arguments of a call of ``name`` by parameter name, defaults applied.

    A call that does not fit ``signature`` raises ``TypeError`` naming the function, as a
    written function's call would.
    """
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as error:
        raise TypeError(f"{name}() {error}") from None
    bound.apply_defaults()
    return dict(bound.arguments)
