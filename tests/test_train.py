"""Training: the loss falls on a fixed batch; a run killed at any moment resumes to the
same parameters as an uninterrupted one, with and without the GAN; Ctrl-C is a clean
stop; DDP with 2 CPU processes ends with equal parameters on both; compiled = eager; the
paper preset builds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from model_helpers import TINY_SET, tiny_config
from safetensors.torch import load_file

from tritonsplat_inpaint.classical import fill_batch
from tritonsplat_inpaint.commands import train as train_command
from tritonsplat_inpaint.commands.train import _free_run_dir
from tritonsplat_inpaint.data import RandomCrops, default_image_paths
from tritonsplat_inpaint.dino import FeatureCache
from tritonsplat_inpaint.network import build_model
from tritonsplat_inpaint.training import (
    Batches,
    autocast_dtype,
    batch_at,
    compile_parts,
    crop_indices,
    learning_rate,
    losses,
    train,
)


def test_a_few_steps_lower_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    cfg = tiny_config()
    net = build_model(cfg)
    images, masks = batch_at(RandomCrops(default_image_paths()[:3], 32), cfg, 0, 0, 1)
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=2e-3)
    history = []
    for _ in range(40):
        parts = losses(net, net(images, masks), images, masks, cfg)
        opt.zero_grad()
        parts["total"].backward()
        opt.step()
        history.append(float(parts["total"].detach()))
    assert sum(history[-5:]) / 5 < 0.8 * sum(history[:5]) / 5


def test_cosine_schedule_falls_from_lr_to_its_floor_and_constant_stays():
    cfg = tiny_config(steps=11, lr=1e-3, lr_final=0.1)
    rates = [learning_rate(cfg, s) for s in range(11)]
    assert rates[0] == 1e-3 and abs(rates[-1] - 1e-4) < 1e-12
    assert all(a > b for a, b in zip(rates, rates[1:], strict=False))
    assert abs(rates[5] - 0.55e-3) < 1e-12  # half way: the mean of the two ends
    cfg.train.decay_start = 6  # a constant-rate run resumed into its decay: flat to step 6, then the same fall
    late = [learning_rate(cfg, s) for s in range(11)]
    assert late[:7] == [1e-3] * 7 and abs(late[-1] - 1e-4) < 1e-12 and late[8] == rates[5]
    for bad in (-1, 10):  # before the run, or too late for anything to fall
        cfg.train.decay_start = bad
        with pytest.raises(ValueError, match=rf"train.decay_start: expected a step from 0 to .* \(9\).*got {bad}"):
            learning_rate(cfg, 0)
    cfg.train.decay_start = 0
    cfg.train.schedule = "constant"
    assert {learning_rate(cfg, s) for s in range(11)} == {1e-3}
    cfg.train.schedule = "step"
    with pytest.raises(ValueError, match="train.schedule: expected 'constant' or 'cosine', got 'step'"):
        learning_rate(cfg, 0)


def test_crop_pool_cycles_and_the_dino_cache_returns_the_computed_features(tmp_path):
    cfg = tiny_config(crop_pool=6)
    assert [crop_indices(cfg, s, 0, 1) for s in range(4)] == [[0, 1], [2, 3], [4, 5], [0, 1]]
    assert crop_indices(cfg, 1, 1, 2) == [0, 1] and crop_indices(tiny_config(), 3, 0, 1) == [6, 7]
    data = RandomCrops(default_image_paths()[:3], 32)
    torch.testing.assert_close(batch_at(data, cfg, 0, 0, 1)[0], batch_at(data, cfg, 3, 0, 1)[0])
    net = build_model(cfg)
    cache = FeatureCache()
    for step in range(4):
        images, _ = batch_at(data, cfg, step, 0, 1)
        cached = cache(net.dino, images, crop_indices(cfg, step, 0, 1))
        torch.testing.assert_close(cached, net.dino(images), atol=1e-5, rtol=1e-5)
    assert (cache.hits, cache.misses) == (2, 6)
    summary = train(tiny_config(crop_pool=4, steps=5), tmp_path / "run", compile=False, progress=False)
    assert summary["dino_cache"] == {"hits": 6, "misses": 4}
    with pytest.raises(FileExistsError, match="already holds a run; continue it with --resume"):
        train(tiny_config(steps=1), tmp_path / "run", compile=False, progress=False)


def test_default_run_folder_never_reuses_a_run(tmp_path):
    base = tmp_path / "train"
    assert _free_run_dir(base) == base
    base.mkdir()
    assert _free_run_dir(base) == base  # empty: free
    (base / "log.jsonl").write_text("")
    assert _free_run_dir(base) == tmp_path / "train-2"
    (tmp_path / "train-2").mkdir()
    (tmp_path / "train-2" / "config.json").write_text("{}")
    assert _free_run_dir(base) == tmp_path / "train-3"


def _train_cmd(out, *extra, steps=6, every=2):
    return [sys.executable, "-m", "model.train", "--out", str(out), "--no-compile", "--no-progress",
            "--set", *TINY_SET, f"train.steps={steps}", f"train.checkpoint_every={every}", *extra]  # fmt: skip


def _final_weights(run):
    return load_file(str(run / "step-0000006" / "model.safetensors"))


def test_resume_after_a_kill_gives_the_uninterrupted_parameters(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    straight = tmp_path / "straight"
    subprocess.run(_train_cmd(straight), check=True, env=env, capture_output=True)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (killed / "latest").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # mid-run: after its first checkpoint, wherever it is now
    proc.wait()
    step = (killed / "latest").read_text().strip()
    assert step != "step-0000006", "the run finished before it could be killed"
    subprocess.run(_train_cmd(killed, "--resume"), check=True, env=env, capture_output=True)
    a, b = _final_weights(straight), _final_weights(killed)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_ddp_with_two_cpu_processes(tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "model.train",
           "--out", str(out), "--no-compile", "--no-progress", "--set", *TINY_SET, "train.steps=3"]  # fmt: skip
    res = subprocess.run(cmd, env=dict(os.environ, PYTHONPATH=os.getcwd(), OMP_NUM_THREADS="1"),
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    summaries = {
        s["rank"]: s for s in map(json.loads, (line for line in res.stdout.splitlines() if line.startswith('{"steps"')))
    }
    assert set(summaries) == {0, 1}
    assert summaries[0]["parameters_sha256"] == summaries[1]["parameters_sha256"]  # the ranks stayed in step
    assert json.loads((out / "config.json").read_text())["world_size"] == 2
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [1, 2, 3] and all(torch.isfinite(torch.tensor(e["total"])) for e in log)
    assert (out / "step-0000003" / "model.safetensors").is_file()


def test_compiled_parts_match_eager():
    torch._dynamo.reset()
    cfg = tiny_config()
    net = build_model(cfg)
    images, masks = batch_at(RandomCrops(default_image_paths()[:2], 32), cfg, 0, 0, 1)
    with torch.no_grad():
        net.bottleneck.blocks[0].cond.weight.normal_(0, 0.1)  # open the zero-initialised gate
        eager = net(images, masks)["pred"]
        compile_parts(net)
        compiled = net(images, masks)["pred"]
    torch.testing.assert_close(compiled, eager, atol=1e-4, rtol=1e-4)


def test_ctrl_c_is_a_clean_stop_and_the_folder_resumes_or_starts_again(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.getcwd(), OMP_NUM_THREADS="1")
    run = tmp_path / "run"
    cmd = _train_cmd(run, steps=40, every=100)  # no checkpoint of its own before the end
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not ((run / "log.jsonl").is_file() and (run / "log.jsonl").stat().st_size) and time.time() < deadline:
        time.sleep(0.05)  # the first steps have run
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("stopped at step ") and last.endswith(f"continue with --out {run} --resume"), last
    step = int(last.split()[3])
    assert 1 <= step < 40 and (run / "latest").read_text().strip() == f"step-{step:07d}"
    assert all((run / name).is_file() for name in ("loss.png", "samples.png", "curve.png"))  # a stop still draws
    # --resume continues from it (in this process, the same command line); the log holds each step once
    assert train_command.main(_train_cmd(run, "--resume", steps=step + 2, every=100)[3:]) == 0
    steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == step + 2
    starts = json.loads((run / "config.json").read_text())["commands"]  # every start, on record
    assert [s["from_step"] for s in starts] == [0, step] and "--resume" in starts[1]["command"]
    # a new run there is refused, unless asked for
    with pytest.raises(
        FileExistsError, match="already holds a run; continue it with --resume, start it again with --overwrite"
    ):
        train_command.main(_train_cmd(run, steps=2)[3:])
    assert train_command.main(_train_cmd(run, "--overwrite", steps=2)[3:]) == 0
    assert [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()] == [1, 2]


def test_checkpoints_fall_due_by_steps_and_by_minutes_since_the_last_save(monkeypatch):
    import tritonsplat_inpaint.training as t

    clock = [1000.0]
    monkeypatch.setattr(t.time, "monotonic", lambda: clock[0])
    cfg = tiny_config()
    cfg.train.checkpoint_every, cfg.train.checkpoint_minutes = 50, 10.0
    saves = t.Checkpoints(cfg, None, None, 0)
    assert not saves.due(7, last=False) and saves.due(50, last=False) and saves.due(7, last=True)
    clock[0] += 599
    assert not saves.due(8, last=False)
    clock[0] += 2  # 10 minutes and a second after the last save
    assert saves.due(9, last=False)
    cfg.train.checkpoint_minutes = 0  # by steps alone
    assert not saves.due(9, last=False)


def test_a_folder_stopped_before_its_first_step_takes_a_new_run_or_a_resume(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "log.jsonl").write_text("")  # what a stop during start-up leaves
    summary = train(tiny_config(steps=1), run, compile=False, progress=False)
    assert summary["steps"] == 1
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text("{}")
    assert train(tiny_config(steps=1), other, resume=True, compile=False, progress=False)["steps"] == 1


def test_the_gan_path_trains_and_resumes_to_the_uninterrupted_parameters(tmp_path):
    def cfg(steps):  # a constant rate and hole ratio: the first 2 of 4 steps are those of a 2-step run
        return tiny_config(steps=steps, gan=0.1, gan_start=1, schedule="constant", checkpoint_every=2,
                           hole_ratio_start=0.3, hole_ratio_end=0.3)  # fmt: skip

    straight = train(cfg(4), tmp_path / "straight", compile=False, progress=False)
    train(cfg(2), tmp_path / "split", compile=False, progress=False)
    resumed = train(cfg(4), tmp_path / "split", resume=True, compile=False, progress=False)
    assert straight["parameters_sha256"] == resumed["parameters_sha256"]
    a = torch.load(tmp_path / "straight" / "step-0000004" / "state.pt", weights_only=False)
    b = torch.load(tmp_path / "split" / "step-0000004" / "state.pt", weights_only=False)
    assert a["disc"].keys() == b["disc"].keys()
    for key in a["disc"]:
        assert torch.equal(a["disc"][key], b["disc"][key]), key
    log = [json.loads(line) for line in (tmp_path / "straight" / "log.jsonl").read_text().splitlines()]
    assert "gan" not in log[0] and all("gan" in e for e in log[1:])  # from gan_start on


def test_the_paper_preset_builds():
    from tritonsplat_inpaint.config import preset

    cfg = preset("paper")
    with pytest.raises(RuntimeError, match="--dino-weights PATH"):
        build_model(cfg)  # no real DINO here, and the paper preset does not take random weights
    cfg.dino_random = True
    net = build_model(cfg)
    assert net.cfg.image_size == 256 and net.cfg.gaussians_per_patch == 324 and net.dino.dim == 768
    assert len(net.bottleneck.blocks) == 9 and net.fills == []
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    assert 20e6 < trainable < 200e6, trainable


def test_precision_choices_and_their_errors():
    cpu = torch.device("cpu")
    assert autocast_dtype(tiny_config(precision="float32"), cpu) is None
    assert autocast_dtype(tiny_config(precision="bfloat16"), cpu) is torch.bfloat16
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert autocast_dtype(tiny_config(), cpu) is (torch.bfloat16 if native else None)
    with pytest.raises(ValueError, match="train.precision: expected 'auto', 'bfloat16' or 'float32', got 'fp8'"):
        autocast_dtype(tiny_config(precision="fp8"), cpu)


def test_the_network_takes_its_fills_and_keeps_float32_where_bfloat16_would_show():
    torch.manual_seed(0)
    cfg = tiny_config()
    net = build_model(cfg)
    with torch.no_grad():
        net.head.proj.weight.normal_(0, 0.01)  # a non-zero residual and mixing logits
    images, masks = batch_at(RandomCrops(default_image_paths()[:2], 32), cfg, 0, 0, 1)
    fills = fill_batch(net.fills, images * (1 - masks), masks)
    with torch.no_grad():
        plain = net(images, masks)
        given = net(images, masks, fills)
        with torch.autocast("cpu", torch.bfloat16):
            half = net(images, masks, fills)
    torch.testing.assert_close(given["pred"], plain["pred"])
    assert half["pred"].dtype == torch.float32 and half["gaussians"]["means"].dtype == torch.float32
    assert 0 < (half["pred"] - plain["pred"]).abs().max() < 0.02  # bfloat16 features, float32 blend
    with pytest.raises(ValueError, match="fills: expected 2 fills"):
        net(images, masks, fills[:1])


def test_prefetched_batches_are_the_batches_of_their_steps():
    cfg = tiny_config()
    data = RandomCrops(default_image_paths()[:2], 32)
    fills = ["biharmonic", "navier-stokes"]
    ahead = Batches(data, cfg, fills, 0, 1, start=3, prefetch=True)
    plain = Batches(data, cfg, fills, 0, 1, start=3, prefetch=False)
    try:
        for step in (3, 4, 6):  # 6: not the step prefetched (a jump is made on the spot)
            for a, b in zip(ahead(step), plain(step), strict=True):
                for x, y in zip(a if isinstance(a, list) else [a], b if isinstance(b, list) else [b], strict=True):
                    assert torch.equal(x, y), step
    finally:
        ahead.close()


def test_the_learning_curve_is_logged_plotted_and_trimmed_on_resume(tmp_path):
    run = tmp_path / "run"
    train(tiny_config(steps=4, curve_every=2, checkpoint_every=2), run, compile=False, progress=False)
    curve = [json.loads(line) for line in (run / "curve.jsonl").read_text().splitlines()]
    assert [e["step"] for e in curve] == [0, 2, 4] and [e["images_seen"] for e in curve] == [0, 4, 8]
    assert set(curve[0]["gain_db"]) == {"10-20%", "20-40%", "40-60%"}
    assert curve[0]["gain_db"] == {b: 0.0 for b in curve[0]["gain_db"]}  # untrained: its starting blend
    assert any(v != 0.0 for v in curve[-1]["gain_db"].values())  # training moved it
    assert (run / "curve.png").stat().st_size > 10_000
    assert json.loads((run / "config.json").read_text())["precision"] in ("bfloat16", "float32")
    # resumed from step 2 to a 6-step run: the curve keeps one line per step
    (run / "latest").write_text("step-0000002")
    train(tiny_config(steps=6, curve_every=2, checkpoint_every=2), run, resume=True, compile=False, progress=False)
    steps = [json.loads(line)["step"] for line in (run / "curve.jsonl").read_text().splitlines()]
    assert steps == [0, 2, 4, 6]


def test_log_mse_is_minus_a_tenth_of_the_mean_psnr_that_evaluation_reports():
    from tritonsplat.metrics import psnr
    from tritonsplat_inpaint.losses import log_mse

    g = torch.Generator().manual_seed(0)
    target = torch.rand(4, 3, 16, 16, generator=g)
    output = (
        target + torch.randn(4, 3, 16, 16, generator=g) * torch.tensor([0.001, 0.01, 0.03, 0.1])[:, None, None, None]
    )
    output = output.clamp(0, 1)
    assert abs(float(log_mse(output, target)) + float(psnr(output, target).mean()) / 10) < 1e-4
    # its gradient weights the nearly exact crop the most (the one where a residual costs most dB)
    output.requires_grad_(True)
    log_mse(output, target).backward()
    per_crop = output.grad.abs().flatten(1).sum(1)
    assert per_crop.argmax() == 0


def test_compact_moments_halve_the_state_and_resume_close_to_the_uninterrupted_run(tmp_path):
    def cfg(steps, compact=False):
        return tiny_config(steps=steps, schedule="constant", checkpoint_every=2, hole_ratio_start=0.3,
                           hole_ratio_end=0.3, compact_moments=compact)  # fmt: skip

    straight = tmp_path / "straight"
    train(cfg(4), straight, compile=False, progress=False)
    train(cfg(2, True), tmp_path / "split", compile=False, progress=False)
    state = torch.load(tmp_path / "split" / "step-0000002" / "state.pt", weights_only=False)["optimizer"]["state"]
    moments = [v for per in state.values() for k, v in per.items() if k != "step"]
    assert moments and all(v.dtype == torch.bfloat16 for v in moments)
    full = torch.load(straight / "step-0000002" / "state.pt", weights_only=False)["optimizer"]["state"]
    assert all(v.dtype == torch.float32 for per in full.values() for k, v in per.items() if k != "step")
    train(cfg(4, True), tmp_path / "split", resume=True, compile=False, progress=False)
    a, b = (load_file(str(run / "step-0000004" / "model.safetensors")) for run in (straight, tmp_path / "split"))
    moved = max(float((a[k] - b[k]).abs().max()) for k in a)
    # not bit-equal (rounded moments), but no weight is a whole Adam step (about the rate) away
    assert 0 < moved < cfg(4).train.lr


def test_init_starts_a_new_run_from_a_checkpoints_weights_and_refuses_another_dino(tmp_path):
    from tritonsplat_inpaint.errors import DinoMismatch

    first = tmp_path / "first"
    train(tiny_config(steps=2), first, compile=False, progress=False)
    ckpt = first / "step-0000002"
    second = tmp_path / "second"  # at a zero learning rate the weights stay those it started from
    train(tiny_config(steps=1, lr=0.0, weight_decay=0.0), second, compile=False, progress=False, init=ckpt)
    a, b = load_file(str(ckpt / "model.safetensors")), load_file(str(second / "step-0000001" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign"  # the same weights, recorded as trained with another DINO
    foreign.mkdir()
    save_file(a, str(foreign / "model.safetensors"), metadata={"dino_source": "random:seed=9"})
    with pytest.raises(DinoMismatch, match="--init .* trained with DINO random:seed=9, this run has "):
        train(tiny_config(steps=1), tmp_path / "third", compile=False, progress=False, init=foreign)
    with pytest.raises(SystemExit):  # --init starts a new run: with --resume it would be ignored
        train_command.main(["--init", str(first), "--resume", "--out", str(first)])
    # the command line takes the checkpoint's configuration
    assert train_command.main(["--init", str(first), "--out", str(tmp_path / "cli"), "--no-compile", "--no-progress",
                               "--steps", "1"]) == 0  # fmt: skip
    record = json.loads((tmp_path / "cli" / "config.json").read_text())
    assert record["model"]["image_size"] == 32
    # where its weights came from stays on record, through a resume
    assert record["init"]["checkpoint"] == str(ckpt) and record["init"]["step"] == 2
    assert train_command.main(["--out", str(tmp_path / "cli"), "--resume", "--no-compile", "--no-progress",
                               "--steps", "2"]) == 0  # fmt: skip
    assert json.loads((tmp_path / "cli" / "config.json").read_text())["init"] == record["init"]


def test_a_chunk_of_minutes_ends_with_a_checkpoint_and_pictures_and_resumes(tmp_path, capsys):
    run = tmp_path / "run"
    summary = train(tiny_config(steps=50), run, compile=False, progress=False, minutes=1e-6)  # after one step
    assert summary["chunk_minutes"] == 1e-6 and "interrupted" not in summary and summary["steps"] == 1
    assert (run / "latest").read_text().strip() == "step-0000001"
    assert all((run / name).is_file() for name in ("loss.png", "samples.png"))
    assert f"continue with --out {run} --resume" in capsys.readouterr().err
    assert train(tiny_config(steps=3), run, resume=True, compile=False, progress=False)["steps"] == 3
