"""Engines for the SQL backend: URL handling, SQLite settings, fork safety.

This module is the one place for SQLite plumbing: the minimum SQLite version, the settings
applied to every connection, how a file is opened read-only, and the one fork hook (engines
forget their pooled connections and :data:`FORK` counts forks, which the ``sqlite3``
connections of :mod:`._exec` check).

SQLite gets its settings on every new connection (each with the reason next to it) and the
pysqlite "serializable isolation / savepoints" recipe from SQLAlchemy's documentation: the
driver's own transaction handling is switched off (``isolation_level=None``) and the ``begin``
event emits ``BEGIN IMMEDIATE`` for writes, so a write transaction takes SQLite's write lock
when it starts instead of failing half-way with "database is locked" on its first write.

Nothing here is SQLite-only SQL outside those dialect settings: PostgreSQL URLs get an engine
with connect, keepalive and statement timeouts (see :mod:`._postgres`).
"""

from __future__ import annotations

import os
import sqlite3
import weakref
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from ...errors import BackendUnavailableError, IndexOpenError, IndexReadOnlyError
from ._postgres import install_idle_ping, install_reply_bound, postgres_connect_settings

__all__ = [
    "DEFAULT_BUSY_TIMEOUT",
    "FORK",
    "MIN_SQLITE_VERSION",
    "WRITE",
    "IndexTarget",
    "check_sqlite_version",
    "configure_sqlite_connection",
    "connect_read_only",
    "create_index_engine",
    "resolve_location",
]

#: The oldest SQLite library the index works with. 3.35 brought ``RETURNING`` (inserts on
#: an in-memory index read back their ids with it) and ``ALTER TABLE ... DROP COLUMN``
#: (migrations may use it); every Python 3.11+ build from python.org ships a newer one.
MIN_SQLITE_VERSION = (3, 35, 0)

#: Seconds a SQLite connection waits for another writer before giving up.
DEFAULT_BUSY_TIMEOUT = 60.0

#: Execution option marking a connection whose transactions write (``BEGIN IMMEDIATE``).
WRITE = "atdata_lite_write"


@dataclass(frozen=True)
class IndexTarget:
    """Where an index lives, resolved from a path or URL.

    Attributes:
        url: The SQLAlchemy URL to connect to.
        kind: ``"sqlite"`` or ``"postgresql"``.
        path: The SQLite file, or ``None`` (PostgreSQL, or in-memory SQLite).
    """

    url: sa.URL
    kind: str
    path: Path | None

    @property
    def display(self) -> str:
        """The location for people: the file path, or the URL with its password hidden."""
        if self.path is not None:
            return str(self.path)
        return self.url.render_as_string(hide_password=True)


def resolve_location(location: str | os.PathLike[str]) -> IndexTarget:
    """Turn a plain path, ``sqlite:///`` URL or ``postgresql[+driver]://`` URL into a target.

    A bare ``postgresql://`` (or ``postgres://``) URL uses psycopg 3 (our ``postgres`` extra)
    when it is installed, whatever SQLAlchemy's default driver is; otherwise SQLAlchemy's
    default (psycopg2 before SQLAlchemy 2.1) is left in place.

    Raises:
        IndexOpenError: The URL cannot be parsed or names an unsupported database.
        BackendUnavailableError: No PostgreSQL driver is installed.
    """
    location = os.fspath(location)
    if location == ":memory:":
        # SQLite's own name for a private in-memory database (as sqlite3.connect takes it),
        # never a file called ":memory:" in the current directory.
        return IndexTarget(sa.make_url("sqlite://"), "sqlite", None)
    if "://" not in location:
        path = Path(location).expanduser().resolve()
        return IndexTarget(sa.URL.create("sqlite", database=str(path)), "sqlite", path)
    try:
        url = sa.make_url(location)
    except Exception as exc:
        raise IndexOpenError(f"Cannot parse the index URL {location!r}: {exc}") from exc
    backend, _, driver = url.drivername.partition("+")
    if backend == "sqlite":
        if not url.database or url.database == ":memory:" or url.database.startswith("file:"):
            return IndexTarget(url, "sqlite", None)
        path = Path(url.database).expanduser().resolve()
        return IndexTarget(url.set(database=str(path)), "sqlite", path)
    if backend in ("postgresql", "postgres"):
        if not driver:
            if find_spec("psycopg") is not None:
                driver = "psycopg"
            elif find_spec("psycopg2") is None:
                raise BackendUnavailableError(
                    "PostgreSQL indexes need a driver: pip install 'atdata-lite[postgres]'"
                )
        url = url.set(drivername=f"postgresql+{driver}" if driver else "postgresql")
        return IndexTarget(url, "postgresql", None)
    raise IndexOpenError(
        f"The SQL index backend handles SQLite files and PostgreSQL URLs, not {backend}:// "
        f"({url.render_as_string(hide_password=True)})."
    )


