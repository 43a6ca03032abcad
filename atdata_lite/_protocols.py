"""atdata's ``atdata._protocols``: the structural interfaces.

A module-path counterpart for code written against atdata:
``from atdata_lite._protocols import ...`` works where ``from atdata._protocols import ...`` did.
Names are re-exported lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover
    from atdata_lite.protocols import (
        AbstractDataStore,
        AbstractIndex,
        DataSource,
        IndexEntry,
        Packable,
    )

__all__ = ["AbstractDataStore", "AbstractIndex", "DataSource", "IndexEntry", "Packable"]

_NAMES = {
    "Packable": "atdata_lite.protocols",
    "IndexEntry": "atdata_lite.protocols",
    "AbstractIndex": "atdata_lite.protocols",
    "AbstractDataStore": "atdata_lite.protocols",
    "DataSource": "atdata_lite.protocols",
}

__getattr__, __dir__ = lazy_exports(__name__, globals(), _NAMES)
