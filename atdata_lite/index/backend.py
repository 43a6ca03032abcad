"""The contract every index backend fulfils, and the records backends store.

An index backend is a small storage interface: it stores dataset records and schema rows,
and performs the few operations that must be atomic (name/CID uniqueness on insert, automatic
schema versioning, immutability of published schema versions, all-or-nothing bulk writes).
Everything else -- building records from Python types, CIDs, metadata encoding, schema refs,
the atdata-compatible API -- lives once, in :class:`atdata_lite.index.api.Index`, above this
contract.

The contract itself -- thread and fork safety, ownership, atomicity -- is written on
:class:`IndexBackend`. This module names no implementation: :func:`atdata_lite.index.open_backend`
finds them (the built-in SQL backend, the optional Redis backend, entry-point plugins).

This module is on the hot path of opening an index: it imports nothing heavy.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeVar, cast

from .._records import ShardRecord
from ..errors import DatasetExistsError, SchemaConflictError

__all__ = [
    "BACKEND_ENTRY_POINT_GROUP",
    "CatalogWriteResult",
    "DatasetRecord",
    "IndexBackend",
    "OnConflict",
    "SchemaRow",
    "ShardRecord",
    "check_on_conflict",
    "checked_catalog",
    "checked_insert",
    "insert_conflict",
    "name_taken_error",
]

BACKEND_ENTRY_POINT_GROUP = "atdata_lite.backends"

_T = TypeVar("_T")

OnConflict = Literal["error", "skip", "replace"]
"""What ``insert_datasets`` does when a record's name is already taken by other content:

* ``"error"``: raise :class:`~atdata_lite.errors.DatasetExistsError` (the default);
* ``"skip"``: leave the stored entry alone and return it;
* ``"replace"``: replace the stored entry of that name (its ``created_at`` is kept).

