"""Read-ahead of shards (atdata_lite._readahead.prefetch): the same bytes in the same order as
reading directly, a bound on what is held ahead, errors at their own shard, a thread that
stops when the iterator is closed, a bounded wait on a silent source, and S3 through moto
(``prefetch`` itself, and ``Dataset`` with read-ahead on and off)."""

from __future__ import annotations

import gc
import io
import multiprocessing
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import IO

import pytest
from _data_helpers import Row, rows

from atdata_lite import Dataset
from atdata_lite._readahead import prefetch
from atdata_lite.cache import ShardCache
from atdata_lite.errors import (
    AtdataLiteError,
    CorruptShardError,
    ReadAheadStalledError,
    ShardNotFoundError,
    ShardSkippedWarning,
)
from atdata_lite.samples import sample_key
from atdata_lite.shards import iter_shard, write_samples
from atdata_lite.sources import open_url

# How long a test waits for something that should happen at once (never reached when green).
PATIENCE = 30.0


def _blobs(sizes: list[int]) -> dict[str, bytes]:
    """Shard URL -> distinct bytes, so a byte from the wrong shard or place shows."""
    out = {}
    for i, size in enumerate(sizes):
        pattern = bytes((i * 7 + j) % 251 for j in range(251))
        out[f"mem://shard-{i:03d}"] = (pattern * (size // 251 + 1))[:size]
    return out


class _Source:
    """``open_stream`` over in-memory shards that counts what was read and what is open.

    ``ahead`` (bytes read from the source minus bytes the consumer took) is sampled after
    every read of the source; ``peak`` keeps its largest value.
    """

    def __init__(self, blobs: dict[str, bytes], fail_at: dict[str, int] | None = None) -> None:
        self.blobs = blobs
        self.fail_at = fail_at or {}
        self.lock = threading.Lock()
        self.read = 0
        self.consumed = 0
        self.peak = 0
        self.opened: list[str] = []
        self.open_streams: set[int] = set()
        self.block: dict[str, threading.Event] = {}  # url -> event that must be set to open

    def __call__(self, url: str) -> IO[bytes]:
        if url in self.block:
            self.block[url].wait(PATIENCE)
        if url not in self.blobs:
            raise ShardNotFoundError(f"Shard not found: {url}")
        with self.lock:
            self.opened.append(url)
        return _CountingStream(self, url)

    def took(self, n: int) -> None:
        with self.lock:
            self.consumed += n


class _CountingStream(io.BytesIO):
    def __init__(self, source: _Source, url: str) -> None:
        super().__init__(source.blobs[url])
        self.source = source
        self.url = url
        with source.lock:
            source.open_streams.add(id(self))

    def read(self, size: int | None = -1) -> bytes:
        limit = self.source.fail_at.get(self.url)
        if limit is not None and self.tell() >= limit:
            raise OSError(f"connection reset while reading {self.url}")
        data = super().read(size)
        with self.source.lock:
            self.source.read += len(data)
            self.source.peak = max(self.source.peak, self.source.read - self.source.consumed)
        return data

    def close(self) -> None:
        with self.source.lock:
            self.source.open_streams.discard(id(self))
        super().close()


def _readahead_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "atdata-lite-readahead"]


def _no_readahead_thread_left() -> bool:
    deadline = time.monotonic() + PATIENCE
    while _readahead_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    return not _readahead_threads()


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    yield
    gc.collect()
    assert _no_readahead_thread_left(), "a read-ahead thread outlived its test"


def _read_style(style: str, stream: IO[bytes], took: Callable[[int], None]) -> bytes:
    if style == "read()":
        data = stream.read()
        took(len(data))
        return data
    out = bytearray()
    if style == "readinto":
        buf = bytearray(1000)
        while n := stream.readinto(buf):
            out += buf[:n]
            took(n)
        return bytes(out)
    read = stream.read1 if style == "read1" else stream.read  # type: ignore[attr-defined]
    while data := read(777):
        out += data
        took(len(data))
    return bytes(out)


# --- the same bytes, in the same order --------------------------------------------------


@pytest.mark.parametrize("style", ["read(n)", "read()", "readinto"])
@pytest.mark.parametrize(("max_bytes", "chunk_bytes"), [(10_000, 1_000), (3_000, 4_096), (1, 1)])
def test_bytes_and_order_equal_direct_reads(style, max_bytes, chunk_bytes):
    blobs = _blobs([5_000, 0, 1, 4_096, 12_345, 999])
    source = _Source(blobs)
    got = []
    for url, get_stream in prefetch(
        list(blobs), source, max_bytes=max_bytes, chunk_bytes=chunk_bytes
    ):
        with get_stream() as stream:
            got.append((url, _read_style(style, stream, source.took)))
    assert got == list(blobs.items())
    assert source.opened == list(blobs)
    assert source.open_streams == set()


def test_real_shards_decode_to_the_same_samples(tmp_path):
    records = write_samples(rows(40), str(tmp_path / "s-%03d.tar"), maxcount=7)
    urls = [r.url for r in records]

    def samples(stream: IO[bytes], url: str) -> list[tuple[str, int]]:
        return [
            (raw["__key__"], Row.from_bytes(raw["msgpack"]).idx) for raw in iter_shard(stream, url)
        ]

    direct = []
    for url in urls:
        with open_url(url) as f:
            direct += samples(f, url)
    ahead = []
    for url, get_stream in prefetch(urls, open_url, max_bytes=4096, chunk_bytes=1024):
        ahead += samples(get_stream(), url)
    assert ahead == direct
    assert [i for _, i in ahead] == list(range(40))


def test_get_stream_twice_is_the_same_stream_and_too_late_is_an_error():
    blobs = _blobs([300, 300])
    source = _Source(blobs)
    it = prefetch(list(blobs), source, max_bytes=1000, chunk_bytes=100)
    _, first = next(it)
    assert first() is first()
    assert first().read(10) == blobs["mem://shard-000"][:10]
    _, second = next(it)
    with pytest.raises(ValueError, match="closed shard stream"):
        first().read(1)
    assert second().read() == blobs["mem://shard-001"]
    it.close()


def test_an_unread_shard_is_skipped_and_the_rest_still_come():
    blobs = _blobs([5_000, 5_000, 5_000])
    source = _Source(blobs)
    out = {}
    for url, get_stream in prefetch(list(blobs), source, max_bytes=2_000, chunk_bytes=500):
        if url.endswith("000"):
            continue  # never asked for
        if url.endswith("001"):
            assert get_stream().read(10) == blobs[url][:10]  # and then left
            continue
        out[url] = get_stream().read()
    assert out == {"mem://shard-002": blobs["mem://shard-002"]}
    # Shards the consumer left were abandoned, not downloaded to the end while it waited.
    assert source.read < sum(map(len, blobs.values()))
    assert source.open_streams == set()


# --- a bound on what is held ahead ------------------------------------------------------


@pytest.mark.parametrize(
    ("max_bytes", "chunk_bytes"), [(8_000, 1_000), (2_500, 1_000), (1_000, 3_000), (1, 700)]
)
def test_bytes_held_ahead_stay_within_the_bound(max_bytes, chunk_bytes):
    blobs = _blobs([6_000, 2_000, 9_000, 100, 7_000, 3_000])
    source = _Source(blobs)
    got = {}
    for url, get_stream in prefetch(
        list(blobs), source, max_bytes=max_bytes, chunk_bytes=chunk_bytes
    ):
        stream = get_stream()
        time.sleep(0.01)  # let the thread run ahead as far as it may
        # read1: one chunk per call, so the count of what the consumer took never lags
        # behind a chunk the stream has already released.
        got[url] = _read_style("read1", stream, source.took)
    assert got == blobs
    assert 0 < source.peak <= max_bytes + chunk_bytes
    assert source.peak <= max(max_bytes, chunk_bytes)  # the chunk being read counts too


def test_later_shards_are_read_while_the_consumer_holds_the_first():
    blobs = _blobs([3_000, 3_000, 3_000, 3_000])
    source = _Source(blobs)
    it = prefetch(list(blobs), source, max_bytes=7_000, chunk_bytes=1_000)
    url, get_stream = next(it)
    deadline = time.monotonic() + PATIENCE
    while source.read < 7_000 and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.05)
    # Nothing consumed yet: the thread went past shard 0 through shard 1 into shard 2, up to
    # the bound and no further.
    assert source.opened == list(blobs)[:3]
    assert source.read == 7_000
    assert get_stream().read() == blobs[url]
    it.close()


