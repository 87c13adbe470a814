"""The topology metrics (``metrics.topology``): clDice and the Betti numbers.

* clDice against a NumPy formula over skeletons computed once with scikit-image (literals),
  every input form, the empty cases, excluded pixels;
* Betti numbers against scipy: components with ``scipy.ndimage.label``, holes and cavities as
  the components of the complement (complementary connectivity) that do not touch the border,
  3-D tunnels from the Euler characteristic of ``skimage.measure.euler_number`` (literals) and
  from shapes whose topology is known (ring, hollow cube, torus);
* Betti errors per image and class against the same reference.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage as ndi

import jaxseg_losses as jsl
from jaxseg_losses.metrics.topology import betti_errors, betti_numbers, cldice

IGNORE = 255


def cldice_data():
    """Label maps ``[2, 8, 10]`` with 4 classes: a vessel the prediction breaks, a spurious
    piece, a block with a hole, noise, a class in only one map (image 1, class 2), a class in
    neither (image 1, class 3), a class in both but disjoint (image 0, class 3)."""
    rng = np.random.default_rng(3)
    labels = np.zeros((2, 8, 10), np.int32)
    labels[0, 2:5, :] = 1
    labels[0, :, 6:8] = 2
    labels[0, 6:8, 8:10] = 3
    labels[1, 1:7, 1:9] = 1
    labels[1, 3:5, 3:7] = 0
    predictions = labels.copy()
    predictions[0, :, 3] = 0
    predictions[0, 6:8, 0:4] = 1
    predictions[0, 6:8, 8:10] = 0
    predictions[0, 0:2, 0:2] = 3
    noise = rng.random((8, 10)) < 0.2
    predictions[1] = np.where(noise, rng.integers(0, 3, (8, 10)), labels[1])
    return predictions, labels


# The skeleton of each class mask of `cldice_data`, as flat indices into the 8 x 10 image:
# (image, class) -> pixels. Computed once with scikit-image 0.26.0,
# ``np.flatnonzero(skimage.morphology.skeletonize(x[b] == c))``.
PREDICTED_SKELETONS = {
    (0, 0): [4, 5, 8, 9, 13, 23, 33, 43, 50, 51, 52, 53, 54, 68],
    (0, 1): [21, 30, 34, 38, 60, 61, 62, 63],
    (0, 2): [16, 26, 36, 46, 56, 66],
    (0, 3): [0, 1],
    (1, 0): [1, 2, 3, 5, 6, 8, 10, 19, 20, 29, 30, 33, 34, 35, 36, 39, 40, 49, 50, 60, 69, 71,
             72, 73, 74, 75],
    (1, 1): [0, 11, 12, 13, 14, 15, 16, 21, 27, 31, 37, 41, 47, 52, 53, 54, 55, 56],
    (1, 2): [7, 9, 28, 76],
    (1, 3): [],
}  # fmt: skip
TRUE_SKELETONS = {
    (0, 0): [0, 1, 2, 3, 4, 5, 8, 9, 54, 58, 59, 60, 61, 62, 63],
    (0, 1): [24, 30, 31, 32, 33, 38],
    (0, 2): [16, 26, 36, 46, 56, 66],
    (0, 3): [68, 69],
    (1, 0): [1, 2, 3, 4, 5, 6, 7, 8, 10, 19, 20, 29, 30, 33, 34, 35, 36, 39, 40, 49, 50, 59, 60,
             69, 71, 72, 73, 74, 75, 76, 77, 78],
    (1, 1): [12, 13, 14, 15, 16, 21, 27, 31, 37, 41, 47, 52, 53, 54, 55, 56],
    (1, 2): [],
    (1, 3): [],
}  # fmt: skip


def _skeleton(pixels):
    out = np.zeros(80, bool)
    out[pixels] = True
    return out.reshape(8, 10)


def reference_cldice(predictions, labels, num_classes):
    """``[B, C]`` from the definition, float64: NaN where both skeletons are empty, 0 where
    one is (a missed or a hallucinated structure) or where both ratios are 0."""
    out = np.zeros((len(labels), num_classes))
    for b in range(len(labels)):
        for c in range(num_classes):
            p, g = predictions[b] == c, labels[b] == c
            sp, sg = _skeleton(PREDICTED_SKELETONS[b, c]), _skeleton(TRUE_SKELETONS[b, c])
            with np.errstate(invalid="ignore"):
                tprec = (sp & g).sum() / sp.sum()
                tsens = (sg & p).sum() / sg.sum()
                value = 2 * tprec * tsens / (tprec + tsens)
            one_empty = (sp.sum() == 0) != (sg.sum() == 0)
            out[b, c] = 0.0 if one_empty or (tprec == 0 and tsens == 0) else value
    return out


def test_cldice_matches_the_definition_over_skimage_skeletons():
    predictions, labels = cldice_data()
    expected = reference_cldice(predictions, labels, 4)
    result = jax.jit(lambda p, g: cldice(p, g, num_classes=4, include_background=True))(
        predictions, labels
    )
    assert result.dtype == jnp.float32 and result.shape == (2, 4)
    np.testing.assert_allclose(result, expected, rtol=1e-6)
    # The empty cases: disjoint masks 0; a class in one map only 0; in neither, NaN.
    assert result[0, 3] == 0.0
    assert result[1, 2] == 0.0 and np.isnan(result[1, 3])
    assert 0.0 < result[0, 1] < 1.0 and result[0, 2] == 1.0
    # Boolean one-hot masks, channels first, without the background.
    hot = jax.jit(
        lambda p, g: cldice(
            jnp.moveaxis(jax.nn.one_hot(p, 4, dtype=jnp.bool_), -1, 1),
            jnp.moveaxis(jax.nn.one_hot(g, 4, dtype=jnp.bool_), -1, 1),
            class_axis=1,
        )
    )(predictions, labels)
    np.testing.assert_allclose(hot, expected[:, 1:], rtol=1e-6)


def test_a_perfect_prediction_scores_one():
    _, labels = cldice_data()
    result = np.asarray(cldice(labels, labels, num_classes=4, include_background=True))
    np.testing.assert_array_equal(result[0], 1.0)
    np.testing.assert_array_equal(result[1, :2], 1.0)
    assert np.isnan(result[1, 2:]).all()  # absent from both


@pytest.mark.parametrize("exclusion", ["ignore_index", "mask"])
def test_cldice_excluded_pixels_are_in_no_mask(exclusion):
    """An excluded pixel is background for every class: the same as one-hot masks that are
    False there in every channel."""
    predictions, labels = cldice_data()
    excluded = np.zeros(labels.shape, bool)
    excluded[0, 3, :5] = True  # across the vessel
    excluded[1, 2:6, 5] = True
    options: dict[str, Any]
    if exclusion == "ignore_index":
        options = {"ignore_index": IGNORE}
        labels = np.where(excluded, IGNORE, labels).astype(np.int32)
    else:
        options = {"mask": ~excluded}
    counted = ~excluded[..., None]
    hot_p = (predictions[..., None] == np.arange(4)) & counted
    hot_g = (labels[..., None] == np.arange(4)) & counted
    both = jax.jit(
        lambda p, g, hp, hg: (
            cldice(p, g, num_classes=4, **options),
            cldice(hp, hg, include_background=False),
        )
    )
    result, expected = both(predictions, labels, hot_p, hot_g)
    np.testing.assert_array_equal(result, expected)
    unmasked = np.asarray(cldice(predictions, np.where(excluded, 0, labels), num_classes=4))
    assert not np.array_equal(np.asarray(result), unmasked, equal_nan=True)


def test_cldice_is_two_dimensional():
    with pytest.raises(ValueError, match="2-D"):
        cldice(np.zeros((1, 4, 4, 4), np.int32), np.zeros((1, 4, 4, 4), np.int32), num_classes=2)
    with pytest.raises(ValueError, match="2-D"):
        cldice(np.zeros((1, 6), np.int32), np.zeros((1, 6), np.int32), num_classes=2)
    with pytest.raises(ValueError, match="num_classes"):
        cldice(np.zeros((1, 4, 4), np.int32), np.zeros((1, 4, 4), np.int32))


# ----------------------------------------------------------------------------------------------
# Betti numbers.


def _count_components(mask, connectivity):
    """The number of components of ``mask`` with scipy (``connectivity`` as scikit-image)."""
    result: Any = ndi.label(mask, ndi.generate_binary_structure(mask.ndim, connectivity))
    return int(result[1])


def reference_betti(mask, connectivity=None, chi=None):
    """:math:`\\beta_0 .. \\beta_{D-1}` with scipy: foreground components; background
    components (complementary connectivity) inside a frame beyond the image, less the one
    outside; in 3-D the tunnels from the Euler characteristic ``chi``."""
    dims = mask.ndim
    connectivity = dims if connectivity is None else connectivity
    components = _count_components(mask, connectivity)
    if dims == 1:
        return [components]
    framed = np.pad(~mask, 1, constant_values=True)
    enclosed = _count_components(framed, dims + 1 - connectivity) - 1
    if dims == 2:
        return [components, enclosed]
    tunnels = None if chi is None else components + enclosed - chi
    return [components, tunnels, enclosed]


def test_betti_numbers_2d_match_scipy():
    rng = np.random.default_rng(0)
    masks = np.stack(
        [rng.random((9, 11)) < p for p in np.linspace(0.1, 0.9, 12)]
        + [ndi.binary_dilation(rng.random((9, 11)) < 0.15) for _ in range(4)]
        + [np.zeros((9, 11), bool), np.ones((9, 11), bool)]
    )
    run = jax.jit(lambda m: (betti_numbers(m), betti_numbers(m, connectivity=1)))
    full, faces = run(masks)
    assert full.dtype == jnp.int32 and full.shape == (len(masks), 2)
    for i, mask in enumerate(masks):
        np.testing.assert_array_equal(full[i], reference_betti(mask), err_msg=f"mask {i}")
        np.testing.assert_array_equal(faces[i], reference_betti(mask, 1), err_msg=f"mask {i}")
    assert faces[:, 1].max() > 0 and full[:, 1].max() > 0  # holes occur


# Random volumes ``np.random.default_rng(11).random((8, 5, 6, 7)) < np.linspace(0.15, 0.9, 8)``
# (one density per volume) and their Euler characteristics, computed once with scikit-image
# 0.26.0, ``skimage.measure.euler_number(volume, connectivity)`` for connectivity 1 and 3.
EULER_6 = [26, 12, 9, -4, -4, -12, -12, -2]
EULER_26 = [0, 0, -8, -9, -2, -2, 5, 5]


def known_shapes_3d():
    """Volumes ``[5, 6, 7, 7]`` and their Betti numbers (the same for 6 and 26 neighbours)."""
    shapes = np.zeros((5, 6, 7, 7), bool)
    shapes[0, 1:4, 1:4, 1:4] = True  # a solid cube
    shapes[1, 1:5, 1:6, 1:6] = True
    shapes[1, 2:4, 3, 3] = False  # a hollow box
    shapes[2, 2, 1:6, 1:6] = True
    shapes[2, 2, 3, 3] = False  # a flat ring: one tunnel
    shapes[3, 0:6, 0:7, 0:7] = True
    shapes[3, :, 3, 3] = False  # a hole drilled through the block: one tunnel
    shapes[3, 2, :, 3] = False  # a crossing hole: four openings, three tunnels
    shapes[4, 1:4, 1:4, 1:4] = True
    shapes[4, 2, 2, 2] = False  # a cube with a cavity ...
    shapes[4, 1:4, 4:7, 4:7] = True
    shapes[4, 2, 5, 5] = False  # ... and a second one touching it along an edge
    return shapes


def test_betti_numbers_3d_match_scipy_and_skimage_euler():
    rng = np.random.default_rng(11)
    volumes = rng.random((8, 5, 6, 7)) < np.linspace(0.15, 0.9, 8)[:, None, None, None]
    run = jax.jit(lambda m: (betti_numbers(m, connectivity=1), betti_numbers(m)))
    faces, full = run(volumes)
    assert faces.shape == (8, 3) and faces.dtype == jnp.int32
    for i, volume in enumerate(volumes):
        np.testing.assert_array_equal(faces[i], reference_betti(volume, 1, EULER_6[i]))
        np.testing.assert_array_equal(full[i], reference_betti(volume, 3, EULER_26[i]))
    assert faces[:, 1].max() > 0 and full[:, 1].max() > 0 and full[:, 2].max() > 0

    faces, full = run(known_shapes_3d())
    expected = [[1, 0, 0], [1, 0, 1], [1, 1, 0], [1, 3, 0]]
    np.testing.assert_array_equal(faces[:4], expected)
    np.testing.assert_array_equal(full[:4], expected)
    # Cubes touching along an edge: two pieces with faces only, one with edges; two cavities.
    np.testing.assert_array_equal(faces[4], [2, 0, 2])
    np.testing.assert_array_equal(full[4], [1, 0, 2])


def test_betti_numbers_1d_count_runs():
    masks = np.array([[1, 1, 0, 1, 0, 0, 1, 1, 1], [0] * 9, [1] * 9], bool)
    np.testing.assert_array_equal(betti_numbers(masks), [[3], [0], [1]])


def reference_errors(predictions, labels, num_classes, connectivity=None, counted=None):
    counted = np.ones(labels.shape, bool) if counted is None else counted
    out = np.zeros((len(labels), num_classes, labels.ndim - 1), np.int64)
    for b in range(len(labels)):
        for c in range(num_classes):
            p = reference_betti((predictions[b] == c) & counted[b], connectivity)
            g = reference_betti((labels[b] == c) & counted[b], connectivity)
            out[b, c] = np.abs(np.subtract(p, g))
    return out


def test_betti_errors_match_the_reference_per_class():
    predictions, labels = cldice_data()
    excluded = np.zeros(labels.shape, bool)
    excluded[1, 3:5, 3:7] = True  # the hole of the block
    excluded[1, 1:7, 4] = True  # a cut through the block
    excluded[0, 0:3, 0] = True
    ignored = np.where(excluded, IGNORE, labels).astype(np.int32)

    def run(p, g, ig, m, hp, hg):
        return {
            "full": betti_errors(p, g, num_classes=4, include_background=True),
            "faces": betti_errors(p, g, num_classes=4, connectivity=1),
            "ignore": betti_errors(p, ig, num_classes=4, ignore_index=IGNORE),
            "mask": betti_errors(p, g, num_classes=4, mask=m),
            "one-hot": betti_errors(hp, hg, class_axis=1),
        }

    hot = lambda x: np.moveaxis(x[..., None] == np.arange(4), -1, 1)  # noqa: E731
    result = jax.jit(run)(predictions, labels, ignored, ~excluded, hot(predictions), hot(labels))
    full = reference_errors(predictions, labels, 4)
    assert result["full"].dtype == jnp.int32 and result["full"].shape == (2, 4, 2)
    np.testing.assert_array_equal(result["full"], full)
    np.testing.assert_array_equal(
        result["faces"], reference_errors(predictions, labels, 4, 1)[:, 1:]
    )
    np.testing.assert_array_equal(result["one-hot"], full[:, 1:])
    masked = reference_errors(predictions, labels, 4, counted=~excluded)[:, 1:]
    np.testing.assert_array_equal(result["ignore"], masked)
    np.testing.assert_array_equal(result["mask"], masked)
    assert full.any() and not np.array_equal(masked, full[:, 1:])


def test_a_perfect_prediction_has_no_betti_error():
    _, labels = cldice_data()
    errors = betti_errors(labels, labels, num_classes=4, include_background=True)
    np.testing.assert_array_equal(errors, 0)


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda: betti_numbers(np.ones((1, 3, 3, 3), bool), connectivity=2), ValueError, "18"),
        (lambda: betti_numbers(np.ones((1, 3, 3), bool), connectivity=3), ValueError, "[1, 2]"),
        (lambda: betti_numbers(np.ones((1, 3, 3), bool), connectivity=True), TypeError, "int"),
        (lambda: betti_numbers(np.ones((1, 3, 3), np.int32)), TypeError, "boolean"),
        (lambda: betti_numbers(np.ones((3, 3, 3, 3, 3), bool)), ValueError, "spatial axes"),
        (
            lambda: betti_errors(np.ones((1, 3, 3, 3), np.int32), np.ones((1, 3, 3, 3), np.int32),
                                 num_classes=2, connectivity=2),
            ValueError,
            "connectivity",
        ),
    ],
)  # fmt: skip
def test_bad_inputs_name_the_argument(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value)


def test_checked_mode_catches_classes_out_of_range():
    labels = jnp.array([[[0, 1, 1], [0, 5, 1]]], jnp.int32)
    for metric in (cldice, betti_errors):
        with pytest.raises(Exception, match=r"`labels` must lie in \[0, 2\)"):
            jsl.checked(metric)(labels % 2, labels, num_classes=2)
        with pytest.raises(Exception, match=r"`predictions` must lie in \[0, 2\)"):
            jsl.checked(metric)(labels, labels % 2, num_classes=2)
