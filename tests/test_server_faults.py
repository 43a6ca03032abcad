"""PostgreSQL and Redis indexes when the server refuses, falls silent, or dies mid-call.

A loopback proxy (``_proxy.FaultProxy``) sits between the index and the real server so a
test can freeze it (connections stay open, nothing is forwarded) or kill it. Every call that
might hang runs in a thread with a bound, so a regression fails the test instead of hanging
it. Timeouts are set small here; the defaults are in ``docs/servers.md``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from _proxy import FaultProxy
from _sql_helpers import record
from click.testing import CliRunner

from atdata_lite.cli import cli
from atdata_lite.errors import IndexOpenError, IndexUnreachableError
from atdata_lite.index import open_backend
from atdata_lite.index.api import Index

pytestmark = pytest.mark.slow  # waits out timeouts behind a frozen proxy

# How much later than its configured bound an error may arrive on a loaded machine.
SLACK = 6.0


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bounded(func: Callable[[], Any], limit: float) -> tuple[Any, BaseException | None, float]:
    """Run ``func`` in a thread; fail the test if it is still blocked after ``limit`` s.

    Returns:
        ``(result, exception, seconds taken)``.
    """
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = func()
        except BaseException as exc:
            out["error"] = exc

    start = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    took = time.monotonic() - start
    if thread.is_alive():
        pytest.fail(f"still blocked after {limit:g} s: a silent server must not hang a call")
    return out.get("result"), out.get("error"), took


def one_line_error(result: Any) -> str:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "bug in atdata-lite" not in result.stderr
    return lines[0]


# --- PostgreSQL ---------------------------------------------------------------------------


def _via(url: str, port: int, **query: str) -> str:
    parsed = sa.make_url(url)
    parsed = parsed.set(host="127.0.0.1", port=port).update_query_dict(query)
    return parsed.render_as_string(hide_password=False)


@pytest.fixture
def pg_proxy(postgres_url) -> Iterator[tuple[str, FaultProxy]]:
    """``(url through the proxy, proxy)``; the index is created directly first."""
    open_backend(postgres_url).close()
    target = sa.make_url(postgres_url)
    with FaultProxy(target.host or "127.0.0.1", target.port or 5432) as proxy:
        yield _via(postgres_url, proxy.port), proxy


def test_postgres_closed_port_is_a_clear_error_at_once(postgres_url):
    url = _via(postgres_url, closed_port())
    _, error, took = bounded(lambda: Index(url), 10 + SLACK)
    assert isinstance(error, IndexUnreachableError), repr(error)
    assert isinstance(error, IndexOpenError)
    assert "127.0.0.1" in str(error) and "Check that the server is running" in str(error)
    assert took < 5


@pytest.mark.parametrize("command", [["ls"], ["db", "current"], ["db", "upgrade"]])
def test_postgres_closed_port_cli_one_line(postgres_url, command):
    url = _via(postgres_url, closed_port())
    result = CliRunner().invoke(cli, ["--index", url, *command])
    line = one_line_error(result)
    assert line.startswith("Error: Cannot connect to the PostgreSQL index at")


def test_postgres_silent_server_at_open_times_out(pg_proxy):
    url, proxy = pg_proxy
    proxy.freeze()
    # libpq's connect_timeout counts whole seconds, 2 at least.
    url = _via(url, proxy.port, connect_timeout="2")
    _, error, took = bounded(lambda: Index(url), 2 + SLACK)
    assert isinstance(error, IndexUnreachableError), repr(error)
    assert took >= 1.5


def test_postgres_silent_server_mid_call_times_out(pg_proxy):
    url, proxy = pg_proxy
    index = Index(url, statement_timeout=1, connect_timeout=2)
    try:
        assert index.list_datasets() == []
        proxy.freeze()
        # statement_timeout 1 s + a grace of 1 s: a silent server fails the call after 2 s.
        _, error, took = bounded(index.list_datasets, 2 + SLACK)
        assert isinstance(error, IndexUnreachableError), repr(error)
        assert "did not answer for 2 s" in str(error)
        assert took >= 1.5
        # Writes too (on a new connection: the frozen proxy lets it time out connecting).
        _, error, _ = bounded(lambda: index.backend.insert_datasets([record("frozen")]), 2 + SLACK)
        assert isinstance(error, IndexUnreachableError), repr(error)
        proxy.thaw()
        # The same Index recovers: the cut connections were thrown away.
        assert index.list_datasets() == []
    finally:
        index.close()


def test_postgres_statement_timeout_cancels_on_the_server(postgres_url):
    """A statement stuck behind another session's lock is cancelled by the server."""
    index = Index(postgres_url + "?statement_timeout=1")
    locker = sa.create_engine(postgres_url, poolclass=sa.NullPool)
    try:
        with locker.connect() as conn:
            conn.execute(sa.text("LOCK TABLE datasets IN ACCESS EXCLUSIVE MODE"))
            _, error, _ = bounded(index.list_datasets, 1 + SLACK)
            conn.rollback()
        assert isinstance(error, IndexUnreachableError), repr(error)
        assert "statement_timeout (1 s)" in str(error)
        assert index.list_datasets() == []
    finally:
        index.close()
        locker.dispose()