# --- errors stay with their shard -------------------------------------------------------


def test_errors_surface_at_their_shard_and_later_shards_still_come():
    blobs = _blobs([2_000, 2_000, 2_000, 2_000, 2_000])
    urls = list(blobs)
    del blobs[urls[1]]  # missing: opening it fails
    source = _Source(blobs, fail_at={urls[3]: 1_000})  # reading it fails halfway
    events = []
    for url, get_stream in prefetch(urls, source, max_bytes=3_000, chunk_bytes=500):
        try:
            data = get_stream().read()
        except (ShardNotFoundError, OSError) as exc:
            events.append((url, type(exc).__name__))
            continue  # as on_shard_error="skip" does
        events.append((url, len(data)))
        assert data == blobs[url]
    assert events == [
        (urls[0], 2_000),
        (urls[1], "ShardNotFoundError"),
        (urls[2], 2_000),
        (urls[3], "OSError"),
        (urls[4], 2_000),
    ]
    assert source.open_streams == set()


def test_a_read_error_comes_after_the_bytes_before_it():
    blobs = _blobs([4_000])
    (url,) = blobs
    source = _Source(blobs, fail_at={url: 2_000})
    it = prefetch([url], source, max_bytes=10_000, chunk_bytes=500)
    _, get_stream = next(it)
    stream = get_stream()
    assert stream.read(2_000) == blobs[url][:2_000]
    with pytest.raises(OSError, match=re.escape(f"while reading {url}")):
        stream.read(1)
    with pytest.raises(OSError, match="connection reset"):  # and again, not an empty read
        stream.read(1)
    it.close()


