"""Two processes on localhost, joined by ``jax.distributed.initialize``, train like one.

Each process runs ``multihost_worker.py`` with 2 local CPU devices (4 in the job), holds half of
the batch, and computes one data-parallel step of batch Dice + cross-entropy with CPU
collectives over gloo. The value and gradient every process reports must equal the
single-process result on the whole batch, computed here.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import jaxseg_losses as jsl
from tests.distributed import multihost_worker as worker

NUM_PROCESSES = 2
TIMEOUT_S = 180


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_workers() -> list[dict]:
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"
    port = str(_free_port())
    script = str(Path(worker.__file__))
    processes = [
        subprocess.Popen(
            [sys.executable, script, str(i), str(NUM_PROCESSES), port],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(NUM_PROCESSES)
    ]
    outputs = []
    try:
        for process in processes:
            stdout, stderr = process.communicate(timeout=TIMEOUT_S)
            assert process.returncode == 0, stderr[-4000:]
            outputs.append(json.loads(stdout.strip().splitlines()[-1]))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    return outputs


def test_two_processes_compute_the_single_process_step():
    outputs = _run_workers()
    unsupported = [o["unsupported"] for o in outputs if "unsupported" in o]
    if unsupported:
        pytest.skip(
            f"JAX {jax.__version__} cannot run CPU collectives across processes here: "
            f"{unsupported[0]}"
        )

    images, labels, weights = worker.global_batch()
    loss_fn = jsl.combine(worker.loss_terms(), ignore_index=255)
    value, grad = jax.jit(jax.value_and_grad(lambda w: loss_fn(images @ w, labels)[0]))(weights)

    assert sorted(o["process_id"] for o in outputs) == list(range(NUM_PROCESSES))
    for out in outputs:
        assert out["process_count"] == NUM_PROCESSES
        assert out["devices"] == 2 * NUM_PROCESSES and out["local_devices"] == 2
        assert out["batch_shape"] == list(images.shape)  # the global batch, from local halves
        # float32 sums in another order (4 devices, then gloo): the loss to 1e-6; each gradient
        # entry, a sum over all pixels with cancellation, to 1e-5 of the largest entry.
        for key_value, key_grad in (("value", "grad"), ("micro_value", "micro_grad")):
            np.testing.assert_allclose(out[key_value], value, rtol=1e-6)
            scale = float(np.max(np.abs(grad)))
            np.testing.assert_allclose(out[key_grad], grad, rtol=0, atol=1e-5 * scale)
