"""bench.photographs' `--reuse`: the classical methods' scores of an earlier run are taken
case by case, matched on the pixels' fingerprint, never the model's, and the table says
which were not measured again and where they were."""

import json
import shutil
import subprocess
import types

import numpy as np
import pytest
from PIL import Image

from bench import photographs


@pytest.fixture
def bench(tmp_path, monkeypatch):
    """bench.photographs on one small made-up photograph, every method's run replaced by a
    copy of the input with noise in the hole; returns (run, the methods each call ran)."""
    source = tmp_path / "a.jpg"
    source.write_bytes(b"stand-in")
    pixels = {"seed": 0}
    monkeypatch.setattr(photographs, "PICTURES", {500: ["A"]})
    monkeypatch.setattr(photographs, "_sources", lambda: {"A": source})
    monkeypatch.setattr(photographs, "photograph", lambda name, width: np.random.default_rng(
        pixels["seed"]).integers(0, 256, (24, 32, 3), dtype=np.uint8))  # fmt: skip
    ran = []

    def fake_run(cmd, **kwargs):
        if cmd[0] == "lscpu":
            return types.SimpleNamespace(returncode=0, stdout="Model name: Test CPU\n", stderr="")
        method, image, mask, out = cmd[4:8]
        ran.append(method)
        picture = np.asarray(Image.open(image)).copy()
        picture[np.asarray(Image.open(mask)) > 0] //= 2
        Image.fromarray(picture).save(out)
        return types.SimpleNamespace(returncode=0, stdout=json.dumps({"seconds": 1.0, "peak_mb": 10.0}), stderr="")

    monkeypatch.setattr(subprocess, "run", fake_run)

    def run(*extra, out="out"):
        ran.clear()
        photographs.main(["--widths", "500", "--methods", "telea", "model", "--work", str(tmp_path / "work"),
                          "--out", str(tmp_path / out), *extra])  # fmt: skip
        return json.loads((tmp_path / out / "results.json").read_text()), list(ran)

    return run, pixels, tmp_path


def test_reuse_runs_only_the_model_and_says_where_the_rest_came_from(bench):
    run, _, tmp_path = bench
    first, ran = run()
    assert sorted(ran) == ["model"] * 3 + ["telea"] * 3  # three holes
    earlier = tmp_path / "earlier.json"
    shutil.copy(tmp_path / "out" / "results.json", earlier)
    again, ran = run("--reuse", str(earlier))
    assert ran == ["model"] * 3
    for old, new in zip(first["runs"], again["runs"], strict=True):
        telea = new["methods"]["telea"]
        assert telea["psnr"] == old["methods"]["telea"]["psnr"]
        assert telea["reused_from"] == {"file": str(earlier), "date": first["date"], "machine": first["machine"]}
        assert "reused_from" not in new["methods"]["model"]
    table = (tmp_path / "out" / "results.md").read_text()
    assert f"telea: 3 of 3 cases taken from {earlier} (`--reuse`), as measured {first['date']}" in table
    assert "\nmodel: " not in table  # nothing said of the model: it was measured


def test_reuse_measures_again_where_the_pixels_changed(bench):
    run, pixels, tmp_path = bench
    run()
    earlier = tmp_path / "earlier.json"
    shutil.copy(tmp_path / "out" / "results.json", earlier)
    pixels["seed"] = 1  # the same picture name, size and holes, other pixels
    again, ran = run("--reuse", str(earlier))
    assert sorted(ran) == ["model"] * 3 + ["telea"] * 3
    assert all("reused_from" not in r["methods"]["telea"] for r in again["runs"])


def test_reuse_refuses_its_own_output_an_old_file_and_a_missing_one(bench):
    run, _, tmp_path = bench
    run()
    with pytest.raises(SystemExit, match="is the file this run writes"):
        run("--reuse", str(tmp_path / "out" / "results.json"))
    old = json.loads((tmp_path / "out" / "results.json").read_text())
    for row in old["runs"]:
        del row["fingerprint"]
    (tmp_path / "old.json").write_text(json.dumps(old))
    with pytest.raises(SystemExit, match="written before cases carried the fingerprint"):
        run("--reuse", str(tmp_path / "old.json"))
    with pytest.raises(SystemExit, match="--reuse: no results file"):
        run("--reuse", str(tmp_path / "nope.json"))
