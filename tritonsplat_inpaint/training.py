"""The training loop: batches and masks as pure functions of (seed, rank, step), the loss
terms, the learning-rate schedule, atomic checkpoints, and a clean stop on Ctrl-C.

A run folder holds `config.json` (the configuration in full, the DINO source, the
precision and the command), `log.jsonl` (one line per logged step), `curve.jsonl` and
`curve.png` (the learning curve: held-out PSNR of the model minus its starting blend, per
bucket, against images seen), `loss.png`, `samples.png` (masked input / output / truth on
held-out images) and checkpoints (`step-*/`; `latest` names the newest). Every batch
and mask is a function of (seed, rank, step), so a resumed run sees exactly the data the
uninterrupted run would have.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from . import checkpoint, runs
from .classical import fill_batch
from .config import Config
from .data import RandomCrops, data_paths
from .dino import FeatureCache
from .losses import (
    FeatureLoss,
    PatchDiscriminator,
    dino_cosine,
    hinge_d_loss,
    hinge_g_loss,
    log_mse,
    masked_l1,
    masked_l2,
    structure_loss,
)
from .masks import curriculum_ratio, random_mask
from .network import InpaintNet, build_model
from .plots import plot_curve, run_pictures
from .runs import clear_run, holds_run  # noqa: F401 - the command line's, kept here by name


def compile_parts(net: InpaintNet) -> None:
    """torch.compile the DINO adapter and the AdaLN blocks (the rasterizer is a custom op
    that compiled code calls as is)."""
    if net.adapter is not None:
        net.adapter.compile()
    for block in net.bottleneck.blocks:
        block.compile()


def crop_indices(cfg: Config, step: int, rank: int, world: int) -> list[int]:
    """The dataset indices of `step` on `rank`: every crop fresh, or with `crop_pool` N,
    cycling through N fixed crops (so that their DINO features can be cached)."""
    b = cfg.train.batch_size
    first = (step * world + rank) * b
    pool = cfg.train.crop_pool
    return [(first + i) % pool if pool else first + i for i in range(b)]


def autocast_dtype(cfg: Config, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of `train.precision` on `device` (None: plain float32). "auto"
    takes bfloat16 only where it is computed natively: on the CPU, AVX-512 BF16 or AMX
    (elsewhere oneDNN emulates it, slower than float32); on CUDA, where supported."""
    choice = cfg.train.precision
    if choice not in ("auto", "bfloat16", "float32"):
        raise ValueError(f"train.precision: expected 'auto', 'bfloat16' or 'float32', got {choice!r}")
    if choice == "float32":
        return None
    if choice == "bfloat16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return torch.bfloat16 if device.type == "cpu" and native else None


def batch_at(dataset: RandomCrops, cfg: Config, step: int, rank: int, world: int):
    """The images and masks of `step` on `rank`: a pure function of (seed, rank, step)."""
    size = cfg.model.image_size
    images = torch.stack([dataset[i] for i in crop_indices(cfg, step, rank, world)])
    rng = np.random.default_rng([cfg.train.seed, rank, step])
    masks = np.stack([
        random_mask(size, size, curriculum_ratio(step, cfg.train.steps, cfg.train.hole_ratio_start,
                                                 cfg.train.hole_ratio_end, rng), rng)
        for _ in range(len(images))
    ])  # fmt: skip
    return images, torch.from_numpy(masks)[:, None]


