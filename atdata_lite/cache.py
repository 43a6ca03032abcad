"""The shard cache: local copies of remote shards, shared by every dataset and index.

Remote shards (``s3://``, ``gs://``, ``https://`` ... anything that is not the local
filesystem) are copied into one directory on the first read and read from there afterwards.
Local shards (paths, ``file://``) are always read in place, never copied; ``memory://`` and
chained URLs (``simplecache::s3://...``, which already choose their own caching) are read
directly too.

Where: ``platformdirs.user_cache_dir("atdata-lite")/shards`` (e.g.
``~/.cache/atdata-lite/shards`` on Linux), or ``$ATDATA_LITE_CACHE``.

What a copy is called (its *key*):

* ``sha256-<hex>`` when the index knows the shard's SHA-256: the copy is checked against it
  before it becomes visible, and the same bytes under two URLs are kept once;
* ``url-<hash of URL>-<hash of version>`` otherwise, the version being what fsspec reports
  about the remote object (ETag, else last-modified time, plus the size). An object replaced
  under the same URL has a new version, so it is fetched again, never served stale. A remote
  object that reports no version at all is read directly and not cached.

The budget: one byte limit for the whole cache (default 20 GiB; ``$ATDATA_LITE_CACHE_SIZE``
such as ``50GB`` or ``500MiB``, or ``ShardCache(max_bytes=...)``). Filling the cache beyond
it evicts the least recently used copies first, never one a reader has open. A shard that
cannot fit (larger than the budget, or everything else in use) is read directly instead.

Between processes: a download holds the shard's lock file, so two processes (and their
DataLoader workers) wanting the same shard download it once; the others wait for it. Data
is written under a temporary name and renamed when complete and verified, so a killed
downloader leaves no partial file under a final name; its locks are ``flock`` locks that the
kernel releases when the process dies, so nothing stays blocked (see
:mod:`atdata_lite._filelock`). Keep the cache on a local disk.

Offline: with ``ATDATA_LITE_OFFLINE=1`` (or ``offline=True``) nothing touches the network;
shards are served from the cache only, and a shard that is not there raises
:class:`~atdata_lite.errors.ShardNotCachedError`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, cast

from ._filelock import FileLock
from ._text import format_size
from .errors import CacheFullError, CorruptShardError, ShardNotCachedError, ShardNotFoundError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "ENV_CACHE",
    "ENV_CACHE_SIZE",
    "ENV_OFFLINE",
    "CacheItem",
    "OnDuplicateKey",
    "ShardCache",
    "default_cache",
    "default_cache_dir",
    "format_size",
    "is_remote",
    "offline_enabled",
    "parse_size",
]

ENV_CACHE = "ATDATA_LITE_CACHE"
ENV_CACHE_SIZE = "ATDATA_LITE_CACHE_SIZE"
ENV_OFFLINE = "ATDATA_LITE_OFFLINE"

#: The default budget: a fixed 20 GiB. A fixed figure (rather than a share of free disk)
#: gives the same behaviour on every run, whatever else is filling the disk.
DEFAULT_MAX_BYTES = 20 * 2**30

OnDuplicateKey = Literal["skip", "overwrite", "raise_error"]

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+)://")
_LOCAL_SCHEMES = frozenset({"file", "local", "memory"})
_CHUNK = 1 << 20
# On close before the end, a download this close to complete is finished rather than lost:
# tarfile stops reading at the end-of-archive marker, before the record padding.
_FINISH_ON_CLOSE = 1 << 20
_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
    "t": 10**12, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}  # fmt: skip


# --- configuration -----------------------------------------------------------------------


def default_cache_dir() -> Path:
    """``$ATDATA_LITE_CACHE``, else ``platformdirs.user_cache_dir("atdata-lite")/shards``."""
    override = os.environ.get(ENV_CACHE)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("atdata-lite", appauthor=False)) / "shards"


def parse_size(text: str | int) -> int:
    """Parse a byte size: ``1048576``, ``"500MB"``, ``"20GiB"``, ``"1.5g"`` (case-insensitive).

    Decimal units (KB, MB, GB, TB; and K, M, G, T) are powers of 1000, binary ones (KiB, MiB,
    GiB, TiB) powers of 1024.

    Raises:
        ValueError: Not a size.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise ValueError(f"A size cannot be negative: {text}.")
        return text
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([A-Za-z]*)\s*", str(text))
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _SIZE_UNITS:
        raise ValueError(
            f"Not a size: {text!r}. Give bytes or a number with a unit, e.g. 500MB, 20GiB."
        )
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def _default_max_bytes() -> int:
    raw = os.environ.get(ENV_CACHE_SIZE)
    if not raw:
        return DEFAULT_MAX_BYTES
    try:
        return parse_size(raw)
    except ValueError as exc:
        raise ValueError(f"${ENV_CACHE_SIZE}: {exc}") from None


