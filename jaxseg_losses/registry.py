r"""The one table of the built-in losses, and the registry of short names that ``combine`` reads.

:data:`BUILTIN_LOSSES` lists every loss of the library once: its public function, its family,
the short names :func:`jaxseg_losses.combine` accepts for it (``"dice"``, ``"log_dice"``, ...)
and the row of the benchmark suite that times it. Everything that enumerates the losses derives
from it: the registry below, :mod:`jaxseg_losses.per_sample`, the rule tests that every loss
must pass, the API-reference completeness check of the docs and the benchmark rows. Adding a
loss is its family module, its test file, a row here and a row in the docs.

A user's own loss joins the registry with :func:`register_loss`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

from jaxseg_losses._core.checks import ACTIVATIONS
from jaxseg_losses.losses import focal, lovasz, pairs, pixelwise, region, spatial
from jaxseg_losses.losses.blob import blob_loss
from jaxseg_losses.losses.nacl import nacl_loss
from jaxseg_losses.losses.skeleton_recall import skeleton_recall_loss
from jaxseg_losses.losses.unified_focal import unified_focal_loss
from jaxseg_losses.losses.wasserstein import generalized_wasserstein_dice_loss

LossFn = Callable[..., Any]


@dataclasses.dataclass(frozen=True)
class BuiltinLoss:
    """One built-in loss and what is derived from it.

    Attributes:
      fn: the public loss function (``fn.__name__`` is its public name).
      family: its family module in ``jaxseg_losses.losses`` (``"pairs"`` for the ready-made
        combinations).
      names: the short names :func:`jaxseg_losses.combine` accepts for it, each with the options
        it binds (``{"log_dice": {"log": True}}``).
      benchmark: the benchmark row that times it (``benchmarks/``), or ``None``.
      benchmark_options: the options of that row.
    """

    fn: LossFn
    family: str
    names: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    benchmark: str | None = None
    benchmark_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def name(self) -> str:
        """The public name, ``jsl.<name>`` and ``jsl.per_sample.<name>``."""
        return self.fn.__name__

    @property
    def activations(self) -> tuple[str | None, ...]:
        """The activations it accepts (a loss fixed to ``"sigmoid"`` needs one binary channel)."""
        return getattr(self.fn, "activations", ACTIVATIONS)


def _named(*names: str, **bound: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {**{name: {} for name in names}, **bound}


BUILTIN_LOSSES: tuple[BuiltinLoss, ...] = (
    BuiltinLoss(region.iou_loss, "region", _named("iou", log_iou={"log": True}), "iou"),
    BuiltinLoss(region.dice_loss, "region", _named("dice", log_dice={"log": True}), "dice"),
    BuiltinLoss(
        region.tversky_loss, "region", _named("tversky"), "tversky", {"alpha": 0.3, "beta": 0.7}
    ),
    BuiltinLoss(region.generalized_dice_loss, "region", _named("gdl")),
    BuiltinLoss(region.mcc_loss, "region", _named("mcc"), "mcc"),
    BuiltinLoss(pixelwise.cross_entropy_loss, "pixelwise", _named("ce"), "ce"),
    BuiltinLoss(pixelwise.binary_cross_entropy_loss, "pixelwise", _named("bce")),
    BuiltinLoss(focal.focal_loss, "focal", _named("focal"), "focal"),
    BuiltinLoss(pixelwise.poly_cross_entropy_loss, "pixelwise", _named("poly"), "poly"),
    BuiltinLoss(
        pixelwise.topk_cross_entropy_loss, "pixelwise", _named("topk"), "topk", {"k": 10.0}
    ),
    BuiltinLoss(lovasz.lovasz_softmax_loss, "lovasz", _named("lovasz"), "lovasz"),
    BuiltinLoss(lovasz.lovasz_hinge_loss, "lovasz", _named("lovasz_hinge"), "lovasz"),
    BuiltinLoss(spatial.boundary_loss, "spatial", _named("boundary"), "boundary"),
    BuiltinLoss(
        spatial.hausdorff_dt_loss,
        "spatial",
        _named("hausdorff", log_hausdorff={"log": True}),
        "hausdorff",
    ),
    BuiltinLoss(spatial.cldice_loss, "spatial", _named("cldice"), "cldice"),
    BuiltinLoss(skeleton_recall_loss, "spatial", _named("skeleton_recall")),
    BuiltinLoss(blob_loss, "blob", _named("blob")),
    BuiltinLoss(generalized_wasserstein_dice_loss, "wasserstein", _named("gwdl")),
    BuiltinLoss(unified_focal_loss, "unified_focal", _named("unified_focal")),
    BuiltinLoss(nacl_loss, "nacl", _named("nacl")),
    BuiltinLoss(pairs.dice_ce_loss, "pairs", benchmark="ce+dice"),
    BuiltinLoss(pairs.dice_focal_loss, "pairs"),
    BuiltinLoss(pairs.iou_ce_loss, "pairs"),
)

# ----------------------------------------------------------------------------------------------
# The registry of short names.

_REGISTRY: dict[str, LossFn] = {}


def register_loss(name: str, fn: LossFn, *, overwrite: bool = False) -> LossFn:
    """Registers a loss under a short name for :func:`parse_loss_spec` and ``combine``.

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
      A tuple of names accepted by :func:`parse_loss_spec` and :func:`jaxseg_losses.combine`.

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
      ``{name: (weight, fn)}`` in the order given, ready for :func:`jaxseg_losses.combine`.

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


def _register_builtins() -> None:
    for entry in BUILTIN_LOSSES:
        for short_name, options in entry.names.items():
            fn = functools.partial(entry.fn, **options) if options else entry.fn
            register_loss(short_name, fn)


_register_builtins()
