"""atdata's structural interfaces (``atdata/_protocols.py``), for Python 3.11.

Anything that has these members works where atdata expects them: the local ``Index``,
third-party indexes, data stores and shard sources. ``Packable``, ``IndexEntry`` and
``DataSource`` are runtime-checkable (as in atdata); ``AbstractIndex`` and
``AbstractDataStore`` are not, exactly as in atdata.

Methods use ``...`` as their body (PEP 544): these are interface specifications.
``DataSource`` lives in :mod:`atdata_lite.sources` (the data path uses it) and is
re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

# DataSource is defined beside URLSource, in the data path, so that ``dataset`` needs
# nothing from this module; this module sits above the data path and names ``Dataset``.
from .sources import DataSource

if TYPE_CHECKING:
    from ._records import ShardRecord
    from .dataset import Dataset

__all__ = [
    "AbstractDataStore",
    "AbstractIndex",
    "DataSource",
    "IndexEntry",
    "Packable",
    "RecordingDataStore",
]


@runtime_checkable
class Packable(Protocol):
    """Structural protocol for packable sample types.

    ``PackableSample`` subclasses and ``@packable`` classes satisfy it; it captures what
    lenses, datasets and schema publishing need.
    """

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Packable:
        """Create an instance from an unpacked msgpack data dictionary."""
        ...

    @classmethod
    def from_bytes(cls, bs: bytes) -> Packable:
        """Create an instance from raw msgpack bytes."""
        ...

    @property
    def packed(self) -> bytes:
        """Pack this sample's data into msgpack bytes."""
        ...

    @property
    def as_wds(self) -> dict[str, Any]:
        """WebDataset-compatible representation with ``__key__`` and ``msgpack``."""
        ...


@runtime_checkable
class IndexEntry(Protocol):
    """Common interface for dataset index entries.

    Properties:
        name: Human-readable dataset name.
        schema_ref: Reference to the schema of the samples.
        data_urls: WebDataset URLs of the shards (may use brace notation).
        metadata: Arbitrary metadata dict, or None.
    """

    @property
    def name(self) -> str:
        """Human-readable dataset name."""
        ...

    @property
    def schema_ref(self) -> str:
        """Reference to the schema for this dataset
        (``atdata://local/sampleSchema/{Name}@{version}`` locally)."""
        ...

    @property
    def data_urls(self) -> list[str]:
        """WebDataset URLs for the data, usable with ``Dataset()`` or WebDataset."""
        ...

    @property
    def metadata(self) -> dict[str, Any] | None:
        """Arbitrary metadata dictionary, or None if not set."""
        ...


class AbstractIndex(Protocol):
    """Protocol for index operations: schemas and datasets.

    One index holds datasets of many sample types; the type of each is tracked by its
    schema reference. ``data_store`` is optional (may be None).
    """

    @property
    def data_store(self) -> AbstractDataStore | None:
        """Optional data store for reading/writing shards, or None."""
        ...

    def insert_dataset(
        self,
        ds: Dataset[Any],
        *,
        name: str,
        schema_ref: str | None = None,
        **kwargs: Any,
    ) -> IndexEntry:
        """Insert a dataset into the index.

        Args:
            ds: The Dataset to register (any sample type).
            name: Human-readable name for the dataset.
            schema_ref: Explicit schema reference; otherwise derived from ``ds.sample_type``.
            **kwargs: Backend-specific options.

        Returns:
            IndexEntry for the inserted dataset.
        """
        ...

    def get_dataset(self, ref: str) -> IndexEntry:
        """Get a dataset entry by name or reference.

        Raises:
            KeyError: If the dataset is not found.
        """
        ...

    @property
    def datasets(self) -> Iterator[IndexEntry]:
        """Lazily iterate over all dataset entries."""
        ...

    def list_datasets(self) -> list[IndexEntry]:
        """All dataset entries as a list."""
        ...

    def publish_schema(
        self,
        sample_type: type,
        *,
        version: str = "1.0.0",
        **kwargs: Any,
    ) -> str:
        """Publish a schema for a sample type and return its reference.

        Args:
            sample_type: A Packable type (``PackableSample`` subclass or ``@packable``).
            version: Semantic version string for the schema.
            **kwargs: Backend-specific options.
        """
        ...

    def get_schema(self, ref: str) -> dict[str, Any]:
        """Get a schema record by reference.

        Raises:
            KeyError: If the schema is not found.
        """
        ...

    @property
    def schemas(self) -> Iterator[dict[str, Any]]:
        """Lazily iterate over all schema records."""
        ...

    def list_schemas(self) -> list[dict[str, Any]]:
        """All schema records as a list."""
        ...

    def decode_schema(self, ref: str) -> type[Packable]:
        """Rebuild a Python Packable type from a stored schema.

        Raises:
            KeyError: If the schema is not found.
            ValueError: If the schema cannot be decoded.
        """
        ...


class AbstractDataStore(Protocol):
    """Protocol for data storage operations (where shards are written and read)."""

    def write_shards(
        self,
        ds: Dataset[Any],
        *,
        prefix: str,
        **kwargs: Any,
    ) -> list[str]:
        """Write dataset shards to storage.

        Args:
            ds: The Dataset to write.
            prefix: Path prefix for the shards (e.g. ``datasets/mnist/v1``).
            **kwargs: Backend-specific options (e.g. ``maxcount``).

        Returns:
            The URLs of the written shards, usable with ``Dataset()``.
        """
        ...

    def read_url(self, url: str) -> str:
        """Resolve a storage URL for reading."""
        ...

    def supports_streaming(self) -> bool:
        """Whether this store supports streaming reads."""
        ...


@runtime_checkable
class RecordingDataStore(AbstractDataStore, Protocol):
    """A data store that writes new shards and describes each (atdata-lite's extension).

    :class:`~atdata_lite.stores.FsspecDataStore` is one. ``Index.insert_dataset`` writes
    through :meth:`write_dataset` when the store has it, so the entry records every shard's
    size, sample count and SHA-256, and removes the shards again if the entry cannot be
    stored; a store with only atdata's ``write_shards`` is used as atdata would use it.
    """

    storage_options: dict[str, Any]
    """fsspec options for opening (and removing) the shards it writes."""

    def write_dataset(self, ds: Dataset[Any], *, prefix: str, **kwargs: Any) -> list[ShardRecord]:
        """Write ``ds`` as new shards, never overwriting existing ones.

        Args:
            ds: The dataset to write.
            prefix: Path prefix for the shards inside the store.
            **kwargs: Writer options (e.g. ``maxcount``).

        Returns:
            One record per shard written, in order, with its URL and what is known of it.
        """
        ...
