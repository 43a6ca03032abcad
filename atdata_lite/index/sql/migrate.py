"""Opening an index: revision check, lock, create/stamp, backup, Alembic upgrade.

What happens when an index is opened, decided from the version table
(``atdata_lite_alembic_version``):

* **current** (the revision is :data:`HEAD_REVISION`): nothing; that check is one small query
  and Alembic is not imported;
* **new** (missing or empty file, empty database): tables created and stamped at head,
  still without Alembic;
* **older known revision**: the SQLite file is backed up next to itself
  (``<file>.backup-<revision>-<UTC time>``, SQLite's online backup API), then upgraded by
  Alembic in one transaction. If the upgrade fails, the index is left as it was and
  :class:`MigrationError` says where the backup is. PostgreSQL needs no file backup: its DDL is
  transactional, the failed upgrade rolls back;
* **unknown revision**: written by a newer atdata-lite: :class:`IndexTooNewError`;
* **not an index** (not SQLite, corrupt, or a database with tables but no version table):
  :class:`NotAnIndexError`, and the file is never modified: its 16-byte header is checked
  and its tables are read with a plain connection before any setting (WAL would rewrite the
  header) is applied.

Creating and upgrading happen under a lock (a sidecar ``<file>.lock`` for SQLite, a session
advisory lock on PostgreSQL) and the state is checked again once the lock is held, so several
processes opening the same new or old index at once wait for the one that migrates.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ...errors import (
    IndexLockedError,
    IndexOpenError,
    IndexTooNewError,
    MigrationError,
    NotAnIndexError,
)
from ._lock import file_lock
from .engine import IndexTarget, create_index_engine, resolve_location
from .tables import (
    HEAD_REVISION,
    KNOWN_REVISIONS,
    VERSION_TABLE,
    metadata,
    version_metadata,
    version_table,
)

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "HEAD_REVISION",
    "current_revision",
    "history",
    "migrations_dir",
    "prepare_index",
    "upgrade",
]

log = logging.getLogger(__name__)

SQLITE_HEADER = b"SQLite format 3\x00"
DEFAULT_LOCK_TIMEOUT = 300.0
# Any 64-bit number of our own: the key of the PostgreSQL advisory lock guarding migrations.
_PG_LOCK_KEY = 0x617464617461_6C  # "atdata" + "l"


@dataclass(frozen=True)
class _State:
    """What the version table says: ``revision`` or ``None`` for an empty/new index."""

    revision: str | None


# --- finding the migration scripts -------------------------------------------------------


def migrations_dir() -> Path:
    """Where the Alembic scripts are: inside the package (wheel) or at the repository root.

    Raises:
        MigrationError: Neither place holds them (a broken installation).
    """
    package_root = Path(__file__).resolve().parents[2]  # .../atdata_lite
    for candidate in (package_root / "migrations", package_root.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise MigrationError(
        f"The index migrations are missing: looked in {package_root / 'migrations'} and "
        f"{package_root.parent / 'migrations'}. Reinstall atdata-lite."
    )


def alembic_config(
    connection: sa.Connection | None = None,
    *,
    url: str | None = None,
    script_location: str | os.PathLike[str] | None = None,
) -> Config:
    """Build Alembic's ``Config`` in code (no ini file).

    Args:
        connection: Run migrations on this connection (``env.py`` uses it as is).
        url: Otherwise, the database URL ``env.py`` connects to.
        script_location: Another scripts directory (tests); default :func:`migrations_dir`.
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(script_location or migrations_dir()))
    if url is not None:
        # ConfigParser interpolation: a literal % in a password must be doubled.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def history(*, script_location: str | os.PathLike[str] | None = None) -> list[tuple[str, Any, str]]:
    """The migration history, oldest first.

    Returns:
        ``[(revision, down_revision, message), ...]``.
    """
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config(script_location=script_location))
    revisions = list(scripts.walk_revisions())
    revisions.reverse()
    return [(r.revision, r.down_revision, r.doc or "") for r in revisions]


# --- reading the state without touching anything ------------------------------------------


def _check_sqlite_header(path: Path) -> bool:
    """True if ``path`` holds a SQLite database, False if it is empty; raise if it is not ours."""
    if path.is_dir():
        raise NotAnIndexError(f"Cannot open the index {path}: it is a directory, not a file.")
    with open(path, "rb") as f:
        header = f.read(16)
    if not header:
        return False
    if header != SQLITE_HEADER:
        raise NotAnIndexError(
            f"{path} is not an atdata-lite index: it is not a SQLite database (its first "
            "bytes are not the SQLite header). It was left untouched; choose another path."
        )
    return True


