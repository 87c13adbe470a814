r"""Pixel-wise losses of the cross-entropy family: plain, weighted, label-smoothed, Poly-1, top-k.

Each pixel contributes its own loss :math:`\ell_i`, and each sample's loss is a weighted mean
over its valid pixels. With pixel weights :math:`m_i` (``mask`` times ``labels != ignore_index``)
and a normaliser :math:`v_i` per pixel (the class weight of its label for weighted
cross-entropy, 1 otherwise),

.. math::

   \mathrm{none}_b = \frac{\sum_{i \in b} m_i \ell_i}{\sum_{i \in b} m_i v_i}, \qquad
   \mathrm{mean} = \frac{\sum_i m_i \ell_i}{\sum_i m_i v_i}, \qquad
   \mathrm{sum} = \sum_b \mathrm{none}_b,

so ``"mean"`` is PyTorch's ``CrossEntropyLoss`` reduction (the mean over all valid pixels of the
batch: each sample weighs as much as its valid pixels) and ``"none"`` gives each sample's own
mean, ``[B]``. This is the library's one reduction policy (``reduction`` acts on per-sample
values), which the focal loss (:mod:`jaxseg_losses.losses.focal`) follows too. A sample or batch
without a valid pixel has loss 0 and gradient 0. The unreduced per-pixel losses
:math:`m_i \ell_i` (``[B, *spatial]``, 0 at ignored pixels) come from :func:`cross_entropy_map`
and :func:`~jaxseg_losses.focal_map`, for hard-pixel mining or display; their sum is
PyTorch's ``reduction="sum"`` (a sum over pixels).

Three forms, picked by ``activation`` and the number of channels :math:`C`:

* categorical (``"softmax"``, or ``None`` with :math:`C \ge 2` for probabilities that sum to 1):
  :math:`\ell_i = -\sum_c g_{ic} \log p_{ic}`, one exclusive class per pixel;
* binary / multi-label (``"sigmoid"``, or ``None`` with :math:`C = 1`): binary cross-entropy per
  channel, averaged over the channels of the pixel (PyTorch's ``BCEWithLogitsLoss`` mean);
* integer labels are gathered (the label's logit minus the log-sum-exp), never one-hot encoded.

Everything is computed in log space (log-sum-exp, ``log_sigmoid``); with ``activation=None``
the logarithm of a probability is clamped at :math:`\max(-100, \tfrac12 \ln \mathrm{tiny})`
(-43.7 in float32; PyTorch's ``BCELoss`` clamps at -100), so a probability of exactly 0 or 1
gives finite values, gradients and Hessians. Computation and output are float32 for
bf16/f16/f32 inputs.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg_losses._core import checks as _checks
from jaxseg_losses._core.define import define_loss
from jaxseg_losses._core.definition import LossDefinition, divide
from jaxseg_losses._core.docs import documented
from jaxseg_losses._core.inputs import Inputs
from jaxseg_losses.losses import _pixel_terms as _terms

ArrayLike = jax.typing.ArrayLike

# ----------------------------------------------------------------------------------------------
# Numerics.


# ----------------------------------------------------------------------------------------------
# Per-pixel terms: (loss l_i, normaliser v_i), both [B, P], before the pixel weights m_i.


def _poly_terms(
    inputs: Inputs,
    *,
    epsilon: Any,
    class_weights: ArrayLike | None,
    label_smoothing: Any,
) -> tuple[jax.Array, jax.Array | None]:
    """Poly-1 per pixel: CE's terms plus ``ε Σ_c w_c g̃_c (1 - p_c)``, with CE's normaliser."""
    nll, normaliser = _terms.cross_entropy_terms(
        inputs, class_weights=class_weights, pos_weight=None, label_smoothing=label_smoothing
    )
    miss = _expected_miss(inputs, class_weights=class_weights, label_smoothing=label_smoothing)
    return nll + epsilon * miss, normaliser


def _expected_miss(
    inputs: Inputs, *, class_weights: ArrayLike | None, label_smoothing: Any
) -> jax.Array:
    """``[B, P]``: ``Σ_c w_c g̃_c (1 - p_c)``, the weighted, smoothed probability of missing the
    target, weighted and smoothed as the cross-entropy terms weigh and smooth ``-log p``."""
    w = _terms.weighting(inputs, class_weights, label_smoothing)
    if inputs.is_binary:
        g = _terms.binary_targets(inputs, w)
        log_p, log_q = inputs.binary_log_probabilities()
        # 1 - p_t with p_t = g p + (1 - g)(1 - p): the probability of the wrong side.
        one_minus_pt = g * jnp.exp(log_q) + (1.0 - g) * jnp.exp(log_p)
        return jnp.mean(_terms.weighted(one_minus_pt, w), axis=-1)

    if inputs.labels is not None:
        log_p_label = inputs.label_log_probability()
        p_label = inputs.label_logit() if inputs.activation is None else jnp.exp(log_p_label)
        return _terms.at_label_smoothed(
            1.0 - p_label, lambda: 1.0 - inputs.probabilities(), inputs, w
        )

    smoothed = _terms.smoothed_dense_targets(inputs.dense_targets(), w, inputs.num_classes)
    return jnp.sum(smoothed * _terms.weighted(1.0 - inputs.probabilities(), w), axis=-1)


def _check_topk(k: Any) -> float:
    if isinstance(k, bool) or not isinstance(k, numbers.Real):
        raise TypeError(
            f"`k` must be a Python number, the percentage of pixels kept (static: it sets the "
            f"size of the top-k); got {type(k).__name__} {k!r}."
        )
    value = float(k)
    if not (math.isfinite(value) and 0 < value <= 100):
        raise ValueError(f"`k` must be a percentage in (0, 100]; got {k!r}.")
    return value


def _selected_count_thresholds(size: int, k: float) -> np.ndarray:
    r"""``t[r]``: the fewest valid pixels whose top-k keeps more than ``r`` pixels, ``r < m``.

    The count kept of ``n`` valid pixels is ``max(1, int(n * k / 100))`` evaluated as nnU-Net
    does, in Python (float64) arithmetic on the host; it does not decrease with ``n``, so rank
    ``r`` is kept exactly when ``n >= t[r]``. The traced count and the traced selection both
    read this one static table: the number divided by is the number of pixels selected.
    """
    largest = min(size, max(1, int(size * k / 100)))

    def kept(n: np.ndarray) -> np.ndarray:
        # Python's int(n * k / 100): the same float64 operations, in the same order.
        return (n * np.float64(k) / 100.0).astype(np.int64)

    # Rank r >= 1 needs kept(n) >= r + 1; n = ceil((r + 1) 100 / k) is within a step or two of
    # the least such n, which the loops settle exactly (kept does not decrease with n).
    wanted = np.arange(2, largest + 1, dtype=np.int64)
    n = np.clip(np.ceil(wanted * 100.0 / k).astype(np.int64), 1, size)
    while np.any(low := (n > 1) & (kept(n - 1) >= wanted)):
        n = np.where(low, n - 1, n)
    while np.any(high := kept(n) < wanted):
        n = np.where(high, n + 1, n)
    # Rank 0 is kept from one valid pixel on (the count is at least 1).
    return np.concatenate([np.ones(1, np.int64), n]).astype(np.int32)


def _top_fraction_mean(loss: jax.Array, valid: jax.Array, k: float) -> jax.Array:
    r"""Mean of the largest ``max(1, ⌊n k / 100⌋)`` of the valid entries of each row.

    ``loss`` and ``valid`` are ``[N, P]``; ``n`` is the row's valid count. The static size of the
    top-k is that of a row whose every pixel is valid; the entries past the row's own count are
    masked out, so excluded pixels are never candidates and the result is the same as removing
    them. A row without a valid entry gives 0.
    """
    thresholds = _selected_count_thresholds(loss.shape[-1], k)
    keys = jnp.where(valid, loss, -jnp.inf)
    top, _ = jax.lax.top_k(keys, thresholds.shape[0])
    count = jnp.sum(valid, axis=-1, dtype=jnp.int32)
    chosen = count[:, None] >= jnp.asarray(thresholds)[None, :]
    total = jnp.sum(jnp.where(chosen, top, jnp.zeros((), loss.dtype)), axis=-1)
    return divide(total, jnp.sum(chosen, axis=-1).astype(loss.dtype))


# ----------------------------------------------------------------------------------------------
# Public API.


@define_loss
def cross_entropy_loss(
    *,
    class_weights: ArrayLike | None = None,
    pos_weight: ArrayLike | None = None,
    label_smoothing: ArrayLike = 0.0,
) -> LossDefinition:
    r"""Computes the pixel-wise cross-entropy, optionally class-weighted (WCE) and smoothed.

    Each pixel is a classification problem of its own. Class weights counter the bias towards
    frequent classes; label smoothing discourages over-confident logits (Müller et al. 2019).

    Categorical form (``activation="softmax"``), for pixel :math:`i` with label :math:`y_i`,
    class weights :math:`w` (all 1 by default) and smoothing :math:`\varepsilon`:

    .. math::

       \ell_i = (1 - \varepsilon)\, w_{y_i} (-\log p_{i y_i})
                + \frac{\varepsilon}{C} \sum_c w_c (-\log p_{ic}), \qquad
       \mathrm{mean} = \frac{\sum_i m_i \ell_i}{\sum_i m_i w_{y_i}}

    with :math:`-\log p_{iy} = \operatorname{logsumexp}_c x_{ic} - x_{iy}` and :math:`m_i` the
    pixel weights (``mask``, ``ignore_index``): PyTorch's ``CrossEntropyLoss(weight,
    ignore_index, label_smoothing)`` exactly, including its weighted mean. Dense (soft) targets
    :math:`g` give :math:`\ell_i = -\sum_c w_c \tilde g_{ic} \log p_{ic}` with
    :math:`\tilde g = (1 - \varepsilon) g + \varepsilon / C` (optax ``smooth_labels``); the
    weighted mean then divides by :math:`\sum_i m_i \sum_c w_c g_{ic}`, the expected class weight
    of the target, so one-hot float targets and integer labels agree. (PyTorch divides soft
    targets by the pixel count instead; the two agree without ``class_weights`` whenever each
    target row sums to 1.)

    Binary / multi-label form (``activation="sigmoid"``), per channel :math:`c`, with the
    positive weight :math:`\rho_c` and smoothed targets :math:`\tilde g = (1-\varepsilon) g +
    \varepsilon/2` (Keras' binary rule):

    .. math::

       \ell_i = \frac{1}{C} \sum_c w_c \bigl[-\rho_c \tilde g_{ic} \log \sigma(x_{ic})
                - (1 - \tilde g_{ic}) \log \sigma(-x_{ic})\bigr], \qquad
       \mathrm{mean} = \frac{\sum_i m_i \ell_i}{\sum_i m_i},

    PyTorch's ``BCEWithLogitsLoss(weight, pos_weight)``: class weights rescale, they do not
    renormalise. Integer labels ``{0, 1}`` are accepted with one channel.

    Args:
      <data args>
      class_weights: ``[C]`` class weights: the weighted mean above for the categorical form, a
        per-channel factor for the sigmoid form.
      pos_weight: scalar or ``[C]`` weight of the positive term of the sigmoid form (e.g.
        negatives / positives); an error for the categorical form.
      label_smoothing: :math:`\varepsilon \in [0, 1)`.
      <shared args>

    Returns:
      A float32 scalar (float64 for float64 logits under x64), or ``[B]`` for
      ``reduction="none"``. Without any valid pixel the loss is 0, with zero gradient. An
      integer label outside ``[0, C)`` that is not ``ignore_index`` makes value and gradient
      NaN (a forgotten ``ignore_index=255`` shows at once; :func:`jaxseg_losses.checked` names
      it).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 2.0], [1.0, 0.0]]])   # [B=1, P=3, C=2]
      >>> labels = jnp.array([[0, 1, 255]])
      >>> print(f"{jsl.cross_entropy_loss(logits, labels, ignore_index=255):.4f}")   # ln(1+e^-2)
      0.1269
      >>> w = jnp.array([1.0, 3.0])
      >>> loss = jax.jit(jsl.cross_entropy_loss)(logits, labels % 2, class_weights=w)
      >>> print(f"{loss:.4f}")   # (0.1269 + 3 * 0.1269 + 3 * 1.3133) / 7
      0.6354

    References:
      PyTorch ``torch.nn.CrossEntropyLoss`` and ``BCEWithLogitsLoss`` documentation. Müller,
      Kornblith & Hinton, "When does label smoothing help?", NeurIPS 2019.
    """
    return LossDefinition.pixel_mean(
        _terms.cross_entropy_pixels(class_weights, pos_weight, label_smoothing)
    )


@documented
def cross_entropy_map(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    activation: str | None = "softmax",
    class_axis: int = -1,
    class_weights: ArrayLike | None = None,
    pos_weight: ArrayLike | None = None,
    label_smoothing: ArrayLike = 0.0,
    ignore_index: int | None = None,
    mask: ArrayLike | None = None,
) -> jax.Array:
    r"""Computes the unreduced cross-entropy of every pixel, for hard-pixel mining or display.

    The map holds :math:`m_i \ell_i` with :math:`\ell_i` as in :func:`cross_entropy_loss`
    (class weights included, as PyTorch's ``reduction="none"``) and :math:`m_i` the pixel weight:
    0 at ignored and masked pixels. Its sum is PyTorch's ``reduction="sum"`` (a sum over pixels;
    ``cross_entropy_loss(..., reduction="sum")`` adds the per-sample means instead).

    .. math::

       \mathrm{map}_i = m_i \ell_i

    Args:
      <data args>
      <map args>
      class_weights: ``[C]`` class weights (see :func:`cross_entropy_loss`).
      pos_weight: scalar or ``[C]`` positive weight of the sigmoid form.
      label_smoothing: :math:`\varepsilon \in [0, 1)`.
      <map mask args>

    <map returns>

    Examples:
      <map example setup>
      >>> labels = jnp.array([[0, 0, 255]])
      >>> print(jnp.round(jsl.cross_entropy_map(logits, labels, ignore_index=255), 4))
      [[0.1269 2.1269 0.    ]]

    References:
      PyTorch ``torch.nn.CrossEntropyLoss(reduction="none")`` documentation.
    """
    terms = _terms.cross_entropy_pixels(class_weights, pos_weight, label_smoothing)
    return _terms.pixel_map(terms, logits, labels, activation, class_axis, ignore_index, mask)


@define_loss
def poly_cross_entropy_loss(
    *,
    epsilon: ArrayLike = 1.0,
    class_weights: ArrayLike | None = None,
    label_smoothing: ArrayLike = 0.0,
) -> LossDefinition:
    r"""Computes the Poly-1 loss: cross-entropy plus :math:`\varepsilon (1 - p_t)` per pixel.

    The Taylor expansion of cross-entropy in :math:`1 - p_t` is
    :math:`\sum_{j \ge 1} (1 - p_t)^j / j`; PolyLoss perturbs its leading coefficient, which
    controls how strongly the gradient keeps pushing already-confident pixels (Leng et al.
    2022). Categorical form, with the smoothed targets :math:`\tilde g = (1 - s)\,g + s / C`
    (one-hot :math:`g` for integer labels) and class weights :math:`w`:

    .. math::

       \ell_i = \sum_c w_c\, \tilde g_{ic} \bigl[-\log p_{ic} + \varepsilon (1 - p_{ic})\bigr],
       \qquad \mathrm{mean} = \frac{\sum_i m_i \ell_i}{\sum_i m_i \sum_c w_c g_{ic}},

    which for a one-hot label without smoothing is :math:`w_y [-\log p_y + \varepsilon (1 -
    p_y)]`, normalised by :math:`\sum m_i w_{y_i}`, as :func:`cross_entropy_loss` (PyTorch's
    weighted mean). :math:`\varepsilon = 0` is exactly :func:`cross_entropy_loss`; the
    cross-entropy part reads the same shared statistics (log-sum-exp and the label's logit), so
    in :func:`~jaxseg_losses.combine` with CE or Dice nothing is computed twice. Sigmoid form,
    per channel, with :math:`p_t = \tilde g p + (1 - \tilde g)(1 - p)` and
    :math:`\tilde g = (1 - s) g + s / 2`: :math:`\ell_{ic} = w_c [\mathrm{BCE}_{ic} +
    \varepsilon (1 - p_t)]`, averaged over channels (Leng et al.'s Poly-1 for sigmoid outputs).
    Sums over pixels, so it adds over samples, micro-batches and devices like CE.

    Peers: optax ``poly_loss_cross_entropy(logits, one_hot, epsilon=e)`` is :math:`\ell_i`
    with ``epsilon=e`` and ``reduction="none"`` per pixel (optax's default ε is 2, this
    function's 1, the value of the paper's Poly-1 formula); pass
    ``optax.smooth_labels(one_hot, s)`` there for ``label_smoothing=s``. The paper's
    TensorFlow snippet (``poly1_cross_entropy``) smooths the labels the same way.

    Args:
      <data args>
      epsilon: the coefficient :math:`\varepsilon` of the first polynomial term; a real number
        :math:`\ge -1` (the loss stays non-negative; the paper uses 2 for ImageNet and -1 for
        detection), default 1.
      class_weights: ``[C]`` class weights, as in :func:`cross_entropy_loss`.
      label_smoothing: :math:`s \in [0, 1)`.
      <shared args>

    <pixel loss returns>

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 2.0], [1.0, 0.0]]])   # [B=1, P=3, C=2]
      >>> labels = jnp.array([[0, 1, 255]])
      >>> loss = jsl.poly_cross_entropy_loss(logits, labels, ignore_index=255)
      >>> print(f"{loss:.4f}")   # ln(1 + e^-2) + 1 - σ(2)
      0.2461
      >>> ce = jsl.cross_entropy_loss(logits, labels, ignore_index=255)
      >>> bool(jsl.poly_cross_entropy_loss(logits, labels, epsilon=0.0, ignore_index=255) == ce)
      True

    References:
      Leng, Tan, Liu, Cubuk, Shi, Cheng, Anguelov & Tan, "PolyLoss: A Polynomial Expansion
      Perspective of Classification Loss Functions", ICLR 2022.
    """
    _checks.check_real("epsilon", epsilon, low=-1.0)
    _terms.check_ce_options(class_weights, None, label_smoothing)
    return LossDefinition.pixel_mean(
        lambda inputs: _poly_terms(
            inputs,
            epsilon=epsilon,
            class_weights=class_weights,
            label_smoothing=label_smoothing,
        )
    )


@define_loss
def topk_cross_entropy_loss(
    *,
    k: float = 10.0,
    class_weights: ArrayLike | None = None,
    label_smoothing: ArrayLike = 0.0,
) -> LossDefinition:
    r"""Computes the top-k cross-entropy: the mean of the largest k % of the pixel losses.

    Hard-pixel mining (nnU-Net's ``TopKLoss``, after Wu et al. 2016's bootstrapped CE): only
    the worst-predicted pixels train, so the many easy background pixels stop diluting the
    gradient. With :math:`\ell_i` the per-pixel cross-entropy of :func:`cross_entropy_map`
    (class weights and smoothing included, :math:`w_{y_i}(-\log p_{iy_i})` without smoothing),
    :math:`V` the valid pixels of a row (a sample, or the batch with ``aggregate="batch"``) and
    :math:`T` the :math:`n = \max(1, \lfloor |V| k / 100 \rfloor)` largest :math:`\ell_i` in
    :math:`V`:

    .. math::

       \ell = \frac{1}{n} \sum_{i \in T} \ell_i

    The floor is nnU-Net's ``int(|V| * k / 100)`` in Python (float64) arithmetic, decided on the
    host once per shape: the selection and the divisor are the same :math:`n` (``k=18.4`` of
    375 valid pixels keeps 68, the float64 floor of 68.99999999999999, as nnU-Net does).

    (a plain mean: class weights scale the pixel losses, they do not renormalise). Ignored and
    masked pixels are not candidates at all, exactly as if they were removed; ``mask`` is binary
    here (weight ``> 0`` keeps a pixel), as for the Lovász losses. ``k`` is static: the top-k has
    the static size of a row whose every pixel is valid, and the entries past a row's own
    :math:`n` are masked out, so the loss jits with any mask. Gradients flow to the selected
    pixels only; the selection itself is piecewise constant.

    ``aggregate="sample"`` (the default) selects within each sample: the per-sample values add
    over samples, micro-batches and devices (``axis_name``, ``accumulate``), and the mean over
    samples is taken as for every loss. ``aggregate="batch"`` selects over the whole batch
    (nnU-Net): that is not a sum over pixels, so it cannot be split over micro-batches or a
    mapped axis, and is refused there with a ``ValueError`` (under ``jax.jit`` on sharded arrays
    it needs no ``axis_name``).

    Peers: nnU-Net's ``TopKLoss(k=k, ignore_index=255)`` on ``[B, C, *spatial]`` logits equals
    ``k=k, aggregate="batch", class_axis=1`` when no pixel is ignored. nnU-Net takes
    :math:`\lfloor N k / 100 \rfloor` of all :math:`N` voxels, ignored ones included (their loss
    0 can then be selected and dilutes the mean); here ignored pixels are removed from the
    candidates and the count, which is what slicing them away would give. nnU-Net's count can
    be 0 (a NaN mean for tiny inputs); here it is at least 1.

    Args:
      <data args>
      k: the percentage of the valid pixels kept, a Python number in (0, 100] (default 10,
        nnU-Net's); ``k=100`` is the cross-entropy mean.
      class_weights: ``[C]`` factors of each pixel's loss by its label's class.
      label_smoothing: :math:`s \in [0, 1)`, as in :func:`cross_entropy_loss`.
      <shared args>

    <pixel loss returns>

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 2.0], [1.0, 0.0], [0.0, 1.0]]])   # [1, 4, 2]
      >>> labels = jnp.array([[0, 0, 1, 255]])
      >>> jsl.cross_entropy_map(logits, labels, ignore_index=255).round(4)
      Array([[0.1269, 2.1269, 1.3133, 0.    ]], dtype=float32)
      >>> loss = jax.jit(lambda x, y: jsl.topk_cross_entropy_loss(x, y, k=70.0, ignore_index=255))
      >>> print(f"{loss(logits, labels):.4f}")   # ⌊3 · 0.7⌋ = 2 pixels: (2.1269 + 1.3133) / 2
      1.7201

    References:
      Wu, Shen & van den Hengel, "Bridging Category-level and Instance-level Semantic Image
      Segmentation", arXiv:1605.06885, 2016 (online bootstrapping). Isensee et al., "nnU-Net",
      Nature Methods 2021 (``TopKLoss``).
    """
    k = _check_topk(k)
    terms = _terms.cross_entropy_pixels(class_weights, None, label_smoothing)

    def sums(inputs: Inputs) -> dict[str, jax.Array]:
        loss, _ = terms(inputs)
        selected_mean = _top_fraction_mean(loss, inputs.weights > 0, k)
        return {"loss": selected_mean + inputs.invalid_label_term()}

    return LossDefinition(sums=sums, finish=lambda s: s["loss"], pools=False)


@define_loss(activations=("sigmoid",))
def binary_cross_entropy_loss(
    *,
    class_weights: ArrayLike | None = None,
    pos_weight: ArrayLike | None = None,
    label_smoothing: ArrayLike = 0.0,
) -> LossDefinition:
    r"""The sigmoid cross-entropy, registered as ``"bce"``.

    :func:`jaxseg_losses.cross_entropy_loss` with ``activation="sigmoid"`` fixed, so that a
    combination such as ``combine("bce+dice", activation="sigmoid")`` or a softmax combination
    with a binary side term can name it (PyTorch ``BCEWithLogitsLoss``).

    Args:
      <data args>
      class_weights: ``[C]`` per-channel factors.
      pos_weight: scalar or ``[C]`` weight of the positive term.
      label_smoothing: :math:`\varepsilon \in [0, 1)`, targets pulled towards 1/2.
      <shared args>

    Returns:
      A float32 scalar, or ``[B]`` for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> logits = jnp.array([[[2.0], [-1.0]]])   # [B=1, P=2, C=1]
      >>> labels = jnp.array([[1, 0]])
      >>> total, parts = jsl.combine("bce+dice", activation="sigmoid")(logits, labels)
      >>> print(f"{parts['bce']:.4f}")   # (ln(1 + e^-2) + ln(1 + e^-1)) / 2
      0.2201
    """
    return cross_entropy_loss.definition(
        class_weights=class_weights, pos_weight=pos_weight, label_smoothing=label_smoothing
    )
