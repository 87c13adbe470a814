"""The data and the reduction check shared by the pixel-wise loss tests (cross-entropy, focal)."""

import jax
import jax.numpy as jnp
import numpy as np

from tests.helpers import assert_close, one_hot, softmax

B, H, W, C = 2, 5, 4, 3


def rng(seed):
    return np.random.default_rng(seed)


def make_data(seed=0, *, num_classes=C, scale=2.0, ignore=False, shape=(B, H, W)):
    """float32 logits, int32 labels (30% set to 255 with ``ignore``), soft targets: NumPy."""
    r = rng(seed)
    logits = (scale * r.standard_normal((*shape, num_classes))).astype(np.float32)
    labels = r.integers(0, max(num_classes, 2), shape).astype(np.int32)
    if ignore:
        labels = np.where(r.uniform(size=shape) < 0.3, 255, labels).astype(np.int32)
    soft = softmax(r.standard_normal((*shape, num_classes))).astype(np.float32)
    return logits, labels, soft


def probabilities_of(logits):
    return softmax(logits).astype(np.float32)


def multilabel(seed=0, num_classes=C):
    r = rng(seed)
    logits = (2.0 * r.standard_normal((B, H, W, num_classes))).astype(np.float32)
    targets = (r.uniform(size=(B, H, W, num_classes)) < 0.4).astype(np.float32)
    return logits, targets


REDUCTIONS = ("mean", "sum", "none")


def check_all_reductions(loss_fn, reference, logits, labels, **options):
    """One jit computes every reduction; each must match the NumPy reference."""
    fn = jax.jit(lambda x, y: {r: loss_fn(x, y, reduction=r, **options) for r in REDUCTIONS})
    actual = fn(logits, labels)
    for reduction in REDUCTIONS:
        value = actual[reduction]
        assert value.dtype == jnp.float32
        assert value.shape == (() if reduction != "none" else (logits.shape[0],))
        assert_close(value, reference(logits, labels, reduction=reduction, **options))


WEIGHTS = np.array([0.5, 2.0, 1.5], np.float32)


def resolve_case(case, seed=0):
    case = dict(case)
    logits, labels, soft = make_data(seed, ignore=case.get("ignore_index") is not None)
    kind = case.pop("labels", "int")
    if kind == "onehot":
        labels = one_hot(labels, C)
    elif kind == "soft":
        labels = soft
    if case.get("activation", "softmax") is None:
        logits = probabilities_of(logits)
    mask = case.pop("mask", None)
    if mask is not None:
        u = rng(seed + 7).uniform(size=labels.shape[:3]).astype(np.float32)
        case["mask"] = u > 0.3 if mask == "bool" else np.where(u > 0.3, u, np.float32(0.0))
    if case.get("class_axis") == 1:
        logits = np.moveaxis(logits, -1, 1)
        if kind != "int":
            labels = np.moveaxis(labels, -1, 1)
    return logits, labels, case
