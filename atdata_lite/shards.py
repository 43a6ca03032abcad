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
import importlib
import io
import os
import posixpath
import re
import sys
import tarfile
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, Any

from ._log import get_logger
from ._records import ShardRecord
from ._tarscan import MAX_TRAILING as _MAX_TRAILING
from ._tarscan import META_MEMBER as _META_MEMBER
from ._tarscan import bad_key_error, count_error, duplicate_key_error
from .errors import (
    CorruptShardError,
    FieldTypeError,
    InvalidSampleKeyError,
    TruncatedShardError,
    UnsupportedFieldTypeError,
)
from .progress import CancelToken, Progress, ProgressArg
from .samples import check_key, is_valid_key
from .sources import open_url, url_to_fs

__all__ = [
    "ShardRecord",
    "WrittenShards",
    "inspect_shard",
    "iter_shard",
    "remove_shards",
    "shard_urls_for_pattern",
    "write_samples",
]

# printf-style integer conversions, as webdataset's ShardWriter uses: %d, %06d, %5i ...
_CONVERSION = re.compile(r"%(?:%|[-+ #0]*\d*[di])")
_TAR_BLOCK = 512
# What tarfile's stream mode says when the data simply stops.
_TARFILE_EOF_MESSAGES = {"unexpected end of data", "truncated header", "empty file"}

log = get_logger(__name__)


# --- reading ---------------------------------------------------------------------------


def _split_member(name: str) -> tuple[str, str] | None:
    # webdataset's base_plus_ext: the key is everything up to the first dot of the basename.
    slash = name.rfind("/")
    dot = name.find(".", slash + 1)
    if dot <= slash + 1:
        return None
    return name[:dot], name[dot + 1 :]


class _EndTracker(io.RawIOBase):
    """Reads from ``raw`` while counting bytes and noting where the last non-zero byte ends.

    After tarfile stops, every byte from its stopping point to the end must be zero (two
    zero blocks and record padding): anything else is a cut or a damaged header.
    """

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self._readinto = getattr(raw, "readinto", None)
        self.pos = 0
        self.data_end = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self._readinto is not None:
            n = self._readinto(b) or 0
        else:
            data = self.raw.read(len(b))
            n = len(data)
            b[:n] = data
        if n:
            view = memoryview(b)[:n]
            if view[n - 1]:
                self.data_end = self.pos + n
            else:
                stripped = len(bytes(view).rstrip(b"\0"))
                if stripped:
                    self.data_end = self.pos + stripped
            self.pos += n
        return n


