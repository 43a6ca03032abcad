"""Lazy re-exports for the modules that mirror atdata's module paths.

``atdata_lite.local``, ``atdata_lite._sources`` and friends exist so that an import written for
atdata (``from atdata.local import Index``) works with ``atdata_lite`` in its place. They
only re-export names defined elsewhere; importing one costs nothing until a name is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    module_name: str, namespace: dict[str, Any], names: dict[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return a module's ``__getattr__`` and ``__dir__`` serving ``names`` lazily.

    Args:
        module_name: The re-exporting module's ``__name__`` (for error messages).
        namespace: Its ``globals()``: a resolved name is cached there.
        names: public name -> the module that defines it.
    """

    def __getattr__(name: str) -> Any:
        target = names.get(name)
        if target is None:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(target), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(names))

    return __getattr__, __dir__
