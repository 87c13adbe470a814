"""Smoke test of the geometry-loss benchmark: quick mode runs in-process and writes well-formed
outputs; the boundary loss with its maps passed in has the in-step value. No timing is asserted."""

import json
import math

import pytest

from benchmarks import geometry_suite


@pytest.fixture(scope="module")
def quick_result(tmp_path_factory):
    out = tmp_path_factory.mktemp("geometry_bench")
    argv = ["--quick", "--cases", "vessels,voc,voc_objects", "--out", str(out), "--tag", "_quick"]
    return out, geometry_suite.main(argv)


def test_quick_run_writes_json_and_markdown(quick_result):
    out, result = quick_result
    loaded = json.loads((out / "results_geometry_quick.json").read_text())
    assert loaded["quick"] is True and loaded["repeats"] == 2
    assert len(loaded["rows"]) == len(result["rows"]) == 4 + 6 + 6
    markdown = (out / "results_geometry_quick.md").read_text()
    assert "## Targets" in markdown and "## Measurements (fwd+bwd)" in markdown
    assert "| vessels [2, 32, 32, 2] | **jsl.cldice_loss** |" in markdown
    # Every target of the two cases is checked; a missed one names what was tried.
    assert len(result["targets"]) == 8
    for target in result["targets"]:
        assert (target["tried"] is None) == target["met"]
        if not target["met"]:
            assert f"- **{target['tried']}**:" in markdown


def test_rows_are_complete_and_maps_passed_in_change_nothing(quick_result):
    _, result = quick_result
    for row in result["rows"]:
        assert math.isfinite(row["value"]) and row["grad_finite"], row["impl"]
        assert row["fwd_bwd_ms"] > 0 and math.isfinite(row["ratio_floor"])
    for case in ("voc", "voc_objects"):
        values = {r["impl"]: r["value"] for r in result["rows"] if r["case"] == case}
        in_step = values["jsl.boundary_loss"]
        assert values["jsl.boundary_loss, maps passed in"] == pytest.approx(in_step, rel=1e-6)