class _Prefixed(io.RawIOBase):
    """``head`` (bytes already read from ``raw``), then the rest of ``raw``."""

    def __init__(self, head: bytes, raw: Any) -> None:
        self.head = head
        self.raw = raw
        self._readinto = getattr(raw, "readinto", None)

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self.head:
            n = min(len(b), len(self.head))
            b[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        if self._readinto is not None:  # no intermediate copy
            return self._readinto(b) or 0
        data = self.raw.read(len(b))
        b[: len(data)] = data
        return len(data)


def _decompressed(stream: IO[bytes]) -> tuple[Any, tuple[type[BaseException], ...]]:
    """The tar stream inside ``stream`` (gzip, bzip2 and xz are recognised by their magic
    bytes, as tarfile's ``r|*`` does), and the errors its decompressor raises."""
    head = stream.read(6) or b""
    raw = io.BufferedReader(_Prefixed(head, stream), 1 << 16)
    if head.startswith(b"\x1f\x8b"):
        import gzip
        import zlib

        return gzip.GzipFile(fileobj=raw, mode="rb"), (zlib.error,)
    if head.startswith(b"BZh"):
        import bz2

        return bz2.BZ2File(raw, "rb"), ()
    if head.startswith(b"\xfd7zXZ\x00"):
        import lzma

        return lzma.LZMAFile(raw, "rb"), (lzma.LZMAError,)
    return raw, ()


def iter_shard(
    stream: IO[bytes], url: str, *, expected_count: int | None = None
) -> Iterator[dict[str, Any]]:
    """Yield the samples of one shard as webdataset dicts (``__key__``, ``__url__``, exts).

    Members are grouped by key as webdataset's ``group_by_keys`` does (consecutive members
    with the same key form one sample). The shard is checked as it is read:

    * it must end with a proper end-of-archive (two zero blocks), so a shard cut short at a
      member boundary is an error, not fewer samples;
    * every sample key must be a safe key (:func:`~atdata_lite.samples.check_key`);
    * a key may appear only once (two ``{key}.msgpack`` members, or a key that comes back
      after another one, would otherwise merge or duplicate samples);
    * with ``expected_count``, the number of samples must be exactly that.

    Errors come after the samples read before the problem was found (reading streams).

    Args:
        stream: The shard's bytes (a tar, or a gzip/bzip2/xz-compressed tar).
        url: The shard's URL, for ``__url__`` and error messages.
        expected_count: The number of samples the shard must hold (e.g. the count an
            index recorded), or ``None`` to accept any.

    Raises:
        TruncatedShardError: The shard ends early (also an ``EOFError``).
        CorruptShardError: Not a readable tar, an unsafe or duplicate key, or a sample count
            other than ``expected_count`` (also a ``tarfile.TarError``).
    """
    current: dict[str, Any] | None = None
    seen: set[str] = set()
    count = 0
    # What reading can raise, plus the decompressor's own errors once it is known (one
    # tuple: mypy refuses a starred item in an except clause).
    read_errors: tuple[type[BaseException], ...] = (tarfile.TarError, OSError, ValueError, EOFError)
    try:
        inner, decompress_errors = _decompressed(stream)
        read_errors += decompress_errors
        tracker = _EndTracker(inner)
        buffered = io.BufferedReader(tracker, 1 << 20)
        with tarfile.open(fileobj=buffered, mode="r|") as tar:
            for member in tar:
                if not member.isreg():
                    continue
                parts = _split_member(member.name)
                if parts is None or _META_MEMBER.match(member.name):
                    if parts is None and "." in posixpath.basename(member.name):
                        raise bad_key_error(url, member.name, "")  # ".msgpack": no key
                    continue
                key, ext = parts
                f = tar.extractfile(member)
                data = f.read() if f is not None else b""
                if len(data) != member.size:
                    raise TruncatedShardError(
                        f"Truncated shard {url}: member {member.name!r} is cut short "
                        f"({len(data)} of {member.size} bytes). Re-create the shard."
                    )
                ext = ext.lower()
                if current is None or current["__key__"] != key:
                    if current is not None:
                        yield current
                    if key in seen or not is_valid_key(key):
                        if key in seen:
                            raise duplicate_key_error(url, key, f"member {member.name!r}")
                        raise bad_key_error(url, member.name, key)
                    seen.add(key)
                    count += 1
                    if expected_count is not None and count > expected_count:
                        raise count_error(url, expected_count, f"more than {expected_count}")
                    current = {"__key__": key, "__url__": url}
                elif ext in current:
                    raise duplicate_key_error(url, key, f"two {member.name!r} members")
                current[ext] = data
            end = tar.offset
        _read_rest(buffered, url)  # the rest: zero blocks and record padding, bounded
    except CorruptShardError:
        raise
    except read_errors as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        if isinstance(exc, EOFError) or str(exc) in _TARFILE_EOF_MESSAGES:
            raise TruncatedShardError(
                f"Truncated shard {url}: the data ends early ({exc}). Re-create it, or read "
                "with on_shard_error='skip' to skip it."
            ) from exc
        raise CorruptShardError(
            f"Corrupt shard {url}: not a readable tar ({exc}). Re-create it, or read with "
            "on_shard_error='skip' to skip it."
        ) from exc
    size = tracker.pos
    if tracker.data_end > end and size - end >= _TAR_BLOCK:
        raise CorruptShardError(
            f"Corrupt shard {url}: unreadable member header at byte {end} (data follows "
            "where the archive should end). Re-create it, or read with "
            "on_shard_error='skip' to skip it."
        )
    if tracker.data_end > end or size - end < 2 * _TAR_BLOCK or size % _TAR_BLOCK:
        raise TruncatedShardError(
            f"Truncated shard {url}: no end-of-archive marker ({size} bytes; the samples "
            f"after byte {end} are missing). Re-create it, or read with "
            "on_shard_error='skip' to skip it."
        )
    if current is not None:
        yield current
    if expected_count is not None and count != expected_count:
        raise count_error(url, expected_count, str(count))


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


def _items(samples: Iterable[Any]) -> Iterator[tuple[str, bytes, Any]]:
    for position, item in enumerate(samples):
        try:
            if isinstance(item, tuple):
                if len(item) != 2:
                    raise TypeError(
                        "write_samples takes samples or (key, sample) pairs; got a tuple of "
                        f"length {len(item)} at position {position}."
                    )
                key, sample = item
                yield check_key(key), sample.packed, sample
            else:
                wds = item.as_wds
                # a key remembered from a read, or set by hand, is checked like a given one
                yield check_key(wds["__key__"]), wds["msgpack"], item
        except (FieldTypeError, UnsupportedFieldTypeError, InvalidSampleKeyError) as exc:
            if isinstance(exc, FieldTypeError):
                exc.position = position
            exc.args = (f"Sample at position {position} of the input (counting from 0): {exc}",)
            raise


def _numbered(pattern: str) -> str:
    """``out/data.tar`` -> ``out/data-%06d.tar`` (atdata 0.7's naming of a sharded path)."""
    parent, sep, name = pattern.rpartition("/")
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem:
        stem, suffix = name, ""
    else:
        suffix = "." + suffix
    return f"{parent}{sep}{stem}-%06d{suffix}"


# The Dataset API a write_samples result offers (atdata 0.7 returned a Dataset).
_DATASET_API = frozenset(
    {
        "as_type",
        "batch_type",
        "chunk",
        "list_shards",
        "metadata",
        "metadata_url",
        "ordered",
        "shards",
        "shuffled",
        "source",
        "to_parquet",
        "url",
        "wrap",
        "wrap_batch",
    }
)


class WrittenShards(list[ShardRecord]):
    """What :func:`write_samples` wrote: its shard records, usable as a ``Dataset`` too.

    It is a ``list`` of :class:`ShardRecord` (URL, size, sample count, SHA-256 of each
    shard), so ``len()``, iteration, indexing and ``== []`` see the records. It also
    answers the ``Dataset`` API that atdata 0.7's ``write_samples`` result offered --
    ``ordered()``, ``shuffled()``, ``list_shards()``, ``as_type()``, ``url``,
    ``to_parquet()``... -- by reading the written shards as a
    ``Dataset[sample_type]``; :attr:`dataset` is that dataset itself (iterate it, or give it
    to ``len()``, for samples rather than shards).

    Attributes:
        sample_type: The type of the first sample written (``None`` when nothing was).
        storage_options: The fsspec options the shards were written with.
    """

    def __init__(
        self,
        records: Iterable[ShardRecord] = (),
        *,
        sample_type: type | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(records)
        self.sample_type = sample_type
        self.storage_options = dict(storage_options or {})

    @property
    def urls(self) -> list[str]:
        """The shard URLs, in order."""
        return [r.url for r in self]

    @property
    def sample_count(self) -> int:
        """How many samples were written."""
        return sum(r.sample_count or 0 for r in self)

    @property
    def dataset(self) -> Any:
        """A ``Dataset[sample_type]`` over the written shards (what atdata 0.7 returned).

        Raises:
            ValueError: Nothing was written.
        """
        if not self:
            raise ValueError("write_samples() wrote no shards: there is no dataset to read.")
        from .samples import DictSample

        # By name: the dataset module imports this one (no import cycle).
        Dataset = importlib.import_module("atdata_lite.dataset").Dataset
        sample_type = self.sample_type or DictSample
        ds = Dataset[sample_type](self.urls, storage_options=self.storage_options)
        ds._shard_facts = {r.url: r for r in self}
        with_counts = getattr(ds, "_with_sample_counts", None)
        if with_counts is not None:
            with_counts({r.url: r.sample_count for r in self})
        return ds

    @property
    def _shard_facts(self) -> dict[str, ShardRecord]:
        # What Index.add_splits reads from a Dataset: the facts recorded while writing.
        return {r.url: r for r in self}

    def __getattr__(self, name: str) -> Any:
        if name in _DATASET_API:
            return getattr(self.dataset, name)
        raise AttributeError(f"'WrittenShards' object has no attribute {name!r}")


def write_samples(
    samples: Iterable[Any],
    url_or_pattern: str | os.PathLike[str],
    *,
    maxcount: int | None = None,
    maxsize: float | None = None,
    storage_options: dict[str, Any] | None = None,
    progress: ProgressArg = None,
    cancel: CancelToken | None = None,
) -> WrittenShards:
    """Write samples into WebDataset shards, atomically, and describe what was written.

    Args:
        samples: Packable samples, or ``(key, sample)`` pairs to choose the keys (a key is
            a string without ``.``, ``/``, ``\\`` or control characters). Samples read from
            a dataset keep their key; others get a new time-ordered key (:func:`new_key`).
            Keys must be unique within a shard. Every sample is checked against its
            type's field annotations before it is written (see ``PackableSample.packed``).
        url_or_pattern: Where to write: a printf pattern numbering the shards from 0, as
            webdataset's ShardWriter (``out/shard-%06d.tar``, ``s3://b/p/data-%04d.tar``),
            or a single URL without a conversion. A single URL is written as one shard of
            any size when no limit is given; with ``maxcount`` or ``maxsize`` it becomes the
            pattern ``{stem}-%06d{suffix}`` (``out.tar`` -> ``out-000000.tar``,
            ``out-000001.tar``...), as atdata 0.7's ``write_samples`` does.
        maxcount: Most samples per shard (default 100,000 with a pattern).
        maxsize: Most bytes per shard (default 3e9 with a pattern; a shard holds at least
            one sample, however large).
        storage_options: fsspec options for the target filesystem, passed unchanged.
        progress: ``None``/``True`` draw a bar on stderr when it is a terminal, ``False``
            nothing; a callable receives :class:`~atdata_lite.progress.ProgressEvent`
            objects (unit ``"sample"``, item: the shard being written).
        cancel: A :class:`threading.Event` (anything with ``is_set()``), checked before
            every sample: once set, the unfinished shard and the shards this call completed
            are removed and :class:`~atdata_lite.errors.OperationCancelled` is raised.

    Returns:
        A :class:`WrittenShards`: the list of one :class:`ShardRecord` per shard written
        (URL, byte size, sample count, sha256, all computed while writing), which also
        reads back as a ``Dataset`` of the samples' type (``result.ordered()``,
        ``result.dataset``). Empty input writes nothing and returns an empty list.

    Raises:
        ValueError: Bad pattern or limits.
        UnsafeURLError: The URL is refused (``pipe:``, unknown scheme).
        InvalidSampleKeyError: A key cannot name a tar member, or appears twice in one
            shard.
        FieldTypeError: A sample's field value does not match its annotation (a
            ``TypeError``); the message names the field, the sample's position in the input
            and what was expected. Nothing is left behind.
        OperationCancelled: ``cancel`` was set; nothing written by this call remains.
    """
    pattern = os.fspath(url_or_pattern)
    numbered = shard_urls_for_pattern(pattern)
    if not numbered and (maxcount is not None or maxsize is not None):
        pattern, numbered = _numbered(pattern), True
    if numbered:
        maxcount = 100_000 if maxcount is None else maxcount
        maxsize = 3e9 if maxsize is None else maxsize
    else:  # one shard, whatever it holds
        maxcount = maxcount if maxcount is not None else sys.maxsize
        maxsize = maxsize if maxsize is not None else float("inf")
    if maxcount < 1 or maxsize <= 0:
        raise ValueError(f"maxcount ({maxcount}) and maxsize ({maxsize}) must be positive.")
    fs, _ = url_to_fs(_shard_url(pattern, 0), storage_options)

    def open_shard(index: int) -> _ShardFile:
        url = _shard_url(pattern, index)
        return _ShardFile(fs, fs._strip_protocol(url), url)

    records = WrittenShards(storage_options=storage_options)
    current: _ShardFile | None = None
    try:
        # Any iterable is accepted; len() tells whether it has a length (mypy cannot).
        total = len(samples)  # type: ignore[arg-type]
    except TypeError:  # an iterator, or a Dataset whose size is not recorded
        total = None
    try:
        with Progress("writing samples", total, progress, unit="sample", cancel=cancel) as bar:
            for key, payload, sample in _items(samples):
                if cancel is not None and cancel.is_set():
                    bar.check()
                if records.sample_type is None:
                    records.sample_type = type(sample)
                entry = _TAR_BLOCK + -(-len(payload) // _TAR_BLOCK) * _TAR_BLOCK
                if current is not None and (
                    current.count >= maxcount or current.size_estimate + entry > maxsize
                ):
                    records.append(current.commit())
                    current = None
                if current is None:
                    current = open_shard(len(records))
                    keys: set[str] = set()
                if key in keys:
                    raise InvalidSampleKeyError(
                        f"The sample key {key!r} appears twice in {current.url}: each sample "
                        "of a shard needs its own key (a sample read from a dataset keeps its "
                        "key; pass (key, sample) pairs to choose new ones)."
                    )
                keys.add(key)
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
    """Reads from ``raw`` while hashing and counting."""

    def __init__(self, raw: IO[bytes], cancel: CancelToken | None = None, url: str = "") -> None:
        self.raw = raw
        self.sha = hashlib.sha256()
        self.size = 0
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
        return n


# After the last member a tar holds its end-of-archive blocks and zero padding up to its
# record size (10 KiB by default; 1 MiB for `tar -b 2048`). Anything longer is not a shard
# (e.g. /dev/zero or a never-ending stream reads as "end of archive, then zeros for ever"):
# reading stops here instead of running out of memory or time.


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
        CorruptShardError: Not a tar, a sample without a ``msgpack`` member, an unsafe
            or duplicate key, more than 4 MiB after the end-of-archive marker, or a local
            path that is not a regular file (a FIFO or a device is refused before it is
            opened).
        TruncatedShardError: The shard ends early (a ``CorruptShardError`` too).
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
        _read_rest(stream, url)  # iter_shard read to the end-of-archive; the rest, bounded
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
