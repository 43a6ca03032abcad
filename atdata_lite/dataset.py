"""``Dataset[T]``: typed iteration over WebDataset shards on any fsspec filesystem.

Iteration is a ``webdataset.DataPipeline`` (a torch ``IterableDataset`` when torch is
installed, without torch being a dependency), re-iterable, so ``ds.ordered()`` can be given
straight to a ``torch.utils.data.DataLoader`` with several workers: shards are split by node
(``RANK``/``WORLD_SIZE`` or ``torch.distributed``) and then by worker.

A ``Dataset`` is itself a torch ``IterableDataset`` when torch is installed:
``DataLoader(ds, batch_size=64, num_workers=2)`` iterates ``ds.ordered()`` in each worker
(each worker reads its own shards) and collates samples into batches of tensors (see
:mod:`atdata_lite._torch`). Datasets, their sample types (including types decoded from a
stored schema) and samples pickle, so the ``spawn`` start method works as well as ``fork``.
"""

from __future__ import annotations

import functools
import mmap
import os
import typing
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import (
    TYPE_CHECKING,
    Any,
    Generic,
    Literal,
    Protocol,
    TypeAlias,
    TypeVar,
    cast,
    overload,
)

import webdataset as wds
from webdataset.pytorch import IterableDataset as _IterableBase

from ._columns import BATCH_FORMATS, BatchFormat, ColumnBuilder, can_build_columns
from ._readahead import prefetch
from ._records import ShardRecord
from ._shardread import read_shard
from ._shuffle import Group, ItemDecoder, KeyedDecoder, ShuffleBuffer, name_error, stream_rng
from ._tarscan import Run
from .cache import ShardCache, is_remote, offline_enabled
from .errors import (
    CorruptShardError,
    SampleDecodeError,
    ShardNotCachedError,
    ShardNotFoundError,
    ShardSkippedWarning,
)
from .lenses import Lens, LensNetwork
from .samples import (
    _IN_PLACE_MIN,
    KEY_ATTR,
    DictSample,
    PackableSample,
    SampleBatch,
    codec_for,
    unpack_payload,
)
from .sources import DataSource, URLSource, open_url

__all__ = ["Dataset", "WDSRawBatch", "WDSRawSample"]

ST = TypeVar("ST")
VT = TypeVar("VT")

# What webdataset yields for one sample (``{"__key__": ..., "msgpack": b"..."}``) and, batched,
# for a batch (each value a list): the inputs of :meth:`Dataset.wrap` / :meth:`Dataset.wrap_batch`.
WDSRawSample: TypeAlias = dict[str, Any]
WDSRawBatch: TypeAlias = dict[str, Any]
OnShardError = Literal["raise", "skip"]
#: Bytes of remote shards read ahead by default (see ``Dataset(readahead=...)``).
DEFAULT_READAHEAD = 256 << 20
#: Bytes of sample payload the shuffle buffer holds at most by default
#: (see :meth:`Dataset.shuffled`).
DEFAULT_SHUFFLE_BYTES = 512 << 20

if TYPE_CHECKING:
    from typing_extensions import TypeIs

    _T_co = TypeVar("_T_co", covariant=True)

    # webdataset ships no py.typed, so type checkers see wds.DataPipeline as Any (and
    # strict mypy refuses to subclass Any). Only for type checkers: what ordered() and
    # shuffled() return is a wds.DataPipeline, whose iteration yields _T_co.
    class SamplePipeline(wds.DataPipeline, Generic[_T_co]):  # type: ignore[misc]
        def __iter__(self) -> Iterator[_T_co]: ...


# --- pipeline stages (module-level classes: picklable for spawned DataLoader workers) ---


class _Pipeline(wds.DataPipeline):  # type: ignore[misc]  # webdataset is untyped
    """webdataset's ``DataPipeline``, iterated without its per-sample counting layer when
    it runs once (``repeat()`` and ``with_epoch()`` still work as in webdataset)."""

    def __iter__(self) -> Iterator[Any]:
        if self.repetitions == 1:
            return iter(self.iterator1())
        return super().__iter__()  # type: ignore[no-any-return]


