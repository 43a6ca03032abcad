"""Opening an index: revision check, lock, create/stamp, backup, Alembic upgrade.

This module runs the steps; :mod:`._probe` reads the state, :mod:`._lock` holds the locks,
:mod:`._backups` writes the backups.

What happens when an index is opened, decided from the version table
(``atdata_lite_alembic_version``):

* **current** (the revision is :data:`HEAD_REVISION`): nothing; that check is one small query
  and Alembic is not imported;
* **new** (missing or empty file, empty database): tables created and stamped at head,
  still without Alembic;
* **older known revision**: the SQLite file is backed up next to itself
  (``<file>.backup-<revision>-<UTC time>``, SQLite's online backup API, written to a
  temporary name and renamed; the newest three are kept), then upgraded by
  Alembic in one transaction. If the upgrade fails, the index is left as it was and
  :class:`MigrationError` says where the backup is. PostgreSQL needs no file backup: its DDL is
  transactional, the failed upgrade rolls back;
* **unknown revision**: written by a newer atdata-lite: :class:`IndexTooNewError`;
* **not an index** (not SQLite, corrupt, or a database with tables but no version table):
  :class:`NotAnIndexError`, and the file is never modified: its 16-byte header is checked
  and its tables are read with a plain connection before any setting (WAL would rewrite the
  header) is applied.

A read-only index (``read_only=True``, or a file on read-only media) is only probed: at the
current revision it opens, otherwise :class:`IndexReadOnlyError` says why it cannot.

A new SQLite file is created readable and writable by its owner only (``0600``; SQLite
gives its ``-wal`` and ``-shm`` files the same mode).

Creating and upgrading happen under a lock (a sidecar ``<file>.lock`` for SQLite, a session
advisory lock on PostgreSQL) and the state is checked again once the lock is held, so several
processes opening the same new or old index at once wait for the one that migrates.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ..._log import get_logger
from ...errors import IndexOpenError, IndexReadOnlyError, MigrationError
from ._backups import backup_sqlite
from ._faults import corrupt_error, is_corruption
from ._lock import file_lock, pg_lock
from ._probe import (
    IndexState,
    probe_connection,
    probe_sqlite,
    read_revision_fast,
    refuse_unknown,
)
from .engine import IndexTarget, create_index_engine, resolve_location
from .tables import HEAD_REVISION, metadata, version_metadata, version_table

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

log = get_logger(__name__)

DEFAULT_LOCK_TIMEOUT = 300.0

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


# --- doing it ---------------------------------------------------------------------------


def prepare_index(
    target: IndexTarget,
    engine: sa.Engine,
    *,
    busy_timeout: float,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    script_location: str | os.PathLike[str] | None = None,
    read_only: bool = False,
) -> tuple[str | None, str]:
    """Make the index at ``target`` current: check, create, or back up and upgrade.

    Args:
        target: Where the index is.
        engine: The backend's engine (used for the one-query check on PostgreSQL).
        busy_timeout: SQLite busy timeout, seconds.
        lock_timeout: How long to wait for another process that is migrating.
        script_location: Another Alembic scripts directory (tests).
        read_only: Only check: an index that would need creating or upgrading is refused.

    Returns:
        ``(revision found, revision now)``; the first is ``None`` for a new index.

    Raises:
        NotAnIndexError, IndexCorruptError, IndexTooNewError, MigrationError,
        IndexLockedError, IndexReadOnlyError, IndexOpenError.
    """
    if target.kind == "sqlite" and target.path is not None:
        state = probe_sqlite(target.path, busy_timeout)
        if state.revision == HEAD_REVISION:
            return HEAD_REVISION, HEAD_REVISION
        if state.revision is not None:
            refuse_unknown(state.revision, target.display)
        if read_only:
            _refuse_read_only(target, state)
        _make_parent(target.path)
        lock_path = target.path.with_name(target.path.name + ".lock")
        with file_lock(lock_path, timeout=lock_timeout, what=f"migrating {target.path}"):
            # Someone else may have migrated while we waited: decide again.
            state = probe_sqlite(target.path, busy_timeout)
            return _migrate(target, state, busy_timeout, script_location)

    # PostgreSQL (and in-memory SQLite): the common case costs one query.
    revision = read_revision_fast(engine)
    if revision == HEAD_REVISION:
        return HEAD_REVISION, HEAD_REVISION
    if read_only:
        with engine.connect() as conn:
            state = probe_connection(conn, target.display)
        if state.revision is not None:
            refuse_unknown(state.revision, target.display)
        _refuse_read_only(target, state)
    if target.kind != "postgresql":  # in-memory SQLite: private to this engine, no lock
        with engine.connect() as conn:
            state = probe_connection(conn, target.display)
        return _run_migration(engine, target, state, None, script_location)
    with engine.connect() as lock_conn, pg_lock(lock_conn, lock_timeout, target.display):
        state = probe_connection(lock_conn, target.display)
        lock_conn.rollback()
        return _migrate(target, state, busy_timeout, script_location, engine=engine)


def _refuse_read_only(target: IndexTarget, state: IndexState) -> None:
    if state.revision is None:
        raise IndexReadOnlyError(
            f"No index at {target.display} to open read-only: nothing is there yet, and a "
            "read-only index cannot be created. Check the location, or open it writable once "
            "to create it."
        )
    raise IndexReadOnlyError(
        f"The index {target.display} is at revision {state.revision} and needs an upgrade to "
        f"{HEAD_REVISION} before this atdata-lite can read it, which a read-only index "
        "cannot have. Open it where it is writable once (or run 'atdata-lite db upgrade')."
    )


def _make_parent(path: Path) -> None:
    """Create the index's directory, with an error that says what is in the way."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
        raise IndexOpenError(
            f"Cannot create the index {path}: {blocker or exc.filename} is a file, not a "
            "directory. Choose another location."
        ) from exc
    except OSError as exc:
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise IndexReadOnlyError(
                f"Cannot create the index {path}: {exc.filename} cannot be created "
                f"({exc.strerror}). Choose a writable location."
            ) from exc
        raise IndexOpenError(f"Cannot create the index {path}: {exc}.") from exc


