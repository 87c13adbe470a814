"""``jsl.nnx``: the streamed accumulators as Flax NNX metrics, against the plain accumulators.

One ``nnx.MultiMetric`` of the five metrics of ``cases.py`` (mIoU, mean Dice, HD95, PQ, ECE)
runs an ``nnx.jit`` eval loop; its numbers must equal those of the plain accumulators on the
same batches, after a ``reset`` too, with a ``[B]`` mask of images, and on 8 devices with
``axis_name`` (a subprocess, ``multidevice_check.py``).
"""

import functools
import importlib
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("flax")

from flax import nnx

import jaxseg_losses as jsl
import jaxseg_losses.nnx
from jaxseg_losses import _streams
from tests.helpers import run_on_host_devices
from tests.integrations import cases

SCRIPT = Path(__file__).with_name("multidevice_check.py")
# Summed over devices, a batch's float sums (HD95 per image, matched IoUs, confidences) are
# grouped otherwise than over the whole batch on one device: equal to float32 rounding.
REGROUPED = {"hd95", "pq", "ece"}


@nnx.jit
def eval_step(metrics, batch):
    metrics.update(**batch)


def run_loop(metrics, data):
    for batch in data:
        eval_step(metrics, batch)
    return {name: np.asarray(value) for name, value in metrics.compute().items()}


@pytest.fixture(scope="module")
def data():
    return cases.batches(3, 2)


@pytest.fixture(scope="module")
def loop(data):
    """The metrics after one loop, their numbers, and those after a reset and a second loop."""
    metrics = cases.nnx_metrics()
    first = run_loop(metrics, data)
    metrics.reset()
    emptied = {name: np.asarray(value) for name, value in metrics.compute().items()}
    second = run_loop(metrics, data)
    return {"first": first, "emptied": emptied, "second": second}


def test_multimetric_under_nnx_jit_equals_the_plain_accumulators(loop, data):
    expected = cases.plain_metrics(data)
    assert set(loop["first"]) == set(cases.NAMES)
    for name in cases.NAMES:
        np.testing.assert_array_equal(loop["first"][name], expected[name], err_msg=name)
    assert np.all(np.isfinite([loop["first"][name] for name in cases.NAMES]))


def test_pooled_miou_is_that_of_every_pixel_at_once_not_a_mean_of_batches(loop, data):
    """The confusion matrix of all the batches together gives the streamed mIoU exactly."""

    @jax.jit
    def miou(batch):
        matrix = jsl.metrics.confusion_matrix(
            batch["logits"], batch["labels"], cases.C, ignore_index=cases.IGNORE,
            mask=batch["mask"],
        )  # fmt: skip
        return jsl.metrics.mean_iou(matrix)

    stacked = {k: np.concatenate([b[k] for b in data]) for k in ("logits", "labels", "mask")}
    np.testing.assert_array_equal(loop["first"]["iou"], miou(stacked))
    per_batch = [miou({k: b[k] for k in stacked}) for b in data]
    assert abs(float(np.mean(per_batch)) - float(loop["first"]["iou"])) > 1e-4


def test_reset_empties_every_metric_and_a_second_loop_repeats_the_first(loop):
    confusion, per_image, panoptic, calibration = cases.empty_plain()
    empty = cases.finish_plain((confusion, per_image, panoptic, calibration))
    for name in cases.NAMES:
        np.testing.assert_array_equal(loop["emptied"][name], empty[name], err_msg=name)
        assert np.isnan(loop["emptied"][name]), name  # no data: every metric is undefined
        np.testing.assert_array_equal(loop["second"][name], loop["first"][name], err_msg=name)


def test_a_mask_of_images_equals_leaving_the_images_out(data):
    """``mask`` [B] (padded examples) leaves whole images out of every metric."""
    metrics = cases.nnx_metrics()
    keep = np.array([True, False])
    padded = [{k: v for k, v in b.items() if k != "mask"} | {"mask": keep} for b in data[:2]]
    actual = run_loop(metrics, padded)
    kept = [{k: v[:1] for k, v in b.items() if k != "mask"} for b in data[:2]]
    expected = cases.plain_metrics(kept)
    for name in cases.NAMES:
        np.testing.assert_array_equal(actual[name], expected[name], err_msg=name)


