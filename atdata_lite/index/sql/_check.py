"""``atdata-lite db check``: is the SQLite index file sound, and what did crashes leave behind?

:func:`check_index` runs SQLite's ``PRAGMA integrity_check`` (every page, every index: it
reads the whole file, so it is not done on every open), then the index's own rules (one
known revision; foreign keys hold; each dataset's shards numbered 0..n-1; names and
content ids present; each dataset's packed shard list equal to its shard rows), and lists
leftovers: ``.tmp-`` files that a process killed while writing left next to the index or in
a shard store, and ``.tar`` shards in a store that no entry names (orphans).
:func:`clean_leftovers` deletes the temporary files older than a grace period; orphan
shards are only reported (they may be someone's data).
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..._records import ShardRecord
from ._packed import unpack_shards
from .engine import connect_read_only
from .tables import KNOWN_REVISIONS, PACKED_REVISION, VERSION_TABLE

__all__ = ["DEFAULT_GRACE_SECONDS", "CheckReport", "Leftover", "check_index", "clean_leftovers"]

#: Temporary files younger than this (seconds) may belong to a write still running.
DEFAULT_GRACE_SECONDS = 3600.0

_SHARD_TEMP = re.compile(r"^\..+\.tmp-[0-9a-f]{32}$")


@dataclass
class Leftover:
    """A file left by an interrupted write.

    Attributes:
        path: Where it is.
        kind: ``"temporary"`` (a ``.tmp-`` file; removable) or ``"orphan shard"``.
        age: Seconds since it was last modified (``None`` if unknown).
        size: Bytes.
    """

    path: str
    kind: str
    age: float | None
    size: int | None


@dataclass
class CheckReport:
    """What :func:`check_index` found.

    Attributes:
        path: The index file.
        integrity: ``["ok"]`` or SQLite's list of problems.
        problems: Broken index rules (empty when sound).
        leftovers: Temporary files and orphan shards.
        counts: Rows per table.
    """

    path: str
    integrity: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    leftovers: list[Leftover] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def sound(self) -> bool:
        """Whether SQLite and the index's rules found nothing wrong."""
        return self.integrity == ["ok"] and not self.problems


def check_index(
    path: Path, *, stores: list[str] | None = None, busy_timeout: float = 5.0
) -> CheckReport:
    """Check the SQLite index file ``path`` (read-only) and look for leftovers.

    Args:
        path: The index file.
        stores: Shard store roots (local paths or fsspec URLs) to look for leftovers in.
        busy_timeout: Seconds to wait for a writer.

    Returns:
        The report; nothing is changed.
    """
    report = CheckReport(str(path))
    urls: set[str] = set()
    try:
        conn = connect_read_only(path, busy_timeout=busy_timeout)
    except Exception as exc:  # a file SQLite cannot open at all is the report's answer
        report.integrity = [f"cannot be opened: {exc}"]
    else:
        try:
            report.integrity = _integrity(conn)
            _rules(conn, report, urls)
        finally:
            conn.close()
    report.leftovers.extend(_index_temporaries(path))
    for store in stores or []:
        report.leftovers.extend(_store_leftovers(store, urls))
    return report


def _integrity(conn: sqlite3.Connection) -> list[str]:
    try:
        return [str(r[0]) for r in conn.execute("PRAGMA integrity_check(100)")]
    except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
        return [f"integrity_check failed: {exc}"]


def _rules(conn: sqlite3.Connection, report: CheckReport, urls: set[str]) -> None:
    def rows(sql: str) -> list[Any]:
        try:
            return conn.execute(sql).fetchall()
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            report.problems.append(f"cannot read ({sql.split()[0]} ...): {exc}")
            return []

    revisions = [r[0] for r in rows(f"SELECT version_num FROM {VERSION_TABLE}")]
    if len(revisions) != 1 or revisions[0] not in KNOWN_REVISIONS:
        report.problems.append(f"{VERSION_TABLE} should hold one known revision: {revisions}")
    for table in ("datasets", "dataset_shards", "schemas"):
        found = rows(f"SELECT count(*) FROM {table}")
        if found:
            report.counts[table] = found[0][0]
    for row in rows("PRAGMA foreign_key_check")[:20]:
        report.problems.append(f"row {row[1]} of {row[0]} points at a missing {row[2]} row")
    for name, count, low, high in rows(
        "SELECT d.name, count(s.position), min(s.position), max(s.position) FROM datasets d "
        "JOIN dataset_shards s ON s.dataset_id = d.id GROUP BY d.id "
        "HAVING min(s.position) != 0 OR max(s.position) != count(s.position) - 1"
    )[:20]:
        report.problems.append(
            f"dataset {name!r}: its {count} shards are numbered {low}..{high}, not 0..{count - 1}"
        )
    for (name,) in rows(
        "SELECT name FROM datasets WHERE name IS NULL OR name = '' OR cid IS NULL OR cid = ''"
    )[:20]:
        report.problems.append(f"dataset {name!r} has no name or no content id")
    if revisions and revisions[0] in KNOWN_REVISIONS[KNOWN_REVISIONS.index(PACKED_REVISION) :]:
        report.problems.extend(_packed_problems(rows)[:20])
    urls.update(r[0] for r in rows("SELECT url FROM dataset_shards"))


