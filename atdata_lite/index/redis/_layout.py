"""atdata 0.2's Redis key layout: key names and the encoding of one entry hash.

Shared by the Redis backend and by the importer (which reads an atdata index directly).
atdata's own keys:

* ``LocalDatasetEntry:{cid}`` (hash): ``name``, ``schema_ref``, ``data_urls`` (msgpack list of
  str), ``cid``, optional ``metadata`` (msgpack map, bytes kept exactly), optional
  ``legacy_uuid``;
* ``LocalSchema:{Name}@{version}`` (string): the JSON record written like ``json.dumps``.

atdata ignores hash fields it does not know, so atdata-lite keeps its extras (shard sizes,
counts and hashes; timestamps) as ``atl_*`` fields of the same hash, and its secondary keys
under the ``atdata_lite:`` prefix, which atdata never scans:

* ``atl_shards``: JSON ``[[size, sample_count, sha256], ...]``, one per URL of ``data_urls``;
* ``atl_splits``: JSON ``[split, ...]``, the named split of each URL of ``data_urls`` (only
  for entries with splits). atdata reads such an entry as one dataset of all its shards;
* ``atl_created_at`` / ``atl_updated_at``: ISO timestamps;
* ``atl_version``: which version of its name the entry is (absent: ``1.0.0``, which is what
  every entry atdata wrote, or an older atdata-lite wrote, is).

Versions, labels and lenses (see ``docs/versions.md``):

* ``atdata_lite:versions:{name}`` (hash version -> cid): every version of a name;
  ``atdata_lite:dataset_names`` maps the name to its latest version's CID;
* ``Label:{name}@{version}`` (hash ``name``, ``cid``, ``version``, ``description``,
  ``atl_created_at``, ``atl_updated_at``): atdata 0.7's label key, version ``""`` for none;
  ``atdata_lite:label_versions:{name}`` (set of versions) finds a name's labels, and
  ``atdata_lite:label_refs:{cid}`` (set of label keys) the labels pointing at a CID, so that
  removing or replacing a dataset version moves or removes them: labels never dangle;
* ``LocalLens:{name}@{version}`` (string, the JSON record): atdata 0.7's lens key;
  ``atdata_lite:lens_versions:{name}`` (set) and ``atdata_lite:lens_hashes`` (hash
  ``name@version`` -> content hash) serve auto-versioning and immutability.

Every lookup uses exact keys; no name is ever put into a ``SCAN MATCH`` pattern unescaped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime

import msgpack

from ..backend import DatasetRecord, ShardRecord

ENTRY_PREFIX = "LocalDatasetEntry:"
SCHEMA_PREFIX = "LocalSchema:"
LABEL_PREFIX = "Label:"
LENS_PREFIX = "LocalLens:"
#: hash "name@version" -> content hash of the stored lens record.
LENS_HASHES_KEY = "atdata_lite:lens_hashes"

#: hash name -> cid: the name lookup atdata lacks (it scans every entry).
NAMES_KEY = "atdata_lite:dataset_names"
#: hash "Name@version" -> content hash of the stored schema record.
SCHEMA_HASHES_KEY = "atdata_lite:schema_hashes"
#: integer, INCR-ed by every atdata-lite write (in the write's own MULTI when there is one):
#: ``Index.data_version()``. Writes made by atdata itself do not change it.
DATA_VERSION_KEY = "atdata_lite:data_version"

F_SHARDS = b"atl_shards"
F_SPLITS = b"atl_splits"
F_CREATED = b"atl_created_at"
F_UPDATED = b"atl_updated_at"
F_VERSION = b"atl_version"

_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


class BadRow(ValueError):
    """A stored entry or schema that cannot be read; the message says why."""


def entry_key(cid: str) -> str:
    """Key of the hash holding the entry with CID ``cid``."""
    return ENTRY_PREFIX + cid


def schema_key(name: str, version: str) -> str:
    """Key of the string holding schema ``name@version``."""
    return f"{SCHEMA_PREFIX}{name}@{version}"


def versions_key(name: str) -> str:
    """Key of the hash ``version -> cid`` of every version of ``name``."""
    return "atdata_lite:versions:" + name


def label_key(name: str, version: str) -> str:
    """atdata 0.7's key of the label ``(name, version)``."""
    return f"{LABEL_PREFIX}{name}@{version}"


