"""Blob loss against the authors' code (numbers held as literals) and a NumPy reference written
from the authors' steps: per image, per instance, the main loss with the other instances masked."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

import jaxseg_losses as jsl
from jaxseg_losses.losses.blob import blob_loss
from jaxseg_losses.losses.region import dice_loss


def _binary_case() -> tuple[np.ndarray, np.ndarray]:
    """Three 9 x 10 binary images (the last without instances) and sigmoid logits."""
    rng = np.random.default_rng(0)
    labels = (rng.random((3, 9, 10)) < 0.3).astype(np.int32)
    labels[2] = 0
    logits = rng.normal(size=(3, 9, 10, 1)).astype(np.float32)
    return logits, labels


# The authors' `compute_loss` (github.com/neuronflow/blob_loss, commit bee911a, with MONAI 1.6.1
# `DiceLoss(sigmoid=False)` and torch 2.13 `BCELoss()` on sigmoid probabilities, i.e.
# `"sigmoid": True` in both criterion dicts, `multi_label` = scipy.ndimage.label of each image)
# on `_binary_case()`, batch element by element: (main_weight, blob_weight) -> total loss.
AUTHORS_DICE = {
    (0, 2, 1): 2.367112398147583,
    (1, 2, 1): 2.1631617546081543,
    (0, 1, 1): 1.6621263027191162,
    (1, 0, 1): 0.953795850276947,
}
AUTHORS_DICE_CE = {
    (0, 2, 1): 4.635656356811523,
    (1, 2, 1): 4.246912002563477,
    (0, 0, 1): 1.5665149688720703,
}
# The same code on the whole batch of three: the blob term is averaged over the two images with
# instances only.
AUTHORS_BATCH = {"dice_alpha0": 0.9554680585861206, "dice_alpha2": 2.4952473640441895}


def test_matches_the_authors_code_per_sample():
    logits, labels = _binary_case()
    for main_loss, table in (("dice", AUTHORS_DICE), ("dice_ce", AUTHORS_DICE_CE)):
        for (b, alpha, beta), expected in table.items():
            fn = functools.partial(
                blob_loss, activation="sigmoid", main_loss=main_loss, alpha=alpha, beta=beta
            )
            got = jax.jit(fn)(logits[b : b + 1], labels[b : b + 1])
            np.testing.assert_allclose(got, expected, rtol=2e-6)


def test_matches_the_authors_batch_mean():
    logits, labels = _binary_case()
    blob_only = jax.jit(functools.partial(blob_loss, activation="sigmoid", alpha=0.0))
    np.testing.assert_allclose(blob_only(logits, labels), AUTHORS_BATCH["dice_alpha0"], rtol=2e-6)
    # The authors' global term is a mean over all images, the blob term over those with an
    # instance: two terms of a combination.
    combined = jsl.combine(
        {
            "global": (2.0, functools.partial(dice_loss, smooth=1e-5)),
            "blob": (1.0, functools.partial(blob_loss, alpha=0.0)),
        },
        activation="sigmoid",
    )
    total, _ = jax.jit(combined)(logits, labels)
    np.testing.assert_allclose(total, AUTHORS_BATCH["dice_alpha2"], rtol=2e-6)


# ----------------------------------------------------------------------------------------------
# A NumPy reference written from the authors' steps, for every branch.


def _probabilities(logits: np.ndarray, activation: str | None) -> np.ndarray:
    x = logits.astype(np.float64)
    if activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    if activation == "softmax":
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)
    return x


def _pixel_ce(p: np.ndarray, g: np.ndarray, binary: bool) -> np.ndarray:
    """[..., C] per-channel BCE (binary) or the exclusive CE repeated in each column."""
    if binary:
        return -(g * np.log(p) + (1 - g) * np.log(1 - p))
    ce = -np.sum(g * np.log(p), -1, keepdims=True)
    return np.broadcast_to(ce, p.shape)


def _reference(logits, labels, *, activation, main_loss="dice", alpha=2.0, beta=1.0,
               smooth=1e-5, include_background=True, connectivity=1, weights=None):  # fmt: skip
    """[B] per-sample values: alpha * main loss + beta * mean over instances of the main loss
    with the other instances of the class masked (prediction and target 0)."""
    p = _probabilities(logits, activation)
    classes = p.shape[-1]
    binary = activation == "sigmoid" or classes == 1
    g = (labels[..., None] == np.arange(classes)).astype(float) if classes > 1 else (
        (labels == 1)[..., None].astype(float))  # fmt: skip
    w = np.ones(labels.shape) if weights is None else weights.astype(float)
    ce = _pixel_ce(p, g, binary)
    structure = ndimage.generate_binary_structure(labels.ndim - 1, connectivity)
    blob_classes = range(classes) if binary else range(1, classes)
    kept = range(classes) if include_background or classes == 1 else range(1, classes)

    def dice(pc, gc, wc):
        return 1 - (2 * np.sum(wc * pc * gc) + smooth) / (
            np.sum(wc * pc) + np.sum(wc * gc) + smooth
        )

    out = []
    for b in range(labels.shape[0]):
        glob = np.mean([dice(p[b, ..., c], g[b, ..., c], w[b]) for c in kept])
        if main_loss == "dice_ce":
            glob += np.sum(w[b] * ce[b].mean(-1)) / np.sum(w[b])
        terms = []
        for c in blob_classes:
            foreground = (g[b, ..., c] > 0.5) & (w[b] != 0)
            components, count = ndimage.label(foreground, structure)  # pyright: ignore
            for k in range(1, count + 1):
                keep = (components == 0) | (components == k)  # other instances masked out
                term = dice(p[b, ..., c] * keep, (components == k).astype(float), w[b])
                if main_loss == "dice_ce":
                    term += np.sum(w[b] * keep * ce[b, ..., c]) / np.sum(w[b])
                terms.append(term)
        out.append(alpha * glob + beta * (np.mean(terms) if terms else 0.0))
    return np.array(out)


def _multi_class_case(classes: int, spatial=(9, 10), seed=1):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, size=(2, *spatial)).astype(np.int32)
    labels[:, : spatial[0] // 2] = 0  # sparser foreground: several instances per class
    logits = (2 * rng.normal(size=(2, *spatial, classes))).astype(np.float32)
    return logits, labels


@pytest.mark.parametrize("main_loss", ["dice", "dice_ce"])
def test_softmax_multi_class_matches_reference(main_loss):
    logits, labels = _multi_class_case(3)
    options = {"main_loss": main_loss, "alpha": 0.5, "beta": 1.5, "include_background": False}
    got = jax.jit(functools.partial(blob_loss, reduction="none", **options))(logits, labels)
    want = _reference(logits, labels, activation="softmax", **options)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_sigmoid_connectivity_mask_and_smooth_match_reference():
    logits, labels = _multi_class_case(2, seed=2)
    mask = np.random.default_rng(3).random(labels.shape) < 0.8
    options = {"main_loss": "dice_ce", "smooth": 1.0, "connectivity": 2}
    fn = functools.partial(blob_loss, activation="sigmoid", reduction="none", **options)
    got = jax.jit(fn)(logits[..., :1], labels, mask=mask)
    want = _reference(logits[..., :1], labels, activation="sigmoid", weights=mask, **options)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_one_and_three_spatial_axes_match_reference():
    rng = np.random.default_rng(4)
    for shape in ((2, 17), (2, 4, 5, 6)):
        labels = (rng.random(shape) < 0.35).astype(np.int32)
        probs = rng.random((*shape, 1)).astype(np.float32)
        got = jax.jit(functools.partial(blob_loss, activation=None, reduction="none"))(
            probs, labels
        )
        np.testing.assert_allclose(got, _reference(probs, labels, activation=None), rtol=1e-5)


def test_batch_aggregate_pools_global_and_averages_images_with_instances():
    logits, labels = _binary_case()
    got = jax.jit(functools.partial(blob_loss, activation="sigmoid", aggregate="batch"))(
        logits, labels
    )
    p = _probabilities(logits, "sigmoid")[..., 0]
    g = labels.astype(float)
    pooled = 1 - (2 * np.sum(p * g) + 1e-5) / (np.sum(p) + np.sum(g) + 1e-5)
    blob = _reference(logits, labels, activation="sigmoid", alpha=0.0)
    np.testing.assert_allclose(got, 2 * pooled + blob[:2].mean(), rtol=1e-5)


def test_mean_counts_every_sample_and_alpha_zero_leaves_out_samples_without_instances():
    logits, labels = _binary_case()
    fn = jax.jit(functools.partial(blob_loss, activation="sigmoid"))
    want = _reference(logits, labels, activation="sigmoid")
    np.testing.assert_allclose(fn(logits, labels), want.mean(), rtol=1e-5)
    empty = jnp.zeros_like(labels)
    value, grad = jax.jit(
        jax.value_and_grad(lambda x: blob_loss(x, empty, activation="sigmoid", alpha=0.0))
    )(jnp.asarray(logits))
    assert float(value) == 0.0 and not np.any(np.asarray(grad))


def test_too_many_instances_is_loud():
    labels = np.zeros((2, 1, 9), np.int32)
    labels[0, 0, ::2] = 1  # five one-pixel instances
    labels[1, 0, :2] = 1
    logits = np.zeros((2, 1, 9, 1), np.float32)
    with pytest.raises(ValueError, match="max_components"):
        blob_loss(logits, labels, activation="sigmoid", max_components=4)
    fn = jax.jit(
        functools.partial(blob_loss, activation="sigmoid", max_components=4, reduction="none")
    )
    values = np.asarray(fn(logits, labels))
    assert np.isnan(values[0]) and np.isfinite(values[1])
    with pytest.raises(Exception, match="max_components"):
        jsl.checked(fn)(logits, labels)
    np.testing.assert_allclose(
        jax.jit(functools.partial(blob_loss, activation="sigmoid", max_components=5))(
            logits, labels
        ),
        _reference(logits, labels, activation="sigmoid").mean(),
        rtol=1e-5,
    )


def test_gradients_are_finite_at_extreme_logits():
    logits, labels = _multi_class_case(3)
    binary = (labels > 0).astype(np.int32)
    for activation, x, y in (("softmax", logits, labels), ("sigmoid", logits[..., :1], binary)):
        extreme = 100.0 * np.sign(x)
        grad = jax.jit(
            jax.grad(
                lambda z, y=y, a=activation: blob_loss(z, y, activation=a, main_loss="dice_ce")
            )
        )(extreme)
        assert np.all(np.isfinite(np.asarray(grad)))


def test_bad_options_name_the_argument():
    logits, labels = _binary_case()
    call = functools.partial(blob_loss, logits, labels, activation="sigmoid")
    with pytest.raises(ValueError, match="main_loss"):
        call(main_loss="ce")
    with pytest.raises(TypeError, match="max_components"):
        call(max_components=2.0)
    with pytest.raises(ValueError, match="max_components"):
        call(max_components=0)
    with pytest.raises(ValueError, match="connectivity"):
        call(connectivity=3)
    with pytest.raises(ValueError, match="alpha"):
        call(alpha=-1.0)
