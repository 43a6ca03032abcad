"""Bounded read-ahead for remote shards: download the next shards while this one is decoded.

:func:`prefetch` runs one background thread that opens shard ``i+1``, ``i+2``, ... and reads
their bytes in chunks while the consumer decodes shard ``i``, so a training loop does not
wait for each shard's download after finishing the previous one. What it holds is bounded:

* bytes: read but not yet consumed, across shards, at most ``max(max_bytes, chunk_bytes)``
  (the chunk being read counts from before its read starts; a chunk is released once the
  consumer has read all of it or moved past its shard). A chunk larger than ``max_bytes``
  is read only when nothing else is held, one at a time, so it never deadlocks;
* shards: at most ``_MAX_SHARDS_AHEAD`` shards beyond the consumer's (empty or missing
  shards hold no bytes, and must not let the thread run through a whole list);
* open streams: one, the shard the thread is reading; each is closed by the thread once
  read to its end, on an error, or when the consumer has moved past it.

The consumer and the thread share one :class:`threading.Condition` and the queue it guards,
nothing else. Every wait of the consumer is bounded by ``stall_timeout``: when the thread
delivers nothing for that long, :class:`~atdata_lite.errors.ReadAheadStalledError` names the
shard and what the thread was doing. The thread waits for the consumer (when the bound is
reached) as long as the iterator lives; closing or dropping the iterator stops it.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

from .errors import ReadAheadStalledError

__all__ = ["DEFAULT_STALL_TIMEOUT", "prefetch"]

#: Seconds without progress from the background reader before the consumer gives up.
DEFAULT_STALL_TIMEOUT = 120.0
# How many shards the thread may start beyond the consumer's: shards that hold no bytes
# (empty, missing) would otherwise let it run through the whole list.
_MAX_SHARDS_AHEAD = 8
# How long closing the iterator waits for the thread to finish a read already under way.
_JOIN_TIMEOUT = 5.0
# The consumer re-checks that the thread is alive this often while it waits.
_POLL = 1.0

# Queue item kinds, in the order the thread sends them for one shard:
# _URL, then _ERROR or (_OPENED, _CHUNK..., _END or _ERROR); _DONE or _FAIL after the last.
_URL, _OPENED, _CHUNK, _END, _ERROR, _DONE, _FAIL = range(7)


def prefetch(
    urls: Iterable[str],
    open_stream: Callable[[str], IO[bytes]],
    *,
    max_bytes: int,
    chunk_bytes: int = 8 << 20,
    stall_timeout: float = DEFAULT_STALL_TIMEOUT,
) -> Iterator[tuple[str, Callable[[], IO[bytes]]]]:
    """Read shards ahead of their consumer, in one background thread, within a byte bound.

    For each URL in order, yield ``(url, get_stream)``. ``get_stream()`` returns a readable
    binary file (``read(n)``, ``read()``, ``readinto(b)``, ``close()``) over that shard's
    bytes, served from chunks the background thread has already read: while the consumer
    reads shard ``i``, the thread opens and reads shards ``i+1``, ``i+2``, ... as far as
    ``max_bytes`` allows. ``get_stream()`` may be called more than once (the same file
    comes back); the file is valid until the next item is taken from the iterator, which
    closes it and discards what is left of its shard (so a shard the consumer stops
    reading early, e.g. after an error, is not downloaded to its end).

    Errors stay with their shard: an error from ``open_stream(url)`` is raised by that
    shard's ``get_stream()``, an error while reading it by a ``read`` of its file, in the
    consumer, at that shard's turn, with its own class (``ShardNotFoundError`` stays a
    ``ShardNotFoundError``). Later shards are still read, so per-shard error handling
    (``on_shard_error="skip"``) works as without read-ahead. An error from iterating
    ``urls`` is raised by the iterator itself, after the shards before it.

    The thread is created on the first ``next()``, in the process that iterates, so an
    iterator created before a ``DataLoader`` forks its workers works in each worker.
    Closing the iterator (``break`` out of a ``for`` loop, an exception in the loop body, or
    the iterator being garbage collected) stops the thread and closes the stream it has
    open; it waits up to a few seconds for a read already under way to return (a read
    blocked longer finishes in the background: the thread is a daemon and exits after it).

    Args:
        urls: The shard URLs, in reading order. They are iterated by the background thread:
            pass a list, or an iterator that may be advanced from another thread.
        open_stream: Opens one shard for reading (called in the background thread; the
            thread closes what it returns). It may raise, e.g. ``ShardNotFoundError``.
        max_bytes: Most bytes held ahead: read from the shards but not yet consumed, across
            shards, including the chunk being read. A chunk larger than this is still
            read, alone (the bound is then ``chunk_bytes``).
        chunk_bytes: Bytes asked of the shard's stream per read. Each read is one request
            on an object store opened without a cache.
        stall_timeout: Seconds the consumer waits for the thread to deliver anything (a
            chunk, the end of a shard, an error) before giving up.

    Returns:
        An iterator of ``(url, get_stream)`` pairs, one per URL, in order.

    Raises:
        ValueError: ``max_bytes``, ``chunk_bytes`` or ``stall_timeout`` is not positive
            (raised by this call).
        ReadAheadStalledError: While iterating or reading: the thread made no progress for
            ``stall_timeout`` seconds (the message names the shard and what the thread was
            doing), or the thread is gone (the process forked after iteration started).
    """
    if max_bytes < 1 or chunk_bytes < 1:
        raise ValueError(
            f"max_bytes ({max_bytes}) and chunk_bytes ({chunk_bytes}) must be positive."
        )
    if not stall_timeout > 0:
        raise ValueError(f"stall_timeout ({stall_timeout}) must be a positive number of seconds.")
    return _iterate(_Feed(urls, open_stream, max_bytes, chunk_bytes, stall_timeout))


def _iterate(feed: _Feed) -> Iterator[tuple[str, Callable[[], IO[bytes]]]]:
    feed.start()  # on the first next(): in the process (and thread) that iterates
    try:
        index = 0
        while True:
            url = feed.take_url(index)
            if url is None:
                return
            shard = _Shard(feed, index, url)
            yield url, shard.open
            shard.release()
            index += 1
    finally:
        feed.stop()


class _Item:
    __slots__ = ("data", "index", "kind")

    def __init__(self, index: int, kind: int, data: Any = None) -> None:
        self.index = index
        self.kind = kind
        self.data = data


class _Feed:
    """The queue between the background thread and the consumer, and the thread itself.

    Everything below ``_cond`` is read and written only while holding it.
    """

    def __init__(
        self,
        urls: Iterable[str],
        open_stream: Callable[[str], IO[bytes]],
        max_bytes: int,
        chunk_bytes: int,
        stall_timeout: float,
    ) -> None:
        self._urls = urls
        self._open_stream = open_stream
        self._max_bytes = max_bytes
        self._chunk_bytes = chunk_bytes
        self._stall_timeout = stall_timeout
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._cond = threading.Condition()
        self._items: deque[_Item] = deque()
        self._held = 0  # bytes queued, being read, or held by the consumer's current chunk
        self._current = 0  # the consumer's shard: items of earlier shards are dropped
        self._stopped = False
        self._doing = "starting"  # what the thread is doing, for the stall message

    # --- the consumer's side ---------------------------------------------------------

    def start(self) -> None:
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name="atdata-lite-readahead", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (it closes its open stream) and wait a bounded time for it."""
        with self._cond:
            self._stopped = True
            self._items.clear()
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(_JOIN_TIMEOUT)

    def take_url(self, index: int) -> str | None:
        """Shard ``index``'s URL, or ``None`` after the last one."""
        with self._cond:
            item = self._front(index, "the next shard URL")
            if item.kind == _DONE:
                return None
            if item.kind == _FAIL:
                raise item.data
            self._items.popleft()
            assert item.kind == _URL and item.index == index
            url: str = item.data
            return url

    def take_opened(self, index: int, url: str) -> None:
        """Wait until shard ``index`` is open; raise what opening it raised."""
        with self._cond:
            item = self._front(index, url)
            assert item.index == index and item.kind in (_OPENED, _ERROR)
            self._items.popleft()
            if item.kind == _ERROR:
                raise item.data

    def take_chunk(self, index: int, url: str, done: int) -> bytes | None:
        """Free ``done`` bytes (the chunk just consumed) and take shard ``index``'s next
        chunk: ``None`` at its end; raise what reading it raised."""
        with self._cond:
            self._free(done)
            item = self._front(index, url)
            assert item.index == index and item.kind in (_CHUNK, _END, _ERROR)
            self._items.popleft()
            if item.kind == _ERROR:
                raise item.data
            data: bytes | None = item.data  # a chunk stays counted until consumed
            return data

    def release(self, index: int, done: int) -> None:
        """The consumer is done with shard ``index`` (and holds ``done`` bytes of it no
        more): drop what is queued of it and let the thread abandon it."""
        with self._cond:
            self._free(done)
            self._current = max(self._current, index + 1)
            while self._items and self._items[0].index <= index:
                item = self._items.popleft()
                if item.kind == _CHUNK:
                    self._held -= len(item.data)
            self._cond.notify_all()

    def _free(self, n: int) -> None:
        if n:
            self._held -= n
            self._cond.notify_all()

    def _front(self, index: int, what: str) -> _Item:
        """The first queued item, waiting for one at most ``stall_timeout`` (lock held)."""
        deadline = time.monotonic() + self._stall_timeout
        while not self._items:
            if self._stopped:
                raise ValueError("I/O operation on a shard stream whose read-ahead is closed.")
            thread = self._thread
            if os.getpid() != self._pid or thread is None or not thread.is_alive():
                raise ReadAheadStalledError(
                    f"Read-ahead stopped: its background reader is gone while waiting for "
                    f"{what}. This happens when a process forks after iterating started; "
                    "start iterating in the process that reads (e.g. inside each DataLoader "
                    "worker)."
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ReadAheadStalledError(
                    f"Read-ahead stalled: no data for {self._stall_timeout:g} s while "
                    f"waiting for {what}; the background reader was {self._doing}. The "
                    "storage is not answering: check the network and the endpoint, raise "
                    "the stall timeout if reads are only slow, or read without read-ahead."
                )
            self._cond.wait(min(remaining, _POLL))
        return self._items[0]

    # --- the background thread ---------------------------------------------------------

    def _put(self, index: int, kind: int, data: Any = None) -> bool:
        """Queue an item (lock held); False once stopped."""
        if self._stopped:
            return False
        self._items.append(_Item(index, kind, data))
        self._cond.notify_all()
        return True

    def _run(self) -> None:
        index = -1
        try:
            for index, url in enumerate(self._urls):
                with self._cond:
                    while not self._stopped and index - self._current >= _MAX_SHARDS_AHEAD:
                        self._cond.wait()
                    self._doing = f"opening {url}"
                    if not self._put(index, _URL, url):
                        return
                if not self._read_shard(index, url):
                    return
        except BaseException as exc:  # iterating urls failed: the consumer raises it
            with self._cond:
                self._doing = "listing the next shard URL"
                self._put(index + 1, _FAIL, exc)
            return
        with self._cond:
            self._doing = "done"
            self._put(index + 1, _DONE)

    def _read_shard(self, index: int, url: str) -> bool:
        """Open and read one shard into the queue; False once stopped."""
        try:
            stream = self._open_stream(url)
        except BaseException as exc:
            with self._cond:
                return self._put(index, _ERROR, exc)
        try:
            with self._cond:
                if not self._put(index, _OPENED):
                    return False
            position = 0
            while True:
                with self._cond:
                    while not (
                        self._stopped
                        or self._current > index
                        or self._held == 0
                        or self._held + self._chunk_bytes <= self._max_bytes
                    ):
                        self._doing = f"waiting for the consumer (shard {url})"
                        self._cond.wait()
                    if self._stopped:
                        return False
                    if self._current > index:
                        return True  # the consumer moved past this shard
                    self._held += self._chunk_bytes  # the read's bytes count from now on
                    self._doing = f"reading {url} at byte {position}"
                try:
                    data = stream.read(self._chunk_bytes)
                except BaseException:
                    with self._cond:
                        self._held -= self._chunk_bytes
                    raise
                with self._cond:
                    self._held -= self._chunk_bytes
                    if self._stopped:
                        return False
                    if self._current > index:
                        self._cond.notify_all()
                        return True
                    if not data:
                        return self._put(index, _END)
                    self._held += len(data)
                    position += len(data)
                    self._put(index, _CHUNK, bytes(data))
        except BaseException as exc:
            with self._cond:
                return self._put(index, _ERROR, exc)
        finally:
            with contextlib.suppress(Exception):  # read-only: nothing is lost if it fails
                stream.close()


class _Shard:
    """One yielded shard: ``open`` is the ``get_stream`` handed to the consumer."""

    def __init__(self, feed: _Feed, index: int, url: str) -> None:
        self._feed = feed
        self._index = index
        self._url = url
        self._stream: _ShardStream | None = None
        self._error: BaseException | None = None
        self._released = False

    def open(self) -> IO[bytes]:
        if self._stream is None:
            if self._released:
                raise ValueError(
                    f"The stream of shard {self._url} was asked for after the read-ahead "
                    "iterator moved on to the next shard; call get_stream() before that."
                )
            if self._error is not None:
                raise self._error
            try:
                self._feed.take_opened(self._index, self._url)
            except BaseException as exc:
                self._error = exc
                raise
            self._stream = _ShardStream(self._feed, self._index, self._url)
        return self._stream  # type: ignore[return-value]  # a BufferedIOBase is an IO[bytes]

    def release(self) -> None:
        self._released = True
        if self._stream is not None:
            self._stream.close()
        else:
            self._feed.release(self._index, 0)


class _ShardStream(io.BufferedIOBase):
    """A shard's bytes, served from the chunks the background thread read."""

    def __init__(self, feed: _Feed, index: int, url: str) -> None:
        super().__init__()
        self.name = url
        self._feed = feed
        self._index = index
        self._buf: bytes = b""
        self._pos = 0
        self._eof = False
        self._error: BaseException | None = None

    def readable(self) -> bool:
        return True

    def _fill(self) -> bool:
        """Make ``_buf`` hold unread bytes; False at the end of the shard."""
        if self._pos < len(self._buf):
            return True
        if self.closed:
            raise ValueError(f"I/O operation on a closed shard stream ({self.name}).")
        if self._error is not None:
            raise self._error
        if self._eof:
            return False
        done, self._buf, self._pos = len(self._buf), b"", 0
        try:
            data = self._feed.take_chunk(self._index, self.name, done)
        except BaseException as exc:
            self._error = exc
            raise
        if data is None:
            self._eof = True
            return False
        self._buf = data
        return True

    def read1(self, size: int | None = -1) -> bytes:
        """At most ``size`` bytes (all of the current chunk when negative), from one chunk."""
        if size == 0 or not self._fill():
            return b""
        if self._pos == 0 and (size is None or size < 0 or size >= len(self._buf)):
            data = self._buf  # the whole chunk, without a copy
        else:
            end = len(self._buf) if size is None or size < 0 else self._pos + size
            data = self._buf[self._pos : end]
        self._pos += len(data)
        return data

    def readinto1(self, b: Any) -> int:
        if not self._fill():
            return 0
        view = memoryview(b).cast("B")
        n = min(len(view), len(self._buf) - self._pos)
        view[:n] = self._buf[self._pos : self._pos + n]
        self._pos += n
        return n

    def read(self, size: int | None = -1) -> bytes:
        """``size`` bytes, fewer only at the end of the shard (all of it when negative).

        An error reading the shard is raised (again by every later read), as reading the
        shard directly would: the bytes this call had gathered are dropped with it.
        """
        parts: list[bytes] = []
        want = -1 if size is None or size < 0 else size
        while want != 0:
            data = self.read1(want)
            if not data:
                break
            parts.append(data)
            if want > 0:
                want -= len(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def readinto(self, b: Any) -> int:
        """Fill ``b``, stopping early only at the end of the shard (errors as ``read``)."""
        view = memoryview(b).cast("B")
        done = 0
        while done < len(view):
            n = self.readinto1(view[done:])
            if not n:
                break
            done += n
        return done

    def close(self) -> None:
        if not self.closed:
            held, self._buf, self._pos = len(self._buf), b"", 0
            self._feed.release(self._index, held)
        super().close()
