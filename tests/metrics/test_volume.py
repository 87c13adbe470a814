"""The volume difference against a NumPy reference written from its docstring and against the
numbers of panoptica's and Metrics Reloaded's tests.

Every option runs under ``jax.jit``; each shape compiles one program for all of its options.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxseg_losses as jsl
from jaxseg_losses.metrics.volume import volume_difference
from tests.helpers import IGNORE

# ----------------------------------------------------------------------------------------------
# The reference.


def reference_volume_difference(
    predictions, labels, num_classes, *, absolute, relative, ignore_empty=False, spacing=None,
    background=False, counted=None,
):  # fmt: skip
    """``[B, C]`` from integer maps: ``v (|P| - |G|)`` or ``(|P| - |G|) / |G|`` (NaN for an
    empty ``G``), its magnitude with ``absolute``, NaN for an empty ``G`` with
    ``ignore_empty``; ``counted`` marks the pixels kept."""
    batch, dims = labels.shape[0], labels.ndim - 1
    if counted is None:
        counted = np.ones(labels.shape, bool)
    rows = np.broadcast_to(np.ones(dims) if spacing is None else spacing, (batch, dims))
    first = 0 if background else 1
    out = np.zeros((batch, num_classes - first))
    for b in range(batch):
        for c in range(first, num_classes):
            p = int(np.sum((predictions[b] == c) & counted[b]))
            g = int(np.sum((labels[b] == c) & counted[b]))
            if relative or (ignore_empty and not g):
                value = (p - g) / g if g else np.nan
            else:
                value = (p - g) * np.prod(rows[b].astype(np.float64))
            out[b, c - first] = abs(value) if absolute else value
    return out


def make_case(seed, shape, num_classes=4):
    """(predictions, labels, excluded, spacing [B, D]); image 0 has class 1 only in the labels,
    class 2 only in the prediction and class 3 in neither."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, (3, *shape)).astype(np.int32)
    predictions = np.where(rng.random(labels.shape) < 0.3, rng.integers(0, 4, labels.shape), labels)
    predictions = predictions.astype(np.int32)
    predictions[0][predictions[0] == 1] = 0
    labels[0][labels[0] == 2] = 0
    predictions[0][predictions[0] == 3] = 0
    labels[0][labels[0] == 3] = 0
    excluded = rng.random(labels.shape) < 0.15
    spacing = rng.uniform(0.3, 2.5, (3, len(shape))).astype(np.float32)
    return predictions, labels, excluded, spacing


FLAGS = [(a, r) for a in (False, True) for r in (False, True)]


@functools.partial(jax.jit, static_argnames=("num_classes",))
def all_options(predictions, labels, ignored_labels, keep, spacing, *, num_classes):
    """Every option on one data set, in one program."""
    common = dict(num_classes=num_classes)
    out = {}
    for absolute, relative in FLAGS:
        flags = dict(absolute=absolute, relative=relative)
        out[f"{flags}"] = volume_difference(predictions, labels, **flags, **common)
        out[f"{flags} rows"] = volume_difference(
            predictions, labels, spacing=spacing, **flags, **common
        )
        out[f"{flags} mask"] = volume_difference(
            predictions, labels, mask=keep, spacing=spacing[0], **flags, **common
        )
        out[f"{flags} ignore_empty"] = volume_difference(
            predictions, labels, ignore_empty=True, spacing=spacing, **flags, **common
        )
    out["background"] = volume_difference(predictions, labels, include_background=True, **common)
    out["scalar spacing"] = volume_difference(predictions, labels, spacing=0.5, **common)
    hot_p = jnp.moveaxis(jax.nn.one_hot(predictions, num_classes, dtype=jnp.bool_), -1, 1)
    hot_g = jnp.moveaxis(jax.nn.one_hot(labels, num_classes, dtype=jnp.bool_), -1, 1)
    out["one-hot nchw"] = volume_difference(hot_p, hot_g, class_axis=1)
    out["float mask"] = volume_difference(
        predictions, labels, mask=keep.astype(jnp.float32) * 0.5, **common
    )
    out["ignore_index"] = volume_difference(
        predictions, ignored_labels, ignore_index=IGNORE, **common
    )
    return out


def expected_options(predictions, labels, excluded, spacing, num_classes):
    ref = functools.partial(reference_volume_difference, predictions, labels, num_classes)
    out = {}
    for absolute, relative in FLAGS:
        flags = dict(absolute=absolute, relative=relative)
        out[f"{flags}"] = ref(**flags)
        out[f"{flags} rows"] = ref(**flags, spacing=spacing)
        out[f"{flags} mask"] = ref(**flags, spacing=spacing[0], counted=~excluded)
        out[f"{flags} ignore_empty"] = ref(**flags, ignore_empty=True, spacing=spacing)
    signed = dict(absolute=False, relative=False)
    out["background"] = ref(**signed, background=True)
    out["scalar spacing"] = ref(**signed, spacing=0.5)
    out["one-hot nchw"] = ref(**signed)
    out["float mask"] = ref(**signed, counted=~excluded)
    out["ignore_index"] = ref(**signed, counted=~excluded)
    return out


