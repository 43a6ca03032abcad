"""The SQL index backend: one SQLite file, or a PostgreSQL database, through SQLAlchemy Core.

``open_sql_backend(location)`` opens (creating or upgrading as needed, see
:mod:`.migrate`) the index at a plain path, a ``sqlite:///`` URL or a
``postgresql[+driver]://`` URL. The typed ORM classes are in :mod:`.models` (imported only
when asked for: the hot path does not load ``sqlalchemy.orm``).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from . import migrate
from ._exec import EngineExecutor, Executor, SqliteExecutor
from ._postgres import postgres_connect_settings, timeouts_of, unreachable_error
from .backend import SqlBackend
from .engine import DEFAULT_BUSY_TIMEOUT, create_index_engine, resolve_location
from .migrate import DEFAULT_LOCK_TIMEOUT, history, prepare_index
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
    connect_timeout: float | None = None,
    statement_timeout: float | None = None,
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
        connect_timeout: PostgreSQL: seconds to wait for a connection (default 10), unless
            the URL's ``?connect_timeout=`` says.
        statement_timeout: PostgreSQL: seconds a statement may run before the server
            cancels it (default 60; ``0``: no limit), unless the URL's
            ``?statement_timeout=`` says. A server silent for this long plus a grace of at
            most 5 s fails the call (psycopg 3).
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
        IndexUnreachableError: The PostgreSQL server refused the connection, or did not
            answer within the timeouts.
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
    engine = create_index_engine(
        target,
        busy_timeout=busy_timeout,
        connect_timeout=connect_timeout,
        statement_timeout=statement_timeout,
        **engine_options,
    )
    try:
        prepare_index(
            target,
            engine,
            busy_timeout=busy_timeout,
            lock_timeout=lock_timeout,
            script_location=script_location,
            read_only=read_only,
        )
    except BaseException as exc:
        engine.dispose()
        if target.kind == "postgresql":
            timeouts = timeouts_of(engine)
            error = unreachable_error(exc, target.display, timeouts, opening=True)
            if error is not None:
                raise error from exc
        raise
    executor: Executor
    if target.kind == "sqlite" and target.path is not None:
        executor = SqliteExecutor(
            target.path, engine.dialect, busy_timeout=busy_timeout, read_only=read_only
        )
    else:
        # In-memory SQLite: one connection shared by all threads (see create_index_engine).
        read_engine = None
        if target.kind == "postgresql":
            # Reads get a pool of their own, in autocommit from the moment each connection
            # is made: a lookup is then one round trip with no BEGIN/ROLLBACK and no switch
            # of the connection's mode per call (see ._pgread).
            read_engine = create_index_engine(
                target,
                connect_timeout=connect_timeout,
                statement_timeout=statement_timeout,
                isolation_level="AUTOCOMMIT",
                **engine_options,
            )
        executor = EngineExecutor(
            engine, serialize=target.kind == "sqlite", read_engine=read_engine
        )
        if target.kind == "postgresql":
            timeouts = timeouts_of(engine)
            executor.translate_errors = functools.partial(
                unreachable_error, location=target.display, timeouts=timeouts
            )
    return SqlBackend(target, engine, executor, read_only=read_only, read_only_reason=reason)


@contextmanager
def _reaching_server(location: str | os.PathLike[str]) -> Iterator[None]:
    """Turn a PostgreSQL server that cannot be reached into ``IndexUnreachableError``."""
    try:
        yield
    except sa.exc.DBAPIError as exc:
        target = resolve_location(location)
        if target.kind != "postgresql":
            raise
        _, _, timeouts = postgres_connect_settings(target.url)
        error = unreachable_error(exc, target.display, timeouts, opening=True)
        if error is None:
            raise
        raise error from exc


def current_revision(location: str | os.PathLike[str]) -> str | None:
    """The index's revision, or ``None`` for a missing or empty one. Changes nothing.

    Raises:
        NotAnIndexError: The location holds something else.
        IndexUnreachableError: The PostgreSQL server cannot be reached.
    """
    with _reaching_server(location):
        return migrate.current_revision(location)


def upgrade(
    location: str | os.PathLike[str],
    *,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    script_location: str | os.PathLike[str] | None = None,
) -> tuple[str | None, str]:
    """Bring the index at ``location`` to :data:`HEAD_REVISION` (creating it if new).

    Opening an index does the same by itself; this is for ``atdata-lite db upgrade``.

    Returns:
        ``(revision before, revision after)``; equal when there was nothing to do.

    Raises:
        NotAnIndexError, IndexTooNewError, MigrationError, IndexLockedError.
        IndexUnreachableError: The PostgreSQL server cannot be reached.
    """
    with _reaching_server(location):
        return migrate.upgrade(location, lock_timeout=lock_timeout, script_location=script_location)


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
