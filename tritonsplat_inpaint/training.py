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
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from . import checkpoint
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
        progress = min(step / max(t.steps - 1, 1), 1.0)
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


def parameters_digest(net: InpaintNet) -> str:
    """A SHA-256 of the trainable weights: under DDP every rank must end with the same."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(checkpoint.trainable_state(net).items()):
        digest.update(name.encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def ckpt_step(ckpt: Path | None) -> int:
    """The step of a checkpoint folder (`step-0000123`), 0 for none."""
    return int(ckpt.name.removeprefix("step-")) if ckpt is not None else 0


def holds_run(run_dir: Path) -> bool:
    """Whether `run_dir` holds a run that a new one would mix with: a checkpoint, or a log
    with at least one step (a run stopped before its first step holds none)."""
    log = run_dir / "log.jsonl"
    return checkpoint.latest(run_dir) is not None or (log.is_file() and log.stat().st_size > 0)


def clear_run(run_dir: Path) -> None:
    """Remove a run's checkpoints and log from `run_dir` (for `--overwrite`)."""
    import shutil

    for path in [*run_dir.glob("step-*"), *run_dir.glob(".step-*.tmp")]:
        shutil.rmtree(path, ignore_errors=True)
    for name in ("latest", "log.jsonl", "curve.jsonl", "curve.png", "loss.png", "samples.png", "config.json"):
        (run_dir / name).unlink(missing_ok=True)


def _trim_log(run_dir: Path, step: int) -> None:
    """Keep only the log and curve lines of steps <= `step`: a resumed run redoes the
    steps after its checkpoint and logs them again."""
    for log in (run_dir / "log.jsonl", run_dir / "curve.jsonl"):
        if log.is_file():
            lines = [line for line in log.read_text().splitlines() if line and json.loads(line)["step"] <= step]
            log.write_text("".join(line + "\n" for line in lines))


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line] if path.is_file() else []


