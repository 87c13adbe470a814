"""Trains the same U-Net with eight losses, same budget and seeds, and tabulates the results.

    python examples/segmentation/compare_losses.py                      # the README's comparison
    python examples/segmentation/compare_losses.py --seeds 5 --steps 600
    python examples/segmentation/compare_losses.py --datasets shapes --losses ce dice ce:1+dice:10

The losses: cross-entropy (CE), weighted CE (class weights from the inverse square root of the
training labels' class frequencies), focal, Dice, IoU, IoU with ``log=True``, CE + Dice and
CE + IoU. The data: the rare-foreground shapes (about 1% foreground pixels) and the digits.
As in the training example, region terms pool the batch's statistics (nnU-Net's batch Dice;
``--no-batch-dice`` computes them per image).

Every run of one dataset and seed starts from the same weights and sees the same batches (the
seed fixes both), so the losses are the only difference. Writes under ``--out``:
``loss_comparison.md`` (mean ± std over seeds of the foreground IoU, the mean IoU over the
non-background classes, and of the mIoU over all classes), ``loss_comparison.png`` (bars with
one dot per seed) and ``loss_comparison.json`` (every run's numbers and the settings).
"""

import argparse
import dataclasses
import functools
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import data
import jax
import jax.numpy as jnp
import numpy as np
import train

import jaxseg_losses as jsl

LOSSES = {
    "ce": "CE",
    "wce": "weighted CE",
    "focal": "focal",
    "dice": "Dice",
    "iou": "IoU",
    "log_iou": "IoU, log",
    "ce+dice": "CE + Dice",
    "ce+iou": "CE + IoU",
}
"""The compared losses: a ``--loss`` spec (or ``"wce"``) and its label in the table."""

DATASETS = ("shapes", "digits")


@dataclasses.dataclass(frozen=True)
class Budget:
    """What every run gets; the defaults are the README's comparison (about 30 min, 2 cores).

    ``steps`` maps each dataset to its number of steps: every loss gets the same budget on one
    dataset, and the digits (eleven classes) get more than the shapes. The learning rate warms
    up over the first tenth of the steps.
    """

    steps: dict[str, int] = dataclasses.field(
        default_factory=lambda: {"shapes": 200, "digits": 300}
    )
    batch_size: int = 8
    features: tuple[int, ...] = (8, 16, 32)
    lr: float = 3e-3
    num_train: int = 1000
    num_val: int = 128
    foreground_fraction: float = 0.01
    batch_dice: bool = True


