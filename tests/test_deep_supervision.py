"""Deep supervision: the weights of the levels (MONAI's and nnU-Net's), the labels and mask
resized to each output (nearest-exact), the weighted sum of the levels' losses, its parts, its
micro-batch accumulation and its psum over a mapped axis.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxseg_losses as jsl
from jaxseg_losses.deep_supervision import deep_supervision_weights
from tests.helpers import all_finite, assert_close, random_batch

B, H, W, C = 2, 4, 5, 3
P = functools.partial


def test_weights_and_bad_arguments():
    weights = deep_supervision_weights
    assert weights("exp", 6) == (1.0, 0.5, 0.25, 0.125, 0.0625, 0.0625)  # MONAI
    assert weights("two", 3) == (1.0, 0.5, 0.5)
    assert weights("same", 2) == (1.0, 1.0)
    assert np.allclose(weights("nnunet", 4), np.array([8, 4, 2, 0]) / 14)  # nnU-Net v2
    assert weights([1, 0.3], 2) == (1.0, 0.3)
    with pytest.raises(ValueError, match=r"`weights` must be one of"):
        jsl.deep_supervision(jsl.dice_loss, weights="half")
    with pytest.raises(ValueError, match=r"`weights` has 2 entries but the loss got 3 outputs"):
        jsl.deep_supervision(jsl.dice_loss, weights=[1.0, 0.5])(
            [jnp.zeros((1, 2, 3))] * 3, [[0, 1]]
        )
    with pytest.raises(TypeError, match=r"`loss` must be a CombinedLoss"):
        jsl.deep_supervision(len)


def test_values_accumulation_and_parts():
    rng = np.random.default_rng(5)
    y = rng.integers(0, C, (4, 8, 8)).astype(np.int32)
    y[:, ::3, ::2] = 255
    m = (rng.uniform(size=(4, 8, 8)) > 0.2).astype(np.float32)
    images = rng.standard_normal((4, 8, 8, 2)).astype(np.float32)
    params = jnp.asarray(rng.standard_normal((2, C)).astype(np.float32))
    inner = jsl.combine(
        {"ce": 1.0, "dice": (1.0, P(jsl.dice_loss, aggregate="batch"))}, ignore_index=255
    )
    loss_fn = jsl.deep_supervision(inner, weights="exp")

    def apply_fn(w, v):
        full = v @ w
        return [full, full[:, 1::2, 1::2] * 0.5, full[:, 1::4, 1::4] + 1.0]

    @jax.jit
    def run(w):
        (value, parts), grads = jax.value_and_grad(
            lambda w: loss_fn(apply_fn(w, images), y, mask=m), has_aux=True
        )(w)
        accumulated = jsl.accumulate.value_and_grad(
            apply_fn, w, images, y, loss=loss_fn, num_microbatches=2, mask=m
        )
        levels = apply_fn(w, images)
        manual = [
            inner(levels[0], y, mask=m)[0],
            inner(levels[1], y[:, 1::2, 1::2], mask=m[:, 1::2, 1::2])[0],
            inner(levels[2], y[:, 2::4, 2::4], mask=m[:, 2::4, 2::4])[0],
        ]
        return value, parts, grads, accumulated, manual

    value, parts, grads, ((acc_value, acc_parts), acc_grads), manual = run(params)
    assert_close(value, manual[0] + 0.5 * manual[1] + 0.25 * manual[2])
    assert_close(parts["level1"], manual[1])
    assert set(parts) == {f"level{i}{t}" for i in range(3) for t in ("", "/ce", "/dice")}
    assert_close(acc_value, value)
    assert_close(acc_parts["level2/dice"], parts["level2/dice"])
    assert_close(acc_grads, grads, rtol=1e-4, atol=1e-5)
    assert all_finite(grads)


def test_adds_over_a_mapped_axis():
    x, y, m = random_batch(7, (B, H, W), C, masked=0.3)

    def call(x, y, m, axis_name):
        loss_fn = jsl.deep_supervision(jsl.combine("ce+dice", axis_name=axis_name), weights="two")
        return loss_fn([x, x[:, 1::2, 1::2]], y, mask=m)[0]

    def split(a):
        return a.reshape(2, 1, *a.shape[1:])

    @jax.jit
    def run(x, y, m):
        mapped = jax.vmap(P(call, axis_name="devices"), axis_name="devices")(
            split(x), split(y), split(m)
        )
        return mapped, call(x, y, m, None)

    mapped, whole = run(x, y, m)
    assert_close(mapped, [whole, whole])