class _Opener:
    """Opens shards: remote URLs through the shard cache, everything else as the source does.

    Picklable (settings only) for spawned DataLoader workers; the default cache and the
    offline switch are resolved when reading, in the reading process.
    """

    def __init__(
        self,
        source: DataSource,
        cache: ShardCache | bool | None,
        offline: bool | None,
        facts: dict[str, ShardRecord],
        entry_name: str | None,
        split: str | None,
    ) -> None:
        self.source = source
        self.cache = cache
        self.offline = offline
        self.facts = facts
        self.entry_name = entry_name
        self.split = split

    def _cache(self) -> ShardCache | None:
        if self.cache is False or not isinstance(self.source, URLSource):
            return None
        if self.cache is None or self.cache is True:
            self.cache = ShardCache()
        return self.cache

    def open(self, url: str) -> Any:
        remote = is_remote(url)
        cache = self._cache() if remote else None  # local shards never need the cache
        if cache is None:
            if remote and offline_enabled(self.offline):
                raise ShardNotCachedError(
                    f"Shard {url} is remote, offline mode is on, and this dataset reads "
                    "without the shard cache (cache=False)."
                )
            return self.source.open_shard(url)
        fact = self.facts.get(url)
        return cache.open_shard(
            url,
            sha256=fact.sha256 if fact else None,
            size=fact.size if fact else None,
            # _cache() gives a cache only for a URLSource, which has storage_options.
            storage_options=self.source.storage_options,  # type: ignore[attr-defined]
            offline=self.offline,
        )

    def check_offline(self, urls: list[str]) -> None:
        """Offline: fail before the first sample when a remote shard is not cached."""
        if not offline_enabled(self.offline):
            return
        remote = [u for u in urls if is_remote(u)]
        if not remote:
            return
        cache = self._cache()
        records = [self.facts.get(u) or ShardRecord(u) for u in remote]
        missing = records if cache is None else cache.missing(records)
        if not missing:
            return
        shown = ", ".join(r.url for r in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        if self.entry_name:
            split = f" --split {self.split}" if self.split else ""
            fix = f"run `atdata-lite pull {self.entry_name}{split}` while online"
        else:
            fix = "read the dataset once while online, or index it and run `atdata-lite pull NAME`"
        where = "the shard cache is off (cache=False)" if cache is None else f"in {cache.root}"
        raise ShardNotCachedError(
            f"Offline mode is on and {len(missing)} of {len(remote)} remote shards are not "
            f"cached ({where}): {shown}{more}. To fix it, {fix}."
        )


class _ShardList:
    def __init__(
        self, source: DataSource, chunk: tuple[int, int] | None = None, opener: Any = None
    ) -> None:
        self.source = source
        self.chunk = chunk
        self.opener = opener

    def __call__(self) -> Iterator[str]:
        from ._torch import register_collate

        # The first stage runs in the iterating process (a DataLoader worker too), before
        # torch collates anything there: teach torch to batch our samples.
        register_collate()
        urls = self.source.list_shards()
        if self.chunk is not None:
            positions, _, _ = chunk_plan(len(urls), *self.chunk)
            urls = [urls[j] for j in positions]
        if self.opener is not None:
            self.opener.check_offline(urls)
        return iter(urls)


def chunk_plan(n_shards: int, i: int, n: int) -> tuple[list[int], int, int]:
    """Which shards consumer ``i`` of ``n`` reads, and which of their samples.

    Returns:
        ``(shard_positions, offset, step)``: the consumer reads the samples at positions
        ``offset, offset + step, ...`` of each listed shard.

    With ``n <= n_shards`` whole shards are dealt out round-robin (shard ``j`` goes to
    consumer ``j % n``, every sample of it: offset 0, step 1). With more consumers than
    shards, consumer ``i`` reads shard ``i % n_shards``, which it shares with the other
    consumers of that shard, each taking every ``step``-th sample. Either way the ``n``
    parts are disjoint and cover every sample once, without knowing any shard's length.
    """
    if n_shards == 0:
        return [], 0, 1
    if n <= n_shards:
        return list(range(i, n_shards, n)), 0, 1
    shard = i % n_shards
    sharing = len(range(shard, n, n_shards))
    return [shard], i // n_shards, sharing


class _ShuffleShards:
    def __init__(self, seed: int | None) -> None:
        self.seed = seed

    def __call__(self, urls: Iterable[str]) -> Iterator[str]:
        items = list(urls)
        stream_rng(self.seed, "shards").shuffle(items)
        return iter(items)


class _Batch:
    def __init__(
        self,
        size: int,
        sample_type: Any,
        batch_format: BatchFormat = "samples",
        copy_arrays: bool = False,
    ) -> None:
        if size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {size}.")
        self.size = size
        self.sample_type = sample_type
        self.batch_format = batch_format
        self.copy_arrays = copy_arrays

    def __call__(self, samples: Iterable[Any]) -> Iterator[SampleBatch[Any]]:
        it = iter(samples)
        if self.batch_format != "samples":
            builder = ColumnBuilder(self.sample_type, self.batch_format, self.copy_arrays)
            while chunk := list(islice(it, self.size)):
                yield builder.from_samples(chunk)
            return
        while chunk := list(islice(it, self.size)):
            # a sample type known only at run time: type checkers cannot follow the subscript
            yield SampleBatch[self.sample_type](chunk)  # type: ignore[name-defined]


class _ColumnBatch:
    """Batches built from the decoded maps the reader yields in ``raw`` mode."""

    def __init__(
        self, size: int, sample_type: type, batch_format: BatchFormat, copy_arrays: bool
    ) -> None:
        if size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {size}.")
        self.size = size
        self.sample_type = sample_type
        self.batch_format = batch_format
        self.copy_arrays = copy_arrays

    def __call__(self, items: Iterable[tuple[str, Any, str]]) -> Iterator[SampleBatch[Any]]:
        builder = ColumnBuilder(self.sample_type, self.batch_format, self.copy_arrays)
        it = iter(items)
        while chunk := list(islice(it, self.size)):
            try:
                yield builder.build([k for k, _, _ in chunk], [m for _, m, _ in chunk])
            except SampleDecodeError as exc:
                # name the shard and the sample, as one-at-a-time reading does
                bad = _first_bad(builder, chunk)
                if bad is not None:
                    key, url = bad
                    exc.args = (f"Shard {url}, sample {key!r}: {exc}",)
                    exc.shard, exc.key = url, key  # type: ignore[attr-defined]
                raise


def _first_bad(builder: ColumnBuilder, chunk: list[tuple[str, Any, str]]) -> tuple[str, str] | None:
    build = builder.sample_type._build  # type: ignore[attr-defined]
    for key, data, url in chunk:
        try:
            build(data, builder.checks)
        except SampleDecodeError:
            return key, url
    return None


class _Read:
    """Open each shard, expand its tar, decode each sample (and apply the lens)."""

    def __init__(
        self,
        source: DataSource,
        decode_type: type[Any],
        output_lens: Lens[Any, Any] | None,
        on_shard_error: OnShardError,
        chunk: tuple[int, int] | None = None,
        opener: _Opener | None = None,
        sample_counts: Mapping[str, int] | None = None,
        *,
        copy_arrays: bool = False,
        readahead: int = 0,
        raw: bool = False,
        deferred: bool = False,
    ) -> None:
        self.copy_arrays = copy_arrays
        self.readahead = readahead
        self.raw = raw  # yield (key, decoded map, url) for batches built from columns
        # yield groups of undecoded (payload, key, url) items, for the shuffle buffer (see
        # item_decoder)
        self.deferred = deferred
        self.source = source
        self.opener = opener
        self.decode_type = decode_type
        self.output_lens = output_lens
        self.on_shard_error = on_shard_error
        self.chunk = chunk
        self.sample_counts = dict(sample_counts or {})

    def _sample_slice(self) -> tuple[int, int]:
        if self.chunk is None:
            return 0, 1
        _, offset, step = chunk_plan(len(self.source.list_shards()), *self.chunk)
        return offset, step

    def __call__(self, urls: Iterable[str]) -> Iterator[Any]:
        from ._torch import check_worker_picklable

        check_worker_picklable(self.decode_type)
        if self.output_lens is not None:
            check_worker_picklable(getattr(self.output_lens, "view_type", None))
        offset, step = self._sample_slice()
        for url, open_stream in self._streams(urls):
            try:
                yield from self._read_shard(url, offset, step, open_stream)
            except (ShardNotFoundError, CorruptShardError) as exc:
                if self.on_shard_error != "skip":
                    raise
                warnings.warn(f"Skipping shard {url}: {exc}", ShardSkippedWarning, stacklevel=2)

    def _streams(self, urls: Iterable[str]) -> Iterator[tuple[str, Callable[[], Any]]]:
        """Each URL with the way to open it: read ahead when every shard is remote."""
        urls = list(urls)
        if self.readahead > 0 and urls and all(is_remote(u) for u in urls):
            ahead = prefetch(urls, self._open, max_bytes=self.readahead)
            try:
                yield from ahead
            finally:
                ahead.close()  # type: ignore[attr-defined]
            return
        for url in urls:
            yield url, functools.partial(self._open, url)

    def _open(self, url: str) -> Any:
        try:
            if self.opener is not None:
                return self.opener.open(url)
            return self.source.open_shard(url)
        except ShardNotFoundError:
            raise
        except FileNotFoundError as exc:  # a third-party DataSource
            raise ShardNotFoundError(f"Shard not found: {url}") from exc

    def _keyed_decoder(self) -> Callable[[Any, str], Any] | None:
        """``decode(payload, key)`` setting the sample's key itself, for a plain
        ``@packable`` type read without copies asked for (the generated decoder)."""
        decode_type = self.decode_type
        if (
            self.raw
            or not isinstance(decode_type, type)
            or not issubclass(decode_type, PackableSample)
        ):
            return None
        codec = codec_for(decode_type)
        return codec.decoder if self.copy_arrays else codec.view_decoder

    def _decoder(self) -> Callable[[Any], Any]:
        """The payload decoder: arrays as views unless copies were asked for."""
        decode_type = self.decode_type
        if self.raw:
            return functools.partial(unpack_payload, what=decode_type)
        if not self.copy_arrays:
            view = getattr(decode_type, "_from_bytes_view", None)
            if view is not None:
                return cast("Callable[[Any], Any]", view)
        if isinstance(decode_type, type) and issubclass(decode_type, PackableSample | DictSample):
            return cast("Callable[[Any], Any]", decode_type.from_bytes)
        plain = decode_type.from_bytes  # a foreign type: give it the bytes it expects
        return lambda payload: plain(bytes(payload))

    def _direct_decoder(self) -> KeyedDecoder | None:
        """The keyed decoder when it alone makes the sample (a plain ``@packable`` type,
        no lens): the tight loops call it straight."""
        return self._keyed_decoder() if self.output_lens is None else None

    def shuffle_decoders(self) -> tuple[ItemDecoder, KeyedDecoder | None]:
        """The shuffle buffer's decoders: :meth:`item_decoder`, and
        :meth:`_direct_decoder`."""
        return self.item_decoder(), self._direct_decoder()

    def item_decoder(self) -> ItemDecoder:
        """``decode(payload, key, url)``: the sample (or, ``raw``, the item) one payload
        gives, its errors naming the shard and the key. Reading uses it sample by sample,
        and the shuffle buffer for what the reader yields undecoded (``deferred``)."""
        direct = self._direct_decoder()
        if direct is not None:  # the common case: the keyed decoder sets the key

            def decode_keyed(payload: Any, key: str, url: str) -> Any:
                try:
                    return direct(payload, key)
                except SampleDecodeError as exc:
                    name_error(exc, url, key)
                    raise

            return decode_keyed

        keyed = self._keyed_decoder()
        plain = self._decoder()
        lens, raw = self.output_lens, self.raw

        def decode(payload: Any, key: str, url: str) -> Any:
            try:
                sample = plain(payload) if keyed is None else keyed(payload, key)
            except SampleDecodeError as exc:
                name_error(exc, url, key)
                raise
            if raw:
                return key, sample, url
            if lens is not None:
                _set_key(sample, key)
                sample = lens.get(sample)
            _set_key(sample, key)
            return sample

        return decode

    def _read_shard(
        self,
        url: str,
        offset: int = 0,
        step: int = 1,
        open_stream: Callable[[], Any] | None = None,
    ) -> Iterator[Any]:
        direct = self._direct_decoder()
        finish = self.item_decoder()
        deferred = self.deferred
        stream = open_stream() if open_stream is not None else self._open(url)
        try:
            expected = self.sample_counts.get(url)
            samples = read_shard(
                stream, url, expected_count=expected, reopen=lambda: self._open(url), runs=True
            )
            position = -1
            for item in samples:
                if isinstance(item, Run):
                    if step == 1 and direct is not None and item.only("msgpack"):
                        # the common case in a tight loop: plain samples, one member each
                        position += len(item.keys)
                        view = item.view
                        if deferred:
                            yield _run_group(item, url)
                            continue
                        for key, start, end in zip(item.keys, item.starts, item.ends, strict=True):
                            try:
                                sample = direct(view[start:end], key)
                            except SampleDecodeError as exc:
                                name_error(exc, url, key)
                                raise
                            yield sample
                        continue
                    pairs: Iterable[tuple[str, dict[str, Any]]] = item.samples()
                else:
                    pairs = (item,)
                for key, members in pairs:
                    position += 1
                    if step != 1 and position % step != offset:
                        continue  # another chunk's sample: skipped before decoding
                    payload = members.get("msgpack")
                    if payload is None:
                        raise CorruptShardError(
                            f"Corrupt shard {url}: sample {key!r} has no .msgpack member "
                            f"(members: {sorted(members)}). "
                            "It was not written by atdata or atdata-lite."
                        )
                    if deferred:
                        yield [_kept(payload)], (key,), url, len(payload)
                        continue
                    yield finish(payload, key, url)
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()


def _run_group(run: Run, url: str) -> Group:
    """A run of plain samples as a group for the shuffle buffer: small payloads copied out
    of the shard (bytes are invisible to the garbage collector and let the shard's pages
    go), large ones views (arrays read in place).

    A run spanning less than :data:`_EAGER_RUN` bytes is copied at once; a longer one as
    the buffer takes its samples, so that no more than one sample's copy waits.
    """
    starts, ends, view = run.starts, run.ends, run.view
    data: Any = view.obj
    if (
        run.largest < _IN_PLACE_MIN
        and type(data) in (bytes, mmap.mmap)
        and len(data) == view.nbytes
    ):
        # slices of the map (or bytes) are the copies, with no view in between
        if ends[-1] - starts[0] < _EAGER_RUN:
            payloads: Iterable[Any] = [
                data[start:end] for start, end in zip(starts, ends, strict=True)
            ]
        else:
            payloads = map(data.__getitem__, map(slice, starts, ends))
    elif ends[-1] - starts[0] < _EAGER_RUN:
        payloads = [_kept(view[start:end]) for start, end in zip(starts, ends, strict=True)]
    else:
        payloads = map(_kept, map(view.__getitem__, map(slice, starts, ends)))
    return payloads, run.keys, url, run.nbytes


# Runs of samples spanning less than this are copied for the shuffle buffer all at once.
_EAGER_RUN = 4 << 20


def _kept(payload: Any) -> Any:
    """What the shuffle buffer keeps of a payload: a small one copied out of the shard
    (bytes are invisible to the garbage collector and let the shard's pages go), a large
    one as it is (arrays are read in place)."""
    if type(payload) is memoryview and len(payload) < _IN_PLACE_MIN:
        return payload.tobytes()
    return payload


class _EntryLike(Protocol):
    """An index entry as a dataset source (``LocalDatasetEntry`` or alike)."""

    @property
    def name(self) -> str: ...
    @property
    def data_urls(self) -> list[str]: ...
    @property
    def shards(self) -> Sequence[ShardRecord]: ...


def _is_entry(source: object) -> TypeIs[_EntryLike]:
    # An index entry (LocalDatasetEntry or alike): URLs plus what the index knows of them.
    return (
        not isinstance(source, str | os.PathLike | Sequence)
        and hasattr(source, "data_urls")
        and hasattr(source, "shards")
        and hasattr(source, "name")
    )


def _is_shard_records(source: object) -> TypeIs[Sequence[ShardRecord]]:
    # A list of ShardRecord (or alike): URLs plus their recorded sample counts.
    return (
        isinstance(source, Sequence)
        and not isinstance(source, str | bytes)
        and bool(source)
        and all(hasattr(s, "url") and hasattr(s, "sample_count") for s in source)
    )


def _set_key(sample: Any, key: str) -> None:
    # The key rides along on the sample (never serialised) so that rewriting a dataset
    # keeps it; objects that cannot take attributes simply do not remember it.
    # (try/except, not contextlib.suppress: this runs once per sample)
    try:  # noqa: SIM105
        object.__setattr__(sample, KEY_ATTR, key)
    except (AttributeError, TypeError):
        pass


# --- Dataset ---------------------------------------------------------------------------


# webdataset ships no py.typed: its IterableDataset is Any to type checkers.
class Dataset(_IterableBase, Generic[ST]):  # type: ignore[misc]
    """A typed view of WebDataset shards.

    Args:
        source: A URL or path, a brace pattern (``data/shard-{000..009}.tar``), a list of
            them, a list of :class:`~atdata_lite.index.backend.ShardRecord` (an index
            entry's ``shards``: their recorded sample counts are then checked, as with
            ``sample_counts``), a :class:`~atdata_lite.protocols.DataSource`, or an index
            entry (:class:`~atdata_lite.index.entries.LocalDatasetEntry`): its shards are
            read with what the index knows of them (the SHA-256 checks cached copies, the
            sample counts are checked and give ``len()``), and its name goes into the
            ``atdata-lite pull`` advice of offline errors.
        metadata_url: Where the dataset's msgpack metadata lives (any fsspec URL).
        url: Deprecated alias of ``source`` (atdata's), used only when ``source`` is None.
        storage_options: fsspec options for opening URLs (not used for DataSource objects).
        on_shard_error: ``"raise"`` (default) raises :class:`ShardNotFoundError` /
            :class:`CorruptShardError` naming the shard; ``"skip"`` warns
            (:class:`~atdata_lite.errors.ShardSkippedWarning`, naming the shard) and goes
            on with the next shard. Samples of a shard read before its problem was found
            have been yielded already (shards are streamed).
        split: With an index entry that has named splits, read only this split.
        cache: Remote shards (not on the local filesystem) are read through the shard
            cache: ``None`` (default) uses the default :class:`~atdata_lite.cache.ShardCache`
            (``$ATDATA_LITE_CACHE``, ``$ATDATA_LITE_CACHE_SIZE``), a ``ShardCache`` uses that
            one, ``False`` reads remote shards directly every time. Only URL sources are
            cached (a custom ``DataSource`` opens its own shards).
        offline: ``True`` reads from the shard cache only and never touches the network;
            ``None`` (default) follows ``$ATDATA_LITE_OFFLINE``. Offline, iteration fails
            before the first sample if a remote shard is not cached, with
            :class:`~atdata_lite.errors.ShardNotCachedError` listing the missing shards.
        sample_counts: ``{shard URL: number of samples}`` the shards must hold (what an
            index recorded); a shard holding another number is a
            :class:`CorruptShardError`. Shards not named are not counted.
        copy_arrays: ``False`` (default): array fields are read-only views of the bytes
            read (no copy; ``arr.flags.writeable`` is false, and writing to one raises
            ``ValueError``); take ``arr.copy()`` of the ones you change. ``True`` gives
            every array its own writable memory, as ``np.load`` does (slower for large
            arrays).
        readahead: Bytes of remote shards (not on the local filesystem) read ahead in a
            background thread while the current shard is decoded, so a loop over an
            object store does not stall between shards: ``None`` (default) allows
            :data:`DEFAULT_READAHEAD`, ``0`` turns it off. Local shards are read through
            a memory map and never read ahead.

    The sample type is the subscript: ``Dataset[MySample](...)``. Without one, samples are
    :class:`DictSample`.

    Iterating a dataset (``for s in ds``) is ``ds.ordered()``. ``len(ds)`` is the number
    of samples when the shards' sample counts are known (a dataset loaded from an index
    entry that records them, see :func:`atdata_lite.load_dataset`); otherwise it raises
    ``TypeError`` (counting would mean reading every shard).

    Raises:
        TypeError: Neither ``source`` nor ``url`` given.
        UnsafeURLError: A URL is refused (``pipe:``, unknown scheme).
    """

    def __init__(
        self,
        source: DataSource
        | _EntryLike
        | str
        | os.PathLike[str]
        | Sequence[str]
        | Sequence[ShardRecord]
        | None = None,
        metadata_url: str | None = None,
        *,
        url: str | None = None,
        storage_options: dict[str, Any] | None = None,
        on_shard_error: OnShardError = "raise",
        split: str | None = None,
        cache: ShardCache | bool | None = None,
        offline: bool | None = None,
        sample_counts: Mapping[str, int] | None = None,
        copy_arrays: bool = False,
        readahead: int | None = None,
    ) -> None:
        if source is None:
            source = url
        if readahead is not None and (not isinstance(readahead, int) or readahead < 0):
            raise ValueError(
                f"readahead must be a number of bytes (0 turns it off), got {readahead!r}."
            )
        self.copy_arrays = bool(copy_arrays)
        self.readahead = DEFAULT_READAHEAD if readahead is None else readahead
        self.sample_counts: dict[str, int] = dict(sample_counts or {})
        if _is_shard_records(source):
            records = list(source)
            source = [r.url for r in records]
            for r in records:
                if r.sample_count is not None:
                    self.sample_counts.setdefault(r.url, r.sample_count)
        if source is None:
            raise TypeError("Dataset() missing required argument: 'source' or 'url'")
        if cache is not None and not isinstance(cache, bool | ShardCache):
            raise TypeError(f"cache must be a ShardCache, True, False or None, not {cache!r}.")
        self._cache_setting: ShardCache | bool | None = cache
        self._offline = offline
        self._split = split
        self._entry_name: str | None = None
        self._shard_facts: dict[str, ShardRecord] = {}
        if _is_entry(source):
            source = self._from_entry(source, split)
        elif split is not None:
            raise ValueError(
                "split= needs an index entry as the source (Dataset(index.get_dataset(name), "
                "split=...)); a URL source has no splits."
            )
        if on_shard_error not in ("raise", "skip"):
            raise ValueError(f"on_shard_error must be 'raise' or 'skip', got {on_shard_error!r}.")
        self.storage_options = dict(storage_options or {})
        if isinstance(source, str | os.PathLike) or (
            isinstance(source, Sequence) and not isinstance(source, bytes)
        ):
            # A list of ShardRecord became URLs above; mypy's isinstance() forgets that.
            urls = cast("str | os.PathLike[str] | Sequence[str]", source)
            self._source: DataSource = URLSource(urls, storage_options=self.storage_options)
            if isinstance(source, str | os.PathLike):
                self.url = os.fspath(source)
            else:
                shards = self._source.list_shards()
                self.url = shards[0] if shards else ""
        else:
            self._source = source
            shards = source.list_shards()
            self.url = shards[0] if shards else ""
        self.metadata_url = metadata_url
        self.on_shard_error: OnShardError = on_shard_error
        self._metadata: dict[str, Any] | None = None
        self._output_lens: Lens[Any, Any] | None = None
        self._decode_type: type | None = None  # the stored type, when a lens is applied
        self._sample_type_cache: type | None = None
        self._chunk: tuple[int, int] | None = None

    def _from_entry(self, entry: Any, split: str | None) -> list[str]:
        self._entry_name = entry.name
        shards = tuple(entry.shards)
        if split is not None:
            splits = dict(getattr(entry, "splits", None) or {})
            if split not in splits:
                known = ", ".join(sorted(splits)) or "none"
                raise KeyError(f"Dataset {entry.name!r} has no split {split!r} (splits: {known}).")
            wanted = set(splits[split])
            shards = tuple(s for s in shards if s.url in wanted)
        self._shard_facts = {s.url: s for s in shards}
        self._with_sample_counts({s.url: s.sample_count for s in shards})
        return [s.url for s in shards]

    def _opener(self) -> _Opener:
        return _Opener(
            self._source,
            self._cache_setting,
            self._offline,
            self._shard_facts,
            self._entry_name,
            self._split,
        )

    def _carry_to(self, result: Dataset[Any]) -> None:
        result.url = self.url
        result._metadata = self._metadata
        result._cache_setting = self._cache_setting
        result._offline = self._offline
        result._split = self._split
        result._entry_name = self._entry_name
        result._shard_facts = self._shard_facts
        result._chunk = self._chunk
        result.sample_counts = self.sample_counts
        result.copy_arrays = self.copy_arrays
        result.readahead = self.readahead

    # --- types ---------------------------------------------------------------------

    @property
    def sample_type(self) -> type:
        """The type of the samples this dataset yields (``DictSample`` if unsubscripted)."""
        if self._sample_type_cache is None:
            orig = self.__dict__.get("__orig_class__")
            args = typing.get_args(orig) if orig is not None else ()
            self._sample_type_cache = args[0] if args else DictSample
        return self._sample_type_cache

    @property
    def batch_type(self) -> Any:
        """``SampleBatch[sample_type]``."""
        # a sample type known only at run time: type checkers cannot follow the subscript
        return SampleBatch[self.sample_type]  # type: ignore[name-defined]

    @property
    def source(self) -> DataSource:
        """The data source the shards come from."""
        return self._source

    def list_shards(self) -> list[str]:
        """Every shard identifier (URL), in order. This is what an index should record."""
        return self._source.list_shards()

    @property
    def shards(self) -> Iterator[str]:
        """Iterate over :meth:`list_shards`."""
        return iter(self.list_shards())

    @property
    def shard_list(self) -> list[str]:
        """Deprecated alias of :meth:`list_shards`."""
        warnings.warn(
            "Dataset.shard_list is deprecated, use list_shards()",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.list_shards()

    def as_type(self, other: type[VT]) -> Dataset[VT]:
        """View this dataset as another sample type through the lens network.

        The identity lens applies when ``other`` is the current type; lenses compose
        (``A -> B -> C``), and chained ``as_type`` calls compose too.

        Raises:
            ValueError: No lens leads from the current type to ``other``.
        """
        step = LensNetwork().transform(self.sample_type, other)
        # a sample type known only at run time: type checkers cannot follow the subscript
        result: Dataset[Any] = Dataset[other](  # type: ignore[valid-type]
            self._source,
            self.metadata_url,
            storage_options=self.storage_options,
            on_shard_error=self.on_shard_error,
            sample_counts=self.sample_counts,
        )
        self._carry_to(result)
        result._decode_type = self._decode_type or self.sample_type
        result._output_lens = step if self._output_lens is None else self._output_lens.then(step)
        return result

    def chunk(self, i: int, n: int) -> Dataset[ST]:
        """Consumer ``i`` of ``n``: a deterministic, disjoint part of the samples.

        The ``n`` chunks together hold every sample exactly once, whatever ``n`` is:

        * ``n`` at most the number of shards: chunk ``i`` reads the shards at positions
          ``i, i + n, i + 2n, ...`` (whole shards, no sample is skipped over);
        * more chunks than shards: chunk ``i`` reads shard ``i % shards`` and takes every
          ``k``-th sample of it (``k`` = how many chunks share that shard), starting at
          ``i // shards``. Every chunk still reads the whole shard, skipping the samples of
          its neighbours before decoding them.

        The split depends only on the shard list, not on the seed or the iteration order,
        so the same ``(i, n)`` names the same samples on every machine and run. Within a
        chunk, :meth:`ordered` and :meth:`shuffled` work as usual, including the further
        split by node and DataLoader worker.

        Args:
            i: This consumer's number, ``0 <= i < n``.
            n: How many consumers share the dataset (at least 1).

        Returns:
            A new dataset over chunk ``i`` (this one is unchanged).

        Raises:
            ValueError: ``n < 1``, ``i`` outside ``[0, n)``, or this dataset is already a
                chunk (take one chunk of the whole dataset instead: ``chunk(i, n * m)``
                does not equal a chunk of a chunk, so it is refused rather than guessed).
            TypeError: ``i`` or ``n`` is not an integer.
        """
        for label, value in (("i", i), ("n", n)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"chunk(): {label} must be an integer, got {value!r}.")
        if n < 1:
            raise ValueError(f"chunk(): n must be at least 1, got {n}.")
        if not 0 <= i < n:
            raise ValueError(f"chunk(): i must be in [0, {n}) for n={n}, got {i}.")
        if self._chunk is not None:
            raise ValueError(
                f"This dataset is already chunk {self._chunk[0]} of {self._chunk[1]}; take "
                "chunks of the whole dataset instead."
            )
        result = self._copy()
        result._chunk = (i, n)
        return result

    def _copy(self) -> Dataset[ST]:
        # a sample type known only at run time: type checkers cannot follow the subscript
        result: Dataset[Any] = Dataset[self.sample_type](  # type: ignore[name-defined]
            self._source,
            self.metadata_url,
            storage_options=self.storage_options,
            on_shard_error=self.on_shard_error,
        )
        self._carry_to(result)
        result._decode_type = self._decode_type
        result._output_lens = self._output_lens
        return result

    # --- size ------------------------------------------------------------------------

    def _with_sample_counts(self, counts: dict[str, int | None]) -> Dataset[ST]:
        """Record the shards' sample counts (from an index entry); unknown ones are left out."""
        self.sample_counts.update({url: n for url, n in counts.items() if n is not None})
        return self

    def __len__(self) -> int:
        """The number of samples, from the recorded per-shard sample counts.

        Raises:
            TypeError: A shard's sample count is not known.
        """
        counts = self.sample_counts
        shards = self.list_shards()
        offset, step = 0, 1
        if self._chunk is not None:
            positions, offset, step = chunk_plan(len(shards), *self._chunk)
            shards = [shards[j] for j in positions]
        missing = [u for u in shards if u not in counts]
        if missing:
            raise TypeError(
                f"len() of this Dataset is unknown: the sample count of {len(missing)} of its "
                f"{len(shards)} shard(s) is not recorded (e.g. {missing[0]}). Datasets loaded "
                "by name from an index whose entry records sample counts have a length "
                "(atdata_lite.load_dataset('@local/NAME')); otherwise count with "
                "sum(1 for _ in ds)."
            )
        return sum(len(range(offset, counts[u], step)) for u in shards)

    def __bool__(self) -> bool:
        # Without this, truth testing would call __len__, which can raise TypeError.
        return True

    # --- metadata --------------------------------------------------------------------

    @property
    def metadata(self) -> dict[str, Any] | None:
        """The msgpack metadata at ``metadata_url`` (read once through fsspec), or None.

        Raises:
            ShardNotFoundError: Nothing exists at ``metadata_url``.
            SampleDecodeError: The file is not msgpack.
        """
        if self.metadata_url is None:
            return None
        if self._metadata is None:
            import msgpack

            if is_remote(self.metadata_url) and self._cache_setting is not False:
                cache = self._opener()._cache() or ShardCache()
                opened = cache.open_shard(
                    self.metadata_url, storage_options=self.storage_options, offline=self._offline
                )
            elif offline_enabled(self._offline) and is_remote(self.metadata_url):
                raise ShardNotCachedError(
                    f"Metadata {self.metadata_url} is remote and offline mode is on."
                )
            else:
                opened = open_url(self.metadata_url, "rb", self.storage_options)
            with opened as f:
                raw = f.read()
            try:
                self._metadata = msgpack.unpackb(raw, raw=False, strict_map_key=False)
            except Exception as exc:
                raise SampleDecodeError(
                    f"Metadata at {self.metadata_url} is not valid msgpack: {exc}"
                ) from exc
        return self._metadata

    # --- iteration -------------------------------------------------------------------

    def __iter__(self) -> Iterator[ST]:
        """Iterate the samples in shard order (``ds.ordered()``; split across workers)."""
        return iter(self.ordered())

    def _reader(self, raw: bool = False, deferred: bool = False) -> _Read:
        return _Read(
            self._source,
            self._decode_type or self.sample_type,
            self._output_lens,
            self.on_shard_error,
            self._chunk,
            self._opener(),
            self.sample_counts,
            copy_arrays=self.copy_arrays,
            readahead=self.readahead,
            raw=raw,
            deferred=deferred,
        )

    def _columnar(self, batch_size: int | None) -> bool:
        """Whether batches are built from columns (no sample objects on the way)."""
        return (
            batch_size is not None
            and self._output_lens is None
            and can_build_columns(self.sample_type)
        )

    def _tail(self, batch_size: int | None, batch_format: BatchFormat) -> list[Callable[..., Any]]:
        if batch_format not in BATCH_FORMATS:
            raise ValueError(
                f"batch_format must be one of {', '.join(map(repr, BATCH_FORMATS))}, got "
                f"{batch_format!r}."
            )
        if batch_size is None:
            if batch_format != "samples":
                raise ValueError(
                    f"batch_format={batch_format!r} needs a batch_size (it shapes batches)."
                )
            return []
        if batch_format != "samples" and not can_build_columns(self.sample_type):
            raise ValueError(
                f"batch_format={batch_format!r} needs a typed dataset (Dataset[MySample]) whose "
                "sample type is a plain @packable dataclass; this one yields "
                f"{getattr(self.sample_type, '__name__', self.sample_type)}. Use "
                "batch_format='samples'."
            )
        if self._columnar(batch_size):
            assert batch_size is not None
            return [_ColumnBatch(batch_size, self.sample_type, batch_format, self.copy_arrays)]
        return [_Batch(batch_size, self.sample_type, batch_format, self.copy_arrays)]

    @overload
    def ordered(
        self, batch_size: None = None, *, batch_format: BatchFormat = "samples"
    ) -> SamplePipeline[ST]: ...
    @overload
    def ordered(
        self, batch_size: int, *, batch_format: BatchFormat = "samples"
    ) -> SamplePipeline[SampleBatch[ST]]: ...
    def ordered(
        self, batch_size: int | None = None, *, batch_format: BatchFormat = "samples"
    ) -> wds.DataPipeline:
        """Iterate the samples in shard order.

        Args:
            batch_size: Yield :class:`SampleBatch` objects of this size (the last one may
                be shorter) instead of single samples. Batches of a plain ``@packable``
                type are built column by column, without a sample object per sample
                (``batch.samples`` is rebuilt on first use).
            batch_format: What a batch's columns are. ``"samples"`` (default): array
                fields stacked into one array, other fields lists (atdata's
                ``SampleBatch``). ``"numpy"``: ``int``, ``float`` and ``bool`` fields
                become 1-D arrays too. ``"torch"``: arrays and numeric columns become
                torch tensors, which ``DataLoader(..., batch_size=None, pin_memory=True)``
                pins. Strings, bytes, lists and optional fields stay lists.

        Returns:
            A re-iterable pipeline (a torch ``IterableDataset`` when torch is installed).

        Raises:
            ValueError: ``batch_size`` is smaller than 1, or ``batch_format`` is unknown,
                given without ``batch_size``, or not ``"samples"`` for a dataset without a
                plain ``@packable`` sample type (``DictSample``, a lens view of another
                kind).
        """
        columnar = self._columnar(batch_size)
        return _Pipeline(
            _ShardList(self._source, self._chunk, self._opener()),
            wds.shardlists.split_by_node,
            wds.shardlists.split_by_worker,
            self._reader(raw=columnar),
            *self._tail(batch_size, batch_format),
        )

    @overload
    def shuffled(
        self,
        buffer_shards: int = 100,
        buffer_samples: int = 10_000,
        batch_size: None = None,
        seed: int | None = None,
        *,
        buffer_bytes: int | None = None,
        batch_format: BatchFormat = "samples",
    ) -> SamplePipeline[ST]: ...
    @overload
    def shuffled(
        self,
        buffer_shards: int = 100,
        buffer_samples: int = 10_000,
        *,
        batch_size: int,
        seed: int | None = None,
        buffer_bytes: int | None = None,
        batch_format: BatchFormat = "samples",
    ) -> SamplePipeline[SampleBatch[ST]]: ...
    @overload
    def shuffled(
        self,
        buffer_shards: int,
        buffer_samples: int,
        batch_size: int,
        seed: int | None = None,
        *,
        buffer_bytes: int | None = None,
        batch_format: BatchFormat = "samples",
    ) -> SamplePipeline[SampleBatch[ST]]: ...
    def shuffled(
        self,
        buffer_shards: int = 100,
        buffer_samples: int = 10_000,
        batch_size: int | None = None,
        seed: int | None = None,
        *,
        buffer_bytes: int | None = None,
        batch_format: BatchFormat = "samples",
    ) -> wds.DataPipeline:
        """Iterate in shuffled order: shards shuffled, then samples through a buffer.

        The sample buffer is bounded twice: by ``buffer_samples`` samples and by
        ``buffer_bytes`` bytes of sample payload, whichever is reached first. Small samples
        fill it by count, large ones by bytes: 600 KB images under the default byte bound
        shuffle within about 900 samples instead of 10,000 (and hold 512 MiB, not 6 GB).
        Once the buffer is full, each new sample takes the place of one drawn uniformly at
        random from those held, which is yielded (the classic shuffle buffer). Samples are
        mixed within the buffer and across the shuffled shard order, so the randomness a
        buffer gives grows with it: raise ``buffer_bytes`` when the machine has the memory
        and samples are large.

        Args:
            buffer_shards: Kept for atdata compatibility; the whole shard list (of this
                node and worker) is shuffled.
            buffer_samples: Most samples in the shuffle buffer (at least 1; 1 keeps the
                order of the shuffled shards).
            batch_size: As in :meth:`ordered`.
            seed: Makes the order reproducible: the same seed gives the same order on every
                iteration and run (pass e.g. the epoch number for a new order per epoch).
            buffer_bytes: Most bytes of sample payload in the buffer (at least one sample
                is always held, whatever its size). ``None`` (default):
                :data:`DEFAULT_SHUFFLE_BYTES` (512 MiB).
            batch_format: As in :meth:`ordered`.

        Returns:
            A re-iterable pipeline.

        Raises:
            ValueError: ``buffer_samples``, ``buffer_bytes`` or ``batch_size`` is smaller
                than 1, or ``batch_format`` is refused (see :meth:`ordered`).
        """
        del buffer_shards  # each worker shuffles its own shard list entirely
        columnar = self._columnar(batch_size)
        max_bytes = DEFAULT_SHUFFLE_BYTES if buffer_bytes is None else buffer_bytes
        return _Pipeline(
            _ShardList(self._source, self._chunk, self._opener()),
            wds.shardlists.split_by_node,
            wds.shardlists.split_by_worker,
            # Shards are split before shuffling: every worker owns a fixed share whatever
            # the seed, so no shard is read twice or missed across workers.
            _ShuffleShards(seed),
            reader := self._reader(raw=columnar, deferred=True),
            ShuffleBuffer(buffer_samples, seed, max_bytes, reader.shuffle_decoders),
            *self._tail(batch_size, batch_format),
        )

    def __repr__(self) -> str:
        return (
            f"Dataset[{getattr(self.sample_type, '__name__', self.sample_type)}]({self._source!r})"
        )

    # --- atdata's raw-sample API and export ----------------------------------------------

    def wrap(self, sample: WDSRawSample) -> Any:
        """Decode one raw webdataset sample (``{"__key__": ..., "msgpack": b"..."}``).

        The dataset's lens (from :meth:`as_type`) is applied, as when iterating.

        Raises:
            SampleDecodeError: (a ``ValueError``) no ``msgpack`` key (``"Sample missing
                'msgpack' key, got keys: [...]"``, as atdata), a value that is not bytes, or
                bytes that are not a sample of this type.
        """
        if "msgpack" not in sample:
            raise SampleDecodeError(f"Sample missing 'msgpack' key, got keys: {list(sample)}")
        payload = sample["msgpack"]
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise SampleDecodeError(
                f"Expected sample['msgpack'] to be bytes, got {type(payload).__name__}"
            )
        return self._wrap_one(bytes(payload), sample.get("__key__"))

    def wrap_batch(self, batch: WDSRawBatch) -> SampleBatch[Any]:
        """Decode a raw webdataset batch (``{"msgpack": [b"...", ...], ...}``) into a
        :class:`SampleBatch` of this dataset's sample type.

        Raises:
            SampleDecodeError: (a ``ValueError``) no ``msgpack`` key (``"Batch missing
                'msgpack' key, got keys: [...]"``) or undecodable samples.
        """
        if "msgpack" not in batch:
            raise SampleDecodeError(f"Batch missing 'msgpack' key, got keys: {list(batch)}")
        payloads = list(batch["msgpack"])
        keys = batch.get("__key__")
        keys = list(keys) if isinstance(keys, list | tuple) else [None] * len(payloads)
        samples = [self._wrap_one(bytes(p), k) for p, k in zip(payloads, keys, strict=False)]
        return SampleBatch[self.sample_type](samples)  # type: ignore[name-defined]

    def _wrap_one(self, payload: bytes, key: Any) -> Any:
        decode_type: Any = self._decode_type or self.sample_type
        sample = decode_type.from_bytes(payload)
        if isinstance(key, str):
            _set_key(sample, key)
        if self._output_lens is not None:
            sample = self._output_lens.get(sample)
            if isinstance(key, str):
                _set_key(sample, key)
        return sample

    def to_parquet(
        self,
        path: str | os.PathLike[str],
        sample_map: Callable[[Any], dict[str, Any]] | None = None,
        maxcount: int | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Export the samples (in order) to Parquet, through pandas.

        Needs the ``parquet`` extra (``pip install 'atdata-lite[parquet]'``: pandas and
        pyarrow).

        Args:
            path: The file to write (a path or fsspec URL; written atomically on local disk).
            sample_map: Sample -> dict of columns. The default takes the dataclass fields
                (a ``DictSample``'s keys); 1-D arrays become list columns of their dtype,
                n-dimensional arrays nested lists.
            maxcount: Write files of at most this many rows, named
                ``{stem}-{i:06d}{suffix}`` next to ``path`` (``out-000000.parquet``...);
                ``None`` writes one file holding every sample (built in memory).
            **kwargs: Passed to ``pandas.DataFrame.to_parquet`` (``engine``,
                ``compression``...); atdata's ``verbose`` is accepted and ignored.

        Returns:
            The files written, in order.

        Raises:
            BackendUnavailableError: pandas is not installed (the message says what to
                install).
            ValueError: ``maxcount`` is not a positive integer.
        """
        from ._parquet import to_parquet

        return to_parquet(
            self.ordered(),
            path,
            sample_map,
            maxcount,
            storage_options=self.storage_options,
            **kwargs,
        )
