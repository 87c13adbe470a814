r"""Morphology on static shapes: soft (differentiable) erosion, dilation and skeleton, and the
hard surface of a mask.

The soft operations are Shit et al.'s min/max pools over ``[B, *spatial, C]`` soft masks, the
building blocks of clDice; :func:`surface` is ``M & ~erode(M)`` with the cross of connectivity 1,
the surface elements of the surface metrics.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg_losses._core.docs import documented


def _pool(x: jax.Array, op: Any, init: float, window: tuple[int, ...]) -> jax.Array:
    """Stride-1 min or max pooling of ``[B, *spatial, C]`` over the spatial axes, padded with
    the operation's identity (borders see only the image, as PyTorch's pools). The identity is
    a NumPy scalar, so that ``lax.reduce_window`` recognises the monoid and differentiates it."""
    full = (1, *window, 1)
    padding = ((0, 0), *(((w - 1) // 2, (w - 1) // 2) for w in window), (0, 0))
    identity = np.array(init, x.dtype)
    return jax.lax.reduce_window(x, identity, op, full, (1,) * x.ndim, padding)


@documented
def soft_erode(x: jax.Array) -> jax.Array:
    r"""Computes the soft erosion of soft masks: a minimum over a cross of 3 elements per axis.

    The minimum of the 3-element minimum pools along each spatial axis, as in clDice; borders
    see only the image. Differentiable (its gradient flows to the minimum of each window).

    Args:
      <soft mask args>

    Returns:
      ``[B, *spatial, C]``: each element's minimum over its cross, in the dtype of ``x``.

    Examples:
      A 3 × 3 square with a horizontal bar through it erodes to the square's centre row:

      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> x = jnp.zeros((1, 5, 5, 1)).at[0, 1:4, 1:4, 0].set(1.0).at[0, 2, :, 0].set(1.0)
      >>> print(jsl.geometry.soft_erode(x)[0, 2, :, 0])
      [0. 1. 1. 1. 0.]
    """
    dims = x.ndim - 2
    pools = [
        _pool(x, jax.lax.min, math.inf, tuple(3 if a == axis else 1 for a in range(dims)))
        for axis in range(dims)
    ]
    out = pools[0]
    for pool in pools[1:]:
        out = jnp.minimum(out, pool)
    return out


@documented
def soft_dilate(x: jax.Array) -> jax.Array:
    r"""Computes the soft dilation of soft masks: a 3×3(×3) maximum pool.

    Args:
      <soft mask args>

    Returns:
      ``[B, *spatial, C]``: the maximum of each element's window, in the dtype of ``x``.

    Examples:
      One element grows into the 3 × 3 block around it:

      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> dot = jnp.zeros((1, 3, 3, 1)).at[0, 1, 1, 0].set(1.0)
      >>> print(jsl.geometry.soft_dilate(dot)[0, ..., 0].min())
      1.0
    """
    return _pool(x, jax.lax.max, -math.inf, (3,) * (x.ndim - 2))


@documented
def soft_skeleton(x: jax.Array, iterations: int) -> jax.Array:
    r"""Computes the soft skeleton of Shit et al. of soft masks in ``[0, 1]``.

    .. math::

       S_0 = \mathrm{relu}(x - \mathrm{open}(x)), \quad x_k = \mathrm{erode}(x_{k-1}), \quad
       \delta_k = \mathrm{relu}(x_k - \mathrm{open}(x_k)), \quad
       S_k = S_{k-1} + \mathrm{relu}(\delta_k - S_{k-1} \delta_k)

    with :math:`\mathrm{open} = \mathrm{dilate} \circ \mathrm{erode}` (:func:`soft_dilate`,
    :func:`soft_erode`): structures thinner than :math:`2k + 1` elements reduce to their
    centre lines.

    Args:
      <soft mask args>
      iterations: :math:`k`, the number of erosions (at least the half-width of the thickest
        structure to skeletonise).

    Returns:
      ``[B, *spatial, C]`` soft skeletons, the same dtype.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> band = jnp.zeros((1, 5, 7, 1)).at[0, 1:4, :, 0].set(1.0)   # 3 rows thick
      >>> print(jsl.geometry.soft_skeleton(band, 3)[0, :, 3, 0])
      [0. 0. 1. 0. 0.]

    References:
      Shit et al., "clDice - a Novel Topology-Preserving Loss Function for Tubular Structure
      Segmentation", CVPR 2021.
    """
    # Tiles of one image and class at a time, each recomputed in the backward pass: reverse
    # mode keeps every pooling window of what it differentiates (about 100 copies), so taking
    # the images in turn, and each image in bands of rows, divides that peak by their number;
    # the smaller working set also runs faster. A band reads ``iterations + 2`` more rows on
    # each side, the skeleton's reach, so its kept rows are exact. lax.map and jax.checkpoint
    # keep forward mode and Hessian-vector products.
    spatial = x.shape[1:-1]
    images = _class_major(x)
    bands = _Bands.of(spatial, iterations)

    def band_skeleton(index: jax.Array) -> jax.Array:
        image, band = index // bands.count, index % bands.count
        read, first = bands.read(images[image], band)
        return jax.lax.dynamic_slice_in_dim(_image_skeleton(read, iterations), first, bands.rows)

    indices = jnp.arange(images.shape[0] * bands.count)
    skeletons = jax.lax.map(jax.checkpoint(band_skeleton), indices)
    skeletons = skeletons.reshape((x.shape[0], x.shape[-1], *spatial))
    return jnp.moveaxis(skeletons, 1, -1)


def skeleton_overlaps(x: jax.Array, y: jax.Array, weights: jax.Array, iterations: int) -> jax.Array:
    r"""The sums of clDice per image and class, without the skeletons as whole arrays.

    .. math::

       \Big(\sum w\, S(x)\, y,\; \sum w\, S(x),\; \sum w\, S(y)\, x,\; \sum w\, S(y)\Big)

    over the pixels of each image and class, :math:`S` the soft skeleton of
    :func:`soft_skeleton` with ``iterations`` erosions. The skeletons are taken band by band as
    in :func:`soft_skeleton`, and each band's share of the sums is added at once, so neither
    skeleton exists whole: besides the inputs, their class-major copies (contiguous bands to
    read) and the gradient, reverse mode keeps one band's pooling windows, and recomputes the
    skeleton of ``y`` with the band's.

    Args:
      x, y: ``[B, *spatial, C]`` soft masks (1, 2 or 3 spatial axes).
      weights: ``[B, *spatial]`` pixel weights.
      iterations: the erosions of the soft skeleton.

    Returns:
      ``[B, C, 4]`` float sums, in the order above.
    """
    batch, *spatial, classes = x.shape
    bands = _Bands.of(tuple(spatial), iterations)
    row = jnp.arange(bands.window).reshape((bands.window,) + (1,) * (len(spatial) - 1))
    x_major, y_major = _class_major(x), _class_major(y)

    def band_sums(index: jax.Array) -> jax.Array:
        pair, band = index // bands.count, index % bands.count
        (x_band, first), (y_band, _) = (
            bands.read(x_major[pair], band),
            bands.read(y_major[pair], band),
        )
        w, _ = bands.read(weights[pair // classes], band)
        # The margin is read for the skeleton's reach; only the band's own rows are summed.
        w = jnp.where((row >= first) & (row < first + bands.rows), w, jnp.zeros((), w.dtype))
        s_x, s_y = _image_skeleton(x_band, iterations), _image_skeleton(y_band, iterations)
        parts = (w * s_x * y_band, w * s_x, w * s_y * x_band, w * s_y)
        return jnp.stack([jnp.sum(part) for part in parts])

    indices = jnp.arange(batch * classes * bands.count)
    sums = jax.lax.map(jax.checkpoint(band_sums), indices)
    return sums.reshape((batch, classes, bands.count, 4)).sum(axis=2)


def _class_major(x: jax.Array) -> jax.Array:
    """``[B, *spatial, C] -> [B·C, *spatial]``: one image per sample and class, contiguous."""
    return jnp.moveaxis(x, -1, 1).reshape((-1, *x.shape[1:-1]))


class _Bands(NamedTuple):
    """An image's bands of rows (its first axis), each read with the skeleton's reach around it.

    A band reads ``iterations + 2`` more rows on each side, the reach of the soft skeleton, so
    the skeleton of its own rows is exact; the read is clamped to the image, so a band at an
    edge sees the edge as the whole image does.
    """

    rows: int  # the band's own rows
    count: int  # bands per image
    window: int  # rows read per band
    reach: int  # rows of margin on each side
    height: int  # rows of the image

    @classmethod
    def of(cls, spatial: tuple[int, ...], iterations: int) -> _Bands:
        rows, reach = _band_rows(spatial, iterations), iterations + 2
        window = min(rows + 2 * reach, spatial[0])
        return cls(rows, spatial[0] // rows, window, reach, spatial[0])

    def read(self, image: jax.Array, band: jax.Array) -> tuple[jax.Array, jax.Array]:
        """The ``window`` rows of ``image`` ``[*spatial]`` read for ``band``, and where the
        band's own rows start in them."""
        start = jnp.clip(band * self.rows - self.reach, 0, self.height - self.window)
        return jax.lax.dynamic_slice_in_dim(image, start, self.window), band * self.rows - start


