"""``atdata-lite db recover``: rebuild a damaged SQLite index, keeping the damaged file.

Two ways, both writing the new index to a temporary name first:

* **salvage** (default): a new index is created and every row that can still be read from
  the damaged file is copied into it, table by table in rowid ranges (a range SQLite cannot
  read is retried row by row, so one bad page loses only its own rows). A row that breaks
  a rule (a duplicate name, a shard whose dataset is gone, a missing value) is dropped; a
  dataset that lost any of its shards (its shard rows differ from the shard list packed on
  its row, or are not numbered 0..n-1) is dropped whole rather than kept with fewer shards.
  The report lists what was lost.
* **from a backup**: the backup (checked with ``integrity_check`` first) is copied in; it
  holds the index as it was when the backup was taken, and is upgraded on the next open.

Then, under the index's lock, the damaged file (with its ``-wal``) is renamed to
``<file>.damaged-<UTC time>`` and the new file takes its name. Nothing is deleted. Stop
other programs using the index first: they still hold the damaged file open.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..._records import ShardRecord
from ...errors import IndexOpenError
from ._backups import newest_backup
from ._lock import file_lock
from ._packed import pack_shards, unpack_shards
from .engine import connect_read_only
from .tables import dataset_shards, datasets, schemas

__all__ = ["RecoverReport", "recover_index"]

_CHUNK = 256


@dataclass
class RecoverReport:
    """What :func:`recover_index` did.

    Attributes:
        path: The index file (now the recovered one).
        damaged: Where the damaged file was moved.
        source: ``"salvage"`` or the backup used.
        kept: Rows copied, per table.
        lost: Rows that could not be read or broke a rule, per table.
        lost_datasets: Names of datasets dropped (unreadable shard rows).
    """

    path: str
    damaged: str
    source: str
    kept: dict[str, int] = field(default_factory=dict)
    lost: dict[str, int] = field(default_factory=dict)
    lost_datasets: list[str] = field(default_factory=list)


def recover_index(
    path: Path, *, from_backup: Path | str | None = None, lock_timeout: float = 60.0
) -> RecoverReport:
    """Rebuild the index file ``path`` by salvage or from a backup; keep the damaged file.

    Args:
        path: The damaged index file.
        from_backup: A backup file, or ``"newest"`` for the newest one; ``None`` salvages.
        lock_timeout: Seconds to wait for the index's migration lock.

    Raises:
        IndexOpenError: Nothing to recover, or the backup is unusable (nothing changed).
    """
    if not path.is_file():
        raise IndexOpenError(f"No index file at {path} to recover.")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    temp = path.with_name(f"{path.name}.recover-{stamp}.tmp-{os.getpid()}")
    lock = path.with_name(path.name + ".lock")
    with file_lock(lock, timeout=lock_timeout, what=f"recovering {path}"):
        try:
            if from_backup is not None:
                backup = newest_backup(path) if from_backup == "newest" else Path(from_backup)
                if backup is None:
                    raise IndexOpenError(f"There is no backup of {path} to recover from.")
                report = RecoverReport(str(path), "", str(backup))
                _copy_backup(backup, temp)
            else:
                report = RecoverReport(str(path), "", "salvage")
                _salvage(path, temp, report)
            damaged = path.with_name(f"{path.name}.damaged-{stamp}")
            _swap(path, temp, damaged)
            report.damaged = str(damaged)
            return report
        finally:
            for leftover in (temp, *_sidecars(temp)):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()


def _sidecars(path: Path) -> list[Path]:
    return [path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal")]


def _copy_backup(backup: Path, temp: Path) -> None:
    try:
        source = connect_read_only(backup, busy_timeout=5.0)
        try:
            verdict = [r[0] for r in source.execute("PRAGMA integrity_check(20)")]
            if verdict != ["ok"]:
                raise IndexOpenError(f"The backup {backup} is damaged too: {verdict}.")
            os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
            dest = sqlite3.connect(temp, isolation_level=None)
            try:
                source.backup(dest)
            finally:
                dest.close()
        finally:
            source.close()
    except sqlite3.Error as exc:
        raise IndexOpenError(f"Cannot recover from the backup {backup}: {exc}.") from exc


def _read_rows(conn: sqlite3.Connection, table: str, columns: list[str]) -> tuple[list[Any], int]:
    """Every readable row of ``table`` (rowid order) and how many reads failed."""
    select = f"SELECT {', '.join(columns)} FROM {table}"
    try:
        top = conn.execute(f"SELECT max(rowid) FROM {table}").fetchone()[0] or 0
    except (sqlite3.DatabaseError, UnicodeDecodeError):
        top = 1 << 20  # the table's last page is unreadable: look far enough
    rows: list[Any] = []
    failed = 0
    for low in range(0, top + 1, _CHUNK):
        try:
            rows.extend(
                conn.execute(
                    f"{select} WHERE rowid >= ? AND rowid < ?", (low, low + _CHUNK)
                ).fetchall()
            )
            continue
        except (sqlite3.DatabaseError, UnicodeDecodeError):
            pass
        for rowid in range(low, low + _CHUNK):
            try:
                rows.extend(conn.execute(f"{select} WHERE rowid = ?", (rowid,)).fetchall())
            except (sqlite3.DatabaseError, UnicodeDecodeError):
                failed += 1
    return rows, failed


def _salvage(path: Path, temp: Path, report: RecoverReport) -> None:
    from . import open_sql_backend

    open_sql_backend(str(temp)).close()  # a new, empty index at the current revision
    try:
        source = connect_read_only(path, busy_timeout=5.0)
    except sqlite3.Error as exc:
        raise IndexOpenError(
            f"SQLite cannot open {path} at all ({exc}): nothing can be salvaged. Recover "
            "from a backup instead (--from-backup)."
        ) from exc
    dest = sqlite3.connect(temp, isolation_level=None)
    try:
        dest.execute("PRAGMA foreign_keys=ON")
        dest.execute("BEGIN IMMEDIATE")
        for table in (schemas, datasets, dataset_shards):
            columns = [c.name for c in table.columns]
            rows, failed = _read_rows(source, table.name, columns)
            kept = 0
            insert = (
                f"INSERT INTO {table.name} ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' * len(columns))})"
            )
            for row in rows:
                try:
                    dest.execute(insert, row)
                    kept += 1
                except sqlite3.DatabaseError:  # a rule the damaged row breaks
                    failed += 1
            report.kept[table.name] = kept
            report.lost[table.name] = failed
        # A dataset missing any shard row would silently read fewer samples: drop it whole.
        broken = dest.execute(
            "SELECT d.id, d.name FROM datasets d LEFT JOIN dataset_shards s "
            "ON s.dataset_id = d.id GROUP BY d.id "
            "HAVING count(s.position) > 0 AND (min(s.position) != 0 "
            "OR max(s.position) != count(s.position) - 1)"
        ).fetchall()
        for dataset_id, name in broken:
            dest.execute("DELETE FROM datasets WHERE id = ?", (dataset_id,))
            report.lost_datasets.append(str(name))
        report.kept["datasets"] -= len(broken)
        # The packed shard list also tells a dataset that lost every shard row (which the
        # numbering above cannot see): drop those whole too.
        emptied = _unlike_packed(dest)
        for dataset_id, name in emptied:
            dest.execute("DELETE FROM datasets WHERE id = ?", (dataset_id,))
            report.lost_datasets.append(str(name))
        report.kept["datasets"] -= len(emptied)
        dest.execute("COMMIT")
        dest.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        if [r[0] for r in dest.execute("PRAGMA integrity_check(5)")] != ["ok"]:
            raise IndexOpenError(f"The salvaged copy of {path} failed its own check.")
    finally:
        dest.close()
        source.close()


def _unlike_packed(conn: sqlite3.Connection) -> list[tuple[int, str]]:
    """Datasets whose shard rows differ from their packed list; an unreadable list is
    packed again from the rows."""
    shards: dict[int, list[ShardRecord]] = {}
    for did, *fields in conn.execute(
        "SELECT dataset_id, url, size, sample_count, sha256, split FROM dataset_shards "
        "ORDER BY dataset_id, position"
    ):
        shards.setdefault(did, []).append(ShardRecord(*fields))
    unlike = []
    datasets_ = conn.execute("SELECT id, name, packed_shards FROM datasets").fetchall()
    for did, name, packed in datasets_:
        if packed is None:
            continue  # not packed: readers read the rows
        try:
            listed = list(unpack_shards(packed))
        except ValueError:
            conn.execute(
                "UPDATE datasets SET packed_shards = ? WHERE id = ?",
                (pack_shards(shards.get(did, [])), did),
            )
            continue
        if listed != shards.get(did, []):
            unlike.append((did, name))
    return unlike


def _swap(path: Path, temp: Path, damaged: Path) -> None:
    """Move the damaged file (and its WAL) aside, then put the new file in its place."""
    with open(temp, "rb+") as f:
        os.fsync(f.fileno())
    os.rename(path, damaged)
    wal = path.with_name(path.name + "-wal")
    if wal.exists():
        os.rename(wal, damaged.with_name(damaged.name + "-wal"))
    with contextlib.suppress(FileNotFoundError):
        path.with_name(path.name + "-shm").unlink()  # rebuilt by SQLite from the files
    os.replace(temp, path)
