"""PostgreSQL connections that give up: connect, keepalive and statement timeouts.

A PostgreSQL index talks to a server over the network, and networks fail in two ways: loudly
(a refused or reset connection, which the driver reports at once) and silently (a server that
hangs, a NAT or firewall that drops packets, a VPN that went away). Without limits a silent
failure blocks a call forever. Every PostgreSQL engine of the index therefore gets:

* ``connect_timeout`` (libpq): how long to wait for a new connection, per server address;
* TCP keepalives (libpq ``keepalives*``): the operating system notices a peer that vanished
  while a pooled connection sat idle, after about a minute instead of hours;
* ``statement_timeout`` (server side, ``options=-c statement_timeout=...``): the server
  cancels a statement that runs too long (waiting for a lock, say) and says so;
* a reply bound (client side, psycopg 3 only): a call that hears nothing from the server for
  ``statement_timeout`` plus a grace period (the smaller of ``statement_timeout`` and 5 s) has
  its socket shut down by a watchdog thread, so a server that stopped answering fails the
  call instead of hanging it. The grace lets the server's own, clearer, timeout come first.

A lookup costs one round trip: reads run in autocommit (no ``BEGIN``/``ROLLBACK``), psycopg
prepares a statement after a few runs, and a pooled connection is checked with a ping only
when it has sat idle for :data:`IDLE_PING_AFTER` seconds or more (:func:`install_idle_ping`),
instead of before every use. A connection that died sooner (a server restarted between two
back-to-back calls) fails its next statement: a read is then retried once on a new
connection; a write fails with :class:`~atdata_lite.errors.IndexUnreachableError`, having
stored nothing.

Settings come, most specific first, from the URL's query (``?connect_timeout=5&
statement_timeout=30``), the keyword arguments of ``open_sql_backend``/``Index``, and the
defaults below. Any other libpq parameter in the URL (``keepalives_idle``, ``options``,
``sslmode``...) reaches the driver unchanged.

Errors: :func:`unreachable_error` turns a refused, cut or timed-out connection into
:class:`~atdata_lite.errors.IndexUnreachableError` with a message naming the server and
what to check; other database errors are left alone.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from ...errors import IndexOpenError, IndexUnreachableError

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_STATEMENT_TIMEOUT",
    "IDLE_PING_AFTER",
    "PostgresTimeouts",
    "ReplyTimeout",
    "install_idle_ping",
    "install_reply_bound",
    "postgres_connect_settings",
    "timeouts_of",
    "unreachable_error",
]

#: Seconds to wait for a new connection to the server (libpq ``connect_timeout``).
DEFAULT_CONNECT_TIMEOUT = 10.0

#: Seconds a statement may run before the server cancels it; ``0`` means no limit.
DEFAULT_STATEMENT_TIMEOUT = 60.0

#: The most time added to ``statement_timeout`` before a silent server is given up on.
MAX_GRACE = 5.0

#: A pooled connection idle this many seconds or more is pinged before it is used again.
IDLE_PING_AFTER = 1.0

#: How often (seconds, at most) the watchdog looks at armed waits while any are armed.
_WATCH_TICK = 0.25

# Idle 30 s, then 3 probes 10 s apart: a dead peer is noticed after about a minute.
_KEEPALIVES = {
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
}

# SQLSTATEs that mean the server, not the statement, is the problem: class 08 (connection
# exception) and, from class 57, query_canceled (our statement_timeout), admin/crash
# shutdown and "cannot connect now" (starting up or shutting down).
_SERVER_STATES = ("57014", "57P01", "57P02", "57P03")


@dataclass(frozen=True)
class PostgresTimeouts:
    """The limits in effect for one PostgreSQL index.

    Attributes:
        connect: Seconds to wait for a new connection (libpq rounds up to whole seconds,
            2 at least).
        statement: Seconds a statement may run on the server, or ``None`` for no limit.
    """

    connect: float
    statement: float | None

    @property
    def reply(self) -> float | None:
        """Seconds of silence after which the client gives up on a call, or ``None``."""
        if self.statement is None:
            return None
        return self.statement + min(self.statement, MAX_GRACE)


def _seconds(value: Any, name: str) -> float | None:
    """A timeout in seconds from a keyword or a URL query value; ``None`` when unset."""
    if value is None:
        return None
    if isinstance(value, (tuple, list)):  # a URL query key given twice: the last counts
        value = value[-1]
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if math.isnan(seconds) or seconds < 0:
        raise IndexOpenError(
            f"{name} must be a number of seconds >= 0 (0: no limit), not {value!r}; check "
            "the index URL's query or the keyword argument."
        )
    return seconds


def postgres_connect_settings(
    url: sa.URL,
    *,
    connect_timeout: float | None = None,
    statement_timeout: float | None = None,
) -> tuple[sa.URL, dict[str, Any], PostgresTimeouts]:
    """Work out a PostgreSQL URL's connection parameters and limits.

    Args:
        url: The index URL; ``statement_timeout`` in its query is ours and is removed (libpq
            would refuse it), every other query parameter is left for the driver.
        connect_timeout: Seconds, when the URL does not say (default
            :data:`DEFAULT_CONNECT_TIMEOUT`).
        statement_timeout: Seconds, when the URL does not say (default
            :data:`DEFAULT_STATEMENT_TIMEOUT`); ``0`` turns the limit off.

    Returns:
        ``(url, connect_args, timeouts)``: the URL for the engine, the extra driver
        parameters (the URL's own take precedence over them), and the limits in effect.

    Raises:
        IndexOpenError: A timeout is not a number of seconds >= 0.
    """
    query = dict(url.query)
    connect = _seconds(query.get("connect_timeout"), "connect_timeout")
    if connect is None:
        connect = _seconds(connect_timeout, "connect_timeout")
    if connect is None:
        connect = DEFAULT_CONNECT_TIMEOUT
    statement = _seconds(query.pop("statement_timeout", None), "statement_timeout")
    if statement is None:
        statement = _seconds(statement_timeout, "statement_timeout")
    if statement is None:
        statement = DEFAULT_STATEMENT_TIMEOUT

    args: dict[str, Any] = {k: v for k, v in _KEEPALIVES.items() if k not in query}
    if "connect_timeout" not in query and connect > 0:
        # libpq counts whole seconds (and waits 2 at least): round up, never down to 0.
        args["connect_timeout"] = str(max(1, math.ceil(connect)))
    if statement > 0:
        options = query.pop("options", "")
        if isinstance(options, (tuple, list)):
            options = " ".join(options)
        if "statement_timeout" not in options:
            options = f"{options} -c statement_timeout={math.ceil(statement * 1000)}".strip()
        args["options"] = options
    timeouts = PostgresTimeouts(connect, statement if statement > 0 else None)
    return url.set(query=query), args, timeouts


# --- the reply bound: a watchdog that cuts connections whose server fell silent --------------


class _Watchdog:
    """One daemon thread per process that shuts down sockets waiting past their deadline.

    Shutting the socket down (rather than closing it) makes the waiting driver see the end of
    the connection at once and fail the call; the file descriptor stays the driver's to
    close. A socket is only touched while its wait is registered, under the same lock that
    unregisters it, so a descriptor reused after the wait ended is never hit.
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._armed: dict[int, tuple[float, int]] = {}  # token -> (deadline, fd)
        self._fired: set[int] = set()
        self._next = 0
        self._thread: threading.Thread | None = None
        # Whether the thread sleeps until notified (nothing armed for a while). While it is
        # awake it looks every _WATCH_TICK seconds by itself: arming a wait then costs no
        # wake-up of the thread, which matters when every lookup arms one or two.
        self._asleep = True

    def arm(self, fd: int, timeout: float) -> int:
        """Watch ``fd`` for ``timeout`` seconds; return the token for :meth:`disarm`."""
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="atdata-lite-pg-watchdog", daemon=True
                )
                self._thread.start()
            self._next += 1
            token = self._next
            self._armed[token] = (time.monotonic() + timeout, fd)
            if self._asleep:
                self._asleep = False
                self._cond.notify()
            return token

    def disarm(self, token: int) -> bool:
        """Stop watching; ``True`` when the deadline passed and the socket was shut down."""
        with self._cond:
            self._armed.pop(token, None)
            if token in self._fired:
                self._fired.discard(token)
                return True
            return False

    def _run(self) -> None:
        idle_ticks = 0
        with self._cond:
            while True:
                if self._asleep:
                    self._cond.wait()
                    continue
                now = time.monotonic()
                for token, (deadline, fd) in list(self._armed.items()):
                    if deadline <= now:
                        del self._armed[token]
                        self._fired.add(token)
                        _shutdown(fd)  # never raises: the thread must outlive any one socket
                idle_ticks = 0 if self._armed else idle_ticks + 1
                if idle_ticks >= 8:  # nothing armed for two seconds: sleep until notified
                    self._asleep = True
                    continue
                earliest = min((d for d, _ in self._armed.values()), default=now + _WATCH_TICK)
                self._cond.wait(max(0.01, min(_WATCH_TICK, earliest - now)))


