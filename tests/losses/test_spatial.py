"""MCC, squared-denominator Dice, boundary, Hausdorff-DT and clDice losses against references.

The references (tests/references/spatial.py) are written from the paper's (or the peer's)
formula in NumPy, with ``scipy.ndimage`` for the distance maps and the min/max filters of the soft
skeleton. Peer numbers are cited where they are used. Shapes are tiny and the jitted functions
are shared per shape (module-level caches), so the file compiles few programs.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from scipy import ndimage

import jaxseg_losses as jsl
from tests.references import region as ref
from tests.references.spatial import (
    ref_boundary,
    ref_cldice,
    ref_hausdorff,
    ref_mcc,
    ref_signed_map,
    ref_squared_dice,
)

RTOL, ATOL = 2e-5, 2e-6


def make_case(shape, classes, seed=0, *, empty_class=True):
    """Logits ``[B, *spatial, C]``, labels with blobs, a mask; class ``C-1`` absent from sample 0
    and class 0 filling sample 1's valid pixels when ``empty_class``."""
    rng = np.random.default_rng(seed)
    logits = (2.0 * rng.standard_normal((*shape, classes))).astype(np.float32)
    labels = rng.integers(0, classes, shape).astype(np.int32)
    # Smooth the labels into blobs, so the maps have interiors.
    labels = ndimage.median_filter(labels, size=(1,) + (3,) * (len(shape) - 1)).astype(np.int32)
    if empty_class:
        labels[0][labels[0] == classes - 1] = 0
        labels[1] = 0
    mask = (rng.uniform(size=shape) > 0.2).astype(np.float32)
    return logits, labels, mask


# ----------------------------------------------------------------------------------------------
# MCC.

# MONAI tests/losses/test_mcc_loss.py (PR #8785), channels moved last: (options, logits,
# labels, expected). The labels are dense one-hot where MONAI passes to_onehot_y on sigmoid.
_MONAI_X = np.array([[[-1.0, 0.0, 1.0], [1.0, 0.0, -1.0]], [[0.0] * 3, [0.0] * 3]]).transpose(
    0, 2, 1
)
_MONAI_Y = np.array([[1, 0, 0], [1, 1, 0]], np.int32)
_MONAI_ONEHOT = np.eye(2, dtype=np.float32)[_MONAI_Y]
MONAI_MCC = [
    (
        {"activation": "sigmoid"},
        np.array([1.0, -1.0, -1.0, 1.0]).reshape(1, 2, 2, 1),
        np.array([1, 0, 1, 1], np.int32).reshape(1, 2, 2),
        0.733197,
    ),
    (
        {"activation": "sigmoid"},
        np.array([1.0, -1.0, -1.0, 1.0] * 2).reshape(2, 2, 2, 1),
        np.array([[1, 1, 1, 1], [1, 0, 1, 0]], np.int32).reshape(2, 2, 2),
        1.0,
    ),
    (
        {"activation": None},
        np.array([1.0, 0.0, 0.0, 1.0]).reshape(1, 2, 2, 1),
        np.array([1, 0, 0, 1], np.int32).reshape(1, 2, 2),
        0.0,
    ),
    (
        {"activation": None},
        np.array([0.0, 1.0, 1.0, 0.0]).reshape(1, 2, 2, 1),
        np.array([1, 0, 0, 1], np.int32).reshape(1, 2, 2),
        2.0,
    ),
    (
        {"activation": None, "include_background": False},
        np.array(
            [[[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]], [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]]
        ).transpose(0, 2, 1),
        np.array([[0, 0, 1], [0, 1, 0]], np.int32),
        0.0,
    ),
    ({"activation": "sigmoid"}, _MONAI_X, _MONAI_ONEHOT, 0.836617),
    ({"activation": "sigmoid", "aggregate": "batch"}, _MONAI_X, _MONAI_ONEHOT, 0.845961),
    # MONAI's reduction="sum" sums over the 2 samples and the 2 classes: 3.346468 / 2 classes.
    ({"activation": "sigmoid", "reduction": "sum"}, _MONAI_X, _MONAI_ONEHOT, 3.346468 / 2),
    ({}, _MONAI_X, _MONAI_Y, 0.730736),
    ({"reduction": "none"}, _MONAI_X, _MONAI_Y, [0.461472, 1.0]),
    ({"activation": None}, np.ones((1, 3, 3, 1)), np.ones((1, 3, 3), np.int32), 0.0),
    ({"activation": None}, np.zeros((1, 3, 3, 1)), np.zeros((1, 3, 3), np.int32), 0.0),
]