Identical content under the same name (same CID and same metadata bytes) is never a
conflict: the stored entry is returned unchanged, whatever the policy. Content that is
already stored under *another* name (same CID) is never renamed or overwritten: ``"error"``
and ``"replace"`` raise ``DatasetExistsError``, ``"skip"`` returns the other entry.
"""


@dataclass(slots=True, unsafe_hash=True)
class DatasetRecord:
    """A dataset entry as a backend stores it (treat it as immutable, as :class:`ShardRecord`).

    Attributes:
        cid: The entry's content id (atdata-compatible, over ``schema_ref`` and ``data_urls``).
        name: Unique human-readable name.
        schema_ref: The schema reference, as given (either ref form).
        shards: The shards in order; their URLs are the entry's ``data_urls``.
        metadata: The metadata map encoded with msgpack (``use_bin_type=True``), byte for
            byte as it will be returned, or ``None`` for no metadata.
        legacy_uuid: atdata's optional ``legacy_uuid`` field, carried through imports.
        created_at: When the entry was first stored (set by the backend, UTC).
        updated_at: When the entry was last replaced or renamed (set by the backend, UTC).
    """

    cid: str
    name: str
    schema_ref: str
    shards: tuple[ShardRecord, ...] = ()
    metadata: bytes | None = None
    legacy_uuid: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def data_urls(self) -> list[str]:
        """The shard URLs in order."""
        return [s.url for s in self.shards]

    def stamped(self, created_at: datetime | None, updated_at: datetime | None) -> DatasetRecord:
        """This record with the given timestamps (what a backend stores and returns)."""
        # Positional and direct: dataclasses.replace() costs several times this, and bulk
        # inserts call it once per record.
        return DatasetRecord(self.cid, self.name, self.schema_ref, self.shards, self.metadata,
                             self.legacy_uuid, created_at, updated_at)  # fmt: skip

    def same_content(self, other: DatasetRecord) -> bool:
        """True when ``other`` describes this entry: the same name, CID, ref, URLs, metadata.

        Shard facts count where ``other`` states them: a size, sample count or sha256 that
        ``other`` knows and that differs from this record's means the files changed, so the
        content is not the same. A fact ``other`` leaves unknown (``None``) asserts nothing,
        so re-adding an entry without facts (an import, ``add_entry``) matches the stored one.
        """
        return (
            self.name == other.name
            and self.cid == other.cid
            and self.schema_ref == other.schema_ref
            and self.metadata == other.metadata
            and len(self.shards) == len(other.shards)
            and all(
                mine.url == theirs.url
                and mine.split == theirs.split
                and theirs.size in (None, mine.size)
                and theirs.sample_count in (None, mine.sample_count)
                and theirs.sha256 in (None, mine.sha256)
                for mine, theirs in zip(self.shards, other.shards, strict=True)
            )
        )


@dataclass(frozen=True, slots=True)
class SchemaRow:
    """A published schema version as a backend stores it.

    Attributes:
        name: The schema name (class name, no module).
        version: The version string (``x.y.z`` for everything published through the API).
        record_json: The JSON record exactly as stored, *without* ``$ref`` (atdata's format:
            ``name, version, fields, description, createdAt``).
        content_hash: Hex SHA-256 that identifies the content (see
            :func:`atdata_lite.schema.content_hash`); equal content gives an equal hash.
    """

    name: str
    version: str
    record_json: str
    content_hash: str


@dataclass(frozen=True, slots=True)
class CatalogWriteResult:
    """What :meth:`IndexBackend.write_catalog` did (or would do, for a dry run)."""

    schemas_added: list[str] = field(default_factory=list)
    schemas_unchanged: list[str] = field(default_factory=list)
    datasets_added: list[str] = field(default_factory=list)
    datasets_unchanged: list[str] = field(default_factory=list)


class IndexBackend(abc.ABC):
    """Storage for one index: dataset records and schema rows, and the atomic operations on them.

    :class:`~atdata_lite.index.api.Index` is written once over this contract; everything it
    does beyond storing (CIDs, metadata encoding, schema refs, Python types) stays above it.

    Implementations:
        Built in, the SQL backend (plain paths, ``sqlite:///`` and ``postgresql://`` URLs);
        optional, the Redis backend (``redis://``, ``rediss://``; extra
        ``atdata-lite[redis]``), which keeps atdata 0.2's own Redis key layout. A third
        party adds one by publishing an entry point in the group ``atdata_lite.backends``
        (:data:`BACKEND_ENTRY_POINT_GROUP`) whose name is a URL scheme and whose value is a
        callable ``factory(url: str, **options) -> IndexBackend``. The conformance suite in
        :mod:`atdata_lite.testing` checks that a backend keeps this contract.

    Thread safety:
        One instance may be used by several threads at once. Every method is safe to call
        concurrently; each write method is atomic (all of it or nothing, never a half-written
        entry), including against other processes that open the same index.

    Fork safety:
        An instance stays usable in a child process after ``os.fork`` (PyTorch DataLoader
        workers): the child opens connections of its own on first use, and neither uses nor
        closes the ones it inherited, which stay the parent's.

    Ownership:
        Whoever opens a backend owns it and calls :meth:`close` once done (an
        :class:`~atdata_lite.index.api.Index` owns the backend it opened or was given).
        Records passed in and returned are values: the backend keeps no reference to the
        caller's objects, and callers must not mutate what it returns.

    Errors:
        Methods raise the :mod:`atdata_lite.errors` classes their docstrings name. A missing
        entry is ``None`` from a lookup, never an error; a stored row that cannot be read is
        skipped by the listings with a ``logging`` warning. Unreachable storage, and any call
        after :meth:`close`, raise the driver's own exceptions.
    """

    #: Short name of the backend kind, e.g. ``"sqlite"``, ``"postgresql"``, ``"redis"``.
    kind: str = "unknown"

    # --- identity -------------------------------------------------------------------

    @property
    @abc.abstractmethod
    def location(self) -> str:
        """Where the index lives, for people: a file path or a URL with any password hidden.

        Returns:
            The location; it never contains a password, so it can be logged and shown.
        """

    def describe(self) -> dict[str, Any]:
        """Facts for ``atdata-lite info``.

        Returns:
            A JSON-ready dict with at least ``kind`` and ``location``; a backend may add its
            own facts (schema revision, server version, ...).
        """
        return {"kind": self.kind, "location": self.location}

    # --- datasets -------------------------------------------------------------------

    @abc.abstractmethod
    def get_dataset(self, name: str) -> DatasetRecord | None:
        """Look an entry up by name. Must not scan all entries: it is every load's first call.

        Args:
            name: The entry's name, exactly (no normalisation).

        Returns:
            The entry, or ``None`` when no entry has that name.

        Raises:
            Exception: Only the driver's own errors (storage unreachable, backend closed).
        """

    @abc.abstractmethod
    def get_dataset_by_cid(self, cid: str) -> DatasetRecord | None:
        """Look an entry up by content id.

        Args:
            cid: The entry's CID string.

        Returns:
            The entry, or ``None`` when no entry has that CID.

        Raises:
            Exception: Only the driver's own errors (storage unreachable, backend closed).
        """

    @abc.abstractmethod
    def iter_datasets(self) -> Iterator[DatasetRecord]:
        """Yield every entry, ordered by name.

        A stored row that cannot be read is skipped with a ``logging`` warning naming its
        key and the reason; it never stops the iteration.

        Returns:
            An iterator over the entries; entries written while it runs may or may not
            appear.

        Raises:
            Exception: Only the driver's own errors (storage unreachable, backend closed).
        """

    def iter_datasets_as(self, make: Callable[..., _T]) -> Iterator[_T]:
        """Yield ``make(cid, name, schema_ref, shards, metadata, legacy_uuid, created_at,
        updated_at)`` for every entry, ordered by name (the fields of :class:`DatasetRecord`,
        in its order).

        The same listing as :meth:`iter_datasets`, without a :class:`DatasetRecord` in
        between: :class:`~atdata_lite.index.api.Index` builds its entries this way, because
        listing is a hot path. This default wraps :meth:`iter_datasets`; a backend may
        build the items straight from its rows instead. Items for which ``make`` returns
        ``None`` are yielded as ``None`` (the caller filters them).

        Args:
            make: Builds one item from the eight fields, positionally.

        Returns:
            An iterator over ``make``'s results, in name order.
        """
        for r in self.iter_datasets():
            yield make(
                r.cid, r.name, r.schema_ref, r.shards, r.metadata, r.legacy_uuid,
                r.created_at, r.updated_at,
            )  # fmt: skip

    @abc.abstractmethod
    def insert_datasets(
        self, records: Sequence[DatasetRecord], *, on_conflict: OnConflict = "error"
    ) -> list[DatasetRecord]:
        """Store ``records`` atomically: all of them, or (on an error) none.

        Args:
            records: The entries to store. ``created_at``/``updated_at`` are ignored and
                set by the backend. Names and CIDs within ``records`` must be distinct
                (see :func:`checked_insert`).
            on_conflict: See :data:`OnConflict`.

        Returns:
            The stored entry for each record, in order (the existing one where nothing
            was written), with timestamps filled in.

        Raises:
            DatasetExistsError: A conflict under ``on_conflict="error"``, or a CID stored
                under another name (unless ``"skip"``).
            ValueError: An unknown ``on_conflict``, or two records with one name or CID.
        """

    @abc.abstractmethod
    def delete_dataset(self, name: str) -> DatasetRecord | None:
        """Remove the entry named ``name`` atomically (its shards are not touched).

        Args:
            name: The entry's name.

        Returns:
            The entry as it was before removal, or ``None`` when no entry has that name
            (nothing is changed).

        Raises:
            Exception: Only the driver's own errors (storage unreachable, backend closed).
        """

    @abc.abstractmethod
    def rename_dataset(self, old: str, new: str) -> DatasetRecord:
        """Rename an entry atomically; its CID, shards and metadata do not change.

        Args:
            old: The entry's current name.
            new: Its new name.

        Returns:
            The entry renamed, with ``updated_at`` set to now.

        Raises:
            DatasetNotFoundError: No entry is named ``old``.
            DatasetExistsError: ``new`` is taken.
        """

    # --- schemas --------------------------------------------------------------------

    @abc.abstractmethod
    def get_schema(self, name: str, version: str) -> SchemaRow | None:
        """Look a published schema version up.

        Args:
            name: The schema name (no module).
            version: The version string, exactly as published.

        Returns:
            The row, or ``None`` when ``name@version`` was never published.

        Raises:
            Exception: Only the driver's own errors (storage unreachable, backend closed).
        """

    @abc.abstractmethod
    def iter_schemas(self) -> Iterator[SchemaRow]:
        """Yield every schema, ordered by name, then by version (semver order first).

        Unreadable rows are skipped with a warning, as in :meth:`iter_datasets`.

        Returns:
            An iterator over the schema rows.

        Raises:
            Exception: Only the driver's own errors (storage unreachable, backend closed).
        """

    @abc.abstractmethod
    def find_schema(self, name: str, content_hash: str) -> SchemaRow | None:
        """Find the published version of ``name`` with the given content.

        Args:
            name: The schema name.
            content_hash: The content hash (:func:`atdata_lite.schema.content_hash`).

        Returns:
            The highest version (semver order) of ``name`` whose content hash is
            ``content_hash``, or ``None`` when no version of it has that content.

        Raises:
            Exception: Only the driver's own errors (storage unreachable, backend closed).
        """

    @abc.abstractmethod
    def publish_schema(
        self,
        name: str,
        version: str | None,
        render: Callable[[str], str],
        content_hash: str,
    ) -> tuple[SchemaRow, bool]:
        """Publish a schema version atomically.

        Args:
            name: Schema name.
            version: ``x.y.z`` to publish exactly that version, or ``None`` to take the
                next patch version after the highest semver version of ``name`` (``1.0.0``
                when there is none). Concurrent auto-versioned calls get distinct versions.
            render: Builds the record JSON for the version finally chosen.
            content_hash: The content hash of the record.

        Returns:
            ``(row, created)``. Publishing an explicit version that already exists with the
            same content hash returns the stored row and ``False``.

        Raises:
            SchemaConflictError: ``name@version`` exists with a different content hash.
        """

    # --- whole catalog --------------------------------------------------------------

    @abc.abstractmethod
    def write_catalog(
        self,
        schemas: Sequence[SchemaRow],
        datasets: Sequence[DatasetRecord],
        *,
        dry_run: bool = False,
    ) -> CatalogWriteResult:
        """Write schema rows and dataset records as they are, in one all-or-nothing step.

        Used by import and restore. A schema row identical to a stored one (same name,
        version and content hash) and a dataset record with :meth:`DatasetRecord.same_content`
        as a stored one are left alone and reported as unchanged, so writing the same catalog
        twice changes nothing. Any other clash raises before anything is written, and so
        does a catalog that names one schema version, dataset name or CID twice
        (:func:`checked_catalog`).

        Args:
            schemas: Schema rows to store, exactly as given (no re-versioning).
            datasets: Dataset records to store, timestamps included (kept when given).
            dry_run: Check everything and report what would be written, writing nothing.

        Returns:
            What was added and what was already there, by ``name@version`` and by name.

        Raises:
            SchemaConflictError: A schema row clashes with a stored one.
            DatasetExistsError: A dataset name or CID clashes with a stored entry.
        """

    # --- lifecycle ------------------------------------------------------------------

    def data_version(self) -> int:
        """A number that changes whenever any process changes the catalog.

        Cheap enough to poll a few times a second. Only compare values read from the same
        backend object for equality: how the number is made differs per backend (a change
        counter, a transaction id), and it means nothing across backends or processes.

        Raises:
            NotImplementedError: The backend cannot tell (the default, for plugins).
        """
        raise NotImplementedError(
            f"The {self.kind} backend does not report changes (data_version); poll "
            "list_datasets() instead."
        )

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connections this process opened.

        Idempotent: a second call does nothing. Every other method may raise afterwards.
        Connections inherited across ``os.fork`` are left to the parent.
        """


ON_CONFLICT_POLICIES: tuple[str, ...] = ("error", "skip", "replace")


def check_on_conflict(on_conflict: object) -> OnConflict:
    """Return ``on_conflict`` if it is a policy of :data:`OnConflict`; the one check of it.

    Raises:
        ValueError: It is not one of ``"error"``, ``"skip"``, ``"replace"``.
    """
    if on_conflict not in ON_CONFLICT_POLICIES:
        raise ValueError(
            f"on_conflict must be one of {', '.join(map(repr, ON_CONFLICT_POLICIES))}, "
            f"got {on_conflict!r}."
        )
    return cast(OnConflict, on_conflict)


def name_taken_error(name: str, stored_cid: str) -> DatasetExistsError:
    """The error for a name already held by other content (``on_conflict="error"``)."""
    return DatasetExistsError(
        f"A dataset named {name!r} already exists with other content (CID {stored_cid}). "
        "Pass on_conflict='replace' to replace it, on_conflict='skip' to keep it, or choose "
        "another name."
    )


def insert_conflict(
    record: DatasetRecord,
    named: DatasetRecord | None,
    holder: DatasetRecord | None,
    on_conflict: OnConflict,
) -> DatasetRecord | None:
    """The on-conflict rule of :meth:`IndexBackend.insert_datasets`, one for every backend.

    Args:
        record: The record to store.
        named: The stored entry named ``record.name``, or ``None``.
        holder: The stored entry whose CID is ``record.cid``, or ``None``.
        on_conflict: The policy (see :data:`OnConflict`).

    Returns:
        The stored entry to return unchanged (identical content, or an entry kept under
        ``"skip"``), or ``None`` when ``record`` is to be written: as a new entry, or in
        place of ``named`` (``"replace"``).

    Raises:
        DatasetExistsError: The name is taken by other content under ``"error"``, or the
            content is stored under another name (unless ``"skip"``).
    """
    if named is not None and named.same_content(record):
        return named
    if holder is not None and holder.name != record.name:
        if on_conflict == "skip":
            return holder
        raise DatasetExistsError(
            f"Cannot store dataset {record.name!r}: the same content (CID {record.cid}) is "
            f"already in the index as {holder.name!r}. Use that entry, rename it "
            "(rename_dataset), or delete it first."
        )
    if named is not None:
        if on_conflict == "error":
            raise name_taken_error(record.name, named.cid)
        if on_conflict == "skip":
            return named
    return None


def checked_insert(records: Sequence[DatasetRecord], on_conflict: str) -> list[DatasetRecord]:
    """The arguments of :meth:`IndexBackend.insert_datasets`, checked the same way everywhere.

    Returns:
        ``records`` as a list.

    Raises:
        ValueError: ``on_conflict`` is not a policy (:func:`check_on_conflict`), or two
            records share a name or a CID (one call stores each dataset once, under one name).
    """
    check_on_conflict(on_conflict)
    records = list(records)
    for what, values in (("name", [r.name for r in records]), ("CID", [r.cid for r in records])):
        if len(set(values)) != len(values):
            dup = next(v for i, v in enumerate(values) if v in values[:i])
            raise ValueError(
                f"Two records in one insert have the same {what} ({dup}); insert each "
                "dataset once, under one name."
            )
    return records


def checked_catalog(schemas: Sequence[SchemaRow], datasets: Sequence[DatasetRecord]) -> None:
    """Refuse a catalog (for :meth:`IndexBackend.write_catalog`) that names a thing twice.

    Raises:
        SchemaConflictError: Two schema rows have the same name and version.
        DatasetExistsError: Two dataset records have the same name or the same CID.
    """
    seen: set[tuple[str, str]] = set()
    for s in schemas:
        if (s.name, s.version) in seen:
            raise SchemaConflictError(f"Schema {s.name}@{s.version} appears twice in the catalog.")
        seen.add((s.name, s.version))
    names: set[str] = set()
    cids: dict[str, str] = {}
    for d in datasets:
        if d.name in names:
            raise DatasetExistsError(f"Dataset name {d.name!r} appears twice in the catalog.")
        if d.cid in cids:
            raise DatasetExistsError(
                f"Datasets {cids[d.cid]!r} and {d.name!r} have the same CID {d.cid}."
            )
        names.add(d.name)
        cids[d.cid] = d.name
