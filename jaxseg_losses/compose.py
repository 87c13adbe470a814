r"""Combining losses: weighted sums of named terms that report each part.

Region losses alone train unstably; the usual recipe adds a pixel-wise term (nnU-Net trains on
Dice + CE). :func:`combine` builds one loss function from named, weighted terms:

.. math::

   L = \sum_k \lambda_k L_k(\text{logits}, \text{labels})

and returns ``(total, parts)`` with ``parts[name]`` the unweighted value of each term, ready for
``nnx.value_and_grad(loss_fn, has_aux=True)`` and for logging.

The options that describe the data (``activation``, ``class_axis``, ``ignore_index``, the
``mask`` of each call) and how to reduce it (``axis_name``, ``reduction``) are given once and
passed identically to every term; a term cannot quietly disagree about which pixels count.
Options of one term (Dice smoothing, CE class weights, focal γ) belong to that term, through
``functools.partial``.

With ``activation="softmax"`` the softmax is computed once for all terms of this library: the
combinator computes :math:`\log p = \mathrm{log\_softmax}(x)` and :math:`p = \exp(\log p)` once,
in float32, and hands region terms the probabilities and pixel-wise terms the log-probabilities.
(XLA does not merge the separate softmax of each term by itself.)

Terms can be named in a short string (``"ce+dice"``, ``"ce:1,iou:0.5"``), which is how the
examples' ``--loss`` flag is parsed; :func:`register_loss` adds a name.
"""

import dataclasses
import functools
import inspect
import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any, cast

import jax
import jax.numpy as jnp

from jaxseg_losses import _checks, _inputs, lovasz, pixelwise, region

ArrayLike = jax.typing.ArrayLike
LossFn = Callable[..., jax.Array]
CombinedLoss = Callable[..., tuple[jax.Array, dict[str, jax.Array]]]

# Options every term receives from the combinator, never from its own partial.
SHARED_OPTIONS = ("activation", "class_axis", "ignore_index", "mask", "axis_name", "reduction")


# ----------------------------------------------------------------------------------------------
# Registry of named terms.


@dataclasses.dataclass(frozen=True)
class _Entry:
    fn: LossFn
    # How the term consumes a shared softmax: "probabilities" (called with p and
    # activation=None), "log_probabilities" (an internal log-softmax entry point) or "logits".
    takes: str


_REGISTRY: dict[str, _Entry] = {}
_TAKES = ("logits", "probabilities")

# Library functions with a log-softmax entry point: (public function, internal twin).
_LOG_PROB_TWINS: dict[LossFn, LossFn] = {
    pixelwise.cross_entropy_loss: pixelwise._cross_entropy_loss,
    pixelwise.focal_loss: pixelwise._focal_loss,
}
# Library functions that compute the same result from probabilities with activation=None.
_PROBABILITY_FNS: set[LossFn] = {
    region.iou_loss,
    region.dice_loss,
    region.tversky_loss,
    region.generalized_dice_loss,
    lovasz.lovasz_softmax_loss,
}


def register_loss(
    name: str, fn: LossFn, *, takes: str = "logits", overwrite: bool = False
) -> LossFn:
    """Registers a loss under a short name for :func:`parse_loss_spec` and :func:`combine`.

    ``fn`` must accept ``(logits, labels, *, activation, class_axis, ignore_index, mask,
    axis_name, reduction)`` like every loss of this library; bind its own options with
    ``functools.partial``.

    Args:
      name: a lowercase identifier (letters, digits, ``_``), e.g. ``"lovasz"``.
      fn: the loss function.
      takes: ``"logits"`` (default), or ``"probabilities"`` when ``fn(p, labels,
        activation=None)`` equals ``fn(logits, labels, activation="softmax")`` for
        ``p = softmax(logits)``: the combinator then shares one softmax with it.
      overwrite: replace an existing registration instead of raising.

    Returns:
      ``fn``, so that ``register_loss`` can be used as a decorator through ``functools.partial``.

    Examples:
      >>> import functools
      >>> import jaxseg_losses as jsl
      >>> _ = jsl.register_loss(
      ...     "soft_dice", functools.partial(jsl.dice_loss, smooth=1e-5), takes="probabilities")
      >>> sorted(jsl.parse_loss_spec("ce+soft_dice"))
      ['ce', 'soft_dice']
    """
    if not isinstance(name, str) or not name.isidentifier() or name != name.lower():
        raise ValueError(f"`name` must be a lowercase identifier such as 'lovasz'; got {name!r}.")
    if not callable(fn):
        raise TypeError(f"`fn` must be callable; got {type(fn).__name__} {fn!r}.")
    _checks.check_choice("takes", takes, _TAKES)
    if name in _REGISTRY and not overwrite:
        raise ValueError(
            f"A loss named {name!r} is already registered; pass overwrite=True to replace it."
        )
    _REGISTRY[name] = _Entry(fn=fn, takes=takes)
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
    return _REGISTRY[name].fn


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


