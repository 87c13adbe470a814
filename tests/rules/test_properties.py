"""Hypothesis: random shapes, label formats and options against the reference, and invariants.

Examples are few and small (each one compiles), with ``deadline=None`` because compilation time
varies; the random arrays come from a drawn seed, so a failure is reproducible from its output.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jaxseg_losses as jsl
from tests.helpers import random_inputs
from tests.references import region as ref

LOSSES = {
    "iou": jsl.iou_loss,
    "dice": jsl.dice_loss,
    "tversky": jsl.tversky_loss,
    "generalized_dice": jsl.generalized_dice_loss,
}
# Derandomised: the same examples on every run, so CI never spends minutes shrinking a new one.
FEW = settings(
    deadline=None,
    derandomize=True,
    max_examples=25,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def inputs(draw):
    """A consistent (data options, loss options) pair: every branch of the input contract."""
    spatial = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    batch = draw(st.integers(1, 3))
    activation = draw(st.sampled_from(["softmax", "sigmoid", None]))
    min_classes = 2 if activation == "softmax" else 1
    num_classes = draw(st.integers(min_classes, 4))
    targets = ["int", "onehot", "soft"]
    if activation == "sigmoid" and num_classes > 1:
        targets = ["onehot", "soft"]  # multi-label needs dense targets
    target = draw(st.sampled_from(targets))
    ignore_index = draw(st.sampled_from([None, 255])) if target == "int" else None
    data = dict(
        batch=batch,
        spatial=spatial,
        num_classes=num_classes,
        target=target,
        activation=activation,
        ignore_index=ignore_index,
        mask=draw(st.sampled_from([None, "bool", "float"])),
        class_axis=draw(st.sampled_from([-1, 1])),
        scale=draw(st.sampled_from([0.5, 2.0, 8.0])),
    )
    aggregate = draw(st.sampled_from(["sample", "batch"]))
    reductions = ["mean", "sum"] + (["none"] if aggregate == "sample" else [])
    options = dict(
        activation=activation,
        class_axis=data["class_axis"],
        ignore_index=ignore_index,
        smooth=draw(st.sampled_from([0.0, 1e-5, 0.5, 1.0])),
        log=draw(st.booleans()),
        include_background=num_classes == 1 or draw(st.booleans()),
        aggregate=aggregate,
        reduction=draw(st.sampled_from(reductions)),
    )
    if draw(st.booleans()):
        weights = draw(
            st.lists(
                st.sampled_from([0.0, 0.5, 1.0, 2.0]), min_size=num_classes, max_size=num_classes
            )
        )
        options["class_weights"] = tuple(weights)
    kind = draw(st.sampled_from(list(LOSSES)))
    if kind == "tversky":
        quarter = st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0])
        options.update(
            alpha=draw(quarter), beta=draw(quarter), gamma=draw(st.sampled_from([0.5, 1.0, 2.0]))
        )
    if kind == "generalized_dice":
        options["weight_type"] = draw(st.sampled_from(["square", "simple", "uniform"]))
    return kind, data, options, draw(st.integers(0, 2**16))


@FEW
@given(inputs())
def test_random_cases_match_reference_and_invariants(case):
    kind, data_options, options, seed = case
    data = random_inputs(seed, **data_options)
    spatial_axes = tuple(
        a for a in range(1, data["logits"].ndim) if a != options["class_axis"] % data["logits"].ndim
    )
    fn = functools.partial(LOSSES[kind], **options)

    @jax.jit
    def run(x, y, m):
        # Reordering pixels (here: flipping every spatial axis) changes no sum.
        label_axes = spatial_axes if y.ndim == x.ndim else tuple(range(1, y.ndim))
        mask_flip = None if m is None else jnp.flip(m, tuple(range(1, m.ndim)))
        flipped = fn(jnp.flip(x, spatial_axes), jnp.flip(y, label_axes), mask=mask_flip)
        return fn(x, y, mask=m), flipped

    got, flipped = run(data["logits"], data["labels"], data.get("mask"))
    want = ref.region_loss(kind, data["logits"], data["labels"], mask=data.get("mask"), **options)
    assert got.shape == np.shape(want)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, rtol=5e-5, atol=5e-6)
    np.testing.assert_allclose(flipped, got, rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(got) >= 0)


@settings(FEW, max_examples=15)
@given(inputs())
def test_random_stats_add_up_to_the_volumes(case):
    _, data_options, options, seed = case
    data = random_inputs(seed, **data_options)
    keys = ("activation", "class_axis", "ignore_index", "aggregate")
    stat_options = {k: options[k] for k in keys}
    stats = jax.jit(functools.partial(jsl.overlap_stats, **stat_options))(
        data["logits"], data["labels"], mask=data.get("mask")
    )
    p, g, w, _ = ref.canonical(
        data["logits"],
        data["labels"],
        mask=data.get("mask"),
        **{k: options[k] for k in keys[:3]},
    )
    axis = (0, 1) if options["aggregate"] == "batch" else 1
    pred = np.sum(w[..., None] * p, axis=axis).reshape(stats.tp.shape)
    target = np.sum(w[..., None] * g, axis=axis).reshape(stats.tp.shape)
    for field in (stats.tp, stats.fp, stats.fn):
        assert np.all(np.asarray(field) >= 0)
    np.testing.assert_allclose(stats.tp + stats.fp, pred, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stats.tp + stats.fn, target, rtol=1e-5, atol=1e-5)
    assert np.all(np.asarray(stats.tp) <= np.minimum(pred, target) + 1e-5)


@settings(deadline=None, derandomize=True, max_examples=10)
@given(
    spatial=st.lists(st.integers(2, 5), min_size=1, max_size=2).map(tuple),
    keep=st.integers(1, 4),
    kind=st.sampled_from(list(LOSSES)),
    aggregate=st.sampled_from(["sample", "batch"]),
    seed=st.integers(0, 2**16),
)
def test_random_mask_equals_slicing(spatial, keep, kind, aggregate, seed):
    keep = min(keep, spatial[0])
    data = random_inputs(seed, batch=2, spatial=spatial, num_classes=3)
    mask = np.zeros(data["labels"].shape, bool)
    mask[:, :keep] = True
    fn = functools.partial(LOSSES[kind], aggregate=aggregate, smooth=0.25)

    @jax.jit
    def run(x, y, m):
        return fn(x, y, mask=m), fn(x[:, :keep], y[:, :keep])

    masked, sliced = run(data["logits"], data["labels"], mask)
    np.testing.assert_allclose(masked, sliced, rtol=1e-5, atol=1e-7)
