"""Print pip constraints that pin each core dependency to the lowest version pyproject allows.

CI installs one environment with these constraints and runs the whole suite in it, so the
lower bounds written in ``pyproject.toml`` are ones the tests have actually passed with.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

root = Path(__file__).resolve().parent.parent
project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
pins: dict[str, str] = {}
for requirement in project["dependencies"]:
    match = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*>=\s*([^,;\s]+)\s*", requirement)
    if match is None:
        sys.exit(f"cannot read a lower bound from {requirement!r}: write it as 'name>=version'")
    pins[match.group(1).lower()] = match.group(3)
# s3fs releases pin one fsspec release each: take the one that goes with the lowest fsspec.
pins["s3fs"] = pins["fsspec"]
for name, version in sorted(pins.items()):
    print(f"{name}=={version}")
