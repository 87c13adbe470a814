r"""The paragraphs that several docstrings share, each written once under a unique name.

A docstring names a block on a line of its own, ``<region args>``; :func:`documented` replaces
that line with the block, indented like the marker. Every block lives in :data:`BLOCKS`, so a
shared paragraph has one source and one name across the library (losses and metrics alike),
and an unknown marker is an error at import. A block that is a whole section (``Returns:``,
``References:``) holds its heading; an ``... example setup`` block holds the first lines that
several examples share (imports and data), and each docstring goes on with its own lines. This
module and :func:`define_loss` (for the functions it generates) are the only places that write
``__doc__``.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

# The shared options of every described loss, one entry each: define_loss lists those the
# generated function takes, in its order.
OPTION_DOCS = {
    "activation": """\
        activation: ``"softmax"`` (exclusive classes, C >= 2), ``"sigmoid"`` (binary with C == 1,
          or multi-label with dense targets) or ``None`` (``logits`` are probabilities).""",
    "class_axis": """\
        class_axis: the axis of ``logits`` (and of dense ``labels``) holding the classes (``1``
          for NCHW).""",
    "ignore_index": """\
        ignore_index: a label value whose pixels count nowhere (e.g. 255).""",
    "mask": """\
        mask: ``[B, *spatial]`` bool or float pixel weights; weight 0 removes a pixel.""",
    "aggregate": """\
        aggregate: ``"sample"`` computes each sample's loss from its own pixels; ``"batch"``
          pools the pixels of the whole batch into one loss (nnU-Net's batch Dice).""",
    "axis_name": """\
        axis_name: a mapped axis (``shard_map``/``pmap``) over which the sums are added before
          the final ratio, so every device gets the global value.""",
    "reduction": """\
        reduction: ``"mean"`` (over the samples with a valid pixel; see the reduction policy),
          ``"sum"`` (over samples) or ``"none"`` (``[B]``, one loss per sample).""",
}

# The examples of the pixel-wise losses, their maps and the ready-made pairs: three pixels, two
# classes.
_EXAMPLE_LOGITS = """\
        >>> import jax.numpy as jnp
        >>> import jaxseg_losses as jsl
        >>> logits = jnp.array([[[2.0, 0.0], [0.0, 2.0], [1.0, 0.0]]])"""
# What a loss returns; most losses add what a sample without a valid pixel gives.
_LOSS_RETURNS = """\
      Returns:
        A float32 scalar (float64 for float64 logits under x64), or ``[B]`` per-sample losses
        for ``reduction="none"``."""

