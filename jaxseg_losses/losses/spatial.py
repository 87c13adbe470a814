r"""Losses that read the shape of the segmentation: boundary, Hausdorff and clDice losses.

The region and pixel-wise losses are sums over pixels of functions of each pixel alone. The
losses here weigh each pixel by where it lies in the image: its distance to the boundary of the
ground truth (:func:`boundary_loss`), to the boundaries of both prediction and ground truth
(:func:`hausdorff_dt_loss`), or whether it lies on a soft skeleton (:func:`cldice_loss`). Their
statistics are still sums over the pixels of each sample, so they add across samples, devices
and micro-batches (``aggregate="batch"``, ``axis_name``, ``accumulate.value_and_grad``): only
the maps they are weighted by are computed per sample, from that sample's own pixels.

Geometry of masked and ignored pixels: the distance maps and skeletons are computed on the
sample's full grid, where a pixel of weight 0 (masked or ignored) belongs to no class, neither
in the ground truth nor in the prediction. So an excluded pixel is inert whatever its logits and
label, but a mask is not the same as cropping the image: excluded pixels still lie between the
others (distances are measured across them). The maps and skeleton weights of the distance
losses are under ``stop_gradient``; the skeletons of :func:`cldice_loss` are differentiated.

Data contract: ``logits`` ``[B, *spatial, C]`` with 1, 2 or 3 spatial axes (``class_axis``
moves C), ``labels`` integer ``[B, *spatial]`` or dense float ``[B, *spatial, C]``, ``mask``
``[B, *spatial]``; float32 results for bf16/f16/f32 logits.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.core import Tracer
from jax.typing import ArrayLike

from jaxseg_losses._core import checks as _checks
from jaxseg_losses._core.classes import kept_classes, select_classes
from jaxseg_losses._core.define import define_loss
from jaxseg_losses._core.definition import LossDefinition, divide
from jaxseg_losses._core.inputs import Inputs
from jaxseg_losses.geometry.distance import signed_distance_map, unsigned_distance_field
from jaxseg_losses.geometry.morphology import skeleton_overlaps, soft_skeleton

# ----------------------------------------------------------------------------------------------
# Shared pieces.


def _check_spacing(spacing: Any) -> None:
    """``None``, or a positive scalar or ``[D]`` vector (checked again once D is known)."""
    if spacing is None:
        return
    _checks.check_real("spacing", spacing, low=0.0, vector=True)
    concrete = None if isinstance(spacing, Tracer) else np.asarray(spacing)
    if concrete is None:
        # check_real required >= 0 (and finite) of a traced value; a spacing must be > 0 too.
        _checks.check_values(jnp.all(jnp.asarray(spacing) > 0), "`spacing` must be positive")
    elif not np.all(concrete > 0):
        raise ValueError(
            f"`spacing` must be positive (one element size per spatial axis); got "
            f"{concrete.tolist()}."
        )


def _spacing(spacing: Any, dims: int, batch: int) -> jax.Array:
    """float32 ``[B, D]`` spacings from ``None``, a scalar or ``[D]``."""
    if spacing is None:
        return jnp.ones((batch, dims), jnp.float32)
    array = jnp.asarray(spacing, jnp.float32)
    if array.shape not in ((), (dims,)):
        raise ValueError(
            f"`spacing` must be a scalar or have shape ({dims},) (one value per spatial axis); "
            f"got shape {tuple(array.shape)}."
        )
    return jnp.broadcast_to(array, (batch, dims))


def _check_dims(inputs: Inputs, name: str) -> int:
    dims = len(inputs.spatial_shape)
    if not 1 <= dims <= 3:
        raise ValueError(
            f"{name} needs 1, 2 or 3 spatial axes: `logits` must be [B, *spatial, C]; got "
            f"{dims} spatial axes {inputs.spatial_shape}."
        )
    return dims


def _kept_classes(x: jax.Array, include_background: bool) -> jax.Array:
    """The channels a loss averages over: all, or all but class 0 (a single channel is kept,
    as MONAI keeps it, with a binary sigmoid output)."""
    kept = kept_classes(
        x.shape[-1], include_background=include_background, single_channel_is_foreground=True
    )
    return select_classes(x, kept)


def _grid(inputs: Inputs, pixel_values: jax.Array) -> jax.Array:
    """``[B, P, C] -> [B, C, *spatial]``: one image per sample and class."""
    batch, _, classes = pixel_values.shape
    images = pixel_values.reshape((batch, *inputs.spatial_shape, classes))
    return jnp.moveaxis(images, -1, 1)


def _pixels(images: jax.Array) -> jax.Array:
    """``[B, C, *spatial] -> [B, P, C]``."""
    batch, classes = images.shape[:2]
    return jnp.moveaxis(images.reshape(batch, classes, -1), 1, -1)


def _kept(inputs: Inputs) -> jax.Array:
    """``[B, P, 1]`` bool: the pixels that count (weight != 0; NaN-weighted ones count, loudly)."""
    return (inputs.weights != 0)[..., None]


def _foreground(inputs: Inputs) -> jax.Array:
    """``[B, P, C]`` bool ground-truth foreground of each class (``g > 0.5``) on kept pixels."""
    return (inputs.dense_targets() > 0.5) & _kept(inputs)


def _pixel_sums(inputs: Inputs, per_pixel: jax.Array) -> dict[str, jax.Array]:
    """Per-sample sums of ``[B, P]`` per-pixel values and of the pixel weights."""
    return {
        "loss": jnp.sum(inputs.weights * per_pixel, axis=1),
        "count": inputs.valid_count(),
    }


# ----------------------------------------------------------------------------------------------
# Boundary loss.


@define_loss
def boundary_loss(
    *,
    distance_maps: ArrayLike | None = None,
    spacing: ArrayLike | None = None,
    include_background: bool = True,
) -> LossDefinition:
    r"""Computes the boundary loss of Kervadec et al.: probabilities weighted by signed distances.

    Region losses integrate over regions, and on highly unbalanced images a small structure is
    worth little of them. The boundary loss integrates over the *interface* instead: each
    pixel's probability of a class is weighted by its signed distance :math:`\phi_c` to the
    boundary of that class's ground truth, negative inside and positive outside, so predicting
    a class far from where it is costs in proportion to the distance,

    .. math::

       \mathcal{L}_b = \frac{1}{|K|} \sum_{c \in K}
       \frac{\sum_i w_i\, p_{ic}\, \phi_{ic}}{\sum_i w_i}, \qquad
       \phi_{ic} = \begin{cases} d(i, G_c) & i \notin G_c \\ 1 - d(i, \bar G_c) & i \in G_c
       \end{cases}

    with :math:`d` the Euclidean distance (in units of ``spacing``), :math:`G_c` the pixels of
    class :math:`c` (``g > 0.5``) and :math:`K` the kept classes. The loss is negative at a good
    prediction (a perfect one sums the non-positive distances inside the object): it is meant to
    be added to a region loss (``combine("dice+boundary")``), usually with a weight that grows
    during training. A class whose ground truth is **empty or fills the image** has no
    interface: its map is 0 and it contributes 0, whatever is predicted (MONAI's rule).

    The maps are computed from the labels of each sample under ``stop_gradient``, by the exact
    distance transform of :func:`jaxseg_losses.metrics.distance_transform`; or passed
    precomputed as ``distance_maps`` (the paper precomputes them once per image):
    :func:`boundary_distance_maps` computes them for a batch of labels where the batch is
    loaded, with the same value and gradient as in the step. On the host, with SciPy and
    one-hot labels ``onehot`` ``[*spatial, C]``::

        from scipy import ndimage
        def signed_map(fg, sampling=None):           # fg: bool [*spatial]
            if not fg.any() or fg.all():
                return np.zeros(fg.shape, np.float32)
            inside = ndimage.distance_transform_edt(fg, sampling=sampling)
            outside = ndimage.distance_transform_edt(~fg, sampling=sampling)
            return np.where(fg, 1.0 - inside, outside).astype(np.float32)
        maps = np.stack([signed_map(onehot[..., c] > 0.5) for c in range(C)], -1)

    and batch them like the labels, ``[B, *spatial, C]``. Maps are bound to the loss as an
    option, so they describe one call's batch: with
    :func:`jaxseg_losses.accumulate.value_and_grad` (micro-batches) leave ``distance_maps``
    ``None`` and let each micro-batch compute its own (a bound batch of maps is refused there
    with a shape error naming ``distance_maps``).

    Masked and ignored pixels belong to no class when the maps are computed (module docstring)
    and count nowhere in the sums.

    Peers: MONAI 1.6 ``BoundaryLoss(softmax=True, to_onehot_y=True,
    include_background=ib)`` equals ``include_background=ib`` (the same maps, the same rule for
    empty and full masks, the mean over pixels, classes and samples); its ``batch=True`` is
    ``aggregate="batch"``; its ``reduction="none"`` keeps classes (``[B, C]``), this one
    averages them (``[B]``). Kervadec's ``SurfaceLoss`` on precomputed ``one_hot2dist`` maps
    (``idc`` the kept classes) is ``distance_maps=maps`` with ``aggregate="batch"`` when the
    maps have the same one-element shift.

    Args:
      <data args>
      distance_maps: optional precomputed signed maps, float ``[B, *spatial, C]`` channels-last
        (``[*spatial, C]`` is broadcast over the batch); ``None`` computes them from
        ``labels``.
      spacing: the element size, a positive scalar or one value per spatial axis, for the
        computed maps (``None``: 1). The one-element shift inside the object stays 1.
      include_background: ``False`` drops class 0 from the class mean (a single channel is
        always kept).
      <shared args>

    <sample loss returns>

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> labels = jnp.zeros((1, 1, 6), jnp.int32).at[0, 0, 2:4].set(1)   # [B=1, H=1, W=6]
      >>> perfect = (labels == 1)[..., None].astype(jnp.float32)         # probabilities
      >>> shifted = jnp.roll(perfect, 2, axis=2)          # the map is [2, 1, 0, 0, 1, 2]
      >>> print(jsl.boundary_loss(perfect, labels, activation=None))
      0.0
      >>> print(jsl.boundary_loss(shifted, labels, activation=None))    # (1 + 2) / 6
      0.5
      >>> logits = 4.0 * (2.0 * perfect - 1.0)
      >>> grad = jax.jit(jax.grad(lambda x: jsl.boundary_loss(x, labels, activation="sigmoid")))
      >>> bool(grad(logits)[0, 0, 0, 0] > 0)      # far outside: push the probability down
      True

    References:
      Kervadec, Bouchtiba, Desrosiers, Granger, Dolz & Ben Ayed, "Boundary loss for highly
      unbalanced segmentation", MIDL 2019 (Medical Image Analysis 67, 2021).
    """
    _check_spacing(spacing)
    _checks.check_bool("include_background", include_background)
    maps_given = None
    if distance_maps is not None:
        maps_given = _checks.as_float_array("distance_maps", distance_maps)

    def sums(inputs: Inputs) -> dict[str, jax.Array]:
        dims = _check_dims(inputs, "boundary_loss")
        batch, classes = inputs.batch_size, inputs.num_classes
        if maps_given is None:
            spacing_ = _spacing(spacing, dims, batch)
            signed = signed_distance_map(_grid(inputs, _foreground(inputs)), spacing_)
            maps = _pixels(signed).astype(inputs.dtype)
        else:
            expected = (batch, *inputs.spatial_shape, classes)
            if tuple(maps_given.shape) == expected[1:]:
                maps_ = jnp.broadcast_to(maps_given, expected)
            else:
                _checks.check_shape(
                    "distance_maps",
                    maps_given,
                    expected,
                    hint="Signed maps are channels-last [B, *spatial, C] (or [*spatial, C]).",
                )
                maps_ = maps_given
            maps = maps_.reshape(batch, -1, classes).astype(inputs.dtype)
        maps = jax.lax.stop_gradient(maps)
        # Excluded pixels: a 0 map and a 0 weight, so nothing of theirs reaches the sums.
        maps = jnp.where(_kept(inputs), maps, 0.0)
        per_pixel = jnp.mean(_kept_classes(inputs.probabilities() * maps, include_background), -1)
        return _pixel_sums(inputs, per_pixel)

    return LossDefinition(sums=sums, finish=lambda s: divide(s["loss"], s["count"]))


def boundary_distance_maps(
    labels: "ArrayLike",
    *,
    num_classes: int,
    spacing: "ArrayLike | None" = None,
    ignore_index: int | None = None,
    mask: "ArrayLike | None" = None,
) -> jax.Array:
    r"""Computes the signed distance maps that :func:`boundary_loss` weighs probabilities by.

    The maps depend on the labels only, so they can be computed once per batch where the batch
    is loaded (or once per image and stored) and passed as ``boundary_loss(...,
    distance_maps=maps)``, which then gives the same value and gradient as computing them in the
    step. Class :math:`c`'s map is Kervadec's :math:`\phi_c` of the pixels labelled :math:`c`
    (:func:`jaxseg_losses.geometry.signed_distance_map`); pixels equal to ``ignore_index`` or
    where ``mask`` is 0 belong to no class and get 0, as in the loss.

    Args:
      labels: integer ``[B, *spatial]`` class indices (1, 2 or 3 spatial axes).
      num_classes: ``C``, the number of channels of the logits the maps go with.
      spacing: the element size, a positive scalar or one value per spatial axis (``None``: 1).
      ignore_index: a label value that marks pixels of no class.
      mask: ``[B, *spatial]``, 0 where a pixel does not count.

    Returns:
      float32 ``[B, *spatial, C]`` channels-last signed maps.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxseg_losses import boundary_distance_maps
      >>> labels = jnp.zeros((1, 1, 6), jnp.int32).at[0, 0, 2:4].set(1)
      >>> print(boundary_distance_maps(labels, num_classes=2)[0, 0, :, 1])
      [2. 1. 0. 0. 1. 2.]
    """
    _checks.check_static_int("num_classes", num_classes, 1)
    _check_spacing(spacing)
    labels = jnp.asarray(labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer) or not 2 <= labels.ndim <= 4:
        raise TypeError(
            "`labels` must be integer class indices [B, *spatial] with 1, 2 or 3 spatial axes; "
            f"got {labels.dtype} of shape {tuple(labels.shape)}."
        )
    kept = jnp.ones(labels.shape, bool) if mask is None else jnp.asarray(mask) != 0
    if ignore_index is not None:
        kept = kept & (labels != ignore_index)
    classes = jnp.arange(num_classes).reshape((1, num_classes) + (1,) * (labels.ndim - 1))
    foreground = (labels[:, None] == classes) & kept[:, None]
    signed = signed_distance_map(foreground, _spacing(spacing, labels.ndim - 1, labels.shape[0]))
    return jnp.moveaxis(signed, 1, -1)


# ----------------------------------------------------------------------------------------------
# Hausdorff distance-transform loss.


@define_loss
def hausdorff_dt_loss(
    *,
    alpha: ArrayLike = 2.0,
    log: bool = False,
    spacing: ArrayLike | None = None,
    include_background: bool = False,
) -> LossDefinition:
    r"""Computes the distance-transform Hausdorff loss of Karimi & Salcudean.

    The Hausdorff distance is a maximum and has no useful gradient; Karimi & Salcudean weigh
    each pixel's squared error by how far it lies from the boundaries of the prediction and of
    the ground truth, so errors far from either boundary (which make the Hausdorff distance
    large) cost most:

    .. math::

       \mathcal{L}_{HD} = \frac{1}{|K|} \sum_{c \in K}
       \frac{\sum_i w_i\, (p_{ic} - g_{ic})^2\, (d^P_{ic}{}^{\alpha} + d^G_{ic}{}^{\alpha})}
       {\sum_i w_i},

    with :math:`d^G_c` the distance of each pixel to the other side of the boundary of the
    ground truth of class :math:`c` (``g > 0.5``) and :math:`d^P_c` the same for the
    thresholded prediction ``p > 0.5``; both fields are recomputed at each call, exactly, under
    ``stop_gradient``. A mask that is empty or full has no boundary: its field is 0 (MONAI's
    rule), so for :math:`\alpha > 0` a class absent from both the thresholded prediction and
    the target costs 0. With :math:`\alpha = 0` every :math:`d^{\alpha}` is 1, zero distances
    included (:math:`0^0 = 1`, as in MONAI's ``pred_dt ** alpha``): the weight is 2 at every
    pixel, the loss :math:`2 \sum_i w_i (p_{ic} - g_{ic})^2 / \sum_i w_i` averaged over the
    classes, and an absent class costs twice its mean squared error. ``log=True`` gives
    :math:`\ln(1 + \mathcal{L}_{HD})` of each sample (of the batch with ``aggregate="batch"``).

    Masked and ignored pixels belong to no class when the fields are computed (module
    docstring) and count nowhere in the sums.

    Peers: MONAI ``HausdorffDTLoss(alpha=a, include_background=ib, softmax=True,
    to_onehot_y=True)`` equals ``alpha=a, include_background=ib`` (a single channel is kept,
    as MONAI keeps it); its ``batch=True`` is ``aggregate="batch"``. MONAI's
    ``LogHausdorffDTLoss`` takes :math:`\ln(1 + \cdot)` of the *reduced* loss, so it equals
    ``log=True, aggregate="batch"`` (one value for the batch; the same for ``batch=False`` and
    ``True`` without a mask, as every sample has the same pixel count), and ``log=True`` per
    sample when ``B = 1``.

    Args:
      <data args>
      alpha: the exponent of the distances (non-negative, default 2).
      log: use :math:`\ln(1 + \mathcal{L})`.
      spacing: the element size, a positive scalar or one value per spatial axis (``None``: 1).
      include_background: ``True`` keeps class 0 in the class mean (default ``False``, as in
        MONAI; a single channel is always kept).
      <shared args>

    <sample loss returns>

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> labels = jnp.zeros((1, 1, 6), jnp.int32).at[0, 0, 1:3].set(1)   # [B=1, H=1, W=6]
      >>> probs = jnp.zeros((1, 1, 6, 1)).at[0, 0, 2:4, 0].set(1.0)       # shifted by one
      >>> # errors at pixels 1 and 3: each (1 - 0)^2 * (1^2 + 1^2) = 2, mean 4 / 6
      >>> print(f"{jsl.hausdorff_dt_loss(probs, labels, activation=None):.4f}")
      0.6667

    References:
      Karimi & Salcudean, "Reducing the Hausdorff Distance in Medical Image Segmentation with
      Convolutional Neural Networks", IEEE Transactions on Medical Imaging 39(2), 2020
      (arXiv:1904.10030, 2019).
    """
    _checks.check_nonnegative("alpha", alpha)
    _checks.check_bool("log", log)
    _check_spacing(spacing)
    _checks.check_bool("include_background", include_background)

    def sums(inputs: Inputs) -> dict[str, jax.Array]:
        dims = _check_dims(inputs, "hausdorff_dt_loss")
        spacing_ = _spacing(spacing, dims, inputs.batch_size)
        probs = inputs.probabilities()
        targets = inputs.dense_targets()
        predicted = (probs > 0.5) & _kept(inputs)
        fields = [
            unsigned_distance_field(_grid(inputs, m), spacing_)
            for m in (predicted, _foreground(inputs))
        ]
        weight = _pixels(fields[0] ** alpha + fields[1] ** alpha).astype(inputs.dtype)
        weight = jax.lax.stop_gradient(weight)
        error = (probs - targets) ** 2 * weight
        return _pixel_sums(inputs, jnp.mean(_kept_classes(error, include_background), axis=-1))

    def finish(s: dict[str, jax.Array]) -> jax.Array:
        value = divide(s["loss"], s["count"])
        return jnp.log1p(value) if log else value

    return LossDefinition(sums=sums, finish=finish)


# ----------------------------------------------------------------------------------------------
# Soft clDice.


@define_loss
def cldice_loss(
    *,
    iterations: int = 3,
    smooth: ArrayLike = 1.0,
    harmonic_smooth: ArrayLike = 0.0,
    include_background: bool = True,
) -> LossDefinition:
    r"""Computes the soft clDice loss of Shit et al., a topology-aware loss for tubular structures.

    clDice compares the *skeletons* of prediction and ground truth with the other mask: the
    topological precision is the fraction of the predicted skeleton that lies in the ground
    truth, the topological sensitivity the fraction of the true skeleton that is predicted, and
    clDice their harmonic mean. A broken vessel loses a piece of the true skeleton however thin
    the gap, which a region loss barely sees. With soft skeletons :math:`S` (iterated min/max
    pooling, ``iterations`` erosions; :func:`soft_skeleton`),

    .. math::

       T_{prec} = \frac{\sum w\, S(p)\, g + s}{\sum w\, S(p) + s}, \qquad
       T_{sens} = \frac{\sum w\, S(g)\, p + s}{\sum w\, S(g) + s}, \qquad
       \mathcal{L} = 1 - \frac{2\, T_{prec} T_{sens}}{T_{prec} + T_{sens} + \epsilon},

    each sum running over the pixels **and the kept classes** of a sample (pooled over the
    batch with ``aggregate="batch"``). Combine it with a region loss, as the paper does:
    ``combine({"dice": 0.5, "cldice": 0.5})`` is MONAI's ``SoftDiceclDiceLoss(alpha=0.5)`` up
    to its Dice's own class pooling. Masked and ignored pixels are 0 in both masks before the
    skeletons are taken (module docstring) and count nowhere in the sums. 1-D, 2-D and 3-D
    (erosion by a cross of 3 elements per axis, dilation by a full 3×3(×3) window).

    with :math:`\epsilon` = ``harmonic_smooth`` (0 by default: the paper's harmonic mean).

    Peers: MONAI 1.6.1 ``SoftclDiceLoss(iter_=k, smooth_nr=s, smooth_dr=s, smooth=e,
    softmax=True, to_onehot_y=True, include_background=ib)(prediction, target)`` equals
    ``iterations=k, smooth=s, harmonic_smooth=e, include_background=ib`` exactly (prediction
    first, per-sample sums over classes and pixels, class 0 kept by default); MONAI 1.6.1's
    default ``smooth=1e-4`` is ``harmonic_smooth=1e-4``, while this loss's default
    ``harmonic_smooth=0`` is the harmonic mean of the paper, of the authors' code and of MONAI
    up to 1.5 (it differs from MONAI 1.6.1's default by under :math:`10^{-4}`). MONAI up to
    1.5, and the authors' code, take ``(y_true, y_pred)``, drop channel 0 and pool the batch:
    ``include_background=False, aggregate="batch"``.

    Args:
      <data args>
      iterations: the number of erosions of the soft skeleton (an int >= 0, default 3); it
        should reach the largest radius of the structures.
      smooth: added to numerator and denominator of both ratios (non-negative, default 1).
      harmonic_smooth: :math:`\epsilon`, added to the denominator of the harmonic mean
        (non-negative, default 0; MONAI 1.6.1's ``smooth``, whose default is ``1e-4``).
      include_background: ``False`` drops class 0 from the sums (a single channel is always
        kept).
      <shared args>

    <sample loss returns>

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> vessel = jnp.zeros((1, 7, 7), jnp.int32).at[0, 3, :].set(1)   # a horizontal line
      >>> perfect = jnp.where(vessel[..., None] == 1, 1.0, 0.0)          # probabilities
      >>> broken = perfect.at[0, 3, 3, 0].set(0.0)
      >>> print(f"{jsl.cldice_loss(perfect, vessel, activation=None, smooth=0.0):.4f}")
      0.0000
      >>> print(f"{jsl.cldice_loss(broken, vessel, activation=None, smooth=0.0):.4f}")
      0.0769

    References:
      Shit, Paetzold, Sekuboyina, Ezhov, Unger, Zhylka, Pluim, Bauer & Menze, "clDice - a Novel
      Topology-Preserving Loss Function for Tubular Structure Segmentation", CVPR 2021.
    """
    iterations = _checks.check_static_int("iterations", iterations, 0)
    _checks.check_nonnegative("smooth", smooth)
    _checks.check_nonnegative("harmonic_smooth", harmonic_smooth)
    _checks.check_bool("include_background", include_background)

    def sums(inputs: Inputs) -> dict[str, jax.Array]:
        _check_dims(inputs, "cldice_loss")
        keep = _kept(inputs)
        probs = _kept_classes(jnp.where(keep, inputs.probabilities(), 0.0), include_background)
        targets = _kept_classes(jnp.where(keep, inputs.dense_targets(), 0.0), include_background)

        def image(x: jax.Array) -> jax.Array:
            return x.reshape((x.shape[0], *inputs.spatial_shape, *x.shape[2:]))

        overlaps = skeleton_overlaps(
            image(probs), image(targets), image(inputs.weights), iterations
        )
        hits_pred, skeleton_pred, hits_true, skeleton_true = jnp.moveaxis(overlaps.sum(1), -1, 0)
        return {
            "precision_hits": hits_pred,
            "skeleton_pred": skeleton_pred,
            "sensitivity_hits": hits_true,
            "skeleton_true": skeleton_true,
        }

    def finish(s: dict[str, jax.Array]) -> jax.Array:
        precision = divide(s["precision_hits"] + smooth, s["skeleton_pred"] + smooth, empty=1.0)
        sensitivity = divide(s["sensitivity_hits"] + smooth, s["skeleton_true"] + smooth, empty=1.0)
        return 1.0 - divide(
            2.0 * precision * sensitivity, precision + sensitivity + harmonic_smooth
        )

    return LossDefinition(sums=sums, finish=finish)


__all__ = [
    "boundary_distance_maps",
    "boundary_loss",
    "cldice_loss",
    "hausdorff_dt_loss",
    "signed_distance_map",
    "soft_skeleton",
    "unsigned_distance_field",
]
