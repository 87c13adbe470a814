"""Training and evaluation for the segmentation example, as importable functions.

``main.py`` is the command line; a test or a notebook calls :func:`train` directly. The loss is
built with the library's combinator from a spec string such as ``"ce+dice"`` or
``"ce:1,iou:0.5"``, so every term's value is logged next to the total.

The recipe (Flax NNX): ``nnx.Optimizer(model, optax.adamw(schedule), wrt=nnx.Param)``, an
``@nnx.jit`` train step with ``nnx.value_and_grad(loss_fn, has_aux=True)``, and an ``@nnx.jit``
evaluation step that updates one ``nnx.MultiMetric`` of the library's NNX metrics: a confusion
matrix (pooled per-class IoU and Dice, mean IoU with and without the background), each image's
foreground Dice (the per-case mean Dice of medical segmentation) and the confidence bins of the
calibration error. The final evaluation also scores objects: every digit of a canvas is one
instance (a connected component of its class), scored by panoptic quality and by the
lesion-wise Dice of BraTS 2023.
"""

import dataclasses
import functools
import inspect
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import data
import jax
import jax.numpy as jnp
import numpy as np
import optax
import parallel
from flax import nnx
from models import UNet
from tqdm.auto import tqdm

import jaxseg_losses as jsl
from jaxseg_losses.losses.spatial import boundary_distance_maps