@pytest.mark.parametrize(("options", "x", "y", "expected"), MONAI_MCC)
def test_mcc_matches_monai_test_suite(options, x, y, expected):
    value = jax.jit(functools.partial(jsl.mcc_loss, **options))(x.astype(np.float32), y)
    np.testing.assert_allclose(value, expected, rtol=1e-4, atol=1e-6)


def test_mcc_matches_smp_batch_pooled_binary_loss():
    """smp ``MCCLoss(eps)``: eps added to each of TP, TN, FP, FN of the pooled batch."""
    rng = np.random.default_rng(0)
    probs = rng.uniform(size=(2, 12, 12, 1)).astype(np.float32)
    labels = (rng.uniform(size=(2, 12, 12)) > 0.6).astype(np.int32)
    p, g, eps = probs[..., 0].astype(np.float64), labels.astype(np.float64), 1e-5
    tp, tn = np.sum(p * g) + eps, np.sum((1 - p) * (1 - g)) + eps
    fp, fn = np.sum(p * (1 - g)) + eps, np.sum((1 - p) * g) + eps
    smp = 1 - (tp * tn - fp * fn) / np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    value = jax.jit(functools.partial(jsl.mcc_loss, activation=None, aggregate="batch"))(
        probs, labels
    )
    np.testing.assert_allclose(value, smp, rtol=1e-4)


# Sample 1 holds only class 0, which fills it: in float32 its FP = Σp - TP keeps the rounding of
# two sums of ~100 terms (~1e-5), where the float64 reference has FP = 0; the degenerate class's
# loss then differs by ~1e-4 (TN itself is exactly 0, see stats_of).
MCC_ATOL = 2e-4


def test_overlap_stats_carry_true_negatives():
    x, y, mask = make_case((2, 12, 12), 3)
    stats = jax.jit(lambda x, y, m: jsl.overlap_stats(x, y, mask=m))(x, y, mask)
    p, g, w, _ = ref.canonical(x, y, mask=mask)
    tn = np.sum(w[..., None] * (1 - p) * (1 - g), 1)
    np.testing.assert_allclose(stats.tn, tn, rtol=1e-5, atol=1e-4)
    per_class = jsl.mcc_from_stats(stats)
    np.testing.assert_allclose(per_class.mean(-1), ref_mcc(x, y, mask=mask), rtol=1e-5)
    with pytest.raises(ValueError, match=r"`stats.tn` must be a \[..., C\] array; got None"):
        jsl.mcc_from_stats(jsl.OverlapStats(stats.tp, stats.fp, stats.fn))


# ----------------------------------------------------------------------------------------------
# Dice with V-Net's squared denominator.


def test_squared_sums_are_computed_only_when_a_term_asks_for_them():
    x, y, _ = make_case((2, 12, 12), 3)
    for squared, expected in ((False, False), (True, True)):
        inputs = jsl.Inputs.prepare(x, y)
        inputs.plan(jsl.dice_loss.definition(squared_pred=squared).sums)
        assert ("squared_sums" in inputs._reads) is expected
    with pytest.raises(TypeError, match=r"`squared_pred` must be True or False; got int 1"):
        jsl.dice_loss(x, y, squared_pred=1)


# ----------------------------------------------------------------------------------------------
# Boundary, Hausdorff and clDice: 2-D and 3-D, masks and ignore, empty and full classes.

SHAPES = [(2, 12, 12), (2, 5, 6, 4)]
SPACING = {3: (0.5, 2.0), 4: (2.0, 1.0, 0.5)}


