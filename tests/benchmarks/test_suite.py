"""Smoke test of the benchmark suite: quick mode runs in-process and writes well-formed outputs.

No timing is asserted (the machine is shared and noisy); only the structure of the table, the JSON
and the plot, and that every implementation produced a finite loss and gradient.
"""

import json
import math

import pytest

pytest.importorskip("optax")

from benchmarks import baselines, suite


@pytest.fixture(scope="module")
def quick_result(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    # float32 only: the bfloat16 rows run the same code on converted logits, and each dtype
    # compiles every implementation again.
    argv = ["--quick", "--cases", "voc", "--dtypes", "float32", "--out", str(out)]
    result = suite.main([*argv, "--peak-gbps", "100"])
    return out, result


def test_quick_run_writes_json_markdown_and_plot(quick_result):
    out, result = quick_result
    loaded = json.loads((out / "results.json").read_text())
    assert loaded["quick"] is True
    assert loaded["repeats"] == 2
    assert set(loaded["machine"]) >= {"date", "cpu", "backend", "device", "jax"}
    assert len(loaded["rows"]) == len(result["rows"])
    markdown = (out / "results.md").read_text()
    assert "## Targets" in markdown
    assert "voc [2, 16, 16, 5] softmax float32" in markdown
    assert "% of peak" in markdown
    if result["plot"] is not None:  # matplotlib is optional (the `bench` extra)
        assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rows_cover_every_family_and_are_complete(quick_result):
    _, result = quick_result
    rows = result["rows"]
    for dtype in ("float32",):
        families = {(r["family"], r["source"]) for r in rows if r["dtype"] == dtype}
        # The baselines exist whatever the library holds.
        for family in ("iou", "dice", "tversky", "ce", "focal", "ce+dice", "lovasz"):
            assert (family, "plain_jnp") in families
        assert ("floor", "floor") in families
        for family in ("dice", "ce", "focal", "ce+dice"):
            assert (family, "optax") in families
        assert ("dice", "jaxseg_losses") in families
        # The reference case (the only one here) holds, in float32, the families measured
        # there only.
        for family in baselines.REFERENCE_ONLY:
            assert ((family, "jaxseg_losses") in families) == (dtype == suite.DTYPES[0]), family
    for row in rows:
        assert math.isfinite(row["value"]), row["impl"]
        assert row["grad_finite"], row["impl"]
        assert row["fwd_ms"] > 0 and row["fwd_bwd_ms"] > 0
        assert row["compile_fwd_s"] > 0 and row["compile_fwd_bwd_s"] > 0
        assert row["achieved_gbps"] > 0
        assert row["dtype"] == "float32"
        assert row["logits_bytes"] == 2 * 16 * 16 * 5 * 4
        if row["family"] in baselines.OPTAX_REFERENCE:
            assert row["ratio_optax"] is not None and row["ratio_optax"] > 0
        assert row["ratio_floor"] is not None and row["ratio_floor"] > 0
        assert (
            row["ratio_plain_jnp"] is not None
            or row["source"] == "floor"
            or row["family"] in baselines.NO_PLAIN_JNP
        )


def test_library_losses_agree_with_plain_jnp(quick_result):
    """Same meaning, same value: the benchmark compares like with like."""
    _, result = quick_result
    rows = result["rows"]
    plain = {(r["dtype"], r["family"]): r["value"] for r in rows if r["source"] == "plain_jnp"}
    for row in rows:
        if row["source"] == "jaxseg_losses" and row["family"] not in baselines.NO_PLAIN_JNP:
            expected = plain[(row["dtype"], row["family"])]
            assert row["value"] == pytest.approx(expected, rel=1e-4, abs=1e-5), row["impl"]


def test_targets_are_checked_on_the_reference_case(quick_result):
    _, result = quick_result
    names = [t["target"] for t in result["targets"]]
    assert "jsl.dice_loss / floor" in names
    assert 'jsl.combine("ce+dice") / jsl.dice_loss' in names
    assert "jsl.cross_entropy_loss / optax CE" in names
    for target in result["targets"]:
        assert target["met"] == (target["achieved"] <= target["bound"])
