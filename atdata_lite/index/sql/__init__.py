"""The SQL index backend: one SQLite file, or a PostgreSQL database, through SQLAlchemy Core.

``open_sql_backend(location)`` opens (creating or upgrading as needed, see
:mod:`.migrate`) the index at a plain path, a ``sqlite:///`` URL or a
``postgresql[+driver]://`` URL. The typed ORM classes are in :mod:`.models` (imported only
when asked for: the hot path does not load ``sqlalchemy.orm``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ._exec import EngineExecutor, Executor, SqliteExecutor
from .backend import SqlBackend
from .engine import DEFAULT_BUSY_TIMEOUT, create_index_engine, resolve_location
from .migrate import DEFAULT_LOCK_TIMEOUT, current_revision, history, prepare_index, upgrade
from .tables import HEAD_REVISION

__all__ = [
    "HEAD_REVISION",
    "SqlBackend",
    "current_revision",
    "history",
    "open_sql_backend",
    "upgrade",
]


def open_sql_backend(
    location: str | os.PathLike[str],
    *,
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    read_only: bool = False,
    **engine_options: Any,
) -> SqlBackend:
    """Open the SQL index at ``location``, creating or upgrading it as needed.

    Args:
        location: A path to a SQLite file (parent directories are created), a
            ``sqlite:///`` URL, or a ``postgresql[+driver]://`` URL (a bare
            ``postgresql://`` uses psycopg 3).
        busy_timeout: SQLite: seconds a writer waits for another process's write lock.
        lock_timeout: Seconds to wait for another process that is creating or upgrading
            the same index.
        read_only: Open for reading only: nothing is created, upgraded or written (no WAL
            switch, no lock file, no backup); writes raise ``IndexReadOnlyError``. A SQLite
            file that cannot be written (read-only media, file or directory) is opened this
            way by itself.
        **engine_options: Passed to :func:`sqlalchemy.create_engine` (e.g. ``pool_size``).

    Returns:
        The backend; close it with ``close()``.

    Raises:
        NotAnIndexError: The location holds something that is not an atdata-lite index
            (it is left untouched).
        IndexTooNewError: The index was written by a newer atdata-lite.
        MigrationError: Upgrading an older index failed (the backup is kept).
        IndexLockedError: Another process kept migrating for longer than ``lock_timeout``.
        IndexCorruptError: The SQLite file is damaged (the message names its newest backup).
        IndexReadOnlyError: A read-only index would need creating or upgrading first.
    """
    script_location = engine_options.pop("script_location", None)
    target = resolve_location(location)
    reason = "it was opened with read_only=True"
    if not read_only and target.path is not None:
        why = _unwritable(target.path)
        if why is not None:
            read_only, reason = True, why
    engine = create_index_engine(target, busy_timeout=busy_timeout, **engine_options)
    try:
        prepare_index(
            target,
            engine,
            busy_timeout=busy_timeout,
            lock_timeout=lock_timeout,
            script_location=script_location,
            read_only=read_only,
        )
    except BaseException:
        engine.dispose()
        raise
    executor: Executor
    if target.kind == "sqlite" and target.path is not None:
        executor = SqliteExecutor(
            target.path, engine.dialect, busy_timeout=busy_timeout, read_only=read_only
        )
    else:
        # In-memory SQLite: one connection shared by all threads (see create_index_engine).
        executor = EngineExecutor(engine, serialize=target.kind == "sqlite")
    return SqlBackend(target, engine, executor, read_only=read_only, read_only_reason=reason)


def _unwritable(path: Path) -> str | None:
    """Why an existing index file cannot be written here, or ``None`` if it can.

    SQLite writes next to the file too (``-wal``, ``-shm``), so a read-only directory makes
    the index read-only as much as a read-only file or filesystem does.
    """
    if not path.is_file():
        return None
    if not os.access(path, os.W_OK):
        return f"{path} cannot be written: read-only file or media"
    if not os.access(path.parent, os.W_OK):
        return f"its directory {path.parent} cannot be written"
    return None
