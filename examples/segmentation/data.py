"""Datasets for the segmentation example: composited digits, synthetic shapes, PNG folders.

Every builder returns a pair of NumPy arrays, channels-last like the model:

- ``images``: float32 ``[N, H, W, channels]`` with values in ``[0, 1]`` (``channels`` is 1 for
  the digits and shapes, 3 by default for a folder of photos). The model normalises internally
  (GroupNorm after every convolution), so no dataset statistics are needed.
- ``labels``: int32 ``[N, H, W]`` class indices in ``[0, num_classes)``; class 0 is background.
  Only the folder loader can also produce an ignore value (255 by default).

The synthetic builders are deterministic: the same arguments give the same arrays, on any
machine, with no download. ``split="train"`` and ``split="val"`` draw different canvases from the
same ``seed``; for the digits the two splits also use disjoint sets of scanned digits, so the
validation score measures generalisation to handwriting the model has never seen.
"""

from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = [
    "DIGITS_CLASS_NAMES",
    "DIGITS_NUM_CLASSES",
    "IGNORE_INDEX",
    "PETS_TRIMAP_LABEL_MAP",
    "SHAPE_NAMES",
    "digits_split_indices",
    "iterate_batches",
    "load_folder_dataset",
    "make_digits_dataset",
    "make_shapes_dataset",
    "shapes_class_names",
]

DIGITS_NUM_CLASSES = 11
"""Background plus the ten digits: label ``d + 1`` marks the pixels of digit ``d``."""

DIGITS_CLASS_NAMES = ("background", *(str(d) for d in range(10)))

SHAPE_NAMES = ("disk", "square", "triangle")
"""Foreground classes of the shapes data, in label order (label 1 is a disk)."""

IGNORE_INDEX = 255
"""Label value that the folder loader passes through untouched, for losses' ``ignore_index``."""

PETS_TRIMAP_LABEL_MAP = {1: 1, 2: 0, 3: IGNORE_INDEX}
"""Oxford-IIIT Pets trimaps store 1 = pet, 2 = background, 3 = unclassified border.

Mapped to 0 = background, 1 = pet, and the border ignored: use with ``num_classes=2``.
"""

_SPLITS = {"train": 0, "val": 1}
# The train/val partition of the scanned digits must not depend on the dataset seed: a model
# trained with any seed is then validated on handwriting it has never seen.
_DIGITS_PARTITION_SEED = 1797
_DIGITS_VAL_FRACTION = 0.2
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _split_id(split: str) -> int:
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {sorted(_SPLITS)}, got {split!r}")
    return _SPLITS[split]


def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1797 scanned digits bundled with scikit-learn: images ``[1797, 8, 8]``, targets."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images.astype(np.float32), digits.target.astype(np.int32)


def digits_split_indices(split: str) -> np.ndarray:
    """Return the indices into ``sklearn.datasets.load_digits`` that a split draws from.

    A fixed, class-stratified 80/20 partition of the 1797 digits: ``"train"`` and ``"val"`` are
    disjoint, together cover every digit, and do not depend on any dataset seed.

    Args:
      split: ``"train"`` or ``"val"``.

    Returns:
      Sorted int64 indices ``[n]`` (1438 for train, 359 for val).
    """
    split_id = _split_id(split)
    _, targets = _load_digits()
    rng = np.random.default_rng(_DIGITS_PARTITION_SEED)
    val = []
    for digit in range(10):
        members = rng.permutation(np.flatnonzero(targets == digit))
        val.append(members[: round(_DIGITS_VAL_FRACTION * len(members))])
    val_indices = np.sort(np.concatenate(val))
    if split_id == _SPLITS["val"]:
        return val_indices
    return np.setdiff1d(np.arange(len(targets)), val_indices)


def _upscale(image: np.ndarray, side: int) -> np.ndarray:
    """Bilinearly resize a float image ``[h, w]`` to ``[side, side]``, scaled to max 1."""
    resized = np.asarray(
        Image.fromarray(image.astype(np.float32)).resize((side, side), Image.Resampling.BILINEAR)
    )
    return resized / max(float(resized.max()), 1e-6)