@functools.cache
def every_loss(ndim):
    """One jitted program per spatial rank with every loss and option branch compared below."""
    spacing = SPACING[ndim]

    @jax.jit
    def run(x, y, y_ignored, mask, maps):
        none = {"reduction": "none"}
        return {
            "mcc": jsl.mcc_loss(x, y, mask=mask, **none),
            "mcc_opts": jsl.mcc_loss(x, y, include_background=False, smooth_nr=0.5, **none),
            "mcc_ignore": jsl.mcc_loss(x, y_ignored, ignore_index=255, **none),
            "mcc_dense": jsl.mcc_loss(x, jax.nn.softmax(0.3 * x, -1), **none),
            "dice_squared": jsl.dice_loss(x, y, mask=mask, squared_pred=True, smooth=0.5, **none),
            "dice_squared_dense": jsl.dice_loss(
                x, jax.nn.one_hot(y, 3), mask=mask, squared_pred=True, smooth=0.5, **none
            ),
            "boundary": jsl.boundary_loss(x, y, mask=mask, **none),
            "boundary_opts": jsl.boundary_loss(
                x, y, spacing=spacing, include_background=False, **none
            ),
            "boundary_ignore": jsl.boundary_loss(x, y_ignored, ignore_index=255, **none),
            "boundary_maps": jsl.boundary_loss(x, y, distance_maps=maps, **none),
            "hausdorff": jsl.hausdorff_dt_loss(x, y, mask=mask, **none),
            "hausdorff_opts": jsl.hausdorff_dt_loss(
                x, y, alpha=1.5, log=True, include_background=True, spacing=spacing, **none
            ),
            "log_hausdorff_batch": jsl.hausdorff_dt_loss(x, y, log=True, aggregate="batch"),
            "cldice": jsl.cldice_loss(x, y, mask=mask, **none),
            "cldice_opts": jsl.cldice_loss(
                x, y, iterations=2, smooth=0.5, include_background=False, **none
            ),
            "cldice_ignore": jsl.cldice_loss(x, y_ignored, ignore_index=255, **none),
        }

    return run


def expected_losses(x, y, y_ignored, mask, spacing):
    soft = np.asarray(jax.nn.softmax(0.3 * jnp.asarray(x), -1))
    return {
        "mcc": (ref_mcc(x, y, mask=mask), MCC_ATOL),
        "mcc_opts": (ref_mcc(x, y, include_background=False, smooth_nr=0.5), MCC_ATOL),
        "mcc_ignore": (ref_mcc(x, y_ignored, ignore_index=255), MCC_ATOL),
        "mcc_dense": (ref_mcc(x, soft), MCC_ATOL),
        "dice_squared": (ref_squared_dice(x, y, mask=mask, smooth=0.5), ATOL),
        "dice_squared_dense": (ref_squared_dice(x, y, mask=mask, smooth=0.5), ATOL),
        "boundary": (ref_boundary(x, y, mask=mask), 1e-5),
        "boundary_opts": (ref_boundary(x, y, spacing=spacing, include_background=False), 1e-5),
        "boundary_ignore": (ref_boundary(x, y_ignored, ignore_index=255), 1e-5),
        "boundary_maps": (ref_boundary(x, y), 1e-5),
        "hausdorff": (ref_hausdorff(x, y, mask=mask), 1e-5),
        "hausdorff_opts": (
            ref_hausdorff(x, y, alpha=1.5, log=True, include_background=True, spacing=spacing),
            1e-5,
        ),
        "log_hausdorff_batch": (np.log1p(ref_hausdorff(x, y).mean()), 1e-5),
        "cldice": (ref_cldice(x, y, mask=mask), 1e-6),
        "cldice_opts": (ref_cldice(x, y, iterations=2, smooth=0.5, include_background=False), 1e-6),
        "cldice_ignore": (ref_cldice(x, y_ignored, ignore_index=255), 1e-6),
    }


@pytest.mark.parametrize("shape", SHAPES, ids=["2d", "3d"])
def test_every_loss_and_option_matches_its_reference(shape):
    """MCC (MONAI's formula), squared Dice (MONAI's), boundary (Kervadec's maps), Hausdorff-DT
    (MONAI's fields) and clDice (Shit et al.'s skeleton), under jax.jit, with mask and
    ignore_index; sample 0 lacks class 2 and sample 1 is all class 0 (empty and full masks)."""
    x, y, mask = make_case(shape, 3)
    y_ignored = y.copy()
    y_ignored[0, :2] = 255
    y_ignored[1, -1] = 255
    # Precomputed maps, the data-pipeline recipe of boundary_loss's docstring.
    onehot = np.eye(3, dtype=bool)[y]
    maps = np.stack(
        [np.stack([ref_signed_map(onehot[b, ..., c]) for c in range(3)], -1) for b in range(2)]
    ).astype(np.float32)
    got = every_loss(len(shape))(x, y, y_ignored, mask, maps)
    for name, (want, atol) in expected_losses(x, y, y_ignored, mask, SPACING[len(shape)]).items():
        np.testing.assert_allclose(got[name], want, rtol=1e-5, atol=atol, err_msg=name)
    # Classes 1 and 2 are empty in sample 1: their maps are 0 (MONAI's rule), so without the
    # background its boundary loss is exactly 0.
    assert float(got["boundary_opts"][1]) == 0.0


