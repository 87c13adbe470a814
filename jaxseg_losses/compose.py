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

from jaxseg_losses import _checks, _core, lovasz, pixelwise, region

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
        _core.check_weight(name, weight)
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

    terms: tuple[_core.Term, ...]
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
        return _core.evaluate(
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
        return _core.collect_sums(
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
            term.name: _core.term_value(term, sums[term.name], self.reduction)
            for term in self.terms
        }
        return _core.weighted_total(self.terms, parts), parts


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
        _core.bind_term(
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
# Ready-made combinations.

_READY_ARGS = """\
      logits: ``[B, *spatial, C]`` float logits (probabilities when ``activation=None``).
      labels: ``[B, *spatial]`` integer class indices or ``[B, *spatial, C]`` dense targets.
      activation: ``"softmax"``, ``"sigmoid"`` or ``None``, for both terms.
      class_axis: the class axis of ``logits``, for both terms.
      ignore_index: a label value whose pixels count nowhere, for both terms.
      mask: ``[B, *spatial]`` bool or float pixel weights, for both terms.
      axis_name: a mapped device axis, for both terms.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[B]``), for both terms.
      return_parts: also return ``{name: unweighted term value}``.

    Returns:
      The float32 total (``[B]`` for ``reduction="none"``), or ``(total, parts)`` with
      ``return_parts=True``."""


def _ready_docs(fn: Any) -> Any:
    fn.__doc__ = fn.__doc__.replace("      <ready args>", _READY_ARGS)
    return fn


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


@_ready_docs
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
      <ready args>

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


@_ready_docs
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
      <ready args>

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


@_ready_docs
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
      <ready args>

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


def _register_builtins() -> None:
    register_loss("ce", pixelwise.cross_entropy_loss)
    register_loss("focal", pixelwise.focal_loss)
    register_loss("dice", region.dice_loss)
    register_loss("log_dice", functools.partial(region.dice_loss, log=True))
    register_loss("iou", region.iou_loss)
    register_loss("log_iou", functools.partial(region.iou_loss, log=True))
    register_loss("tversky", region.tversky_loss)
    register_loss("gdl", region.generalized_dice_loss)
    register_loss("lovasz", lovasz.lovasz_softmax_loss)
    register_loss("lovasz_hinge", lovasz.lovasz_hinge_loss)


_register_builtins()
