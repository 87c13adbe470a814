"""Smoke test of the surface-metric benchmark: quick mode runs in-process and writes well-formed
outputs, and every implementation computes the same values. No timing is asserted."""

import json
import math

import pytest

pytest.importorskip("scipy")

from benchmarks import surface_suite


@pytest.fixture(scope="module")
def quick_result(tmp_path_factory):
    out = tmp_path_factory.mktemp("surface_bench")
    return out, surface_suite.main(["--quick", "--out", str(out), "--tag", "_quick"])


def test_quick_run_writes_json_and_markdown(quick_result):
    out, result = quick_result
    loaded = json.loads((out / "results_surface_quick.json").read_text())
    assert loaded["quick"] is True and loaded["repeats"] == 2
    assert set(loaded["machine"]) >= {"date", "cpu", "backend", "device", "jax", "scipy"}
    assert len(loaded["rows"]) == len(result["rows"]) == 10
    markdown = (out / "results_surface_quick.md").read_text()
    assert "## Targets" in markdown and "## Measurements" in markdown
    assert "edt balls [24, 24, 24]" in markdown and "hd95 [1, 16, 16, 16] 3 classes" in markdown
    assert "hd95 [2, 32, 32] 3 classes" in markdown
    assert len(result["targets"]) == 4


def test_rows_are_complete_and_implementations_agree(quick_result):
    _, result = quick_result
    for row in result["rows"]:
        assert row["median_ms"] > 0 and len(row["times_ms"]) == 2
        assert math.isfinite(row["ratio"]) and row["ratio"] > 0
        if row["source"] == "jaxseg_losses":
            assert row["temp_bytes"] is None or row["temp_bytes"] > 0
        if "max_abs_error" in row:
            assert row["max_abs_error"] < 1e-4, row["case"]
        if "max_abs_difference" in row:
            assert row["max_abs_difference"] < 1e-4, row["impl"]
    hd95 = [r for r in result["rows"] if r["case"].startswith("hd95")]
    assert {r["source"] for r in hd95} == {"jaxseg_losses", "host"} and len(hd95) == 6
    assert any(math.isfinite(v) for v in hd95[0]["values"][0])
    assert result["rows"][0]["compile_s"] > 0