def class_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Inverse square root of each class's pixel frequency, scaled to a mean pixel weight of 1.

    The square root tempers plain inverse frequency, which would weigh a 1%-class 100 times the
    background. A class absent from ``labels`` counts as one pixel, so its weight stays finite.

    Args:
      labels: int ``[N, H, W]`` training labels (``data.IGNORE_INDEX`` pixels are skipped).
      num_classes: ``C``.

    Returns:
      float32 ``[C]`` weights ``w`` with ``sum_c f_c w_c = 1`` for the class frequencies ``f``.
    """
    valid = labels[labels != data.IGNORE_INDEX]
    counts = np.maximum(np.bincount(valid.ravel(), minlength=num_classes)[:num_classes], 1)
    frequency = counts / counts.sum()
    weights = frequency**-0.5
    return (weights / np.sum(frequency * weights)).astype(np.float32)


def make_loss(
    name: str, weights: np.ndarray | None = None, *, batch_dice: bool = True
) -> Callable[..., Any]:
    """The combined loss for one of :data:`LOSSES` (``"wce"`` needs ``weights``).

    The spec losses are built as the training example builds them (``train.make_loss_fn``):
    with ``batch_dice`` the region terms pool the batch's statistics (``aggregate="batch"``).
    """
    if name == "wce":
        if weights is None:
            raise ValueError("The weighted CE loss needs the class weights.")
        weighted = functools.partial(jsl.cross_entropy_loss, class_weights=jnp.asarray(weights))
        return jsl.combine({"wce": (1.0, weighted)}, ignore_index=data.IGNORE_INDEX)
    return train.make_loss_fn(train.TrainConfig(loss=name, batch_dice=batch_dice))


def run_config(dataset: str, loss: str, seed: int, budget: Budget) -> train.TrainConfig:
    """The :class:`train.TrainConfig` of one run."""
    steps = budget.steps[dataset]
    return train.TrainConfig(
        dataset=dataset,
        loss=loss,
        steps=steps,
        batch_size=budget.batch_size,
        lr=budget.lr,
        warmup_steps=max(1, steps // 10),
        seed=seed,
        features=budget.features,
        num_train=budget.num_train,
        num_val=budget.num_val,
        eval_every=max(1, steps // 4),
        foreground_fraction=budget.foreground_fraction,
        batch_dice=budget.batch_dice,
    )


def foreground_iou(iou: np.ndarray) -> float:
    """Mean IoU over the non-background classes, skipping those absent from truth and prediction."""
    foreground = np.asarray(iou, np.float64)[1:]
    return float(np.nanmean(foreground)) if np.isfinite(foreground).any() else float("nan")


def run_all(
    datasets: Sequence[str],
    losses: Sequence[str],
    seeds: Sequence[int],
    budget: Budget,
    *,
    log: Callable[[str], None] = print,
    on_run: Callable[[list[dict[str, Any]]], None] | None = None,
) -> list[dict[str, Any]]:
    """Trains every (dataset, seed, loss) combination; returns one record per run."""
    runs: list[dict[str, Any]] = []
    # One loss object per spec, shared by every run: the train step is compiled once per loss
    # and dataset instead of once per run (the weighted CE depends on the data, so not that one).
    shared_losses = {
        name: make_loss(name, batch_dice=budget.batch_dice) for name in losses if name != "wce"
    }
    for dataset in datasets:
        for seed in seeds:
            config = run_config(dataset, "data", seed, budget)
            splits = train.make_datasets(config)
            weights = class_weights(splits.train_labels, splits.num_classes)
            for loss in losses:
                loss_fn = shared_losses.get(loss) or make_loss(loss, weights)
                config = run_config(dataset, loss, seed, budget)
                result = train.train(config, progress=False, loss_fn=loss_fn, datasets=splits)
                record = {
                    "dataset": dataset,
                    "loss": loss,
                    "seed": seed,
                    "foreground_iou": foreground_iou(result.metrics["iou"]),
                    "mean_iou": float(result.metrics["mean_iou"]),
                    "per_class_iou": [float(v) for v in result.metrics["iou"]],
                    "val_miou_history": result.history.val_miou,
                    "final_loss": result.history.losses["total"][-1],
                    "wall_time_s": round(result.wall_time_s, 1),
                }
                if loss == "wce":
                    record["class_weights"] = [round(float(w), 4) for w in weights]
                runs.append(record)
                log(
                    f"{dataset:6s} seed {seed} {loss:8s} fg IoU {record['foreground_iou']:.3f} "
                    f"mIoU {record['mean_iou']:.3f} ({record['wall_time_s']:.0f} s)"
                )
                if on_run is not None:
                    on_run(runs)
    return runs


def summarize(runs: Sequence[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """``{(dataset, loss): {metric: (mean, std, values)}}`` over seeds (std with ``ddof=0``)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["dataset"], run["loss"]), []).append(run)
    summary = {}
    for key, group in groups.items():
        summary[key] = {}
        for metric in ("foreground_iou", "mean_iou"):
            values = np.asarray([run[metric] for run in group], np.float64)
            summary[key][metric] = (float(np.mean(values)), float(np.std(values)), values)
    return summary


def markdown_table(runs: Sequence[dict[str, Any]]) -> str:
    """One row per dataset and loss: foreground IoU and mIoU as mean ± std over the seeds."""
    summary = summarize(runs)
    seeds = sorted({run["seed"] for run in runs})
    lines = [
        "| dataset | loss | foreground IoU | mIoU | worst-seed foreground IoU |",
        "| --- | --- | --- | --- | --- |",
    ]
    for (dataset, loss), metrics in summary.items():
        fg_mean, fg_std, fg_values = metrics["foreground_iou"]
        miou_mean, miou_std, _ = metrics["mean_iou"]
        lines.append(
            f"| {dataset} | {LOSSES.get(loss, loss)} | {fg_mean:.3f} ± {fg_std:.3f} | "
            f"{miou_mean:.3f} ± {miou_std:.3f} | {np.min(fg_values):.3f} |"
        )
    lines.append("")
    lines.append(
        f"Mean ± standard deviation over {len(seeds)} seeds ({', '.join(map(str, seeds))})."
    )
    return "\n".join(lines)


