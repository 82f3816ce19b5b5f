"""Checkpoints that survive a kill at any moment.

A checkpoint is a folder `step-XXXXXXX/` with the trainable weights (`model.safetensors`:
the frozen DINO is rebuilt from the configuration, not stored), the optimiser, step and
random-generator states (`state.pt`) and the configuration (`config.json`). It is written
under a temporary name and renamed into place, and only then does the `latest` file,
itself replaced atomically, point at it: a run killed while saving resumes from the
previous checkpoint, losing only the steps since.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .config import Config


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
    save_file(trainable_state(model), str(tmp / "model.safetensors"), metadata={"step": str(step)})
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
