r"""Lovász-Softmax and Lovász hinge: the convex surrogates of the Jaccard (IoU) loss.

The Jaccard loss of a class is a set function of the mispredicted pixels :math:`M`:
:math:`\Delta_J(M) = |M| / |F \cup M|`, with :math:`F` the pixels of the class. It is
submodular, so its Lovász extension :math:`\overline{\Delta_J}` is its tight convex
interpolation; evaluated at a vector of per-pixel errors :math:`m \in \mathbb{R}_+^P` it is the
dot product of the errors, sorted in decreasing order, with the increments of :math:`\Delta_J`
along that order (Berman, Rannen Triki & Blaschko 2018, Algorithm 1):

.. math::

   \overline{\Delta_J}(m) = \sum_{k=1}^{P} m_{\pi_k}\, g_k, \qquad
   g_k = \Delta_J(\{\pi_1, \dots, \pi_k\}) - \Delta_J(\{\pi_1, \dots, \pi_{k-1}\}),
   \qquad m_{\pi_1} \ge \dots \ge m_{\pi_P}.

With :math:`A_k = \{\pi_1, \dots, \pi_k\}`, :math:`I_k = |F \setminus A_k|` and
:math:`U_k = |F \cup A_k|`, the increments are computed in closed form,
:math:`g_k = 1 / U_k` for a foreground pixel and :math:`g_k = I_k / (U_{k-1} U_k)` for a
background one (:math:`g_1 = 1 / U_1`), rather than as differences of :math:`1 - I_k / U_k`: the
difference of two float32 numbers close to 1 loses the small late increments once a class covers
more than about :math:`10^4` pixels, while the closed form keeps every increment to float32
precision. The pixel counts are accumulated in int32 for integer labels (exact for any image).

Static shapes: the reference implementations drop ignored pixels by boolean indexing, which has a
data-dependent shape and cannot run under ``jax.jit``. Here every pixel stays; an ignored or masked
pixel is neither foreground nor an error, and its sort key places it strictly after every valid
pixel (ties with zero-error valid pixels included), so the counts of every valid position are the
counts of the valid pixels alone and the ignored tail adds exactly zero. The result is identical to
dropping the pixels, under ``jax.jit`` and ``jax.vmap``. Gradients flow through the sorted
errors; the permutation is piecewise constant, and the increments :math:`g` (functions of the
labels only) are constants of the gradient, as in the reference code.

Cost: one sort of the pixels of every (sample, class) row, :math:`O(B\,C\,P \log P)`, which
dominates the run time (on CPU an order of magnitude more than a Dice loss of the same size; a
list of ``classes`` sorts only those classes).

Data contract: ``logits`` ``[B, *spatial, C]`` (``class_axis`` moves C), ``labels`` integer
``[B, *spatial]`` or dense 0/1 float ``[B, *spatial, C]``, ``mask`` ``[B, *spatial]``; the result
is float32 for bf16/f16/f32 logits. The Lovász losses treat ``mask`` as binary: a pixel with
weight ``> 0`` counts fully, a pixel with weight 0 not at all (the Jaccard set function counts
pixels, it has no per-pixel weights).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg_losses._core import checks as _checks
from jaxseg_losses._core.define import define_loss
from jaxseg_losses._core.definition import LossDefinition
from jaxseg_losses._core.inputs import Inputs

ArrayLike = jax.typing.ArrayLike

CLASS_SETS = ("present", "all")


def lovasz_jaccard_increments(foreground_sorted: jax.Array, dtype: Any) -> jax.Array:
    r"""Increments :math:`g_k` of the Jaccard loss along a sorted order, ``[..., P] -> [..., P]``.

    ``foreground_sorted`` holds the foreground indicator (int32 or float) of the pixels in
    decreasing order of error, over the last axis; the result, in ``dtype``, is the vector that
    Berman's ``lovasz_grad`` computes by differencing, here in closed form (module docstring).
    Excluded pixels must be zeros at the end of the order; their increments are finite and
    irrelevant (their errors are zero).
    """
    cumulative = jnp.cumsum(foreground_sorted, axis=-1)
    total = cumulative[..., -1:]
    position = jax.lax.broadcasted_iota(cumulative.dtype, cumulative.shape, cumulative.ndim - 1) + 1
    # I_k = |F \ A_k| and U_k = |F ∪ A_k|; with int32 inputs both are exact integers. The clamp
    # only guards float rounding of soft cumulative sums.
    intersection = jnp.maximum(total - cumulative, 0)
    union = total + position - cumulative
    # The values "before the first pixel" are set so that I_0 / U_0 = 1 (an empty prediction set
    # has Jaccard loss 0), which makes the general formula give g_1 = 1 / U_1 even when F = {}.
    ones = jnp.ones_like(intersection[..., :1])
    intersection_prev = jnp.concatenate([ones, intersection[..., :-1]], axis=-1).astype(dtype)
    union_prev = jnp.concatenate([ones, union[..., :-1]], axis=-1).astype(dtype)
    intersection, union = intersection.astype(dtype), union.astype(dtype)
    foreground = foreground_sorted.astype(dtype)
    # g_k = I_{k-1}/U_{k-1} - I_k/U_k with I_k = I_{k-1} - f_k and U_k = U_{k-1} + 1 - f_k.
    numerator = intersection_prev * (1 - foreground) + foreground * union_prev
    return numerator / (union_prev * union)


def _lovasz_rows(
    errors: jax.Array, foreground: jax.Array, valid: jax.Array, *, hinge: bool
) -> tuple[jax.Array, jax.Array]:
    """Lovász extension of each row ``[..., P]``: returns ``(loss [...], foreground count [...])``.

    ``errors`` are finite floats, ``foreground`` the int32 or float indicator (zero where
    ``valid`` is False), ``valid`` the bool pixel selection. With ``hinge`` the sorted errors go
    through a ReLU, as in Berman's ``lovasz_hinge_flat``.
    """
    order = _descending_order(errors, valid)
    # Gathers (not sort operands) carry the errors and labels: the gradient of a gather is a
    # scatter, cheaper than the extra sort operand JAX adds to differentiate through lax.sort.
    errors_sorted = jnp.take_along_axis(jnp.where(valid, errors, 0.0), order, axis=-1)
    foreground_sorted = jnp.take_along_axis(foreground, order, axis=-1)
    if hinge:
        errors_sorted = jax.nn.relu(errors_sorted)
    increments = jax.lax.stop_gradient(
        lovasz_jaccard_increments(foreground_sorted, errors_sorted.dtype)
    )
    count = jnp.sum(foreground, axis=-1)
    return jnp.sum(errors_sorted * increments, axis=-1), count


def _descending_order(errors: jax.Array, valid: jax.Array) -> jax.Array:
    """Permutation ``[..., P]`` sorting each row by decreasing error, invalid pixels last.

    Invalid pixels get the key +inf (on negated errors), so they come after every valid pixel
    whatever its error: a valid zero-error pixel tied with them would otherwise be counted after
    them and see different counts. The sort is stable, so tied errors keep their pixel order.
    """
    keys = jax.lax.stop_gradient(jnp.where(valid, -errors, jnp.inf))
    int_dtype = jnp.int64 if keys.dtype.itemsize == 8 else jnp.int32
    bits = jax.lax.bitcast_convert_type(keys, int_dtype)
    # Flipping the magnitude bits of negative floats makes signed-integer order equal float
    # order; XLA:CPU sorts integer keys markedly faster than floats under JAX's NaN-aware
    # float comparator.
    sign = jax.lax.shift_right_arithmetic(bits, jnp.asarray(8 * keys.dtype.itemsize - 1, int_dtype))
    keys = bits ^ (sign & jnp.iinfo(int_dtype).max)
    positions = jax.lax.broadcasted_iota(int_dtype, keys.shape, keys.ndim - 1)
    _, order = jax.lax.sort((keys, positions), dimension=keys.ndim - 1, num_keys=1)
    return order


def _per_class_lovasz(
    errors: jax.Array, foreground: jax.Array, valid: jax.Array, *, hinge: bool
) -> tuple[jax.Array, jax.Array]:
    """``[B, P, K]`` errors and foreground, ``[B, P]`` valid -> loss and count, each ``[B, K]``.

    (``aggregate="batch"`` hands in the batch as one sample, ``B = 1``.)
    """
    # Rows of [B, K, P]: one sort per (sample, class) over the contiguous pixel axis.
    errors, foreground = (jnp.swapaxes(x, 1, 2) for x in (errors, foreground))
    valid = jnp.broadcast_to(valid[:, None, :], errors.shape)
    return _lovasz_rows(errors, foreground, valid, hinge=hinge)


def _foreground(inputs: Inputs, valid: jax.Array) -> jax.Array:
    """``[B, P, C]`` foreground indicator, zero at excluded pixels: int32 for integer labels."""
    targets = inputs.dense_targets()
    if inputs.labels is not None:
        # Integer counts keep the cumulative sums exact beyond float32's 2**24.
        targets = targets.astype(jnp.int32)
    else:
        _checks.check_values(
            jnp.all((targets == 0) | (targets == 1)),
            "dense `labels` must be 0 or 1 for the Lovász losses (hard one-hot or binary targets)",
        )
    return jnp.where(valid[..., None], targets, jnp.zeros((), targets.dtype))


def _class_selection(classes: Any, num_classes: int) -> tuple[int, ...] | None:
    """``None`` for ``"present"``/``"all"``, else the validated tuple of class indices."""
    if isinstance(classes, str):
        if classes not in CLASS_SETS:
            raise ValueError(
                f"`classes` must be 'present', 'all' or a list of class indices; got {classes!r}."
            )
        return None
    return _checks.class_indices("classes", classes, num_classes)


@define_loss
def lovasz_softmax_loss(
    *, classes: str | tuple[int, ...] | list[int] = "present"
) -> LossDefinition:
    r"""Computes the Lovász-Softmax loss, the convex surrogate of 1 − IoU per class.

    For each class, the per-pixel errors of the predicted probability are sorted in decreasing
    order and weighted by the increments of the class's Jaccard loss along that order; the result
    is the Lovász extension of the Jaccard loss, which equals 1 − IoU at hard 0/1 predictions and
    is convex in the errors (Berman et al. 2018). It optimises the IoU of each image (or of the
    batch) directly, and often gives a higher mIoU than cross-entropy alone, usually as a
    fine-tuning loss or next to cross-entropy. With :math:`y_{ic} \in \{0, 1\}` the targets and
    :math:`p_{ic}` the probabilities of the valid pixels,

    .. math::

       m_{ic} = |y_{ic} - p_{ic}|, \qquad
       \ell_c = \overline{\Delta_{J_c}}(m_{\cdot c}) = \sum_{k} m_{\pi_k c}\, g_{kc}, \qquad
       \mathcal{L} = \frac{1}{|\mathcal{C}|} \sum_{c \in \mathcal{C}} \ell_c,

    with :math:`\pi` the order of decreasing error and :math:`g_{kc}` the increments of the
    Jaccard loss :math:`\Delta_{J_c}(A) = |A| / |F_c \cup A|` (see :mod:`jaxseg_losses.lovasz`).
    :math:`\mathcal{C}` is set by ``classes``: ``"present"`` keeps the classes with at least one
    valid pixel in the labels of the sample (of the batch with ``aggregate="batch"``), and a
    sample with no valid pixel has loss 0; ``"all"`` keeps every class, and an absent class then
    costs its largest predicted probability; a list keeps the listed classes.

    Ignored and masked pixels are excluded exactly as if they were removed, with static shapes
    (module docstring). ``mask`` is binary here: weight ``> 0`` keeps a pixel.

    With ``activation="sigmoid"`` and one channel, the channel is the probability of label 1
    (binary segmentation, as for the other losses); with ``classes="present"`` an image without
    foreground then has loss 0, so pass ``classes="all"`` to penalise false positives on empty
    images. Sigmoid with several channels (dense multi-label targets) treats each channel as a
    binary problem.

    Peers: Berman's ``lovasz_softmax(probas, labels, classes, per_image, ignore)`` equals
    ``activation=None`` on the same probabilities with ``aggregate="sample"`` for
    ``per_image=True`` and ``"batch"`` for its default ``per_image=False``. kornia's
    ``lovasz_softmax_loss(pred, target)`` (current source) is ``classes="all"``,
    ``class_axis=1`` and ``aggregate="sample"``; earlier kornia releases gathered the integer
    labels, instead of each class's 0/1 foreground, in the sorted order, so their Jaccard
    increments were wrong.

    Args:
      logits: ``[B, *spatial, C]`` float logits (probabilities when ``activation=None``), any
        float dtype; 1-D, 2-D or 3-D spatial shape.
      labels: ``[B, *spatial]`` integer class indices, or ``[B, *spatial, C]`` dense float 0/1
        targets (one-hot, or binary multi-label), laid out like ``logits``.
      activation: ``"softmax"`` (exclusive classes, C >= 2), ``"sigmoid"`` (binary with C == 1,
        or multi-label with dense targets) or ``None`` (``logits`` are probabilities).
      class_axis: the axis of ``logits`` holding the classes (``1`` for NCHW).
      classes: ``"present"`` (default), ``"all"``, or a list/tuple of class indices (channels of
        ``logits``) to average over.
      ignore_index: a label value whose pixels count nowhere (e.g. 255).
      mask: ``[B, *spatial]`` bool or float pixel mask; pixels with weight ``> 0`` are kept.
      aggregate: ``"sample"`` computes the loss per image (Berman's ``per_image=True``);
        ``"batch"`` pools every pixel of the batch per class.
      axis_name: a mapped axis (``shard_map``/``pmap``) over which the mean (or sum) of the
        per-sample losses is taken, so every device gets the global value. ``aggregate="batch"``
        cannot be pooled across a mapped axis (one sort over all devices' pixels); under
        ``jax.jit`` with sharded arrays it needs no ``axis_name``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[B]``, per sample; ``aggregate="sample"``
        only).

    <loss returns>

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> probs = jnp.array([[[0.8, 0.2], [0.6, 0.4], [0.3, 0.7]]])   # [B=1, P=3, C=2]
      >>> labels = jnp.array([[0, 1, 1]])
      >>> loss = jsl.lovasz_softmax_loss(probs, labels, activation=None)
      >>> print(f"{loss:.4f}")
      0.4333
      >>> logits = jnp.array([[[9.0, -9.0], [-9.0, 9.0], [-9.0, 9.0]]])   # nearly perfect
      >>> print(f"{jax.jit(jsl.lovasz_softmax_loss)(logits, labels):.4f}")
      0.0000

    <lovasz references>
    """
    if isinstance(classes, str) and classes not in CLASS_SETS:
        raise ValueError(
            f"`classes` must be 'present', 'all' or a list of class indices; got {classes!r}."
        )

    def sums(inputs: Inputs) -> dict[str, jax.Array]:
        selected = _class_selection(classes, inputs.num_classes)
        valid = inputs.weights > 0
        probs = inputs.probabilities()
        foreground = _foreground(inputs, valid)
        if selected is not None:
            # Only the listed classes are sorted: the sort dominates the cost.
            index = np.asarray(selected)
            probs, foreground = probs[..., index], foreground[..., index]
        errors = jnp.abs(foreground.astype(probs.dtype) - probs)
        per_class, count = _per_class_lovasz(errors, foreground, valid, hinge=False)
        if classes == "present":
            present = (count > 0).astype(per_class.dtype)
            # A sample without any present class has no term to average: loss 0, as in the
            # reference.
            loss = jnp.sum(present * per_class, axis=-1) / jnp.maximum(
                jnp.sum(present, axis=-1), 1.0
            )
        else:
            loss = jnp.mean(per_class, axis=-1)
        return {"loss": loss + inputs.invalid_label_term()}

    return LossDefinition(sums=sums, finish=lambda s: s["loss"], pools=False)


@define_loss(activations=("sigmoid",))
def lovasz_hinge_loss() -> LossDefinition:
    r"""Computes the binary Lovász hinge loss on logits, the convex surrogate of 1 − IoU.

    The margin errors of a binary classifier, :math:`m_i = 1 - x_i (2 y_i - 1)` for a logit
    :math:`x_i` and a label :math:`y_i \in \{0, 1\}`, are sorted in decreasing order; their
    positive parts weighted by the increments of the foreground Jaccard loss give the Lovász
    extension of 1 − IoU of the foreground (Yu & Blaschko 2018; Berman et al. 2018):

    .. math::

       \mathcal{L} = \sum_{k} \max(m_{\pi_k}, 0)\, g_k, \qquad m_{\pi_1} \ge \dots \ge m_{\pi_P},

    with :math:`g_k` the increments of :math:`\Delta_J(A) = |A| / |F \cup A|` (see
    :mod:`jaxseg_losses.lovasz`). Every pixel with margin at least 1 on the right side contributes
    0, so a prediction with margin >= 1 everywhere has loss exactly 0. The ReLU is that of Berman's
    PyTorch ``lovasz_hinge_flat``; his TensorFlow code uses ``elu(m) + 1`` instead, which is not
    what this function computes.

    ``logits`` have one channel (``[B, *spatial, 1]``) and ``labels`` are 0/1 integers
    ``[B, *spatial]``, as for ``activation="sigmoid"`` elsewhere. Dense float 0/1 targets laid
    out like ``logits`` are accepted too, with one channel or several (multi-label: each channel
    is a binary problem, and the loss is the mean over channels). No sigmoid is applied: the hinge
    acts on the raw logits. Ignored and masked pixels are excluded exactly, with static shapes;
    ``mask`` is binary here (weight ``> 0`` keeps a pixel). An image with no foreground has loss
    :math:`\max(m_{\pi_1}, 0)`, the largest false-positive margin.

    Args:
      logits: ``[B, *spatial, 1]`` float logits (``[B, *spatial, C]`` with dense multi-label
        targets), any float dtype; 1-D, 2-D or 3-D spatial shape.
      labels: ``[B, *spatial]`` integer 0/1 labels, or dense float 0/1 targets laid out like
        ``logits``.
      class_axis: the axis of ``logits`` holding the channel (``1`` for NCHW).
      ignore_index: a label value whose pixels count nowhere (e.g. 255).
      mask: ``[B, *spatial]`` bool or float pixel mask; pixels with weight ``> 0`` are kept.
      aggregate: ``"sample"`` computes the loss per image (Berman's default
        ``per_image=True``); ``"batch"`` pools every pixel of the batch.
      axis_name: a mapped axis over which the mean (or sum) of the per-sample losses is taken;
        ``aggregate="sample"`` only, as for :func:`lovasz_softmax_loss`.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[B]``, per sample; ``aggregate="sample"``
        only).

    <loss returns>

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> logits = jnp.array([[[2.0], [0.5], [-1.0]]])   # [B=1, P=3, C=1]
      >>> labels = jnp.array([[1, 1, 0]])
      >>> print(f"{jsl.lovasz_hinge_loss(logits, labels):.4f}")
      0.2500
      >>> confident = jnp.array([[[3.0], [1.0], [-1.5]]])   # margins >= 1 everywhere
      >>> print(f"{jsl.lovasz_hinge_loss(confident, labels):.4f}")
      0.0000

    <lovasz references>
    """

    def sums(inputs: Inputs) -> dict[str, jax.Array]:
        valid = inputs.weights > 0
        foreground = _foreground(inputs, valid)
        signs = 2 * foreground.astype(inputs.dtype) - 1
        errors = 1 - inputs.logits * signs
        per_class, _ = _per_class_lovasz(errors, foreground, valid, hinge=True)
        return {"loss": jnp.mean(per_class, axis=-1) + inputs.invalid_label_term()}

    return LossDefinition(sums=sums, finish=lambda s: s["loss"], pools=False)


__all__ = ["lovasz_hinge_loss", "lovasz_jaccard_increments", "lovasz_softmax_loss"]
