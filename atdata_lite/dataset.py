"""``Dataset[T]``: typed iteration over WebDataset shards on any fsspec filesystem.

Iteration is a ``webdataset.DataPipeline`` (a torch ``IterableDataset`` when torch is
installed, without torch being a dependency), re-iterable, so ``ds.ordered()`` can be given
straight to a ``torch.utils.data.DataLoader`` with several workers: shards are split by node
(``RANK``/``WORLD_SIZE`` or ``torch.distributed``) and then by worker.
"""

from __future__ import annotations

import contextlib
import os
import random
import typing
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any, Generic, Literal, TypeVar

import webdataset as wds

from .errors import CorruptShardError, SampleDecodeError, ShardNotFoundError, ShardSkippedWarning
from .lens import Lens, LensNetwork
from .protocols import DataSource
from .samples import KEY_ATTR, DictSample, SampleBatch
from .shards import iter_shard
from .sources import URLSource, open_url

__all__ = ["Dataset"]

ST = TypeVar("ST")
OnShardError = Literal["raise", "skip"]


# --- pipeline stages (module-level classes: picklable for spawned DataLoader workers) ---


class _ShardList:
    def __init__(self, source: DataSource) -> None:
        self.source = source

    def __call__(self) -> Iterator[str]:
        return iter(self.source.list_shards())


class _ShuffleShards:
    def __init__(self, seed: int | None) -> None:
        self.seed = seed

    def __call__(self, urls: Iterable[str]) -> Iterator[str]:
        items = list(urls)
        _rng(self.seed, "shards").shuffle(items)
        return iter(items)


def _rng(seed: int | None, stage: str) -> random.Random:
    if seed is None:
        return random.Random()
    # The same seed gives the same order on every run; each node/worker gets its own
    # stream so that they do not all make the same choices.
    rank, world, worker, workers = wds.utils.pytorch_worker_info()
    return random.Random(f"{seed}/{stage}/{rank}/{world}/{worker}/{workers}")


class _ShuffleSamples:
    def __init__(self, bufsize: int, seed: int | None) -> None:
        if bufsize < 1:
            raise ValueError(f"buffer_samples must be a positive integer, got {bufsize}.")
        self.bufsize = bufsize
        self.seed = seed

    def __call__(self, samples: Iterable[Any]) -> Iterator[Any]:
        rng = _rng(self.seed, "samples")
        buf: list[Any] = []
        for sample in samples:
            if len(buf) < self.bufsize:
                buf.append(sample)
                continue
            i = rng.randrange(len(buf))
            out, buf[i] = buf[i], sample
            yield out
        rng.shuffle(buf)
        yield from buf


class _Batch:
    def __init__(self, size: int, sample_type: Any) -> None:
        if size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {size}.")
        self.size = size
        self.sample_type = sample_type

    def __call__(self, samples: Iterable[Any]) -> Iterator[SampleBatch]:
        it = iter(samples)
        while chunk := list(islice(it, self.size)):
            yield SampleBatch[self.sample_type](chunk)  # type: ignore[name-defined]


