"""Backups of a SQLite index file: taken before an upgrade, written atomically, bounded.

A backup is ``<file>.backup-<revision>-<UTC time>`` next to the index. It is written by
SQLite's online backup API to a temporary name (``<backup>.tmp-<pid>``), flushed to disk,
then renamed, so a file named like a backup is always a whole one: a process killed while
backing up leaves only a ``.tmp-`` file, which ``atdata-lite db check`` reports and
``db check --clean`` removes. After a new backup is in place, only the newest
:data:`KEEP_BACKUPS` of the index are kept.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from ..._log import get_logger
from ...errors import MigrationError

__all__ = ["KEEP_BACKUPS", "backup_sqlite", "list_backups", "newest_backup"]

log = get_logger(__name__)

#: Backups kept per index file: the three newest (one per upgrade; older ones are deleted
#: when a new one is complete).
KEEP_BACKUPS = 3

_STAMP = "%Y%m%dT%H%M%S%fZ"


def _pattern(path: Path) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(path.name)}\.backup-([0-9a-zA-Z_]+)-(\d{{8}}T\d{{12}}Z)$")


def list_backups(path: Path) -> list[Path]:
    """The complete backups of the index ``path``, newest first (temporary files excluded)."""
    pattern = _pattern(path)
    found: list[tuple[str, Path]] = []
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return []
    for entry in entries:
        match = pattern.match(entry.name)
        if match is not None and entry.is_file():
            found.append((match[2], entry))
    found.sort(key=lambda item: item[0], reverse=True)
    return [p for _, p in found]


def newest_backup(path: Path) -> Path | None:
    """The newest complete backup of ``path``, or ``None``."""
    backups = list_backups(path)
    return backups[0] if backups else None


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk (POSIX).
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def backup_sqlite(path: Path, revision: str) -> Path:
    """Copy ``path`` next to itself (WAL content included), atomically; prune old backups.

    Returns:
        The backup's path.

    Raises:
        MigrationError: The copy failed (disk full, permissions); nothing was changed and
            no file named like a backup was left.
    """
    stamp = datetime.now(UTC).strftime(_STAMP)
    backup = path.with_name(f"{path.name}.backup-{revision}-{stamp}")
    temp = backup.with_name(f"{backup.name}.tmp-{os.getpid()}")
    try:
        # Owner-only, as the index itself: a backup holds the same catalog.
        os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        source = sqlite3.connect(path, isolation_level=None)
        try:
            dest = sqlite3.connect(temp, isolation_level=None)
            try:
                source.backup(dest)
            finally:
                dest.close()
        finally:
            source.close()
        with open(temp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(temp, backup)
        _fsync_dir(path.parent)
    except (sqlite3.Error, OSError) as exc:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise MigrationError(
            f"Could not back up the index {path} to {backup} before upgrading it: {exc}. "
            "Nothing was changed; free some disk space or fix permissions and retry."
        ) from exc
    log.info("Backed up %s to %s before upgrading it", path, backup)
    _prune(path)
    return backup


def _prune(path: Path) -> None:
    for old in list_backups(path)[KEEP_BACKUPS:]:
        try:
            old.unlink()
        except OSError as exc:  # a backup we cannot delete is only a wasted file
            log.warning("Could not delete the old backup %s: %s", old, exc)
        else:
            log.info("Deleted the old backup %s (keeping the newest %d)", old, KEEP_BACKUPS)