def _overlap_ok(
    box: tuple[int, int, int], placed: list[tuple[int, int, int]], limit: float
) -> bool:
    """Whether square ``box = (top, left, side)`` covers at most ``limit`` of any placed box."""
    top, left, side = box
    for other_top, other_left, other_side in placed:
        dy = min(top + side, other_top + other_side) - max(top, other_top)
        dx = min(left + side, other_left + other_side) - max(left, other_left)
        if dy > 0 and dx > 0 and dy * dx > limit * min(side, other_side) ** 2:
            return False
    return True


def make_digits_dataset(
    num_images: int,
    *,
    size: int = 64,
    split: str = "train",
    seed: int = 0,
    max_digits: int = 3,
    scale_range: tuple[int, int] = (14, 28),
    threshold: float = 0.35,
    max_overlap: float = 0.15,
    noise_std: float = 0.05,
    return_sources: bool = False,
):
    """Composite scanned handwritten digits onto canvases, labelled per pixel.

    Each canvas holds 1 to ``max_digits`` digits from scikit-learn's bundled ``load_digits``
    (real 8x8 scans, no download), each bilinearly upscaled to a random side in ``scale_range``
    and pasted at a random position. A digit's pixels are those whose upscaled intensity exceeds
    ``threshold`` of its maximum; they get label ``digit + 1``, everything else is background 0
    (11 classes, about 90% background). Positions are redrawn until a digit's box covers at most
    ``max_overlap`` of any earlier box (a digit with no room after 20 tries is left out); where
    digits still touch, the later one overwrites the earlier. Gaussian noise is added last.

    Args:
      num_images: number of canvases ``N``.
      size: canvas side ``S`` in pixels.
      split: ``"train"`` or ``"val"``; they use disjoint digit scans (``digits_split_indices``)
        and different layouts for the same ``seed``.
      seed: makes the result deterministic.
      max_digits: at most this many digits per canvas (at least one always).
      scale_range: inclusive ``(min, max)`` side of an upscaled digit, in pixels.
      threshold: fraction of a digit's peak intensity above which a pixel is labelled.
      max_overlap: largest fraction of an earlier digit's box a new digit may cover.
      noise_std: standard deviation of the additive Gaussian noise (0 for clean images).
      return_sources: also return which scans each canvas used.

    Returns:
      ``(images, labels)``: float32 ``[N, S, S, 1]`` in ``[0, 1]`` and int32 ``[N, S, S]`` in
      ``[0, 11)``. With ``return_sources``, a third int32 array ``[N, max_digits]`` of indices
      into ``load_digits``, in pasting order, padded with -1.
    """
    low, high = scale_range
    if num_images < 1 or max_digits < 1:
        raise ValueError(f"num_images and max_digits must be >= 1, got {num_images}, {max_digits}")
    if not 1 <= low <= high <= size:
        raise ValueError(
            f"scale_range must satisfy 1 <= min <= max <= size={size}, got {low, high}"
        )
    rng = np.random.default_rng((seed, _split_id(split)))
    scans, targets = _load_digits()
    pool = digits_split_indices(split)

    images = np.zeros((num_images, size, size), np.float32)
    labels = np.zeros((num_images, size, size), np.int32)
    sources = np.full((num_images, max_digits), -1, np.int32)
    for n in range(num_images):
        placed: list[tuple[int, int, int]] = []
        for _ in range(rng.integers(1, max_digits + 1)):
            index = int(rng.choice(pool))
            side = int(rng.integers(low, high + 1))
            for _attempt in range(20):
                box = (int(rng.integers(0, size - side + 1)), int(rng.integers(0, size - side + 1)))
                if _overlap_ok((*box, side), placed, max_overlap):
                    break
            else:
                continue
            patch = _upscale(scans[index], side)
            ink = patch * rng.uniform(0.75, 1.0)
            foreground = patch > threshold
            window = (n, slice(box[0], box[0] + side), slice(box[1], box[1] + side))
            # Outside its own foreground a digit only brightens, so the faint rim of a later
            # digit does not erase an earlier digit's labelled strokes.
            images[window] = np.where(foreground, ink, np.maximum(images[window], ink))
            labels[window] = np.where(foreground, targets[index] + 1, labels[window])
            sources[n, len(placed)] = index
            placed.append((*box, side))
    if noise_std > 0:
        images = np.clip(images + rng.normal(0.0, noise_std, images.shape), 0.0, 1.0)
    images = images.astype(np.float32)[..., None]
    if return_sources:
        return images, labels, sources
    return images, labels


