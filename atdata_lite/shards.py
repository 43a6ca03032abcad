"""WebDataset shards: atomic writing (hashed while written), reading, inspection, removal.

A shard is a POSIX tar (the same ``tarfile`` stream mode ``webdataset.TarWriter`` uses) with
one member ``{key}.msgpack`` per sample. Shards written here read with plain webdataset, and
shards written by atdata read here.

Atomicity: a shard becomes visible under its final name only once it is complete.

* Local disk: written as ``.{name}.tmp-{uuid}`` next to the final name, flushed and fsynced,
  then ``os.replace``-d (atomic on POSIX and Windows).
* Object stores (s3fs, gcsfs, adlfs: fsspec buffered files): written straight to the final
  key, because their uploads are only committed when the file is closed (a single PUT, or
  "complete multipart upload"). On an error the upload is *discarded* (``discard()``, which
  aborts the multipart upload) instead of closed, and a killed process never completes it,
  so no partial object appears. A temp-name + rename would be a server-side copy there: twice
  the I/O, and not atomic either.
* Other filesystems (``memory://``, sftp, ...): temp name, then ``fs.mv``.

If anything fails, the shards this call already completed are removed too (best effort), so a
failed ``write_samples`` leaves nothing behind under a final name except after a hard crash.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import re
import tarfile
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, Any

from ._log import get_logger
from ._records import ShardRecord
from .errors import CorruptShardError
from .progress import CancelToken, Progress, ProgressArg
from .samples import check_key
from .sources import open_url, url_to_fs

__all__ = [
    "ShardRecord",
    "inspect_shard",
    "iter_shard",
    "remove_shards",
    "shard_urls_for_pattern",
    "write_samples",
]

# printf-style integer conversions, as webdataset's ShardWriter uses: %d, %06d, %5i ...
_CONVERSION = re.compile(r"%(?:%|[-+ #0]*\d*[di])")
_TAR_BLOCK = 512
# webdataset's skip_meta: members such as "__index__" are shard metadata, not samples.
_META_MEMBER = re.compile(r"__[^/]*__($|/)")

log = get_logger(__name__)


# --- reading ---------------------------------------------------------------------------


def _split_member(name: str) -> tuple[str, str] | None:
    # webdataset's base_plus_ext: the key is everything up to the first dot of the basename.
    slash = name.rfind("/")
    dot = name.find(".", slash + 1)
    if dot <= slash + 1:
        return None
    return name[:dot], name[dot + 1 :]


def iter_shard(stream: IO[bytes], url: str) -> Iterator[dict[str, Any]]:
    """Yield the samples of one shard as webdataset dicts (``__key__``, ``__url__``, exts).

    Members are grouped by key as webdataset's ``group_by_keys`` does (consecutive members
    with the same key form one sample).

    Raises:
        CorruptShardError: The stream is not a readable tar (wrong format, truncated).
    """
    current: dict[str, Any] | None = None
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tar:
            for member in tar:
                if not member.isreg():
                    continue
                parts = _split_member(member.name)
                if parts is None or _META_MEMBER.match(member.name):
                    continue
                key, ext = parts
                f = tar.extractfile(member)
                data = f.read() if f is not None else b""
                if len(data) != member.size:
                    raise tarfile.ReadError("unexpected end of data")
                if current is None or current["__key__"] != key:
                    if current is not None:
                        yield current
                    current = {"__key__": key, "__url__": url}
                current[ext.lower()] = data
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        if isinstance(exc, FileNotFoundError | CorruptShardError):
            raise  # a missing shard, or the shard cache's verification naming it
        raise CorruptShardError(
            f"Corrupt shard {url}: not a readable tar ({exc}). Re-create it, or read with "
            "on_shard_error='skip' to skip it."
        ) from exc
    if current is not None:
        yield current


# --- writing ---------------------------------------------------------------------------


class _HashingWriter(io.RawIOBase):
    """Forwards writes to ``raw`` while hashing and counting them (no second read)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw: IO[bytes] | None = raw
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        if self.raw is None:  # aborted: tarfile's finaliser may still flush its buffer
            return len(b)
        self.sha.update(b)
        n = len(b) if not isinstance(b, memoryview) else b.nbytes
        self.size += n
        self.raw.write(b)
        return n


def _protocols(fs: Any) -> set[str]:
    return set(fs.protocol if isinstance(fs.protocol, tuple | list) else (fs.protocol,))


