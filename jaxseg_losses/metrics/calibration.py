r"""Calibration error: how far the confidence of a prediction is from how often it is right.

A model is calibrated when, among the pixels it predicts with confidence 0.8, 80 % are right.
The calibration error measures the gap by *binning*: the confidences are split into bins of equal
width on :math:`[0, 1]`, and in each bin :math:`k` the mean confidence :math:`\bar p_k` is compared
with the accuracy :math:`\bar a_k` (the share of its pixels that are right), weighted by the
share :math:`n_k / N` of the pixels that fall in the bin:

.. math::

   \mathrm{ECE} = \sum_k \frac{n_k}{N} \big|\bar a_k - \bar p_k\big|, \qquad
   \mathrm{RMSCE} = \Big(\sum_k \frac{n_k}{N} (\bar a_k - \bar p_k)^2\Big)^{1/2}, \qquad
   \mathrm{MCE} = \max_k \big|\bar a_k - \bar p_k\big|

Two forms, each with one peer's semantics:

* :func:`calibration_error` (torchmetrics' ``multiclass_calibration_error`` and
  ``binary_calibration_error``): one value pooled over every pixel that counts. With
  :math:`C \ge 2` classes a pixel's confidence is its top probability, right when the top class
  is its label (*top-label* calibration); with one channel, the foreground probability against
  the label (0 or 1). :func:`reliability_diagram` returns the bins; :class:`CalibrationAccumulator`
  streams them over an evaluation and gives the value of all the data at once.
* :func:`per_class_calibration_error` (MONAI's ``CalibrationErrorMetric``): one value per image
  and class ``[B, C]``, class :math:`c` one-vs-rest (:math:`p_c` against :math:`[y = c]`),
  reduced as the expected (ECE), average (ACE, over non-empty bins) or maximum (MCE) error; it
  streams into :class:`PerImageAccumulator`.

**Bins.** Both peers bin with the float32 edges of ``torch.linspace``, and so does this module,
bit for bit (:func:`bin_edges`): a confidence on an edge lands where the peer puts it. The top-label
form has bins :math:`[e_k, e_{k+1})` of ``linspace(0, 1, n + 1)`` and one more for a confidence
of exactly 1 (a saturated softmax): :math:`n + 1` bins, as torchmetrics. The per-class form has
the upper edges :math:`u_k` of ``linspace(0, 1 + 2^{-23}, n + 1)`` and bins
:math:`(u_k, u_{k+1}]` (``[u_k, u_{k+1})`` with ``right=True``), the first and last open below
and above, as MONAI.

**Data contract.** ``predictions`` are scores ``[B, *spatial, C]`` (``class_axis`` moves C),
made probabilities by ``activation``: ``"softmax"`` (default, as for every loss), ``"sigmoid"``
(one channel, or independent channels in the per-class form) or ``None`` (probabilities).
``labels`` are integer classes ``[B, *spatial]`` (0 or 1 with one channel); the per-class form
also takes dense targets ``[B, *spatial, C]``. A pixel whose ``mask`` is False/0 or whose label
is ``ignore_index`` counts nowhere, whatever it holds; nor does a label that is no class, which
``jsl.checked`` reports, with non-finite scores and probabilities outside :math:`[0, 1]`.
Everything runs under ``jax.jit`` with static shapes; results are float32.

References:
  Naeini, Cooper & Hauskrecht, "Obtaining Well Calibrated Probabilities Using Bayesian
  Binning", AAAI 2015.

  Guo, Pleiss, Sun & Weinberger, "On Calibration of Modern Neural Networks", ICML 2017.
"""

from __future__ import annotations

import functools
import numbers
from fractions import Fraction
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg_losses._core import checks as _checks
from jaxseg_losses._core import exact as _exact
from jaxseg_losses._core.exact import ExactCount
from jaxseg_losses._core.inputs import compute_dtype
from jaxseg_losses.metrics._prepare import check_finite_scores, counted_pixels

ArrayLike = jax.typing.ArrayLike

CALIBRATION_NORMS = ("l1", "l2", "max")
CALIBRATION_REDUCTIONS = ("expected", "average", "maximum")
# MONAI's last edge, 1 + float32 eps, keeps a probability of 1 inside the last bin.
_MONAI_END = 1.0 + 2.0**-23

# ----------------------------------------------------------------------------------------------
# The edges of the bins.


def _round_to_float32(x: Fraction) -> np.float32:
    """``x`` rounded once to the nearest float32 (ties to even), exactly."""
    near, inf = np.float32(float(x)), np.float32(np.inf)
    candidates = (np.nextafter(near, -inf), near, np.nextafter(near, inf))
    return min(candidates, key=lambda c: (abs(Fraction(float(c)) - x), int(c.view(np.uint32)) & 1))


