"""Tests for examples/segmentation/train.py and main.py, and the Linen example.

Compilation dominates these tests, so one tiny training run (a module-scoped fixture) serves
every test that needs a trained model.
"""

import contextlib
import json
import sys

import jax
import numpy as np
import pytest

import jaxseg_losses as jsl
from tests.helpers import EXAMPLES

# The example is a forkable folder, not a package: import its modules as its scripts do.
sys.path.insert(0, str(EXAMPLES / "segmentation"))
sys.path.insert(0, str(EXAMPLES))

import main
import train

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

TINY = train.TrainConfig(
    dataset="shapes",
    loss="ce+dice",
    steps=20,
    batch_size=8,
    lr=1e-2,
    warmup_steps=2,
    features=(4, 8),
    num_train=32,
    num_val=16,
    eval_every=10,
    foreground_fraction=0.05,
    image_size=32,
)


def _optax_promotion():
    """The suite's strict settings, except that dtype promotion is JAX's standard one.

    optax's Adam raises its decay rates (Python floats) to the int32 step count for the bias
    correction, which strict dtype promotion rejects; rank promotion still raises.
    """
    stack = contextlib.ExitStack()
    stack.enter_context(jax.numpy_rank_promotion("raise"))
    stack.enter_context(jax.numpy_dtype_promotion("standard"))
    return stack


@pytest.fixture(autouse=True)
def _strict_jax():
    # Overrides tests/conftest.py's fixture of the same name for this module.
    with _optax_promotion():
        yield


@pytest.fixture(scope="module")
def tiny_result() -> train.Result:
    with _optax_promotion():
        return train.train(TINY, progress=False, log_every=1)


def test_train_decreases_the_loss_over_20_steps(tiny_result):
    losses = tiny_result.history.losses
    assert tiny_result.history.steps == list(range(1, 21))
    assert set(losses) == {"total", "ce", "dice"}
    total = np.asarray(losses["total"])
    assert np.all(np.isfinite(total))
    # Batches differ from step to step, so compare the first and last few steps, not two points.
    assert total[-5:].mean() < 0.9 * total[:5].mean(), total
    # The total is the weighted sum of the logged terms (weights 1 and 1).
    np.testing.assert_allclose(total, np.add(losses["ce"], losses["dice"]), rtol=1e-5)


def test_train_evaluates_on_schedule_and_reports_metrics(tiny_result):
    assert tiny_result.history.eval_steps == [10, 20]
    metrics = tiny_result.metrics
    num_classes = tiny_result.datasets.num_classes
    assert metrics["iou"].shape == metrics["dice"].shape == (num_classes,)
    assert 0.0 <= float(metrics["mean_iou"]) <= 1.0
    assert float(metrics["mean_iou"]) == pytest.approx(tiny_result.history.val_miou[-1])
    # Foreground mIoU: the pooled per-class IoU without class 0.
    foreground = np.nanmean(metrics["iou"][1:])
    assert float(metrics["foreground_mean_iou"]) == pytest.approx(foreground, rel=1e-5)
    # Per-case mean Dice, recomputed image by image from the predictions with NumPy.
    images, labels = tiny_result.datasets.val_images, tiny_result.datasets.val_labels
    predictions = train.predict(tiny_result.model, images)
    per_image = []
    for p, y in zip(predictions, labels, strict=True):
        valid = y != 255
        scores = [
            2
            * np.sum((p == c) & (y == c) & valid)
            / (np.sum((p == c) & valid) + np.sum((y == c) & valid))
            for c in range(1, num_classes)
            if np.any((y == c) & valid)
        ]
        if scores:
            per_image.append(np.mean(scores))
    assert float(metrics["case_mean_dice"]) == pytest.approx(np.mean(per_image), rel=1e-4)


def test_predict_returns_class_indices(tiny_result):
    images = tiny_result.datasets.val_images[:3]
    predictions = train.predict(tiny_result.model, images)
    assert predictions.shape == images.shape[:3]
    assert predictions.min() >= 0 and predictions.max() < tiny_result.datasets.num_classes


