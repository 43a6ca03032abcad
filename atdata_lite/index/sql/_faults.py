"""SQLite errors that are about the file or the disk, turned into atdata-lite errors.

``sqlite3`` reports a damaged file, a full disk or a read-only file as plain
``DatabaseError``/``OperationalError``; :func:`translate` recognises them by SQLite's error
code and returns the error a user can act on (what happened, to which file, what to do).
Everything else (a constraint, a lock) is left to the caller.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ...errors import IndexCorruptError, IndexDiskFullError, IndexReadOnlyError
from ._backups import newest_backup

__all__ = ["corrupt_error", "is_corruption", "translate"]

_CORRUPT = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}


def _code(exc: BaseException) -> int:
    # Python 3.11+ exposes SQLite's extended error code; its low byte is the primary code.
    return int(getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


def is_corruption(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps, for SQLAlchemy errors) says the file is damaged."""
    exc = getattr(exc, "orig", None) or exc
    if isinstance(exc, UnicodeDecodeError):
        # SQLite's own error message quoted damaged bytes (a mangled schema entry).
        return True
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    if _code(exc) in _CORRUPT:
        return True
    text = str(exc)
    # Text that is not UTF-8 cannot have been written by us (every string we store is):
    # damaged bytes inside a row.
    if "malformed" in text or "not a database" in text or "decode to UTF-8" in text:
        return True
    # The index passed its revision check, so every table and column the code names exists
    # in a sound file: a missing one is a schema entry whose bytes were damaged.
    return isinstance(exc, sqlite3.OperationalError) and (
        text.startswith("no such column:") or text.startswith("no such table:")
    )


def corrupt_error(path: Path, exc: BaseException) -> IndexCorruptError:
    """The error for a damaged index file, naming it and its newest backup."""
    exc = getattr(exc, "orig", None) or exc
    backup = newest_backup(path)
    where = (
        f"The newest backup is {backup} (taken before an upgrade; it lacks later changes)."
        if backup is not None
        else "There is no backup of it."
    )
    return IndexCorruptError(
        f"The index file {path} is damaged: SQLite says {exc}. {where} Run "
        f"'atdata-lite --index {path} db check' to see what is wrong and "
        f"'atdata-lite --index {path} db recover' to rebuild it (the damaged file is kept). "
        "Damage usually comes from a failing disk, or from a copy or network filesystem "
        "that did not preserve SQLite's locking."
    )


def translate(path: Path, exc: BaseException) -> Exception | None:
    """Our error for a SQLite failure about the file or disk, else ``None``."""
    if is_corruption(exc):
        return corrupt_error(path, exc)
    if not isinstance(exc, sqlite3.DatabaseError) or isinstance(exc, sqlite3.IntegrityError):
        return None
    code = _code(exc)
    if code == sqlite3.SQLITE_FULL:
        return IndexDiskFullError(
            f"The disk holding the index {path} is full: SQLite says {exc}. The write was "
            "undone and the index is unchanged; free some space and retry."
        )
    if code == sqlite3.SQLITE_IOERR:
        return IndexDiskFullError(
            f"Writing or reading the index {path} failed with a disk error: SQLite says {exc}. "
            "The disk may be full or failing; the last write was undone. Free some space "
            "(or check the disk) and retry."
        )
    if code == sqlite3.SQLITE_READONLY:
        return IndexReadOnlyError(
            f"The index {path} is read-only: SQLite says {exc}. Open it where it is writable "
            "(or fix its permissions) to change it."
        )
    return None
