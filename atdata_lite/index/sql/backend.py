"""The SQL index backend (SQLite and PostgreSQL), written with Core statements only.

Every statement is built once at import time on the Core tables of :mod:`.tables`, so a call
costs SQLAlchemy's cached execution and no ORM work. A dataset is read with one statement
(the dataset joined to its shards), which is also one consistent snapshot on SQLite without
a transaction.

Atomicity: every write runs in one transaction (``BEGIN IMMEDIATE`` on SQLite, so writers are
serialised before they read). Uniqueness (names, CIDs, ``name@version``) is enforced by the
database's unique constraints; a concurrent writer that loses a race on PostgreSQL gets an
``IntegrityError``, and the whole operation is retried, then sees the winner's row and applies
the normal rules. That is how concurrent auto-versioned ``publish_schema`` calls get distinct
versions on both databases.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, TypeVar

import sqlalchemy as sa

from ..._log import get_logger
from ..._records import ShardForm
from ...errors import (
    DatasetExistsError,
    DatasetNotFoundError,
    IndexOpenError,
    IndexReadOnlyError,
    SchemaConflictError,
)
from .._hints import no_entry_named
from .._versions import is_bump, latest_of, version_sort_key
from ..backend import (
    CatalogWriteResult,
    DatasetRecord,
    IndexBackend,
    LabelRow,
    LensRow,
    OnConflict,
    SchemaRow,
    checked_catalog,
    checked_insert,
    insert_conflict,
    same_content_bump,
    version_slot,
)
from ._exec import Executor, IntegrityErrors, Writer
from ._packed import pack_shards
from ._points import RARE, compact_select, read_point
from ._rows import DEFAULT_VERSION, SKIPPED, items, read_row, records
from ._version import PG_BUMP, PG_READ, SqliteDataVersion
from .engine import IndexTarget
from .tables import HEAD_REVISION, dataset_shards, datasets, labels, lenses, schemas

__all__ = ["SqlBackend"]

log = get_logger(__name__)

_RETRIES = 20
_CHUNK = 400  # bound parameters per IN (...) list: far below every SQLite build's limit
_SEMVER = re.compile(r"^(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})$")

# --- statements, built once -------------------------------------------------------------

_d, _s, _sc = datasets.c, dataset_shards.c, schemas.c
_lb, _ln = labels.c, lenses.c
# updated_at is read as NULL when it equals created_at (see ._rows.read_row): most entries
# were never replaced nor renamed, and a NULL costs the driver next to nothing to hand over,
# where a timestamp is text to decode (SQLite) or a value to build.
_UPDATED_IF_LATER = sa.func.nullif(_d.updated_at, _d.created_at, type_=_d.updated_at.type)
# The version as NULL when it is the default one (most entries): no text to hand over.
_DEFAULT_VERSION_AS_NULL = sa.func.nullif(
    _d.version, sa.literal_column(f"'{DEFAULT_VERSION}'"), type_=_d.version.type
)
_DATASET_COLUMNS = (
    _d.cid,
    _d.name,
    _d.schema_ref,
    _d.metadata,
    _d.legacy_uuid,
    _d.created_at,
    _UPDATED_IF_LATER.label("updated_at"),
    _d.packed_shards,
    _DEFAULT_VERSION_AS_NULL.label("version"),
)
# An entry is one row: its shards are packed on it (see ._packed). The shard rows are read
# only for a row whose packed list is NULL (written by hand or through the ORM), by its CID
# (unique), so that reads need not fetch the row id: writers, which do, select it last.
_DATASET = sa.select(*_DATASET_COLUMNS)
_DATASET_AND_ID = sa.select(*_DATASET_COLUMNS, _d.id)
_SHARDS_OF = (
    sa.select(_s.url, _s.size, _s.sample_count, _s.sha256, _s.split)
    .select_from(dataset_shards.join(datasets, _d.id == _s.dataset_id))
    .where(_d.cid == sa.bindparam("cid"))
    .order_by(_s.position)
)
# Constants of the lookups written into their SQL (SQLAlchemy would bind each one, OFFSET
# 0 included, on every lookup): the name is then their only parameter.
_ONE: sa.ColumnClause[Any] = sa.literal_column("1")
_ZERO: sa.ColumnClause[Any] = sa.literal_column("0")
_NO_VERSION: sa.ColumnClause[Any] = sa.literal_column("''")
# The latest version of a name: highest x.y.z, else the most recently created. Two scalar
# subqueries under coalesce (SQLite runs the second only when the first finds nothing): the
# x.y.z one walks ix_datasets_name_semver backwards and stops at its first row, no sort.
# A name@x.y.z is unique and its semver columns come from it, so x.y.z versions never tie.
_LATEST_SEMVER_ID = (
    sa.select(_d.id)
    .where(_d.name == sa.bindparam("name"), _d.semver_major.is_not(None))
    .order_by(_d.semver_major.desc(), _d.semver_minor.desc(), _d.semver_patch.desc())
    .limit(_ONE)
    .offset(_ZERO)
    .scalar_subquery()
)
_LATEST_OTHER_ID = (
    sa.select(_d.id)
    .where(_d.name == sa.bindparam("name"))
    .order_by(_d.created_at.desc(), _d.id.desc())
    .limit(_ONE)
    .offset(_ZERO)
    .scalar_subquery()
)
_LATEST_ID = sa.func.coalesce(_LATEST_SEMVER_ID, _LATEST_OTHER_ID)
_GET_BY_NAME = _DATASET.where(_d.id == _LATEST_ID)
# A plain name in one statement: the unversioned label's dataset, else the latest version
# (two uncorrelated scalar subqueries, each an index lookup, then a primary-key read).
_UNVERSIONED_LABEL_ID = (
    sa.select(_lb.dataset_id)
    .where(_lb.name == sa.bindparam("name"), _lb.version == _NO_VERSION)
    .scalar_subquery()
)
_RESOLVE_NAME = _DATASET.where(
    _d.id == sa.func.coalesce(_UNVERSIONED_LABEL_ID, _LATEST_SEMVER_ID, _LATEST_OTHER_ID)
)
_GET_VERSION = _DATASET.where(
    _d.name == sa.bindparam("name"), _d.version == sa.bindparam("version")
)
_GET_VERSIONS = _DATASET.where(_d.name == sa.bindparam("name")).order_by(_d.id)
_GET_VERSION_AND_ID = _DATASET_AND_ID.where(
    _d.name == sa.bindparam("name"), _d.version == sa.bindparam("version")
)
_GET_VERSIONS_AND_IDS = _DATASET_AND_ID.where(_d.name == sa.bindparam("name")).order_by(_d.id)
_NAMES_PRESENT = sa.select(_d.name).where(_d.name.in_(sa.bindparam("names", expanding=True)))
_GET_BY_CID = _DATASET.where(_d.cid == sa.bindparam("cid"))
# The point read by CID leaves out the CID it looks for (one text value less to hand over).
_ROW_BY_CID = sa.select(*_DATASET_COLUMNS[1:]).where(_d.cid == sa.bindparam("cid"))
# The same three point reads in six columns, for SQLite (see ._points).
_POINT_BY_CID = compact_select(_d.name).where(_d.cid == sa.bindparam("cid"))
_POINT_BY_NAME = compact_select(_d.cid).where(_d.id == _LATEST_ID)
_POINT_RESOLVING = compact_select(_d.cid, name_may_differ=True).where(
    _d.id == sa.func.coalesce(_UNVERSIONED_LABEL_ID, _LATEST_SEMVER_ID, _LATEST_OTHER_ID)
)
_LIST_DATASETS = _DATASET.order_by(_d.name, _d.id)
_LIST_DATASETS_BY_ID = _DATASET.order_by(_d.id)
_NAME_OF_ROW = itemgetter(1)  # a _DATASET row's name
_EXISTING = _DATASET_AND_ID.where(
    sa.or_(_d.name.in_(sa.bindparam("names", expanding=True)),
           _d.cid.in_(sa.bindparam("cids", expanding=True)))
).order_by(_d.id)  # fmt: skip
_INSERT_SHARDS = sa.insert(dataset_shards)
_DELETE_SHARDS = sa.delete(dataset_shards).where(_s.dataset_id == sa.bindparam("did"))
_DELETE_DATASET = sa.delete(datasets).where(_d.id == sa.bindparam("did"))
_DELETE_LABELS_OF = sa.delete(labels).where(_lb.dataset_id == sa.bindparam("did"))
_RENAME_ALL = (
    sa.update(datasets)
    .where(_d.name == sa.bindparam("old_name"))
    .values(name=sa.bindparam("new_name"), updated_at=sa.bindparam("updated_at"))
)
_LABEL_COLUMNS = (_lb.name, _lb.version, _d.cid, _lb.description, _lb.created_at, _lb.updated_at)
_LABELS = sa.select(*_LABEL_COLUMNS, _lb.id).select_from(
    labels.join(datasets, _d.id == _lb.dataset_id)
)
_GET_LABEL = _LABELS.where(_lb.name == sa.bindparam("name"), _lb.version == sa.bindparam("version"))
_LIST_LABELS = _LABELS.order_by(_lb.name, _lb.version)
_LIST_LABELS_OF = _LABELS.where(_lb.name == sa.bindparam("name")).order_by(_lb.version)
_ID_OF_CID = sa.select(_d.id).where(_d.cid == sa.bindparam("cid"))
_INSERT_LABEL = sa.insert(labels)
_MOVE_LABEL = (
    sa.update(labels)
    .where(_lb.id == sa.bindparam("lid"))
    .values(
        dataset_id=sa.bindparam("did"),
        description=sa.bindparam("description"),
        updated_at=sa.bindparam("updated_at"),
    )
)
_DELETE_LABEL = sa.delete(labels).where(_lb.id == sa.bindparam("lid"))
_LENS_COLUMNS = (
    _ln.name, _ln.version, _ln.record_json, _ln.source_schema, _ln.view_schema, _ln.content_hash
)  # fmt: skip
_GET_LENS = sa.select(*_LENS_COLUMNS).where(
    _ln.name == sa.bindparam("name"), _ln.version == sa.bindparam("version")
)
_LIST_LENSES = sa.select(*_LENS_COLUMNS).order_by(
    _ln.name,
    sa.case((_ln.semver_major.is_(None), 1), else_=0),
    _ln.semver_major,
    _ln.semver_minor,
    _ln.semver_patch,
    _ln.version,
)
_LATEST_LENS = (
    sa.select(_ln.semver_major, _ln.semver_minor, _ln.semver_patch)
    .where(_ln.name == sa.bindparam("name"), _ln.semver_major.is_not(None))
    .order_by(_ln.semver_major.desc(), _ln.semver_minor.desc(), _ln.semver_patch.desc())
    .limit(1)
)
_INSERT_LENS = sa.insert(lenses)
_REPLACE_DATASET = (
    sa.update(datasets)
    .where(_d.id == sa.bindparam("did"))
    .values(
        cid=sa.bindparam("cid"),
        schema_ref=sa.bindparam("schema_ref"),
        metadata=sa.bindparam("metadata"),
        packed_shards=sa.bindparam("packed_shards"),
        legacy_uuid=sa.bindparam("legacy_uuid"),
        updated_at=sa.bindparam("updated_at"),
    )
)
_RENAME_DATASET = (
    sa.update(datasets)
    .where(_d.id == sa.bindparam("did"))
    .values(name=sa.bindparam("new_name"), updated_at=sa.bindparam("updated_at"))
)

_SCHEMA_COLUMNS = (_sc.name, _sc.version, _sc.record_json, _sc.content_hash)
_NOT_SEMVER = sa.case((_sc.semver_major.is_(None), 1), else_=0)
_GET_SCHEMA = sa.select(*_SCHEMA_COLUMNS).where(
    _sc.name == sa.bindparam("name"), _sc.version == sa.bindparam("version")
)
_LIST_SCHEMAS = sa.select(*_SCHEMA_COLUMNS).order_by(
    _sc.name, _NOT_SEMVER, _sc.semver_major, _sc.semver_minor, _sc.semver_patch, _sc.version
)
_FIND_SCHEMA = (
    sa.select(*_SCHEMA_COLUMNS)
    .where(_sc.name == sa.bindparam("name"), _sc.content_hash == sa.bindparam("content_hash"))
    .order_by(
        _NOT_SEMVER,
        _sc.semver_major.desc(),
        _sc.semver_minor.desc(),
        _sc.semver_patch.desc(),
        _sc.version.desc(),
    )
    .limit(1)
)
_LATEST_SEMVER = (
    sa.select(_sc.semver_major, _sc.semver_minor, _sc.semver_patch)
    .where(_sc.name == sa.bindparam("name"), _sc.semver_major.is_not(None))
    .order_by(_sc.semver_major.desc(), _sc.semver_minor.desc(), _sc.semver_patch.desc())
    .limit(1)
)
_INSERT_SCHEMA = sa.insert(schemas)


def _semver(version: str) -> tuple[int, int, int] | tuple[None, None, None]:
    if version == DEFAULT_VERSION:  # most rows: no regular expression to run
        return 1, 0, 0
    match = _SEMVER.match(version)
    if match is None:
        return None, None, None
    return int(match[1]), int(match[2]), int(match[3])


def _utc(value: datetime | None) -> datetime | None:
    # SQLite keeps no time zone: the backend wrote UTC, so the naive value read back is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


_R = TypeVar("_R")


def _written_records(
    w: Writer, stmt: sa.Executable, params: dict[str, Any]
) -> Iterator[tuple[int, DatasetRecord]]:
    """:func:`._rows.records` of ``stmt`` (a ``_DATASET_AND_ID`` statement), read inside
    the write transaction ``w``."""

    def shards_of(cid: str) -> Sequence[Sequence[Any]]:
        return w.rows(_SHARDS_OF, {"cid": cid})

    return records(w.rows(stmt, params), shards_of)


def _read_row_in(w: Writer, stmt: sa.Executable, params: dict[str, Any]) -> Iterator[DatasetRecord]:
    """:func:`._rows.items` of ``stmt`` (a ``_DATASET`` statement), read inside ``w``."""

    def shards_of(cid: str) -> Sequence[Sequence[Any]]:
        return w.rows(_SHARDS_OF, {"cid": cid})

    return items(w.rows(stmt, params), shards_of)


def _dataset_row(
    record: DatasetRecord, created: datetime | None, updated: datetime | None
) -> dict[str, Any]:
    version = record.version or "1.0.0"
    major, minor, patch = _semver(version)
    return {
        "version": version,
        "semver_major": major,
        "semver_minor": minor,
        "semver_patch": patch,
        "cid": record.cid,
        "name": record.name,
        "schema_ref": record.schema_ref,
        "metadata": record.metadata,
        "packed_shards": pack_shards(record.shards),
        "legacy_uuid": record.legacy_uuid,
        "created_at": created,
        "updated_at": updated,
    }


def _shard_rows(dataset_id: int, record: DatasetRecord) -> list[dict[str, Any]]:
    # A shard with no facts (no size, count, hash nor split: every shard of an import from
    # URLs) is a row of three values, inserted apart by _insert_shards: the columns left
    # out are NULL all the same, and SQLite's driver binds each None it is given slowly.
    return [
        {"dataset_id": dataset_id, "position": i, "url": s.url}
        if s.size is None and s.sample_count is None and s.sha256 is None and s.split is None
        else {
            "dataset_id": dataset_id,
            "position": i,
            "url": s.url,
            "size": s.size,
            "sample_count": s.sample_count,
            "sha256": s.sha256,
            "split": s.split,
        }
        for i, s in enumerate(record.shards)
    ]


def _insert_shards(w: Writer, rows: list[dict[str, Any]]) -> None:
    """Insert the rows of :func:`_shard_rows`: those without facts, then the others."""
    bare = [row for row in rows if len(row) == 3]
    if len(bare) != len(rows):
        w.execute(_INSERT_SHARDS, [row for row in rows if len(row) != 3])
    if bare:
        w.execute(_INSERT_SHARDS, bare)


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _backoff(attempt: int) -> None:
    time.sleep(random.uniform(0, 0.002 * 2 ** min(attempt, 6)))


class SqlBackend(IndexBackend):
    """An index in a SQLite file or a PostgreSQL database. Open it with ``open_sql_backend``.

    Thread-safe (a pool of connections, one per thread at a time) and usable after ``fork``
    (the child reconnects). ``read_only=True``: every write raises
    :class:`~atdata_lite.errors.IndexReadOnlyError`.
    """

    def __init__(
        self,
        target: IndexTarget,
        engine: sa.Engine,
        executor: Executor,
        *,
        read_only: bool = False,
        read_only_reason: str = "it was opened with read_only=True",
    ) -> None:
        self._target = target
        self.kind = target.kind
        self._engine: sa.Engine | None = engine
        self._x = executor
        self.read_only = read_only
        self._read_only_reason = read_only_reason
        self._versions = SqliteDataVersion(target.path) if target.kind == "sqlite" else None
        # The point reads of every entry lookup, prepared by the executor: on SQLite in six
        # columns (see ._points), each with the full statement for the rare rows.
        lookup = executor.lookup
        self._whole_by_cid = lookup(_ROW_BY_CID, "cid")
        self._whole_by_name = lookup(_GET_BY_NAME, "name")
        self._whole_resolving = lookup(_RESOLVE_NAME, "name")
        if target.kind == "sqlite":
            self._row_by_cid = lookup(_POINT_BY_CID, "cid")
            self._row_by_name = lookup(_POINT_BY_NAME, "name")
            self._row_resolving = lookup(_POINT_RESOLVING, "name")
        else:
            self._row_by_cid = self._whole_by_cid
            self._row_by_name = self._whole_by_name
            self._row_resolving = self._whole_resolving
        self._compact = target.kind == "sqlite"

    # --- identity ---------------------------------------------------------------------

    @property
    def location(self) -> str:
        return self._target.display

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine (for the ORM classes in :mod:`.models`, or raw SQL)."""
        self._check_open()
        assert self._engine is not None
        return self._engine

    def describe(self) -> dict[str, Any]:
        facts: dict[str, Any] = {"kind": self.kind, "location": self.location}
        facts["revision"] = HEAD_REVISION
        if self._target.path is not None:
            facts["path"] = str(self._target.path)
        facts["driver"] = self._target.url.get_driver_name()
        facts["read_only"] = self.read_only
        return facts

    def _check_open(self) -> None:
        if self._engine is None:
            raise IndexOpenError(f"The index {self.location} was closed; open it again.")

    def _read(self, stmt: sa.Executable, params: dict[str, Any]) -> list[Sequence[Any]]:
        if self._engine is None:
            self._check_open()
        return self._x.read(stmt, params)

    def _read_raw(self, stmt: sa.Executable, params: dict[str, Any]) -> tuple[Any, Any]:
        if self._engine is None:
            self._check_open()
        return self._x.read_raw(stmt, params)

    def _read_records(self, stmt: sa.Executable, params: dict[str, Any]) -> Iterator[DatasetRecord]:
        rows, _ = self._read_raw(stmt, params)
        return items(rows, self._shards_of)

    def _shards_of(self, cid: str) -> Sequence[Sequence[Any]]:
        return self._x.read(_SHARDS_OF, {"cid": cid})

    def _begin_write(self) -> Any:
        if self._engine is None:
            self._check_open()
        if self.read_only:
            raise IndexReadOnlyError(
                f"The index {self.location} is read-only ({self._read_only_reason}): it can be "
                "listed and read but not changed. Open it without read_only=True, where it "
                "is writable, to change it."
            )
        return self._counted(self._x.write())

    @contextmanager
    def _counted(self, transaction: Any) -> Iterator[Any]:
        # Every write transaction changes the data version (see ._version), just before it
        # commits: a rolled-back transaction changes nothing.
        with transaction as writer:
            yield writer
            if self._versions is None:
                writer.execute(PG_BUMP, {})
        if self._versions is not None:
            self._versions.own_write()

    def data_version(self) -> int:
        self._check_open()
        if self._versions is not None:
            return self._versions.current()
        rows = self._x.read(PG_READ, {})
        return int(rows[0][0]) if rows else 0

    # --- datasets ---------------------------------------------------------------------

    def get_dataset(self, name: str) -> DatasetRecord | None:
        for record in self._read_records(_GET_BY_NAME, {"name": name}):
            return record
        return None

    def resolve_name(self, name: str) -> DatasetRecord | None:
        for record in self._read_records(_RESOLVE_NAME, {"name": name}):
            return record
        return None

    def get_dataset_by_cid(self, cid: str) -> DatasetRecord | None:
        for record in self._read_records(_GET_BY_CID, {"cid": cid}):
            return record
        return None

    def get_dataset_by_cid_as(
        self, cid: str, make: Callable[..., _R], *, shard_fields: ShardForm = False
    ) -> _R | None:
        # The lookup every get_entry makes: one row, one call, no generator.
        if self._engine is None:
            self._check_open()
        row = self._row_by_cid(cid)
        if row is None:
            return None
        if self._compact:
            item = read_point(cid, row[0], row, self._shards_of, make, shard_fields)
            if item is not RARE:
                return None if item is SKIPPED else item
            row = self._whole_by_cid(cid)  # a rare row (see ._points): read it whole
            if row is None:
                return None
        item = read_row((cid, *row), self._shards_of, make, shard_fields)
        return None if item is SKIPPED else item

    def get_dataset_as(
        self, name: str, make: Callable[..., _R], *, shard_fields: ShardForm = False
    ) -> _R | None:
        if self._engine is None:
            self._check_open()
        return self._by_name(self._row_by_name, self._whole_by_name, name, make, shard_fields)

    def resolve_name_as(
        self, name: str, make: Callable[..., _R], *, shard_fields: ShardForm = False
    ) -> _R | None:
        # The first lookup of every Index.get_dataset(name).
        if self._engine is None:
            self._check_open()
        return self._by_name(self._row_resolving, self._whole_resolving, name, make, shard_fields)

    def _by_name(
        self,
        point: Callable[[str], Sequence[Any] | None],
        whole: Callable[[str], Sequence[Any] | None],
        name: str,
        make: Callable[..., _R],
        shard_fields: ShardForm,
    ) -> _R | None:
        """``make(...)`` of the row ``point`` reads for ``name`` (``whole`` for a rare row)."""
        row = point(name)
        if row is None:
            return None
        if self._compact:
            item = read_point(row[0], name, row, self._shards_of, make, shard_fields)
            if item is not RARE:
                return None if item is SKIPPED else item
            row = whole(name)  # a rare row (see ._points): read it whole
            if row is None:
                return None
        item = read_row(row, self._shards_of, make, shard_fields)
        return None if item is SKIPPED else item

    def iter_datasets(self) -> Iterator[DatasetRecord]:
        self._check_open()
        # A row whose values cannot be converted (a timestamp mangled by hand, say) is
        # skipped with a warning rather than failing the whole listing.
        rows, _ = self._x.read_raw(_LIST_DATASETS)
        return items(rows, self._shards_of)

    def iter_datasets_as(
        self, make: Callable[..., _R], *, shard_fields: ShardForm = False
    ) -> Iterator[_R]:
        self._check_open()
        rows, _ = self._x.read_raw(_LIST_DATASETS)
        return items(rows, self._shards_of, make, shard_fields)

    def list_datasets_as(
        self, make: Callable[..., _R], *, shard_fields: ShardForm = False
    ) -> list[_R]:
        if self.kind != "sqlite":  # PostgreSQL: names sort in the database's collation
            return list(self.iter_datasets_as(make, shard_fields=shard_fields))
        # SQLite: the rows in id order (a scan of the table, no sort), then sorted by name
        # here. Python orders strings by code point, as SQLite's BINARY collation orders
        # their UTF-8 bytes, and its sort is stable: the order is (name, id), the same as
        # _LIST_DATASETS, at a fraction of the cost of SQLite's sorter (one statement, so
        # one snapshot still).
        rows = list(self._read_raw(_LIST_DATASETS_BY_ID, {})[0])  # fetched whole
        rows.sort(key=_NAME_OF_ROW)
        return list(items(rows, self._shards_of, make, shard_fields))

    def insert_datasets(
        self, records: Sequence[DatasetRecord], *, on_conflict: OnConflict = "error"
    ) -> list[DatasetRecord]:
        records = checked_insert(records, on_conflict)
        if not records:
            return []
        for attempt in range(_RETRIES):
            try:
                with self._begin_write() as conn:
                    return self._insert(conn, records, on_conflict)
            except IntegrityErrors as exc:
                # Another writer (PostgreSQL) inserted a clashing row after our read: retry,
                # and the rules below see that row.
                if attempt == _RETRIES - 1:
                    raise DatasetExistsError(
                        f"Could not insert the datasets: a concurrent writer kept clashing "
                        f"({exc}). Retry."
                    ) from exc
                _backoff(attempt)
        raise AssertionError("unreachable")

    def _existing(
        self, w: Writer, records: Sequence[DatasetRecord]
    ) -> tuple[dict[str, list[tuple[int, DatasetRecord]]], dict[str, tuple[int, DatasetRecord]]]:
        """Stored rows sharing a name (every version) or a CID with ``records``."""
        by_name: dict[str, list[tuple[int, DatasetRecord]]] = {}
        by_cid: dict[str, tuple[int, DatasetRecord]] = {}
        for chunk in _chunks(records):
            params = {"names": [r.name for r in chunk], "cids": [r.cid for r in chunk]}
            for dataset_id, record in _written_records(w, _EXISTING, params):
                if record.name in params["names"]:
                    by_name.setdefault(record.name, []).append((dataset_id, record))
                by_cid[record.cid] = (dataset_id, record)
        return by_name, by_cid

    @staticmethod
    def _slot(
        record: DatasetRecord, versions: list[tuple[int, DatasetRecord]]
    ) -> tuple[str, tuple[int, DatasetRecord] | None]:
        """The version ``record`` is to be stored as, and the stored row in that slot."""
        version, named = version_slot(record, [v[1] for v in versions])
        if named is None:
            return version, None
        return version, next(v for v in versions if v[1] is named)

    def _insert(
        self, w: Writer, records: Sequence[DatasetRecord], on_conflict: OnConflict
    ) -> list[DatasetRecord]:
        now = datetime.now(UTC)
        # The common case -- new names and new content -- needs no lookup of the rows first:
        # insert optimistically and let the unique constraints say whether anything clashed.
        # An unversioned record for a name that exists must meet that name's latest version
        # (which need not be 1.0.0), so the names are checked first; a bump needs the name's
        # versions. Either way the rules below decide.
        if not any(is_bump(r.version) for r in records):
            unversioned = [r.name for r in records if r.version is None]
            present = any(
                w.rows(_NAMES_PRESENT, {"names": list(chunk)}) for chunk in _chunks(unversioned)
            )
            if not present:
                try:
                    with w.savepoint():
                        fresh = [r.stamped(now, now, r.version or "1.0.0") for r in records]
                        self._insert_new(w, fresh)
                        return fresh
                except IntegrityErrors:
                    pass
        by_name, by_cid = self._existing(w, records)
        results: list[DatasetRecord] = []
        inserts: list[DatasetRecord] = []
        replaced: list[tuple[int, DatasetRecord]] = []
        for record in records:
            version, named = self._slot(record, by_name.get(record.name, []))
            holder = by_cid.get(record.cid)
            if holder is not None and same_content_bump(record, holder[1]):
                # The same content again under "next": that version is the answer.
                results.append(holder[1])
                continue
            kept = insert_conflict(
                record,
                named[1] if named is not None else None,
                holder[1] if holder is not None else None,
                on_conflict,
            )
            if kept is not None:
                results.append(kept)
                continue
            if named is not None:
                stored = record.stamped(named[1].created_at, now, version)
                replaced.append((named[0], stored))
                by_cid.pop(named[1].cid, None)
                entry = (named[0], stored)
                versions = by_name.setdefault(record.name, [])
                versions[:] = [v for v in versions if v[0] != named[0]] + [entry]
            else:
                stored = record.stamped(now, now, version)
                inserts.append(stored)
                entry = (-1, stored)
                by_name.setdefault(record.name, []).append(entry)
            by_cid[record.cid] = entry
            results.append(stored)

        shard_rows: list[dict[str, Any]] = []
        if replaced:
            w.execute(
                _REPLACE_DATASET,
                [
                    {
                        "did": did,
                        "cid": r.cid,
                        "schema_ref": r.schema_ref,
                        "metadata": r.metadata,
                        "packed_shards": pack_shards(r.shards),
                        "legacy_uuid": r.legacy_uuid,
                        "updated_at": now,
                    }
                    for did, r in replaced
                ],
            )
            w.execute(_DELETE_SHARDS, [{"did": did} for did, _ in replaced])
            for did, r in replaced:
                shard_rows.extend(_shard_rows(did, r))
        if shard_rows:
            _insert_shards(w, shard_rows)
        self._insert_new(w, inserts)
        return results

    @staticmethod
    def _insert_new(w: Writer, records: list[DatasetRecord]) -> None:
        """Insert new entries (their timestamps already set) with their shards."""
        if not records:
            return
        rows = [_dataset_row(r, r.created_at, r.updated_at) for r in records]
        shard_rows: list[dict[str, Any]] = []
        for did, r in zip(w.insert_ids(datasets, rows), records, strict=True):
            shard_rows.extend(_shard_rows(did, r))
        if shard_rows:
            _insert_shards(w, shard_rows)

    def delete_dataset(self, name: str, version: str | None = None) -> DatasetRecord | None:
        with self._begin_write() as w:
            if version is None:
                found = list(_written_records(w, _GET_VERSIONS_AND_IDS, {"name": name}))
            else:
                params = {"name": name, "version": version}
                found = list(_written_records(w, _GET_VERSION_AND_ID, params))
            if not found:
                return None
            # Shards and labels go with it: ON DELETE CASCADE (foreign keys are on for every
            # connection); the explicit label delete also covers a database opened without.
            w.execute(_DELETE_LABELS_OF, [{"did": did} for did, _ in found])
            w.execute(_DELETE_DATASET, [{"did": did} for did, _ in found])
            return latest_of([r for _, r in found])  # type: ignore[return-value]

    def rename_dataset(self, old: str, new: str) -> DatasetRecord:
        try:
            with self._begin_write() as w:
                found = list(_read_row_in(w, _GET_BY_NAME, {"name": old}))
                if not found:
                    raise no_entry_named(self, old)
                record = found[0]
                if new == old:
                    return record
                if w.rows(_GET_BY_NAME, {"name": new}):
                    raise DatasetExistsError(
                        f"Cannot rename {old!r} to {new!r}: a dataset named {new!r} exists. "
                        "Delete or rename that one first."
                    )
                now = datetime.now(UTC)
                w.execute(_RENAME_ALL, {"old_name": old, "new_name": new, "updated_at": now})
                return replace(record, name=new, updated_at=now)
        except IntegrityErrors as exc:  # a concurrent writer took ``new`` (PostgreSQL)
            raise DatasetExistsError(
                f"Cannot rename {old!r} to {new!r}: a dataset named {new!r} was just created."
            ) from exc

    # --- versions and labels ----------------------------------------------------------

    def get_dataset_version(self, name: str, version: str) -> DatasetRecord | None:
        params = {"name": name, "version": version}
        for record in self._read_records(_GET_VERSION, params):
            return record
        return None

    def iter_versions(self, name: str) -> list[DatasetRecord]:
        found = list(self._read_records(_GET_VERSIONS, {"name": name}))
        found.sort(key=lambda r: version_sort_key(r.version or "", r.created_at))
        return found

    @staticmethod
    def _label(row: Sequence[Any]) -> LabelRow:
        return LabelRow(row[0], row[1], row[2], row[3], _utc(row[4]), _utc(row[5]))

    def set_label(self, name: str, version: str, cid: str, description: str | None) -> LabelRow:
        for attempt in range(_RETRIES):
            try:
                with self._begin_write() as w:
                    ids = w.rows(_ID_OF_CID, {"cid": cid})
                    if not ids:
                        raise DatasetNotFoundError(
                            f"Cannot label {name!r}: no dataset with CID {cid} is in the index. "
                            "Labels point at stored datasets only; insert it first."
                        )
                    now = datetime.now(UTC)
                    rows = w.rows(_GET_LABEL, {"name": name, "version": version})
                    if rows:
                        old = self._label(rows[0])
                        w.execute(
                            _MOVE_LABEL,
                            {"lid": rows[0][6], "did": ids[0][0], "description": description,
                             "updated_at": now},
                        )  # fmt: skip
                        return LabelRow(name, version, cid, description, old.created_at, now)
                    w.execute(
                        _INSERT_LABEL,
                        {"name": name, "version": version, "dataset_id": ids[0][0],
                         "description": description, "created_at": now, "updated_at": now},
                    )  # fmt: skip
                    return LabelRow(name, version, cid, description, now, now)
            except IntegrityErrors:
                # A concurrent writer created the label (PostgreSQL): move it instead.
                if attempt == _RETRIES - 1:
                    raise
                _backoff(attempt)
        raise AssertionError("unreachable")

    def get_label(self, name: str, version: str) -> LabelRow | None:
        rows = self._read(_GET_LABEL, {"name": name, "version": version})
        return self._label(rows[0]) if rows else None

    def iter_labels(self, name: str | None = None) -> list[LabelRow]:
        self._check_open()
        if name is None:
            rows = self._read(_LIST_LABELS, {})
        else:
            rows = self._read(_LIST_LABELS_OF, {"name": name})
        return [self._label(r) for r in rows]

    def delete_label(self, name: str, version: str) -> LabelRow | None:
        with self._begin_write() as w:
            rows = w.rows(_GET_LABEL, {"name": name, "version": version})
            if not rows:
                return None
            w.execute(_DELETE_LABEL, {"lid": rows[0][6]})
            return self._label(rows[0])

    # --- lenses -----------------------------------------------------------------------

    def store_lens(
        self,
        name: str,
        version: str | None,
        render: Callable[[str], str],
        content_hash: str,
        source_schema: str,
        view_schema: str,
    ) -> tuple[LensRow, bool]:
        for attempt in range(_RETRIES):
            try:
                with self._begin_write() as w:
                    if version is None:
                        found = w.rows(_LATEST_LENS, {"name": name})
                        major, minor, patch = found[0] if found else (1, 0, -1)
                        chosen = f"{major}.{minor}.{patch + 1}"
                    else:
                        chosen = version
                        rows = w.rows(_GET_LENS, {"name": name, "version": version})
                        if rows:
                            stored = LensRow(*rows[0])
                            if stored.content_hash == content_hash:
                                return stored, False
                            raise SchemaConflictError(
                                f"Lens {name}@{version} is already stored with other content; "
                                "stored lens versions are immutable. Store a new version (omit "
                                "the version to take the next one)."
                            )
                    row = LensRow(
                        name, chosen, render(chosen), source_schema, view_schema, content_hash
                    )
                    major, minor, patch = _semver(chosen)
                    w.execute(
                        _INSERT_LENS,
                        {"name": name, "version": chosen, "record_json": row.record_json,
                         "source_schema": source_schema, "view_schema": view_schema,
                         "content_hash": content_hash, "created_at": datetime.now(UTC),
                         "semver_major": major, "semver_minor": minor, "semver_patch": patch},
                    )  # fmt: skip
                    return row, True
            except IntegrityErrors:
                if attempt == _RETRIES - 1:
                    raise
                _backoff(attempt)
        raise AssertionError("unreachable")

    def get_lens(self, name: str, version: str) -> LensRow | None:
        rows = self._read(_GET_LENS, {"name": name, "version": version})
        return LensRow(*rows[0]) if rows else None

    def iter_lenses(self) -> list[LensRow]:
        self._check_open()
        return [LensRow(*r) for r in self._read(_LIST_LENSES, {})]

    # --- schemas ----------------------------------------------------------------------

    def get_schema(self, name: str, version: str) -> SchemaRow | None:
        rows = self._read(_GET_SCHEMA, {"name": name, "version": version})
        return SchemaRow(*rows[0]) if rows else None

    def iter_schemas(self) -> Iterator[SchemaRow]:
        self._check_open()
        rows, convert = self._x.read_raw(_LIST_SCHEMAS)
        for row in rows:
            yield SchemaRow(*convert(row))

    def find_schema(self, name: str, content_hash: str) -> SchemaRow | None:
        rows = self._read(_FIND_SCHEMA, {"name": name, "content_hash": content_hash})
        return SchemaRow(*rows[0]) if rows else None

    def publish_schema(
        self,
        name: str,
        version: str | None,
        render: Callable[[str], str],
        content_hash: str,
    ) -> tuple[SchemaRow, bool]:
        for attempt in range(_RETRIES):
            try:
                with self._begin_write() as w:
                    return self._publish(w, name, version, render, content_hash)
            except IntegrityErrors:
                # A concurrent publisher took this version first (PostgreSQL); the next
                # attempt sees it and picks the next one (or compares content).
                if attempt == _RETRIES - 1:
                    raise
                _backoff(attempt)
        raise AssertionError("unreachable")

    def _publish(
        self,
        w: Writer,
        name: str,
        version: str | None,
        render: Callable[[str], str],
        content_hash: str,
    ) -> tuple[SchemaRow, bool]:
        if version is None:
            found = w.rows(_LATEST_SEMVER, {"name": name})
            major, minor, patch = found[0] if found else (1, 0, -1)
            version = f"{major}.{minor}.{patch + 1}"
        else:
            rows = w.rows(_GET_SCHEMA, {"name": name, "version": version})
            if rows:
                stored = SchemaRow(*rows[0])
                if stored.content_hash == content_hash:
                    return stored, False
                raise SchemaConflictError(
                    f"Schema {name}@{version} is already published with other content; "
                    "published versions are immutable. Publish a new version (omit the "
                    "version to take the next one)."
                )
        schema = SchemaRow(name, version, render(version), content_hash)
        w.execute(_INSERT_SCHEMA, self._schema_params(schema, datetime.now(UTC)))
        return schema, True

    @staticmethod
    def _schema_params(schema: SchemaRow, now: datetime) -> dict[str, Any]:
        major, minor, patch = _semver(schema.version)
        return {
            "name": schema.name,
            "version": schema.version,
            "record_json": schema.record_json,
            "content_hash": schema.content_hash,
            "created_at": now,
            "semver_major": major,
            "semver_minor": minor,
            "semver_patch": patch,
        }

    # --- whole catalog ----------------------------------------------------------------

    def write_catalog(
        self,
        schemas: Sequence[SchemaRow],
        datasets: Sequence[DatasetRecord],
        *,
        dry_run: bool = False,
    ) -> CatalogWriteResult:
        checked_catalog(schemas, datasets)
        for attempt in range(_RETRIES):
            try:
                with self._begin_write() as w:
                    result, schema_rows, dataset_rows = self._plan_catalog(w, schemas, datasets)
                    if not dry_run:
                        self._write_plan(w, schema_rows, dataset_rows)
                    return result
            except IntegrityErrors:
                if attempt == _RETRIES - 1:
                    raise
                _backoff(attempt)
        raise AssertionError("unreachable")

    def _plan_catalog(
        self,
        w: Writer,
        schema_rows: Sequence[SchemaRow],
        dataset_records: Sequence[DatasetRecord],
    ) -> tuple[CatalogWriteResult, list[SchemaRow], list[DatasetRecord]]:
        result = CatalogWriteResult()
        new_schemas: dict[tuple[str, str], SchemaRow] = {}
        for schema in schema_rows:
            key = (schema.name, schema.version)
            ref = f"{schema.name}@{schema.version}"
            rows = w.rows(_GET_SCHEMA, {"name": key[0], "version": key[1]})
            row = rows[0] if rows else None
            stored = SchemaRow(*row) if row is not None else new_schemas.get(key)
            if stored is None:
                new_schemas[key] = schema
                result.schemas_added.append(ref)
            elif stored.content_hash == schema.content_hash:
                if row is not None:
                    result.schemas_unchanged.append(ref)
            else:
                raise SchemaConflictError(
                    f"Schema {ref} is already stored with other content; nothing was written. "
                    "Published versions are immutable: rename or re-version the incoming one."
                )

        by_name, by_cid = self._existing(w, dataset_records)
        new_datasets: list[DatasetRecord] = []
        seen_names: dict[tuple[str, str], DatasetRecord] = {}
        seen_cids: dict[str, DatasetRecord] = {}
        for record in dataset_records:
            version = record.version or "1.0.0"
            record = record.stamped(record.created_at, record.updated_at, version)
            named = next((v for v in by_name.get(record.name, []) if v[1].version == version), None)
            if named is not None and named[1].same_content(record):
                result.datasets_unchanged.append(record.name)
                continue
            if named is not None or (record.name, version) in seen_names:
                raise DatasetExistsError(
                    f"A dataset named {record.name!r} (version {version}) already exists with "
                    "other content; nothing was written. Rename or delete it first."
                )
            holder = by_cid.get(record.cid)
            other = holder[1] if holder is not None else seen_cids.get(record.cid)
            if other is not None:
                raise DatasetExistsError(
                    f"The content of dataset {record.name!r} (CID {record.cid}) is already "
                    f"stored as {other.name!r}; nothing was written."
                )
            seen_names[(record.name, version)] = seen_cids[record.cid] = record
            new_datasets.append(record)
            result.datasets_added.append(record.name)
        return result, list(new_schemas.values()), new_datasets

    def _write_plan(
        self, w: Writer, schema_rows: list[SchemaRow], records: list[DatasetRecord]
    ) -> None:
        now = datetime.now(UTC)
        if schema_rows:
            w.execute(_INSERT_SCHEMA, [self._schema_params(s, now) for s in schema_rows])
        # Restored entries keep their original timestamps when they carry them.
        self._insert_new(
            w,
            [r.stamped(r.created_at or now, r.updated_at or r.created_at or now) for r in records],
        )

    # --- lifecycle --------------------------------------------------------------------

    def close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            if self._versions is not None:
                self._versions.close()
            self._x.close()
            engine.dispose()

    def __repr__(self) -> str:
        return f"SqlBackend({self.location!r})"
