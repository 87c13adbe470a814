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

from __future__ import annotations

import contextlib
import contextvars
import functools
import numbers
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jax.core import Tracer
from jax.experimental import checkify

REDUCTIONS = ("mean", "sum", "none")
AGGREGATES = ("sample", "batch")
ACTIVATIONS = ("softmax", "sigmoid", None)


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    """Raises ``ValueError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        shown = ", ".join(repr(c) for c in choices)
        raise ValueError(f"`{name}` must be one of {shown}; got {value!r}.")


def _type_name(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def _real_array(name: str, value: Any, what: str) -> Any:
    """``value`` as a NumPy or JAX array of real numbers; strings, bools and None are refused.

    Python and NumPy values stay NumPy (concrete, checked now, even inside a trace); JAX arrays
    stay JAX (traced ones are checked at run time by :func:`checked`).
    """
    if isinstance(value, str | bytes | bool) or value is None:
        raise TypeError(f"`{name}` must be {what}; got {_type_name(value)}.")
    try:
        array = value if isinstance(value, jax.Array) else np.asarray(value)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be {what}; got {_type_name(value)}.") from None
    if not (jnp.issubdtype(array.dtype, jnp.floating) or jnp.issubdtype(array.dtype, jnp.integer)):
        raise TypeError(f"`{name}` must be {what}; got an array of dtype {array.dtype}.")
    return array


def _concrete(array: Any) -> Any:
    """The NumPy value of ``array``, or ``None`` when it is traced (checked at run time only)."""
    if isinstance(array, Tracer):
        return None
    return np.asarray(array)


def check_real(
    name: str,
    value: Any,
    *,
    low: float | None = 0.0,
    high: float | None = None,
    high_open: bool = False,
    vector: bool = False,
) -> None:
    """Validates a real option (a Python number, a NumPy or JAX scalar, traced or not).

    Types are checked at trace time (``TypeError``: a string, a bool or ``None`` is never read as
    a number). A concrete value must be finite and lie in ``[low, high]`` (``[low, high)`` with
    ``high_open``), else ``ValueError``; a traced one is checked by :func:`checked`. With
    ``vector``, a 1-D array is accepted too (per-class options) and every entry is checked.
    """
    bounds = _bounds_text(low, high, high_open)
    requirement = (
        "finite and non-negative" if (low, high) == (0.0, None) else (f"finite and lie in {bounds}")
    )
    what = "a real number" + (" or a vector of them" if vector else "") + f" in {bounds}"
    array = _real_array(name, value, what)
    if array.ndim > (1 if vector else 0):
        shape = "a scalar or a 1-D vector" if vector else "a scalar"
        raise ValueError(f"`{name}` must be {shape}; got an array of shape {array.shape}.")
    concrete = _concrete(array)
    if concrete is None:
        inside = jnp.all(jnp.isfinite(array))
        if low is not None:
            inside = inside & jnp.all(array >= low)
        if high is not None:
            inside = inside & jnp.all(array < high if high_open else array <= high)
        check_values(inside, f"`{name}` must be {requirement}")
        return
    bad = ~np.isfinite(concrete)
    if low is not None:
        bad |= concrete < low
    if high is not None:
        bad |= (concrete >= high) if high_open else (concrete > high)
    if np.any(bad):
        shown = concrete.item() if concrete.ndim == 0 else concrete.tolist()
        raise ValueError(f"`{name}` must be {requirement}; got {shown}.")


def _bounds_text(low: float | None, high: float | None, high_open: bool) -> str:
    left = "(-inf" if low is None else f"[{low:g}"
    right = "inf)" if high is None else (f"{high:g})" if high_open else f"{high:g}]")
    return f"{left}, {right}"


def check_nonnegative(name: str, value: Any) -> None:
    """A finite, non-negative real scalar option (``smooth``, ``gamma``, ...)."""
    check_real(name, value, low=0.0)


def check_in_unit_interval(name: str, value: Any, *, closed_right: bool = True) -> None:
    """A real scalar option in [0, 1] (or [0, 1))."""
    check_real(name, value, low=0.0, high=1.0, high_open=not closed_right)


def check_static_int(name: str, value: Any, low: int) -> int:
    """``value`` as a Python int of at least ``low`` (a static count or shape), else an error."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise TypeError(f"`{name}` must be a Python int >= {low}; got {type(value).__name__}.")
    if value < low:
        raise ValueError(f"`{name}` must be an int >= {low}; got {value}.")
    return int(value)