def bar_chart(runs: Sequence[dict[str, Any]], path: Path) -> Path:
    """Bars of the mean foreground IoU and mIoU per loss, with std error bars and seed dots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = summarize(runs)
    datasets = list(dict.fromkeys(run["dataset"] for run in runs))
    metrics = (("foreground_iou", "foreground IoU"), ("mean_iou", "mIoU (all classes)"))
    figure, axes = plt.subplots(
        len(datasets), len(metrics), figsize=(12, 3.6 * len(datasets)), squeeze=False
    )
    for row, dataset in enumerate(datasets):
        losses = [loss for (name, loss) in summary if name == dataset]
        positions = np.arange(len(losses))
        for column, (metric, title) in enumerate(metrics):
            axis = axes[row, column]
            means = [summary[(dataset, loss)][metric][0] for loss in losses]
            stds = [summary[(dataset, loss)][metric][1] for loss in losses]
            colours = [f"C{index % 10}" for index in range(len(losses))]
            axis.bar(positions, means, yerr=stds, capsize=3, color=colours, alpha=0.75)
            for position, loss in zip(positions, losses, strict=True):
                values = summary[(dataset, loss)][metric][2]
                axis.plot(np.full(len(values), position), values, "k.", markersize=4)
            axis.set_xticks(positions, [LOSSES.get(loss, loss) for loss in losses], rotation=30)
            axis.set(ylabel=title, title=f"{dataset}: {title}", ylim=(0, 1))
            axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses the command line; the defaults are the README's comparison."""
    defaults = Budget()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument(
        "--losses",
        nargs="+",
        default=list(LOSSES),
        help=f"'wce' or any --loss spec of main.py (default: {' '.join(LOSSES)})",
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1")
    parser.add_argument(
        "--steps",
        default=",".join(f"{name}:{steps}" for name, steps in defaults.steps.items()),
        help="steps per run: one number for every dataset, or e.g. 'shapes:200,digits:300'",
    )
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument(
        "--features",
        default=",".join(map(str, defaults.features)),
        help="U-Net channels per level, comma-separated",
    )
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--num-train", type=int, default=defaults.num_train)
    parser.add_argument("--num-val", type=int, default=defaults.num_val)
    parser.add_argument("--foreground-fraction", type=float, default=defaults.foreground_fraction)
    parser.add_argument(
        "--batch-dice",
        action=argparse.BooleanOptionalAction,
        default=defaults.batch_dice,
        help="region terms pool the batch (the example's default); --no-batch-dice: per image",
    )
    parser.add_argument("--out", default="outputs/loss_comparison")
    args = parser.parse_args(argv)
    for name in args.losses:
        if name != "wce":
            try:
                jsl.parse_loss_spec(name)
            except ValueError as error:
                parser.error(f"--losses {name!r}: {error}")
    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    try:
        args.features = tuple(int(width) for width in args.features.split(","))
    except ValueError:
        parser.error(f"--features must be comma-separated integers, got {args.features!r}")
    args.steps = _parse_steps(args.steps, args.datasets, parser)
    return args


def _parse_steps(
    text: str, datasets: Sequence[str], parser: argparse.ArgumentParser
) -> dict[str, int]:
    try:
        if ":" not in text:
            return dict.fromkeys(DATASETS, int(text))
        steps = {
            name.strip(): int(count)
            for name, _, count in (piece.partition(":") for piece in text.split(","))
        }
    except ValueError:
        parser.error(f"--steps must be a number or e.g. 'shapes:200,digits:300', got {text!r}")
    missing = sorted(set(datasets) - set(steps))
    if missing:
        parser.error(f"--steps gives no count for {', '.join(missing)}")
    return steps


def main(argv: list[str] | None = None) -> dict[str, Path]:
    """Runs the comparison and writes the table, the chart and the per-run JSON under --out."""
    args = parse_args(argv)
    budget = Budget(
        steps=args.steps,
        batch_size=args.batch_size,
        features=args.features,
        lr=args.lr,
        num_train=args.num_train,
        num_val=args.num_val,
        foreground_fraction=args.foreground_fraction,
        batch_dice=args.batch_dice,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "table": out / "loss_comparison.md",
        "chart": out / "loss_comparison.png",
        "runs": out / "loss_comparison.json",
    }
    start = time.perf_counter()

    def save_runs(runs: list[dict[str, Any]]) -> None:
        # Written after every run, so an interrupted comparison keeps what it measured.
        settings = {
            "budget": dataclasses.asdict(budget),
            "seeds": list(range(args.seeds)),
            "devices": [str(device) for device in jax.devices()],
            "wall_time_s": round(time.perf_counter() - start, 1),
        }
        paths["runs"].write_text(json.dumps({"settings": settings, "runs": runs}, indent=2))

    def log(line: str) -> None:
        print(f"[{time.perf_counter() - start:6.0f} s] {line}", flush=True)

    runs = run_all(args.datasets, args.losses, range(args.seeds), budget, log=log, on_run=save_runs)
    table = markdown_table(runs)
    paths["table"].write_text(
        f"{table}\n\nBudget per run: {budget}. Total wall time "
        f"{time.perf_counter() - start:.0f} s on {jax.devices()[0].platform}.\n"
    )
    bar_chart(runs, paths["chart"])
    print(table)
    print("wrote " + ", ".join(str(path) for path in paths.values()))
    return paths


if __name__ == "__main__":
    main()
