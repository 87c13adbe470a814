"""Nearest-neighbour resizing: PyTorch's ``nearest-exact`` source indices, on any dtype."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxseg_losses.geometry.resize import nearest_exact_indices, resize_nearest


def test_indices_are_torch_nearest_exact():
    # torch.nn.functional.interpolate(mode="nearest-exact") source indices.
    assert nearest_exact_indices(8, 4).tolist() == [1, 3, 5, 7]
    assert nearest_exact_indices(5, 2).tolist() == [1, 3]
    assert nearest_exact_indices(7, 3).tolist() == [1, 3, 5]
    assert nearest_exact_indices(3, 6).tolist() == [0, 0, 1, 1, 2, 2]


def test_resize_gathers_those_indices_on_each_spatial_axis_of_any_dtype():
    labels = np.arange(2 * 5 * 4, dtype=np.int32).reshape(2, 5, 4)
    logits = np.stack([labels, -labels], -1).astype(np.float32)
    resize = jax.jit(resize_nearest, static_argnums=(1, 2))
    rows, cols = nearest_exact_indices(5, 3), nearest_exact_indices(4, 2)
    expected = labels[:, rows][:, :, cols]
    np.testing.assert_array_equal(resize(labels, (3, 2), 1), expected)
    np.testing.assert_array_equal(resize(logits, (3, 2), 1)[..., 0], expected)
    np.testing.assert_array_equal(resize(labels > 3, (3, 2), 1), expected > 3)
    same = resize_nearest(jnp.asarray(labels), (5, 4), 1)
    np.testing.assert_array_equal(same, labels)
