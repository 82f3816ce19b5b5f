"""The inpainting command line: known pixels kept exactly, folders paired by name, and
clear errors for bad images and masks."""

import numpy as np
import pytest
import torch
from model_helpers import tiny_config
from PIL import Image

from model import checkpoint, inpaint
from model.train import build_model


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    torch.manual_seed(0)
    cfg = tiny_config()
    net = build_model(cfg)
    with torch.no_grad():  # a random, non-trivial head
        net.head.proj.weight.normal_(0, 0.05)
    return checkpoint.save(run, 1, net, cfg, {"step": 1})


def _write(path, array, mode=None):
    Image.fromarray(array, mode).save(path)
    return path


def _pair(tmp_path, h=40, w=52, name="a"):
    rng = np.random.default_rng(0)
    image = _write(tmp_path / f"{name}.png", rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    mask = np.zeros((h, w), np.uint8)
    mask[10:25, 5:30] = 255
    return image, _write(tmp_path / f"{name}_mask.png", mask)


def test_known_pixels_are_kept_exactly_and_holes_filled(tmp_path, ckpt):
    image, mask = _pair(tmp_path)
    out = tmp_path / "out.png"
    assert inpaint.main(["--image", str(image), "--mask", str(mask), "--out", str(out), "--ckpt", str(ckpt)]) == 0
    src, res, m = (np.asarray(Image.open(p)) for p in (image, out, mask))
    assert res.shape == src.shape
    assert np.array_equal(res[m == 0], src[m == 0])
    assert not np.array_equal(res[m > 0], src[m > 0])


def test_folders_are_paired_by_name(tmp_path, ckpt):
    (tmp_path / "img").mkdir(), (tmp_path / "msk").mkdir()
    for name in ("x", "y"):
        image, mask = _pair(tmp_path, name=name)
        image.rename(tmp_path / "img" / f"{name}.png")
        mask.rename(tmp_path / "msk" / f"{name}.png")
    inpaint.main(["--image", str(tmp_path / "img"), "--mask", str(tmp_path / "msk"), "--out", str(tmp_path / "o"),
                  "--ckpt", str(ckpt)])  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["x.png", "y.png"]


def test_bad_inputs_raise_clear_errors(tmp_path, ckpt):
    image, mask = _pair(tmp_path)
    small = _write(tmp_path / "small.png", np.zeros((10, 10), np.uint8))
    empty = _write(tmp_path / "empty.png", np.zeros((40, 52), np.uint8))
    full = _write(tmp_path / "full.png", np.full((40, 52), 255, np.uint8))
    floaty = tmp_path / "float.tiff"
    Image.fromarray(np.zeros((40, 52), np.float32), "F").save(floaty)
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not an image")
    cases = [
        ((tmp_path / "missing.png", mask), FileNotFoundError, "--image: no such file"),
        ((image, tmp_path / "missing.png"), FileNotFoundError, "--mask: no such file"),
        ((image, small), ValueError, r"--mask: size \(10, 10\) differs from the image's \(52, 40\)"),
        ((image, empty), ValueError, "--mask: empty"),
        ((image, full), ValueError, "--mask: full"),
        ((floaty, mask), ValueError, "--image: expected an RGB, RGBA, grayscale or palette image, got mode 'F'"),
        ((garbage, mask), ValueError, "--image: cannot read"),
    ]
    for (img, msk), exc, pattern in cases:
        with pytest.raises(exc, match=pattern):
            inpaint.main(["--image", str(img), "--mask", str(msk), "--out", str(tmp_path / "o.png"),
                          "--ckpt", str(ckpt)])  # fmt: skip
