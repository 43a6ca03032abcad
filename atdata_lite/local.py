"""atdata's ``atdata.local`` (a module in 0.2, a package in 0.7): the index, its entries, stores.

A module-path counterpart for code written against atdata:
``from atdata_lite.local import ...`` works where ``from atdata.local import ...`` did.
Names are re-exported lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover
    from atdata_lite.index.api import Index, LocalIndex
    from atdata_lite.index.entries import (
        BasicIndexEntry,
        LocalDatasetEntry,
        LocalSchemaRecord,
        SchemaNamespace,
    )
    from atdata_lite.index.stubs import StubManager
    from atdata_lite.repo import Repo
    from atdata_lite.s3 import S3DataStore
    from atdata_lite.stores import LocalDiskStore

__all__ = [
    "BasicIndexEntry",
    "Index",
    "LocalDatasetEntry",
    "LocalDiskStore",
    "LocalIndex",
    "LocalSchemaRecord",
    "Repo",
    "S3DataStore",
    "SchemaNamespace",
    "StubManager",
]

_NAMES = {
    "Index": "atdata_lite.index.api",
    "LocalIndex": "atdata_lite.index.api",
    "LocalDatasetEntry": "atdata_lite.index.entries",
    "BasicIndexEntry": "atdata_lite.index.entries",
    "LocalSchemaRecord": "atdata_lite.index.entries",
    "SchemaNamespace": "atdata_lite.index.entries",
    "S3DataStore": "atdata_lite.s3",
    "LocalDiskStore": "atdata_lite.stores",
    "Repo": "atdata_lite.repo",
    "StubManager": "atdata_lite.index.stubs",
}

__getattr__, __dir__ = lazy_exports(__name__, globals(), _NAMES)
