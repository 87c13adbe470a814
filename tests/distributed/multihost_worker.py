"""One process of the two-process data-parallel check of ``tests/distributed/test_multihost.py``.

Usage: ``python multihost_worker.py PROCESS_ID NUM_PROCESSES PORT`` with
``XLA_FLAGS=--xla_force_host_platform_device_count=2``. Each process joins the job through
``jax.distributed.initialize`` (CPU collectives over gloo), loads only its own rows of the global
batch, and computes with the others one data-parallel step: the value and parameter gradient of
batch Dice + cross-entropy, directly and accumulated over micro-batches. It prints one JSON line;
if JAX cannot run CPU collectives across processes it prints ``{"unsupported": reason}``.
"""

import json
import sys
from pathlib import Path

# The batch every process agrees on; process i holds rows [i * B / n, (i + 1) * B / n).
B, H, W, C, FEATURES = 8, 6, 6, 3, 2


def global_batch():
    import numpy as np

    rng = np.random.default_rng(0)
    images = rng.normal(size=(B, H, W, FEATURES)).astype(np.float32)
    labels = rng.integers(0, C, size=(B, H, W)).astype(np.int32)
    labels[: B // 2][labels[: B // 2] == 2] = 0  # rare class 2 in the first process's rows
    labels[:, 0, 0] = 255
    weights = rng.normal(size=(FEATURES, C)).astype(np.float32)
    return images, labels, weights


def loss_terms():
    import functools

    import jaxseg_losses as jsl

    return {"ce": 1.0, "dice": (1.0, functools.partial(jsl.dice_loss, aggregate="batch"))}


def main() -> None:
    process_id, num_processes, port = (int(a) for a in sys.argv[1:4])
    import jax

    try:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    except Exception as error:  # an older or newer JAX without this option or without gloo
        print(json.dumps({"unsupported": f"jax_cpu_collectives_implementation=gloo: {error}"}))
        return
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{port}",
        num_processes=num_processes,
        process_id=process_id,
        initialization_timeout=60,
    )
    import functools

    import numpy as np

    import jaxseg_losses as jsl

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "segmentation"))
    import parallel

    images, labels, weights = global_batch()
    rows = slice(process_id * B // num_processes, (process_id + 1) * B // num_processes)
    mesh = parallel.data_mesh()
    x, y = parallel.shard_batch(mesh, (images[rows], labels[rows]))
    w = parallel.replicate(mesh, weights)
    loss_fn = jsl.combine(loss_terms(), ignore_index=255)

    def objective(w, x, y):
        return loss_fn(x @ w, y)[0]

    try:
        value, grad = jax.jit(jax.value_and_grad(objective))(w, x, y)
        additive = jsl.combine(loss_terms(), ignore_index=255)
        step = jax.jit(
            functools.partial(
                jsl.accumulate.value_and_grad,
                lambda w, x: x @ w,
                loss=additive,
                num_microbatches=2,
            )
        )
        (micro_value, _), micro_grad = step(w, x, y)
    except Exception as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        if "ollective" in message or "nimplemented" in message:
            print(json.dumps({"unsupported": f"cross-process CPU computation failed: {message}"}))
            return
        raise

    def local(a):
        # Replicated outputs: every process holds the whole value.
        return np.asarray(a.addressable_data(0)).tolist()

    print(
        json.dumps(
            {
                "process_id": process_id,
                "process_count": jax.process_count(),
                "devices": jax.device_count(),
                "local_devices": jax.local_device_count(),
                "batch_shape": list(x.shape),
                "value": local(value),
                "grad": local(grad),
                "micro_value": local(micro_value),
                "micro_grad": local(micro_grad),
            }
        )
    )
    jax.distributed.shutdown()


if __name__ == "__main__":
    main()
