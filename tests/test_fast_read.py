"""The fast shard reader gives exactly what the general one (``iter_shard``) gives.

Sample by sample on varied shards (our writer, webdataset's ``TarWriter`` with its PAX
headers and long names, GNU long names, compressed shards, tar features the fast reader
leaves to the general one mid-shard), and error type by error type on damaged ones, over
both routes: a memory-mapped local file and a stream read in chunks.
"""

from __future__ import annotations

import gzip
import io
import random
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import webdataset as wds
from numpy.typing import NDArray

from atdata_lite import Dataset
from atdata_lite._shardread import read_shard
from atdata_lite._tarscan import Run
from atdata_lite.errors import CorruptShardError, TruncatedShardError
from atdata_lite.samples import packable
from atdata_lite.shards import iter_shard, write_samples


@packable
class Row:
    idx: int
    label: str
    image: NDArray[np.float32]


def _general(data: bytes, expected: int | None) -> tuple[list[Any], type | None]:
    out: list[Any] = []
    try:
        for raw in iter_shard(io.BytesIO(data), "s.tar", expected_count=expected):
            members = {k: bytes(v) for k, v in raw.items() if not k.startswith("__")}
            out.append((raw["__key__"], members))
    except Exception as exc:
        return out, type(exc)
    return out, None