BLOCKS: dict[str, str] = {
    # The data arguments of every loss and per-pixel loss map.
    "data args": """\
        logits: ``[B, *spatial, C]`` float logits (probabilities when ``activation=None``), any
          float dtype; 1-D, 2-D or 3-D spatial shape.
        labels: ``[B, *spatial]`` integer class indices, or ``[B, *spatial, C]`` dense float
          targets (one-hot or soft), laid out like ``logits``.""",
    "loss returns": _LOSS_RETURNS,
    "sample loss returns": _LOSS_RETURNS
    + """
        A sample without any valid pixel has loss 0 and is left out of the mean.""",
    # The losses whose mean runs over the valid pixels (focal, Poly-1, top-k).
    "pixel loss returns": """\
      Returns:
        A float32 scalar, or ``[B]`` for ``reduction="none"``; 0 without any valid pixel.""",
    "loss example setup": _EXAMPLE_LOGITS
    + """
        >>> labels = jnp.array([[0, 1, 1]])""",
    # Per-pixel maps (cross_entropy_map, focal_map) take the data options without a reduction.
    "map args": """\
        activation: ``"softmax"`` (categorical, C >= 2), ``"sigmoid"`` (binary with C == 1, or
          multi-label with dense targets) or ``None`` (``logits`` are probabilities: categorical
          for C >= 2, binary for C == 1).
        class_axis: the axis of ``logits`` holding the classes (``1`` for NCHW).""",
    "map mask args": OPTION_DOCS["ignore_index"] + "\n" + OPTION_DOCS["mask"],
    "map returns": """\
      Returns:
        ``[B, *spatial]`` float32 per-pixel losses.""",
    "map example setup": _EXAMPLE_LOGITS,
    # The region losses.
    "region args": """\
        smooth: added to numerator and denominator of each ratio (default 1).
        log: use ``-ln(ratio)`` instead of ``1 - ratio``.
        class_weights: ``[C]`` weights multiplying each class's loss before the class mean.
        include_background: ``False`` drops class 0 from the class mean.
        classes: ``None`` (every class) or a static list/tuple of class indices: only those
          classes enter the class mean (after ``include_background``).""",
    "region absent classes": """\
        absent_classes: what a class absent from the target of the row (a sample, or the batch
          with ``aggregate="batch"``: :math:`\\sum g_c = 0`) contributes: ``"keep"`` (default)
          its loss as computed, :math:`1 - s / (\\sum p_c + s)` for Dice, which penalises false
          positives and is 0 when the class is predicted absent too (MONAI); ``"zero"`` loss 0,
          still counted in the mean over classes (smp); ``"exclude"`` left out of the mean over
          classes, and a row with no present class is left out of the mean over rows (as a
          fully masked sample).""",
    "region example setup": """\
        >>> import jax.numpy as jnp
        >>> import jaxseg_losses as jsl
        >>> logits = jnp.array([[[4.0, -4.0], [-4.0, 4.0], [4.0, -4.0]]])   # [B=1, P=3, C=2]
        >>> labels = jnp.array([[0, 1, 1]])""",
    # The per-class losses of overlap statistics (iou_from_stats, dice_from_stats, ...).
    "stats returns": """\
      Returns:
        ``[..., C]`` per-class losses.""",
    "stats example setup": """\
        >>> import jax.numpy as jnp
        >>> import jaxseg_losses as jsl
        >>> stats = jsl.OverlapStats(tp=jnp.array([[3.0]]), fp=jnp.array([[1.0]]),
        ...                          fn=jnp.array([[1.0]]))""",
    # The Lovász losses (softmax and hinge) cite the same two papers.
    "lovasz references": """\
      References:
        Berman, Rannen Triki & Blaschko, "The Lovász-Softmax loss: A tractable surrogate for the
        optimization of the intersection-over-union measure in neural networks", CVPR 2018.
        Yu & Blaschko, "The Lovász Hinge: A Novel Convex Surrogate for Submodular Losses", TPAMI
        2018.""",
    # The ready-made pairs: the options they share, after each pair's own terms' weights and
    # options (losses/pairs.py writes those).
    "pair shared args": """\
        logits: ``[B, *spatial, C]`` float logits (probabilities when ``activation=None``).
        labels: ``[B, *spatial]`` integer class indices or ``[B, *spatial, C]`` dense targets.
        activation: ``"softmax"``, ``"sigmoid"`` or ``None``, for both terms.
        class_axis: the class axis of ``logits``, for both terms.
        ignore_index: a label value whose pixels count nowhere, for both terms.
        mask: ``[B, *spatial]`` bool or float pixel weights, for both terms.
        axis_name: a mapped device axis, for both terms.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[B]``), for both terms.
        return_parts: also return ``{name: unweighted term value}``.""",
    "pair returns": """\
      Returns:
        The float32 total (``[B]`` for ``reduction="none"``), or ``(total, parts)`` with
        ``return_parts=True``.""",
}

_MARKER = re.compile(r"^(?P<indent>[ ]*)<(?P<name>[a-z][a-z0-9 _-]*)>[ ]*$", re.MULTILINE)


def _indented(text: str, indent: str) -> str:
    return textwrap.indent(textwrap.dedent(text), indent)


