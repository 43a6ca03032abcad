"""atdata's ``atdata._stub_manager``: type stubs of schemas (``.pyi`` files here).

A module-path counterpart for code written against atdata:
``from atdata_lite._stub_manager import ...``
works where ``from atdata._stub_manager import ...`` did.
Names are re-exported lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover
    from atdata_lite.index.stubs import StubManager, default_stub_dir

__all__ = ["StubManager", "default_stub_dir"]

_NAMES = {
    "StubManager": "atdata_lite.index.stubs",
    "default_stub_dir": "atdata_lite.index.stubs",
}

__getattr__, __dir__ = lazy_exports(__name__, globals(), _NAMES)
