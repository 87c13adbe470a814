"""The one validation seam: trace-time checks with errors that name the argument.

Every public function validates its inputs through these helpers, so the messages read the same
everywhere: which argument, what was expected, what was received, and (where there is one) how to
fix it. The checks look only at static information (shapes, dtypes, Python option values), so they
run once per trace and cost nothing at run time. Checks on array *values* live in the opt-in
checked mode (:func:`jaxseg_losses.checked`), because a value check inside a traced function
cannot raise a Python exception.

Shape checks go through ``chex`` static assertions; their ``AssertionError`` is turned into a
``ValueError`` with our wording, so callers catch the exception types the contract promises.
"""

import contextlib
import contextvars
import functools
import numbers
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

REDUCTIONS = ("mean", "sum", "none")
AGGREGATES = ("sample", "batch")
ACTIVATIONS = ("softmax", "sigmoid", None)


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    """Raises ``ValueError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        shown = ", ".join(repr(c) for c in choices)
        raise ValueError(f"`{name}` must be one of {shown}; got {value!r}.")


def _static_scalar(name: str, value: Any) -> float | None:
    """A scalar option's Python value, or ``None`` when it is traced (checked at run time only)."""
    if jnp.ndim(value) != 0:
        raise ValueError(f"`{name}` must be a scalar; got an array of shape {jnp.shape(value)}.")
    try:
        return float(value)
    except jax.errors.ConcretizationTypeError:
        return None


def check_nonnegative(name: str, value: Any) -> None:
    """Raises ``ValueError`` if a static scalar option is negative (traced values pass)."""
    scalar = _static_scalar(name, value)
    if scalar is not None and not scalar >= 0.0:  # also rejects NaN
        raise ValueError(f"`{name}` must be non-negative; got {scalar}.")


def check_in_unit_interval(name: str, value: Any, *, closed_right: bool = True) -> None:
    """Raises ``ValueError`` unless a static scalar option lies in [0, 1] (or [0, 1))."""
    scalar = _static_scalar(name, value)
    if scalar is None:
        return
    if not 0.0 <= scalar <= 1.0 or (not closed_right and scalar == 1.0):
        bound = "[0, 1]" if closed_right else "[0, 1)"
        raise ValueError(f"`{name}` must lie in {bound}; got {scalar}.")


def as_float_array(name: str, x: Any) -> jax.Array:
    """Converts to a JAX array and requires a floating dtype (logits, probabilities)."""
    array = jnp.asarray(x)
    if not jnp.issubdtype(array.dtype, jnp.floating):
        raise TypeError(
            f"`{name}` must have a floating dtype (float32, bfloat16, float16 or float64); got "
            f"{array.dtype}. Cast it with `.astype(jnp.float32)`."
        )
    return array


def normalize_axis(name: str, axis: int, ndim: int) -> int:
    """Returns ``axis`` as a non-negative index into an array of rank ``ndim``."""
    if not isinstance(axis, numbers.Integral) or isinstance(axis, bool):
        raise TypeError(f"`{name}` must be an int; got {type(axis).__name__} {axis!r}.")
    if not -ndim <= axis < ndim:
        raise ValueError(
            f"`{name}`={axis} is out of range for logits of rank {ndim}; expected an axis in "
            f"[{-ndim}, {ndim - 1}]."
        )
    return int(axis) % ndim


def check_bool(name: str, value: Any) -> bool:
    """Returns a ``bool`` option, raising ``TypeError`` for anything else (no truthiness)."""
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be True or False; got {type(value).__name__} {value!r}.")
    return value


def check_label_value(name: str, value: Any) -> int | None:
    """Returns an optional label value (``ignore_index``) as an int: ``None`` or a Python int."""
    if value is None:
        return None
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(
            f"`{name}` must be None or a Python int label value (e.g. 255); got "
            f"{type(value).__name__} {value!r}."
        )
    return int(value)


