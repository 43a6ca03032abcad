"""atdata's ``atdata._cid``: content identifiers, byte-identical to atdata's.

A module-path counterpart for code written against atdata:
``from atdata_lite._cid import ...`` works where ``from atdata._cid import ...`` did.
Names are re-exported lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover
    from atdata_lite.cid import generate_cid, generate_cid_from_bytes, parse_cid, verify_cid

__all__ = ["generate_cid", "generate_cid_from_bytes", "parse_cid", "verify_cid"]

_NAMES = {
    "generate_cid": "atdata_lite.cid",
    "generate_cid_from_bytes": "atdata_lite.cid",
    "verify_cid": "atdata_lite.cid",
    "parse_cid": "atdata_lite.cid",
}

__getattr__, __dir__ = lazy_exports(__name__, globals(), _NAMES)
