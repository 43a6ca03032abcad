"""Read-only bind mounts and small tmpfs mounts for fault tests (needs root; else skip)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


@contextmanager
def read_only_bind(directory: Path) -> Iterator[Path]:
    """Remount ``directory`` onto itself read-only for the ``with`` block (root only)."""
    done = _run("mount", "--bind", str(directory), str(directory))
    if done.returncode != 0:
        pytest.skip(f"cannot bind-mount (needs root and mount rights): {done.stderr.strip()}")
    try:
        done = _run("mount", "-o", "remount,ro,bind", str(directory))
        if done.returncode != 0:
            pytest.skip(f"cannot remount read-only: {done.stderr.strip()}")
        yield directory
    finally:
        _run("umount", str(directory))


@contextmanager
def small_tmpfs(directory: Path, size: str) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` (e.g. ``"600k"``) on ``directory`` (root only)."""
    directory.mkdir(parents=True, exist_ok=True)
    done = _run("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory))
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root and mount rights): {done.stderr.strip()}")
    try:
        yield directory
    finally:
        _run("umount", "-l", str(directory))
