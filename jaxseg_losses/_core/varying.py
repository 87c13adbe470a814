"""Loop carries inside ``shard_map``: constants made to vary over the mapped axes of the data.

Inside ``jax.shard_map`` (with its default ``check_vma=True``) every value carries the set of
mapped axes it varies over, and a loop's carry must vary over the same axes before and after
its body. A carry started from constants (zeros, counters, bisection bounds) varies over none,
while the body mixes in the sharded data, so the loop is refused. :func:`varying_like` marks
such a start as varying wherever the data does; outside a mapped function it changes nothing.
"""

from typing import Any

import jax


def varying_like(tree: Any, *references: Any) -> Any:
    """``tree`` with every leaf varying over each mapped axis that a leaf of ``references``
    varies over (``jax.lax.pcast(..., to="varying")``); unchanged where nothing varies.

    Examples:
      >>> import jax.numpy as jnp
      >>> varying_like(jnp.int32(0), jnp.ones(3))   # not inside shard_map: as it is
      Array(0, dtype=int32)
    """
    axes: set[Any] = set()
    for reference in jax.tree.leaves(references):
        axes |= _varying_axes(reference)
    if not axes:
        return tree

    def cast(leaf: Any) -> Any:
        missing = tuple(axes - _varying_axes(leaf))
        if not missing:
            return leaf
        if hasattr(jax.lax, "pcast"):
            return jax.lax.pcast(leaf, missing, to="varying")
        return jax.lax.pvary(leaf, missing)  # type: ignore[attr-defined]  # before jax 0.8

    return jax.tree.map(cast, tree)


def _varying_axes(x: Any) -> set[Any]:
    """The mapped axes ``x`` varies over (empty outside ``shard_map``)."""
    aval = jax.typeof(x)
    axis_type = getattr(aval, "manual_axis_type", None)
    if axis_type is not None:
        return set(axis_type.varying)
    return set(getattr(aval, "vma", ()))  # its name before jax 0.10
