"""``ShardRecord``: what is known of one shard file, shared by the data path and the index.

The shard writer (:mod:`atdata_lite.shards`) produces these records and the index stores them
(:mod:`atdata_lite.index.backend` re-exports the class). It lives below both, so the data
path never imports the index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["ShardFields", "ShardRecord"]


@dataclass(slots=True, unsafe_hash=True)
class ShardRecord:
    """One shard of a dataset, as the index records it.

    Treat it as immutable (it is hashable by value). It is not ``frozen`` because a frozen
    dataclass costs five times as much to build, and listing an index builds one per shard.

    Attributes:
        url: The shard's URL or path, exactly as given when the dataset was indexed. Entries
            imported from atdata may hold a brace pattern here; it is kept as-is so that the
            entry's CID stays the same.
        size: Size in bytes, when known.
        sample_count: Number of samples, when known.
        sha256: Hex SHA-256 of the shard file's bytes, when known.
        split: The named split (``"train"``, ``"test"``...) the shard belongs to, or
            ``None`` for an entry without splits. In an entry, either every shard names a
            split or none does.
    """

    url: str
    size: int | None = None
    sample_count: int | None = None
    sha256: str | None = None
    split: str | None = None


#: Shards as tuples of :class:`ShardRecord`'s fields, in its order: ``(url, size,
#: sample_count, sha256, split)``. What a backend hands a caller that builds records only
#: when they are asked for (see ``IndexBackend.iter_datasets_as``).
ShardFields = tuple[tuple[str, int | None, int | None, str | None, str | None], ...]

#: How a backend hands ``shards`` to a ``make`` function (see ``IndexBackend.iter_datasets_as``):
#: ``False`` as records, ``True`` as :data:`ShardFields`, ``"packed"`` as :data:`ShardFields`
#: or, from a backend that stores the shard list as one packed value (the SQL backend), that
#: value already read and checked (``bytes``), for the index's own entries to decode on
#: first use.
ShardForm = bool | Literal["packed"]
