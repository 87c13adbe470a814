"""Checks the losses and metrics on 1, 2 and 8 devices; prints the measured differences as JSON.

Run by ``tests/distributed/test_distributed.py`` in a subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=8`` (the flag must be set before JAX starts,
hence the separate process), which asserts on the numbers. Every difference is relative:
``max |a - b| / max |b|`` over a value or a gradient, against the whole batch on one device.

Run by hand to see the numbers: ``XLA_FLAGS=--xla_force_host_platform_device_count=8 python
tests/distributed/distributed_check.py``.
"""

import functools
import json
import sys
from pathlib import Path

B, H, W, C = 16, 8, 8, 3
DEVICE_COUNTS = (2, 8)


def main() -> None:
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh
    from jax.sharding import PartitionSpec as P

    import jaxseg_losses as jsl

    jax.config.update("jax_numpy_rank_promotion", "raise")
    jax.config.update("jax_numpy_dtype_promotion", "strict")
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "segmentation"))
    import parallel

    devices = jax.devices()
    assert len(devices) == 8, f"expected 8 host devices, got {len(devices)}"
    results: dict = {}

    def rel(a, b) -> float:
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))

    def worst(outputs, reference) -> float:
        leaves = jax.tree.leaves(outputs)
        ref_leaves = jax.tree.leaves(reference)
        assert len(leaves) == len(ref_leaves)
        return max(rel(a, b) for a, b in zip(leaves, ref_leaves, strict=True))

    # Data with uneven class balance across the batch: the first samples hold almost no class 2,
    # so per-device ratios differ from the batch's (as they do for real lesions or organs).
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(B, H, W, C)).astype(np.float32) * 2.0
    labels = rng.integers(0, C, size=(B, H, W)).astype(np.int32)
    labels[: B // 2][labels[: B // 2] == 2] = 0
    labels[:, 0, :2] = 255
    mask = (rng.uniform(size=(B, H, W)) > 0.25).astype(np.float32)
    images = rng.normal(size=(B, H, W, 2)).astype(np.float32)

    batch_dice = functools.partial(jsl.dice_loss, aggregate="batch")
    losses = {
        "iou_batch": functools.partial(jsl.iou_loss, aggregate="batch"),
        "dice_batch": batch_dice,
        "tversky_batch": functools.partial(
            jsl.tversky_loss, aggregate="batch", alpha=0.3, beta=0.7, gamma=0.75
        ),
        "gdl_batch": functools.partial(jsl.generalized_dice_loss, aggregate="batch"),
        "dice_sample": jsl.dice_loss,
        "ce": functools.partial(jsl.cross_entropy_loss, class_weights=jnp.array([0.5, 1.0, 2.0])),
        "focal": functools.partial(jsl.focal_loss, gamma=2.0, alpha=0.25),
        "lovasz_sample": jsl.lovasz_softmax_loss,
        "lovasz_batch": functools.partial(jsl.lovasz_softmax_loss, aggregate="batch"),
        "dice_ce": lambda x, y, **kw: jsl.dice_ce_loss(
            x, y, dice_options={"aggregate": "batch"}, **kw
        ),
    }
    # Lovász pooled over the batch is one sort over all pixels: exact under jit, refused with
    # axis_name (see lovasz.py); every other loss runs in shard_map too. Compiling is the cost
    # of this script, so the full lists run on 8 devices and a few representatives elsewhere.
    mapped_losses = {k: v for k, v in losses.items() if k != "lovasz_batch"}
    few = ("dice_batch", "ce", "dice_ce", "lovasz_batch")

    def loss_of(fn, x, y, m, axis_name=None):
        return fn(x, y, mask=m, ignore_index=255, axis_name=axis_name)

    def values_and_grads(x, y, m, names=tuple(losses)):
        out = {name: jax.value_and_grad(loss_of, 1)(losses[name], x, y, m) for name in names}
        matrix = jsl.metrics.confusion_matrix(x, y, C, ignore_index=255, mask=m)
        return out, matrix, jsl.metrics.compute_metrics(matrix)

    ref = jax.jit(values_and_grads)(logits, labels, mask)
    ref_losses, ref_matrix, ref_metrics = ref
    results["values"] = {name: float(v) for name, (v, _) in ref_losses.items()}

    # ---- 1. jax.jit with the batch sharded over a mesh: no axis_name, same value and gradient.
    jit_results = {}
    for n in DEVICE_COUNTS:
        names = tuple(losses) if n == 8 else few
        mesh = parallel.data_mesh(devices[:n])
        x, y, m = parallel.shard_batch(mesh, (logits, labels, mask))
        assert len(x.sharding.device_set) == n
        out = jax.jit(values_and_grads, static_argnames="names")(x, y, m, names=names)
        jit_results[n] = {
            "losses": list(names),
            "value": max(rel(out[0][k][0], ref_losses[k][0]) for k in names),
            "grad": max(rel(out[0][k][1], ref_losses[k][1]) for k in names),
            "grad_sharded": len(out[0]["dice_batch"][1].sharding.device_set) == n,
            "per_loss_grad": {k: rel(out[0][k][1], ref_losses[k][1]) for k in names},
            "metrics": worst(out[1:], (ref_matrix, ref_metrics)),
        }
    results["jit"] = jit_results

    # ---- 2. shard_map and pmap with axis_name: statistics summed over the mapped axis.
    def local_values_and_grads(x, y, m, names):
        out = {
            name: jax.value_and_grad(loss_of, 1)(mapped_losses[name], x, y, m, "d")
            for name in names
        }
        matrix = jsl.metrics.confusion_matrix(x, y, C, ignore_index=255, mask=m, axis_name="d")
        return out, matrix

    mapped = {}
    for mode, n in (
        ("shard_map", 8),
        ("shard_map", 2),
        ("shard_map_no_vma", 8),
        ("pmap", 8),
    ):
        # The others check the transpose of psum: Dice + CE (batch statistics, pixel sums)
        # and per-sample Dice (sums and counts of samples) stand for every loss.
        names = (
            tuple(mapped_losses) if (mode, n) == ("shard_map", 8) else ("dice_ce", "dice_sample")
        )
        mesh = Mesh(np.asarray(devices[:n]), ("d",))
        if mode == "pmap":
            split = [a.reshape(n, B // n, *a.shape[1:]) for a in (logits, labels, mask)]
            out, matrix = jax.pmap(
                functools.partial(local_values_and_grads, names=names),
                "d",
                devices=devices[:n],
            )(*split)
            values = {k: out[k][0] for k in out}
            grads = {k: out[k][1].reshape(B, H, W, C) for k in out}
            matrix = matrix[0]
        else:

            def per_device(x, y, m, names=names):
                out, matrix = local_values_and_grads(x, y, m, names)
                values = {k: v[None] for k, (v, _) in out.items()}
                return values, {k: g for k, (_, g) in out.items()}, matrix[None]

            f = jax.shard_map(
                per_device,
                mesh=mesh,
                in_specs=P("d"),
                out_specs=P("d"),
                check_vma=mode == "shard_map",
            )
            values, grads, matrix = jax.jit(f)(logits, labels, mask)
            matrix = matrix[0]
        # Every device holds the global value.
        value_diff = max(rel(values[k], np.full(n, ref_losses[k][0])) for k in values)
        # The gradient of one device's loss w.r.t. its own logits, concatenated over devices,
        # against the single-device gradient. With check_vma=True JAX transposes psum into a
        # copy, giving exactly the global gradient; pmap and check_vma=False transpose it into
        # another psum, as if the n devices' (identical) losses were added: n times as large.
        expected = 1 if mode == "shard_map" else n
        scales = {
            k: float(jnp.vdot(grads[k], ref_losses[k][1]) / jnp.vdot(*[ref_losses[k][1]] * 2))
            for k in grads
        }
        grad_diff = max(rel(grads[k] / expected, ref_losses[k][1]) for k in grads)
        mapped[f"{mode}_{n}"] = {
            "losses": list(names),
            "value": value_diff,
            "expected_grad_scale": expected,
            "grad_scales": scales,
            "grad_over_expected_scale": grad_diff,
            "metrics": rel(matrix, ref_matrix),
        }
    results["mapped"] = mapped

    # ---- 2b. The data-parallel recipe with parameters: a per-pixel linear model, parameters
    # replicated, `pmean` of the gradients (the usual pmap recipe) in every mode.
    weights = rng.normal(size=(2, C)).astype(np.float32)

    def model_loss(w, xs, y, m, axis_name=None):
        loss_fn = jsl.combine(
            {"ce": 1.0, "dice": (1.0, batch_dice)}, ignore_index=255, axis_name=axis_name
        )
        return loss_fn(xs @ w, y, mask=m)[0]

    ref_value, ref_wgrad = jax.jit(jax.value_and_grad(model_loss))(weights, images, labels, mask)

    def local_step(w, xs, y, m):
        value, grad = jax.value_and_grad(model_loss)(w, xs, y, m, "d")
        return value, jax.lax.pmean(grad, "d")

    recipe = {}
    for mode in ("shard_map", "pmap"):
        n = 8
        if mode == "pmap":
            split = [a.reshape(n, B // n, *a.shape[1:]) for a in (images, labels, mask)]
            value, grad = jax.pmap(local_step, "d", in_axes=(None, 0, 0, 0))(weights, *split)
            value, grad = value[0], grad[0]
        else:
            mesh = Mesh(np.asarray(devices), ("d",))
            f = jax.shard_map(
                local_step,
                mesh=mesh,
                in_specs=(P(), P("d"), P("d"), P("d")),
                out_specs=(P(), P()),
                check_vma=mode == "shard_map",
            )
            value, grad = jax.jit(f)(weights, images, labels, mask)
        recipe[mode] = {"value": rel(value, ref_value), "grad": rel(grad, ref_wgrad)}
    results["param_recipe"] = recipe

    # ---- 3. Micro-batches: exact accumulation, on one device and with the batch sharded.
    additive = jsl.combine({"ce": 1.0, "dice": (1.0, batch_dice)}, ignore_index=255)

    def apply_fn(w, xs):
        return xs @ w

    micro = {}
    for n, k in ((8, 2),):
        mesh = parallel.data_mesh(devices[:n])
        xs, y, m = parallel.shard_batch(mesh, (images, labels, mask))
        step = jax.jit(
            functools.partial(
                jsl.accumulate.value_and_grad, apply_fn, loss=additive, num_microbatches=k
            )
        )
        (value, _), grad = step(parallel.replicate(mesh, weights), xs, y, mask=m)
        micro[f"jit_{n}dev_{k}micro"] = {
            "value": rel(value, ref_value),
            "grad": rel(grad, ref_wgrad),
        }
    for mode in ("shard_map", "shard_map_no_vma"):
        mesh = Mesh(np.asarray(devices), ("d",))

        def local_accumulate(w, xs, y, m):
            (value, _), grad = jsl.accumulate.value_and_grad(
                apply_fn, w, xs, y, loss=additive, num_microbatches=2, mask=m, axis_name="d"
            )
            return value, grad

        f = jax.shard_map(
            local_accumulate,
            mesh=mesh,
            in_specs=(P(), P("d"), P("d"), P("d")),
            out_specs=(P(), P()),
            check_vma=mode == "shard_map",
        )
        value, grad = jax.jit(f)(weights, images, labels, mask)
        micro[f"{mode}_8dev_2micro"] = {
            "value": rel(value, ref_value),
            "grad": rel(grad, ref_wgrad),
        }
    results["microbatch"] = micro

    # ---- 4. The pitfall: batch Dice computed per device and averaged (pmean) over 8 devices.
    def naive(x, y, m):
        value, grad = jax.value_and_grad(loss_of, 1)(batch_dice, x, y, m)
        return jax.lax.pmean(value, "d")[None], grad / 8.0

    f = jax.shard_map(
        naive, mesh=Mesh(np.asarray(devices), ("d",)), in_specs=P("d"), out_specs=P("d")
    )
    naive_value, naive_grad = jax.jit(f)(logits, labels, mask)
    exact_value, exact_grad = ref_losses["dice_batch"]
    cosine = float(
        jnp.vdot(naive_grad, exact_grad)
        / (jnp.linalg.norm(naive_grad) * jnp.linalg.norm(exact_grad))
    )
    results["pitfall"] = {
        "exact_batch_dice_loss": float(exact_value),
        "mean_of_device_dice_losses": float(naive_value[0]),
        "value_rel_error": rel(naive_value[0], exact_value),
        "grad_rel_error": rel(naive_grad, exact_grad),
        "grad_cosine": cosine,
    }

    # ---- 5. The example's data-parallel helpers: SGD loss curves on 1 and 8 devices.
    results["sgd_curves"] = sgd_curves(parallel, devices, images, labels)
    print(json.dumps(results))


def sgd_curves(parallel, devices, images, labels) -> dict:
    """Four SGD steps of a tiny NNX convnet on 1 and on 8 devices; returns both loss curves."""
    import numpy as np
    import optax
    from flax import nnx

    import jaxseg_losses as jsl

    class TinyNet(nnx.Module):
        def __init__(self, rngs: nnx.Rngs):
            self.conv1 = nnx.Conv(2, 8, (3, 3), rngs=rngs)
            self.conv2 = nnx.Conv(8, C, (1, 1), rngs=rngs)

        def __call__(self, x):
            return self.conv2(nnx.relu(self.conv1(x)))

    loss_fn = jsl.combine(
        {"ce": 1.0, "dice": (1.0, functools.partial(jsl.dice_loss, aggregate="batch"))},
        ignore_index=255,
    )

    @nnx.jit
    def train_step(model, optimizer, x, y):
        def objective(model):
            return loss_fn(model(x), y)[0]

        value, grads = nnx.value_and_grad(objective)(model)
        optimizer.update(model, grads)
        return value

    curves = {}
    for n in (1, 8):
        model = TinyNet(nnx.Rngs(0))
        optimizer = nnx.Optimizer(model, optax.sgd(0.5), wrt=nnx.Param)
        mesh = parallel.data_mesh(devices[:n])
        parallel.replicate_state(mesh, model, optimizer)
        curve = []
        for step in range(4):
            rows = np.roll(np.arange(B), 3 * step)  # rows move between devices every step
            x, y = parallel.shard_batch(mesh, (images[rows], labels[rows]))
            curve.append(float(train_step(model, optimizer, x, y)))
        curves[n] = curve
    return curves


if __name__ == "__main__":
    main()
