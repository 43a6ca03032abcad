"""Shared fixtures: real servers on loopback (PostgreSQL, Redis, a moto S3 server).

A test that needs a server it cannot reach is skipped with the reason, so the suite runs on
a laptop without them. With ``ATDATA_LITE_REQUIRE_SERVICES=1`` (set by ``.ci/run``) such a
skip becomes a failure: CI always exercises every backend.

Server locations can be overridden:

* ``ATDATA_LITE_TEST_POSTGRES``: an SQLAlchemy URL of a database we may create others from
  (default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``);
* ``ATDATA_LITE_TEST_REDIS``: a Redis URL whose database may be flushed
  (default ``redis://127.0.0.1:6379/13``).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import pytest

REQUIRE_SERVICES = os.environ.get("ATDATA_LITE_REQUIRE_SERVICES", "") not in ("", "0")
POSTGRES_URL = os.environ.get(
    "ATDATA_LITE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("ATDATA_LITE_TEST_REDIS", "redis://127.0.0.1:6379/13")


def service_unavailable(reason: str) -> None:
    """Skip the current test because a server is missing, or fail when CI requires it."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (ATDATA_LITE_REQUIRE_SERVICES=1 turns this skip into a failure)")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- PostgreSQL -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def _postgres_admin():
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as exc:  # driver missing, server down, auth refused
        return exc
    return engine


@pytest.fixture
def postgres_url(_postgres_admin) -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database, dropped after the test."""
    if isinstance(_postgres_admin, Exception):
        service_unavailable(f"PostgreSQL is not reachable at {POSTGRES_URL}: {_postgres_admin}")
    import sqlalchemy as sa

    name = f"atl_test_{uuid.uuid4().hex[:12]}"
    with _postgres_admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(POSTGRES_URL).set(database=name)
    yield url.render_as_string(hide_password=False)
    with _postgres_admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# --- Redis --------------------------------------------------------------------------


@pytest.fixture
def redis_url() -> Iterator[str]:
    """URL of an emptied Redis database (flushed before and after the test)."""
    try:
        import redis
    except ImportError:
        service_unavailable("redis-py is not installed: pip install 'atdata-lite[redis]'")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except Exception as exc:
        service_unavailable(f"Redis is not reachable at {REDIS_URL}: {exc}")
    client.flushdb()
    yield REDIS_URL
    client.flushdb()
    client.close()


# --- S3 (moto in server mode: a real HTTP endpoint on loopback) -------------------------


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """Endpoint URL of a moto S3 server running on loopback for the whole session."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        service_unavailable("moto[server] is not installed: pip install 'atdata-lite[test]'")
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint) -> Iterator[tuple[str, dict]]:
    """A fresh bucket on the moto server: ``(bucket_url, storage_options)`` for s3fs."""
    try:
        import s3fs  # noqa: F401  (the tests talk to the bucket through s3fs)
    except ImportError:
        service_unavailable("s3fs is not installed: pip install 'atdata-lite[s3]'")
    storage_options = {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"},
        # A fresh filesystem per test: s3fs caches instances and directory listings.
        "skip_instance_cache": True,
        "use_listings_cache": False,
    }
    import boto3  # comes with moto

    bucket = f"atl-{uuid.uuid4().hex[:12]}"
    # boto3, not s3fs.mkdir: s3fs sends a LocationConstraint that us-east-1 refuses.
    boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=bucket)
    yield f"s3://{bucket}", storage_options


# --- the shard cache ----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _private_shard_cache(tmp_path_factory, monkeypatch) -> None:
    """Every test reads remote shards through its own empty shard cache, never the user's."""
    monkeypatch.setenv("ATDATA_LITE_CACHE", str(tmp_path_factory.mktemp("shard-cache")))
    monkeypatch.delenv("ATDATA_LITE_CACHE_SIZE", raising=False)
    monkeypatch.delenv("ATDATA_LITE_OFFLINE", raising=False)
