"""atdata's ``atdata._schema_codec``: schema records back to Python types.

A module-path counterpart for code written against atdata:
``from atdata_lite._schema_codec import ...``
works where ``from atdata._schema_codec import ...`` did.
Names are re-exported lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover
    from atdata_lite.schema import clear_type_cache, schema_to_type

__all__ = ["clear_type_cache", "schema_to_type"]

_NAMES = {
    "schema_to_type": "atdata_lite.schema",
    "clear_type_cache": "atdata_lite.schema",
}

__getattr__, __dir__ = lazy_exports(__name__, globals(), _NAMES)
