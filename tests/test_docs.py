"""Every file that the documentation cites exists: the relative links of README.md and the
pages under docs/, and the repository paths named in the Python packages' docstrings and
comments. And README.md stays a front page (under 300 lines)."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("tritonsplat", "tritonsplat_inpaint", "bench", "model")
README_MAX_LINES = 300

# [text](target) and ![alt](target); the target stops at a space (a title may follow) or ")"
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?[^)]*\)")
# a name that looks like a repository file: optional folders, then name.extension
CITED = re.compile(
    r"(?<![\w./\-*{<$])((?:[A-Za-z_][\w\-]*/)*[A-Za-z_][\w\-]*\.(?:py|md|sh|toml|json|jsonl|yml|yaml))\b"
)

# names that docstrings and comments use for files that are not the repository's: files that
# a user, a run or a command makes (pictures are not checked at all: every one cited is an
# output or another package's sample image)
NOT_REPOSITORY_FILES = {
    "model.py",  # a user's own file, which a top-level `model` package would shadow
    "config.json",  # a run folder's and a checkpoint's, written by training
    "log.jsonl",
    "curve.jsonl",
    "release.json",  # written by model.release into the release folder
    "result.json",  # written by tritonsplat.fit
    "results.json",  # written by model.evaluate and bench.photographs
    "results.md",
    "catalogue.json",  # written by tritonsplat_inpaint.gpu_pack into a GPU pack
    "manifest.json",
    "compare.json",  # written by model.compare
    "compare.md",
    "ablation.json",  # written by model.ablate
    "ablation.md",
    "speed.json",  # written by bench.train_speed
    "speed.md",
    "parts.json",  # written by bench.train_speed --parts
    "parts.md",
}
OUTPUT_FOLDERS = ("bench/results/",)  # where the benchmarks write (not in the repository)


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def broken_links(page: Path) -> list[str]:
    """The relative links of a Markdown page whose file does not exist (anchors ignored)."""
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):  # http:, mailto:, same-page anchors
            continue
        path = target.split("#", 1)[0]
        if not (page.parent / path).exists():
            broken.append(target)
    return broken


def prose(source: str) -> list[tuple[int, str]]:
    """(line, text) of every comment and docstring in a Python source."""
    found = [(t.start[0], t.string) for t in tokenize.generate_tokens(io.StringIO(source).readline)
             if t.type == tokenize.COMMENT]  # fmt: skip
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                if isinstance(body[0].value.value, str):
                    found.append((body[0].lineno, body[0].value.value))
    return found


def cited_files(text: str) -> list[str]:
    return CITED.findall(text)


def resolves(name: str, citing: Path) -> bool:
    """Whether `name` is a file relative to the repository root, the citing file's folder or
    any folder above it, or any package folder."""
    folders = [ROOT, *citing.parents, *(ROOT / p for p in PACKAGES)]
    return any((folder / name).is_file() for folder in folders if ROOT in (folder, *folder.parents))


def missing_citations(package: str) -> list[tuple[str, str]]:
    """(file:line, name) of every cited file in `package`'s docstrings and comments that does not exist."""
    missing = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, text in prose(path.read_text()):
            for name in cited_files(text):
                if not (name in NOT_REPOSITORY_FILES or name.startswith(OUTPUT_FOLDERS) or resolves(name, path)):
                    missing.append((f"{path.relative_to(ROOT)}:{line}", name))
    return missing


def test_readme_is_a_front_page():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) < README_MAX_LINES, f"README.md: {len(lines)} lines, expected under {README_MAX_LINES}"


@pytest.mark.parametrize("page", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_markdown_links_exist(page):
    assert broken_links(page) == []


def test_link_checker_sees_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "there.md").write_text("")
    page.write_text("[a](there.md#part) [b](gone.md) ![c](img/gone.png) [d](https://example.org/x.md) [e](#top)")
    assert broken_links(page) == ["gone.md", "img/gone.png"]


def test_citation_finder_sees_paths_not_modules():
    text = "see docs/design.md and backends/torch/common.py, `patches.py`; DESIGN.md; torch.nn.functional, e.g. 3.5"
    assert cited_files(text) == ["docs/design.md", "backends/torch/common.py", "patches.py", "DESIGN.md"]


def test_citation_resolves_from_the_citing_package():
    citing = ROOT / "tritonsplat" / "backends" / "triton" / "kernels.py"
    assert resolves("backends/torch/common.py", citing)
    assert resolves("docs/design.md", citing)
    assert not resolves("DESIGN.md", citing)
    assert not resolves("patches.py", citing)


@pytest.mark.parametrize("package", PACKAGES)
def test_cited_files_exist(package):
    assert missing_citations(package) == []