@functools.lru_cache(maxsize=64)
def _edges(num_bins: int, end_value: float) -> tuple[float, ...]:
    end = Fraction(end_value)
    step = Fraction(float(_round_to_float32(end / num_bins)))
    half = (num_bins + 1) // 2
    exact = [step * k if k < half else end - step * (num_bins - k) for k in range(num_bins + 1)]
    return tuple(float(_round_to_float32(x)) for x in exact)


def bin_edges(num_bins: int, *, end: float = 1.0) -> np.ndarray:
    r"""Returns the float32 edges of ``num_bins`` equal bins on ``[0, end]``, as PyTorch makes them.

    The values of ``torch.linspace(0, end, num_bins + 1)`` (float32, on CPU): the step
    :math:`s = \mathrm{fl}(\mathrm{end} / n)` and each edge rounded once,
    :math:`e_k = \mathrm{fl}(k s)` in the first half and :math:`\mathrm{fl}(\mathrm{end} - (n - k)
    s)` in the second. They are within an ulp of :math:`k \cdot \mathrm{end} / n` but not always
    its nearest float32 (for 15 bins, 6 of the 16 edges are not), which decides the bin of a
    confidence that lies on an edge; the calibration errors here bin with these edges so that
    they agree with torchmetrics and MONAI to the last bit.

    Args:
      num_bins: :math:`n \ge 1`, a Python int.
      end: the last edge, rounded to float32 (MONAI uses ``1 + 2**-23``).

    Returns:
      ``[num_bins + 1]`` float32 NumPy edges, increasing from 0 to ``end``.

    Examples:
      >>> from jaxseg_losses.metrics.calibration import bin_edges
      >>> print(bin_edges(4))
      [0.   0.25 0.5  0.75 1.  ]
      >>> print(f"{bin_edges(15)[3]:.9f}")     # 0.2 is 0.200000003 in float32
      0.200000018
    """
    num_bins = _check_num_bins(num_bins)
    if isinstance(end, bool) or not isinstance(end, numbers.Real) or not 0 < end < np.inf:
        raise ValueError(f"`end` must be a positive finite number; got {end!r}.")
    return np.asarray(_edges(num_bins, float(np.float32(end))), np.float32)


# ----------------------------------------------------------------------------------------------
# Validation and the probabilities of every pixel.


def _check_num_bins(num_bins: Any) -> int:
    if not isinstance(num_bins, numbers.Integral) or isinstance(num_bins, bool):
        raise TypeError(
            f"`num_bins` must be a Python int (a static shape); got {type(num_bins).__name__} "
            f"{num_bins!r}."
        )
    if num_bins < 1:
        raise ValueError(f"`num_bins` must be at least 1; got {num_bins}.")
    return int(num_bins)


class _Pixels(NamedTuple):
    """The validated inputs, channels last, pixels flattened."""

    probabilities: jax.Array  # [B, P, C] in the compute dtype; any value on excluded pixels
    labels: jax.Array | None  # [B, P] int32 (0 where no class), or None for dense targets
    targets: jax.Array | None  # [B, P, C] float dense targets, or None
    counted: jax.Array  # [B, P] bool: the pixels that count


def _pixels(
    predictions: Any,
    labels: Any,
    activation: Any,
    class_axis: Any,
    ignore_index: Any,
    mask: Any,
    *,
    top_label: bool,
) -> _Pixels:
    """Validates the arguments and lays them out as :class:`_Pixels` (``top_label``: integer
    labels, and exclusive classes unless there is one channel)."""
    scores = _checks.as_float_array("predictions", predictions)
    labels = jnp.asarray(labels)
    ignore_index = _checks.check_label_value("ignore_index", ignore_index)
    _checks.check_choice("activation", activation, _checks.ACTIVATIONS)
    _checks.check_min_rank("predictions", scores, 2, "[batch, *spatial, num_classes]")
    axis = _checks.normalize_axis("class_axis", class_axis, scores.ndim)
    if axis == 0:
        raise ValueError(
            f"`class_axis` cannot be the batch axis 0; `predictions` have shape "
            f"{tuple(scores.shape)} ([B, *spatial, C])."
        )
    channels = scores.shape[axis]
    pixel_shape = tuple(s for i, s in enumerate(scores.shape) if i != axis)
    if activation == "softmax" and channels < 2:
        raise ValueError(
            "activation='softmax' needs C >= 2 classes; `predictions` have one channel (a binary "
            "score): pass activation='sigmoid' for a logit, or None for a probability."
        )
    if top_label and activation == "sigmoid" and channels > 1:
        raise ValueError(
            "activation='sigmoid' with C >= 2 channels scores each class on its own (multi-label), "
            "which has no top label: use per_class_calibration_error, or activation='softmax'."
        )
    dense = labels.dtype == jnp.bool_ or jnp.issubdtype(labels.dtype, jnp.floating)
    if dense and top_label:
        raise TypeError(
            f"`labels` must be integer class indices [B, *spatial]; got dtype {labels.dtype}."
        )
    if not dense and not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"`labels` must be integer classes or dense targets; got {labels.dtype}.")
    if dense and ignore_index is not None:
        raise ValueError(
            "`ignore_index` applies to integer labels; dense targets were given. Pass `mask` to "
            "exclude pixels."
        )
    hint = "Labels have the shape of `predictions`, without the class axis if integer."
    _checks.check_shape("labels", labels, tuple(scores.shape) if dense else pixel_shape, hint=hint)
    counted = counted_pixels(mask, pixel_shape, labels, ignore_index)
    check_finite_scores(scores, axis, counted)
    batch = pixel_shape[0]
    probabilities = _probabilities(scores, axis, activation, counted)
    probabilities = probabilities.reshape(batch, -1, channels)
    counted = counted.reshape(batch, -1)
    if dense:
        targets = jnp.moveaxis(labels, axis, -1).reshape(batch, -1, channels)
        targets = targets.astype(probabilities.dtype)
        known = jnp.all((targets >= 0) & (targets <= 1), axis=-1)
        _checks.check_values(jnp.all(known | ~counted), "dense `labels` must lie in [0, 1]")
        return _Pixels(probabilities, None, targets, counted)
    return _label_pixels(probabilities, labels.reshape(batch, -1), counted, ignore_index)


