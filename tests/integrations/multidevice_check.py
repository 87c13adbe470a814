"""The Flax NNX and CLU metrics on 8 host devices; prints their numbers and the reference's.

Run by ``test_nnx.py`` (argument ``nnx``) and ``test_clu.py`` (``clu``) in a subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=8`` (the flag must be set before JAX
starts). Two batches of 8 images, one image per device: the metrics summed over the devices
(``axis_name`` in ``jsl.nnx``, ``gather_from_model_output`` in ``jsl.clu``) against the plain
accumulators of ``cases.py`` on one device. The last line of the output is JSON.

By hand: ``XLA_FLAGS=--xla_force_host_platform_device_count=8 python
tests/integrations/multidevice_check.py nnx``.
"""

import json
import sys
from pathlib import Path

DEVICES = 8
AXIS = "batch"


def _as_floats(values: dict) -> dict:
    return {name: float(value) for name, value in values.items()}


def _nnx(data: list, mesh, P) -> dict:
    from flax import nnx

    from tests.integrations import cases

    metrics = cases.nnx_metrics(axis_name=AXIS)

    @nnx.jit
    def eval_step(metrics, batch):
        @nnx.shard_map(mesh=mesh, in_specs=(P(), P(AXIS)), out_specs=P())
        def on_each_device(metrics, batch):
            metrics.update(**batch)

        on_each_device(metrics, batch)

    for batch in data:
        eval_step(metrics, batch)
    return {"nnx_shard_map": _as_floats(metrics.compute())}


def _clu(data: list, mesh, P) -> dict:
    import jax
    import jax.numpy as jnp

    from tests.integrations import cases

    Metrics = cases.clu_collection()

    def gathered(state, batch):
        return state.merge(Metrics.gather_from_model_output(axis_name=AXIS, **batch))

    # check_vma=False: CLU gathers the states with jax.lax.all_gather, whose result shard_map
    # types as varying over the axis, so a replicated out_specs would be refused.
    shard_step = jax.jit(
        jax.shard_map(gathered, mesh=mesh, in_specs=(P(), P(AXIS)), out_specs=P(), check_vma=False)
    )
    state = Metrics.empty()
    for batch in data:
        state = shard_step(state, batch)
    results = {"clu_shard_map": _as_floats(state.compute())}

    pmap_step = jax.pmap(gathered, axis_name=AXIS)
    state = jax.tree.map(lambda x: jnp.stack([x] * DEVICES), Metrics.empty())
    for batch in data:
        per_device = jax.tree.map(lambda x: x.reshape(DEVICES, -1, *x.shape[1:]), batch)
        state = pmap_step(state, per_device)
    results["clu_pmap"] = _as_floats(state.unreplicate().compute())
    return results


def main() -> None:
    import jax
    import numpy as np
    from jax.sharding import Mesh
    from jax.sharding import PartitionSpec as P

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.integrations import cases

    jax.config.update("jax_numpy_rank_promotion", "raise")
    jax.config.update("jax_numpy_dtype_promotion", "strict")
    assert len(jax.devices()) == DEVICES, f"expected {DEVICES} host devices, got {jax.devices()}"
    mesh = Mesh(np.array(jax.devices()), (AXIS,))
    data = cases.batches(2, DEVICES, seed=1)
    run = {"nnx": _nnx, "clu": _clu}[sys.argv[1]]
    results = {"reference": _as_floats(cases.plain_metrics(data))}
    results.update(run(data, mesh, P))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
