"""Tests for examples/segmentation/models.py: the Flax NNX U-Net."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tests.helpers import EXAMPLES

# The example is a forkable folder, not a package: import its modules as its scripts do.
sys.path.insert(0, str(EXAMPLES / "segmentation"))

from models import UNet


@nnx.jit
def _forward(model, images):
    return model(images)


def _images(batch=2, height=16, width=24, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.random((batch, height, width, channels)), jnp.float32)


def _param_count(model):
    return sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param)))


@pytest.mark.parametrize("norm", ["batch", "group"])
def test_unet_shapes_and_dtypes_f32_and_bf16(norm):
    images = _images(channels=3)
    model = UNet(3, 11, features=(4, 8), norm=norm, rngs=nnx.Rngs(1))
    model_bf16 = UNet(3, 11, features=(4, 8), norm=norm, dtype=jnp.bfloat16, rngs=nnx.Rngs(1))
    logits = _forward(model, images)
    logits_bf16 = _forward(model_bf16, images)
    assert logits.shape == logits_bf16.shape == (2, 16, 24, 11)
    assert logits.dtype == jnp.float32 and logits_bf16.dtype == jnp.bfloat16
    assert bool(jnp.isfinite(logits).all()) and bool(jnp.isfinite(logits_bf16).all())
    # bf16 compute keeps float32 parameters (optimizer updates are not quantised) and, from the
    # same initialisation, tracks the float32 logits to bf16 precision.
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(nnx.state(model_bf16, nnx.Param)))
    error = jnp.abs(logits_bf16.astype(jnp.float32) - logits).max()
    assert float(error) < 0.05 * float(jnp.abs(logits).max())


def test_unet_parameter_count_and_levels():
    # Each ConvBlock: two bias-free 3x3 convs and two norms (scale and bias each).
    def block(cin, cout):
        return 9 * cin * cout + 9 * cout * cout + 4 * cout

    expected = (
        block(1, 2)
        + block(2, 4)
        + (2 * 2 * 4 * 2 + 2)  # stride-2 transposed conv 4 -> 2, with bias
        + block(4, 2)
        + (2 * 3 + 3)  # 1x1 head, with bias
    )
    for norm in ("batch", "group"):
        assert _param_count(UNet(1, 3, features=(2, 4), norm=norm, rngs=nnx.Rngs(0))) == expected
    # BatchNorm's running mean and variance are state, not parameters.
    model = UNet(1, 3, features=(2, 4), rngs=nnx.Rngs(0))
    assert sum(s.size for s in jax.tree.leaves(nnx.state(model, nnx.BatchStat))) == 2 * 2 * 8
    four_levels = UNet(1, 3, features=(2, 4, 8, 16), rngs=nnx.Rngs(0))
    assert _forward(four_levels, _images(height=8, width=16)).shape == (2, 8, 16, 3)


def test_unet_skip_connections_keep_full_resolution_detail():
    # A one-pixel change must alter the logits at that pixel far more than at a distant pixel:
    # the skip path carries full-resolution detail to the head. GroupNorm's statistics would
    # spread any change everywhere, so compare in BatchNorm's evaluation mode.
    model = UNet(1, 2, features=(4, 8, 16), rngs=nnx.Rngs(0))
    model.eval()
    images = _images(batch=2, height=32, width=32)
    delta = _forward(model, images.at[0, 8, 8, 0].add(1.0)) - _forward(model, images)
    near = float(jnp.abs(delta[0, 8, 8]).max())
    far = float(jnp.abs(delta[0, 28, 28]).max())
    # 20 pixels away is outside the 44-pixel receptive field (up to float rounding noise), and
    # the other image is untouched.
    assert near > 1e-3 and far < 1e-4 * near
    assert float(jnp.abs(delta[1]).max()) < 1e-4 * near


def test_unet_gradients_reach_every_parameter():
    model = UNet(1, 3, features=(4, 8), rngs=nnx.Rngs(0))
    images = _images()
    labels = jnp.asarray(np.random.default_rng(1).integers(0, 3, (2, 16, 24)))

    @nnx.jit
    def grads_of(model):
        def loss_fn(model):
            log_probs = jax.nn.log_softmax(model(images))
            return -jnp.take_along_axis(log_probs, labels[..., None], axis=-1).mean()

        return nnx.grad(loss_fn)(model)

    leaves = jax.tree.leaves_with_path(nnx.state(grads_of(model), nnx.Param))
    assert len(leaves) == 3 * 6 + 2 + 2  # 3 blocks x (2 kernels + 2 norms x 2) + up + head
    for path, grad in leaves:
        assert bool(jnp.isfinite(grad).all()), jax.tree_util.keystr(path)
        assert float(jnp.abs(grad).max()) > 0, jax.tree_util.keystr(path)


def test_unet_batchnorm_train_and_eval_modes():
    model = UNet(1, 2, features=(4, 8), rngs=nnx.Rngs(0))
    images = _images(batch=4) * 3.0 + 1.0

    model.train()
    train_logits = _forward(model, images)
    running_mean = model.down[0].norm1.mean[...]
    conv_mean = model.down[0].conv1(images).mean(axis=(0, 1, 2))
    # Momentum 0.9: one training call moves the running mean (from 0) a tenth of the way.
    np.testing.assert_allclose(running_mean, 0.1 * conv_mean, rtol=1e-4, atol=1e-6)

    model.eval()
    assert model.down[0].norm1.use_running_average
    eval_logits = _forward(model, images)
    assert not np.allclose(train_logits, eval_logits, atol=1e-3)
    # Evaluation uses only the running statistics: an image's logits ignore the rest of the batch,
    # and the statistics stay put.
    np.testing.assert_allclose(_forward(model, images[:2])[:1], eval_logits[:1], atol=1e-5)
    np.testing.assert_array_equal(model.down[0].norm1.mean[...], running_mean)


def test_unet_rejects_bad_arguments():
    with pytest.raises(ValueError, match="norm must be one of"):
        UNet(1, 2, norm="layer", rngs=nnx.Rngs(0))
    model = UNet(1, 2, features=(4, 8, 16), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"divisible by 4 .* got shape \(2, 18, 24, 1\)"):
        model(_images(height=18))
    with pytest.raises(ValueError, match=r"must be \[B, H, W, C\]"):
        model(jnp.zeros((16, 16, 1)))
