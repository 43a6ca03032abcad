"""``pull``: fetch the remote shards of datasets into the shard cache (``atdata-lite pull``).

Public as ``atdata_lite.pull`` (and ``atdata_lite.PullResult``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from ._records import ShardRecord
from .cache import default_cache, is_remote
from .progress import CancelToken, Progress, ProgressArg

__all__ = ["PullResult", "pull"]


@dataclass(frozen=True)
class PullResult:
    """What :func:`pull` did for one dataset.

    Attributes:
        name: The dataset.
        split: The split fetched, or ``None`` for every shard.
        remote_shards: How many of its shards are remote (local ones are never copied).
        fetched: Shards downloaded by this call.
        fetched_bytes: Bytes of those shards.
        already_cached: Shards that were in the cache already.
    """

    name: str
    split: str | None
    remote_shards: int
    fetched: int
    fetched_bytes: int
    already_cached: int

    def to_dict(self) -> dict[str, Any]:
        """The fields as a dict (the ``--json`` shape)."""
        return asdict(self)


def entry_shards(entry: Any, split: str | None = None) -> list[ShardRecord]:
    """The shards of an entry, or of one of its splits.

    Raises:
        KeyError: The entry has no split of that name (the message lists its splits).
    """
    shards = list(getattr(entry, "shards", None) or [ShardRecord(u) for u in entry.data_urls])
    if split is None:
        return shards
    splits = dict(getattr(entry, "splits", None) or {})
    if split not in splits:
        known = ", ".join(sorted(splits)) or "none"
        raise KeyError(f"Dataset {entry.name!r} has no split {split!r} (splits: {known}).")
    wanted = set(splits[split])
    return [s for s in shards if s.url in wanted]


def pull(
    entries: Iterable[Any],
    *,
    split: str | None = None,
    cache: Any = None,
    progress: ProgressArg = None,
    cancel: CancelToken | None = None,
) -> list[PullResult]:
    """Fetch every remote shard of ``entries`` into the shard cache, verified.

    Each copy is checked against the SHA-256 and size the index records before it becomes
    visible. Shards already cached are skipped; a partial download left by an interrupted
    pull is resumed where it stopped.

    Args:
        entries: Dataset entries (``index.get_dataset(name)``).
        split: Fetch only this split of each entry.
        cache: The :class:`~atdata_lite.cache.ShardCache` (default: the default cache).
        progress: ``None``/``True`` a bar on a terminal, ``False`` nothing, or a callable
            receiving :class:`~atdata_lite.progress.ProgressEvent` objects (unit ``"byte"``
            when every shard's size is recorded, else ``"shard"``; item: the shard URL).
        cancel: Checked before every shard and every 1 MiB downloaded.

    Returns:
        One :class:`PullResult` per entry.

    Raises:
        OperationCancelled: ``cancel`` was set. Complete copies stay in the cache (they are
            verified), and the bytes of the shard in flight are kept as a partial download
            that the next pull resumes; ``kept`` says so.
        CacheFullError, CorruptShardError, ShardNotFoundError: As
            :meth:`~atdata_lite.cache.ShardCache.fetch`.
    """
    cache = cache if cache is not None else default_cache()
    plans = [(e, [s for s in entry_shards(e, split) if is_remote(s.url)]) for e in entries]
    sizes = [s.size for _, shards in plans for s in shards]
    by_bytes = bool(sizes) and all(k is not None for k in sizes)
    total = sum(s for s in sizes if s is not None) if by_bytes else len(sizes)
    results: list[PullResult] = []
    fetched_total = 0
    with Progress(
        "pulling", total, progress, unit="byte" if by_bytes else "shard", cancel=cancel
    ) as bar:
        for entry, shards in plans:
            fetched = skipped = fetched_bytes = 0
            for shard in shards:
                bar.update(0, item=shard.url)
                try:
                    item, downloaded = cache.fetch(
                        shard.url,
                        sha256=shard.sha256,
                        size=shard.size,
                        on_bytes=bar.update if by_bytes else None,
                        cancel=cancel,
                    )
                except Exception as exc:
                    from .errors import OperationCancelled

                    if isinstance(exc, OperationCancelled):
                        kept = []
                        if fetched_total + fetched:
                            kept.append(f"{fetched_total + fetched} shards fetched into the cache")
                        kept.extend(exc.kept)
                        raise OperationCancelled("pulling", kept=kept) from None
                    raise
                if downloaded:
                    fetched += 1
                    fetched_bytes += item.size if item is not None else 0
                else:
                    skipped += 1
                    if by_bytes and item is not None:
                        bar.update(item.size)
                if not by_bytes:
                    bar.update()
            fetched_total += fetched
            results.append(
                PullResult(entry.name, split, len(shards), fetched, fetched_bytes, skipped)
            )
    return results