def test_corrupt_shard_error_keeps_its_class(tmp_path):
    records = write_samples(rows(9), str(tmp_path / "s-%03d.tar"), maxcount=3)
    bad = tmp_path / "s-001.tar"
    bad.write_bytes(bad.read_bytes()[:1500])  # cut short
    seen: list[int | str] = []
    for url, get_stream in prefetch([r.url for r in records], open_url, max_bytes=1 << 20):
        try:
            seen += [Row.from_bytes(s["msgpack"]).idx for s in iter_shard(get_stream(), url)]
        except CorruptShardError as exc:
            assert "s-001.tar" in str(exc)
            seen.append("corrupt")
    assert seen[:3] == [0, 1, 2] and seen[-4:] == ["corrupt", 6, 7, 8]
    partial = seen[3:-4]
    assert partial == [3, 4, 5][: len(partial)]


def test_an_error_from_the_url_iterable_comes_after_the_shards_before_it():
    blobs = _blobs([100, 100])

    def urls() -> Iterator[str]:
        yield from blobs
        raise RuntimeError("listing failed")

    source = _Source(blobs)
    got = []
    with pytest.raises(RuntimeError, match="listing failed"):
        for _url, get_stream in prefetch(urls(), source, max_bytes=1_000):
            got.append(get_stream().read())
    assert got == list(blobs.values())


def test_bad_arguments_are_refused_at_the_call():
    with pytest.raises(ValueError, match="max_bytes"):
        prefetch([], _Source({}), max_bytes=0)
    with pytest.raises(ValueError, match="chunk_bytes"):
        prefetch([], _Source({}), max_bytes=1, chunk_bytes=0)
    with pytest.raises(ValueError, match="stall_timeout"):
        prefetch([], _Source({}), max_bytes=1, stall_timeout=0)


# --- closing stops the thread -----------------------------------------------------------


def test_no_thread_before_the_first_next_and_none_after_the_last():
    blobs = _blobs([100, 100])
    it = prefetch(list(blobs), _Source(blobs), max_bytes=1_000)
    assert _readahead_threads() == []
    next(it)
    assert len(_readahead_threads()) == 1
    assert len(list(it)) == 1
    assert _no_readahead_thread_left()


def _consume_then(stop: str, source: _Source, urls: list[str]) -> None:
    it = prefetch(urls, source, max_bytes=2_000, chunk_bytes=500)
    if stop == "break":
        for _, get_stream in it:
            get_stream().read(10)
            break
    elif stop == "exception":
        with pytest.raises(KeyError):
            for _, get_stream in it:
                get_stream().read(10)
                raise KeyError("the consumer failed")
    elif stop == "garbage":
        _, get_stream = next(it)
        get_stream().read(10)
        del it, get_stream


