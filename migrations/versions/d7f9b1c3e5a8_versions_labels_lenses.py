"""Dataset versions, labels and stored lenses.

Revision ID: d7f9b1c3e5a8
Revises: c4e6a8b0d2f5
Create Date: 2026-12-02 09:00:00

A dataset name gets a history: ``datasets`` gains ``version`` (with its parsed semver parts)
and the unique key moves from ``name`` to ``(name, version)``. Every existing entry becomes
version ``1.0.0`` of its name, so ``get_dataset(name)`` and every stored CID read exactly as
before. The new tables ``labels`` (``(name, version) -> dataset row``, atdata 0.7's labels
with a foreign key, so none can dangle) and ``lenses`` start empty.

On SQLite, changing the unique key rebuilds ``datasets`` (batch mode); migrations run with
foreign keys off, so the rebuild keeps every shard row.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d7f9b1c3e5a8"
down_revision: str | None = "c4e6a8b0d2f5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here: migrations never import the live models.
_Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(
            sa.Column("version", sa.String(64), nullable=False, server_default="1.0.0")
        )
        batch.add_column(sa.Column("semver_major", sa.Integer, nullable=True))
        batch.add_column(sa.Column("semver_minor", sa.Integer, nullable=True))
        batch.add_column(sa.Column("semver_patch", sa.Integer, nullable=True))
        batch.drop_constraint("uq_datasets_name", type_="unique")
        batch.create_unique_constraint("uq_datasets_name_version", ["name", "version"])
        batch.create_index(
            "ix_datasets_name_semver", ["name", "semver_major", "semver_minor", "semver_patch"]
        )
    op.execute("UPDATE datasets SET semver_major = 1, semver_minor = 0, semver_patch = 0")
    op.create_table(
        "labels",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(1024), nullable=False),
        sa.Column("version", sa.String(64), nullable=False, server_default=""),
        sa.Column("dataset_id", sa.Integer, nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("created_at", _Timestamp, nullable=False),
        sa.Column("updated_at", _Timestamp, nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name="fk_labels_dataset_id_datasets",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_labels"),
        sa.UniqueConstraint("name", "version", name="uq_labels_name_version"),
    )
    op.create_index("ix_labels_dataset_id", "labels", ["dataset_id"])
    op.create_table(
        "lenses",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("record_json", sa.Text, nullable=False),
        sa.Column("source_schema", sa.String(1024), nullable=False),
        sa.Column("view_schema", sa.String(1024), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("created_at", _Timestamp, nullable=False),
        sa.Column("semver_major", sa.Integer, nullable=True),
        sa.Column("semver_minor", sa.Integer, nullable=True),
        sa.Column("semver_patch", sa.Integer, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_lenses"),
        sa.UniqueConstraint("name", "version", name="uq_lenses_name_version"),
    )
    op.create_index("ix_lenses_schemas", "lenses", ["source_schema", "view_schema"])


def downgrade() -> None:
    op.drop_index("ix_lenses_schemas", table_name="lenses")
    op.drop_table("lenses")
    op.drop_index("ix_labels_dataset_id", table_name="labels")
    op.drop_table("labels")
    # Only the highest version of each name can keep the name once it is unique again.
    op.execute(
        "DELETE FROM datasets WHERE EXISTS (SELECT 1 FROM datasets AS newer "
        "WHERE newer.name = datasets.name AND newer.id > datasets.id)"
    )
    op.execute("DELETE FROM dataset_shards WHERE dataset_id NOT IN (SELECT id FROM datasets)")
    with op.batch_alter_table("datasets") as batch:
        batch.drop_index("ix_datasets_name_semver")
        batch.drop_constraint("uq_datasets_name_version", type_="unique")
        batch.create_unique_constraint("uq_datasets_name", ["name"])
        batch.drop_column("semver_patch")
        batch.drop_column("semver_minor")
        batch.drop_column("semver_major")
        batch.drop_column("version")
