"""atdata 0.7's way of choosing an index: ``Index(provider="sqlite", path=...)`` and friends.

atdata 0.7 names its storage a *provider* (``"sqlite"``, ``"redis"``, ``"postgres"``) and takes
its location as ``path=``, ``dsn=`` or ``redis=``. This module turns those keywords into what
:class:`~atdata_lite.index.api.Index` opens anyway: a location URL, or a Redis client.

Unlike atdata 0.7, a location is never silently ignored: ``Index(path="x.db")`` without a
provider opens ``x.db`` (0.7 opened ``~/.atdata/index.db``), and ``dsn=`` alone opens that
PostgreSQL database.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

from ..errors import UnknownBackendError

__all__ = ["PROVIDERS", "provider_location"]

# Provider names (as atdata 0.7 spells them) -> our backend kind.
PROVIDERS = {
    "sqlite": "sqlite",
    "redis": "redis",
    "postgres": "postgresql",
    "postgresql": "postgresql",
}


def _dsn_to_url(dsn: str) -> str:
    """A PostgreSQL DSN as a URL: URLs pass unchanged, ``key=value`` strings are converted."""
    if "://" in dsn:
        return dsn
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:  # pragma: no cover - psycopg is the postgres extra
        raise ValueError(
            f"Cannot read the PostgreSQL DSN {dsn!r} without psycopg; give a URL "
            "(postgresql://user@host:5432/dbname) or pip install 'atdata-lite[postgres]'."
        ) from None
    parts = {k: str(v) for k, v in conninfo_to_dict(dsn).items()}
    user = parts.pop("user", "")
    password = parts.pop("password", None)
    auth = quote(user, safe="")
    if password is not None:
        auth += ":" + quote(password, safe="")
    host = parts.pop("host", "localhost")
    port = parts.pop("port", "")
    dbname = parts.pop("dbname", "")
    netloc = (auth + "@" if auth else "") + host + (f":{port}" if port else "")
    query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in parts.items())
    return f"postgresql://{netloc}/{quote(dbname, safe='')}" + (f"?{query}" if query else "")


def provider_location(
    provider: str | None,
    *,
    url: str | os.PathLike[str] | None,
    path: str | os.PathLike[str] | None,
    dsn: str | None,
    redis: Any,
    redis_url_from_kwargs: Any,
    options: dict[str, Any],
) -> tuple[str | None, Any]:
    """Resolve atdata 0.7's ``provider``/``path``/``dsn``/``redis`` keywords.

    Args:
        provider: ``"sqlite"``, ``"redis"``, ``"postgres"`` (or ``"postgresql"``), any case,
            or ``None`` to infer it from which of ``path``/``dsn``/``redis`` is given.
        url: The index's first positional argument, if any (it must then not conflict).
        path: SQLite file (``provider="sqlite"``); ``None`` means the default index file.
        dsn: PostgreSQL URL or ``key=value`` DSN (``provider="postgres"``, required).
        redis: A ``redis.Redis`` client (``provider="redis"``).
        redis_url_from_kwargs: Builds a ``redis://`` URL from atdata's ``host=``/``port=``/
            ``db=`` keywords (popped from ``options``), or returns ``None``.
        options: The remaining keyword arguments of ``Index()`` (may be consumed).

    Returns:
        ``(location, redis_client)``: open ``location`` (a path or URL), or, when it is
        ``None``, the Redis backend on ``redis_client``.

    Raises:
        UnknownBackendError: (a ``ValueError``) ``"Unknown provider ..."``.
        ValueError: ``provider="postgres"`` without ``dsn``.
        TypeError: A location keyword that does not belong to the provider, or a location
            given twice.
    """
    if provider is None:
        given = [k for k, v in (("path", path), ("dsn", dsn), ("redis", redis)) if v is not None]
        if len(given) > 1:
            raise TypeError(f"Index(): give one of path=, dsn= or redis=, not {given}.")
        provider = {"path": "sqlite", "dsn": "postgres", "redis": "redis"}[given[0]]
    if not isinstance(provider, str):
        raise TypeError(
            f"Index(provider=...): expected 'sqlite', 'redis' or 'postgres' (or an "
            f"IndexBackend), got {type(provider).__name__}."
        )
    kind = PROVIDERS.get(provider.strip().lower())
    if kind is None:
        raise UnknownBackendError(
            f"Unknown provider {provider!r}. Use 'sqlite' (path=...), 'postgres' (dsn=...) "
            "or 'redis' (redis=...), or give the index's URL as the first argument."
        )
    extra = {"sqlite": ("dsn", "redis"), "postgresql": ("path", "redis"), "redis": ("path", "dsn")}
    for name in extra[kind]:
        if {"path": path, "dsn": dsn, "redis": redis}[name] is not None:
            raise TypeError(f"Index(provider={provider!r}) does not take {name}=.")
    if url is not None:
        raise TypeError(
            "Index(): give the location either as the first argument or with "
            "provider=/path=/dsn=/redis=, not both."
        )
    if kind == "sqlite":
        if path is not None:
            return os.fspath(path), None
        from ..config import default_index_location

        return default_index_location(), None
    if kind == "postgresql":
        if not dsn:
            raise ValueError(
                "Index(provider='postgres') needs dsn= (e.g. 'postgresql://user@host/dbname')."
            )
        return _dsn_to_url(dsn), None
    if redis is not None:
        return None, redis
    return redis_url_from_kwargs(options) or "redis://localhost:6379/0", None
