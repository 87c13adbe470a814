"""Skeleton Recall loss against the authors' numbers and a NumPy formula.

The authors' numbers come from their steps (MIC-DKFZ/Skeleton-Recall: ``SkeletonTransform``
with ``do_tube=True``, then ``SoftSkeletonRecallLoss(apply_nonlin=softmax, do_bg=False)``),
run once with scikit-image 0.26 and torch on CPU on the inputs built by :func:`authors_case`.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from jaxseg_losses.geometry.skeleton import skeletonize
from jaxseg_losses.losses.skeleton_recall import skeleton_recall_loss


def authors_case():
    """Blobs of classes 1 and 2 in ``[2, 16, 20]`` labels, and ``[2, 16, 20, 3]`` logits."""
    rng = np.random.default_rng(1)
    field = ndimage.gaussian_filter(rng.normal(size=(2, 16, 20)), (0, 1.5, 1.5))
    labels = np.where(field > 0.15, 1, np.where(field < -0.2, 2, 0)).astype(np.int32)
    logits = rng.normal(size=(2, 16, 20, 3)).astype(np.float32)
    return logits, labels


# (options, expected): the authors' loss is minus the recall; these are 1 + it. Per-sample
# values are their formula on each sample (batch_dice=False averages them); batch_dice=True is
# aggregate="batch".
AUTHORS = [
    ({"smooth": 1e-5, "reduction": "none"}, [0.6809461, 0.6524783]),
    ({"smooth": 1e-5}, 0.6667122),
    ({"smooth": 1e-5, "aggregate": "batch"}, 0.6702859),
    ({"smooth": 1.0, "reduction": "none"}, [0.6677074, 0.6408781]),
    ({"smooth": 1.0, "aggregate": "batch"}, 0.6650132),
]


def test_matches_the_authors_code():
    logits, labels = authors_case()
    # The labels the held numbers were computed on (a guard against a changed generator).
    assert np.bincount(labels.ravel(), minlength=3).tolist() == [349, 141, 150]

    @jax.jit
    def losses(x, y):
        return [skeleton_recall_loss(x, y, **options) for options, _ in AUTHORS]

    for got, (_, expected) in zip(losses(logits, labels), AUTHORS, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def numpy_skeleton_recall(probs, tube_labels, weights, smooth, classes):
    """The loss from its formula: 1 - mean over classes >= 1 of the weighted soft recall."""
    losses = []
    for p, t, w in zip(probs, tube_labels, weights, strict=True):
        recalls = []
        for k in range(1, classes):
            on = (t == k) * w
            recalls.append(((p[..., k] * on).sum() + smooth) / max(on.sum() + smooth, 1e-8))
        losses.append(1.0 - np.mean(recalls))
    return np.array(losses)


def test_tube_widths_and_mask_against_scipy():
    """Skeleton (the library's exact scikit-image skeleton) dilated by scipy's cross, with a
    mask: excluded pixels are background for the skeleton and count nowhere."""
    logits, labels = authors_case()
    mask = (np.random.default_rng(2).uniform(size=labels.shape) > 0.15).astype(np.float32)
    probs = np.asarray(jax.nn.softmax(logits, -1))
    skeleton = np.asarray(skeletonize(jnp.asarray((labels > 0) & (mask > 0))))
    cross = ndimage.generate_binary_structure(2, 1)

    @jax.jit
    def losses(x, y, m):
        return [
            skeleton_recall_loss(x, y, mask=m, tube_iterations=n, smooth=0.5, reduction="none")
            for n in (0, 1, 3)
        ]

    for got, n in zip(losses(logits, labels, mask), (0, 1, 3), strict=True):
        tube = np.stack(
            [ndimage.binary_dilation(s, cross, iterations=n) if n else s for s in skeleton]
        )
        expected = numpy_skeleton_recall(probs, tube * labels, mask, 0.5, 3)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_precomputed_tubes_in_3d_and_sigmoid():
    """precomputed=True reads the labels as tubes (any number of spatial axes); one sigmoid
    channel is the foreground."""
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(2, 4, 5, 6, 3)).astype(np.float32)
    tubes = rng.integers(0, 3, size=(2, 4, 5, 6)).astype(np.int32)
    binary_logits = rng.normal(size=(2, 4, 5, 6, 1)).astype(np.float32)
    binary_tubes = (tubes > 0).astype(np.int32)

    @jax.jit
    def losses(x, y, xb, yb):
        multi = skeleton_recall_loss(x, y, precomputed=True, reduction="none")
        binary = skeleton_recall_loss(
            xb, yb, precomputed=True, activation="sigmoid", smooth=0.0, reduction="none"
        )
        return multi, binary

    multi, binary = losses(logits, tubes, binary_logits, binary_tubes)
    probs = np.asarray(jax.nn.softmax(logits, -1))
    ones = np.ones(tubes.shape, np.float32)
    np.testing.assert_allclose(
        multi, numpy_skeleton_recall(probs, tubes, ones, 1e-5, 3), rtol=1e-5, atol=1e-6
    )
    fg = 1.0 / (1.0 + np.exp(-binary_logits[..., 0]))
    expected = 1.0 - (fg * binary_tubes).sum((1, 2, 3)) / binary_tubes.sum((1, 2, 3))
    np.testing.assert_allclose(binary, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"tube_iterations": 1.0}, TypeError, r"`tube_iterations` must be a Python int"),
        ({"tube_iterations": -1}, ValueError, r"`tube_iterations` must be an int >= 0; got -1"),
        ({"smooth": -1.0}, ValueError, r"`smooth` must be finite and non-negative"),
        ({"precomputed": 1}, TypeError, r"`precomputed` must be True or False"),
    ],
)
def test_bad_options_name_the_argument(options, error, message):
    logits, labels = authors_case()
    with pytest.raises(error, match=message):
        skeleton_recall_loss(logits, labels, **options)


def test_3d_needs_precomputed_skeletons():
    with pytest.raises(ValueError, match=r"2-D images only.*precomputed=True"):
        skeleton_recall_loss(np.zeros((1, 3, 3, 3, 2), np.float32), np.zeros((1, 3, 3, 3), int))
