"""atdata's ``atdata._type_utils``: reading field annotations.

A module-path counterpart for code written against atdata:
``from atdata_lite._type_utils import ...`` works where ``from atdata._type_utils import ...`` did.
Names are re-exported lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover
    from atdata_lite._types import is_ndarray_type, unwrap_optional

__all__ = ["is_ndarray_type", "unwrap_optional"]

_NAMES = {
    "unwrap_optional": "atdata_lite._types",
    "is_ndarray_type": "atdata_lite._types",
}

__getattr__, __dir__ = lazy_exports(__name__, globals(), _NAMES)