@pytest.mark.parametrize("stop", ["break", "exception", "garbage"])
def test_closing_early_stops_the_thread_and_closes_streams(stop):
    blobs = _blobs([50_000] * 10)
    source = _Source(blobs)
    _consume_then(stop, source, list(blobs))
    gc.collect()
    assert _no_readahead_thread_left()
    assert source.open_streams == set()
    assert len(source.opened) < len(blobs)  # it stopped reading ahead


def test_closing_while_the_thread_waits_on_the_consumer_does_not_hang():
    blobs = _blobs([10_000] * 4)
    source = _Source(blobs)
    it = prefetch(list(blobs), source, max_bytes=1_000, chunk_bytes=1_000)
    next(it)
    deadline = time.monotonic() + PATIENCE
    while source.read < 1_000 and time.monotonic() < deadline:
        time.sleep(0.005)
    start = time.monotonic()
    it.close()
    assert time.monotonic() - start < PATIENCE
    assert _no_readahead_thread_left()
    assert source.open_streams == set()


# --- every wait is bounded --------------------------------------------------------------


def test_a_silent_source_raises_a_stall_error_naming_the_shard():
    blobs = _blobs([100, 100])
    urls = list(blobs)
    source = _Source(blobs)
    source.block[urls[1]] = threading.Event()  # opening shard 1 hangs
    it = prefetch(urls, source, max_bytes=1_000, stall_timeout=0.2)
    _, get_stream = next(it)
    assert get_stream().read() == blobs[urls[0]]
    _url, get_stream = next(it)  # the URL is known before the shard is open
    with pytest.raises(ReadAheadStalledError) as info:
        get_stream()
    message = str(info.value)
    assert f"opening {urls[1]}" in message and "0.2 s" in message
    assert "stall timeout" in message
    assert isinstance(info.value, AtdataLiteError) and isinstance(info.value, TimeoutError)
    del info
    source.block[urls[1]].set()
    it.close()
    assert _no_readahead_thread_left()


def test_a_stalled_read_raises_from_read():
    release = threading.Event()

    class Hanging(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:
            release.wait(PATIENCE)
            return 0

    it = prefetch(["mem://slow"], lambda url: Hanging(), max_bytes=100, stall_timeout=0.2)
    _, get_stream = next(it)
    stream = get_stream()
    with pytest.raises(ReadAheadStalledError, match=re.escape("reading mem://slow at byte 0")):
        stream.read(1)
    release.set()
    it.close()


def _child_reads(it, queue) -> None:  # runs in a forked process
    queue.put([get_stream().read() for _, get_stream in it])


def test_an_iterator_made_before_a_fork_reads_in_the_child():
    blobs = _blobs([1_000, 2_000])
    it = prefetch(list(blobs), _Source(blobs), max_bytes=1_500, chunk_bytes=500)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_reads, args=(it, queue))
    child.start()
    try:
        assert queue.get(timeout=PATIENCE) == list(blobs.values())
    finally:
        child.join(PATIENCE)
    assert child.exitcode == 0
    assert _readahead_threads() == []  # the parent never started one
    it.close()


# --- S3 (moto server on loopback, s3fs) ---------------------------------------------------


@pytest.mark.s3
def test_s3_shards_read_ahead_equal_direct_reads(s3_bucket):
    bucket, options = s3_bucket
    records = write_samples(
        rows(30), f"{bucket}/ra/s-%03d.tar", maxcount=4, storage_options=options
    )
    urls = [r.url for r in records]
    urls.insert(3, f"{bucket}/ra/missing.tar")
    uncached = {**options, "default_cache_type": "none"}

    def open_stream(url: str) -> IO[bytes]:
        return open_url(url, storage_options=uncached)

    got: list[int | str] = []
    for url, get_stream in prefetch(urls, open_stream, max_bytes=4096, chunk_bytes=1024):
        try:
            got += [Row.from_bytes(s["msgpack"]).idx for s in iter_shard(get_stream(), url)]
        except ShardNotFoundError as exc:
            assert "missing.tar" in str(exc)
            got.append("missing")
    assert got == [*range(12), "missing", *range(12, 30)]


