"""The library's losses in a Flax Linen model trained with ``flax.training.train_state.TrainState``.

For codebases still on Linen: the same losses and ``--loss`` spellings as the NNX example in
``segmentation/`` (``ce+dice``, ``ce:1,iou:0.5``, ``focal``, ...), a small convolutional network
with BatchNorm, and the usual ``jax.jit`` train step over a ``TrainState`` that also carries the
BatchNorm statistics. Trains on handwritten digits pasted onto blank canvases (scikit-learn's
bundled scans, no download) and prints the validation mean IoU. The file stands alone: copy it
anywhere (the NNX example in ``segmentation/`` has a richer dataset and model).

    python examples/linen_train_state.py                 # 600 steps, CE + Dice
    python examples/linen_train_state.py --steps 300 --lr 1e-2 --loss ce:1,iou:0.5
"""

import argparse
import functools
import math
from collections.abc import Callable, Iterator
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

import jaxseg_losses as jsl

IGNORE_INDEX = 255
NUM_CLASSES = 11  # background and the digits 0-9 (label digit + 1)


def make_digits(
    num_images: int, *, split: str = "train", seed: int = 0, size: int = 48
) -> tuple[np.ndarray, np.ndarray]:
    """Canvases ``[N, size, size, 1]`` with one or two upscaled digit scans, labels ``[N, S, S]``.

    The scans are scikit-learn's ``load_digits`` (8x8, bundled); the training and validation
    splits use disjoint halves of them. A pixel is labelled ``digit + 1`` where the upscaled scan
    exceeds 35% of its peak, background 0 elsewhere.
    """
    from sklearn.datasets import load_digits

    scans = load_digits()
    half = len(scans.images) // 2
    pool = np.arange(half) if split == "train" else np.arange(half, len(scans.images))
    rng = np.random.default_rng((seed, 0 if split == "train" else 1))
    images = np.zeros((num_images, size, size), np.float32)
    labels = np.zeros((num_images, size, size), np.int32)
    for n in range(num_images):
        for _ in range(rng.integers(1, 3)):
            index = int(rng.choice(pool))
            scale = int(rng.integers(2, 4))  # 16 or 24 pixels
            patch = np.kron(scans.images[index] / 16.0, np.ones((scale, scale), np.float32))
            side = patch.shape[0]
            row, col = rng.integers(0, size - side + 1, size=2)
            window = (n, slice(row, row + side), slice(col, col + side))
            foreground = patch > 0.35 * patch.max()
            images[window] = np.maximum(images[window], patch)
            labels[window] = np.where(foreground, scans.target[index] + 1, labels[window])
    images = np.clip(images + rng.normal(0.0, 0.05, images.shape), 0.0, 1.0)
    return images.astype(np.float32)[..., None], labels