def _probabilities(
    scores: jax.Array, axis: int, activation: str | None, counted: jax.Array
) -> jax.Array:
    """Channels-last probabilities in the compute dtype; ``jsl.checked`` requires ``[0, 1]``
    of given probabilities on the pixels that count."""
    x = jnp.moveaxis(scores.astype(compute_dtype(scores.dtype)), axis, -1)
    if activation == "softmax":
        return jax.nn.softmax(x, axis=-1)
    if activation == "sigmoid":
        return jax.nn.sigmoid(x)
    inside = ((scores >= 0) & (scores <= 1)) | ~jnp.expand_dims(counted, axis)
    _checks.check_elements(
        "predictions", inside, scores, "be probabilities in [0, 1] (activation=None)"
    )
    return x


def _label_pixels(
    probabilities: jax.Array, labels: jax.Array, counted: jax.Array, ignore_index: int | None
) -> _Pixels:
    """Integer labels: a counted pixel whose label is no class does not count (reported)."""
    num_values = max(probabilities.shape[-1], 2)  # one channel: labels 0 and 1
    labels = labels.astype(jnp.int32)
    in_range = (labels >= 0) & (labels < num_values)
    allowed = "" if ignore_index is None else f" or equal ignore_index ({ignore_index})"
    _checks.check_elements(
        "labels", in_range | ~counted, labels, f"lie in [0, {num_values}){allowed}"
    )
    counted = counted & in_range
    return _Pixels(probabilities, jnp.where(in_range, labels, 0), None, counted)


# ----------------------------------------------------------------------------------------------
# Binned sums.


def _one_hot_sums(
    index: jax.Array,
    counted: jax.Array,
    values: tuple[jax.Array, ...],
    bins: int,
    axis: int | tuple[int, ...],
) -> tuple[jax.Array, ...]:
    """``(count, *sums)``: per bin, the int32 number of counted pixels and the sums of
    ``values``, reduced over ``axis`` (the pixels). A comparison with every bin, fused into the
    reduction, keeps the sums deterministic (no scatter)."""
    every_bin = jnp.arange(bins, dtype=jnp.int32).reshape((1,) * index.ndim + (bins,))
    hot = (index[..., None] == every_bin) & counted[..., None]
    count = jnp.sum(hot, axis=axis, dtype=jnp.int32)
    sums = tuple(
        jnp.sum(jnp.where(hot, v[..., None], jnp.zeros((), v.dtype)), axis=axis) for v in values
    )
    return (count, *sums)


class _TopLabelBins(NamedTuple):
    """The ``num_bins + 1`` bins of :func:`calibration_error`, pooled over a batch."""

    count: jax.Array  # int32
    confidence: jax.Array  # float32 sums
    correct: jax.Array  # int32


def _top_label_bins(predictions: Any, labels: Any, num_bins: int, *excluded: Any) -> _TopLabelBins:
    """The bins of a batch; ``excluded`` is ``(activation, class_axis, ignore_index, mask)``."""
    pixels = _pixels(predictions, labels, *excluded, top_label=True)
    probabilities, labels, counted = pixels.probabilities, pixels.labels, pixels.counted
    assert labels is not None
    if probabilities.shape[-1] == 1:  # the foreground probability against the label
        confidence = probabilities[..., 0]
        correct = labels == 1
    else:
        confidence = jnp.max(probabilities, axis=-1)
        correct = jnp.argmax(probabilities, axis=-1).astype(jnp.int32) == labels
    edges = jnp.asarray(bin_edges(num_bins), confidence.dtype)
    # torchmetrics' bucketize(right=True) - 1: [e_k, e_k+1), and a bin of its own for 1.
    index = jnp.searchsorted(edges, confidence, side="right", method="compare_all") - 1
    index = jnp.clip(index, 0, num_bins).astype(jnp.int32)
    values = (confidence.astype(jnp.float32), correct.astype(jnp.int32))
    count, total, hits = _one_hot_sums(index, counted, values, num_bins + 1, axis=(0, 1))
    return _TopLabelBins(count, total, hits)