DATASETS = ("digits", "shapes", "folder")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a run depends on; saved next to its results."""

    dataset: str = "digits"
    loss: str = "ce+dice"
    steps: int = 800
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 1e-4
    # None: a fraction of the run (see `warmup` and `evaluation_interval`), so a short run
    # leaves its warm-up and still draws a validation curve; 100 and 100 for the default 800.
    warmup_steps: int | None = None
    seed: int = 0
    bf16: bool = False
    features: tuple[int, ...] = (16, 32, 64)
    num_train: int = 4000
    num_val: int = 256
    eval_every: int | None = None
    foreground_fraction: float = 0.01
    data_root: str | None = None
    image_size: int = 64
    data_parallel: bool = False
    # Region terms pool the batch (nnU-Net's batch Dice). Per-image Dice/IoU averaged over 11
    # classes, most absent from any one image, stayed at mIoU <= 0.10 for 1500 steps on digits.
    batch_dice: bool = True
    # Also the per-class 95th-percentile Hausdorff distance on the validation set (pixels).
    hd95: bool = False
    # Auxiliary heads at the coarser decoder levels, trained with jsl.deep_supervision.
    deep_supervision: bool = False

    @property
    def warmup(self) -> int:
        """Linear warm-up steps: ``warmup_steps``, or an eighth of the run."""
        steps = self.warmup_steps if self.warmup_steps is not None else self.steps // 8
        return max(1, min(steps, self.steps - 1))

    @property
    def evaluation_interval(self) -> int:
        """Steps between validation passes: ``eval_every``, or an eighth of the run."""
        every = self.eval_every if self.eval_every is not None else self.steps // 8
        return max(1, every)


@dataclasses.dataclass
class Datasets:
    train_images: np.ndarray
    train_labels: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray
    class_names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def in_channels(self) -> int:
        return self.train_images.shape[-1]


def make_datasets(config: TrainConfig) -> Datasets:
    """Builds the train and validation splits named by ``config.dataset``."""
    if config.dataset == "digits":
        train = data.make_digits_dataset(config.num_train, split="train", seed=config.seed)
        val = data.make_digits_dataset(config.num_val, split="val", seed=config.seed + 1)
        names = data.DIGITS_CLASS_NAMES
    elif config.dataset == "shapes":
        options = dict(size=config.image_size, foreground_fraction=config.foreground_fraction)
        train = data.make_shapes_dataset(
            config.num_train, split="train", seed=config.seed, **options
        )
        val = data.make_shapes_dataset(config.num_val, split="val", seed=config.seed, **options)
        names = data.shapes_class_names()
    elif config.dataset == "folder":
        if config.data_root is None:
            raise ValueError("--dataset folder needs --data-root pointing at images/ and masks/.")
        images, labels = data.load_folder_dataset(config.data_root, size=config.image_size)
        valid = labels[labels != data.IGNORE_INDEX]
        num_classes = int(valid.max()) + 1 if valid.size else 1
        names = tuple(str(c) for c in range(max(num_classes, 2)))
        split = max(1, len(images) // 5)
        train, val = (images[split:], labels[split:]), (images[:split], labels[:split])
    else:
        raise ValueError(f"Unknown dataset {config.dataset!r}; expected one of {DATASETS}.")
    return Datasets(*train, *val, class_names=tuple(names))


def make_loss_fn(
    config: TrainConfig, boundary_maps: jax.Array | None = None
) -> Callable[..., tuple[jax.Array, dict[str, jax.Array]]]:
    """The combined loss ``(logits, labels) -> (total, parts)`` for ``config.loss``.

    With ``batch_dice`` the region terms pool the batch (nnU-Net's batch Dice), which stays
    exact when the batch is sharded over devices. ``boundary_maps``: the batch's signed
    distance maps for the ``boundary`` term, computed where the batch is loaded.
    """
    terms = jsl.parse_loss_spec(config.loss)
    if boundary_maps is not None:
        weight, boundary = terms["boundary"]
        terms["boundary"] = (weight, functools.partial(boundary, distance_maps=boundary_maps))
    if config.batch_dice:
        terms = {name: (weight, _batch_aggregated(fn)) for name, (weight, fn) in terms.items()}
    loss_fn = jsl.combine(terms, ignore_index=data.IGNORE_INDEX)
    if config.deep_supervision:
        # nnU-Net's weights: 1/2^l, the coarsest level 0, normalised to sum 1.
        return jsl.deep_supervision(loss_fn, weights="nnunet")
    return loss_fn


@dataclasses.dataclass(frozen=True)
class LossWithMaps:
    """``maps -> make_loss_fn(config, maps)``, hashable by its config (one compiled step)."""

    config: TrainConfig

    def __call__(self, maps: jax.Array) -> Callable[..., tuple[jax.Array, dict[str, jax.Array]]]:
        return make_loss_fn(self.config, maps)


def make_boundary_maps_fn(
    config: TrainConfig, num_classes: int
) -> Callable[[jax.Array], jax.Array] | None:
    """For a loss with a ``boundary`` term: labels ``[B, H, W]`` -> its signed maps.

    The maps depend on the labels only; computing them with the batch's loading takes the
    distance transforms out of the differentiated step. ``None`` when there is no boundary
    term, or with deep supervision (its coarser levels need maps of their own resolution).
    """
    if "boundary" not in jsl.parse_loss_spec(config.loss) or config.deep_supervision:
        return None
    maps = functools.partial(
        boundary_distance_maps, num_classes=num_classes, ignore_index=data.IGNORE_INDEX
    )
    return jax.jit(maps)


def _batch_aggregated(fn: Callable[..., jax.Array]) -> Callable[..., jax.Array]:
    if "aggregate" in inspect.signature(fn).parameters:
        return functools.partial(fn, aggregate="batch")
    return fn


def create_model(config: TrainConfig, datasets: Datasets) -> UNet:
    """The U-Net, with bf16 compute and float32 parameters when ``config.bf16``."""
    return UNet(
        datasets.in_channels,
        datasets.num_classes,
        features=config.features,
        dtype=jnp.bfloat16 if config.bf16 else jnp.float32,
        deep_supervision=config.deep_supervision,
        rngs=nnx.Rngs(config.seed),
    )


def create_optimizer(config: TrainConfig, model: UNet) -> nnx.Optimizer:
    """AdamW with linear warm-up and cosine decay over the run."""
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=config.lr,
        warmup_steps=config.warmup,
        decay_steps=max(config.steps, 2),
        end_value=config.lr * 0.01,
    )
    tx = optax.adamw(schedule, weight_decay=config.weight_decay)
    return nnx.Optimizer(model, tx, wrt=nnx.Param)


@functools.partial(nnx.jit, static_argnames="loss_fn")
def train_step(
    model: UNet,
    optimizer: nnx.Optimizer,
    images: jax.Array,
    labels: jax.Array,
    loss_fn: Any,
    boundary_maps: jax.Array | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """One optimisation step; returns the total loss and each term's value.

    With ``boundary_maps``, ``loss_fn`` is a ``maps -> loss`` factory (see :func:`train`).
    """

    def compute_loss(model: UNet) -> tuple[jax.Array, dict[str, jax.Array]]:
        fn = loss_fn if boundary_maps is None else loss_fn(boundary_maps)
        all_levels = isinstance(fn, jsl.DeepSupervisionLoss)
        return fn(model(images, all_levels=all_levels), labels)

    (total, parts), grads = nnx.value_and_grad(compute_loss, has_aux=True)(model)
    optimizer.update(model, grads)
    return total, parts


# A static bound on the segments of one canvas (all classes, either side): the panoptic and
# lesion-wise metrics lay their instances out in this many slots.
MAX_INSTANCES = 128
IGNORE = data.IGNORE_INDEX


def _case_dice(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-image Dice ``[B, C]``; MONAI's DiceMetric convention: a class absent from an image's
    ground truth is NaN (left out)."""
    counts = jsl.metrics.overlap_counts(logits, labels, ignore_index=IGNORE)
    return jsl.metrics.dice(counts, ignore_empty=True)


def _lesion_dice(predictions: jax.Array, labels: jax.Array, num_classes: int) -> jax.Array:
    """BraTS 2023's lesion-wise Dice ``[B, C - 1]`` without its 3-D settings (no merging
    dilation, no volume threshold); a class in neither map is undefined (NaN, left out)."""
    lesions = jsl.metrics.lesion_wise_scores(
        predictions,
        labels,
        num_classes=num_classes,
        max_lesions=MAX_INSTANCES,
        dilation_iterations=0,
        volume_threshold=0.0,
        ignore_index=IGNORE,
    )
    scored = lesions.true_lesions + lesions.predicted_lesions > 0
    return jnp.where(scored, lesions.dice, jnp.nan)


def evaluation_metrics(
    num_classes: int, *, hd95: bool = False, instances: bool = False
) -> nnx.MultiMetric:
    """The metrics of an evaluation, one ``nnx.MultiMetric`` (each exact over the whole set,
    not a mean of per-batch values): ``pooled`` (the confusion matrix: mIoU, Dice, accuracy),
    ``case_dice`` (per-image Dice, MONAI's per-case mean), ``calibration`` (15 confidence bins);
    with ``hd95``, ``hd95`` (per-image HD95 of each foreground class, the images where a class
    is in only one map left out); with ``instances``, ``panoptic`` (PQ, SQ, RQ per class, each
    8-connected digit an instance) and ``lesion_dice``."""
    metrics = {
        "pooled": jsl.nnx.ConfusionMatrix(num_classes=num_classes, score=None, ignore_index=IGNORE),
        "case_dice": jsl.nnx.PerImage(
            _case_dice, num_classes=num_classes, include_background=False
        ),
        "calibration": jsl.nnx.CalibrationError(num_bins=15, ignore_index=IGNORE),
    }
    if hd95:
        metrics["hd95"] = jsl.nnx.PerImage(
            functools.partial(jsl.metrics.hausdorff_distance, percentile=95, ignore_index=IGNORE),
            num_classes=num_classes,
            include_background=False,
            reduction="mean_batch",
            ignore_inf=True,
        )
    if instances:
        metrics["panoptic"] = jsl.nnx.PanopticQuality(
            num_classes=num_classes,
            max_instances=MAX_INSTANCES,
            metric=("pq", "sq", "rq"),
            reduction="none",
            connectivity=2,
            ignore_index=IGNORE,
        )
        metrics["lesion_dice"] = jsl.nnx.PerImage(
            functools.partial(_lesion_dice, num_classes=num_classes),
            num_classes=num_classes,
            include_background=False,
            reduction="mean_batch",
            argnames=("predictions", "labels"),
        )
    return nnx.MultiMetric(**metrics)


@nnx.jit
def eval_step(model: UNet, metrics: nnx.MultiMetric, images, labels) -> None:
    """Adds one batch to every metric of ``metrics`` (logits, their arg-max, labels)."""
    logits = model(images)
    metrics.update(logits=logits, predictions=jnp.argmax(logits, axis=-1), labels=labels)


def evaluate(
    model: UNet,
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    batch_size: int,
    *,
    hd95: bool = False,
    instances: bool = False,
) -> dict[str, np.ndarray]:
    """Per-class and mean metrics of ``model`` on a labelled set (BatchNorm in eval mode),
    streamed through :func:`evaluation_metrics`.

    Pooled over all pixels: ``iou``, ``dice`` (per class), ``mean_iou``, ``mean_dice``,
    ``foreground_mean_iou`` (classes 1.., the background left out), ``pixel_accuracy``, ...;
    per image: ``case_mean_dice``, the mean over images of each image's mean Dice over the
    foreground classes present in its ground truth. With ``hd95``, also ``hd95`` ``[C - 1]``:
    per foreground class, the mean over the images where both the ground truth and the
    prediction contain the class of the 95th-percentile Hausdorff distance (pixels), and
    ``hd95_one_sided`` ``[C - 1]``: the number of images where only one of them does (an
    infinite distance, left out of the mean). Always ``ece`` (the top-label expected calibration
    error of the softmax) and ``reliability_*`` (its bins: ``lower``, ``upper``, ``confidence``,
    ``accuracy``, ``count``). With ``instances``: ``panoptic_quality``,
    ``segmentation_quality``, ``recognition_quality`` ``[C - 1]`` per digit class from the
    counts of the whole set (torchmetrics' and COCO's dataset PQ) and
    ``mean_panoptic_quality`` over the classes; ``lesion_dice`` ``[C - 1]``, per class the mean
    over images of BraTS 2023's lesion-wise Dice, and ``mean_lesion_dice``, the mean over
    images of each image's mean over its classes.
    """
    metrics = evaluation_metrics(num_classes, hd95=hd95, instances=instances)
    model.eval()
    for batch_images, batch_labels in data.iterate_batches(
        images, labels, batch_size, shuffle=False, num_epochs=1, drop_remainder=False
    ):
        eval_step(model, metrics, batch_images, batch_labels)
    model.train()
    values = metrics.compute()
    results = dict(values["pooled"])
    matrix = metrics.pooled.accumulator.get_value().matrix
    results["foreground_mean_iou"] = jsl.metrics.mean_iou(matrix, include_background=False)
    results["case_mean_dice"] = values["case_dice"]
    results["ece"] = values["calibration"]
    calibration = metrics.calibration.accumulator.get_value()
    for field, bins in calibration.reliability_diagram()._asdict().items():
        results[f"reliability_{field}"] = bins
    if hd95:
        # The accumulator behind the metric also counts the values it left out (the inf).
        distances = metrics.hd95.accumulator.get_value()
        counted = distances.compute(reduction="mean_batch", ignore_inf=True, return_count=True)
        results["hd95"], results["hd95_one_sided"] = values["hd95"], counted["value"][2]
    if instances:
        pq = values["panoptic"]["pq"]
        results["panoptic_quality"] = pq
        results["segmentation_quality"] = values["panoptic"]["sq"]
        results["recognition_quality"] = values["panoptic"]["rq"]
        results["mean_panoptic_quality"] = jnp.nanmean(pq)
        results["lesion_dice"] = values["lesion_dice"]
        lesions = metrics.lesion_dice.accumulator.get_value()
        results["mean_lesion_dice"] = lesions.compute(reduction="mean")["value"]
    return {name: np.asarray(value) for name, value in results.items()}


@nnx.jit
def _predicted_classes(model: UNet, images: jax.Array) -> jax.Array:
    return jnp.argmax(model(images), axis=-1)


def predict(model: UNet, images: np.ndarray) -> np.ndarray:
    """Arg-max class of each pixel, ``[N, H, W]``."""
    model.eval()
    predictions = np.asarray(_predicted_classes(model, images))
    model.train()
    return predictions


@dataclasses.dataclass
class History:
    steps: list[int] = dataclasses.field(default_factory=list)
    losses: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    eval_steps: list[int] = dataclasses.field(default_factory=list)
    val_miou: list[float] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Result:
    config: TrainConfig
    model: UNet
    datasets: Datasets
    history: History
    metrics: dict[str, np.ndarray]
    wall_time_s: float


def train(
    config: TrainConfig,
    *,
    progress: bool = True,
    log_every: int = 10,
    loss_fn: Callable[..., tuple[jax.Array, dict[str, jax.Array]]] | None = None,
    datasets: Datasets | None = None,
) -> Result:
    """Trains the U-Net with ``config`` and evaluates it on the validation split.

    Args:
      config: the run's settings.
      progress: show a tqdm bar with the current loss and the last validation mIoU.
      log_every: record the loss terms every this many steps (each record syncs the device).
      loss_fn: a prebuilt ``(logits, labels) -> (total, parts)`` loss (e.g. ``jsl.combine`` of
        terms with their own options, such as class weights) used instead of ``config.loss``,
        which then only labels the plots. Reuse one object across runs: it is a static argument
        of the jitted train step, so a new object compiles the step again.
      datasets: prebuilt splits, instead of building them from ``config`` (they must be the
        ones ``config`` describes, or the saved settings are wrong).

    Returns:
      A :class:`Result` with the trained model, the loss/mIoU history and the final validation
      metrics (``iou``, ``dice``, ``mean_iou``, ...).
    """
    start = time.perf_counter()
    if datasets is None:
        datasets = make_datasets(config)
    model = create_model(config, datasets)
    optimizer = create_optimizer(config, model)
    boundary_maps = None
    step_loss: Any = loss_fn
    if loss_fn is None:
        boundary_maps = make_boundary_maps_fn(config, datasets.num_classes)
        # With precomputed maps the step builds the loss around each batch's maps.
        step_loss = make_loss_fn(config) if boundary_maps is None else LossWithMaps(config)
    place = lambda batch: batch  # noqa: E731 (single device: the step takes NumPy arrays)
    if config.data_parallel:
        mesh = parallel.data_mesh()
        parallel.replicate_state(mesh, model, optimizer)
        place = functools.partial(parallel.shard_batch, mesh)
    batches = data.iterate_batches(
        datasets.train_images, datasets.train_labels, config.batch_size, seed=config.seed
    )
    history = History()
    bar = tqdm(range(1, config.steps + 1), disable=not progress, desc="train", unit="step")
    postfix: dict[str, str] = {}  # the validation mIoU appears after the first evaluation
    metrics: dict[str, np.ndarray] = {}
    for step in bar:
        images, labels = place(next(batches))
        maps = None if boundary_maps is None else boundary_maps(labels)
        total, parts = train_step(model, optimizer, images, labels, step_loss, maps)
        if step % log_every == 0 or step == config.steps:
            history.steps.append(step)
            for name, value in {"total": total, **parts}.items():
                history.losses.setdefault(name, []).append(float(value))
            postfix["loss"] = f"{float(total):.4f}"
            bar.set_postfix(postfix)
        # The last step is always evaluated: those are the run's final metrics.
        if step % config.evaluation_interval == 0 or step == config.steps:
            final = step == config.steps
            metrics = evaluate(
                model,
                datasets.val_images,
                datasets.val_labels,
                datasets.num_classes,
                64,
                hd95=config.hd95 and final,
                instances=final,
            )
            miou = float(metrics["mean_iou"])
            history.eval_steps.append(step)
            history.val_miou.append(miou)
            postfix["val_miou"] = f"{miou:.3f}"
            bar.set_postfix(postfix)
            if not progress:
                print(
                    f"step {step}/{config.steps}: loss {float(total):.4f}, "
                    f"validation mIoU {miou:.3f}",
                    flush=True,
                )
    return Result(config, model, datasets, history, metrics, time.perf_counter() - start)


def metrics_table(result: Result) -> str:
    """A per-class table (markdown) of the final validation metrics: pooled IoU and Dice, and
    where computed HD95, panoptic quality and lesion-wise Dice (foreground classes); then the
    means over classes, the per-case mean Dice and the calibration error."""
    metrics = result.metrics
    columns: dict[str, list[str]] = {
        "IoU": [f"{v:.3f}" for v in metrics["iou"]],
        "Dice": [f"{v:.3f}" for v in metrics["dice"]],
    }
    means = {"IoU": f"**{metrics['mean_iou']:.3f}**", "Dice": f"**{metrics['mean_dice']:.3f}**"}
    if "hd95" in metrics:
        cells = [_distance_cell(d, n) for d, n in zip(*_hd95(metrics), strict=True)]
        columns["HD95 (px)"] = ["", *cells]
        finite = np.isfinite(metrics["hd95"])
        means["HD95 (px)"] = f"**{np.mean(metrics['hd95'][finite]):.2f}**" if finite.any() else ""
    if "panoptic_quality" in metrics:
        columns["PQ"] = ["", *(_score_cell(v) for v in metrics["panoptic_quality"])]
        columns["lesion Dice"] = ["", *(_score_cell(v) for v in metrics["lesion_dice"])]
        means["PQ"] = f"**{metrics['mean_panoptic_quality']:.3f}**"
        means["lesion Dice"] = f"**{metrics['mean_lesion_dice']:.3f}**"
    names = list(columns)
    lines = ["| class | " + " | ".join(names) + " |", "| --- " * (len(names) + 1) + "|"]
    for row, name in enumerate(result.datasets.class_names):
        lines.append(f"| {name} | " + " | ".join(columns[n][row] for n in names) + " |")
    lines.append("| **mean** | " + " | ".join(means.get(n, "") for n in names) + " |")
    blank = " |" * (len(names) - 2)
    lines.append(f"| **mean, foreground** | **{metrics['foreground_mean_iou']:.3f}** | |{blank}")
    case = f"**{metrics['case_mean_dice']:.3f}**"
    lines.append(f"| **per-case mean, foreground** | | {case} |{blank}")
    lines.append("")
    lines.append(f"Expected calibration error (top label, 15 bins): {float(metrics['ece']):.4f}")
    return "\n".join(lines)


def _score_cell(value: float) -> str:
    return f"{value:.3f}" if np.isfinite(value) else "–"


def _hd95(metrics: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return metrics["hd95"], metrics["hd95_one_sided"]


def _distance_cell(distance: float, one_sided: int) -> str:
    text = f"{distance:.2f}" if np.isfinite(distance) else "–"
    return f"{text} ({int(one_sided)} one-sided)" if one_sided else text


def save_outputs(result: Result, out: str | Path, *, num_examples: int = 6) -> dict[str, Path]:
    """Writes the training curves, a prediction grid and a JSON summary under ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.colors
    import matplotlib.patches
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    history = result.history

    figure, (loss_axes, miou_axes) = plt.subplots(1, 2, figsize=(11, 4))
    for name, values in history.losses.items():
        loss_axes.plot(history.steps, values, label=name, linewidth=2 if name == "total" else 1)
    loss_axes.set(xlabel="step", ylabel="loss", title=f"training loss ({result.config.loss})")
    loss_axes.legend()
    miou_axes.plot(history.eval_steps, history.val_miou, marker="o")
    miou_axes.set(xlabel="step", ylabel="mean IoU", title="validation mIoU", ylim=(0, 1))
    figure.tight_layout()
    curves = out / "training_curves.png"
    figure.savefig(curves, dpi=100)
    plt.close(figure)

    num_examples = min(num_examples, len(result.datasets.val_images))
    images = result.datasets.val_images[:num_examples]
    truth = result.datasets.val_labels[:num_examples]
    predictions = predict(result.model, images)
    columns = min(result.datasets.num_classes, max(1, num_examples))
    rows = -(-result.datasets.num_classes // columns)  # of the legend
    figure, axes = plt.subplots(
        4, num_examples, figsize=(2 * num_examples, 8 + 0.3 * rows), squeeze=False
    )
    colour_limits = dict(vmin=0, vmax=result.datasets.num_classes - 1, cmap="tab20")
    colours = matplotlib.colormaps["tab20"]
    norm = matplotlib.colors.Normalize(**{k: colour_limits[k] for k in ("vmin", "vmax")})
    # The error panel: a correct pixel white, a wrong one red, an ignored one grey.
    error_colours = dict(
        cmap=matplotlib.colors.ListedColormap(["white", "tab:red", "lightgrey"]), vmin=0, vmax=2
    )
    for column in range(num_examples):
        axes[0, column].imshow(images[column].squeeze(), cmap="gray")
        axes[1, column].imshow(
            np.where(truth[column] == data.IGNORE_INDEX, 0, truth[column]), **colour_limits
        )
        axes[2, column].imshow(predictions[column], **colour_limits)
        axes[3, column].imshow(_error_map(predictions[column], truth[column]), **error_colours)
    for row, title in enumerate(("input", "ground truth", "prediction", "errors")):
        axes[row, 0].set_ylabel(title)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    # A legend of the classes, with the colours imshow gives them.
    handles = [
        matplotlib.patches.Patch(color=colours(norm(index)), label=name)
        for index, name in enumerate(result.datasets.class_names)
    ]
    figure.legend(handles=handles, loc="lower center", ncol=columns, frameon=False)
    figure.tight_layout(rect=(0, 0.3 * rows / (8 + 0.3 * rows) + 0.01, 1, 1))
    grid = out / "predictions.png"
    figure.savefig(grid, dpi=100)
    plt.close(figure)

    paths = {"curves": curves, "predictions": grid}
    if "reliability_count" in result.metrics:
        paths["reliability"] = save_reliability_diagram(result.metrics, out / "reliability.png")
    summary = out / "summary.json"
    summary.write_text(json.dumps(summary_dict(result), indent=2))
    return {**paths, "summary": summary}


def _error_map(prediction: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """0 where the prediction is right, 1 where it is wrong, 2 where the label is ignored."""
    wrong = (prediction != truth).astype(np.int32)
    return np.where(truth == data.IGNORE_INDEX, 2, wrong)


def save_reliability_diagram(metrics: dict[str, np.ndarray], path: Path) -> Path:
    """The reliability diagram of the final validation softmax: per confidence bin, the accuracy
    against the mean confidence (a calibrated model lies on the diagonal), and the pixels per
    bin."""
    import matplotlib.pyplot as plt

    lower, upper = metrics["reliability_lower"], metrics["reliability_upper"]
    count = metrics["reliability_count"]
    filled = count > 0
    figure, (diagram, histogram) = plt.subplots(
        2, 1, figsize=(5, 6), sharex=True, gridspec_kw={"height_ratios": (3, 1)}
    )
    width = upper - lower
    diagram.bar(
        lower[filled],
        metrics["reliability_accuracy"][filled],
        width=width[filled],
        align="edge",
        edgecolor="black",
        label="accuracy",
    )
    diagram.plot([0, 1], [0, 1], linestyle="--", color="gray", label="calibrated")
    diagram.plot(
        metrics["reliability_confidence"][filled],
        metrics["reliability_accuracy"][filled],
        marker="o",
        color="tab:red",
        linewidth=0,
        label="(mean confidence, accuracy)",
    )
    diagram.set(
        ylabel="accuracy",
        ylim=(0, 1),
        title=f"reliability (ECE {float(metrics['ece']):.4f})",
    )
    diagram.legend(loc="upper left")
    histogram.bar(lower, count, width=width, align="edge", edgecolor="black")
    histogram.set(
        xlabel="confidence (top-label softmax)", ylabel="pixels", yscale="log", xlim=(0, 1)
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def summary_dict(result: Result) -> dict[str, Any]:
    """The final metrics and settings of a run, JSON-ready."""
    metrics = result.metrics
    summary = {
        "config": dataclasses.asdict(result.config),
        "wall_time_s": round(result.wall_time_s, 1),
        "devices": [str(device) for device in jax.devices()],
        "mean_iou": float(metrics["mean_iou"]),
        "mean_dice": float(metrics["mean_dice"]),
        "foreground_mean_iou": float(metrics["foreground_mean_iou"]),
        "case_mean_dice": float(metrics["case_mean_dice"]),
        "pixel_accuracy": float(metrics["pixel_accuracy"]),
        "per_class": {
            name: {"iou": _finite_or_none(iou), "dice": _finite_or_none(dice)}
            for name, iou, dice in zip(
                result.datasets.class_names, metrics["iou"], metrics["dice"], strict=True
            )
        },
        "final_losses": {name: values[-1] for name, values in result.history.losses.items()},
        "val_miou_history": dict(
            zip(result.history.eval_steps, result.history.val_miou, strict=True)
        ),
    }
    if "ece" in metrics:
        summary["expected_calibration_error"] = float(metrics["ece"])
    if "panoptic_quality" in metrics:
        foreground = result.datasets.class_names[1:]
        summary["mean_panoptic_quality"] = _finite_or_none(metrics["mean_panoptic_quality"])
        summary["mean_lesion_dice"] = _finite_or_none(metrics["mean_lesion_dice"])
        summary["instances"] = {
            name: {
                "pq": _finite_or_none(pq),
                "sq": _finite_or_none(sq),
                "rq": _finite_or_none(rq),
                "lesion_dice": _finite_or_none(lesion),
            }
            for name, pq, sq, rq, lesion in zip(
                foreground,
                metrics["panoptic_quality"],
                metrics["segmentation_quality"],
                metrics["recognition_quality"],
                metrics["lesion_dice"],
                strict=True,
            )
        }
    if "hd95" in metrics:
        foreground = result.datasets.class_names[1:]
        summary["hd95"] = {
            name: {"mean": _finite_or_none(distance), "one_sided_images": int(one_sided)}
            for name, distance, one_sided in zip(foreground, *_hd95(metrics), strict=True)
        }
    return summary


def _finite_or_none(value: Any) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None
