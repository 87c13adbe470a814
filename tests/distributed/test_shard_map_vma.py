"""Every loss (value and gradient) and every metric under ``jax.shard_map`` with
``check_vma=True``, its default, equal to the same function on each sample alone.

JAX fixes its device count when it starts, so ``vma_check.py`` runs in a subprocess with 8 CPU
devices and prints the differences as JSON.
"""

import pytest

from tests.helpers import run_on_host_devices
from tests.metrics.test_metric_rules import METRIC_CASES
from tests.rules.cases import rule_cases

# Panoptic matching below IoU 0.5 calls optax's Hungarian algorithm, whose loop starts from
# constants: under check_vma it needs check_vma=False (documented in instance_metrics.md).
REFUSED = {"panoptic_counts/pairs, stuff, below 0.5"}


@pytest.fixture(scope="module")
def measured():
    return run_on_host_devices(["-m", "tests.distributed.vma_check"], devices=8)


def test_every_loss_runs_sharded_with_check_vma(measured):
    expected = {case.name for case in rule_cases() if case.accumulate is None}
    assert set(measured["losses"]) == expected
    for name, difference in measured["losses"].items():
        assert not isinstance(difference, str), (name, difference)
        assert difference <= 1e-6, name


def test_every_metric_runs_sharded_with_check_vma(measured):
    assert set(measured["metrics"]) == set(METRIC_CASES)
    for name, difference in measured["metrics"].items():
        if name in REFUSED:
            assert "carry" in difference, (name, difference)
            continue
        assert not isinstance(difference, str), (name, difference)
        assert difference <= 1e-6, name
