"""atdata-lite: an embedded, local datastore for typed ML datasets.

Typed samples (``@packable`` dataclasses serialised with msgpack) are written into
WebDataset ``.tar`` shards on any fsspec filesystem, and catalogued -- datasets and their
schemas -- in an index that is one SQLite file by default (PostgreSQL or Redis on request).
The public names are atdata's, so code written against ``atdata`` and ``atdata.local`` runs
after swapping the import.

Names are imported lazily: ``import atdata_lite`` is cheap, and opening an index and looking
up a dataset never imports numpy, webdataset, fsspec or Alembic.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

# public name -> module that defines it
_LAZY: dict[str, str] = {
    # samples and lenses
    "PackableSample": "atdata_lite.samples",
    "packable": "atdata_lite.samples",
    "DictSample": "atdata_lite.samples",
    "SampleBatch": "atdata_lite.samples",
    "Lens": "atdata_lite.lenses",
    "LensNetwork": "atdata_lite.lenses",
    "lens": "atdata_lite.lenses",
    # protocols
    "Packable": "atdata_lite.protocols",
    "IndexEntry": "atdata_lite.protocols",
    "AbstractIndex": "atdata_lite.protocols",
    "AbstractDataStore": "atdata_lite.protocols",
    "DataSource": "atdata_lite.protocols",
    # data path
    "Dataset": "atdata_lite.dataset",
    "URLSource": "atdata_lite.sources",
    "S3Source": "atdata_lite.s3",
    "S3DataStore": "atdata_lite.s3",
    "LocalDiskStore": "atdata_lite.stores",
    "Repo": "atdata_lite.repo",
    "write_samples": "atdata_lite.shards",
    "inspect_shard": "atdata_lite.shards",
    "FsspecDataStore": "atdata_lite.stores",
    "pull": "atdata_lite._pull",
    "PullResult": "atdata_lite._pull",
    "default_store": "atdata_lite.stores",
    "load_dataset": "atdata_lite.loading",
    "DatasetDict": "atdata_lite.loading",
    # schemas and CIDs
    "schema_to_type": "atdata_lite.schema",
    "generate_cid": "atdata_lite.cid",
    "verify_cid": "atdata_lite.cid",
    # the index
    "Index": "atdata_lite.index.api",
    "LocalIndex": "atdata_lite.index.api",
    "AsyncIndex": "atdata_lite.index.aio",
    "LocalDatasetEntry": "atdata_lite.index.entries",
    "BasicIndexEntry": "atdata_lite.index.entries",
    "LocalSchemaRecord": "atdata_lite.index.entries",
    "SchemaNamespace": "atdata_lite.index.entries",
}

__all__ = [
    "AbstractDataStore",
    "AbstractIndex",
    "AsyncIndex",
    "BasicIndexEntry",
    "DataSource",
    "Dataset",
    "DatasetDict",
    "DictSample",
    "FsspecDataStore",
    "Index",
    "IndexEntry",
    "Lens",
    "LensNetwork",
    "LocalDatasetEntry",
    "LocalDiskStore",
    "LocalIndex",
    "LocalSchemaRecord",
    "Packable",
    "PackableSample",
    "PullResult",
    "Repo",
    "S3DataStore",
    "S3Source",
    "SampleBatch",
    "SchemaNamespace",
    "URLSource",
    "__version__",
    "default_store",
    "generate_cid",
    "inspect_shard",
    "lens",
    "load_dataset",
    "packable",
    "pull",
    "schema_to_type",
    "verify_cid",
    "write_samples",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from ._pull import PullResult, pull
    from .cid import generate_cid, verify_cid
    from .dataset import Dataset
    from .index.aio import AsyncIndex
    from .index.api import Index, LocalIndex
    from .index.entries import (
        BasicIndexEntry,
        LocalDatasetEntry,
        LocalSchemaRecord,
        SchemaNamespace,
    )
    from .lenses import Lens, LensNetwork, lens
    from .loading import DatasetDict, load_dataset
    from .protocols import AbstractDataStore, AbstractIndex, DataSource, IndexEntry, Packable
    from .repo import Repo
    from .s3 import S3DataStore, S3Source
    from .samples import DictSample, PackableSample, SampleBatch, packable
    from .schema import schema_to_type
    from .shards import inspect_shard, write_samples
    from .sources import URLSource
    from .stores import FsspecDataStore, LocalDiskStore, default_store


class _Package(types.ModuleType):
    """The package's module type: ``atdata_lite.lens`` stays the ``@lens`` decorator.

    Lenses are defined in :mod:`atdata_lite.lenses`; :mod:`atdata_lite.lens` re-exports them
    so that ``from atdata_lite.lens import Lens`` works as ``from atdata.lens import Lens``
    does. Importing that submodule makes Python set the package attribute ``lens`` to the
    module, which would hide the decorator; this type refuses that one assignment, so
    ``atdata_lite.lens`` is the decorator whatever was imported before, as ``atdata.lens`` is.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "lens" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'atdata_lite' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