class _Stream(io.RawIOBase):
    """A non-seekable stream without a file descriptor (as a remote file would be)."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        return self._data.readinto(b)


def _fast(
    path: Path, data: bytes, expected: int | None, mapped: bool, runs: bool = False
) -> tuple[list[Any], type | None]:
    out: list[Any] = []
    stream: Any = open(path, "rb") if mapped else _Stream(data)  # noqa: SIM115
    try:
        samples = read_shard(
            stream, "s.tar", expected_count=expected, reopen=lambda: _Stream(data), runs=runs
        )
        for item in samples:
            for key, members in item.samples() if isinstance(item, Run) else [item]:
                out.append((key, {k: bytes(v) for k, v in members.items()}))
    except Exception as exc:
        return out, type(exc)
    finally:
        stream.close()
    return out, None


def _same_on_both_routes(tmp_path: Path, data: bytes, expected: int | None = None) -> list[Any]:
    path = tmp_path / "s.tar"
    path.write_bytes(data)
    want = _general(data, expected)
    assert _fast(path, data, expected, mapped=True) == want
    assert _fast(path, data, expected, mapped=False) == want
    # runs of one-member samples handed over at once: the same samples, the same error
    assert _fast(path, data, expected, mapped=True, runs=True) == want
    return want[0]


def _wds_shard(path: Path, n: int, long_every: int = 0) -> bytes:
    rng = random.Random(n)
    with wds.TarWriter(str(path)) as sink:
        for i in range(n):
            key = f"s{i:04d}" + ("k" * 150 if long_every and i % long_every == 0 else "")
            sink.write(
                {"__key__": key, "msgpack": rng.randbytes(rng.randint(0, 2000)), "json": b"{}"}
            )
    return path.read_bytes()


def _ours_shard(path: Path, n: int) -> bytes:
    rows = [Row(idx=i, label="x" * i, image=np.full((i % 5, 3), i, np.float32)) for i in range(n)]
    write_samples(rows, str(path), progress=False)
    return path.read_bytes()


def _tar(members: list[tuple[tarfile.TarInfo, bytes]], fmt: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for info, payload in members:
            tar.addfile(info, io.BytesIO(payload) if info.isreg() else None)
    return buf.getvalue()


def _member(
    name: str, payload: bytes = b"", kind: bytes = tarfile.REGTYPE
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(payload) if kind == tarfile.REGTYPE else 0
    if kind == tarfile.SYMTYPE:
        info.linkname = "elsewhere"
    return info, payload


def test_webdataset_shards_with_long_names_read_the_same(tmp_path: Path) -> None:
    data = _wds_shard(tmp_path / "w.tar", 60, long_every=7)
    samples = _same_on_both_routes(tmp_path, data, expected=60)
    assert len(samples) == 60
    assert samples[7][0] == "s0007" + "k" * 150  # a PAX path, as webdataset wrote it
    assert set(samples[0][1]) == {"msgpack", "json"}


def test_our_shards_read_the_same(tmp_path: Path) -> None:
    data = _ours_shard(tmp_path / "o.tar", 40)
    assert len(_same_on_both_routes(tmp_path, data, expected=40)) == 40


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT])
def test_tar_formats_long_names_and_directories(tmp_path: Path, fmt: int) -> None:
    members = [
        _member("top/", kind=tarfile.DIRTYPE),
        _member("a.msgpack", b"\x01"),
        _member("__meta__", b"ignored"),
        _member("c.msgpack", b"\x03"),
        _member("c.json", b"{}"),
    ]
    keys = ["a", "c"]
    if fmt != tarfile.USTAR_FORMAT:
        members.append(_member("f" * 140 + ".msgpack", b"\x04"))  # an L or x header
        keys.append("f" * 140)
    # ustar splits a long path into prefix and name; a key with "/" is refused by both
    members.append(_member("d" * 90 + "/" + "e" * 60 + "/b.msgpack", b"\x02"))
    samples = _same_on_both_routes(tmp_path, _tar(members, fmt))
    assert [key for key, _ in samples] == keys


@pytest.mark.parametrize(
    "feature",
    [
        _member("link.msgpack", kind=tarfile.SYMTYPE),
        _member("fifo", kind=tarfile.FIFOTYPE),
    ],
    ids=["symlink", "fifo"],
)
def test_tar_features_left_to_the_general_reader_mid_shard(tmp_path: Path, feature: Any) -> None:
    members = [_member(f"k{i}.msgpack", bytes([i])) for i in range(5)]
    members.insert(3, feature)
    samples = _same_on_both_routes(tmp_path, _tar(members, tarfile.GNU_FORMAT))
    assert [key for key, _ in samples] == ["k0", "k1", "k2", "k3", "k4"]


def test_global_pax_header_is_left_to_the_general_reader(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(
        fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"comment": "x"}
    ) as tar:
        for i in range(4):
            info, payload = _member(f"k{i}.msgpack", bytes([i]))
            tar.addfile(info, io.BytesIO(payload))
    assert len(_same_on_both_routes(tmp_path, buf.getvalue())) == 4


def test_compressed_shards_read_the_same(tmp_path: Path) -> None:
    data = gzip.compress(_ours_shard(tmp_path / "o.tar", 10))
    assert len(_same_on_both_routes(tmp_path, data)) == 10


def test_damaged_shards_give_the_same_samples_then_the_same_error(tmp_path: Path) -> None:
    rng = random.Random(20261129)
    for data in (
        _wds_shard(tmp_path / "w.tar", 12, long_every=5),
        _ours_shard(tmp_path / "o.tar", 12),
    ):
        variants = [data[:cut] for cut in range(0, len(data), 512)]
        variants += [data[: rng.randrange(len(data))] for _ in range(40)]
        for _ in range(150):
            flipped = bytearray(data)
            flipped[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            variants.append(bytes(flipped))
        variants += [data + b"junk" * 300, data + bytes(700), data[:-512]]
        errors = set()
        for variant in variants:
            for expected in (None, 12, 11):
                path = tmp_path / "s.tar"
                path.write_bytes(variant)
                want = _general(variant, expected)
                errors.add(want[1])
                assert _fast(path, variant, expected, mapped=True) == want, len(variant)
                assert _fast(path, variant, expected, mapped=False) == want, len(variant)
        # the battery reaches both kinds of damage, not only clean reads
        assert {TruncatedShardError, CorruptShardError} <= errors


def test_dataset_yields_the_general_readers_samples(tmp_path: Path) -> None:
    path = tmp_path / "o.tar"
    _ours_shard(path, 30)
    with open(path, "rb") as f:
        want = [Row.from_bytes(raw["msgpack"]) for raw in iter_shard(f, str(path))]
    got = list(Dataset[Row](str(path)).ordered())
    assert len(got) == len(want) == 30
    for a, b in zip(got, want, strict=True):
        assert (a.idx, a.label) == (b.idx, b.label)
        np.testing.assert_array_equal(a.image, b.image)
        assert a.image.dtype == b.image.dtype


def test_arrays_are_read_only_views_unless_copies_are_asked_for(tmp_path: Path) -> None:
    path = tmp_path / "o.tar"
    _ours_shard(path, 5)
    view = list(Dataset[Row](str(path)))[4].image
    assert not view.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        view[0, 0] = 1.0
    copied = list(Dataset[Row](str(path), copy_arrays=True))[4].image
    assert copied.flags.writeable and copied.flags.owndata
    copied[0, 0] = 1.0
    np.testing.assert_array_equal(view, np.full((4, 3), 4, np.float32))


def test_from_bytes_still_gives_writable_arrays() -> None:
    row = Row.from_bytes(Row(idx=1, label="a", image=np.ones((2, 2), np.float32)).packed)
    assert row.image.flags.writeable


def test_dataset_reads_a_stream_without_a_file_descriptor(tmp_path: Path) -> None:
    # memory:// files have no descriptor: the chunked route, same samples
    import fsspec

    data = _ours_shard(tmp_path / "o.tar", 25)
    with fsspec.open("memory://fast-read/o.tar", "wb") as f:
        f.write(data)
    got = [(r.idx, r.label) for r in Dataset[Row]("memory://fast-read/o.tar", cache=False)]
    assert got == [(i, "x" * i) for i in range(25)]


@pytest.mark.parametrize(
    "names",
    [
        [f"k{i}.msgpack" for i in range(40)] + ["k7.msgpack"],  # a key seen before
        [f"k{i}.msgpack" for i in range(20)] + ["k19.json", "k19.msgpack"],  # twice in one
        [f"k{i}.msgpack" for i in range(20)] + ["bad\x01key.msgpack"],
        [f"k{i}.msgpack" for i in range(20)] + ["__index__", "k20.msgpack", ".msgpack"],
        [f"k{i}.MsgPack" for i in range(20)] + ["noext", "k20.a.b"],
        # keys of one length (read by cutting names at a fixed width)
        [f"k{i:03d}.msgpack" for i in range(40)] + ["k007.msgpack"],
        [f"k{i:03d}.msgpack" for i in range(40)] + ["__k1.msgpack", "__i__.msgpack"],
        [f"k{i:03d}.msgpack" for i in range(40)] + ["k.01.msgpack"],
        [f"k{i:03d}.msgpack" for i in range(40)] + ["k040.msgpacx", "k041.MSGPACK"],
        [f"k{i:03d}.msgpack" for i in range(40)] + ["k040.msgpackx"],
    ],
    ids=[
        "repeat",
        "double-member",
        "unsafe-key",
        "meta-and-empty-key",
        "odd-extensions",
        "one-width-repeat",
        "one-width-dunders",
        "one-width-two-dots",
        "one-width-extensions",
        "one-width-longer-name",
    ],
)
def test_key_problems_inside_a_long_run_of_members(tmp_path: Path, names: list[str]) -> None:
    members = [_member(name, bytes([i % 250])) for i, name in enumerate(names)]
    data = _tar(members, tarfile.GNU_FORMAT)
    for expected in (None, 20, 21, 40):
        _same_on_both_routes(tmp_path, data, expected)


def test_a_long_shard_cut_or_flipped_anywhere(tmp_path: Path) -> None:
    data = _ours_shard(tmp_path / "big.tar", 300)
    rng = random.Random(7)
    for _ in range(40):
        _same_on_both_routes(tmp_path, data[: rng.randrange(len(data))], 300)
        flipped = bytearray(data)
        flipped[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        _same_on_both_routes(tmp_path, bytes(flipped), 300)


def _with_field(data: bytes, member: int, start: int, value: bytes) -> bytes:
    """``data`` with one numeric field of member ``member``'s header rewritten, and the
    header's checksum made right again (a crafted, not a damaged, header)."""
    out = bytearray(data)
    header = 1024 * member  # the members below are 1 byte: header + one data block
    out[header + start : header + start + len(value)] = value
    out[header + 148 : header + 156] = b" " * 8
    out[header + 148 : header + 156] = b"%06o\x00 " % sum(out[header : header + 512])
    return bytes(out)