class _Read:
    """Open each shard, expand its tar, decode each sample (and apply the lens)."""

    def __init__(
        self,
        source: DataSource,
        decode_type: type,
        output_lens: Lens | None,
        on_shard_error: OnShardError,
        sample_counts: Mapping[str, int] | None = None,
    ) -> None:
        self.source = source
        self.decode_type = decode_type
        self.output_lens = output_lens
        self.on_shard_error = on_shard_error
        self.sample_counts = dict(sample_counts or {})

    def __call__(self, urls: Iterable[str]) -> Iterator[Any]:
        for url in urls:
            try:
                yield from self._read_shard(url)
            except (ShardNotFoundError, CorruptShardError) as exc:
                if self.on_shard_error != "skip":
                    raise
                warnings.warn(f"Skipping shard {url}: {exc}", ShardSkippedWarning, stacklevel=2)

    def _open(self, url: str) -> Any:
        try:
            return self.source.open_shard(url)
        except ShardNotFoundError:
            raise
        except FileNotFoundError as exc:  # a third-party DataSource
            raise ShardNotFoundError(f"Shard not found: {url}") from exc

    def _read_shard(self, url: str) -> Iterator[Any]:
        decode = self.decode_type.from_bytes
        lens = self.output_lens
        stream = self._open(url)
        try:
            for raw in iter_shard(stream, url, expected_count=self.sample_counts.get(url)):
                key = raw["__key__"]
                payload = raw.get("msgpack")
                if payload is None:
                    raise CorruptShardError(
                        f"Corrupt shard {url}: sample {key!r} has no .msgpack member "
                        f"(members: {sorted(k for k in raw if not k.startswith('__'))}). "
                        "It was not written by atdata or atdata-lite."
                    )
                try:
                    sample = decode(payload)
                except SampleDecodeError as exc:
                    # the same class (a SampleMismatchError stays a TypeError), now naming
                    # the shard and the sample
                    exc.args = (f"Shard {url}, sample {key!r}: {exc}",)
                    exc.shard, exc.key = url, key  # type: ignore[attr-defined]
                    raise
                _set_key(sample, key)
                if lens is not None:
                    sample = lens.get(sample)
                    _set_key(sample, key)
                yield sample
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()


def _set_key(sample: Any, key: str) -> None:
    # The key rides along on the sample (never serialised) so that rewriting a dataset
    # keeps it; objects that cannot take attributes simply do not remember it.
    with contextlib.suppress(AttributeError, TypeError):
        object.__setattr__(sample, KEY_ATTR, key)


# --- Dataset ---------------------------------------------------------------------------


