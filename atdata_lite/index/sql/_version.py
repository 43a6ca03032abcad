"""``data_version``: a cheap number that changes whenever any process changes the catalog.

* SQLite file: ``PRAGMA data_version`` on one private read-only connection, which never
  writes. SQLite changes the value it reports whenever *another* connection commits, and
  every write, this process's included, runs on other connections; the pragma reads no
  table. The raw value only means something to its own connection, so it is turned into a
  counter that grows by one at each change seen.
* PostgreSQL: every write transaction also rewrites the one row of the private version
  table to itself (``UPDATE ... SET version_num = version_num``). PostgreSQL stamps the new
  row version with the writing transaction's id (its ``xmin``), visible exactly when that
  transaction commits; reading it is a one-row query. No schema change is needed. The
  row's lock serialises write transactions at their very end, which a catalog (rare, short
  writes) does not notice.
* In-memory SQLite (one process by definition): a counter of this backend's own writes.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import sqlalchemy as sa

from .tables import VERSION_TABLE

__all__ = ["PG_BUMP", "PG_READ", "SqliteDataVersion"]

#: Run at the end of each PostgreSQL write transaction.
PG_BUMP = sa.text(f"UPDATE {VERSION_TABLE} SET version_num = version_num")
#: The current value on PostgreSQL: the id of the last transaction that wrote.
PG_READ = sa.text(f"SELECT xmin::text FROM {VERSION_TABLE}")


class SqliteDataVersion:
    """A counter of the changes committed to one SQLite file (or made through this backend).

    Args:
        path: The index file, or ``None`` for an in-memory database.
    """

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._last: int | None = None
        self._count = 0

    def _connection(self) -> sqlite3.Connection | None:
        if self._path is None:
            return None
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        uri = self._path.resolve().as_uri()
        try:
            conn = sqlite3.connect(
                f"{uri}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA data_version").fetchone()
        except sqlite3.Error:
            return None  # read-only media: nothing but this process can change it anyway
        self._conn, self._pid, self._last = conn, os.getpid(), None
        return conn

    def own_write(self) -> None:
        """Count a write of this backend (what an in-memory database relies on)."""
        if self._path is None:
            with self._lock:
                self._count += 1

    def current(self) -> int:
        """The counter: it grows by at least one whenever the database changed."""
        with self._lock:
            conn = self._connection()
            if conn is not None:
                (value,) = conn.execute("PRAGMA data_version").fetchone()
                if value != self._last:
                    if self._last is not None:
                        self._count += 1
                    self._last = value
            return self._count

    def close(self) -> None:
        """Close the private connection (idempotent)."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None and self._pid == os.getpid():
                conn.close()
