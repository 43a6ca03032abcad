"""The backend conformance suite (atdata_lite.testing) on every built-in backend."""

from __future__ import annotations

import sqlite3

import pytest

from atdata_lite.index.backend import IndexBackend
from atdata_lite.testing import BackendConformance


class TestSQLite(BackendConformance):
    @pytest.fixture
    def location(self, tmp_path) -> str:
        return str(tmp_path / "index.db")

    def store_unreadable_dataset(self, backend: IndexBackend, location: str) -> None:
        # A timestamp no reader can parse: the row exists but cannot become a record.
        with sqlite3.connect(location) as conn:
            conn.execute(
                "INSERT INTO datasets (cid, name, schema_ref, metadata, legacy_uuid, "
                "created_at, updated_at) VALUES ('bafybroken', 'broken', 'x', NULL, NULL, "
                "'not a time', 'not a time')"
            )


@pytest.mark.postgres
class TestPostgreSQL(BackendConformance):
    @pytest.fixture
    def location(self, postgres_url) -> str:
        return postgres_url

    def store_unreadable_dataset(self, backend: IndexBackend, location: str) -> None:
        pytest.skip(
            "PostgreSQL's typed columns cannot hold a row the backend fails to read "
            "(corrupt metadata bytes are an Index-level case, tested in test_index_defects)"
        )


@pytest.mark.redis
class TestRedis(BackendConformance):
    @pytest.fixture
    def location(self, redis_url) -> str:
        return redis_url

    def store_unreadable_dataset(self, backend: IndexBackend, location: str) -> None:
        import redis

        client = redis.Redis.from_url(location)
        # Rows atdata can leave: a hash without a name, and one whose data_urls is not msgpack.
        client.hset("LocalDatasetEntry:bafynoname", mapping={"schema_ref": "x", "cid": "b"})
        client.hset(
            "LocalDatasetEntry:bafybadurls",
            mapping={"name": "bad-urls", "schema_ref": "x", "data_urls": b"\xc1"},
        )
        client.close()
