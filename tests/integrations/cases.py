"""Data and references shared by the Flax NNX and CLU integration tests.

One evaluation: a few batches of logits and integer labels (blocky label maps, logits mostly
right, some pixels ignored), the metrics ``iou``, ``dice``, ``hd95``, ``pq`` and ``ece``, and
their reference numbers from the plain accumulators of ``jsl.metrics``
(``ConfusionMatrixAccumulator``, ``PerImageAccumulator``, ``PanopticCounts``,
``CalibrationAccumulator``) folded in by one jitted step, as a user without an integration
writes it.
"""

import jax
import jax.numpy as jnp
import numpy as np

import jaxseg_losses as jsl

C = 3
H = W = 8
IGNORE = 255
MAX_INSTANCES = 24
NUM_BINS = 10
NAMES = ("iou", "dice", "hd95", "pq", "ece")


def batches(count: int, batch_size: int, *, seed: int = 0, with_mask: bool = True) -> list:
    """``count`` dicts of ``logits [B, H, W, C]``, ``labels [B, H, W]``, ``predictions``
    (the arg-max) and, with ``with_mask``, a pixel ``mask [B, H, W]``."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        coarse = rng.integers(0, C, size=(batch_size, H // 2, W // 2))
        labels = coarse.repeat(2, axis=1).repeat(2, axis=2).astype(np.int32)
        logits = 2.0 * np.eye(C, dtype=np.float32)[labels]
        logits += rng.normal(size=logits.shape).astype(np.float32)
        labels[:, 0, :3] = IGNORE
        batch = {
            "logits": logits,
            "labels": labels,
            "predictions": logits.argmax(-1).astype(np.int32),
        }
        if with_mask:
            batch["mask"] = rng.uniform(size=labels.shape) > 0.2
        out.append(batch)
    return out


def hd95(logits, labels, mask=None):
    """Per-image HD95 ``[B, C - 1]`` of the arg-max (the surface metrics take class maps)."""
    return jsl.metrics.hausdorff_distance(
        jnp.argmax(logits, axis=-1),
        labels,
        num_classes=C,
        percentile=95,
        ignore_index=IGNORE,
        mask=mask,
    )


def panoptic_options() -> dict:
    return {"num_classes": C, "max_instances": MAX_INSTANCES, "ignore_index": IGNORE}


def empty_plain() -> tuple:
    return (
        jsl.metrics.ConfusionMatrixAccumulator.empty(C),
        jsl.metrics.PerImageAccumulator.empty(("hd95",), C, include_background=False),
        jsl.metrics.PanopticCounts(*[jnp.zeros((C - 1,), jnp.int32)] * 3, jnp.zeros((C - 1,))),
        jsl.metrics.CalibrationAccumulator.empty(NUM_BINS),
    )


@jax.jit
def plain_step(state: tuple, batch: dict) -> tuple:
    """One batch into the plain accumulators."""
    confusion, per_image, panoptic, calibration = state
    logits, labels, mask = batch["logits"], batch["labels"], batch.get("mask")
    confusion = confusion.update(logits, labels, ignore_index=IGNORE, mask=mask)
    per_image = per_image.update({"hd95": hd95(logits, labels, mask)})
    counts = jsl.metrics.panoptic_counts(
        batch["predictions"], labels, mask=mask, **panoptic_options()
    )
    calibration = calibration.update(logits, labels, ignore_index=IGNORE, mask=mask)
    return confusion, per_image, panoptic + counts.sum(axis=0), calibration


def finish_plain(state: tuple) -> dict:
    """The five numbers of the plain accumulators, as NumPy."""
    confusion, per_image, panoptic, calibration = state
    scores = confusion.compute()
    values = {
        "iou": scores["mean_iou"],
        "dice": scores["mean_dice"],
        "hd95": per_image.compute()["hd95"],
        "pq": jsl.metrics.reduce(panoptic.pq(), reduction="mean"),
        "ece": calibration.compute(),
    }
    return {name: np.asarray(value) for name, value in values.items()}


def plain_metrics(data: list) -> dict:
    """The reference: the plain accumulators over ``data``."""
    state = empty_plain()
    for batch in data:
        state = plain_step(state, batch)
    return finish_plain(state)


def nnx_metrics(*, axis_name=None):
    """The five metrics as one ``nnx.MultiMetric`` of ``jsl.nnx`` metrics."""
    from flax import nnx

    import jaxseg_losses.nnx  # noqa: F401  (binds jsl.nnx)

    return nnx.MultiMetric(
        iou=jsl.nnx.ConfusionMatrix(num_classes=C, ignore_index=IGNORE, axis_name=axis_name),
        dice=jsl.nnx.ConfusionMatrix(
            num_classes=C, score="mean_dice", ignore_index=IGNORE, axis_name=axis_name
        ),
        hd95=jsl.nnx.PerImage(hd95, num_classes=C, include_background=False, axis_name=axis_name),
        pq=jsl.nnx.PanopticQuality(**panoptic_options(), axis_name=axis_name),
        ece=jsl.nnx.CalibrationError(num_bins=NUM_BINS, ignore_index=IGNORE, axis_name=axis_name),
    )


def clu_collection():
    """The five metrics as one CLU ``Collection`` class of ``jsl.clu`` metrics."""
    from clu import metrics

    import jaxseg_losses.clu  # noqa: F401  (binds jsl.clu)

    return metrics.Collection.create(
        iou=jsl.clu.ConfusionMatrix.create(num_classes=C, ignore_index=IGNORE),
        dice=jsl.clu.ConfusionMatrix.create(num_classes=C, score="mean_dice", ignore_index=IGNORE),
        hd95=jsl.clu.PerImage.create(hd95, num_classes=C, include_background=False),
        pq=jsl.clu.PanopticQuality.create(**panoptic_options()),
        ece=jsl.clu.CalibrationError.create(num_bins=NUM_BINS, ignore_index=IGNORE),
    )