def test_scores_of_a_tuple_none_or_a_function_of_the_matrix(data):
    batch = data[0]
    acc = jsl.metrics.ConfusionMatrixAccumulator.empty(cases.C).update(
        batch["logits"], batch["labels"], ignore_index=cases.IGNORE
    )
    foreground = functools.partial(jsl.metrics.mean_iou, include_background=False)
    options = {"num_classes": cases.C, "ignore_index": cases.IGNORE}
    metrics = nnx.MultiMetric(
        pair=jsl.nnx.ConfusionMatrix(score=("mean_iou", "iou"), **options),
        every=jsl.nnx.ConfusionMatrix(score=None, **options),
        foreground=jsl.nnx.ConfusionMatrix(score=foreground, **options),
    )
    metrics.update(logits=batch["logits"], labels=batch["labels"], loss=jnp.ones(()))
    results = metrics.compute()
    expected = acc.compute()
    assert set(results["pair"]) == {"mean_iou", "iou"}
    np.testing.assert_array_equal(results["pair"]["iou"], expected["iou"])
    assert set(results["every"]) == set(expected) == set(_streams.CONFUSION_SCORES)
    for key, value in expected.items():
        np.testing.assert_array_equal(results["every"][key], value, err_msg=key)
    np.testing.assert_array_equal(results["foreground"], foreground(acc.matrix))


def test_per_image_names_argnames_and_the_other_outputs(data):
    """A function returning several per-image arrays (a NamedTuple), inputs read from other
    keywords, and more than one panoptic / calibration value."""

    def lesions(predictions, labels, mask=None):
        return jsl.metrics.lesion_wise_scores(  # a LesionScores: its integer counts unread
            predictions, labels, num_classes=cases.C, max_lesions=8, dilation_iterations=0,
            volume_threshold=0.0, ignore_index=cases.IGNORE, mask=mask,
        )  # fmt: skip

    metric = jsl.nnx.PerImage(
        lesions, num_classes=cases.C, names=("dice", "hausdorff"), include_background=False,
        reduction="mean_batch", argnames=("segmentation", "truth"),
    )  # fmt: skip
    quality = jsl.nnx.PanopticQuality(
        **cases.panoptic_options(), metric=("sq", "rq"), reduction="none",
        argnames=("segmentation", "truth"),
    )  # fmt: skip
    calibration = jsl.nnx.CalibrationError(
        num_bins=cases.NUM_BINS, norm=("l2", "max"), ignore_index=cases.IGNORE
    )
    batch = data[0]

    @nnx.jit
    def step(metric, quality, calibration, batch):
        outputs = {"segmentation": batch["predictions"], "truth": batch["labels"]}
        metric.update(**outputs, logits=batch["logits"])
        quality.update(**outputs, logits=batch["logits"])
        calibration.update(logits=batch["logits"], labels=batch["labels"])

    @jax.jit
    def plain(batch):
        scores = lesions(batch["predictions"], batch["labels"])
        acc = jsl.metrics.PerImageAccumulator.empty(
            ("dice", "hausdorff"), cases.C, include_background=False
        ).update({"dice": scores.dice, "hausdorff": scores.hausdorff})
        counts = jsl.metrics.panoptic_counts(
            batch["predictions"], batch["labels"], **cases.panoptic_options()
        ).sum(axis=0)
        bins = jsl.metrics.CalibrationAccumulator.empty(cases.NUM_BINS).update(
            batch["logits"], batch["labels"], ignore_index=cases.IGNORE
        )
        return acc, counts, bins

    step(metric, quality, calibration, batch)
    acc, counts, bins = plain(batch)
    expected = acc.compute(reduction="mean_batch")
    for name in ("dice", "hausdorff"):
        np.testing.assert_array_equal(metric.compute()[name], expected[name], err_msg=name)
    np.testing.assert_array_equal(quality.compute()["sq"], counts.sq())
    np.testing.assert_array_equal(quality.compute()["rq"], counts.rq())
    np.testing.assert_array_equal(calibration.compute()["l2"], bins.compute(norm="l2"))
    np.testing.assert_array_equal(calibration.compute()["max"], bins.compute(norm="max"))


