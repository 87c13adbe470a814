"""Smoke test of the instance-metric benchmark: quick mode runs in-process and writes well-formed
outputs, the labels equal scipy's, and the lesion-wise scores equal the host reference's. No
timing is asserted."""

import json
import math

import numpy as np
import pytest

pytest.importorskip("scipy")

import scipy.ndimage as ndi

from benchmarks import instance_suite


@pytest.fixture(scope="module")
def quick_result(tmp_path_factory):
    out = tmp_path_factory.mktemp("instance_bench")
    return out, instance_suite.main(["--quick", "--out", str(out), "--tag", "_quick"])


def test_quick_run_writes_json_and_markdown(quick_result):
    out, result = quick_result
    loaded = json.loads((out / "results_instances_quick.json").read_text())
    assert loaded["quick"] is True and loaded["repeats"] == 2 and loaded["lesion_repeats"] == 2
    assert set(loaded["machine"]) >= {"date", "cpu", "backend", "device", "jax", "scipy"}
    # 8 connected-components cases of two rows each, and the lesion case's two rows.
    assert len(loaded["rows"]) == len(result["rows"]) == 18
    markdown = (out / "results_instances_quick.md").read_text()
    for heading in ("## Targets", "## Measurements", "## Lesion-wise scores per image"):
        assert heading in markdown
    assert "components serpentine columns [2, 32, 32] connectivity 1" in markdown
    assert "components smoothed noise [1, 12, 12, 12] connectivity 3" in markdown
    assert "lesion-wise Dice + HD95 [1, 48, 48, 48], 4 lesions" in markdown
    assert len(result["targets"]) == 8
    assert all(t["bound"] == 5.0 for t in result["targets"])  # the CPU bound


def test_rows_are_complete(quick_result):
    _, result = quick_result
    for row in result["rows"]:
        assert row["median_ms"] > 0 and len(row["times_ms"]) == 2
        assert math.isfinite(row["ratio"]) and row["ratio"] > 0
        if row["source"] == "jaxseg_losses":
            assert row["temp_bytes"] is None or row["temp_bytes"] > 0
    assert result["rows"][0]["compile_s"] > 0


def test_components_equal_scipy_and_report_rounds_and_jumps(quick_result):
    _, result = quick_result
    rows = [r for r in result["rows"] if r["case"].startswith("components")]
    assert len(rows) == 16
    for row in rows:
        assert row["rounds"] >= 1 and row["jumps"] >= 1, row["case"]
        if row["source"] == "jaxseg_losses":
            assert row["identical"] is True, row["case"]
    # The serpentine is one path: one component per image.
    serpentine = [r for r in rows if "serpentine" in r["case"]]
    assert {r["components"] for r in serpentine} == {2}


def test_serpentine_is_one_path():
    image = instance_suite.serpentine(1, 16)[0]
    labels = np.empty(image.shape, np.int32)
    count = ndi.label(image, output=labels)  # with ``output``, scipy returns only the count
    assert count == 1 and image.sum() == 8 * 16 + 7
    # Every pixel of a simple path has at most two neighbours, and exactly two ends have one.
    padded = np.pad(image, 1).astype(int)
    shifted = [np.roll(padded, s, axis=a) for s in (1, -1) for a in (0, 1)]
    neighbours = np.sum(shifted, axis=0)[1:-1, 1:-1]
    assert neighbours[image].max() == 2 and (neighbours[image] == 1).sum() == 2
    assert np.array_equal(instance_suite.serpentine(1, 16, transpose=True)[0], image.T)


def test_lesion_scores_agree_with_the_host_reference(quick_result):
    _, result = quick_result
    mine, host = (r for r in result["rows"] if r["case"].startswith("lesion"))
    assert mine["source"] == "jaxseg_losses" and host["source"] == "host"
    differences = mine["max_abs_difference"]
    assert differences["dice"] < 1e-5 and differences["hausdorff"] < 1e-3
    assert differences["tp"] == differences["fp"] == differences["fn"] == 0
    # Some lesions found, some missed, some false: every term of the score takes part.
    assert host["values"]["tp"][0] > 0 and host["values"]["fn"][0] > 0
    assert host["values"]["fp"][0] > 0
    assert 0 < host["values"]["dice"][0] < 1
