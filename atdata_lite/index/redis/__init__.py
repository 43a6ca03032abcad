"""The optional Redis index backend, in atdata 0.2's own key layout (extra ``atdata-lite[redis]``).

Selected by a ``redis://`` or ``rediss://`` URL (entry points in the group
``atdata_lite.backends``), e.g. ``Index("redis://localhost:6379/0")``. atdata 0.2 and
atdata-lite can read and write the same Redis database; see :mod:`.backend` for the keys
atdata-lite adds next to atdata's and how entries written by atdata are found.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..._imports import optional_import

if TYPE_CHECKING:  # pragma: no cover
    from .backend import RedisBackend

__all__ = ["RedisBackend", "open_redis_backend"]


def open_redis_backend(url: str, *, client: Any = None, **options: Any) -> RedisBackend:
    """Open the Redis index at ``url``.

    Args:
        url: ``redis://[user:password@]host:port/db`` or ``rediss://...`` (TLS), as redis-py's
            ``Redis.from_url`` reads it.
        client: An existing ``redis.Redis`` client to use instead of connecting to ``url``
            (it must not set ``decode_responses=True``: entry fields are binary). The caller
            keeps ownership: :meth:`RedisBackend.close` leaves it open.
        **options: ``reconcile`` (default ``True``): index the names of entries written by
            atdata itself while opening (one SCAN over the entry keys). Any other option goes
            to ``redis.Redis.from_url``. Unless the URL's query or these options say
            otherwise, a new client waits 10 s for a connection (``socket_connect_timeout``)
            and 60 s for any reply (``socket_timeout``), uses TCP keepalives, and never
            retries a command by itself (see :mod:`._faults`).

    Returns:
        The backend.

    Raises:
        BackendUnavailableError: redis-py is not installed (``pip install 'atdata-lite[redis]'``).
        ValueError: ``client`` decodes responses to ``str``.
        IndexUnreachableError: The server cannot be reached, or does not answer in time.
    """
    redis = optional_import("redis", extra="redis", purpose="A redis:// index")
    from ...errors import IndexOpenError
    from ._faults import client_defaults, unreachable_error
    from .backend import RedisBackend, _hide_password

    reconcile = bool(options.pop("reconcile", True))
    location = _hide_password(url)
    owns = client is None
    if client is not None and url.rstrip("/") in ("redis:", "rediss:"):
        # A bare scheme with a client (Index(redis_client)): name the client's server.
        kw = client.get_connection_kwargs()
        location = f"redis://{kw.get('host', 'localhost')}:{kw.get('port', 6379)}/{kw.get('db', 0)}"
    if client is None:
        options.setdefault("decode_responses", False)
        for key, value in client_defaults(redis).items():
            options.setdefault(key, value)
        client = redis.Redis.from_url(url, **options)
    if client.get_connection_kwargs().get("decode_responses"):
        raise ValueError(
            "The Redis client for an atdata-lite index must use decode_responses=False: "
            "entry fields (data_urls, metadata) are binary msgpack."
        )
    try:
        client.ping()
        return RedisBackend(
            client, location, redis_module=redis, owns_client=owns, reconcile=reconcile
        )
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        if owns:
            client.close()
        raise unreachable_error(exc, location, client, opening=True) from exc
    except IndexOpenError:  # the first SCAN (reconcile) lost the server
        if owns:
            client.close()
        raise


def __getattr__(name: str) -> Any:
    if name == "RedisBackend":
        from .backend import RedisBackend

        return RedisBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
