"""Reading the first samples of an entry for ``atdata-lite preview``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["first_samples"]


def first_samples(index: Any, entry: Any, count: int) -> Iterator[dict[str, Any]]:
    """Yield up to ``count`` samples of ``entry`` as ``{field: value}`` dicts."""
    raise NotImplementedError