@pytest.mark.parametrize(
    ("start", "value"),
    [
        (100, b"00 0644\x00"),  # a space inside the mode: tarfile refuses the header
        (100, b"   644 \x00"),  # leading spaces: tarfile reads it
        (124, b"0000000 001\x00"),  # a space inside the size
        (329, b"\x00\x00\x00\x00\x00\x00\x00\x00"),  # an empty device number: 0
        (136, b"1234\x00abcdefg"),  # junk after the NUL of mtime: ignored by tarfile
        (108, b"\x80\x00\x00\x00\x00\x00\x00\x01"),  # a base-256 uid
    ],
)
def test_crafted_number_fields_read_as_tarfile_reads_them(
    tmp_path: Path, start: int, value: bytes
) -> None:
    members = [_member(f"k{i}.msgpack", bytes([i])) for i in range(30)]
    data = _tar(members, tarfile.GNU_FORMAT)
    for member in (0, 12, 29):
        _same_on_both_routes(tmp_path, _with_field(data, member, start, value))


def _raw_header(name: bytes, size: int, checksum_shift: int = 0) -> bytes:
    """A ustar header written byte by byte (names tarfile would not write, such as one
    with bytes after its NUL), with its checksum right, or off by ``checksum_shift``."""
    header = bytearray(512)
    header[: len(name)] = name
    header[100:108] = b"0000644\x00"
    header[108:124] = b"0000000\x00" * 2
    header[124:136] = b"%011o\x00" % size
    header[136:148] = b"00000000000\x00"
    header[148:156] = b" " * 8
    header[156:157] = b"0"
    header[257:265] = b"ustar\x0000"
    header[148:156] = b"%06o\x00 " % (sum(header) + checksum_shift)
    return bytes(header)


