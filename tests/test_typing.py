"""The typed usage example (``tests/typing/public_api_usage.py``) runs, and mypy checks it.

The example shows what users' type checkers see of the public API; CI runs ``mypy`` over
the files listed in ``pyproject.toml``, this one included. Here it also runs, so its
``assert_type`` lines describe code that works.
"""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = Path("tests/typing/public_api_usage.py")


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("public_api_usage", ROOT / EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up while it executes
    spec.loader.exec_module(module)
    return module


def test_usage_example_runs(tmp_path: Path) -> None:
    example = _load_example()
    assert example.use_the_public_api(tmp_path) == [0, 1, 2, 3, 4]


def test_mypy_checks_the_package_and_the_example() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert config["strict"] is True
    assert "atdata_lite" in config["files"]
    assert EXAMPLE.as_posix() in config["files"]