def create_index_engine(
    target: IndexTarget,
    *,
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    foreign_keys: bool = True,
    poolclass: type | None = None,
    connect_timeout: float | None = None,
    statement_timeout: float | None = None,
    **engine_options: Any,
) -> Engine:
    """Create the engine for ``target`` with the index's connection settings.

    Args:
        target: From :func:`resolve_location`.
        busy_timeout: SQLite only: seconds to wait for the write lock.
        foreign_keys: SQLite only: ``False`` for migrations that rebuild tables (see
            :mod:`.migrate`); the backend always uses ``True``.
        poolclass: A SQLAlchemy pool class (default: SQLAlchemy's choice).
        connect_timeout: PostgreSQL only: seconds to wait for a connection, unless the URL
            says (see :mod:`._postgres`).
        statement_timeout: PostgreSQL only: seconds a statement may run, unless the URL
            says; ``0`` for no limit.
        **engine_options: Passed to :func:`sqlalchemy.create_engine`.

    Returns:
        The engine; its ``execution_options(atdata_lite_write=True)`` variant starts write
        transactions with ``BEGIN IMMEDIATE`` on SQLite.
    """
    in_memory = target.kind == "sqlite" and target.url.database in (None, "", ":memory:")
    if target.kind == "sqlite":
        check_sqlite_version()
    if poolclass is None and in_memory:
        # SQLAlchemy's default pool for an in-memory database gives each thread its own
        # connection, hence its own empty database: another thread would find no tables.
        # One connection for all threads (the backend serialises its use).
        poolclass = sa.StaticPool
    if poolclass is not None:
        engine_options["poolclass"] = poolclass
    if target.kind == "sqlite":
        connect_args = dict(engine_options.pop("connect_args", {}))
        # The pool hands a connection to whichever thread asks; each is used by one thread
        # at a time, which is what SQLite needs, so the driver's same-thread check only gets
        # in the way.
        connect_args.setdefault("check_same_thread", False)
        connect_args.setdefault("timeout", busy_timeout)
        engine = sa.create_engine(target.url, connect_args=connect_args, **engine_options)
        _install_sqlite_settings(engine, busy_timeout=busy_timeout, foreign_keys=foreign_keys)
    else:
        url, connect_args, timeouts = postgres_connect_settings(
            target.url, connect_timeout=connect_timeout, statement_timeout=statement_timeout
        )
        connect_args.update(engine_options.pop("connect_args", {}))
        engine = sa.create_engine(url, connect_args=connect_args, **engine_options)
        install_reply_bound(engine, timeouts)
        if not engine_options.get("pool_pre_ping"):
            # A server restart or idle timeout must not surface as an error on the next
            # lookup: connections that sat idle are pinged first (not every one: a ping is
            # a second round trip per lookup), and reads retry once (see EngineExecutor).
            install_idle_ping(engine)
    _FORK_SAFE.add(engine)
    return engine


def check_sqlite_version(version: tuple[int, ...] | None = None) -> None:
    """Refuse a SQLite library older than :data:`MIN_SQLITE_VERSION`.

    Args:
        version: The version to check (default: the one Python's ``sqlite3`` module uses).

    Raises:
        BackendUnavailableError: The SQLite library is too old.
    """
    found = tuple(version if version is not None else sqlite3.sqlite_version_info)
    if found < MIN_SQLITE_VERSION:
        need = ".".join(map(str, MIN_SQLITE_VERSION))
        raise BackendUnavailableError(
            f"atdata-lite needs SQLite {need} or newer, but this Python's sqlite3 module uses "
            f"SQLite {'.'.join(map(str, found))}. Use a Python built with a newer SQLite (any "
            "python.org or conda build of Python 3.11+), or point the index at PostgreSQL."
        )