def _packed_problems(rows: Any) -> list[str]:
    """Datasets whose packed shard list (what readers read) differs from their shard rows."""
    shards: dict[int, list[ShardRecord]] = {}
    for did, *fields in rows(
        "SELECT dataset_id, url, size, sample_count, sha256, split FROM dataset_shards "
        "ORDER BY dataset_id, position"
    ):
        shards.setdefault(did, []).append(ShardRecord(*fields))
    problems = []
    for did, name, packed in rows("SELECT id, name, packed_shards FROM datasets ORDER BY id"):
        if packed is None:
            continue  # not packed: readers read the shard rows themselves
        try:
            listed = list(unpack_shards(packed))
        except ValueError as exc:
            problems.append(f"dataset {name!r}: its {exc} (readers read its shard rows)")
            continue
        if listed != shards.get(did, []):
            problems.append(
                f"dataset {name!r}: the shard list packed on its row differs from its shard "
                "rows (changed by hand, or shard rows lost)"
            )
    return problems


def _age(mtime: float | None) -> float | None:
    return None if mtime is None else max(0.0, time.time() - mtime)


def _index_temporaries(path: Path) -> list[Leftover]:
    found = []
    prefix = path.name + "."
    with contextlib.suppress(OSError):
        for entry in path.parent.iterdir():
            if entry.name.startswith(prefix) and ".tmp-" in entry.name:
                st = entry.stat()
                found.append(Leftover(str(entry), "temporary", _age(st.st_mtime), st.st_size))
    return found


def _normal(location: str) -> str:
    from fsspec.core import url_to_fs

    inner: str  # fsspec is untyped
    fs, inner = url_to_fs(location)
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    if protocol in ("file", "local"):
        return os.path.normpath(os.path.realpath(inner))
    return f"{protocol}://{inner.rstrip('/')}"


def _store_leftovers(store: str, urls: set[str]) -> list[Leftover]:
    from fsspec.core import url_to_fs

    fs, root = url_to_fs(store)
    try:
        files = fs.find(root, detail=True)
    except (FileNotFoundError, OSError):
        return []
    referenced = set()
    for url in urls:
        with contextlib.suppress(Exception):
            referenced.add(_normal(url))
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    found = []
    for name, info in files.items():
        base = name.rsplit("/", 1)[-1]
        mtime = info.get("mtime")
        if mtime is None and info.get("LastModified") is not None:
            mtime = info["LastModified"].timestamp()
        location = name if protocol in ("file", "local") else f"{protocol}://{name}"
        if _SHARD_TEMP.match(base):
            found.append(Leftover(location, "temporary", _age(mtime), info.get("size")))
        elif base.endswith(".tar") and _normal(location) not in referenced:
            found.append(Leftover(location, "orphan shard", _age(mtime), info.get("size")))
    return found


def clean_leftovers(
    report: CheckReport, *, grace: float = DEFAULT_GRACE_SECONDS
) -> tuple[list[str], list[str]]:
    """Delete the report's temporary files older than ``grace`` seconds.

    Orphan shards are never deleted here: a shard no entry names may still be someone's
    data (an index elsewhere, a write about to be indexed).

    Returns:
        ``(deleted, kept)``: paths deleted, and temporary files kept (too young, unknown
        age, or not deletable).
    """
    from fsspec.core import url_to_fs

    deleted: list[str] = []
    kept: list[str] = []
    for leftover in report.leftovers:
        if leftover.kind != "temporary":
            continue
        if leftover.age is None or leftover.age < grace:
            kept.append(leftover.path)
            continue
        try:
            fs, inner = url_to_fs(leftover.path)
            fs.rm_file(inner)
        except OSError:
            kept.append(leftover.path)
        else:
            deleted.append(leftover.path)
    return deleted, kept
