"""Data parallelism for the segmentation example: each batch sharded over every device.

The recipe is JAX's automatic one: a 1-D :class:`jax.sharding.Mesh` over all devices, the batch
sharded along its leading axis, the model and optimizer state replicated, and the unchanged
jitted train step. ``jax.jit`` compiles one program for the whole mesh; the losses are written
for the whole batch, so XLA inserts the cross-device sums itself. This works the same on a
Colab TPU v2-8 (8 cores), several GPUs, several hosts (each host passes its own slice of the
batch to :func:`shard_batch`) and, for testing, CPU devices made with
``XLA_FLAGS=--xla_force_host_platform_device_count=8``.

A note on ``aggregate="batch"``. Batch Dice (nnU-Net) is a ratio of sums over the whole batch.
Under ``jax.jit`` with a sharded batch it stays exact with no change to the loss call: the
statistics are summed over all devices before the ratio, and the gradient is the gradient of
the global loss. What breaks it is computing the loss *per device* and averaging (``pmap`` or
``shard_map`` with a local loss, then ``pmean``): the mean of per-device Dice ratios is not the
batch Dice, and its gradient weighs a device holding little foreground like one holding a lot.
Inside ``shard_map``/``pmap`` pass ``axis_name=`` to the loss instead (see the library README),
and for gradient accumulation use ``jaxseg_losses.accumulate``.

Usage (the shapes of a train step do not change)::

    mesh = parallel.data_mesh()                 # all jax.devices()
    parallel.replicate_state(mesh, model, optimizer)
    for images, labels in data.iterate_batches(...):
        images, labels = parallel.shard_batch(mesh, (images, labels))
        loss = train_step(model, optimizer, images, labels)
"""

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def data_mesh(devices: Sequence[Any] | None = None, *, axis_name: str = DATA_AXIS) -> Mesh:
    """Returns a 1-D mesh over ``devices`` (default: every device of every process).

    Args:
      devices: the devices to spread the batch over; ``jax.devices()`` by default.
      axis_name: the name of the mesh axis that the batch is split along.

    Returns:
      A :class:`jax.sharding.Mesh` of shape ``(len(devices),)``.
    """
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("`devices` is empty; a mesh needs at least one device.")
    return Mesh(np.asarray(devices, dtype=object), (axis_name,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """The sharding of a batch: the leading axis split over the mesh's (only) axis."""
    return NamedSharding(mesh, PartitionSpec(mesh.axis_names[0]))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
    """The sharding of parameters and optimizer state: a full copy on every device."""
    return NamedSharding(mesh, PartitionSpec())


def shard_batch(mesh: Mesh, batch: Any) -> Any:
    """Places a batch (an array or a pytree of arrays) on the mesh, split along axis 0.

    Each process passes the rows it loaded: the whole batch in a single process, its own
    ``global_batch // jax.process_count()`` rows on each host of a multi-host run (the global
    batch is their concatenation in process order). The global batch size must be divisible by
    the number of devices.

    Args:
      mesh: a mesh from :func:`data_mesh`.
      batch: NumPy or JAX arrays with a leading batch axis (images, labels, masks...).

    Returns:
      The same pytree of global :class:`jax.Array` values, sharded along the batch axis.
    """
    sharding = batch_sharding(mesh)
    num_devices = mesh.devices.size

    def place(local: Any) -> jax.Array:
        local = np.asarray(local)
        global_rows = local.shape[0] * jax.process_count()
        if global_rows % num_devices:
            raise ValueError(
                f"The global batch of {global_rows} rows ({local.shape[0]} per process) cannot "
                f"be split evenly over {num_devices} devices; use a batch size divisible by "
                f"{num_devices}."
            )
        return jax.make_array_from_process_local_data(sharding, local)

    return jax.tree.map(place, batch)


def replicate(mesh: Mesh, tree: Any) -> Any:
    """Copies a pytree (parameters, optimizer state) to every device of the mesh."""
    return jax.device_put(tree, replicated_sharding(mesh))


def replicate_state(mesh: Mesh, *modules: Any) -> None:
    """Replicates the state of Flax NNX objects (a model, an ``nnx.Optimizer``) in place.

    Args:
      mesh: a mesh from :func:`data_mesh`.
      *modules: NNX modules or optimizers; each one's whole state (parameters, batch
        statistics, optimizer moments, step counter) is put on every device.
    """
    from flax import nnx  # the helpers above need only JAX

    for module in modules:
        nnx.update(module, replicate(mesh, nnx.state(module)))
