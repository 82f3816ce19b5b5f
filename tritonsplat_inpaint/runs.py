"""A run folder's housekeeping: whether it holds a run, clearing it, the record of every
start in `config.json`, the logs trimmed to a resumed checkpoint, and a clean stop on
Ctrl-C. The layout itself is described in `training.py`."""

from __future__ import annotations

import json
import shutil
import signal
import sys
import time
from pathlib import Path

from . import checkpoint

# what a run writes beside its checkpoints (`clear_run` removes them all)
RUN_FILES = ("latest", "log.jsonl", "curve.jsonl", "curve.png", "loss.png", "samples.png", "config.json")


def ckpt_step(ckpt: Path | None) -> int:
    """The step of a checkpoint folder (`step-0000123`), 0 for none."""
    return int(ckpt.name.removeprefix("step-")) if ckpt is not None else 0


def holds_run(run_dir: Path) -> bool:
    """Whether `run_dir` holds a run that a new one would mix with: a checkpoint, or a log
    with at least one step (a run stopped before its first step holds none)."""
    log = run_dir / "log.jsonl"
    return checkpoint.latest(run_dir) is not None or (log.is_file() and log.stat().st_size > 0)


def refuse_mixing(run_dir: Path, resume: bool) -> None:
    if not resume and holds_run(run_dir):
        raise FileExistsError(
            f"--out: {run_dir} already holds a run; continue it with --resume, start it again with --overwrite, "
            "or choose another --out (a new run there would mix its log and checkpoints with the old one's)"
        )


def clear_run(run_dir: Path) -> None:
    """Remove a run's checkpoints and log from `run_dir` (for `--overwrite`)."""
    for path in [*run_dir.glob("step-*"), *run_dir.glob(".step-*.tmp")]:
        shutil.rmtree(path, ignore_errors=True)
    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)


def trim_logs(run_dir: Path, step: int) -> None:
    """Keep only the log and curve lines of steps <= `step`: a resumed run redoes the
    steps after its checkpoint and logs them again."""
    for log in (run_dir / "log.jsonl", run_dir / "curve.jsonl"):
        if log.is_file():
            lines = [line for line in log.read_text().splitlines() if line and json.loads(line)["step"] <= step]
            log.write_text("".join(line + "\n" for line in lines))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line] if path.is_file() else []


def init_record(init: Path) -> dict:
    """Where a run started from another's weights (`--init`) came from: the checkpoint, its
    step, and the commands of the run that made it (from the run folder holding it, or the
    release's record where it is a release), with where that run came from in turn."""
    released = init / "release.json"
    if released.is_file():
        info = json.loads(released.read_text())
        return {"checkpoint": str(init), "step": info.get("step"), "run": info.get("run"),
                "commands": info.get("commands", []), "init": info.get("initialised_from")}  # fmt: skip
    made = init.parent / "config.json"
    parent = json.loads(made.read_text()) if made.is_file() else {}
    return {"checkpoint": str(init), "step": ckpt_step(init) if init.name.startswith("step-") else None,
            "commands": parent.get("commands", []), "init": parent.get("init")}  # fmt: skip


def write_record(run_dir: Path, record: dict, command: str | None, ckpt: Path | None,
                 init: Path | None = None) -> None:  # fmt: skip
    """`config.json`: the configuration in full with what the run records beside it, the
    command that made the run (from its first start), every start since, and for a run
    started from another's weights (`init`) where they came from (`init_record`)."""
    if command is not None:
        previous = run_dir / "config.json"
        old = json.loads(previous.read_text()) if ckpt is not None and previous.is_file() else {}
        record["command"] = old.get("command") or command
        started = {"command": command, "from_step": ckpt_step(ckpt), "date": time.strftime("%Y-%m-%d %H:%M %Z")}
        if "precision" in record:  # each start's own: a resumed run may move to another machine
            started["precision"] = record["precision"]
        record["commands"] = [*old.get("commands", []), started]
        if init is not None and ckpt is None:
            record["init"] = init_record(Path(init))
        elif old.get("init"):
            record["init"] = old["init"]
    (run_dir / "config.json").write_text(json.dumps(record, indent=1) + "\n")


class StopFlag:
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