def offline_enabled(offline: bool | None = None) -> bool:
    """Whether offline mode is on: ``offline`` when given, else ``$ATDATA_LITE_OFFLINE``.

    The variable counts as on unless it is empty, ``0``, ``false``, ``no`` or ``off``.
    """
    if offline is not None:
        return bool(offline)
    return os.environ.get(ENV_OFFLINE, "").strip().lower() not in ("", "0", "false", "no", "off")


def is_remote(url: str) -> bool:
    """Whether the shard cache handles ``url``: a single-filesystem URL that is not local.

    Decided from the URL alone (no filesystem is created, nothing touches the network).
    """
    if "::" in url:
        return False
    match = _SCHEME.match(url)
    return match is not None and match.group(1).lower() not in _LOCAL_SCHEMES


def default_cache() -> ShardCache:
    """A :class:`ShardCache` at :func:`default_cache_dir` with the environment's budget."""
    return ShardCache()


# --- items -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CacheItem:
    """One copy in the cache.

    Attributes:
        key: Its key.
        path: The local file.
        size: Size in bytes.
        url: The URL it was fetched from (the latest one, for content-addressed keys).
        sha256: Hex SHA-256 of the bytes, when known.
        last_used: When it was last read or written (seconds since the epoch).
        fetched_at: When it was stored.
    """

    key: str
    path: Path
    size: int
    url: str | None = None
    sha256: str | None = None
    last_used: float = 0.0
    fetched_at: float = 0.0


def _check_key(key: str) -> str:
    if not isinstance(key, str) or not _KEY.match(key) or key.endswith(".json"):
        raise ValueError(
            f"Invalid cache key {key!r}: use letters, digits, '.', '_' and '-' (at most 200 "
            "characters, starting with a letter or digit, not ending in .json)."
        )
    return key


def _digest(text: str, n: int) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]


def _version_of(info: dict[str, Any]) -> str | None:
    """What fsspec reports that changes when the object is replaced (ETag, else mtime)."""
    tag = None
    for name in ("ETag", "etag", "md5Hash", "generation", "version_id", "VersionId"):
        if info.get(name):
            tag = f"{name}={info[name]}"
            break
    if tag is None:
        for name in ("LastModified", "Last-Modified", "last_modified", "mtime", "updated"):
            if info.get(name):
                tag = f"{name}={info[name]}"
                break
    if tag is None:
        return None
    return f"{tag};size={info.get('size')}"


# --- streams -----------------------------------------------------------------------------


class _PinnedFile(io.FileIO):
    """A cached file open for reading; holds the shared pin that keeps eviction away."""

    def __init__(self, path: Path, pin: FileLock) -> None:
        super().__init__(path, "rb")
        self._pin = pin

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._pin.release()


