"""The 2-D skeleton (``geometry.skeleton.skeletonize``) against scikit-image.

* fixed masks and their ``skimage.morphology.skeletonize`` skeletons, held as literals;
* a sequential NumPy transcription of scikit-image's loop, with its decision table rebuilt from
  Zhang & Suen's conditions and scikit-image's amendments, on random masks;
* properties (a subset of the mask, idempotent, empty stays empty, batch axes independent) and
  the errors for other dimensions and dtypes.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage as ndi

from jaxseg_losses.geometry.skeleton import skeletonize

# Each row: the mask, two spaces, its skeleton ("#" foreground). The skeletons were computed
# once with scikit-image 0.26.0, ``skimage.morphology.skeletonize(mask)`` (its 2-D default,
# ``method="zhang"``).
SKIMAGE_CASES = {
    "square with a hole": (
        "#######  .......",
        "#######  .......",
        "#######  ...#...",
        "###.###  ..#.#..",
        "#######  ...#...",
        "#######  .......",
        "#######  .......",
    ),
    "thick cross touching the border": (
        "...###...  ....#....",
        "...###...  ....#....",
        "#########  ....#..#.",
        "#########  #######..",
        "#########  ....#....",
        "...###...  ...#.....",
        "...###...  .........",
    ),
    "2x2 square in a corner": (
        "..##  ..##",
        "..##  ....",
        "....  ....",
        "....  ....",
    ),
    "disk": (
        "...........  ...........",
        "...#####...  ...........",
        "..#######..  ...........",
        ".#########.  ...........",
        ".#########.  ...........",
        ".#########.  .....#.....",
        ".#########.  ...........",
        ".#########.  ...........",
        "..#######..  ...........",
        "...#####...  ...........",
        "...........  ...........",
    ),
    "thick diagonal": (
        ".###........  ............",
        ".####.......  ............",
        "..####......  ............",
        "...####.....  ............",
        "....####....  .....##.....",
        ".....####...  .......#....",
        "......####..  ........#...",
        ".......####.  .........#..",
        "........###.  ............",
    ),
    "letter E": (
        "..........  ..........",
        ".########.  ...######.",
        ".########.  ..#.......",
        ".##.......  ..#.......",
        ".######...  ..#.......",
        ".######...  ...###....",
        ".########.  ......###.",
        ".########.  ..........",
        "..........  ..........",
    ),
    "blobs": (
        "............  ............",
        ".##########.  ............",
        ".##########.  ..###.......",
        ".##########.  .....#......",
        "..#########.  ......##....",
        "...########.  .....#......",
        "..#########.  ....#.......",
        ".##########.  ..##........",
        ".#########..  ............",
        "............  ............",
    ),
    "noise": (
        "#..#.#####  #.....####",
        ".###.#.##.  .###.#.#..",
        ".##.#.###.  .#..#.##..",
        "#.....####  #.....##..",
        "#..#.##.#.  #..#.#..#.",
        "#..###...#  #..###...#",
        "...#.#####  ...#.####.",
        "#####.##.#  #####.....",
    ),
    "all foreground": (
        "######  ......",
        "######  ...##.",
        "######  ..#...",
        "######  ......",
        "######  ......",
    ),
}


def _parse(rows):
    mask = np.array([[c == "#" for c in row.split()[0]] for row in rows])
    skeleton = np.array([[c == "#" for c in row.split()[1]] for row in rows])
    return mask, skeleton


def _canvas(arrays, shape, corner):
    """The arrays in one zero batch of ``shape``, at the top-left or bottom-right corner."""
    out = np.zeros((len(arrays), *shape), bool)
    for i, a in enumerate(arrays):
        h, w = a.shape
        rows = slice(0, h) if corner == "top-left" else slice(shape[0] - h, shape[0])
        cols = slice(0, w) if corner == "top-left" else slice(shape[1] - w, shape[1])
        out[i, rows, cols] = a
    return out


def test_skeletons_equal_skimage_literals():
    """Beyond the image is background for scikit-image too: a mask on a larger empty canvas
    has the same skeleton there, so every case runs in one batch, placed against two borders
    of the canvas and then the other two."""
    masks, skeletons = zip(*(_parse(rows) for rows in SKIMAGE_CASES.values()), strict=True)
    shape = (11, 12)
    thin = jax.jit(skeletonize)
    for corner in ("top-left", "bottom-right"):
        result = np.asarray(thin(jnp.asarray(_canvas(masks, shape, corner))))
        expected = _canvas(skeletons, shape, corner)
        for name, ours, theirs in zip(SKIMAGE_CASES, result, expected, strict=True):
            np.testing.assert_array_equal(ours, theirs, err_msg=f"{name} ({corner})")


def test_a_mask_filling_its_image_touches_every_border():
    mask, skeleton = _parse(SKIMAGE_CASES["thick cross touching the border"])
    np.testing.assert_array_equal(skeletonize(mask[None])[0], skeleton)


# ----------------------------------------------------------------------------------------------
# A sequential transcription of scikit-image's loop.

# scikit-image's table departs from Zhang & Suen's conditions in these codes (code: the
# subiterations that remove the pixel, 1 first, 2 second, 3 both), read from its table.
SKIMAGE_AMENDMENTS = {
    3: 1, 6: 1, 10: 3, 11: 1, 12: 1, 14: 1, 24: 2, 26: 2, 40: 3, 48: 0, 56: 2, 96: 2,
    104: 2, 108: 2, 129: 0, 130: 3, 131: 1, 134: 1, 160: 3, 161: 1, 176: 2, 192: 2, 194: 1,
    198: 1, 224: 2,
}  # fmt: skip


def zhang_suen_table():
    """For each code (bits NW, N, NE, E, SE, S, SW, W), the subiterations that remove a pixel:
    2 <= B <= 6 neighbours, A = 1 transition around it, N·E·S = E·S·W = 0 (first) and
    N·E·W = N·S·W = 0 (second); then scikit-image's amendments."""
    table = []
    for code in range(256):
        nw, n, ne, e, se, s, sw, w = ((code >> k) & 1 for k in range(8))
        ring = [n, ne, e, se, s, sw, w, nw]
        b = sum(ring)
        a = sum(ring[i] == 0 and ring[(i + 1) % 8] == 1 for i in range(8))
        base = 2 <= b <= 6 and a == 1
        first = base and n * e * s == 0 and e * s * w == 0
        second = base and n * e * w == 0 and n * s * w == 0
        table.append(SKIMAGE_AMENDMENTS.get(code, int(first) + 2 * int(second)))
    return table


