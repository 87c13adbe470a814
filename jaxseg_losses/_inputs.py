"""Input contract: logits to probabilities, label formats, masks and the dtype policy.

All losses accept the same data (see DESIGN.md, "Data contract"):

* ``logits``: ``[B, *spatial, C]`` floats (``class_axis`` moves C elsewhere, e.g. ``1`` for NCHW);
  1-D, 2-D and 3-D spatial shapes.
* ``labels``: integer class indices ``[B, *spatial]``, or dense float targets (one-hot or soft)
  with the same shape and layout as ``logits``. The dtype decides which, never the rank.
* ``mask``: ``[B, *spatial]`` bool or float pixel weights; ``ignore_index`` masks one label value.

:func:`prepare` turns them into one canonical, channels-last, spatially flattened form
(``[B, P, C]`` with ``P`` the number of pixels), in the compute dtype: at least float32, so bf16
logits from a TPU are never summed in bf16.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxseg_losses import _checks


class Prepared(NamedTuple):
    """Canonical inputs shared by every loss.

    Attributes:
      logits: ``[B, P, C]`` logits (or probabilities when ``activation=None``), compute dtype.
      targets: ``[B, P, C]`` dense targets in the compute dtype (one-hot for integer labels).
      labels: ``[B, P]`` int32 class indices made safe (ignored pixels set to 0), or ``None``
        when dense targets were given.
      weights: ``[B, P]`` pixel weights: the mask times ``labels != ignore_index``.
      spatial_shape: the original spatial shape, to unflatten per-pixel maps.
      activation: the validated activation.
    """

    logits: jax.Array
    targets: jax.Array
    labels: jax.Array | None
    weights: jax.Array
    spatial_shape: tuple[int, ...]
    activation: str | None

    @property
    def num_classes(self) -> int:
        return self.logits.shape[-1]


class Canonical(NamedTuple):
    """Validated, canonical inputs without materialised one-hot targets.

    Exactly one of ``targets`` (``[B, P, C]`` dense float targets) and ``labels`` (``[B, P]``
    safe int32 class indices) is set; the other fields are as in :class:`Prepared`. Pixel-wise
    losses gather from integer labels instead of multiplying by a one-hot ``[B, P, C]`` array.
    """

    logits: jax.Array
    targets: jax.Array | None
    labels: jax.Array | None
    weights: jax.Array
    spatial_shape: tuple[int, ...]
    activation: str | None

    @property
    def num_classes(self) -> int:
        return self.logits.shape[-1]


def compute_dtype(dtype: Any) -> Any:
    """The dtype losses compute in: float32 for low-precision inputs, float64 stays float64."""
    # Written out rather than promote_types: bf16/f16 -> f32 is not an implicit promotion under
    # jax_numpy_dtype_promotion="strict", which users (and our tests) switch on.
    return jnp.dtype(jnp.float64) if jnp.finfo(dtype).bits > 32 else jnp.dtype(jnp.float32)


def probabilities(logits: jax.Array, activation: str | None) -> jax.Array:
    """Maps logits ``[..., C]`` to probabilities with the given activation."""
    if activation == "softmax":
        return jax.nn.softmax(logits, axis=-1)
    if activation == "sigmoid":
        return jax.nn.sigmoid(logits)
    return logits


def prepare(
    logits: Any,
    labels: Any,
    *,
    activation: str | None,
    class_axis: int,
    ignore_index: int | None,
    mask: Any,
) -> Prepared:
    """Validates and canonicalises ``(logits, labels, mask)``; see the module docstring."""
    inputs = canonicalize(
        logits,
        labels,
        activation=activation,
        class_axis=class_axis,
        ignore_index=ignore_index,
        mask=mask,
    )
    targets = inputs.targets
    if targets is None:
        assert inputs.labels is not None
        dtype = inputs.logits.dtype
        if inputs.num_classes == 1:
            targets = (inputs.labels == 1)[..., None].astype(dtype)
        else:
            targets = jax.nn.one_hot(inputs.labels, inputs.num_classes, dtype=dtype)
    return Prepared(
        logits=inputs.logits,
        targets=targets,
        labels=inputs.labels,
        weights=inputs.weights,
        spatial_shape=inputs.spatial_shape,
        activation=inputs.activation,
    )


def canonicalize(
    logits: Any,
    labels: Any,
    *,
    activation: str | None,
    class_axis: int,
    ignore_index: int | None,
    mask: Any,
) -> Canonical:
    """Like :func:`prepare`, without one-hot targets for integer labels (pixel-wise losses)."""
    _checks.check_choice("activation", activation, _checks.ACTIVATIONS)
    logits = _checks.as_float_array("logits", logits)
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
    channels_last = jnp.moveaxis(logits, axis, -1)
    dtype = compute_dtype(logits.dtype)
    batch, *spatial = channels_last.shape[:-1]
    flat_logits = channels_last.reshape(batch, -1, num_classes).astype(dtype)
    _checks.check_values(jnp.all(jnp.isfinite(flat_logits)), "`logits` must be finite")
    if activation is None:
        _checks.check_values(
            jnp.all((flat_logits >= 0) & (flat_logits <= 1)),
            "`logits` must be probabilities in [0, 1] when activation=None",
        )

    label_shape = tuple(s for i, s in enumerate(logits.shape) if i != axis)
    labels = jnp.asarray(labels)
    if jnp.issubdtype(labels.dtype, jnp.floating):
        if ignore_index is not None:
            raise ValueError(
                "`ignore_index` applies to integer labels; dense float targets were given. Pass "
                "`mask` to exclude pixels from dense targets."
            )
        _checks.check_shape(
            "labels",
            labels,
            tuple(logits.shape),
            hint="Dense float targets (one-hot or soft) must match the logits, class axis "
            "included; integer class indices have the logits' shape without the class axis.",
        )
        targets = jnp.moveaxis(labels, axis, -1).reshape(batch, -1, num_classes).astype(dtype)
        _checks.check_values(
            jnp.all((targets >= 0) & (targets <= 1)), "dense `labels` must lie in [0, 1]"
        )
        safe_labels = None
        valid = None
    elif jnp.issubdtype(labels.dtype, jnp.integer) or labels.dtype == jnp.bool_:
        hint = ""
        if tuple(labels.shape) == tuple(logits.shape):
            hint = (
                "Integer labels are class indices without a class axis; squeeze it, or cast "
                "one-hot targets to float to pass them as dense targets."
            )
        _checks.check_shape("labels", labels, label_shape, hint=hint)
        if activation == "sigmoid" and num_classes > 1:
            raise ValueError(
                f"activation='sigmoid' with {num_classes} channels is multi-label segmentation and "
                "needs dense float targets of the logits' shape; got integer labels of shape "
                f"{tuple(labels.shape)}. Use activation='softmax' for exclusive classes."
            )
        flat = labels.reshape(batch, -1).astype(jnp.int32)
        valid = None if ignore_index is None else flat != ignore_index
        # Ignored pixels get label 0 *before* any one-hot or gather: a label such as 255 then
        # never indexes out of range, and its zero weight removes it from every sum.
        safe_labels = flat if valid is None else jnp.where(valid, flat, 0)
        in_range = (safe_labels >= 0) & (safe_labels < max(num_classes, 2))
        _checks.check_values(
            jnp.all(in_range),
            f"`labels` must lie in [0, {max(num_classes, 2)}) or equal ignore_index "
            f"({ignore_index}); found a label out of range",
        )
        targets = None
    else:
        raise TypeError(
            f"`labels` must be integer class indices or dense float targets; got dtype "
            f"{labels.dtype}."
        )

    weights = jnp.ones((batch, flat_logits.shape[1]), dtype)
    if mask is not None:
        mask = jnp.asarray(mask)
        _checks.check_shape(
            "mask", mask, label_shape, hint="A mask has one weight per pixel: [B, *spatial]."
        )
        if not (jnp.issubdtype(mask.dtype, jnp.number) or mask.dtype == jnp.bool_):
            raise TypeError(f"`mask` must be bool or numeric weights; got dtype {mask.dtype}.")
        weights = mask.reshape(batch, -1).astype(dtype)
        _checks.check_values(jnp.all(weights >= 0), "`mask` weights must be non-negative")
    if valid is not None:
        weights = jnp.where(valid, weights, 0)

    return Canonical(
        logits=flat_logits,
        targets=targets,
        labels=safe_labels,
        weights=weights,
        spatial_shape=tuple(spatial),
        activation=activation,
    )
