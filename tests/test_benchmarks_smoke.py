"""The read/write benchmark runs end to end on a tiny workload and prints its targets."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "read_write.py"


@pytest.mark.slow
def test_read_write_quick_prints_figures_and_targets(tmp_path: Path) -> None:
    cmd = [sys.executable, str(SCRIPT), "--quick", "--small", "500"]
    cmd += ["--only", "small,ours,wds", "--dir", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ERROR" not in out, out
    lines = [line.strip() for line in out.splitlines()]
    for label in ("write  ours", "ours    ordered", "ours    shuffled", "wds     plain loop"):
        # the label, then samples/s and MB/s figures
        assert any(re.match(re.escape(label) + r"\s+[\d,]+\s+[\d,.]+\s", s) for s in lines), out
    assert "\ntargets\n" in out
    targets = out.split("\ntargets\n", 1)[1].splitlines()
    five_x = [t for t in targets if "ours ordered >= 5x plain wds loop" in t]
    assert len(five_x) == 1 and five_x[0].rstrip().endswith(("ok", "MISSED")), out
    assert list(tmp_path.iterdir()) == [], "the data directory was not removed"
