"""Hostile input on the library side: deleting shards, comparing locations, names, odd files.

What an index names cannot make atdata-lite delete a file that is not one of its shards, names
cannot carry terminal control sequences, and odd inputs (FIFOs, endless streams, URL schemes
that need more setup) fail with a clear error instead of hanging or raising ``TypeError``.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import os
import tarfile
import threading
from pathlib import Path

import fsspec
import pytest
from _data_helpers import rows
from fsspec.spec import AbstractFileSystem

from atdata_lite.deletion import delete_shards, plan_deletion
from atdata_lite.errors import (
    AtdataLiteError,
    CorruptShardError,
    InvalidNameError,
    UnsafeURLError,
)
from atdata_lite.index import Index
from atdata_lite.index.backend import ShardRecord
from atdata_lite.locations import normalise_location
from atdata_lite.samples import packable
from atdata_lite.shards import inspect_shard, write_samples

# --- locations --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    ["{d}/g.tar", "file://{d}/g.tar", "{d}/./g.tar", "{d}//g.tar", "{d}/sub/../g.tar"],
)
def test_one_file_spelled_differently_normalises_to_one_location(tmp_path, spelling):
    (tmp_path / "sub").mkdir()
    assert normalise_location(spelling.format(d=tmp_path)) == normalise_location(
        f"{tmp_path}/g.tar"
    )


def test_a_symlink_normalises_to_the_file_it_names(tmp_path):
    (tmp_path / "g.tar").write_bytes(b"x")
    (tmp_path / "link.tar").symlink_to(tmp_path / "g.tar")
    assert normalise_location(str(tmp_path / "link.tar")) == normalise_location(
        str(tmp_path / "g.tar")
    )


def test_remote_locations_normalise_without_touching_the_network():
    assert normalise_location("s3://b/p/./g.tar") == normalise_location("s3://b/p//g.tar")
    assert normalise_location("s3a://b/p/g.tar") == normalise_location("s3://b/p/g.tar")
    assert normalise_location("simplecache::s3://b/p/g.tar") == normalise_location("s3://b/p/g.tar")
    assert normalise_location("s3://b/p/g.tar") != normalise_location("s3://c/p/g.tar")
    assert normalise_location("memory://p/g.tar") != normalise_location("/p/g.tar")


# --- deleting shards ----------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    root.mkdir()
    return root


def _shard(path: Path, n: int = 3) -> ShardRecord:
    (record,) = write_samples(rows(n), str(path))
    return record


def _facts(path: Path) -> ShardRecord:
    data = path.read_bytes()
    return ShardRecord(str(path), len(data), None, hashlib.sha256(data).hexdigest())


def test_a_matching_shard_inside_the_store_is_deleted(store):
    record = _shard(store / "a.tar")
    report = delete_shards([record], stores=[str(store)])
    assert report.deleted == [record.url] and report.kept == []
    assert not Path(record.url).exists()


def test_a_file_outside_every_store_is_kept_even_when_its_hash_matches(tmp_path, store):
    secret = tmp_path / "home" / ".ssh" / "id_ed25519"
    secret.parent.mkdir(parents=True)
    secret.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    outside_shard = _shard(tmp_path / "elsewhere.tar")
    report = delete_shards([_facts(secret), outside_shard], stores=[str(store)])
    assert report.deleted == []
    assert [url for url, _ in report.kept] == [str(secret), outside_shard.url]
    assert all("outside" in reason for _, reason in report.kept)
    assert secret.exists() and Path(outside_shard.url).exists()


def test_dotdot_and_symlinks_cannot_leave_the_store(tmp_path, store):
    outside = _shard(tmp_path / "real.tar")
    (store / "link.tar").symlink_to(outside.url)
    (store / "sub").symlink_to(tmp_path)
    spellings = [
        f"{store}/../real.tar",
        f"{store}/link.tar",
        f"{store}/sub/real.tar",
        f"file://{store}/../real.tar",
    ]
    records = [
        ShardRecord(u, outside.size, outside.sample_count, outside.sha256) for u in spellings
    ]
    report = delete_shards(records, stores=[str(store)])
    assert report.deleted == []
    assert [url for url, _ in report.kept] == spellings
    assert Path(outside.url).exists() and (store / "link.tar").is_symlink()


def test_a_symlink_inside_the_store_to_a_shard_inside_it_is_kept(store):
    real = _shard(store / "real.tar")
    (store / "link.tar").symlink_to(real.url)
    record = ShardRecord(str(store / "link.tar"), real.size, real.sample_count, real.sha256)
    report = delete_shards([record], stores=[str(store)])
    assert report.deleted == [] and "symbolic link" in report.kept[0][1]
    assert (store / "link.tar").is_symlink() and Path(real.url).exists()


def test_a_file_that_is_not_a_shard_is_kept(store):
    notes = store / "notes.tar"
    notes.write_bytes(b"my notes, not a tar\n" * 40)
    txt = store / "notes.txt"
    txt.write_bytes(b"plain text")
    report = delete_shards([_facts(notes), _facts(txt)], stores=[str(store)])
    assert report.deleted == []
    reasons = dict(report.kept)
    assert "not a readable shard" in reasons[str(notes)]
    assert "not a shard file name" in reasons[str(txt)]
    assert notes.exists() and txt.exists()


def test_a_shard_whose_bytes_changed_is_kept(store):
    record = _shard(store / "a.tar", 3)
    _shard(store / "a.tar", 4)  # rewritten with other samples since it was indexed
    report = delete_shards([record], stores=[str(store)])
    assert report.deleted == []
    assert "sha256" in report.kept[0][1] or "size" in report.kept[0][1]
    assert Path(record.url).exists()


def test_same_size_other_bytes_is_kept(store):
    record = _shard(store / "a.tar", 3)
    data = bytearray(Path(record.url).read_bytes())
    data[600] ^= 0xFF  # inside the first member's payload: still a readable tar
    Path(record.url).write_bytes(bytes(data))
    report = delete_shards([record], stores=[str(store)])
    assert report.deleted == [] and "sha256" in report.kept[0][1]


def test_a_shard_without_a_recorded_sha256_is_kept_and_the_reason_says_so(store):
    record = _shard(store / "a.tar")
    report = delete_shards([ShardRecord(record.url)], stores=[str(store)])
    assert report.deleted == []
    assert "no sha256" in report.kept[0][1]
    assert Path(record.url).exists()


def test_relative_paths_and_non_regular_files_are_kept(store, monkeypatch):
    monkeypatch.chdir(store)
    record = _shard(store / "a.tar")
    os.mkfifo(store / "pipe.tar")
    report = delete_shards(
        [
            ShardRecord("a.tar", record.size, record.sample_count, record.sha256),
            ShardRecord(str(store / "pipe.tar"), 0, 0, hashlib.sha256(b"").hexdigest()),
        ],
        stores=[str(store)],
    )
    assert report.deleted == []
    reasons = dict(report.kept)
    assert "relative" in reasons["a.tar"]
    assert "not a regular file" in reasons[str(store / "pipe.tar")]


def test_missing_shards_are_reported_not_deleted(store):
    record = _shard(store / "a.tar")
    Path(record.url).unlink()
    report = delete_shards([record], stores=[str(store)])
    assert report.missing == [record.url] and report.deleted == []


@pytest.mark.parametrize(
    "spelling", ["{u}", "file://{u}", "{d}/./a.tar", "{d}//a.tar", "{d}/{{a,b}}.tar"]
)
def test_a_shard_another_entry_still_uses_is_kept_however_it_is_spelled(store, spelling):
    record = _shard(store / "a.tar")
    other = spelling.format(u=record.url, d=store)
    report = delete_shards([record], stores=[str(store)], in_use={other: "other"})
    assert report.deleted == []
    assert "still used by dataset 'other'" in report.kept[0][1]
    assert Path(record.url).exists()


def test_one_file_named_twice_by_the_entry_is_deleted_once(store):
    record = _shard(store / "a.tar")
    twice = ShardRecord(f"{store}/./a.tar", record.size, record.sample_count, record.sha256)
    report = delete_shards([record, twice], stores=[str(store)])
    assert report.deleted == [record.url] and report.failed == []


def test_plan_deletion_reads_no_file_and_names_the_candidates(tmp_path, store):
    inside = _shard(store / "a.tar")
    outside = _shard(tmp_path / "b.tar")
    candidates, kept = plan_deletion([inside, outside], stores=[str(store)])
    assert candidates == [inside]
    assert [url for url, _ in kept] == [outside.url]


def test_delete_shards_in_a_memory_store():
    fs = fsspec.filesystem("memory")
    (record,) = write_samples(rows(3), "memory://safety-store/x/a.tar")
    elsewhere = write_samples(rows(3), "memory://safety-other/a.tar")[0]
    report = delete_shards([record, elsewhere], stores=["memory://safety-store"])
    assert report.deleted == [record.url]
    assert [url for url, _ in report.kept] == [elsewhere.url]
    assert not fs.exists("/safety-store/x/a.tar") and fs.exists("/safety-other/a.tar")
    fs.rm("/safety-other", recursive=True)


# --- names ------------------------------------------------------------------------------

BAD_NAMES = ["evil\x1b[2J", "two\nlines", "csi\x9b31m", "del\x7f", "nul\x00", "rtl\u202egnp.exe"]


@pytest.fixture
def index(tmp_path: Path):
    with Index(tmp_path / "index.db") as ix:
        yield ix


@pytest.mark.parametrize("name", BAD_NAMES)
def test_new_dataset_names_with_control_characters_are_refused(index, tmp_path, name):
    record = _shard(tmp_path / "a.tar")

    @packable
    class Thing:
        idx: int

    ref = index.publish_schema(Thing)
    with pytest.raises(InvalidNameError, match="control character") as info:
        index.add_shards([record], name=name, schema_ref=ref)
    assert isinstance(info.value, ValueError)
    assert name not in str(info.value)  # the message shows it escaped, not raw
    assert index.list_datasets() == []
    index.add_shards([record], name="fine", schema_ref=ref)
    with pytest.raises(InvalidNameError):
        index.rename_dataset("fine", name)
    assert [e.name for e in index.list_datasets()] == ["fine"]


def test_new_shard_urls_with_control_characters_are_refused(index, tmp_path):
    @packable
    class Thing:
        idx: int

    ref = index.publish_schema(Thing)
    with pytest.raises(InvalidNameError, match="control character"):
        index.add_shards([f"{tmp_path}/a\x1b]0;pwned\x07.tar"], name="d", schema_ref=ref)
    assert index.list_datasets() == []


def test_schema_names_with_control_characters_are_refused(index):
    @packable
    class Thing:
        idx: int

    Thing.__name__ = "Thing\x1b[31m"
    with pytest.raises(InvalidNameError, match="control character"):
        index.publish_schema(Thing)
    assert index.list_schemas() == []


# --- odd inputs on the data path ----------------------------------------------------------


def test_a_reference_url_is_a_clear_error_not_a_type_error():
    with pytest.raises(UnsafeURLError, match="reference"):
        inspect_shard("reference://nothing.tar")


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "shard.tar"
    os.mkfifo(fifo)
    done: list[BaseException] = []

    def run() -> None:
        try:
            inspect_shard(str(fifo))
        except BaseException as exc:
            done.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():  # unblock the reader so the test process can end
        with open(fifo, "wb"):
            pass
        pytest.fail("inspect_shard blocked on a FIFO")
    assert isinstance(done[0], CorruptShardError)
    assert "not a regular file" in str(done[0])


def test_a_character_device_is_refused():
    with pytest.raises(CorruptShardError, match="not a regular file"):
        inspect_shard("/dev/zero")


class _Endless(io.RawIOBase):
    """A stream: ``head``, then zero bytes for ever; counts what was read."""

    def __init__(self, head: bytes) -> None:
        self.head = head
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = len(b)
        start = self.read_bytes
        chunk = self.head[start : start + n]
        b[: len(chunk)] = chunk
        b[len(chunk) : n] = bytes(n - len(chunk))
        self.read_bytes += n
        return n


class EndlessFileSystem(AbstractFileSystem):
    """``endless://empty`` streams zeros; ``endless://shard`` a small tar, then zeros."""

    protocol = "endless"
    opened: list[_Endless] = []

    def _open(self, path, mode="rb", **kwargs):
        head = b""
        if path.endswith("shard"):
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as tar:
                info = tarfile.TarInfo("k.msgpack")
                info.size = 1
                tar.addfile(info, io.BytesIO(b"\x80"))
            head = buf.getvalue()
        stream = _Endless(head)
        self.opened.append(stream)
        return io.BufferedReader(stream)

    def info(self, path, **kwargs):
        return {"name": path, "size": None, "type": "file"}