# --- Dataset over S3: read-ahead on and off give the same samples -------------------------


def _s3_dataset_urls(s3_bucket, missing_at: int | None = None) -> tuple[list[str], dict]:
    """URLs of 4 small shards (12 rows) on the moto server, a missing one inserted at
    ``missing_at``; and the storage options."""
    bucket, options = s3_bucket
    records = write_samples(
        rows(12), f"{bucket}/ds/s-%03d.tar", maxcount=3, storage_options=options
    )
    urls = [r.url for r in records]
    if missing_at is not None:
        urls.insert(missing_at, f"{bucket}/ds/missing.tar")
    # One s3fs instance for all the reads: a fresh one per shard costs a new botocore
    # client (~0.4 s). Listings stay uncached, and every shard is written by now.
    return urls, {**options, "skip_instance_cache": False}


def _epoch(urls, options, readahead, cache, **kwargs) -> list[tuple]:
    ds = Dataset[Row](urls, storage_options=options, cache=cache, readahead=readahead, **kwargs)
    return [(sample_key(s), s.idx, s.label, s.vec.tolist()) for s in ds.ordered()]


def _cache_setting(cache: str, tmp_path) -> ShardCache | bool:
    return False if cache == "off" else ShardCache(tmp_path / f"cache-{uuid.uuid4().hex}")


# (readahead, shard cache): readahead=1 is a bound below one chunk, so every chunk is read
# alone; with the shard cache, the thread reads the cached files.
SIDES = [(None, "off"), (1, "off"), (None, "on")]


@pytest.mark.s3
@pytest.mark.parametrize(("readahead", "cache"), SIDES)
def test_dataset_on_s3_yields_the_same_samples_with_and_without_readahead(
    s3_bucket, tmp_path, readahead, cache
):
    urls, options = _s3_dataset_urls(s3_bucket)
    direct = _epoch(urls, options, 0, _cache_setting(cache, tmp_path))
    assert [idx for _, idx, _, _ in direct] == list(range(12))
    assert _epoch(urls, options, readahead, _cache_setting(cache, tmp_path)) == direct


@pytest.mark.s3
@pytest.mark.parametrize(("readahead", "cache"), SIDES)
def test_dataset_on_s3_skips_a_missing_shard_in_the_middle_as_without_readahead(
    s3_bucket, tmp_path, readahead, cache
):
    urls, options = _s3_dataset_urls(s3_bucket, missing_at=2)
    got = {}
    for ra in (0, readahead):
        with pytest.warns(ShardSkippedWarning) as warned:
            got[ra] = _epoch(
                urls, options, ra, _cache_setting(cache, tmp_path), on_shard_error="skip"
            )
        skipped = [str(w.message) for w in warned if w.category is ShardSkippedWarning]
        assert len(skipped) == 1 and "missing.tar" in skipped[0], skipped
    assert [idx for _, idx, _, _ in got[0]] == list(range(12))
    assert got[readahead] == got[0]


@pytest.mark.s3
@pytest.mark.parametrize("readahead", [0, None])
def test_dataset_on_s3_raises_at_a_missing_shard_after_the_samples_before_it(s3_bucket, readahead):
    urls, options = _s3_dataset_urls(s3_bucket, missing_at=2)
    ds = Dataset[Row](urls, storage_options=options, cache=False, readahead=readahead)
    seen = []
    with pytest.raises(ShardNotFoundError, match=r"missing\.tar"):
        for s in ds.ordered():
            seen.append(s.idx)
    assert seen == list(range(6))


@pytest.mark.s3
def test_dataset_on_s3_leaves_no_readahead_thread_after_a_break(s3_bucket):
    urls, options = _s3_dataset_urls(s3_bucket)
    # A bound of one chunk: at the break the thread is still waiting to read on, so only
    # stopping it ends it (with the default bound it would read these small shards to the
    # end and finish by itself).
    ds = Dataset[Row](urls, storage_options=options, cache=False, readahead=1)
    for s in ds.ordered():
        assert len(_readahead_threads()) == 1  # it does read ahead
        if s.idx == 4:  # in the second shard of four
            break
    # No gc.collect(): the loop's iterator is gone at the break, and its thread with it.
    assert _no_readahead_thread_left()
