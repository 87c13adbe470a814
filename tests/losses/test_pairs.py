"""The ready-made pairs (Dice + CE, Dice + focal, IoU + CE): each equals its weighted terms, per
sample and with traced weights."""

import jax
import numpy as np
import pytest

import jaxseg_losses as jsl
from tests.helpers import assert_close, random_batch

SHAPE, C = (2, 6, 5), 4
B = SHAPE[0]


def test_ready_made_losses_equal_their_terms():
    logits, labels, mask = random_batch(5, SHAPE, C, ignored=0.25)
    dice_options = {"smooth": 1e-5, "include_background": False, "aggregate": "batch"}
    ce_options = {"class_weights": np.array([0.5, 1.0, 2.0, 1.0], np.float32)}
    focal_options = {"gamma": 2.0, "alpha": 0.25}
    shared = {"ignore_index": 255, "mask": mask}

    @jax.jit
    def everything(x, y):
        return {
            "dice_ce": jsl.dice_ce_loss(
                x,
                y,
                dice_weight=0.4,
                ce_weight=0.6,
                dice_options=dice_options,
                ce_options=ce_options,
                return_parts=True,
                **shared,
            ),
            "dice_focal": jsl.dice_focal_loss(x, y, focal_options=focal_options, **shared),
            "iou_ce": jsl.iou_ce_loss(x, y, iou_options={"log": True}, **shared),
            "dice": jsl.dice_loss(x, y, **dice_options, **shared),
            "ce": jsl.cross_entropy_loss(x, y, **ce_options, **shared),
            "dice_default": jsl.dice_loss(x, y, **shared),
            "focal": jsl.focal_loss(x, y, **focal_options, **shared),
            "log_iou": jsl.iou_loss(x, y, log=True, **shared),
            "ce_default": jsl.cross_entropy_loss(x, y, **shared),
        }

    out = everything(logits, labels)
    total, parts = out["dice_ce"]
    assert_close(parts["dice"], out["dice"])
    assert_close(parts["ce"], out["ce"])
    assert_close(total, 0.4 * out["dice"] + 0.6 * out["ce"])
    assert_close(out["dice_focal"], out["dice_default"] + out["focal"])
    assert_close(out["iou_ce"], out["log_iou"] + out["ce_default"])


@pytest.mark.parametrize("name", ["dice_ce_loss", "dice_focal_loss", "iou_ce_loss"])
def test_ready_made_per_sample_vmap_equals_reduction_none(name):
    logits, labels, mask = random_batch(6, SHAPE, C, ignored=0.25)
    single = getattr(jsl.per_sample, name)
    batched = getattr(jsl, name)

    @jax.jit
    def both(x, y, m):
        vmapped = jax.vmap(lambda a, b, c: single(a, b, mask=c, ignore_index=255))(x, y, m)
        parts = jax.vmap(lambda a, b: single(a, b, ignore_index=255, return_parts=True))(x, y)
        none = batched(x, y, mask=m, ignore_index=255, reduction="none")
        return (
            vmapped,
            none,
            parts,
            batched(x, y, ignore_index=255, reduction="none", return_parts=True),
        )

    vmapped, none, parts, none_parts = both(logits, labels, mask)
    assert vmapped.shape == (B,)
    assert_close(vmapped, none)
    assert_close(parts[0], none_parts[0])
    for key in none_parts[1]:
        assert_close(parts[1][key], none_parts[1][key])


def test_traced_weights():
    """A weight passed as a traced array under jit (a schedule)."""
    logits, labels, _ = random_batch(10, SHAPE, C, ignored=0.25)

    @jax.jit
    def weighted(x, y, w):
        return jsl.dice_ce_loss(x, y, dice_weight=w, ignore_index=255, return_parts=True)

    total, parts = weighted(logits, labels, 0.25)
    assert_close(total, 0.25 * parts["dice"] + parts["ce"])
