"""The examples of docs/samples-and-shards.md run, and print what the page says they print."""

from __future__ import annotations

import contextlib
import io
import re
import sys
import types
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "samples-and-shards.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def _expected_prints(code: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r"^\s*print\(.*\)\s+# (.*)$", code, flags=re.M)]


def test_the_page_examples_run_and_print_what_they_say(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = _blocks()
    assert len(blocks) >= 4
    module = types.ModuleType("docs_samples_and_shards")  # dataclasses look their module up
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    out = io.StringIO()
    expected: list[str] = []
    with contextlib.redirect_stdout(out):
        for code in blocks:
            expected += _expected_prints(code)
            exec(compile(code, str(DOC), "exec", dont_inherit=True), namespace)
    lines = out.getvalue().splitlines()
    assert len(lines) == len(expected), lines
    for line, want in zip(lines, expected, strict=True):
        if want.endswith("..."):
            assert line.startswith(want[:-3].rstrip()), (line, want)
        else:
            assert line == want, (line, want)