def _raw_tar(members: list[tuple[bytes, bytes, int]]) -> bytes:
    out = bytearray()
    for name, payload, shift in members:
        out += _raw_header(name, len(payload), shift) + payload
        out += bytes(-len(payload) % 512)
    return bytes(out + bytes(1024))


@pytest.mark.parametrize(
    "odd",
    [
        (b"k25\x00junk.msgpack", b"p", 0),  # bytes after the name's NUL: tarfile drops them
        (b"k25\nx.msgpack", b"p", 0),  # a newline in the name
        (b"k" * 92 + b".msgpack", b"p", 0),  # a name filling all 100 bytes
        (b"k25.msgpack", b"p", 65521),  # a checksum off by adler32's modulus
        (b"k25.msgpack", b"p" * 700, 0),  # another size class inside a run
        (b"k25\x7f.msgpack", b"p", 0),  # DEL
        ("k\u00e925.msgpack".encode(), b"p", 0),  # a non-ASCII key
        ("k\u00a025.msgpack".encode(), b"p", 0),  # a non-ASCII unprintable key
        (b"k\xff25.msgpack", b"p", 0),  # not UTF-8
        (b"d/k25.msgpack", b"p", 0),  # a path
        (b"d\\k25.msgpack", b"p", 0),  # a backslash
        (b"__k25__.msgpack", b"p", 0),  # a leading double underscore
    ],
    ids=[
        "junk-after-nul",
        "newline",
        "full-width",
        "checksum-off-by-65521",
        "size-class",
        "del",
        "non-ascii",
        "nbsp",
        "not-utf8",
        "slash",
        "backslash",
        "dunder",
    ],
)
def test_odd_members_inside_runs_of_one_size_class(tmp_path: Path, odd: tuple) -> None:
    # runs of same-size members are checked all at once: an odd member anywhere in or
    # after such a run is read (or refused) as tarfile reads it
    members = [(b"k%d.msgpack" % i, bytes([i]) * (i % 7 + 1), 0) for i in range(60)]
    for at in (0, 17, 25, 59):
        changed = list(members)
        changed[at] = odd
        _same_on_both_routes(tmp_path, _raw_tar(changed))
        _same_on_both_routes(tmp_path, _raw_tar(changed), 60)