def test_binary_sigmoid_and_perfect_predictions():
    """One sigmoid channel (kept even with include_background=False, as MONAI keeps it), an
    empty sample (both Hausdorff fields 0), and perfect probabilities: Hausdorff 0, clDice 0."""
    y = np.zeros((2, 12, 12), np.int32)
    y[0, 2:6, 3:9] = 1
    y[0, 9, :] = 1  # a thin tube
    x = np.where(y == 1, 6.0, -6.0)[..., None].astype(np.float32)
    x[0, 8, 1] = 6.0  # one far false positive
    perfect = (y == 1)[..., None].astype(np.float32)

    @jax.jit
    def run(x, perfect):
        sigmoid = {"activation": "sigmoid", "reduction": "none"}
        exact = {"activation": None, "reduction": "none"}
        return {
            "hausdorff": jsl.hausdorff_dt_loss(x, y, **sigmoid),
            "boundary": jsl.boundary_loss(x, y, **sigmoid),
            "cldice": jsl.cldice_loss(x, y, **sigmoid),
            "hausdorff_perfect": jsl.hausdorff_dt_loss(perfect, y, **exact),
            "cldice_perfect": jsl.cldice_loss(perfect, y, smooth=0.0, **exact),
            "combined": jsl.combine("dice+cldice", activation="sigmoid")(x, y),
        }

    got = run(x, perfect)
    np.testing.assert_allclose(
        got["hausdorff"], ref_hausdorff(x, y, activation="sigmoid"), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        got["boundary"], ref_boundary(x, y, activation="sigmoid"), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        got["cldice"], ref_cldice(x, y, activation="sigmoid"), rtol=1e-5, atol=1e-6
    )
    assert np.all(np.asarray(got["hausdorff_perfect"]) == 0.0)
    np.testing.assert_allclose(got["cldice_perfect"][0], 0.0, atol=1e-6)
    total, parts = got["combined"]
    np.testing.assert_allclose(parts["cldice"], np.mean(got["cldice"]), rtol=1e-6)
    np.testing.assert_allclose(total, parts["dice"] + parts["cldice"], rtol=1e-6)


def test_gradients_match_finite_differences():
    """check_grads (float64) on every new loss at once, through combine, with a mask."""
    x, y, mask = make_case((1, 6, 6), 3, seed=4, empty_class=False)
    with jax.enable_x64(True):
        loss_fn = jsl.combine("mcc+boundary+hausdorff+cldice")
        loss = jax.jit(lambda v: loss_fn(v, y, mask=mask)[0])
        check_grads(loss, (jnp.asarray(x, jnp.float64),), order=1, modes=("rev",), atol=1e-5,
                    rtol=1e-4)  # fmt: skip


BAD_OPTIONS = [
    (jsl.mcc_loss, {"smooth_dr": -1.0}, ValueError, r"`smooth_dr` must be finite and non-negative"),
    (jsl.mcc_loss, {"smooth_nr": "0"}, TypeError, r"`smooth_nr` must be a real number"),
    (jsl.boundary_loss, {"spacing": (1.0, 0.0)}, ValueError, r"`spacing` must be positive"),
    (jsl.boundary_loss, {"spacing": (1.0, 1.0, 1.0)}, ValueError, r"`spacing` must be a scalar"),
    (
        jsl.boundary_loss,
        {"distance_maps": np.zeros((2, 12, 12, 2), np.float32)},
        ValueError,
        r"`distance_maps` must have shape \(2, 12, 12, 3\); got \(2, 12, 12, 2\)",
    ),
    (jsl.hausdorff_dt_loss, {"alpha": -2.0}, ValueError, r"`alpha` must be finite and non-neg"),
    (jsl.hausdorff_dt_loss, {"log": 1}, TypeError, r"`log` must be True or False; got int"),
    (jsl.cldice_loss, {"iterations": 2.0}, TypeError, r"`iterations` must be a Python int"),
    (jsl.cldice_loss, {"iterations": -1}, ValueError, r"`iterations` must be an int >= 0; got -1"),
    (jsl.cldice_loss, {"smooth": -1.0}, ValueError, r"`smooth` must be finite and non-negative"),
]