def iterate_batches(
    images: np.ndarray, labels: np.ndarray, batch_size: int, *, seed: int = 0
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Endless shuffled batches (a new permutation every epoch)."""
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(len(images))
        for start in range(0, len(order) - batch_size + 1, batch_size):
            batch = order[start : start + batch_size]
            yield images[batch], labels[batch]


def kernel_init(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
    """LeCun-normal (flax's default), drawn as a flat vector: much faster to compile on CPU."""
    fan_in = math.prod(shape[:-1])
    # A unit normal truncated to [-2, 2] has standard deviation 0.8796: divide it out.
    std = (1.0 / fan_in) ** 0.5 / 0.87962566103423978
    flat = jax.random.truncated_normal(key, -2.0, 2.0, (math.prod(shape),), dtype)
    return (flat * jnp.asarray(std, dtype)).reshape(shape)


class SegNet(nn.Module):
    """Two resolutions: full-resolution features, a dilated half-resolution context, a skip.

    Every 3x3 convolution is followed by BatchNorm and ReLU (without normalisation this small
    network stayed at "all background" for 300 steps on the digits).
    """

    num_classes: int
    features: int = 16

    @nn.compact
    def __call__(self, images: jax.Array, *, train: bool) -> jax.Array:
        # LeCun-normal like flax's default, drawn flat: much faster to compile on XLA:CPU.
        conv = functools.partial(nn.Conv, use_bias=False, kernel_init=kernel_init)
        norm = functools.partial(nn.BatchNorm, use_running_average=not train, momentum=0.9)

        def block(x, width, **options):
            return nn.relu(norm()(conv(width, (3, 3), **options)(x)))

        width = self.features
        fine = block(images, width)
        coarse = block(fine, 2 * width, strides=(2, 2))
        # Dilations widen the receptive field to a whole digit without more downsampling.
        for dilation in (2, 4):
            coarse = block(coarse, 2 * width, kernel_dilation=dilation)
        up = nn.ConvTranspose(width, (2, 2), strides=(2, 2), kernel_init=kernel_init)(coarse)
        x = block(jnp.concatenate([up, fine], axis=-1), width)
        return nn.Conv(self.num_classes, (1, 1), kernel_init=kernel_init)(x)


class TrainState(train_state.TrainState):
    """Flax's ``TrainState`` plus the BatchNorm running statistics."""

    batch_stats: Any


def create_state(
    model: nn.Module, images: jax.Array, *, lr: float, steps: int, seed: int
) -> TrainState:
    """Initialises the parameters and AdamW (warm-up, cosine decay) in a ``TrainState``."""
    variables = jax.jit(functools.partial(model.init, train=False))(jax.random.key(seed), images)
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, lr, warmup_steps=max(1, steps // 10), decay_steps=max(steps, 2)
    )
    return TrainState.create(
        apply_fn=model.apply,
        params=variables["params"],
        batch_stats=variables["batch_stats"],
        tx=optax.adamw(schedule, weight_decay=1e-4),
    )


def batch_region_loss(spec: str) -> Callable[..., Any]:
    """``jsl.combine(spec)`` with the region terms pooling the batch (nnU-Net's batch Dice).

    Per-image Dice over eleven classes, most of them absent from any one image, trains slowly
    on the digits; pooling the batch's statistics (``aggregate="batch"``) does not.
    """
    terms = {
        name: (weight, functools.partial(fn, aggregate="batch") if name in REGION else fn)
        for name, (weight, fn) in jsl.parse_loss_spec(spec).items()
    }
    return jsl.combine(terms, ignore_index=IGNORE_INDEX)


REGION = {"dice", "log_dice", "iou", "log_iou", "tversky", "gdl"}
"""Registered names of the region losses, the terms that take ``aggregate``."""


def make_train_step(loss_fn: Callable[..., Any]) -> Callable[..., Any]:
    """``(state, images, labels) -> (state, total, parts)``, jitted, for a combined loss."""

    @jax.jit
    def train_step(state: TrainState, images: jax.Array, labels: jax.Array):
        def compute_loss(params):
            logits, updates = state.apply_fn(
                {"params": params, "batch_stats": state.batch_stats},
                images,
                train=True,
                mutable=["batch_stats"],
            )
            total, parts = loss_fn(logits, labels)
            return total, (parts, updates["batch_stats"])

        (total, (parts, batch_stats)), grads = jax.value_and_grad(compute_loss, has_aux=True)(
            state.params
        )
        state = state.apply_gradients(grads=grads).replace(batch_stats=batch_stats)
        return state, total, parts

    return train_step


@jax.jit
def eval_step(state: TrainState, accumulator, images, labels):
    """Adds one batch's confusion matrix to ``accumulator`` (BatchNorm's running statistics)."""
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    logits = state.apply_fn(variables, images, train=False)
    return accumulator.update(logits, labels, ignore_index=IGNORE_INDEX)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--steps", type=int, default=600, help="training steps")
    parser.add_argument("--loss", default="ce+dice", help="e.g. 'ce+dice', 'ce:1,iou:0.5'")
    parser.add_argument("--batch-size", type=int, default=16, help="images per step")
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    parser.add_argument("--seed", type=int, default=0, help="data, weights, batch order")
    parser.add_argument("--features", type=int, default=16, help="channels of the first block")
    parser.add_argument("--num-train", type=int, default=1000, help="training images")
    parser.add_argument("--num-val", type=int, default=128, help="validation images")
    parser.add_argument("--quiet", action="store_true", help="print only the final result")
    args = parser.parse_args(argv)
    try:
        jsl.parse_loss_spec(args.loss)
    except ValueError as error:
        parser.error(str(error))
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Trains, evaluates, and returns ``{term: [loss per step], "mean_iou": float}``."""
    args = parse_args(argv)
    train_images, train_labels = make_digits(args.num_train, seed=args.seed)
    val_images, val_labels = make_digits(args.num_val, split="val", seed=args.seed)
    model = SegNet(num_classes=NUM_CLASSES, features=args.features)
    state = create_state(
        model, jnp.asarray(train_images[:1]), lr=args.lr, steps=args.steps, seed=args.seed
    )
    loss_fn = batch_region_loss(args.loss)
    train_step = make_train_step(loss_fn)

    history: dict[str, Any] = {}
    batches = iterate_batches(train_images, train_labels, args.batch_size, seed=args.seed)
    for step in range(1, args.steps + 1):
        state, total, parts = train_step(state, *next(batches))
        for name, value in {"total": total, **parts}.items():
            history.setdefault(name, []).append(float(value))
        if not args.quiet and (step % max(1, args.steps // 10) == 0 or step == 1):
            terms = "  ".join(f"{name} {values[-1]:.4f}" for name, values in history.items())
            print(f"step {step:5d}  {terms}")

    accumulator = jsl.metrics.ConfusionMatrixAccumulator.empty(NUM_CLASSES)
    for start in range(0, len(val_images), 64):
        batch = slice(start, start + 64)
        accumulator = eval_step(state, accumulator, val_images[batch], val_labels[batch])
    metrics = accumulator.compute()
    history["mean_iou"] = float(metrics["mean_iou"])
    iou = np.asarray(metrics["iou"])
    print(
        f"validation mean IoU {history['mean_iou']:.3f} "
        f"(background {iou[0]:.3f}, digits {np.nanmean(iou[1:]):.3f}) after {args.steps} steps"
    )
    return history


if __name__ == "__main__":
    main()
