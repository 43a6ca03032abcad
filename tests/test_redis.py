"""Redis backend specifics: atdata's layout shared both ways, the name index, the plugin."""

from __future__ import annotations

import json
import logging
import multiprocessing
import sys

import msgpack
import pytest
from _redis_helpers import (
    atdata_entries,
    atdata_from_redis,
    atdata_get_schema,
    fixture_entries,
    fixture_schemas,
    load_fixture,
)

from atdata_lite.errors import BackendUnavailableError
from atdata_lite.index import open_backend
from atdata_lite.schema import content_hash
from atdata_lite.testing import make_record

pytestmark = pytest.mark.redis


@pytest.fixture
def client(redis_url):
    import redis

    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()


@pytest.fixture
def backend(redis_url):
    b = open_backend(redis_url)
    yield b
    b.close()


def test_missing_redis_py_fails_with_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "redis", None)  # import redis now raises ImportError
    with pytest.raises(BackendUnavailableError) as info:
        open_backend("redis://127.0.0.1:6379/0")
    assert "pip install 'atdata-lite[redis]'" in str(info.value)
    assert isinstance(info.value, ImportError)
    from atdata_lite.index.api import Index

    with pytest.raises(BackendUnavailableError):
        Index("rediss://127.0.0.1:6380/0")


def test_url_selects_the_redis_plugin(redis_url):
    from atdata_lite.index.api import Index
    from atdata_lite.index.redis import RedisBackend

    with Index(redis_url) as index:
        assert isinstance(index.backend, RedisBackend)
        assert index.backend.describe()["kind"] == "redis"


def test_location_hides_the_password():
    from atdata_lite.index.redis.backend import _hide_password

    assert _hide_password("redis://:s3cret@h:1/2") == "redis://:***@h:1/2"
    assert _hide_password("rediss://u:s3cret@h:1/2") == "rediss://u:***@h:1/2"
    assert _hide_password("redis://h:1/2") == "redis://h:1/2"


def test_unreachable_server_is_a_clear_error():
    from atdata_lite.errors import IndexOpenError

    with pytest.raises(IndexOpenError, match="Cannot reach the Redis index"):
        open_backend("redis://127.0.0.1:1/0", socket_connect_timeout=1)


def test_client_that_decodes_responses_is_refused(redis_url):
    import redis

    from atdata_lite.index.redis import open_redis_backend

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    with pytest.raises(ValueError, match="decode_responses"):
        open_redis_backend(redis_url, client=client)
    client.close()


def test_index_accepts_a_redis_client_like_atdata(client):
    from atdata_lite.index.api import Index

    load_fixture(client)
    index = Index(client)
    assert index.get_dataset("images-train").metadata["classes"] == ["cat", "dog"]
    index.close()
    client.ping()  # the caller's client is left open


# --- atdata's own data, read by atdata-lite ----------------------------------------------


def test_reads_an_index_atdata_wrote(client, redis_url):
    doc = load_fixture(client)
    backend = open_backend(redis_url)
    try:
        for cid, fields in fixture_entries(doc).items():
            rec = backend.get_dataset(fields["name"].decode())
            assert rec is not None and rec.cid == cid
            assert rec.metadata == fields["metadata"]  # exact bytes
            assert rec.data_urls == msgpack.unpackb(fields["data_urls"])
            assert rec.schema_ref == fields["schema_ref"].decode()
            assert backend.get_dataset_by_cid(cid).name == rec.name
        for (name, version), text in fixture_schemas(doc).items():
            row = backend.get_schema(name, version)
            assert row.record_json == text
            assert row.content_hash == content_hash(json.loads(text))
        assert [r.name for r in backend.iter_datasets()] == [
            "images-train",
            "images-val",
            "text-train",
        ]
        # ImageSample@1.0.0 and 1.0.1 have the same content: the highest one is found.
        h = content_hash(json.loads(fixture_schemas(doc)[("ImageSample", "1.0.0")]))
        assert backend.find_schema("ImageSample", h).version == "1.0.1"
    finally:
        backend.close()


def test_index_api_on_atdata_fixture(client, redis_url):
    from atdata_lite.index.api import Index

    load_fixture(client)
    with Index(redis_url) as index:
        val = index.get_dataset("images-val")
        assert val.schema_ref == "local://schemas/__main__.ImageSample@1.0.0"
        assert index.get_schema(val.schema_ref)["$ref"].endswith("ImageSample@1.0.0")
        text = index.get_dataset("text-train")
        assert text.metadata == {
            "source": "wiki",
            "size_bytes": 123456789,
            "ratio": 0.5,
            "nested": {"a": [1, 2]},
            "blob": b"\x00\xff",
        }
        assert [s["version"] for s in index.list_schemas() if s["name"] == "ImageSample"] == [
            "1.0.0",
            "1.0.1",
        ]


def test_entries_atdata_writes_later_are_listed_and_found_after_reconcile(client, backend):
    load_fixture(client)  # after the backend opened: its name index does not know them
    assert len(list(backend.iter_datasets())) == 3  # listing scans: sees everything
    assert backend.get_dataset("images-train") is None
    assert backend.reconcile() == {"added": 3, "removed": 0}
    assert backend.get_dataset("images-train").name == "images-train"
    assert backend.reconcile() == {"added": 0, "removed": 0}


def test_atdata_renaming_in_place_is_not_trusted(client, backend):
    rec = make_record("before")
    backend.insert_datasets([rec])
    # atdata re-adding the same content under a new name rewrites the name field.
    client.hset(f"LocalDatasetEntry:{rec.cid}", "name", "after")
    assert backend.get_dataset("before") is None
    assert backend.reconcile() == {"added": 1, "removed": 1}
    assert backend.get_dataset("after").cid == rec.cid


