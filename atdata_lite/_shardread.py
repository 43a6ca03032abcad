"""Choosing how to read one shard: memory map, streamed scan, or the general reader.

:func:`read_shard` gives ``(key, {ext: payload})`` per sample, whatever the route:

* a regular local file: :func:`~atdata_lite._tarscan.scan_shard` over a read-only memory
  map (payloads are views of the page cache: no copy);
* any other stream (remote fsspec files, the shard cache, read-ahead buffers): the same scan
  over large buffered reads;
* compressed shards, and tar features the scan leaves aside: the general
  :func:`~atdata_lite.shards.iter_shard`, restarted from the beginning when the scan met
  such a feature mid-shard (the samples already yielded are skipped, still checked).

Memory maps: a shard must not be truncated in place while it is read (atdata-lite never
does; its writes replace files atomically). A file cut under a memory map makes the reading
process receive ``SIGBUS``, where a streamed read would raise an error.
"""

from __future__ import annotations

import mmap
import os
import stat
from collections.abc import Callable, Iterator
from itertools import islice
from typing import IO, Any

from ._tarscan import Run, Unsupported, scan_shard
from .errors import CorruptShardError
from .shards import iter_shard

__all__ = ["read_shard"]

Sample = tuple[str, dict[str, Any]]
# Streamed reads: large enough that a read costs little per member, small enough to stay
# far below a laptop's memory whatever the shard size.
_CHUNK = 4 << 20
_COMPRESSED = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")


def _local_map(stream: Any) -> mmap.mmap | None:
    """A read-only map of ``stream``'s file, if it is a non-empty regular local file."""
    try:
        fd = stream.fileno()
        info = os.fstat(fd)
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return None
    if not stat.S_ISREG(info.st_mode) or info.st_size == 0:
        return None
    try:
        mapped = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        return None
    if hasattr(mapped, "madvise"):
        mapped.madvise(mmap.MADV_SEQUENTIAL)
    return mapped


def _releaser(mapped: mmap.mmap) -> Callable[[int], None] | None:
    """Drops the pages of a map's part already read from the process (not from the page
    cache): the resident size of a long read stays flat. A sample still holding a view of
    a dropped page reads it again from the page cache, transparently."""
    if not hasattr(mapped, "madvise") or not hasattr(mmap, "MADV_DONTNEED"):
        return None
    done = 0

    def release(upto: int) -> None:
        nonlocal done
        aligned = upto - upto % mmap.PAGESIZE
        if aligned > done:
            mapped.madvise(mmap.MADV_DONTNEED, done, aligned - done)
            done = aligned

    return release


def _reader(stream: IO[bytes]) -> Callable[[bytes, int, int], tuple[bytes, int, int]]:
    """``refill`` for :func:`scan_shard` over a stream read in large chunks."""

    def refill(buf: bytes, pos: int, need: int) -> tuple[bytes, int, int]:
        parts = [buf[pos:]]
        have = len(parts[0])
        while have < need:
            chunk = stream.read(max(_CHUNK, need - have))
            if not chunk:
                break
            parts.append(chunk)
            have += len(chunk)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        return data, 0, len(data)

    return refill


def _general(
    stream: IO[bytes], url: str, expected_count: int | None, skip: int
) -> Iterator[Sample]:
    for raw in islice(iter_shard(stream, url, expected_count=expected_count), skip, None):
        yield raw["__key__"], {k: v for k, v in raw.items() if not k.startswith("__")}


def read_shard(
    stream: IO[bytes],
    url: str,
    *,
    expected_count: int | None = None,
    reopen: Callable[[], IO[bytes]] | None = None,
    runs: bool = False,
) -> Iterator[Sample | Run]:
    """Yield ``(key, {ext: payload})`` per sample of the shard ``stream`` holds.

    Args:
        stream: The open shard (positioned at its start). Not closed here.
        url: The shard's URL, for errors.
        expected_count: The number of samples the shard must hold, or None.
        reopen: Opens the shard again from its start, for a restart on the general reader
            when ``stream`` cannot seek; what it returns is closed here.
        runs: Stretches of one-member samples may come as one
            :class:`~atdata_lite._tarscan.Run` each (see ``scan_shard``).

    Payloads are ``memoryview`` objects (read-only) on the fast routes, ``bytes`` on the
    general one. Errors are those of :func:`~atdata_lite.shards.iter_shard`, and a
    ``CorruptShardError`` when a restart is needed but ``stream`` cannot seek and
    ``reopen`` is not given.
    """
    mapped = _local_map(stream)
    if mapped is not None:
        head = mapped[:6]
        buf: Any = mapped
        refill = None
    else:
        head = stream.read(_CHUNK) or b""
        buf = head
        refill = _reader(stream)
    if head.startswith(_COMPRESSED):
        if mapped is not None:
            stream.seek(0)
            yield from _general(stream, url, expected_count, 0)
            return
        from .shards import _Prefixed

        yield from _general(_Prefixed(head, stream), url, expected_count, 0)  # type: ignore[arg-type]
        return
    release = _releaser(mapped) if mapped is not None else None
    try:
        yield from scan_shard(
            buf, url, expected_count=expected_count, refill=refill, release=release, runs=runs
        )
        return
    except Unsupported as exc:
        done = exc.yielded
    del buf
    if stream.seekable():
        stream.seek(0)
        yield from _general(stream, url, expected_count, done)
        return
    if reopen is None:
        raise CorruptShardError(
            f"Shard {url} uses a tar feature that needs a second read from its start, and "
            "its stream cannot seek. Read it from a seekable file (download it, or read it "
            "through the shard cache)."
        )
    again = reopen()
    try:
        yield from _general(again, url, expected_count, done)
    finally:
        again.close()
