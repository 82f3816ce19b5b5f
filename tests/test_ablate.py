"""Ablations: each variant changes exactly its own switch, trains at the same budget and
gets a row of held-out scores."""

import json

import numpy as np
import pytest
from model_helpers import TINY_SET
from PIL import Image

from tritonsplat_inpaint.commands import ablate
from tritonsplat_inpaint.config import preset


def test_each_variant_changes_only_its_switch_and_leaves_the_base_alone():
    base = preset("cpu-small")
    before = base.to_dict()
    for name, fields in ablate.VARIANTS.items():
        cfg = ablate.variant_config(base, name)
        changed = {k for k, v in cfg.to_dict()["model"].items() if v != before["model"][k]}
        assert changed == set(fields), name
        assert cfg.train == base.train and cfg.data == base.data
    assert base.to_dict() == before


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
    plot = np.asarray(Image.open(out / "ablation.png").convert("L"))
    assert plot.shape[1] > 500 and plot.std() > 10
    # a second call reuses the finished runs: nothing is trained again
    logs = {n: (out / n / "log.jsonl").read_text() for n in ablate.VARIANTS}
    assert ablate.main(argv) == 0
    assert logs == {n: (out / n / "log.jsonl").read_text() for n in ablate.VARIANTS}
    assert json.loads((out / "ablation.json").read_text())["variants"].keys() == summary["variants"].keys()
