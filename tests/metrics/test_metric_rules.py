"""Rules over every metric of ``jsl.metrics`` that reads pixels or adds up.

* excluded pixels are inert: changing the predictions and labels of ignored or masked pixels
  (to any class, to a value that is no class, to non-finite scores) changes no value, and
  ``jsl.checked`` does not flag them;
* the surface metrics with ``ignore_index`` / ``mask`` against a brute-force NumPy/scipy
  reference written from the rule of ``docs/surface_metrics.md`` (an excluded pixel lies
  outside every mask, like a pixel beyond the image), and a perfect prediction scores 0 / 0 / 1
  whatever is excluded;
* accumulators add only like with like;
* non-finite scores are loud under ``jsl.checked`` in every metric that takes scores;
* one meaning of "one class".
"""

import inspect
import itertools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.spatial

import jaxseg_losses as jsl

metrics = jsl.metrics
IGNORE = 255
C = 3


# ----------------------------------------------------------------------------------------------
# Rule: excluded pixels are inert.


class Inputs(NamedTuple):
    """One batch: ``[B, H, W]`` labels, the excluded pixels, and the predictions in every
    form a metric reads."""

    labels: np.ndarray  # int32, IGNORE where ignored (the `ignore` cases)
    excluded: np.ndarray  # bool [B, H, W]
    classes: np.ndarray  # int32 predicted classes
    scores: np.ndarray  # float32 [B, H, W, C]


def make_inputs(seed: int, *, ignore: bool) -> Inputs:
    rng = np.random.default_rng(seed)
    shape = (2, 9, 10)
    labels = np.zeros(shape, np.int32)
    labels[:, 2:7, 2:8] = 1
    labels[:, 4:6, 3:5] = 2
    labels[1, 0:2] = 2
    classes = np.where(rng.random(shape) < 0.15, rng.integers(0, C, shape), labels)
    classes = np.roll(classes, 1, axis=2).astype(np.int32)
    excluded = np.zeros(shape, bool)
    excluded[:, 3:5, 4:7] = True  # a hole across two classes
    excluded[:, 6, :] = True  # a band along a boundary
    excluded |= rng.random(shape) < 0.1
    if ignore:
        labels = np.where(excluded, IGNORE, labels).astype(np.int32)
    scores = rng.normal(size=(*shape, C)).astype(np.float32)
    scores += 4.0 * (classes[..., None] == np.arange(C))
    return Inputs(labels, excluded, classes, scores)


def perturb(inputs: Inputs, variant: str, *, ignore: bool, seed: int = 99) -> Inputs:
    """The inputs with every excluded pixel changed as ``variant`` says (labels too, when
    excluded by the mask: an ignored label stays ``ignore_index`` by definition)."""
    rng = np.random.default_rng(seed)
    shape, ex = inputs.labels.shape, inputs.excluded
    if variant == "any class":
        classes = rng.integers(0, C, shape)
        labels = rng.integers(0, C, shape)
        scores = rng.normal(size=(*shape, C)) * 10
    elif variant == "no class":
        classes = rng.choice([-1, C, 7, IGNORE], shape)
        labels = rng.choice([-1, C, 7], shape)
        scores = rng.choice([np.nan, np.inf, -np.inf], (*shape, C))
    else:
        raise AssertionError(variant)
    new_labels = inputs.labels if ignore else np.where(ex, labels, inputs.labels)
    return Inputs(
        new_labels.astype(np.int32),
        ex,
        np.where(ex, classes, inputs.classes).astype(np.int32),
        np.where(ex[..., None], scores, inputs.scores).astype(np.float32),
    )


def _exclusion(inputs: Inputs, ignore: bool, weights: bool = False) -> dict[str, Any]:
    if ignore:
        return {"ignore_index": IGNORE}
    if weights:  # float weights: non-zero counts
        return {"mask": np.where(inputs.excluded, 0.0, 0.5).astype(np.float32)}
    return {"mask": ~inputs.excluded}