def _is_local(fs: Any) -> bool:
    return "file" in _protocols(fs)


# Object stores whose fsspec files upload on close() and can discard() an unfinished upload.
_DIRECT_UPLOAD_PROTOCOLS = {"s3", "s3a", "gs", "gcs", "abfs", "abfss", "az", "adl"}


class _ShardFile:
    """One shard being written; ``commit()`` makes it visible, ``abort()`` removes it."""

    def __init__(self, fs: Any, path: str, url: str) -> None:
        self.fs, self.path, self.url = fs, path, url
        parent = posixpath.dirname(path)
        if parent:
            fs.makedirs(parent, exist_ok=True)
        self.count = 0
        self.logical_size = 0
        self._direct = _protocols(fs) & _DIRECT_UPLOAD_PROTOCOLS != set()
        if self._direct:
            self.file: Any = fs.open(path, "wb")
        else:
            self.tmp = posixpath.join(
                posixpath.dirname(path), f".{posixpath.basename(path)}.tmp-{uuid.uuid4().hex}"
            )
            if _is_local(fs):
                self.tmp = os.path.join(
                    os.path.dirname(path), f".{os.path.basename(path)}.tmp-{uuid.uuid4().hex}"
                )
                self.file = open(self.tmp, "wb")  # noqa: SIM115 - closed in commit/abort
            else:
                self.file = fs.open(self.tmp, "wb")
        self.writer = _HashingWriter(self.file)
        # Stream mode, as webdataset.TarWriter; closed in commit().
        self.tar = tarfile.open(fileobj=self.writer, mode="w|")  # noqa: SIM115

    def add(self, key: str, payload: bytes) -> None:
        info = tarfile.TarInfo(f"{key}.msgpack")
        info.size = len(payload)
        # Whole seconds: a fractional mtime (webdataset writes time.time()) costs every
        # member an extra PAX header, doubling small shards and halving read speed.
        info.mtime = int(time.time())
        info.mode = 0o444  # webdataset.TarWriter's defaults
        info.uname = info.gname = "bigdata"
        before = self.tar.offset
        self.tar.addfile(info, io.BytesIO(payload))
        self.count += 1
        # tarfile's stream buffers 10 KiB records, so count the archive's own offset
        self.logical_size += self.tar.offset - before

    @property
    def size_estimate(self) -> int:
        return self.logical_size

    def commit(self) -> ShardRecord:
        self.tar.close()  # writes the end-of-archive blocks through the hashing writer
        if _is_local(self.fs):
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            os.replace(self.tmp, self.path)
        elif self._direct:
            self.file.close()  # commits the upload
        else:
            self.file.close()
            self.fs.mv(self.tmp, self.path)
        return ShardRecord(
            url=self.url,
            size=self.writer.size,
            sample_count=self.count,
            sha256=self.writer.sha.hexdigest(),
        )

    def abort(self) -> None:
        self.writer.raw = None
        try:
            if self._direct:
                self.file.discard()  # aborts a multipart upload; nothing becomes visible
                self.file.closed = True  # or its finaliser would close() = commit
                return
            self.file.close()
            if _is_local(self.fs):
                os.unlink(self.tmp)
            else:
                self.fs.rm(self.tmp)
        except Exception as exc:  # never hide the original error
            log.warning("Could not remove the unfinished shard %s: %s", self.url, exc)


def _shard_url(pattern: str, index: int) -> str:
    # Without a conversion, "%%" still means a literal "%" (printf rules, as in patterns).
    return pattern % index if shard_urls_for_pattern(pattern) else pattern.replace("%%", "%")


def shard_urls_for_pattern(pattern: str) -> bool:
    """Validate a shard URL pattern; return True if it numbers shards (``%06d``).

    Raises:
        ValueError: More than one ``%d`` conversion, or another ``%`` conversion.
    """
    conversions = [c for c in _CONVERSION.findall(pattern) if c != "%%"]
    stripped = _CONVERSION.sub("", pattern)
    if len(conversions) > 1 or "%" in stripped:
        raise ValueError(
            f"Invalid shard pattern {pattern!r}: use at most one printf integer conversion "
            "such as %06d (as webdataset's ShardWriter), and write a literal % as %%."
        )
    return bool(conversions)


