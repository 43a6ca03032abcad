"""The examples of docs/loading-and-training.md run as written, in order."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "loading-and-training.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
@pytest.mark.timeout(300)
def test_the_examples_run(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATDATA_LITE_")}
    env["ATDATA_LITE_HOME"] = str(tmp_path / "home")
    script = tmp_path / "example.py"
    script.write_text("\n".join(_blocks("python")))
    result = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    assert "photos 3 shards" in out and "300 samples" in out
    assert "Photo 300" in out and "['train'] {'train': 3}" in out
    assert "{'test': 1, 'train': 2}" in out
    assert any(re.fullmatch(r"300 torch.Size\(\[\d+, 8, 8, 3\]\) torch.int64", x) for x in out)
    assert "0 300" in out and "1 300" in out
    # reading fast: a read-only view, then writable copies; column batches
    assert out.count("False") == 1 and out.count("True") == 3
    assert "(4, 8, 8, 3) int64" in out

    for block in _blocks("console"):
        for line in block.splitlines():
            argv = line.removeprefix("$ ").split()
            assert argv[0] == "atdata-lite"
            run = subprocess.run(
                [sys.executable, "-m", "atdata_lite", *argv[1:]],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert run.returncode == 0, run.stderr
