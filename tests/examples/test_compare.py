"""Tests for examples/segmentation/compare_losses.py: weights, summaries, and a tiny full run."""

import json
import sys

import jax
import numpy as np
import pytest

from tests.helpers import EXAMPLES

sys.path.insert(0, str(EXAMPLES / "segmentation"))

import compare_losses


@pytest.fixture(autouse=True)
def _strict_jax():
    # Overrides tests/conftest.py's fixture of the same name for this module: optax's Adam
    # raises Python-float decay rates to the int32 step count, which strict dtype promotion
    # rejects. Rank promotion still raises.
    with jax.numpy_rank_promotion("raise"), jax.numpy_dtype_promotion("standard"):
        yield


def test_class_weights_are_inverse_sqrt_frequency_with_unit_mean_pixel_weight():
    labels = np.zeros((1, 10, 10), np.int32)
    labels[0, :1, :4] = 1  # 4 pixels
    labels[0, 1, :1] = 2  # 1 pixel
    labels[0, 9, 9] = 255  # ignored: counts nowhere
    weights = compare_losses.class_weights(labels, 4)
    counts = np.array([94, 4, 1, 1])  # class 3 is absent and counts as one pixel
    frequency = counts / counts.sum()
    expected = 1 / np.sqrt(frequency)
    expected /= np.sum(frequency * expected)
    np.testing.assert_allclose(weights, expected, rtol=1e-6)
    assert weights.dtype == np.float32
    np.testing.assert_allclose(weights[1] / weights[0], np.sqrt(94 / 4), rtol=1e-6)


def test_foreground_iou_skips_background_and_absent_classes():
    assert compare_losses.foreground_iou(np.array([0.9, 0.2, np.nan, 0.4])) == pytest.approx(0.3)
    assert np.isnan(compare_losses.foreground_iou(np.array([1.0, np.nan])))


def _record(dataset, loss, seed, fg, miou):
    return {"dataset": dataset, "loss": loss, "seed": seed, "foreground_iou": fg, "mean_iou": miou}


def test_markdown_table_reports_mean_and_population_std_over_seeds():
    runs = [
        _record("shapes", "ce", 0, 0.1, 0.5),
        _record("shapes", "ce", 1, 0.3, 0.7),
        _record("shapes", "ce+dice", 0, 0.4, 0.6),
        _record("shapes", "ce+dice", 1, 0.4, 0.6),
    ]
    table = compare_losses.markdown_table(runs)
    assert "| shapes | CE | 0.200 ± 0.100 | 0.600 ± 0.100 | 0.100 |" in table
    assert "| shapes | CE + Dice | 0.400 ± 0.000 | 0.600 ± 0.000 | 0.400 |" in table
    assert "over 2 seeds (0, 1)" in table


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--losses", "ce", "bcel"], "--losses 'bcel': Unknown loss 'bcel'"),
        (["--losses", "ce:x"], "is not a number"),
        (["--datasets", "pets"], "invalid choice: 'pets'"),
        (["--steps", "shapes:10"], "no count for digits"),
        (["--steps", "many"], "--steps must be a number"),
        (["--features", "8,x"], "--features must be comma-separated integers"),
    ],
)
def test_parse_args_rejects_bad_options(argv, message, capsys):
    with pytest.raises(SystemExit):
        compare_losses.parse_args(argv)
    assert message in capsys.readouterr().err


def test_parse_args_steps_per_dataset():
    args = compare_losses.parse_args(["--steps", "shapes:5,digits:7", "--features", "4,8"])
    assert args.steps == {"shapes": 5, "digits": 7} and args.features == (4, 8)
    assert compare_losses.parse_args(["--steps", "3"]).steps == {"shapes": 3, "digits": 3}
    args = compare_losses.parse_args(["--datasets", "digits", "--losses", "wce", "ce:1,iou:0.5"])
    assert args.datasets == ["digits"] and args.losses == ["wce", "ce:1,iou:0.5"]


def test_tiny_comparison_writes_table_chart_and_runs(tmp_path, capsys):
    out = tmp_path / "comparison"
    paths = compare_losses.main(
        [
            *"--datasets shapes --losses wce ce:1+dice:2 --seeds 1 --steps 2".split(),
            *("--batch-size", "4"),
            *"--features 4,8 --num-train 8 --num-val 4 --foreground-fraction 0.05".split(),
            *("--out", str(out)),
        ]
    )
    assert paths["chart"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = paths["table"].read_text()
    assert "| shapes | weighted CE |" in table and "| shapes | ce:1+dice:2 |" in table
    record = json.loads(paths["runs"].read_text())
    assert record["settings"]["budget"]["steps"]["shapes"] == 2
    runs = record["runs"]
    assert [(run["loss"], run["seed"]) for run in runs] == [("wce", 0), ("ce:1+dice:2", 0)]
    assert len(runs[0]["class_weights"]) == 3
    # Rare foreground: the background weighs least.
    assert runs[0]["class_weights"][0] == min(runs[0]["class_weights"])
    for run in runs:
        assert 0.0 <= run["mean_iou"] <= 1.0 and np.isfinite(run["final_loss"])
    assert "weighted CE" in capsys.readouterr().out
