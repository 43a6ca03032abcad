"""Reading an index's revision without changing anything: what opening it must do.

:func:`probe_sqlite` reads a SQLite file through a read-only connection with no settings
applied (WAL would rewrite the header of a file that may not be ours), and decides from one
read transaction that covers both the table list and the version table: another process
creating the same new index at that moment is seen either not at all or whole, never half
(tables there, version row not yet), which would look like someone else's database.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from ...errors import IndexLockedError, IndexTooNewError, NotAnIndexError
from ._faults import corrupt_error, is_corruption
from .engine import connect_read_only
from .tables import HEAD_REVISION, KNOWN_REVISIONS, VERSION_TABLE, metadata, version_table

__all__ = [
    "IndexState",
    "probe_connection",
    "probe_sqlite",
    "read_revision_fast",
    "refuse_unknown",
]

SQLITE_HEADER = b"SQLite format 3\x00"


@dataclass(frozen=True)
class IndexState:
    """What the version table says: ``revision`` or ``None`` for an empty/new index."""

    revision: str | None


def check_sqlite_header(path: Path) -> bool:
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


def probe_sqlite(path: Path, busy_timeout: float) -> IndexState:
    """Read the revision of a SQLite file with a plain read-only connection (no settings).

    Raises:
        NotAnIndexError: Not SQLite, or a SQLite database of someone else's.
        IndexCorruptError: A SQLite file that SQLite reports as damaged.
        IndexLockedError: Another process kept the file locked.
    """
    if not path.exists() or not check_sqlite_header(path):
        return IndexState(None)
    try:
        # Read-only: a read-write connection would roll back a hot journal, or checkpoint
        # and delete a WAL file when it closes, modifying a file that may not be ours.
        conn = connect_read_only(path, busy_timeout=busy_timeout)
    except (sqlite3.Error, UnicodeDecodeError) as exc:
        if is_corruption(exc):
            raise corrupt_error(path, exc) from exc
        raise NotAnIndexError(f"Cannot open {path} as an index: {exc}.") from exc
    try:
        # One read transaction (deferred: its snapshot starts at the first SELECT) for both
        # reads, so they see the same state of the file.
        conn.execute("BEGIN")
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        if VERSION_TABLE not in tables:
            if tables:
                shown = ", ".join(tables[:8]) + (", ..." if len(tables) > 8 else "")
                raise NotAnIndexError(
                    f"{path} is not an atdata-lite index: it is a SQLite database with other "
                    f"tables ({shown}) and no {VERSION_TABLE} table. It was left untouched; "
                    "choose another path."
                )
            return IndexState(None)
        rows = conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchall()
    except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            raise IndexLockedError(f"The index {path} stayed locked: {exc}.") from exc
        if is_corruption(exc):
            raise corrupt_error(path, exc) from exc
        raise NotAnIndexError(
            f"{path} is not a readable atdata-lite index: SQLite says {exc!s}. It was left "
            "untouched."
        ) from exc
    finally:
        conn.close()
    return IndexState(single_revision(rows, str(path)))


def single_revision(rows: Sequence[Sequence[str]], where: str) -> str | None:
    """The one revision in the version table's ``rows``, or ``None`` if there is none."""
    if not rows:
        return None
    if len(rows) > 1:
        raise NotAnIndexError(
            f"The index {where} has several revisions in {VERSION_TABLE} "
            f"({', '.join(str(r[0]) for r in rows)}); it was not written by atdata-lite."
        )
    return rows[0][0]


def probe_connection(conn: sa.Connection, where: str) -> IndexState:
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
        return IndexState(None)
    rows = conn.execute(sa.select(version_table.c.version_num)).fetchall()
    return IndexState(single_revision(rows, where))


def read_revision_fast(engine: sa.Engine) -> str | None:
    """One query on the version table; ``None`` if anything is unusual (slow path decides)."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(version_table.c.version_num)).fetchall()
    except sa.exc.DBAPIError:
        return None
    return rows[0][0] if len(rows) == 1 else None


def refuse_unknown(revision: str, where: str) -> None:
    """Raise :class:`IndexTooNewError` unless ``revision`` is one this code knows."""
    if revision not in KNOWN_REVISIONS:
        raise IndexTooNewError(
            f"The index {where} is at revision {revision}, which this atdata-lite does not "
            f"know (its newest is {HEAD_REVISION}): it was written by a newer atdata-lite. "
            "Upgrade atdata-lite (pip install -U atdata-lite) to open it."
        )
