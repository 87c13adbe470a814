r"""Topology metrics: the centreline Dice (clDice) and the Betti numbers of masks.

Overlap scores count pixels, so a vessel cut in two or a spurious bridge between two vessels
costs almost nothing; topology metrics see it.

* :func:`cldice` compares each mask with the *skeleton* (centre line) of the other (Shit et al.
  2021): how much of the predicted centre line lies in the true mask, and how much of the true
  centre line in the predicted mask. Skeletons are scikit-image's 2-D skeletons exactly
  (:func:`~jaxseg_losses.geometry.skeleton.skeletonize`), so clDice is 2-D only.
* :func:`betti_numbers` counts the components :math:`\beta_0`, the holes (2-D) or tunnels (3-D)
  :math:`\beta_1` and the cavities :math:`\beta_2` (3-D) of each mask, exactly;
  :func:`betti_errors` compares those of a prediction with the ground truth's, per image and
  class.

**Digital topology.** A mask's foreground is connected with ``connectivity`` (scikit-image's
count: 1 joins faces, 4 neighbours in 2-D and 6 in 3-D; the full connectivity ``D`` adds the
edges and corners, 8 in 2-D and 26 in 3-D) and its background with the complementary one (8 with
4, 4 with 8; 26 with 6, 6 with 26), the pairs for which the Euler characteristic is local.
Pixels beyond the image are background. Then

.. math::

   \chi = \beta_0 - \beta_1 + \beta_2,

with :math:`\beta_0` the foreground components (:func:`connected_components`), :math:`\beta_2`
(3-D) the background components that do not reach beyond the image (cavities), :math:`\beta_1`
the holes in 2-D (background components that do not reach beyond the image) and the tunnels in
3-D, and :math:`\chi` the Euler characteristic, counted exactly by local configurations as
``skimage.measure.euler_number`` does: the alternating sum of the numbers of cells of a cubical
complex of the mask (see :func:`betti_numbers`).

**Data contract** (as the surface metrics): ``predictions`` and ``labels`` are integer label maps
``[B, *spatial]`` (with ``num_classes``) or boolean one-hot masks ``[B, *spatial, C]``
(``class_axis`` moves C), decided by dtype; each metric returns one value per image and class,
``C - 1`` classes without the background (the default). An excluded pixel (``mask`` False/0
there, or its label ``ignore_index``) is in no mask: it is background for every class, like a
pixel beyond the image for the skeletons (pixels beyond the image are background there too).

References:
  Shit et al., "clDice - a Novel Topology-Preserving Loss Function for Tubular Structure
  Segmentation", CVPR 2021.

  Ohser, Nagel & Schladitz, "The Euler Number of Discretized Sets - On the Choice of Adjacency
  in Homogeneous Lattices", Morphology of Condensed Matter, Lecture Notes in Physics 600, 2002.
"""

from __future__ import annotations

import itertools
from typing import Any

import jax
import jax.numpy as jnp

from jaxseg_losses._core.engine import divide
from jaxseg_losses.geometry.components import (
    check_connectivity,
    check_masks,
    connected_components,
)
from jaxseg_losses.geometry.skeleton import skeletonize
from jaxseg_losses.metrics._masks import class_masks

ArrayLike = jax.typing.ArrayLike

# ----------------------------------------------------------------------------------------------
# Betti numbers.


def _check_topology_connectivity(connectivity: Any, dims: int) -> int:
    """``connectivity`` (``None``: full) as an int with a complementary background adjacency."""
    if connectivity is None:
        return dims
    value = check_connectivity(connectivity, dims)
    if dims == 3 and value == 2:
        raise ValueError(
            "`connectivity`=2 (18 neighbours) has no background adjacency for which the Euler "
            "characteristic is a count of local configurations (as in "
            "skimage.measure.euler_number); pass 1 (6 neighbours) or 3 (26 neighbours)."
        )
    return value


def _blocks(padded: jax.Array, axes: tuple[int, ...], full: bool) -> jax.Array:
    """``[N, ...]``: for every position, whether any (``full``) or all of the elements of the
    2 × ... × 2 block spanning the spatial ``axes`` there are foreground."""
    result = None
    for corner in itertools.product((0, 1), repeat=len(axes)):
        index = [slice(None)] * padded.ndim
        for axis, shift in zip(axes, corner, strict=True):
            index[axis + 1] = slice(shift, padded.shape[axis + 1] - 1 + shift)
        block = padded[tuple(index)]
        if result is None:
            result = block
        else:
            result = result | block if full else result & block
    assert result is not None
    return result