def test_size_classes_that_change_often_read_the_same(tmp_path: Path) -> None:
    rng = random.Random(3)
    for _ in range(5):
        members = []
        for i in range(200):
            size = rng.choice([0, 1, 511, 512, 513, 3000]) if rng.random() < 0.3 else 100
            members.append((b"s%d.msgpack" % i, rng.randbytes(size), 0))
        got = _same_on_both_routes(tmp_path, _raw_tar(members), 200)
        assert len(got) == 200


def test_header_byte_sums_are_exact() -> None:
    from atdata_lite._tarscan import _byte_sum, _byte_sums

    rng = random.Random(11)
    blocks = [bytes(512), b"\xff" * 512, b"\x7f" * 512]
    blocks += [rng.randbytes(512) for _ in range(300)]
    blocks += [bytes(rng.randrange(60) for _ in range(512)) for _ in range(300)]
    for block in blocks:
        assert _byte_sum(block) == sum(block)
    rows = np.frombuffer(b"".join(blocks), dtype=np.uint8).reshape(-1, 512)
    want = [sum(block) for block in blocks]
    assert _byte_sums(rows).tolist() == want
    assert _byte_sums(rows[::3]).tolist() == want[::3]  # a strided view, as runs are read


def test_reading_local_shards_needs_neither_fsspec_nor_the_shard_cache(tmp_path: Path) -> None:
    # a process that only reads local shards starts fast: no fsspec import, no cache dirs
    import subprocess
    import sys

    _ours_shard(tmp_path / "o.tar", 40)
    code = (
        "import sys\n"
        "from atdata_lite import Dataset\n"
        "from tests.test_fast_read import Row\n"
        f"rows = list(Dataset[Row]({str(tmp_path / 'o.tar')!r}))\n"
        "assert [r.idx for r in rows] == list(range(40))\n"
        "assert 'fsspec' not in sys.modules, 'fsspec imported'\n"
        "assert 'platformdirs' not in sys.modules, 'the shard cache was set up'\n"
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


def test_the_scan_leaves_no_garbage_for_the_collector(tmp_path: Path) -> None:
    # runs of members are walked without building containers that outlive a sample, so a
    # long read triggers no collection (a full one costs ~0.1 s with torch loaded)
    import gc

    path = tmp_path / "plain.tar"
    path.write_bytes(_raw_tar([(b"k%d.msgpack" % i, b"x" * 40, 0) for i in range(20_000)]))
    collections: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    gc.collect()
    gc.callbacks.append(count)
    try:
        with open(path, "rb") as f:
            assert sum(1 for _ in read_shard(f, str(path))) == 20_000
    finally:
        gc.callbacks.remove(count)
    assert collections == []


def test_runs_come_whole_and_a_sample_without_msgpack_is_refused_in_place(
    tmp_path: Path,
) -> None:
    members = [
        (b"k%d.msgpack" % i, Row(idx=i, label="", image=np.zeros((1, 1), np.float32)).packed, 0)
        for i in range(40)
    ]
    members[30] = (b"k30.json", b"{}", 0)
    path = tmp_path / "s.tar"
    path.write_bytes(_raw_tar(members))
    with open(path, "rb") as f:
        items = list(read_shard(f, str(path), runs=True))
    assert any(isinstance(item, Run) and len(item.keys) >= 16 for item in items)
    got = []
    with pytest.raises(CorruptShardError, match=r"'k30' has no \.msgpack member"):
        for row in Dataset[Row](str(path)):
            got.append(row.idx)
    assert got == list(range(30))


@pytest.mark.parametrize("order", [1, -1], ids=["shortest-first", "longest-first"])
def test_runs_of_names_of_several_lengths_are_read_in_bulk(order: int) -> None:
    from atdata_lite._tarscan import _bulk, _PlainNames

    members = [_member(f"sample{i}.msgpack", b"x") for i in range(1, 101)[::order]]
    data = _tar(members, tarfile.GNU_FORMAT)
    names, starts, *_ = _bulk(data, 0, len(data))
    assert isinstance(names, _PlainNames) and len(starts) == 100
    assert names.split() == [f"sample{i}.msgpack" for i in range(1, 101)[::order]]