def test_the_final_evaluation_scores_calibration_and_objects(tiny_result):
    metrics = tiny_result.metrics
    # The reliability bins cover every validation pixel once, and the ECE is their weighted gap.
    count = metrics["reliability_count"]
    assert count.sum() == tiny_result.datasets.val_labels.size
    gap = np.abs(metrics["reliability_accuracy"] - metrics["reliability_confidence"])
    expected_ece = np.sum(np.where(count > 0, count * gap, 0.0)) / count.sum()
    assert float(metrics["ece"]) == pytest.approx(expected_ece, rel=1e-4, abs=1e-6)
    # Panoptic quality is SQ x RQ per class, and its mean the mean over the defined classes.
    pq, sq, rq = (
        metrics[k] for k in ("panoptic_quality", "segmentation_quality", "recognition_quality")
    )
    assert pq.shape == (tiny_result.datasets.num_classes - 1,)
    np.testing.assert_allclose(pq, sq * rq, rtol=1e-5, atol=1e-7)
    assert float(metrics["mean_panoptic_quality"]) == pytest.approx(float(np.nanmean(pq)))
    assert 0.0 <= float(metrics["mean_lesion_dice"]) <= 1.0


def test_metrics_table_lists_every_class(tiny_result):
    table = train.metrics_table(tiny_result)
    for name in tiny_result.datasets.class_names:
        assert f"| {name} |" in table
    assert "**mean**" in table


def test_error_map_marks_wrong_and_ignored_pixels():
    truth = np.array([[0, 1, 2], [train.data.IGNORE_INDEX, 1, 0]])
    prediction = np.array([[0, 2, 2], [1, 1, 1]])
    expected = np.array([[0, 1, 0], [2, 0, 1]])  # right 0, wrong 1, ignored 2
    np.testing.assert_array_equal(train._error_map(prediction, truth), expected)


def test_save_outputs_writes_pngs_and_summary(tiny_result, tmp_path):
    paths = train.save_outputs(tiny_result, tmp_path / "out", num_examples=3)
    assert set(paths) == {"curves", "predictions", "reliability", "summary"}
    for key in ("curves", "predictions", "reliability"):
        assert paths[key].read_bytes()[:8] == PNG_SIGNATURE
    summary = json.loads(paths["summary"].read_text())
    assert set(summary) == {
        "config",
        "wall_time_s",
        "devices",
        "mean_iou",
        "mean_dice",
        "foreground_mean_iou",
        "case_mean_dice",
        "pixel_accuracy",
        "per_class",
        "final_losses",
        "val_miou_history",
        "expected_calibration_error",
        "mean_panoptic_quality",
        "mean_lesion_dice",
        "instances",
    }
    assert list(summary["instances"]) == list(tiny_result.datasets.class_names[1:])
    assert summary["config"]["loss"] == "ce+dice" and summary["config"]["steps"] == 20
    assert list(summary["per_class"]) == list(tiny_result.datasets.class_names)
    assert set(summary["final_losses"]) == {"total", "ce", "dice"}
    assert summary["mean_iou"] == pytest.approx(float(tiny_result.metrics["mean_iou"]))


SPELLINGS = [
    *jsl.registered_losses(),
    "ce+dice",
    "ce + dice",
    "ce:1,iou:0.5",
    "ce:1, iou:0.5",
    "dice:0.5+ce:2",
    "focal+log_iou",
    "ce:1e-1,dice:1,iou:0.25",
]