SHAPES = {"1-D": (37,), "2-D": (11, 13), "3-D": (5, 6, 7)}


@pytest.mark.parametrize("dims", list(SHAPES))
def test_matches_reference_for_every_option(dims):
    predictions, labels, excluded, spacing = make_case(0, SHAPES[dims])
    ignored = np.where(excluded, IGNORE, labels).astype(np.int32)
    ours = all_options(predictions, labels, ignored, ~excluded, spacing, num_classes=4)
    expected = expected_options(predictions, labels, excluded, spacing, 4)
    assert set(ours) == set(expected)
    for name, value in expected.items():
        got = np.asarray(ours[name])
        assert got.dtype == np.float32 and got.shape == value.shape, name
        np.testing.assert_allclose(got, value, rtol=1e-6, atol=0, err_msg=f"{dims} {name}")
    # Voxel counts are exact: the differences in voxels are the reference's integers.
    counts = expected["{'absolute': False, 'relative': False}"]
    np.testing.assert_array_equal(
        np.asarray(ours["{'absolute': False, 'relative': False}"]), counts
    )
    # Image 0: class 1 only in the labels (negative), 2 only in the prediction (positive, and a
    # relative difference of NaN), 3 in neither (0, relative NaN).
    signed = counts[0]
    relative = np.asarray(ours["{'absolute': False, 'relative': True}"])[0]
    assert signed[0] < 0 and signed[1] > 0 and signed[2] == 0
    np.testing.assert_array_equal(relative, [-1.0, np.nan, np.nan])
    ignoring = np.asarray(ours["{'absolute': True, 'relative': False} ignore_empty"])[0]
    assert ignoring[0] > 0 and np.isnan(ignoring[1]) and np.isnan(ignoring[2])


# MONAI 1.6.1 (torch 2.13 CPU): compute_absolute_volume_difference(one_hot(PREDS), one_hot(LABELS))
# on [B, C, H, W] one-hot float tensors with include_background=True, printed once.
MONAI_LABELS = np.array([[[0, 1, 1, 2], [0, 1, 1, 2], [0, 0, 0, 0]],
                         [[2, 2, 0, 0], [2, 2, 0, 0], [0, 0, 0, 0]]], np.int32)  # fmt: skip
MONAI_PREDS = np.array([[[0, 1, 1, 1], [0, 1, 1, 1], [1, 0, 0, 0]],
                        [[2, 2, 2, 0], [1, 2, 0, 0], [0, 0, 0, 1]]], np.int32)  # fmt: skip
MONAI_AVD = {
    True: [[1.0, 3.0, 2.0], [2.0, np.nan, 0.0]],  # ignore_empty=True (MONAI's default)
    False: [[1.0, 3.0, 2.0], [2.0, 2.0, 0.0]],
}


def test_matches_monai_absolute_volume_difference():
    @jax.jit
    def run(predictions, labels):
        options = dict(num_classes=3, absolute=True, include_background=True)
        return {
            flag: volume_difference(predictions, labels, ignore_empty=flag, **options)
            for flag in (True, False)
        }

    ours = run(MONAI_PREDS, MONAI_LABELS)
    for flag, expected in MONAI_AVD.items():
        np.testing.assert_array_equal(np.asarray(ours[flag]), np.array(expected, np.float32))


# ----------------------------------------------------------------------------------------------
# Peer numbers.

# panoptica (BrainLesion/panoptica, commit b0ac3e4): unit_tests/unit_test_utils.py's arrays and
# the RVD values asserted in unit_tests/test_metrics.py (Test_RVD): (pred - ref) / ref.
_OVER = np.array([[0, 0, 1, 0], [1, 1, 1, 0], [1, 1, 1, 1], [0, 1, 1, 0]])
_SMALL = np.array([[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]])
_APART = np.array([[0, 1, 0, 1], [0, 1, 0, 1], [0, 1, 0, 0], [0, 1, 0, 0]])
_SAME = np.array([[0, 1, 1, 1], [0, 1, 1, 1], [0, 1, 0, 0], [0, 1, 0, 0]])
PANOPTICA_RVD = [
    ("identical", _SAME, _SAME, 0.0),
    ("no overlap", _APART, 1 - _APART, -0.4),
    ("over-predicted", _OVER, _SMALL, 1.5),
    ("under-predicted", _SMALL, _OVER, -0.6),
]


def test_matches_panoptica_relative_volume_difference():
    predictions = np.stack([p for _, p, _, _ in PANOPTICA_RVD]).astype(np.int32)
    labels = np.stack([g for _, _, g, _ in PANOPTICA_RVD]).astype(np.int32)
    ours = jax.jit(volume_difference, static_argnames=("num_classes", "relative", "absolute"))(
        predictions, labels, num_classes=2, relative=True
    )
    expected = np.array([[value] for *_, value in PANOPTICA_RVD], np.float32)
    np.testing.assert_allclose(np.asarray(ours), expected, rtol=1e-7)
    # panoptica's RVAE and Metrics Reloaded's absolute_volume_difference_ratio are the magnitude.
    magnitude = volume_difference(predictions, labels, num_classes=2, relative=True, absolute=True)
    np.testing.assert_allclose(np.asarray(magnitude), np.abs(expected), rtol=1e-7)


