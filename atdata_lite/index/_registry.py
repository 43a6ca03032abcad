"""Finding the backend for a location: the built-in SQL backend, or an entry-point plugin.

Kept apart from :mod:`.backend` (the contract), which names no implementation: this module
imports the SQL implementation, so the dependency runs one way, from here down to the
implementations and from them to the contract.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

from ..errors import UnknownBackendError
from .backend import BACKEND_ENTRY_POINT_GROUP, IndexBackend

__all__ = ["open_backend", "url_scheme"]


_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9.+-]*)://")
# Schemes served by the built-in SQL backend: resolved without reading entry points, which
# keeps opening the default index cheap.
_BUILTIN_SQL_SCHEMES = frozenset({"sqlite", "postgresql", "postgres"})


def url_scheme(location: str) -> str | None:
    """Return the backend scheme of ``location`` (``postgresql+psycopg://`` -> ``postgresql``).

    Plain paths (no ``scheme://``) return ``None``; they mean a SQLite file.
    """
    match = _SCHEME_RE.match(location)
    if match is None:
        return None
    return match.group(1).split("+", 1)[0].lower()


def _load_factory(scheme: str) -> Callable[..., IndexBackend]:
    from importlib.metadata import entry_points

    for ep in entry_points(group=BACKEND_ENTRY_POINT_GROUP):
        if ep.name == scheme:
            factory: Callable[..., IndexBackend] = ep.load()
            return factory
    known = sorted({ep.name for ep in entry_points(group=BACKEND_ENTRY_POINT_GROUP)})
    raise UnknownBackendError(
        f"No index backend handles {scheme}:// URLs. Known schemes: {', '.join(known)}; "
        "a plain path means a SQLite file. A plugin registers more in the entry-point "
        f"group {BACKEND_ENTRY_POINT_GROUP!r}."
    )


def open_backend(location: str | os.PathLike[str], **options: Any) -> IndexBackend:
    """Open the index backend for ``location``.

    Args:
        location: A path (a SQLite file) or a URL. ``sqlite``/``postgresql`` URLs go to the
            built-in SQL backend; any other scheme is looked up in the entry-point group
            ``atdata_lite.backends``.
        **options: Passed to the backend's factory unchanged.

    Raises:
        UnknownBackendError: No backend handles the URL's scheme.
        BackendUnavailableError: The backend's optional dependency is not installed.
    """
    location = os.fspath(location)
    scheme = url_scheme(location)
    if scheme is None or scheme in _BUILTIN_SQL_SCHEMES:
        from .sql import open_sql_backend

        return open_sql_backend(location, **options)
    return _load_factory(scheme)(location, **options)
