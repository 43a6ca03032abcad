"""The README and the docs site: every example runs, and the site builds without warnings.

How blocks are collected and the markers that change it: ``tests/_docs_blocks.py`` and
docs/contributing.md.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from _docs_blocks import ROOT, Block, doc_files, parse_blocks, runnable_blocks
from conftest import service_unavailable

import atdata_lite

DRIVER = Path(__file__).with_name("_docs_driver.py")


def _missing_api(blocks: list[Block]) -> str | None:
    """Why a page cannot run here yet (an API it shows is not in this build), else None."""
    python = "\n".join(b.code for b in blocks if b.kind == "python")
    if "load_dataset" in python and not hasattr(atdata_lite, "load_dataset"):
        return "the page uses atdata_lite.load_dataset, which this build does not have yet"
    from atdata_lite import Index

    if re.search(r"\.write_samples\(", python) and not hasattr(Index, "write_samples"):
        return "the page uses Index.write_samples, which this build does not have yet"
    if re.search(r"^\s*(import|from) torch", python, re.M) and not importlib.util.find_spec(
        "torch"
    ):
        return "the page trains with torch, which is not installed"
    return None


def user_env(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A fresh user: HOME and ATDATA_LITE_HOME under ``tmp_path``; returns (env, cwd)."""
    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ATDATA_LITE_", "XDG_")) and k != "COLUMNS"
    }
    env["HOME"] = str(home)
    env["ATDATA_LITE_HOME"] = str(home / ".local" / "share" / "atdata-lite")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(work)
    return env, work


def run_blocks(blocks: list[Block], tmp_path: Path, prelude: str = "") -> None:
    env, work = user_env(tmp_path)
    steps = [{**dataclasses.asdict(b), "kind": b.kind, "where": b.where} for b in blocks]
    if prelude:
        steps.insert(0, {"kind": "python", "code": prelude, "where": "prelude", "marker": ""})
    steps_file = tmp_path / "steps.json"
    steps_file.write_text(json.dumps(steps))
    proc = subprocess.run(
        [sys.executable, str(DRIVER), str(steps_file)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert proc.returncode == 0, f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"


PAGES = [p for p in doc_files() if runnable_blocks(p)]


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_page_examples_run(page: Path, tmp_path: Path) -> None:
    blocks = runnable_blocks(page)
    reason = _missing_api(blocks)
    if reason:
        pytest.skip(f"{page.name}: {reason}")
    run_blocks(blocks, tmp_path)


def _readme_python() -> list[Block]:
    return [b for b in runnable_blocks(ROOT / "README.md") if b.kind == "python"]


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_readme_training_example(start_method: str, tmp_path: Path) -> None:
    """The README's Python example (write, load by name, DataLoader with 2 workers) under
    both start methods; the time limit turns a hung worker into a failure."""
    blocks = _readme_python()
    assert blocks, "the README has no Python example"
    assert any("DataLoader" in b.code and "num_workers=2" in b.code for b in blocks)
    reason = _missing_api(blocks)
    if reason:
        pytest.skip(f"README: {reason}")
    prelude = (
        f"import multiprocessing\nmultiprocessing.set_start_method({start_method!r}, force=True)\n"
    )
    run_blocks(blocks, tmp_path, prelude=prelude)


def test_readme_first_screen_is_the_newcomers_path() -> None:
    text = (ROOT / "README.md").read_text()
    first = text.split("\n## ", 4)
    head = "\n## ".join(first[:4])
    assert "pip install" in head and "atdata-lite demo" in head
    assert "load_dataset(" in head and "DataLoader(" in head and "write_samples(" in head
    python = _readme_python()[0].code
    assert len(python.strip().splitlines()) <= 25
    # The two set-up commands CI runs, word for word.
    assert (
        "python3 -m venv .venv && . .venv/bin/activate && pip install . && atdata-lite demo" in text
    )
    assert (
        "python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[test]' "
        "&& python -m pytest" in text
    )
    assert len(text.splitlines()) < 150


def test_block_markers_are_known() -> None:
    """A misspelt marker would silently run (or skip) a block: only known ones are allowed."""
    for page in doc_files():
        for block in parse_blocks(page):
            marker = block.marker
            assert marker == "" or marker in ("fails",) or marker.startswith(("skip ", "file=")), (
                block.where,
                marker,
            )
            if marker.startswith("skip"):
                assert len(marker) > len("skip ") + 5, f"{block.where}: say why it is skipped"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_docs_site_builds_strict(tmp_path: Path) -> None:
    """`mkdocs build --strict`: a broken link, a missing page or a bad docstring fails."""
    if not all(importlib.util.find_spec(m) for m in ("mkdocs", "mkdocstrings", "material")):
        # CI (ATDATA_LITE_REQUIRE_SERVICES=1) must build the site: there this skip fails.
        service_unavailable("mkdocs is not installed: pip install -e '.[docs]'")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert proc.returncode == 0, proc.stderr[-6000:]
    assert (tmp_path / "site" / "index.html").exists()
    cli_page = (tmp_path / "site" / "cli" / "index.html").read_text()
    assert "atdata-lite schema publish" in cli_page  # generated from --help
