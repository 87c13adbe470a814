"""Tests for examples/segmentation/data.py: synthetic builders, folder loader, batching."""

import sys

import numpy as np
import pytest
from PIL import Image

from tests.helpers import EXAMPLES

# The example is a forkable folder, not a package: import its modules as its scripts do.
sys.path.insert(0, str(EXAMPLES / "segmentation"))

import data

# --- digits ---------------------------------------------------------------------------------


def test_digits_shapes_dtypes_and_ranges():
    images, labels = data.make_digits_dataset(12, size=48, scale_range=(12, 20), seed=1)
    assert images.shape == (12, 48, 48, 1) and images.dtype == np.float32
    assert labels.shape == (12, 48, 48) and labels.dtype == np.int32
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert labels.min() == 0 and labels.max() < data.DIGITS_NUM_CLASSES
    assert len(data.DIGITS_CLASS_NAMES) == data.DIGITS_NUM_CLASSES == 11
    # Every canvas holds at least one digit, and the background dominates.
    assert ((labels > 0).sum(axis=(1, 2)) > 0).all()
    assert 0.5 < (labels == 0).mean() < 0.98


def test_digits_deterministic_from_seed():
    first = data.make_digits_dataset(6, seed=7)
    second = data.make_digits_dataset(6, seed=7)
    other = data.make_digits_dataset(6, seed=8)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.array_equal(first[1], other[1])


def test_digits_labels_match_sources_and_ink():
    images, labels, sources = data.make_digits_dataset(
        20, seed=3, noise_std=0.0, return_sources=True
    )
    _, targets = data._load_digits()
    assert sources.shape == (20, 3) and (sources[:, 0] >= 0).all()
    for n in range(20):
        used = sources[n][sources[n] >= 0]
        # Labels present are exactly digit + 1 of pasted scans (a fully covered one may vanish).
        assert set(np.unique(labels[n])) - {0} <= set((targets[used] + 1).tolist())
    # Without noise, background pixels far from ink are exactly 0, labelled pixels are bright.
    assert images[..., 0][labels > 0].min() > 0.35 * 0.75 - 1e-6
    assert images[..., 0][labels == 0].mean() < 0.1


def test_digits_splits_are_disjoint_and_cover_all():
    train = data.digits_split_indices("train")
    val = data.digits_split_indices("val")
    assert len(np.intersect1d(train, val)) == 0
    np.testing.assert_array_equal(np.union1d(train, val), np.arange(1797))
    assert len(val) == 359
    _, targets = data._load_digits()
    # Stratified: every digit is about 20% validation.
    counts = np.bincount(targets[val], minlength=10) / np.bincount(targets, minlength=10)
    np.testing.assert_allclose(counts, 0.2, atol=0.01)


def test_digits_val_canvases_use_only_val_scans():
    val = data.digits_split_indices("val")
    train = data.digits_split_indices("train")
    *_, val_sources = data.make_digits_dataset(40, split="val", return_sources=True)
    *_, train_sources = data.make_digits_dataset(40, split="train", return_sources=True)
    assert np.isin(val_sources[val_sources >= 0], val).all()
    assert np.isin(train_sources[train_sources >= 0], train).all()


def test_digits_rejects_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        data.make_digits_dataset(2, split="test")
    with pytest.raises(ValueError, match="scale_range"):
        data.make_digits_dataset(2, size=32, scale_range=(14, 40))


# --- shapes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fraction", [0.01, 0.05, 0.15])
def test_shapes_foreground_fraction_close_to_request(fraction):
    _, labels = data.make_shapes_dataset(150, foreground_fraction=fraction, seed=0)
    measured = (labels > 0).mean()
    assert fraction * 0.75 < measured < fraction * 1.25, measured


def test_shapes_shapes_dtypes_classes_and_determinism():
    images, labels = data.make_shapes_dataset(30, size=32, num_classes=4, seed=5)
    assert images.shape == (30, 32, 32, 1) and images.dtype == np.float32
    assert labels.shape == (30, 32, 32) and labels.dtype == np.int32
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert set(np.unique(labels)) == {0, 1, 2, 3}
    again = data.make_shapes_dataset(30, size=32, num_classes=4, seed=5)
    np.testing.assert_array_equal(images, again[0])
    np.testing.assert_array_equal(labels, again[1])
    val = data.make_shapes_dataset(30, size=32, num_classes=4, seed=5, split="val")
    assert not np.array_equal(labels, val[1])
    assert data.shapes_class_names(3) == ("background", "disk", "square")