def _shutdown(fd: int) -> None:
    try:
        dup = socket.socket(fileno=os.dup(fd))
    except Exception:
        return
    try:
        dup.shutdown(socket.SHUT_RDWR)
    except Exception:
        pass
    finally:
        dup.close()


_WATCHDOG = _Watchdog()

if hasattr(os, "register_at_fork"):
    # The thread does not survive a fork and the lock may have been held: start afresh.
    os.register_at_fork(after_in_child=_WATCHDOG._reset)


class ReplyTimeout(Exception):
    """Mixed into the driver's ``OperationalError``: the server said nothing in time."""

    timeout: float = 0.0


_connection_class: Any = None


def _bounded_connection_class() -> Any:
    """A psycopg 3 ``Connection`` whose every wait on the server is bounded by the watchdog.

    ``Connection.wait`` is where psycopg 3 blocks for every query, fetch, commit and rollback
    (connecting has ``connect_timeout``), so bounding it bounds them all.
    """
    global _connection_class
    if _connection_class is None:
        import psycopg

        class _Timeout(ReplyTimeout, psycopg.OperationalError):
            pass

        class BoundedConnection(psycopg.Connection[Any]):
            atdata_lite_reply_timeout: float | None = None

            def wait(self, gen: Any, *args: Any, **kwargs: Any) -> Any:
                timeout = self.atdata_lite_reply_timeout
                if timeout is None:
                    return super().wait(gen, *args, **kwargs)
                token = _WATCHDOG.arm(self.pgconn.socket, timeout)
                try:
                    return super().wait(gen, *args, **kwargs)
                except psycopg.Error as exc:
                    if not _WATCHDOG.disarm(token):
                        raise
                    err = _Timeout(f"no reply from the server for {timeout:g} s ({exc})")
                    err.timeout = timeout
                    raise err from exc
                finally:
                    _WATCHDOG.disarm(token)

        _connection_class = BoundedConnection
    return _connection_class