def _euler_characteristic(masks: jax.Array, full: bool) -> jax.Array:
    """int32 ``[N]``: the Euler characteristic of each mask ``[N, *spatial]``.

    The alternating sum of the numbers of cells of a cubical complex. Full connectivity: the
    union of the closed pixels, whose cells of dimension ``D - k`` are the 2^k-blocks (along k
    axes) with any foreground element. Connectivity 1: the complex whose vertices are the
    foreground elements, its cells of dimension ``k`` the 2^k-blocks that are all foreground.
    """
    dims = masks.ndim - 1
    padded = jnp.pad(masks, [(0, 0)] + [(1, 1)] * dims)
    total = jnp.zeros(masks.shape[:1], jnp.int32)
    for size in range(dims + 1):
        dimension = dims - size if full else size
        for axes in itertools.combinations(range(dims), size):
            cells = _blocks(padded, axes, full).reshape(masks.shape[0], -1)
            count = jnp.sum(cells, axis=1, dtype=jnp.int32)
            total = total + count if dimension % 2 == 0 else total - count
    return total


def _betti(masks: jax.Array, connectivity: int) -> jax.Array:
    """int32 ``[N, D]``: :math:`\\beta_0 .. \\beta_{D-1}` of each mask ``[N, *spatial]``."""
    dims = masks.ndim - 1
    _, components = connected_components(masks, connectivity=connectivity)
    if dims == 1:
        return components[:, None]
    chi = _euler_characteristic(masks, full=connectivity == dims)
    if dims == 2:
        return jnp.stack([components, components - chi], axis=1)
    # The background with a frame beyond the image: one region outside, plus the cavities.
    background = jnp.pad(~masks, [(0, 0)] + [(1, 1)] * dims, constant_values=True)
    _, regions = connected_components(background, connectivity=dims + 1 - connectivity)
    cavities = regions - 1
    return jnp.stack([components, components + cavities - chi, cavities], axis=1)


def betti_numbers(mask: ArrayLike, *, connectivity: int | None = None) -> jax.Array:
    r"""Computes the Betti numbers of boolean masks: components, holes or tunnels, cavities.

    :math:`\beta_0` counts the connected components of the foreground; in 2-D :math:`\beta_1`
    counts its holes (background regions it encloses); in 3-D :math:`\beta_1` counts its
    tunnels (the handles of a torus) and :math:`\beta_2` its cavities (enclosed background
    regions). A ring has :math:`\beta = (1, 1)` in 2-D; a hollow ball :math:`(1, 0, 1)` and a
    torus :math:`(1, 1, 0)` in 3-D.

    .. math::

       \beta_1 = \beta_0 + \beta_2 - \chi

    with :math:`\beta_0` the components with ``connectivity``, :math:`\beta_2` (3-D) the
    components of the background with the complementary connectivity (26 with 6, 6 with 26)
    that do not reach beyond the image, and :math:`\chi` the Euler characteristic, the
    alternating sum of the numbers of cells of a cubical complex of the mask, counted exactly
    as ``skimage.measure.euler_number(mask, connectivity)``: for the full connectivity the
    union of the closed pixels (:math:`\chi = \#\text{vertices} - \#\text{edges} +
    \#\text{squares} - \#\text{cubes}` that touch the foreground), for connectivity 1 the
    complex of the foreground elements, their adjacent pairs, 2 × 2 squares and 2 × 2 × 2
    cubes. In 2-D, :math:`\beta_1 = \beta_0 - \chi` equals the number of background
    components (complementary connectivity, 8 with 4 and 4 with 8) that do not touch the
    border. Pixels beyond the image are background.

    Args:
      mask: boolean ``[B, *spatial]`` with 1, 2 or 3 spatial axes.
      connectivity: the adjacency of the foreground, scikit-image's count: 1 (4 neighbours in
        2-D, 6 in 3-D) or the number of spatial axes ``D`` (8 in 2-D, 26 in 3-D); ``None``
        (default) is ``D``, as ``skimage.measure.label`` and ``euler_number``. In 3-D, 2 (18
        neighbours) is refused: no background adjacency makes its Euler characteristic local.

    Returns:
      int32 ``[B, D]``: :math:`\beta_0, \dots, \beta_{D-1}` of each mask (:math:`\beta_0`
      alone in 1-D).

    Examples:
      A ring and a dot: two components, one hole; with 4-connectivity the diagonal steps of
      the ring break it into four pieces, and its inside joins the outside through them:

      >>> import jax.numpy as jnp
      >>> from jaxseg_losses.metrics.topology import betti_numbers
      >>> mask = jnp.array([[[0, 1, 0, 0, 0],
      ...                    [1, 0, 1, 0, 1],
      ...                    [0, 1, 0, 0, 0]]], dtype=bool)
      >>> print(betti_numbers(mask))
      [[2 1]]
      >>> print(betti_numbers(mask, connectivity=1))
      [[5 0]]

    References:
      Kong & Rosenfeld, "Digital Topology: Introduction and Survey", Computer Vision,
      Graphics, and Image Processing 48(3), 1989.
    """
    array = check_masks("mask", mask)
    connectivity = _check_topology_connectivity(connectivity, array.ndim - 1)
    return _betti(array, connectivity)


