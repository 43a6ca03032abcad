"""LocalDatasetEntry, LocalSchemaRecord and SchemaNamespace: atdata's shapes."""

from __future__ import annotations

import pytest

from atdata_lite.index import Index
from atdata_lite.index.backend import ShardRecord
from atdata_lite.index.entries import LocalDatasetEntry, LocalSchemaRecord, SchemaNamespace


def test_entry_computes_atdatas_cid():
    entry = LocalDatasetEntry(
        "images-train",
        "atdata://local/sampleSchema/ImageSample@1.0.0",
        ["data/shard-{000000..000002}.tar"],
        {"split": "train"},
    )
    assert entry.cid == "bafyreid2avy6ldjllnqxs2krqq7whcdlxt4cp2hopbzmso6msw5xr6a3iy"
    assert entry.shards == (ShardRecord("data/shard-{000000..000002}.tar"),)
    assert entry.wds_url == "data/shard-{000000..000002}.tar"
    assert LocalDatasetEntry("e", "r", []).wds_url == ""
    # An explicit CID is trusted, as in atdata (imports carry the stored one).
    assert LocalDatasetEntry("e", "r", [], _cid="given").cid == "given"


def test_entry_shards_must_match_urls():
    with pytest.raises(ValueError, match="shard URLs differ"):
        LocalDatasetEntry("e", "r", ["a"], shards=(ShardRecord("b"),))
    ok = LocalDatasetEntry("e", "r", ["a"], shards=[ShardRecord("a", 1, 2, "h")])
    assert ok.shards == (ShardRecord("a", 1, 2, "h"),)


def test_schema_record_from_dict_and_to_dict():
    rec = LocalSchemaRecord.from_dict(
        {
            "name": "S",
            "version": "1.0.0",
            "fields": [{"name": "a", "fieldType": {"$type": "local#primitive"}, "optional": False}],
            "description": "",
            "createdAt": "not a date",
            "$ref": "atdata://local/sampleSchema/S@1.0.0",
        }
    )
    assert rec.created_at is None
    assert rec.to_dict() == {
        "name": "S",
        "version": "1.0.0",
        "fields": [{"name": "a", "fieldType": {"$type": "local#primitive"}, "optional": False}],
        "$ref": "atdata://local/sampleSchema/S@1.0.0",
    }
    assert rec["createdAt"] is None and rec.get("nope", 1) == 1
    with pytest.raises(KeyError):
        rec["nope"]
    assert len(rec) == 6 and list(rec) == rec.keys()
    assert rec.values()[0] == "S"
    with pytest.raises(KeyError):
        LocalSchemaRecord.from_dict({"version": "1.0.0"})


def test_schema_namespace():
    ns = SchemaNamespace()
    assert repr(ns) == "SchemaNamespace(empty)"
    ns._register("B", int)
    ns._register("A", str)
    assert repr(ns) == "SchemaNamespace(A, B)"
    assert ns.A is str and "A" in dir(ns) and sorted(ns) == ["A", "B"]
    ns._register("A", bytes)  # a later version replaces the earlier class
    assert ns.A is bytes


def test_atdata_redis_keywords_select_redis(redis_url):
    import redis

    kwargs = redis.Redis.from_url(redis_url).get_connection_kwargs()
    with Index(host=kwargs["host"], port=kwargs["port"], db=kwargs["db"]) as idx:
        assert idx.backend.kind == "redis"
        assert idx.list_datasets() == []


def test_entries_read_from_the_index_build_their_shard_records_on_first_use(tmp_path):
    import dataclasses

    from atdata_lite import packable

    @packable
    class P:
        x: int

    shards = [ShardRecord("/d/a.tar", 10, 2, "a" * 64, "train"), ShardRecord("/d/b.tar")]
    shards[1] = ShardRecord("/d/b.tar", None, None, None, "test")
    with Index(tmp_path / "index.db") as index:
        ref = index.publish_schema(P)
        added = index.add_shards(shards, name="a", schema_ref=ref, metadata={"k": 1})
        got = index.get_entry(added.cid)
        [listed] = index.list_entries()
    for entry in (got, listed):
        assert "shards" not in entry.__dict__  # not built yet
        assert entry.data_urls == ["/d/a.tar", "/d/b.tar"]
        assert entry == added  # equality reads (and builds) the shards
        assert entry.shards == tuple(shards) and entry.__dict__["shards"] is entry.shards
        assert entry.splits == {"train": ["/d/a.tar"], "test": ["/d/b.tar"]}
    renamed = dataclasses.replace(listed, name="b")
    assert renamed.shards == tuple(shards) and renamed.metadata == {"k": 1}
    eager = LocalDatasetEntry("a", ref, ["/x.tar"])
    assert eager.shards == (ShardRecord("/x.tar"),)  # entries built by hand are unchanged


def test_data_urls_of_entries_read_from_the_index_are_one_list_of_their_own(tmp_path):
    from atdata_lite import packable

    @packable
    class P:
        x: int

    with Index(tmp_path / "index.db") as index:
        ref = index.publish_schema(P)
        index.add_shards(["/d/a.tar", "/d/b.tar"], name="a", schema_ref=ref)
        first, second = index.list_entries()[0], index.get_dataset("a")
        shards_first = index.get_dataset("a")
    assert first.data_urls is first.data_urls  # made once, then the entry's own
    first.data_urls.append("/d/c.tar")
    assert first.data_urls == ["/d/a.tar", "/d/b.tar", "/d/c.tar"]
    assert second.data_urls == ["/d/a.tar", "/d/b.tar"]  # another entry: untouched
    assert [s.url for s in shards_first.shards] == ["/d/a.tar", "/d/b.tar"]
    assert shards_first.data_urls == ["/d/a.tar", "/d/b.tar"]  # after the shards were built
