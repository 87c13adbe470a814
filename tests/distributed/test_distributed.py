"""Losses, metrics, micro-batching and the example's data-parallel helpers on 1, 2 and 8 devices.

JAX fixes its device count when it starts, so one subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=8`` runs ``distributed_check.py``, which
computes everything and prints the relative differences against the whole batch on one device
as JSON; the tests here assert on them. (One launch: importing JAX and compiling dominate.)
"""

from pathlib import Path

import pytest

from tests.helpers import run_on_host_devices

pytest.importorskip("flax")
pytest.importorskip("optax")

SCRIPT = Path(__file__).with_name("distributed_check.py")
# The bound for float32: relative difference at most 1e-6 in values and gradients.
TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def measured():
    return run_on_host_devices([str(SCRIPT)], devices=8)


def test_jit_with_sharded_batch_equals_one_device(measured):
    """No axis_name: jax.jit over a batch sharded on 2 and 8 devices, every loss and metric."""
    for n, result in measured["jit"].items():
        assert result["value"] <= TOLERANCE, (n, result)
        assert result["grad"] <= TOLERANCE, (n, result)
        assert result["grad_sharded"], n
        assert result["metrics"] == 0.0, (n, result)
    assert len(measured["jit"]["8"]["losses"]) >= 10


def test_axis_name_sums_statistics_across_the_mapped_axis(measured):
    """shard_map and pmap: global value on every device, the confusion matrix summed."""
    for key, result in measured["mapped"].items():
        assert result["value"] <= TOLERANCE, (key, result)
        assert result["metrics"] == 0.0, (key, result)
    assert {"shard_map_2", "shard_map_8", "shard_map_no_vma_8", "pmap_8"} <= set(measured["mapped"])


def test_gradients_with_axis_name_follow_jax_psum_transpose(measured):
    """The per-device loss's gradient w.r.t. local logits, concatenated over devices, is the
    single-device gradient under shard_map (check_vma=True) and n times it under pmap and
    check_vma=False, where JAX differentiates the sum of the n devices' identical losses."""
    for key, result in measured["mapped"].items():
        assert result["grad_over_expected_scale"] <= TOLERANCE, (key, result)
    assert measured["mapped"]["shard_map_8"]["expected_grad_scale"] == 1
    assert measured["mapped"]["pmap_8"]["expected_grad_scale"] == 8


def test_pmean_of_parameter_gradients_is_exact_in_every_mode(measured):
    for mode, result in measured["param_recipe"].items():
        assert result["value"] <= TOLERANCE, (mode, result)
        assert result["grad"] <= TOLERANCE, (mode, result)


def test_microbatches_on_sharded_batches_equal_the_full_batch(measured):
    assert len(measured["microbatch"]) == 3
    for key, result in measured["microbatch"].items():
        assert result["value"] <= TOLERANCE, (key, result)
        assert result["grad"] <= TOLERANCE, (key, result)


def test_averaging_per_device_batch_dice_is_wrong(measured):
    """The pitfall the README quotes: it is not a rounding error."""
    pitfall = measured["pitfall"]
    assert pitfall["value_rel_error"] > 1e-3
    assert pitfall["grad_rel_error"] > 1e-2


def test_example_sgd_loss_curve_on_8_devices_matches_1_device(measured):
    one, eight = measured["sgd_curves"]["1"], measured["sgd_curves"]["8"]
    assert len(one) == len(eight) == 4
    assert one[-1] < one[0]  # it trains
    for a, b in zip(one, eight, strict=True):
        assert abs(a - b) <= 1e-5 * abs(a), (one, eight)
