"""Initial tables: schemas, datasets, dataset_shards.

Revision ID: a1c3e0d9b7f1
Revises:
Create Date: 2026-11-23 17:55:00

Frozen here (not imported from atdata_lite): the tables as they were at this revision. CIDs
were only indexed, not unique; there was no semver index.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a1c3e0d9b7f1"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "schemas",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("record_json", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("semver_major", sa.Integer(), nullable=True),
        sa.Column("semver_minor", sa.Integer(), nullable=True),
        sa.Column("semver_patch", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_schemas"),
        sa.UniqueConstraint("name", "version", name="uq_schemas_name_version"),
    )
    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cid", sa.String(255), nullable=False),
        sa.Column("name", sa.String(1024), nullable=False),
        sa.Column("schema_ref", sa.String(1024), nullable=False),
        sa.Column("metadata", sa.LargeBinary(), nullable=True),
        sa.Column("legacy_uuid", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_datasets"),
        sa.UniqueConstraint("name", name="uq_datasets_name"),
    )
    op.create_index("ix_datasets_cid", "datasets", ["cid"])
    op.create_table(
        "dataset_shards",
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("sample_count", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name="fk_dataset_shards_dataset_id_datasets",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("dataset_id", "position", name="pk_dataset_shards"),
    )


def downgrade() -> None:
    op.drop_table("dataset_shards")
    op.drop_index("ix_datasets_cid", table_name="datasets")
    op.drop_table("datasets")
    op.drop_table("schemas")