def _items(samples: Iterable[Any]) -> Iterator[tuple[str, bytes]]:
    for item in samples:
        if isinstance(item, tuple):
            if len(item) != 2:
                raise TypeError(
                    "write_samples takes samples or (key, sample) pairs; got a tuple of "
                    f"length {len(item)}."
                )
            key, sample = item
            yield check_key(key), sample.packed
        else:
            wds = item.as_wds
            yield wds["__key__"], wds["msgpack"]


def write_samples(
    samples: Iterable[Any],
    url_or_pattern: str | os.PathLike[str],
    *,
    maxcount: int = 100_000,
    maxsize: float = 3e9,
    storage_options: dict[str, Any] | None = None,
    progress: ProgressArg = None,
    cancel: CancelToken | None = None,
) -> list[ShardRecord]:
    """Write samples into WebDataset shards, atomically, and describe what was written.

    Args:
        samples: Packable samples, or ``(key, sample)`` pairs to choose the keys (a key is
            a string without ``.``, ``/``, ``\\`` or control characters). Samples read from
            a dataset keep their key; others get a new time-ordered key (:func:`new_key`).
        url_or_pattern: Where to write: a printf pattern numbering the shards from 0, as
            webdataset's ShardWriter (``out/shard-%06d.tar``, ``s3://b/p/data-%04d.tar``),
            or a single URL without a conversion, which must then fit in one shard.
        maxcount: Most samples per shard.
        maxsize: Most bytes per shard (a shard holds at least one sample, however large).
        storage_options: fsspec options for the target filesystem, passed unchanged.
        progress: ``None``/``True`` draw a bar on stderr when it is a terminal, ``False``
            nothing; a callable receives :class:`~atdata_lite.progress.ProgressEvent`
            objects (unit ``"sample"``, item: the shard being written).
        cancel: A :class:`threading.Event` (anything with ``is_set()``), checked before
            every sample: once set, the unfinished shard and the shards this call completed
            are removed and :class:`~atdata_lite.errors.OperationCancelled` is raised.

    Returns:
        One :class:`ShardRecord` per shard written (URL, byte size, sample count, sha256,
        all computed while writing). Empty input writes nothing and returns ``[]``.

    Raises:
        ValueError: Bad pattern or limits, or a single-URL target that would need a
            second shard.
        UnsafeURLError: The URL is refused (``pipe:``, unknown scheme).
        InvalidSampleKeyError: A given key cannot name a tar member.
        OperationCancelled: ``cancel`` was set; nothing written by this call remains.
    """
    pattern = os.fspath(url_or_pattern)
    numbered = shard_urls_for_pattern(pattern)
    if maxcount < 1 or maxsize <= 0:
        raise ValueError(f"maxcount ({maxcount}) and maxsize ({maxsize}) must be positive.")
    fs, _ = url_to_fs(_shard_url(pattern, 0), storage_options)

    def open_shard(index: int) -> _ShardFile:
        url = _shard_url(pattern, index)
        return _ShardFile(fs, fs._strip_protocol(url), url)

    records: list[ShardRecord] = []
    current: _ShardFile | None = None
    try:
        total = len(samples)  # type: ignore[arg-type]
    except TypeError:  # an iterator, or a Dataset whose size is not recorded
        total = None
    try:
        with Progress("writing samples", total, progress, unit="sample", cancel=cancel) as bar:
            for key, payload in _items(samples):
                if cancel is not None and cancel.is_set():
                    bar.check()
                entry = _TAR_BLOCK + -(-len(payload) // _TAR_BLOCK) * _TAR_BLOCK
                if current is not None and (
                    current.count >= maxcount or current.size_estimate + entry > maxsize
                ):
                    if not numbered:
                        raise ValueError(
                            f"{pattern!r} names one shard, but the samples exceed maxcount="
                            f"{maxcount} / maxsize={maxsize:g}. Use a pattern such as "
                            "'shard-%06d.tar', or raise the limits."
                        )
                    records.append(current.commit())
                    current = None
                if current is None:
                    current = open_shard(len(records))
                current.add(key, payload)
                bar.update(item=current.url)
            if current is not None:
                records.append(current.commit())
                current = None
    except BaseException:
        if current is not None:
            current.abort()
        if records:
            remove_shards([r.url for r in records], storage_options=storage_options)
        raise
    return records


# --- inspection and removal -----------------------------------------------------------


class _HashingReader(io.RawIOBase):
    """Reads from ``raw`` while hashing, counting, and keeping the last 1 KiB."""

    def __init__(self, raw: IO[bytes], cancel: CancelToken | None = None, url: str = "") -> None:
        self.raw = raw
        self.sha = hashlib.sha256()
        self.size = 0
        self.tail = b""
        self.cancel = cancel
        self.url = url

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self.cancel is not None and self.cancel.is_set():
            from .progress import check_cancel

            check_cancel(self.cancel, f"reading {self.url}")
        data = self.raw.read(len(b))
        n = len(data)
        b[:n] = data
        self.sha.update(data)
        self.size += n
        self.tail = (self.tail + data)[-1024:]
        return n


# After the last member a tar holds its end-of-archive blocks and zero padding up to its
# record size (10 KiB by default; 1 MiB for `tar -b 2048`). Anything longer is not a shard
# (e.g. /dev/zero or a never-ending stream reads as "end of archive, then zeros for ever"):
# reading stops here instead of running out of memory or time.
_MAX_TRAILING = 4 << 20


def _read_rest(stream: IO[bytes], url: str) -> None:
    rest = 0
    while chunk := stream.read(1 << 16):
        rest += len(chunk)
        if rest > _MAX_TRAILING:
            raise CorruptShardError(
                f"Corrupt shard {url}: more than {_MAX_TRAILING >> 20} MiB of data after the "
                "end-of-archive marker; this is not a shard (a device or an endless stream?)."
            )


def inspect_shard(
    url: str | os.PathLike[str],
    *,
    storage_options: dict[str, Any] | None = None,
    cancel: CancelToken | None = None,
) -> ShardRecord:
    """Re-read a shard: count its samples and hash its bytes (one pass).

    Args:
        url: The shard's path or fsspec URL.
        storage_options: fsspec options, passed unchanged.
        cancel: Checked before every read of at most 1 MiB; once set,
            :class:`~atdata_lite.errors.OperationCancelled` is raised (nothing is written).

    Returns:
        A :class:`ShardRecord` with the size, sample count and sha256 of the file.

    Reading is bounded: it stops at the first invalid tar header, and at most 4 MiB are
    read after the end-of-archive marker.

    Raises:
        ShardNotFoundError: Nothing exists at ``url``.
        CorruptShardError: Not a tar, truncated, a sample without a ``msgpack`` member,
            more than 4 MiB after the end-of-archive marker, or a local path that is not a
            regular file (a FIFO or a device is refused before it is opened).
        UnsafeURLError: The URL is refused, or its filesystem needs more than the URL.
    """
    url = os.fspath(url)
    count = 0
    with open_url(url, "rb", storage_options) as raw:
        reader = _HashingReader(raw, cancel, url)
        stream = io.BufferedReader(reader, 1 << 20)
        for sample in iter_shard(stream, url):
            if "msgpack" not in sample:
                raise CorruptShardError(
                    f"Corrupt shard {url}: sample {sample['__key__']!r} has no .msgpack "
                    f"member (members: {sorted(k for k in sample if not k.startswith('__'))})."
                )
            count += 1
        _read_rest(stream, url)  # end-of-archive blocks and padding are hashed too
    # tarfile accepts an archive cut at a member boundary; a complete one ends with two
    # zero blocks and is a whole number of blocks long.
    if reader.size % _TAR_BLOCK or reader.tail != bytes(len(reader.tail)) or reader.size < 1024:
        raise CorruptShardError(
            f"Corrupt shard {url}: truncated (no end-of-archive marker; {reader.size} bytes). "
            "Re-create it."
        )
    return ShardRecord(url=url, size=reader.size, sample_count=count, sha256=reader.sha.hexdigest())


def remove_shards(
    urls: Sequence[str] | Iterable[str], *, storage_options: dict[str, Any] | None = None
) -> list[str]:
    """Delete shards the caller has just written; ones already missing are skipped.

    This is the cleanup of a failed write (:func:`write_samples`, ``insert_dataset``): it
    makes no check. To delete the shards an index names, use
    :func:`atdata_lite.deletion.delete_shards`, which deletes only files inside a store
    whose bytes still match the recorded sha256.

    Returns:
        The URLs that were deleted (those already missing are left out).

    Raises:
        UnsafeURLError: A URL is refused (nothing is deleted for it).
    """
    deleted = []
    for url in urls:
        fs, path = url_to_fs(url, storage_options)
        try:
            fs.rm(path)
        except FileNotFoundError:
            continue
        deleted.append(url)
    return deleted
