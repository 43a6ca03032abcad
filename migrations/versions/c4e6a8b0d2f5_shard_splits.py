"""Named splits: each shard row may name the split (train/validation/test...) it belongs to.

Revision ID: c4e6a8b0d2f5
Revises: b2d4f1e8c6a2
Create Date: 2026-11-29 10:40:00

A nullable column: every existing entry keeps its shards with no split, and reads exactly as
before. Adding a nullable column needs no table rebuild on SQLite (batch mode still does
``ALTER TABLE ... ADD COLUMN`` in place), so no shard row is ever copied.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c4e6a8b0d2f5"
down_revision: str | None = "b2d4f1e8c6a2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("dataset_shards") as batch:
        batch.add_column(sa.Column("split", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dataset_shards") as batch:
        batch.drop_column("split")
