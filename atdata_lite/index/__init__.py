"""The index: a catalog of datasets and their schemas, behind one backend contract.

``Index`` (alias ``LocalIndex``) is atdata's ``local.Index`` API; the backends (SQL, Redis,
plugins) implement :class:`~atdata_lite.index.backend.IndexBackend`, and
:func:`open_backend` finds the backend for a path or URL (the built-in SQL backend, or a
plugin's entry point). Names are imported lazily so that importing this package costs nothing.
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
    "open_backend",
    "url_scheme",
]

_LAZY = {
    "Index": ".api",
    "LocalIndex": ".api",
    "LocalDatasetEntry": ".entries",
    "BasicIndexEntry": ".entries",
    "LocalSchemaRecord": ".entries",
    "SchemaNamespace": ".entries",
    "StubManager": ".stubs",
    "open_backend": "._registry",
    "url_scheme": "._registry",
}

if TYPE_CHECKING:  # pragma: no cover
    from ._registry import open_backend, url_scheme
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
