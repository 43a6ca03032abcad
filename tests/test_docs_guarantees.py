"""docs/guarantees.md names the test proving each promise: every named test must exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GUARANTEES = ROOT / "docs" / "guarantees.md"
TEST_REF = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")
    }


def test_every_test_named_in_the_guarantees_exists() -> None:
    refs = TEST_REF.findall(GUARANTEES.read_text(encoding="utf-8"))
    assert len(refs) >= 30
    missing = [
        f"{path}::{name}"
        for path, name in refs
        if not (ROOT / path).is_file() or name not in _test_names(ROOT / path)
    ]
    assert missing == []


def test_every_promise_row_names_a_test() -> None:
    rows = [
        line
        for line in GUARANTEES.read_text(encoding="utf-8").splitlines()
        if line.startswith("| ") and not line.startswith("| Promise")
    ]
    assert rows
    assert [row for row in rows if not TEST_REF.search(row)] == []
