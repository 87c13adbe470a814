"""Image-geometry primitives that the losses and the metrics share.

* :mod:`~jaxseg_losses.geometry.distance`: exact distance transforms on static shapes
  (Euclidean, taxicab, chessboard), Kervadec's signed distance map and MONAI's unsigned distance
  field of masks;
* :mod:`~jaxseg_losses.geometry.morphology`: soft erosion, dilation and skeleton (clDice), the
  hard surface of a mask (the surface metrics);
* :mod:`~jaxseg_losses.geometry.components`: connected components of boolean masks, numbered
  as ``scipy.ndimage.label`` numbers them (the instance and topology metrics);
* :mod:`~jaxseg_losses.geometry.skeleton`: scikit-image's 2-D skeleton, exactly (the clDice
  metric);
* :mod:`~jaxseg_losses.geometry.surfels`: surface elements on the voxel corners with their
  marching-cubes areas (DeepMind's surface-distance; the lesion-wise HD95);
* :mod:`~jaxseg_losses.geometry.resize`: nearest-exact resizing by static gathers (deep
  supervision).

Nothing here knows about losses or metrics; both build on it.
"""

from jaxseg_losses.geometry.components import connected_components
from jaxseg_losses.geometry.distance import signed_distance_map, unsigned_distance_field
from jaxseg_losses.geometry.morphology import soft_dilate, soft_erode, soft_skeleton, surface
from jaxseg_losses.geometry.resize import nearest_exact_indices, resize_nearest
from jaxseg_losses.geometry.skeleton import skeletonize
from jaxseg_losses.geometry.surfels import surface_elements

__all__ = [
    "connected_components",
    "nearest_exact_indices",
    "resize_nearest",
    "signed_distance_map",
    "skeletonize",
    "soft_dilate",
    "soft_erode",
    "soft_skeleton",
    "surface",
    "surface_elements",
    "unsigned_distance_field",
]
