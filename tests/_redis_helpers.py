"""Helpers for the Redis and transfer tests: atdata's fixture, and atdata's way of reading."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import msgpack

FIXTURE = Path("/work/shared/reference/atdata-0.2-redis-fixture.json")
_FALLBACK = Path(__file__).parent / "data" / "atdata-0.2-redis-fixture.json"


def fixture_doc() -> dict[str, Any]:
    """The real dump of an index atdata 0.2.3b1 wrote (hash field values base64)."""
    path = FIXTURE if FIXTURE.exists() else _FALLBACK
    return json.loads(path.read_text("utf-8"))


def load_fixture(client: Any) -> dict[str, Any]:
    """Write the fixture's keys into Redis exactly as atdata stored them; return the doc."""
    doc = fixture_doc()
    for key, value in doc["keys"].items():
        if value["type"] == "hash":
            client.hset(key, mapping={f: base64.b64decode(v) for f, v in value["fields"].items()})
        else:
            client.set(key, value["value"].encode("utf-8"))
    return doc


def fixture_entries(doc: dict[str, Any]) -> dict[str, dict[str, bytes]]:
    """cid -> raw hash fields of the fixture's dataset entries."""
    return {
        key.split(":", 1)[1]: {f: base64.b64decode(v) for f, v in value["fields"].items()}
        for key, value in doc["keys"].items()
        if value["type"] == "hash"
    }


def fixture_schemas(doc: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(name, version) -> stored JSON text of the fixture's schemas."""
    out = {}
    for key, value in doc["keys"].items():
        if value["type"] == "string":
            name, version = key.split(":", 1)[1].rsplit("@", 1)
            out[(name, version)] = value["value"]
    return out


def dump(client: Any) -> dict[bytes, Any]:
    """Every key with its type and value, to compare a database before and after."""
    out: dict[bytes, Any] = {}
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        out[key] = (kind, client.hgetall(key) if kind == b"hash" else client.get(key))
    return out


# --- atdata 0.2's reading code, re-implemented ------------------------------------------


def atdata_from_redis(client: Any, cid: str) -> dict[str, Any]:
    """``LocalDatasetEntry.from_redis``: HGETALL, msgpack with atdata's defaults."""
    fields = client.hgetall(f"LocalDatasetEntry:{cid}")
    if not fields:
        raise KeyError(f"LocalDatasetEntry not found: {cid}")
    name = fields[b"name"].decode("utf-8")  # KeyError(b'name') when missing, as atdata
    schema_ref = fields[b"schema_ref"].decode("utf-8")
    data_urls = msgpack.unpackb(fields[b"data_urls"], raw=False, strict_map_key=True)
    metadata = None
    if b"metadata" in fields:
        metadata = msgpack.unpackb(fields[b"metadata"], raw=False, strict_map_key=True)
    stored_cid = fields.get(b"cid", b"").decode("utf-8") or None
    legacy = fields.get(b"legacy_uuid", b"").decode("utf-8") or None
    return {
        "name": name,
        "schema_ref": schema_ref,
        "data_urls": data_urls,
        "metadata": metadata,
        "cid": stored_cid,
        "legacy_uuid": legacy,
    }


def atdata_entries(client: Any) -> list[dict[str, Any]]:
    """``Index.entries``: SCAN MATCH LocalDatasetEntry:* then from_redis per key."""
    return [
        atdata_from_redis(client, key.decode().split(":", 1)[1])
        for key in client.scan_iter(match="LocalDatasetEntry:*")
    ]


def atdata_get_schema(client: Any, name: str, version: str) -> dict[str, Any]:
    """``Index.get_schema``: GET LocalSchema:{name}@{version}, json.loads, add $ref."""
    raw = client.get(f"LocalSchema:{name}@{version}")
    if raw is None:
        raise KeyError(f"Schema not found: {name}@{version}")
    record = json.loads(raw)
    record["$ref"] = f"atdata://local/sampleSchema/{name}@{version}"
    return record
