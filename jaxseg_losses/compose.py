r"""Combining losses: weighted sums of named terms that report each part.

Region losses alone train unstably; the usual recipe adds a pixel-wise term (nnU-Net trains on
Dice + CE). :func:`combine` builds one loss from named, weighted terms,

.. math::

   L = \sum_k \lambda_k L_k(\text{logits}, \text{labels}),

a :class:`CombinedLoss` that returns ``(total, parts)`` with ``parts[name]`` the unweighted
value of each term, ready for ``nnx.value_and_grad(loss_fn, has_aux=True)`` and for logging.

The options that describe the data (``activation``, ``class_axis``, ``ignore_index``, the
``mask`` of each call) and how to reduce it (``axis_name``, ``reduction``) are given once and
apply identically to every term; a term cannot quietly disagree about which pixels count.
Options of one term (Dice smoothing, CE class weights, focal γ, ``aggregate``) belong to that
term, through ``functools.partial``.

Every term made by :func:`~jaxseg_losses.define_loss` (all the library's losses, and a user's
own) is evaluated from its description on one shared :class:`~jaxseg_losses.Inputs`: what
several terms need from the logits (the log-sum-exp of each pixel, its label's logit, the
per-class probability sums) is computed once, in one pass over the logits forward and one
backward, without storing probabilities. The same description splits the combination into
additive sums and a finishing step (:meth:`CombinedLoss.sums`, :meth:`CombinedLoss.finalize`),
which is how :func:`jaxseg_losses.accumulate.value_and_grad` adds micro-batches exactly. A plain
callable is accepted as a term too: it is called with the shared options and its value used as
it is (nothing shared, not decomposable).

Terms can be named in a short string (``"ce+dice"``, ``"ce:1,iou:0.5"``), which is how the
examples' ``--loss`` flag is parsed; :func:`register_loss` adds a name.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg_losses._core import checks as _checks
from jaxseg_losses._core import engine
from jaxseg_losses._core.docs import documented
from jaxseg_losses.losses import lovasz, pixelwise, region, spatial

ArrayLike = jax.typing.ArrayLike
LossFn = Callable[..., Any]
Parts = dict[str, jax.Array]

# ----------------------------------------------------------------------------------------------
# Registry of named terms.

_REGISTRY: dict[str, LossFn] = {}


def register_loss(name: str, fn: LossFn, *, overwrite: bool = False) -> LossFn:
    """Registers a loss under a short name for :func:`parse_loss_spec` and :func:`combine`.

    ``fn`` is a loss made by :func:`jaxseg_losses.define_loss` (possibly a ``functools.partial``
    binding its own options), or any callable that accepts ``(logits, labels, *, activation,
    class_axis, ignore_index, mask, axis_name, reduction)``.

    Args:
      name: a lowercase identifier (letters, digits, ``_``), e.g. ``"lovasz"``.
      fn: the loss function.
      overwrite: replace an existing registration instead of raising.

    Returns:
      ``fn``, so that ``register_loss`` can be used as a decorator through ``functools.partial``.

    Examples:
      >>> import functools
      >>> import jaxseg_losses as jsl
      >>> _ = jsl.register_loss("soft_dice", functools.partial(jsl.dice_loss, smooth=1e-5))
      >>> sorted(jsl.parse_loss_spec("ce+soft_dice"))
      ['ce', 'soft_dice']
    """
    if not isinstance(name, str) or not name.isidentifier() or name != name.lower():
        raise ValueError(f"`name` must be a lowercase identifier such as 'lovasz'; got {name!r}.")
    if not callable(fn):
        raise TypeError(f"`fn` must be callable; got {type(fn).__name__} {fn!r}.")
    if name in _REGISTRY and not overwrite:
        raise ValueError(
            f"A loss named {name!r} is already registered; pass overwrite=True to replace it."
        )
    _REGISTRY[name] = fn
    return fn


def registered_losses() -> tuple[str, ...]:
    """Returns the registered loss names, sorted.

    Returns:
      A tuple of names accepted by :func:`parse_loss_spec` and :func:`combine`.

    Examples:
      >>> import jaxseg_losses as jsl
      >>> {"ce", "dice", "focal", "iou"} <= set(jsl.registered_losses())
      True
    """
    return tuple(sorted(_REGISTRY))


def get_loss(name: str) -> LossFn:
    """Returns the loss registered under ``name``.

    Args:
      name: a registered name (see :func:`registered_losses`).

    Returns:
      The loss function; an unknown name raises ``ValueError`` listing the known names.

    Examples:
      >>> import jaxseg_losses as jsl
      >>> jsl.get_loss("ce") is jsl.cross_entropy_loss
      True
    """
    if name not in _REGISTRY:
        known = ", ".join(registered_losses())
        raise ValueError(f"Unknown loss {name!r}; registered losses are: {known}.")
    return _REGISTRY[name]


def parse_loss_spec(spec: str) -> dict[str, tuple[float, LossFn]]:
    """Parses a loss specification such as ``"ce+dice"`` or ``"ce:1,iou:0.5"``.

    Terms are separated by ``+`` or ``,``; each is a registered name, optionally followed by
    ``:weight`` (default 1). Whitespace is ignored.

    Args:
      spec: the specification string.

    Returns:
      ``{name: (weight, fn)}`` in the order given, ready for :func:`combine`.

    Examples:
      >>> import jaxseg_losses as jsl
      >>> {k: w for k, (w, _) in jsl.parse_loss_spec("ce:1, iou:0.5").items()}
      {'ce': 1.0, 'iou': 0.5}
    """
    if not isinstance(spec, str):
        raise TypeError(f"`spec` must be a string such as 'ce+dice'; got {type(spec).__name__}.")
    terms: dict[str, tuple[float, LossFn]] = {}
    pieces = [piece.strip() for piece in spec.replace(",", "+").split("+")]
    if not any(pieces):
        raise ValueError(f"Empty loss specification {spec!r}; expected e.g. 'ce+dice'.")
    for piece in pieces:
        if not piece:
            raise ValueError(f"Empty term in loss specification {spec!r}.")
        name, sep, weight_text = (part.strip() for part in piece.partition(":"))
        weight = 1.0
        if sep:
            try:
                weight = float(weight_text)
            except ValueError:
                raise ValueError(
                    f"Weight {weight_text!r} of term {name!r} in {spec!r} is not a number."
                ) from None
            if not math.isfinite(weight):
                raise ValueError(f"Weight of term {name!r} in {spec!r} must be finite.")
        if name in terms:
            raise ValueError(f"Loss {name!r} appears twice in {spec!r}.")
        terms[name] = (weight, get_loss(name))
    return terms


# ----------------------------------------------------------------------------------------------
# The combinator.


def _named_terms(terms: str | Mapping[str, Any]) -> list[tuple[str, Any, LossFn]]:
    """``(name, weight, fn)`` for each term, validated."""
    if isinstance(terms, str):
        terms = parse_loss_spec(terms)
    if not isinstance(terms, Mapping) or not terms:
        raise TypeError(
            "`terms` must be a non-empty mapping such as {'ce': 1.0, 'dice': 1.0} or a string "
            f"such as 'ce+dice'; got {terms!r}."
        )
    named = []
    for name, value in terms.items():
        if not isinstance(name, str):
            raise TypeError(f"Term names must be strings; got {name!r}.")
        if isinstance(value, tuple) and len(value) == 2 and callable(value[1]):
            weight, fn = value
        elif callable(value):
            weight, fn = 1.0, value
        elif isinstance(value, numbers.Real | jax.Array) and not isinstance(value, bool):
            weight, fn = value, get_loss(name)
        else:
            raise TypeError(
                f"Term {name!r} must be a weight (for a registered name), a loss function, or a "
                f"(weight, loss function) pair; got {value!r}."
            )
        engine.check_weight(name, weight)
        named.append((name, weight, fn))
    return named


@dataclasses.dataclass(frozen=True, eq=False)
class CombinedLoss:
    """A weighted sum of loss terms with shared data options, made by :func:`combine`.

    Calling it, ``loss_fn(logits, labels, *, mask=None)``, returns ``(total, parts)``. The same
    loss also splits into additive sums and a finishing step, so that it is exact over
    micro-batches, hosts and devices: ``loss_fn.finalize(loss_fn.sums(batch))`` is the call on
    the whole batch, and the sums of several parts of a batch add
    (``jax.tree.map(jnp.add, a, b)``, ``jax.lax.psum``) to the sums of their union.

    Attributes:
      terms: the bound terms, in order.
      activation: the activation of every term.
      class_axis: the class axis of ``logits``.
      ignore_index: the label value whose pixels count nowhere.
      axis_name: a mapped device axis over which the sums are added.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``.
    """

    terms: tuple[engine.Term, ...]
    activation: str | None
    class_axis: int
    ignore_index: int | None
    axis_name: Any
    reduction: str

    @property
    def names(self) -> tuple[str, ...]:
        """The names of the terms, in order."""
        return tuple(term.name for term in self.terms)

    def __call__(
        self, logits: ArrayLike, labels: ArrayLike, *, mask: ArrayLike | None = None
    ) -> tuple[jax.Array, Parts]:
        return engine.evaluate(
            self.terms,
            logits,
            labels,
            mask=mask,
            activation=self.activation,
            class_axis=self.class_axis,
            ignore_index=self.ignore_index,
            axis_name=self.axis_name,
            reduction=self.reduction,
        )

    def check_decomposable(self) -> None:
        """Raises ``ValueError`` unless every term is a function of additive batch sums."""
        if self.reduction == "none":
            raise ValueError(
                "reduction='none' gives one value per sample, not a loss of the batch: it "
                "cannot be split into additive sums; use reduction='mean' or 'sum'."
            )
        for term in self.terms:
            if term.definition is None:
                raise ValueError(
                    f"Term {term.name!r} is a plain function: its value cannot be split into "
                    "additive sums. Define it with jsl.define_loss (a LossDefinition of sums and "
                    "a finishing step) to accumulate it."
                )
            if term.aggregate == "batch" and not term.definition.pools:
                raise ValueError(
                    f"Term {term.name!r} with aggregate='batch' is a function of all the "
                    "batch's pixels at once (e.g. the Lovász losses sort them), not of additive "
                    "sums; use aggregate='sample' to accumulate micro-batches."
                )

    def sums(
        self, logits: ArrayLike, labels: ArrayLike, *, mask: ArrayLike | None = None
    ) -> dict[str, Any]:
        """The additive statistics of a batch: a pytree of float arrays, one entry per term.

        Args:
          logits: ``[B, *spatial, C]`` logits of (part of) a batch.
          labels: ``[B, *spatial]`` integer labels or ``[B, *spatial, C]`` dense targets.
          mask: ``[B, *spatial]`` optional pixel weights.

        Returns:
          The sums; those of several parts of a batch add up to those of the whole batch.
        """
        self.check_decomposable()
        return engine.collect_sums(
            self.terms,
            logits,
            labels,
            mask=mask,
            activation=self.activation,
            class_axis=self.class_axis,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )

    def finalize(self, sums: Mapping[str, Any]) -> tuple[jax.Array, Parts]:
        """``(total, parts)`` of the batch whose :meth:`sums` (added over its parts) these are."""
        parts = {
            term.name: engine.term_value(term, sums[term.name], self.reduction)
            for term in self.terms
        }
        return engine.weighted_total(self.terms, parts), parts


def combine(
    terms: str | Mapping[str, Any],
    *,
    activation: str | None = "softmax",
    class_axis: int = -1,
    ignore_index: int | None = None,
    axis_name: Any = None,
    reduction: str = "mean",
) -> CombinedLoss:
    r"""Combines weighted loss terms into one loss returning ``(total, parts)``.

    .. math::

       L = \sum_k \lambda_k L_k, \qquad \mathrm{parts}[k] = L_k

    Every term sees the same data options (``activation``, ``class_axis``, ``ignore_index``,
    the call's ``mask``) and the same ``axis_name`` and ``reduction``, so CE and Dice agree on
    the pixels that count (unlike MONAI's ``DiceCELoss``, whose halves read some options
    differently). Terms described by :func:`~jaxseg_losses.define_loss` share what they read
    from the logits (one log-sum-exp per pixel for CE + Dice), and the result splits into
    additive sums for micro-batch accumulation (:class:`CombinedLoss`).

    Args:
      terms: ``{name: weight}`` for registered names (``"ce"``, ``"dice"``, ...), ``{name: fn}``
        (weight 1) or ``{name: (weight, fn)}`` for any loss function (bind its own options,
        ``aggregate`` included, with ``functools.partial``), or a string such as ``"ce+dice"`` /
        ``"ce:1,dice:0.5"``.
      activation: ``"softmax"``, ``"sigmoid"`` or ``None``, for every term (a term with a
        fixed activation, such as the Lovász hinge on raw logits, keeps its own).
      class_axis: the class axis of ``logits``, for every term.
      ignore_index: a label value whose pixels count nowhere, for every term.
      axis_name: a mapped device axis, for every term.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[B]``), for every term.

    Returns:
      A :class:`CombinedLoss`, ``loss_fn(logits, labels, *, mask=None) -> (total, parts)``:
      ``total`` a float32 scalar (``[B]`` with ``reduction="none"``) and ``parts`` a dict of
      each term's unweighted value.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> loss_fn = jsl.combine({"ce": 1.0, "dice": 0.5}, ignore_index=255)
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 2.0], [1.0, 0.0]]])
      >>> labels = jnp.array([[0, 1, 255]])
      >>> (total, parts), grads = jax.value_and_grad(loss_fn, has_aux=True)(logits, labels)
      >>> print(f"{total:.4f} = {parts['ce']:.4f} + 0.5 * {parts['dice']:.4f}")
      0.1667 = 0.1269 + 0.5 * 0.0795

    References:
      Isensee et al., "nnU-Net: a self-configuring method for deep learning-based biomedical
      image segmentation", Nature Methods 2021 (Dice + CE).
    """
    _checks.check_choice("activation", activation, _checks.ACTIVATIONS)
    _checks.check_choice("reduction", reduction, _checks.REDUCTIONS)
    bound = tuple(
        engine.bind_term(
            name, weight, fn, activation=activation, reduction=reduction, axis_name=axis_name
        )
        for name, weight, fn in _named_terms(terms)
    )
    return CombinedLoss(
        terms=bound,
        activation=activation,
        class_axis=class_axis,
        ignore_index=ignore_index,
        axis_name=axis_name,
        reduction=reduction,
    )


# ----------------------------------------------------------------------------------------------
# Deep supervision.

DEEP_SUPERVISION_WEIGHTS = ("exp", "same", "two", "nnunet")


def deep_supervision_weights(spec: Any, levels: int) -> tuple[float, ...]:
    """The weight of each of ``levels`` outputs, full resolution first.

    ``"exp"``: :math:`\\max(2^{-l}, 1/16)` (MONAI); ``"same"``: 1; ``"two"``: 1 then 1/2
    (MONAI); ``"nnunet"``: :math:`2^{-l}`, the lowest resolution 0, normalised to sum 1; a
    sequence: one weight per level, as given.
    """
    if isinstance(spec, str):
        _checks.check_choice("weights", spec, DEEP_SUPERVISION_WEIGHTS)
        if spec == "exp":
            return tuple(max(0.5**level, 0.0625) for level in range(levels))
        if spec == "same":
            return (1.0,) * levels
        if spec == "two":
            return tuple(1.0 if level == 0 else 0.5 for level in range(levels))
        raw = [0.5**level for level in range(levels)]
        if levels > 1:
            raw[-1] = 0.0
        total = sum(raw)
        return tuple(w / total for w in raw)
    if not isinstance(spec, list | tuple) or not all(
        isinstance(w, numbers.Real) and not isinstance(w, bool) and math.isfinite(w) for w in spec
    ):
        raise TypeError(
            f"`weights` must be one of {DEEP_SUPERVISION_WEIGHTS} or a list of finite numbers, "
            f"one per output; got {spec!r}."
        )
    if len(spec) != levels:
        raise ValueError(
            f"`weights` has {len(spec)} entries but the loss got {levels} outputs; give one "
            "weight per output, full resolution first."
        )
    return tuple(float(w) for w in spec)


def nearest_exact_indices(size_in: int, size_out: int) -> np.ndarray:
    """Source index of each output index of a nearest-neighbour resize (``nearest-exact``).

    PyTorch's pixel-centre rule: :math:`\\min(\\lfloor (j + 1/2)\\, n / m \\rfloor, n - 1)`.
    """
    scale = size_in / size_out
    index = np.floor((np.arange(size_out) + 0.5) * scale).astype(np.int64)
    return np.minimum(index, size_in - 1)


def resize_nearest(x: jax.Array, spatial_shape: tuple[int, ...], first_axis: int) -> jax.Array:
    """``x`` with the spatial axes ``first_axis, ...`` resized to ``spatial_shape`` by
    ``nearest-exact`` gathers (static indices, any dtype)."""
    for offset, size_out in enumerate(spatial_shape):
        axis = first_axis + offset
        if x.shape[axis] != size_out:
            x = jnp.take(x, nearest_exact_indices(x.shape[axis], size_out), axis=axis)
    return x


@dataclasses.dataclass(frozen=True, eq=False)
class DeepSupervisionLoss:
    """A loss applied to the outputs of several decoder levels, made by :func:`deep_supervision`.

    Calling it, ``loss_fn(outputs, labels, *, mask=None)`` with ``outputs`` a sequence of logits
    (full resolution first), returns ``(total, parts)``. Like :class:`CombinedLoss` it splits into
    additive :meth:`sums` and a :meth:`finalize` step, so
    :func:`jaxseg_losses.accumulate.value_and_grad` accumulates it exactly (``apply_fn`` then
    returns the sequence of outputs).

    Attributes:
      loss: the :class:`CombinedLoss` applied at every level.
      weights: the weight spec (``"exp"``, ``"same"``, ``"two"``, ``"nnunet"`` or a sequence).
    """

    loss: CombinedLoss
    weights: Any

    @property
    def axis_name(self) -> Any:
        return self.loss.axis_name

    def _levels(
        self, outputs: Any, labels: ArrayLike, mask: ArrayLike | None
    ) -> list[tuple[jax.Array, jax.Array, jax.Array | None]]:
        """``(logits_l, labels_l, mask_l)`` of each level, the targets resized to its logits."""
        if not isinstance(outputs, list | tuple) or not outputs:
            raise TypeError(
                "deep supervision expects a non-empty list or tuple of logits, full resolution "
                f"first; got {type(outputs).__name__}."
            )
        labels = jnp.asarray(labels)
        mask = None if mask is None else jnp.asarray(mask)
        class_axis = self.loss.class_axis
        levels = []
        for logits in outputs:
            logits = jnp.asarray(logits)
            axis = _checks.normalize_axis("class_axis", class_axis, logits.ndim)
            spatial = tuple(s for a, s in enumerate(logits.shape) if a not in (0, axis))
            dense = jnp.issubdtype(labels.dtype, jnp.floating)
            labels_l, mask_l = labels, mask
            # Targets of another rank go to the loss as they are, which names the problem.
            if labels.ndim == (logits.ndim if dense else logits.ndim - 1):
                # Dense targets keep their class axis where the logits have it.
                labels_l = resize_nearest(labels, spatial, 2 if dense and axis == 1 else 1)
            if mask is not None and mask.ndim == logits.ndim - 1:
                mask_l = resize_nearest(mask, spatial, 1)
            levels.append((logits, labels_l, mask_l))
        return levels

    def __call__(
        self, outputs: Any, labels: ArrayLike, *, mask: ArrayLike | None = None
    ) -> tuple[jax.Array, Parts]:
        levels = self._levels(outputs, labels, mask)
        weights = deep_supervision_weights(self.weights, len(levels))
        total = None
        parts: Parts = {}
        for level, ((logits, labels_l, mask_l), weight) in enumerate(
            zip(levels, weights, strict=True)
        ):
            value, level_parts = self.loss(logits, labels_l, mask=mask_l)
            parts.update(_level_parts(level, value, level_parts))
            total = weight * value if total is None else total + weight * value
        assert total is not None
        return total, parts

    def check_decomposable(self) -> None:
        """Raises ``ValueError`` unless the loss of every level splits into additive sums."""
        self.loss.check_decomposable()

    def sums(
        self, outputs: Any, labels: ArrayLike, *, mask: ArrayLike | None = None
    ) -> dict[str, Any]:
        """The additive statistics of every level, ``{"level{l}": sums}``."""
        return {
            f"level{level}": self.loss.sums(logits, labels_l, mask=mask_l)
            for level, (logits, labels_l, mask_l) in enumerate(self._levels(outputs, labels, mask))
        }

    def finalize(self, sums: Mapping[str, Any]) -> tuple[jax.Array, Parts]:
        """``(total, parts)`` from the (added) :meth:`sums` of every level."""
        weights = deep_supervision_weights(self.weights, len(sums))
        total = None
        parts: Parts = {}
        for level, weight in enumerate(weights):
            value, level_parts = self.loss.finalize(sums[f"level{level}"])
            parts.update(_level_parts(level, value, level_parts))
            total = weight * value if total is None else total + weight * value
        assert total is not None
        return total, parts


def _level_parts(level: int, value: jax.Array, level_parts: Parts) -> Parts:
    parts = {f"level{level}": value}
    if len(level_parts) > 1:
        parts.update({f"level{level}/{name}": v for name, v in level_parts.items()})
    return parts


def deep_supervision(loss: Any, *, weights: Any = "exp") -> DeepSupervisionLoss:
    r"""Applies a loss to the outputs of several decoder levels (deep supervision).

    A deeply supervised network (nnU-Net, MONAI's DynUNet) predicts logits at several
    resolutions; each is compared with the labels resized to it, and the weighted losses add:

    .. math::

       L = \sum_{l=0}^{L-1} \lambda_l\, \mathcal{L}\bigl(x^{(l)}, \downarrow_l y,
           \downarrow_l m\bigr),

    with :math:`x^{(0)}` the full-resolution logits and :math:`\downarrow_l` the nearest-neighbour
    resize of the labels, the mask and the ignored pixels (``ignore_index`` values are kept by
    the resize) to the spatial shape of :math:`x^{(l)}`: PyTorch's ``nearest-exact``, output
    index :math:`j` reads input index :math:`\min(\lfloor (j + \tfrac12) n / m \rfloor, n - 1)`
    (static gathers, so it jits; a factor-2 downsampling reads the odd pixels, as MONAI's).

    Weights :math:`\lambda_l`: ``"exp"`` :math:`\max(2^{-l}, 1/16)` (MONAI's default), ``"two"``
    1 then 1/2, ``"same"`` 1, ``"nnunet"`` :math:`2^{-l}` with the lowest resolution set to 0,
    normalised to sum 1 (nnU-Net v2's ``DeepSupervisionWrapper`` weights), or a sequence with
    one weight per output.

    Peers: MONAI ``DeepSupervisionLoss(loss, weight_mode=m)`` is ``weights=m`` (MONAI's
    ``weights=list`` is a sequence; MONAI takes the first entries of a longer list, here the
    lengths must agree); nnU-Net's ``DeepSupervisionWrapper(loss, weights)`` receives labels
    already downsampled by its data-loading transforms (its own nearest-neighbour resize, whose
    pixel choice this function does not promise to reproduce); ``weights="nnunet"`` gives its
    weights.

    Args:
      loss: the loss of each level: a :class:`CombinedLoss` from :func:`combine` (its data
        options, ``axis_name`` and ``reduction`` apply at every level) or a loss function made
        by :func:`~jaxseg_losses.define_loss` (a library loss, or a ``functools.partial`` of
        one).
      weights: ``"exp"`` (default), ``"same"``, ``"two"``, ``"nnunet"`` or a sequence of
        numbers, one per output, full resolution first.

    Returns:
      A :class:`DeepSupervisionLoss`, ``loss_fn(outputs, labels, *, mask=None) -> (total,
      parts)``: ``outputs`` a list/tuple of ``[B, *spatial_l, C]`` logits, full resolution
      first; ``labels`` and ``mask`` at full resolution. ``parts["level{l}"]`` is the
      unweighted loss of level :math:`l` and, for a combination of several terms,
      ``parts["level{l}/{term}"]`` each term's.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> loss_fn = jsl.deep_supervision(jsl.combine("ce+dice"), weights="nnunet")
      >>> labels = jax.random.randint(jax.random.key(0), (2, 8, 8), 0, 3)
      >>> outputs = [jax.random.normal(jax.random.key(l), (2, 8 >> l, 8 >> l, 3))
      ...            for l in range(3)]
      >>> total, parts = jax.jit(loss_fn)(outputs, labels)
      >>> sorted(parts)[:3]
      ['level0', 'level0/ce', 'level0/dice']
      >>> bool(jnp.isclose(total, (4 * parts["level0"] + 2 * parts["level1"]) / 6))
      True

    References:
      Lee, Xie, Gallagher, Zhang & Tu, "Deeply-Supervised Nets", AISTATS 2015. Isensee et al.,
      "nnU-Net", Nature Methods 2021.
    """
    if isinstance(loss, CombinedLoss):
        combined = loss
    elif callable(loss) and engine.is_described(loss):
        base, _ = engine.unwrap(loss)
        combined = combine({base.__name__: loss})
    else:
        raise TypeError(
            "`loss` must be a CombinedLoss from jsl.combine(...) or a loss made by "
            f"jsl.define_loss (such as jsl.dice_loss, or a partial of one); got "
            f"{type(loss).__name__}."
        )
    deep_supervision_weights(weights, len(weights) if isinstance(weights, list | tuple) else 1)
    return DeepSupervisionLoss(loss=combined, weights=weights)


# ----------------------------------------------------------------------------------------------
# Ready-made combinations.


def _two_terms(
    logits: ArrayLike,
    labels: ArrayLike,
    terms: dict[str, tuple[Any, LossFn, Mapping[str, Any] | None]],
    *,
    activation: str | None,
    class_axis: int,
    ignore_index: int | None,
    mask: ArrayLike | None,
    axis_name: Any,
    reduction: str,
    return_parts: bool,
) -> Any:
    loss_fn = combine(
        {
            name: (weight, functools.partial(fn, **dict(options or {})))
            for name, (weight, fn, options) in terms.items()
        },
        activation=activation,
        class_axis=class_axis,
        ignore_index=ignore_index,
        axis_name=axis_name,
        reduction=reduction,
    )
    total, parts = loss_fn(logits, labels, mask=mask)
    return (total, parts) if return_parts else total


@documented
def dice_ce_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    dice_weight: ArrayLike = 1.0,
    ce_weight: ArrayLike = 1.0,
    dice_options: Mapping[str, Any] | None = None,
    ce_options: Mapping[str, Any] | None = None,
    activation: str | None = "softmax",
    class_axis: int = -1,
    ignore_index: int | None = None,
    mask: ArrayLike | None = None,
    axis_name: Any = None,
    reduction: str = "mean",
    return_parts: bool = False,
) -> Any:
    r"""Computes Dice + cross-entropy, the nnU-Net recipe, with one pass over the logits.

    .. math::

       L = \lambda_{\mathrm{dice}}\, L_{\mathrm{Dice}} + \lambda_{\mathrm{ce}}\, L_{\mathrm{CE}}

    The data options apply to both terms; options of one term go in its dict, e.g.
    ``dice_options={"smooth": 1e-5, "include_background": False, "aggregate": "batch"}`` (nnU-Net)
    or ``ce_options={"class_weights": w}``. See :func:`jaxseg_losses.dice_loss` and
    :func:`jaxseg_losses.cross_entropy_loss`.

    Args:
      dice_weight: :math:`\lambda_{\mathrm{dice}}`.
      ce_weight: :math:`\lambda_{\mathrm{ce}}`.
      dice_options: keyword options of :func:`jaxseg_losses.dice_loss`.
      ce_options: keyword options of :func:`jaxseg_losses.cross_entropy_loss`.
      <pair args>

    <pair returns>

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 2.0], [1.0, 0.0]]])
      >>> labels = jnp.array([[0, 1, 1]])
      >>> total, parts = jsl.dice_ce_loss(logits, labels, return_parts=True)
      >>> print(f"{total:.4f} = {parts['dice']:.4f} + {parts['ce']:.4f}")
      0.7658 = 0.2435 + 0.5224

    References:
      Isensee et al., "nnU-Net", Nature Methods 2021. Milletari et al., "V-Net", 3DV 2016.
    """
    return _two_terms(
        logits,
        labels,
        {
            "dice": (dice_weight, region.dice_loss, dice_options),
            "ce": (ce_weight, pixelwise.cross_entropy_loss, ce_options),
        },
        activation=activation,
        class_axis=class_axis,
        ignore_index=ignore_index,
        mask=mask,
        axis_name=axis_name,
        reduction=reduction,
        return_parts=return_parts,
    )


@documented
def dice_focal_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    dice_weight: ArrayLike = 1.0,
    focal_weight: ArrayLike = 1.0,
    dice_options: Mapping[str, Any] | None = None,
    focal_options: Mapping[str, Any] | None = None,
    activation: str | None = "softmax",
    class_axis: int = -1,
    ignore_index: int | None = None,
    mask: ArrayLike | None = None,
    axis_name: Any = None,
    reduction: str = "mean",
    return_parts: bool = False,
) -> Any:
    r"""Computes Dice + focal loss, with one pass over the logits.

    .. math::

       L = \lambda_{\mathrm{dice}}\, L_{\mathrm{Dice}} + \lambda_{\mathrm{focal}}\,
           L_{\mathrm{focal}}

    Focal options (``gamma``, ``alpha``) go in ``focal_options``; see
    :func:`jaxseg_losses.focal_loss`.

    Args:
      dice_weight: :math:`\lambda_{\mathrm{dice}}`.
      focal_weight: :math:`\lambda_{\mathrm{focal}}`.
      dice_options: keyword options of :func:`jaxseg_losses.dice_loss`.
      focal_options: keyword options of :func:`jaxseg_losses.focal_loss`.
      <pair args>

    <pair returns>

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 2.0], [1.0, 0.0]]])
      >>> labels = jnp.array([[0, 1, 1]])
      >>> print(f"{jsl.dice_focal_loss(logits, labels, focal_options={'gamma': 2.0}):.4f}")
      0.4786

    References:
      Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017. Zhu et al., "AnatomyNet",
      Medical Physics 2019 (Dice + focal).
    """
    return _two_terms(
        logits,
        labels,
        {
            "dice": (dice_weight, region.dice_loss, dice_options),
            "focal": (focal_weight, pixelwise.focal_loss, focal_options),
        },
        activation=activation,
        class_axis=class_axis,
        ignore_index=ignore_index,
        mask=mask,
        axis_name=axis_name,
        reduction=reduction,
        return_parts=return_parts,
    )


@documented
def iou_ce_loss(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    iou_weight: ArrayLike = 1.0,
    ce_weight: ArrayLike = 1.0,
    iou_options: Mapping[str, Any] | None = None,
    ce_options: Mapping[str, Any] | None = None,
    activation: str | None = "softmax",
    class_axis: int = -1,
    ignore_index: int | None = None,
    mask: ArrayLike | None = None,
    axis_name: Any = None,
    reduction: str = "mean",
    return_parts: bool = False,
) -> Any:
    r"""Computes soft IoU (Jaccard) + cross-entropy, with one pass over the logits.

    .. math::

       L = \lambda_{\mathrm{iou}}\, L_{\mathrm{IoU}} + \lambda_{\mathrm{ce}}\, L_{\mathrm{CE}}

    Args:
      iou_weight: :math:`\lambda_{\mathrm{iou}}`.
      ce_weight: :math:`\lambda_{\mathrm{ce}}`.
      iou_options: keyword options of :func:`jaxseg_losses.iou_loss` (e.g. ``{"log": True}``).
      ce_options: keyword options of :func:`jaxseg_losses.cross_entropy_loss`.
      <pair args>

    <pair returns>

    Examples:
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> logits = jnp.array([[[2.0, 0.0], [0.0, 2.0], [1.0, 0.0]]])
      >>> labels = jnp.array([[0, 1, 1]])
      >>> print(f"{jsl.iou_ce_loss(logits, labels):.4f}")
      0.8478

    References:
      Rahman & Wang, "Optimizing Intersection-Over-Union in Deep Neural Networks for Image
      Segmentation", ISVC 2016.
    """
    return _two_terms(
        logits,
        labels,
        {
            "iou": (iou_weight, region.iou_loss, iou_options),
            "ce": (ce_weight, pixelwise.cross_entropy_loss, ce_options),
        },
        activation=activation,
        class_axis=class_axis,
        ignore_index=ignore_index,
        mask=mask,
        axis_name=axis_name,
        reduction=reduction,
        return_parts=return_parts,
    )


@engine.define_loss(activations=("sigmoid",))
def binary_cross_entropy_loss(
    *,
    class_weights: ArrayLike | None = None,
    pos_weight: ArrayLike | None = None,
    label_smoothing: ArrayLike = 0.0,
) -> engine.LossDefinition:
    r"""The sigmoid cross-entropy, registered as ``"bce"``.

    :func:`jaxseg_losses.cross_entropy_loss` with ``activation="sigmoid"`` fixed, so that a
    combination such as ``combine("bce+dice", activation="sigmoid")`` or a softmax combination
    with a binary side term can name it (PyTorch ``BCEWithLogitsLoss``).

    Args:
      <data args>
      class_weights: ``[C]`` per-channel factors.
      pos_weight: scalar or ``[C]`` weight of the positive term.
      label_smoothing: :math:`\varepsilon \in [0, 1)`, targets pulled towards 1/2.
      <shared options>

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
    return pixelwise.cross_entropy_loss.definition(
        class_weights=class_weights, pos_weight=pos_weight, label_smoothing=label_smoothing
    )


def _register_builtins() -> None:
    register_loss("ce", pixelwise.cross_entropy_loss)
    register_loss("bce", binary_cross_entropy_loss)
    register_loss("poly", pixelwise.poly_cross_entropy_loss)
    register_loss("topk", pixelwise.topk_cross_entropy_loss)
    register_loss("focal", pixelwise.focal_loss)
    register_loss("dice", region.dice_loss)
    register_loss("log_dice", functools.partial(region.dice_loss, log=True))
    register_loss("iou", region.iou_loss)
    register_loss("log_iou", functools.partial(region.iou_loss, log=True))
    register_loss("tversky", region.tversky_loss)
    register_loss("gdl", region.generalized_dice_loss)
    register_loss("mcc", region.mcc_loss)
    register_loss("lovasz", lovasz.lovasz_softmax_loss)
    register_loss("lovasz_hinge", lovasz.lovasz_hinge_loss)
    register_loss("boundary", spatial.boundary_loss)
    register_loss("hausdorff", spatial.hausdorff_dt_loss)
    register_loss("log_hausdorff", functools.partial(spatial.hausdorff_dt_loss, log=True))
    register_loss("cldice", spatial.cldice_loss)


_register_builtins()
