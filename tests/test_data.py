"""Training and evaluation images: the default set from installed packages, the held-out
split, crops, and clear errors for a bad --data folder."""

import pytest
import torch
from PIL import Image

from model.data import RandomCrops, default_image_paths, fixed_crops, folder_image_paths, split


def test_default_images_ship_with_installed_packages():
    paths = default_image_paths()
    assert len(paths) >= 10 and all(p.is_file() for p in paths)


def test_split_is_seeded_disjoint_and_holds_out():
    paths = default_image_paths()
    train, test = split(paths, 0.2, seed=0)
    assert set(train).isdisjoint(test) and set(train) | set(test) == set(paths)
    assert len(test) == round(0.2 * len(paths))
    assert split(paths, 0.2, seed=0) == (train, test)


def test_crops_have_the_size_and_range():
    paths = default_image_paths()[:2]
    batch = torch.stack([RandomCrops(paths, 48)[i] for i in range(4)])
    assert batch.shape == (4, 3, 48, 48) and 0 <= batch.min() and batch.max() <= 1
    torch.testing.assert_close(fixed_crops(paths, 48, 2), fixed_crops(paths, 48, 2))


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="--data: no such folder"):
        folder_image_paths(tmp_path / "nope")
    with pytest.raises(ValueError, match="--data: no images"):
        folder_image_paths(tmp_path)
    Image.new("L", (20, 10)).save(tmp_path / "a.png")
    assert folder_image_paths(tmp_path) == [tmp_path / "a.png"]
    with pytest.raises(ValueError, match="need at least 2 images"):
        split(folder_image_paths(tmp_path), 0.2, 0)