class _Fill(io.RawIOBase):
    """Reads a remote stream while writing it to a temporary file and hashing it.

    At the end of the stream the copy is verified and committed under its key; closed
    early, the copy is thrown away (unless less than ``_FINISH_ON_CLOSE`` bytes are left,
    which are then read to complete it). The key's download lock is held until then.
    """

    def __init__(
        self,
        cache: ShardCache,
        key: str,
        url: str,
        remote: IO[bytes],
        tmp: Path,
        lock: FileLock,
        sha256: str | None,
        size: int | None,
        resume: tuple[int, Any] | None = None,
    ) -> None:
        self.cache, self.key, self.url = cache, key, url
        self.remote, self.tmp, self.lock = remote, tmp, lock
        self.expected_sha, self.expected_size = sha256, size
        if resume is not None:
            self.count, self.sha = resume
            self.out: IO[bytes] | None = open(tmp, "ab")  # noqa: SIM115 - closed in _finish
        else:
            self.count, self.sha = 0, hashlib.sha256()
            self.out = open(tmp, "wb")  # noqa: SIM115 - closed in _finish
        self.item: CacheItem | None = None
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self._done:
            return 0
        try:
            data = self.remote.read(len(b))
        except BaseException:
            self._abort(keep_partial=True)
            raise
        if not data:
            self._complete()
            return 0
        n = len(data)
        b[:n] = data
        self.sha.update(data)
        self.count += n
        assert self.out is not None
        self.out.write(data)
        return n

    def drain(self, on_bytes: Callable[[int], None] | None = None, cancel: Any = None) -> CacheItem:
        """Read to the end (a full download); return the committed item.

        ``cancel`` is checked before every chunk; once set, the bytes so far are kept as a
        partial download (the next fetch resumes it) and ``OperationCancelled`` is raised.
        """
        buf = bytearray(_CHUNK)
        while True:
            if cancel is not None and cancel.is_set():
                from .progress import check_cancel

                self._abort(keep_partial=True)
                check_cancel(
                    cancel,
                    f"downloading {self.url}",
                    kept=(f"{self.count} bytes of it, which the next fetch resumes",)
                    if self.count
                    else (),
                )
            n = self.readinto(buf)
            if not n:
                break
            if on_bytes is not None:
                on_bytes(n)
        assert self.item is not None
        return self.item

    def _complete(self) -> None:
        self._done = True
        try:
            assert self.out is not None
            self.out.close()
            self.out = None
            with contextlib.suppress(Exception):
                self.remote.close()
            digest = self.sha.hexdigest()
            problem = None
            if self.expected_size is not None and self.count != self.expected_size:
                problem = f"{self.count} bytes arrived, the index records {self.expected_size}"
            elif self.expected_sha is not None and digest != self.expected_sha:
                problem = f"sha256 {digest} differs from the recorded {self.expected_sha}"
            if problem is not None:
                with contextlib.suppress(OSError):
                    self.tmp.unlink()
                raise CorruptShardError(
                    f"Shard {self.url} does not match the index ({problem}); nothing was "
                    "cached. The remote object changed or is damaged: re-create the shard "
                    "and re-index it, or run `atdata-lite verify NAME`."
                )
            self.item = self.cache._commit(self.key, self.tmp, self.url, digest, self.count)
        finally:
            self.lock.release()

    def _abort(self, keep_partial: bool = False) -> None:
        if self._done:
            return
        self._done = True
        try:
            if self.out is not None:
                self.out.close()
                self.out = None
            with contextlib.suppress(Exception):
                self.remote.close()
            if keep_partial and self.count:
                self.cache._keep_partial(self.key, self.tmp)
            else:
                with contextlib.suppress(OSError):
                    self.tmp.unlink()
        finally:
            self.lock.release()

    def close(self) -> None:
        if not self._done and not self.closed:
            left = None if self.expected_size is None else self.expected_size - self.count
            try:
                if left is not None and 0 <= left <= _FINISH_ON_CLOSE:
                    self.drain()
                elif left is None:
                    # Unknown size: finish only if the end comes within the allowance.
                    extra = self.remote.read(_FINISH_ON_CLOSE + 1)
                    if len(extra) <= _FINISH_ON_CLOSE:
                        assert self.out is not None
                        self.out.write(extra)
                        self.sha.update(extra)
                        self.count += len(extra)
                        self._complete()
            except CorruptShardError:
                raise
            except Exception:
                pass
            finally:
                self._abort()
        super().close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._abort()


# --- the cache ---------------------------------------------------------------------------


