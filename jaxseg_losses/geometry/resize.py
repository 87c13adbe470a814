r"""Nearest-neighbour resizing on static shapes: PyTorch's ``nearest-exact`` as gathers.

Output index :math:`j` of an axis of :math:`m` pixels reads input index
:math:`\min(\lfloor (j + \tfrac12)\, n / m \rfloor, n - 1)` of :math:`n`. The indices are static
NumPy arrays, so the resize jits for any dtype (labels, masks, logits) and a factor-2
downsampling reads the odd pixels, as MONAI's does.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def nearest_exact_indices(size_in: int, size_out: int) -> np.ndarray:
    """Source index of each output index of a nearest-neighbour resize (``nearest-exact``).

    PyTorch's pixel-centre rule: :math:`\\min(\\lfloor (j + 1/2)\\, n / m \\rfloor, n - 1)`.
    """
    scale = size_in / size_out
    index = np.floor((np.arange(size_out) + 0.5) * scale).astype(np.int64)
    return np.minimum(index, size_in - 1)


def resize_nearest(x: jax.Array, spatial_shape: tuple[int, ...], first_axis: int) -> jax.Array:
    """``x`` with the spatial axes ``first_axis, ...`` resized to ``spatial_shape`` by
    ``nearest-exact`` gathers (static indices, any dtype)."""
    for offset, size_out in enumerate(spatial_shape):
        axis = first_axis + offset
        if x.shape[axis] != size_out:
            x = jnp.take(x, nearest_exact_indices(x.shape[axis], size_out), axis=axis)
    return x