def test_shapes_objects_are_brighter_than_background():
    images, labels = data.make_shapes_dataset(20, foreground_fraction=0.05, noise_std=0.0)
    assert images[..., 0][labels > 0].min() >= 0.6
    assert images[..., 0][labels == 0].max() < 0.6


def test_shapes_binary_and_bad_arguments():
    _, labels = data.make_shapes_dataset(10, num_classes=2, foreground_fraction=0.05)
    assert set(np.unique(labels)) == {0, 1}
    with pytest.raises(ValueError, match="num_classes"):
        data.make_shapes_dataset(2, num_classes=5)
    with pytest.raises(ValueError, match="foreground_fraction"):
        data.make_shapes_dataset(2, foreground_fraction=0.5)


# --- folder ---------------------------------------------------------------------------------


def _write_pair(root, name, image, mask, *, mask_mode="L", image_suffix=".png"):
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(root / "images" / f"{name}{image_suffix}")
    mask_image = Image.fromarray(mask.astype(np.uint8), mode="L")
    if mask_mode == "P":
        mask_image = mask_image.convert("P")
    mask_image.save(root / "masks" / f"{name}.png")


def _rgb(height, width, value):
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0] = value
    image[..., 2] = 255 - value
    return image


def test_folder_reads_pairs_sorted_by_name(tmp_path):
    mask_b = np.zeros((6, 8), np.uint8)
    mask_b[2:4, 3:6] = 2
    mask_b[0, 0] = 255
    _write_pair(tmp_path, "b", _rgb(6, 8, 200), mask_b, mask_mode="P")
    _write_pair(tmp_path, "a", _rgb(6, 8, 51), np.ones((6, 8), np.uint8))
    (tmp_path / "images" / "._a.png").write_bytes(b"not an image")  # macOS resource fork
    images, labels = data.load_folder_dataset(tmp_path, num_classes=3)
    assert images.shape == (2, 6, 8, 3) and images.dtype == np.float32
    assert labels.shape == (2, 6, 8) and labels.dtype == np.int32
    np.testing.assert_allclose(images[0, 0, 0], [0.2, 0.0, 0.8], atol=1e-6)
    np.testing.assert_allclose(images[1, 0, 0], [200 / 255, 0.0, 55 / 255], atol=1e-6)
    np.testing.assert_array_equal(labels[0], 1)
    np.testing.assert_array_equal(labels[1], mask_b)  # 255 passes through as ignore


def test_folder_resizes_grayscale_and_keeps_label_values(tmp_path):
    mask = np.zeros((10, 20), np.uint8)
    mask[:, 10:] = 1
    _write_pair(tmp_path, "x", _rgb(10, 20, 100), mask, image_suffix=".jpg")
    images, labels = data.load_folder_dataset(tmp_path, size=(4, 6), channels=1)
    assert images.shape == (1, 4, 6, 1) and labels.shape == (1, 4, 6)
    assert set(np.unique(labels)) == {0, 1}
    np.testing.assert_array_equal(labels[0, :, :3], 0)
    np.testing.assert_array_equal(labels[0, :, 3:], 1)


def test_folder_reads_one_bit_masks(tmp_path):
    mask = np.zeros((4, 8), bool)
    mask[1:3, 2:5] = True
    _write_pair(tmp_path, "binary", _rgb(4, 8, 10), np.zeros((4, 8), np.uint8))
    Image.fromarray(mask).save(tmp_path / "masks" / "binary.png")  # mode "1"
    _, labels = data.load_folder_dataset(tmp_path, num_classes=2)
    np.testing.assert_array_equal(labels[0], mask.astype(np.int32))


def test_folder_pets_trimap_mapping(tmp_path):
    trimap = np.array([[1, 2, 3], [2, 2, 1]], np.uint8)
    _write_pair(tmp_path, "Abyssinian_1", _rgb(2, 3, 0), trimap)
    _, labels = data.load_folder_dataset(
        tmp_path, num_classes=2, label_map=data.PETS_TRIMAP_LABEL_MAP
    )
    np.testing.assert_array_equal(labels[0], [[1, 0, 255], [0, 0, 1]])


