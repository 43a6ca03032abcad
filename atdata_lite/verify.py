"""Verifying shards against the index: re-read each one and compare what the index recorded.

:func:`verify_datasets` is what ``atdata-lite verify`` runs. It reads shards and writes
nothing, so cancelling it (``cancel=``) just stops it: the shards checked so far are
reported by nobody, and nothing changes on disk or in the index.

Example:
    >>> report = verify_datasets(index, ["photos"], progress=False)  # doctest: +SKIP
    >>> report.ok
    True
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ._records import ShardRecord
from .errors import OperationCancelled
from .progress import CancelToken, Progress, ProgressArg

__all__ = ["ShardCheck", "VerifyReport", "check_shard", "verify_datasets"]

_SEVERITY = {"ok": 0, "mismatch": 1, "missing": 2}


@dataclass(frozen=True)
class ShardCheck:
    """The verdict on one shard of one dataset.

    Attributes:
        dataset: The dataset's name.
        url: The shard's URL as recorded.
        status: ``"ok"``, ``"mismatch"`` (different bytes, or unreadable) or ``"missing"``.
        problems: What differs, one phrase each (empty when all is well).
    """

    dataset: str
    url: str
    status: str
    problems: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """``{"dataset", "url", "status", "problems"}`` (the ``--json`` shape)."""
        return {
            "dataset": self.dataset,
            "url": self.url,
            "status": self.status,
            "problems": list(self.problems),
        }


@dataclass
class VerifyReport:
    """What :func:`verify_datasets` found: one :class:`ShardCheck` per shard, in order."""

    datasets: list[str] = field(default_factory=list)
    shards: list[ShardCheck] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        """How many shards are ``ok``, ``mismatch`` and ``missing``."""
        return {s: sum(c.status == s for c in self.shards) for s in ("ok", "mismatch", "missing")}

    @property
    def ok(self) -> bool:
        """True when every shard checked is ok."""
        return all(c.status == "ok" for c in self.shards)


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    return text.split(". ", 1)[0].rstrip(".")


def _shards_of(entry: Any) -> list[ShardRecord]:
    shards = getattr(entry, "shards", None)
    if shards:
        return list(shards)
    return [ShardRecord(url) for url in entry.data_urls]


def check_shard(shard: ShardRecord, *, cancel: CancelToken | None = None) -> dict[str, Any]:
    """Re-read one shard and compare it with what the index recorded.

    Args:
        shard: The recorded facts (URL, and size, sample count, sha256 when known).
        cancel: Checked while reading (see :func:`~atdata_lite.shards.inspect_shard`).

    Returns:
        ``{"url", "status": "ok"|"mismatch"|"missing", "problems": [...]}``. A shard that
        exists but cannot be read as a tar of samples is a mismatch ("unreadable: ...").
        Entries imported from atdata may hold a brace pattern as one URL: each file it
        names is checked, and the worst status counts.

    Raises:
        OperationCancelled: ``cancel`` was set.
    """
    from .sources import expand_urls

    parts = expand_urls(shard.url) if "{" in shard.url else [shard.url]
    if len(parts) <= 1:
        return _check_one(shard, cancel)
    checked = [_check_one(ShardRecord(url), cancel) for url in parts]
    status = max((r["status"] for r in checked), key=_SEVERITY.__getitem__)
    problems = [f"{r['url']}: {p}" for r in checked if r["status"] != "ok" for p in r["problems"]]
    if status == "ok":
        problems = [f"all {len(parts)} files of the pattern are readable; nothing recorded"]
    return {"url": shard.url, "status": status, "problems": problems}


def _check_one(shard: ShardRecord, cancel: CancelToken | None) -> dict[str, Any]:
    from .errors import CorruptShardError, ShardNotFoundError
    from .shards import inspect_shard

    result: dict[str, Any] = {"url": shard.url, "status": "ok", "problems": []}
    try:
        actual = inspect_shard(shard.url, cancel=cancel)
    except ShardNotFoundError:
        result.update(status="missing", problems=["the file does not exist"])
        return result
    except CorruptShardError as exc:
        reason = _first_sentence(str(exc))
        if shard.url in reason:  # the table already names the shard
            reason = reason.split(shard.url, 1)[1].lstrip(": ")
        result.update(status="mismatch", problems=[f"unreadable: {reason}"])
        return result
    problems = []
    if shard.size is not None and actual.size != shard.size:
        problems.append(f"size {actual.size} (recorded {shard.size})")
    if shard.sample_count is not None and actual.sample_count != shard.sample_count:
        problems.append(f"{actual.sample_count} samples (recorded {shard.sample_count})")
    if shard.sha256 is not None and actual.sha256 != shard.sha256:
        got = actual.sha256 or ""  # inspect_shard always hashes
        problems.append(f"sha256 {got[:16]}... (recorded {shard.sha256[:16]}...)")
    if problems:
        result.update(status="mismatch", problems=problems)
    elif shard.sha256 is None and shard.size is None and shard.sample_count is None:
        # Entries imported from atdata carry no facts: readable is all we can check.
        result["problems"] = ["nothing recorded to compare; the shard is readable"]
    return result


def verify_datasets(
    index: Any,
    names: Iterable[str] | None = None,
    *,
    progress: ProgressArg = None,
    cancel: CancelToken | None = None,
) -> VerifyReport:
    """Re-hash the shards of datasets and compare size, sample count and sha256.

    Args:
        index: An :class:`~atdata_lite.index.api.Index`.
        names: The datasets to check (each once); ``None`` checks every dataset.
        progress: ``None``/``True`` a bar on a terminal, ``False`` nothing, or a callable
            receiving :class:`~atdata_lite.progress.ProgressEvent` objects (unit
            ``"shard"``, item: the shard being read).
        cancel: Checked before each shard and while reading it (every 1 MiB at most).

    Returns:
        A :class:`VerifyReport`; ``report.ok`` is False if any shard differs or is missing.

    Raises:
        DatasetNotFoundError: A named dataset does not exist (nothing was read).
        OperationCancelled: ``cancel`` was set (nothing is ever written by verifying).
    """
    if names is None:
        entries = list(index.list_datasets())
    else:
        entries = [index.get_dataset(n) for n in dict.fromkeys(names)]
    jobs = [(entry.name, shard) for entry in entries for shard in _shards_of(entry)]
    report = VerifyReport(datasets=[e.name for e in entries])
    with Progress("verifying shards", len(jobs), progress, unit="shard", cancel=cancel) as bar:
        for dataset, shard in jobs:
            bar.update(0, item=shard.url)
            try:
                found = check_shard(shard, cancel=cancel)
            except OperationCancelled:
                raise OperationCancelled(bar.label) from None  # stopped inside a shard
            report.shards.append(
                ShardCheck(dataset, found["url"], found["status"], tuple(found["problems"]))
            )
            bar.update()
    return report
