"""A user's described loss whose sums lack the batch axis: an error at trace time that names the
leaf, its shape and the expected leading axis (docs/bad_input.md, "Numerics and sizes")."""

import re

import jax
import jax.numpy as jnp
import pytest

import jaxseg_losses as jsl

LOGITS = jnp.zeros((3, 4, 4, 2))
LABELS = jnp.zeros((3, 4, 4), jnp.int32)


@jsl.define_loss
def no_batch_axis_loss():
    """A loss whose sums['total'] is summed over the batch too."""

    def sums(inputs):
        p = inputs.probabilities()[..., 1]
        return {"per_sample": jnp.sum(p, axis=1), "total": jnp.sum(p)}

    return jsl.LossDefinition(sums=sums, finish=lambda s: s["per_sample"])


@jsl.define_loss
def one_row_leaf_loss():
    """A loss with one leaf [B] and one leaf [1] (which would broadcast over the batch)."""

    def sums(inputs):
        p = inputs.probabilities()[..., 1]
        return {"per_sample": jnp.sum(p, axis=1), "first": jnp.sum(p[:1], axis=1)}

    return jsl.LossDefinition(sums=sums, finish=lambda s: s["per_sample"] + s["first"])


@pytest.mark.parametrize("aggregate", ["sample", "batch"])
@pytest.mark.parametrize("jit", [False, True])
def test_sums_without_the_batch_axis_name_the_leaf(aggregate, jit):
    expected = (
        "The sums of loss 'no_batch_axis_loss' must be arrays [B, ...] with a leading axis of "
        "one row per sample (B = 3 here); leaf sums['total'] has shape (). Sum over the pixels "
        "of each sample, keeping axis 0."
    )

    def fn(x, y):
        return no_batch_axis_loss(x, y, aggregate=aggregate)

    with pytest.raises(ValueError, match=re.escape(expected)):
        (jax.jit(fn) if jit else fn)(LOGITS, LABELS)


@pytest.mark.parametrize("aggregate", ["sample", "batch"])
def test_a_leaf_of_one_row_is_not_broadcast(aggregate):
    expected = (
        "The sums of loss 'one_row_leaf_loss' must be arrays [B, ...] with a leading axis of "
        "one row per sample (B = 3 here); leaf sums['first'] has shape (1,)."
    )
    with pytest.raises(ValueError, match=re.escape(expected)):
        one_row_leaf_loss(LOGITS, LABELS, aggregate=aggregate)


def test_the_error_names_the_term_in_a_combination():
    with pytest.raises(ValueError, match=r"sums of loss 'mine' .* leaf sums\['total'\]"):
        jsl.combine({"dice": (1.0, jsl.dice_loss), "mine": (1.0, no_batch_axis_loss)})(
            LOGITS, LABELS
        )


def test_a_batch_of_one_still_accepts_leaves_of_one_row():
    value = one_row_leaf_loss(LOGITS[:1], LABELS[:1])
    assert jnp.isfinite(value)