def _probe_sqlite(path: Path, busy_timeout: float) -> _State:
    """Read the revision of a SQLite file with a plain read-only connection (no settings)."""
    if not path.exists() or not _check_sqlite_header(path):
        return _State(None)
    try:
        # Read-only: a read-write connection would roll back a hot journal, or checkpoint
        # and delete a WAL file when it closes, modifying a file that may not be ours.
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro",
            uri=True,
            timeout=busy_timeout,
            isolation_level=None,
        )
    except sqlite3.Error as exc:
        raise NotAnIndexError(f"Cannot open {path} as an index: {exc}.") from exc
    try:
        try:
            rows = conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):
                raise
            tables = [
                r[0]
                for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name"
                )
            ]
            if tables:
                shown = ", ".join(tables[:8]) + (", ..." if len(tables) > 8 else "")
                raise NotAnIndexError(
                    f"{path} is not an atdata-lite index: it is a SQLite database with other "
                    f"tables ({shown}) and no {VERSION_TABLE} table. It was left untouched; "
                    "choose another path."
                ) from None
            return _State(None)
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            raise IndexLockedError(f"The index {path} stayed locked: {exc}.") from exc
        raise NotAnIndexError(
            f"{path} is not a readable atdata-lite index: SQLite says {exc!s}. It was left "
            "untouched."
        ) from exc
    finally:
        conn.close()
    return _State(_single_revision(rows, str(path)))


def _single_revision(rows: list[Any], where: str) -> str | None:
    if not rows:
        return None
    if len(rows) > 1:
        raise IndexOpenError(
            f"The index {where} has several revisions in {VERSION_TABLE} "
            f"({', '.join(r[0] for r in rows)}); it was not written by atdata-lite."
        )
    return rows[0][0]


def _probe_connection(conn: sa.Connection, where: str) -> _State:
    """Read the revision through SQLAlchemy (PostgreSQL): only our own tables matter."""
    inspector = sa.inspect(conn)
    names = set(inspector.get_table_names())
    if VERSION_TABLE not in names:
        ours = sorted(names & set(metadata.tables))
        if ours:
            raise NotAnIndexError(
                f"{where} is not an atdata-lite index: it has tables named like ours "
                f"({', '.join(ours)}) but no {VERSION_TABLE} table. It was left untouched."
            )
        return _State(None)
    rows = conn.execute(sa.select(version_table.c.version_num)).fetchall()
    return _State(_single_revision(rows, where))


