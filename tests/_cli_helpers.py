"""Helpers for the command-line tests: an isolated user environment and a runner."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from atdata_lite.cli import main

ENV_VARS = ("ATDATA_LITE_HOME", "ATDATA_LITE_INDEX", "ATDATA_LITE_STORE")


@dataclass
class Cli:
    """Runs ``atdata-lite`` through click's runner, with a chosen index."""

    home: Path
    index: Path

    def __call__(self, *args: str, input: str | None = None, index: bool = True) -> Result:
        argv = (["--index", str(self.index)] if index else []) + list(args)
        return CliRunner().invoke(main, argv, input=input, catch_exceptions=True)

    def ok(self, *args: str, input: str | None = None) -> Result:
        """Run and require exit code 0 and an empty stderr."""
        result = self(*args, input=input)
        assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
        # Off a terminal: no progress bars, warnings or colour codes anywhere.
        assert result.stderr == "", result.stderr
        assert "\x1b[" not in result.stdout
        return result

    def json(self, *args: str) -> Any:
        """Run with ``--json`` and parse stdout."""
        return json.loads(self.ok("--json", *args).stdout)

    def fails(self, *args: str, code: int = 1) -> Result:
        """Run and require exit code ``code``, a one-line error, and nothing on stdout."""
        result = self(*args)
        assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
        assert result.stdout == "", result.stdout
        if code == 1:
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1, result.stderr
            assert lines[0].startswith("Error: "), result.stderr
            assert "Traceback" not in result.stderr
        return result


def make_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """A runner whose user data directory and index live under ``tmp_path``."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    # A width set by the test's own terminal would cut tables; tests that want it set it.
    monkeypatch.delenv("COLUMNS", raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("ATDATA_LITE_HOME", str(home / "atdata"))
    return Cli(home=home, index=tmp_path / "index.db")


def fresh_user_env(home: Path) -> dict[str, str]:
    """``os.environ`` as a new user would have it: HOME and XDG_* in ``home``, no ATDATA_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ATDATA_LITE_", "XDG_"))}
    env["HOME"] = str(home)
    for var, sub in (
        ("XDG_DATA_HOME", ".local/share"),
        ("XDG_CONFIG_HOME", ".config"),
        ("XDG_CACHE_HOME", ".cache"),
        ("XDG_STATE_HOME", ".local/state"),
    ):
        env[var] = str(home / sub)
    return env
