"""The released checkpoint that ships in the repository: within the size limit, trained
by `python -m model.train` with a recorded command, and giving on the bundled image and
mask the PSNR and SSIM recorded when it was released, through the `model.inpaint` CLI
with no --ckpt. A change that breaks the checkpoint, the network, the classical fills or
the seeded DINO it was trained with fails here."""

import json

import numpy as np
import torch
from PIL import Image

from model import inpaint, release
from model.config import Config
from model.evaluate import DEFAULT_CKPT
from tritonsplat.metrics import psnr, ssim


def _png(path):
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), np.float32) / 255).permute(2, 0, 1)


def test_released_checkpoint_is_complete_and_small():
    info = json.loads((DEFAULT_CKPT / "release.json").read_text())
    assert (DEFAULT_CKPT / "model.safetensors").stat().st_size <= release.MAX_BYTES
    assert info["command"].startswith("python -m model.train")
    cfg = Config.load(DEFAULT_CKPT / "config.json")
    assert cfg.preset == "cpu-small" and cfg.train.steps == info["step"]
    assert info["dino_source"] == "random:seed=0"  # recorded: no real DINO on this machine


def test_released_checkpoint_reproduces_its_recorded_scores(tmp_path):
    info = json.loads((DEFAULT_CKPT / "release.json").read_text())
    out = tmp_path / "out.png"
    assert inpaint.main(["--image", str(DEFAULT_CKPT / "example.png"), "--mask",
                         str(DEFAULT_CKPT / "example_mask.png"), "--out", str(out)]) == 0  # fmt: skip
    result, truth = _png(out)[None], _png(DEFAULT_CKPT / "example.png")[None]
    mask = _png(DEFAULT_CKPT / "example_mask.png")[:1] > 0.5
    assert 0.2 <= float(mask.float().mean()) <= 0.4  # the 20-40% bucket
    assert torch.equal(result[0][:, ~mask[0]], truth[0][:, ~mask[0]])  # known pixels exact
    assert abs(float(psnr(result, truth)) - info["example"]["psnr"]) < 0.01
    assert abs(float(ssim(result, truth)) - info["example"]["ssim"]) < 1e-4
