"""Each defect of atdata 0.2's local index, fixed in atdata-lite, with its own test."""

from __future__ import annotations

import multiprocessing
import os
import threading

import msgpack
import numpy as np
import pytest
from _index_helpers import BACKENDS, ImageSample, Point, TextSample, index_on, write_points

from atdata_lite.dataset import Dataset
from atdata_lite.errors import (
    DatasetExistsError,
    InvalidMetadataError,
    InvalidSchemaRefError,
    SchemaConflictError,
    SchemaNotFoundError,
)
from atdata_lite.index import Index
from atdata_lite.index.backend import DatasetRecord, ShardRecord
from atdata_lite.samples import packable
from atdata_lite.sources import URLSource


@pytest.fixture
def index(request, tmp_path):
    yield from index_on("sqlite", request, tmp_path)


@pytest.fixture(params=BACKENDS)
def any_index(request, tmp_path):
    yield from index_on(request.param, request, tmp_path)


# Names are unique; on_conflict decides.
def test_names_are_unique(any_index):
    any_index.add_entry(Dataset[Point]("a.tar"), name="second")
    with pytest.raises(DatasetExistsError, match="second"):
        any_index.add_entry(Dataset[Point]("b.tar"), name="second")
    assert [e.data_urls for e in any_index.list_datasets()] == [[os.path.abspath("a.tar")]]


# The same shards under another name never rename or overwrite the first entry, and a
# replace replaces the whole row (no stale metadata survives).
def test_same_content_under_another_name_keeps_the_first(any_index):
    first = any_index.add_entry(Dataset[Point]("a.tar"), name="first", metadata={"m": 1})
    with pytest.raises(DatasetExistsError, match="first"):
        any_index.add_entry(Dataset[Point]("a.tar"), name="other")
    with pytest.raises(DatasetExistsError):
        any_index.add_entry(Dataset[Point]("a.tar"), name="other", on_conflict="replace")
    skipped = any_index.add_entry(Dataset[Point]("a.tar"), name="other", on_conflict="skip")
    assert skipped.name == "first"
    assert [e.name for e in any_index.list_datasets()] == ["first"]
    assert any_index.get_dataset("first").metadata == first.metadata == {"m": 1}


def test_replace_drops_old_metadata(any_index):
    any_index.add_entry(Dataset[Point]("a.tar"), name="n", metadata={"old": True})
    replaced = any_index.add_entry(
        Dataset[Point]("b.tar"), name="n", metadata=None, on_conflict="replace"
    )
    assert replaced.metadata is None
    assert any_index.get_dataset("n").metadata is None


# Auto-versioning is atomic; explicit versions never overwrite.
def test_concurrent_auto_versioning_gives_distinct_versions(any_index):
    refs: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(16)

    def publish() -> None:
        try:
            barrier.wait()
            refs.append(any_index.publish_schema(Point))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=publish) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(refs)) == 16
    versions = sorted(r.rsplit("@", 1)[1] for r in refs)
    assert versions == sorted(f"1.0.{i}" for i in range(16))


def _publish_in_process(location: str, queue) -> None:
    with Index(location) as idx:
        queue.put(idx.publish_schema(Point))


def test_concurrent_auto_versioning_across_processes(tmp_path):
    location = str(tmp_path / "procs.db")
    Index(location).close()  # created once; the processes only publish
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_publish_in_process, args=(location, queue)) for _ in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert all(p.exitcode == 0 for p in procs)
    refs = {queue.get(timeout=5) for _ in procs}
    assert len(refs) == 8


def test_explicit_version_never_overwrites(index):
    ref = index.publish_schema(Point, version="1.0.0")

    class Other:
        a: str

    Other.__name__ = Other.__qualname__ = "Point"
    with pytest.raises(SchemaConflictError, match=r"1\.0\.0"):
        index.publish_schema(packable(Other), version="1.0.0")
    assert [f["name"] for f in index.get_schema(ref)["fields"]] == ["x", "y"]


# Versions must be semver.
def test_banana_is_refused(index):
    with pytest.raises(ValueError, match="Invalid semver format: 'banana'"):
        index.publish_schema(Point, version="banana")


# Insert without a ref uses the schema matching the sample type's content.
def test_insert_without_ref_uses_matching_schema(any_index):
    any_index.publish_schema(ImageSample, version="1.0.0")
    any_index.publish_schema(ImageSample)  # 1.0.1, same content

    class Changed:
        image: int

    Changed.__name__ = Changed.__qualname__ = "ImageSample"
    assert any_index.publish_schema(packable(Changed)).endswith("@1.0.2")  # other content

    entry = any_index.insert_dataset(Dataset[ImageSample]("i.tar"), name="imgs")
    assert entry.schema_ref == "atdata://local/sampleSchema/ImageSample@1.0.1"


def test_insert_without_ref_publishes_when_needed(any_index):
    entry = any_index.insert_dataset(Dataset[TextSample]("t.tar"), name="text")
    assert entry.schema_ref == "atdata://local/sampleSchema/TextSample@1.0.0"
    assert any_index.get_schema(entry.schema_ref)["name"] == "TextSample"
    # A second dataset of the same type reuses it (no new version).
    again = any_index.add_entry(Dataset[TextSample]("t2.tar"), name="text2")
    assert again.schema_ref == entry.schema_ref
    assert len(any_index.list_schemas()) == 1


