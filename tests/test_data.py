"""Training and evaluation images: the default catalogue of photographs, its held-out
photographs, crops, and clear errors for a bad --data folder."""

import pytest
import torch
from PIL import Image

from tritonsplat_inpaint.data import (
    HELD_OUT,
    RandomCrops,
    default_image_paths,
    default_split,
    fixed_crops,
    folder_image_paths,
    photograph_name,
    split,
)


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


def test_wallpapers_give_one_picture_each(tmp_path):
    from tritonsplat_inpaint.data import wallpaper_paths

    for name, files in {"A": ["1280x1024.jpg", "5120x2880.jpg", "640x480.jpg"], "B": ["800x600.png"]}.items():
        for f in files:
            (tmp_path / name / "contents" / "images").mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8)).save(tmp_path / name / "contents" / "images" / f)
        (tmp_path / name / "contents" / "screenshot.png").write_bytes(b"")  # not a wallpaper
    chosen = wallpaper_paths(tmp_path)
    assert [(p.parent.parent.parent.name, p.name) for p in chosen] == [("A", "1280x1024.jpg"), ("B", "800x600.png")]
    assert wallpaper_paths(tmp_path, ["B"]) == chosen[1:]
    assert [photograph_name(p) for p in chosen] == ["A", "B"]
    assert photograph_name(tmp_path / "Bridge_by_X.jpg") == "Bridge_by_X"


def test_the_default_split_holds_out_whole_photographs_by_name():
    train, held_out = default_split()
    names = [photograph_name(p) for p in train]
    assert {photograph_name(p) for p in held_out} <= set(HELD_OUT)
    assert set(train).isdisjoint(held_out) and len(set(names)) == len(names)
    assert not set(names) & set(HELD_OUT)
    # a stereo pair is one scene: both on the training side; no astronomy or microscopy
    assert {"motorcycle_left", "motorcycle_right"} <= set(names)
    assert not {"moon", "hubble_deep_field", "retina", "ihc"} & set(names + [photograph_name(p) for p in held_out])
    # the package photographs are always there; grace_hopper is the one held out among them
    assert "grace_hopper" in [photograph_name(p) for p in held_out]


def test_a_missing_held_out_photograph_is_said(monkeypatch):
    import tritonsplat_inpaint.data as data_mod

    monkeypatch.setattr(data_mod, "debian_photographs", lambda: [])
    with pytest.warns(UserWarning, match=r"8 of the 9 held-out photographs are not installed \(apt-get install"):
        train, held_out = data_mod.default_split()
    assert [photograph_name(p) for p in held_out] == ["grace_hopper"] and len(train) >= 10


def test_large_images_are_shrunk_for_training_crops(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (900, 600), (10, 200, 30)).save(path)
    ds = RandomCrops([path], 32)
    assert ds.images[0].shape == (3, 256, 384)  # short side: 8 crops
    assert RandomCrops([path], 32, max_scale=4).images[0].shape == (3, 128, 192)
    assert ds[0].shape == (3, 32, 32)
    torch.testing.assert_close(ds.images[0][:, 5, 5], torch.tensor([10, 200, 30]) / 255, atol=1e-6, rtol=0)