class Batches:
    """The batches of steps `start`, `start + 1`, ... with their classical fills (the
    network's inputs, `fill_batch` of the masked images). With `prefetch`, the next step's
    batch is made on a thread while the current step trains: the fills (OpenCV, SciPy)
    release the GIL, so they overlap the network's forward and backward. Either way each
    batch is the same pure function of (seed, rank, step)."""

    def __init__(self, dataset: RandomCrops, cfg: Config, fills: list[str], rank: int, world: int, start: int,
                 prefetch: bool):  # fmt: skip
        self.dataset, self.cfg, self.fills, self.rank, self.world = dataset, cfg, fills, rank, world
        self.pool = None
        if prefetch:
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(1, thread_name_prefix="batches")
        self.pending = (start, self.pool.submit(self.make, start)) if self.pool else None

    def make(self, step: int):
        images, masks = batch_at(self.dataset, self.cfg, step, self.rank, self.world)
        return images, masks, fill_batch(self.fills, images * (1 - masks), masks)

    def __call__(self, step: int):
        if self.pool is None:
            return self.make(step)
        ready, future = self.pending
        batch = future.result() if ready == step else self.make(step)
        self.pending = (step + 1, self.pool.submit(self.make, step + 1))
        return batch

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def param_groups(net: InpaintNet, cfg: Config) -> list[dict]:
    """The head's last layer at `head_lr` times the rate of the rest. It starts at zero
    and has a fan-in of thousands: at the full rate Adam's per-weight steps on noisy
    gradients random-walk its output (seen: 300 steps made the mixing logits noise with a
    standard deviation of 1-2, worse than the prior blend even on training images)."""
    head = [p for n, p in net.named_parameters() if p.requires_grad and n.startswith("head.")]
    ids = {id(p) for p in head}
    rest = [p for p in net.parameters() if p.requires_grad and id(p) not in ids]
    return [{"params": rest, "lr_scale": 1.0}, {"params": head, "lr_scale": cfg.train.head_lr}]


def learning_rate(cfg: Config, step: int) -> float:
    """The learning rate at `step`, a pure function of the step so that a resumed run
    follows the same schedule."""
    t = cfg.train
    if t.schedule == "constant":
        return t.lr
    if t.schedule == "cosine":
        # A run at a constant rate can be resumed into its decay: `decay_start` is where it begins.
        if t.decay_start and not 0 < t.decay_start < t.steps - 1:
            raise ValueError(f"train.decay_start: expected a step from 0 to train.steps - 2 ({t.steps - 2}) for the "
                             f"cosine to fall over, got {t.decay_start}")  # fmt: skip
        progress = min(max(step - t.decay_start, 0) / max(t.steps - 1 - t.decay_start, 1), 1.0)
        return t.lr * (t.lr_final + (1 - t.lr_final) * 0.5 * (1 + math.cos(math.pi * progress)))
    raise ValueError(f"train.schedule: expected 'constant' or 'cosine', got {t.schedule!r}")


def losses(
    net, out, images, masks, cfg: Config, disc=None, step: int = 0, complete: torch.Tensor | None = None,
    features: FeatureLoss | None = None,
) -> dict[str, torch.Tensor]:
    """The loss terms and their total. `complete`: the complete images' DINO features
    when already known (cached), else computed here. `features`: the frozen network of
    the feature loss (`train.feature_loss`)."""
    t = cfg.train
    parts = {
        "l1": masked_l1(out["pred"], images, masks, t.l1_hole, t.l1_valid),
        "structure": t.perceptual * structure_loss(out["output"], images),
    }
    if t.log_mse:
        parts["log_mse"] = t.log_mse * log_mse(out["output"], images)
    if t.feature_loss and features is not None:
        parts["features"] = t.feature_loss * features(out["output"].float(), images.float())
    if t.l2_hole or t.l2_valid:
        parts["l2"] = masked_l2(out["pred"], images, masks, t.l2_hole, t.l2_valid)
    if out["dino_masked"] is not None and t.dino_cosine:
        if complete is None:
            complete = (net.module if hasattr(net, "module") else net).dino(images)
        parts["dino"] = t.dino_cosine * dino_cosine(out["cond"], complete)
    if disc is not None and step >= t.gan_start:
        parts["gan"] = t.gan * hinge_g_loss(disc(out["output"], masks))
    parts["total"] = sum(parts.values())
    return parts