class _StopFlag:
    """Ctrl-C (SIGINT) asks the loop to stop after the step in flight, so that no
    optimiser step is cut in half; a second Ctrl-C stops at once. Single-process runs
    only: under DDP every rank must stop at the same step, so SIGINT keeps its default."""

    def __init__(self, enabled: bool):
        self.requested = False
        self.previous = None
        if enabled:
            self.previous = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nCtrl-C: stopping after this step (again to stop at once)", file=sys.stderr, flush=True)

    def restore(self) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def train(
    cfg: Config, run_dir: Path, resume: bool = False, compile: bool = True, progress: bool = True,
    command: str | None = None,
) -> dict:  # fmt: skip
    """Train `cfg` in `run_dir` (new, or `resume` from its latest checkpoint) and return
    a summary. Ctrl-C stops after the step in flight with a checkpoint of it
    (`summary["interrupted"]`); a run stopped before its first step leaves no run behind."""
    if not resume and holds_run(run_dir):
        raise FileExistsError(
            f"--out: {run_dir} already holds a run; continue it with --resume, start it again with --overwrite, "
            "or choose another --out (a new run there would mix its log and checkpoints with the old one's)"
        )
    rank, world, device = _setup_distributed()
    torch.manual_seed(cfg.train.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    layout = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
    net = build_model(cfg).to(device, memory_format=layout)
    ckpt = checkpoint.latest(run_dir) if resume else None
    if resume and ckpt is None and rank == 0:
        print(f"--resume: no checkpoint in {run_dir} yet: starting at step 0", file=sys.stderr)
    if rank == 0:
        print(f"configuration ({'resumed' if ckpt else 'new'} run in {run_dir}, dino: {net.dino_source}):")
        print(cfg.dumps())
        precision = str(autocast_dtype(cfg, device) or torch.float32).removeprefix("torch.")
        print(f"precision: {precision} for the convolutions (train.precision={cfg.train.precision!r}), "
              "float32 for the rasterizer, the fills and the losses")  # fmt: skip
        record = cfg.to_dict() | {"dino_source": net.dino_source, "world_size": world, "precision": precision}
        if command is not None:  # the command that made the run (from its first start), and every start
            previous = run_dir / "config.json"
            old = json.loads(previous.read_text()) if resume and previous.is_file() else {}
            record["command"] = old.get("command") or command
            started = {"command": command, "from_step": ckpt_step(ckpt), "date": time.strftime("%Y-%m-%d %H:%M %Z")}
            record["commands"] = [*old.get("commands", []), started]
        (run_dir / "config.json").write_text(json.dumps(record, indent=1) + "\n")
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(param_groups(net, cfg), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    features = FeatureLoss().to(device) if cfg.train.feature_loss else None
    disc = d_opt = None
    if cfg.train.gan > 0:
        disc = PatchDiscriminator().to(device)
        d_opt = torch.optim.AdamW(disc.parameters(), lr=cfg.train.lr, betas=(0.5, 0.999))
    start = 0
    if ckpt is not None:
        checkpoint.load_weights(net, ckpt)
        state = checkpoint.load_state(ckpt)
        opt.load_state_dict(state["optimizer"])
        if disc is not None and "disc" in state:
            disc.load_state_dict(state["disc"])
            d_opt.load_state_dict(state["disc_optimizer"])
        checkpoint.set_rng_state(state["rng"])
        start = state["step"]
    if rank == 0:
        _trim_log(run_dir, start)
    if compile:
        compile_parts(net)
    model = torch.nn.parallel.DistributedDataParallel(net) if world > 1 else net
    dtype = autocast_dtype(cfg, device)
    train_paths, _ = data_paths(cfg)
    dataset = RandomCrops(train_paths, cfg.model.image_size, seed=cfg.train.seed)
    batches = Batches(dataset, cfg, net.fills, rank, world, start, cfg.train.prefetch)
    curve = None
    if rank == 0 and cfg.train.curve_every and net.fills:
        from .evaluation import HeldOut

        curve = HeldOut(cfg, cfg.train.curve_per_image)
        if start == 0:
            _log_curve(run_dir, curve, net, 0, 0)
    from tqdm import tqdm

    bar = tqdm(range(start, cfg.train.steps), initial=start, total=cfg.train.steps, desc="train",
               disable=not progress or rank != 0, mininterval=1.0)  # fmt: skip
    # the complete images' DINO features, cached when crops come round again and are used
    cache = FeatureCache() if cfg.train.crop_pool and cfg.train.dino_cosine and net.dino is not None else None
    tic, seen = time.perf_counter(), 0
    done = saved = start

    def save():
        state = {"optimizer": opt.state_dict(), "step": done, "rng": checkpoint.rng_state()}
        if disc is not None:
            state |= {"disc": disc.state_dict(), "disc_optimizer": d_opt.state_dict()}
        checkpoint.save(run_dir, done, net, cfg, state)

    stop = _StopFlag(enabled=world == 1)
    log = None
    try:
        for step in bar:
            images, masks, fills = batches(step)
            images = images.to(device, memory_format=layout)
            masks, fills = masks.to(device), [f.to(device) for f in fills]
            for group in opt.param_groups:
                group["lr"] = learning_rate(cfg, step) * group["lr_scale"]
            complete = None
            if cache is not None:
                complete = cache(net.dino, images, crop_indices(cfg, step, rank, world))
            out, parts = optimiser_step(model, opt, params, cfg, (images, masks, fills), dtype, disc, step, complete,
                                        features)  # fmt: skip
            if disc is not None and step >= cfg.train.gan_start:
                d_loss = hinge_d_loss(disc(images, masks), disc(out["output"].detach(), masks))
                d_opt.zero_grad(set_to_none=True)
                d_loss.backward()
                d_opt.step()
            seen += images.shape[0] * world
            done = step + 1
            if rank == 0 and (done % cfg.train.log_every == 0 or done == cfg.train.steps or stop.requested):
                rate = seen / (time.perf_counter() - tic)
                entry = {"step": done, "images_per_s": rate, "lr": learning_rate(cfg, step)}
                entry |= {k: float(v.detach()) for k, v in parts.items()}
                if log is None:
                    log = open(run_dir / "log.jsonl", "a")
                log.write(json.dumps(entry) + "\n")
                log.flush()
                bar.set_postfix(loss=f"{entry['total']:.4f}", img_s=f"{rate:.1f}", refresh=False)
            last = done == cfg.train.steps or stop.requested
            if curve is not None and (done % cfg.train.curve_every == 0 or last):
                _log_curve(run_dir, curve, net, done, done * cfg.train.batch_size * world)
            if rank == 0 and (done % cfg.train.checkpoint_every == 0 or done == cfg.train.steps or stop.requested):
                save()
                saved = done
            if stop.requested:
                break
    finally:
        stop.restore()
        batches.close()
        bar.close()
        if log is not None:
            log.close()
    summary = {"steps": done, "run_dir": str(run_dir), "dino_source": net.dino_source, "rank": rank,
               "parameters_sha256": parameters_digest(net)}  # fmt: skip
    if stop.requested:
        summary["interrupted"] = True
        if rank == 0:
            print(f"stopped at step {done} of {cfg.train.steps} (checkpoint step-{saved:07d}); continue with "
                  f"--out {run_dir} --resume", file=sys.stderr)  # fmt: skip
        return summary
    if cache is not None:
        summary["dino_cache"] = {"hits": cache.hits, "misses": cache.misses}
    if rank == 0 and cfg.train.steps > start:
        _plots(run_dir, net, cfg)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return summary


def _log_curve(run_dir: Path, held, net: InpaintNet, step: int, seen: int) -> None:
    """One point of the learning curve: held-out PSNR gain over the starting blend, per
    bucket, appended to `curve.jsonl` and plotted to `curve.png`."""
    entry = {"step": step, "images_seen": seen, "gain_db": held.gains(net), "crops": len(held.images)}
    with open(run_dir / "curve.jsonl", "a") as f:
        f.write(json.dumps(entry) + "\n")
    plot_curve(_read_jsonl(run_dir / "curve.jsonl"), run_dir / "curve.png", net.dino_source)


def plot_curve(entries: list[dict], path: Path, dino_source: str) -> None:
    """The learning curve: gain over the starting blend (dB) per bucket against images seen."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    seen = [e["images_seen"] for e in entries]
    for bucket in entries[0]["gain_db"] if entries else []:
        ax.plot(seen, [e["gain_db"][bucket] for e in entries], marker=".", label=f"holes {bucket}")
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xlabel("training images seen")
    ax.set_ylabel("held-out PSNR: model - starting blend (dB)")
    crops = entries[-1]["crops"] if entries else 0
    ax.set_title(f"learning curve ({crops} held-out crops per bucket; dino: {dino_source})", fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plots(run_dir: Path, net: InpaintNet, cfg: Config) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .data import fixed_crops
    from .masks import evaluation_masks

    entries = _read_jsonl(run_dir / "log.jsonl")
    if entries:
        fig, ax = plt.subplots(figsize=(7, 4))
        for key in sorted(k for k in entries[0] if k not in ("step", "images_per_s", "lr")):
            ax.plot([e["step"] for e in entries], [e.get(key, np.nan) for e in entries], label=key)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_yscale("symlog", linthresh=1e-2)  # log_mse is negative
        ax.legend()
        ax.set_title(f"training losses (dino: {net.dino_source})")
        fig.tight_layout()
        fig.savefig(run_dir / "loss.png", dpi=110)
        plt.close(fig)
    _, held_out = data_paths(cfg)
    images = fixed_crops(held_out, cfg.model.image_size, 1)[:4]
    masks = torch.from_numpy(evaluation_masks(cfg.model.image_size, cfg.model.image_size, 2)["20-40%"])
    masks = masks[:, None].repeat(3, 1, 1, 1)[: len(images)]
    device = next(net.parameters()).device
    net.eval()
    with torch.no_grad():
        out = net(images.to(device), masks.to(device))["output"].cpu()
    rows = [images * (1 - masks) + masks * 0.5, out, images]
    fig, axes = plt.subplots(len(images), 3, figsize=(7.5, 2.5 * len(images)), squeeze=False)
    for i in range(len(images)):
        for j, (title, batch) in enumerate(zip(("masked input", "output", "truth"), rows, strict=True)):
            axes[i, j].imshow(batch[i].permute(1, 2, 0).clamp(0, 1).numpy())
            axes[i, j].axis("off")
            if i == 0:
                axes[i, j].set_title(title)
    fig.tight_layout()
    fig.savefig(run_dir / "samples.png", dpi=100)
    plt.close(fig)
