"""Dataset[T]: reading on local disk, memory:// and S3; policies; atdata compatibility."""

from __future__ import annotations

import importlib.util
import re
import warnings

import msgpack
import numpy as np
import pytest
from _data_helpers import Row, rows, write_atdata_shard

from atdata_lite import lens
from atdata_lite.dataset import Dataset
from atdata_lite.errors import (
    CorruptShardError,
    SampleDecodeError,
    ShardNotFoundError,
    UnsafeURLError,
)
from atdata_lite.protocols import DataSource
from atdata_lite.samples import DictSample, SampleBatch, packable, sample_key
from atdata_lite.shards import write_samples
from atdata_lite.sources import URLSource, open_url


@packable
class Small:
    idx: int


@lens
def row_to_small(r: Row) -> Small:
    return Small(idx=r.idx * 100)


def _idx(it) -> list[int]:
    return [s.idx for s in it]


@pytest.fixture
def local_shards(tmp_path):
    write_samples(rows(23), str(tmp_path / "s-%03d.tar"), maxcount=5)
    return str(tmp_path / "s-{000..004}.tar")


def test_read_brace_pattern_in_order(local_shards):
    ds = Dataset[Row](local_shards)
    assert ds.sample_type is Row and ds.url == local_shards
    assert len(ds.list_shards()) == 5
    got = list(ds.ordered())
    assert _idx(got) == list(range(23))
    assert isinstance(got[3].vec, np.ndarray) and got[3].vec.dtype == np.float32
    assert _idx(ds.ordered()) == list(range(23))  # re-iterable


def test_list_of_urls_and_data_source(local_shards):
    urls = URLSource(local_shards).list_shards()
    assert _idx(Dataset[Row](urls[::-1]).ordered())[:3] == [20, 21, 22]
    src = URLSource(urls[:2])
    assert isinstance(src, DataSource)
    ds = Dataset[Row](src)
    assert ds.source is src and _idx(ds.ordered()) == list(range(10))


def test_batches_keep_the_short_last_batch(local_shards):
    batches = list(Dataset[Row](local_shards).ordered(batch_size=10))
    assert [len(b) for b in batches] == [10, 10, 3]
    assert isinstance(batches[0], SampleBatch)
    assert batches[0].vec.shape == (10, 3) and batches[2].idx == [20, 21, 22]


@pytest.mark.parametrize("how", ["ordered", "shuffled"])
def test_an_iteration_can_be_closed_early(local_shards, how):
    # a generator: close() ends it at once and lets the shard go (as a break does)
    it = iter(getattr(Dataset[Row](local_shards), how)())
    next(it)
    it.close()
    with pytest.raises(StopIteration):
        next(it)


def test_shuffled_is_a_permutation_and_reproducible_with_a_seed(local_shards):
    ds = Dataset[Row](local_shards)
    a = _idx(ds.shuffled(buffer_samples=8, seed=7))
    b = _idx(ds.shuffled(buffer_samples=8, seed=7))
    c = _idx(ds.shuffled(buffer_samples=8, seed=8))
    assert sorted(a) == list(range(23))
    assert a == b and a != c and a != list(range(23))


def test_shuffled_batches(local_shards):
    batches = list(Dataset[Row](local_shards).shuffled(batch_size=4, seed=1))
    assert sorted(i for b in batches for i in b.idx) == list(range(23))


def test_split_by_worker_and_node_without_torch(local_shards, monkeypatch):
    ds = Dataset[Row](local_shards)
    seen = []
    for worker in range(2):
        monkeypatch.setenv("WORKER", str(worker))
        monkeypatch.setenv("NUM_WORKERS", "2")
        seen.append(_idx(ds.ordered()))
    assert sorted(seen[0] + seen[1]) == list(range(23))
    assert not set(seen[0]) & set(seen[1])
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("WORKER", "0")
    monkeypatch.setenv("NUM_WORKERS", "1")
    assert _idx(ds.shuffled(seed=3)) and set(_idx(ds.ordered())) == set(range(5, 10)) | set(
        range(15, 20)
    )


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
# More workers than this machine's 2 cores, on purpose: torch only warns about it.
@pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")
def test_torch_dataloader_with_workers(local_shards):
    import torch.utils.data

    loader = torch.utils.data.DataLoader(
        Dataset[Row](local_shards).ordered(), num_workers=3, batch_size=None
    )
    assert sorted(s.idx for s in loader) == list(range(23))


def test_as_type_identity_lens_and_chain(local_shards):
    ds = Dataset[Row](local_shards, metadata_url="memory://meta/x.msgpack")
    same = ds.as_type(Row)
    assert _idx(same.ordered()) == list(range(23))
    small = ds.as_type(Small)
    assert small.sample_type is Small and small.metadata_url == ds.metadata_url
    assert _idx(small.ordered())[:3] == [0, 100, 200]
    # DictSample -> Row (registered by @packable) -> Small: chained as_type composes
    chained = Dataset(local_shards).as_type(Row).as_type(Small)
    assert _idx(chained.ordered())[:3] == [0, 100, 200]


def test_dict_sample_dataset(local_shards):
    first = next(iter(Dataset[DictSample](local_shards).ordered()))
    assert isinstance(first, DictSample) and first.idx == 0 and isinstance(first.vec, bytes)
    batch = next(iter(Dataset[DictSample](local_shards).ordered(batch_size=3)))
    assert batch.idx == [0, 1, 2]


