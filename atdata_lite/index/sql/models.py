"""Typed ORM classes over the index's tables, for people who want the ORM.

The classes map onto the Core ``Table`` objects of :mod:`.tables` (``__table__ = ...``), so
there is one definition of the schema; the backend itself never imports this module (the ORM
costs far more per lookup than a Core statement, see ``benchmarks/index.py``).

Example:
    >>> from sqlalchemy.orm import Session
    >>> from atdata_lite.index.sql import open_sql_backend
    >>> from atdata_lite.index.sql.models import Dataset
    >>> backend = open_sql_backend("index.db")
    >>> with Session(backend.engine) as session:
    ...     names = [d.name for d in session.query(Dataset).order_by(Dataset.name)]

Writes through the ORM bypass the backend's rules (CID uniqueness is still enforced by the
database, schema immutability is not): prefer :class:`atdata_lite.Index` for writing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import DeclarativeBase, Mapped, column_property, relationship

from .tables import dataset_shards, datasets, metadata, schemas

__all__ = ["Base", "Dataset", "DatasetShard", "Schema"]


# With ``__table__``, the annotations only type the attributes: the columns come from the
# Core table (declaring them again with ``mapped_column`` is an error).


class Base(DeclarativeBase):
    """Declarative base sharing the tables' ``MetaData`` (and its naming convention)."""

    metadata = metadata


class Schema(Base):
    """A published schema version (``name@version``, immutable once published)."""

    __table__ = schemas

    id: Mapped[int]
    name: Mapped[str]
    version: Mapped[str]
    record_json: Mapped[str]
    content_hash: Mapped[str]
    created_at: Mapped[datetime]
    semver_major: Mapped[int | None]
    semver_minor: Mapped[int | None]
    semver_patch: Mapped[int | None]

    def __repr__(self) -> str:
        return f"Schema({self.name}@{self.version})"


class Dataset(Base):
    """A dataset entry; ``shards`` in order."""

    __table__ = datasets

    id: Mapped[int]
    cid: Mapped[str]
    name: Mapped[str]
    schema_ref: Mapped[str]
    # ``metadata`` is taken by the declarative base: the column is mapped as ``metadata_``.
    metadata_: Mapped[bytes | None] = column_property(datasets.c.metadata)
    legacy_uuid: Mapped[str | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # The shards packed on the row (see ``atdata_lite.index.sql._packed``), which is what
    # the backend reads. After changing ``shards`` through the ORM, set it to ``None``: the
    # backend then reads the shard rows.
    packed_shards: Mapped[bytes | None]
    shards: Mapped[list[DatasetShard]] = relationship(
        back_populates="dataset",
        order_by="DatasetShard.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, cid={self.cid!r})"


class DatasetShard(Base):
    """One shard of a dataset, at ``position`` in its list."""

    __table__ = dataset_shards

    dataset_id: Mapped[int]
    position: Mapped[int]
    url: Mapped[str]
    size: Mapped[int | None]
    sample_count: Mapped[int | None]
    sha256: Mapped[str | None]
    split: Mapped[str | None]
    dataset: Mapped[Dataset] = relationship(back_populates="shards")

    def __repr__(self) -> str:
        return f"DatasetShard({self.position}, {self.url!r})"
