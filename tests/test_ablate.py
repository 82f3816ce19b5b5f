"""Ablations: each variant changes exactly its own switch, trains at the same budget and
gets a row of held-out scores."""

import json

import numpy as np
import pytest
from model_helpers import TINY_SET
from PIL import Image

from tritonsplat_inpaint import plots
from tritonsplat_inpaint.commands import ablate
from tritonsplat_inpaint.config import preset


def test_each_variant_changes_only_its_switch_and_leaves_the_base_alone():
    base = preset("cpu-small")
    before = base.to_dict()
    made = {"other-encoder": {"encoder"}, "random-dino": set()}  # switches `variant_config` sets itself
    for name, fields in ablate.VARIANTS.items():
        cfg = ablate.variant_config(base, name)
        changed = {k for k, v in cfg.to_dict()["model"].items() if v != before["model"][k]}
        assert changed == set(fields) | made.get(name, set()), name
        assert cfg.train == base.train and cfg.data == base.data
        assert (cfg.dino_weights == "random") == (name == "random-dino")
    assert ablate.variant_config(base, "other-encoder").model.encoder == "efficientnet_lite0"  # the base: scratch
    base.model.encoder = "efficientnet_lite0"
    assert ablate.variant_config(base, "other-encoder").model.encoder == "scratch"
    with pytest.raises(ValueError, match="--only: expected variants among full, .* got 'nope'"):
        ablate.variant_config(base, "nope")


def test_paired_differences_are_the_full_model_minus_each_variant_over_the_same_crops():
    def row(psnr, ssim):
        return {"buckets": {"10-20%": {"psnr_per_image": psnr, "ssim_per_image": ssim}}}

    rows = {"full": row([30.0, 31.0, 29.0, 32.0], [0.9, 0.9, 0.9, 0.9]),
            "no-dino": row([29.0, 30.5, 29.0, 31.5], [0.9, 0.8, 0.9, 0.9])}  # fmt: skip
    d = ablate.paired_differences(rows)["no-dino"]["10-20%"]
    assert d["psnr"]["mean"] == pytest.approx(0.5)  # differences 1, 0.5, 0, 0.5
    assert d["psnr"]["stderr"] == pytest.approx(np.std([1, 0.5, 0, 0.5], ddof=1) / 2)
    assert d["psnr"]["wins"] == 0.75 and d["ssim"]["mean"] == pytest.approx(0.025)
    summary = {"preset": "p", "steps": 1, "batch_size": 1, "held_out_crops": 4, "full_minus": {"no-dino": {
        "10-20%": d}}, "variants": {n: r | {"trainable_params": 1, "images_per_s": 1.0, "dino_source": "x"}
        for n, r in rows.items()}}  # fmt: skip
    for r in summary["variants"].values():
        r["buckets"]["10-20%"] |= {"psnr": 30.0, "ssim": 0.9}
    assert "| no-dino | +0.50 +- 0.20 (75%) | +0.0250 +- 0.0250 |" in ablate.markdown(summary)