def shapes_class_names(num_classes: int = 3) -> tuple[str, ...]:
    """Names of the shapes data's classes: ``("background", "disk", ...)``, ``num_classes`` long."""
    if not 2 <= num_classes <= len(SHAPE_NAMES) + 1:
        raise ValueError(
            f"num_classes must be in [2, {len(SHAPE_NAMES) + 1}] (background + {SHAPE_NAMES}), "
            f"got {num_classes}"
        )
    return ("background", *SHAPE_NAMES[: num_classes - 1])


def _shape_reach(kind: str, area: float) -> float:
    """Distance from a shape's center to its farthest pixel, for a shape of ``area`` pixels."""
    if kind == "disk":
        return float(np.sqrt(area / np.pi))
    if kind == "square":
        return float(np.sqrt(area / 2))
    return float(np.sqrt(area))  # the triangle's base corners


def _shape_mask(kind: str, area: float, center: tuple[float, float], size: int) -> np.ndarray:
    """Boolean ``[size, size]`` mask of one shape of roughly ``area`` pixels at ``center``."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cy, cx = center
    if kind == "disk":
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= area / np.pi
    if kind == "square":
        half = np.sqrt(area) / 2
        return (np.abs(yy - cy) <= half) & (np.abs(xx - cx) <= half)
    # An upright isosceles triangle with base equal to height: area = side**2 / 2.
    side = np.sqrt(2 * area)
    depth = yy - (cy - side / 2)
    return (depth >= 0) & (depth <= side) & (np.abs(xx - cx) <= depth / 2)


def _dilate(mask: np.ndarray) -> np.ndarray:
    """Grow a boolean ``[H, W]`` mask by one pixel (8-neighbourhood), so shapes never touch."""
    padded = np.pad(mask, 1)
    height, width = mask.shape
    grown = np.zeros_like(mask)
    for dy in range(3):
        for dx in range(3):
            grown |= padded[dy : dy + height, dx : dx + width]
    return grown


def _smooth_noise(rng: np.random.Generator, size: int, cells: int = 5) -> np.ndarray:
    """Low-frequency texture ``[size, size]``: a coarse Gaussian grid upscaled bilinearly."""
    coarse = rng.normal(size=(cells, cells)).astype(np.float32)
    return np.asarray(
        Image.fromarray(coarse).resize((size, size), Image.Resampling.BILINEAR), np.float32
    )


def make_shapes_dataset(
    num_images: int,
    *,
    size: int = 64,
    foreground_fraction: float = 0.01,
    num_classes: int = 3,
    split: str = "train",
    seed: int = 0,
    max_objects: int = 3,
    min_area: float = 12.0,
    noise_std: float = 0.08,
):
    """Draw bright disks, squares and triangles on a textured, noisy background.

    The rare-foreground case: ``foreground_fraction`` sets roughly what fraction of all pixels
    belongs to a shape (0.01 gives objects of a dozen pixels on a 64x64 canvas), so the
    background dominates a pixel-wise loss. Each image holds 1 to ``max_objects`` shapes, each
    of a random class in ``[1, num_classes)``, sharing a total area drawn around the target;
    shapes are kept apart, so classes must be told apart by shape, not by brightness.

    Args:
      num_images: number of images ``N``.
      size: image side ``S`` in pixels.
      foreground_fraction: target mean fraction of foreground pixels, in ``(0, 0.2]``. Shapes
        never go below ``min_area`` pixels, so tiny fractions on small canvases come out larger,
        and a shape that finds no free room is left out, so large fractions come out smaller.
      num_classes: background plus ``num_classes - 1`` shapes from ``SHAPE_NAMES``, in
        ``[2, 4]``.
      split: ``"train"`` or ``"val"``, different images for the same ``seed``.
      seed: makes the result deterministic.
      max_objects: most shapes per image.
      min_area: smallest shape, in pixels.
      noise_std: standard deviation of the per-pixel Gaussian noise.

    Returns:
      ``(images, labels)``: float32 ``[N, S, S, 1]`` in ``[0, 1]`` and int32 ``[N, S, S]`` in
      ``[0, num_classes)``.
    """
    kinds = shapes_class_names(num_classes)[1:]
    if not 0 < foreground_fraction <= 0.2:
        raise ValueError(f"foreground_fraction must be in (0, 0.2], got {foreground_fraction}")
    if size < 16:
        raise ValueError(f"size must be >= 16, got {size}")
    if num_images < 1 or max_objects < 1:
        raise ValueError(
            f"num_images and max_objects must be >= 1, got {num_images}, {max_objects}"
        )
    rng = np.random.default_rng((seed, _split_id(split), 1))
    # Largest shape whose farthest pixel (a triangle's corner) stays a pixel inside the canvas.
    max_area = (size / 2 - 2) ** 2

    images = np.empty((num_images, size, size), np.float32)
    labels = np.zeros((num_images, size, size), np.int32)
    for n in range(num_images):
        images[n] = 0.3 + 0.08 * _smooth_noise(rng, size)
        total_area = foreground_fraction * size * size * rng.uniform(0.7, 1.3)
        fewest = int(np.ceil(total_area / max_area))
        most = max(fewest, min(max_objects, int(total_area // min_area)))
        count = int(rng.integers(fewest, most + 1))
        area = float(np.clip(total_area / count, min_area, max_area))
        occupied = np.zeros((size, size), bool)
        for _ in range(count):
            label = int(rng.integers(1, num_classes))
            reach = _shape_reach(kinds[label - 1], area) + 1.0
            for _attempt in range(20):
                center = tuple(rng.uniform(reach, size - 1 - reach, size=2))
                mask = _shape_mask(kinds[label - 1], area, center, size)
                if not (mask & occupied).any():
                    break
            else:
                continue
            images[n][mask] = rng.uniform(0.6, 0.85)
            labels[n][mask] = label
            occupied |= _dilate(mask)
    images += rng.normal(0.0, noise_std, images.shape).astype(np.float32)
    return np.clip(images, 0.0, 1.0)[..., None], labels


def _mask_values(path: Path) -> np.ndarray:
    """Class indices ``[H, W]`` of a palette, grayscale or 1-bit mask PNG (never converted)."""
    with Image.open(path) as mask:
        if mask.mode not in ("P", "L", "1", "I", "I;16"):
            raise ValueError(
                f"{path}: mask has mode {mask.mode!r}; expected a palette ('P'), grayscale ('L') "
                "or 1-bit ('1') PNG whose pixel values are class indices, not colours"
            )
        return np.asarray(mask).astype(np.int64)


def load_folder_dataset(
    root: str | Path,
    *,
    size: int | tuple[int, int] | None = None,
    num_classes: int | None = None,
    channels: int = 3,
    images_dir: str = "images",
    masks_dir: str = "masks",
    label_map: Mapping[int, int] | None = None,
    ignore_index: int | None = IGNORE_INDEX,
    max_images: int | None = None,
):
    """Load a folder of image/mask pairs, for example your own data or Oxford-IIIT Pets.

    Expected layout (names matched by stem, sorted by name)::

        root/images/NAME.png    (or .jpg/.jpeg; any colour mode, converted to ``channels``)
        root/masks/NAME.png     (same width and height; palette 'P', grayscale 'L' or 1-bit PNG
                                 whose pixel values are class indices 0..num_classes-1)

    Hidden files (such as macOS ``._NAME.png``) and masks without an image are skipped. For
    Oxford-IIIT Pets, pass ``images_dir="images", masks_dir="annotations/trimaps",
    label_map=PETS_TRIMAP_LABEL_MAP, num_classes=2`` and a ``size``.

    Args:
      root: dataset folder.
      size: resize every pair to ``size`` (int for square, or ``(height, width)``): images
        bilinearly, masks by nearest neighbour so no new label values appear. ``None`` keeps the
        files' size, which must then be the same for all.
      num_classes: when given, every label must lie in ``[0, num_classes)`` or equal
        ``ignore_index``.
      channels: 3 (RGB) or 1 (grayscale) channels in the returned images.
      images_dir: image subfolder of ``root``.
      masks_dir: mask subfolder of ``root``.
      label_map: raw mask value -> class index, applied before the range check; values not in
        the map are kept.
      ignore_index: label value passed through unchecked (``None``: no such value).
      max_images: load only the first this many pairs.

    Returns:
      ``(images, labels)``: float32 ``[N, H, W, channels]`` in ``[0, 1]`` and int32
      ``[N, H, W]``.

    Raises:
      FileNotFoundError: a folder is missing, holds no images, or an image has no mask.
      ValueError: an image and its mask differ in size, files differ in size without ``size``,
        a mask is in colour, or a label is out of range; the message names the file.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    root = Path(root)
    image_root, mask_root = root / images_dir, root / masks_dir
    for folder in (image_root, mask_root):
        if not folder.is_dir():
            raise FileNotFoundError(
                f"{folder} is not a folder; expected {root}/{images_dir}/NAME.png with masks in "
                f"{root}/{masks_dir}/NAME.png"
            )
    image_paths = sorted(
        path
        for path in image_root.iterdir()
        if path.suffix.lower() in _IMAGE_SUFFIXES and not path.name.startswith(".")
    )
    if not image_paths:
        raise FileNotFoundError(f"no .png/.jpg/.jpeg images found in {image_root}")
    if max_images is not None:
        image_paths = image_paths[:max_images]
    target = (size, size) if isinstance(size, int) else size

    images, labels = [], []
    for image_path in image_paths:
        mask_path = mask_root / f"{image_path.stem}.png"
        if not mask_path.is_file():
            raise FileNotFoundError(f"{image_path}: no mask found, expected {mask_path}")
        with Image.open(image_path) as opened:
            image = opened.convert("RGB" if channels == 3 else "L")
        mask = _mask_values(mask_path)
        if mask.shape != (image.height, image.width):
            raise ValueError(
                f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} (WxH) but its image "
                f"{image_path} is {image.width}x{image.height}"
            )
        if label_map is not None:
            lookup = np.arange(max(int(mask.max()), *label_map) + 1)
            lookup[list(label_map)] = list(label_map.values())
            mask = lookup[mask]
        if num_classes is not None:
            bad = (mask < 0) | (mask >= num_classes)
            if ignore_index is not None:
                bad &= mask != ignore_index
            if bad.any():
                raise ValueError(
                    f"{mask_path}: labels {np.unique(mask[bad]).tolist()} are outside "
                    f"[0, {num_classes}) (ignore_index={ignore_index}); fix num_classes or "
                    "pass a label_map"
                )
        if target is not None:
            height, width = target
            image = image.resize((width, height), Image.Resampling.BILINEAR)
            mask = np.asarray(
                Image.fromarray(mask.astype(np.int32)).resize(
                    (width, height), Image.Resampling.NEAREST
                )
            )
        elif images and mask.shape != labels[0].shape:
            raise ValueError(
                f"{image_path} is {mask.shape[1]}x{mask.shape[0]} but {image_paths[0]} is "
                f"{labels[0].shape[1]}x{labels[0].shape[0]} (WxH); pass size= to resize all"
            )
        pixels = np.asarray(image, np.float32) / 255.0
        images.append(pixels.reshape(*pixels.shape[:2], channels))
        labels.append(mask.astype(np.int32))
    return np.stack(images), np.stack(labels)