def sequential_skeleton(mask):
    """scikit-image's loop, pixel by pixel: each subiteration reads the image as it was when
    the subiteration began; sweeps repeat until one removes nothing."""
    table = zhang_suen_table()
    image = np.pad(mask, 1).astype(int)
    offsets = [(-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1)]
    removed = True
    while removed:
        removed = False
        for bit in (1, 2):
            before = image.copy()
            for r in range(1, image.shape[0] - 1):
                for c in range(1, image.shape[1] - 1):
                    if not before[r, c]:
                        continue
                    code = sum(before[r + dr, c + dc] << k for k, (dr, dc) in enumerate(offsets))
                    if table[code] & bit:
                        image[r, c] = 0
                        removed = True
    return image[1:-1, 1:-1].astype(bool)


def test_skeletons_equal_the_sequential_loop_on_random_masks():
    rng = np.random.default_rng(0)
    masks = [rng.random((13, 15)) < p for p in (0.2, 0.45, 0.6, 0.75, 0.9)]
    masks += [ndi.binary_dilation(rng.random((13, 15)) < 0.08, iterations=k) for k in (1, 2, 3)]
    masks += [ndi.binary_closing(rng.random((13, 15)) < 0.6) for _ in range(4)]
    masks = np.stack(masks)
    result = np.asarray(jax.jit(skeletonize)(masks))
    for i, mask in enumerate(masks):
        np.testing.assert_array_equal(result[i], sequential_skeleton(mask), err_msg=f"mask {i}")


def test_the_rebuilt_table_reproduces_a_literal():
    mask, skeleton = _parse(SKIMAGE_CASES["noise"])
    np.testing.assert_array_equal(sequential_skeleton(mask), skeleton)


# ----------------------------------------------------------------------------------------------
# Properties and errors.


def test_properties():
    rng = np.random.default_rng(1)
    seeds = rng.random((6, 12, 14)) < 0.1
    masks = np.stack([np.asarray(ndi.binary_dilation(s, iterations=2), bool) for s in seeds])
    masks[0] = False
    thin = jax.jit(skeletonize)
    skeletons = np.asarray(thin(masks))
    assert skeletons.dtype == np.bool_ and skeletons.shape == masks.shape
    assert not (skeletons & ~masks).any()  # a subset of the mask
    assert not skeletons[0].any()  # an empty mask stays empty
    np.testing.assert_array_equal(thin(skeletons), skeletons)  # a skeleton is its own skeleton
    # Images of a batch converge after different numbers of sweeps, independently.
    for i in range(1, len(masks)):
        np.testing.assert_array_equal(thin(masks[i : i + 1])[0], skeletons[i])
    vmapped = jax.vmap(skeletonize)(jnp.asarray(masks.reshape(2, 3, 12, 14)))
    np.testing.assert_array_equal(np.asarray(vmapped).reshape(masks.shape), skeletons)


@pytest.mark.parametrize(
    ("mask", "error", "words"),
    [
        (np.ones((2, 5, 5), np.int32), TypeError, "boolean"),
        (np.ones((2, 5), bool), ValueError, "1 spatial axes"),
        (np.ones((2, 4, 5, 6), bool), ValueError, "3-D skeleton"),
        (np.ones((5, 5), bool), ValueError, "mask[None]"),
    ],
)
def test_bad_inputs_name_the_argument(mask, error, words):
    with pytest.raises(error, match="`mask`") as info:
        skeletonize(mask)
    assert words in str(info.value)
