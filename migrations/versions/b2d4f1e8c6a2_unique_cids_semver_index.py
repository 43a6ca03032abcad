"""Unique dataset CIDs; an index for "highest semver of a schema name".

Revision ID: b2d4f1e8c6a2
Revises: a1c3e0d9b7f1
Create Date: 2026-11-23 17:56:00

CIDs become unique: the same content is never stored under two names (atdata's Redis layout
keys entries by CID, and both backends must behave alike). On SQLite adding the constraint
rebuilds the ``datasets`` table (batch mode), which is why migrations run with foreign keys
off: dropping the old table would otherwise cascade-delete every shard row.

An index written before this revision that holds two datasets with the same CID cannot be
upgraded: the upgrade fails, the index is left as it was and the backup is kept. Delete or
re-point one of them with the older atdata-lite, then open it again.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "b2d4f1e8c6a2"
down_revision: str | None = "a1c3e0d9b7f1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.drop_index("ix_datasets_cid")
        batch.create_unique_constraint("uq_datasets_cid", ["cid"])
    op.create_index(
        "ix_schemas_name_semver",
        "schemas",
        ["name", "semver_major", "semver_minor", "semver_patch"],
    )


def downgrade() -> None:
    op.drop_index("ix_schemas_name_semver", table_name="schemas")
    with op.batch_alter_table("datasets") as batch:
        batch.drop_constraint("uq_datasets_cid", type_="unique")
        batch.create_index("ix_datasets_cid", ["cid"])
