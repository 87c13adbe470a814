"""The cases every rule runs on: one per row of the table of built-in losses, plus option variants.

:func:`rule_cases` derives a default-options case from each row of
:data:`jaxseg_losses.registry.BUILTIN_LOSSES` (a loss that accepts only ``"sigmoid"`` runs on one
binary channel; the ready-made pairs are marked as sums of covered terms), then appends
:data:`VARIANTS`: the option branches, combinations, deep supervision and accumulation written by
hand. A loss added to the table is covered by every rule without editing the tests.
"""

import dataclasses
import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

import jaxseg_losses as jsl
from jaxseg_losses import registry
from tests.helpers import random_batch

B, H, W, C = 3, 5, 4, 4
P = functools.partial
WEIGHTS = np.array([0.5, 1.0, 2.0, 1.5], np.float32)


@dataclasses.dataclass(frozen=True)
class Case:
    """One loss under test: ``value_and_grad(x, y, mask, ignore_index, reduction)``."""

    name: str
    binary: bool  # one sigmoid channel, labels {0, 1}; else softmax over C classes
    loss: Callable[..., jax.Array] | None = None  # (x, y, *, mask, ignore_index, reduction)
    accumulate: Callable[..., jsl.CombinedLoss] | None = None  # (ignore_index, reduction)
    batch_pooled: bool = False  # one value for the batch: reduction="none" does not apply
    sum_of_terms: bool = False  # a weighted sum of losses each covered by a case of its own

    @property
    def channels(self) -> int:
        return 1 if self.binary else C

    def value_and_grad(self, x, y, *, mask=None, ignore_index=None, reduction="mean"):
        """The loss and its gradient with respect to the logits (summed for "none")."""
        if self.accumulate is not None:
            return _accumulated(self.accumulate(ignore_index, reduction), x, y, mask)

        def total(x):
            value = self.loss(x, y, mask=mask, ignore_index=ignore_index, reduction=reduction)
            return jnp.sum(value), value

        (_, value), grad = jax.value_and_grad(total, has_aux=True)(x)
        return value, grad

    def value(self, x, y, *, mask=None, ignore_index=None, reduction="mean"):
        """The loss alone (no backward pass to trace, except through accumulation)."""
        if self.accumulate is not None:
            return self.value_and_grad(
                x, y, mask=mask, ignore_index=ignore_index, reduction=reduction
            )[0]
        return self.loss(x, y, mask=mask, ignore_index=ignore_index, reduction=reduction)

    def data(self, seed: int):
        """``(logits, labels, mask)`` ``[B, H, W, C]``: labels in the classes (0/1 when binary),
        a quarter of the mask 0."""
        return random_batch(seed, (B, H, W), self.channels, masked=0.25)


def library(fn):
    """A loss function called with the rules' data options."""

    def call(x, y, *, mask, ignore_index, reduction):
        return fn(x, y, mask=mask, ignore_index=ignore_index, reduction=reduction)

    return call


def combined(terms, **options):
    def call(x, y, *, mask, ignore_index, reduction):
        loss_fn = jsl.combine(terms, ignore_index=ignore_index, reduction=reduction, **options)
        return loss_fn(x, y, mask=mask)[0]

    return call


def deep_supervised(terms):
    """Deep supervision of a combination over the logits and a half-resolution copy of them.

    The copy reads the pixels that nearest-exact resizing reads from the labels and the mask
    (rows 0, 2, 4 of 5, columns 1, 3 of 4), so that a poisoned logit sits on an excluded pixel
    at every level.
    """

    def call(x, y, *, mask, ignore_index, reduction):
        inner = jsl.combine(terms, ignore_index=ignore_index, reduction=reduction)
        loss_fn = jsl.deep_supervision(inner, weights="two")
        return loss_fn([x, x[:, ::2, 1::2]], y, mask=mask)[0]

    return call


def _accumulated(loss, x, y, mask):
    """``accumulate.value_and_grad`` with the logits as a per-pixel offset of a tiny model.

    ``logits_b = inputs_b + params``: the gradient with respect to ``params`` is the sum over
    samples of the logits' gradient, accumulated over 3 micro-batches of one sample each.
    """
    params = jnp.zeros(x.shape[1:], x.dtype)

    def apply_fn(p, inputs):
        return inputs + p[None]

    (value, _), grads = jsl.accumulate.value_and_grad(
        apply_fn, params, x, y, loss=loss, num_microbatches=x.shape[0], mask=mask
    )
    return value, grads


