r"""The input contract, and the statistics every loss reads from the logits, computed once.

All losses accept the same data:

* ``logits``: ``[B, *spatial, C]`` floats (``class_axis`` moves C elsewhere, e.g. ``1`` for NCHW);
  1-D, 2-D and 3-D spatial shapes.
* ``labels``: integer class indices ``[B, *spatial]``, or dense float targets (one-hot or soft)
  with the same shape and layout as ``logits``. The dtype decides which, never the rank.
* ``mask``: ``[B, *spatial]`` bool or float pixel weights; ``ignore_index`` masks one label value.

:func:`prepare` validates them and returns one :class:`Inputs`: channels-last, spatially
flattened (``[B, P, C]`` with ``P`` the number of pixels), in the compute dtype (float32 for
bf16/f16/f32, so bf16 logits from a TPU are never summed in bf16; float64 stays float64).

An :class:`Inputs` is also where the losses of one call share their work: the log-sum-exp of
every pixel, the logit of its label, the log-probabilities and the soft overlap sums are
computed the first time a loss asks for them and handed to every later one. When
:func:`jaxseg_losses.combine` evaluates cross-entropy and Dice together, both read one
:func:`jaxseg_losses._fused.label_statistics` call: one log-sum-exp over the class axis, one
pass forward and one backward.

A label that is neither a class nor ``ignore_index``, on a pixel the mask keeps, gets pixel
weight NaN (and label 0, so no gather reads out of range): every loss that sums over pixels is
then NaN in value and gradient, loudly, instead of training on a wrong target.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.core import Tracer

from jaxseg_losses._core import checks as _checks
from jaxseg_losses._core import fused as _fused


def compute_dtype(dtype: Any) -> Any:
    """The dtype losses compute in: float32 for low-precision inputs, float64 stays float64."""
    # Written out rather than promote_types: bf16/f16 -> f32 is not an implicit promotion under
    # jax_numpy_dtype_promotion="strict", which users (and our tests) switch on.
    return jnp.dtype(jnp.float64) if jnp.finfo(dtype).bits > 32 else jnp.dtype(jnp.float32)


def safe_log(p: jax.Array) -> jax.Array:
    """``log p`` clamped below at ``max(-100, ln(tiny) / 2)``: finite value, slope and curvature.

    PyTorch's ``BCELoss`` clamps the log at -100. In float32 the floor must also keep the second
    derivative ``-1 / p**2`` finite, which sets it at ``sqrt(tiny)`` (``ln`` = -43.7); float64
    reaches -100.
    """
    floor = max(math.sqrt(float(jnp.finfo(p.dtype).tiny)), math.exp(-100.0))
    return jnp.log(jnp.maximum(p, floor))


class Inputs:
    r"""Validated, canonical inputs of one loss call, with the statistics losses share.

    Built by the library from the user's ``(logits, labels, mask)`` before any loss is computed;
    a user-defined loss (:func:`jaxseg_losses.define_loss`) reads everything it needs from it.
    Each statistic below is computed on first use and reused by every later request on the same
    ``Inputs``, so the terms of a :func:`jaxseg_losses.combine` that need the same thing from
    the logits compute it once.

    Attributes:
      logits: ``[B, P, C]`` logits in the compute dtype (probabilities when ``activation`` is
        None); ``P`` is the number of pixels, ``C`` the number of classes (channels). The rows
        of pixels of weight 0 read 0, so that a masked or ignored pixel is inert whatever its
        logits (NaN and infinities included).
      labels: ``[B, P]`` int32 class indices in ``[0, C)`` (``{0, 1}`` for one channel), made
        safe (ignored and invalid pixels hold 0), or ``None`` when dense targets were given.
      targets: ``[B, P, C]`` dense float targets in the compute dtype, or ``None`` for integer
        labels.
      weights: ``[B, P]`` pixel weights: the mask, 0 where ``labels == ignore_index``, NaN
        where a label is neither a class nor ``ignore_index``.
      spatial_shape: the spatial shape of one sample, to unflatten per-pixel maps.
      activation: ``"softmax"``, ``"sigmoid"`` or ``None``.
    """

    def __init__(
        self,
        *,
        logits: jax.Array,
        labels: jax.Array | None,
        targets: jax.Array | None,
        weights: jax.Array,
        spatial_shape: tuple[int, ...],
        activation: str | None,
    ) -> None:
        self._logits = logits
        self.labels = labels
        self.targets = targets
        self.weights = weights
        self.spatial_shape = spatial_shape
        self.activation = activation
        self._cache: dict[str, Any] = {}
        # Which statistics the losses of this call read, when known (see `plan`); None reads as
        # "anything may be asked for".
        self._reads: frozenset[str] | None = None
        self._recording: set[str] | None = None

    @classmethod
    def prepare(
        cls,
        logits: Any,
        labels: Any,
        *,
        activation: str | None = "softmax",
        class_axis: int = -1,
        ignore_index: int | None = None,
        mask: Any = None,
    ) -> "Inputs":
        """Validates and canonicalises ``(logits, labels, mask)`` as every loss does.

        Args:
          logits: ``[B, *spatial, C]`` float logits (probabilities when ``activation=None``).
          labels: ``[B, *spatial]`` integer class indices or ``[B, *spatial, C]`` dense targets.
          activation: ``"softmax"``, ``"sigmoid"`` or ``None``.
          class_axis: the axis of ``logits`` holding the classes.
          ignore_index: a label value whose pixels count nowhere.
          mask: ``[B, *spatial]`` bool or float pixel weights.

        Returns:
          The :class:`Inputs`, e.g. to test a :class:`~jaxseg_losses.LossDefinition` by hand.

        Examples:
          >>> import jax.numpy as jnp
          >>> import jaxseg_losses as jsl
          >>> inputs = jsl.Inputs.prepare(jnp.zeros((1, 4, 4, 3)), jnp.zeros((1, 4, 4), int))
          >>> inputs.logits.shape, inputs.weights.shape
          ((1, 16, 3), (1, 16))
        """
        return prepare(logits, labels, activation, class_axis, ignore_index, mask)

    @property
    def logits(self) -> jax.Array:
        # The fused kernels read the logits as given and keep excluded pixels inert themselves
        # (at no cost when their logits are finite); everything else reads this copy.
        return self._once(
            "logits",
            lambda: jnp.where(
                (self.weights == 0)[..., None], jnp.zeros((), self.dtype), self._logits
            ),
        )

    def __repr__(self) -> str:
        labels = "None" if self.labels is None else f"int32{list(self.labels.shape)}"
        return (
            f"Inputs(logits={self.dtype}{list(self._logits.shape)}, labels={labels}, "
            f"activation={self.activation!r})"
        )

    @property
    def num_classes(self) -> int:
        return self._logits.shape[-1]

    @property
    def batch_size(self) -> int:
        return self._logits.shape[0]

    @property
    def dtype(self) -> Any:
        """The compute dtype (float32, or float64 under x64)."""
        return self._logits.dtype

    @property
    def is_binary(self) -> bool:
        """Per-channel binary problems: sigmoid, or probabilities with one channel."""
        return self.activation == "sigmoid" or (self.activation is None and self.num_classes == 1)

    def _once(self, key: str, compute: Callable[[], Any]) -> Any:
        if self._recording is not None:
            self._recording.add(key)
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def plan(self, use: Callable[["Inputs"], Any]) -> None:
        """Learns which statistics ``use`` (the losses of one call) reads, before computing any.

        ``use`` is traced once abstractly (:func:`jax.eval_shape`, no computation, value checks
        off) on a copy that records what is asked for; this ``Inputs`` then computes only that,
        with the cheapest kernel for it (cross-entropy alone, for instance, needs no per-class
        sums, and its gradient then writes the label's entry without a scatter).
        """
        probe = self._copy()
        probe._recording = set()
        with _checks.value_checks_disabled():
            jax.eval_shape(lambda: use(probe))
        self._reads = frozenset(probe._recording)

    def _copy(self) -> "Inputs":
        return Inputs(
            logits=self._logits,
            labels=self.labels,
            targets=self.targets,
            weights=self.weights,
            spatial_shape=self.spatial_shape,
            activation=self.activation,
        )

    def _label_statistics(self) -> _fused.LabelStatistics:
        labels = self.labels
        assert labels is not None and self.activation == "softmax"
        class_sums = self._reads is None or bool({"overlap_sums", "squared_sums"} & self._reads)
        return self._once(
            "label_statistics",
            lambda: _fused.label_statistics(
                self._logits, labels, self.weights, class_sums=class_sums
            ),
        )

    def _uses_label_kernel(self) -> bool:
        return self.activation == "softmax" and self.labels is not None

    # ------------------------------------------------------------------------------------------
    # Per-pixel statistics.

    def log_sum_exp(self) -> jax.Array:
        """``[B, P]`` :math:`\\log \\sum_c e^{x_{ic}}` (softmax inputs only)."""
        if self.activation != "softmax":
            raise ValueError("log_sum_exp() is defined for activation='softmax' only.")
        if self._uses_label_kernel():
            return self._label_statistics().lse[..., 0]
        return self._once("lse", lambda: _fused.log_sum_exp(self.logits))[..., 0]

    def label_logit(self) -> jax.Array:
        """``[B, P]`` the logit (or probability) of each pixel's label; integer labels only."""
        labels = self.labels
        if labels is None:
            raise ValueError("label_logit() needs integer labels; dense targets were given.")
        if self._uses_label_kernel():
            return self._label_statistics().label_logit[..., 0]
        return self._once("label_logit", lambda: _fused.at_labels(self.logits, labels))[..., 0]

    def label_log_probability(self) -> jax.Array:
        """``[B, P]`` :math:`\\log p_{i y_i}` for integer labels and exclusive classes.

        Softmax: the label's logit minus the log-sum-exp (no ``[B, P, C]`` array); probabilities
        (``activation=None``): the clamped log of the label's probability.
        """
        if self.activation == "softmax":
            return self.label_logit() - self.log_sum_exp()
        return safe_log(self.label_logit())

    def log_probabilities(self) -> jax.Array:
        """``[B, P, C]`` :math:`\\log p` (log-softmax, or the clamped log of probabilities).

        For sigmoid inputs, :math:`\\log \\sigma(x)` per channel (see
        :meth:`binary_log_probabilities`).
        """
        if self.activation == "sigmoid":
            return self.binary_log_probabilities()[0]

        def compute() -> jax.Array:
            if self.activation == "softmax":
                # The log-sum-exp of the rows that `logits` zeroes (excluded pixels) is log C.
                excluded = self.weights == 0
                lse = jnp.where(excluded, math.log(self.num_classes), self.log_sum_exp())
                return self.logits - lse[..., None]
            return safe_log(self.logits)

        return self._once("log_probabilities", compute)

    def binary_log_probabilities(self) -> tuple[jax.Array, jax.Array]:
        """``(log p, log(1 - p))`` per channel, ``[B, P, C]`` each, for binary problems.

        Sigmoid: :math:`\\log \\sigma(x)` and :math:`\\log \\sigma(-x)` (exact in log space);
        probabilities: the clamped logs of :math:`p` and :math:`1 - p`.
        """

        def compute() -> tuple[jax.Array, jax.Array]:
            x = self.logits
            if self.activation == "sigmoid":
                return jax.nn.log_sigmoid(x), jax.nn.log_sigmoid(-x)
            return safe_log(x), safe_log(1.0 - x)

        return self._once("binary_log_probabilities", compute)

    def probabilities(self) -> jax.Array:
        """``[B, P, C]`` probabilities (softmax, sigmoid, or the inputs themselves)."""

        def compute() -> jax.Array:
            if self.activation == "softmax":
                return jnp.exp(self.log_probabilities())
            if self.activation == "sigmoid":
                return jax.nn.sigmoid(self.logits)
            return self.logits

        return self._once("probabilities", compute)

    def dense_targets(self) -> jax.Array:
        """``[B, P, C]`` targets: the dense ones, or one-hot rows (``label == 1`` for one
        channel) of integer labels."""

        def compute() -> jax.Array:
            if self.targets is not None:
                return self.targets
            assert self.labels is not None
            if self.num_classes == 1:
                return (self.labels == 1)[..., None].astype(self.dtype)
            return jax.nn.one_hot(self.labels, self.num_classes, dtype=self.dtype)

        return self._once("dense_targets", compute)

    # ------------------------------------------------------------------------------------------
    # Per-sample sums.

    def overlap_sums(self) -> tuple[jax.Array, jax.Array, jax.Array]:
        r"""``(TP, Σp, Σg)`` per sample and class, ``[B, C]`` each.

        .. math::

           TP_c = \sum_i w_i\, p_{ic} g_{ic}, \quad \Sigma p_c = \sum_i w_i\, p_{ic}, \quad
           \Sigma g_c = \sum_i w_i\, g_{ic};

        for dense targets :math:`TP_c = \sum_i w_i \min(p_{ic}, g_{ic})`, the L1 form of the
        intersection (equal to the product for hard targets, maximal at :math:`p = g` for soft
        ones). Softmax with integer labels reads the fused kernel (no one-hot array, no stored
        probabilities).
        """
        return self._once("overlap_sums", self._compute_overlap_sums)

    def _compute_overlap_sums(self) -> tuple[jax.Array, jax.Array, jax.Array]:
        if self._uses_label_kernel() and self.num_classes > 1:
            s = self._label_statistics()
            assert s.tp is not None and s.pred_sum is not None and s.target_sum is not None
            return s.tp, s.pred_sum, s.target_sum
        probs = self.probabilities()
        weights = self.weights[..., None]
        pred_sum = jnp.sum(weights * probs, axis=1)
        if self.labels is not None and self.num_classes > 1:
            # Probabilities given (activation=None): p itself is the input, nothing to store;
            # the label terms are segment sums of the gathered entries.
            tp = _fused.class_sums(self.weights * self.label_logit(), self.labels, self.num_classes)
            target_sum = _fused.class_sums(self.weights, self.labels, self.num_classes)
            return tp, pred_sum, target_sum
        targets = self.dense_targets()
        target_sum = jnp.sum(weights * targets, axis=1)
        if self.targets is not None:
            # min(p, g) is the L1 form (p + g - |p - g|) / 2; summed directly it is never
            # negative and does not cancel the large sums of a big image against each other.
            tp = jnp.sum(weights * jnp.minimum(probs, targets), axis=1)
        else:
            tp = jnp.sum(weights * probs * targets, axis=1)
        return tp, pred_sum, target_sum

    def squared_sums(self) -> tuple[jax.Array, jax.Array]:
        r"""``(Σp², Σg²)`` per sample and class, ``[B, C]`` each (V-Net's squared denominator).

        .. math::

           \Sigma p^2_c = \sum_i w_i\, p_{ic}^2, \qquad \Sigma g^2_c = \sum_i w_i\, g_{ic}^2;

        for integer labels :math:`\Sigma g^2 = \Sigma g` is read from :meth:`overlap_sums`.
        Computed only for the losses that ask for it (``dice_loss(squared_pred=True)``): the
        plan of a call without it never builds the squares. Softmax with integer labels reads
        :math:`\Sigma p^2` from the fused kernel that gives :meth:`overlap_sums`, in the same
        passes over the logits (no stored probabilities).
        """
        return self._once("squared_sums", self._compute_squared_sums)

    def _compute_squared_sums(self) -> tuple[jax.Array, jax.Array]:
        if self._uses_label_kernel() and self.num_classes > 1:
            # The fused kernel's Σp² comes from the same passes as Σp (no stored probabilities).
            s = self._label_statistics()
            assert s.pred_sq is not None
            return s.pred_sq, self.overlap_sums()[2]
        probs = self.probabilities()
        weights = self.weights[..., None]
        pred_sq = jnp.sum(weights * probs * probs, axis=1)
        if self.targets is None:
            return pred_sq, self.overlap_sums()[2]
        targets = self.targets
        return pred_sq, jnp.sum(weights * targets * targets, axis=1)

    def valid_count(self) -> jax.Array:
        """``[B]`` the summed pixel weights of each sample (0 when it has no valid pixel)."""
        return self._once("valid_count", lambda: jnp.sum(self.weights, axis=1))

    def invalid_label_term(self) -> jax.Array:
        """``[B]``: 0, or NaN for a sample with a counted label that is neither a class nor
        ``ignore_index``, whose gradient is NaN at that pixel's logits.

        A loss that sorts or selects pixels (top-k, Lovász) leaves such a pixel out of what it
        differentiates; adding this term keeps the policy that value *and* gradient are NaN. The
        ``where`` keeps every other pixel's contribution and gradient exactly 0, whatever its
        logits (an excluded pixel may hold NaN or ±inf).
        """
        invalid = jnp.isnan(self.weights)[..., None]
        touched = jnp.where(invalid, self.weights[..., None] * self.logits, 0.0)
        return jnp.sum(touched, axis=(1, 2))

    # ------------------------------------------------------------------------------------------
    # Views.

    def pooled(self) -> "Inputs":
        """The whole batch as one sample: ``[1, B·P, C]`` (for ``aggregate="batch"``)."""

        def flat(x: jax.Array | None) -> jax.Array | None:
            return None if x is None else x.reshape((1, -1, *x.shape[2:]))

        def compute() -> Inputs:
            weights = flat(self.weights)
            assert weights is not None
            return Inputs(
                logits=self._logits.reshape(1, -1, self.num_classes),
                labels=flat(self.labels),
                targets=flat(self.targets),
                weights=weights,
                spatial_shape=(self.batch_size * math.prod(self.spatial_shape),),
                activation=self.activation,
            )

        return self._once("pooled", compute)

    def unflatten(self, pixel_map: jax.Array) -> jax.Array:
        """``[B, P] -> [B, *spatial]``, for per-pixel maps."""
        return pixel_map.reshape((pixel_map.shape[0], *self.spatial_shape))


class _Layout(NamedTuple):
    """Where the classes and pixels of the logits are: what the labels and mask must match."""

    class_axis: int  # of the logits as given
    label_shape: tuple[int, ...]  # the logits' shape without the class axis: [B, *spatial]
    batch: int
    spatial: tuple[int, ...]
    num_classes: int
    dtype: Any  # the compute dtype


class _Labels(NamedTuple):
    """Labels made safe: integer indices (or dense targets), and what their pixels are."""

    safe_labels: jax.Array | None  # [B, P] int32, 0 at ignored and invalid pixels
    targets: jax.Array | None  # [B, P, C] dense targets
    ignored: jax.Array | None  # [B, P] bool, label == ignore_index
    invalid: jax.Array | None  # [B, P] bool, neither a class nor ignore_index
    num_labels: int  # the valid labels are [0, num_labels)


def prepare(
    logits: Any,
    labels: Any,
    activation: str | None,
    class_axis: int,
    ignore_index: int | None,
    mask: Any,
) -> Inputs:
    """Validates ``(logits, labels, mask)`` and canonicalises them; see the module docstring."""
    _checks.check_choice("activation", activation, _checks.ACTIVATIONS)
    _checks.check_label_value("ignore_index", ignore_index)
    logits = _checks.as_float_array("logits", logits)
    layout = _layout(logits, activation, class_axis)
    channels_last = jnp.moveaxis(logits, layout.class_axis, -1)
    flat_logits = channels_last.reshape(layout.batch, -1, layout.num_classes).astype(layout.dtype)
    labels = jnp.asarray(labels)
    if jnp.issubdtype(labels.dtype, jnp.floating):
        prepared = _dense_targets(labels, logits, layout, ignore_index)
    elif jnp.issubdtype(labels.dtype, jnp.integer) or labels.dtype == jnp.bool_:
        prepared = _integer_labels(labels, logits, layout, activation, ignore_index)
    else:
        raise TypeError(
            f"`labels` must be integer class indices or dense float targets; got dtype "
            f"{labels.dtype}."
        )
    weights = _pixel_weights(mask, layout, prepared.ignored)
    weights = _checked_values(logits, labels, weights, layout, prepared, activation, ignore_index)
    return Inputs(
        logits=flat_logits,
        labels=prepared.safe_labels,
        targets=prepared.targets,
        weights=weights,
        spatial_shape=layout.spatial,
        activation=activation,
    )


def _layout(logits: jax.Array, activation: str | None, class_axis: int) -> _Layout:
    _checks.check_min_rank("logits", logits, 2, "[batch, *spatial, num_classes]")
    axis = _checks.normalize_axis("class_axis", class_axis, logits.ndim)
    if axis == 0:
        raise ValueError("`class_axis` cannot be the batch axis 0; logits are [B, *spatial, C].")
    num_classes = logits.shape[axis]
    if activation == "softmax" and num_classes < 2:
        raise ValueError(
            f"activation='softmax' needs at least 2 classes along `class_axis`; got logits of "
            f"shape {tuple(logits.shape)} with {num_classes} channel. For binary segmentation "
            "with one channel use activation='sigmoid'."
        )
    label_shape = tuple(s for i, s in enumerate(logits.shape) if i != axis)
    return _Layout(
        class_axis=axis,
        label_shape=label_shape,
        batch=label_shape[0],
        spatial=label_shape[1:],
        num_classes=num_classes,
        dtype=compute_dtype(logits.dtype),
    )


def _dense_targets(
    labels: jax.Array, logits: jax.Array, layout: _Layout, ignore_index: int | None
) -> _Labels:
    if ignore_index is not None:
        shape = tuple(labels.shape)
        channels_first = _checks.class_axis_hint(
            "labels", shape, "logits", logits.shape, layout.class_axis
        )
        without_classes = shape == layout.label_shape or channels_first
        if without_classes and not _known_fractional(labels):
            raise ValueError(
                f"`ignore_index` applies to integer labels; got float `labels` of shape "
                f"{shape}, without a class axis: class indices stored as floats. Cast them: "
                f"`labels.astype(jnp.int32)`. {channels_first}".rstrip()
            )
        raise ValueError(
            "`ignore_index` applies to integer labels; dense float targets were given. Pass "
            "`mask` to exclude pixels from dense targets."
        )
    _checks.check_shape(
        "labels", labels, tuple(logits.shape), hint=_dense_shape_hint(labels, logits, layout)
    )
    targets = jnp.moveaxis(labels, layout.class_axis, -1)
    targets = targets.reshape(layout.batch, -1, layout.num_classes).astype(layout.dtype)
    return _Labels(None, targets, None, None, layout.num_classes)


def _known_fractional(labels: jax.Array) -> bool:
    """Whether concrete ``labels`` hold a value that is not a whole number (soft targets)."""
    if isinstance(labels, Tracer):
        return False
    values = np.asarray(labels)
    finite = values[np.isfinite(values)]
    return bool(np.any(finite != np.round(finite)))


def _dense_shape_hint(labels: jax.Array, logits: jax.Array, layout: _Layout) -> str:
    """What to do when dense float targets do not have the logits' shape."""
    shape = tuple(labels.shape)
    if shape == layout.label_shape:
        dense = (
            " (or add the class axis of one channel for dense targets: `labels[..., None]`)"
            if layout.num_classes == 1
            else ""
        )
        return (
            "Float labels without a class axis are class indices stored as floats: cast "
            f"them, `labels.astype(jnp.int32)`{dense}."
        )
    axis = layout.class_axis
    moved = _checks.moved_axis_hint("labels", shape, "logits", logits.shape, axis)
    if moved:
        return moved
    channels_first = _checks.class_axis_hint("labels", shape, "logits", logits.shape, axis)
    if channels_first:
        return (
            "Float labels without a class axis are class indices stored as floats: "
            f"`labels.astype(jnp.int32)`. {channels_first}"
        )
    return (
        "Dense float targets (one-hot or soft) must match the logits, class axis "
        "included; integer class indices have the logits' shape without the class axis."
    )


def _label_shape_hint(labels: jax.Array, logits: jax.Array, layout: _Layout) -> str:
    """What to do when integer labels do not have the logits' shape without the class axis:
    a class axis of 1 (PyTorch's ``[B, 1, H, W]`` habit), or channels-first logits."""
    shape, axis = tuple(labels.shape), layout.class_axis
    if labels.ndim == logits.ndim:
        for a in range(1, labels.ndim):
            squeezed = shape[:a] + shape[a + 1 :]
            if shape[a] != 1:
                continue
            squeeze = (
                f"Integer labels are class indices without a class axis: squeeze axis {a} "
                f"(`labels.squeeze({a})`; the PyTorch habit [B, 1, H, W] is `labels[:, 0]`)."
            )
            if squeezed == layout.label_shape:
                return squeeze
            also = _checks.class_axis_hint("labels", squeezed, "logits", logits.shape, axis)
            if also:
                return f"{squeeze} Squeezed, {also}"
    if shape == tuple(logits.shape):
        return (
            "Integer labels are class indices without a class axis; squeeze it, or cast "
            "one-hot targets to float to pass them as dense targets."
        )
    return _checks.class_axis_hint("labels", shape, "logits", logits.shape, axis)


def _integer_labels(
    labels: jax.Array,
    logits: jax.Array,
    layout: _Layout,
    activation: str | None,
    ignore_index: int | None,
) -> _Labels:
    hint = _label_shape_hint(labels, logits, layout)
    _checks.check_shape("labels", labels, layout.label_shape, hint=hint)
    num_classes = layout.num_classes
    if activation == "sigmoid" and num_classes > 1:
        raise ValueError(
            f"activation='sigmoid' with {num_classes} channels is multi-label segmentation and "
            "needs dense float targets of the logits' shape; got integer labels of shape "
            f"{tuple(labels.shape)}. Use activation='softmax' for exclusive classes; a binary "
            "loss (such as lovasz_hinge_loss) needs logits with 1 channel."
        )
    flat = labels.reshape(layout.batch, -1).astype(jnp.int32)
    ignored = None if ignore_index is None else flat == ignore_index
    # A single channel is one binary problem: its labels are 0 and 1.
    num_labels = max(num_classes, 2)
    in_range = (flat >= 0) & (flat < num_labels)
    invalid = ~in_range if ignored is None else ~in_range & ~ignored
    # Ignored and invalid pixels get label 0 *before* any gather: no index is ever out of
    # range, and their weight (0, or NaN) says what they are.
    return _Labels(jnp.where(in_range, flat, 0), None, ignored, invalid, num_labels)


def _pixel_weights(mask: Any, layout: _Layout, ignored: jax.Array | None) -> jax.Array:
    """``[B, P]`` weights: the mask (1 without one), 0 where the label is ``ignore_index``."""
    dtype = layout.dtype
    weights = jnp.ones((layout.batch, math.prod(layout.spatial)), dtype)
    if mask is not None:
        mask = jnp.asarray(mask)
        _checks.check_shape(
            "mask", mask, layout.label_shape, hint="A mask has one weight per pixel: [B, *spatial]."
        )
        if not (jnp.issubdtype(mask.dtype, jnp.number) or mask.dtype == jnp.bool_):
            raise TypeError(f"`mask` must be bool or numeric weights; got dtype {mask.dtype}.")
        weights = mask.reshape(layout.batch, -1).astype(dtype)
        _checks.check_elements(
            "mask", weights.reshape(layout.label_shape) >= 0, mask, "hold non-negative weights"
        )
    if ignored is not None:
        weights = jnp.where(ignored, jnp.zeros((), dtype), weights)
    return weights


def _checked_values(
    logits: jax.Array,
    labels: jax.Array,
    weights: jax.Array,
    layout: _Layout,
    prepared: _Labels,
    activation: str | None,
    ignore_index: int | None,
) -> jax.Array:
    """The value checks of ``jsl.checked`` on the pixels that count (a masked or ignored pixel
    is inert whatever its logits or label); the weights with NaN at invalid labels."""
    counts = (weights != 0).reshape(layout.label_shape)
    if prepared.invalid is not None:
        _checks.check_elements(
            "labels",
            ~prepared.invalid.reshape(layout.label_shape) | ~counts,
            labels,
            f"lie in [0, {prepared.num_labels}) or equal ignore_index ({ignore_index})",
        )
        # Only pixels that would count are loud: a masked pixel is inert whatever its label.
        nan = jnp.full((), jnp.nan, layout.dtype)
        weights = jnp.where(prepared.invalid & (weights != 0), nan, weights)
    counted = jnp.expand_dims(counts, layout.class_axis)
    _checks.check_elements("logits", jnp.isfinite(logits) | ~counted, logits, "be finite")
    if activation is None:
        _checks.check_elements(
            "logits",
            ((logits >= 0) & (logits <= 1)) | ~counted,
            logits,
            "be probabilities in [0, 1] when activation=None",
        )
    if prepared.targets is not None:
        _checks.check_elements(
            "labels", ((labels >= 0) & (labels <= 1)) | ~counted, labels, "lie in [0, 1] (dense)"
        )
    if activation == "softmax":
        _check_softmax_values(logits, labels, counts, layout, prepared)
    return weights


def _sums_to_one(x: jax.Array, axis: int, source_dtype: Any) -> jax.Array:
    """Whether ``x`` sums to 1 along ``axis``, within the rounding of ``source_dtype``."""
    tolerance = max(1e-3, x.shape[axis] * float(jnp.finfo(source_dtype).eps))
    total = jnp.sum(x.astype(compute_dtype(source_dtype)), axis=axis)
    return jnp.abs(total - 1) <= tolerance


def _check_softmax_values(
    logits: jax.Array, labels: jax.Array, counts: jax.Array, layout: _Layout, prepared: _Labels
) -> None:
    """``jsl.checked``'s checks of a softmax loss: dense targets are one distribution per
    pixel, and logits that look like probabilities warn (a softmax of probabilities)."""
    if not _checks.value_checks_enabled():
        return  # nothing to compute, eagerly either
    axis = layout.class_axis
    if prepared.targets is not None:
        total = jnp.sum(labels.astype(layout.dtype), axis=axis)
        _checks.check_elements(
            "labels",
            _sums_to_one(labels, axis, labels.dtype) | ~counts,
            total,
            f"sum to 1 over the class axis (axis {axis} of {tuple(labels.shape)}) at every "
            "pixel, as dense targets of activation='softmax' do",
            fix="If the classes of `logits` and `labels` lie on another axis, pass it as "
            "`class_axis` (`class_axis=1` for channels-first [B, C, *spatial]); multi-label "
            "targets need activation='sigmoid'",
        )
    in_unit = jnp.all((logits >= 0) & (logits <= 1), axis=axis)
    probability_rows = in_unit & _sums_to_one(logits, axis, logits.dtype)
    looks_like_probabilities = jnp.all(probability_rows | ~counts) & jnp.any(counts)
    _checks.warn_once(
        "logits look like probabilities",
        looks_like_probabilities,
        "`logits` look like probabilities: at every pixel that counts they lie in [0, 1] and "
        "sum to 1 over the class axis. activation='softmax' takes logits and applies a softmax, "
        "which flattens probabilities (and gives a wrong loss and weak gradients). Pass the "
        "logits (before the softmax), or pass probabilities with activation=None.",
    )
