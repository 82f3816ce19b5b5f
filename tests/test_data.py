"""Training and evaluation images: the default catalogue of photographs, its held-out
photographs, crops, and clear errors for a bad --data folder."""

import numpy as np
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
    missing_packages,
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
    monkeypatch.setattr(data_mod, "_INSTALLS", {"gcompris-qt-data": data_mod.Path("/nonexistent")})
    n = len(HELD_OUT)
    with pytest.warns(
        UserWarning,
        match=rf"{n - 1} of the {n} held-out photographs are not installed \(missing "
        r"packages: gcompris-qt-data; install with tools/install_photographs.sh, or: apt-get install",
    ):
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


def test_the_install_script_installs_the_catalogues_packages():
    from pathlib import Path

    from tritonsplat_inpaint.data import INSTALL_PACKAGES

    script = (Path(__file__).parents[1] / "tools" / "install_photographs.sh").read_text()
    line = next(x for x in script.splitlines() if x.startswith("PACKAGES="))
    assert line.split("=", 1)[1].strip('"').split() == list(INSTALL_PACKAGES)
    assert "mate-backgrounds" not in script  # reserved for an independent evaluation


def test_small_photographs_give_whole_image_crops_only(tmp_path):
    from tritonsplat_inpaint.data import WHOLE_ONLY_BELOW, crop_scale

    small, big = tmp_path / "small.png", tmp_path / "big.png"
    Image.new("RGB", (WHOLE_ONLY_BELOW + 80, WHOLE_ONLY_BELOW - 40)).save(small)
    Image.new("RGB", (900, WHOLE_ONLY_BELOW)).save(big)
    assert crop_scale(small, 8) == 1 and crop_scale(big, 8) == 8
    ds = RandomCrops([small, big], 32)
    assert min(ds.images[0].shape[-2:]) == 32 and min(ds.images[1].shape[-2:]) == 256


def test_near_duplicates_are_found_and_distinct_pictures_are_not(tmp_path):
    from tritonsplat_inpaint.data import near_duplicates

    rng = np.random.default_rng(0)
    scene = Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).resize((320, 240))
    paths = [tmp_path / n for n in ("a.png", "a_small.jpg", "b.png")]
    scene.save(paths[0])
    scene.resize((160, 120)).save(paths[1], quality=70)  # the same photograph, smaller and recompressed
    Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(paths[2])
    assert [(a.name, b.name) for a, b, _ in near_duplicates(paths)] == [("a.png", "a_small.jpg")]


def test_debian_copyright_files_give_each_file_its_licence(tmp_path, monkeypatch):
    import tritonsplat_inpaint.data as data_mod

    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "copyright").write_text(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: *\nCopyright: 2020 Someone\nLicense: GPL-2+\n\n"
        "Files: 16.04/photo_by_X.jpg\n       other.jpg\nCopyright: X, 2018\nLicense: CC-BY-4.0\n\n"
        "Files: debian/*\nCopyright: Packager\nLicense: GPL-2+\n\nLicense: GPL-2+\n text\n"
    )
    monkeypatch.setattr(data_mod, "DOC", tmp_path)
    data_mod.debian_licences.cache_clear()
    try:
        assert data_mod.debian_licence("pkg", "photo_by_X.jpg") == "CC-BY-4.0; X, 2018"
        assert data_mod.debian_licence("pkg", "other.jpg") == "CC-BY-4.0; X, 2018"
        assert data_mod.debian_licence("pkg", "templates/cliff.jpg") == "GPL-2+; 2020 Someone"
        assert data_mod.debian_licence("none", "a.jpg").startswith("see ")
    finally:
        data_mod.debian_licences.cache_clear()


needs_packages = pytest.mark.skipif(
    bool(missing_packages()),
    reason="the catalogue's Debian packages are not all installed (tools/install_photographs.sh)",
)


@needs_packages
def test_the_full_catalogue_is_vetted_recorded_and_held_out_across_sources():
    from tritonsplat_inpaint.data import LEFT_OUT, catalogue, near_duplicates

    records = catalogue()
    names = [r.name for r in records]
    assert len(set(names)) == len(names) and not set(names) & set(LEFT_OUT)
    assert set(HELD_OUT) <= set(names) and len(set(HELD_OUT)) == len(HELD_OUT)
    assert all(r.licence and r.origin and r.path.is_file() and min(r.size) > 0 for r in records)
    held = [r for r in records if r.name in HELD_OUT]
    assert len({r.source for r in held}) >= 6  # drawn across sources
    assert sum(min(r.size) < 360 for r in held) <= len(held) // 4  # few whole-image-only photographs
    assert near_duplicates([r.path for r in records]) == []
