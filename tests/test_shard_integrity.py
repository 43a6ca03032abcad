"""Shards that were cut, tampered with or replaced never read as fewer (or other) samples.

Every cut of a real shard either raises an error naming the shard, or reads every sample
(a cut inside the zero padding after the end-of-archive loses nothing); ``skip`` warns.
Sample keys read from shards are checked (no path tricks, no duplicates), recorded sample
counts are compared, and the errors are the types atdata 0.7 code catches.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import random
import re
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds
from _data_helpers import Row, rows
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from atdata_lite.dataset import Dataset
from atdata_lite.errors import (
    AtdataLiteError,
    CorruptShardError,
    InvalidSampleKeyError,
    ShardSkippedWarning,
    TruncatedShardError,
)
from atdata_lite.index.backend import ShardRecord
from atdata_lite.lens import lens
from atdata_lite.samples import KEY_ATTR, packable
from atdata_lite.shards import inspect_shard, write_samples


@packable
class Big:
    idx: int
    image: NDArray[np.uint8]


def _big(n: int) -> list[Big]:
    return [Big(idx=i, image=np.full(20_000 + 37 * i, i, dtype=np.uint8)) for i in range(n)]


def _cuts(size: int, step: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return sorted({rng.randrange(1, size) for _ in range(40)} | set(range(step, size, step)))


@pytest.mark.parametrize(
    ("kind", "step"), [("small", 512), ("small", 4096), ("large", 4096)], ids=str
)
def test_every_cut_raises_or_reads_everything(tmp_path, kind, step):
    samples = rows(60) if kind == "small" else _big(12)
    cls = Row if kind == "small" else Big
    (record,) = write_samples(samples, str(tmp_path / "whole.tar"))
    data = Path(record.url).read_bytes()
    cut_path = tmp_path / "cut.tar"
    outcomes = {"raised": 0, "complete": 0}
    for cut in _cuts(len(data), step, seed=step):
        cut_path.write_bytes(data[:cut])
        try:
            got = [s.idx for s in Dataset[cls](str(cut_path)).ordered()]
        except TruncatedShardError as exc:
            assert "cut.tar" in str(exc)
            outcomes["raised"] += 1
        else:
            # only a cut in the record padding after the end-of-archive may read, and then
            # it must read everything
            assert got == list(range(len(samples))), f"cut at {cut} of {len(data)}"
            outcomes["complete"] += 1
        try:
            assert inspect_shard(str(cut_path)).sample_count == len(samples)
        except TruncatedShardError as exc:
            assert "cut.tar" in str(exc)
    assert outcomes["raised"] > 20


def test_skip_policy_warns_naming_the_truncated_shard_and_goes_on(tmp_path):
    records = write_samples(rows(30), str(tmp_path / "s-%d.tar"), maxcount=10)
    middle = Path(records[1].url)
    middle.write_bytes(middle.read_bytes()[:4096])  # at a block boundary, inside the data
    ds = Dataset[Row]([r.url for r in records], on_shard_error="skip")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = [s.idx for s in ds.ordered()]
    skipped = [w for w in caught if issubclass(w.category, ShardSkippedWarning)]
    assert len(skipped) == 1 and "s-1.tar" in str(skipped[0].message)
    assert "Truncated" in str(skipped[0].message)
    # the samples of s-1 read before the cut was found come first, then s-2 in full
    assert got[:10] == list(range(10)) and got[-10:] == list(range(20, 30))
    assert len(got) < 30


def test_skip_warning_can_be_made_an_error(tmp_path):
    (record,) = write_samples(rows(5), str(tmp_path / "s.tar"))
    Path(record.url).write_bytes(Path(record.url).read_bytes()[:1024])
    with warnings.catch_warnings():
        warnings.simplefilter("error", ShardSkippedWarning)
        with pytest.raises(ShardSkippedWarning, match=re.escape("s.tar")):
            list(Dataset[Row](record.url, on_shard_error="skip").ordered())


def test_shard_errors_are_tar_and_eof_errors_as_atdata_07_code_expects(tmp_path):
    (record,) = write_samples(rows(5), str(tmp_path / "s.tar"))
    cut = tmp_path / "cut.tar"
    cut.write_bytes(Path(record.url).read_bytes()[:2048])
    for expected in (EOFError, tarfile.TarError, CorruptShardError, AtdataLiteError):
        with pytest.raises(expected, match=re.escape("cut.tar")):
            list(Dataset[Row](str(cut)).ordered())
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"\x01not a tar" * 300)
    with pytest.raises(tarfile.TarError, match=re.escape("garbage.tar")) as info:
        list(Dataset[Row](str(garbage)).ordered())
    assert isinstance(info.value, CorruptShardError | ValueError)
    assert not isinstance(info.value, EOFError)


# --- recorded sample counts -------------------------------------------------------------------


def test_a_shard_holding_another_count_than_recorded_is_an_error(tmp_path):
    (record,) = write_samples(rows(10), str(tmp_path / "s.tar"))
    assert [s.idx for s in Dataset[Row]([record]).ordered()] == list(range(10))
    # a complete, valid shard replaced by a shorter one: only the count tells
    write_samples(rows(7), record.url)
    with pytest.raises(
        CorruptShardError, match=r"s\.tar: it holds 7 samples, but the index recorded 10"
    ):
        list(Dataset[Row]([record]).ordered())
    with pytest.raises(CorruptShardError, match=r"more than 5 samples, but the index recorded 5"):
        list(Dataset[Row](record.url, sample_counts={record.url: 5}).ordered())
    # a count nobody recorded asserts nothing
    unknown = ShardRecord(record.url)
    assert len(list(Dataset[Row]([unknown]).ordered())) == 7


@packable
class Idx:
    idx: int


@lens
def row_to_idx(r: Row) -> Idx:
    return Idx(idx=r.idx)


def test_recorded_counts_survive_as_type_and_skip_warns(tmp_path):
    records = write_samples(rows(6), str(tmp_path / "s-%d.tar"), maxcount=3)
    wrong = [records[0], ShardRecord(records[1].url, sample_count=4)]
    with pytest.raises(CorruptShardError, match=r"s-1\.tar.*holds 3 samples"):
        list(Dataset[Row](wrong).as_type(Idx).ordered())
    ds = Dataset[Row](wrong, on_shard_error="skip")
    with pytest.warns(ShardSkippedWarning, match=r"s-1\.tar.*recorded 4"):
        assert [s.idx for s in ds.ordered()] == [0, 1, 2, 3, 4, 5]


# --- keys read from shards --------------------------------------------------------------------


def _tar_with(path: Path, names: list[str], payload: bytes) -> None:
    with tarfile.open(path, "w") as tar:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


@pytest.mark.parametrize(
    "name",
    [
        "../../evil.msgpack",
        "/etc/evil.msgpack",
        "dir/a.msgpack",
        "./a.msgpack",
        "a\x1b[31mb.msgpack",
        "a\nb.msgpack",
        "a\\b.msgpack",
        ".msgpack",
        "k" * 201 + ".msgpack",
    ],
)
def test_unsafe_keys_in_a_shard_are_refused_on_read(tmp_path, name):
    path = tmp_path / "odd.tar"
    payload = rows(1)[0].packed
    _tar_with(path, ["good.msgpack", name], payload)
    with pytest.raises(CorruptShardError, match=r"odd\.tar: member .*not a safe key"):
        list(Dataset[Row](str(path)).ordered())
    with pytest.raises(CorruptShardError, match=r"odd\.tar"):
        inspect_shard(str(path))


@pytest.mark.parametrize(
    "names",
    [["a.msgpack", "a.msgpack"], ["a.msgpack", "b.msgpack", "a.msgpack"]],
    ids=["adjacent", "apart"],
)
def test_a_duplicate_key_in_a_shard_is_an_error_not_a_merge(tmp_path, names):
    path = tmp_path / "dup.tar"
    _tar_with(path, names, rows(1)[0].packed)
    with pytest.raises(CorruptShardError, match=r"dup\.tar: the sample key 'a' appears twice"):
        list(Dataset[Row](str(path)).ordered())
    with pytest.raises(CorruptShardError, match="appears twice"):
        inspect_shard(str(path))


def test_writing_a_duplicate_key_into_one_shard_is_refused(tmp_path):
    (record,) = write_samples(rows(3), str(tmp_path / "s.tar"))
    twice = list(Dataset[Row](record.url).ordered()) * 2
    with pytest.raises(InvalidSampleKeyError, match="appears twice"):
        write_samples(twice, str(tmp_path / "copy.tar"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.tar"]
    # in separate shards they are separate samples
    copies = write_samples(twice, str(tmp_path / "c-%d.tar"), maxcount=3)
    assert [r.sample_count for r in copies] == [3, 3]


def test_a_key_remembered_on_a_sample_is_checked_on_write(tmp_path):
    sample = rows(1)[0]
    object.__setattr__(sample, KEY_ATTR, "../../evil")
    with pytest.raises(InvalidSampleKeyError, match=r"position 0.*'\.\./\.\./evil'"):
        write_samples([sample], str(tmp_path / "s.tar"))
    assert list(tmp_path.iterdir()) == []


# --- archive structure ------------------------------------------------------------------------


def test_data_after_the_end_of_archive_is_an_error(tmp_path):
    a, b = (write_samples(rows(3, start=s), str(tmp_path / f"{s}.tar"))[0] for s in (0, 3))
    joined = tmp_path / "joined.tar"  # tarfile stops at the first end-of-archive
    joined.write_bytes(Path(a.url).read_bytes() + Path(b.url).read_bytes())
    with pytest.raises(CorruptShardError, match=r"joined\.tar: unreadable member header"):
        list(Dataset[Row](str(joined)).ordered())


def test_compressed_shards_read_and_their_truncation_is_detected(tmp_path):
    (record,) = write_samples(rows(20), str(tmp_path / "s.tar"))
    packed = gzip.compress(Path(record.url).read_bytes())
    (tmp_path / "s.tar.gz").write_bytes(packed)
    assert [s.idx for s in Dataset[Row](str(tmp_path / "s.tar.gz")).ordered()] == list(range(20))
    (tmp_path / "cut.tar.gz").write_bytes(packed[: len(packed) // 2])
    with pytest.raises(TruncatedShardError, match=r"cut\.tar\.gz"):
        list(Dataset[Row](str(tmp_path / "cut.tar.gz")).ordered())


def test_plain_webdataset_shards_still_read(tmp_path):
    path = str(tmp_path / "wds.tar")
    with wds.TarWriter(path) as sink:
        for s in rows(4):
            sink.write({"__key__": f"k{s.idx}", "msgpack": s.packed, "txt": b"x"})
    assert [s.idx for s in Dataset[Row](path).ordered()] == [0, 1, 2, 3]
    assert inspect_shard(path).sample_count == 4


# --- damaged bytes never raise anything but our errors ------------------------------------------

_SHARD_CACHE: dict[str, bytes] = {}


def _real_shard_bytes() -> bytes:
    if "small" not in _SHARD_CACHE:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for i, s in enumerate(rows(6)):
                payload = s.packed
                info = tarfile.TarInfo(f"k{i}.msgpack")
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
        _SHARD_CACHE["small"] = buf.getvalue()
    return _SHARD_CACHE["small"]


@settings(max_examples=80, deadline=None)
@given(
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), max_size=6),
    cut=st.none() | st.integers(0, 10**6),
    prefix=st.binary(max_size=8),
)
def test_damaged_shards_raise_only_our_errors(flips, cut, prefix):
    data = bytearray(_real_shard_bytes())
    for pos, xor in flips:
        data[pos % len(data)] ^= xor
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    raw = prefix + bytes(data)
    from atdata_lite.shards import iter_shard

    try:
        for sample in iter_shard(io.BytesIO(raw), "fuzz.tar"):
            if "msgpack" in sample:
                with contextlib.suppress(AtdataLiteError):
                    Row.from_bytes(sample["msgpack"])
    except AtdataLiteError as exc:
        assert "fuzz.tar" in str(exc)
