"""Readers for the catalogs ``import_catalog`` accepts. Each only reads its source.

A reader returns raw material -- schema records and dataset rows with the key each came
from -- and leaves every decision (renaming, skipping, conflicts) to :mod:`._plan`.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import NotAnIndexError
from ..index.redis._layout import (
    ENTRY_PREFIX,
    SCHEMA_PREFIX,
    BadRow,
    decode_data_urls,
    decode_entry,
    glob_escape,
    split_schema_key,
)
from ._backup import read_backup
from ._raw import RawCatalog, RawDataset, RawSchema

__all__ = ["RawCatalog", "RawDataset", "RawSchema", "read_source"]


def read_source(source: str | os.PathLike[str]) -> RawCatalog:
    """Read the catalog at ``source`` (a ``redis://`` URL, an atdata SQLite file, a backup).

    Raises:
        NotAnIndexError: ``source`` does not exist or is none of the accepted kinds.
        IndexTooNewError: A backup file written by a newer atdata-lite.
    """
    text = os.fspath(source)
    if text.startswith(("redis://", "rediss://", "unix://")):
        return read_redis(text)
    path = Path(text)
    if not path.is_file():
        raise NotAnIndexError(
            f"Nothing to import at {text!r}: give a redis:// URL, the path of an atdata "
            "SQLite index file, or an atdata-lite backup file."
        )
    with path.open("rb") as fh:
        head = fh.read(16)
    if head.startswith(b"SQLite format 3"):
        return read_atdata_sqlite(path)
    if head.lstrip()[:1] == b"{":
        return read_backup(path)
    raise NotAnIndexError(
        f"{text} is neither an SQLite database nor an atdata-lite backup (JSON); nothing "
        "was imported."
    )


# --- atdata 0.2 Redis --------------------------------------------------------------------


def read_redis(url: str) -> RawCatalog:
    """Read atdata's Redis layout with SCAN, GET and HGETALL only (never writes)."""
    from .._imports import optional_import

    redis = optional_import("redis", extra="redis", purpose="Importing from Redis")
    client = redis.Redis.from_url(url, decode_responses=False)
    try:
        catalog = RawCatalog(kind="redis")
        keys = sorted(
            k.decode("utf-8", "surrogateescape")
            for k in client.scan_iter(match=glob_escape(SCHEMA_PREFIX) + "*", count=1000)
        )
        values = client.mget(keys) if keys else []
        for key, raw in zip(keys, values, strict=True):
            if raw is None:
                continue
            parts = split_schema_key(key)
            if parts is None:
                catalog.schemas.append(RawSchema(key, "", "", None, error="key has no @version"))
                continue
            name, version, legacy = parts
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                catalog.schemas.append(
                    RawSchema(key, name, version, None, legacy, f"value is not UTF-8 ({exc})")
                )
                continue
            catalog.schemas.append(RawSchema(key, name, version, text, legacy))
        entry_keys = sorted(
            k.decode("utf-8", "surrogateescape")
            for k in client.scan_iter(match=glob_escape(ENTRY_PREFIX) + "*", count=1000)
        )
        for start in range(0, len(entry_keys), 1000):
            chunk = entry_keys[start : start + 1000]
            pipe = client.pipeline(transaction=False)
            for key in chunk:
                pipe.hgetall(key)
            for key, fields in zip(chunk, pipe.execute(), strict=True):
                if fields:
                    catalog.datasets.append(_redis_dataset(key, fields))
        return catalog
    finally:
        client.close()


def _redis_dataset(key: str, fields: dict[bytes, bytes]) -> RawDataset:
    try:
        rec = decode_entry(key, fields)
    except BadRow as exc:
        return RawDataset(key=key, error=str(exc).removeprefix(f"{key}: "))
    key_cid = key[len(ENTRY_PREFIX) :]
    return RawDataset(
        key=key,
        cid=rec.cid,
        name=rec.name,
        schema_ref=rec.schema_ref,
        data_urls=rec.data_urls,
        shards=rec.shards,
        metadata=rec.metadata,
        legacy_uuid=rec.legacy_uuid,
        created_at=rec.created_at,
        updated_at=rec.updated_at,
        key_cid=key_cid if key_cid != rec.cid else None,
    )


# --- atdata 0.7 SQLite -------------------------------------------------------------------


def read_atdata_sqlite(path: Path) -> RawCatalog:
    """Read an atdata 0.7 SQLite index (``providers/_sqlite.py``), opened read-only.

    Tables used: ``schemas(name, version, schema_json, created_at)`` and
    ``dataset_entries(cid, name, schema_ref, data_urls BLOB msgpack, metadata BLOB msgpack,
    legacy_uuid, created_at)``, ``labels(name, cid, version, description)`` and
    ``lenses(name, version, lens_json)``. A label ``(name, version)`` on an entry of the same
    name becomes that entry's dataset version (atdata labelled every insert so); the other
    labels and the lenses are imported as labels and stored lenses.
    """
    uri = f"{path.resolve().as_uri()}?mode=ro"
    conn = sqlite3.connect(uri, uri=True)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "dataset_entries" not in tables or "schemas" not in tables:
            raise NotAnIndexError(
                f"{path} is an SQLite database but not an atdata index (no dataset_entries "
                "and schemas tables). To copy an atdata-lite index, export it to a backup "
                "file first (atdata-lite export --to FILE)."
            )
        catalog = RawCatalog(kind="atdata-sqlite")
        for name, version, text in conn.execute(
            "SELECT name, version, schema_json FROM schemas ORDER BY name, version"
        ):
            key = f"schemas:{name}@{version}"
            legacy = "." in (name or "")
            short = name.rsplit(".", 1)[-1] if legacy else name
            if not isinstance(text, str):
                catalog.schemas.append(
                    RawSchema(key, short or "", version or "", None, legacy, "schema_json is empty")
                )
                continue
            catalog.schemas.append(RawSchema(key, short, str(version), text, legacy))
        rows = conn.execute(
            "SELECT cid, name, schema_ref, data_urls, metadata, legacy_uuid, created_at "
            "FROM dataset_entries ORDER BY cid"
        )
        for cid, name, schema_ref, urls_blob, meta_blob, legacy_uuid, created in rows:
            catalog.datasets.append(
                _sqlite_dataset(cid, name, schema_ref, urls_blob, meta_blob, legacy_uuid, created)
            )
        if "labels" in tables:
            _read_labels(conn, catalog)
        if "lenses" in tables:
            columns = {r[1] for r in conn.execute('PRAGMA table_info("lenses")')}
            if {"name", "version", "lens_json"} <= columns:
                for rowid, name, version, text in conn.execute(
                    "SELECT rowid, name, version, lens_json FROM lenses ORDER BY rowid"
                ):
                    key = f"lenses:rowid={rowid}"
                    catalog.lenses.append((key, str(name), str(version), str(text)))
            else:
                for (rowid,) in conn.execute('SELECT rowid FROM "lenses" ORDER BY rowid'):
                    catalog.ignored.append(
                        (f"lenses:rowid={rowid}", "not atdata 0.7's lenses table layout")
                    )
        return catalog
    except sqlite3.DatabaseError as exc:
        raise NotAnIndexError(f"Cannot read {path} as an atdata SQLite index: {exc}") from exc
    finally:
        conn.close()


def _read_labels(conn: sqlite3.Connection, catalog: RawCatalog) -> None:
    from ..errors import InvalidVersionError
    from ..index._versions import check_version, version_sort_key

    by_cid = {d.cid: d for d in catalog.datasets if not d.error}
    rows = conn.execute(
        "SELECT rowid, name, cid, version, description FROM labels ORDER BY rowid"
    ).fetchall()
    # A versioned label on an entry of its own name is that entry's version (the highest,
    # when atdata labelled one entry with several versions).
    versions: dict[str, list[str]] = {}
    for _, name, cid, version, _ in rows:
        entry = by_cid.get(str(cid))
        if entry is not None and version and entry.name == name:
            try:
                versions.setdefault(entry.cid, []).append(check_version(str(version)))
            except InvalidVersionError:
                continue
    for cid, found in versions.items():
        by_cid[cid].version = max(found, key=version_sort_key)
    for rowid, name, cid, version, description in rows:
        entry = by_cid.get(str(cid))
        if entry is not None and entry.name == name and entry.version == (version or None):
            continue  # became the entry's version
        catalog.labels.append(
            (f"labels:rowid={rowid}", str(name), str(version or ""), str(cid), description)
        )


def _sqlite_dataset(
    cid: Any,
    name: Any,
    schema_ref: Any,
    urls_blob: Any,
    meta_blob: Any,
    legacy_uuid: Any,
    created: Any,
) -> RawDataset:
    key = f"dataset_entries:{cid}"
    if not cid or not name or not schema_ref:
        pairs = (("cid", cid), ("name", name), ("schema_ref", schema_ref))
        missing = [n for n, v in pairs if not v]
        return RawDataset(key=key, error=f"empty {', '.join(missing)}")
    try:
        urls = decode_data_urls(bytes(urls_blob) if urls_blob is not None else None, key)
    except BadRow as exc:
        return RawDataset(key=key, error=str(exc).removeprefix(f"{key}: "))
    created_at = None
    if isinstance(created, str):
        try:
            # SQLite's datetime('now') is UTC without an offset.
            created_at = datetime.fromisoformat(created.replace(" ", "T") + "+00:00")
        except ValueError:
            created_at = None
    from ..index.backend import ShardRecord

    return RawDataset(
        key=key,
        cid=str(cid),
        name=str(name),
        schema_ref=str(schema_ref),
        data_urls=urls,
        shards=tuple(ShardRecord(u) for u in urls),
        metadata=bytes(meta_blob) if meta_blob is not None else None,
        legacy_uuid=str(legacy_uuid) if legacy_uuid else None,
        created_at=created_at,
    )