def test_duplicate_names_from_atdata_resolve_to_the_smallest_cid(client, redis_url, caplog):
    a, b = make_record("dup", ["1.tar"]), make_record("dup", ["2.tar"])
    for rec in (a, b):  # as atdata's write_to does: no uniqueness
        client.hset(
            f"LocalDatasetEntry:{rec.cid}",
            mapping={
                "name": "dup",
                "schema_ref": rec.schema_ref,
                "data_urls": msgpack.packb(rec.data_urls),
                "cid": rec.cid,
            },
        )
    with caplog.at_level(logging.WARNING):
        backend = open_backend(redis_url)
    try:
        assert "dup" in caplog.text
        assert backend.get_dataset("dup").cid == min(a.cid, b.cid)
        assert sorted(r.cid for r in backend.iter_datasets()) == sorted([a.cid, b.cid])
    finally:
        backend.close()


def test_legacy_schema_keys_count_for_auto_versioning(client, backend):
    record = {"name": "Img", "version": "1.5.0", "fields": []}
    client.set("LocalSchema:__main__.Img@1.5.0", json.dumps(record))
    client.set("LocalSchema:Img@banana", json.dumps(record))  # not semver: ignored
    client.set("LocalSchema:Other.Img2@9.0.0", json.dumps(record))  # another name
    row, created = backend.publish_schema("Img", None, lambda v: json.dumps(record), "h")
    assert created and row.version == "1.5.1"
    listed = [(r.name, r.version) for r in backend.iter_schemas()]
    assert ("Img", "1.5.0") in listed and ("Img", "banana") in listed


def test_get_by_name_does_not_scan(client, backend):
    backend.insert_datasets([make_record(f"d{i}") for i in range(50)])
    client.config_resetstat()
    assert backend.get_dataset("d7").name == "d7"
    assert backend.get_dataset("missing") is None
    stats = client.info("commandstats")
    assert "cmdstat_scan" not in stats
    assert "cmdstat_keys" not in stats


# --- atdata-lite's writes, read by atdata's code ------------------------------------------


def test_atdata_reads_what_atdata_lite_writes(client, redis_url):
    from atdata_lite.index.api import Index
    from atdata_lite.samples import packable

    @packable
    class Frame:
        """A frame."""

        label: str
        score: float

    with Index(redis_url) as index:
        ref = index.publish_schema(Frame)
        meta = {"split": "train", "n": 3, "blob": b"\x01"}
        entry = index.add_shards(
            ["s3://b/f-000000.tar", "s3://b/f-000001.tar"],
            name="frames",
            schema_ref=ref,
            metadata=meta,
        )
    got = atdata_from_redis(client, entry.cid)
    assert got == {
        "name": "frames",
        "schema_ref": ref,
        "data_urls": ["s3://b/f-000000.tar", "s3://b/f-000001.tar"],
        "metadata": meta,
        "cid": entry.cid,
        "legacy_uuid": None,
    }
    assert [e["name"] for e in atdata_entries(client)] == ["frames"]
    schema = atdata_get_schema(client, "Frame", "1.0.0")
    assert schema["name"] == "Frame" and schema["version"] == "1.0.0"
    assert [f["name"] for f in schema["fields"]] == ["label", "score"]
    assert list(schema)[:5] == ["name", "version", "fields", "description", "createdAt"]
    # Written like json.dumps(record): default separators, ASCII.
    raw = client.get("LocalSchema:Frame@1.0.0").decode()
    assert raw == json.dumps(json.loads(raw))
    # Our extras never collide with atdata's keys or fields.
    atdata_fields = {b"name", b"schema_ref", b"data_urls", b"cid", b"metadata", b"legacy_uuid"}
    extra = set(client.hgetall(f"LocalDatasetEntry:{entry.cid}")) - atdata_fields
    assert all(f.startswith(b"atl_") for f in extra)
    keys = {k.decode() for k in client.scan_iter()}
    assert all(k.startswith(("LocalDatasetEntry:", "LocalSchema:", "atdata_lite:")) for k in keys)


def _child_lookup(backend, conn) -> None:
    rec = backend.get_dataset("forked")
    conn.send(rec.name if rec else None)
    conn.close()


@pytest.mark.skipif(sys.platform == "win32", reason="fork")
def test_usable_in_a_forked_child(backend):
    backend.insert_datasets([make_record("forked")])
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_child_lookup, args=(backend, child))
    proc.start()
    assert parent.recv() == "forked"
    proc.join(10)
    assert proc.exitcode == 0
    assert backend.get_dataset("forked").name == "forked"  # the parent still works


def test_dry_run_catalog_write_leaves_the_server_as_it_was(client, redis_url):
    # Schemas atdata wrote have no cached content hash; a dry run must not add one (nor
    # anything else): checking a catalog against the server changes nothing there.
    load_fixture(client)
    backend = open_backend(redis_url)  # opening reconciles the name index: before the snapshot
    try:
        before = {k: client.dump(k) for k in client.keys("*")}
        stored = backend.get_schema("ImageSample", "1.0.0")  # reads may fill the cache...
        client.hdel("atdata_lite:schema_hashes", "ImageSample@1.0.0")  # ...so empty it again
        before = {k: client.dump(k) for k in client.keys("*")}
        result = backend.write_catalog([stored], [make_record("new")], dry_run=True)
        assert result.schemas_unchanged == ["ImageSample@1.0.0"]
        assert result.datasets_added == ["new"]
        assert {k: client.dump(k) for k in client.keys("*")} == before
    finally:
        backend.close()