def fill(doc: str, blocks: dict[str, str] | None = None, *, strict: bool = True) -> str:
    """Replaces every ``<name>`` line of ``doc`` by its block, indented like the marker.

    ``blocks`` adds blocks for this docstring alone (a generated function's options). An unknown
    marker is an error, unless ``strict=False`` (a user's docstring, left as written).
    """
    known = {**BLOCKS, **(blocks or {})}

    def block(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in known:
            if not strict:
                return match.group(0)
            raise KeyError(f"Docstring marker <{name}> names no block; known: {sorted(known)}.")
        return _indented(known[name], match.group("indent"))

    return _MARKER.sub(block, doc)


def option_docs(names: Iterable[str]) -> str:
    """The documentation of the shared loss options ``names``, in that order."""
    return "\n".join(textwrap.dedent(OPTION_DOCS[name]) for name in names)


def documented(fn: F) -> F:
    """Fills the shared blocks named in ``fn``'s docstring (a decorator)."""
    fn.__doc__ = fill(fn.__doc__ or "")
    return fn


def set_doc(fn: F, doc: str, blocks: dict[str, str] | None = None) -> F:
    """Gives a generated function its docstring, shared blocks (and ``blocks``) filled."""
    fn.__doc__ = fill(doc, blocks)
    return fn


# The metrics: the options every score of counts shares, what the means of a confusion matrix
# return, and the arguments every surface metric shares (each surface metric writes its own
# arguments between the two surface blocks).
_SCORE_EXAMPLE = """\
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl"""

BLOCKS.update(
    {
        "score args": """\
      counts: :class:`Counts` ``[B, C]`` from :func:`overlap_counts` (or summed: ``[C]`` pooled
        over images, ``[B, 1]`` over classes, ``[]`` over both), or a confusion matrix
        ``[..., C, C]`` (rows true, columns predicted).
      reduction: ``"none"`` (every score, ``[..., C]``) or a reduction of :func:`reduce`:
        ``"mean"`` (over the classes of each image, then over images), ``"mean_batch"``,
        ``"mean_channel"``, ``"mean_all"``, ``"mean_batch_channel"`` and their sums.
      include_background: ``False`` leaves class 0 out (of the result and of every mean).
      classes: a sequence of class indices to keep, e.g. ``(1, 2)`` (all by default).
      class_weights: ``[C]`` non-negative weights of the classes where classes are averaged,
        or ``"support"``: each class of each image (or of pooled counts) weighs its number of
        ground-truth pixels (scikit-learn's and torchmetrics' ``average="weighted"``).
      zero_division: the value of an undefined score (a 0/0 in its definition); NaN by
        default, which the reductions skip.
      ignore_empty: ``True`` makes the score NaN wherever the ground truth holds no pixel of the
        class, whatever the prediction (MONAI's ``ignore_empty``).
      return_count: also return how many defined values each result averages or sums.""",
        "score returns": """\
    Returns:
      ``[..., C]`` float32 scores (float64 under x64 for exact counts) for
      ``reduction="none"``, else the reduced value (see :func:`reduce`); with
      ``return_count=True``, a pair ``(value, count)`` with an int32 count of the same shape.""",
        "score example setup": _SCORE_EXAMPLE,
        # The 2-class confusion matrix of several examples.
        "matrix example setup": _SCORE_EXAMPLE
        + """
      >>> m = jnp.array([[3, 1], [1, 1]])""",
        "class mean returns": """\
    Returns:
      ``[...]`` float32; NaN when no kept class is defined.""",
        "matrix returns": """\
    Returns:
      ``[...]`` float32; NaN when nothing was counted.""",
        "surface args": """\
      predictions: the predicted segmentation: integer class indices ``[B, *spatial]`` (with
        ``num_classes``), boolean one-hot masks ``[B, *spatial, C]`` (``class_axis`` moves
        C), or float logits or probabilities ``[B, *spatial, C]`` (``C >= 2``), read as their
        arg-max over ``class_axis`` as ``confusion_matrix`` does; 1, 2 or 3 spatial axes.
      labels: the ground truth, in either form (each argument's dtype decides its form); the
        same ``[B, *spatial]`` and ``C`` as ``predictions``.
      num_classes: :math:`C` for integer label maps (a label outside ``[0, C)`` belongs to no
        class); ``None`` or equal to the class axis for one-hot masks and scores.""",
        "surface options": """\
      spacing: the voxel size: a scalar, ``[D]`` (one value per spatial axis) or ``[B, D]`` (one
        row per image); positive and finite. ``None`` is 1 along every axis.
      include_background: ``False`` (the default, as in MONAI) drops class 0 from the result.
      class_axis: the class axis of one-hot masks and scores (``1`` for
        ``[B, C, *spatial]``).
      distance_metric: ``"euclidean"`` (default), ``"taxicab"`` (:math:`\\sum_a s_a
        |\\Delta_a|`) or ``"chessboard"`` (:math:`\\max_a s_a |\\Delta_a|`); all three scale each
        axis by its spacing (MONAI ignores ``spacing`` for the last two; with ``spacing=None``
        they agree).
      ignore_index: a label value of integer ``labels`` whose pixels are excluded (e.g. 255).
      mask: ``[B, *spatial]`` bool (or numeric: non-zero counts) pixels to count; the others
        are excluded.""",
        "surface returns": """\
    Returns:
      ``[B, C]`` float32, one value per image and class (``[B, C - 1]``, classes ``1 .. C-1``,
      with ``include_background=False``).""",
        "distance map args": """\
      mask: ``[B, C, *spatial]`` bool masks, one image per sample and class.
      spacing: ``[B, D]`` float element sizes of each sample's ``D`` spatial axes.""",
        "soft mask args": """\
      x: ``[B, *spatial, C]`` soft masks in ``[0, 1]``, 1-D to 3-D.""",
        "surface example setup": """\
      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> labels = jnp.zeros((1, 8, 8), jnp.int32).at[0, 2:6, 2:6].set(1)
      >>> predictions = jnp.zeros((1, 8, 8), jnp.int32).at[0, 2:6, 3:8].set(1)""",
    }
)