def _hot(classes: Any) -> jax.Array:
    return jax.nn.one_hot(classes, C, dtype=jnp.bool_)


def _binary(labels: Any) -> jax.Array:
    """Classes 1 and 2 as the foreground 1; any other value kept."""
    return jnp.where((labels >= 0) & (labels < C), jnp.minimum(labels, 1), labels)


def _per_image_update(x: Inputs, ex: dict[str, Any]) -> Any:
    acc = metrics.PerImageAccumulator.empty(("dice", "hd95"), C, include_background=False)
    counts = metrics.overlap_counts(x.scores, x.labels, **ex)
    values = {
        "dice": metrics.dice(counts, ignore_empty=True),
        "hd95": metrics.hausdorff_distance(x.classes, x.labels, num_classes=C, percentile=95, **ex),
    }
    return acc.update(values).compute(reduction="mean_batch")


# Every metric of jsl.metrics that reads pixels, in each form of its inputs.
METRIC_CASES: dict[str, Callable[[Inputs, dict[str, Any]], Any]] = {
    "overlap_counts/classes": lambda x, ex: metrics.overlap_counts(
        x.classes, x.labels, num_classes=C, **ex
    ),
    "overlap_counts/scores": lambda x, ex: metrics.overlap_counts(x.scores, x.labels, **ex),
    "overlap_counts/decisions": lambda x, ex: metrics.overlap_counts(
        x.scores > 0.5, x.labels, **ex
    ),
    "overlap_counts/nchw": lambda x, ex: metrics.overlap_counts(
        jnp.moveaxis(x.scores, -1, 1), x.labels, class_axis=1, **ex
    ),
    "confusion_matrix/classes": lambda x, ex: metrics.confusion_matrix(
        x.classes, x.labels, C, **ex
    ),
    "confusion_matrix/scores": lambda x, ex: metrics.confusion_matrix(x.scores, x.labels, C, **ex),
    "confusion_matrix/one channel": lambda x, ex: metrics.confusion_matrix(
        x.scores[..., :1], _binary(x.labels), 2, threshold=0.5, **ex
    ),
    "ConfusionMatrixAccumulator.update": lambda x, ex: (
        metrics.ConfusionMatrixAccumulator.empty(C).update(x.scores, x.labels, **ex).compute()
    ),
    "PerImageAccumulator.update": _per_image_update,
    "hausdorff_distance": lambda x, ex: metrics.hausdorff_distance(
        x.classes, x.labels, num_classes=C, include_background=True, **ex
    ),
    "hausdorff_distance/95 one-hot": lambda x, ex: metrics.hausdorff_distance(
        _hot(x.classes), x.labels, num_classes=C, percentile=95, **ex
    ),
    "hausdorff_distance/directed": lambda x, ex: metrics.hausdorff_distance(
        x.classes, x.labels, num_classes=C, directed=True, spacing=(1.0, 0.5), **ex
    ),
    "average_surface_distance": lambda x, ex: metrics.average_surface_distance(
        x.classes, x.labels, num_classes=C, **ex
    ),
    "average_surface_distance/symmetric": lambda x, ex: metrics.average_surface_distance(
        x.classes, x.labels, num_classes=C, symmetric=True, distance_metric="taxicab", **ex
    ),
    "surface_dice": lambda x, ex: metrics.surface_dice(
        x.classes, x.labels, num_classes=C, tolerance=1.0, **ex
    ),
    "boundary_iou": lambda x, ex: metrics.boundary_iou(x.classes, x.labels, num_classes=C, **ex),
    "boundary_iou/one-hot wide": lambda x, ex: metrics.boundary_iou(
        _hot(x.classes), x.labels, num_classes=C, dilation_ratio=0.3, include_background=True, **ex
    ),
    "volume_difference": lambda x, ex: metrics.volume_difference(
        x.classes, x.labels, num_classes=C, include_background=True, **ex
    ),
    "volume_difference/relative": lambda x, ex: metrics.volume_difference(
        _hot(x.classes),
        x.labels,
        num_classes=C,
        relative=True,
        absolute=True,
        spacing=(1.0, 0.5),
        **ex,
    ),
    "calibration_error": lambda x, ex: metrics.calibration_error(x.scores, x.labels, **ex),
    "calibration_error/l2 probabilities nchw": lambda x, ex: metrics.calibration_error(
        jnp.moveaxis(jax.nn.softmax(x.scores), -1, 1),
        x.labels,
        norm="l2",
        activation=None,
        class_axis=1,
        **ex,
    ),
    "calibration_error/one channel": lambda x, ex: metrics.calibration_error(
        x.scores[..., :1], _binary(x.labels), activation="sigmoid", norm="max", **ex
    ),
    "reliability_diagram": lambda x, ex: metrics.reliability_diagram(
        x.scores, x.labels, num_bins=10, **ex
    ),
    "per_class_calibration_error": lambda x, ex: metrics.per_class_calibration_error(
        x.scores, x.labels, **ex
    ),
    "per_class_calibration_error/average sigmoid": lambda x, ex: (
        metrics.per_class_calibration_error(
            x.scores,
            x.labels,
            calibration_reduction="average",
            activation="sigmoid",
            include_background=False,
            right=True,
            **ex,
        )
    ),
    "CalibrationAccumulator.update": lambda x, ex: (
        metrics.CalibrationAccumulator.empty(10).update(x.scores, x.labels, **ex).compute()
    ),
    "cldice": lambda x, ex: metrics.cldice(x.classes, x.labels, num_classes=C, **ex),
    "cldice/one-hot": lambda x, ex: metrics.cldice(
        _hot(x.classes), x.labels, num_classes=C, include_background=True, **ex
    ),
    "betti_errors": lambda x, ex: metrics.betti_errors(x.classes, x.labels, num_classes=C, **ex),
    "betti_errors/faces one-hot": lambda x, ex: metrics.betti_errors(
        _hot(x.classes), x.labels, num_classes=C, connectivity=1, include_background=True, **ex
    ),
    # max_instances / max_lesions = the 9 x 10 pixels of an image: no case can overflow.
    "panoptic_counts": lambda x, ex: metrics.panoptic_counts(
        x.classes, x.labels, num_classes=C, max_instances=90, **ex
    ),
    "panoptic_counts/pairs, stuff, below 0.5": lambda x, ex: metrics.panoptic_counts(
        (x.classes, x.classes % 2 + 1),
        (x.labels, jnp.ones_like(x.labels)),
        num_classes=C,
        max_instances=90,
        match_threshold=0.3,
        stuff_classes=(2,),
        **ex,
    ),
    "panoptic_quality": lambda x, ex: metrics.panoptic_quality(
        x.classes,
        x.labels,
        num_classes=C,
        max_instances=90,
        connectivity=2,
        include_background=True,
        **ex,
    ),
    "lesion_wise_scores": lambda x, ex: metrics.lesion_wise_scores(
        x.classes,
        x.labels,
        num_classes=C,
        max_lesions=90,
        dilation_iterations=1,
        volume_threshold=1.0,
        **ex,
    ),
    "lesion_detection/iou": lambda x, ex: metrics.lesion_detection(
        x.classes, x.labels, num_classes=C, max_lesions=90, match="iou", **ex
    ),
}