def test_postgres_timeouts_from_url_and_keywords(postgres_url):
    index = Index(postgres_url + "?statement_timeout=7", statement_timeout=3, connect_timeout=4)
    try:
        with index.backend.engine.connect() as conn:
            # The URL wins over the keyword; keepalives are on.
            assert conn.execute(sa.text("SHOW statement_timeout")).scalar() == "7s"
            info = conn.connection.dbapi_connection.info
            assert info.get_parameters().get("keepalives") in (None, "1")
            assert "keepalives=1" in info.dsn and "connect_timeout=4" in info.dsn
    finally:
        index.close()
    with pytest.raises(IndexOpenError, match="statement_timeout must be a number"):
        Index(postgres_url + "?statement_timeout=soon")


def _write_until_failure(backend: Any, ok: list[str], failure: list[BaseException]) -> None:
    try:
        for i in range(100_000):
            name = f"w{i:05d}"
            # Three shards per entry: a half-written entry would show fewer.
            backend.insert_datasets([record(name, urls=(f"{name}-a", f"{name}-b", f"{name}-c"))])
            ok.append(name)
    except BaseException as exc:
        failure.append(exc)


def _check_whole(location: str, ok: list[str]) -> None:
    backend = open_backend(location)
    try:
        stored = {r.name: r for r in backend.iter_datasets()}
    finally:
        backend.close()
    assert set(ok) <= set(stored)
    assert len(stored) - len(ok) in (0, 1)  # the interrupted write: stored whole, or not at all
    for name, rec in stored.items():
        assert rec.data_urls == [f"{name}-a", f"{name}-b", f"{name}-c"], name


def test_postgres_proxy_killed_mid_write(pg_proxy, postgres_url):
    url, proxy = pg_proxy
    backend = open_backend(url, statement_timeout=2)
    ok: list[str] = []
    failure: list[BaseException] = []
    writer = threading.Thread(target=_write_until_failure, args=(backend, ok, failure))
    writer.start()
    deadline = time.monotonic() + 30
    while len(ok) < 20 and time.monotonic() < deadline and not failure:
        time.sleep(0.01)
    proxy.kill()
    writer.join(30)
    assert not writer.is_alive()
    assert failure and isinstance(failure[0], IndexUnreachableError), failure
    assert "PostgreSQL index at" in str(failure[0])
    backend.close()
    # Back up: a new index works, and nothing half-written is visible.
    proxy.start()
    _check_whole(url, ok)
    _check_whole(postgres_url, ok)


# --- Redis ----------------------------------------------------------------------------------


@pytest.fixture
def redis_proxy(redis_url) -> Iterator[tuple[str, FaultProxy]]:
    """``(redis URL through the proxy, proxy)``."""
    from urllib.parse import urlsplit

    parts = urlsplit(redis_url)
    with FaultProxy(parts.hostname or "127.0.0.1", parts.port or 6379) as proxy:
        yield f"redis://127.0.0.1:{proxy.port}{parts.path or '/0'}", proxy


def test_redis_default_timeouts(redis_url):
    index = Index(redis_url)
    try:
        kwargs = index.backend.client.get_connection_kwargs()
        assert kwargs["socket_timeout"] == 60 and kwargs["socket_connect_timeout"] == 10
        assert kwargs["socket_keepalive"] is True
    finally:
        index.close()
    index = Index(redis_url + "?socket_timeout=5")
    try:
        assert index.backend.client.get_connection_kwargs()["socket_timeout"] == 5
    finally:
        index.close()


def test_redis_closed_port_is_a_clear_error_at_once():
    pytest.importorskip("redis")
    url = f"redis://127.0.0.1:{closed_port()}/0"
    _, error, took = bounded(lambda: Index(url), 10 + SLACK)
    assert isinstance(error, IndexUnreachableError), repr(error)
    assert f"{url}" in str(error) and "Start the server" in str(error)
    assert took < 5


def test_redis_silent_server_at_open_times_out(redis_proxy):
    url, proxy = redis_proxy
    proxy.freeze()
    _, error, _ = bounded(lambda: Index(url + "?socket_timeout=1"), 1 + SLACK)
    assert isinstance(error, IndexUnreachableError), repr(error)
    assert "did not answer within 1 s" in str(error)


def test_redis_silent_server_mid_call_times_out(redis_proxy):
    url, proxy = redis_proxy
    index = Index(url + "?socket_timeout=1")
    try:
        assert index.list_datasets() == []
        proxy.freeze()
        for call in (
            index.list_datasets,
            lambda: index.get_dataset("x"),
            lambda: index.backend.insert_datasets([record("frozen")]),
        ):
            _, error, took = bounded(call, 1 + SLACK)
            assert isinstance(error, IndexUnreachableError), repr(error)
            assert took >= 0.8
        proxy.thaw()
        assert index.list_datasets() == []
    finally:
        index.close()


def test_redis_silent_server_cli_one_line(redis_proxy):
    url, proxy = redis_proxy
    proxy.freeze()
    result = CliRunner().invoke(cli, ["--index", url + "?socket_timeout=1", "ls"])
    line = one_line_error(result)
    assert "did not answer within 1 s" in line


def test_redis_proxy_killed_mid_write(redis_proxy, redis_url):
    url, proxy = redis_proxy
    backend = open_backend(url)
    ok: list[str] = []
    failure: list[BaseException] = []
    writer = threading.Thread(target=_write_until_failure, args=(backend, ok, failure))
    writer.start()
    deadline = time.monotonic() + 30
    while len(ok) < 20 and time.monotonic() < deadline and not failure:
        time.sleep(0.01)
    proxy.kill()
    writer.join(30)
    assert not writer.is_alive()
    assert failure and isinstance(failure[0], IndexUnreachableError), failure
    assert "Redis index at" in str(failure[0])
    backend.close()
    proxy.start()
    _check_whole(url, ok)
    _check_whole(redis_url, ok)
