"""Each dataset row carries its shard list: ``datasets.packed_shards``.

Revision ID: e2b4d6f8a0c1
Revises: d7f9b1c3e5a8
Create Date: 2026-12-09 09:00:00

``datasets`` gains ``packed_shards``: the entry's shards as one msgpack array of
``[url, size, sample_count, sha256, split]`` arrays, in position order. The shard rows stay
(they are the normalised record); the backend writes both in one transaction, and reads an
entry from its one row. The upgrade packs every existing entry's shard rows, so nothing is
left for readers to fall back on; the downgrade drops the column.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby

import msgpack
import sqlalchemy as sa
from alembic import op

revision: str = "e2b4d6f8a0c1"
down_revision: str | None = "d7f9b1c3e5a8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here: migrations never import the live models (nor the live packing code; this is
# the same layout, written out).
_datasets = sa.table(
    "datasets", sa.column("id", sa.Integer), sa.column("packed_shards", sa.LargeBinary)
)
_shards = sa.table(
    "dataset_shards",
    sa.column("dataset_id", sa.Integer),
    sa.column("position", sa.Integer),
    sa.column("url", sa.Text),
    sa.column("size", sa.BigInteger),
    sa.column("sample_count", sa.BigInteger),
    sa.column("sha256", sa.String),
    sa.column("split", sa.String),
)
_BATCH = 1000


def _pack(rows: list[sa.Row]) -> bytes:
    packed: bytes = msgpack.packb(
        [(r.url, r.size, r.sample_count, r.sha256, r.split) for r in rows], use_bin_type=True
    )
    return packed


def upgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("packed_shards", sa.LargeBinary, nullable=True))
    conn = op.get_bind()
    s = _shards.c
    rows = conn.execute(
        sa.select(s.dataset_id, s.url, s.size, s.sample_count, s.sha256, s.split).order_by(
            s.dataset_id, s.position
        )
    ).all()
    update = (
        sa.update(_datasets)
        .where(_datasets.c.id == sa.bindparam("did"))
        .values(packed_shards=sa.bindparam("packed"))
    )
    params = [{"did": did, "packed": _pack(list(g))} for did, g in groupby(rows, lambda r: r[0])]
    for i in range(0, len(params), _BATCH):
        conn.execute(update, params[i : i + _BATCH])
    # Entries without shards: an empty list, not NULL (NULL means "read the shard rows").
    conn.execute(
        sa.update(_datasets)
        .where(_datasets.c.packed_shards.is_(None))
        .values(packed_shards=msgpack.packb([]))
    )


def downgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("packed_shards")
