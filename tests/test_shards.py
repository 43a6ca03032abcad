"""Shard writing (atomic, hashed while written), inspection, removal."""

from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import fsspec
import msgpack
import pytest
import webdataset as wds
from _data_helpers import Row, rows

from atdata_lite.errors import (
    CorruptShardError,
    InvalidSampleKeyError,
    ShardNotFoundError,
    UnsafeURLError,
)
from atdata_lite.shards import inspect_shard, remove_shards, write_samples


def _file_facts(path: str) -> tuple[int, str]:
    data = Path(path).read_bytes()
    return len(data), hashlib.sha256(data).hexdigest()


def test_records_match_the_files_and_maxcount_splits(tmp_path):
    records = write_samples(rows(25), str(tmp_path / "s-%04d.tar"), maxcount=10)
    assert [r.url for r in records] == [str(tmp_path / f"s-{i:04d}.tar") for i in range(3)]
    assert [r.sample_count for r in records] == [10, 10, 5]
    for r in records:
        assert (r.size, r.sha256) == _file_facts(r.url)
        assert inspect_shard(r.url) == r
    assert sorted(os.listdir(tmp_path)) == ["s-0000.tar", "s-0001.tar", "s-0002.tar"]


def test_maxsize_splits(tmp_path):
    # each sample is one 512-byte header plus one 512-byte data block
    records = write_samples(rows(10), str(tmp_path / "s-%d.tar"), maxsize=3 * 1024)
    assert all(r.sample_count <= 3 for r in records)
    assert sum(r.sample_count for r in records) == 10


def test_empty_input_writes_nothing(tmp_path):
    assert write_samples([], str(tmp_path / "s-%06d.tar")) == []
    assert write_samples(iter(()), str(tmp_path / "s-%06d.tar")) == []
    assert os.listdir(tmp_path) == []


def test_plain_webdataset_reads_our_shards(tmp_path):
    write_samples(rows(12), str(tmp_path / "s-%02d.tar"), maxcount=5)
    pipeline = wds.WebDataset(str(tmp_path / "s-{00..02}.tar"), shardshuffle=False)
    got = [msgpack.unpackb(s["msgpack"]) for s in pipeline]
    assert [g["idx"] for g in got] == list(range(12))
    assert all(s["__key__"] for s in wds.WebDataset(str(tmp_path / "s-00.tar"), shardshuffle=False))


def test_user_given_keys(tmp_path):
    url = str(tmp_path / "one.tar")
    write_samples([(f"k{i:03d}", r) for i, r in enumerate(rows(3))], url)
    keys = [s["__key__"] for s in wds.WebDataset(url, shardshuffle=False)]
    assert keys == ["k000", "k001", "k002"]


def test_bad_user_key_writes_nothing(tmp_path):
    with pytest.raises(InvalidSampleKeyError, match=re.escape("'a.b'")):
        write_samples([("ok", rows(1)[0]), ("a.b", rows(1)[0])], str(tmp_path / "s-%d.tar"))
    assert os.listdir(tmp_path) == []


def test_single_url_with_limits_is_numbered_as_atdata_07_does(tmp_path):
    records = write_samples(rows(5), str(tmp_path / "one.tar"), maxcount=2)
    assert sorted(os.listdir(tmp_path)) == ["one-000000.tar", "one-000001.tar", "one-000002.tar"]
    assert [r.sample_count for r in records] == [2, 2, 1]
    (single,) = write_samples(rows(5), str(tmp_path / "all.tar"))  # no limit: one shard
    assert single.url == str(tmp_path / "all.tar") and single.sample_count == 5


@pytest.mark.parametrize("pattern", ["s-%d-%d.tar", "s-%s.tar", "100%.tar"])
def test_bad_pattern(tmp_path, pattern):
    with pytest.raises(ValueError, match=re.escape("Invalid shard pattern")):
        write_samples(rows(1), str(tmp_path / pattern))


def _failing(n_ok: int):
    for i, r in enumerate(rows(n_ok + 1)):
        if i == n_ok:
            raise RuntimeError("boom")
        yield r


def test_error_mid_write_leaves_no_shard_and_no_temp_file(tmp_path):
    with pytest.raises(RuntimeError, match=re.escape("boom")):
        write_samples(_failing(25), str(tmp_path / "s-%03d.tar"), maxcount=10)
    # shards 0 and 1 were complete: they are removed too, the call is all or nothing
    assert os.listdir(tmp_path) == []


def test_killed_process_leaves_no_shard_under_a_final_name(tmp_path):
    script = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from _data_helpers import rows
        from atdata_lite.shards import write_samples

        def gen():
            for i, r in enumerate(rows(50)):
                if i == 15:
                    os._exit(3)  # a hard crash: no cleanup, no finally blocks
                yield r

        write_samples(gen(), {str(tmp_path / "s-%03d.tar")!r}, maxcount=10)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert proc.returncode == 3, proc.stderr.decode()
    names = sorted(os.listdir(tmp_path))
    final = [n for n in names if not n.startswith(".")]
    # shard 0 was complete and committed before the crash; shard 1 was not
    assert final == ["s-000.tar"]
    assert inspect_shard(str(tmp_path / "s-000.tar")).sample_count == 10
    assert all(n.startswith(".s-001.tar.tmp-") for n in names if n.startswith("."))