class ShardCache:
    """A key -> file cache on local disk with one byte budget, safe across processes.

    In the spirit of xpersist's ``CacheStore``: :meth:`keys`, :meth:`get`, :meth:`put` (with
    ``on_duplicate_key``), :meth:`delete` (a dry run unless ``dry_run=False``); plus the
    shard-level read-through used by :class:`~atdata_lite.dataset.Dataset`
    (:meth:`open_shard`, :meth:`fetch`, :meth:`lookup`). See the module docstring for keys,
    the budget, locking and offline mode.

    Instances hold only settings (no open files or locks), so they pickle into spawned
    DataLoader workers.

    Args:
        path: The cache directory (default :func:`default_cache_dir`); created on first write.
        max_bytes: The budget in bytes or as text (``"20GiB"``); default
            ``$ATDATA_LITE_CACHE_SIZE`` or :data:`DEFAULT_MAX_BYTES`.
        readonly: Refuse every write (``put``, downloads, deletes).
        on_duplicate_key: What :meth:`put` does with a key already present: ``"skip"`` (keep
            the stored copy), ``"overwrite"``, or ``"raise_error"`` (a ``KeyError``).
        lock_timeout: Seconds to wait for another process's download of the same shard
            before reading it directly instead (bounded: a stuck peer never hangs a reader).

    Example:
        >>> cache = ShardCache("/tmp/atl-cache-demo", max_bytes="1GiB")
        >>> item = cache.put("greeting", b"hello")
        >>> cache.get("greeting")
        b'hello'
        >>> cache.delete("greeting", dry_run=False)
        True
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        max_bytes: int | str | None = None,
        readonly: bool = False,
        on_duplicate_key: OnDuplicateKey = "skip",
        lock_timeout: float = 300.0,
    ) -> None:
        if on_duplicate_key not in ("skip", "overwrite", "raise_error"):
            raise ValueError(
                "on_duplicate_key must be 'skip', 'overwrite' or 'raise_error', not "
                f"{on_duplicate_key!r}."
            )
        self.root = Path(path).expanduser() if path is not None else default_cache_dir()
        self.max_bytes = _default_max_bytes() if max_bytes is None else parse_size(max_bytes)
        self.readonly = readonly
        self.on_duplicate_key: OnDuplicateKey = on_duplicate_key
        self.lock_timeout = lock_timeout

    def __repr__(self) -> str:
        return f"ShardCache({str(self.root)!r}, max_bytes={self.max_bytes})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ShardCache):
            return NotImplemented
        return (self.root, self.max_bytes, self.readonly) == (
            other.root,
            other.max_bytes,
            other.readonly,
        )

    __hash__ = None  # type: ignore[assignment]

    # --- layout ---------------------------------------------------------------------

    def _dir(self, name: str) -> Path:
        return self.root / name

    def _object(self, key: str) -> Path:
        return self.root / "objects" / key

    def _sidecar(self, key: str) -> Path:
        return self.root / "objects" / f"{key}.json"

    def _lock(self, key: str, **kwargs: Any) -> FileLock:
        return FileLock(self.root / "locks" / f"{key}.lock", **kwargs)

    def _pin(self, key: str, **kwargs: Any) -> FileLock:
        return FileLock(self.root / "pins" / f"{key}.pin", **kwargs)

    def _ensure_dirs(self) -> None:
        if self.readonly:
            raise PermissionError(f"The shard cache at {self.root} is read-only.")
        for name in ("objects", "tmp", "partial", "locks", "pins"):
            (self.root / name).mkdir(parents=True, exist_ok=True)

    # --- xpersist-style API ---------------------------------------------------------

    def keys(self) -> list[str]:
        """Every key with a complete copy, sorted."""
        folder = self._dir("objects")
        if not folder.is_dir():
            return []
        return sorted(
            p.name for p in folder.iterdir() if not p.name.endswith(".json") and p.is_file()
        )

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and _KEY.match(key) is not None and self._object(key).is_file()

    def __len__(self) -> int:
        return len(self.keys())

    def info(self, key: str) -> CacheItem:
        """What is known of the copy under ``key``.

        Raises:
            KeyError: No copy under ``key``.
        """
        path = self._object(_check_key(key))
        try:
            st = path.stat()
        except FileNotFoundError:
            raise KeyError(f"No cache entry {key!r} in {self.root}.") from None
        meta: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            meta = json.loads(self._sidecar(key).read_text())
        return CacheItem(
            key=key,
            path=path,
            size=st.st_size,
            url=meta.get("url"),
            sha256=meta.get("sha256"),
            last_used=st.st_mtime,
            fetched_at=float(meta.get("fetched_at", st.st_mtime)),
        )

    def items(self) -> list[CacheItem]:
        """Every copy, least recently used first."""
        out = []
        for key in self.keys():
            with contextlib.suppress(KeyError):
                out.append(self.info(key))
        return sorted(out, key=lambda i: (i.last_used, i.key))

    def open(self, key: str) -> IO[bytes]:
        """Open the copy under ``key`` for reading. While open it is never evicted.

        Raises:
            KeyError: No copy under ``key``.
        """
        f = self._open_pinned(_check_key(key))
        if f is None:
            raise KeyError(f"No cache entry {key!r} in {self.root}.")
        return f

    def get(self, key: str) -> bytes:
        """The bytes stored under ``key``.

        Raises:
            KeyError: No copy under ``key``.
        """
        with self.open(key) as f:
            return f.read()

    def put(
        self,
        key: str,
        value: bytes | IO[bytes],
        *,
        on_duplicate_key: OnDuplicateKey | None = None,
        url: str | None = None,
        sha256: str | None = None,
    ) -> CacheItem:
        """Store ``value`` (bytes or a binary file object) under ``key``, atomically.

        Args:
            key: Letters, digits, ``.``, ``_``, ``-``.
            value: The content.
            on_duplicate_key: Overrides the cache's policy for this call.
            url: Where the content came from (shown by ``atdata-lite cache``).
            sha256: The content's expected SHA-256; a mismatch stores nothing.

        Returns:
            The stored item (the existing one when skipped).

        Raises:
            KeyError: The key exists and the policy is ``"raise_error"``.
            CorruptShardError: ``sha256`` does not match (nothing stored).
            CacheFullError: The content cannot fit in the budget.
            PermissionError: The cache is read-only.
        """
        policy = on_duplicate_key or self.on_duplicate_key
        _check_key(key)
        self._ensure_dirs()
        if key in self:
            if policy == "raise_error":
                raise KeyError(f"Cache key {key!r} already exists in {self.root}.")
            if policy == "skip":
                return self.info(key)
        stream: IO[bytes] = io.BytesIO(value) if isinstance(value, bytes | bytearray) else value
        size = len(value) if isinstance(value, bytes | bytearray) else None
        lock = self._lock(key, timeout=self.lock_timeout)
        if not lock.acquire():
            raise CacheFullError(f"Timed out waiting for another writer of cache key {key!r}.")
        try:
            tmp = self._reserve(key, size)
        except BaseException:
            lock.release()
            raise
        if tmp is None:
            lock.release()
            raise CacheFullError(
                f"{format_size(size)} does not fit in the cache budget "
                f"({format_size(self.max_bytes)}) at {self.root}; raise it "
                f"(${ENV_CACHE_SIZE}) or prune the cache."
            )
        # _Fill releases the lock when it commits or gives up.
        return _Fill(self, key, url or "", stream, tmp, lock, sha256, None).drain()

    def delete(self, key: str, dry_run: bool = True) -> bool:
        """Delete the copy under ``key``; by default only report whether it would.

        A reader that has the file open keeps reading it (POSIX); the space is freed when
        it closes.

        Returns:
            Whether a copy exists under ``key`` (and, unless ``dry_run``, was deleted).
        """
        exists = _check_key(key) in self
        if exists and not dry_run:
            if self.readonly:
                raise PermissionError(f"The shard cache at {self.root} is read-only.")
            with contextlib.suppress(FileNotFoundError):
                self._object(key).unlink()
            with contextlib.suppress(FileNotFoundError):
                self._sidecar(key).unlink()
        return exists

    # --- usage and eviction ---------------------------------------------------------

    def total_bytes(self) -> int:
        """Bytes held by complete copies, kept partial downloads and downloads in progress."""
        return self._usage()[0]

    def _usage(self, own: str | None = None) -> tuple[int, list[Path]]:
        """``(bytes, stale temporary files)``. Stale: their downloader is gone.

        ``own``: a key whose download lock the caller holds; its earlier temporary files
        (a killed predecessor's) are stale too.
        """
        total = 0
        stale: list[Path] = []
        for name in ("objects", "partial"):
            folder = self._dir(name)
            if folder.is_dir():
                for p in folder.iterdir():
                    if not p.name.endswith(".json"):
                        with contextlib.suppress(FileNotFoundError):
                            total += p.stat().st_size
        folder = self._dir("tmp")
        if folder.is_dir():
            for p in folder.iterdir():
                key, _, rest = p.name.partition("~")
                reserved = int(rest.split("~", 1)[0]) if rest.split("~", 1)[0].isdigit() else 0
                if key == own:
                    stale.append(p)
                    continue
                probe = self._lock(key, timeout=0)
                if probe.acquire():  # nobody downloads this key: the file was abandoned
                    probe.release()
                    stale.append(p)
                    continue
                with contextlib.suppress(FileNotFoundError):
                    total += max(reserved, p.stat().st_size)
        return total, stale

    def _evict(self, need: int, keep: str | None = None) -> int:
        """Delete unpinned copies, least recently used first, until ``need`` bytes are free.

        Kept partial downloads go first. Returns the bytes freed.
        """
        freed = 0
        partial = self._dir("partial")
        if partial.is_dir():
            for p in sorted(partial.iterdir(), key=lambda p: p.stat().st_mtime):
                if freed >= need:
                    return freed
                probe = self._lock(p.stem, timeout=0)
                if probe.acquire():
                    try:
                        size = p.stat().st_size
                        p.unlink()
                        freed += size
                    except FileNotFoundError:
                        pass
                    finally:
                        probe.release()
        for item in self.items():
            if freed >= need:
                break
            if item.key == keep:
                continue
            pin = self._pin(item.key, timeout=0)
            if not pin.acquire():
                continue  # a reader has it open
            try:
                item.path.unlink()
                freed += item.size
                with contextlib.suppress(FileNotFoundError):
                    self._sidecar(item.key).unlink()
            except FileNotFoundError:
                pass
            finally:
                pin.release()
        return freed

    def prune(self, to_bytes: int | str | None = None, *, dry_run: bool = False) -> list[CacheItem]:
        """Evict least recently used copies (never open ones) until the cache fits ``to_bytes``.

        Args:
            to_bytes: The size to shrink to (default: the budget).
            dry_run: Only report what would be evicted.

        Returns:
            The evicted copies (or those that would be).
        """
        target = self.max_bytes if to_bytes is None else parse_size(to_bytes)
        if not self.root.is_dir():
            return []
        if dry_run:
            used = self.total_bytes()
            out = []
            for item in self.items():
                if used <= target:
                    break
                out.append(item)
                used -= item.size
            return out
        self._ensure_dirs()
        before = {i.key: i for i in self.items()}
        with FileLock(self.root / "locks" / "budget.lock", timeout=self.lock_timeout):
            used, stale = self._usage()
            for p in stale:
                with contextlib.suppress(OSError):
                    p.unlink()
            if used > target:
                self._evict(used - target)
        after = set(self.keys())
        return [item for key, item in before.items() if key not in after]

    def clear(self) -> int:
        """Delete every copy and kept partial download; return the bytes freed.

        Downloads in progress finish into an empty cache.
        """
        if not self.root.is_dir():
            return 0
        freed = 0
        for name in ("objects", "partial"):
            folder = self._dir(name)
            if folder.is_dir():
                for p in folder.iterdir():
                    with contextlib.suppress(FileNotFoundError):
                        if not p.name.endswith(".json"):
                            freed += p.stat().st_size
                        p.unlink()
        return freed

    def _reserve(self, key: str, size: int | None) -> Path | None:
        """Make room for ``size`` bytes and create the temporary file that reserves them.

        Returns None when it cannot fit (bigger than the budget, or the rest is in use).
        The caller holds ``key``'s download lock.
        """
        need = size or 0
        if need > self.max_bytes:
            return None
        with FileLock(self.root / "locks" / "budget.lock", timeout=self.lock_timeout):
            used, stale = self._usage(own=key)
            for p in stale:
                with contextlib.suppress(OSError):
                    p.unlink()
            if used + need > self.max_bytes:
                self._evict(used + need - self.max_bytes, keep=key)
                used = self._usage()[0]
                if used + need > self.max_bytes:
                    return None
            tmp = self._dir("tmp") / f"{key}~{need}~{uuid.uuid4().hex}"
            tmp.touch()
            return tmp

    def _keep_partial(self, key: str, tmp: Path) -> None:
        """Keep an interrupted download so that the next one resumes where it stopped."""
        try:
            os.replace(tmp, self._dir("partial") / key)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def _commit(self, key: str, tmp: Path, url: str, sha256: str, size: int) -> CacheItem:
        now = time.time()
        meta = {"key": key, "url": url, "sha256": sha256, "size": size, "fetched_at": now}
        side_tmp = self._dir("tmp") / f"{key}~meta~{uuid.uuid4().hex}"
        side_tmp.write_text(json.dumps(meta))
        os.replace(side_tmp, self._sidecar(key))
        os.replace(tmp, self._object(key))
        # A copy whose size was not known in advance reserved nothing: fit it in afterwards.
        with FileLock(self.root / "locks" / "budget.lock", timeout=self.lock_timeout):
            used = self._usage()[0]
            if used > self.max_bytes:
                self._evict(used - self.max_bytes, keep=key)
        return CacheItem(key, self._object(key), size, url or None, sha256, now, now)

    def _open_pinned(self, key: str) -> _PinnedFile | None:
        path = self._object(key)
        if not path.is_file():
            return None
        (self.root / "pins").mkdir(parents=True, exist_ok=True)
        pin = self._pin(key, shared=True, timeout=self.lock_timeout)
        if not pin.acquire():
            return None
        try:
            f = _PinnedFile(path, pin)
        except FileNotFoundError:  # evicted between the check and the pin
            pin.release()
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # least recently *used*: reading counts
        return f

    # --- shards ---------------------------------------------------------------------

    @staticmethod
    def shard_key(url: str, sha256: str | None = None, version: str | None = None) -> str:
        """The key of a shard: by content when its SHA-256 is known, else by URL and version."""
        if sha256:
            return f"sha256-{sha256.lower()}"
        if version is None:
            raise ValueError("A shard without a known sha256 needs its remote version for a key.")
        return f"url-{_digest(url, 32)}-{_digest(version, 16)}"

    def lookup(self, url: str, sha256: str | None = None) -> CacheItem | None:
        """The cached copy of a shard, found without touching the network, or None.

        With ``sha256`` the copy with that content; without, the most recently fetched copy
        of ``url`` (which may be older than the remote object: only an online read can tell).
        """
        if sha256:
            key = self.shard_key(url, sha256)
            return self.info(key) if key in self else None
        folder = self._dir("objects")
        if not folder.is_dir():
            return None
        prefix = f"url-{_digest(url, 32)}-"
        found = [
            self.info(p.name)
            for p in folder.glob(prefix + "*")
            if not p.name.endswith(".json") and p.is_file()
        ]
        return max(found, key=lambda i: i.fetched_at) if found else None

    def missing(self, shards: Iterable[Any]) -> list[Any]:
        """The remote shards (URLs or ``ShardRecord``-likes) that have no cached copy.

        Local shards are never missing. Looks nothing up on the network.
        """
        out = []
        for shard in shards:
            url = shard if isinstance(shard, str) else shard.url
            sha = None if isinstance(shard, str) else getattr(shard, "sha256", None)
            if is_remote(url) and self.lookup(url, sha) is None:
                out.append(shard)
        return out

    def open_shard(
        self,
        url: str,
        *,
        sha256: str | None = None,
        size: int | None = None,
        storage_options: dict[str, Any] | None = None,
        offline: bool | None = None,
    ) -> IO[bytes]:
        """Open a shard for reading, through the cache when it is remote.

        Local shards are opened in place. A cached remote shard is opened from disk; an
        uncached one is streamed from the remote while being copied into the cache (the
        copy is verified and committed when the stream ends).

        Args:
            url: The shard's URL.
            sha256: Its SHA-256 when the index knows it (checked, and used as the key).
            size: Its size when known (checked, and reserved in the budget up front).
            storage_options: fsspec options for the remote filesystem, unchanged.
            offline: Serve from the cache only (default ``$ATDATA_LITE_OFFLINE``).

        Raises:
            ShardNotCachedError: Offline, and the shard is not in the cache.
            ShardNotFoundError: Nothing exists at ``url``.
            CorruptShardError: (while reading) the bytes do not match ``sha256``/``size``.
        """
        from .sources import open_url

        if not is_remote(url):
            return open_url(url, "rb", storage_options)
        if offline_enabled(offline):
            item = self.lookup(url, sha256)
            f = self._open_pinned(item.key) if item is not None else None
            if f is None:
                raise ShardNotCachedError(
                    f"Shard {url} is not in the cache at {self.root}, and offline mode is on "
                    f"(${ENV_OFFLINE}). Fetch it while online with `atdata-lite pull NAME`."
                )
            return io.BufferedReader(f, _CHUNK)
        state = self._begin(url, sha256, size, storage_options)
        if isinstance(state, _Fill):
            return io.BufferedReader(state, _CHUNK)
        return state

    def fetch(
        self,
        url: str,
        *,
        sha256: str | None = None,
        size: int | None = None,
        storage_options: dict[str, Any] | None = None,
        on_bytes: Callable[[int], None] | None = None,
        cancel: Any = None,
    ) -> tuple[CacheItem | None, bool]:
        """Make sure a remote shard is in the cache (the download behind ``pull``).

        An interrupted download is kept and resumed by the next call (a ranged read from
        where it stopped), so nothing is downloaded twice.

        Args:
            url, sha256, size, storage_options: As in :meth:`open_shard`.
            on_bytes: Called with the number of bytes of each chunk downloaded.
            cancel: A :class:`threading.Event` (anything with ``is_set()``) checked before
                every chunk; once set, the bytes so far are kept as a partial download for
                the next call to resume, and ``OperationCancelled`` is raised.

        Returns:
            ``(item, downloaded)``: the cached copy and whether this call downloaded it;
            ``(None, False)`` for a local shard (never cached).

        Raises:
            CacheFullError: The shard cannot fit in the budget.
            CorruptShardError: The bytes do not match ``sha256``/``size`` (nothing cached).
            ShardNotFoundError: Nothing exists at ``url``.
        """
        if not is_remote(url):
            return None, False
        state = self._begin(url, sha256, size, storage_options, direct_ok=False)
        if isinstance(state, _Fill):
            try:
                return state.drain(on_bytes, cancel), True
            except BaseException:
                # Interrupted (cancelled, Ctrl-C, a callback's error): keep what arrived
                # for the next call to resume, and release the download lock now.
                state._abort(keep_partial=True)
                raise
        key = state.name if isinstance(state, _PinnedFile) else None
        state.close()
        return (self.info(Path(key).name) if key else None), False

    def _begin(
        self,
        url: str,
        sha256: str | None,
        size: int | None,
        storage_options: dict[str, Any] | None,
        *,
        direct_ok: bool = True,
    ) -> _PinnedFile | _Fill | IO[bytes]:
        """A pinned cached file, a :class:`_Fill` (we download), or a direct remote stream."""
        from .sources import url_to_fs

        fs, path = url_to_fs(url, storage_options)
        version = None
        if not sha256:
            try:
                info = fs.info(path)
            except FileNotFoundError as exc:
                raise ShardNotFoundError(f"Shard not found: {url}.") from exc
            version = _version_of(info)
            size = size if size is not None else info.get("size")
            if version is None:
                if not direct_ok:
                    raise CacheFullError(
                        f"Shard {url}: the server reports no ETag or modification time, so a "
                        "cached copy could go stale unnoticed; it is not cached."
                    )
                _warn_once(f"no-version:{url}", f"{url} reports no version; read uncached.")
                return self._direct(fs, path, url)
        key = self.shard_key(url, sha256, version)
        f = self._open_pinned(key)
        if f is not None:
            return f
        if self.readonly:
            return self._direct(fs, path, url)
        self._ensure_dirs()
        lock = self._lock(key, timeout=self.lock_timeout)
        if not lock.acquire():
            if not direct_ok:
                raise CacheFullError(f"Timed out waiting for another download of {url}.")
            _warn_once(f"lock:{key}", f"Another process is still downloading {url}; reading "
                       "it directly.")  # fmt: skip
            return self._direct(fs, path, url)
        try:
            f = self._open_pinned(key)  # downloaded by the process we waited for
            if f is not None:
                lock.release()
                return f
            tmp = self._reserve(key, size)
            if tmp is None:
                lock.release()
                msg = (
                    f"Shard {url} ({format_size(size)}) does not fit in the cache budget "
                    f"({format_size(self.max_bytes)}, ${ENV_CACHE_SIZE}) next to the copies "
                    "in use"
                )
                if not direct_ok:
                    raise CacheFullError(msg + "; raise the budget or prune the cache.")
                _warn_once(f"full:{key}", msg + "; reading it directly.")
                return self._direct(fs, path, url)
            resume = self._resume_state(key, tmp)
            remote = _open_remote(fs, path)
            if resume is not None:
                remote.seek(resume[0])
            return _Fill(self, key, url, remote, tmp, lock, sha256, size, resume)
        except BaseException:
            lock.release()
            raise

    def _resume_state(self, key: str, tmp: Path) -> tuple[int, Any] | None:
        """Take over a kept partial download of ``key``: ``(bytes so far, their hash)``."""
        partial = self._dir("partial") / key
        try:
            os.replace(partial, tmp)
        except FileNotFoundError:
            return None
        sha = hashlib.sha256()
        count = 0
        with open(tmp, "rb") as src:
            while block := src.read(_CHUNK):
                sha.update(block)
                count += len(block)
        return count, sha

    @staticmethod
    def _direct(fs: Any, path: str, url: str) -> IO[bytes]:
        try:
            return cast(IO[bytes], fs.open(path, "rb"))  # fsspec is untyped
        except FileNotFoundError as exc:
            raise ShardNotFoundError(f"Shard not found: {url}.") from exc

    def iter_files(self) -> Iterator[Path]:
        """Every file under the cache directory (for diagnostics)."""
        if self.root.is_dir():
            yield from (p for p in self.root.rglob("*") if p.is_file())

    def remove_all(self) -> None:
        """Delete the cache directory itself (everything, including lock files)."""
        if self.root.is_dir():
            shutil.rmtree(self.root)


def _open_remote(fs: Any, path: str) -> IO[bytes]:
    # Requests of _CHUNK bytes: an interrupted download keeps every whole chunk received,
    # so resuming it re-fetches at most the one chunk in flight.
    try:
        return cast(IO[bytes], fs.open(path, "rb", block_size=_CHUNK, cache_type="none"))
    except TypeError:  # a filesystem without block sizes
        return cast(IO[bytes], fs.open(path, "rb"))  # fsspec is untyped


_warned: set[str] = set()
_warned_lock = threading.Lock()


def _warn_once(tag: str, message: str) -> None:
    with _warned_lock:
        if tag in _warned:
            return
        _warned.add(tag)
    warnings.warn(message, stacklevel=3)
