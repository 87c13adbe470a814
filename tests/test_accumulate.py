"""Additive decompositions (CombinedLoss.sums/finalize) and exact micro-batch accumulation.

The reference for a decomposed loss is the library's own loss on the whole batch (each is
checked against NumPy formulas in its own test file); the reference for accumulation is
``jax.value_and_grad`` of the whole-batch loss.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxseg_losses as jsl

B, H, W, C = 8, 6, 5, 3


def _data(seed: int = 0, num_classes: int = C):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(B, H, W, num_classes)).astype(np.float32) * 2.0
    labels = rng.integers(0, num_classes, size=(B, H, W)).astype(np.int32)
    # Rare class 2 in half the samples, absent in the others: batch and sample Dice differ.
    labels[: B // 2][labels[: B // 2] == 2] = 0
    labels[0, 0, :3] = 255
    mask = (rng.uniform(size=(B, H, W)) > 0.2).astype(np.float32)
    mask[3] = 0.0  # one sample with no valid pixel at all
    return jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(mask)


P = functools.partial
BATCH = {"aggregate": "batch"}
W3 = jnp.array([0.5, 1.0, 2.0])

# (name, term of combine, data options): each term is also called directly as the reference
CASES = [
    ("iou_batch", P(jsl.iou_loss, **BATCH), {}),
    ("iou_batch_log_s0", P(jsl.iou_loss, log=True, smooth=0.0, **BATCH), {}),
    (
        "dice_batch_weighted_nobg",
        P(jsl.dice_loss, class_weights=W3, include_background=False, smooth=1e-5, **BATCH),
        {},
    ),
    ("tversky_batch", P(jsl.tversky_loss, alpha=0.3, beta=0.7, gamma=0.75, **BATCH), {}),
    ("gdl_square_batch", P(jsl.generalized_dice_loss, **BATCH), {}),
    (
        "gdl_simple_weighted_nobg_log",
        P(
            jsl.generalized_dice_loss,
            weight_type="simple",
            class_weights=W3,
            include_background=False,
            log=True,
            **BATCH,
        ),
        {},
    ),
    ("dice_sample", jsl.dice_loss, {}),
    ("lovasz_sample", jsl.lovasz_softmax_loss, {}),
    ("ce", jsl.cross_entropy_loss, {}),
    ("ce_weighted_smoothed", P(jsl.cross_entropy_loss, class_weights=W3, label_smoothing=0.1), {}),
    ("focal", P(jsl.focal_loss, gamma=2.0, alpha=0.25), {}),
    ("focal_alpha_vector", P(jsl.focal_loss, gamma=0.5, alpha=W3 / 4.0), {}),
    ("dice_batch_sum", P(jsl.dice_loss, **BATCH), {"reduction": "sum"}),
    ("ce_sum", jsl.cross_entropy_loss, {"reduction": "sum"}),
    ("dice_sample_sum", jsl.dice_loss, {"reduction": "sum"}),
    ("dice_batch_probs", P(jsl.dice_loss, **BATCH), {"activation": None}),
]


def _direct(fn, logits, labels, mask, options):
    options = {"ignore_index": 255, **options}
    return fn(logits, labels, mask=mask, **options)


def test_sums_and_finalize_equal_the_loss_on_the_whole_batch_under_jit():
    logits, labels, mask = _data()
    probs = jax.nn.softmax(logits, axis=-1)

    def both(logits, probs, labels, mask):
        out = {}
        for name, fn, options in CASES:
            x = probs if options.get("activation", "softmax") is None else logits
            additive = jsl.combine({name: fn}, ignore_index=255, **options)

            def split(x, additive=additive, name=name):
                total, parts = additive.finalize(additive.sums(x, labels, mask=mask))
                return total, parts[name]

            def direct(x, fn=fn, options=options):
                return _direct(fn, x, labels, mask, options)

            (value, part), grad = jax.value_and_grad(split, has_aux=True)(x)
            ref, ref_grad = jax.value_and_grad(direct)(x)
            out[name] = (value, part, grad, ref, ref_grad)
        return out

    results = jax.jit(both)(logits, probs, labels, mask)
    for name, (value, part, grad, ref, ref_grad) in results.items():
        assert np.isfinite(ref), name
        np.testing.assert_allclose(value, ref, rtol=1e-6, atol=1e-7, err_msg=name)
        np.testing.assert_allclose(part, ref, rtol=1e-6, atol=1e-7, err_msg=name)
        scale = float(jnp.max(jnp.abs(ref_grad)))
        np.testing.assert_allclose(grad, ref_grad, atol=1e-6 * scale + 1e-9, err_msg=name)


def test_sums_of_parts_give_the_whole_batch_loss():
    """Unequal parts (3 + 5 samples, different valid-pixel counts) add exactly."""
    logits, labels, mask = _data(1)
    terms = {
        "dice": P(jsl.dice_loss, **BATCH),
        "gdl": P(jsl.generalized_dice_loss, **BATCH),
        "iou_sample": jsl.iou_loss,
        "ce": (0.5, P(jsl.cross_entropy_loss, class_weights=W3)),
        "focal": (2.0, jsl.focal_loss),
    }
    loss = jsl.combine(terms, ignore_index=255)
    assert loss.names == tuple(terms)
    sums = jax.jit(loss.sums)
    parts_sums = [sums(logits[s], labels[s], mask=mask[s]) for s in (slice(0, 3), slice(3, None))]
    total, parts = jax.jit(loss.finalize)(jax.tree.map(jnp.add, *parts_sums))
    whole, whole_parts = jax.jit(jsl.combine(terms, ignore_index=255))(logits, labels, mask=mask)
    np.testing.assert_allclose(total, whole, rtol=2e-6)
    for name in terms:
        np.testing.assert_allclose(parts[name], whole_parts[name], rtol=2e-6, err_msg=name)
    # The pitfall this module exists for: the mean of the parts' batch Dice is another number.
    dice = jax.jit(P(jsl.dice_loss, ignore_index=255, **BATCH))
    halves = [dice(logits[s], labels[s], mask=mask[s]) for s in (slice(0, 3), slice(3, None))]
    assert abs(float(sum(halves) / 2) - float(whole_parts["dice"])) > 1e-3


def test_sigmoid_and_hinge_terms():
    rng = np.random.default_rng(2)
    logits = jnp.asarray(rng.normal(size=(B, 7, 1)).astype(np.float32))
    labels = jnp.asarray(rng.integers(0, 2, size=(B, 7)).astype(np.int32))
    terms = {
        "dice": P(jsl.dice_loss, **BATCH),
        "bce": P(jsl.cross_entropy_loss, pos_weight=2.0),
        "hinge": jsl.lovasz_hinge_loss,
    }
    loss = jsl.combine(terms, activation="sigmoid")
    sums = [jax.jit(loss.sums)(logits[k::2], labels[k::2]) for k in range(2)]
    total, parts = jax.jit(loss.finalize)(jax.tree.map(jnp.add, *sums))
    direct = jax.jit(jsl.combine(terms, activation="sigmoid"))(logits, labels)[1]
    for name in terms:
        np.testing.assert_allclose(parts[name], direct[name], rtol=1e-6, err_msg=name)
    np.testing.assert_allclose(total, sum(parts.values()), rtol=1e-6)


def _model(params, images):
    """A tiny two-layer per-pixel network: ``[B, H, W, 2] -> [B, H, W, C]``."""
    hidden = jnp.tanh(images @ params["w1"] + params["b1"][None, None, None, :])
    return hidden @ params["w2"]


def _params(key):
    k1, k2 = jax.random.split(key)
    return {
        "w1": jax.random.normal(k1, (2, 8)),
        "b1": jnp.zeros((8,)),
        "w2": jax.random.normal(k2, (8, C)) * 0.5,
    }


def test_value_and_grad_equals_the_full_batch_gradient():
    """Four micro-batches, pytree inputs and a mask: the full-batch value and gradient, for
    batch-pooled, per-sample, pixel-wise and distance-based terms."""
    _, labels, mask = _data(3)
    params = _params(jax.random.key(4))
    inputs = {
        "image": jax.random.normal(jax.random.key(3), (B, H, W, 2)),
        "scale": jnp.linspace(0.5, 1.5, B),
    }

    def apply_fn(p, inputs):
        return _model(p, inputs["image"]) * inputs["scale"][:, None, None, None]

    loss = jsl.combine(
        {
            "dice": P(jsl.dice_loss, **BATCH),
            "gdl": P(jsl.generalized_dice_loss, **BATCH),
            "ce": jsl.cross_entropy_loss,
            "iou": 0.5,
            # A batch-pooled region loss with true negatives and a distance-based loss.
            "mcc": P(jsl.mcc_loss, **BATCH),
            "boundary": 0.5,
        },
        ignore_index=255,
    )
    step = jax.jit(
        functools.partial(jsl.accumulate.value_and_grad, apply_fn, loss=loss, num_microbatches=4)
    )
    (value, parts), grads = step(params, inputs, labels, mask=mask)
    (ref, ref_parts), ref_grads = jax.jit(
        jax.value_and_grad(lambda p: loss(apply_fn(p, inputs), labels, mask=mask), has_aux=True)
    )(params)
    np.testing.assert_allclose(value, ref, rtol=1e-5)
    for name in loss.names:
        np.testing.assert_allclose(parts[name], ref_parts[name], rtol=1e-5, err_msg=name)
    for key in params:
        scale = float(jnp.max(jnp.abs(ref_grads[key])))
        np.testing.assert_allclose(grads[key], ref_grads[key], atol=1e-5 * scale, err_msg=key)


def test_nnx_optax_step_with_accumulation_equals_the_full_batch_step():
    nnx = pytest.importorskip("flax.nnx")
    optax = pytest.importorskip("optax")

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.conv1 = nnx.Conv(2, 6, (3, 3), rngs=rngs)
            self.conv2 = nnx.Conv(6, C, (1, 1), rngs=rngs)

        def __call__(self, x):
            return self.conv2(nnx.relu(self.conv1(x)))

    _, labels, mask = _data(7)
    images = jax.random.normal(jax.random.key(7), (B, H, W, 2))
    loss = jsl.combine({"ce": 1.0, "dice": P(jsl.dice_loss, **BATCH)}, ignore_index=255)
    tx = optax.sgd(0.1)

    def updated_params(num_microbatches):
        model = Net(nnx.Rngs(0))
        optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

        @nnx.jit
        def train_step(model, optimizer, images, labels, mask):
            graphdef, params, rest = nnx.split(model, nnx.Param, ...)

            def apply_fn(p, x):
                return nnx.merge(graphdef, p, rest)(x)

            if num_microbatches:
                (value, _), grads = jsl.accumulate.value_and_grad(
                    apply_fn,
                    params,
                    images,
                    labels,
                    loss=loss,
                    num_microbatches=num_microbatches,
                    mask=mask,
                )
            else:

                def loss_fn(model):
                    return loss(model(images), labels, mask=mask)

                (value, _), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
            optimizer.update(model, grads)
            return value

        value = train_step(model, optimizer, images, labels, mask)
        return value, nnx.state(model, nnx.Param)

    value, params = updated_params(4)
    ref_value, ref_params = updated_params(0)
    np.testing.assert_allclose(value, ref_value, rtol=1e-5)
    for got, want in zip(jax.tree.leaves(params), jax.tree.leaves(ref_params), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_errors_name_the_argument():
    images, labels = jnp.zeros((6, 2, 2, 2)), jnp.zeros((6, 2, 2), jnp.int32)
    not_decomposable = [
        ({"lovasz": P(jsl.lovasz_softmax_loss, **BATCH)}, {}, "'lovasz' with aggregate='batch'"),
        ({"custom": lambda logits, labels, **kw: jnp.sum(logits)}, {}, "'custom' is a plain"),
        ("ce+dice", {"reduction": "none"}, "reduction='none'"),
    ]
    for terms, options, message in not_decomposable:
        combined = jsl.combine(terms, **options)  # fine to call on a whole batch
        with pytest.raises(ValueError, match=message):
            combined.sums(images, labels)
        with pytest.raises(ValueError, match=message):
            jsl.accumulate.value_and_grad(
                _model, None, images, labels, loss=combined, num_microbatches=2
            )
    with pytest.raises(ValueError, match="aggregate"):
        jsl.combine({"dice": P(jsl.dice_loss, aggregate="pixel")})
    loss = jsl.combine("ce")
    with pytest.raises(ValueError, match=r"`num_microbatches`=4 must divide the batch size 6"):
        jsl.accumulate.value_and_grad(_model, None, images, labels, loss=loss, num_microbatches=4)
    with pytest.raises(ValueError, match="`num_microbatches` must be a positive"):
        jsl.accumulate.value_and_grad(_model, None, images, labels, loss=loss, num_microbatches=0)
    with pytest.raises(ValueError, match="`inputs` has batch size 5"):
        jsl.accumulate.value_and_grad(
            _model, None, images[:5], labels, loss=loss, num_microbatches=2
        )
    with pytest.raises(TypeError, match="`loss` must be a CombinedLoss"):
        jsl.accumulate.value_and_grad(
            _model, None, images, labels, loss=lambda x, y: 0.0, num_microbatches=2
        )