# Elements of a band beyond which splitting an image further saves memory but not time.
_BAND_ELEMENTS = 2**15


def _band_rows(spatial: tuple[int, ...], iterations: int) -> int:
    """Rows (first spatial axis) of a band: the largest divisor of the row count within about
    ``_BAND_ELEMENTS`` elements and 5 reaches, and at least one reach (else the whole image)."""
    height, halo = spatial[0], iterations + 2
    row_elements = math.prod(spatial[1:])
    limit = max(5 * halo, _BAND_ELEMENTS // row_elements)
    rows = max(d for d in range(1, height + 1) if height % d == 0 and d <= limit)
    if rows < halo or rows + 2 * halo > height:
        return height
    return rows


def _image_skeleton(image: jax.Array, iterations: int) -> jax.Array:
    """The soft skeleton of one soft mask ``[*spatial]`` (see :func:`soft_skeleton`)."""
    x = image[None, ..., None]
    skeleton = jax.nn.relu(x - soft_dilate(soft_erode(x)))
    for _ in range(iterations):
        x = soft_erode(x)
        delta = jax.nn.relu(x - soft_dilate(soft_erode(x)))
        skeleton = skeleton + jax.nn.relu(delta - skeleton * delta)
    return skeleton[0, ..., 0]


def surface(masks: jax.Array, dims: int) -> jax.Array:
    r"""Computes the surface of boolean masks: ``M & ~erode(M)``.

    The erosion uses the cross of connectivity 1 over the last ``dims`` axes, with a background
    border: an element is on the surface when it is in the mask and one of its ``2·dims`` axis
    neighbours is not (or lies outside the image). These are the surface elements of the surface
    metrics (MONAI's ``get_mask_edges`` without cropping).

    Args:
      masks: ``[..., *spatial]`` bool masks; every leading axis is a batch axis.
      dims: the number of spatial axes, the last ``dims`` axes of ``masks``.

    Returns:
      Bool, the shape of ``masks``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> square = jnp.zeros((4, 4), bool).at[0:3, 0:3].set(True)
      >>> print(jsl.geometry.surface(square, 2).astype(int))
      [[1 1 1 0]
       [1 0 1 0]
       [1 1 1 0]
       [0 0 0 0]]
    """
    interior = masks
    for axis in range(masks.ndim - dims, masks.ndim):
        widths = [(0, 0)] * masks.ndim
        widths[axis] = (1, 1)
        padded = jnp.pad(masks, widths, constant_values=False)
        n = masks.shape[axis]
        before = jax.lax.slice_in_dim(padded, 0, n, axis=axis)
        after = jax.lax.slice_in_dim(padded, 2, n + 2, axis=axis)
        interior = interior & before & after
    return masks & ~interior
