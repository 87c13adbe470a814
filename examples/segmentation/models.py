"""A small U-Net in Flax NNX, channels-last, sized to train in minutes on a laptop CPU.

Normalisation is GroupNorm rather than BatchNorm: it keeps no running statistics, so the model
has no train/eval mode to switch, behaves the same at batch size 1 and 32, needs no
cross-device statistics when the batch is sharded, and its train step stays a pure function of
``(model, batch)``. Its mean and variance are computed in float32 even under bf16 compute.
"""

import jax
import jax.numpy as jnp
from flax import nnx

__all__ = ["ConvBlock", "UNet"]


def _groups(features: int, group_size: int = 4) -> int:
    """GroupNorm groups of ``group_size`` channels (at least one group)."""
    return max(1, features // group_size)


class ConvBlock(nnx.Module):
    """Two 3x3 convolutions, each followed by GroupNorm and ReLU: ``[B, H, W, in] -> [.., out]``."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        dtype: jnp.dtype = jnp.float32,
        param_dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        options = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        # The convolutions carry no bias: the GroupNorm right after them would remove it.
        self.conv1 = nnx.Conv(in_features, out_features, (3, 3), use_bias=False, **options)
        self.norm1 = nnx.GroupNorm(out_features, num_groups=_groups(out_features), **options)
        self.conv2 = nnx.Conv(out_features, out_features, (3, 3), use_bias=False, **options)
        self.norm2 = nnx.GroupNorm(out_features, num_groups=_groups(out_features), **options)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = jax.nn.relu(self.norm1(self.conv1(x)))
        return jax.nn.relu(self.norm2(self.conv2(x)))


class UNet(nnx.Module):
    """U-Net (Ronneberger et al. 2015) for ``[B, H, W, in_channels]`` images -> per-pixel logits.

    ``len(features)`` resolution levels: each encoder level is a ``ConvBlock`` followed by 2x2
    max-pooling; the decoder upsamples with a stride-2 transposed convolution (kernel 2, so no
    checkerboard overlap), concatenates the encoder's features at that resolution (the skip
    connection) and applies a ``ConvBlock``; a 1x1 convolution gives the logits. With the
    default ``features=(16, 32, 64)`` the receptive field spans about 60 pixels, enough to see a
    whole 28-pixel digit from any of its pixels.

    Args:
      in_channels: channels of the input images.
      num_classes: number of classes ``C``, the channels of the output logits.
      features: channels at each resolution level, finest first.
      dtype: computation dtype; ``jnp.bfloat16`` runs the convolutions in bf16 (fast on TPU and
        recent GPUs, slow on most CPUs) and returns bf16 logits.
      param_dtype: dtype of the parameters, float32 so optimizer updates keep full precision.
      rngs: initialises the parameters.

    Call: ``model(images)`` with ``images`` float ``[B, H, W, in_channels]``, ``H`` and ``W``
    divisible by ``2 ** (len(features) - 1)``; returns logits ``[B, H, W, C]`` in ``dtype``.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        features: tuple[int, ...] = (16, 32, 64),
        dtype: jnp.dtype = jnp.float32,
        param_dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        if len(features) < 1:
            raise ValueError("features must name at least one level, got ()")
        options = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.features = tuple(features)
        widths = (in_channels, *features)
        self.down = nnx.List(
            [ConvBlock(widths[i], widths[i + 1], **options) for i in range(len(features))]
        )
        coarse_to_fine = list(reversed(features))
        self.upsample = nnx.List(
            [
                nnx.ConvTranspose(coarse, fine, (2, 2), strides=(2, 2), **options)
                for coarse, fine in zip(coarse_to_fine, coarse_to_fine[1:])
            ]
        )
        self.up = nnx.List(
            [ConvBlock(2 * fine, fine, **options) for fine in coarse_to_fine[1:]]
        )
        self.head = nnx.Conv(features[0], num_classes, (1, 1), **options)

    def __call__(self, images: jax.Array) -> jax.Array:
        factor = 2 ** (len(self.features) - 1)
        if images.ndim != 4 or images.shape[1] % factor or images.shape[2] % factor:
            raise ValueError(
                f"images must be [B, H, W, C] with H and W divisible by {factor} for "
                f"features={self.features}, got shape {images.shape}"
            )
        x = images
        skips = []
        for level, block in enumerate(self.down):
            x = block(x)
            if level < len(self.down) - 1:
                skips.append(x)
                x = nnx.max_pool(x, (2, 2), strides=(2, 2))
        for upsample, block, skip in zip(self.upsample, self.up, reversed(skips)):
            x = block(jnp.concatenate([upsample(x), skip], axis=-1))
        return self.head(x)