def betti_errors(
    predictions: ArrayLike,
    labels: ArrayLike,
    *,
    num_classes: int | None = None,
    connectivity: int | None = None,
    include_background: bool = False,
    class_axis: int = -1,
    ignore_index: int | None = None,
    mask: ArrayLike | None = None,
) -> jax.Array:
    r"""Computes the Betti number errors: how many components, holes, cavities are wrong.

    For each image and class, the absolute difference between the Betti numbers
    (:func:`betti_numbers`) of the predicted mask and of the true mask: a vessel broken in
    two has a :math:`\beta_0` error of 1, a spurious loop a :math:`\beta_1` error of 1.

    .. math::

       e_k(P, G) = |\beta_k(P) - \beta_k(G)|, \qquad k = 0, \dots, D - 1

    A class absent from both masks has errors 0. Every value is an exact count.

    Args:
      predictions: ``[B, *spatial]`` integer predicted classes, or ``[B, *spatial, C]``
        boolean one-hot masks; 1, 2 or 3 spatial axes.
      labels: the ground truth, in either form (integer classes may also equal
        ``ignore_index``).
      num_classes: the number of classes C; required for integer inputs.
      connectivity: the adjacency of each class's foreground (see :func:`betti_numbers`):
        1 or ``D``; ``None`` (default) is ``D`` (8 in 2-D, 26 in 3-D).
      include_background: ``False`` (default) leaves class 0 out of the result.
      class_axis: the class axis of one-hot masks (``1`` for ``[B, C, *spatial]``).
      ignore_index: a label value whose pixels count nowhere (e.g. 255).
      mask: ``[B, *spatial]`` bool or numeric; a pixel counts where it is True / non-zero.
        An excluded pixel is in no mask: it is background for every class.

    Returns:
      int32 ``[B, C, D]`` (``C - 1`` classes without the background): the errors of
      :math:`\beta_0, \dots, \beta_{D-1}` of each image and class.

    Examples:
      The true class 1 is a ring; the prediction breaks it open and adds a dot:

      >>> import jax.numpy as jnp
      >>> from jaxseg_losses.metrics.topology import betti_errors
      >>> labels = jnp.array([[[0, 1, 1, 1, 0, 0],
      ...                      [0, 1, 0, 1, 0, 0],
      ...                      [0, 1, 1, 1, 0, 0]]])
      >>> predictions = jnp.array([[[0, 1, 1, 1, 0, 0],
      ...                           [0, 1, 0, 0, 0, 1],
      ...                           [0, 1, 1, 1, 0, 0]]])
      >>> print(betti_errors(predictions, labels, num_classes=2))
      [[[1 1]]]

    References:
      Hu et al., "Topology-Preserving Deep Image Segmentation", NeurIPS 2019.
    """
    masks = class_masks(
        predictions,
        labels,
        num_classes=num_classes,
        class_axis=class_axis,
        include_background=include_background,
        ignore_index=ignore_index,
        mask=mask,
    )
    batch, classes, *spatial = masks.predicted.shape
    connectivity = _check_topology_connectivity(connectivity, len(spatial))
    both = jnp.concatenate([masks.predicted, masks.truth]).reshape(-1, *spatial)
    betti = _betti(both, connectivity).reshape(2, batch, classes, len(spatial))
    return jnp.abs(betti[0] - betti[1])


# ----------------------------------------------------------------------------------------------
# clDice.


