"""The migration locks: a sidecar file (``<index>.lock``) for SQLite, an advisory lock on
PostgreSQL, each with a timeout.

The SQLite lock cannot be a transaction on the index itself: a table rebuild must run with
``PRAGMA foreign_keys=OFF``, which SQLite only honours outside a transaction. The OS releases
the lock when the process dies, so a crashed migration never leaves it stuck.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from ...errors import IndexLockedError, IndexOpenError, IndexReadOnlyError

__all__ = ["file_lock", "pg_lock"]

# Any 64-bit number of our own: the key of the PostgreSQL advisory lock guarding migrations.
_PG_LOCK_KEY = 0x617464617461_6C  # "atdata" + "l"

if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


@contextmanager
def file_lock(path: Path, *, timeout: float, what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed) for the ``with`` block.

    Raises:
        IndexLockedError: The lock was not obtained within ``timeout`` seconds.
        IndexReadOnlyError: The lock file cannot be created (read-only directory or media).
        IndexOpenError: The lock path is a directory, or another OS error.
    """
    fd = _open_lock_file(path)
    try:
        deadline = time.monotonic() + timeout
        delay = 0.005
        while not _try_lock(fd):
            if time.monotonic() >= deadline:
                raise IndexLockedError(
                    f"Another process has held the lock {path} for more than {timeout:g} s "
                    f"while {what}. Wait for it to finish (or stop it) and retry."
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
        try:
            yield
        finally:
            _unlock(fd)
    finally:
        os.close(fd)


def _open_lock_file(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except IsADirectoryError as exc:
        raise IndexOpenError(
            f"The index's lock file {path} is a directory. atdata-lite needs that name for "
            "its lock file: move the directory away and retry."
        ) from exc
    except OSError as exc:
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise IndexReadOnlyError(
                f"Cannot create or change the index: its lock file {path} cannot be created "
                f"({exc.strerror}); the directory is read-only. Choose a writable location, "
                "or open an existing index there with read_only=True."
            ) from exc
        raise IndexOpenError(f"Cannot open the index's lock file {path}: {exc.strerror}.") from exc


@contextmanager
def pg_lock(conn: sa.Connection, timeout: float, where: str) -> Iterator[None]:
    """Hold PostgreSQL's session advisory lock for migrations on ``conn``.

    Raises:
        IndexLockedError: Another session held it for more than ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    delay = 0.01
    while not conn.execute(sa.select(sa.func.pg_try_advisory_lock(_PG_LOCK_KEY))).scalar():
        conn.rollback()
        if time.monotonic() >= deadline:
            raise IndexLockedError(
                f"Another session held the migration lock of {where} for more than "
                f"{timeout:g} s. Wait for it to finish and retry."
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
    conn.commit()
    try:
        yield
    finally:
        conn.rollback()
        conn.execute(sa.select(sa.func.pg_advisory_unlock(_PG_LOCK_KEY)))
        conn.commit()