def optimiser_step(model, opt, params, cfg: Config, batch, dtype: torch.dtype | None, disc=None, step: int = 0,
                   complete: torch.Tensor | None = None, features: FeatureLoss | None = None,
                   ) -> tuple[dict, dict]:  # fmt: skip
    """One step of the network's optimiser on `batch` (images, masks, fills): the forward
    under autocast to `dtype` (None: float32), the losses in float32, the backward, the
    clipped update. Returns (the network's outputs, the loss terms)."""
    images, masks, fills = batch
    model.train()
    with torch.autocast(images.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        out = model(images, masks, fills)
    parts = losses(model, out, images, masks, cfg, disc, step, complete, features)
    opt.zero_grad(set_to_none=True)
    parts["total"].backward()
    torch.nn.utils.clip_grad_norm_(params, cfg.train.grad_clip)
    opt.step()
    return out, parts


def _setup_distributed() -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, torch.device("cuda" if torch.cuda.is_available() else "cpu")
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    rank = dist.get_rank()
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")


def memory_layout(cfg: Config) -> torch.memory_format:
    """The activations' layout: channels-last (`train.channels_last`), else contiguous."""
    return torch.channels_last if cfg.train.channels_last else torch.contiguous_format


def parameters_digest(net: InpaintNet) -> str:
    """A SHA-256 of the trainable weights: under DDP every rank must end with the same."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(checkpoint.trainable_state(net).items()):
        digest.update(name.encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def compact_moments(state: dict) -> dict:
    """An optimiser's state dict with its per-parameter moments (Adam's averages) in
    bfloat16: half the checkpoint, so that a run's checkpoint stays small enough to keep in
    the repository beside the release and still travel to a GPU machine. On loading,
    `Optimizer.load_state_dict` casts them back to the parameters' float32. Their relative
    rounding (2^-9) moves the next Adam step by under a percent; the steps after drift
    apart as any perturbed run does (a test: no weight a whole step away after two)."""
    moments = {i: {k: v.to(torch.bfloat16) if k != "step" and torch.is_tensor(v) and v.is_floating_point() else v
                   for k, v in per.items()} for i, per in state["state"].items()}  # fmt: skip
    return {"state": moments, "param_groups": state["param_groups"]}


@dataclass
class Trainee:
    """What a run trains and how: the network, its optimiser and the parameters it steps,
    the PatchGAN and its optimiser (with `train.gan`), the feature loss's frozen network
    (with `train.feature_loss`)."""

    net: InpaintNet
    opt: torch.optim.Optimizer
    params: list
    disc: PatchDiscriminator | None = None
    d_opt: torch.optim.Optimizer | None = None
    features: FeatureLoss | None = None

    def state(self, step: int, compact: bool = False) -> dict:
        """What a checkpoint holds beside the weights; `compact`: the optimisers' moments in
        bfloat16 (`compact_moments`)."""
        shrink = compact_moments if compact else (lambda state: state)
        state = {"optimizer": shrink(self.opt.state_dict()), "step": step, "rng": checkpoint.rng_state()}
        if self.disc is not None:
            state |= {"disc": self.disc.state_dict(), "disc_optimizer": shrink(self.d_opt.state_dict())}
        return state

    def restore(self, ckpt: Path) -> int:
        """Weights, optimiser states and random state from `ckpt`; its step."""
        checkpoint.load_weights(self.net, ckpt)
        state = checkpoint.load_state(ckpt)
        self.opt.load_state_dict(state["optimizer"])
        if self.disc is not None and "disc" in state:
            self.disc.load_state_dict(state["disc"])
            self.d_opt.load_state_dict(state["disc_optimizer"])
        checkpoint.set_rng_state(state["rng"])
        return state["step"]


def build_trainee(cfg: Config, device: torch.device, pretrained: bool = True) -> Trainee:
    net = build_model(cfg, pretrained).to(device, memory_format=memory_layout(cfg))
    opt = torch.optim.AdamW(param_groups(net, cfg), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    trainee = Trainee(net, opt, [p for p in net.parameters() if p.requires_grad])
    if cfg.train.feature_loss:
        trainee.features = FeatureLoss().to(device)
    if cfg.train.gan > 0:
        trainee.disc = PatchDiscriminator().to(device)
        trainee.d_opt = torch.optim.AdamW(trainee.disc.parameters(), lr=cfg.train.lr, betas=(0.5, 0.999))
    return trainee


def _announce(cfg: Config, run_dir: Path, net: InpaintNet, ckpt: Path | None, world: int, device: torch.device,
              command: str | None, init: Path | None) -> None:  # fmt: skip
    """Print the configuration and write the run's record (`config.json`)."""
    print(f"configuration ({'resumed' if ckpt else 'new'} run in {run_dir}, dino: {net.dino_source}):")
    print(cfg.dumps())
    precision = str(autocast_dtype(cfg, device) or torch.float32).removeprefix("torch.")
    print(f"precision: {precision} for the convolutions (train.precision={cfg.train.precision!r}), "
          "float32 for the rasterizer, the fills and the losses")  # fmt: skip
    record = cfg.to_dict() | {"dino_source": net.dino_source, "world_size": world, "precision": precision}
    if getattr(net, "dino_provenance", None):
        record["dino_provenance"] = net.dino_provenance
    runs.write_record(run_dir, record, command, ckpt, init)


