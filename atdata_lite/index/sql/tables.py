"""The index's tables, as SQLAlchemy Core ``Table`` objects: the source of truth.

The backend's hot path (open, look up, list, insert) uses Core statements on these tables;
the typed ORM classes in :mod:`.models` map onto the very same ``Table`` objects, and
``alembic check`` (a test) proves that the migrations in ``migrations/versions`` build exactly
this schema.

Changing anything here needs a new Alembic revision (``alembic revision --autogenerate``
against a database at head) and a new :data:`HEAD_REVISION`.

This module imports only SQLAlchemy Core: it is on the path of opening an index.
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = [
    "HEAD_REVISION",
    "KNOWN_REVISIONS",
    "PACKED_REVISION",
    "VERSION_TABLE",
    "dataset_shards",
    "datasets",
    "labels",
    "lenses",
    "metadata",
    "schemas",
    "version_metadata",
    "version_table",
]

#: Alembic's version table, under a private name: a PostgreSQL database shared with another
#: Alembic-managed application keeps its own ``alembic_version`` untouched.
VERSION_TABLE = "atdata_lite_alembic_version"

#: Every revision this code knows, oldest first. The last one is the head. A test asserts
#: that this equals the revision history of ``migrations/versions``; keeping it in code lets
#: opening a current index cost one query and no Alembic import.
KNOWN_REVISIONS: tuple[str, ...] = (
    "a1c3e0d9b7f1",
    "b2d4f1e8c6a2",
    "c4e6a8b0d2f5",
    "d7f9b1c3e5a8",
    "e2b4d6f8a0c1",
)
HEAD_REVISION: str = KNOWN_REVISIONS[-1]
#: The revision that added ``datasets.packed_shards``.
PACKED_REVISION = "e2b4d6f8a0c1"

# Named constraints from day one: SQLite cannot alter an unnamed constraint later, and
# Alembic's batch mode needs names to drop or replace one.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

# Timestamps are timezone-aware: TIMESTAMPTZ on PostgreSQL; on SQLite (no time zones) the
# backend writes UTC and reads the value back as UTC.
_Timestamp = sa.DateTime(timezone=True)

schemas = sa.Table(
    "schemas",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("version", sa.String(64), nullable=False),
    # The JSON record exactly as given (atdata's format, without ``$ref``): never re-encoded,
    # so that an export or a CID over it stays byte-identical.
    sa.Column("record_json", sa.Text, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("created_at", _Timestamp, nullable=False),
    # The parsed ``x.y.z`` parts, so "highest version" is an indexed ORDER BY in SQL rather
    # than a scan in Python. NULL for versions that are not semver (imported from atdata).
    sa.Column("semver_major", sa.Integer, nullable=True),
    sa.Column("semver_minor", sa.Integer, nullable=True),
    sa.Column("semver_patch", sa.Integer, nullable=True),
    sa.UniqueConstraint("name", "version"),
    # Revision 2: the auto-versioning query (highest semver of one name) reads this index.
    sa.Index("ix_schemas_name_semver", "name", "semver_major", "semver_minor", "semver_patch"),
)

datasets = sa.Table(
    "datasets",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("cid", sa.String(255), nullable=False),
    sa.Column("name", sa.String(1024), nullable=False),
    sa.Column("schema_ref", sa.String(1024), nullable=False),
    # msgpack bytes (use_bin_type=True), exactly as atdata stores metadata in Redis.
    sa.Column("metadata", sa.LargeBinary, nullable=True),
    sa.Column("legacy_uuid", sa.String(64), nullable=True),
    sa.Column("created_at", _Timestamp, nullable=False),
    sa.Column("updated_at", _Timestamp, nullable=False),
    # Revision 4: a name has a history. Each row is one version of its name; the version
    # is any label-safe string, ``x.y.z`` for everything the API numbers itself. Rows that
    # existed before revision 4 became version 1.0.0.
    sa.Column("version", sa.String(64), nullable=False, server_default="1.0.0"),
    # The parsed ``x.y.z`` parts (NULL when the version is not semver): "the latest version
    # of a name" is an indexed ORDER BY.
    sa.Column("semver_major", sa.Integer, nullable=True),
    sa.Column("semver_minor", sa.Integer, nullable=True),
    sa.Column("semver_patch", sa.Integer, nullable=True),
    # Revision 5: the entry's shard list as one msgpack value (see ._packed), written with the
    # shard rows in the same transaction, so that reading an entry reads one row and no join.
    # NULL: not packed (a row written by hand or through the ORM); readers use the shard rows.
    sa.Column("packed_shards", sa.LargeBinary, nullable=True),
    sa.UniqueConstraint("name", "version"),
    # Revision 2: CIDs became unique (revision 1 only indexed them), so that the same
    # content is never stored twice, as in atdata's CID-keyed Redis layout. Revision 4
    # keeps it: more names for stored content are labels, not copies of the row.
    sa.UniqueConstraint("cid"),
    sa.Index("ix_datasets_name_semver", "name", "semver_major", "semver_minor", "semver_patch"),
)

dataset_shards = sa.Table(
    "dataset_shards",
    metadata,
    sa.Column(
        "dataset_id",
        sa.Integer,
        sa.ForeignKey("datasets.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=True),
    sa.Column("sample_count", sa.BigInteger, nullable=True),
    sa.Column("sha256", sa.String(64), nullable=True),
    # Revision 3: the named split (train/validation/test...) of the shard; NULL for entries
    # without splits. A split's shards are the entry's shards naming it, in position order.
    sa.Column("split", sa.String(255), nullable=True),
)

# Revision 4: labels (atdata 0.7's ``(name, version) -> CID``). A label points at a stored
# dataset row, never at a bare CID: the foreign key makes a dangling label impossible, and
# removing a dataset version removes the labels that point at it.
labels = sa.Table(
    "labels",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(1024), nullable=False),
    # "" is atdata's "no version": the label ``name`` itself.
    sa.Column("version", sa.String(64), nullable=False, server_default=""),
    sa.Column(
        "dataset_id",
        sa.Integer,
        sa.ForeignKey("datasets.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("created_at", _Timestamp, nullable=False),
    sa.Column("updated_at", _Timestamp, nullable=False),
    sa.UniqueConstraint("name", "version"),
    sa.Index("ix_labels_dataset_id", "dataset_id"),
)

# Revision 4: stored lenses (atdata 0.7's ``lenses`` table, with semver parts and the two
# schema names as columns so that ``find_lenses`` is a query).
lenses = sa.Table(
    "lenses",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
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
    sa.UniqueConstraint("name", "version"),
    sa.Index("ix_lenses_schemas", "source_schema", "view_schema"),
)

# The version table lives in its own MetaData: Alembic owns it (autogenerate ignores it),
# and the backend creates and stamps it itself for a new index so that creating one does not
# import Alembic. Same definition as Alembic's own (``version_num`` VARCHAR(32), ``<name>_pkc``).
version_metadata = sa.MetaData()
version_table = sa.Table(
    VERSION_TABLE,
    version_metadata,
    sa.Column("version_num", sa.String(32), nullable=False),
    sa.PrimaryKeyConstraint("version_num", name=f"{VERSION_TABLE}_pkc"),
)
