"""Every loss and metric inside ``jax.shard_map`` with its default ``check_vma=True``.

Under ``check_vma`` JAX tracks which mapped axes each value varies over, and refuses a loop
whose carry starts invariant (a constant) but comes out varying, or a ``cond`` whose branches
differ so. Each rule case of the losses (``tests/rules/cases.py``, value and gradient) and each
metric case of ``tests/metrics/test_metric_rules.py`` runs here on a batch sharded one sample
per device, and is compared with the same function on each sample alone on one device. Prints
JSON: per case the largest relative difference, or the error that refused it.
"""

import json


def main() -> None:
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import PartitionSpec

    from tests.metrics import test_metric_rules as metric_rules
    from tests.rules import cases as loss_rules

    def largest_difference(sharded, alone) -> float:
        worst = 0.0
        for a, b in zip(jax.tree.leaves(sharded), jax.tree.leaves(alone), strict=True):
            a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
            same = (a == b) | (np.isnan(a) & np.isnan(b))
            scale = max(float(np.max(np.abs(np.where(np.isfinite(b), b, 0.0)))), 1e-30)
            gap = np.where(same, 0.0, np.abs(a - b))
            worst = max(worst, float(np.max(gap, initial=0.0)) / scale)
        return worst

    def compare(fn, batch, size: int) -> float | str:
        """``fn`` per device on a batch of ``size`` samples against each sample alone."""
        mesh = jax.make_mesh((size,), ("d",), devices=jax.devices()[:size])
        stacked = jax.shard_map(
            lambda *args: jax.tree.map(lambda v: v[None], fn(*args)),
            mesh=mesh,
            in_specs=PartitionSpec("d"),
            out_specs=PartitionSpec("d"),
        )
        placed = jax.device_put(batch, jax.NamedSharding(mesh, PartitionSpec("d")))
        try:
            sharded = jax.jit(stacked)(*placed)
        except Exception as error:  # reported, and the test fails on it
            return f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
        alone = jax.jit(fn)
        samples = [alone(*jax.tree.map(lambda v, i=i: v[i : i + 1], batch)) for i in range(size)]
        expected = jax.tree.map(lambda *v: jnp.stack(v), *samples)
        return largest_difference(sharded, expected)

    results: dict = {"losses": {}, "metrics": {}}
    for case in loss_rules.rule_cases():
        if case.accumulate is not None:
            continue  # micro-batch accumulation: its own scan, checked in distributed_check.py
        x, y, m = case.data(0)

        def value_and_grad(x, y, m, case=case):
            return case.value_and_grad(x, y, mask=m, ignore_index=255)

        results["losses"][case.name] = compare(value_and_grad, (x, y, m), x.shape[0])
    inputs = metric_rules.make_inputs(0, ignore=True)
    for name, metric in metric_rules.METRIC_CASES.items():

        def compute(inputs, metric=metric):
            return metric(inputs, {"ignore_index": metric_rules.IGNORE})

        results["metrics"][name] = compare(compute, (inputs,), inputs.labels.shape[0])
    print(json.dumps(results))


if __name__ == "__main__":
    main()