class Checkpoints:
    """When to save: every `train.checkpoint_every` steps, and at the latest
    `train.checkpoint_minutes` after the last save (so that a long run loses at most that
    much when its machine stops), at the last step and at a stop."""

    def __init__(self, cfg: Config, run_dir: Path, trainee: Trainee, step: int):
        self.cfg, self.run_dir, self.trainee = cfg, run_dir, trainee
        self.at = time.monotonic()

    def due(self, done: int, last: bool) -> bool:
        t = self.cfg.train
        late = t.checkpoint_minutes and time.monotonic() - self.at >= 60 * t.checkpoint_minutes
        return last or done % t.checkpoint_every == 0 or bool(late)

    def save(self, done: int) -> None:
        checkpoint.save(self.run_dir, done, self.trainee.net, self.cfg,
                        self.trainee.state(done, self.cfg.train.compact_moments))  # fmt: skip
        self.at = time.monotonic()


class StepLog:
    """`log.jsonl`: the step, images per second, learning rate and every loss term, every
    `train.log_every` steps and at the last; the progress bar's figures."""

    def __init__(self, run_dir: Path):
        self.path, self.file = run_dir / "log.jsonl", None
        self.tic, self.seen = time.perf_counter(), 0

    def write(self, cfg: Config, done: int, parts: dict, bar) -> None:
        rate = self.seen / (time.perf_counter() - self.tic)
        entry = {"step": done, "images_per_s": rate, "lr": learning_rate(cfg, done - 1)}
        entry |= {k: float(v.detach()) for k, v in parts.items()}
        if self.file is None:
            self.file = open(self.path, "a")
        self.file.write(json.dumps(entry) + "\n")
        self.file.flush()
        bar.set_postfix(loss=f"{entry['total']:.4f}", img_s=f"{rate:.1f}", refresh=False)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def train_step(trainee: Trainee, model, cfg: Config, batch, dtype, step: int, complete=None) -> dict:
    """One step: the network's update at the step's learning rate, then the PatchGAN's
    (when it is on and past `train.gan_start`). Returns the loss terms."""
    for group in trainee.opt.param_groups:
        group["lr"] = learning_rate(cfg, step) * group["lr_scale"]
    out, parts = optimiser_step(model, trainee.opt, trainee.params, cfg, batch, dtype, trainee.disc, step, complete,
                                trainee.features)  # fmt: skip
    if trainee.disc is not None and step >= cfg.train.gan_start:
        images, masks, _ = batch
        d_loss = hinge_d_loss(trainee.disc(images, masks), trainee.disc(out["output"].detach(), masks))
        trainee.d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        trainee.d_opt.step()
    return parts