@pytest.mark.parametrize("spec", SPELLINGS)
def test_every_loss_spelling_parses(spec):
    config, _ = main.parse_args(["--loss", spec])
    assert config.loss == spec
    parsed = jsl.parse_loss_spec(spec)
    assert set(parsed) <= set(jsl.registered_losses())
    # What main parsed is what the training loop builds: a combined loss over the same terms.
    assert callable(train.make_loss_fn(config))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("cee", "Unknown loss 'cee'"),
        ("ce+dcie", "Unknown loss 'dcie'"),
        ("ce:abc", "is not a number"),
        ("ce+", "Empty term"),
        ("ce+ce", "appears twice"),
        ("", "Empty loss specification"),
    ],
)
def test_unknown_or_malformed_loss_is_rejected_clearly(spec, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main.parse_args(["--loss", spec])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert message in error
    if "Unknown" in message:
        # The message lists what the user could have typed.
        assert "registered losses are: " in error and "dice" in error


def test_parse_args_fills_the_config():
    config, args = main.parse_args(
        "--dataset shapes --steps 7 --batch-size 4 --lr 0.01 --seed 3 --bf16 "
        "--foreground-fraction 0.02 --out somewhere --no-progress".split()
    )
    assert (config.dataset, config.steps, config.batch_size, config.seed) == ("shapes", 7, 4, 3)
    assert config.lr == 0.01 and config.bf16 and config.foreground_fraction == 0.02
    assert args.out == "somewhere" and args.no_progress


def test_unknown_dataset_is_rejected(capsys):
    with pytest.raises(SystemExit):
        main.parse_args(["--dataset", "imagenet"])
    assert "invalid choice: 'imagenet'" in capsys.readouterr().err


def test_main_smoke_run_writes_outputs(tmp_path, capsys):
    out = tmp_path / "run"
    result = main.main(
        [
            *"--dataset shapes --image-size 16 --num-train 8 --num-val 4 --batch-size 4".split(),
            *"--steps 2 --eval-every 1 --loss ce:1,iou:0.5 --no-progress --hd95".split(),
            *("--out", str(out)),
        ]
    )
    assert result.history.eval_steps == [1, 2]
    assert {path.name for path in out.iterdir()} == {
        "training_curves.png",
        "predictions.png",
        "reliability.png",
        "summary.json",
    }
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["loss"] == "ce:1,iou:0.5"
    printed = capsys.readouterr().out
    assert "validation mean IoU" in printed and "| **mean** |" in printed
    assert "(foreground " in printed and "per-case mean Dice" in printed
    assert "panoptic quality" in printed and "expected calibration error" in printed
    # --no-progress: one line per evaluation, never a NaN.
    assert "step 1/2: loss " in printed and "step 2/2: loss " in printed
    assert "nan" not in printed.split("| class |")[0]
    # --hd95: a column of the table and an entry of the summary per foreground class.
    assert "| class | IoU | Dice | HD95 (px) |" in printed
    assert list(summary["hd95"]) == list(result.datasets.class_names[1:])
    assert result.metrics["hd95"].shape == (result.datasets.num_classes - 1,)


def test_help_shows_every_default(capsys):
    with pytest.raises(SystemExit):
        main.parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option, default in [
        ("--steps", "800"),
        ("--batch-size", "16"),
        ("--lr", "0.003"),
        ("--loss", "ce+dice"),
        ("--warmup-steps", "steps // 8"),
        ("--eval-every", "steps // 8"),
        ("--out", "outputs"),
    ]:
        after = text.split(f"{option} ", 2)[-1]
        assert f"(default: {default}" in after.split(" --")[0], (option, after[:200])


def test_warmup_and_evaluation_scale_with_steps():
    assert (train.TrainConfig().warmup, train.TrainConfig().evaluation_interval) == (100, 100)
    short = train.TrainConfig(steps=100)
    assert (short.warmup, short.evaluation_interval) == (12, 12)
    explicit = train.TrainConfig(steps=100, warmup_steps=5, eval_every=50)
    assert (explicit.warmup, explicit.evaluation_interval) == (5, 50)
    assert (
        train.TrainConfig(steps=2).warmup == 1
        and train.TrainConfig(steps=2).evaluation_interval == 1
    )


def test_linen_train_state_example_decreases_the_loss():
    import linen_train_state

    history = linen_train_state.main(
        "--steps 12 --num-train 32 --num-val 8 --batch-size 8 --loss ce+dice --features 8 "
        "--lr 1e-2 "
        "--quiet".split()
    )
    losses = np.asarray(history["total"])
    assert losses.shape == (12,) and np.all(np.isfinite(losses))
    assert losses[-3:].mean() < losses[:3].mean(), losses
    assert 0.0 <= history["mean_iou"] <= 1.0


def test_deep_supervision_flag_trains_the_auxiliary_heads():
    from flax import nnx

    config, _ = main.parse_args(["--deep-supervision", "--loss", "ce+dice"])
    assert config.deep_supervision
    config = train.TrainConfig(deep_supervision=True, features=(4, 8, 16), batch_size=2)
    assert isinstance(train.make_loss_fn(config), jsl.DeepSupervisionLoss)
    model = train.UNet(1, 3, features=config.features, deep_supervision=True, rngs=nnx.Rngs(0))
    rng = np.random.default_rng(0)
    images = rng.random((2, 16, 16, 1)).astype(np.float32)
    labels = rng.integers(0, 3, (2, 16, 16)).astype(np.int32)
    # MONAI's weights reach the coarse head (nnU-Net's give the coarsest level weight 0).
    loss_fn = jsl.deep_supervision(jsl.combine("ce+dice"), weights="exp")

    @nnx.jit
    def step(model):
        def compute(model):
            return loss_fn(model(images, all_levels=True), labels)

        return nnx.value_and_grad(compute, has_aux=True)(model)

    (total, parts), grads = step(model)
    assert [o.shape for o in model(images, all_levels=True)] == [(2, 16, 16, 3), (2, 8, 8, 3)]
    assert {"level0", "level1", "level1/dice"} <= set(parts)
    assert np.isclose(float(total), float(parts["level0"]) + 0.5 * float(parts["level1"]))
    assert np.abs(np.asarray(grads["aux_heads"][0]["kernel"][...])).sum() > 0
