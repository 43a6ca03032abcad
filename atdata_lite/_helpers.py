"""atdata's ``atdata._helpers``: NPY bytes <-> numpy arrays (pickle refused unless asked for).

A module-path counterpart for code written against atdata:
``from atdata_lite._helpers import ...`` works where ``from atdata._helpers import ...`` did.
Names are re-exported lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover
    from atdata_lite.samples import array_to_bytes, bytes_to_array

__all__ = ["array_to_bytes", "bytes_to_array"]

_NAMES = {
    "array_to_bytes": "atdata_lite.samples",
    "bytes_to_array": "atdata_lite.samples",
}

__getattr__, __dir__ = lazy_exports(__name__, globals(), _NAMES)
