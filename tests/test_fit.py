"""The image-fitting command line and the metrics it reports."""

import json

import torch

from tritonsplat import fit
from tritonsplat.metrics import psnr, ssim


def test_metrics_on_known_cases():
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(ssim(x, x), torch.ones(2))
    noisy = (x + 0.1).clamp(0, 1)
    assert (ssim(noisy, x) < 0.99).all()
    torch.testing.assert_close(psnr(x * 0 + 0.5, x * 0 + 0.6), torch.full((2,), 20.0))


def test_fit_writes_its_outputs_and_improves(tmp_path):
    out = tmp_path / "run"
    assert fit.main(["--size", "32", "--patch-size", "8", "--gaussians-per-patch", "16", "--steps", "30",
                     "--out", str(out)]) == 0  # fmt: skip
    result = json.loads((out / "result.json").read_text())
    assert {"psnr", "ssim", "wall_seconds", "gaussians"} <= result.keys()
    assert result["gaussians"] == 16 * 16
    assert result["psnr"] > 20.0  # the initial field scores 12.3 dB on this image
    for name in ("reconstruction.png", "target.png", "psnr.png"):
        assert (out / name).stat().st_size > 1000


def test_fit_rejects_bad_arguments(tmp_path, capsys):
    import pytest

    with pytest.raises(FileNotFoundError, match="IMAGE: no such file"):
        fit.main([str(tmp_path / "missing.png"), "--steps", "1"])
    with pytest.raises(ValueError, match="--gaussians-per-patch: expected a square number, got 10"):
        fit.main(["--size", "32", "--patch-size", "8", "--gaussians-per-patch", "10", "--steps", "1",
                  "--out", str(tmp_path)])  # fmt: skip