def test_matches_metrics_reloaded_test_voldiff():
    """Metrics Reloaded (Project-MONAI/MetricsReloaded, commit cb38dfc), test_voldiff: two
    shifted 2 x 2 squares in 14 x 14 have an absolute volume difference ratio of 0."""
    ref = np.zeros((1, 14, 14), np.int32)
    ref[0, 2:4, 2:4] = 1
    pred = np.zeros((1, 14, 14), np.int32)
    pred[0, 3:5, 3:5] = 1
    value = volume_difference(pred, ref, num_classes=2, relative=True, absolute=True)
    np.testing.assert_array_equal(np.asarray(value), [[0.0]])


# ----------------------------------------------------------------------------------------------
# Excluded pixels, checked mode, bad arguments.


def test_excluded_pixels_are_inert():
    predictions, labels, excluded, spacing = make_case(1, (9, 10))
    rng = np.random.default_rng(2)
    junk_p = np.where(excluded, rng.choice([-1, 0, 2, 7, IGNORE], labels.shape), predictions)
    junk_g = np.where(excluded, rng.choice([-3, 1, 3, 9], labels.shape), labels)

    @jax.jit
    def run(p, g, keep):
        return jsl.checked(volume_difference)(p, g, num_classes=4, mask=keep, spacing=spacing)

    clean = run(predictions, labels, ~excluded)
    junk = run(junk_p.astype(np.int32), junk_g.astype(np.int32), ~excluded)
    np.testing.assert_array_equal(np.asarray(clean), np.asarray(junk))
    perfect = volume_difference(junk_g.astype(np.int32), labels, num_classes=4, mask=~excluded)
    np.testing.assert_array_equal(np.asarray(perfect), 0.0)


def test_checked_flags_labels_out_of_range_on_counted_pixels():
    labels = jnp.array([[0, 1, 1, 0, 5]], jnp.int32)
    with pytest.raises(Exception, match=r"`labels` must lie in \[0, 2\)"):
        jsl.checked(volume_difference)(labels % 2, labels, num_classes=2)


def test_checked_flags_a_traced_spacing_of_zero():
    labels = jnp.array([[0, 1, 1, 0]], jnp.int32)
    checked = jsl.checked(volume_difference)
    run = jax.jit(lambda p, g, s: checked(p, g, num_classes=2, spacing=s))
    np.testing.assert_array_equal(np.asarray(run(labels, labels, jnp.ones(1))), 0.0)
    with pytest.raises(Exception, match=r"`spacing` must be positive and finite"):
        run(labels, labels, jnp.zeros(1))


def test_bad_arguments_raise_naming_the_argument():
    labels = jnp.zeros((2, 8, 8), jnp.int32)
    hot = jnp.zeros((2, 8, 8, 3), bool)
    cases = [
        (TypeError, "`absolute` must be True or False", dict(absolute=1)),
        (TypeError, "`relative` must be True or False", dict(relative="yes")),
        (TypeError, "`ignore_empty` must be True or False", dict(ignore_empty=None)),
        (ValueError, "`spacing` must be positive and finite", dict(spacing=(1.0, 0.0))),
        (ValueError, "`spacing` must be a scalar or have shape", dict(spacing=(1.0, 1.0, 1.0))),
        (TypeError, "`spacing` must hold real numbers", dict(spacing=True)),
        (TypeError, "`include_background` must be True or False", dict(include_background=None)),
        (ValueError, "`class_axis`=4 is out of range", dict(class_axis=4)),
        (ValueError, "`mask` must have shape (2, 8, 8)", dict(mask=jnp.ones((2, 8), bool))),
    ]
    for error, message, options in cases:
        with pytest.raises(error) as raised:
            volume_difference(hot, hot, **options)
        assert message in str(raised.value), (message, str(raised.value))
    more = [
        (ValueError, "need `num_classes`", lambda: volume_difference(labels, labels)),
        (
            TypeError,
            "`labels` must be integer class indices or boolean",
            lambda: volume_difference(labels, labels.astype(jnp.float32), num_classes=3),
        ),
        (
            ValueError,
            "`class_axis`=1 applies to one-hot",
            lambda: volume_difference(labels, labels, num_classes=3, class_axis=1),
        ),
        (
            ValueError,
            "would leave no class",
            lambda: volume_difference(hot[..., :1], hot[..., :1]),
        ),
    ]
    for error, message, call in more:
        with pytest.raises(error) as raised:
            call()
        assert message in str(raised.value), (message, str(raised.value))


def test_one_hot_and_integer_forms_agree():
    predictions, labels, _, spacing = make_case(3, (6, 7))
    ours = volume_difference(predictions, labels, num_classes=4, spacing=spacing)
    hot = volume_difference(
        np.eye(4, dtype=bool)[predictions], labels, num_classes=4, spacing=spacing
    )
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(hot))