def iterate_batches(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    *,
    seed: int = 0,
    shuffle: bool = True,
    num_epochs: int | None = None,
    drop_remainder: bool = True,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(images[B, ...], labels[B, ...])`` batches, reshuffled every epoch.

    Args:
      images: ``[N, ...]`` array.
      labels: ``[N, ...]`` array, paired with ``images`` along the first axis.
      batch_size: ``B``.
      seed: seeds the shuffling; the same seed gives the same batch sequence.
      shuffle: visit examples in a new random order each epoch; otherwise in order.
      num_epochs: stop after this many passes; ``None`` repeats forever (take ``steps`` batches).
      drop_remainder: skip the last incomplete batch of an epoch, so every batch has the same
        shape and a jitted step compiles once. Keep ``False`` for a single evaluation pass.

    Yields:
      ``(images[B, ...], labels[B, ...])``; only a final batch with ``drop_remainder=False``
      may hold fewer than ``B``.
    """
    count = len(images)
    if len(labels) != count:
        raise ValueError(f"images and labels differ in length: {count} vs {len(labels)}")
    if batch_size < 1 or (drop_remainder and batch_size > count):
        raise ValueError(
            f"batch_size must be in [1, {count}] with drop_remainder, got {batch_size}"
        )
    rng = np.random.default_rng(seed)
    epoch = 0
    while num_epochs is None or epoch < num_epochs:
        order = rng.permutation(count) if shuffle else np.arange(count)
        stop = count - count % batch_size if drop_remainder else count
        for start in range(0, stop, batch_size):
            chosen = order[start : start + batch_size]
            yield images[chosen], labels[chosen]
        epoch += 1