def test_insert_with_ref_to_missing_or_garbage_schema_is_refused(index):
    with pytest.raises(SchemaNotFoundError, match="Publish it first"):
        index.insert_dataset(
            Dataset[Point]("p.tar"),
            name="p",
            schema_ref="atdata://local/sampleSchema/Point@1.0.0",
        )
    with pytest.raises(InvalidSchemaRefError):
        index.insert_dataset(Dataset[Point]("p.tar"), name="p", schema_ref="!!garbage!!")
    assert index.list_datasets() == []


def test_dict_sample_dataset_needs_a_ref(index):
    with pytest.raises(TypeError, match="schema_ref"):
        index.insert_dataset(Dataset("p.tar"), name="p")


# Metadata that would not read back equal is refused before anything is written.
@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({1: "x"}, "non-string key 1"),
        ({"nested": {2: "x"}}, r"metadata\['nested'\] has the non-string key 2"),
        ({"s": {1, 2}}, "is a set"),
        ({"t": (1, 2)}, "tuple"),
        ({"f": np.float32(1.0)}, r"numpy float32.*\.item\(\)"),
        ({"f": np.float64(1.0)}, "numpy float64"),
        ({"a": np.arange(3)}, r"\.tolist\(\)"),
        ({"o": object()}, "builtins.object"),
        ({"big": 2**64}, "outside msgpack's range"),
        (["not", "a", "dict"], "Pass a dict"),
    ],
)
def test_bad_metadata_is_refused_before_writing(index, metadata, message):
    with pytest.raises(InvalidMetadataError, match=message) as info:
        index.add_entry(Dataset[Point]("a.tar"), name="a", metadata=metadata)
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)
    assert index.list_datasets() == []
    assert index.list_schemas() == []  # nothing was published either


def test_atdata_int_keyed_metadata_still_reads(index):
    ref = index.publish_schema(Point)
    record = DatasetRecord(
        cid="bafyreiexample",
        name="legacy",
        schema_ref=ref,
        shards=(ShardRecord("l.tar"),),
        metadata=msgpack.packb({1: "x"}, use_bin_type=True),
    )
    index.backend.insert_datasets([record])
    assert index.get_dataset("legacy").metadata == {1: "x"}


# A bad row never breaks listing the rest.
def test_bad_row_does_not_break_listing(any_index, caplog):
    any_index.add_entry(Dataset[Point]("a.tar"), name="a")
    ref = any_index.publish_schema(Point)
    broken = DatasetRecord(
        cid="bafyreibroken",
        name="b-broken",
        schema_ref=ref,
        shards=(ShardRecord("b.tar"),),
        metadata=b"\xc1",  # never valid msgpack
    )
    any_index.backend.insert_datasets([broken])
    any_index.add_entry(Dataset[Point]("c.tar"), name="c")
    # The broken entry is listed (it can be seen and removed); only its metadata fails,
    # naming it and the repair, and the entries after it are untouched.
    listed = any_index.list_datasets()
    assert [e.name for e in listed] == ["a", "b-broken", "c"]
    assert [e.metadata for e in listed if e.name != "b-broken"] == [None, None]
    with pytest.raises(InvalidMetadataError, match=r"'b-broken'.*on_conflict='replace'"):
        _ = listed[1].metadata
    entry = any_index.get_dataset("b-broken")
    assert entry.data_urls == ["b.tar"]
    with pytest.raises(InvalidMetadataError):
        _ = entry.metadata
    assert any_index.delete_dataset("b-broken").name == "b-broken"
    assert [e.name for e in any_index.list_datasets()] == ["a", "c"]


# A multi-shard source is indexed with every shard.
def test_every_shard_is_indexed(index, tmp_path):
    pattern = write_points(tmp_path / "d", shards=3)
    by_pattern = index.add_entry(Dataset[Point](pattern), name="pattern")
    assert len(by_pattern.data_urls) == 3
    urls = by_pattern.data_urls
    by_source = index.add_entry(
        Dataset[Point](URLSource(list(reversed(urls)))), name="source", on_conflict="error"
    )
    assert by_source.data_urls == list(reversed(urls))


# Decoded types keep defaults and order; the cache keys on the whole record.
def test_decoded_type_keeps_defaults_and_order(index):
    cls = index.decode_schema(index.publish_schema(TextSample))
    sample = cls(text="x", tokens=[])
    assert (sample.raw, sample.flag, sample.count, sample.embedding) == (b"", False, 0, None)
    import dataclasses

    assert [f.name for f in dataclasses.fields(cls)] == [
        "text",
        "tokens",
        "embedding",
        "raw",
        "flag",
        "count",
    ]


def test_cache_distinguishes_field_types(index):
    @packable
    class V:
        x: int

    ref_int = index.publish_schema(V)

    class V2:
        x: str

    V2.__name__ = V2.__qualname__ = "V"
    ref_str = index.publish_schema(packable(V2))
    a, b = index.decode_schema(ref_int), index.decode_schema(ref_str)
    assert a is not b
    assert a.__dataclass_fields__["x"].type is int
    assert b.__dataclass_fields__["x"].type is str


# Zero-field types are refused at publish.
def test_zero_field_type_is_refused(index):
    import dataclasses

    from atdata_lite.samples import PackableSample

    @dataclasses.dataclass
    class Empty(PackableSample):
        pass

    with pytest.raises(TypeError, match="no fields"):
        index.publish_schema(Empty)
    assert index.list_schemas() == []
