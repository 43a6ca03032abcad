"""The objects the index hands out: dataset entries, schema records, the ``types`` namespace.

Names, fields and shapes are atdata 0.2's (``atdata.local``), so code that reads them keeps
working after the import swap. This module is on the hot path: it imports nothing heavy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from .._records import ShardFields
from ..cid import dataset_cid
from ._metadata import decode_metadata
from .backend import DatasetRecord, ShardRecord

__all__ = ["BasicIndexEntry", "LocalDatasetEntry", "LocalSchemaRecord", "SchemaNamespace"]


@dataclasses.dataclass
class LocalDatasetEntry:
    """A dataset in the index (atdata's ``LocalDatasetEntry``; satisfies ``IndexEntry``).

    The first six fields are atdata's, in atdata's order. The CID is computed over
    ``schema_ref`` and ``data_urls`` only (byte-identical to atdata) unless given.

    Attributes:
        name: Unique human-readable name.
        schema_ref: The schema reference (either ref form).
        data_urls: Shard URLs, in order.
        metadata: The metadata map, or ``None``.
        shards: The shards with what is known of them (size, sample count, sha256); their
            URLs are ``data_urls``. Built from ``data_urls`` when not given.
        created_at: When the entry was first stored (set by the index).
        updated_at: When the entry was last replaced or renamed (set by the index).
        version: Which version of ``name`` the entry is (set by the index; ``name@version``
            reaches it).
    """

    name: str
    schema_ref: str
    data_urls: list[str]
    metadata: dict[str, Any] | None = None
    _cid: str | None = dataclasses.field(default=None, repr=False)
    _legacy_uuid: str | None = dataclasses.field(default=None, repr=False)
    shards: tuple[ShardRecord, ...] = dataclasses.field(default=(), kw_only=True, repr=False)
    created_at: datetime | None = dataclasses.field(default=None, kw_only=True, repr=False)
    updated_at: datetime | None = dataclasses.field(default=None, kw_only=True, repr=False)
    version: str | None = dataclasses.field(default=None, kw_only=True, repr=False)

    def __post_init__(self) -> None:
        self.data_urls = list(self.data_urls)
        if self.shards:
            self.shards = tuple(self.shards)
            if [s.url for s in self.shards] != self.data_urls:
                raise ValueError(
                    f"Entry {self.name!r}: the shard URLs differ from data_urls; pass one or "
                    "the other, or both in the same order."
                )
        else:
            self.shards = tuple(ShardRecord(url) for url in self.data_urls)
        check_splits(self.name, self.shards)
        if self._cid is None:
            self._cid = dataset_cid(self.schema_ref, self.data_urls)

    @property
    def cid(self) -> str:
        """The content identifier (atdata-compatible, over ``schema_ref`` and ``data_urls``)."""
        assert self._cid is not None
        return self._cid

    @property
    def splits(self) -> dict[str, list[str]]:
        """The named splits: ``{"train": [urls...], "test": [...]}`` in the order they first
        appear among the shards; ``{}`` for an entry without splits (read ``data_urls``).

        ``data_urls`` always lists every shard of every split, so code that knows nothing of
        splits (and atdata itself) reads the entry as one dataset.
        """
        out: dict[str, list[str]] = {}
        for shard in self.shards:
            if shard.split is not None:
                out.setdefault(shard.split, []).append(shard.url)
        return out

    @property
    def recorded_urls(self) -> list[str]:
        """The shard URLs as the index records them, which the CID is computed over.

        They differ from :attr:`data_urls` for shards inside the data store: those are
        recorded relative to the store root (``store://name/data--...tar``) and
        ``data_urls`` holds them resolved against the root of the index's store.
        """
        return list(self.__dict__.get("_recorded_urls") or self.data_urls)

    @property
    def wds_url(self) -> str:
        """Legacy: the first data URL, or ``""`` when there is none."""
        return self.data_urls[0] if self.data_urls else ""

    @property
    def sample_kind(self) -> str:
        """Legacy: the same as ``schema_ref``."""
        return self.schema_ref

    # --- atdata 0.2's Redis layout ----------------------------------------------------------

    def write_to(self, redis: Any) -> None:
        """Store this entry in a Redis database in atdata 0.2's layout.

        The hash ``LocalDatasetEntry:{cid}`` gets atdata's fields (``name``, ``schema_ref``,
        ``data_urls`` and ``metadata`` as msgpack, ``cid``, ``legacy_uuid``) plus the
        ``atl_*`` fields atdata ignores (shard sizes, counts, hashes, splits). Unlike
        atdata's ``HSET``, which merged into an existing hash (stale metadata survived a
        rewrite without metadata), the hash is replaced whole, in one ``MULTI``
        transaction. An ``Index`` on that Redis database finds the entry by name after it
        reconciles (on open, or ``index.backend.reconcile()``).

        Args:
            redis: A ``redis.Redis`` client.

        Raises:
            InvalidMetadataError: The metadata would not read back equal (nothing written).
        """
        from ._metadata import encode_metadata
        from .redis._layout import encode_entry, entry_key

        record = DatasetRecord(
            cid=self.cid,
            name=self.name,
            schema_ref=self.schema_ref,
            shards=tuple(self.shards),
            metadata=encode_metadata(self.metadata),
            legacy_uuid=self._legacy_uuid,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )
        key = entry_key(self.cid)
        pipe = redis.pipeline(transaction=True)
        pipe.delete(key)
        pipe.hset(key, mapping=encode_entry(record))
        pipe.execute()

    @classmethod
    def from_redis(cls, redis: Any, cid: str) -> LocalDatasetEntry:
        """Read the entry with CID ``cid`` from a Redis database in atdata 0.2's layout.

        Args:
            redis: A ``redis.Redis`` client.
            cid: The entry's CID (the suffix of its ``LocalDatasetEntry:`` key).

        Returns:
            The entry; its ``cid`` is the stored ``cid`` field (the key's suffix when the
            field is absent), as in atdata.

        Raises:
            DatasetNotFoundError: (a ``KeyError``) no such hash, with atdata's message
                ``"LocalDatasetEntry not found: {cid}"``.
            CorruptEntryError: (a ``KeyError`` and a ``ValueError``) the hash lacks
                ``name``, ``schema_ref`` or a readable ``data_urls``.
        """
        from ..errors import CorruptEntryError, DatasetNotFoundError
        from .redis._layout import BadRow, decode_entry, entry_key

        key = entry_key(cid)
        fields = redis.hgetall(key)
        if not fields:
            raise DatasetNotFoundError(f"LocalDatasetEntry not found: {cid}")
        fields = {(k.encode() if isinstance(k, str) else k): v for k, v in fields.items()}
        fields = {k: (v.encode() if isinstance(v, str) else v) for k, v in fields.items()}
        try:
            record = decode_entry(key, fields)
        except BadRow as exc:
            raise CorruptEntryError(f"Cannot read {key}: {exc}") from None
        return entry_from_record(record)


class _StoredMetadata:
    """``LocalDatasetEntry.metadata`` of an entry read from an index: decoded on first use.

    A non-data descriptor: an entry built by ``__init__`` (or already decoded) holds
    ``metadata`` in its ``__dict__``, which wins, so this runs once per entry at most. Listing
    an index therefore decodes no metadata nobody reads, and a row whose stored bytes are
    broken still lists; reading its ``metadata`` raises, naming the entry and the repair.
    """

    def __get__(self, entry: LocalDatasetEntry | None, owner: type | None = None) -> Any:
        if entry is None:
            return None  # the dataclass default, as the class attribute was
        state = entry.__dict__
        packed = state.get("_packed_metadata")
        try:
            value = None if packed is None else decode_metadata(packed)
        except Exception as exc:
            from ..errors import InvalidMetadataError

            raise InvalidMetadataError(
                f"The stored metadata of dataset {state.get('name')!r} cannot be decoded "
                f"({exc}). Re-insert the entry with on_conflict='replace' to repair it, or "
                "delete it."
            ) from exc
        state["metadata"] = value
        state.pop("_packed_metadata", None)
        return value


class _StoredShards:
    """``LocalDatasetEntry.shards`` of an entry read from an index: built on first use.

    The index hands over the shards as checked field tuples (see
    :func:`stored_entry_maker`); the :class:`ShardRecord` objects are made the first
    time ``shards`` is read. Like :class:`_StoredMetadata`, a non-data descriptor: a value in
    the instance's ``__dict__`` wins.
    """

    def __get__(self, entry: LocalDatasetEntry | None, owner: type | None = None) -> Any:
        if entry is None:
            return ()  # the dataclass default, as the class attribute was
        state = entry.__dict__
        fields = _stored_fields(state)
        state.pop("_shard_fields", None)
        shards = tuple([ShardRecord(*f) for f in fields])
        state["shards"] = shards
        return shards


class _StoredUrls:
    """``LocalDatasetEntry.data_urls`` of an entry read from an index: listed on first use.

    Made from the checked shard fields the entry keeps (or from its shards, once they were
    built). Like :class:`_StoredShards`, a non-data descriptor: the list, once made, is
    the instance's own (changes to it stay), and an entry built by ``__init__`` holds its
    list in its ``__dict__``, which wins. A listing then makes no URL list nobody reads, and
    keeps one object less per entry alive (which the garbage collector would walk).
    """

    def __get__(self, entry: LocalDatasetEntry | None, owner: type | None = None) -> Any:
        if entry is None:
            return self  # no default: data_urls is a required field
        state = entry.__dict__
        if "shards" in state:
            urls = [s.url for s in state["shards"]]
        else:
            urls = [f[0] for f in _stored_fields(state)]
        state["data_urls"] = urls
        return urls


def _stored_fields(state: dict[str, Any]) -> ShardFields:
    """The shard field tuples of an entry read from an index, decoding its packed list once.

    The SQL backend hands entries their packed shard list as read and checked (see
    ``ShardForm``): decoding the same bytes again gives the same, checked, values.
    """
    fields: ShardFields | None = state.get("_shard_fields")
    if fields is None:
        packed = state.pop("_packed_shards", None)
        if packed is None:
            return ()
        # Only entries of the SQL backend hold a packed list, so its module is loaded.
        from .sql._packed import unpack_shard_fields

        fields = state["_shard_fields"] = unpack_shard_fields(packed)
    return fields


# After @dataclass: __init__ keeps None as the default and stores what it is given in the
# instance, so only entries built by entry_from_fields reach the descriptors.
def check_splits(name: str, shards: tuple[ShardRecord, ...]) -> None:
    """Refuse shards of which some name a split and others do not, or a blank split name.

    Raises:
        ValueError: Naming the entry and what to do.
    """
    named = [s.split for s in shards if s.split is not None]
    if not named:
        return
    if len(named) != len(shards):
        raise ValueError(
            f"Entry {name!r}: some shards name a split and others do not; give every shard a "
            "split (e.g. 'train'), or none."
        )
    for split in named:
        if not isinstance(split, str) or not split.strip() or split != split.strip():
            raise ValueError(
                f"Entry {name!r}: invalid split name {split!r}; use a non-empty name without "
                "surrounding spaces, such as 'train'."
            )


LocalDatasetEntry.metadata = _StoredMetadata()  # type: ignore[assignment]  # a descriptor, see above
LocalDatasetEntry.shards = _StoredShards()  # type: ignore[assignment]  # a descriptor, see above
LocalDatasetEntry.data_urls = _StoredUrls()  # type: ignore[assignment]  # a descriptor, see above

BasicIndexEntry = LocalDatasetEntry


def entry_from_fields(
    cid: str,
    name: str,
    schema_ref: str,
    shards: tuple[ShardRecord, ...],
    metadata: bytes | None,
    legacy_uuid: str | None,
    created_at: datetime | None,
    updated_at: datetime | None,
    version: str | None = None,
) -> LocalDatasetEntry:
    """Build the entry for a stored dataset (the index's read path).

    Takes :class:`DatasetRecord`'s fields in order (the shape
    :meth:`IndexBackend.iter_datasets_as` calls). The stored row is already consistent, so
    ``__init__``'s checks are skipped and the instance is filled with one dict: a lookup
    should cost the query, not the object, and listing builds one per dataset.

    ``metadata`` (msgpack bytes) is decoded when the entry's ``metadata`` is first read.
    """
    self = object.__new__(LocalDatasetEntry)
    self.__dict__ = {
        "name": name,
        "schema_ref": schema_ref,
        "data_urls": [s.url for s in shards],
        "_packed_metadata": metadata,
        "_cid": cid,
        "_legacy_uuid": legacy_uuid,
        "shards": shards,
        "created_at": created_at,
        "updated_at": updated_at,
        "version": version,
    }
    return self


def stored_entry_maker(
    careful: Callable[..., LocalDatasetEntry], marker: str
) -> Callable[..., LocalDatasetEntry]:
    """A builder of entries for stored datasets whose shards come as checked field tuples.

    The builder takes :class:`DatasetRecord`'s fields in order (``shards`` in the form
    ``shard_fields="packed"`` gives: field tuples, or a packed list), already checked by the
    backend, and fills the instance with one dict as
    :func:`entry_from_fields` does. The :class:`ShardRecord` objects are made when
    ``shards`` is first read, so an entry that is only listed, or only opened through its
    ``data_urls``, never builds them; ``data_urls`` itself is listed when first read.
    Reading an entry, and listing, call it once per row.

    An entry with a URL containing ``marker`` (a store-relative URL, which the index
    resolves) is built by ``careful`` instead, with the same arguments.

    Args:
        careful: Builds the entries whose URLs need more than copying.
        marker: The substring that sends an entry to ``careful``.

    Returns:
        The builder.
    """
    new = object.__new__
    cls = LocalDatasetEntry
    marker_bytes = marker.encode()

    def make(
        cid: str,
        name: str,
        schema_ref: str,
        shard_fields: ShardFields | bytes,
        metadata: bytes | None,
        legacy_uuid: str | None,
        created_at: datetime | None,
        updated_at: datetime | None,
        version: str | None = None,
    ) -> LocalDatasetEntry:
        # One substring search over the joined URLs (or the packed list's bytes, where
        # msgpack keeps each URL's UTF-8 whole): a URL merely containing the marker takes
        # the careful path, which checks each one. (data_urls is listed on first use: see
        # _StoredUrls.)
        packed: bytes | None = None
        fields: ShardFields | None
        if isinstance(shard_fields, bytes):
            # (find, not ``in``: bytes containment is the slower of the two.)
            if shard_fields.find(marker_bytes) >= 0:
                return careful(
                    cid, name, schema_ref, _stored_fields({"_packed_shards": shard_fields}),
                    metadata, legacy_uuid, created_at, updated_at, version,
                )  # fmt: skip
            packed, fields = shard_fields, None  # decoded on first use: no tuples kept
        elif marker in " ".join([f[0] for f in shard_fields]):
            return careful(
                cid, name, schema_ref, shard_fields, metadata, legacy_uuid, created_at,
                updated_at, version,
            )  # fmt: skip
        else:
            fields = shard_fields
        self = new(cls)
        self.__dict__ = {
            "name": name,
            "schema_ref": schema_ref,
            "_packed_metadata": metadata,
            "_cid": cid,
            "_legacy_uuid": legacy_uuid,
            "_shard_fields": fields,  # constant keys: the dict is built in one step
            "_packed_shards": packed,
            "created_at": created_at,
            "updated_at": updated_at,
            "version": version,
        }
        return self

    return make


def entry_from_record(record: DatasetRecord) -> LocalDatasetEntry:
    """Build the entry for a stored record (see :func:`entry_from_fields`)."""
    return entry_from_fields(
        record.cid, record.name, record.schema_ref, record.shards, record.metadata,
        record.legacy_uuid, record.created_at, record.updated_at, record.version,
    )  # fmt: skip


_SCHEMA_RECORD_KEYS = ("name", "version", "fields", "$ref", "description", "createdAt")


def _parse_created_at(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


@dataclasses.dataclass
class LocalSchemaRecord:
    """A published schema (atdata's ``LocalSchemaRecord``), with dict-style access.

    ``record["name"]``, ``"$ref" in record``, ``record.get("description")``, ``keys()``,
    ``items()`` and ``to_dict()`` behave like the dict :meth:`Index.get_schema` returns.
    Fields are the record's field dicts (``name``, ``fieldType``, ``optional`` and, for
    atdata-lite records, an optional ``default``).
    """

    name: str
    version: str
    fields: list[dict[str, Any]]
    ref: str
    description: str | None = None
    created_at: datetime | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LocalSchemaRecord:
        """Build from a schema dict (``$ref`` optional; an invalid ``createdAt`` is None).

        Raises:
            KeyError: ``name`` or ``version`` is missing.
        """
        return cls(
            name=data["name"],
            version=data["version"],
            fields=list(data.get("fields") or []),
            ref=data.get("$ref", ""),
            description=data.get("description"),
            created_at=_parse_created_at(data.get("createdAt")),
        )

    def to_dict(self) -> dict[str, Any]:
        """atdata's shape: ``name, version, fields, $ref``, then ``description`` if truthy and
        ``createdAt`` if set."""
        out: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "fields": [dict(f) for f in self.fields],
            "$ref": self.ref,
        }
        if self.description:
            out["description"] = self.description
        if self.created_at:
            out["createdAt"] = self.created_at.isoformat()
        return out

    def __getitem__(self, key: str) -> Any:
        if key == "name":
            return self.name
        if key == "version":
            return self.version
        if key == "fields":
            return self.fields
        if key == "$ref":
            return self.ref
        if key == "description":
            return self.description
        if key == "createdAt":
            return self.created_at.isoformat() if self.created_at else None
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return key in _SCHEMA_RECORD_KEYS

    def get(self, key: str, default: Any = None) -> Any:
        """``self[key]``, or ``default`` for an unknown key."""
        try:
            return self[key]
        except KeyError:
            return default

    def keys(self) -> list[str]:
        """The dict-style keys, in atdata's order."""
        return list(_SCHEMA_RECORD_KEYS)

    def items(self) -> list[tuple[str, Any]]:
        """``(key, self[key])`` for every key."""
        return [(k, self[k]) for k in _SCHEMA_RECORD_KEYS]

    def values(self) -> list[Any]:
        """``self[key]`` for every key."""
        return [self[k] for k in _SCHEMA_RECORD_KEYS]

    def __iter__(self) -> Iterator[str]:
        return iter(_SCHEMA_RECORD_KEYS)

    def __len__(self) -> int:
        return len(_SCHEMA_RECORD_KEYS)


class SchemaNamespace:
    """``index.types``: the classes loaded with :meth:`Index.load_schema`, by class name.

    Loading another version of the same name replaces the earlier class, as in atdata.
    """

    _types: dict[str, type]

    def __init__(self) -> None:
        object.__setattr__(self, "_types", {})

    def _register(self, name: str, cls: type) -> None:
        self._types[name] = cls

    def __getattr__(self, name: str) -> type:
        if name.startswith("_"):
            raise AttributeError(f"'SchemaNamespace' has no attribute '{name}'")
        try:
            return self._types[name]
        except KeyError:
            raise AttributeError(
                f"Schema '{name}' not loaded. Call index.load_schema() first to load the schema."
            ) from None

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self._types))

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._types))

    def __len__(self) -> int:
        return len(self._types)

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def get(self, name: str, default: type | None = None) -> type | None:
        """The class loaded under ``name``, or ``default``."""
        return self._types.get(name, default)

    def __repr__(self) -> str:
        if not self._types:
            return "SchemaNamespace(empty)"
        return f"SchemaNamespace({', '.join(sorted(self._types))})"