def _top_label_error(
    count: jax.Array, confidence: jax.Array, correct: jax.Array, norm: str
) -> jax.Array:
    """The error of float32 bins (counts, sums of confidences, numbers right); NaN without a
    pixel, and an empty bin adds nothing."""
    total = jnp.sum(count)
    gap = jnp.abs(correct - confidence)  # n_k |a_k - p_k|
    if norm == "l1":
        value = jnp.sum(gap) / jnp.where(total > 0, total, 1.0)
    elif norm == "l2":
        per_bin = gap * gap / jnp.where(count > 0, count, 1.0)
        value = jnp.sqrt(jnp.sum(per_bin) / jnp.where(total > 0, total, 1.0))
    else:
        value = jnp.max(gap / jnp.where(count > 0, count, 1.0))
    return jnp.where(total > 0, value, jnp.float32(jnp.nan))


# ----------------------------------------------------------------------------------------------
# The top-label form (torchmetrics).


def calibration_error(
    predictions: ArrayLike,
    labels: ArrayLike,
    *,
    num_bins: int = 15,
    norm: str = "l1",
    activation: str | None = "softmax",
    class_axis: int = -1,
    ignore_index: int | None = None,
    mask: ArrayLike | None = None,
) -> jax.Array:
    r"""Computes the top-label calibration error (ECE, RMS or MCE) over all counted pixels.

    The gap between how confident the prediction is and how often it is right, pooled over every
    pixel of the batch: the expected calibration error (``norm="l1"``, the share-weighted mean
    gap over the bins), the root-mean-square error (``"l2"``) or the largest gap of any bin
    (``"max"``). 0 for a calibrated model; an over-confident one scores its excess confidence.

    .. math::

       \mathrm{CE}_{\ell_1} = \sum_{k=0}^{n} \frac{n_k}{N} |\bar a_k - \bar p_k|, \quad
       \mathrm{CE}_{\ell_2} = \Big(\sum_{k=0}^{n} \frac{n_k}{N} (\bar a_k - \bar p_k)^2\Big)^{1/2},
       \quad \mathrm{CE}_{\max} = \max_{k} |\bar a_k - \bar p_k|

    over the bins :math:`[e_k, e_{k+1})` of :func:`bin_edges` and the bin of confidence exactly
    1 (:math:`n + 1` bins, torchmetrics' binning); :math:`n_k` pixels, :math:`N = \sum_k n_k`,
    :math:`\bar p_k` the mean confidence and :math:`\bar a_k` the accuracy of bin :math:`k`
    (an empty bin adds nothing). With :math:`C \ge 2` classes, a pixel's confidence is
    :math:`\max_c p_c` and it is right when the arg-max is its label; with one channel the
    confidence is the foreground probability and the accuracy the label (0 or 1).

    torchmetrics: ``multiclass_calibration_error(preds, target, num_classes, n_bins, norm,
    ignore_index)`` and ``binary_calibration_error`` (one channel). Without a counted pixel
    every norm gives NaN (torchmetrics: NaN for ``"l1"``, 0 for the others).

    Args:
      predictions: ``[B, *spatial, C]`` float scores (``class_axis`` moves C): logits, or
        probabilities with ``activation=None``; ``C = 1`` for a binary problem's foreground.
      labels: ``[B, *spatial]`` integer classes in ``[0, C)`` (0 or 1 with one channel).
      num_bins: :math:`n \ge 1` bins of equal width (torchmetrics' ``n_bins``).
      norm: ``"l1"`` (ECE, default), ``"l2"`` (RMS calibration error) or ``"max"`` (MCE).
      activation: ``"softmax"`` (default, :math:`C \ge 2`), ``"sigmoid"`` (:math:`C = 1`) or
        ``None``: ``predictions`` are probabilities. torchmetrics applies the activation only
        when some score lies outside :math:`[0, 1]`; here it is explicit.
      class_axis: the axis of ``predictions`` holding the classes (``1`` for NCHW).
      ignore_index: a label value whose pixels count nowhere (e.g. 255).
      mask: ``[B, *spatial]`` bool or numeric; a False/0 pixel counts nowhere.

    Returns:
      A float32 scalar in :math:`[0, 1]`; NaN when no pixel counts.

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> from jaxseg_losses.metrics.calibration import calibration_error
      >>> probabilities = jnp.array([[[0.7, 0.3], [0.9, 0.1], [0.2, 0.8], [0.4, 0.6]]])
      >>> labels = jnp.array([[0, 1, 1, 0]])
      >>> print(calibration_error(probabilities, labels, activation=None, num_bins=5))
      0.25
      >>> print(calibration_error(probabilities, labels, activation=None, norm="max"))
      0.9

    References:
      Guo, Pleiss, Sun & Weinberger, "On Calibration of Modern Neural Networks", ICML 2017.
    """
    num_bins = _check_num_bins(num_bins)
    _checks.check_choice("norm", norm, CALIBRATION_NORMS)
    excluded = (activation, class_axis, ignore_index, mask)
    bins = _top_label_bins(predictions, labels, num_bins, *excluded)
    return _top_label_error(
        bins.count.astype(jnp.float32), bins.confidence, bins.correct.astype(jnp.float32), norm
    )