_TIMEOUTS: weakref.WeakKeyDictionary[Engine, PostgresTimeouts] = weakref.WeakKeyDictionary()


def timeouts_of(engine: Engine) -> PostgresTimeouts:
    """The limits a PostgreSQL engine was created with (the defaults for a foreign engine)."""
    found = _TIMEOUTS.get(engine)
    return found or PostgresTimeouts(DEFAULT_CONNECT_TIMEOUT, DEFAULT_STATEMENT_TIMEOUT)


def install_reply_bound(engine: Engine, timeouts: PostgresTimeouts) -> None:
    """Make the engine's psycopg 3 connections give up on a silent server (see module doc).

    Other drivers (psycopg2) keep the server-side limits only.
    """
    _TIMEOUTS[engine] = timeouts
    reply = timeouts.reply
    if reply is None or engine.dialect.driver != "psycopg":
        return
    cls = _bounded_connection_class()

    @event.listens_for(engine, "do_connect")
    def _connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        conn = cls.connect(*cargs, **cparams)
        conn.atdata_lite_reply_timeout = reply
        return conn

    @event.listens_for(engine, "handle_error")
    def _no_reconnect_to_a_silent_server(context: Any) -> None:
        # The pool's check of a pooled connection (pre-ping) would treat the cut connection
        # as stale and connect again -- to the same silent server, adding connect_timeout to
        # the wait. Fail the checkout instead: the pool still throws the connection away.
        if context.is_pre_ping and isinstance(context.original_exception, ReplyTimeout):
            context.is_disconnect = False