def cldice(
    predictions: ArrayLike,
    labels: ArrayLike,
    *,
    num_classes: int | None = None,
    include_background: bool = False,
    class_axis: int = -1,
    ignore_index: int | None = None,
    mask: ArrayLike | None = None,
) -> jax.Array:
    r"""Computes the centreline Dice (clDice) of 2-D masks per image and class.

    The harmonic mean of the topology precision, the fraction of the predicted skeleton (centre
    line) that lies in the true mask, and the topology sensitivity, the fraction of the true
    skeleton that lies in the predicted mask. A prediction that breaks a thin vessel loses the
    true centre line across the gap, and one that bridges two vessels puts its centre line
    outside the truth, however few pixels either costs.

    .. math::

       T_{prec} = \frac{|S_P \cap G|}{|S_P|}, \qquad
       T_{sens} = \frac{|S_G \cap P|}{|S_G|}, \qquad
       \mathrm{clDice} = \frac{2\, T_{prec}\, T_{sens}}{T_{prec} + T_{sens}}

    with :math:`P, G` the predicted and true masks of the class and :math:`S_P, S_G` their
    skeletons by :func:`~jaxseg_losses.geometry.skeleton.skeletonize` (scikit-image's 2-D
    skeleton, exactly).

    Empty cases: NaN when the class is in neither mask; 0 when it is in only one (a missed or
    a hallucinated structure), and 0 when both skeletons exist and each misses the other mask
    entirely (:math:`T_{prec} = T_{sens} = 0`, the limit of the harmonic mean). The clDice
    authors' ``clDice`` and Metrics Reloaded's ``centreline_dsc`` divide plainly and return NaN
    in the last two cases, which leaves a missed structure out of every mean instead of scoring
    it 0, as Dice does.

    Args:
      predictions: ``[B, H, W]`` integer predicted classes, or ``[B, H, W, C]`` boolean
        one-hot masks.
      labels: the ground truth, in either form (integer classes may also equal
        ``ignore_index``).
      num_classes: the number of classes C; required for integer inputs.
      include_background: ``False`` (default) leaves class 0 out of the result.
      class_axis: the class axis of one-hot masks (``1`` for ``[B, C, H, W]``).
      ignore_index: a label value whose pixels count nowhere (e.g. 255).
      mask: ``[B, H, W]`` bool or numeric; a pixel counts where it is True / non-zero. An
        excluded pixel is in no mask: background for every class and for the skeletons.

    Returns:
      float32 ``[B, C]`` (``C - 1`` classes without the background), in ``[0, 1]`` or NaN.

    Examples:
      A vessel (class 1) that the prediction breaks: 7 of the 8 pixels of the true centre line
      lie in the prediction (one falls in the gap), and the predicted centre line lies inside
      the truth, so :math:`T_{sens} = 7/8`, :math:`T_{prec} = 1`:

      >>> import jax.numpy as jnp
      >>> from jaxseg_losses.metrics.topology import cldice
      >>> labels = jnp.zeros((1, 5, 9), jnp.int32).at[0, 1:4, :].set(1)
      >>> predictions = labels.at[0, :, 4].set(0)
      >>> print(cldice(predictions, labels, num_classes=2))
      [[0.93333334]]

    References:
      Shit et al., "clDice - a Novel Topology-Preserving Loss Function for Tubular Structure
      Segmentation", CVPR 2021.

      Maier-Hein et al., "Metrics Reloaded: Recommendations for Image Analysis Validation",
      Nature Methods 21, 2024.
    """
    masks = class_masks(
        predictions,
        labels,
        num_classes=num_classes,
        class_axis=class_axis,
        include_background=include_background,
        ignore_index=ignore_index,
        mask=mask,
    )
    batch, classes, *spatial = masks.predicted.shape
    if len(spatial) != 2:
        raise ValueError(
            f"cldice takes 2-D images ([B, H, W] classes or [B, H, W, C] masks); got "
            f"{len(spatial)} spatial axes. Its skeletons are scikit-image's 2-D skeletons; the "
            "3-D skeleton (Lee et al. 1994) is a sequential algorithm that is not provided."
        )
    both = jnp.concatenate([masks.predicted, masks.truth]).reshape(-1, *spatial)
    skeletons = skeletonize(both).reshape(2, batch, classes, *spatial)

    def count(x: jax.Array) -> jax.Array:
        return jnp.sum(x.reshape(batch, classes, -1), axis=-1, dtype=jnp.int32)

    def ratio(numerator: jax.Array, denominator: jax.Array) -> jax.Array:
        return divide(numerator.astype(jnp.float32), denominator.astype(jnp.float32), empty=jnp.nan)

    predicted_skeleton, true_skeleton = count(skeletons[0]), count(skeletons[1])
    precision = ratio(count(skeletons[0] & masks.truth), predicted_skeleton)
    sensitivity = ratio(count(skeletons[1] & masks.predicted), true_skeleton)
    value = divide(2.0 * precision * sensitivity, precision + sensitivity, empty=0.0)
    one_empty = (predicted_skeleton == 0) != (true_skeleton == 0)
    return jnp.where(one_empty, jnp.float32(0.0), value)


__all__ = ["betti_errors", "betti_numbers", "cldice"]