class ReliabilityDiagram(NamedTuple):
    """The bins of a reliability diagram: accuracy against confidence, and how many pixels.

    ``num_bins + 1`` rows: the bins :math:`[e_k, e_{k+1})` of :func:`bin_edges` and, last,
    the bin of confidence exactly 1 (``lower == upper == 1``). Plot ``accuracy`` against
    ``confidence`` (or bars of ``accuracy`` over ``[lower, upper)``) next to the diagonal.

    Attributes:
      lower: ``[K]`` float32 lower edges.
      upper: ``[K]`` float32 upper edges.
      confidence: ``[K]`` float32 mean confidence of each bin; NaN where it is empty.
      accuracy: ``[K]`` float32 share of the bin's pixels that are right; NaN where empty.
      count: ``[K]`` pixels in each bin: int32 (of one call), or an :class:`ExactCount` (of a
        :class:`CalibrationAccumulator`; ``np.asarray`` gives int64).
    """

    lower: jax.Array
    upper: jax.Array
    confidence: jax.Array
    accuracy: jax.Array
    count: Any


def _diagram(count: Any, confidence: jax.Array, correct: jax.Array) -> ReliabilityDiagram:
    num_bins = confidence.shape[-1] - 1
    edges = jnp.asarray(bin_edges(num_bins))
    exact = isinstance(count, ExactCount)
    counted = count.to_float(jnp.float32) if exact else count.astype(jnp.float32)
    safe = jnp.where(counted == 0, jnp.float32(jnp.nan), counted)  # an empty bin has no mean
    return ReliabilityDiagram(
        lower=jnp.concatenate([edges[:-1], edges[-1:]]),
        upper=jnp.concatenate([edges[1:], edges[-1:]]),
        confidence=confidence / safe,
        accuracy=correct / safe,
        count=count,
    )


def reliability_diagram(
    predictions: ArrayLike,
    labels: ArrayLike,
    *,
    num_bins: int = 15,
    activation: str | None = "softmax",
    class_axis: int = -1,
    ignore_index: int | None = None,
    mask: ArrayLike | None = None,
) -> ReliabilityDiagram:
    r"""Computes the bins of :func:`calibration_error`: a reliability diagram of the batch.

    For each bin, its edges, the mean confidence :math:`\bar p_k`, the accuracy
    :math:`\bar a_k` and the number of pixels :math:`n_k`, pooled over every counted pixel: the
    data of a reliability diagram, and everything the calibration errors are computed from
    (ECE :math:`= \sum_k n_k |\bar a_k - \bar p_k| / \sum_k n_k`).

    Args:
      predictions: ``[B, *spatial, C]`` float scores (see :func:`calibration_error`).
      labels: ``[B, *spatial]`` integer classes.
      num_bins: :math:`n \ge 1` bins of equal width.
      activation: ``"softmax"`` (default), ``"sigmoid"`` (:math:`C = 1`) or ``None``.
      class_axis: the axis of ``predictions`` holding the classes.
      ignore_index: a label value whose pixels count nowhere.
      mask: ``[B, *spatial]`` bool or numeric; a False/0 pixel counts nowhere.

    Returns:
      A :class:`ReliabilityDiagram` of ``num_bins + 1`` bins, ``count`` int32.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxseg_losses.metrics.calibration import reliability_diagram
      >>> probabilities = jnp.array([[[0.7, 0.3], [0.9, 0.1], [0.2, 0.8], [0.4, 0.6]]])
      >>> diagram = reliability_diagram(probabilities, jnp.array([[0, 1, 1, 0]]),
      ...                               activation=None, num_bins=5)
      >>> print(diagram.count, diagram.accuracy[3:5], diagram.upper[3:5])
      [0 0 0 2 2 0] [0.5 0.5] [0.8 1. ]

    References:
      DeGroot & Fienberg, "The Comparison and Evaluation of Forecasters", The Statistician
      32(1/2), 1983.
    """
    num_bins = _check_num_bins(num_bins)
    excluded = (activation, class_axis, ignore_index, mask)
    bins = _top_label_bins(predictions, labels, num_bins, *excluded)
    return _diagram(bins.count, bins.confidence, bins.correct.astype(jnp.float32))


# ----------------------------------------------------------------------------------------------
# The per-class form (MONAI).