def test_metadata_through_fsspec(tmp_path, local_shards):
    path = tmp_path / "meta.msgpack"
    path.write_bytes(msgpack.packb({"license": "MIT", "n": 23}))
    assert Dataset[Row](local_shards, str(path)).metadata == {"license": "MIT", "n": 23}
    assert Dataset[Row](local_shards, f"file://{path}").metadata["n"] == 23
    with open_url("memory://meta/m.msgpack", "wb") as f:
        f.write(msgpack.packb({"k": [1, 2]}))
    assert Dataset[Row](local_shards, "memory://meta/m.msgpack").metadata == {"k": [1, 2]}
    assert Dataset[Row](local_shards).metadata is None


def test_reads_a_shard_written_with_atdatas_layout(tmp_path):
    path = str(tmp_path / "atdata.tar")
    expected = write_atdata_shard(path, 6)
    got = list(Dataset[Row](path).ordered())
    assert _idx(got) == expected
    assert got[2].vec.tolist() == [2.0, 2.0, 2.0]
    assert sample_key(got[0]).endswith("-8000-000000000000")  # atdata's uuid1(0, 0) keys


def test_keys_survive_a_read(tmp_path):
    url = str(tmp_path / "k.tar")
    write_samples([("alpha", rows(1)[0])], url)
    (sample,) = Dataset[Row](url).ordered()
    assert sample_key(sample) == "alpha" and sample.as_wds["__key__"] == "alpha"


def test_memory_filesystem_round_trip():
    write_samples(rows(8), "memory://ds-test/s-%02d.tar", maxcount=3)
    ds = Dataset[Row]("memory://ds-test/s-{00..02}.tar")
    assert _idx(ds.ordered()) == list(range(8))


@pytest.mark.s3
def test_s3_round_trip(s3_bucket):
    bucket, options = s3_bucket
    records = write_samples(rows(11), f"{bucket}/d/s-%02d.tar", maxcount=4, storage_options=options)
    ds = Dataset[Row]([r.url for r in records], storage_options=options)
    assert _idx(ds.ordered()) == list(range(11))
    brace = Dataset[Row](f"{bucket}/d/s-{{00..02}}.tar", storage_options=options)
    assert sorted(_idx(brace.shuffled(seed=1))) == list(range(11))


# --- errors ---------------------------------------------------------------------------------


def test_missing_shard_raises_naming_it(local_shards, tmp_path):
    urls = [*URLSource(local_shards).list_shards()[:1], str(tmp_path / "gone.tar")]
    it = iter(Dataset[Row](urls).ordered())
    assert _idx(next(it) for _ in range(5)) == list(range(5))
    with pytest.raises(ShardNotFoundError, match=re.escape("gone.tar")):
        next(it)


def test_missing_shard_is_also_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        list(Dataset[Row](str(tmp_path / "nope.tar")).ordered())


def test_corrupt_shard_raises_naming_it(tmp_path):
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"\x00garbage" * 200)
    with pytest.raises(CorruptShardError, match=re.escape("bad.tar")):
        list(Dataset[Row](str(bad)).ordered())


def test_skip_policy_warns_and_goes_on(local_shards, tmp_path):
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"not a tar" * 300)
    urls = URLSource(local_shards).list_shards()
    ds = Dataset[Row](
        [urls[0], str(tmp_path / "gone.tar"), str(bad), urls[1]], on_shard_error="skip"
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _idx(ds.ordered()) == list(range(10))
    messages = [str(w.message) for w in caught]
    assert any("gone.tar" in m for m in messages) and any("bad.tar" in m for m in messages)


def test_wrong_sample_type_names_shard_key_and_field(local_shards):
    with pytest.raises(SampleDecodeError, match=r"s-000\.tar.*\['label', 'vec'\].*Small"):
        list(Dataset[Small](local_shards).ordered())


def test_pipe_url_is_refused(tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(UnsafeURLError, match="shell"):
        Dataset[Row](f"pipe:touch {marker}")
    with pytest.raises(UnsafeURLError):
        Dataset[Row]([str(tmp_path / "a.tar"), "pipe:cat x.tar"])
    assert not marker.exists()


def test_unknown_scheme_is_refused():
    with pytest.raises(UnsafeURLError, match="nosuchfs"):
        Dataset[Row]("nosuchfs://a/b.tar")


def test_source_or_url_required():
    with pytest.raises(TypeError, match="'source' or 'url'"):
        Dataset[Row]()
    assert Dataset[Row](url="x.tar").url == "x.tar"


@pytest.mark.parametrize("bad", [{"buffer_samples": 0}, {"buffer_samples": -5}])
def test_shuffled_refuses_a_buffer_smaller_than_one(tmp_path, bad):
    write_samples(rows(3), str(tmp_path / "s.tar"))
    ds = Dataset[Row](str(tmp_path / "s.tar"))
    with pytest.raises(ValueError, match="buffer_samples must be a positive integer"):
        ds.shuffled(seed=0, **bad)
    assert sorted(s.idx for s in ds.shuffled(buffer_samples=1, seed=0)) == [0, 1, 2]