def label_versions_key(name: str) -> str:
    """Key of the set of label versions of ``name``."""
    return "atdata_lite:label_versions:" + name


def label_refs_key(cid: str) -> str:
    """Key of the set of label keys pointing at ``cid``."""
    return "atdata_lite:label_refs:" + cid


def lens_key(name: str, version: str) -> str:
    """atdata 0.7's key of the stored lens ``name@version``."""
    return f"{LENS_PREFIX}{name}@{version}"


def lens_versions_key(name: str) -> str:
    """Key of the set of stored versions of the lens ``name``."""
    return "atdata_lite:lens_versions:" + name


def glob_escape(text: str) -> str:
    """Escape ``text`` for a Redis SCAN MATCH pattern, so ``*``, ``?``, ``[`` match literally."""
    return _GLOB_SPECIAL.sub(r"\\\1", text)


def split_schema_key(key: str) -> tuple[str, str, bool] | None:
    """Split ``LocalSchema:{name}@{version}`` into ``(name, version, legacy)``.

    ``legacy`` is true for atdata's old ``module.Name`` keys; the returned name then has the
    module stripped, as atdata does. Keys without ``@`` return ``None`` (atdata skips them).
    """
    rest = key[len(SCHEMA_PREFIX) :] if key.startswith(SCHEMA_PREFIX) else key
    if "@" not in rest:
        return None
    name, version = rest.rsplit("@", 1)
    legacy = "." in name
    if legacy:
        name = name.rsplit(".", 1)[-1]
    return name, version, legacy


def semver_tuple(version: str) -> tuple[int, int, int] | None:
    """``(major, minor, patch)`` for a strict ``x.y.z`` version, else ``None``."""
    parts = version.split(".")
    if len(parts) != 3 or not all(p.isdigit() and p.isascii() for p in parts):
        return None
    return int(parts[0]), int(parts[1]), int(parts[2])


def version_sort_key(version: str) -> tuple:
    """Sort semver versions numerically first, then any other version string."""
    sv = semver_tuple(version)
    return (0, sv, "") if sv is not None else (1, (0, 0, 0), version)


def _text(fields: Mapping[bytes, bytes], name: bytes, key: str, *, required: bool) -> str | None:
    raw = fields.get(name)
    if raw is None or raw == b"":
        if required:
            raise BadRow(f"{key} has no {name.decode()!r} field")
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRow(f"{key}: field {name.decode()!r} is not UTF-8 ({exc})") from None


def _timestamp(fields: Mapping[bytes, bytes], name: bytes) -> datetime | None:
    raw = fields.get(name)
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw.decode("ascii"))
    except ValueError:
        return None  # a damaged timestamp is not worth losing the entry over


def decode_data_urls(raw: bytes | None, key: str) -> list[str]:
    """Decode atdata's msgpack ``data_urls`` field."""
    if raw is None:
        raise BadRow(f"{key} has no 'data_urls' field")
    try:
        urls = msgpack.unpackb(raw, raw=False)
    except Exception as exc:  # msgpack raises several unrelated types on bad input
        raise BadRow(f"{key}: 'data_urls' is not msgpack ({exc})") from None
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise BadRow(f"{key}: 'data_urls' is not a list of strings")
    return urls


