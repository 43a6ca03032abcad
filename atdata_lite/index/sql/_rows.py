"""Dataset rows into records or entries: the SQL backend's read path, row by row.

A dataset row holds the columns of ``backend._DATASET_COLUMNS``: ``cid, name, schema_ref,
metadata, legacy_uuid, created_at, updated_at, packed_shards, version`` (``updated_at`` NULL
when it equals ``created_at``), then, for writers (:func:`records`), the row ``id``. Each is
turned into one item by one call of :func:`read_row`; a listing pays that call per row and
no generator (``map`` and ``filter`` drive it at C speed).

What a reader checks, for every row: its values convert (a timestamp that does not parse
skips the row, with a warning naming it); its packed shard list reads and has the right
shape and types (see :mod:`._packed`) -- one that does not is read from the shard rows
instead, with a warning, so a damaged list hides no dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from functools import partial
from itertools import repeat
from operator import is_not
from typing import Any

from ..._log import get_logger
from ..._records import ShardForm, ShardRecord
from ..backend import DatasetRecord
from ._packed import unpack_shard_fields, unpack_shards

__all__ = ["DEFAULT_VERSION", "SKIPPED", "ShardsOf", "items", "read_row", "records"]

log = get_logger(__name__)

#: Reads a dataset's shard rows (``url, size, sample_count, sha256, split``) by its CID.
ShardsOf = Callable[[str], Sequence[Sequence[Any]]]

#: The version an entry gets when none is given; read as NULL (see backend._DATASET_COLUMNS).
DEFAULT_VERSION = "1.0.0"
#: What a reader returns for a row it skipped (``make`` itself may return ``None``).
SKIPPED: Any = object()
_kept = partial(is_not, SKIPPED)
_fromisoformat = datetime.fromisoformat


def read_row(
    row: Sequence[Any],
    shards_of: ShardsOf,
    make: Callable[..., Any] = DatasetRecord,
    fields: ShardForm = False,
) -> Any:
    """Turn one dataset row into ``make``'s item, or :data:`SKIPPED`.

    Args:
        row: The row, as the driver returned it (timestamps as SQLite's text, or as
            ``datetime`` values from SQLAlchemy and PostgreSQL).
        shards_of: Reads the shard rows of a row whose packed list is NULL or unreadable.
        make: Builds the item from :class:`DatasetRecord`'s fields, in order.
        fields: Hand ``make`` the shards as field tuples instead of records, or (``"packed"``)
            as the packed value itself once it is checked (field tuples when the row has
            none, or a damaged one).
    """
    # One call per row does everything (listing runs it 10,000 times for 10,000 entries):
    # the timestamps are converted here rather than by a converter of the whole row.
    try:
        # updated_at comes as NULL when it equals created_at (see backend._DATASET_COLUMNS).
        created, updated = row[5], row[6]
        if type(created) is str:
            # SQLite keeps UTC text; parsing it is the check that it is a time (a row whose
            # timestamp does not parse is skipped below).
            try:  # the format the backend writes (see _parse_utc), without a call
                stamp = _fromisoformat(created + "+00:00")
            except ValueError:
                stamp = _parse_utc(created)
            updated = stamp if updated is None else _parse_utc(updated)
            created = stamp
        elif created is not None:
            if updated is None:
                updated = created
            if created.tzinfo is None:
                # SQLAlchemy on an in-memory SQLite database returns naive UTC.
                created, updated = _utc(created), _utc(updated)
        packed = row[7]
        if packed is None:
            shards = _shard_rows_as(shards_of(row[0]), fields)
        else:
            try:
                if fields == "packed":  # checked here, decoded again by the entry if read
                    unpack_shard_fields(packed)
                    shards = packed
                else:
                    shards = unpack_shard_fields(packed) if fields else unpack_shards(packed)
            except ValueError as exc:
                # The shard rows are the normalised record: read them instead.
                log.warning("Dataset %r (CID %s): %s; reading its shard rows instead "
                            "('atdata-lite db check' reports it, 'db recover' repairs it).",
                            row[1], row[0], exc)  # fmt: skip
                shards = _shard_rows_as(shards_of(row[0]), fields)
    except (ValueError, TypeError, AttributeError) as exc:
        log.warning("Skipping unreadable dataset %r (CID %s): %s", row[1], row[0], exc)
        return SKIPPED
    version = row[8]
    if version is None:  # the default one (see backend._DATASET_COLUMNS)
        version = DEFAULT_VERSION
    return make(row[0], row[1], row[2], shards, row[3], row[4], created, updated, version)


def items(
    rows: Iterable[Sequence[Any]],
    shards_of: ShardsOf,
    make: Callable[..., Any] = DatasetRecord,
    fields: ShardForm = False,
) -> Iterator[Any]:
    """:func:`read_row` of every row, without the rows it skipped (``map`` at C speed)."""
    read = map(read_row, rows, repeat(shards_of), repeat(make), repeat(fields))
    return filter(_kept, read)


def records(
    rows: Iterable[Sequence[Any]], shards_of: ShardsOf
) -> Iterator[tuple[int, DatasetRecord]]:
    """``(id, record)`` for every readable row of a statement that selects the row id last
    (what writers need: the row ids)."""
    for row in rows:
        record = read_row(row, shards_of)
        if record is not SKIPPED:
            yield row[9], record


def _shard_rows_as(rows: Sequence[Sequence[Any]], fields: ShardForm) -> tuple[Any, ...]:
    if fields:
        return tuple([tuple(r) for r in rows])
    return tuple([ShardRecord(*r) for r in rows])


def _parse_utc(text: str) -> datetime:
    # The backend writes UTC as "YYYY-MM-DD HH:MM:SS.ffffff" (SQLAlchemy's SQLite format);
    # parsing it with the offset appended is several times cheaper than parsing and then
    # calling .replace(tzinfo=...). Text in another ISO form (an offset of its own, say) is
    # read as SQLAlchemy reads it, then taken as UTC; text that is no time raises ValueError.
    try:
        return _fromisoformat(text + "+00:00")
    except ValueError:
        return _fromisoformat(text).replace(tzinfo=UTC)


def _utc(value: datetime | None) -> datetime | None:
    # SQLite keeps no time zone: the backend wrote UTC, so the naive value read back is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value
