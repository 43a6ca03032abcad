"""The portable backup file: the whole catalog as one versioned JSON document.

Layout (``version`` 2)::

    {
      "format": "atdata-lite-catalog",
      "version": 2,
      "exported_at": "2026-11-23T18:00:00+00:00",
      "source": "<where it was exported from, password hidden>",
      "schemas": [{"name", "version", "record_json", "content_hash"}],
      "datasets": [{"cid", "name", "version", "schema_ref", "metadata_b64", "legacy_uuid",
                    "created_at", "updated_at",
                    "shards": [{"url", "size", "sample_count", "sha256", ["split"]}]}],
      "labels": [{"name", "version", "cid", "description", "created_at", "updated_at"}],
      "lenses": [{"name", "version", "record_json"}]
    }

A shard's ``split`` is present only for entries with named splits (a reader that does not
know it reads the entry as one dataset of all its shards). Every version of a name is one
item of ``datasets``; ``labels`` holds the labels (a label's ``version`` is ``""`` for an
unversioned one), ``lenses`` the stored lenses with their record exactly as stored.

Version history: ``1`` had no dataset ``version``, ``labels`` or ``lenses`` (one entry per
name); it is still read, and its entries become version ``1.0.0`` of their names, as an
index upgraded in place does. ``2`` was bumped rather than extended so that an atdata-lite
that only knows ``1`` refuses the file instead of importing every version of a name as
renamed datasets and dropping the labels and lenses.

Bytes (dataset metadata, msgpack) are base64; the schema and lens records are kept as the
exact JSON text stored. A reader refuses a ``version`` newer than it knows.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import IndexTooNewError, NotAnIndexError
from ..index._versions import check_version
from ..index.backend import DatasetRecord, LabelRow, LensRow, SchemaRow, ShardRecord
from ._raw import RawCatalog, RawDataset, RawSchema

__all__ = ["BACKUP_FORMAT", "BACKUP_VERSION", "read_backup", "write_backup"]

BACKUP_FORMAT = "atdata-lite-catalog"
BACKUP_VERSION = 2


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def backup_document(
    schemas: Sequence[SchemaRow],
    datasets: Sequence[DatasetRecord],
    *,
    source: str,
    labels: Sequence[LabelRow] = (),
    lenses: Sequence[LensRow] = (),
) -> dict[str, Any]:
    """The backup document for a catalog, as a JSON-ready dict."""
    return {
        "format": BACKUP_FORMAT,
        "version": BACKUP_VERSION,
        "exported_at": datetime.now(UTC).isoformat(),
        "source": source,
        "schemas": [
            {
                "name": s.name,
                "version": s.version,
                "record_json": s.record_json,
                "content_hash": s.content_hash,
            }
            for s in schemas
        ],
        "datasets": [
            {
                "cid": d.cid,
                "name": d.name,
                "version": d.version,
                "schema_ref": d.schema_ref,
                "shards": [_shard_doc(s) for s in d.shards],
                "metadata_b64": (
                    base64.b64encode(d.metadata).decode("ascii") if d.metadata is not None else None
                ),
                "legacy_uuid": d.legacy_uuid,
                "created_at": _iso(d.created_at),
                "updated_at": _iso(d.updated_at),
            }
            for d in datasets
        ],
        "labels": [
            {
                "name": lab.name,
                "version": lab.version,
                "cid": lab.cid,
                "description": lab.description,
                "created_at": _iso(lab.created_at),
                "updated_at": _iso(lab.updated_at),
            }
            for lab in labels
        ],
        "lenses": [
            {"name": lens.name, "version": lens.version, "record_json": lens.record_json}
            for lens in lenses
        ],
    }


def write_backup(
    path: str | os.PathLike[str],
    schemas: Sequence[SchemaRow],
    datasets: Sequence[DatasetRecord],
    *,
    source: str,
    overwrite: bool = False,
    labels: Sequence[LabelRow] = (),
    lenses: Sequence[LensRow] = (),
) -> Path:
    """Write the backup file atomically (a temporary file renamed into place).

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is false.
    """
    target = Path(path)
    if target.exists() and not overwrite:
        raise FileExistsError(
            f"{target} already exists; choose another file name or pass overwrite=True."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    doc = backup_document(schemas, datasets, source=source, labels=labels, lenses=lenses)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, ensure_ascii=False, indent=1)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _json_load(path: Path) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise NotAnIndexError(f"{path} is not a readable backup file: {exc}") from exc


def read_backup(path: Path) -> RawCatalog:
    """Read a backup file written by :func:`write_backup`.

    Raises:
        NotAnIndexError: The file is not an atdata-lite backup.
        IndexTooNewError: It was written in a newer format version.
    """
    doc = _json_load(path)
    if not isinstance(doc, dict) or doc.get("format") != BACKUP_FORMAT:
        raise NotAnIndexError(
            f"{path} is JSON but not an atdata-lite backup (format {BACKUP_FORMAT!r})."
        )
    version = doc.get("version")
    if not isinstance(version, int) or version > BACKUP_VERSION:
        raise IndexTooNewError(
            f"{path} is a backup in format version {version!r}; this atdata-lite reads up to "
            f"version {BACKUP_VERSION}. Upgrade atdata-lite to import it."
        )
    catalog = RawCatalog(kind="backup")
    for i, item in enumerate(doc.get("schemas") or []):
        key = f"schemas[{i}]"
        try:
            name, ver, text = item["name"], item["version"], item["record_json"]
            if not all(isinstance(v, str) for v in (name, ver, text)):
                raise TypeError("name, version and record_json must be strings")
        except (KeyError, TypeError) as exc:
            catalog.schemas.append(RawSchema(key, "", "", None, error=f"malformed: {exc}"))
            continue
        catalog.schemas.append(RawSchema(f"{key} {name}@{ver}", name, ver, text, "." in name))
    for i, item in enumerate(doc.get("datasets") or []):
        catalog.datasets.append(_backup_dataset(f"datasets[{i}]", item))
    for i, item in enumerate(doc.get("labels") or []):
        _backup_label(catalog, f"labels[{i}]", item)
    for i, item in enumerate(doc.get("lenses") or []):
        _backup_lens(catalog, f"lenses[{i}]", item)
    return catalog


def _strings(item: Any, *keys: str) -> list[str]:
    """``item[key]`` for each key, each checked to be a string."""
    if not isinstance(item, dict):
        raise TypeError("not a JSON object")
    values = [item[k] for k in keys]
    bad = [k for k, v in zip(keys, values, strict=True) if not isinstance(v, str)]
    if bad:
        raise TypeError(f"{', '.join(bad)} must be strings")
    return values


def _backup_label(catalog: RawCatalog, key: str, item: Any) -> None:
    try:
        name, version, cid = _strings(item, "name", "version", "cid")
        description = item.get("description")
        if description is not None and not isinstance(description, str):
            raise TypeError("description must be a string or null")
    except (KeyError, TypeError) as exc:
        catalog.ignored.append((key, f"malformed label: {exc}"))
        return
    catalog.labels.append((f"{key} {name}", name, version, cid, description))


def _backup_lens(catalog: RawCatalog, key: str, item: Any) -> None:
    try:
        name, version, text = _strings(item, "name", "version", "record_json")
    except (KeyError, TypeError) as exc:
        catalog.ignored.append((key, f"malformed lens: {exc}"))
        return
    catalog.lenses.append((f"{key} {name}@{version}", name, version, text))


def _shard_doc(s: ShardRecord) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "url": s.url,
        "size": s.size,
        "sample_count": s.sample_count,
        "sha256": s.sha256,
    }
    if s.split is not None:
        doc["split"] = s.split
    return doc


def _backup_dataset(key: str, item: Any) -> RawDataset:
    try:
        shards = tuple(
            ShardRecord(
                s["url"], s.get("size"), s.get("sample_count"), s.get("sha256"), s.get("split")
            )
            for s in item["shards"]
        )
        meta = item.get("metadata_b64")
        metadata = base64.b64decode(meta, validate=True) if meta is not None else None
        created = item.get("created_at")
        updated = item.get("updated_at")
        version = item.get("version")  # absent in format version 1
        if version is not None:
            version = check_version(version)
        rec = RawDataset(
            key=f"{key} {item['name']}" + (f"@{version}" if version else ""),
            cid=item["cid"],
            name=item["name"],
            schema_ref=item["schema_ref"],
            data_urls=[s.url for s in shards],
            shards=shards,
            metadata=metadata,
            legacy_uuid=item.get("legacy_uuid"),
            created_at=datetime.fromisoformat(created) if created else None,
            updated_at=datetime.fromisoformat(updated) if updated else None,
            version=version,
        )
        if not all(isinstance(v, str) for v in (rec.cid, rec.name, rec.schema_ref)):
            raise TypeError("cid, name and schema_ref must be strings")
        if not all(isinstance(u, str) for u in rec.data_urls):
            raise TypeError("shard urls must be strings")
        return rec
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        return RawDataset(key=key, error=f"malformed: {exc}")
