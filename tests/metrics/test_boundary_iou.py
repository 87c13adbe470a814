"""Boundary IoU against a NumPy/scipy reference of Cheng et al.'s ``mask_to_boundary`` and
against numbers of their OpenCV code.

The reference below is written from the authors' ``boundary_iou/utils/boundary_utils.py``: the
width ``max(1, round(ratio * diagonal))`` with Python's ``round``, the mask padded by one
background pixel, eroded ``d`` times by the 3 x 3 (3 x 3 x 3) cube of ones, the padding cropped,
the band ``mask & ~eroded``; an excluded pixel is background in both masks. Every option runs
under ``jax.jit``; each shape compiles one program for all of its options.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage as ndi

import jaxseg_losses as jsl
from jaxseg_losses.metrics.boundary_iou import boundary_iou
from tests.helpers import IGNORE

RATIOS = (0.0, 0.02, 0.1, 0.15, 0.3, 1.0)


# ----------------------------------------------------------------------------------------------
# The reference.


def reference_band(mask: np.ndarray, ratio: float) -> np.ndarray:
    """The inner band of a boolean mask of any rank, as mask_to_boundary computes it."""
    width = max(1, round(ratio * np.sqrt(sum(n * n for n in mask.shape))))
    padded = np.pad(mask, 1)
    cube = np.ones((3,) * mask.ndim, bool)
    eroded = np.asarray(
        ndi.binary_erosion(padded, structure=cube, iterations=width, border_value=0), bool
    )
    return mask & ~eroded[(slice(1, -1),) * mask.ndim]


def reference_boundary_iou(predictions, labels, num_classes, ratio, *, background, counted=None):
    """``[B, C]`` from integer maps; ``counted`` (bool ``[B, *spatial]``) marks kept pixels."""
    if counted is None:
        counted = np.ones(labels.shape, bool)
    first = 0 if background else 1
    out = np.zeros((labels.shape[0], num_classes - first))
    for b in range(labels.shape[0]):
        for c in range(first, num_classes):
            p = reference_band((predictions[b] == c) & counted[b], ratio)
            g = reference_band((labels[b] == c) & counted[b], ratio)
            union = np.sum(p | g)
            out[b, c - first] = np.sum(p & g) / union if union else np.nan
    return out


# ----------------------------------------------------------------------------------------------
# Data.


def blobs(rng, shape, num_classes, count):
    """Integer maps with two random boxes per foreground class, some touching the border."""
    maps = np.zeros((count, *shape), np.int32)
    for b in range(count):
        for c in range(1, num_classes):
            for _ in range(2):
                lo = [rng.integers(0, n - 2) for n in shape]
                hi = [rng.integers(a + 2, n + 1) for a, n in zip(lo, shape, strict=True)]
                maps[(b, *(slice(a, z) for a, z in zip(lo, hi, strict=True)))] = c
    return maps


def make_case(seed, shape, num_classes=4):
    """(predictions, labels, excluded): the prediction is the labels shifted by a pixel with some
    pixels flipped; image 0 has class 1 only in the labels, class 2 only in the prediction and
    class 3 in neither."""
    rng = np.random.default_rng(seed)
    labels = blobs(rng, shape, num_classes, count=2)
    shift = rng.integers(-1, 2, len(shape))
    predictions = np.roll(labels, shift, axis=tuple(range(1, labels.ndim)))
    flips = rng.random(labels.shape) < 0.05
    predictions = np.where(flips, rng.integers(0, num_classes, labels.shape), predictions)
    predictions = predictions.astype(np.int32)
    predictions[0][predictions[0] == 1] = 0
    labels[0][labels[0] == 2] = 0
    predictions[0][predictions[0] == 3] = 0
    labels[0][labels[0] == 3] = 0
    excluded = rng.random(labels.shape) < 0.1
    return predictions, labels, excluded


@functools.partial(jax.jit, static_argnames=("num_classes",))
def all_options(predictions, labels, ignored_labels, keep, *, num_classes):
    """Every option on one data set, in one program."""
    common = dict(num_classes=num_classes)
    out = {
        f"ratio {r}": boundary_iou(predictions, labels, dilation_ratio=r, **common) for r in RATIOS
    }
    out["background"] = boundary_iou(predictions, labels, include_background=True, **common)
    hot_p = jnp.moveaxis(jax.nn.one_hot(predictions, num_classes, dtype=jnp.bool_), -1, 1)
    hot_g = jnp.moveaxis(jax.nn.one_hot(labels, num_classes, dtype=jnp.bool_), -1, 1)
    out["one-hot nchw"] = boundary_iou(hot_p, hot_g, class_axis=1, dilation_ratio=0.1)
    out["one-hot prediction"] = boundary_iou(
        jax.nn.one_hot(predictions, num_classes, dtype=jnp.bool_), labels, **common
    )
    out["mask"] = boundary_iou(predictions, labels, mask=keep, dilation_ratio=0.1, **common)
    out["float mask"] = boundary_iou(
        predictions, labels, mask=keep.astype(jnp.float32) * 0.5, dilation_ratio=0.1, **common
    )
    out["ignore_index"] = boundary_iou(
        predictions, ignored_labels, ignore_index=IGNORE, dilation_ratio=0.1, **common
    )
    return out


def expected_options(predictions, labels, excluded, num_classes):
    ref = functools.partial(reference_boundary_iou, predictions, labels, num_classes)
    out = {f"ratio {r}": ref(r, background=False) for r in RATIOS}
    out["background"] = ref(0.02, background=True)
    out["one-hot nchw"] = ref(0.1, background=False)
    out["one-hot prediction"] = ref(0.02, background=False)
    for name in ("mask", "float mask", "ignore_index"):
        out[name] = ref(0.1, background=False, counted=~excluded)
    return out


SHAPES = {"1-D": (41,), "2-D": (17, 23), "3-D": (7, 9, 8)}


@pytest.mark.parametrize("dims", list(SHAPES))
def test_matches_reference_for_every_option(dims):
    predictions, labels, excluded = make_case(1, SHAPES[dims])
    ignored = np.where(excluded, IGNORE, labels).astype(np.int32)
    ours = all_options(predictions, labels, ignored, ~excluded, num_classes=4)
    expected = expected_options(predictions, labels, excluded, 4)
    assert set(ours) == set(expected)
    for name, value in expected.items():
        got = np.asarray(ours[name])
        assert got.dtype == np.float32 and got.shape == value.shape, name
        np.testing.assert_allclose(got, value, rtol=1e-6, atol=0, err_msg=f"{dims} {name}")
    # The empty cases of image 0 (columns of classes 1, 2, 3): only in the labels, only in the
    # prediction, in neither.
    for name, value in ours.items():
        row = np.asarray(value)[0, -3:]
        assert row[0] == 0 and row[1] == 0 and np.isnan(row[2]), (name, row)
    # Image 1 has every class in both masks: values strictly between 0 and 1.
    partial = np.asarray(ours["ratio 0.1"])[1]
    assert np.any((partial > 0) & (partial < 1)), partial


def test_wide_band_is_mask_iou():
    """With d at least the largest half-width, the band is the whole mask: mask IoU."""
    predictions, labels, _ = make_case(2, (12, 15))
    ours = np.asarray(jax.jit(boundary_iou, static_argnames=("num_classes", "dilation_ratio"))(
        predictions, labels, num_classes=4, dilation_ratio=0.5
    ))  # fmt: skip
    for b in range(2):
        for c in range(1, 4):
            p, g = predictions[b] == c, labels[b] == c
            union = np.sum(p | g)
            expected = np.sum(p & g) / union if union else np.nan
            np.testing.assert_allclose(ours[b, c - 1], expected, rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# Numbers of the authors' OpenCV implementation.


def _opencv_cases():
    gt_a = np.zeros((20, 30), np.int32)
    gt_a[4:15, 5:22] = 1
    dt_a = np.zeros((20, 30), np.int32)
    dt_a[6:17, 3:20] = 1
    gt_b = np.zeros((30, 40), np.int32)
    gt_b[0:18, 10:40] = 1  # touches the top and right borders
    gt_b[20:28, 2:9] = 1
    dt_b = np.zeros((30, 40), np.int32)
    dt_b[2:20, 12:38] = 1
    dt_b[22:30, 0:8] = 1
    return {"A": (gt_a, dt_a), "B": (gt_b, dt_b)}


# Computed once with Cheng et al.'s mask_to_boundary (boundary-iou-api commit 37d2558,
# boundary_iou/utils/boundary_utils.py) run with opencv-python-headless 5.1.0 and NumPy 2.4:
# boundary_iou = |G_d & P_d| / |G_d | P_d| of the uint8 masks above, as intersection / union.
# Case B, ratio 0.05: the diagonal is 50 and round(2.5) = 2 (half to even), which OpenCV's
# numbers confirm (d = 3 would give 118 / 476).
OPENCV = {
    ("A", 0.02): (2, 102),
    ("A", 0.05): (8, 184),
    ("A", 0.07): (52, 212),
    ("A", 0.1): (88, 232),
    ("A", 0.2): (135, 239),
    ("B", 0.02): (4, 226),
    ("B", 0.05): (20, 408),
    ("B", 0.07): (196, 532),
    ("B", 0.1): (260, 580),
    ("B", 0.2): (452, 676),
}


def test_matches_opencv_numbers():
    cases = _opencv_cases()

    @jax.jit
    def run(a_gt, a_dt, b_gt, b_dt):
        inputs = {"A": (a_gt, a_dt), "B": (b_gt, b_dt)}
        values = {}
        for case, ratio in OPENCV:
            gt, dt = inputs[case]
            values[case, ratio] = boundary_iou(
                dt[None], gt[None], num_classes=2, dilation_ratio=ratio
            )[0, 0]
        return values

    ours = run(*cases["A"], *cases["B"])
    for key, (intersection, union) in OPENCV.items():
        np.testing.assert_allclose(ours[key], np.float32(intersection / union), rtol=1e-7)
        gt, dt = cases[key[0]]
        ref = reference_boundary_iou(dt[None], gt[None], 2, key[1], background=False)
        np.testing.assert_allclose(ref[0, 0], intersection / union, rtol=1e-12)


# ----------------------------------------------------------------------------------------------
# Excluded pixels.


def test_excluded_pixels_are_inert():
    """Whatever an excluded pixel holds (another class, a value that is no class) changes no
    value, and jsl.checked does not flag it; a perfect prediction scores 1 whatever is
    excluded."""
    predictions, labels, excluded = make_case(3, (13, 14))
    rng = np.random.default_rng(4)
    junk_p = np.where(excluded, rng.choice([-1, 0, 2, 7, IGNORE], labels.shape), predictions)
    junk_g = np.where(excluded, rng.choice([-3, 1, 3, 9], labels.shape), labels)
    ignored = np.where(excluded, IGNORE, labels)
    junk_ignored = np.where(excluded, IGNORE, junk_g)

    @jax.jit
    def run(p, g, keep, gi, pi):
        with_mask = jsl.checked(boundary_iou)(p, g, num_classes=4, mask=keep, dilation_ratio=0.1)
        with_ignore = jsl.checked(boundary_iou)(
            pi, gi, num_classes=4, ignore_index=IGNORE, dilation_ratio=0.1
        )
        perfect = boundary_iou(g, g, num_classes=4, mask=keep, dilation_ratio=0.1)
        return with_mask, with_ignore, perfect

    clean = run(predictions, labels, ~excluded, ignored, predictions)
    junk = run(junk_p.astype(np.int32), junk_g.astype(np.int32), ~excluded,
               junk_ignored.astype(np.int32), junk_p.astype(np.int32))  # fmt: skip
    for a, b in zip(clean, junk, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(clean[0]), np.asarray(clean[1]))
    perfect = np.asarray(clean[2])
    present = ~np.isnan(perfect)
    assert present.sum() >= 4 and np.all(perfect[present] == 1.0)


def test_excluded_pixel_is_like_the_image_border():
    """A mask next to an excluded column has a band along it, as along the image border: the
    same result as the image cropped at that column."""
    labels = np.zeros((1, 10, 12), np.int32)
    labels[0, 2:9, 1:12] = 1
    predictions = np.zeros((1, 10, 12), np.int32)
    predictions[0, 3:9, 2:12] = 1
    keep = np.ones((1, 10, 12), bool)
    keep[:, :, 6] = False
    ours = boundary_iou(predictions, labels, num_classes=2, mask=keep, dilation_ratio=0.05)
    expected = reference_boundary_iou(predictions, labels, 2, 0.05, background=False, counted=keep)
    np.testing.assert_allclose(np.asarray(ours), expected, rtol=1e-6)
    # Without the mask the band runs along the object's contour only: a different value.
    plain = boundary_iou(predictions, labels, num_classes=2, dilation_ratio=0.05)
    assert float(plain[0, 0]) != float(ours[0, 0])


def test_checked_flags_labels_out_of_range_on_counted_pixels():
    labels = jnp.array([[0, 1, 1, 0, 5]], jnp.int32)
    with pytest.raises(Exception, match=r"`labels` must lie in \[0, 2\)"):
        jsl.checked(boundary_iou)(labels % 2, labels, num_classes=2)


# ----------------------------------------------------------------------------------------------
# Bad arguments.


def test_bad_arguments_raise_naming_the_argument():
    labels = jnp.zeros((2, 8, 8), jnp.int32)
    hot = jnp.zeros((2, 8, 8, 3), bool)
    cases = [
        (TypeError, "`dilation_ratio` must be a Python float", dict(dilation_ratio=True)),
        (TypeError, "`dilation_ratio` must be a Python float", dict(dilation_ratio="0.1")),
        (TypeError, "`dilation_ratio` must be a Python float", dict(dilation_ratio=jnp.ones(()))),
        (ValueError, "`dilation_ratio` must be finite and non-negative", dict(dilation_ratio=-0.1)),
        (ValueError, "`dilation_ratio` must be finite", dict(dilation_ratio=float("nan"))),
        (ValueError, "`dilation_ratio` must be finite", dict(dilation_ratio=float("inf"))),
        (TypeError, "`include_background` must be True or False", dict(include_background=1)),
        (TypeError, "`class_axis` must be an int", dict(class_axis=1.0)),
        (ValueError, "`mask` must have shape (2, 8, 8)", dict(mask=jnp.ones((2, 8), bool))),
        (ValueError, "`ignore_index` applies to integer labels", dict(ignore_index=255)),
    ]
    for error, message, options in cases:
        with pytest.raises(error) as raised:
            boundary_iou(hot, hot, **options)
        assert message in str(raised.value), (message, str(raised.value))
    more = [
        (ValueError, "need `num_classes`", lambda: boundary_iou(labels, labels)),
        (
            TypeError,
            "`predictions` must be integer class indices or boolean",
            lambda: boundary_iou(labels.astype(jnp.float32), labels, num_classes=3),
        ),
        (
            ValueError,
            "same images and classes",
            lambda: boundary_iou(labels[:, :4], labels, num_classes=3),
        ),
        (ValueError, "would leave no class", lambda: boundary_iou(hot[..., :1], hot[..., :1])),
        (
            ValueError,
            "with 1 to 3 spatial axes",
            lambda: boundary_iou(jnp.zeros((1, 2, 2, 2, 2), jnp.int32), labels, num_classes=2),
        ),
        (ValueError, "have 3 classes", lambda: boundary_iou(hot, hot, num_classes=4)),
    ]
    for error, message, call in more:
        with pytest.raises(error) as raised:
            call()
        assert message in str(raised.value), (message, str(raised.value))


def test_one_hot_and_integer_forms_agree_and_numpy_ratio_is_accepted():
    predictions, labels, _ = make_case(5, (9, 11))
    ours = boundary_iou(predictions, labels, num_classes=4, dilation_ratio=np.float64(0.1))
    hot = boundary_iou(
        np.eye(4, dtype=bool)[predictions], np.eye(4, dtype=bool)[labels], dilation_ratio=0.1
    )
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(hot))
