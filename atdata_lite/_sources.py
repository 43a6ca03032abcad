"""atdata's ``atdata._sources``: where shards come from (not ``BlobSource``, the ATProto one).

A module-path counterpart for code written against atdata:
``from atdata_lite._sources import ...`` works where ``from atdata._sources import ...`` did.
Names are re-exported lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover
    from atdata_lite.s3 import S3Source
    from atdata_lite.sources import DataSource, URLSource

__all__ = ["DataSource", "S3Source", "URLSource"]

_NAMES = {
    "DataSource": "atdata_lite.sources",
    "URLSource": "atdata_lite.sources",
    "S3Source": "atdata_lite.s3",
}

__getattr__, __dir__ = lazy_exports(__name__, globals(), _NAMES)
