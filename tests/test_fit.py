"""The image-fitting command line and the metrics it reports."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

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
    size = result["size"]
    for png in ("reconstruction.png", "target.png"):  # the pictures themselves, not just files
        pixels = np.asarray(Image.open(out / png).convert("RGB"))
        assert pixels.shape == (size, size, 3) and pixels.std() > 5
    target = torch.from_numpy(np.asarray(Image.open(out / "target.png").convert("RGB"), np.float32) / 255)
    recon = torch.from_numpy(np.asarray(Image.open(out / "reconstruction.png").convert("RGB"), np.float32) / 255)
    written = psnr(recon.permute(2, 0, 1)[None], target.permute(2, 0, 1)[None])
    assert abs(float(written) - result["psnr"]) < 0.5  # the reconstruction written is the one scored
    plot = np.asarray(Image.open(out / "psnr.png").convert("L"))
    assert plot.shape[0] > 100 and plot.std() > 5
    drawn = np.asarray(Image.open(out / "gaussians.png").convert("RGB"))  # the fitted Gaussians, at 2x
    assert drawn.shape == (2 * size, 2 * size, 3) and drawn.std() > 5
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
    _binned_against_dense(tmp_path, 60)  # (no timing compared: the machine is shared)


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


def test_fit_says_what_it_crops_and_never_overwrites_a_fit_unasked(tmp_path, capsys, monkeypatch):
    image = tmp_path / "wide.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 50, 3), dtype=np.uint8)).save(image)
    args = [str(image), "--size", "16", "--num-gaussians", "20", "--steps", "2"]
    out = tmp_path / "fit"
    assert fit.main([*args, "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert f"fitting {image} (50 x 30): its centred 30 x 30 square from (x 10, y 0), resized to 16 x 16" in said
    assert f"writing to {out}" in said
    with pytest.raises(FileExistsError, match="--out: .* holds a previous fit; pass --overwrite"):
        fit.main([*args, "--out", str(out)])
    assert fit.main([*args, "--out", str(out), "--overwrite"]) == 0
    monkeypatch.chdir(tmp_path)  # the default folder: runs/fit, then runs/fit-2
    assert fit.main(args) == 0 and fit.main(args) == 0
    assert (tmp_path / "runs" / "fit" / "result.json").is_file() and (
        tmp_path / "runs" / "fit-2" / "result.json"
    ).is_file()
    res = subprocess.run(
        [sys.executable, "-m", "tritonsplat.fit", *args, "--out", str(out)], capture_output=True, text=True
    )
    assert res.returncode == 1 and res.stderr.startswith("error: --out:") and "Traceback" not in res.stderr


def test_help_names_the_module_and_every_default(capsys):
    with pytest.raises(SystemExit):
        fit.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert text.startswith("usage: python -m tritonsplat.fit")
    for action in fit.parser()._actions:
        if action.dest != "help" and action.option_strings:
            assert action.help, action.dest
    for default in ("(default: 256)", "(default: 2000)", f"(default: {fit.DEFAULT_THREADS})", "(default: 0.01)"):
        assert default in text
