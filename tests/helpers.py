"""What many test files share: comparisons, NumPy activations, and the canonical test data.

The data makers draw from ``np.random.default_rng(seed)`` in a fixed order, so a test's data is
reproducible from its seed. Layouts are channels-last, ``logits`` ``[B, *spatial, C]``, unless a
maker says otherwise.
"""

import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jax
import numpy as np

IGNORE = 255  # the ignore_index every test uses
REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"  # the training examples and the notebook


def run_on_host_devices(args: list[str], devices: int = 8) -> Any:
    """Runs ``python *args`` from the repository root with ``devices`` CPU devices and returns
    the JSON of its last output line. JAX fixes its device count when it starts, so a check on
    several devices runs in a process of its own (``XLA_FLAGS`` appended, ``JAX_PLATFORMS=cpu``).
    """
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    flag = f"--xla_force_host_platform_device_count={devices}"
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {flag}".strip()
    done = subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------------
# Comparisons.


def assert_close(actual, expected, *, rtol=2e-5, atol=2e-6, err_msg=""):
    """Every leaf of ``actual`` equals ``expected``'s matching leaf (or subtree, e.g. a list),
    compared in float64."""

    def check(a, e):
        np.testing.assert_allclose(
            np.asarray(a, np.float64), np.asarray(e, np.float64), rtol=rtol, atol=atol,
            err_msg=err_msg,
        )  # fmt: skip

    jax.tree.map(check, actual, expected)


def exact_ints(x) -> np.ndarray:
    """Exact counts (int32, int64 or ``ExactCount``) as int64 NumPy."""
    return np.asarray(x, np.int64)


def assert_counts(counts, expected, name=""):
    """Every field of ``Counts`` equals ``expected[field]`` exactly."""
    for field in ("tp", "fp", "fn", "tn"):
        np.testing.assert_array_equal(
            exact_ints(getattr(counts, field)), expected[field], err_msg=f"{name}: {field}"
        )


def has_nan(tree) -> bool:
    """Whether any leaf holds a NaN."""
    return any(bool(np.isnan(np.asarray(leaf)).any()) for leaf in jax.tree.leaves(tree))


def all_finite(tree) -> bool:
    """Whether every entry of every leaf is finite."""
    return all(bool(np.isfinite(np.asarray(leaf)).all()) for leaf in jax.tree.leaves(tree))


def jit_call(fn, *args, **options):
    """``fn(*args, **options)`` under ``jax.jit`` with the options bound statically: one
    compilation instead of many eager ops, and shape and option errors raise while tracing."""
    return jax.jit(functools.partial(fn, **options))(*args)


# ----------------------------------------------------------------------------------------------
# NumPy activations (float64).


def log_softmax(x, axis: int = -1) -> np.ndarray:
    x = np.asarray(x, np.float64)
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def softmax(x, axis: int = -1) -> np.ndarray:
    return np.exp(log_softmax(x, axis))


def sigmoid(x) -> np.ndarray:
    # exp(-softplus(-x)): no overflow warning at |x| = 1e4.
    return np.exp(-np.logaddexp(0.0, -np.asarray(x, np.float64)))


def one_hot(labels, num_classes: int, dtype=np.float32) -> np.ndarray:
    """``[..., C]`` one-hot rows of integer labels (NumPy); a label outside ``[0, C)`` (such as
    :data:`IGNORE`) gets an all-zero row."""
    return (np.asarray(labels)[..., None] == np.arange(num_classes)).astype(dtype)


def nchw(x) -> np.ndarray:
    """Channels-last to channels-first: the class axis moved to axis 1."""
    return np.moveaxis(np.asarray(x), -1, 1)


# ----------------------------------------------------------------------------------------------
# Test data.


def random_batch(seed, shape=(2, 5, 4), num_classes=3, *, scale=2.0, ignored=0.0, masked=0.2):
    """float32 ``logits`` ``[*shape, C]``, int32 ``labels`` ``shape`` and a float32 0/1 ``mask``.

    Labels are classes (0/1 for one channel); a fraction ``ignored`` of them (drawn) is set to
    :data:`IGNORE`; a fraction ``masked`` of the mask is 0.
    """
    rng = np.random.default_rng(seed)
    logits = (scale * rng.standard_normal((*shape, num_classes))).astype(np.float32)
    labels = rng.integers(0, max(num_classes, 2), shape).astype(np.int32)
    if ignored:
        labels = np.where(rng.uniform(size=shape) < ignored, IGNORE, labels).astype(np.int32)
    mask = (rng.uniform(size=shape) > masked).astype(np.float32)
    return logits, labels, mask


def random_inputs(
    seed: int,
    *,
    batch: int = 2,
    spatial: tuple[int, ...] = (6,),
    num_classes: int = 3,
    target: str = "int",
    activation: str | None = "softmax",
    ignore_index: int | None = None,
    mask: str | None = None,
    class_axis: int = -1,
    scale: float = 2.0,
) -> dict[str, Any]:
    """Random float32 ``logits``, ``labels`` (and ``mask``) for one case of the input contract.

    ``target`` is ``"int"`` (class indices; 0/1 for one channel), ``"onehot"`` (float one-hot)
    or ``"soft"`` (float targets in [0, 1]: a distribution over classes for softmax, independent
    values otherwise). With ``activation=None`` the logits are probabilities. ``ignore_index``
    replaces about a fifth of the integer labels; ``mask`` is ``"bool"`` or ``"float"`` (weights in
    [0, 1], some exactly 0). ``class_axis=1`` moves the class axis of logits and dense labels.
    """
    rng = np.random.default_rng(seed)
    shape = (batch, *spatial)
    logits = scale * rng.normal(size=(*shape, num_classes))
    if activation is None:
        logits = softmax(logits) if num_classes > 1 else sigmoid(logits)
    exclusive = activation == "softmax" or (activation is None and num_classes > 1)
    classes = max(num_classes, 2)
    int_labels = rng.integers(0, classes, size=shape)
    if target == "int":
        labels: np.ndarray = int_labels.astype(np.int32)
        if ignore_index is not None:
            labels = np.where(rng.random(shape) < 0.2, ignore_index, labels).astype(np.int32)
    elif target == "onehot":
        if num_classes == 1:
            labels = (int_labels == 1).astype(np.float32)[..., None]
        elif exclusive:
            labels = (int_labels[..., None] == np.arange(num_classes)).astype(np.float32)
        else:
            labels = (rng.random((*shape, num_classes)) < 0.5).astype(np.float32)
    elif target == "soft":
        raw = rng.random((*shape, num_classes))
        labels = (raw / raw.sum(-1, keepdims=True) if exclusive else raw).astype(np.float32)
    else:
        raise ValueError(target)
    out: dict[str, Any] = {"logits": logits.astype(np.float32), "labels": labels}
    if mask == "bool":
        out["mask"] = rng.random(shape) < 0.7
    elif mask == "float":
        out["mask"] = np.where(rng.random(shape) < 0.2, 0.0, rng.random(shape)).astype(np.float32)
    if class_axis != -1:
        out["logits"] = np.moveaxis(out["logits"], -1, class_axis)
        if target != "int":
            out["labels"] = np.moveaxis(out["labels"], -1, class_axis)
    return out
