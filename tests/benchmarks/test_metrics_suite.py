"""Smoke test of the metrics benchmark: quick mode writes well-formed results (no timings)."""

import json
import math

import jax
import pytest

from benchmarks import metrics_suite


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("metrics_bench")
    return out, metrics_suite.main(["--quick", "--out", str(out)])


def test_quick_run_writes_json_and_markdown(quick):
    out, result = quick
    stem = f"results_metrics_{jax.default_backend()}"
    loaded = json.loads((out / f"{stem}.json").read_text())
    assert loaded["quick"] is True and loaded["repeats"] == 2
    assert loaded["case"] == {"shape": [2, 32, 32], "num_classes": 5}
    assert set(loaded["machine"]) >= {"date", "cpu", "backend", "device", "jax"}
    markdown = (out / f"{stem}.md").read_text()
    for row in result["rows"]:
        assert f"| {row['impl']} |" in markdown


def test_rows_are_complete_and_the_counts_are_right(quick):
    _, result = quick
    assert result["check"]["every_class_sums_to_the_counted_pixels"]
    assert 0 < result["check"]["pixels_counted"] <= 2 * 32 * 32
    names = [row["impl"] for row in result["rows"]]
    assert names[:2] == ["read labels", "read logits"]
    assert "overlap_counts + IoU, Dice per image, per-case and pooled means" in names
    for row in result["rows"]:
        assert row["ms"] > 0 and row["compile_s"] > 0, row["impl"]
        assert math.isfinite(row["ratio_to_floor"]) and row["ratio_to_floor"] > 0
        assert row["floor"] in ("read labels", "read logits")
