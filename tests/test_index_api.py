"""Index: every method of atdata's local.Index, on SQLite (core ones on PostgreSQL and Redis)."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import sys

import numpy as np
import pytest
from _index_helpers import BACKENDS, ImageSample, Point, TextSample, index_on, write_points

from atdata_lite.dataset import Dataset
from atdata_lite.errors import (
    DatasetExistsError,
    DatasetNotFoundError,
    InvalidSchemaRefError,
    SchemaConflictError,
    SchemaNotFoundError,
)
from atdata_lite.index import BasicIndexEntry, Index, LocalIndex
from atdata_lite.index.backend import ShardRecord
from atdata_lite.index.entries import LocalDatasetEntry, LocalSchemaRecord, SchemaNamespace
from atdata_lite.samples import packable

IMG_REF = "atdata://local/sampleSchema/ImageSample@1.0.0"


@pytest.fixture
def index(request, tmp_path):
    yield from index_on("sqlite", request, tmp_path)


@pytest.fixture(params=BACKENDS)
def any_index(request, tmp_path):
    yield from index_on(request.param, request, tmp_path)


# --- core methods on every backend -------------------------------------------------------


def test_publish_get_insert_list_on_every_backend(any_index):
    idx = any_index
    ref = idx.publish_schema(ImageSample, version="1.0.0")
    assert ref == IMG_REF
    assert idx.publish_schema(ImageSample) == "atdata://local/sampleSchema/ImageSample@1.0.1"

    schema = idx.get_schema(ref)
    assert list(schema) == ["name", "version", "fields", "description", "createdAt", "$ref"]
    assert schema["$ref"] == ref

    ds = Dataset[ImageSample]("data/shard-{000000..000002}.tar")
    entry = idx.insert_dataset(ds, name="images-train", schema_ref=ref, metadata={"n": 10})
    # Local paths are recorded absolute, whatever the working directory.
    assert entry.data_urls == [os.path.abspath(f"data/shard-00000{i}.tar") for i in range(3)]
    assert idx.get_dataset("images-train") == entry
    assert idx.get_entry(entry.cid) == entry
    assert idx.get_entry_by_name("images-train").metadata == {"n": 10}
    assert [e.name for e in idx.list_datasets()] == ["images-train"]
    assert [s["version"] for s in idx.list_schemas()] == ["1.0.0", "1.0.1"]

    with pytest.raises(KeyError, match="No entry with name: nope"):
        idx.get_dataset("nope")
    with pytest.raises(KeyError):
        idx.get_schema("atdata://local/sampleSchema/Nope@1.0.0")

    renamed = idx.rename_dataset("images-train", "images")
    assert renamed.cid == entry.cid and renamed.name == "images"
    assert idx.delete_dataset("images").cid == entry.cid
    assert idx.list_datasets() == []


# --- opening ---------------------------------------------------------------------------


def test_default_location_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ATDATA_LITE_INDEX", str(tmp_path / "env.db"))
    with Index() as idx:
        assert "env.db" in idx.location
    assert (tmp_path / "env.db").exists()


def test_home_directory_default(tmp_path, monkeypatch):
    monkeypatch.delenv("ATDATA_LITE_INDEX", raising=False)
    monkeypatch.setenv("ATDATA_LITE_HOME", str(tmp_path / "home"))
    with LocalIndex() as idx:
        idx.publish_schema(Point)
    assert (tmp_path / "home" / "index.db").exists()


def test_redis_client_positionally_or_by_keyword(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    with Index(client) as idx:
        assert idx.backend.kind == "redis"
        ref = idx.publish_schema(Point)
    with Index(redis=client) as idx:
        assert idx.get_schema(ref)["name"] == "Point"
    # atdata stored the schema as LocalSchema:{Name}@{version}.
    assert client.get("LocalSchema:Point@1.0.0") is not None
    client.close()


def test_not_a_location():
    with pytest.raises(TypeError, match=r"expected a path, a URL or a redis\.Redis client"):
        Index(42)


def test_close_is_idempotent_and_context_manager_closes(tmp_path):
    idx = Index(tmp_path / "i.db")
    with idx:
        idx.publish_schema(Point)
    idx.close()
    with Index(tmp_path / "i.db") as again:
        assert again.list_schemas()[0]["name"] == "Point"


def test_properties_without_store_or_stubs(index):
    assert index.data_store is None
    assert index.stub_dir is None
    assert isinstance(index.types, SchemaNamespace)
    assert index.get_import_path(index.publish_schema(Point)) is None
    assert index.clear_stubs() == 0
    assert "Index(" in repr(index)


# --- entries --------------------------------------------------------------------------


def test_entry_shape_is_atdatas(index):
    ref = index.publish_schema(Point)
    entry = index.add_entry(Dataset[Point]("a.tar"), name="a", schema_ref=ref)
    assert isinstance(entry, LocalDatasetEntry) and BasicIndexEntry is LocalDatasetEntry
    assert entry.wds_url == os.path.abspath("a.tar")
    assert entry.sample_kind == ref
    assert entry.metadata is None
    assert entry.shards == (ShardRecord(os.path.abspath("a.tar")),)
    assert entry.created_at is not None and entry.updated_at is not None
    fields = [f.name for f in __import__("dataclasses").fields(LocalDatasetEntry)]
    assert fields[:6] == ["name", "schema_ref", "data_urls", "metadata", "_cid", "_legacy_uuid"]
    from atdata_lite.protocols import IndexEntry

    assert isinstance(entry, IndexEntry)


def test_entries_listing_forms(index):
    ref = index.publish_schema(Point)
    for name in ["b", "a", "c"]:
        index.add_entry(Dataset[Point](f"{name}.tar"), name=name, schema_ref=ref)
    names = ["a", "b", "c"]
    assert [e.name for e in index.entries] == names
    assert [e.name for e in index.list_entries()] == names
    assert [e.name for e in index.all_entries] == names
    assert [e.name for e in index.datasets] == names
    assert [e.name for e in index.list_datasets()] == names


def test_get_entry_missing_message(index):
    with pytest.raises(KeyError) as info:
        index.get_entry("bafynope")
    # atdata's message first (code matches on it), then what to do.
    assert info.value.args == ("LocalDatasetEntry not found: bafynope",)
    assert str(info.value).startswith("LocalDatasetEntry not found: bafynope. ")
    assert "atdata-lite ls --json" in str(info.value)
    assert isinstance(info.value, DatasetNotFoundError)


def test_get_dataset_accepts_a_cid(index):
    entry = index.add_entry(Dataset[Point]("a.tar"), name="a")
    assert index.get_dataset(entry.cid).name == "a"


def test_empty_entry_and_legacy_cid_vector(index):
    index.publish_schema(ImageSample, version="1.0.0")
    entry = index.add_entry(
        Dataset[ImageSample]("s3://bucket/images/val-000000.tar"),
        name="images-val",
        schema_ref="local://schemas/__main__.ImageSample@1.0.0",
        metadata={"split": "val"},
    )
    # The reference's CID for this (legacy ref, one URL): identical to atdata's.
    assert entry.cid == "bafyreifzccyodhpaxk5q6hfbek3rxo4uv3yhtvhbg2qi4x5qaromzxbusi"
    assert entry.schema_ref == "local://schemas/__main__.ImageSample@1.0.0"
    assert index.decode_schema(entry.schema_ref).__name__ == "ImageSample"


def test_add_shards_records_sizes(index):
    ref = index.publish_schema(Point)
    shards = [ShardRecord("x-0.tar", 10, 2, "ab" * 32), "x-1.tar"]
    entry = index.add_shards(shards, name="x", schema_ref=ref, metadata={"k": "v"})
    assert entry.shards[0] == ShardRecord(os.path.abspath("x-0.tar"), 10, 2, "ab" * 32)
    assert entry.shards[1] == ShardRecord(os.path.abspath("x-1.tar"))
    assert index.get_dataset("x").shards == entry.shards


def test_on_conflict_policies(index):
    ref = index.publish_schema(Point)
    first = index.add_entry(Dataset[Point]("a.tar"), name="n", schema_ref=ref)
    # Identical content under the same name: never a conflict.
    assert index.add_entry(Dataset[Point]("a.tar"), name="n", schema_ref=ref) == first
    with pytest.raises(DatasetExistsError) as info:
        index.add_entry(Dataset[Point]("b.tar"), name="n", schema_ref=ref)
    assert isinstance(info.value, ValueError)
    skipped = index.add_entry(Dataset[Point]("b.tar"), name="n", schema_ref=ref, on_conflict="skip")
    assert skipped.data_urls == [os.path.abspath("a.tar")]
    replaced = index.insert_dataset(
        Dataset[Point]("b.tar"), name="n", schema_ref=ref, on_conflict="replace"
    )
    assert replaced.data_urls == [os.path.abspath("b.tar")]
    assert index.get_dataset("n").data_urls == [os.path.abspath("b.tar")]
    with pytest.raises(ValueError, match="on_conflict must be one of"):
        index.add_entry(Dataset[Point]("c.tar"), name="m", on_conflict="merge")  # type: ignore[arg-type]


def test_delete_and_rename_errors(index):
    with pytest.raises(KeyError, match="No entry with name: ghost"):
        index.delete_dataset("ghost")
    ref = index.publish_schema(Point)
    index.add_entry(Dataset[Point]("a.tar"), name="a", schema_ref=ref)
    index.add_entry(Dataset[Point]("b.tar"), name="b", schema_ref=ref)
    with pytest.raises(DatasetExistsError):
        index.rename_dataset("a", "b")
    with pytest.raises(KeyError):
        index.rename_dataset("ghost", "c")
    assert index.get_dataset("a").data_urls == [os.path.abspath("a.tar")]


def test_name_must_be_a_non_empty_string(index):
    with pytest.raises(ValueError, match="non-empty string"):
        index.add_entry(Dataset[Point]("a.tar"), name="")


# --- schemas ---------------------------------------------------------------------------


def test_publish_schema_versions(index):
    assert index.publish_schema(Point) == "atdata://local/sampleSchema/Point@1.0.0"
    assert index.publish_schema(Point) == "atdata://local/sampleSchema/Point@1.0.1"
    assert index.publish_schema(Point, version="1.10.0").endswith("@1.10.0")
    assert index.publish_schema(Point).endswith("@1.10.1")  # numeric, not string, order


def test_explicit_versions_must_be_semver(index):
    for bad in ["banana", "2.0", "1.0.0-rc1"]:
        with pytest.raises(InvalidSchemaRefError, match="Invalid semver format") as info:
            index.publish_schema(Point, version=bad)
        assert isinstance(info.value, ValueError)
    assert index.list_schemas() == []


def test_published_versions_are_immutable(index):
    ref = index.publish_schema(Point, version="2.0.0", description="first")
    before = index.get_schema(ref)
    # Identical content (a different description is not content): the existing ref.
    assert index.publish_schema(Point, version="2.0.0", description="other") == ref
    assert index.get_schema(ref) == before

    class Other:
        x: int
        z: str

    Other.__name__ = Other.__qualname__ = "Point"  # same name, other fields
    other = packable(Other)
    with pytest.raises(SchemaConflictError) as info:
        index.publish_schema(other, version="2.0.0")
    assert isinstance(info.value, ValueError)
    assert index.get_schema(ref) == before


def test_publish_schema_type_errors(index):
    class Plain:
        x: int

    with pytest.raises(TypeError, match="does not satisfy the Packable protocol"):
        index.publish_schema(Plain)
    with pytest.raises(TypeError, match="sample_type must be a class, got int"):
        index.publish_schema(42)  # type: ignore[arg-type]


def test_get_schema_ref_forms_and_errors(index):
    index.publish_schema(ImageSample, version="1.0.1")
    legacy = index.get_schema("local://schemas/any.module.path.ImageSample@1.0.1")
    assert legacy["$ref"] == "atdata://local/sampleSchema/ImageSample@1.0.1"
    with pytest.raises(KeyError) as info:
        index.get_schema("atdata://local/sampleSchema/Nope@1.0.0")
    message = str(info.value)
    assert message.startswith("Schema not found: atdata://local/sampleSchema/Nope@1.0.0. ")
    assert "atdata-lite schemas" in message
    with pytest.raises(ValueError, match="must include version"):
        index.get_schema("atdata://local/sampleSchema/ImageSample")
    for bad in ["foo://bar", "at://did:plc:x/ac.foundation.dataset.sampleSchema/abc"]:
        with pytest.raises(ValueError, match="Invalid schema reference"):
            index.get_schema(bad)


def test_get_schema_record_and_schemas(index):
    ref = index.publish_schema(ImageSample)
    index.publish_schema(TextSample, description="Tokenized text")
    record = index.get_schema_record(ref)
    assert isinstance(record, LocalSchemaRecord)
    assert record["name"] == "ImageSample" and record.ref == ref
    assert record["description"] == "An image with a label."
    assert record.created_at is not None
    assert "$ref" in record and "bogus" not in record
    assert record.keys()[:4] == ["name", "version", "fields", "$ref"]
    assert dict(record.items())["version"] == "1.0.0"

    listed = index.list_schemas()
    assert [s["name"] for s in listed] == ["ImageSample", "TextSample"]
    assert list(listed[0]) == ["name", "version", "fields", "$ref", "description", "createdAt"]
    # TextSample has no docstring: no description key (atdata drops falsy ones).
    text = index.get_schema_record("atdata://local/sampleSchema/TextSample@1.0.0").to_dict()
    assert text["description"] == "Tokenized text"
    assert all(isinstance(s, LocalSchemaRecord) for s in index.schemas)


def test_decode_load_types(index):
    ref = index.publish_schema(TextSample)
    cls = index.decode_schema(ref)
    assert index.decode_schema(ref) is cls  # cached
    assert index.decode_schema_as(ref, TextSample) is cls
    sample = cls(text="a", tokens=[1, 2], embedding=np.arange(2.0))
    back = cls.from_bytes(sample.packed)
    assert back.tokens == [1, 2] and back.raw == b"" and back.embedding.tolist() == [0.0, 1.0]
    # Same wire format as the original class.
    original = TextSample.from_bytes(sample.packed)
    assert original.text == "a"

    with pytest.raises(AttributeError, match="Schema 'TextSample' not loaded"):
        index.types.TextSample  # noqa: B018
    loaded = index.load_schema(ref)
    assert index.types.TextSample is loaded
    assert "TextSample" in index.types and len(index.types) == 1
    assert list(index.types) == ["TextSample"]
    assert repr(index.types) == "SchemaNamespace(TextSample)"
    assert index.types.get("Nope") is None
    with pytest.raises(AttributeError, match="has no attribute '_x'"):
        index.types._x  # noqa: B018


def test_decode_schema_errors(index):
    with pytest.raises(KeyError):
        index.decode_schema("atdata://local/sampleSchema/Nope@1.0.0")
    with pytest.raises(ValueError):
        index.decode_schema("garbage")


# --- inserting datasets ------------------------------------------------------------------


def test_insert_without_store_indexes_every_shard(index, tmp_path):
    pattern = write_points(tmp_path / "pts", shards=3)
    ds = Dataset[Point](pattern)
    entry = index.insert_dataset(ds, name="pts")
    assert len(entry.data_urls) == 3
    assert entry.data_urls == ds.list_shards()
    # The entry reads back as the same data.
    again = Dataset[index.decode_schema(entry.schema_ref)](entry.data_urls)
    assert sorted(s.x for s in again.ordered()) == list(range(6))


def test_insert_without_store_refuses_writer_options(index):
    with pytest.raises(TypeError, match="no data_store"):
        index.insert_dataset(Dataset[Point]("a.tar"), name="a", maxcount=10)


def test_metadata_falls_back_to_dataset_metadata(index):
    ds = Dataset[Point]("a.tar")
    ds._metadata = {"from": "dataset"}
    assert index.add_entry(ds, name="a").metadata == {"from": "dataset"}
    ds2 = Dataset[Point]("b.tar")
    ds2._metadata = {"from": "dataset"}
    assert index.insert_dataset(ds2, name="b", metadata={"x": 1}).metadata == {"x": 1}


def test_metadata_round_trips_exactly(any_index):
    meta = {
        "source": "wiki",
        "size_bytes": 123456789,
        "ratio": 0.5,
        "nested": {"a": [1, 2]},
        "blob": b"\x00\xff",
        "none": None,
        "flag": True,
        "big": 2**64 - 1,
        "neg": -(2**63),
        "unicode": "é✓",
    }
    entry = any_index.add_entry(Dataset[Point]("m.tar"), name="m", metadata=meta)
    assert entry.metadata == meta
    assert any_index.get_dataset("m").metadata == meta
    assert any_index.list_datasets()[0].metadata == meta


def test_metadata_bytes_are_atdatas(index):
    import msgpack

    meta = {"split": "train", "n": 10, "classes": ["cat", "dog"]}
    index.add_entry(Dataset[Point]("a.tar"), name="a", metadata=meta)
    stored = index.backend.get_dataset("a").metadata
    assert stored.hex() == "83a573706c6974a5747261696ea16e0aa7636c617373657392a3636174a3646f67"
    assert msgpack.unpackb(stored) == meta


def test_hot_path_imports_nothing_heavy(tmp_path):
    import subprocess

    db = tmp_path / "hot.db"
    with Index(db) as idx:
        idx.add_entry(Dataset[Point]("a.tar"), name="a", metadata={"k": [1]})
    code = (
        "import sys\n"
        "from atdata_lite import Index\n"
        f"idx = Index({str(db)!r})\n"
        "e = idx.get_dataset('a')\n"
        "assert e.metadata == {'k': [1]}, e\n"
        "idx.list_datasets(); idx.get_entry(e.cid)\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('numpy', 'webdataset', 'fsspec', 'alembic'))\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_schema_json_is_atdatas_format(index):
    ref = index.publish_schema(ImageSample, version="1.0.0")
    raw = index.backend.get_schema("ImageSample", "1.0.0").record_json
    assert raw.startswith('{"name": "ImageSample", "version": "1.0.0", "fields": [{"name": ')
    assert "$ref" not in raw
    assert json.loads(raw)["fields"][0]["fieldType"] == {"$type": "local#ndarray", "dtype": "any"}
    assert index.get_schema(ref)["fields"] == json.loads(raw)["fields"]


def test_missing_schema_ref_is_refused(index):
    with pytest.raises(SchemaNotFoundError) as info:
        index.add_entry(
            Dataset[Point]("a.tar"), name="a", schema_ref="atdata://local/sampleSchema/Point@9.9.9"
        )
    assert isinstance(info.value, KeyError)
    assert index.list_datasets() == []


def test_listed_entries_decode_metadata_once_and_behave_as_dataclasses(index):
    # Entries read from the index decode their metadata on first use; nothing else may tell.
    meta = {"split": "train", "n": 3, "blob": b"\x00"}
    index.add_shards(["s.tar"], name="d", schema_ref=index.publish_schema(Point), metadata=meta)
    [listed] = index.list_datasets()
    assert "metadata" not in vars(listed)  # not decoded by listing
    twin = pickle.loads(pickle.dumps(listed))  # DataLoader workers get entries this way
    assert listed.metadata == meta and twin.metadata == meta
    assert vars(listed)["metadata"] is listed.metadata  # decoded once, then kept
    assert listed == dataclasses.replace(listed, metadata=dict(meta)) and "split" in repr(listed)
    assert listed != dataclasses.replace(listed, metadata={"split": "test"})
    assert dataclasses.replace(listed, name="e").metadata == meta
    assert LocalDatasetEntry("x", "r", []).metadata is None  # the default is unchanged


# --- "not found" messages say what to do ------------------------------------------------


def test_missing_name_suggests_close_names_and_how_to_list(any_index):
    for name in ("images-train", "images-test", "texts"):
        any_index.add_entry(Dataset[Point](f"{name}.tar"), name=name)
    for call in (any_index.get_dataset, any_index.get_entry_by_name, any_index.delete_dataset):
        with pytest.raises(KeyError, match=r"^No entry with name: images-trian\. ") as info:
            call("images-trian")
        message = str(info.value)
        assert "Did you mean 'images-train'" in message and "texts" not in message
        assert "atdata-lite ls" in message
    with pytest.raises(DatasetNotFoundError, match=r"^No entry with name: nope\. ") as info:
        any_index.rename_dataset("nope", "other")
    assert "Did you mean" not in str(info.value) and "atdata-lite ls" in str(info.value)


def test_missing_name_in_an_empty_index_says_how_to_add(index):
    with pytest.raises(KeyError) as info:
        index.get_dataset("anything")
    assert str(info.value).startswith("No entry with name: anything. ")
    assert "add_entry" in str(info.value)


def test_name_given_as_a_cid_says_to_look_it_up_by_name(index):
    index.add_entry(Dataset[Point]("a.tar"), name="mnist")
    with pytest.raises(KeyError) as info:
        index.get_entry("mnist")
    assert str(info.value).startswith("LocalDatasetEntry not found: mnist. ")
    assert "get_dataset('mnist')" in str(info.value)


def test_missing_schema_lists_published_versions_or_close_names(index):
    index.publish_schema(ImageSample, version="1.0.0")
    index.publish_schema(ImageSample, version="1.2.0")
    with pytest.raises(KeyError) as info:
        index.get_schema("atdata://local/sampleSchema/ImageSample@2.0.0")
    assert "Published versions of ImageSample: 1.0.0, 1.2.0" in str(info.value)
    with pytest.raises(KeyError) as info:
        index.get_schema("atdata://local/sampleSchema/ImageSampel@1.0.0")
    assert "Did you mean 'ImageSample'?" in str(info.value)


def test_the_hint_costs_nothing_until_read_and_survives_pickling(index):
    index.add_entry(Dataset[Point]("a.tar"), name="images")
    with pytest.raises(KeyError) as info:
        index.get_dataset("imagse")
    error = info.value
    # A closed index cannot be asked any more: the message then stands alone.
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error) and "Did you mean 'images'" in str(copy)
    with pytest.raises(KeyError) as info:
        index.get_dataset("imagse")
    index.close()
    assert str(info.value) == "No entry with name: imagse"
