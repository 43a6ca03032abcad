"""Extract the runnable code blocks of the README and the docs (see docs/contributing.md).

A page is a session: its blocks run in order, in one temporary working directory and one
temporary HOME (``ATDATA_LITE_HOME`` set inside it). Collected blocks:

* ```` ```python ```` blocks: run in one shared namespace, like cells of a notebook;
* ```` ```console ```` blocks whose first command (a line starting with ``$ ``) is
  ``atdata-lite``: every ``$`` line runs (lines without ``$`` are output and are ignored);
* ```` ```bash ```` / ```` ```sh ```` blocks whose first line is ``atdata-lite ...``: every
  line runs.

A marker on the line just before the fence changes that:

* ``<!-- docs-test: skip REASON -->``: the block is not run (say why: it needs a server...);
* ``<!-- docs-test: fails -->``: every command of the shell block must exit non-zero;
* ``<!-- docs-test: file=NAME -->``: the block is written to ``NAME`` in the working
  directory instead of being run (a module that a later block imports).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Block", "doc_files", "runnable_blocks"]

ROOT = Path(__file__).resolve().parent.parent
_FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w-]*)\s*$")
_MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<body>.*?)\s*-->\s*$")


@dataclass
class Block:
    """One code block of a page, with what the test does with it."""

    path: str
    line: int
    lang: str
    code: str
    marker: str = ""
    commands: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        """``python``, ``shell``, ``file``, ``skip`` or ``ignored`` (not ours to run)."""
        if self.marker.startswith("skip"):
            return "skip"
        if self.marker.startswith("file="):
            return "file"
        if self.lang == "python":
            return "python"
        if self.lang in ("console", "bash", "sh", "shell") and self.commands:
            first = self.commands[0].split()
            if first and first[0] == "atdata-lite":
                return "shell"
        return "ignored"

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def doc_files() -> list[Path]:
    """The README and every page of the docs site."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _commands(lang: str, code: str) -> list[str]:
    commands: list[str] = []
    pending = ""
    for raw in code.splitlines():
        line = raw.rstrip()
        if lang == "console":
            if pending:
                text = line
            elif line.startswith("$ "):
                text = line[2:]
            else:
                continue  # output
        else:
            text = line
            if not pending and (not text.strip() or text.lstrip().startswith("#")):
                continue
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        commands.append((pending + text).strip())
        pending = ""
    return commands


def parse_blocks(path: Path) -> list[Block]:
    """Every fenced code block of ``path``, with its marker."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    rel = str(path.relative_to(ROOT))
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match or not match["lang"]:
            i += 1
            continue
        indent = len(match["indent"])
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][indent:])
            i += 1
        i += 1
        marker = ""
        j = start - 1
        if j >= 0 and (m := _MARKER.match(lines[j])):
            marker = m["body"]
        code = "\n".join(body) + "\n"
        lang = match["lang"]
        commands = _commands(lang, code) if lang != "python" else []
        blocks.append(Block(rel, start + 1, lang, code, marker, commands))
    return blocks


def runnable_blocks(path: Path) -> list[Block]:
    """The blocks of ``path`` the test runs or writes (markers applied, in order)."""
    return [b for b in parse_blocks(path) if b.kind in ("python", "shell", "file")]
