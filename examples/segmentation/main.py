"""Trains a small U-Net with jaxseg_losses on real handwritten digits (offline) and reports.

    python examples/segmentation/main.py                          # digits, CE + Dice
    python examples/segmentation/main.py --loss ce:1,iou:0.5 --steps 400
    python examples/segmentation/main.py --dataset shapes --loss focal+dice

Writes training curves, a grid of predictions and a JSON summary under ``--out``.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import train

import jaxseg_losses as jsl


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where the help text already says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.help and ("default" in action.help or action.default is None):
            return action.help
        return super()._get_help_string(action)


def parse_args(argv: list[str] | None = None) -> tuple[train.TrainConfig, argparse.Namespace]:
    """Parses the command line into a :class:`train.TrainConfig` and the output options."""
    defaults = train.TrainConfig()
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=_HelpFormatter
    )
    parser.add_argument(
        "--dataset", choices=train.DATASETS, default=defaults.dataset, help="training data"
    )
    parser.add_argument(
        "--loss",
        default=defaults.loss,
        help="weighted terms, e.g. 'ce+dice' or 'ce:1,iou:0.5'; names: "
        + ", ".join(jsl.registered_losses()),
    )
    parser.add_argument("--steps", type=int, default=defaults.steps, help="training steps")
    parser.add_argument(
        "--batch-size", type=int, default=defaults.batch_size, help="images per step"
    )
    parser.add_argument("--lr", type=float, default=defaults.lr, help="peak learning rate")
    parser.add_argument(
        "--warmup-steps",
        type=int,
        default=defaults.warmup_steps,
        help="linear warm-up steps before the cosine decay (default: steps // 8)",
    )
    parser.add_argument(
        "--seed", type=int, default=defaults.seed, help="data, initial weights, batch order"
    )
    parser.add_argument("--bf16", action="store_true", help="bf16 compute, float32 parameters")
    parser.add_argument("--num-train", type=int, default=defaults.num_train, help="training images")
    parser.add_argument("--num-val", type=int, default=defaults.num_val, help="validation images")
    parser.add_argument(
        "--eval-every",
        type=int,
        default=defaults.eval_every,
        help="steps between validation passes (default: steps // 8; the last step always)",
    )
    parser.add_argument(
        "--hd95",
        action="store_true",
        help="also report the per-class 95th-percentile Hausdorff distance on the "
        "validation set (jsl.metrics.hausdorff_distance, in pixels)",
    )
    parser.add_argument(
        "--foreground-fraction",
        type=float,
        default=defaults.foreground_fraction,
        help="shapes dataset: fraction of foreground pixels",
    )
    parser.add_argument(
        "--data-root", default=None, help="folder dataset: root with images/, masks/"
    )
    parser.add_argument(
        "--image-size",
        type=int,
        default=defaults.image_size,
        help="canvas side in pixels (shapes and folder datasets)",
    )
    parser.add_argument(
        "--data-parallel",
        action="store_true",
        help="shard each batch over all jax.devices() (sizes must divide the batch)",
    )
    parser.add_argument(
        "--batch-dice",
        action=argparse.BooleanOptionalAction,
        default=defaults.batch_dice,
        help="region terms pool the batch (aggregate='batch', exact under data parallelism); "
        "--no-batch-dice computes them per image",
    )
    parser.add_argument(
        "--deep-supervision",
        action="store_true",
        help="auxiliary heads at the coarser decoder levels, trained with jsl.deep_supervision",
    )
    parser.add_argument("--out", default="outputs", help="folder for plots and summary.json")
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar: print a line per evaluation instead",
    )
    args = parser.parse_args(argv)
    try:
        jsl.parse_loss_spec(args.loss)
    except ValueError as error:
        parser.error(str(error))
    config = train.TrainConfig(
        dataset=args.dataset,
        loss=args.loss,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_steps=args.warmup_steps,
        seed=args.seed,
        bf16=args.bf16,
        num_train=args.num_train,
        num_val=args.num_val,
        eval_every=args.eval_every,
        foreground_fraction=args.foreground_fraction,
        data_root=args.data_root,
        image_size=args.image_size,
        data_parallel=args.data_parallel,
        batch_dice=args.batch_dice,
        hd95=args.hd95,
        deep_supervision=args.deep_supervision,
    )
    return config, args


def main(argv: list[str] | None = None) -> train.Result:
    config, args = parse_args(argv)
    result = train.train(config, progress=not args.no_progress)
    print(train.metrics_table(result))
    paths = train.save_outputs(result, args.out)
    metrics = result.metrics
    print(
        f"validation mean IoU {float(metrics['mean_iou']):.3f} "
        f"(foreground {float(metrics['foreground_mean_iou']):.3f}), "
        f"mean Dice {float(metrics['mean_dice']):.3f}, "
        f"per-case mean Dice {float(metrics['case_mean_dice']):.3f}, "
        f"wall time {result.wall_time_s:.0f} s"
    )
    print(
        f"objects (each digit an instance): panoptic quality "
        f"{float(metrics['mean_panoptic_quality']):.3f}, lesion-wise Dice "
        f"{float(metrics['mean_lesion_dice']):.3f}; expected calibration error "
        f"{float(metrics['ece']):.4f}"
    )
    print("wrote " + ", ".join(str(path) for path in paths.values()))
    return result


if __name__ == "__main__":
    main()
