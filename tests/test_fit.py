"""The image-fitting command line and the metrics it reports."""

import json

import pytest
import torch

from tritonsplat import fit
from tritonsplat.metrics import psnr, ssim


def test_metrics_on_known_cases():
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(ssim(x, x), torch.ones(2))
    noisy = (x + 0.1).clamp(0, 1)
    assert (ssim(noisy, x) < 0.99).all()
    torch.testing.assert_close(psnr(x * 0 + 0.5, x * 0 + 0.6), torch.full((2,), 20.0))


def _run(tmp_path, name, *args):
    out = tmp_path / name
    assert fit.main([*args, "--out", str(out)]) == 0
    result = json.loads((out / "result.json").read_text())
    for png in ("reconstruction.png", "target.png", "psnr.png", "gaussians.png"):
        assert (out / png).stat().st_size > 1000
    return result


def test_free_fit_writes_its_outputs_and_improves(tmp_path):
    result = _run(tmp_path, "free", "--size", "48", "--num-gaussians", "200", "--steps", "60")
    assert {"psnr", "ssim", "wall_seconds", "gaussians"} <= result.keys()
    assert result["gaussians"] == 200 and result["rasterizer"] == "free"
    assert result["psnr"] > result["initial_psnr"] + 4.0


def test_patch_fit_writes_its_outputs_and_improves(tmp_path):
    result = _run(
        tmp_path, "patches", "--rasterizer", "patches", "--size", "32", "--patch-size", "8",
        "--gaussians-per-patch", "16", "--steps", "30",
    )  # fmt: skip
    assert result["gaussians"] == 16 * 16
    assert result["psnr"] > result["initial_psnr"] + 4.0


def _binned_against_dense(tmp_path, steps):
    args = ("--size", "96", "--num-gaussians", "300", "--steps", str(steps))
    binned = _run(tmp_path, "binned", *args, "--backend", "torch")
    dense = _run(tmp_path, "dense", *args, "--backend", "dense")
    assert abs(binned["psnr"] - dense["psnr"]) < 0.1
    return binned, dense


def test_binning_costs_no_quality_short(tmp_path):
    binned, dense = _binned_against_dense(tmp_path, 60)
    assert binned["wall_seconds"] < dense["wall_seconds"]


@pytest.mark.slow
def test_binning_costs_no_quality_96px_300_gaussians_300_steps(tmp_path):
    _binned_against_dense(tmp_path, 300)


def test_fit_rejects_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="IMAGE: no such file"):
        fit.main([str(tmp_path / "missing.png"), "--steps", "1"])
    with pytest.raises(ValueError, match="--gaussians-per-patch: expected a square number, got 10"):
        fit.main(["--rasterizer", "patches", "--size", "32", "--patch-size", "8", "--gaussians-per-patch", "10",
                  "--steps", "1", "--out", str(tmp_path)])  # fmt: skip
    with pytest.raises(SystemExit):
        fit.main(["--num-gaussians", "0"])
