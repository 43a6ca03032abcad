"""An entry's shard list as one value: ``datasets.packed_shards``.

The shard rows of ``dataset_shards`` are the normalised record of an entry's shards; the
backend also writes them, in the same transaction, as one msgpack value on the dataset row,
so that reading an entry (by CID, by name, or all of them) is one row of one table: no join,
no sort by position, one fetched row per entry.

The value is a msgpack array with one ``[url, size, sample_count, sha256, split]`` array per
shard, in position order. ``NULL`` means "not packed" (a row written by hand or through the
ORM): readers then read the shard rows instead. ``atdata-lite db check`` reports a row whose
packed list differs from its shard rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgpack

from ..._records import ShardRecord

__all__ = ["pack_shards", "unpack_shards"]

_unpackb = msgpack.unpackb


def pack_shards(shards: Sequence[ShardRecord]) -> bytes:
    """Encode ``shards`` for the ``packed_shards`` column.

    Args:
        shards: The entry's shards, in order.

    Returns:
        The msgpack bytes (see the module docstring for the layout).
    """
    packed: bytes = msgpack.packb(
        [(s.url, s.size, s.sample_count, s.sha256, s.split) for s in shards], use_bin_type=True
    )
    return packed


def unpack_shards(value: bytes) -> tuple[ShardRecord, ...]:
    """Decode a ``packed_shards`` value, checking its shape and types.

    Args:
        value: The stored bytes.

    Returns:
        The shards, in order.

    Raises:
        ValueError: The value is not a packed shard list (not msgpack, wrong shape, a URL
            that is not a string, a size that is not an integer...).
    """
    try:
        items = _unpackb(value, use_list=False)  # arrays as tuples: checked by type below
        if type(items) is not tuple or not all(type(item) is tuple for item in items):
            raise TypeError("not an array of arrays")
        shards = tuple([ShardRecord(*item) for item in items])
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise ValueError(f"packed shard list is unreadable ({exc})") from None
    for shard in shards:
        # One pass of isinstance checks: a value edited by hand must not reach readers as
        # an entry whose URLs are numbers.
        if not (
            type(shard.url) is str
            and (shard.size is None or type(shard.size) is int)
            and (shard.sample_count is None or type(shard.sample_count) is int)
            and (shard.sha256 is None or type(shard.sha256) is str)
            and (shard.split is None or type(shard.split) is str)
        ):
            raise ValueError(f"packed shard list holds a malformed shard: {shard!r}")
    return shards