def _read_revision_fast(engine: sa.Engine) -> str | None:
    """One query on the version table; ``None`` if anything is unusual (slow path decides)."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(version_table.c.version_num)).fetchall()
    except sa.exc.DBAPIError:
        return None
    return rows[0][0] if len(rows) == 1 else None


def _refuse_unknown(revision: str, where: str) -> None:
    if revision not in KNOWN_REVISIONS:
        raise IndexTooNewError(
            f"The index {where} is at revision {revision}, which this atdata-lite does not "
            f"know (its newest is {HEAD_REVISION}): it was written by a newer atdata-lite. "
            "Upgrade atdata-lite (pip install -U atdata-lite) to open it."
        )


# --- the lock ---------------------------------------------------------------------------


@contextmanager
def _pg_lock(conn: sa.Connection, timeout: float, where: str) -> Iterator[None]:
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


# --- doing it ---------------------------------------------------------------------------


def prepare_index(
    target: IndexTarget,
    engine: sa.Engine,
    *,
    busy_timeout: float,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    script_location: str | os.PathLike[str] | None = None,
) -> tuple[str | None, str]:
    """Make the index at ``target`` current: check, create, or back up and upgrade.

    Args:
        target: Where the index is.
        engine: The backend's engine (used for the one-query check on PostgreSQL).
        busy_timeout: SQLite busy timeout, seconds.
        lock_timeout: How long to wait for another process that is migrating.
        script_location: Another Alembic scripts directory (tests).

    Returns:
        ``(revision found, revision now)``; the first is ``None`` for a new index.

    Raises:
        NotAnIndexError, IndexTooNewError, MigrationError, IndexLockedError.
    """
    if target.kind == "sqlite" and target.path is not None:
        state = _probe_sqlite(target.path, busy_timeout)
        if state.revision == HEAD_REVISION:
            return HEAD_REVISION, HEAD_REVISION
        if state.revision is not None:
            _refuse_unknown(state.revision, target.display)
        target.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = target.path.with_name(target.path.name + ".lock")
        with file_lock(lock_path, timeout=lock_timeout, what=f"migrating {target.path}"):
            # Someone else may have migrated while we waited: decide again.
            state = _probe_sqlite(target.path, busy_timeout)
            return _migrate(target, state, busy_timeout, script_location)

    # PostgreSQL (and in-memory SQLite): the common case costs one query.
    revision = _read_revision_fast(engine)
    if revision == HEAD_REVISION:
        return HEAD_REVISION, HEAD_REVISION
    if target.kind != "postgresql":  # in-memory SQLite: private to this engine, no lock
        with engine.connect() as conn:
            state = _probe_connection(conn, target.display)
        return _run_migration(engine, target, state, None, script_location)
    with engine.connect() as lock_conn, _pg_lock(lock_conn, lock_timeout, target.display):
        state = _probe_connection(lock_conn, target.display)
        lock_conn.rollback()
        return _migrate(target, state, busy_timeout, script_location, engine=engine)


def _migrate(
    target: IndexTarget,
    state: _State,
    busy_timeout: float,
    script_location: str | os.PathLike[str] | None,
    *,
    engine: sa.Engine | None = None,
) -> tuple[str | None, str]:
    if state.revision == HEAD_REVISION:
        return HEAD_REVISION, HEAD_REVISION
    if state.revision is not None:
        _refuse_unknown(state.revision, target.display)
    backup = None
    if state.revision is not None and target.path is not None:
        backup = _backup_sqlite(target.path, state.revision)
    own_engine = engine is None
    if engine is None:
        # A private engine without pooling whose connections have foreign keys OFF: Alembic's
        # batch mode rebuilds tables by DROP + RENAME, and with foreign keys ON dropping the
        # parent table would cascade-delete every shard row (PrefectHQ/prefect#8058). The
        # pragma only works outside a transaction, so it is set when connecting.
        engine = create_index_engine(
            target, busy_timeout=busy_timeout, foreign_keys=False, poolclass=sa.NullPool
        )
    try:
        return _run_migration(engine, target, state, backup, script_location)
    finally:
        if own_engine:
            engine.dispose()


def _run_migration(
    engine: sa.Engine,
    target: IndexTarget,
    state: _State,
    backup: Path | None,
    script_location: str | os.PathLike[str] | None,
) -> tuple[str | None, str]:
    from .engine import WRITE

    write_engine = engine.execution_options(**{WRITE: True})
    if state.revision is None:
        with write_engine.begin() as conn:
            metadata.create_all(conn)
            version_metadata.create_all(conn)
            conn.execute(sa.insert(version_table).values(version_num=HEAD_REVISION))
        log.info(
            "Created a new atdata-lite index at %s (revision %s)", target.display, HEAD_REVISION
        )
        return None, HEAD_REVISION

    from alembic import command

    try:
        with write_engine.connect() as conn, conn.begin():
            # One outer transaction: Alembic sees it and runs every step inside it, so a
            # failure anywhere rolls the whole upgrade back (SQLite and PostgreSQL both
            # have transactional DDL).
            command.upgrade(alembic_config(conn, script_location=script_location), HEAD_REVISION)
            if conn.dialect.name == "sqlite":
                # Foreign keys were off during the rebuilds: prove nothing dangles.
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise MigrationError(f"foreign keys broken by the upgrade: {broken[:5]}")
    except Exception as exc:
        where = (
            f"A backup taken before the upgrade is at {backup}."
            if backup is not None
            else "The upgrade was rolled back."
        )
        raise MigrationError(
            f"Upgrading the index {target.display} from revision {state.revision} to "
            f"{HEAD_REVISION} failed: {type(exc).__name__}: {exc}. The index was left at "
            f"revision {state.revision}. {where} Please report this at "
            "https://github.com/atdata-lite/atdata-lite/issues."
        ) from exc
    log.warning(
        "Upgraded the atdata-lite index %s from revision %s to %s%s",
        target.display,
        state.revision,
        HEAD_REVISION,
        f" (backup: {backup})" if backup else "",
    )
    return state.revision, HEAD_REVISION


def _backup_sqlite(path: Path, revision: str) -> Path:
    """Copy ``path`` next to itself with SQLite's online backup API (WAL content included)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    backup = path.with_name(f"{path.name}.backup-{revision}-{stamp}")
    source = sqlite3.connect(path, isolation_level=None)
    try:
        dest = sqlite3.connect(backup, isolation_level=None)
        try:
            source.backup(dest)
        finally:
            dest.close()
    except sqlite3.Error as exc:
        raise MigrationError(
            f"Could not back up the index {path} to {backup} before upgrading it: {exc}. "
            "Nothing was changed; free some disk space or fix permissions and retry."
        ) from exc
    finally:
        source.close()
    log.info("Backed up %s to %s before upgrading it", path, backup)
    return backup


# --- library functions for ``atdata-lite db`` ---------------------------------------------


def current_revision(location: str | os.PathLike[str]) -> str | None:
    """The index's revision, or ``None`` for a missing or empty one. Changes nothing.

    Raises:
        NotAnIndexError: The location holds something else.
    """
    target = resolve_location(location)
    if target.kind == "sqlite" and target.path is not None:
        return _probe_sqlite(target.path, 5.0).revision
    engine = create_index_engine(target, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            return _probe_connection(conn, target.display).revision
    finally:
        engine.dispose()


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
    """
    from .engine import DEFAULT_BUSY_TIMEOUT

    target = resolve_location(location)
    engine = create_index_engine(target, poolclass=sa.NullPool)
    try:
        return prepare_index(
            target,
            engine,
            busy_timeout=DEFAULT_BUSY_TIMEOUT,
            lock_timeout=lock_timeout,
            script_location=script_location,
        )
    finally:
        engine.dispose()
