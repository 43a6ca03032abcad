"""FsspecDataStore: atdata's AbstractDataStore over fsspec."""

from __future__ import annotations

import re

import pytest
from _data_helpers import Row, rows

from atdata_lite.dataset import Dataset
from atdata_lite.errors import InvalidPrefixError, UnsafeURLError
from atdata_lite.samples import sample_key
from atdata_lite.shards import inspect_shard, write_samples
from atdata_lite.stores import FsspecDataStore, default_store, validate_prefix

NAME = re.compile(
    r"/data--[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}--\d{6}\.tar$"
)


@pytest.fixture
def source(tmp_path):
    write_samples(rows(12), str(tmp_path / "src-%d.tar"), maxcount=5)
    return Dataset[Row](str(tmp_path / "src-{0..2}.tar"))


def test_write_shards_names_and_keeps_keys(tmp_path, source):
    store = FsspecDataStore(str(tmp_path / "store"))
    urls = store.write_shards(source, prefix="team/mnist/v1", maxcount=4)
    assert len(urls) == 3
    for u in urls:
        assert u.startswith(str(tmp_path / "store" / "team/mnist/v1"))
        assert NAME.search(u)
    assert len({u.split("--")[1] for u in urls}) == 1  # one uuid per write
    copied = list(Dataset[Row](urls).ordered())
    assert [s.idx for s in copied] == list(range(12))
    assert [sample_key(s) for s in copied] == [sample_key(s) for s in source.ordered()]


def test_write_dataset_returns_records(tmp_path, source):
    store = FsspecDataStore(f"file://{tmp_path}/store")
    records = store.write_dataset(source, prefix="p")
    assert [r.sample_count for r in records] == [12]
    assert inspect_shard(records[0].url) == records[0]


def test_empty_dataset_writes_no_shard(tmp_path):
    (tmp_path / "empty").mkdir()
    write_samples([], str(tmp_path / "e-%d.tar"))
    store = FsspecDataStore("memory://empty-store")
    empty = Dataset[Row]([])
    assert store.write_shards(empty, prefix="x") == []


def test_memory_store(source):
    store = FsspecDataStore("memory://store-test/root/")
    urls = store.write_shards(source, prefix="a")
    assert urls[0].startswith("memory://store-test/root/a/data--")
    assert store.read_url(urls[0]) == urls[0] and store.supports_streaming()


@pytest.mark.s3
def test_s3_store(s3_bucket, source):
    bucket, options = s3_bucket
    store = FsspecDataStore(f"{bucket}/datasets", storage_options=options)
    records = store.write_dataset(source, prefix="mnist/v1", maxcount=5)
    assert [r.sample_count for r in records] == [5, 5, 2]
    assert records[0].url.startswith(f"{bucket}/datasets/mnist/v1/data--")
    ds = Dataset[Row]([r.url for r in records], storage_options=options)
    assert [s.idx for s in ds.ordered()] == list(range(12))


@pytest.mark.parametrize(
    "prefix",
    [
        "../escape",
        "a/../../b",
        "a/./b",
        "/abs/path",
        "C:/windows",
        "a\\b",
        "",
        "/",
        "s3://other/bucket",
        "a b",
        "a/%06d",
        "a/{0..9}",
        "a/*",
        "a\nb",
        "images/v1\n",
        "v1\n/x",
        "a//b",
        "~/home",
    ],
)
def test_bad_prefix_is_refused_before_writing(tmp_path, source, prefix):
    store = FsspecDataStore(str(tmp_path / "store"))
    with pytest.raises(InvalidPrefixError, match="Invalid prefix"):
        store.write_shards(source, prefix=prefix)
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("prefix", ["a", "a/b/c", "v1.2", "x_y-z=1+2@3", "trailing/"])
def test_good_prefixes(prefix):
    assert validate_prefix(prefix) == prefix.strip("/")


def test_pipe_root_refused():
    with pytest.raises(UnsafeURLError):
        FsspecDataStore("pipe:cat")


def test_default_store_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ATDATA_LITE_STORE", str(tmp_path / "envstore"))
    assert default_store().root_url == str(tmp_path / "envstore")
