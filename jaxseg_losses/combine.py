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
examples' ``--loss`` flag is parsed; :func:`jaxseg_losses.register_loss` adds a name.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import jax

from jaxseg_losses import registry
from jaxseg_losses._core import engine

ArrayLike = jax.typing.ArrayLike
LossFn = Callable[..., Any]
Parts = dict[str, jax.Array]


def _named_terms(terms: str | Mapping[str, Any]) -> list[tuple[str, Any, LossFn]]:
    """``(name, weight, fn)`` for each term, validated."""
    if isinstance(terms, str):
        terms = registry.parse_loss_spec(terms)
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
            weight, fn = value, registry.get_loss(name)
        else:
            raise TypeError(
                f"Term {name!r} must be a weight (for a registered name), a loss function, or a "
                f"(weight, loss function) pair; got {value!r}."
            )
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
        data = self._data(logits, labels, mask)
        return engine.evaluate(self.terms, data, self.axis_name, self.reduction)

    def _data(self, logits: ArrayLike, labels: ArrayLike, mask: ArrayLike | None) -> engine.Data:
        """The data of a call, read by every term as the combination's options say."""
        options = (self.activation, self.class_axis, self.ignore_index)
        return engine.Data(logits, labels, mask, *options)

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
        return engine.collect_sums(self.terms, self._data(logits, labels, mask), self.reduction)

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
    bound = engine.bind_terms(
        _named_terms(terms), activation=activation, reduction=reduction, axis_name=axis_name
    )
    return CombinedLoss(
        terms=bound,
        activation=activation,
        class_axis=class_axis,
        ignore_index=ignore_index,
        axis_name=axis_name,
        reduction=reduction,
    )