def test_folder_missing_mask_names_the_image(tmp_path):
    _write_pair(tmp_path, "a", _rgb(4, 4, 0), np.zeros((4, 4), np.uint8))
    Image.fromarray(_rgb(4, 4, 0)).save(tmp_path / "images" / "lonely.png")
    with pytest.raises(FileNotFoundError, match=r"lonely\.png: no mask found"):
        data.load_folder_dataset(tmp_path)


def test_folder_size_mismatch_names_the_mask(tmp_path):
    _write_pair(tmp_path, "a", _rgb(4, 5, 0), np.zeros((4, 6), np.uint8))
    with pytest.raises(ValueError, match=r"a\.png: mask is 6x4 .* is 5x4"):
        data.load_folder_dataset(tmp_path)


def test_folder_images_of_different_sizes_need_size(tmp_path):
    _write_pair(tmp_path, "a", _rgb(4, 4, 0), np.zeros((4, 4), np.uint8))
    _write_pair(tmp_path, "b", _rgb(5, 5, 0), np.zeros((5, 5), np.uint8))
    with pytest.raises(ValueError, match=r"b\.png is 5x5 .*pass size="):
        data.load_folder_dataset(tmp_path)
    images, _ = data.load_folder_dataset(tmp_path, size=4)
    assert images.shape == (2, 4, 4, 3)


def test_folder_labels_out_of_range_name_file_and_values(tmp_path):
    mask = np.zeros((4, 4), np.uint8)
    mask[0, :2] = [3, 7]
    mask[1, 0] = 255
    _write_pair(tmp_path, "bad", _rgb(4, 4, 0), mask)
    with pytest.raises(ValueError, match=r"bad\.png: labels \[3, 7\] are outside \[0, 3\)"):
        data.load_folder_dataset(tmp_path, num_classes=3)
    with pytest.raises(ValueError, match=r"labels \[3, 7, 255\]"):
        data.load_folder_dataset(tmp_path, num_classes=3, ignore_index=None)


def test_folder_rejects_colour_masks(tmp_path):
    _write_pair(tmp_path, "a", _rgb(4, 4, 0), np.zeros((4, 4), np.uint8))
    Image.fromarray(_rgb(4, 4, 9)).save(tmp_path / "masks" / "a.png")
    with pytest.raises(ValueError, match=r"a\.png: mask has mode 'RGB'"):
        data.load_folder_dataset(tmp_path)


def test_folder_empty_or_missing_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        data.load_folder_dataset(tmp_path)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    (tmp_path / "images" / "notes.txt").write_text("no images here")
    with pytest.raises(FileNotFoundError, match=r"no \.png/\.jpg/\.jpeg images found"):
        data.load_folder_dataset(tmp_path)


# --- batching -------------------------------------------------------------------------------


def test_iterate_batches_epochs_cover_each_example_once():
    images = np.arange(10, dtype=np.float32)[:, None]
    labels = np.arange(10, dtype=np.int32)
    batches = list(data.iterate_batches(images, labels, 3, seed=0, num_epochs=2))
    assert len(batches) == 6 and all(len(y) == 3 for _, y in batches)
    for epoch in (batches[:3], batches[3:]):
        seen = np.concatenate([y for _, y in epoch])
        assert len(set(seen.tolist())) == 9  # one example dropped as remainder
    for x, y in batches:
        np.testing.assert_array_equal(x[:, 0], y)  # pairs stay aligned
    assert not np.array_equal(batches[0][1], batches[3][1])  # reshuffled per epoch


def test_iterate_batches_in_order_with_remainder_and_determinism():
    images = np.zeros((5, 2), np.float32)
    labels = np.arange(5, dtype=np.int32)
    ordered = data.iterate_batches(
        images, labels, 2, shuffle=False, num_epochs=1, drop_remainder=False
    )
    assert [y.tolist() for _, y in ordered] == [[0, 1], [2, 3], [4]]
    first = data.iterate_batches(images, labels, 2, seed=4)
    second = data.iterate_batches(images, labels, 2, seed=4)
    for _ in range(7):  # infinite: runs past the end of an epoch
        np.testing.assert_array_equal(next(first)[1], next(second)[1])
    with pytest.raises(ValueError, match="batch_size"):
        next(data.iterate_batches(images, labels, 6))
