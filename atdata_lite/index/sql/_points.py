"""Point reads on SQLite: one entry in six columns instead of nine.

Python's ``sqlite3`` builds a cursor ``description`` (a decoded column name and a 7-tuple)
for every column of every statement it runs, which costs about as much per column as a
B-tree seek: on a lookup by CID or by name, the column count is most of the price of the
statement. The three columns an entry almost never needs -- ``legacy_uuid`` (only entries
imported from atdata 0.2 have one), ``updated_at`` when it differs from ``created_at``
(only replaced or renamed entries) and the version -- are read as one value, ``extras``:

* ``NULL``: no legacy UUID, never updated, the default version;
* text: no legacy UUID, never updated, that version;
* anything else (``0``): the row is one of the rare ones (or the name it was found under is
  not its own, through a label). The caller then runs the full statement of
  ``backend._DATASET_COLUMNS`` for the same key, which reads the row whole, as one snapshot.

SQLite only: the ``CASE`` mixes text and an integer, which PostgreSQL refuses (and a
PostgreSQL read costs a round trip, not column descriptions). The row a point read returns
is ``(key, schema_ref, metadata, created_at, packed_shards, extras)``, where ``key`` is the
name (a lookup by CID) or the CID (a lookup by name); :func:`read_point` reads it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..._records import ShardForm
from ._packed import unpack_shard_fields
from ._rows import DEFAULT_VERSION, ShardsOf, read_row
from .tables import datasets

__all__ = ["RARE", "compact_select", "read_point"]

_d = datasets.c
_RARE: sa.ColumnClause[Any] = sa.literal_column("0")
_fromisoformat = datetime.fromisoformat
# nullif() compares the two values as they are: ``updated_at = created_at`` would first try
# to read both texts as numbers (the columns' NUMERIC affinity), on every row.
_UPDATED_IF_LATER = sa.func.nullif(_d.updated_at, _d.created_at)

#: What :func:`read_point` returns for a row to read whole (see the module docstring).
RARE: Any = object()


def compact_select(key: sa.ColumnElement[Any], *, name_may_differ: bool = False) -> sa.Select[Any]:
    """The six-column point read, selecting ``key`` first (add the WHERE clause).

    Args:
        key: ``datasets.c.name`` (a lookup by CID) or ``datasets.c.cid`` (by name).
        name_may_differ: The row may have another name than the ``name`` parameter (it was
            reached through a label): such a row reads as a rare one.
    """
    common = sa.and_(_d.legacy_uuid.is_(None), _UPDATED_IF_LATER.is_(None))
    if name_may_differ:
        common = sa.and_(common, _d.name == sa.bindparam("name"))
    default_as_null = sa.func.nullif(_d.version, sa.literal_column("'1.0.0'"))
    extras = sa.case((common, default_as_null), else_=_RARE).label("extras")
    return sa.select(key, _d.schema_ref, _d.metadata, _d.created_at, _d.packed_shards, extras)


def read_point(
    cid: str,
    name: str,
    row: Sequence[Any],
    shards_of: ShardsOf,
    make: Callable[..., Any],
    fields: ShardForm,
) -> Any:
    """:func:`._rows.read_row` of a point read's row: ``make``'s item, :data:`._rows.SKIPPED`,
    or :data:`RARE` for a row to read whole.

    Args:
        cid: The entry's CID (``row[0]`` for a lookup by name).
        name: The entry's name (``row[0]`` for a lookup by CID).
        row: The six columns of :func:`compact_select`.
        shards_of: As for :func:`._rows.read_row`.
        make: As for :func:`._rows.read_row`.
        fields: As for :func:`._rows.read_row`.
    """
    extras = row[5]
    if extras is not None and type(extras) is not str:
        return RARE
    version = DEFAULT_VERSION if extras is None else extras
    created, packed = row[3], row[4]
    if fields == "packed" and packed is not None and type(created) is str:
        # What almost every lookup reads (the entries of Index): the checks of read_row,
        # inline; a value they refuse goes to read_row, which decides and warns.
        try:
            stamp = _fromisoformat(created + "+00:00")
            unpack_shard_fields(packed)
        except ValueError:
            pass
        else:
            return make(cid, name, row[1], packed, row[2], None, stamp, stamp, version)
    full = (cid, name, row[1], row[2], None, created, None, packed, extras)
    return read_row(full, shards_of, make, fields)