def _create_private_file(path: Path) -> None:
    """Create the empty index file readable and writable by its owner only (0600).

    SQLite would create it with the process's default mode (usually world-readable); an
    empty file is a new database to SQLite, and its ``-wal``/``-shm`` files take this mode.
    """
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError as exc:
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise IndexReadOnlyError(
                f"Cannot create the index {path}: {exc.strerror}. Choose a writable location."
            ) from exc
        raise IndexOpenError(f"Cannot create the index {path}: {exc.strerror}.") from exc


def _migrate(
    target: IndexTarget,
    state: IndexState,
    busy_timeout: float,
    script_location: str | os.PathLike[str] | None,
    *,
    engine: sa.Engine | None = None,
) -> tuple[str | None, str]:
    if state.revision == HEAD_REVISION:
        return HEAD_REVISION, HEAD_REVISION
    if state.revision is not None:
        refuse_unknown(state.revision, target.display)
    backup = None
    if state.revision is not None and target.path is not None:
        backup = backup_sqlite(target.path, state.revision)
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
    state: IndexState,
    backup: Path | None,
    script_location: str | os.PathLike[str] | None,
) -> tuple[str | None, str]:
    from .engine import WRITE

    write_engine = engine.execution_options(**{WRITE: True})
    if state.revision is None:
        if target.path is not None:
            _create_private_file(target.path)
        with _mapped_errors(target), write_engine.begin() as conn:
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
        if target.path is not None and is_corruption(exc):
            raise corrupt_error(target.path, exc) from exc
        translated = _translated(target, exc)
        if translated is not None:
            raise translated from exc
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


def _translated(target: IndexTarget, exc: BaseException) -> Exception | None:
    if target.path is None:
        return None
    from ._faults import translate

    return translate(target.path, getattr(exc, "orig", None) or exc)


@contextmanager
def _mapped_errors(target: IndexTarget) -> Iterator[None]:
    """Disk full, read-only or damaged file while creating: our error, not SQLAlchemy's."""
    try:
        yield
    except sa.exc.DBAPIError as exc:
        translated = _translated(target, exc)
        if translated is None:
            raise
        raise translated from exc


# --- library functions for ``atdata-lite db`` ---------------------------------------------


def current_revision(location: str | os.PathLike[str]) -> str | None:
    """The index's revision, or ``None`` for a missing or empty one. Changes nothing.

    Raises:
        NotAnIndexError: The location holds something else.
    """
    target = resolve_location(location)
    if target.kind == "sqlite" and target.path is not None:
        return probe_sqlite(target.path, 5.0).revision
    engine = create_index_engine(target, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            return probe_connection(conn, target.display).revision
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