def init_from(net: InpaintNet, ckpt: Path) -> None:
    """A new run's weights from checkpoint `ckpt` (a fresh optimiser): refused when it was
    trained with another DINO than `net`'s, since the conditioning would then change."""
    from .errors import DinoMismatch

    trained = checkpoint.trained_dino(ckpt)
    if trained not in (None, net.dino_source):
        raise DinoMismatch(f"--init {ckpt}: trained with DINO {trained}, this run has {net.dino_source}")
    checkpoint.load_weights(net, ckpt)


def train(
    cfg: Config, run_dir: Path, resume: bool = False, compile: bool = True, progress: bool = True,
    command: str | None = None, init: Path | None = None, minutes: float | None = None,
) -> dict:  # fmt: skip
    """Train `cfg` in `run_dir` (new, or `resume` from its latest checkpoint) and return
    a summary. A new run starts from `init`'s weights where given (`init_from`). Ctrl-C
    stops after the step in flight with a checkpoint of it and the run's pictures
    (`summary["interrupted"]`); a run stopped before its first step leaves no run
    behind. `minutes`: a chunk of at most that many minutes counted from the first step
    (compilation, which happens there, included), ended as a Ctrl-C is (checkpoint and
    pictures) but not as an interruption (`summary["chunk_minutes"]`)."""
    runs.refuse_mixing(run_dir, resume)
    rank, world, device = _setup_distributed()
    torch.manual_seed(cfg.train.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt = checkpoint.latest(run_dir) if resume else None
    # weights about to come from a checkpoint: a pretrained encoder's own are not read
    trainee = build_trainee(cfg, device, pretrained=ckpt is None and init is None)
    if resume and ckpt is None and rank == 0:
        print(f"--resume: no checkpoint in {run_dir} yet: starting at step 0", file=sys.stderr)
    if init is not None and ckpt is None:
        init_from(trainee.net, init)  # before the run's record is written: a refused start leaves none
    if rank == 0:
        _announce(cfg, run_dir, trainee.net, ckpt, world, device, command, init)
    start = trainee.restore(ckpt) if ckpt is not None else 0
    if rank == 0:
        runs.trim_logs(run_dir, start)
    if compile:
        compile_parts(trainee.net)
    done, stopped, cache = _loop(cfg, run_dir, trainee, start, rank, world, device, progress, minutes)
    net = trainee.net
    summary = {"steps": done, "run_dir": str(run_dir), "dino_source": net.dino_source, "rank": rank,
               "parameters_sha256": parameters_digest(net)}  # fmt: skip
    if rank == 0 and done > start:
        run_pictures(run_dir, net, cfg)
    if stopped == "time":
        summary["chunk_minutes"] = minutes
        if rank == 0:
            print(f"chunk of {minutes:g} minutes done at step {done} of {cfg.train.steps} (checkpoint "
                  f"step-{done:07d}, pictures written); continue with --out {run_dir} --resume", file=sys.stderr)
    elif stopped:
        summary["interrupted"] = True
        if rank == 0:
            print(f"stopped at step {done} of {cfg.train.steps} (checkpoint step-{done:07d}, pictures written); "
                  f"continue with --out {run_dir} --resume", file=sys.stderr)  # fmt: skip
        return summary
    if cache is not None:
        summary["dino_cache"] = {"hits": cache.hits, "misses": cache.misses}
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return summary


def _loop(cfg: Config, run_dir: Path, trainee: Trainee, start: int, rank: int, world: int, device: torch.device,
          progress: bool, minutes: float | None = None) -> tuple[int, str | None, FeatureCache | None]:  # fmt: skip
    """The steps from `start` to `train.steps`, or to a Ctrl-C, or to `minutes` of training:
    each step's batch, update, log line, learning-curve point and checkpoint as they fall
    due. Returns (the steps done, why it stopped early: "ctrl-c", "time" or None, the DINO
    feature cache)."""
    from tqdm import tqdm

    net = trainee.net
    model = torch.nn.parallel.DistributedDataParallel(net) if world > 1 else net
    layout = memory_layout(cfg)
    dtype = autocast_dtype(cfg, device)
    dataset = RandomCrops(data_paths(cfg)[0], cfg.model.image_size, seed=cfg.train.seed)
    batches = Batches(dataset, cfg, net.fills, rank, world, start, cfg.train.prefetch)
    curve = _curve(cfg, run_dir, net, start) if rank == 0 else None
    # the complete images' DINO features, cached when crops come round again and are used
    cache = FeatureCache() if cfg.train.crop_pool and cfg.train.dino_cosine and net.dino is not None else None
    bar = tqdm(range(start, cfg.train.steps), initial=start, total=cfg.train.steps, desc="train",
               disable=not progress or rank != 0, mininterval=1.0)  # fmt: skip
    log, saves, stop = StepLog(run_dir), Checkpoints(cfg, run_dir, trainee, start), runs.StopFlag(world == 1)
    deadline = time.monotonic() + 60 * minutes if minutes else None
    done, timed_out = start, False
    try:
        for step in bar:
            images, masks, fills = batches(step)
            batch = (images.to(device, memory_format=layout), masks.to(device), [f.to(device) for f in fills])
            complete = cache(net.dino, batch[0], crop_indices(cfg, step, rank, world)) if cache else None
            parts = train_step(trainee, model, cfg, batch, dtype, step, complete)
            log.seen += images.shape[0] * world
            done = step + 1
            timed_out = deadline is not None and _all_ranks_agree(time.monotonic() >= deadline, world, device)
            last = done == cfg.train.steps or stop.requested or timed_out
            if rank == 0 and (done % cfg.train.log_every == 0 or last):
                log.write(cfg, done, parts, bar)
            if curve is not None and (done % cfg.train.curve_every == 0 or last):
                _log_curve(run_dir, curve, net, done, done * cfg.train.batch_size * world)
            if rank == 0 and saves.due(done, last):
                saves.save(done)
            if stop.requested or timed_out:
                break
    finally:
        stop.restore()
        batches.close()
        bar.close()
        log.close()
    return done, "ctrl-c" if stop.requested else "time" if timed_out else None, cache


def _all_ranks_agree(flag: bool, world: int, device: torch.device) -> bool:
    """Rank 0's `flag` on every rank (each rank's clock differs; all must stop at one step)."""
    if world == 1:
        return flag
    t = torch.tensor([float(flag)], device=device)
    dist.broadcast(t, 0)
    return bool(t.item())


def _curve(cfg: Config, run_dir: Path, net: InpaintNet, start: int):
    """The held-out crops of the learning curve (None when it is off), with its first
    point, the starting blend's, logged at step 0."""
    if not (cfg.train.curve_every and net.fills):
        return None
    from .evaluation import HeldOut

    curve = HeldOut(cfg, cfg.train.curve_per_image, methods=net.fills)
    if start == 0:
        _log_curve(run_dir, curve, net, 0, 0)
    return curve


def _log_curve(run_dir: Path, held, net: InpaintNet, step: int, seen: int) -> None:
    """One point of the learning curve: held-out PSNR gain over the starting blend, per
    bucket, appended to `curve.jsonl` and plotted to `curve.png`."""
    entry = {"step": step, "images_seen": seen, "gain_db": held.gains(net), "crops": len(held.images)}
    with open(run_dir / "curve.jsonl", "a") as f:
        f.write(json.dumps(entry) + "\n")
    plot_curve(runs.read_jsonl(run_dir / "curve.jsonl"), run_dir / "curve.png", net.dino_source)
