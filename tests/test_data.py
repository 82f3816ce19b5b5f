"""Training and evaluation images: the default set from installed packages, the held-out
split, crops, and clear errors for a bad --data folder."""

import pytest
import torch
from PIL import Image

from tritonsplat_inpaint.data import RandomCrops, default_image_paths, fixed_crops, folder_image_paths, split


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


def test_wallpapers_give_one_picture_each_and_only_to_training(tmp_path, monkeypatch):
    import tritonsplat_inpaint.data as data_mod
    from tritonsplat_inpaint.config import Config
    from tritonsplat_inpaint.data import wallpaper_paths

    for name, files in {"A": ["1280x1024.jpg", "5120x2880.jpg", "640x480.jpg"], "B": ["800x600.png"]}.items():
        for f in files:
            (tmp_path / name / "contents" / "images").mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8)).save(tmp_path / name / "contents" / "images" / f)
        (tmp_path / name / "contents" / "screenshot.png").write_bytes(b"")  # not a wallpaper
    chosen = wallpaper_paths(tmp_path)
    assert [(p.parent.parent.parent.name, p.name) for p in chosen] == [("A", "1280x1024.jpg"), ("B", "800x600.png")]
    cfg = Config()
    train_without, held_out = data_mod.data_paths(cfg)
    monkeypatch.setattr(data_mod, "wallpaper_paths", lambda: chosen)
    train_with, held_out_with = data_mod.data_paths(cfg)
    assert held_out_with == held_out and train_with[-2:] == chosen
    assert set(train_with) - set(chosen) == set(train_without) - set(wallpaper_paths())


def test_large_images_are_shrunk_for_training_crops(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (900, 600), (10, 200, 30)).save(path)
    ds = RandomCrops([path], 32)
    assert ds.images[0].shape == (3, 128, 192)  # short side: 4 crops
    assert ds[0].shape == (3, 32, 32)
    torch.testing.assert_close(ds.images[0][:, 5, 5], torch.tensor([10, 200, 30]) / 255, atol=1e-6, rtol=0)
