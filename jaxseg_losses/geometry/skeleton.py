r"""Hard skeletons of 2-D boolean masks: scikit-image's thinning, exactly, on static shapes.

A skeleton is a one-pixel-wide line through the middle of each object that follows its shape
(a ring thins to a closed curve, a band to a line). :func:`skeletonize` computes the same
skeleton as ``skimage.morphology.skeletonize`` of a 2-D image, bit for bit: the two-subiteration
parallel thinning of Zhang & Suen (1984) with scikit-image's decision table.

**The algorithm.** Every foreground pixel reads its 8 neighbours as one byte,

.. code-block:: text

   NW N  NE        1   2   4
   W  .  E    ->  128  .   8      code = sum of the weights of the foreground neighbours
   SW S  SE       64  32  16

(pixels beyond the image are background). A sweep is two subiterations; each removes, all at
once, every foreground pixel whose code is in that subiteration's set of removable codes, read
from the image as it was when the subiteration began. Sweeps repeat until one removes nothing.
The sets are Zhang & Suen's conditions (2 to 6 foreground neighbours, one background-to-
foreground transition around the pixel, and N·E·S = E·S·W = 0 in the first subiteration,
N·E·W = N·S·W = 0 in the second) as scikit-image amends them in 25 of the 256 codes (so that,
e.g., a 2 × 2 square keeps its top row instead of vanishing).

Each subiteration is a few shifted copies of the image, one gather from a 256-entry table and a
``where``; the sweeps run in a ``lax.while_loop`` until nothing changes, about half the width
of the thickest object. Every image of the batch is thinned at once.

Only 2-D: scikit-image's 3-D skeleton (Lee, Kashyap & Chu 1994) rechecks and removes its
candidate points one at a time in raster order, and its result depends on that order; it is not
provided here.

References:
  Zhang & Suen, "A Fast Parallel Algorithm for Thinning Digital Patterns", Communications of
  the ACM 27(3), 1984.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

ArrayLike = jax.typing.ArrayLike

# The weight of each neighbour in a pixel's code, by its (row, column) offset.
_NEIGHBOUR_WEIGHTS = (
    ((-1, -1), 1),
    ((-1, 0), 2),
    ((-1, 1), 4),
    ((0, 1), 8),
    ((1, 1), 16),
    ((1, 0), 32),
    ((1, -1), 64),
    ((0, -1), 128),
)
# The codes (see the module) whose pixel each subiteration removes: scikit-image's table, the
# codes it marks 1 or 3 (first subiteration) and 2 or 3 (second).
_REMOVABLE_FIRST = (
    3, 6, 7, 10, 11, 12, 14, 15, 28, 30, 31, 40, 60, 112, 120, 124, 130, 131,
    134, 135, 143, 159, 160, 161, 193, 194, 195, 198, 199, 207, 225, 227, 231, 240, 241, 243,
)  # fmt: skip
_REMOVABLE_SECOND = (
    7, 10, 15, 24, 26, 28, 30, 31, 40, 56, 60, 62, 63, 96, 104, 108, 112, 120,
    124, 126, 130, 135, 160, 176, 192, 193, 195, 199, 224, 225, 240, 241, 248, 249, 252,
)  # fmt: skip


def _removal_table() -> np.ndarray:
    """``[2, 256]`` bool: whether subiteration ``s`` removes a pixel of code ``c``."""
    table = np.zeros((2, 256), bool)
    table[0, list(_REMOVABLE_FIRST)] = True
    table[1, list(_REMOVABLE_SECOND)] = True
    return table


_REMOVAL = _removal_table()


def _neighbour_codes(image: jax.Array) -> jax.Array:
    """int32 ``[..., H, W]``: each pixel's code, the weights of its foreground neighbours."""
    height, width = image.shape[-2:]
    widths = [(0, 0)] * (image.ndim - 2) + [(1, 1), (1, 1)]
    padded = jnp.pad(image, widths).astype(jnp.int32)
    code = jnp.zeros(image.shape, jnp.int32)
    for (row, col), weight in _NEIGHBOUR_WEIGHTS:
        window = padded[..., 1 + row : 1 + row + height, 1 + col : 1 + col + width]
        code = code + weight * window
    return code