def decode_shards(fields: Mapping[bytes, bytes], urls: list[str]) -> tuple[ShardRecord, ...]:
    """Rebuild shard records from ``data_urls`` plus our optional ``atl_shards`` extra."""
    extra: list = []
    raw = fields.get(F_SHARDS)
    if raw:
        try:
            extra = json.loads(raw)
        except ValueError:
            extra = []
        if not isinstance(extra, list) or len(extra) != len(urls):
            # Written by us for other URLs (atdata rewrote data_urls): sizes no longer apply.
            extra = []
    splits: list = []
    raw = fields.get(F_SPLITS)
    if raw:
        try:
            splits = json.loads(raw)
        except ValueError:
            splits = []
        if (
            not isinstance(splits, list)
            or len(splits) != len(urls)
            or not all(isinstance(s, str) for s in splits)
        ):
            splits = []  # written for other URLs (atdata rewrote data_urls): no splits apply
    shards = []
    for i, url in enumerate(urls):
        size = count = sha = None
        if extra and isinstance(extra[i], list) and len(extra[i]) == 3:
            size, count, sha = extra[i]
        split = splits[i] if splits else None
        shards.append(ShardRecord(url, size, count, sha, split))
    return tuple(shards)


def decode_entry(key: str, fields: Mapping[bytes, bytes]) -> DatasetRecord:
    """Turn the fields of one ``LocalDatasetEntry:{cid}`` hash into a record.

    Metadata is kept as the exact stored bytes (not decoded here).

    Raises:
        BadRow: A required field is missing or undecodable.
    """
    if not fields:
        raise BadRow(f"{key} does not exist")
    name = _text(fields, b"name", key, required=True)
    schema_ref = _text(fields, b"schema_ref", key, required=True)
    urls = decode_data_urls(fields.get(b"data_urls"), key)
    # atdata uses the stored cid field when present, else the key suffix.
    cid = _text(fields, b"cid", key, required=False) or key[len(ENTRY_PREFIX) :]
    metadata = fields.get(b"metadata")
    return DatasetRecord(
        cid=cid,
        name=name or "",
        schema_ref=schema_ref or "",
        shards=decode_shards(fields, urls),
        metadata=metadata if metadata is not None else None,
        legacy_uuid=_text(fields, b"legacy_uuid", key, required=False),
        created_at=_timestamp(fields, F_CREATED),
        updated_at=_timestamp(fields, F_UPDATED),
        version=_text(fields, F_VERSION, key, required=False) or "1.0.0",
    )


def encode_entry(record: DatasetRecord) -> dict[bytes, bytes]:
    """The hash fields for ``record``: atdata's fields plus our ``atl_*`` extras."""
    fields: dict[bytes, bytes] = {
        b"name": record.name.encode("utf-8"),
        b"schema_ref": record.schema_ref.encode("utf-8"),
        b"data_urls": msgpack.packb(record.data_urls, use_bin_type=True),
        b"cid": record.cid.encode("utf-8"),
    }
    if record.metadata is not None:
        fields[b"metadata"] = bytes(record.metadata)
    if record.legacy_uuid:
        fields[b"legacy_uuid"] = record.legacy_uuid.encode("utf-8")
    if any(s.size is not None or s.sample_count is not None or s.sha256 for s in record.shards):
        fields[F_SHARDS] = json.dumps(
            [[s.size, s.sample_count, s.sha256] for s in record.shards]
        ).encode()
    if any(s.split is not None for s in record.shards):
        fields[F_SPLITS] = json.dumps([s.split for s in record.shards]).encode()
    if record.created_at is not None:
        fields[F_CREATED] = record.created_at.isoformat().encode()
    if record.updated_at is not None:
        fields[F_UPDATED] = record.updated_at.isoformat().encode()
    if record.version is not None:
        fields[F_VERSION] = record.version.encode("utf-8")
    return fields


def utcnow() -> datetime:
    """The current time in UTC (timestamps the backend sets)."""
    return datetime.now(UTC)


def pairs_to_dict(flat: list) -> dict[bytes, bytes]:
    """``[k1, v1, k2, v2, ...]`` (a Lua-returned HGETALL) to a dict."""
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}