@pytest.fixture
def endless():
    fsspec.register_implementation("endless", EndlessFileSystem, clobber=True)
    EndlessFileSystem.opened.clear()
    yield EndlessFileSystem.opened
    importlib.import_module("fsspec.registry")._registry.pop("endless", None)


@pytest.mark.parametrize("url", ["endless://empty", "endless://shard"])
def test_an_endless_stream_is_read_with_a_bound(endless, url):
    with pytest.raises(CorruptShardError, match="end-of-archive") as info:
        inspect_shard(url)
    assert isinstance(info.value, AtdataLiteError)
    assert endless[0].read_bytes < 64 << 20


def test_import_skips_names_with_control_characters_and_says_why(tmp_path):
    from atdata_lite.index import open_backend
    from atdata_lite.testing import make_record, make_schema_row
    from atdata_lite.transfer import export_catalog, import_catalog

    source = open_backend(str(tmp_path / "old.db"))
    try:
        source.write_catalog(
            [make_schema_row("Good", "1.0.0"), make_schema_row("Bad\x1b[2J", "1.0.0")],
            [make_record("fine"), make_record("evil\x1b]0;x\x07\nrow")],
        )
    finally:
        source.close()
    backup = tmp_path / "backup.json"
    export_catalog(str(tmp_path / "old.db"), backup)
    report = import_catalog(backup, str(tmp_path / "new.db"))
    assert sorted(item.name for item in report.imported) == ["Good@1.0.0", "fine"]
    skipped = {item.key: item.reason for item in report.skipped}
    assert len(skipped) == 2
    assert all("control character" in reason for reason in skipped.values())
    with Index(tmp_path / "new.db") as index:
        assert [e.name for e in index.list_datasets()] == ["fine"]