def test_memory_filesystem(tmp_path):
    records = write_samples(rows(7), "memory://shards-test/x-%02d.tar", maxcount=4)
    assert [r.sample_count for r in records] == [4, 3]
    fs = fsspec.filesystem("memory")
    assert sorted(fs.ls("/shards-test", detail=False)) == [
        "/shards-test/x-00.tar",
        "/shards-test/x-01.tar",
    ]
    assert inspect_shard(records[1].url) == records[1]
    remove_shards([r.url for r in records])
    assert fs.ls("/shards-test", detail=False) == []


def test_memory_filesystem_error_leaves_nothing():
    with pytest.raises(RuntimeError):
        write_samples(_failing(3), "memory://shards-fail/x-%02d.tar", maxcount=2)
    fs = fsspec.filesystem("memory")
    assert not fs.exists("/shards-fail") or fs.ls("/shards-fail", detail=False) == []


@pytest.mark.s3
def test_s3_write_inspect_and_failed_upload(s3_bucket):
    bucket, options = s3_bucket
    records = write_samples(rows(9), f"{bucket}/p/s-%02d.tar", maxcount=5, storage_options=options)
    assert [r.sample_count for r in records] == [5, 4]
    for r in records:
        assert inspect_shard(r.url, storage_options=options) == r
    with pytest.raises(RuntimeError, match=re.escape("boom")):
        write_samples(_failing(7), f"{bucket}/q/s-%02d.tar", maxcount=5, storage_options=options)
    import s3fs

    fs = s3fs.S3FileSystem(**options)
    assert fs.find(f"{bucket}/q") == []


def test_inspect_missing_shard(tmp_path):
    with pytest.raises(ShardNotFoundError, match=re.escape("nope.tar")):
        inspect_shard(str(tmp_path / "nope.tar"))


def test_inspect_not_a_tar(tmp_path):
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"this is not a tar file at all" * 100)
    with pytest.raises(CorruptShardError, match=re.escape("bad.tar")):
        inspect_shard(str(bad))


@pytest.mark.parametrize("cut", [700, 2048, 5000])
def test_inspect_truncated(tmp_path, cut):
    (r,) = write_samples(rows(5), str(tmp_path / "t.tar"))
    data = Path(r.url).read_bytes()
    (tmp_path / "cut.tar").write_bytes(data[:cut])
    with pytest.raises(CorruptShardError, match=re.escape("cut.tar")):
        inspect_shard(str(tmp_path / "cut.tar"))


def test_inspect_tar_without_msgpack_members(tmp_path):
    path = str(tmp_path / "json.tar")
    with wds.TarWriter(path) as sink:
        sink.write({"__key__": "a", "json": b"{}"})
    with pytest.raises(CorruptShardError, match=re.escape("no .msgpack member")):
        inspect_shard(path)


def test_pipe_url_refused(tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(UnsafeURLError, match=re.escape("pipe:")):
        write_samples(rows(1), f"pipe:touch {marker}")
    with pytest.raises(UnsafeURLError, match=re.escape("pipe:")):
        inspect_shard(f"pipe:touch {marker}")
    assert not marker.exists()


def test_unknown_scheme_refused():
    with pytest.raises(UnsafeURLError, match=re.escape("nosuchfs")):
        inspect_shard("nosuchfs://x/y.tar")


def test_no_output_when_stderr_is_not_a_terminal(tmp_path, capfd):
    write_samples(rows(20), str(tmp_path / "s-%d.tar"), maxcount=5, progress=True)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_row_type_is_used():  # guards the helper module against silent changes
    assert Row.from_bytes(rows(1)[0].packed).label == "r0"


class _FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_goes_to_a_terminal_stderr_only(tmp_path, monkeypatch, capsys):
    fake = _FakeTerminal()
    monkeypatch.setattr(sys, "stderr", fake)
    write_samples(rows(20), str(tmp_path / "s-%d.tar"), maxcount=5)
    assert "writing samples" in fake.getvalue()
    assert capsys.readouterr().out == ""
    fake2 = _FakeTerminal()
    monkeypatch.setattr(sys, "stderr", fake2)
    write_samples(rows(5), str(tmp_path / "t-%d.tar"), progress=False)
    assert fake2.getvalue() == ""


def test_keys_starting_with_double_underscore_read_back(tmp_path):
    # webdataset skips only metadata members named like "__index__"; a sample key that
    # merely starts with "__" is an ordinary sample and must not be dropped on read.
    from atdata_lite.dataset import Dataset

    url = str(tmp_path / "s.tar")
    (record,) = write_samples([("__a", rows(1)[0]), ("b", rows(2)[1])], url)
    assert record.sample_count == 2
    assert inspect_shard(url).sample_count == 2
    assert [s["__key__"] for s in wds.WebDataset(url, shardshuffle=False)] == ["__a", "b"]
    assert [s.idx for s in Dataset[Row](url).ordered()] == [0, 1]


def test_literal_percent_in_a_single_url_target(tmp_path):
    # "write a literal % as %%" holds for single-shard targets too, not only for patterns
    (record,) = write_samples(rows(2), str(tmp_path / "top-5%%.tar"))
    assert record.url == str(tmp_path / "top-5%.tar")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["top-5%.tar"]
    records = write_samples(rows(3), str(tmp_path / "p%%-%02d.tar"), maxcount=2)
    assert [Path(r.url).name for r in records] == ["p%-00.tar", "p%-01.tar"]