def install_idle_ping(engine: Engine, idle: float = IDLE_PING_AFTER) -> None:
    """Ping a pooled connection before use only when it sat idle ``idle`` seconds or more.

    SQLAlchemy's ``pool_pre_ping`` pings before every use: a second round trip for every
    lookup. A server restart or an idle timeout (a server's or a NAT's) hits connections that
    sat in the pool, and those are still pinged; a connection that fails the ping is replaced
    (the pool retries with a new one). A connection that dies while in use, or between two
    calls less than ``idle`` apart, fails its statement instead (see the module docstring).
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["atdata_lite_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("atdata_lite_idle_since")
        if since is None or time.monotonic() - since < idle:
            return  # new, or used a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            if isinstance(exc, ReplyTimeout):
                # A silent server: connecting again would only add connect_timeout.
                raise sa.exc.OperationalError("(ping)", None, exc) from exc
            raise sa.exc.DisconnectionError(f"the pooled connection is gone ({exc})") from exc


# --- errors -------------------------------------------------------------------------------


def _reason(orig: BaseException | None) -> str:
    """The driver's message as one sentence (libpq's span several lines)."""
    text = " ".join(str(orig).split()) or type(orig).__name__
    return text if text.endswith((".", "?", "!")) else text + "."


def unreachable_error(
    exc: BaseException, location: str, timeouts: PostgresTimeouts, *, opening: bool = False
) -> IndexUnreachableError | None:
    """The :class:`IndexUnreachableError` that ``exc`` amounts to, or ``None``.

    Args:
        exc: An exception raised while using the index's engine.
        location: The index URL for people (password hidden).
        timeouts: The limits in effect (quoted in the message).
        opening: Whether the index was being opened (the message then lists what to check).

    Returns:
        The error to raise instead, or ``None`` when ``exc`` is not about reaching the
        server (a constraint violation, say).
    """
    if not isinstance(exc, sa.exc.DBAPIError):
        return None
    orig = exc.orig
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if isinstance(orig, ReplyTimeout):
        return IndexUnreachableError(
            f"The PostgreSQL server of the index at {location} did not answer for "
            f"{orig.timeout:g} s; the call was abandoned. The server may be stopped, "
            "overloaded or cut off by the network. If the work is legitimately slow, raise "
            "statement_timeout (e.g. ?statement_timeout=300 in the URL)."
        )
    if state == "57014":
        return IndexUnreachableError(
            f"The PostgreSQL server of the index at {location} cancelled a statement that "
            f"ran longer than statement_timeout ({timeouts.statement or 0:g} s): "
            f"{_reason(orig)} Another session may hold a lock; retry, or raise "
            "statement_timeout (e.g. ?statement_timeout=300 in the URL)."
        )
    server_side = state is not None and (state.startswith("08") or state in _SERVER_STATES)
    connection_failed = state is None and isinstance(exc, sa.exc.OperationalError)
    if not (exc.connection_invalidated or server_side or connection_failed):
        return None
    if opening:
        return IndexUnreachableError(
            f"Cannot connect to the PostgreSQL index at {location}: {_reason(orig)} Check "
            "that the server is running and reachable from this machine (host, port, "
            "firewall) and the database name and credentials in the URL; connect_timeout "
            f"({timeouts.connect:g} s) sets how long to wait."
        )
    return IndexUnreachableError(
        f"Lost the connection to the PostgreSQL index at {location}: {_reason(orig)} The "
        "call did not complete; a write is stored entirely or not at all (look it up to "
        "know which). Retry once the server is reachable."
    )