def test_per_image_ignore_inf_reads_the_finite_values():
    """HD95 is inf where a class is in one mask only; ``ignore_inf`` averages the others."""
    values = jnp.array([[2.0, jnp.inf], [4.0, 1.0], [jnp.nan, 3.0]])
    options = {"num_classes": 2, "reduction": "mean_batch", "argnames": ("values", "labels")}
    every = jsl.nnx.PerImage(lambda v, _: v, **options)
    finite = jsl.nnx.PerImage(lambda v, _: v, ignore_inf=True, **options)
    for metric in (every, finite):
        metric.update(values=values[:2], labels=None)
        metric.update(values=values[2:], labels=None)
    np.testing.assert_array_equal(every.compute(), [3.0, np.inf])
    np.testing.assert_array_equal(finite.compute(), [3.0, 2.0])


def test_update_names_the_keywords_it_reads():
    metric = jsl.nnx.ConfusionMatrix(num_classes=3)
    with pytest.raises(TypeError, match=r"reads the keywords \['logits', 'labels'\].*'labels'"):
        metric.update(logits=jnp.zeros((1, 2, 3)), targets=jnp.zeros((1, 2), jnp.int32))


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: jsl.nnx.ConfusionMatrix(num_classes=3, score="miou"), ValueError, "`score`"),
        (lambda: jsl.nnx.ConfusionMatrix(num_classes=1), ValueError, "num_classes"),
        (lambda: jsl.nnx.ConfusionMatrix(num_classes=3, argnames="logits"), TypeError, "argnames"),
        (lambda: jsl.nnx.ConfusionMatrix(num_classes=3, argnames=("a", "a")), ValueError, "argn"),
        (lambda: jsl.nnx.PerImage(cases.hd95, num_classes=3, reduction="none"), ValueError, "red"),
        (lambda: jsl.nnx.PerImage("hd95", num_classes=3), TypeError, "`fn`"),
        (lambda: jsl.nnx.PanopticQuality(num_classes=3, max_instances=0), ValueError, "max_inst"),
        (lambda: jsl.nnx.PanopticQuality(num_classes=3, max_instances=4, metric="f1"), ValueError,
         "`metric`"),
        (lambda: jsl.nnx.CalibrationError(norm="l3"), ValueError, "`norm`"),
        (lambda: jsl.nnx.CalibrationError(activation="relu"), ValueError, "activation"),
    ],
)  # fmt: skip
def test_bad_options_raise_at_construction_naming_the_option(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_import_without_flax_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "flax", None)
    monkeypatch.delitem(sys.modules, "jaxseg_losses.nnx")
    with pytest.raises(ImportError, match=r"pip install 'jaxseg_losses\[nnx\]'"):
        importlib.import_module("jaxseg_losses.nnx")


def test_the_core_imports_and_runs_without_flax_and_clu():
    code = (
        "import sys\n"
        "sys.modules['flax'] = sys.modules['clu'] = None\n"
        "import jax.numpy as jnp, jaxseg_losses as jsl\n"
        "acc = jsl.metrics.ConfusionMatrixAccumulator.empty(2)\n"
        "print(float(acc.update(jnp.array([[0, 1]]), jnp.array([[0, 1]])).compute()['mean_iou']))\n"
        "for name in ('nnx', 'clu'):\n"
        "    try:\n"
        "        __import__('jaxseg_losses.' + name)\n"
        "    except ImportError as error:\n"
        "        print(error)\n"
    )
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "1.0"
    assert "pip install 'jaxseg_losses[nnx]'" in lines[1]
    assert "pip install 'jaxseg_losses[clu]'" in lines[2]


@pytest.fixture(scope="module")
def on_eight_devices():
    return run_on_host_devices([str(SCRIPT), "nnx"], devices=8)


def test_axis_name_on_eight_devices_gives_the_one_device_numbers(on_eight_devices):
    """nnx.shard_map under nnx.jit, one image per device, two batches."""
    expected = on_eight_devices["reference"]
    actual = on_eight_devices["nnx_shard_map"]
    for name in cases.NAMES:
        if name in REGROUPED:
            np.testing.assert_allclose(actual[name], expected[name], rtol=2**-22, err_msg=name)
        else:
            assert actual[name] == expected[name], name