def check_bool(name: str, value: Any) -> bool:
    """Returns a bool option, raising ``TypeError`` for anything else: never truthiness."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"`{name}` must be True or False; got {_type_name(value)}.")
    return bool(value)


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


def check_real_scalar(name: str, value: Any) -> Any:
    """Requires a real scalar of any value, NaN included (a Python number, or a 0-d array that
    may be traced): an option whose NaN means something (``zero_division=nan``)."""
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


def _without(shape: Sequence[int], axis: int) -> tuple[int, ...]:
    return tuple(s for i, s in enumerate(shape) if i != axis)


def class_axis_hint(
    name: str, shape: Sequence[int], scores: str, scores_shape: Sequence[int], class_axis: int
) -> str:
    """The fix when ``shape`` is ``scores_shape`` without another axis than ``class_axis``.

    Channels-first scores (NCHW logits) with the default ``class_axis=-1``: the label maps
    have the scores' shape without axis 1, and the fix is ``class_axis=1``. Returns ``""``
    when no other axis fits (``class_axis`` is non-negative).
    """
    for axis in range(1, len(scores_shape)):
        if axis != class_axis and _without(scores_shape, axis) == tuple(shape):
            which = (
                f"the class axis of channels-first `{scores}`, [B, C, *spatial]"
                if axis == 1
                else f"if that is the class axis of `{scores}`"
            )
            return (
                f"`{name}` have the shape of `{scores}` without axis {axis}: pass "
                f"`class_axis={axis}` ({which})."
            )
    return ""


def _moved(shape: Sequence[int], source: int, target: int) -> tuple[int, ...]:
    """The shape of ``jnp.moveaxis(x, source, target)`` for ``x`` of ``shape``."""
    moved = list(shape)
    moved.insert(target, moved.pop(source))
    return tuple(moved)


def moved_axis_hint(
    name: str, shape: Sequence[int], scores: str, scores_shape: Sequence[int], class_axis: int
) -> str:
    """The fix when dense ``shape`` is ``scores_shape`` with the class axis elsewhere.

    Dense targets share the layout of the scores, class axis included: one-hot targets made
    channels-last (``jax.nn.one_hot``) for channels-first logits, or the other way round.
    Returns ``""`` when no single moved axis turns one shape into the other.
    """
    pairs = [
        (source, target)
        for source in range(1, len(shape))
        for target in range(1, len(shape))
        if source != target and _moved(shape, source, target) == tuple(scores_shape)
    ]
    if not pairs:
        return ""
    # A move onto the class axis of the scores is the likeliest reading.
    source, target = next((p for p in pairs if p[1] == class_axis), pairs[0])
    move = f"`jnp.moveaxis({name}, {source}, {target})`"
    if target == class_axis:
        return (
            f"`{name}` have the shape of `{scores}` with the class axis at {source} instead "
            f"of {target}: dense targets share the layout of `{scores}`; move it: {move}."
        )
    return (
        f"`{name}` have the shape of `{scores}` with axis {target} moved to {source}: for "
        f"channels-first `{scores}` pass `class_axis={target}` and move the classes of "
        f"`{name}` there: {move}."
    )


def check_min_rank(name: str, x: jax.Array, min_rank: int, layout: str) -> None:
    """Raises ``ValueError`` if ``x`` has fewer than ``min_rank`` dimensions."""
    if x.ndim < min_rank:
        raise ValueError(
            f"`{name}` must have at least {min_rank} dimensions ({layout}); got shape "
            f"{tuple(x.shape)}."
        )


def class_vector(
    name: str,
    value: Any,
    num_classes: int,
    dtype: Any,
    *,
    rank: int = 1,
    high: float | None = None,
) -> jax.Array:
    """Validates a per-class vector (``class_weights``, ``alpha``) of length ``num_classes``.

    Entries must be finite and non-negative (and at most ``high``). Returns the vector shaped
    ``[1, ..., 1, C]`` with ``rank`` dimensions, ready to multiply a ``[..., C]`` array without
    implicit rank promotion.
    """
    check_real(name, value, low=0.0, high=high, vector=True)
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


def check_elements(
    name: str, ok: jax.Array, values: jax.Array, requirement: str, fix: str = ""
) -> None:
    """In checked mode, requires ``ok`` everywhere, naming the first offending value.

    ``ok`` and ``values`` have the argument's own shape (or its pixels' shape, for a check per
    pixel); the message reads "`name` must <requirement>; got <value> at index <index>.
    <fix>", the index in that layout.
    """
    if not value_checks_enabled():
        return
    first = jnp.argmax(~ok.reshape(-1))
    index = jnp.stack(jnp.unravel_index(first, ok.shape)) if ok.ndim else first
    # checkify formats the message with str.format: literal braces of the fix are escaped.
    fix = f". {fix}".replace("{", "{{").replace("}", "}}") if fix else ""
    check_values(
        jnp.all(ok),
        f"`{name}` must {requirement}; got {{value}} at index {{index}}{fix}",
        value=values.reshape(-1)[first],
        index=index,
    )


# The keys of the warnings already given in this process (see `warn_once`).
_WARNED: set[str] = set()


def warn_once(key: str, condition: jax.Array, message: str) -> None:
    """In checked mode, a ``UserWarning`` when ``condition`` holds as the program runs, once per
    process for each ``key``.

    A warning, not an error, for input that is legal but most likely a mistake. It is decided
    on the values, so it is issued from the running program (``jax.debug.callback``), after
    the call that traced it returns under ``jax.jit``.
    """
    if not value_checks_enabled():
        return

    def warn(holds: Any) -> None:
        if key not in _WARNED and bool(np.any(holds)):
            _WARNED.add(key)
            # Issued from the running program: no frame of the caller's to point at.
            warnings.warn(message, UserWarning, stacklevel=1)

    jax.debug.callback(warn, condition)


def check_values(predicate: jax.Array, message: str, **fmt_args: jax.Array) -> None:
    """Adds a ``checkify`` value check when checked mode is on; a no-op otherwise."""
    if value_checks_enabled():
        checkify.check(predicate, message, **fmt_args)  # pyright: ignore[reportArgumentType]


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


def _throw(error: Any) -> None:
    error.throw()


F = TypeVar("F", bound=Callable[..., Any])


def checked(fn: F) -> F:
    """Wraps a loss or metric so that bad *values* raise instead of propagating silently.

    Shapes, dtypes and options are always checked at trace time. Values are not, because a traced
    function cannot raise: by default a label outside ``[0, C)`` (and not ``ignore_index``)
    makes the loss NaN, non-finite logits propagate NaN, and probabilities outside ``[0, 1]`` are
    used as given. ``checked(fn)`` traces ``fn`` with value checks switched on, through
    ``jax.experimental.checkify``: labels in range or equal to ``ignore_index``, finite logits,
    probabilities and dense targets in ``[0, 1]``, dense targets of ``activation="softmax"``
    summing to 1 over the class axis (a wrong ``class_axis`` breaks that: channels-first one-hot
    targets read along the width), non-negative mask weights (on the pixels that count: masked
    and ignored pixels are inert whatever they hold), and the range of options passed as traced
    arrays (a smoothing or γ schedule). The error names the argument and the first offending
    value and its index. Softmax logits that look like probabilities (in ``[0, 1]`` and summing
    to 1 at every pixel that counts) give a ``UserWarning``, once per process, when the
    program runs.

    It composes with ``jax.jit`` in either order and inside ``nnx.jit``, ``jax.vmap`` and
    ``jax.grad``: called eagerly (``checked(jax.jit(fn))``) it raises
    ``checkify.JaxRuntimeError`` before returning; traced from outside
    (``jax.jit(checked(fn))``, a train step) the check runs inside the compiled program and the
    call raises ``JaxRuntimeError`` when it executes. Checked and plain calls never share a
    compiled trace.

    Args:
      fn: any function of this library, or a function that calls them.

    Returns:
      A function with the same signature that raises on bad values.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> logits = jnp.zeros((1, 2, 2, 3))
      >>> labels = jnp.array([[[0, 1], [2, 7]]])
      >>> jsl.checked(jsl.dice_loss)(logits, labels)
      Traceback (most recent call last):
        ...
      jax._src.checkify.JaxRuntimeError: `labels` must lie in [0, 3) ... got 7 at index [0 1 1] ...
      >>> step = jax.jit(jsl.checked(jsl.dice_loss))    # compiles once, checks every call
      >>> print(f"{step(logits, labels % 3):.4f}")
      0.4872
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        def traced(*args: Any) -> Any:
            with _value_checks():
                return fn(*args, **kwargs)

        error, out = checkify.checkify(traced, errors=checkify.user_checks)(*args)
        if any(isinstance(leaf, Tracer) for leaf in jax.tree.leaves(error)):
            # Traced from outside (jax.jit, nnx.jit, vmap, grad of `checked(fn)`): the error is
            # only known when the program runs, so it is raised from there.
            jax.debug.callback(_throw, error)
        else:
            error.throw()
        return out

    return wrapper  # type: ignore[return-value]


def check_num_classes(num_classes: Any, *, none_allowed: bool = False) -> int:
    """Returns a number of classes: a Python int of at least 1, a static shape.

    ``none_allowed`` only words the error for an argument that may also be ``None`` (the
    caller reads ``None`` itself before calling).
    """
    if not isinstance(num_classes, numbers.Integral) or isinstance(num_classes, bool):
        expected = "a Python int (a static shape)" + (" or None" if none_allowed else "")
        raise TypeError(
            f"`num_classes` must be {expected}; got {type(num_classes).__name__} {num_classes!r}."
        )
    if num_classes < 1:
        raise ValueError(f"`num_classes` must be at least 1; got {num_classes}.")
    return int(num_classes)
