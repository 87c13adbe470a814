"""Connected components (``jsl.metrics.connected_components``) against ``scipy.ndimage.label``:
identical labels, numbering included, and counts, for 1-D to 3-D masks and every connectivity;
the hard cases (serpentines filling a 512 × 512 image, a spiral, one-pixel components, components
on the border, empty and full masks); the rounds and jumping steps (logarithmic, never linear in a
component's length); ``vmap``; bad input.
"""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage as ndi

import jaxseg_losses as jsl
from jaxseg_losses.geometry.components import label_components

SHAPES = {1: (40,), 2: (17, 23), 3: (7, 9, 11)}
CASES = [(dims, k) for dims in (1, 2, 3) for k in range(1, dims + 1)]


def scipy_labels(masks, connectivity):
    structure = ndi.generate_binary_structure(masks.ndim - 1, connectivity)
    results = [ndi.label(mask, structure) for mask in masks]
    return np.stack([r[0] for r in results]), np.array([r[1] for r in results])


def mask_batch(dims, seed):
    """Random masks of several densities, plus an empty, a full, a checkerboard (one-element
    components at connectivity 1) and a mask whose components touch every border."""
    rng = np.random.default_rng(seed)
    shape = SHAPES[dims]
    masks = [rng.random(shape) < p for p in (0.2, 0.4, 0.5, 0.6, 0.8)]
    masks.append(np.zeros(shape, bool))
    masks.append(np.ones(shape, bool))
    masks.append(np.indices(shape).sum(axis=0) % 2 == 0)
    border = np.zeros(shape, bool)
    for axis in range(dims):
        border[(slice(None),) * axis + (0,)] = True
        border[(slice(None),) * axis + (-1,)] = True
    masks.append(border & (rng.random(shape) < 0.7))
    return np.stack(masks)


@functools.partial(jax.jit, static_argnames="connectivity")
def _label(masks, connectivity):
    return jsl.metrics.connected_components(masks, connectivity=connectivity)


@pytest.mark.parametrize(("dims", "connectivity"), CASES)
def test_labels_equal_scipy_including_the_numbering(dims, connectivity):
    masks = mask_batch(dims, seed=dims * 10 + connectivity)
    labels, counts = _label(masks, connectivity)
    expected_labels, expected_counts = scipy_labels(masks, connectivity)
    assert labels.dtype == jnp.int32 and counts.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(labels), expected_labels)
    np.testing.assert_array_equal(np.asarray(counts), expected_counts)


def serpentine(size, *, transpose=False):
    """One path filling a square: every other row, joined at alternating ends."""
    mask = np.zeros((size, size), bool)
    mask[::2] = True
    for row in range(1, size, 2):
        mask[row, size - 1 if (row // 2) % 2 == 0 else 0] = True
    return np.ascontiguousarray(mask.T) if transpose else mask


def spiral(size):
    """A square spiral path with a one-element gap between its turns."""
    mask = np.zeros((size, size), bool)
    top, left, bottom, right = 0, 0, size - 1, size - 1
    while top <= bottom and left <= right:
        mask[top, left : right + 1] = True
        mask[top : bottom + 1, right] = True
        if top + 2 <= bottom:
            mask[bottom, left : right + 1] = True
        if left + 2 <= right and top + 2 <= bottom:
            mask[top + 2 : bottom + 1, left] = True
            mask[top + 2, left : left + 3] = True
        top, left, bottom, right = top + 2, left + 2, bottom - 2, right - 2
    return mask


@pytest.mark.parametrize("transpose", [False, True], ids=["rows", "columns"])
def test_a_serpentine_filling_512x512_is_one_component_in_few_rounds(transpose):
    mask = serpentine(512, transpose=transpose)[None]
    result = jax.jit(label_components)(mask)
    np.testing.assert_array_equal(np.asarray(result.labels), mask.astype(np.int32))
    assert int(result.counts[0]) == 1
    # Rounds do not grow with the path's length (131,327 elements); jumping steps grow with its
    # logarithm: 2 per test of flatness, about log2 of the longest chain per round.
    assert int(result.rounds) <= 2
    assert int(result.jumps) <= 2 * (int(np.log2(mask.size)) + 2)


def test_rounds_and_jumps_stay_logarithmic_as_a_path_doubles():
    steps = []
    for size in (64, 128, 256):
        result = jax.jit(label_components)(serpentine(size, transpose=True)[None])
        assert int(result.counts[0]) == 1
        steps.append((int(result.rounds), int(result.jumps)))
    rounds = [r for r, _ in steps]
    jumps = [j for _, j in steps]
    assert max(rounds) == min(rounds)  # the same rounds for a path 4 times as long
    assert all(later - earlier <= 4 for earlier, later in itertools.pairwise(jumps))


def test_a_spiral_and_one_pixel_components():
    spiral_mask = spiral(63)
    dots = np.zeros((63, 63), bool)
    dots[::2, ::2] = True  # 1,024 one-element components at every connectivity
    masks = np.stack([spiral_mask, dots, spiral_mask | dots])
    for connectivity in (1, 2):
        labels, counts = _label(masks, connectivity)
        expected_labels, expected_counts = scipy_labels(masks, connectivity)
        np.testing.assert_array_equal(np.asarray(labels), expected_labels)
        np.testing.assert_array_equal(np.asarray(counts), expected_counts)
    assert int(expected_counts[1]) == 32 * 32


def test_vmap_over_images_equals_the_batch():
    masks = mask_batch(2, seed=5)
    labels, counts = _label(masks, 2)
    mapped_labels, mapped_counts = jax.vmap(
        lambda m: jsl.metrics.connected_components(m[None], connectivity=2)
    )(masks)
    np.testing.assert_array_equal(np.asarray(mapped_labels[:, 0]), np.asarray(labels))
    np.testing.assert_array_equal(np.asarray(mapped_counts[:, 0]), np.asarray(counts))


def test_the_doc_example_numbers_like_scipy():
    mask = np.array([[[1, 1, 0, 0], [0, 0, 0, 1], [1, 0, 1, 1]]], bool)
    labels, counts = jsl.metrics.connected_components(mask)
    np.testing.assert_array_equal(np.asarray(labels[0]), ndi.label(mask[0])[0])
    assert counts.tolist() == [3]


@pytest.mark.parametrize(
    ("mask", "options", "error", "match"),
    [
        (np.ones((2, 4, 4), np.int32), {}, TypeError, r"`mask` must be a boolean mask.*int32"),
        (np.ones((4,), bool), {}, ValueError, r"`mask` must be \[B, \*spatial\].*got shape \(4,\)"),
        (np.ones((1, 2, 2, 2, 2), bool), {}, ValueError, r"rank 2 to 4"),
        (np.ones((2, 4, 4), bool), {"connectivity": 3}, ValueError, r"\[1, 2\].*got 3"),
        (np.ones((2, 4, 4), bool), {"connectivity": 0}, ValueError, r"\[1, 2\]"),
        (np.ones((2, 4, 4), bool), {"connectivity": True}, TypeError, r"must be an int"),
        (np.ones((2, 4, 4), bool), {"connectivity": 1.0}, TypeError, r"must be an int"),
    ],
)
def test_bad_input_is_named(mask, options, error, match):
    with pytest.raises(error, match=match):
        jsl.metrics.connected_components(mask, **options)