def test_the_variants_learning_curves_share_one_figure(tmp_path):
    for i, name in enumerate(("full", "no-dino")):
        (tmp_path / name).mkdir()
        points = [{"step": s, "gain_db": {"10-20%": 0.1 * s * (i + 1), "20-40%": 0.2 * s, "40-60%": 0.0}}
                  for s in (0, 1, 2)]  # fmt: skip
        (tmp_path / name / "curve.jsonl").write_text("".join(json.dumps(p) + "\n" for p in points))
    (tmp_path / "no-prior").mkdir()  # no blend to gain over: no curve, no line
    runs = {n: tmp_path / n for n in ("full", "no-dino", "no-prior")}
    assert plots.plot_curves(runs, tmp_path / "curves.png")
    plot = np.asarray(Image.open(tmp_path / "curves.png").convert("L"))
    assert plot.shape[1] > 800 and plot.std() > 10
    assert not plots.plot_curves({"no-prior": tmp_path / "no-prior"}, tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()
    # a run that went on from another's end is drawn after it: the figure changes
    assert plots.plot_curves(runs, tmp_path / "shifted.png", offsets={"no-dino": 10})
    shifted = np.asarray(Image.open(tmp_path / "shifted.png").convert("L"))
    assert shifted.shape == plot.shape and np.abs(shifted.astype(int) - plot).mean() > 0.5


def test_an_ablation_of_no_variant_is_refused(capsys):
    with pytest.raises(SystemExit):
        ablate.main(["--only"])
    assert "--only: expected one or more of full, random-dino" in capsys.readouterr().err


@pytest.mark.slow
def test_ablation_trains_every_variant_and_writes_a_row_for_each(tmp_path):
    out = tmp_path / "abl"
    argv = ["--steps", "2", "--out", str(out), "--per-image", "1", "--no-compile", "--no-progress", "--set", *TINY_SET]
    assert ablate.main(argv) == 0
    summary = json.loads((out / "ablation.json").read_text())
    assert list(summary["variants"]) == list(ablate.VARIANTS)
    assert summary["steps"] == 2
    params = {name: row["trainable_params"] for name, row in summary["variants"].items()}
    assert params["conv-decoder"] != params["full"] and params["no-adaln"] != params["full"]
    for row in summary["variants"].values():
        assert set(row["buckets"]) == {"10-20%", "20-40%", "40-60%"}
        assert all(5 < s["psnr"] < 60 and 0 < s["ssim"] <= 1 for s in row["buckets"].values())
    table = (out / "ablation.md").read_text()
    assert all(f"| {name} |" in table for name in ablate.VARIANTS)
    assert set(summary["full_minus"]) == set(ablate.VARIANTS) - {"full"} and "full minus" in table
    assert summary["variants"]["random-dino"]["dino_source"] == "random:seed=0"
    plot = np.asarray(Image.open(out / "ablation.png").convert("L"))
    assert plot.shape[1] > 500 and plot.std() > 10
    assert (out / "ablation_curves.png").stat().st_size > 10_000  # the variants' curves (TINY_SET logs them)
    # a second call reuses the finished runs: nothing is trained again
    logs = {n: (out / n / "log.jsonl").read_text() for n in ablate.VARIANTS}
    assert ablate.main(argv) == 0
    assert logs == {n: (out / n / "log.jsonl").read_text() for n in ablate.VARIANTS}
    assert json.loads((out / "ablation.json").read_text())["variants"].keys() == summary["variants"].keys()


def _scored(folder, variants, steps=1000):
    """An ablation.json in `folder` with `variants` ({name: per-crop PSNRs}) scored on one bucket."""
    def row(psnr):
        bucket = {"psnr": float(np.mean(psnr)), "ssim": 0.9, "psnr_per_image": psnr, "ssim_per_image": [0.9] * 4}
        return {"images_per_s": 1.0, "trainable_params": 1, "dino_source": "x", "buckets": {"10-20%": bucket}}

    folder.mkdir()
    summary = {"steps": steps, "batch_size": 8, "preset": "cpu-small", "held_out_crops": 4,
               "variants": {n: row(p) for n, p in variants.items()}}  # fmt: skip
    (folder / "ablation.json").write_text(json.dumps(summary))
    return folder / "ablation.json"


def test_join_makes_one_table_of_variants_scored_apart(tmp_path):
    full = [30.0, 31.0, 29.0, 32.0]
    a = _scored(tmp_path / "a", {"no-dino": [29.0, 30.5, 29.0, 31.5], "full": full})
    b = _scored(tmp_path / "b", {"full": full, "other-encoder": [30.0, 30.0, 28.0, 31.0]})
    summary, runs = ablate.join([a, b])
    assert list(summary["variants"]) == ["full", "no-dino", "other-encoder"]  # the variants' own order
    assert runs["other-encoder"] == tmp_path / "b" / "other-encoder" and runs["no-dino"] == tmp_path / "a" / "no-dino"
    assert summary["full_minus"]["no-dino"]["10-20%"]["psnr"]["mean"] == pytest.approx(0.5)
    assert summary["full_minus"]["other-encoder"]["10-20%"]["psnr"]["mean"] == pytest.approx(0.75)
    assert "| other-encoder | +0.75" in ablate.markdown(summary)


def test_join_refuses_tables_that_are_not_on_the_same_crops(tmp_path):
    a = _scored(tmp_path / "a", {"full": [30.0, 31.0, 29.0, 32.0], "no-dino": [29.0] * 4})
    other_crops = _scored(tmp_path / "b", {"full": [30.0, 31.0, 29.0, 31.0], "no-adaln": [29.0] * 4})
    with pytest.raises(ValueError, match="--join: full's scores in .* are not identical crop for crop"):
        ablate.join([a, other_crops])
    no_full = _scored(tmp_path / "c", {"no-adaln": [29.0] * 4})
    with pytest.raises(ValueError, match="has no 'full' variant"):
        ablate.join([a, no_full])
    longer = _scored(tmp_path / "d", {"full": [30.0, 31.0, 29.0, 32.0]}, steps=2000)
    with pytest.raises(ValueError, match="not the same ablation"):
        ablate.join([a, longer])


def test_join_from_the_command_line_writes_the_table_and_plots(tmp_path, capsys):
    full = [30.0, 31.0, 29.0, 32.0]
    a = _scored(tmp_path / "a", {"full": full, "no-dino": [29.0, 30.5, 29.0, 31.5]})
    _scored(tmp_path / "b", {"full": full, "other-encoder": [30.0, 30.0, 28.0, 31.0]})
    (tmp_path / "b" / "other-encoder").mkdir()
    points = [{"step": s, "gain_db": {"10-20%": 0.1 * s}} for s in (0, 1, 2)]
    (tmp_path / "b" / "other-encoder" / "curve.jsonl").write_text("".join(json.dumps(p) + "\n" for p in points))
    out = tmp_path / "joined"
    assert ablate.main(["--join", str(a), str(tmp_path / "b"), "--out", str(out)]) == 0  # a file, then a folder
    joined = json.loads((out / "ablation.json").read_text())
    assert list(joined["full_minus"]) == ["no-dino", "other-encoder"]
    assert (out / "ablation.png").is_file() and (out / "ablation_curves.png").is_file()
    with pytest.raises(SystemExit):
        ablate.main(["--join", str(a), "--only", "full", "--out", str(out)])
    assert "--join makes a table of earlier calls' scores and trains nothing: drop --only" in capsys.readouterr().err