def connect_read_only(path: Path, *, busy_timeout: float) -> sqlite3.Connection:
    """Open ``path`` with a read-only ``sqlite3`` connection that writes nothing anywhere.

    ``mode=ro`` first: it sees other processes' commits. It needs the WAL's shared-memory
    file (``<file>-shm``), which cannot be created on read-only media or in a read-only
    directory; there the file is opened ``immutable`` (no locks, no ``-shm``: nothing can
    change it anyway), unless a ``<file>-wal`` holds commits not yet copied into the file,
    which an immutable connection would not see.

    Raises:
        IndexReadOnlyError: The file cannot be read without writing next to it.
        sqlite3.Error: Anything else (the caller maps it).
    """
    uri = path.resolve().as_uri()
    conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=busy_timeout, isolation_level=None)
    try:
        # The first read opens the file (and the -shm): fail here, not on a later query.
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError as exc:
        conn.close()
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF != sqlite3.SQLITE_CANTOPEN:
            raise
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise IndexReadOnlyError(
            f"Cannot read the index {path} read-only: {wal} holds changes not yet written "
            "into the index file, and reading them needs to create files next to it. Open "
            "the index once where it is writable (any atdata-lite command does), then use "
            "it read-only."
        )
    conn = sqlite3.connect(
        f"{uri}?mode=ro&immutable=1", uri=True, timeout=busy_timeout, isolation_level=None
    )
    return conn


#: The page cache of every SQLite connection, in KiB (see configure_sqlite_connection).
CACHE_KIB = 16384


def configure_sqlite_connection(
    dbapi_connection: Any, *, busy_timeout: float, foreign_keys: bool = True, wal: bool = True
) -> None:
    """Apply the index's settings to a new ``sqlite3`` connection (each one, every time).

    Used for the engine's connections and for the backend's own per-thread connections.
    """
    # Switch off pysqlite's own BEGIN handling (it begins late and never for DDL): writes
    # emit BEGIN IMMEDIATE themselves, reads run in autocommit.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        if wal:
            # WAL: readers never block the writer nor the writer the readers, and a commit
            # is one append to the log, which is what several DataLoader workers and a
            # writing process need. (Persistent in the file; only set on our own files:
            # the open logic checks a file is ours before any connection is configured.)
            cursor.execute("PRAGMA journal_mode=WAL")
        # Wait for another process's write lock instead of failing at once with "database
        # is locked" (the driver's timeout covers the same; set both).
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        # SQLite ignores foreign keys unless asked, per connection: without this, deleting
        # a dataset would leave its shard rows behind.
        cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
        # In WAL mode NORMAL is still crash-safe for the database (a power cut can only lose
        # the last commits, never corrupt the file) and avoids an fsync per commit.
        cursor.execute("PRAGMA synchronous=NORMAL")
        # A page cache of up to 16 MiB instead of SQLite's 2 MiB: an index of more than a
        # few thousand datasets outgrows 2 MiB, and every lookup then reads its pages from
        # the OS again (about a tenth of a lookup by CID at 10,000 datasets). Memory is
        # taken only as pages are read; the cache is dropped when another process writes.
        cursor.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    finally:
        cursor.close()


def _install_sqlite_settings(engine: Engine, *, busy_timeout: float, foreign_keys: bool) -> None:
    in_memory = engine.url.database in (None, "", ":memory:")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        configure_sqlite_connection(
            dbapi_connection,
            busy_timeout=busy_timeout,
            foreign_keys=foreign_keys,
            wal=not in_memory,
        )

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        # Writes take the write lock up front (BEGIN IMMEDIATE): a deferred transaction that
        # reads first and writes later can fail with SQLITE_BUSY no matter the busy timeout.
        # Other transactions (the ORM's, say) begin deferred, as SQLite's default.
        if connection.get_execution_options().get(WRITE):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")


# --- fork safety ------------------------------------------------------------------------
# A child process (DataLoader worker) must not use the parent's connections: sockets and
# SQLite file handles shared across fork corrupt each other's state. After fork, every live
# engine forgets its pooled connections without closing them (closing would act on the
# parent's connections too), and FORK.generation changes, which tells the executor's own
# sqlite3 connections (see ._exec) to do the same; the child then opens its own.


class _ForkState:
    """How many forks separate this process from the one that imported this module."""

    __slots__ = ("generation",)

    def __init__(self) -> None:
        self.generation = 0


#: Read ``FORK.generation`` to tell whether a fork happened since a connection was made.
FORK = _ForkState()

_FORK_SAFE: weakref.WeakSet[Engine] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    FORK.generation += 1
    for engine in list(_FORK_SAFE):
        engine.dispose(close=False)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