def _per_class_bins(
    pixels: _Pixels, num_bins: int, right: bool
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(count, probability sums, target sums)`` ``[B, C, num_bins]`` of MONAI's binning."""
    probabilities, counted = pixels.probabilities, pixels.counted
    if pixels.targets is not None:
        targets = pixels.targets
    else:
        assert pixels.labels is not None
        channels = probabilities.shape[-1]
        # One channel is the foreground of a binary problem: its target is the label 1.
        classes = jnp.arange(channels, dtype=jnp.int32) + (1 if channels == 1 else 0)
        hits = pixels.labels[..., None] == classes.reshape(1, 1, channels)
        targets = hits.astype(probabilities.dtype)
    upper = jnp.asarray(bin_edges(num_bins, end=_MONAI_END)[1:], probabilities.dtype)
    # bucketize(p, upper, right): the number of upper edges below p (at or below with right).
    side = "right" if right else "left"
    index = jnp.searchsorted(upper, probabilities, side=side, method="compare_all")
    index = jnp.minimum(index, num_bins - 1).astype(jnp.int32)
    counted = jnp.broadcast_to(counted[..., None], index.shape)
    count, p_sum, t_sum = _one_hot_sums(index, counted, (probabilities, targets), num_bins, axis=1)
    return count, p_sum, t_sum


def _per_class_error(
    count: jax.Array, p_sum: jax.Array, t_sum: jax.Array, reduction: str
) -> jax.Array:
    """MONAI's reductions of ``[..., K]`` bins; empty bins are left out, NaN without a pixel."""
    filled = count > 0
    counts = count.astype(p_sum.dtype)
    gap = jnp.abs(p_sum - t_sum) / jnp.where(filled, counts, 1.0)  # |mean p - mean target|
    nan = jnp.asarray(jnp.nan, p_sum.dtype)
    if reduction == "expected":
        total = jnp.sum(counts, axis=-1)
        value = jnp.sum(jnp.abs(p_sum - t_sum), axis=-1) / jnp.where(total > 0, total, 1.0)
    elif reduction == "average":
        total = jnp.sum(filled, axis=-1, dtype=jnp.int32).astype(p_sum.dtype)
        value = jnp.sum(jnp.where(filled, gap, 0.0), axis=-1) / jnp.where(total > 0, total, 1.0)
    else:
        total = jnp.sum(filled, axis=-1, dtype=jnp.int32)
        value = jnp.max(jnp.where(filled, gap, 0.0), axis=-1)
    return jnp.where(total > 0, value, nan).astype(jnp.float32)


def per_class_calibration_error(
    predictions: ArrayLike,
    labels: ArrayLike,
    *,
    num_bins: int = 20,
    calibration_reduction: str = "expected",
    include_background: bool = True,
    activation: str | None = "softmax",
    right: bool = False,
    class_axis: int = -1,
    ignore_index: int | None = None,
    mask: ArrayLike | None = None,
) -> jax.Array:
    r"""Computes the calibration error of each class, one-vs-rest, for every image (MONAI's).

    For each image and class :math:`c`, how far the probability of :math:`c` is from the
    frequency of :math:`c` among the pixels given that probability: the pixels are binned by
    :math:`p_c`, and in each bin the mean probability is compared with the share of pixels of
    class :math:`c`. ``calibration_reduction`` reduces the bins: ``"expected"`` (ECE, weighted
    by the bins' pixels), ``"average"`` (ACE, the plain mean over non-empty bins) or
    ``"maximum"`` (MCE).

    .. math::

       \mathrm{ECE}_{bc} = \sum_{k} \frac{n_k}{N} |\bar p_k - \bar y_k|, \quad
       \mathrm{ACE}_{bc} = \frac{1}{|K|} \sum_{k \in K} |\bar p_k - \bar y_k|, \quad
       \mathrm{MCE}_{bc} = \max_{k \in K} |\bar p_k - \bar y_k|

    over the counted pixels of image :math:`b`, with :math:`\bar p_k` the mean of :math:`p_c`
    and :math:`\bar y_k` the mean of :math:`[y = c]` (or of the dense target) in bin :math:`k`,
    :math:`K` the non-empty bins; the bins are MONAI's (see the module). Each value is NaN when
    the image has no counted pixel; an empty bin is left out and never makes it NaN.

    MONAI: ``CalibrationErrorMetric(num_bins, include_background, calibration_reduction,
    metric_reduction="none", right)(y_pred, y)``, probabilities and one-hot targets ``[B, C,
    *spatial]``; reduce the values with ``jsl.metrics.reduce``, or stream them into
    :class:`PerImageAccumulator`.

    Args:
      predictions: ``[B, *spatial, C]`` float scores (``class_axis`` moves C); probabilities
        with ``activation=None``.
      labels: ``[B, *spatial]`` integer classes (with one channel, 0 or 1: the channel is the
        foreground), or dense targets in :math:`[0, 1]` (bool or float) with the shape of
        ``predictions`` (one-hot, multi-label or soft).
      num_bins: :math:`n \ge 1` bins of equal width (MONAI's default 20).
      calibration_reduction: ``"expected"`` (default), ``"average"`` or ``"maximum"``.
      include_background: ``False`` leaves out channel 0 (needs :math:`C \ge 2`).
      activation: ``"softmax"`` (default), ``"sigmoid"`` (each channel on its own) or ``None``.
      right: MONAI's ``right``: ``False`` puts a probability on an edge in the bin below it,
        ``True`` in the bin above.
      class_axis: the axis of ``predictions`` (and dense ``labels``) holding the classes.
      ignore_index: a label value whose pixels count nowhere (integer labels).
      mask: ``[B, *spatial]`` bool or numeric; a False/0 pixel counts nowhere.

    Returns:
      float32 ``[B, C]`` (``[B, C - 1]`` without the background).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxseg_losses.metrics.calibration import per_class_calibration_error
      >>> p = jnp.array([[[0.7, 0.3], [0.9, 0.1], [0.2, 0.8], [0.4, 0.6]]])
      >>> labels = jnp.array([[0, 1, 1, 0]])
      >>> print(per_class_calibration_error(p, labels, activation=None, num_bins=5))
      [[0.5 0.5]]
      >>> print(per_class_calibration_error(p, labels, activation=None, num_bins=5,
      ...                                   calibration_reduction="maximum"))
      [[0.9 0.9]]

    References:
      Barfoot et al., "Average Calibration Losses for Reliable Uncertainty in Medical Image
      Segmentation", arXiv:2506.03942, 2025.
    """
    num_bins = _check_num_bins(num_bins)
    _checks.check_choice("calibration_reduction", calibration_reduction, CALIBRATION_REDUCTIONS)
    include_background = _checks.check_bool("include_background", include_background)
    right = _checks.check_bool("right", right)
    pixels = _pixels(
        predictions, labels, activation, class_axis, ignore_index, mask, top_label=False
    )
    count, p_sum, t_sum = _per_class_bins(pixels, num_bins, right)
    if not include_background:
        if count.shape[1] < 2:
            raise ValueError(
                "include_background=False drops channel 0, which would leave no class: there "
                "is a single channel. Pass include_background=True."
            )
        count, p_sum, t_sum = count[:, 1:], p_sum[:, 1:], t_sum[:, 1:]
    return _per_class_error(count, p_sum, t_sum, str(calibration_reduction))


# ----------------------------------------------------------------------------------------------
# Streaming.


_FIELDS = ("count", "correct", "confidence", "confidence_error", "copies")


@jax.tree_util.register_pytree_node_class
class CalibrationAccumulator:
    r"""The bins of :func:`calibration_error` over an evaluation loop, as an immutable pytree.

    Start with :meth:`empty`, fold in each batch with :meth:`update` (inside ``jax.jit`` or a
    Flax NNX ``nnx.jit`` eval step), add accumulators of other hosts or loops with ``+`` (of the
    same number of bins: others raise ``ValueError``), and read the error of everything seen with
    :meth:`compute` (``norm`` ``"l1"``, ``"l2"``, ``"max"``) or the bins with
    :meth:`reliability_diagram`. Per bin it holds the exact numbers of pixels and of right
    predictions (:class:`ExactCount`) and a compensated float32 sum of confidences: the result
    is that of :func:`calibration_error` on all the batches at once (torchmetrics'
    ``MulticlassCalibrationError``, which keeps every confidence), in :math:`O(n)` memory.

    **Devices.** Inside ``shard_map``/``pmap``, pass ``axis_name`` to :meth:`update`: the
    batch's bins are summed over the devices once, and every device holds the totals. Do not
    ``jax.lax.psum`` the accumulator itself: its ``copies`` count (1) would become the device
    count, and :meth:`compute` then raises (or, traced, returns NaN, and ``jsl.checked`` raises).

    Attributes:
      count: ``[n + 1]`` :class:`ExactCount`, pixels per bin (the last: confidence exactly 1).
      correct: ``[n + 1]`` :class:`ExactCount`, right predictions (one channel: label 1) per bin.
      confidence: ``[n + 1]`` float32 sums of the confidences.
      confidence_error: ``[n + 1]`` float32 compensation of ``confidence``.
      copies: ``[]`` int32, 1 unless the accumulator went through a collective sum.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jaxseg_losses.metrics.calibration import CalibrationAccumulator
      >>> @jax.jit
      ... def eval_step(acc, logits, labels):
      ...     return acc.update(logits, labels, ignore_index=255)
      >>> acc = CalibrationAccumulator.empty(num_bins=10)
      >>> for seed in range(3):
      ...     logits = jax.random.normal(jax.random.key(seed), (2, 8, 8, 3))
      ...     labels = jnp.argmax(logits, axis=-1).at[:, 0].set(255)   # row 0 ignored
      ...     acc = eval_step(acc, logits, labels)
      >>> diagram = acc.reliability_diagram()
      >>> int(diagram.count.sum()), bool(jnp.nanmin(diagram.accuracy) == 1.0)
      (336, True)
      >>> print(f"{acc.compute():.4f}")      # always right, under-confident
      0.4076
    """

    __slots__ = ("confidence", "confidence_error", "copies", "correct", "count")
    count: ExactCount
    correct: ExactCount
    confidence: jax.Array
    confidence_error: jax.Array
    copies: jax.Array

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("Create a CalibrationAccumulator with CalibrationAccumulator.empty(...).")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("CalibrationAccumulator is immutable.")

    def tree_flatten(self) -> tuple[tuple[Any, ...], None]:
        return tuple(getattr(self, name) for name in _FIELDS), None

    @classmethod
    def tree_unflatten(cls, aux: None, children: Any) -> "CalibrationAccumulator":
        acc = object.__new__(cls)
        for name, value in zip(_FIELDS, children, strict=True):
            object.__setattr__(acc, name, value)
        return acc

    @classmethod
    def empty(cls, num_bins: int = 15) -> "CalibrationAccumulator":
        """An accumulator with no pixel counted, of ``num_bins`` bins (and the bin of 1)."""
        bins = _check_num_bins(num_bins) + 1
        counts, sums = ExactCount.zeros((bins,)), jnp.zeros((bins,), jnp.float32)
        return cls.tree_unflatten(None, (counts, counts, sums, sums, jnp.ones((), jnp.int32)))

    @property
    def num_bins(self) -> int:
        return self.count.shape[0] - 1

    def update(
        self,
        predictions: ArrayLike,
        labels: ArrayLike,
        *,
        activation: str | None = "softmax",
        class_axis: int = -1,
        ignore_index: int | None = None,
        mask: ArrayLike | None = None,
        axis_name: Any = None,
    ) -> "CalibrationAccumulator":
        """Returns the accumulator with one more batch binned (see :func:`calibration_error`).

        With ``axis_name`` the batch's bins are summed over that mapped axis (the counts
        exactly, below :math:`2^{15}` devices) before they are added, so every device holds the
        totals.
        """
        excluded = (activation, class_axis, ignore_index, mask)
        bins = _top_label_bins(predictions, labels, self.num_bins, *excluded)
        count, correct = ExactCount(bins.count), ExactCount(bins.correct)
        confidence = bins.confidence
        if axis_name is not None:
            count = _exact.psum(count, axis_name)
            correct = _exact.psum(correct, axis_name)
            confidence = jax.lax.psum(confidence, axis_name)
        total, error = _exact.compensated_add(self.confidence, self.confidence_error, confidence)
        return CalibrationAccumulator.tree_unflatten(
            None, (self.count + count, self.correct + correct, total, error, self.copies)
        )

    def __add__(self, other: "CalibrationAccumulator") -> "CalibrationAccumulator":
        if not isinstance(other, CalibrationAccumulator):
            return NotImplemented
        if self._layout() != other._layout():
            raise ValueError(
                "CalibrationAccumulators add only when they have the same bins; got "
                f"{self._layout()} and {other._layout()}."
            )
        total, error = _exact.compensated_add(
            self.confidence, self.confidence_error + other.confidence_error, other.confidence
        )
        copies = jnp.maximum(self.copies, other.copies)
        return CalibrationAccumulator.tree_unflatten(
            None, (self.count + other.count, self.correct + other.correct, total, error, copies)
        )

    def _layout(self) -> str:
        """What must agree for two accumulators to add: the bins."""
        return f"{self.num_bins} bins (and the bin of confidence 1)"

    def compute(self, *, norm: str = "l1") -> jax.Array:
        """The calibration error of every pixel seen: ``"l1"`` (ECE), ``"l2"`` or ``"max"``."""
        _checks.check_choice("norm", norm, CALIBRATION_NORMS)
        value = _compute_jit(self.count, self.confidence, self.confidence_error, self.correct, norm)
        return _exact.refuse_if_summed(self.copies, "CalibrationAccumulator", value)

    def reliability_diagram(self) -> ReliabilityDiagram:
        """The bins of every pixel seen (:class:`ReliabilityDiagram`, ``count`` exact)."""
        diagram = _diagram(
            self.count, self.confidence + self.confidence_error, self.correct.to_float(jnp.float32)
        )
        return _exact.refuse_if_summed(self.copies, "CalibrationAccumulator", diagram)

    def __repr__(self) -> str:
        return f"CalibrationAccumulator(num_bins={self.num_bins})"


@functools.partial(jax.jit, static_argnames="norm")
def _compute_jit(
    count: ExactCount, confidence: jax.Array, error: jax.Array, correct: ExactCount, norm: str
) -> jax.Array:
    return _top_label_error(
        count.to_float(jnp.float32), confidence + error, correct.to_float(jnp.float32), norm
    )


__all__ = [
    "CALIBRATION_NORMS",
    "CALIBRATION_REDUCTIONS",
    "CalibrationAccumulator",
    "ReliabilityDiagram",
    "bin_edges",
    "calibration_error",
    "per_class_calibration_error",
    "reliability_diagram",
]
