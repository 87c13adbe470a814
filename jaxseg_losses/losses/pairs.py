r"""The ready-made pairs of a region loss and a pixel-wise loss: Dice + CE, Dice + focal, IoU + CE.

Each is the combination of its two terms with the data options given once (as
:func:`jaxseg_losses.combine` builds it), evaluated on one shared
:class:`~jaxseg_losses.Inputs`: CE + Dice reads one log-sum-exp per pixel, in one pass over the
logits forward and one backward. They are functions (not combinations) so that their
signatures name each term's weight and options, as MONAI's ``DiceCELoss`` does.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import textwrap
from collections.abc import Callable
from typing import Any

import jax

from jaxseg_losses._core import engine
from jaxseg_losses._core.define import SHARED_PARAMETERS
from jaxseg_losses._core.definition import SHARED_OPTIONS
from jaxseg_losses._core.docs import BLOCKS, set_doc
from jaxseg_losses._core.signatures import (
    bind,
    give_signature,
    keyword_parameters,
    positional_parameters,
)
from jaxseg_losses.losses import focal, pixelwise, region

ArrayLike = jax.typing.ArrayLike
LossFn = Callable[..., Any]

# The options every pair takes after its terms' weights and options: the shared options of
# every loss (their defaults and annotations), and return_parts.
_SHARED = {
    **{name: SHARED_PARAMETERS[name] for name in SHARED_OPTIONS},
    "return_parts": (False, "bool"),
}


@dataclasses.dataclass(frozen=True)
class _Term:
    """One term of a pair: its name (the prefix of its options) and its loss."""

    name: str
    fn: LossFn
    label: str  # how the formula names it, e.g. "Dice"


def _signature(terms: tuple[_Term, _Term]) -> inspect.Signature:
    """``(logits, labels, *, <a>_weight, <b>_weight, <a>_options, <b>_options, <shared>)``."""
    weights = {f"{t.name}_weight": (1.0, "ArrayLike") for t in terms}
    options = {f"{t.name}_options": (None, "Mapping[str, Any] | None") for t in terms}
    parameters = [
        *positional_parameters(("logits", "labels"), "ArrayLike"),
        *keyword_parameters({**weights, **options, **_SHARED}),
    ]
    return inspect.Signature(parameters, return_annotation="Any")


def _argument_docs(terms: tuple[_Term, _Term]) -> str:
    """The ``Args`` of a pair: its terms' weights and options, then the shared options."""
    weights = [
        f"{t.name}_weight: :math:`\\lambda_{{\\mathrm{{{t.name}}}}}`, the {t.label} term's weight."
        for t in terms
    ]
    options = [
        f"{t.name}_options: keyword options of :func:`jaxseg_losses.{t.fn.__name__}`."
        for t in terms
    ]
    return "\n".join([*weights, *options, textwrap.dedent(BLOCKS["pair shared args"])])


def _pair(name: str, first: _Term, second: _Term, doc: str) -> Callable[..., Any]:
    """The public function of a pair: both terms bound with the shared options, evaluated on
    one shared :class:`~jaxseg_losses.Inputs`."""
    terms = (first, second)
    signature = _signature(terms)

    def pair(logits: ArrayLike, labels: ArrayLike, **kwargs: Any) -> Any:
        arguments = bind(name, signature, logits, labels, **kwargs)
        named = (
            (
                t.name,
                arguments[f"{t.name}_weight"],
                functools.partial(t.fn, **dict(arguments[f"{t.name}_options"] or {})),
            )
            for t in terms
        )
        activation, reduction, axis_name = (
            arguments["activation"],
            arguments["reduction"],
            arguments["axis_name"],
        )
        bound_terms = engine.bind_terms(
            named, activation=activation, reduction=reduction, axis_name=axis_name
        )
        data = engine.Data.of_call(arguments, activation)
        total, parts = engine.evaluate(bound_terms, data, axis_name, reduction)
        return (total, parts) if arguments["return_parts"] else total

    give_signature(pair, signature, name)
    return set_doc(pair, doc, {"pair args": _argument_docs(terms)})


_DICE = _Term("dice", region.dice_loss, "Dice")
_CE = _Term("ce", pixelwise.cross_entropy_loss, "cross-entropy")

dice_ce_loss = _pair(
    "dice_ce_loss",
    _DICE,
    _CE,
    r"""Computes Dice + cross-entropy, the nnU-Net recipe, with one pass over the logits.

    .. math::

       L = \lambda_{\mathrm{dice}}\, L_{\mathrm{Dice}} + \lambda_{\mathrm{ce}}\, L_{\mathrm{CE}}

    The data options apply to both terms; options of one term go in its dict, e.g.
    ``dice_options={"smooth": 1e-5, "include_background": False, "aggregate": "batch"}`` (nnU-Net)
    or ``ce_options={"class_weights": w}``. See :func:`jaxseg_losses.dice_loss` and
    :func:`jaxseg_losses.cross_entropy_loss`.

    Args:
      <pair args>

    <pair returns>

    Examples:
      <loss example setup>
      >>> total, parts = jsl.dice_ce_loss(logits, labels, return_parts=True)
      >>> print(f"{total:.4f} = {parts['dice']:.4f} + {parts['ce']:.4f}")
      0.7658 = 0.2435 + 0.5224

    References:
      Isensee et al., "nnU-Net", Nature Methods 2021. Milletari et al., "V-Net", 3DV 2016.
    """,
)

dice_focal_loss = _pair(
    "dice_focal_loss",
    _DICE,
    _Term("focal", focal.focal_loss, "focal"),
    r"""Computes Dice + focal loss, with one pass over the logits.

    .. math::

       L = \lambda_{\mathrm{dice}}\, L_{\mathrm{Dice}} + \lambda_{\mathrm{focal}}\,
           L_{\mathrm{focal}}

    Focal options (``gamma``, ``alpha``) go in ``focal_options``; see
    :func:`jaxseg_losses.focal_loss`.

    Args:
      <pair args>

    <pair returns>

    Examples:
      <loss example setup>
      >>> print(f"{jsl.dice_focal_loss(logits, labels, focal_options={'gamma': 2.0}):.4f}")
      0.4786

    References:
      Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017. Zhu et al., "AnatomyNet",
      Medical Physics 2019 (Dice + focal).
    """,
)

iou_ce_loss = _pair(
    "iou_ce_loss",
    _Term("iou", region.iou_loss, "IoU"),
    _CE,
    r"""Computes soft IoU (Jaccard) + cross-entropy, with one pass over the logits.

    .. math::

       L = \lambda_{\mathrm{iou}}\, L_{\mathrm{IoU}} + \lambda_{\mathrm{ce}}\, L_{\mathrm{CE}}

    The data options apply to both terms; options of one term go in its dict, e.g.
    ``iou_options={"log": True}`` for the log-IoU loss.

    Args:
      <pair args>

    <pair returns>

    Examples:
      <loss example setup>
      >>> print(f"{jsl.iou_ce_loss(logits, labels):.4f}")
      0.8478

    References:
      Rahman & Wang, "Optimizing Intersection-Over-Union in Deep Neural Networks for Image
      Segmentation", ISVC 2016.
    """,
)