def _subiteration(image: jax.Array, removable: jax.Array) -> jax.Array:
    """The image without its foreground pixels whose code ``removable`` (``[256]``) marks."""
    return image & ~removable[_neighbour_codes(image)]


def _thin(image: jax.Array) -> jax.Array:
    """The skeletons of boolean ``[..., H, W]`` images, every leading axis a batch axis."""
    table = jnp.asarray(_REMOVAL)

    def changed(state: tuple[jax.Array, jax.Array]) -> jax.Array:
        return state[1]

    def sweep(state: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        before, _ = state
        after = _subiteration(_subiteration(before, table[0]), table[1])
        return after, jnp.any(after != before)

    skeleton, _ = jax.lax.while_loop(changed, sweep, (image, jnp.any(image)))
    return skeleton


def skeletonize(mask: ArrayLike) -> jax.Array:
    r"""Computes the skeletons of 2-D boolean masks, as ``skimage.morphology.skeletonize``.

    Thins every object of each mask to a one-pixel-wide centre line that follows its shape: a
    band becomes a line, a disk a point or a short segment, a ring a closed curve. The result
    is scikit-image's 2-D skeleton exactly (its Zhang–Suen thinning; see the module), computed
    in JAX for a whole batch at once under ``jax.jit``.
    Pixels beyond the image are background, so an object touching the border is thinned like
    one cut there.

    .. math::

       S = \mathrm{thin}^\infty(M), \qquad
       \mathrm{thin}(X) = T_2(T_1(X)), \quad
       T_s(X) = X \setminus \{x \in X : \mathrm{code}_X(x) \in R_s\}

    with :math:`\mathrm{code}_X(x)` the byte of :math:`x`'s 8 neighbours in :math:`X` and
    :math:`R_1, R_2` the removable codes of the two subiterations, repeated until nothing
    changes; :math:`S \subseteq M`.

    Args:
      mask: boolean ``[B, H, W]``; ``True`` pixels are foreground. Only 2-D masks: a 1-D mask
        has no meaningful skeleton, and scikit-image's 3-D skeleton (Lee et al. 1994) is a
        sequential algorithm that is not provided.

    Returns:
      Boolean ``[B, H, W]``, ``True`` on the skeleton.

    Examples:
      A square with a hole in its middle thins to a closed loop around the hole:

      >>> import jax.numpy as jnp
      >>> from jaxseg_losses.geometry.skeleton import skeletonize
      >>> square = jnp.ones((1, 7, 7), bool).at[0, 3, 3].set(False)
      >>> print(skeletonize(square)[0].astype(int))
      [[0 0 0 0 0 0 0]
       [0 0 0 0 0 0 0]
       [0 0 0 1 0 0 0]
       [0 0 1 0 1 0 0]
       [0 0 0 1 0 0 0]
       [0 0 0 0 0 0 0]
       [0 0 0 0 0 0 0]]

    References:
      Zhang & Suen, "A Fast Parallel Algorithm for Thinning Digital Patterns", Communications
      of the ACM 27(3), 1984.
    """
    array = jnp.asarray(mask)
    if array.dtype != jnp.bool_:
        raise TypeError(
            f"`mask` must be a boolean mask [B, H, W]; got dtype {array.dtype}. Pass `mask != 0` "
            "for the nonzero pixels, or `labels == c` for one class."
        )
    if array.ndim != 3:
        raise ValueError(
            f"`mask` must be a batch of 2-D masks [B, H, W]; got shape {tuple(array.shape)} "
            f"({array.ndim - 1} spatial axes). skeletonize is 2-D only: a 1-D mask has no "
            "meaningful skeleton, and scikit-image's 3-D skeleton (Lee et al. 1994) removes "
            "points sequentially and is not provided. Add a batch axis with `mask[None]`."
        )
    return _thin(array)


__all__ = ["skeletonize"]