def _unwrap(fn: LossFn) -> tuple[LossFn, dict[str, Any]]:
    """``functools.partial(f, **kw)`` -> ``(f, kw)``, nested partials flattened."""
    keywords: dict[str, Any] = {}
    while isinstance(fn, functools.partial):
        if fn.args:
            raise ValueError(
                f"A term's partial may bind keyword options only, not positional arguments; "
                f"got {fn!r}."
            )
        keywords = {**fn.keywords, **keywords}
        fn = fn.func
    return fn, keywords


def _normalise_terms(
    terms: str | Mapping[str, Any],
) -> list[tuple[str, Any, LossFn, str]]:
    """``(name, weight, fn, takes)`` for each term, validated."""
    if isinstance(terms, str):
        terms = parse_loss_spec(terms)
    if not isinstance(terms, Mapping) or not terms:
        raise TypeError(
            "`terms` must be a non-empty mapping such as {'ce': 1.0, 'dice': 1.0} or a string "
            f"such as 'ce+dice'; got {terms!r}."
        )
    normalised = []
    for name, value in terms.items():
        if not isinstance(name, str):
            raise TypeError(f"Term names must be strings; got {name!r}.")
        if isinstance(value, tuple) and len(value) == 2 and callable(value[1]):
            weight, fn = value
            takes = "logits"
        elif callable(value):
            weight, fn, takes = 1.0, value, "logits"
        elif isinstance(value, numbers.Real | jax.Array) and not isinstance(value, bool):
            weight, fn = value, get_loss(name)
            takes = _REGISTRY[name].takes
        else:
            raise TypeError(
                f"Term {name!r} must be a weight (for a registered name), a loss function, or a "
                f"(weight, loss function) pair; got {value!r}."
            )
        if isinstance(weight, bool) or not isinstance(weight, numbers.Real | jax.Array):
            raise TypeError(f"The weight of term {name!r} must be a number; got {weight!r}.")
        fn = cast(LossFn, fn)
        for entry in _REGISTRY.values():
            if entry.fn is fn:
                takes = entry.takes
        base, bound = _unwrap(fn)
        clash = sorted(set(bound) & set(SHARED_OPTIONS))
        if clash:
            raise ValueError(
                f"Term {name!r} binds {', '.join(clash)} itself; data options are given once to "
                "combine() (and mask to each call) so that every term sees the same pixels."
            )
        if base in _PROBABILITY_FNS:
            takes = "probabilities"
        if base in _LOG_PROB_TWINS:
            takes = "log_probabilities"
        normalised.append((name, weight, fn, takes))
    return normalised


def _shared_softmax(logits: ArrayLike, class_axis: int) -> tuple[jax.Array, jax.Array]:
    """``(log p, p)`` in the compute dtype, with the input checks the terms would make."""
    x = _checks.as_float_array("logits", logits)
    _checks.check_min_rank("logits", x, 2, "[batch, *spatial, num_classes]")
    axis = _checks.normalize_axis("class_axis", class_axis, x.ndim)
    if axis == 0:
        raise ValueError("`class_axis` cannot be the batch axis 0; logits are [B, *spatial, C].")
    if x.shape[axis] < 2:
        raise ValueError(
            f"activation='softmax' needs at least 2 classes along `class_axis`; got logits of "
            f"shape {tuple(x.shape)}. For binary segmentation with one channel use "
            "activation='sigmoid'."
        )
    x = x.astype(_inputs.compute_dtype(x.dtype))
    # One exponential serves both outputs: p = e / s and log p = (x - max) - log s.
    shifted = x - jax.lax.stop_gradient(jnp.max(x, axis=axis, keepdims=True))
    exp_shifted = jnp.exp(shifted)
    total = jnp.sum(exp_shifted, axis=axis, keepdims=True)
    return shifted - jnp.log(total), exp_shifted / total


