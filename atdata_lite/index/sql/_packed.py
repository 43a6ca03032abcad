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
from operator import attrgetter

import msgpack

from ..._records import ShardFields, ShardRecord

__all__ = ["pack_shards", "unpack_shard_fields", "unpack_shards"]

_unpackb = msgpack.unpackb
_packb = msgpack.Packer(use_bin_type=True, autoreset=True).pack
_FIELDS = attrgetter("url", "size", "sample_count", "sha256", "split")


def pack_shards(shards: Sequence[ShardRecord]) -> bytes:
    """Encode ``shards`` for the ``packed_shards`` column.

    Args:
        shards: The entry's shards, in order.

    Returns:
        The msgpack bytes (see the module docstring for the layout).
    """
    packed: bytes = _packb(list(map(_FIELDS, shards)))
    return packed


def unpack_shard_fields(value: bytes) -> ShardFields:
    """Decode a ``packed_shards`` value into shard field tuples, checking shape and types.

    Args:
        value: The stored bytes.

    Returns:
        One ``(url, size, sample_count, sha256, split)`` tuple per shard, in order (the
        fields of :class:`ShardRecord`, in its order).

    Raises:
        ValueError: The value is not a packed shard list (not msgpack, wrong shape, a URL
            that is not a string, a size that is not an integer...).
    """
    try:
        items = _unpackb(value, use_list=False)  # arrays as tuples: checked by type below
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise ValueError(f"packed shard list is unreadable ({exc})") from None
    if type(items) is not tuple:
        raise ValueError("packed shard list is unreadable (not an array)")
    # One pass of type checks, as cheap as Python allows: listing runs this once per entry,
    # and a value edited by hand must not reach readers as an entry whose URLs are numbers.
    # Unpacking each item into five names checks its length (and that it is an array: a
    # string or map of five would fail the type checks).
    try:
        # (``x is not None and type(x) is not int`` is two pointer comparisons for the usual
        # None, where a set of types to look the type up in costs a hash lookup every time.)
        for url, size, count, sha256, split in items:
            if (
                type(url) is not str
                or (size is not None and type(size) is not int)
                or (count is not None and type(count) is not int)
                or (sha256 is not None and type(sha256) is not str)
                or (split is not None and type(split) is not str)
            ):
                raise TypeError(f"a malformed shard: {(url, size, count, sha256, split)!r}")
    except (ValueError, TypeError) as exc:
        raise ValueError(f"packed shard list holds {exc}") from None
    return items  # checked above


def unpack_shards(value: bytes) -> tuple[ShardRecord, ...]:
    """Decode a ``packed_shards`` value into records (see :func:`unpack_shard_fields`).

    Raises:
        ValueError: The value is not a packed shard list.
    """
    return tuple([ShardRecord(*fields) for fields in unpack_shard_fields(value)])
