"""``Index``: atdata's ``local.Index`` API, written once over the backend contract.

Every method of atdata 0.2's ``atdata.local.Index`` is here with the same name, signature,
return shape and exception types (``KeyError``, ``ValueError``, ``TypeError``: each error
class of :mod:`atdata_lite.errors` subclasses the builtin atdata raised), so code written
against atdata's local index runs after swapping the import. What differs is what atdata
got wrong: names are unique and looked up through an index; the schema of
an insert without a ref is the published schema whose content matches the sample type
(published when there is none), and a ref to a missing schema is refused; metadata is
validated before anything is written; multi-shard sources are indexed with every shard;
published schema versions are immutable; stubs are ``.pyi`` files written only on request;
local shard paths are recorded absolute, and shards inside the data store relative to its
root (``store://``, see :mod:`atdata_lite._paths`), whichever method added them.

Opening an index and looking a dataset up (``Index(path).get_dataset(name)``) imports
neither numpy, webdataset, fsspec nor Alembic: they are imported inside the methods that
need them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar, cast

from .._log import get_logger
from .._paths import STORE_SCHEME, local_root, rebase, recorded_url, resolve_url
from .._text import check_name
from ..errors import (
    DatasetExistsError,
    DatasetNotFoundError,
    IndexOpenError,
    LabelNotFoundError,
    NotPackableError,
    SchemaDecodeError,
    SchemaNotFoundError,
)
from ..schema import (
    content_hash,
    make_schema_ref,
    parse_schema_ref,
    parse_semver,
    render_record,
    schema_record,
    schema_to_type,
)
from ._hints import cid_hint, no_entry_named, schema_hint
from ._metadata import encode_metadata
from ._registry import open_backend, url_scheme
from ._versions import BUMPS, check_label_version, check_version, split_ref, version_sort_key
from .backend import (
    DatasetRecord,
    IndexBackend,
    LabelRow,
    OnConflict,
    SchemaRow,
    ShardRecord,
    check_on_conflict,
    name_taken_error,
)
from .entries import (
    LocalDatasetEntry,
    LocalSchemaRecord,
    SchemaNamespace,
    entry_from_fields,
    stored_entry_maker,
)

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    from .._records import ShardFields
    from ..progress import CancelToken, ProgressArg
    from ..protocols import AbstractDataStore, RecordingDataStore
    from ._watch import Watch
    from .stubs import StubManager

__all__ = ["Index", "LocalIndex", "Relocation"]

log = get_logger("atdata_lite.index")

T = TypeVar("T")

_NOTHING = object()


def _looks_like_redis_client(obj: Any) -> bool:
    return callable(getattr(obj, "hset", None)) and callable(getattr(obj, "ping", None))


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"A dataset name must be a non-empty string, got {name!r}.")
    # Names are printed by `ls` and friends: no terminal control sequences in new ones.
    return check_name(name, "dataset name")


def _prefix_for(name: str) -> str:
    """A store prefix (one path segment) made from a dataset name."""
    segment = re.sub(r"[^A-Za-z0-9_.=+\-@]+", "_", name).strip(".")
    if not segment or not re.match(r"[A-Za-z0-9_]", segment):
        segment = "_" + segment
    return segment


def _recorded(shard: ShardRecord, root: str) -> ShardRecord:
    url = recorded_url(shard.url, root)
    return shard if url == shard.url else dataclasses.replace(shard, url=url)


@dataclasses.dataclass(frozen=True)
class Relocation:
    """What :meth:`Index.relocate` changed (or would change) in one entry.

    Attributes:
        name: The entry's name.
        old_cid: Its CID before.
        new_cid: Its CID after (computed over the new URLs, as atdata computes CIDs).
        urls: ``(old, new)`` recorded URL pairs, for the shards that moved.
    """

    name: str
    old_cid: str
    new_cid: str
    urls: tuple[tuple[str, str], ...]


def _version_arg(version: Any) -> str | None:
    """The backend's form of an insert's ``version=``: ``None``, a bump marker, or a version."""
    if version is None:
        return None
    if isinstance(version, str) and version in BUMPS:
        return BUMPS[version]
    return check_version(version)


class Index:
    """A catalog of datasets and schemas (atdata's ``local.Index``).

    Args:
        url: Where the index lives: a path to a SQLite file, a ``sqlite:///`` or
            ``postgresql://`` URL, a ``redis://`` URL, or any scheme a plugin registers.
            ``None`` uses ``$ATDATA_LITE_INDEX`` or ``index.db`` in the user data directory.
            A ``redis.Redis`` client given here (atdata's first parameter was ``redis``)
            selects the Redis backend on that client.
        data_store: Where :meth:`insert_dataset` writes shards before indexing them (an
            ``AbstractDataStore`` such as ``FsspecDataStore``, or a root URL/path for one).
            Without it, ``insert_dataset`` indexes the dataset's existing URLs.
            ``Index()`` with no arguments at all opens the default index with the default
            store (:func:`atdata_lite.config.default_store_url`). Shards inside the store
            are recorded relative to its root (``store://...``) and resolved against the
            root of this store (the default store when there is none) when read, so open
            an index with the store it was written with.
        auto_stubs: Write ``.pyi`` type stubs of schemas for IDEs (see
            :mod:`atdata_lite.index.stubs`).
        stub_dir: Where to write the stubs; giving it turns stubs on, as in atdata.
        redis: A ``redis.Redis`` client: use the Redis backend on it.
        provider: atdata 0.7's way to choose the backend: ``"sqlite"`` (with ``path=``),
            ``"postgres"`` (with ``dsn=``, a URL or ``key=value`` string) or ``"redis"``
            (with ``redis=``, or atdata's ``host=``/``port=``/``db=``), or an already-open
            :class:`~atdata_lite.index.backend.IndexBackend`. Any other name raises
            ``UnknownBackendError`` (a ``ValueError``: ``"Unknown provider ..."``).
        path: The SQLite file of ``provider="sqlite"``; given alone, it selects SQLite
            (atdata 0.7 ignored a ``path`` without ``provider``).
        dsn: The PostgreSQL database of ``provider="postgres"``; given alone, it selects
            PostgreSQL.
        read_only: Open a SQLite or PostgreSQL index for reading only: listing and lookups
            work, nothing is created, upgraded or written, and every write raises
            :class:`~atdata_lite.errors.IndexReadOnlyError`. A SQLite file on read-only
            media (or in a read-only directory) is opened this way without asking.
        **backend_options: Passed to the backend (e.g. ``busy_timeout`` for SQLite). With no
            ``url``, atdata's Redis keywords ``host``/``port``/``db``/``password`` select a
            Redis index, as ``Redis(**kwargs)`` did in atdata.

    The first four parameters may be given by position, as atdata's
    ``Index(redis, data_store, auto_stubs, stub_dir)``.

    Thread-safe; usable in a forked child (the backend reconnects); close it with
    :meth:`close` or use it as a context manager.
    """

    def __init__(
        self,
        url: str | os.PathLike[str] | Any | None = None,
        data_store: AbstractDataStore | str | os.PathLike[str] | None = None,
        auto_stubs: bool = False,
        stub_dir: str | os.PathLike[str] | None = None,
        *,
        redis: Any = None,
        provider: Any = None,
        path: str | os.PathLike[str] | None = None,
        dsn: str | None = None,
        read_only: bool = False,
        **backend_options: Any,
    ) -> None:
        default = (
            url is None and redis is None and provider is None and path is None and dsn is None
        )
        if default and data_store is None and not backend_options:
            # The default index comes with the default store, as `atdata-lite info` shows.
            from ..stores import default_store

            data_store = default_store()
        if isinstance(provider, IndexBackend):
            self._init(provider, data_store=data_store, auto_stubs=auto_stubs, stub_dir=stub_dir)
            return
        if provider is not None or path is not None or dsn is not None:
            from ._providers import provider_location

            url, redis = provider_location(
                provider,
                url=url,
                path=path,
                dsn=dsn,
                redis=redis,
                redis_url_from_kwargs=self._redis_url_from_kwargs,
                options=backend_options,
            )
        if url is not None and not isinstance(url, (str, os.PathLike)):
            if redis is not None or not _looks_like_redis_client(url):
                raise TypeError(
                    "Index(url): expected a path, a URL or a redis.Redis client, got "
                    f"{type(url).__name__}."
                )
            url, redis = None, url
        if redis is not None:
            if read_only:
                raise IndexOpenError(
                    "read_only=True is supported for SQLite and PostgreSQL indexes, not Redis."
                )
            backend = open_backend("redis://", client=redis, **backend_options)
        else:
            if url is None:
                url = self._redis_url_from_kwargs(backend_options)
            if url is None:
                from ..config import default_index_location

                url = default_index_location()
            if read_only:
                if url_scheme(os.fspath(url)) not in (None, "sqlite", "postgresql", "postgres"):
                    raise IndexOpenError(
                        "read_only=True is supported for SQLite and PostgreSQL indexes, not "
                        f"{url_scheme(os.fspath(url))}:// ones. Open it without read_only."
                    )
                backend_options["read_only"] = True
            backend = open_backend(url, **backend_options)
        self._init(backend, data_store=data_store, auto_stubs=auto_stubs, stub_dir=stub_dir)

    @staticmethod
    def _redis_url_from_kwargs(options: dict[str, Any]) -> str | None:
        keys = ("host", "port", "db", "password", "username")
        if not any(k in options for k in keys):
            return None
        from urllib.parse import quote

        host = options.pop("host", "localhost")
        port = options.pop("port", 6379)
        db = options.pop("db", 0)
        user = options.pop("username", None) or ""
        password = options.pop("password", None)
        auth = ""
        if password is not None:
            auth = f"{quote(user, safe='')}:{quote(str(password), safe='')}@"
        elif user:
            auth = f"{quote(user, safe='')}@"
        return f"redis://{auth}{host}:{port}/{db}"

    @classmethod
    def from_backend(
        cls,
        backend: IndexBackend,
        *,
        data_store: AbstractDataStore | str | os.PathLike[str] | None = None,
        auto_stubs: bool = False,
        stub_dir: str | os.PathLike[str] | None = None,
    ) -> Index:
        """Wrap an already-open backend (the index then owns it and closes it)."""
        self = cls.__new__(cls)
        self._init(backend, data_store=data_store, auto_stubs=auto_stubs, stub_dir=stub_dir)
        return self

    def _init(
        self,
        backend: IndexBackend,
        *,
        data_store: AbstractDataStore | str | os.PathLike[str] | None,
        auto_stubs: bool,
        stub_dir: str | os.PathLike[str] | None,
    ) -> None:
        self._backend = backend
        if isinstance(data_store, (str, os.PathLike)):
            from ..stores import FsspecDataStore

            data_store = FsspecDataStore(os.fspath(data_store))
        self._data_store: AbstractDataStore | None = data_store
        self._root: str | None = None
        self._stubs: StubManager | None = None
        if auto_stubs or stub_dir is not None:
            from .stubs import StubManager

            self._stubs = StubManager(stub_dir)
        self._types = SchemaNamespace()
        # The read path's entries (lookups, listing): shards arrive as checked field tuples
        # and become records only when read, unless a URL needs resolving.
        # (Through a weak reference: the index holds the builder, which must not hold it.)
        self._make_stored_entry = stored_entry_maker(_resolving(weakref.ref(self)), STORE_SCHEME)
        self._known_schemas: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._watches: set[Watch] = set()

    # --- lifecycle and properties ---------------------------------------------------------

    def close(self) -> None:
        """Stop this index's watches, then release the backend's connections. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            watches = list(self._watches)
        for watch in watches:
            watch.stop()
        self._backend.close()

    # --- change notification --------------------------------------------------------------

    def data_version(self) -> int:
        """A number that changes whenever any process changes the catalog.

        Cheap (no table is read on SQLite; one one-row query on PostgreSQL; one ``GET`` on
        Redis), so a host may poll it a few times a second and refresh its view when it
        differs from the last value it saw. Reads never change it. Compare values from the
        same ``Index`` object for equality only: on SQLite it counts the changes this object
        has seen; on PostgreSQL it is the id of the last writing transaction; on Redis a
        counter every atdata-lite write increments (writes made by atdata itself do not).

        Raises:
            IndexOpenError: The index was closed.
            NotImplementedError: A plugin backend that cannot tell.
        """
        return self._backend.data_version()

    def watch(self, callback: Callable[[int], None], *, interval: float = 1.0) -> Watch:
        """Call ``callback(version)`` after each change of the catalog, from a thread.

        Args:
            callback: Called on the watch's thread with the new :meth:`data_version`
                after each change seen (several changes between two polls are one call).
                A GUI host hands it to its own loop (``call_soon_threadsafe``...).
            interval: Seconds between two polls of :meth:`data_version`.

        Returns:
            A :class:`~atdata_lite.index._watch.Watch`: ``stop()`` it, or use it as a
            context manager. :meth:`close` stops every watch of the index, so its thread
            never outlives the index.

        Example:
            >>> with index.watch(lambda v: print("changed"), interval=0.5):  # doctest: +SKIP
            ...     run_the_ui()
        """
        from ._watch import Watch

        def forget(watch: Watch) -> None:
            with self._lock:
                self._watches.discard(watch)

        with self._lock:
            if self._closed:
                raise IndexOpenError(f"The index {self.location} was closed; open it again.")
        watch = Watch(self.data_version, callback, interval, on_stop=forget)
        with self._lock:
            self._watches.add(watch)
        return watch

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Index({self._backend.location!r}, backend={self._backend.kind!r})"

    @property
    def backend(self) -> IndexBackend:
        """The storage backend (see :class:`~atdata_lite.index.backend.IndexBackend`)."""
        return self._backend

    @property
    def location(self) -> str:
        """Where the index lives (any password hidden)."""
        return self._backend.location

    @property
    def data_store(self) -> AbstractDataStore | None:
        """The data store given at construction (a path or URL given there becomes an
        :class:`~atdata_lite.stores.FsspecDataStore`), or ``None``."""
        return self._data_store

    @property
    def store_root(self) -> str:
        """The root that ``store://`` URLs are relative to.

        The data store's ``root_url`` (local paths made absolute), or the default store's
        root when the index has no data store (or one without a root).
        """
        if self._root is None:
            root = getattr(self._data_store, "root_url", None)
            if root is None:
                from ..config import default_store_url

                root = default_store_url()
            self._root = local_root(root)
        return self._root

    @property
    def stub_dir(self) -> Path | None:
        """The stub directory, or ``None`` when stubs are off."""
        return self._stubs.stub_dir if self._stubs is not None else None

    @property
    def types(self) -> SchemaNamespace:
        """The classes loaded with :meth:`load_schema`, by class name (``index.types.X``)."""
        return self._types

    # --- records <-> entries --------------------------------------------------------------

    def _entry(self, record: DatasetRecord) -> LocalDatasetEntry:
        return self._make_entry(
            record.cid, record.name, record.schema_ref, record.shards, record.metadata,
            record.legacy_uuid, record.created_at, record.updated_at, record.version,
        )  # fmt: skip

    def _make_entry(
        self,
        cid: str,
        name: str,
        schema_ref: str,
        shards: tuple[ShardRecord, ...],
        metadata: bytes | None,
        legacy_uuid: str | None,
        created_at: Any,
        updated_at: Any,
        version: str | None = None,
    ) -> LocalDatasetEntry:
        # Entries hand out URLs that open: store-relative ones are resolved here, and the
        # recorded form (which the CID is computed over) stays available as recorded_urls.
        for shard in shards:
            if shard.url.startswith(STORE_SCHEME):
                break
        else:
            return entry_from_fields(
                cid, name, schema_ref, shards, metadata, legacy_uuid, created_at, updated_at,
                version,
            )  # fmt: skip
        root = self.store_root
        recorded = [s.url for s in shards]
        shards = tuple(
            ShardRecord(resolve_url(s.url, root), s.size, s.sample_count, s.sha256, s.split)
            if s.url.startswith(STORE_SCHEME)
            else s
            for s in shards
        )
        entry = entry_from_fields(
            cid, name, schema_ref, shards, metadata, legacy_uuid, created_at, updated_at, version
        )
        entry.__dict__["_recorded_urls"] = recorded
        return entry

    def _make_resolved_entry(
        self,
        cid: str,
        name: str,
        schema_ref: str,
        shard_fields: ShardFields,
        metadata: bytes | None,
        legacy_uuid: str | None,
        created_at: Any,
        updated_at: Any,
        version: str | None = None,
    ) -> LocalDatasetEntry:
        # The read path's entries with store-relative URLs (see _init: the others are built
        # by stored_entry_maker without a call here).
        return self._make_entry(
            cid, name, schema_ref, tuple([ShardRecord(*f) for f in shard_fields]), metadata,
            legacy_uuid, created_at, updated_at, version,
        )  # fmt: skip

    # --- datasets: reading ----------------------------------------------------------------

    def get_dataset(self, ref: str) -> LocalDatasetEntry:
        """Return the dataset ``ref`` names (AbstractIndex protocol), resolving labels first.

        ``ref`` is one of:

        * ``name``: the unversioned label ``name`` if one is set (atdata's
          ``label(name, cid)``), else the latest version of the dataset ``name`` (its highest
          ``x.y.z`` version; the most recently created when none is ``x.y.z``), else the
          latest of the versioned labels called ``name``;
        * ``name@version``: that version of the dataset, else the label ``(name, version)``;
        * ``name:label``: the label ``(name, label)`` (a tag such as ``mnist:stable``), else
          the dataset version called ``label``;
        * a CID, when nothing else matches.

        A name that itself holds ``@`` or ``:`` (an older index allowed them) is looked up
        whole first.

        Raises:
            DatasetNotFoundError: (a ``KeyError``) nothing matches.
        """
        if isinstance(ref, str):
            # The unversioned label, else the latest version: one statement on SQL backends,
            # built straight into the entry, as this is every load's first lookup.
            entry = self._backend.resolve_name_as(
                ref, self._make_stored_entry, shard_fields="packed"
            )
            if entry is not None:
                return entry
        record = self._resolve_other(ref)
        if record is None:
            raise no_entry_named(self._backend, ref)
        return self._entry(record)

    def _resolve(self, ref: str) -> DatasetRecord | None:
        if not isinstance(ref, str):
            return None
        record = self._backend.resolve_name(ref)
        if record is not None:
            return record
        return self._resolve_other(ref)

    def _resolve_other(self, ref: str) -> DatasetRecord | None:
        # What ref names when no label and no dataset has that plain name.
        b = self._backend
        if not isinstance(ref, str):
            return None
        labels = b.iter_labels(ref)
        if labels:
            top = max(labels, key=lambda r: version_sort_key(r.version, r.updated_at))
            return b.get_dataset_by_cid(top.cid)
        name, version, tag = split_ref(ref)
        if version is not None:
            record = b.get_dataset_version(name, version)
            if record is not None:
                return record
            label = b.get_label(name, version)
            return b.get_dataset_by_cid(label.cid) if label is not None else None
        if tag is not None:
            label = b.get_label(name, tag)
            if label is not None:
                return b.get_dataset_by_cid(label.cid)
            return b.get_dataset_version(name, tag)
        if ref.startswith("b"):
            return b.get_dataset_by_cid(ref)
        return None

    def get_entry_by_name(self, name: str) -> LocalDatasetEntry:
        """Return the entry named ``name``.

        Raises:
            DatasetNotFoundError: (a ``KeyError``) no entry has that name.
        """
        entry = self._backend.get_dataset_as(name, self._make_stored_entry, shard_fields="packed")
        if entry is None:
            raise no_entry_named(self._backend, name)
        return entry

    def get_entry(self, cid: str) -> LocalDatasetEntry:
        """Return the entry whose CID is ``cid``.

        Raises:
            DatasetNotFoundError: (a ``KeyError``) no entry has that CID.
        """
        entry = self._backend.get_dataset_by_cid_as(
            cid, self._make_stored_entry, shard_fields="packed"
        )
        if entry is None:
            raise DatasetNotFoundError(
                f"LocalDatasetEntry not found: {cid}", hint=partial(cid_hint, self._backend, cid)
            )
        return entry

    @property
    def entries(self) -> Iterator[LocalDatasetEntry]:
        """Every entry, ordered by name (see :meth:`list_entries` for unreadable rows)."""
        return self._backend.iter_datasets_as(self._make_stored_entry, shard_fields="packed")

    def list_entries(self) -> list[LocalDatasetEntry]:
        """Every entry, as a list.

        A row the backend cannot read is skipped with a warning. An entry whose stored
        metadata is broken is listed; reading its ``metadata`` raises
        :class:`~atdata_lite.errors.InvalidMetadataError` naming it (metadata is decoded on
        first use, which keeps listing cheap).
        """
        # The backend builds the entries straight from its rows: listing is a hot path.
        return self._backend.list_datasets_as(self._make_stored_entry, shard_fields="packed")

    @property
    def all_entries(self) -> list[LocalDatasetEntry]:
        """Legacy alias of :meth:`list_entries`."""
        return self.list_entries()

    @property
    def datasets(self) -> Iterator[LocalDatasetEntry]:
        """Every entry (AbstractIndex protocol)."""
        return self.entries

    def list_datasets(self) -> list[LocalDatasetEntry]:
        """Every entry, as a list (AbstractIndex protocol)."""
        return self.list_entries()

    # --- datasets: writing ----------------------------------------------------------------

    def _store(
        self,
        *,
        name: str,
        schema_ref: str,
        shards: Sequence[ShardRecord],
        metadata_bytes: bytes | None,
        legacy_uuid: str | None = None,
        on_conflict: OnConflict,
        version: str | None = None,
    ) -> LocalDatasetEntry:
        for shard in shards:
            check_name(shard.url, "shard URL")
        # Every route into the index records locations the same way (see atdata_lite._paths).
        root = self.store_root
        shards = [_recorded(s, root) for s in shards]
        entry = LocalDatasetEntry(name, schema_ref, [s.url for s in shards], shards=tuple(shards))
        record = DatasetRecord(
            cid=entry.cid,
            name=name,
            schema_ref=schema_ref,
            shards=tuple(shards),
            metadata=metadata_bytes,
            legacy_uuid=legacy_uuid,
            version=version,
        )
        (stored,) = self._backend.insert_datasets([record], on_conflict=on_conflict)
        return self._entry(stored)

    def _require_schema(self, schema_ref: str) -> str:
        name, version = parse_schema_ref(schema_ref)
        # Published versions are immutable and never removed, so a ref seen once stays
        # valid: one query per schema, not one per insert.
        if (name, version) in self._known_schemas:
            return schema_ref
        if self._backend.get_schema(name, version) is None:
            raise SchemaNotFoundError(
                f"Schema not found: {schema_ref}. Publish it first with "
                "index.publish_schema(SampleType), or omit schema_ref to use (and publish if "
                "needed) the schema of the dataset's sample type."
            )
        if len(self._known_schemas) < 10_000:
            self._known_schemas.add((name, version))
        return schema_ref

    def _schema_ref_for(self, ds: Any, schema_ref: str | None) -> str:
        if schema_ref is not None:
            return self._require_schema(schema_ref)
        sample_type = getattr(ds, "sample_type", None)
        if sample_type is None:
            raise NotPackableError(
                "Cannot tell the dataset's sample type; pass schema_ref= explicitly."
            )
        return self.schema_ref_for_type(sample_type)

    def schema_ref_for_type(self, sample_type: type) -> str:
        """Return the ref of the published schema whose content matches ``sample_type``.

        The highest such version is used; when none matches, the type is published with the
        next patch version (``1.0.0`` for a new name).

        Raises:
            NotPackableError: ``sample_type`` is not a packable sample type (a ``DictSample``
                dataset needs an explicit ``schema_ref``).
            UnsupportedFieldTypeError: A field type cannot be described in a schema.
        """
        if getattr(sample_type, "__name__", None) == "DictSample":
            raise NotPackableError(
                "A Dataset[DictSample] has no schema of its own; pass schema_ref= naming the "
                "schema its samples follow."
            )
        record = schema_record(sample_type, version="0.0.0")
        digest = content_hash(record)
        row = self._backend.find_schema(record["name"], digest)
        if row is None:
            row, _ = self._backend.publish_schema(
                record["name"], None, lambda v: render_record(record, v), digest
            )
            self._write_stub(row)
        return make_schema_ref(row.name, row.version)

    @staticmethod
    def _dataset_urls(ds: Any) -> list[str]:
        # Every shard, brace patterns expanded (atdata stored only ds.url, the first shard).
        list_shards = getattr(ds, "list_shards", None)
        if callable(list_shards):
            return [os.fspath(u) for u in list_shards()]
        url = getattr(ds, "url", None)
        if isinstance(url, str) and url:
            from ..sources import expand_urls

            return expand_urls(url)
        raise TypeError(
            f"Cannot list the shards of {type(ds).__name__}: expected a Dataset (with "
            "list_shards()) or an object with a url."
        )

    @staticmethod
    def _metadata_of(ds: Any, metadata: Any) -> bytes | None:
        if metadata is None:
            # atdata's fallback: the metadata already loaded on the dataset (no fetch).
            metadata = getattr(ds, "_metadata", None)
        return encode_metadata(metadata)

    def add_entry(
        self,
        ds: Any,
        *,
        name: str,
        schema_ref: str | None = None,
        metadata: dict[str, Any] | None = None,
        on_conflict: OnConflict = "error",
        version: str | None = None,
    ) -> LocalDatasetEntry:
        """Index a dataset's existing shards under ``name``.

        Args:
            ds: The dataset; every one of its shards is indexed (brace patterns expanded).
            name: Unique name of the entry.
            schema_ref: The schema of its samples. ``None`` uses the published schema whose
                content matches ``ds.sample_type``, publishing it if there is none.
            metadata: A dict with string keys; ``None`` uses ``ds._metadata`` if set.
            on_conflict: ``"error"``, ``"skip"`` or ``"replace"`` when the version slot is
                taken by other content (identical content is never a conflict).
            version: Which version of ``name`` this is. ``None``: ``1.0.0`` for a new
                name; for an existing name, ``on_conflict`` applies to its latest version.
                ``"next"`` (or ``"patch"``), ``"minor"``, ``"major"``: the next version after
                the name's highest ``x.y.z`` one (``1.0.0`` for a new name), chosen
                atomically. Any other string (``"1.2.0"``, ``"2024-06"``) is that version.

        Returns:
            The stored entry.

        Raises:
            InvalidMetadataError: The metadata would not read back equal (nothing written).
            SchemaNotFoundError: ``schema_ref`` names no published schema.
            InvalidSchemaRefError: ``schema_ref`` is malformed.
            DatasetExistsError: ``name`` is taken (``on_conflict="error"``), or the same
                shards are indexed under another name.
        """
        _check_name(name)
        on_conflict = check_on_conflict(on_conflict)
        wanted = _version_arg(version)
        metadata_bytes = self._metadata_of(ds, metadata)
        urls = self._dataset_urls(ds)
        ref = self._schema_ref_for(ds, schema_ref)
        return self._store(
            name=name,
            schema_ref=ref,
            shards=[ShardRecord(u) for u in urls],
            metadata_bytes=metadata_bytes,
            on_conflict=on_conflict,
            version=wanted,
        )

    def add_shards(
        self,
        shards: Sequence[ShardRecord | str],
        *,
        name: str,
        schema_ref: str,
        metadata: dict[str, Any] | None = None,
        on_conflict: OnConflict = "error",
        version: str | None = None,
    ) -> LocalDatasetEntry:
        """Index shards that already exist (with their sizes, counts and hashes, if known).

        Args:
            shards: ``ShardRecord`` objects (e.g. from ``inspect_shard``) or plain URLs.
            name: Unique name of the entry.
            schema_ref: A published schema's ref.
            metadata: A dict with string keys, or ``None``.
            on_conflict: As in :meth:`add_entry`.
            version: As in :meth:`add_entry`.

        Raises:
            As :meth:`add_entry`.
        """
        _check_name(name)
        on_conflict = check_on_conflict(on_conflict)
        wanted = _version_arg(version)
        metadata_bytes = encode_metadata(metadata)
        records = [s if isinstance(s, ShardRecord) else ShardRecord(os.fspath(s)) for s in shards]
        self._require_schema(schema_ref)
        return self._store(
            name=name,
            schema_ref=schema_ref,
            shards=records,
            metadata_bytes=metadata_bytes,
            on_conflict=on_conflict,
            version=wanted,
        )

    def add_splits(
        self,
        splits: Any,
        *,
        name: str,
        schema_ref: str | None = None,
        metadata: dict[str, Any] | None = None,
        on_conflict: OnConflict = "error",
        version: str | None = None,
    ) -> LocalDatasetEntry:
        """Index one entry made of named splits (train / validation / test ...).

        Args:
            splits: ``{"train": shards, "test": shards, ...}`` in the order to keep, each
                value a :class:`~atdata_lite.dataset.Dataset` (its shards), or a list of
                ``ShardRecord`` objects (as ``write_samples`` returns them) or URLs.
            name: Unique name of the entry.
            schema_ref: The samples' schema; ``None`` takes it from the first split that is
                a typed ``Dataset`` (publishing it if needed).
            metadata: A dict with string keys, or ``None``.
            on_conflict: As in :meth:`add_entry`.
            version: As in :meth:`add_entry`.

        Returns:
            The stored entry; ``entry.splits`` maps each split to its URLs, and
            ``entry.data_urls`` lists every shard (split after split).

        Example:
            >>> train = write_samples(train_samples, "data/train-%04d.tar")
            >>> test = write_samples(test_samples, "data/test-%04d.tar")
            >>> index.add_splits({"train": train, "test": test}, name="mnist", schema_ref=ref)

        Raises:
            ValueError: No splits, an empty or blank split name, or a split without shards.
            TypeError: No ``schema_ref`` and no typed ``Dataset`` to take one from.
            As :meth:`add_entry` otherwise.
        """
        _check_name(name)
        on_conflict = check_on_conflict(on_conflict)
        wanted = _version_arg(version)
        items = list(dict(splits).items())
        if not items:
            raise ValueError(f"add_splits({name!r}): give at least one split.")
        shards: list[ShardRecord] = []
        typed = None
        for split, value in items:
            if callable(getattr(value, "list_shards", None)):
                typed = typed or value
                facts = getattr(value, "_shard_facts", {}) or {}
                records = [facts.get(u) or ShardRecord(u) for u in self._dataset_urls(value)]
            else:
                records = [
                    s if isinstance(s, ShardRecord) else ShardRecord(os.fspath(s)) for s in value
                ]
            if not records:
                raise ValueError(f"add_splits({name!r}): split {split!r} has no shards.")
            shards.extend(
                ShardRecord(r.url, r.size, r.sample_count, r.sha256, split) for r in records
            )
        if schema_ref is None:
            if typed is None:
                raise TypeError(
                    f"add_splits({name!r}): pass schema_ref=, or give a split as a typed "
                    "Dataset[YourSample] to take the schema from."
                )
            ref = self._schema_ref_for(typed, None)
        else:
            ref = self._require_schema(schema_ref)
        return self._store(
            name=name,
            schema_ref=ref,
            shards=shards,
            metadata_bytes=encode_metadata(metadata),
            on_conflict=on_conflict,
            version=wanted,
        )

    def insert_dataset(
        self, ds: Any, *, name: str, schema_ref: str | None = None, **kwargs: Any
    ) -> LocalDatasetEntry:
        """Index a dataset (AbstractIndex protocol), writing it through the data store first
        when the index has one.

        Args:
            ds: The dataset.
            name: Unique name of the entry.
            schema_ref: As in :meth:`add_entry`.
            **kwargs: ``metadata`` (as in :meth:`add_entry`), ``on_conflict`` (default
                ``"error"``), ``version`` (as in :meth:`add_entry`; atdata 0.7's keyword),
                ``prefix`` (store prefix, default ``name``), ``cache_local``
                (passed to stores that only have atdata's ``write_shards``), ``progress`` and
                ``cancel`` (see :mod:`atdata_lite.progress`: events while the shards are
                written; once ``cancel`` is set, the shards written so far are removed, no
                entry is stored, and ``OperationCancelled`` is raised); any other keyword
                (``maxcount``, ``maxsize``, ...) goes to the store's writer.

        Returns:
            The stored entry. With a data store, its shards are the newly written ones, with
            their sizes, sample counts and SHA-256 when the store reports them.

        Raises:
            AtdataLiteError: As :meth:`add_entry`. Everything is checked before shards are
                written; if the entry cannot be stored afterwards, shards written by
                ``write_dataset`` are removed again.
            OperationCancelled: ``cancel`` was set: no entry, and no shard written by
                ``write_dataset`` remains.
        """
        metadata = kwargs.pop("metadata", None)
        on_conflict = check_on_conflict(kwargs.pop("on_conflict", "error"))
        version = kwargs.pop("version", None)
        wanted = _version_arg(version)
        cancel = kwargs.get("cancel")
        if self._data_store is None:
            for key in ("prefix", "cache_local", "progress", "cancel"):
                kwargs.pop(key, None)
            if kwargs:
                raise TypeError(
                    f"insert_dataset() got writer options {sorted(kwargs)} but the index has no "
                    "data_store to write with; pass data_store= to Index()."
                )
            return self.add_entry(
                ds,
                name=name,
                schema_ref=schema_ref,
                metadata=metadata,
                on_conflict=on_conflict,
                version=version,
            )

        _check_name(name)
        prefix = kwargs.pop("prefix", None) or _prefix_for(name)
        cache_local = kwargs.pop("cache_local", False)
        metadata_bytes = self._metadata_of(ds, metadata)
        ref = self._schema_ref_for(ds, schema_ref)
        existing = self._existing(name, on_conflict, wanted)
        if existing is not None:
            return existing

        from ..progress import check_cancel
        from ..protocols import RecordingDataStore

        check_cancel(cancel, f"inserting {name}")
        store = self._data_store
        if isinstance(store, RecordingDataStore):
            # write_dataset always writes new, uniquely named shards, and describes them.
            shards = list(store.write_dataset(ds, prefix=prefix, **kwargs))
        else:
            # atdata's stores know neither progress nor cancel: checked around the write.
            kwargs.pop("progress", None)
            kwargs.pop("cancel", None)
            urls = store.write_shards(ds, prefix=prefix, cache_local=cache_local, **kwargs)
            shards = [ShardRecord(u) for u in urls]
        try:
            # The last moment a cancel leaves nothing: after this, the entry is stored.
            check_cancel(cancel, f"inserting {name}")
            return self._store(
                name=name,
                schema_ref=ref,
                shards=shards,
                metadata_bytes=metadata_bytes,
                on_conflict=on_conflict,
                version=wanted,
            )
        except BaseException:
            # Only shards known to be new are removed: an atdata-style store's write_shards
            # may return URLs that other entries already use.
            if isinstance(store, RecordingDataStore):
                self._remove_written(store, [s.url for s in shards])
            raise

    def _existing(
        self, name: str, on_conflict: OnConflict, wanted: str | None = None
    ) -> LocalDatasetEntry | None:
        """Before writing shards: the entry to return for ``skip``, an error, or ``None``.

        ``wanted`` is the backend's form of the version asked for (see ``_version_arg``):
        ``None`` for the name's current version, ``"+..."`` for a new one (nothing can
        conflict), or an exact version.
        """
        if wanted is None:
            existing = self._backend.get_dataset(name)
        elif wanted.startswith("+"):
            return None
        else:
            existing = self._backend.get_dataset_version(name, wanted)
        if existing is None or on_conflict == "replace":
            return None
        if on_conflict == "error":
            raise name_taken_error(name, existing.cid)
        return self._entry(existing)

    def write_samples(
        self,
        samples: Iterable[Any],
        *,
        name: str,
        schema_ref: str | None = None,
        maxcount: int = 10_000,
        maxsize: float | None = None,
        metadata: dict[str, Any] | None = None,
        data_store: Any = None,
        on_conflict: OnConflict = "error",
        progress: ProgressArg = None,
        cancel: CancelToken | None = None,
        version: str | None = None,
    ) -> LocalDatasetEntry:
        """Write samples into the data store as new shards and index them, in one call.

        The schema of the samples' type is published, or an identical published one is
        reused; the shards are written atomically, each with its size, sample count and
        SHA-256 recorded; then the entry is stored. If storing the entry fails, the new
        shards are removed again.

        Args:
            samples: Packable samples of one type (any iterable, read once), or
                ``(key, sample)`` pairs.
            name: Unique name of the entry (also the shards' directory in the store, with
                characters other than letters, digits and ``_.=+-@`` replaced by ``_``).
            schema_ref: The schema of the samples; ``None`` uses the published schema whose
                content matches the first sample's type (publishing it if there is none).
                Required for ``DictSample`` samples.
            maxcount: Most samples per shard.
            maxsize: Most bytes per shard (``None``: 3 GB).
            metadata: A dict with string keys, or ``None``.
            data_store: Where to write; ``None`` uses the index's data store, or the
                default store (:func:`atdata_lite.stores.default_store`) when it has none.
                A path or URL is taken as the root of an ``FsspecDataStore``.
            on_conflict: ``"error"``, ``"skip"`` (nothing is written) or ``"replace"`` when
                ``name`` is taken.
            progress: ``None``/``True`` draw a bar on stderr when it is a terminal,
                ``False`` nothing; a callable receives
                :class:`~atdata_lite.progress.ProgressEvent` objects (unit ``"sample"``).
            cancel: A :class:`threading.Event` (anything with ``is_set()``), checked before
                every sample and just before the entry is stored: once set, the shards
                written so far are removed, no entry is stored, and
                :class:`~atdata_lite.errors.OperationCancelled` is raised.
            version: The version to store the entry as, as for :meth:`insert_dataset`
                (``"1.2.0"``, or ``"next"``/``"patch"``/``"minor"``/``"major"``).

        Returns:
            The stored entry (``entry.shards`` carry the recorded facts).

        Raises:
            ValueError: ``samples`` is empty, or a bad ``maxcount``/``maxsize``.
            NotPackableError: DictSample samples without ``schema_ref``.
            SchemaNotFoundError: ``schema_ref`` names no published schema.
            InvalidMetadataError: The metadata would not read back equal.
            DatasetExistsError: ``name`` is taken (``on_conflict="error"``).
            OperationCancelled: ``cancel`` was set; nothing written by this call remains.
        """
        import itertools

        from ..progress import check_cancel

        _check_name(name)
        on_conflict = check_on_conflict(on_conflict)
        metadata_bytes = encode_metadata(metadata)
        it = iter(samples)
        first = next(it, _NOTHING)
        if first is _NOTHING:
            raise ValueError(
                f"write_samples() got no samples for {name!r}; a dataset needs at least one."
            )
        sample = first[1] if isinstance(first, tuple) and len(first) == 2 else first
        ref = (
            self._require_schema(schema_ref)
            if schema_ref is not None
            else self.schema_ref_for_type(type(sample))
        )
        wanted = _version_arg(version)
        existing = self._existing(name, on_conflict, wanted)
        if existing is not None:
            return existing
        store = self._writing_store(data_store)
        options: dict[str, Any] = {"maxcount": maxcount, "progress": progress}
        if maxsize is not None:
            options["maxsize"] = maxsize
        if cancel is not None:
            options["cancel"] = cancel
        check_cancel(cancel, f"writing {name}")
        shards = store.write_samples(
            itertools.chain([first], it), prefix=_prefix_for(name), **options
        )
        try:
            check_cancel(cancel, f"writing {name}")  # after this, the entry is stored
            return self._store(
                name=name,
                schema_ref=ref,
                shards=shards,
                metadata_bytes=metadata_bytes,
                on_conflict=on_conflict,
                version=wanted,
            )
        except BaseException:
            self._remove_written(store, [s.url for s in shards])
            raise

    write = write_samples

    def _writing_store(self, data_store: Any) -> Any:
        if data_store is None:
            data_store = self._data_store
        if data_store is None:
            from ..stores import default_store

            data_store = default_store()
        elif isinstance(data_store, (str, os.PathLike)):
            from ..stores import FsspecDataStore

            data_store = FsspecDataStore(os.fspath(data_store))
        if not callable(getattr(data_store, "write_samples", None)):
            raise TypeError(
                f"write_samples() needs a data store that can write samples (such as "
                f"FsspecDataStore); {type(data_store).__name__} cannot. Pass "
                "data_store='/path/or/url' instead."
            )
        return data_store

    def relocate(
        self, old_prefix: str, new_prefix: str, *, dry_run: bool = False
    ) -> list[Relocation]:
        """Rewrite the recorded shard locations that start with ``old_prefix``.

        Use it after moving shards that live outside the data store (shards inside it are
        recorded relative to its root and need no rewriting). Prefixes match whole path
        segments; local paths are made absolute; ``store://`` stands for the store root.
        The new locations are recorded by the usual rules, so a path that now lies inside
        the store is recorded relative to it.

        Each changed entry gets a new CID, computed over its new URLs as atdata computes
        CIDs (an entry's CID identifies its schema and shard locations). Names, versions,
        metadata, shard facts and creation times are kept. All entries change in one atomic
        step, except that the versions of one name change one after the other (one atomic
        step each).

        Args:
            old_prefix: The prefix to replace (``/mnt/old``, ``s3://old-bucket/data``).
            new_prefix: What to put instead.
            dry_run: Report what would change and change nothing.

        Returns:
            One :class:`Relocation` per entry that changes (or would change).

        Raises:
            DatasetExistsError: After the rewrite two entries would be the same (same CID).
        """
        from ..cid import dataset_cid

        root = self.store_root
        changes: list[Relocation] = []
        records: list[DatasetRecord] = []
        for record in self._backend.iter_datasets():
            moved: list[tuple[str, str]] = []
            shards = []
            for shard in record.shards:
                new = rebase(shard.url, old_prefix, new_prefix)
                if new is not None:
                    new = recorded_url(new, root)
                if new is None or new == shard.url:
                    shards.append(shard)
                    continue
                moved.append((shard.url, new))
                shards.append(dataclasses.replace(shard, url=new))
            if not moved:
                continue
            cid = dataset_cid(record.schema_ref, [s.url for s in shards])
            changes.append(Relocation(record.name, record.cid, cid, tuple(moved)))
            records.append(
                DatasetRecord(cid, record.name, record.schema_ref, tuple(shards),
                              record.metadata, record.legacy_uuid, version=record.version)
            )  # fmt: skip
        if records and not dry_run:
            # One insert stores each name once: the versions of one name go in turns.
            while records:
                batch: dict[str, DatasetRecord] = {}
                later: list[DatasetRecord] = []
                for record in records:
                    if record.name in batch:
                        later.append(record)
                    else:
                        batch[record.name] = record
                self._backend.insert_datasets(list(batch.values()), on_conflict="replace")
                records = later
        return changes

    @staticmethod
    def _remove_written(store: RecordingDataStore, urls: list[str]) -> None:
        try:
            from ..shards import remove_shards

            remove_shards(urls, storage_options=store.storage_options)
        except Exception as exc:  # cleanup is best effort; the original error matters
            log.warning("Could not remove the shards written for a failed insert: %s", exc)

    def delete_dataset(self, name: str, version: str | None = None) -> LocalDatasetEntry:
        """Remove a dataset from the index (its shards are left alone; see ``atdata-lite gc``).

        Args:
            name: The dataset name, or ``name@version`` for one version.
            version: Remove only this version. ``None`` (and no ``@`` in ``name``) removes
                every version of the name.

        Labels that point at a removed version are removed with it.

        Returns:
            The removed entry (the latest one, when several versions were removed).

        Raises:
            DatasetNotFoundError: (a ``KeyError``) nothing has that name (or version).
        """
        if version is None and self._backend.get_dataset(name) is None:
            base, at, _ = split_ref(name)
            if at is not None:
                name, version = base, at
        record = self._backend.delete_dataset(name, version)
        if record is None:
            wanted = name if version is None else f"{name}@{version}"
            raise no_entry_named(self._backend, wanted)
        return self._entry(record)

    # --- versions and labels ----------------------------------------------------------------

    def list_versions(self, name: str) -> list[LocalDatasetEntry]:
        """Every version of the dataset ``name``, oldest first (the last is the latest).

        Versions that are not ``x.y.z`` come first, by creation time; then the ``x.y.z``
        versions in numeric order. Empty when nothing has that name.
        """
        return [self._entry(r) for r in self._backend.iter_versions(name)]

    def label(
        self,
        name: str,
        cid: str,
        *,
        version: str | None = None,
        description: str | None = None,
    ) -> LabelRow:
        """Point the label ``name`` (``name@version``) at a stored dataset (atdata 0.7's API).

        A label gives stored content another name, or pins a name to one version, without
        copying anything. Calling it again for the same ``(name, version)`` moves the label.

        Args:
            name: The label's name (a dataset name, or any other name).
            cid: The CID of a stored dataset (``entry.cid``), or a dataset ref such as
                ``"mnist@1.2.0"``.
            version: The label's version (``None``: atdata's unversioned label, which
                :meth:`get_dataset` resolves first for ``name``).
            description: Free text.

        Returns:
            The label as stored.

        Raises:
            DatasetNotFoundError: (a ``KeyError``) ``cid`` names no stored dataset (labels
                never dangle).
            DatasetExistsError: (a ``ValueError``) ``name@version`` is a dataset version of
                other content (dataset versions cannot be re-pointed; delete it first).
            InvalidVersionError: (a ``ValueError``) ``version`` cannot be used.
        """
        _check_name(name)
        label_version = check_label_version(version)
        target = self._backend.get_dataset_by_cid(cid)
        if target is None:
            target = self._resolve(cid)
        if target is None:
            raise DatasetNotFoundError(
                f"Cannot label {name!r}: no dataset with CID {cid} is in the index. Labels "
                "point at stored datasets only; insert it first."
            )
        if label_version:
            clash = self._backend.get_dataset_version(name, label_version)
            if clash is not None and clash.cid != target.cid:
                raise DatasetExistsError(
                    f"{name}@{label_version} is a stored dataset version (CID {clash.cid}); "
                    "a label cannot re-point it. Use another label version, or delete that "
                    "dataset version first."
                )
        return self._backend.set_label(name, label_version, target.cid, description)

    def tag(self, ref: str, label: str, *, description: str | None = None) -> LabelRow:
        """Set the tag ``name:label`` on the dataset ``ref`` (``"mnist@1.2.0"``).

        A tag is the label ``(name, label)``: ``get_dataset("mnist:stable")`` (or
        ``"mnist@stable"``) then resolves to that version. Tagging again moves it.

        Raises:
            DatasetNotFoundError: ``ref`` names nothing.
        """
        target = self.get_dataset(ref)
        return self.label(target.name, target.cid, version=label, description=description)

    def get_label(self, name: str, version: str | None = None) -> LocalDatasetEntry:
        """The dataset a label resolves to (atdata 0.7's ``get_label``).

        Every dataset version counts as a label ``(name, version)``, as every insert labels
        it in atdata. ``version=None`` resolves ``name`` as :meth:`get_dataset` does: the
        unversioned label, else the **highest** version (not the most recently created one).

        Raises:
            LabelNotFoundError: (a ``KeyError``) no such label or version.
        """
        ref = name if version is None else f"{name}@{check_label_version(version)}"
        if version == "":
            ref = name
        record = self._resolve(ref)
        if record is None:
            raise LabelNotFoundError(
                f"Label not found: {ref}. List labels with index.list_labels() or "
                "`atdata-lite log NAME`."
            )
        return self._entry(record)

    def delete_label(self, name: str, version: str | None = None) -> LabelRow:
        """Remove a label (``version=None``: the unversioned one); the dataset stays.

        Raises:
            LabelNotFoundError: (a ``KeyError``) no such label. Dataset versions are not
                labels to remove: use :meth:`delete_dataset`.
        """
        row = self._backend.delete_label(name, check_label_version(version))
        if row is None:
            raise LabelNotFoundError(f"No label {name}{'@' + version if version else ''}.")
        return row

    @property
    def labels(self) -> Iterator[tuple[str, str, str | None]]:
        """``(name, cid, version)`` for every label and every dataset version (atdata 0.7)."""
        return iter(self.list_labels())

    def list_labels(self) -> list[tuple[str, str, str | None]]:
        """``(name, cid, version)`` of every label and every dataset version, by name and
        version (atdata 0.7 lists one label per insert; dataset versions are those here).
        An unversioned label has version ``None``."""
        out: dict[tuple[str, str], tuple[str, str, str | None]] = {}
        for r in self._backend.iter_datasets():
            out[(r.name, r.version or "")] = (r.name, r.cid, r.version)
        for lab in self._backend.iter_labels():
            out[(lab.name, lab.version)] = (lab.name, lab.cid, lab.version or None)
        return [out[k] for k in sorted(out, key=lambda k: (k[0], version_sort_key(k[1])))]

    def rename_dataset(self, old: str, new: str) -> LocalDatasetEntry:
        """Rename an entry (its CID does not change).

        Raises:
            DatasetNotFoundError: (a ``KeyError``) no entry is named ``old``.
            DatasetExistsError: (a ``ValueError``) ``new`` is taken.
        """
        _check_name(new)
        return self._entry(self._backend.rename_dataset(old, new))

    # --- lenses ---------------------------------------------------------------------------

    def store_lens(
        self,
        lens: Any,
        *,
        name: str,
        version: str | None = None,
        description: str | None = None,
        source_schema: Any,
        view_schema: Any,
        sample: Any = None,
    ) -> str:
        """Store a lens in the index (atdata 0.7's ``store_lens``), so it round-trips.

        A lens whose output is a copy of source fields is stored as a field mapping, but only
        after running it on ``sample`` (or on a probe built from the source type) and
        checking that the mapping reproduces its output; any other lens is stored as a
        ``module:qualname`` reference to its code (see :mod:`atdata_lite.lens_store`).

        Args:
            lens: A :class:`~atdata_lite.lenses.Lens` (``@lens``-decorated function).
            name: The lens name.
            version: ``x.y.z``; ``None`` takes the next patch version (``1.0.0`` first).
            description: ``None`` uses the getter's docstring.
            source_schema: The source schema (a ref, a name, or the type).
            view_schema: The view schema (a ref, a name, or the type).
            sample: A source sample to check the lens on.

        Returns:
            ``atdata://local/lens/{name}@{version}``.

        Raises:
            LensCheckError: (a ``ValueError``) it can be stored neither as a checked mapping
                nor as importable code (a lambda that transforms values).
            SchemaConflictError: ``name@version`` is stored with other content.
        """
        from ..lens_store import LENS_REF_PREFIX, lens_content_hash, lens_record

        check_name(name, "lens name")
        if version is not None:
            parse_semver(version)
        record = lens_record(
            lens,
            name=name,
            description=description,
            source_schema=source_schema,
            view_schema=view_schema,
            sample=sample,
        )
        digest = lens_content_hash(record)

        def render(v: str) -> str:
            return json.dumps({**record, "version": v})

        row, _ = self._backend.store_lens(
            name, version, render, digest, record["source_schema"], record["view_schema"]
        )
        return f"{LENS_REF_PREFIX}{row.name}@{row.version}"

    def get_lens(self, ref: str) -> dict[str, Any]:
        """The stored lens record ``ref`` names (``Name@1.0.0``, a lens ref, or ``Name`` for
        its highest version).

        Raises:
            LensNotFoundError: (a ``KeyError``) nothing is stored under ``ref``.
        """
        from ..errors import LensNotFoundError
        from ..lens_store import LENS_REF_PREFIX, parse_lens_ref

        name, version = parse_lens_ref(ref)
        if version is None:
            rows = [r for r in self._backend.iter_lenses() if r.name == name]
            row = rows[-1] if rows else None
        else:
            row = self._backend.get_lens(name, version)
        if row is None:
            raise LensNotFoundError(f"Lens not found: {ref}")
        record: dict[str, Any] = json.loads(row.record_json)
        record["$ref"] = f"{LENS_REF_PREFIX}{row.name}@{row.version}"
        return record

    def load_lens(
        self,
        ref: str,
        *,
        source_type: type,
        view_type: type,
        trusted_modules: Sequence[str] = (),
    ) -> Any:
        """Rebuild a stored lens as a working ``Lens`` and register it (atdata 0.7).

        A code lens runs only code from modules already imported in this process, or named
        in ``trusted_modules`` (see :mod:`atdata_lite.lens_store`).

        Raises:
            LensNotFoundError: (a ``KeyError``) nothing is stored under ``ref``.
            UntrustedLensError: (an ``ImportError``) its code's module is not trusted.
        """
        from ..lens_store import build_lens
        from ..lenses import LensNetwork

        built = build_lens(
            self.get_lens(ref),
            source_type=source_type,
            view_type=view_type,
            trusted_modules=trusted_modules,
        )
        LensNetwork().register(built)
        return built

    @property
    def lenses(self) -> Iterator[dict[str, Any]]:
        """Every stored lens record, by name then version."""
        return iter(self.list_lenses())

    def list_lenses(self) -> list[dict[str, Any]]:
        """Every stored lens record (with ``$ref``), by name then version."""
        from ..lens_store import LENS_REF_PREFIX

        out = []
        for row in self._backend.iter_lenses():
            try:
                record = json.loads(row.record_json)
            except ValueError:
                log.warning("Skipping unreadable lens %s@%s", row.name, row.version)
                continue
            record["$ref"] = f"{LENS_REF_PREFIX}{row.name}@{row.version}"
            out.append(record)
        return out

    def find_lenses(self, source_schema: Any, view_schema: Any = None) -> list[dict[str, Any]]:
        """Stored lenses from ``source_schema`` (to ``view_schema``, when given), by schema
        name (a ref, a name or a type is accepted for each)."""
        from ..lens_store import schema_name

        src = schema_name(source_schema)
        view = schema_name(view_schema) if view_schema is not None else None
        return [
            r
            for r in self.list_lenses()
            if r.get("source_schema") == src and (view is None or r.get("view_schema") == view)
        ]

    # --- schemas --------------------------------------------------------------------------

    def publish_schema(
        self,
        sample_type: type,
        *,
        version: str | None = None,
        description: str | None = None,
    ) -> str:
        """Publish the schema of a sample type.

        Args:
            sample_type: A ``@packable`` class or ``PackableSample`` subclass.
            version: ``x.y.z``; ``None`` takes the next patch version after the highest
                published one of that name (``1.0.0`` for a new name).
            description: ``None`` uses the class docstring.

        Returns:
            ``atdata://local/sampleSchema/{Name}@{version}``. Publishing an existing version
            with identical content returns its ref and changes nothing.

        Raises:
            NotPackableError: (a ``TypeError``) not a packable dataclass, or no fields.
            UnsupportedFieldTypeError: (a ``TypeError``) a field type cannot be described.
            InvalidSchemaRefError: (a ``ValueError``) ``version`` is not ``x.y.z``.
            SchemaConflictError: (a ``ValueError``) that version is published with other
                content; published versions never change.
        """
        if version is not None:
            parse_semver(version)
        record = schema_record(sample_type, version=version or "0.0.0", description=description)
        digest = content_hash(record)
        row, _ = self._backend.publish_schema(
            record["name"], version, lambda v: render_record(record, v), digest
        )
        self._write_stub(row)
        return make_schema_ref(row.name, row.version)

    @staticmethod
    def _schema_dict(row: SchemaRow) -> dict[str, Any]:
        try:
            record = json.loads(row.record_json)
        except ValueError as exc:
            raise SchemaDecodeError(
                f"The stored record of schema {row.name}@{row.version} is not JSON ({exc})."
            ) from exc
        if not isinstance(record, dict):
            raise SchemaDecodeError(
                f"The stored record of schema {row.name}@{row.version} is not a JSON object."
            )
        record["$ref"] = make_schema_ref(row.name, row.version)
        return record

    def get_schema(self, ref: str) -> dict[str, Any]:
        """Return the schema record ``ref`` names, with ``$ref`` (AbstractIndex protocol).

        Args:
            ref: ``atdata://local/sampleSchema/{Name}@{version}`` or the legacy
                ``local://schemas/{module.Name}@{version}``.

        Returns:
            ``{"name", "version", "fields", "description", "createdAt", "$ref"}``, in that
            order (plus any extra keys the stored record has).

        Raises:
            SchemaNotFoundError: (a ``KeyError``) nothing is published under ``ref``.
            InvalidSchemaRefError: (a ``ValueError``) ``ref`` is malformed.
        """
        name, version = parse_schema_ref(ref)
        row = self._backend.get_schema(name, version)
        if row is None:
            raise SchemaNotFoundError(
                f"Schema not found: {ref}", hint=partial(schema_hint, self._backend, name, version)
            )
        return self._schema_dict(row)

    def get_schema_record(self, ref: str) -> LocalSchemaRecord:
        """:meth:`get_schema` as a :class:`LocalSchemaRecord`."""
        return LocalSchemaRecord.from_dict(self.get_schema(ref))

    @property
    def schemas(self) -> Iterator[LocalSchemaRecord]:
        """Every published schema, by name then version. Unreadable rows are skipped."""
        for row in self._backend.iter_schemas():
            try:
                yield LocalSchemaRecord.from_dict(self._schema_dict(row))
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("Skipping schema %s@%s: %s", row.name, row.version, exc)

    def list_schemas(self) -> list[dict[str, Any]]:
        """Every published schema as a dict (``LocalSchemaRecord.to_dict()``)."""
        return [record.to_dict() for record in self.schemas]

    def decode_schema(self, ref: str) -> type:
        """Build the Python type of a published schema (cached per record).

        Raises:
            SchemaNotFoundError: (a ``KeyError``) nothing is published under ``ref``.
            InvalidSchemaRefError, SchemaDecodeError: (``ValueError``) a malformed ref or
                a record that cannot become a type.
        """
        schema = self.get_schema(ref)
        cls = schema_to_type(schema)
        if self._stubs is not None:
            self._write_stub_for(schema)
        return cls

    def decode_schema_as(self, ref: str, type_hint: type[T]) -> type[T]:
        """:meth:`decode_schema`, typed as ``type_hint`` for IDEs (no runtime check)."""
        return cast("type[T]", self.decode_schema(ref))

    def load_schema(self, ref: str) -> type:
        """Decode a schema and make it available as ``index.types.<Name>``."""
        cls = self.decode_schema(ref)
        with self._lock:
            self._types._register(cls.__name__, cls)
        return cls

    def get_schema_type(self, ref: str, *, register: bool = True) -> type:
        """Build the Python type of a published schema (atdata 0.7's name).

        Args:
            ref: A schema ref in any form (``atdata://local/schema/Name@x.y.z`` too).
            register: Also make it available as ``index.types.<Name>`` (as
                :meth:`load_schema` does).

        Returns:
            The sample type, a ``PackableSample`` subclass (cached per record).

        Raises:
            As :meth:`decode_schema`.
        """
        return self.load_schema(ref) if register else self.decode_schema(ref)

    # --- stubs ----------------------------------------------------------------------------

    def _write_stub(self, row: SchemaRow) -> None:
        if self._stubs is not None:
            self._write_stub_for(self._schema_dict(row))

    def _write_stub_for(self, schema: dict[str, Any]) -> None:
        assert self._stubs is not None
        try:
            self._stubs.ensure_stub(schema)
        except (SchemaDecodeError, OSError) as exc:
            # A stub is an IDE convenience: never let it break decoding or publishing.
            log.warning("No type stub for %s: %s", schema.get("$ref"), exc)

    def get_import_path(self, ref: str) -> str | None:
        """The import path of the schema's stub (``local.Name_1_0_0``), or None without stubs.

        Raises:
            SchemaNotFoundError: (a ``KeyError``) nothing is published under ``ref``.
            SchemaDecodeError: (a ``ValueError``) the schema's names cannot form a stub.
        """
        if self._stubs is None:
            return None
        schema = self.get_schema(ref)
        self._stubs.ensure_stub(schema)
        return self._stubs.import_path(schema)

    def clear_stubs(self) -> int:
        """Remove every stub file; return how many (0 when stubs are off)."""
        return self._stubs.clear_stubs() if self._stubs is not None else 0


LocalIndex = Index


def _resolving(ref: weakref.ref[Index]) -> Callable[..., LocalDatasetEntry]:
    """The index's builder of entries with store-relative URLs, without a strong reference."""

    def make(*fields: Any) -> LocalDatasetEntry:
        index = ref()
        assert index is not None, "entries are built only while their index reads them"
        return index._make_resolved_entry(*fields)

    return make
