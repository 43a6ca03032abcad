"""What the catalog readers return: raw schema records and dataset rows, each with its key.

The readers (:mod:`._sources`, :mod:`._backup`) only read; :mod:`._plan` makes every decision
(renaming, skipping, conflicts) from these records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._records import ShardRecord

__all__ = ["RawCatalog", "RawDataset", "RawSchema"]


@dataclass
class RawSchema:
    """One schema as found in the source."""

    key: str  # where it came from, for the report (e.g. ``LocalSchema:mod.Name@1.0.0``)
    name: str  # module stripped
    version: str
    record_json: str | None
    legacy: bool = False  # stored under a module-qualified name
    error: str | None = None


@dataclass
class RawDataset:
    """One dataset row as found in the source (``error`` set when it cannot be read)."""

    key: str
    cid: str = ""
    name: str = ""
    schema_ref: str = ""
    data_urls: list[str] = field(default_factory=list)
    shards: tuple[ShardRecord, ...] = ()
    metadata: bytes | None = None
    legacy_uuid: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    key_cid: str | None = None  # the CID the key names, when it differs from the cid field
    error: str | None = None
    version: str | None = None  # the dataset version (atdata 0.7: from its versioned label)


@dataclass
class RawCatalog:
    """Everything read from a source."""

    kind: str
    schemas: list[RawSchema] = field(default_factory=list)
    datasets: list[RawDataset] = field(default_factory=list)
    # Rows of kinds atdata-lite does not keep: (key, reason).
    ignored: list[tuple[str, str]] = field(default_factory=list)
    # atdata 0.7 labels not used as dataset versions: (key, name, version, cid, description).
    labels: list[tuple[str, str, str, str, str | None]] = field(default_factory=list)
    # atdata 0.7 stored lenses: (key, name, version, lens_json).
    lenses: list[tuple[str, str, str, str]] = field(default_factory=list)
