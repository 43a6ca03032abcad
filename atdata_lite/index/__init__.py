"""The index: a catalog of datasets and their schemas, behind one backend contract.

``Index`` (alias ``LocalIndex``) is atdata's ``local.Index`` API; the backends (SQL, Redis,
plugins) implement :class:`~atdata_lite.index.backend.IndexBackend`. Names are imported
lazily so that importing this package costs nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "BasicIndexEntry",
    "Index",
    "LocalDatasetEntry",
    "LocalIndex",
    "LocalSchemaRecord",
    "SchemaNamespace",
    "StubManager",
]

_LAZY = {
    "Index": ".api",
    "LocalIndex": ".api",
    "LocalDatasetEntry": ".entries",
    "BasicIndexEntry": ".entries",
    "LocalSchemaRecord": ".entries",
    "SchemaNamespace": ".entries",
    "StubManager": ".stubs",
}

if TYPE_CHECKING:  # pragma: no cover
    from .api import Index, LocalIndex
    from .entries import BasicIndexEntry, LocalDatasetEntry, LocalSchemaRecord, SchemaNamespace
    from .stubs import StubManager


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
