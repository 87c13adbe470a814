"""Single-example variants: jax.vmap of ``jsl.per_sample.<loss>`` equals ``reduction="none"``."""

import functools
import inspect

import jax
import numpy as np
import pytest

import jaxseg_losses as jsl
from jaxseg_losses import per_sample, registry
from tests.helpers import random_inputs
from tests.references import region as ref

REGION = ["iou_loss", "dice_loss", "tversky_loss", "generalized_dice_loss"]
PER_SAMPLE = sorted(name for name in per_sample.__all__ if name != "single_example")
BATCH_ONLY = ("aggregate", "axis_name", "reduction")

# (data options, loss options): every input branch a per-sample call can take.
CASES = {
    "int-2d": (dict(spatial=(4, 3), num_classes=3), dict()),
    "soft-1d-options": (
        dict(spatial=(6,), num_classes=3, target="soft", mask="float"),
        dict(smooth=0.5, log=True, class_weights=[1.0, 0.5, 2.0], include_background=False),
    ),
    "sigmoid-binary-3d-ignore": (
        dict(spatial=(2, 2, 3), num_classes=1, activation="sigmoid", ignore_index=255),
        dict(activation="sigmoid", ignore_index=255, smooth=0.0),
    ),
    "multilabel-chw": (
        dict(spatial=(3, 3), num_classes=3, target="onehot", activation="sigmoid", class_axis=1),
        dict(activation="sigmoid"),
    ),
}
PER_LOSS = {"tversky_loss": dict(alpha=0.3, beta=0.7, gamma=1.5), "generalized_dice_loss": dict()}


@pytest.mark.parametrize("case", list(CASES))
def test_vmap_of_per_sample_equals_reduction_none(case):
    data_options, options = CASES[case]
    data = random_inputs(40, batch=3, **data_options)
    batch_axis = data_options.get("class_axis", -1)
    # One example has no batch axis: class axis 1 of NCHW is axis 0 of CHW.
    example_axis = batch_axis - 1 if batch_axis > 0 else batch_axis
    mask = data.get("mask")

    @jax.jit
    def run(x, y, m):
        out = {}
        for name in REGION:
            extra = {**options, **PER_LOSS.get(name, {})}

            def one(xi, yi, mi, name=name, extra=extra):
                return getattr(per_sample, name)(xi, yi, mask=mi, class_axis=example_axis, **extra)

            mapped = jax.vmap(one)(x, y, m)
            batched = getattr(jsl, name)(
                x, y, mask=m, class_axis=batch_axis, reduction="none", **extra
            )
            out[name] = (mapped, batched)
        return out

    for name, (mapped, batched) in run(data["logits"], data["labels"], mask).items():
        assert mapped.shape == batched.shape == (3,), name
        np.testing.assert_allclose(mapped, batched, rtol=1e-6, atol=1e-7, err_msg=name)


def test_single_example_call_equals_batch_of_one():
    data = random_inputs(41, batch=1, spatial=(5, 4), num_classes=3)

    @jax.jit
    def run(x, y):
        return {
            name: (
                getattr(per_sample, name)(x[0], y[0], smooth=0.5),
                getattr(jsl, name)(x, y, smooth=0.5),
            )
            for name in REGION
        }

    for name, (single, batch) in run(data["logits"], data["labels"]).items():
        assert single.shape == (), name
        np.testing.assert_allclose(single, batch, rtol=1e-6, err_msg=name)
        want = ref.region_loss(
            name.removesuffix("_loss"), data["logits"], data["labels"], smooth=0.5
        )
        np.testing.assert_allclose(single, want, rtol=2e-5, err_msg=name)


@pytest.mark.parametrize("name", REGION)
def test_batch_only_keywords_are_rejected(name):
    fn = getattr(per_sample, name)
    x, y = np.zeros((4, 3), np.float32), np.zeros((4,), np.int32)
    for keyword, value in (("aggregate", "batch"), ("axis_name", "i"), ("reduction", "sum")):
        with pytest.raises(TypeError, match=rf"per_sample.{name} got an unexpected keyword "):
            fn(x, y, **{keyword: value})
    with pytest.raises(TypeError, match=r"unexpected keyword 'smoothing'"):
        fn(x, y, smoothing=1.0)


@pytest.mark.parametrize("name", PER_SAMPLE)
def test_signature_drops_batch_only_options(name):
    fn = getattr(per_sample, name)
    batch_fn = getattr(jsl, name)
    parameters = inspect.signature(fn).parameters
    assert not set(BATCH_ONLY) & set(parameters), name
    expected = [p for p in inspect.signature(batch_fn).parameters if p not in BATCH_ONLY]
    assert list(parameters) == expected
    assert fn.__name__ == name
    assert f"jaxseg_losses.{name}" in (fn.__doc__ or "")


@pytest.mark.parametrize("entry", registry.BUILTIN_LOSSES, ids=lambda entry: entry.name)
def test_every_per_sample_loss_matches_its_batch_loss(entry):
    # One case per row of the table of built-in losses: losses added later are checked too.
    # Multi-class inputs, or one binary channel for the losses that take only sigmoid inputs.
    num_classes = 1 if entry.activations == ("sigmoid",) else 3
    data = random_inputs(42, batch=2, spatial=(3, 4), num_classes=num_classes)
    name, batch_fn = entry.name, entry.fn
    accepts_reduction = "reduction" in inspect.signature(batch_fn).parameters

    @jax.jit
    def run(x, y):
        mapped = jax.vmap(getattr(per_sample, name))(x, y)
        batched = batch_fn(x, y, reduction="none") if accepts_reduction else None
        return mapped, batched

    mapped, batched = run(data["logits"], data["labels"])
    for leaf in jax.tree.leaves(mapped):
        assert leaf.shape[0] == 2 and np.all(np.isfinite(leaf)), name
    if accepts_reduction:
        jax.tree.map(
            functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-7), mapped, batched
        )


def test_the_variants_are_the_rows_of_the_table():
    assert PER_SAMPLE == sorted(entry.name for entry in registry.BUILTIN_LOSSES)


def test_class_axis_counts_the_axes_of_one_example():
    data = random_inputs(43, batch=1, spatial=(3, 4), num_classes=3, class_axis=1)
    chw, labels = data["logits"][0], data["labels"][0]

    @jax.jit
    def run(x, y):
        return [per_sample.dice_loss(x, y, class_axis=axis) for axis in (0, -3)]

    first, negative = run(chw, labels)
    want = ref.region_loss("dice", data["logits"], data["labels"], class_axis=1)
    np.testing.assert_allclose([first, negative], [want, want], rtol=2e-5)
    # Errors name the axis passed and the rank of one example, not of the internal batch of one.
    for axis in (3, -4):
        with pytest.raises(ValueError, match=rf"`class_axis`={axis} is out of range.*rank 3"):
            per_sample.dice_loss(chw, labels, class_axis=axis)
