"""``jsl.clu``: the streamed accumulators as CLU metrics, against the plain accumulators.

One ``clu.metrics.Collection`` of the five metrics of ``cases.py`` (mIoU, mean Dice, HD95, PQ,
ECE) merged over batches in a ``jax.jit`` step; its numbers must equal those of the plain
accumulators on the same batches, with a ``[B]`` mask of images too, and on 8 devices through
``gather_from_model_output`` under ``shard_map`` and ``pmap`` (a subprocess,
``multidevice_check.py``).
"""

import importlib
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

pytest.importorskip("clu")

from clu import metrics as clu_metrics

import jaxseg_losses as jsl
import jaxseg_losses.clu
from tests.helpers import run_on_host_devices
from tests.integrations import cases

SCRIPT = Path(__file__).with_name("multidevice_check.py")
# gather_from_model_output merges the devices' states one by one (compensated sums), where one
# device sums the batch's per-image values, matched IoUs and confidences in one float32 sum:
# equal to float32 rounding. Counts are exact either way.
REGROUPED = {"hd95", "pq", "ece"}


@pytest.fixture(scope="module")
def collection():
    return cases.clu_collection()


@pytest.fixture(scope="module")
def eval_step(collection):
    @jax.jit
    def step(state, batch):
        return state.merge(collection.single_from_model_output(**batch))

    return step


def run_loop(collection, eval_step, data):
    state = collection.empty()
    for batch in data:
        state = eval_step(state, batch)
    return state, {name: np.asarray(value) for name, value in state.compute().items()}


@pytest.fixture(scope="module")
def data():
    return cases.batches(3, 2)


def test_collection_merged_in_a_jitted_step_equals_the_plain_accumulators(
    collection, eval_step, data
):
    state, actual = run_loop(collection, eval_step, data)
    expected = cases.plain_metrics(data)
    assert set(actual) == set(cases.NAMES)
    for name in cases.NAMES:
        np.testing.assert_array_equal(actual[name], expected[name], err_msg=name)
        assert np.isfinite(actual[name]), name
    values = state.compute_values()  # clu.values.Scalar of each scalar metric
    np.testing.assert_array_equal(values["iou"].value, expected["iou"])


def test_empty_collection_computes_the_empty_accumulators(collection):
    actual = collection.empty().compute()
    expected = cases.finish_plain(cases.empty_plain())
    for name in cases.NAMES:
        np.testing.assert_array_equal(actual[name], expected[name], err_msg=name)
        assert np.isnan(actual[name]), name


def test_a_mask_of_images_equals_leaving_the_images_out(collection, eval_step, data):
    """CLU's padded last batch: ``mask`` [B] leaves whole images out of every metric."""
    keep = np.array([False, True])
    padded = [{k: v for k, v in b.items() if k != "mask"} | {"mask": keep} for b in data[:2]]
    _, actual = run_loop(collection, eval_step, padded)
    kept = [{k: v[1:] for k, v in b.items() if k != "mask"} for b in data[:2]]
    expected = cases.plain_metrics(kept)
    for name in cases.NAMES:
        np.testing.assert_array_equal(actual[name], expected[name], err_msg=name)


def test_create_returns_a_metric_class_that_is_a_pytree(data):
    IoU = jsl.clu.ConfusionMatrix.create(num_classes=cases.C, score=("mean_iou", "iou"))
    assert issubclass(IoU, jsl.clu.ConfusionMatrix)
    assert issubclass(IoU, clu_metrics.Metric)
    assert IoU.__name__ == "ConfusionMatrix"
    batch = data[0]
    state = IoU.from_model_output(logits=batch["logits"], labels=batch["labels"], loss=0.0)
    leaves = jax.tree.leaves(state)
    assert len(leaves) == 2  # the matrix (its exact limbs) and the copies count
    expected = jsl.metrics.ConfusionMatrixAccumulator.empty(cases.C)
    expected = expected.update(batch["logits"], batch["labels"]).compute()
    again = jax.tree.unflatten(jax.tree.structure(state), leaves).merge(IoU.empty())
    for key in ("mean_iou", "iou"):
        np.testing.assert_array_equal(again.compute()[key], expected[key], err_msg=key)
    inline = clu_metrics.Collection.create_collection(iou=state)
    np.testing.assert_array_equal(inline.compute()["iou"]["iou"], expected["iou"])


def test_the_classes_without_create_refuse_to_start():
    with pytest.raises(TypeError, match=r"ConfusionMatrix\.create\(\.\.\.\)"):
        jsl.clu.ConfusionMatrix.empty()
    with pytest.raises(TypeError, match=r"PerImage\.create\(\.\.\.\)"):
        jsl.clu.PerImage.from_model_output(logits=None, labels=None)


def test_bad_options_raise_at_create_naming_the_option():
    with pytest.raises(ValueError, match="`score`"):
        jsl.clu.ConfusionMatrix.create(num_classes=3, score="miou")
    with pytest.raises(ValueError, match="`reduction`"):
        jsl.clu.PerImage.create(cases.hd95, num_classes=3, reduction="none")
    with pytest.raises(TypeError, match="`class_weights`"):
        jsl.clu.PerImage.create(cases.hd95, num_classes=3, class_weights="support")
    with pytest.raises(ValueError, match="`metric`"):
        jsl.clu.PanopticQuality.create(num_classes=3, max_instances=4, metric="f1")
    with pytest.raises(ValueError, match="`norm`"):
        jsl.clu.CalibrationError.create(norm="l3")


def test_import_without_clu_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "clu", None)
    monkeypatch.delitem(sys.modules, "jaxseg_losses.clu")
    with pytest.raises(ImportError, match=r"pip install 'jaxseg_losses\[clu\]'"):
        importlib.import_module("jaxseg_losses.clu")


@pytest.fixture(scope="module")
def on_eight_devices():
    return run_on_host_devices([str(SCRIPT), "clu"], devices=8)


@pytest.mark.parametrize("mode", ["clu_shard_map", "clu_pmap"])
def test_gather_from_model_output_on_eight_devices_gives_the_one_device_numbers(
    on_eight_devices, mode
):
    """One image per device, two batches, the collection merged on every device."""
    expected = on_eight_devices["reference"]
    actual = on_eight_devices[mode]
    for name in cases.NAMES:
        if name in REGROUPED:
            np.testing.assert_allclose(actual[name], expected[name], rtol=2**-22, err_msg=name)
        else:
            assert actual[name] == expected[name], name