@pytest.mark.parametrize(("fn", "options", "error", "message"), BAD_OPTIONS)
def test_bad_options_name_the_argument(fn, options, error, message):
    x, y, _ = make_case((2, 12, 12), 3)
    with pytest.raises(error, match=message):
        fn(x, y, **options)


def test_spatial_losses_need_spatial_axes():
    with pytest.raises(ValueError, match=r"boundary_loss needs 1, 2 or 3 spatial axes"):
        jsl.boundary_loss(np.zeros((1, 2, 2, 2, 2, 3), np.float32), np.zeros((1, 2, 2, 2, 2), int))


def test_axis_name_and_per_sample_equal_the_batched_loss():
    """Each sample on its own "device" (vmap with an axis name): the psum of the sums gives the
    batch's value, batch-pooled MCC included; per_sample under vmap gives reduction="none"."""
    x, y, mask = make_case((2, 6, 6), 3, seed=5)
    terms = {
        "mcc": (1.0, functools.partial(jsl.mcc_loss, aggregate="batch")),
        "boundary": 1.0,
        "hausdorff": 1.0,
        "cldice": 1.0,
    }
    batched = jsl.combine(terms)
    mapped = jsl.combine(terms, axis_name="devices")

    @jax.jit
    def run(x, y, m):
        whole = batched(x, y, mask=m)[1]
        per_device = jax.vmap(
            lambda xi, yi, mi: mapped(xi[None], yi[None], mask=mi[None])[1], axis_name="devices"
        )(x, y, m)
        single = jax.vmap(jsl.per_sample.cldice_loss)(x, y, mask=m)
        return whole, per_device, single, jsl.cldice_loss(x, y, mask=m, reduction="none")

    whole, per_device, single, none = run(x, y, mask)
    for name in terms:
        np.testing.assert_allclose(per_device[name][0], whole[name], rtol=2e-5, err_msg=name)
        np.testing.assert_allclose(per_device[name][1], whole[name], rtol=2e-5, err_msg=name)
    np.testing.assert_allclose(single, none, rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# clDice: MONAI 1.6.1's harmonic-mean smoothing, forward mode.

# MONAI 1.6.1 SoftclDiceLoss(softmax=True, to_onehot_y=True, reduction="none", **options) on
# x = default_rng(0).normal(size=(2, 9, 10, 3)) (float32, channels moved first for MONAI),
# y = the same generator's integers(0, 3, (2, 9, 10)); computed once with torch on CPU.
MONAI_161_CLDICE = [
    ({}, {"harmonic_smooth": 1e-4}, [0.6889906, 0.6457044]),
    (
        {"include_background": False},
        {"harmonic_smooth": 1e-4, "include_background": False},
        [0.6494837, 0.6629810],
    ),
    (
        {"iter_": 2, "smooth_nr": 0.5, "smooth_dr": 0.5, "smooth": 1e-3},
        {"iterations": 2, "smooth": 0.5, "harmonic_smooth": 1e-3},
        [0.6944793, 0.6506677],
    ),
]


def test_cldice_matches_monai_1_6_1():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 9, 10, 3)).astype(np.float32)
    y = rng.integers(0, 3, size=(2, 9, 10)).astype(np.int32)

    @jax.jit
    def losses(x, y):
        return [jsl.cldice_loss(x, y, reduction="none", **ours) for _, ours, _ in MONAI_161_CLDICE]

    for got, (_, _, expected) in zip(losses(x, y), MONAI_161_CLDICE, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # The default (no harmonic-mean smoothing) is the paper's formula, within 1e-4 of MONAI's.
    default = jsl.cldice_loss(x, y, reduction="none")
    np.testing.assert_allclose(default, ref_cldice(x, y), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(default, MONAI_161_CLDICE[0][2], atol=1e-4)


def test_cldice_forward_mode_and_hessian_vector_products():
    """clDice keeps forward mode and Hessian-vector products: jvp equals the gradient's dot
    product, and the HVP matches a finite difference of gradients."""
    x, y, mask = make_case((2, 8, 9), 3, seed=3)
    x = jnp.asarray(x, jnp.float64) if jax.config.jax_enable_x64 else jnp.asarray(x)
    v = jnp.asarray(np.random.default_rng(4).normal(size=x.shape), x.dtype)

    def loss(z):
        return jsl.cldice_loss(z, y, mask=mask, iterations=3)

    @jax.jit
    def derivatives(x, v):
        _, tangent = jax.jvp(loss, (x,), (v,))
        grad = jax.grad(loss)
        hvp = jax.jvp(grad, (x,), (v,))[1]
        eps = 1e-3
        fd = (grad(x + eps * v) - grad(x - eps * v)) / (2 * eps)
        return tangent, jnp.vdot(grad(x), v), hvp, fd

    tangent, dot, hvp, fd = derivatives(x, v)
    np.testing.assert_allclose(tangent, dot, rtol=1e-4, atol=1e-6)
    assert np.all(np.isfinite(hvp))
    np.testing.assert_allclose(hvp, fd, rtol=0.05, atol=2e-3)


# ----------------------------------------------------------------------------------------------
# Distance maps: precomputed in the data pipeline, and the transform they come from.


def test_precomputed_boundary_maps_give_the_same_value_and_gradient():
    """boundary_distance_maps (computed where the batch is loaded) passed as distance_maps gives
    the in-step value and gradient, with ignore_index, mask and spacing; the maps are Kervadec's
    (scipy reference) with excluded pixels in no class."""
    from jaxseg_losses.losses.spatial import boundary_distance_maps

    x, y, mask = make_case((2, 12, 12), 3, seed=7)
    y = y.copy()
    y[0, :2] = 255
    spacing = (0.5, 2.0)
    options = {"ignore_index": 255, "mask": mask, "spacing": spacing}
    maps = jax.jit(functools.partial(boundary_distance_maps, num_classes=3, **options))(y)
    kept = (y != 255) & (mask != 0)
    want = np.stack(
        [
            np.stack([ref_signed_map((y[b] == c) & kept[b], spacing) for c in range(3)], -1)
            for b in range(2)
        ]
    )
    np.testing.assert_allclose(maps, want, rtol=1e-6, atol=1e-5)

    def value_and_grad(maps_option):
        fn = functools.partial(jsl.boundary_loss, ignore_index=255, mask=mask, **maps_option)
        return jax.jit(jax.value_and_grad(lambda v: fn(v, y)))(x)

    (v_step, g_step) = value_and_grad({"spacing": spacing})
    (v_pre, g_pre) = value_and_grad({"distance_maps": maps})
    np.testing.assert_allclose(v_pre, v_step, rtol=1e-6)
    np.testing.assert_allclose(g_pre, g_step, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(v_step, ref_boundary(x, y, **options).mean(), rtol=1e-5)


@pytest.mark.parametrize("size", [(40, 50), (12, 30, 9)], ids=["2d", "3d"])
def test_transform_is_exact_on_sparse_and_dense_sites(size):
    """The Euclidean transform the losses use against scipy's exact EDT with anisotropic
    spacing: dense sites, a corner without sites, blobs, one far site, an empty image."""
    from jaxseg_losses.geometry.distance import transform

    rng = np.random.default_rng(3)
    dense = rng.uniform(size=(2, *size)) < 0.3  # every element near a site
    one_line = dense.copy()
    one_line[1] = rng.uniform(size=size) < 0.3
    one_line[1][(slice(0, 16),) * len(size)] = False  # a corner far from every site
    blobs = ndimage.median_filter(rng.integers(0, 2, (2, *size)), 7).astype(bool)
    far = np.zeros((2, *size), bool)
    far[0, (0,) * len(size)] = True  # one site far from most elements; image 1 empty
    sites = np.stack([dense, one_line, blobs, far])
    spacing = rng.uniform(0.5, 2.0, (4, 2, len(size))).astype(np.float32)
    spacing[0] = 1.0  # unit spacing: integer squared distances, the same float as scipy's
    run = jax.jit(lambda s, sp: transform(s, sp, "euclidean"))
    # One program for the four cases (same shapes): compiled once.
    got = [np.asarray(run(sites[k], spacing[k])) for k in range(4)]
    for k in range(4):
        for b in range(2):
            if not sites[k, b].any():
                assert np.all(np.isinf(got[k][b]))
                continue
            want = np.asarray(ndimage.distance_transform_edt(~sites[k, b], sampling=spacing[k, b]))
            np.testing.assert_allclose(got[k][b], want, rtol=1e-6, atol=1e-5, err_msg=str(k))


def test_cldice_harmonic_smooth_is_checked():
    x, y, _ = make_case((2, 6, 6), 3)
    with pytest.raises(ValueError, match=r"`harmonic_smooth` must be finite and non-negative"):
        jsl.cldice_loss(x, y, harmonic_smooth=-1e-4)
