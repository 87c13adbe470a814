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
    r"""Computes the source index of each output index of a nearest-exact resize.

    PyTorch's pixel-centre rule (``interpolate(mode="nearest-exact")``): output index :math:`j`
    of :math:`m` reads input index :math:`\min(\lfloor (j + 1/2)\, n / m \rfloor, n - 1)` of
    :math:`n`.

    Args:
      size_in: :math:`n`, the input length.
      size_out: :math:`m`, the output length.

    Returns:
      ``[size_out]`` int64 NumPy indices (static, so a gather with them jits).

    Examples:
      >>> import jaxseg_losses as jsl
      >>> jsl.geometry.nearest_exact_indices(8, 4).tolist()
      [1, 3, 5, 7]
    """
    scale = size_in / size_out
    index = np.floor((np.arange(size_out) + 0.5) * scale).astype(np.int64)
    return np.minimum(index, size_in - 1)


def resize_nearest(x: jax.Array, spatial_shape: tuple[int, ...], first_axis: int) -> jax.Array:
    r"""Resizes spatial axes by nearest-exact gathers (static indices, any dtype).

    Args:
      x: an array whose axes ``first_axis, first_axis + 1, ...`` are spatial.
      spatial_shape: the output sizes of those axes.
      first_axis: the first spatial axis of ``x``.

    Returns:
      ``x`` with its spatial axes resized, the same dtype: labels stay labels, masks stay masks.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> labels = jnp.arange(16).reshape(1, 4, 4)
      >>> print(jsl.geometry.resize_nearest(labels, (2, 2), 1))
      [[[ 5  7]
        [13 15]]]
    """
    for offset, size_out in enumerate(spatial_shape):
        axis = first_axis + offset
        if x.shape[axis] != size_out:
            x = jnp.take(x, nearest_exact_indices(x.shape[axis], size_out), axis=axis)
    return x
