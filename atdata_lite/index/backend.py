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

from .._records import ShardForm, ShardRecord
from ..errors import DatasetExistsError, SchemaConflictError

__all__ = [
    "BACKEND_ENTRY_POINT_GROUP",
    "CatalogWriteResult",
    "DatasetRecord",
    "IndexBackend",
    "LabelRow",
    "LensRow",
    "OnConflict",
    "SchemaRow",
    "ShardRecord",
    "check_on_conflict",
    "checked_catalog",
    "checked_insert",
    "insert_conflict",
    "name_taken_error",
    "same_content_bump",
    "version_slot",
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
        version: Which version of ``name`` this entry is. Stored records always have one.
            In a record passed to :meth:`IndexBackend.insert_datasets`, ``None`` means
            "unversioned": ``1.0.0`` for a new name, else the name's latest version is the
            one the ``on_conflict`` policy applies to; ``"+patch"``, ``"+minor"`` and
            ``"+major"`` mean the next version after the name's highest ``x.y.z`` one,
            chosen atomically.
    """

    cid: str
    name: str
    schema_ref: str
    shards: tuple[ShardRecord, ...] = ()
    metadata: bytes | None = None
    legacy_uuid: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    version: str | None = None

    @property
    def data_urls(self) -> list[str]:
        """The shard URLs in order."""
        return [s.url for s in self.shards]

    def stamped(
        self,
        created_at: datetime | None,
        updated_at: datetime | None,
        version: str | None = None,
    ) -> DatasetRecord:
        """This record with the given timestamps (and version, when given)."""
        # Positional and direct: dataclasses.replace() costs several times this, and bulk
        # inserts call it once per record.
        return DatasetRecord(self.cid, self.name, self.schema_ref, self.shards, self.metadata,
                             self.legacy_uuid, created_at, updated_at,
                             version if version is not None else self.version)  # fmt: skip

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

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
class LabelRow:
    """A label: ``name`` (and ``version``, ``""`` for none) pointing at a stored dataset.

    Attributes:
        name: The label's name (atdata's label name; often a dataset name).
        version: The label's version string; ``""`` for atdata's unversioned label.
        cid: The CID of the dataset version it points at (always a stored one).
        description: Free text, or ``None``.
        created_at: When the label was first set.
        updated_at: When it was last moved.
    """

    name: str
    version: str
    cid: str
    description: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LensRow:
    """A stored lens version (atdata 0.7's ``lenses`` row).

    Attributes:
        name: The lens name.
        version: Its version (``x.y.z`` when numbered by the index).
        record_json: The JSON record as stored.
        source_schema: The name of the schema it reads.
        view_schema: The name of the schema it produces.
        content_hash: Hex SHA-256 of the record without its version and timestamp.
    """

    name: str
    version: str
    record_json: str
    source_schema: str
    view_schema: str
    content_hash: str


@dataclass(frozen=True, slots=True)
class CatalogWriteResult:
    """What :meth:`IndexBackend.write_catalog` did (or would do, for a dry run)."""

    schemas_added: list[str] = field(default_factory=list)
    schemas_unchanged: list[str] = field(default_factory=list)
    datasets_added: list[str] = field(default_factory=list)
    datasets_unchanged: list[str] = field(default_factory=list)


def _fields_of(r: DatasetRecord, shard_fields: ShardForm) -> tuple[Any, ...]:
    shards: Any = r.shards
    if shard_fields:
        shards = tuple([(s.url, s.size, s.sample_count, s.sha256, s.split) for s in shards])
    return (
        r.cid, r.name, r.schema_ref, shards, r.metadata, r.legacy_uuid, r.created_at,
        r.updated_at, r.version,
    )  # fmt: skip


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
        """Look the latest version of a name up. Must not scan all entries: it is every
        load's first call.

        Args:
            name: The entry's name, exactly (no normalisation).

        Returns:
            The entry with the highest ``x.y.z`` version of that name (the most recently
            created one when none of its versions is ``x.y.z``), or ``None`` when no entry
            has that name.

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

    def iter_datasets_as(
        self, make: Callable[..., _T], *, shard_fields: ShardForm = False
    ) -> Iterator[_T]:
        """Yield ``make(cid, name, schema_ref, shards, metadata, legacy_uuid, created_at,
        updated_at, version)`` for every entry, ordered by name (the fields of
        :class:`DatasetRecord`, in its order).

        The same listing as :meth:`iter_datasets`, without a :class:`DatasetRecord` in
        between: :class:`~atdata_lite.index.api.Index` builds its entries this way, because
        listing is a hot path. This default wraps :meth:`iter_datasets`; a backend may
        build the items straight from its rows instead. Items for which ``make`` returns
        ``None`` are yielded as ``None`` (the caller filters them).

        Args:
            make: Builds one item from the nine fields, positionally.
            shard_fields: Pass ``shards`` as :data:`~atdata_lite._records.ShardFields`
                (one tuple of :class:`ShardRecord`'s fields per shard) instead of records,
                for a caller that builds records only when they are asked for;
                ``"packed"`` also lets a backend that stores the list packed pass that
                value, read and checked (see :data:`~atdata_lite._records.ShardForm`).

        Returns:
            An iterator over ``make``'s results, in name order.
        """
        for r in self.iter_datasets():
            yield make(*_fields_of(r, shard_fields))

    def list_datasets_as(
        self, make: Callable[..., _T], *, shard_fields: ShardForm = False
    ) -> list[_T]:
        """:meth:`iter_datasets_as`, as a list: the same items in the same order.

        For a caller that wants every entry at once (``Index.list_entries``): a backend may
        read the whole listing in one go and order it itself, which it cannot do while
        streaming. This default lists :meth:`iter_datasets_as`.

        Args:
            make: Builds one item from the nine fields, positionally.
            shard_fields: As for :meth:`iter_datasets_as`.

        Returns:
            ``make``'s results, in name order.
        """
        return list(self.iter_datasets_as(make, shard_fields=shard_fields))

    def get_dataset_by_cid_as(
        self, cid: str, make: Callable[..., _T], *, shard_fields: ShardForm = False
    ) -> _T | None:
        """``make(...)`` of the entry with content id ``cid`` (see :meth:`iter_datasets_as`).

        This default wraps :meth:`get_dataset_by_cid`; a backend may build the item straight
        from its row instead.

        Args:
            cid: The entry's CID string.
            make: Builds the item from the nine fields of :class:`DatasetRecord`.
            shard_fields: As in :meth:`iter_datasets_as`.

        Returns:
            ``make``'s result, or ``None`` when no entry has that CID.
        """
        record = self.get_dataset_by_cid(cid)
        return None if record is None else make(*_fields_of(record, shard_fields))

    def get_dataset_as(
        self, name: str, make: Callable[..., _T], *, shard_fields: ShardForm = False
    ) -> _T | None:
        """``make(...)`` of :meth:`get_dataset`'s entry (see :meth:`iter_datasets_as`).

        This default wraps :meth:`get_dataset`; a backend may build the item straight from
        its row instead.

        Args:
            name: The entry's name, exactly.
            make: Builds the item from the nine fields of :class:`DatasetRecord`.
            shard_fields: As in :meth:`iter_datasets_as`.

        Returns:
            ``make``'s result, or ``None`` when no entry has that name.
        """
        record = self.get_dataset(name)
        return None if record is None else make(*_fields_of(record, shard_fields))

    def resolve_name_as(
        self, name: str, make: Callable[..., _T], *, shard_fields: ShardForm = False
    ) -> _T | None:
        """``make(...)`` of :meth:`resolve_name`'s entry (see :meth:`iter_datasets_as`).

        This default wraps :meth:`resolve_name`; a backend may build the item straight from
        its row instead.

        Args:
            name: The name, exactly (never a pattern).
            make: Builds the item from the nine fields of :class:`DatasetRecord`.
            shard_fields: As in :meth:`iter_datasets_as`.

        Returns:
            ``make``'s result, or ``None`` when neither a label nor a dataset has that name.
        """
        record = self.resolve_name(name)
        return None if record is None else make(*_fields_of(record, shard_fields))

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
    def delete_dataset(self, name: str, version: str | None = None) -> DatasetRecord | None:
        """Remove a dataset atomically (its shards are not touched), with its labels.

        Args:
            name: The entry's name.
            version: Remove only this version; ``None`` removes every version of ``name``.

        Returns:
            The removed entry (the latest one removed, for all versions), or ``None`` when
            there was nothing to remove (nothing is changed).

        Raises:
            Exception: Only the driver's own errors (storage unreachable, backend closed).
        """

    @abc.abstractmethod
    def rename_dataset(self, old: str, new: str) -> DatasetRecord:
        """Rename a dataset (every version of it) atomically; CIDs, shards and metadata do
        not change.

        Args:
            old: The entry's current name.
            new: Its new name.

        Returns:
            The entry renamed, with ``updated_at`` set to now.

        Raises:
            DatasetNotFoundError: No entry is named ``old``.
            DatasetExistsError: ``new`` is taken.
        """

    # --- versions and labels -----------------------------------------------------------

    @abc.abstractmethod
    def get_dataset_version(self, name: str, version: str) -> DatasetRecord | None:
        """Look one version of a name up.

        Args:
            name: The dataset name, exactly.
            version: The version string, exactly.

        Returns:
            The entry, or ``None``.
        """

    def resolve_name(self, name: str) -> DatasetRecord | None:
        """The dataset a plain name stands for: the one the unversioned label ``name`` points
        at when that label is set (atdata 0.7 resolves labels first), else :meth:`get_dataset`.

        This is the first call of every ``Index.get_dataset(name)``. The default makes two
        lookups; a backend that can answer both in one round trip should (the SQL backend
        does it in one statement).

        Args:
            name: The name, exactly (never a pattern).

        Returns:
            The entry, or ``None`` when neither a label nor a dataset has that name.
        """
        label = self.get_label(name, "")
        if label is not None:
            record = self.get_dataset_by_cid(label.cid)
            if record is not None:
                return record
        return self.get_dataset(name)

    @abc.abstractmethod
    def iter_versions(self, name: str) -> list[DatasetRecord]:
        """Every version of ``name``, oldest first (the last one is :meth:`get_dataset`'s).

        Order: versions that are not ``x.y.z`` by creation time, then ``x.y.z`` versions by
        number (see :mod:`atdata_lite.index._versions`).

        Args:
            name: The dataset name, exactly.

        Returns:
            The entries (empty when the name has none).
        """

    @abc.abstractmethod
    def set_label(self, name: str, version: str, cid: str, description: str | None) -> LabelRow:
        """Create or move the label ``(name, version)`` to the stored dataset ``cid``.

        Atomic; a moved label keeps its ``created_at``.

        Args:
            name: The label name.
            version: The label version (``""``: none).
            cid: The CID of a stored dataset.
            description: Free text, or ``None``.

        Returns:
            The label as stored.

        Raises:
            DatasetNotFoundError: No stored dataset has that CID (labels never dangle).
        """

    @abc.abstractmethod
    def get_label(self, name: str, version: str) -> LabelRow | None:
        """Look a label up by exact name and version (never a pattern).

        Returns:
            The label, or ``None``; a label whose dataset is gone is ``None`` too.
        """

    @abc.abstractmethod
    def iter_labels(self, name: str | None = None) -> list[LabelRow]:
        """Every label (of ``name`` only, when given), ordered by name then version.

        Returns:
            The labels.
        """

    @abc.abstractmethod
    def delete_label(self, name: str, version: str) -> LabelRow | None:
        """Remove a label atomically (the dataset it points at stays).

        Returns:
            The label as it was, or ``None`` when there was none.
        """

    # --- lenses -----------------------------------------------------------------------

    @abc.abstractmethod
    def store_lens(
        self,
        name: str,
        version: str | None,
        render: Callable[[str], str],
        content_hash: str,
        source_schema: str,
        view_schema: str,
    ) -> tuple[LensRow, bool]:
        """Store a lens version atomically, as :meth:`publish_schema` stores a schema.

        Args:
            name: The lens name.
            version: ``x.y.z``, or ``None`` for the next patch version (``1.0.0`` first).
            render: Builds the record JSON for the version finally chosen.
            content_hash: Hash of the record without version and timestamp.
            source_schema: Name of the schema the lens reads.
            view_schema: Name of the schema it produces.

        Returns:
            ``(row, created)``; an explicit version stored with the same content hash
            returns the stored row and ``False``.

        Raises:
            SchemaConflictError: ``name@version`` is stored with other content.
        """

    @abc.abstractmethod
    def get_lens(self, name: str, version: str) -> LensRow | None:
        """Look a stored lens up; ``None`` when missing."""

    @abc.abstractmethod
    def iter_lenses(self) -> list[LensRow]:
        """Every stored lens, by name then version."""

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
        "Pass version='next' (or an explicit version such as '2.0.0') to add a new version, "
        "on_conflict='replace' to replace it, on_conflict='skip' to keep it, or choose "
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
        named: The stored entry in ``record``'s slot: its exact version when the record
            names one, else the latest version of ``record.name``; or ``None``.
        holder: The stored entry whose CID is ``record.cid``, or ``None``.
        on_conflict: The policy (see :data:`OnConflict`).

    Returns:
        The stored entry to return unchanged (identical content, or an entry kept under
        ``"skip"``), or ``None`` when ``record`` is to be written: as a new entry, or in
        place of ``named`` (``"replace"``).

    Raises:
        DatasetExistsError: The name is taken by other content under ``"error"``, or the
            content is stored under another name or version (unless ``"skip"``).
    """
    if named is not None and named.same_content(record):
        return named
    if holder is not None and (named is None or holder.cid != named.cid):
        # The content is stored already, under another name or another version of this one:
        # content is stored once; more names for it are labels.
        if on_conflict == "skip":
            return holder
        raise DatasetExistsError(
            f"Cannot store dataset {record.name!r}: the same content (CID {record.cid}) is "
            f"already in the index as {holder.name}@{holder.version}. Rename that entry "
            "(rename_dataset) or delete it (delete_dataset) first, or give the content "
            f"another name with a label: index.label({record.name!r}, {holder.cid!r})."
        )
    if named is not None:
        if on_conflict == "error":
            raise name_taken_error(record.name, named.cid)
        if on_conflict == "skip":
            return named
    return None


def version_slot(
    record: DatasetRecord, versions: Sequence[DatasetRecord]
) -> tuple[str, DatasetRecord | None]:
    """Which version ``record`` is stored as, and the stored entry in that slot (if any).

    Shared by every backend, so versions are chosen alike everywhere.

    Args:
        record: The record to insert (its ``version`` as :class:`DatasetRecord` describes).
        versions: Every stored version of ``record.name``.

    Returns:
        ``(version, named)``: for ``version=None`` the latest stored version (``1.0.0`` for
        a new name) and that entry; for a bump the next version and ``None``; for an
        explicit version, that version and the entry stored as it, if any.
    """
    from ._versions import bump, is_bump, semver_parts, version_sort_key

    if record.version is None:
        if not versions:
            return "1.0.0", None
        latest = max(versions, key=lambda v: version_sort_key(v.version or "", v.created_at))
        return latest.version or "1.0.0", latest
    if is_bump(record.version):
        semver = [v.version for v in versions if v.version and semver_parts(v.version)]
        top = max(semver, key=version_sort_key) if semver else None
        return bump(top, record.version), None
    for v in versions:
        if v.version == record.version:
            return record.version, v
    return record.version, None


def same_content_bump(record: DatasetRecord, holder: DatasetRecord | None) -> bool:
    """True when a ``"next"`` insert repeats content already stored under the same name
    (the stored version is then the answer, so re-running a script adds no version)."""
    from ._versions import is_bump

    return (
        is_bump(record.version)
        and holder is not None
        and holder.name == record.name
        and holder.same_content(record)
    )


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
    names: set[tuple[str, str | None]] = set()
    cids: dict[str, str] = {}
    for d in datasets:
        if (d.name, d.version) in names:
            raise DatasetExistsError(
                f"Dataset {d.name!r} (version {d.version}) appears twice in the catalog."
            )
        if d.cid in cids:
            raise DatasetExistsError(
                f"Datasets {cids[d.cid]!r} and {d.name!r} have the same CID {d.cid}."
            )
        names.add((d.name, d.version))
        cids[d.cid] = d.name
