"""What every command line shares: an error is one line on stderr and a non-zero exit
(`--debug` shows the traceback instead), and Ctrl-C is a one-line stop."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable


class Defaults(argparse.HelpFormatter):
    """Help that shows each option's default where it has one worth showing (not None or
    False, and not already said in the option's own words)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = action.default not in (None, False, argparse.SUPPRESS) and "default" not in text
        return f"{text} (default: %(default)s)" if shown and action.option_strings else text


def add_debug(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--debug", action="store_true", help="on an error, show the full traceback")
    return parser


def add_threads(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """`--threads N`: torch's CPU threads. Measured on 2 Intel Xeon cores shared with other
    jobs (load average 5, 2026-12-06): a cpu-small training step took 2.1-2.2 s with 2
    threads and 1.4-1.5 s with 1, since threads that wait on each other lose most when the
    cores are busy; on an idle machine 2 threads are faster. Hence: all cores by default,
    1 on a shared machine."""
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: one per core; 1 is faster on a busy machine)")
    return parser


def set_threads(threads: int | None) -> None:
    if threads is not None:
        if threads < 1:
            raise ValueError(f"--threads: expected a positive number of threads, got {threads}")
        import torch

        torch.set_num_threads(threads)


def entry(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run `main(argv)`: its exceptions become `error: ...` (exit 1), Ctrl-C `interrupted`
    (exit 130), unless `--debug` is among the arguments."""
    args = sys.argv[1:] if argv is None else argv
    try:
        return main(args)
    except KeyboardInterrupt:
        if "--debug" in args:
            raise
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - every error, said in one line
        if "--debug" in args:
            raise
        print(f"error: {e} (--debug for the traceback)", file=sys.stderr)
        return 1


def write_report(out, stem: str, data: dict, table: str) -> None:
    """A command's results: `<stem>.json` (the figures) and `<stem>.md` (the table) in
    `out`, created if need be; the table is also printed."""
    import json
    from pathlib import Path

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(data, indent=1) + "\n")
    (out / f"{stem}.md").write_text(table + "\n")
    print(table)


def prog(name: str) -> str:
    """The command as the user typed it, for usage lines: `python -m model.NAME` (the
    clone's shorthand), `python -m tritonsplat_inpaint.commands.NAME`, or the installed
    script `tritonsplat-NAME`."""
    from pathlib import Path

    first = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path()
    if first.suffix != ".py":
        return first.name or f"tritonsplat-{name}"
    return f"python -m {'model' if first.parent.name == 'model' else 'tritonsplat_inpaint.commands'}.{name}"