def check_real(name: str, value: Any) -> Any:
    """Requires a real scalar (a Python number, NaN allowed, or a 0-d array that may be traced)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real | jax.Array | np.ndarray):
        raise TypeError(f"`{name}` must be a real number; got {type(value).__name__} {value!r}.")
    if isinstance(value, jax.Array | np.ndarray) and value.ndim != 0:
        raise ValueError(f"`{name}` must be a scalar; got an array of shape {value.shape}.")
    return value


def check_shape(name: str, x: jax.Array, expected: tuple[int, ...], hint: str = "") -> None:
    """Raises ``ValueError`` unless ``x.shape == expected``."""
    try:
        chex.assert_shape(x, expected)
    except AssertionError:
        message = f"`{name}` must have shape {tuple(expected)}; got {tuple(x.shape)}."
        raise ValueError(f"{message} {hint}".rstrip()) from None


def check_min_rank(name: str, x: jax.Array, min_rank: int, layout: str) -> None:
    """Raises ``ValueError`` if ``x`` has fewer than ``min_rank`` dimensions."""
    if x.ndim < min_rank:
        raise ValueError(
            f"`{name}` must have at least {min_rank} dimensions ({layout}); got shape "
            f"{tuple(x.shape)}."
        )


def class_vector(
    name: str, value: Any, num_classes: int, dtype: Any, *, rank: int = 1
) -> jax.Array:
    """Validates a per-class vector (``class_weights``, ``alpha``) of length ``num_classes``.

    Returns it shaped ``[1, ..., 1, C]`` with ``rank`` dimensions, ready to multiply a
    ``[..., C]`` array without implicit rank promotion.
    """
    vector = jnp.asarray(value, dtype=dtype)
    if vector.ndim != 1 or vector.shape[0] != num_classes:
        raise ValueError(
            f"`{name}` must have shape ({num_classes},), one entry per class; got "
            f"{tuple(vector.shape)}."
        )
    return vector.reshape((1,) * (rank - 1) + (num_classes,))


def class_indices(name: str, value: Any, num_classes: int) -> tuple[int, ...]:
    """Validates a static, non-empty sequence of distinct class indices in ``[0, num_classes)``."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | range):
        raise TypeError(
            f"`{name}` must be a list or tuple of class indices; got {type(value).__name__} "
            f"{value!r}."
        )
    indices = []
    for index in value:
        if not isinstance(index, numbers.Integral) or isinstance(index, bool):
            raise TypeError(
                f"`{name}` must hold Python ints (static class indices); got "
                f"{type(index).__name__} {index!r}."
            )
        index = int(index)
        if not 0 <= index < num_classes:
            raise ValueError(
                f"`{name}` holds class {index}, out of range for {num_classes} classes; expected "
                f"indices in [0, {num_classes - 1}]."
            )
        indices.append(index)
    if not indices:
        raise ValueError(f"`{name}` must name at least one class; got an empty {value!r}.")
    if len(set(indices)) != len(indices):
        raise ValueError(f"`{name}` must not repeat a class; got {value!r}.")
    return tuple(indices)


# ----------------------------------------------------------------------------------------------
# Opt-in value checks.

_VALUE_CHECKS = contextvars.ContextVar("jaxseg_losses_value_checks", default=False)


def value_checks_enabled() -> bool:
    """Whether the current trace runs under :func:`checked`."""
    return _VALUE_CHECKS.get()


@contextlib.contextmanager
def value_checks_disabled() -> Iterator[None]:
    """No value checks inside (an abstract trace that only looks at shapes)."""
    token = _VALUE_CHECKS.set(False)
    try:
        yield
    finally:
        _VALUE_CHECKS.reset(token)


def check_values(predicate: jax.Array, message: str, *fmt_args: jax.Array) -> None:
    """Adds a ``checkify`` value check when checked mode is on; a no-op otherwise."""
    if value_checks_enabled():
        checkify.check(predicate, message, *fmt_args)


# jax.jit caches traces by function and argument types, not by the flag above: a jitted function
# first traced without checks would be reused silently under `checked`, and one first traced under
# `checked` would leak `checkify.check` into later plain calls (which then fail). A JAX user
# context is part of jit's cache key; on JAX versions without one, `checked` bypasses jit instead.
_make_user_context = getattr(jax, "make_user_context", None)
_CHECKS_IN_JIT_KEY = _make_user_context(False) if _make_user_context is not None else None


@contextlib.contextmanager
def _value_checks() -> Iterator[None]:
    token = _VALUE_CHECKS.set(True)
    try:
        if _CHECKS_IN_JIT_KEY is not None:
            with _CHECKS_IN_JIT_KEY(True):
                yield
        else:
            with jax.disable_jit():
                yield
    finally:
        _VALUE_CHECKS.reset(token)


F = TypeVar("F", bound=Callable[..., Any])


def checked(fn: F) -> F:
    """Wraps a loss or metric so that bad *values* raise instead of propagating silently.

    Shapes, dtypes and options are always checked at trace time. Values are not, because a traced
    function cannot raise: by default a label outside ``[0, C)`` (and not ``ignore_index``)
    makes the loss NaN, non-finite logits propagate NaN, and probabilities outside ``[0, 1]`` are
    used as given. ``checked(fn)`` traces ``fn`` with value checks switched on
    (labels in range or equal to ``ignore_index``, finite logits, probabilities and dense targets
    in ``[0, 1]``, non-negative mask weights) through ``jax.experimental.checkify`` and raises
    ``checkify.JaxRuntimeError`` naming the first failed check. Use it while debugging a data
    pipeline; it retraces on every call, so keep the plain function in the training step.

    Args:
      fn: any function of this library, or a function that calls them.

    Returns:
      A function with the same signature that raises on bad values.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> logits = jnp.zeros((1, 2, 2, 3))
      >>> labels = jnp.array([[[0, 1], [2, 7]]])
      >>> jsl.checked(jsl.dice_loss)(logits, labels)
      Traceback (most recent call last):
        ...
      jax._src.checkify.JaxRuntimeError: `labels` must lie in [0, 3) or equal ignore_index ...
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        def traced(*args: Any) -> Any:
            with _value_checks():
                return fn(*args, **kwargs)

        error, out = checkify.checkify(traced, errors=checkify.user_checks)(*args)
        error.throw()
        return out

    return wrapper  # type: ignore[return-value]
