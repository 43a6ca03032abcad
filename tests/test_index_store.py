"""Index.insert_dataset through a data store: local directory and S3 (moto server)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from _index_helpers import Point, index_on, write_points

from atdata_lite.dataset import Dataset
from atdata_lite.errors import DatasetExistsError, InvalidMetadataError
from atdata_lite.index import Index
from atdata_lite.shards import inspect_shard
from atdata_lite.stores import FsspecDataStore


@pytest.fixture
def source(tmp_path) -> Dataset:
    return Dataset[Point](write_points(tmp_path / "src", shards=2, per_shard=5))


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.tar")) if root.exists() else []


def test_insert_writes_through_the_store_with_sizes_and_hashes(tmp_path, source):
    store_root = tmp_path / "store"
    with Index(tmp_path / "i.db", data_store=FsspecDataStore(str(store_root))) as idx:
        entry = idx.insert_dataset(source, name="pts", maxcount=4, metadata={"k": 1})
        assert idx.data_store.root_url == str(store_root)
    assert len(entry.shards) == 3  # 10 samples, at most 4 per shard
    assert [s.sample_count for s in entry.shards] == [4, 4, 2]
    for shard in entry.shards:
        assert shard.url.startswith(str(store_root / "pts") + "/data--")
        assert inspect_shard(shard.url) == shard
    assert entry.metadata == {"k": 1}
    again = Dataset[Point](entry.data_urls)
    assert sorted(s.x for s in again.ordered()) == list(range(10))


def test_store_given_as_a_path_and_custom_prefix(tmp_path, source):
    with Index(tmp_path / "i.db", data_store=str(tmp_path / "store")) as idx:
        entry = idx.insert_dataset(source, name="pts", prefix="team/pts")
    assert entry.data_urls[0].startswith(str(tmp_path / "store" / "team" / "pts"))


def test_nothing_is_written_when_metadata_is_bad(tmp_path, source):
    store_root = tmp_path / "store"
    with Index(tmp_path / "i.db", data_store=str(store_root)) as idx:
        with pytest.raises(InvalidMetadataError):
            idx.insert_dataset(source, name="pts", metadata={"s": {1}})
        assert idx.list_datasets() == []
    assert _files(store_root) == []


def test_name_conflict_is_found_before_writing(tmp_path, source):
    store_root = tmp_path / "store"
    with Index(tmp_path / "i.db", data_store=str(store_root)) as idx:
        first = idx.insert_dataset(source, name="pts")
        written = _files(store_root)
        with pytest.raises(DatasetExistsError, match="pts"):
            idx.insert_dataset(source, name="pts")
        assert _files(store_root) == written
        assert idx.insert_dataset(source, name="pts", on_conflict="skip") == first
        assert _files(store_root) == written
        replaced = idx.insert_dataset(source, name="pts", on_conflict="replace")
        assert replaced.data_urls != first.data_urls
        assert idx.get_dataset("pts").data_urls == replaced.data_urls


class _RacingStore(FsspecDataStore):
    """A store during whose write another writer takes the name (a real race, replayed)."""

    index: Index

    def write_dataset(self, ds, *, prefix, **options):
        records = super().write_dataset(ds, prefix=prefix, **options)
        self.index.add_entry(Dataset[Point]("elsewhere.tar"), name=prefix)
        return records


def test_shards_are_removed_when_the_entry_cannot_be_stored(tmp_path, source):
    store = _RacingStore(str(tmp_path / "store"))
    with Index(tmp_path / "i.db", data_store=store) as idx:
        store.index = idx
        with pytest.raises(DatasetExistsError):
            idx.insert_dataset(source, name="pts")
        assert idx.get_dataset("pts").data_urls == [os.path.abspath("elsewhere.tar")]
    assert _files(tmp_path / "store") == []


class _AtdataStyleStore:
    """An atdata AbstractDataStore: write_shards only, takes cache_local."""

    def __init__(self, root: Path) -> None:
        self.inner = FsspecDataStore(str(root))
        self.calls: list[dict] = []

    def write_shards(self, ds, *, prefix, cache_local=False, **kwargs):
        self.calls.append({"prefix": prefix, "cache_local": cache_local, **kwargs})
        return self.inner.write_shards(ds, prefix=prefix, **kwargs)

    def read_url(self, url):
        return url

    def supports_streaming(self):
        return True


def test_atdata_style_store(tmp_path, source):
    store = _AtdataStyleStore(tmp_path / "store")
    with Index(tmp_path / "i.db", data_store=store) as idx:
        entry = idx.insert_dataset(source, name="pts", cache_local=True, maxcount=100)
    assert store.calls == [{"prefix": "pts", "cache_local": True, "maxcount": 100}]
    assert len(entry.data_urls) == 1 and entry.shards[0].size is None


@pytest.mark.s3
def test_insert_into_s3(tmp_path, source, s3_bucket):
    bucket_url, options = s3_bucket
    store = FsspecDataStore(f"{bucket_url}/datasets", storage_options=options)
    with Index(tmp_path / "i.db", data_store=store) as idx:
        entry = idx.insert_dataset(source, name="pts", maxcount=5)
    assert [s.sample_count for s in entry.shards] == [5, 5]
    assert all(u.startswith(f"{bucket_url}/datasets/pts/data--") for u in entry.data_urls)
    back = Dataset[Point](entry.data_urls, storage_options=options)
    assert sorted(s.x for s in back.ordered()) == list(range(10))


@pytest.mark.postgres
def test_insert_through_store_on_postgres(request, tmp_path, source):
    for idx in index_on("postgres", request, tmp_path):
        idx._data_store = FsspecDataStore(str(tmp_path / "store"))
        entry = idx.insert_dataset(source, name="pts")
        assert idx.get_dataset("pts").shards == entry.shards
        assert entry.shards[0].sha256 is not None