def table_case(entry: registry.BuiltinLoss) -> Case:
    """The default-options case of one row of the table."""
    return Case(
        entry.name,
        binary=tuple(entry.activations) == ("sigmoid",),
        loss=library(entry.fn),
        sum_of_terms=entry.family == "pairs",
    )


# The option branches and compositions written by hand: each row of the table runs with its
# default options above, and these add the branches that change how pixels, samples and classes
# are read (weights, smoothing, class subsets, batch pooling, binary inputs, several terms at
# once, several resolutions, micro-batches).
VARIANTS = [
    Case("log_iou_smooth0", False, library(P(jsl.iou_loss, log=True, smooth=0.0))),
    Case("dice_batch", False, library(P(jsl.dice_loss, aggregate="batch")), batch_pooled=True),
    Case(
        "dice_squared_absent_excluded_subset",
        False,
        library(P(jsl.dice_loss, squared_pred=True, absent_classes="exclude", classes=(0, 2, 3))),
    ),
    Case("tversky_focal", False, library(P(jsl.tversky_loss, alpha=0.3, beta=0.7, gamma=0.75))),
    Case(
        "ce_weighted_smoothed",
        False,
        library(P(jsl.cross_entropy_loss, class_weights=WEIGHTS, label_smoothing=0.1)),
    ),
    Case(
        "focal_alpha_weighted_foreground",
        False,
        library(P(jsl.focal_loss, alpha=0.25, class_weights=WEIGHTS, include_background=False)),
    ),
    Case(
        "topk_batch_weighted",
        False,
        library(P(jsl.topk_cross_entropy_loss, k=20.0, class_weights=WEIGHTS, aggregate="batch")),
        batch_pooled=True,
    ),
    Case(
        "lovasz_batch",
        False,
        library(P(jsl.lovasz_softmax_loss, aggregate="batch")),
        batch_pooled=True,
    ),
    Case(
        "combine_every_term",
        False,
        combined(
            {
                **{name: 1.0 for name in ("ce", "dice", "log_iou", "focal", "tversky", "gdl")},
                "lovasz": 1.0,
                "poly": (
                    1.0,
                    P(jsl.poly_cross_entropy_loss, class_weights=WEIGHTS, label_smoothing=0.1),
                ),
                "topk": 1.0,
            }
        ),
        sum_of_terms=True,
    ),
    Case("deep_supervision", False, deep_supervised("ce+dice"), sum_of_terms=True),
    Case(
        "accumulate_ce_batch_dice",
        False,
        accumulate=lambda ii, r: jsl.combine(
            {"ce": 1.0, "dice": (1.0, P(jsl.dice_loss, aggregate="batch"))},
            ignore_index=ii,
            reduction=r,
        ),
        batch_pooled=True,
    ),
    Case(
        "combine_binary",
        True,
        combined(
            {
                "ce": (1.0, P(jsl.cross_entropy_loss, pos_weight=2.0)),
                "dice": 1.0,
                "focal": 1.0,
                "poly": (1.0, P(jsl.poly_cross_entropy_loss, epsilon=-1.0)),
                "lovasz_hinge": 1.0,
            },
            activation="sigmoid",
        ),
    ),
    # The distance- and skeleton-based losses keep rule 3 as tested (a whole sample masked or
    # ignored is the sample sliced away); a mask *inside* an image is not a crop for them
    # (distances are measured across excluded pixels), which no rule here claims.
    Case(
        "combine_spatial_binary",
        True,
        combined("mcc+hausdorff", activation="sigmoid"),
        sum_of_terms=True,
    ),
]


def rule_cases(table: Sequence[registry.BuiltinLoss] | None = None) -> list[Case]:
    """A case per row of ``table`` (default: the library's table, read at call time), then the
    hand-written :data:`VARIANTS`."""
    table = registry.BUILTIN_LOSSES if table is None else table
    cases = [table_case(entry) for entry in table] + VARIANTS
    names = [case.name for case in cases]
    assert len(set(names)) == len(names), names
    return cases