class Dataset(Generic[ST]):
    """A typed view of WebDataset shards.

    Args:
        source: A URL or path, a brace pattern (``data/shard-{000..009}.tar``), a list of
            them, a list of :class:`~atdata_lite.index.backend.ShardRecord` (an index
            entry's ``shards``: their recorded sample counts are then checked, as with
            ``sample_counts``), or a :class:`~atdata_lite.protocols.DataSource`.
        metadata_url: Where the dataset's msgpack metadata lives (any fsspec URL).
        url: Deprecated alias of ``source`` (atdata's), used only when ``source`` is None.
        storage_options: fsspec options for opening URLs (not used for DataSource objects).
        on_shard_error: ``"raise"`` (default) raises :class:`ShardNotFoundError` /
            :class:`CorruptShardError` naming the shard; ``"skip"`` warns
            (:class:`~atdata_lite.errors.ShardSkippedWarning`, naming the shard) and goes
            on with the next shard. Samples of a shard read before its problem was found
            have been yielded already (shards are streamed).
        sample_counts: ``{shard URL: number of samples}`` the shards must hold (what an
            index recorded); a shard holding another number is a
            :class:`CorruptShardError`. Shards not named are not counted.

    The sample type is the subscript: ``Dataset[MySample](...)``. Without one, samples are
    :class:`DictSample`.

    Raises:
        TypeError: Neither ``source`` nor ``url`` given.
        UnsafeURLError: A URL is refused (``pipe:``, unknown scheme).
    """

    def __init__(
        self,
        source: DataSource | str | os.PathLike[str] | Sequence[str] | None = None,
        metadata_url: str | None = None,
        *,
        url: str | None = None,
        storage_options: dict[str, Any] | None = None,
        on_shard_error: OnShardError = "raise",
        sample_counts: Mapping[str, int] | None = None,
    ) -> None:
        if source is None:
            source = url
        self.sample_counts: dict[str, int] = dict(sample_counts or {})
        if (
            isinstance(source, Sequence)
            and not isinstance(source, str | bytes)
            and source
            and all(hasattr(s, "url") and hasattr(s, "sample_count") for s in source)
        ):
            records = list(source)
            source = [r.url for r in records]
            for r in records:
                if r.sample_count is not None:
                    self.sample_counts.setdefault(r.url, r.sample_count)
        if source is None:
            raise TypeError("Dataset() missing required argument: 'source' or 'url'")
        if on_shard_error not in ("raise", "skip"):
            raise ValueError(f"on_shard_error must be 'raise' or 'skip', got {on_shard_error!r}.")
        self.storage_options = dict(storage_options or {})
        if isinstance(source, str | os.PathLike) or (
            isinstance(source, Sequence) and not isinstance(source, bytes)
        ):
            self._source: DataSource = URLSource(source, storage_options=self.storage_options)
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
        self._output_lens: Lens | None = None
        self._decode_type: type | None = None  # the stored type, when a lens is applied
        self._sample_type_cache: type | None = None

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

    def as_type(self, other: type[Any]) -> Dataset[Any]:
        """View this dataset as another sample type through the lens network.

        The identity lens applies when ``other`` is the current type; lenses compose
        (``A -> B -> C``), and chained ``as_type`` calls compose too.

        Raises:
            ValueError: No lens leads from the current type to ``other``.
        """
        step = LensNetwork().transform(self.sample_type, other)
        result: Dataset[Any] = Dataset[other](  # type: ignore[valid-type]
            self._source,
            self.metadata_url,
            storage_options=self.storage_options,
            on_shard_error=self.on_shard_error,
            sample_counts=self.sample_counts,
        )
        result.url = self.url
        result._decode_type = self._decode_type or self.sample_type
        result._output_lens = step if self._output_lens is None else self._output_lens.then(step)
        result._metadata = self._metadata
        return result

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

            with open_url(self.metadata_url, "rb", self.storage_options) as f:
                raw = f.read()
            try:
                self._metadata = msgpack.unpackb(raw, raw=False, strict_map_key=False)
            except Exception as exc:
                raise SampleDecodeError(
                    f"Metadata at {self.metadata_url} is not valid msgpack: {exc}"
                ) from exc
        return self._metadata

    # --- iteration -------------------------------------------------------------------

    def _reader(self) -> _Read:
        return _Read(
            self._source,
            self._decode_type or self.sample_type,
            self._output_lens,
            self.on_shard_error,
            self.sample_counts,
        )

    def _tail(self, batch_size: int | None) -> list[Callable[..., Any]]:
        return [] if batch_size is None else [_Batch(batch_size, self.sample_type)]

    def ordered(self, batch_size: int | None = None) -> wds.DataPipeline:
        """Iterate the samples in shard order.

        Args:
            batch_size: Yield :class:`SampleBatch` objects of this size (the last one may
                be shorter) instead of single samples.

        Returns:
            A re-iterable pipeline (a torch ``IterableDataset`` when torch is installed).
        """
        return wds.DataPipeline(
            _ShardList(self._source),
            wds.shardlists.split_by_node,
            wds.shardlists.split_by_worker,
            self._reader(),
            *self._tail(batch_size),
        )

    def shuffled(
        self,
        buffer_shards: int = 100,
        buffer_samples: int = 10_000,
        batch_size: int | None = None,
        seed: int | None = None,
    ) -> wds.DataPipeline:
        """Iterate in shuffled order: shards shuffled, then samples through a buffer.

        Args:
            buffer_shards: Kept for atdata compatibility; the whole shard list (of this
                node and worker) is shuffled.
            buffer_samples: Size of the sample shuffle buffer (at least 1; 1 keeps the
                order of the shuffled shards).
            batch_size: As in :meth:`ordered`.
            seed: Makes the order reproducible: the same seed gives the same order on every
                iteration and run (pass e.g. the epoch number for a new order per epoch).

        Returns:
            A re-iterable pipeline.

        Raises:
            ValueError: ``buffer_samples`` or ``batch_size`` is smaller than 1.
        """
        del buffer_shards  # each worker shuffles its own shard list entirely
        return wds.DataPipeline(
            _ShardList(self._source),
            wds.shardlists.split_by_node,
            wds.shardlists.split_by_worker,
            # Shards are split before shuffling: every worker owns a fixed share whatever
            # the seed, so no shard is read twice or missed across workers.
            _ShuffleShards(seed),
            self._reader(),
            _ShuffleSamples(buffer_samples, seed),
            *self._tail(batch_size),
        )

    def __repr__(self) -> str:
        return (
            f"Dataset[{getattr(self.sample_type, '__name__', self.sample_type)}]({self._source!r})"
        )