EXCLUSIONS = ("ignore_index", "mask", "mask weights")
VARIANTS = ("any class", "no class")
INERT_CASES = list(itertools.product(METRIC_CASES, EXCLUSIONS, VARIANTS))


def _equal_trees(a: Any, b: Any) -> None:
    leaves_a, tree_a = jax.tree.flatten(a)
    leaves_b, tree_b = jax.tree.flatten(b)
    assert tree_a == tree_b
    for x, y in zip(leaves_a, leaves_b, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize(("name", "exclusion", "variant"), INERT_CASES)
def test_excluded_pixels_are_inert(name, exclusion, variant):
    ignore = exclusion == "ignore_index"
    base = make_inputs(0, ignore=ignore)
    changed = perturb(base, variant, ignore=ignore)
    ex = _exclusion(base, ignore, weights=exclusion == "mask weights")
    metric = METRIC_CASES[name]
    expected = metric(base, ex)
    _equal_trees(jax.jit(lambda x: metric(x, ex))(changed), expected)
    # Values that are no class, and non-finite scores, on excluded pixels are not flagged.
    _equal_trees(jsl.checked(metric)(changed, ex), expected)


def test_the_inert_rule_covers_every_metric_that_excludes_pixels():
    """Every public function of jsl.metrics with an `ignore_index` or `mask` option (and every
    accumulator's `update`) is a case of the rule (`distance_transform`'s positional `mask`
    is its input, not an exclusion)."""
    covered = {name.split("/")[0] for name in METRIC_CASES}
    readers = set()
    for public in metrics.__all__:
        obj = getattr(metrics, public)
        functions = {public: obj}
        if inspect.isclass(obj):
            functions = {f"{public}.update": getattr(obj, "update", None)}
        for name, fn in functions.items():
            if fn is None or not callable(fn):
                continue
            try:
                parameters = inspect.signature(fn).parameters
            except (TypeError, ValueError):
                continue
            options = {n for n, p in parameters.items() if p.kind is p.KEYWORD_ONLY}
            if {"ignore_index", "mask"} & options or name.endswith(".update"):
                readers.add(name)
    assert readers, "no metric found"
    assert readers <= covered, sorted(readers - covered)


# ----------------------------------------------------------------------------------------------
# The surface metrics with excluded pixels against a brute-force reference.


def reference_surface(member: np.ndarray, counted: np.ndarray) -> np.ndarray:
    """The surface of one mask, from the rule: a counted member pixel with an axis neighbour
    that is not a counted member (outside the mask, excluded, or beyond the image)."""
    inside = member & counted
    padded = np.pad(inside, 1, constant_values=False)
    core = tuple(slice(1, -1) for _ in inside.shape)
    on_surface = np.zeros_like(inside)
    for axis in range(inside.ndim):
        for step in (-1, 1):
            on_surface |= ~np.roll(padded, step, axis=axis)[core]
    return inside & on_surface


def reference_distances(a: np.ndarray, b: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Brute force: every surface voxel of A to its nearest surface voxel of B."""
    if not b.any() or not a.any():
        return np.full(int(a.sum()) or int(b.sum()), np.inf)
    pairs = scipy.spatial.distance.cdist(np.argwhere(a) * spacing, np.argwhere(b) * spacing)
    return pairs.min(axis=1).astype(np.float32)


def reference_metrics(predicted, labels, counted, num_classes, spacing, tolerance):
    """``{hd, hd95, hd_directed, asd, assd, nsd}`` ``[B, C-1]`` (classes 1 .. C-1)."""
    names = ("hd", "hd95", "hd_directed", "asd", "assd", "nsd")
    out = {name: np.zeros((predicted.shape[0], num_classes - 1), np.float32) for name in names}
    for b, c in itertools.product(range(predicted.shape[0]), range(1, num_classes)):
        p = reference_surface(predicted[b] == c, counted[b])
        g = reference_surface(labels[b] == c, counted[b])
        values: dict[str, float]
        if not p.any() and not g.any():
            values = dict.fromkeys(names, np.nan)
        elif not p.any() or not g.any():
            values = dict.fromkeys(names, np.inf)
            values["nsd"] = 0.0
        else:
            forth = reference_distances(p, g, spacing)
            back = reference_distances(g, p, spacing)
            both = np.concatenate([forth, back])
            values = {
                "hd": max(forth.max(), back.max()),
                "hd95": max(np.quantile(forth, 0.95), np.quantile(back, 0.95)),
                "hd_directed": forth.max(),
                "asd": forth.mean(),
                "assd": both.mean(),
                "nsd": np.mean(both <= tolerance),
            }
        for name in names:
            out[name][b, c - 1] = values[name]
    return out


@jax.jit
def surface_metrics(predicted, labels, mask, spacing):
    options = dict(num_classes=3, spacing=spacing, ignore_index=IGNORE, mask=mask)
    return {
        "hd": metrics.hausdorff_distance(predicted, labels, **options),
        "hd95": metrics.hausdorff_distance(predicted, labels, percentile=95, **options),
        "hd_directed": metrics.hausdorff_distance(predicted, labels, directed=True, **options),
        "asd": metrics.average_surface_distance(predicted, labels, **options),
        "assd": metrics.average_surface_distance(predicted, labels, symmetric=True, **options),
        "nsd": metrics.surface_dice(predicted, labels, tolerance=1.5, **options),
    }


def random_case(seed: int, shape: tuple[int, ...]):
    """Blobs of classes 1 and 2 with ignored holes and masked pixels, and a prediction that
    differs (shifted, flipped voxels, classes outside [0, C) on some excluded pixels)."""
    rng = np.random.default_rng(seed)
    batch = 3
    labels = np.zeros((batch, *shape), np.int32)
    for b, c, _ in itertools.product(range(batch), (1, 2), range(2)):
        lo = [rng.integers(0, n - 2) for n in shape]
        hi = [rng.integers(a + 2, n + 1) for a, n in zip(lo, shape, strict=True)]
        labels[(b, *(slice(a, z) for a, z in zip(lo, hi, strict=True)))] = c
    shift = tuple(int(s) for s in rng.integers(-1, 2, len(shape)))
    predicted = np.roll(labels, shift, axis=tuple(range(1, len(shape) + 1)))
    flips = rng.random(labels.shape) < 0.05
    predicted = np.where(flips, rng.integers(0, 3, labels.shape), predicted).astype(np.int32)
    holes = rng.random(labels.shape) < 0.15
    lo = [rng.integers(0, n - 2) for n in shape]
    holes[(slice(None), *(slice(a, a + 3) for a in lo))] = True  # one solid hole
    labels = np.where(holes, IGNORE, labels).astype(np.int32)
    mask = rng.random(labels.shape) > 0.1
    predicted = np.where(holes & (rng.random(labels.shape) < 0.3), 7, predicted).astype(np.int32)
    predicted[2] = np.where(holes[2], predicted[2], labels[2])  # image 2: perfect where counted
    spacing = rng.uniform(0.5, 2.0, len(shape)).astype(np.float32)
    counted = mask & ~holes
    return predicted, labels, mask, spacing, counted


SURFACE_CASES = [(seed, shape) for seed in range(4) for shape in ((12, 13), (7, 8, 6))]


@pytest.mark.parametrize(("seed", "shape"), SURFACE_CASES)
def test_surface_metrics_with_excluded_pixels_match_the_reference(seed, shape):
    predicted, labels, mask, spacing, counted = random_case(seed, shape)
    ours = surface_metrics(predicted, labels, mask, spacing)
    expected = reference_metrics(predicted, labels, counted, 3, spacing, 1.5)
    for name, value in expected.items():
        np.testing.assert_allclose(
            np.asarray(ours[name]), value, rtol=2e-6, atol=2e-6, err_msg=name
        )


@pytest.mark.parametrize(("seed", "shape"), SURFACE_CASES)
def test_a_perfect_prediction_scores_perfectly_whatever_is_excluded(seed, shape):
    _, labels, mask, spacing, _ = random_case(seed, shape)
    predicted = np.where(labels == IGNORE, 7, labels).astype(np.int32)  # anything where ignored
    ours = surface_metrics(predicted, labels, mask, spacing)
    present = np.isfinite(np.asarray(ours["hd"]))
    for name in ("hd", "hd95", "hd_directed", "asd", "assd"):
        np.testing.assert_array_equal(np.asarray(ours[name])[present], 0.0, err_msg=name)
    np.testing.assert_array_equal(np.asarray(ours["nsd"])[present], 1.0)
    # NaN only where the class has no counted pixel in either mask.
    absent = np.stack(
        [~((labels == c) & mask).reshape(len(labels), -1).any(axis=1) for c in (1, 2)], axis=1
    )
    np.testing.assert_array_equal(~present, absent)


def test_a_class_enclosed_by_an_ignored_band_keeps_its_surface():
    """Pascal VOC labels objects' outlines 255: the object inside and the background outside
    still have surfaces (the band lies outside both), and a perfect prediction scores 0."""
    labels = np.zeros((1, 12, 12), np.int32)
    labels[0, 3:9, 3:9] = IGNORE
    labels[0, 4:8, 4:8] = 1
    predicted = np.where(labels == IGNORE, 1, labels).astype(np.int32)
    options = dict(num_classes=2, ignore_index=IGNORE, include_background=True)
    hd = metrics.hausdorff_distance(predicted, labels, **options)
    np.testing.assert_array_equal(np.asarray(hd), [[0.0, 0.0]])
    np.testing.assert_array_equal(
        np.asarray(metrics.surface_dice(predicted, labels, tolerance=0.0, **options)), [[1, 1]]
    )
    # Without ignore_index the band is background: the prediction's larger square is off by
    # one pixel, its corners by a diagonal.
    unignored = metrics.hausdorff_distance(predicted, labels, num_classes=2)
    np.testing.assert_allclose(np.asarray(unignored), [[np.sqrt(2.0)]], rtol=1e-6)


def test_surface_metrics_exclusion_arguments_are_validated():
    labels = np.zeros((1, 6, 6), np.int32)
    with pytest.raises(ValueError, match=r"`mask` must have shape \(1, 6, 6\)"):
        metrics.hausdorff_distance(labels, labels, num_classes=2, mask=np.ones((1, 6)))
    with pytest.raises(TypeError, match="`ignore_index` must be None or"):
        metrics.surface_dice(labels, labels, num_classes=2, tolerance=1.0, ignore_index="255")
    hot = np.zeros((1, 6, 6, 2), bool)
    with pytest.raises(ValueError, match="`ignore_index` applies to integer labels"):
        metrics.average_surface_distance(hot, hot, ignore_index=IGNORE)
    # A label out of range on a counted pixel is still reported.
    with pytest.raises(Exception, match=r"`labels` must lie in \[0, 2\) or equal ignore_index"):
        jsl.checked(metrics.hausdorff_distance)(
            labels, np.where(labels == 0, 9, 0), num_classes=2, ignore_index=IGNORE
        )


# ----------------------------------------------------------------------------------------------
# Rule: accumulators add only like with like.


def _confusion(num_classes: int, dtype: Any = jnp.int32) -> Any:
    return metrics.ConfusionMatrixAccumulator.empty(num_classes, dtype=dtype)


def _per_image(names=("dice",), num_classes=3, **options: Any) -> Any:
    return metrics.PerImageAccumulator.empty(names, num_classes, **options)


# Pairs of accumulators that differ in what makes them addable, and what the error names.
UNLIKE_PAIRS = {
    "confusion 2 + 3 classes": (_confusion(2), _confusion(3), r"\[2, 2\].*\[3, 3\]"),
    "confusion 3 + 4 classes": (_confusion(3), _confusion(4), r"\[3, 3\].*\[4, 4\]"),
    "confusion exact + float32": (
        _confusion(3),
        _confusion(3, jnp.float32),
        r"exact int counts.*float32 counts",
    ),
    "per-image names": (_per_image(), _per_image(("iou",)), r"\['dice'\].*\['iou'\]"),
    "per-image classes": (
        _per_image(),
        _per_image(num_classes=4),
        r"\[B, 3\].*\[B, 4\]",
    ),
    "per-image kept classes": (
        _per_image(),
        _per_image(include_background=False),
        r"kept classes \[0, 1, 2\].*kept classes \[1, 2\]",
    ),
    "per-image class weights": (
        _per_image(),
        _per_image(class_weights=[1.0, 2.0, 1.0]),
        r"class_weights=None.*class_weights=\[1.0, 2.0, 1.0\]",
    ),
    "per-image dtype": (_per_image(), _per_image(dtype=jnp.bfloat16), r"float32.*bfloat16"),
    "calibration bins": (
        metrics.CalibrationAccumulator.empty(15),
        metrics.CalibrationAccumulator.empty(10),
        r"15 bins.*10 bins",
    ),
}


@pytest.mark.parametrize("name", list(UNLIKE_PAIRS))
def test_accumulators_add_only_like_with_like(name):
    a, b, both = UNLIKE_PAIRS[name]
    for x, y in ((a, b), (b, a)):
        with pytest.raises(ValueError, match="add only when"):
            _ = x + y
    with pytest.raises(ValueError, match=both):
        _ = a + b
    with pytest.raises(ValueError, match="add only when"):
        jax.jit(lambda x, y: x + y)(a, b)
    # Like with like adds, eagerly and under jit, and stays a pytree of the same structure.
    for acc in (a, b):
        for total in (acc + acc, jax.jit(lambda x, y: x + y)(acc, acc)):
            assert jax.tree.structure(total) == jax.tree.structure(acc)


def test_the_like_with_like_rule_covers_every_accumulator():
    accumulators = {name for name in metrics.__all__ if name.endswith("Accumulator")}
    covered = {type(a).__name__ for a, _, _ in UNLIKE_PAIRS.values()}
    assert accumulators and accumulators <= covered, sorted(accumulators - covered)


def test_added_confusion_accumulators_count_both():
    labels = np.array([[0, 1, 2, 2]])
    a = _confusion(3).update(labels, labels)
    b = _confusion(3).update(np.array([[0, 0, 0, 0]]), labels)
    total = jax.jit(lambda x, y: x + y)(a, b)
    np.testing.assert_array_equal(np.asarray(total.matrix), [[2, 0, 0], [1, 1, 0], [2, 0, 2]])


# ----------------------------------------------------------------------------------------------
# Non-finite scores are loud under jsl.checked in every metric that takes scores.

NAN_SCORES = np.array([[[2.0, 0.0, 1.0], [np.nan, np.nan, np.nan], [0.0, 3.0, 1.0]]], np.float32)
NAN_LABELS = np.array([[0, 2, 1]], np.int32)
SCORE_READERS = {
    "overlap_counts": lambda s, y, **o: metrics.overlap_counts(s, y, **o),
    "confusion_matrix": lambda s, y, **o: metrics.confusion_matrix(s, y, 3, **o),
    "ConfusionMatrixAccumulator.update": lambda s, y, **o: _confusion(3).update(s, y, **o).matrix,
    "calibration_error": lambda s, y, **o: metrics.calibration_error(s, y, **o),
    "per_class_calibration_error": lambda s, y, **o: metrics.per_class_calibration_error(s, y, **o),
    "reliability_diagram": lambda s, y, **o: metrics.reliability_diagram(s, y, **o),
    "CalibrationAccumulator.update": lambda s, y, **o: (
        metrics.CalibrationAccumulator.empty().update(s, y, **o).compute()
    ),
}


@pytest.mark.parametrize("name", list(SCORE_READERS))
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_checked_flags_non_finite_scores(name, bad):
    scores = np.where(np.isnan(NAN_SCORES), bad, NAN_SCORES).astype(np.float32)
    fn = SCORE_READERS[name]
    with pytest.raises(
        Exception, match=r"`predictions` must be finite scores; got .* at index \[0 1 0\]"
    ):
        jsl.checked(fn)(scores, NAN_LABELS)
    with pytest.raises(Exception, match="must be finite scores"):
        jax.jit(jsl.checked(fn))(scores, NAN_LABELS)
    # On an excluded pixel the same scores are inert and not flagged.
    mask = np.array([[True, False, True]])
    jsl.checked(fn)(scores, NAN_LABELS, mask=mask)
    jsl.checked(fn)(scores, np.array([[0, IGNORE, 1]]), ignore_index=IGNORE)


def test_checked_flags_a_non_finite_single_channel_score():
    scores = np.array([[[0.2], [np.nan], [0.9]]], np.float32)
    with pytest.raises(Exception, match="must be finite scores"):
        jsl.checked(metrics.confusion_matrix)(scores, np.array([[0, 1, 1]]), 2, threshold=0.5)


def test_unchecked_nan_scores_are_decided_as_documented():
    """docs/bad_input.md: a NaN row is predicted as its first NaN class (jnp.argmax), a NaN
    single-channel score as class 0 (NaN > threshold is False)."""
    matrix = metrics.confusion_matrix(NAN_SCORES, NAN_LABELS, 3)
    np.testing.assert_array_equal(np.asarray(matrix)[2], [1, 0, 0])
    single = np.array([[[np.nan]]], np.float32)
    np.testing.assert_array_equal(
        np.asarray(metrics.confusion_matrix(single, np.array([[1]]), 2)), [[0, 0], [1, 0]]
    )


# ----------------------------------------------------------------------------------------------
# One meaning of "one class".


def test_a_confusion_matrix_of_one_class_is_refused():
    """One class is the foreground of a binary problem everywhere (overlap_counts, one-channel
    scores); its confusion matrix is 2 x 2, so a 1 x 1 one is refused with the fix."""
    labels = np.array([[0, 1, 1]])
    for make in (
        lambda: metrics.confusion_matrix(labels, labels, 1),
        lambda: metrics.ConfusionMatrixAccumulator.empty(1),
        lambda: metrics.ConfusionMatrixAccumulator(np.ones((1, 1), np.int32)),
    ):
        with pytest.raises(ValueError, match=r"needs num_classes >= 2.*num_classes=2"):
            make()
    # The binary problem: overlap_counts' one class is the foreground of confusion's two.
    counts = metrics.overlap_counts(labels, labels, num_classes=1)
    matrix = metrics.confusion_matrix(labels, labels, 2)
    np.testing.assert_array_equal(np.asarray(counts.tp), [[2]])
    np.testing.assert_array_equal(np.asarray(metrics.iou(counts))[0], metrics.iou(matrix)[1:])


def test_a_boolean_mask_without_a_class_axis_is_refused_with_the_fix():
    mask = np.zeros((2, 5, 6), bool)
    mask[:, 1:3, 2:4] = True
    labels = mask.astype(np.int32)
    with pytest.raises(
        ValueError, match=r"binary mask \[B, \*spatial\].*predictions\[\.\.\., None\]"
    ):
        metrics.overlap_counts(mask, labels, num_classes=1)
    with pytest.raises(ValueError, match=r"disagrees.*mask\[\.\.\., None\]"):
        metrics.overlap_counts(mask, mask, num_classes=1)
    # With the class axis: the foreground of a binary problem.
    counts = metrics.overlap_counts(mask[..., None], labels)
    np.testing.assert_array_equal(np.asarray(counts.tp), [[4], [4]])


def test_boolean_arrays_always_carry_a_class_axis():
    """The documented reading (docs/metrics.md): two boolean [B, H, W] arrays are 1-D images
    of H pixels with W channels; this is counted as such, not guessed."""
    mask = np.zeros((2, 5, 6), bool)
    mask[:, 1:3, 2:4] = True
    counts = metrics.overlap_counts(mask, mask)
    assert counts.shape == (2, 6)
    np.testing.assert_array_equal(np.asarray(counts.tp), np.tile([0, 0, 2, 2, 0, 0], (2, 1)))
