"""Redis connections that give up, and the errors an unreachable server becomes.

redis-py waits forever by default: for a connection, and for every reply. A client the
backend creates gets, unless the URL's query or the caller says otherwise:

* ``socket_connect_timeout`` (:data:`DEFAULT_CONNECT_TIMEOUT`): how long to wait for a
  connection;
* ``socket_timeout`` (:data:`DEFAULT_SOCKET_TIMEOUT`): how long to wait for any reply, so a
  server that stopped answering fails the call instead of hanging it;
* ``socket_keepalive``: the operating system notices a peer that vanished while idle;
* no automatic retry (redis-py 6 and later retry three times with backoff by default). A
  retried write whose first attempt did reach the server would run twice -- a publish would
  take two versions -- and retries multiply the time a silent server can hold a call.
  A broken pooled connection is still replaced when it is next checked out.

:func:`reaching` wraps the backend's methods so that a refused, cut or timed-out connection
raises :class:`~atdata_lite.errors.IndexUnreachableError` naming the server.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, cast

from ...errors import IndexUnreachableError

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_SOCKET_TIMEOUT",
    "client_defaults",
    "reaching",
    "unreachable_error",
]

#: Seconds to wait for a connection to the Redis server.
DEFAULT_CONNECT_TIMEOUT = 10.0

#: Seconds to wait for any reply from the Redis server.
DEFAULT_SOCKET_TIMEOUT = 60.0

F = TypeVar("F", bound=Callable[..., Any])


def client_defaults(redis: Any) -> dict[str, Any]:
    """The options the backend gives ``redis.Redis.from_url`` unless told otherwise.

    ``from_url`` lets the URL's own query (``?socket_timeout=5``) override them.
    """
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return {
        "socket_connect_timeout": DEFAULT_CONNECT_TIMEOUT,
        "socket_timeout": DEFAULT_SOCKET_TIMEOUT,
        "socket_keepalive": True,
        "retry": Retry(NoBackoff(), 0),
    }


def _timeout_of(client: Any, key: str) -> float | None:
    try:
        value = client.get_connection_kwargs().get(key)
    except Exception:  # a stand-in client (closed backend), or a foreign one
        return None
    return float(value) if value is not None else None


def unreachable_error(
    exc: BaseException, location: str, client: Any, *, opening: bool = False
) -> IndexUnreachableError:
    """The error for a Redis ``ConnectionError`` or ``TimeoutError`` raised by ``client``."""
    reason = " ".join(str(exc).split()) or type(exc).__name__
    reason = reason if reason.endswith((".", "?", "!")) else reason + "."
    if type(exc).__name__ == "TimeoutError" and "connecting" not in reason.lower():
        waited = _timeout_of(client, "socket_timeout")
        within = f" within {waited:g} s" if waited is not None else ""
        return IndexUnreachableError(
            f"The Redis server of the index at {location} did not answer{within}: {reason} "
            "The server may be stopped, overloaded or cut off by the network. If it is "
            "legitimately slow, raise socket_timeout (e.g. ?socket_timeout=120 in the URL)."
        )
    if opening:
        waited = _timeout_of(client, "socket_connect_timeout")
        limit = f"; socket_connect_timeout ({waited:g} s) sets how long to wait" if waited else ""
        return IndexUnreachableError(
            f"Cannot reach the Redis index at {location}: {reason} Start the server or check "
            f"the URL (redis://host:port/db) and that this machine can reach it{limit}."
        )
    return IndexUnreachableError(
        f"Lost the connection to the Redis index at {location}: {reason} The call did not "
        "complete; a write is stored entirely or not at all (look it up to know which). "
        "Retry once the server is reachable."
    )


def reaching(method: F) -> F:
    """Decorate a backend method: connection failures become ``IndexUnreachableError``.

    The backend provides ``_server_errors`` (redis-py's ``ConnectionError`` and
    ``TimeoutError``), ``_client`` and ``location``. Generator methods are wrapped too.
    """
    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def generator(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                yield from method(self, *args, **kwargs)
            except self._server_errors as exc:
                raise unreachable_error(exc, self.location, self._client) from exc

        return cast(F, generator)  # functools.wraps keeps the signature

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except self._server_errors as exc:
            raise unreachable_error(exc, self.location, self._client) from exc

    return cast(F, wrapper)  # functools.wraps keeps the signature