def combine(
    terms: str | Mapping[str, Any],
    *,
    activation: str | None = "softmax",
    class_axis: int = -1,
    ignore_index: int | None = None,
    axis_name: Any = None,
    reduction: str = "mean",
) -> CombinedLoss:
    r"""Combines weighted loss terms into one function returning ``(total, parts)``.

    .. math::

       L = \sum_k \lambda_k L_k, \qquad \mathrm{parts}[k] = L_k

    Each term is called as ``fn(logits, labels, activation=..., class_axis=..., ignore_index=...,
    mask=..., axis_name=..., reduction=...)`` with the same data options, so CE and Dice agree on
    the pixels that count (unlike MONAI's ``DiceCELoss``, whose halves read some options
    differently). With ``activation="softmax"`` the softmax is computed once for all library
    terms (see the module docstring).

    Args:
      terms: ``{name: weight}`` for registered names (``"ce"``, ``"dice"``, ...), ``{name: fn}``
        (weight 1) or ``{name: (weight, fn)}`` for any loss function (bind its own options with
        ``functools.partial``), or a string such as ``"ce+dice"`` / ``"ce:1,dice:0.5"``.
      activation: ``"softmax"``, ``"sigmoid"`` or ``None``, for every term.
      class_axis: the class axis of ``logits``, for every term.
      ignore_index: a label value whose pixels count nowhere, for every term.
      axis_name: a mapped device axis, for every term.
      reduction: ``"mean"``, ``"sum"`` or ``"none"``, for every term.

    Returns:
      ``loss_fn(logits, labels, *, mask=None) -> (total, parts)``: ``total`` a float32 scalar
      (``[B]`` with ``reduction="none"``) and ``parts`` a dict of each term's unweighted value.

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
    normalised = _normalise_terms(terms)
    shared = {
        "class_axis": class_axis,
        "ignore_index": ignore_index,
        "axis_name": axis_name,
        "reduction": reduction,
    }
    share_softmax = activation == "softmax" and any(
        takes != "logits" for _, _, _, takes in normalised
    )

    def combined_loss(
        logits: ArrayLike, labels: ArrayLike, *, mask: ArrayLike | None = None
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        log_probs = probs = None
        if share_softmax:
            log_probs, probs = _shared_softmax(logits, class_axis)
        parts: dict[str, jax.Array] = {}
        total = None
        for name, weight, fn, takes in normalised:
            if share_softmax and takes == "probabilities":
                value = fn(probs, labels, activation=None, mask=mask, **shared)
            elif share_softmax and takes == "log_probabilities":
                base, bound = _unwrap(fn)
                twin = _LOG_PROB_TWINS[base]
                options = _defaults(base) | bound
                value = twin(
                    log_probs,
                    labels,
                    **(options | shared),
                    activation=pixelwise.LOG_SOFTMAX,
                    mask=mask,
                )
            elif _accepts_activation(fn):
                value = fn(logits, labels, activation=activation, mask=mask, **shared)
            else:
                # A loss with its activation built in (the Lovász hinge reads logits).
                value = fn(logits, labels, mask=mask, **shared)
            parts[name] = value
            term = weight * value
            total = term if total is None else total + term
        assert total is not None
        return total, parts

    combined_loss.__doc__ = (
        "Weighted sum of "
        + " + ".join(f"{w!r} * {name}" for name, w, _, _ in normalised)
        + "; returns (total, parts)."
    )
    return combined_loss


def _accepts_activation(fn: LossFn) -> bool:
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return True
    return "activation" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


@functools.cache
def _default_options(fn: LossFn) -> tuple[tuple[str, Any], ...]:
    return tuple(
        (name, p.default)
        for name, p in inspect.signature(fn).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in SHARED_OPTIONS
    )


def _defaults(fn: LossFn) -> dict[str, Any]:
    return dict(_default_options(fn))


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
    r"""Computes Dice + cross-entropy, the nnU-Net recipe, with one softmax.

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
    r"""Computes Dice + focal loss, with one softmax.

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
    r"""Computes soft IoU (Jaccard) + cross-entropy, with one softmax.

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
    probabilities = "probabilities"
    register_loss("ce", pixelwise.cross_entropy_loss)
    register_loss("focal", pixelwise.focal_loss)
    register_loss("dice", region.dice_loss, takes=probabilities)
    register_loss("log_dice", functools.partial(region.dice_loss, log=True), takes=probabilities)
    register_loss("iou", region.iou_loss, takes=probabilities)
    register_loss("log_iou", functools.partial(region.iou_loss, log=True), takes=probabilities)
    register_loss("tversky", region.tversky_loss, takes=probabilities)
    register_loss("gdl", region.generalized_dice_loss, takes=probabilities)
    register_loss("lovasz", lovasz.lovasz_softmax_loss, takes=probabilities)
    register_loss("lovasz_hinge", lovasz.lovasz_hinge_loss)


_register_builtins()
