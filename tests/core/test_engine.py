"""A user-defined loss is first-class: made with ``jsl.define_loss`` from its sums and finishing
step, it works in ``combine``, ``accumulate.value_and_grad``, with ``axis_name`` and in
``per_sample`` exactly like a built-in loss.

The loss here is a distance-weighted cross-entropy (Ronneberger et al. 2015's weight map, with the
distance of every pixel to the nearest pixel of another class): each pixel's cross-entropy is
weighted by ``1 + w0 * exp(-d² / (2 σ²))``, so pixels near a boundary count more. The reference
is NumPy, written from that sentence.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxseg_losses as jsl
from tests.helpers import assert_close, random_batch

B, H, W, C = 4, 6, 5, 3
W0, SIGMA = 4.0, 1.5
assert_close = functools.partial(assert_close, atol=1e-6)


def boundary_distance(labels: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """``[B, P]`` Euclidean distance of each pixel to the nearest pixel with another label
    (all pairs: fine for the small images of a test)."""
    coords = jnp.stack(jnp.meshgrid(*(jnp.arange(n) for n in shape), indexing="ij"), -1)
    coords = coords.reshape(-1, len(shape)).astype(jnp.float32)
    d2 = jnp.sum((coords[:, None, :] - coords[None, :, :]) ** 2, axis=-1)  # [P, P]
    other = labels[:, :, None] != labels[:, None, :]  # [B, P, P]
    big = jnp.asarray(1e9, jnp.float32)
    return jnp.sqrt(jnp.min(jnp.where(other, d2[None], big), axis=-1))


@jsl.define_loss
def distance_weighted_ce(*, w0: float = W0, sigma: float = SIGMA) -> jsl.LossDefinition:
    """Computes a cross-entropy weighted by each pixel's distance to a label boundary.

    .. math::

       \\ell = \\frac{\\sum_i m_i u_i (-\\log p_{i y_i})}{\\sum_i m_i u_i}, \\qquad
       u_i = 1 + w_0 e^{-d_i^2 / 2\\sigma^2}

    Args:
      <data args>
      w0: the extra weight of boundary pixels.
      sigma: the distance scale, in pixels.
      <shared args>

    Returns:
      The loss.
    """

    def pixel_loss(inputs: jsl.Inputs):
        distance = boundary_distance(inputs.labels, inputs.spatial_shape)
        weight = 1.0 + w0 * jnp.exp(-(distance**2) / (2.0 * sigma**2))
        return -weight * inputs.label_log_probability(), weight

    return jsl.LossDefinition.pixel_mean(pixel_loss)


def numpy_reference(logits, labels, mask, *, reduction="mean"):
    """The loss from its definition, in float64 NumPy."""
    x = logits.astype(np.float64).reshape(B, -1, C)
    y = labels.reshape(B, -1)
    m = mask.reshape(B, -1).astype(np.float64)
    grid = np.stack(np.meshgrid(np.arange(H), np.arange(W), indexing="ij"), -1).reshape(-1, 2)
    d2 = ((grid[:, None] - grid[None]) ** 2).sum(-1)
    u = np.empty(y.shape)
    for b in range(B):
        other = y[b][:, None] != y[b][None, :]
        d = np.sqrt(np.where(other, d2, 1e9).min(-1))
        u[b] = 1.0 + W0 * np.exp(-(d**2) / (2 * SIGMA**2))
    shifted = x - x.max(-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_p, y[..., None], -1)[..., 0]
    numerator, denominator = (m * u * nll).sum(1), (m * u).sum(1)
    per_sample = np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), 0)
    if reduction == "none":
        return per_sample
    if reduction == "sum":
        return per_sample.sum()
    return numerator.sum() / denominator.sum()


def make_data(seed=0):
    return random_batch(seed, (B, H, W), C)


def test_signature_and_docstring_follow_the_library_contract():
    import inspect

    parameters = list(inspect.signature(distance_weighted_ce).parameters)
    assert parameters[:4] == ["logits", "labels", "w0", "sigma"]
    assert parameters[4:] == [
        "activation",
        "class_axis",
        "ignore_index",
        "mask",
        "aggregate",
        "axis_name",
        "reduction",
    ]
    doc = distance_weighted_ce.__doc__
    assert "<data args>" not in doc and "<shared args>" not in doc
    assert "ignore_index: a label value" in doc
    assert distance_weighted_ce.__name__ == "distance_weighted_ce"


def test_value_matches_numpy_for_every_reduction_under_jit():
    logits, labels, mask = make_data(0)
    run = jax.jit(
        lambda x, y, m: {
            r: distance_weighted_ce(x, y, mask=m, reduction=r) for r in ("mean", "sum", "none")
        }
    )
    got = run(logits, labels, mask)
    for reduction, value in got.items():
        assert_close(value, numpy_reference(logits, labels, mask, reduction=reduction))


def test_in_combine_value_and_gradient_equal_the_direct_calls():
    logits, labels, mask = make_data(1)
    loss_fn = jsl.combine({"dwce": (0.5, distance_weighted_ce), "dice": jsl.dice_loss})

    @jax.jit
    def both(x, y, m):
        combined = jax.value_and_grad(lambda x: loss_fn(x, y, mask=m), has_aux=True)(x)
        direct = jax.value_and_grad(
            lambda x: 0.5 * distance_weighted_ce(x, y, mask=m) + jsl.dice_loss(x, y, mask=m)
        )(x)
        return combined, direct

    ((total, parts), grad), (ref_total, ref_grad) = both(logits, labels, mask)
    assert_close(parts["dwce"], numpy_reference(logits, labels, mask))
    assert_close(total, ref_total)
    assert_close(grad, ref_grad, atol=1e-7)


def test_accumulate_value_and_grad_equals_the_full_batch():
    num_microbatches = 2
    logits, labels, mask = make_data(2)
    features = jnp.asarray(logits)  # a 1x1 "model": logits = features @ w
    w = jnp.eye(C) + 0.1 * jax.random.normal(jax.random.key(0), (C, C))
    loss = jsl.combine(
        {
            "dwce": distance_weighted_ce,
            "batch_dice": functools.partial(jsl.dice_loss, aggregate="batch"),
        }
    )

    def apply_fn(w, x):
        return x @ w

    step = jax.jit(
        functools.partial(
            jsl.accumulate.value_and_grad,
            apply_fn,
            loss=loss,
            num_microbatches=num_microbatches,
        )
    )
    (value, parts), grads = step(w, features, labels, mask=mask)
    (ref, ref_parts), ref_grads = jax.jit(
        jax.value_and_grad(lambda w: loss(apply_fn(w, features), labels, mask=mask), has_aux=True)
    )(w)
    assert_close(value, ref)
    assert_close(parts["dwce"], ref_parts["dwce"])
    assert_close(grads, ref_grads, atol=1e-6)
    # A single described loss is accepted as it is, too.
    (alone, _), _ = jax.jit(
        functools.partial(
            jsl.accumulate.value_and_grad,
            apply_fn,
            loss=distance_weighted_ce,
            num_microbatches=num_microbatches,
        )
    )(w, features, labels, mask=mask)
    expected = numpy_reference(np.asarray(apply_fn(w, features)), labels, mask)
    assert_close(alone, expected)


def test_axis_name_sums_over_the_mapped_axis():
    # vmap with an axis name stands in for shard_map/pmap: two "devices" of two samples each.
    logits, labels, mask = make_data(3)
    split = [x.reshape(2, B // 2, *x.shape[1:]) for x in (logits, labels, mask)]

    def per_device(x, y, m):
        return distance_weighted_ce(x, y, mask=m, axis_name="d")

    got = jax.jit(jax.vmap(per_device, axis_name="d"))(*split)
    assert_close(got, np.full(2, numpy_reference(logits, labels, mask)))


def test_per_sample_variant_under_vmap_equals_reduction_none():
    logits, labels, mask = make_data(4)
    single = jsl.per_sample.single_example(distance_weighted_ce)
    mapped = jax.jit(jax.vmap(lambda x, y, m: single(x, y, mask=m, w0=W0)))(logits, labels, mask)
    assert_close(mapped, numpy_reference(logits, labels, mask, reduction="none"))


def test_the_definition_is_reachable_and_validated():
    definition = distance_weighted_ce.definition(w0=1.0)
    assert isinstance(definition, jsl.LossDefinition) and definition.pools
    with pytest.raises(TypeError, match="unexpected keyword 'sigmaa'"):
        distance_weighted_ce.definition(sigmaa=1.0)
    with pytest.raises(TypeError, match=r"distance_weighted_ce.*unexpected keyword"):
        distance_weighted_ce(*make_data(5)[:2], sigmaa=1.0)
    with pytest.raises(TypeError, match="keyword-only with defaults"):
        jsl.define_loss(lambda smooth: None)
    with pytest.raises(TypeError, match="cannot take the shared option 'mask'"):

        def bad(*, mask=None):
            return None

        jsl.define_loss(bad)

    def shapeless(*, scale=1.0):
        return jsl.LossDefinition(sums=lambda inputs: inputs.overlap_sums()[0], finish=jnp.sum)

    wrong = jsl.define_loss(shapeless)
    with pytest.raises(ValueError, match="finish must return one loss per row"):
        wrong(*make_data(6)[:2])
