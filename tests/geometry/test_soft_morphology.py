"""The soft skeleton (``geometry.morphology.soft_skeleton``) taken in bands of rows.

The skeleton is computed one image and class at a time, each image in bands of rows that read
``iterations + 2`` more rows on each side. Checked here: values equal the scipy reference
(``tests/references/spatial.py``) with bands of every size the rule can pick, including images
whose row count has no small divisor and bands clamped at both edges; gradients, forward-mode
tangents and Hessian-vector products equal those of the whole image taken at once. The same
for ``skeleton_overlaps``, clDice's four sums taken band by band.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseg_losses.geometry import morphology
from jaxseg_losses.geometry.morphology import soft_skeleton
from tests.references.spatial import ref_soft_skeleton

# (shape [B, *spatial, C], iterations): 1-D, 2-D and 3-D, a prime row count (no bands).
SHAPES = [
    ((2, 64, 33, 2), 3),
    ((1, 40, 7, 1), 0),
    ((1, 37, 5, 3), 2),
    ((2, 30, 20, 12, 1), 3),
    ((1, 50, 1), 3),
    ((1, 200, 9, 1), 5),
]


def _reference(x: np.ndarray, iterations: int) -> np.ndarray:
    return np.stack(
        [
            np.stack([ref_soft_skeleton(x[b, ..., c], iterations) for c in range(x.shape[-1])], -1)
            for b in range(x.shape[0])
        ]
    )


def _whole_images(x: jax.Array, iterations: int) -> jax.Array:
    """Every image and class at once, without bands: the computation the bands split."""
    images = jnp.moveaxis(x, -1, 1).reshape((-1, *x.shape[1:-1]))
    skeletons = jax.vmap(lambda image: morphology._image_skeleton(image, iterations))(images)
    return jnp.moveaxis(skeletons.reshape((x.shape[0], x.shape[-1], *x.shape[1:-1])), 1, -1)


@pytest.fixture(params=["default bands", "smallest bands"])
def band_elements(request, monkeypatch):
    """The default band size, and the smallest the rule allows (5 reaches of rows)."""
    if request.param == "smallest bands":
        monkeypatch.setattr(morphology, "_BAND_ELEMENTS", 1)
    return request.param


@pytest.mark.parametrize(("shape", "iterations"), SHAPES)
def test_bands_equal_the_reference(band_elements, shape, iterations):
    x = np.random.default_rng(0).uniform(size=shape).astype(np.float32)
    got = jax.jit(soft_skeleton, static_argnums=1)(x, iterations)
    np.testing.assert_allclose(np.asarray(got), _reference(x, iterations), atol=1e-6)


def test_band_rows_rule(monkeypatch):
    """Largest divisor of the rows within the budget and 5 reaches; whole image otherwise."""
    assert morphology._band_rows((512, 512), 3) == 64  # 2**15 elements of 512-element rows
    assert morphology._band_rows((96, 96, 96), 3) == 24  # 5 reaches of 5 rows, a divisor of 96
    assert morphology._band_rows((37, 5), 2) == 37  # prime: no band of at least one reach
    monkeypatch.setattr(morphology, "_BAND_ELEMENTS", 1)
    assert morphology._band_rows((64, 33), 3) == 16
    assert morphology._band_rows((30, 20, 12), 3) == 15


def test_derivatives_equal_the_whole_image(monkeypatch):
    monkeypatch.setattr(morphology, "_BAND_ELEMENTS", 1)
    shape, iterations = (2, 60, 11, 2), 3  # bands of 15 rows: 4 per image, edges clamped
    rng = np.random.default_rng(1)
    x, weights, tangent = (jnp.asarray(rng.uniform(size=shape), jnp.float32) for _ in range(3))

    def objective(skeleton_fn):
        return lambda v: jnp.sum(weights * skeleton_fn(v, iterations) ** 2)

    banded, whole = objective(soft_skeleton), objective(_whole_images)
    np.testing.assert_allclose(jax.jit(jax.grad(banded))(x), jax.grad(whole)(x), atol=1e-6)
    forward = jax.jit(lambda v, t: jax.jvp(banded, (v,), (t,)))(x, tangent)
    expected = jax.jvp(whole, (x,), (tangent,))
    np.testing.assert_allclose(forward, expected, rtol=1e-6)
    hvp = jax.jit(lambda v, t: jax.jvp(jax.grad(banded), (v,), (t,))[1])(x, tangent)
    expected_hvp = jax.jvp(jax.grad(whole), (x,), (tangent,))[1]
    np.testing.assert_allclose(hvp, expected_hvp, atol=1e-5)


@pytest.mark.parametrize(("shape", "iterations"), [((2, 40, 9, 3), 3), ((1, 30, 20, 12, 2), 2)])
def test_skeleton_overlaps_equal_the_reference_sums(band_elements, shape, iterations):
    rng = np.random.default_rng(2)
    x, y = (rng.uniform(size=shape).astype(np.float32) for _ in range(2))
    weights = (rng.uniform(size=shape[:-1]) > 0.2).astype(np.float32)
    got = jax.jit(morphology.skeleton_overlaps, static_argnums=3)(x, y, weights, iterations)
    s_x, s_y = _reference(x, iterations), _reference(y, iterations)
    w = weights[..., None]
    axes = tuple(range(1, len(shape) - 1))
    expected = np.stack(
        [np.sum(w * s_x * y, axes), np.sum(w * s_x, axes), np.sum(w * s_y * x, axes),
         np.sum(w * s_y, axes)],
        axis=-1,
    )  # fmt: skip
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-5)


def test_skeleton_overlaps_gradient_equals_the_whole_skeletons(monkeypatch):
    monkeypatch.setattr(morphology, "_BAND_ELEMENTS", 1)
    shape, iterations = (2, 60, 11, 2), 3
    rng = np.random.default_rng(3)
    x, y, tangent = (jnp.asarray(rng.uniform(size=shape), jnp.float32) for _ in range(3))
    weights = jnp.asarray(rng.uniform(size=shape[:-1]), jnp.float32)

    def banded(v):
        sums = morphology.skeleton_overlaps(v, y, weights, iterations)
        return jnp.sum(sums[..., 0] / (sums[..., 1] + 1.0) + sums[..., 2] / (sums[..., 3] + 1.0))

    def whole(v):
        s_v, s_y, w = _whole_images(v, iterations), _whole_images(y, iterations), weights[..., None]
        axes = (1, 2)
        hits = jnp.sum(w * s_v * y, axes) / (jnp.sum(w * s_v, axes) + 1.0)
        return jnp.sum(hits + jnp.sum(w * s_y * v, axes) / (jnp.sum(w * s_y, axes) + 1.0))

    np.testing.assert_allclose(jax.jit(jax.grad(banded))(x), jax.grad(whole)(x), atol=1e-6)
    hvp = jax.jit(lambda v, t: jax.jvp(jax.grad(banded), (v,), (t,))[1])(x, tangent)
    expected = jax.jvp(jax.grad(whole), (x,), (tangent,))[1]
    np.testing.assert_allclose(hvp, expected, atol=1e-5)
