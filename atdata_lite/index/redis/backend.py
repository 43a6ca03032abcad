"""The Redis index backend, in atdata 0.2's own key layout (see :mod:`._layout`).

atdata 0.2 and atdata-lite can share one Redis database: entries and schemas are atdata's
keys, and what atdata lacks lives next to them where atdata never looks:

* ``atdata_lite:dataset_names`` (hash name -> cid) answers a name lookup with one script call
  instead of atdata's scan over every entry. Entries that atdata itself writes do not update
  it, so the backend *reconciles* when it opens (one SCAN over the entry keys, adding names it
  lacks and dropping names whose entry is gone or was renamed); :meth:`RedisBackend.reconcile`
  does it again on demand. A stale mapping is never trusted: the entry's own ``name`` field
  is checked on every lookup. Listing always scans, so it sees every entry.
* ``atdata_lite:schema_hashes`` (hash ``Name@version`` -> content hash), filled on publish and,
  for schemas atdata wrote, computed from the stored record when first needed.

Atomicity: publishing a schema runs as Lua scripts (auto-versioning included, which scans
atdata's schema keys server-side, legacy ``module.Name`` keys included); every other write is
WATCH/MULTI over the keys it read, retried when another client touched them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..._log import get_logger
from ...errors import (
    DatasetExistsError,
    DatasetNotFoundError,
    IndexOpenError,
    SchemaConflictError,
)
from .._hints import no_entry_named
from .._versions import latest_of
from .._versions import version_sort_key as vkey
from ..backend import (
    CatalogWriteResult,
    DatasetRecord,
    IndexBackend,
    LabelRow,
    LensRow,
    OnConflict,
    SchemaRow,
    checked_catalog,
    checked_insert,
    insert_conflict,
    same_content_bump,
    version_slot,
)
from . import _scripts
from ._faults import reaching
from ._layout import (
    DATA_VERSION_KEY,
    ENTRY_PREFIX,
    LABEL_PREFIX,
    LENS_HASHES_KEY,
    LENS_PREFIX,
    NAMES_KEY,
    SCHEMA_HASHES_KEY,
    SCHEMA_PREFIX,
    BadRow,
    decode_entry,
    encode_entry,
    entry_key,
    glob_escape,
    label_key,
    label_refs_key,
    label_versions_key,
    lens_key,
    lens_versions_key,
    pairs_to_dict,
    schema_key,
    semver_tuple,
    split_schema_key,
    utcnow,
    version_sort_key,
    versions_key,
)
from ._layout import _timestamp as _timestamp

__all__ = ["RedisBackend"]

log = get_logger(__name__)

_SCAN_COUNT = 1000
_BATCH = 1000
_MAX_RETRIES = 1000


def _hide_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


def _record_content_hash(record_json: str) -> str:
    """Content hash of a stored record that was written without one (by atdata)."""
    from ...schema import content_hash

    return content_hash(json.loads(record_json))


class RedisBackend(IndexBackend):
    """An index in a Redis database, in atdata 0.2's key layout.

    Use :func:`atdata_lite.index.redis.open_redis_backend` to create one.
    """

    kind = "redis"

    def __init__(
        self,
        client: Any,
        location: str,
        *,
        redis_module: Any,
        owns_client: bool,
        reconcile: bool,
    ) -> None:
        self._client = client
        self._location = location
        self._owns_client = owns_client
        self._closed = False
        self._watch_error = redis_module.exceptions.WatchError
        # What a refused, cut or silent connection raises (see ``_faults.reaching``).
        self._server_errors = (
            redis_module.exceptions.ConnectionError,
            redis_module.exceptions.TimeoutError,
        )
        self._get_by_name = client.register_script(_scripts.GET_BY_NAME)
        self._latest = client.register_script(_scripts.LATEST_VERSION)
        self._publish_next = client.register_script(_scripts.PUBLISH_NEXT)
        self._publish_exact = client.register_script(_scripts.PUBLISH_EXACT)
        self._hdel_if = client.register_script(_scripts.HDEL_IF)
        if reconcile:
            self.reconcile()

    # --- identity -------------------------------------------------------------------

    @property
    def location(self) -> str:
        return self._location

    @property
    def client(self) -> Any:
        """The redis-py client in use (``decode_responses=False``)."""
        return self._client

    @reaching
    def describe(self) -> dict[str, Any]:
        info = self._client.info("server")
        return {
            "kind": self.kind,
            "location": self.location,
            "redis_version": info.get("redis_version"),
            "datasets_by_name": self._client.hlen(NAMES_KEY),
            "layout": "atdata 0.2 (LocalDatasetEntry:{cid}, LocalSchema:{Name}@{version})",
        }

    # --- reading helpers ------------------------------------------------------------

    def _scan(self, pattern: str) -> Iterator[str]:
        for key in self._client.scan_iter(match=pattern, count=_SCAN_COUNT):
            yield key.decode("utf-8", "surrogateescape")

    def _read_entries(self, conn: Any, cids: Sequence[str]) -> dict[str, DatasetRecord | None]:
        """Read entries by CID through ``conn`` (a client or a watching pipeline)."""
        out: dict[str, DatasetRecord | None] = {}
        for cid in dict.fromkeys(cids):
            key = entry_key(cid)
            fields = conn.hgetall(key)
            try:
                out[cid] = decode_entry(key, fields) if fields else None
            except BadRow as exc:
                log.warning("Unreadable dataset entry %s: %s", key, exc)
                out[cid] = None
        return out

    def _named(self, conn: Any, names: Sequence[str]) -> dict[str, DatasetRecord | None]:
        """Entries by name via the secondary hash, checking each entry's own name."""
        cids = conn.hmget(NAMES_KEY, list(names)) if names else []
        found = {n: c.decode() for n, c in zip(names, cids, strict=True) if c is not None}
        entries = self._read_entries(conn, list(found.values()))
        out: dict[str, DatasetRecord | None] = {}
        for name in names:
            rec = entries.get(found[name]) if name in found else None
            out[name] = rec if rec is not None and rec.name == name else None
        return out

    # --- datasets -------------------------------------------------------------------

    @reaching
    def get_dataset(self, name: str) -> DatasetRecord | None:
        res = self._get_by_name(keys=[NAMES_KEY], args=[name, ENTRY_PREFIX])
        if not res:
            return None
        cid, flat = res[0].decode(), res[1]
        if not flat:
            return None  # stale mapping: the entry was removed behind our back
        key = entry_key(cid)
        try:
            rec = decode_entry(key, pairs_to_dict(flat))
        except BadRow as exc:
            log.warning("Unreadable dataset entry %s: %s", key, exc)
            return None
        # atdata renames an entry in place when the same content is re-added under a new
        # name; the mapping then points at an entry that is no longer called ``name``.
        return rec if rec.name == name else None

    @reaching
    def get_dataset_by_cid(self, cid: str) -> DatasetRecord | None:
        return self._read_entries(self._client, [cid])[cid]

    @reaching
    def iter_datasets(self) -> Iterator[DatasetRecord]:
        records: list[DatasetRecord] = []
        keys = list(self._scan(glob_escape(ENTRY_PREFIX) + "*"))
        for start in range(0, len(keys), _BATCH):
            chunk = keys[start : start + _BATCH]
            pipe = self._client.pipeline(transaction=False)
            for key in chunk:
                pipe.hgetall(key)
            for key, fields in zip(chunk, pipe.execute(), strict=True):
                if not fields:
                    continue  # deleted between SCAN and HGETALL: not an error
                try:
                    records.append(decode_entry(key, fields))
                except BadRow as exc:
                    log.warning("Skipping unreadable dataset entry %s: %s", key, exc)
        records.sort(key=lambda r: (r.name, r.cid))
        yield from records

    def _transaction(self, keys: Sequence[str], body: Callable[[Any], Any]) -> Any:
        """Run ``body(pipe)`` under WATCH of ``keys``; retry when a watched key changed.

        ``body`` reads through the pipe (immediate mode), may WATCH more keys, then calls
        ``pipe.multi()`` and queues its writes; this executes them.
        """
        for _ in range(_MAX_RETRIES):
            with self._client.pipeline() as pipe:
                try:
                    pipe.watch(*keys)
                    result = body(pipe)
                    if pipe.explicit_transaction:
                        pipe.incr(DATA_VERSION_KEY)  # commits with the write, or not at all
                        pipe.execute()
                    return result
                except self._watch_error:
                    continue
        raise RuntimeError(f"Redis transaction on {self.location} kept being interrupted")

    @reaching
    def insert_datasets(
        self, records: Sequence[DatasetRecord], *, on_conflict: OnConflict = "error"
    ) -> list[DatasetRecord]:
        records = checked_insert(records, on_conflict)
        if not records:
            return []

        def body(pipe: Any) -> list[DatasetRecord]:
            by_cid = self._read_entries(pipe, [r.cid for r in records])
            now = utcnow()
            results: list[DatasetRecord] = []
            writes: list[tuple[DatasetRecord, DatasetRecord | None, list[DatasetRecord]]] = []
            names_only: list[DatasetRecord] = []
            for rec in records:
                holder = by_cid[rec.cid]
                versions = self._versions(pipe, rec.name)
                if not versions and holder is not None and holder.name == rec.name:
                    # An entry atdata stored has no name index: its hash holds the name.
                    versions = [holder]
                    if holder.same_content(rec) and rec.version in (None, holder.version):
                        names_only.append(holder)
                version, named = version_slot(rec, versions)
                if same_content_bump(rec, holder):
                    assert holder is not None
                    results.append(holder)
                    continue
                kept = insert_conflict(rec, named, holder, on_conflict)
                if kept is not None:
                    results.append(kept)
                    continue
                if named is not None:
                    new = rec.stamped(named.created_at or now, now, version)
                else:
                    new = rec.stamped(now, now, version)
                after = [v for v in versions if v is not named] + [new]
                writes.append((new, named, after))
                results.append(new)
            refs = {
                old.cid: list(pipe.smembers(label_refs_key(old.cid)))
                for _, old, _ in writes
                if old is not None
            }
            pipe.multi()
            for new, old, after in writes:
                if old is not None:
                    pipe.delete(entry_key(old.cid))
                    if old.cid != new.cid:
                        # Labels follow the version they point at to its new content.
                        for lkey in refs.get(old.cid, []):
                            pipe.hset(lkey, b"cid", new.cid.encode())
                            pipe.sadd(label_refs_key(new.cid), lkey)
                        pipe.delete(label_refs_key(old.cid))
                # Replace, never merge (atdata merged): clears an unreadable hash at this CID too.
                pipe.delete(entry_key(new.cid))
                pipe.hset(entry_key(new.cid), mapping=encode_entry(new))
                pipe.hset(versions_key(new.name), mapping={v.version: v.cid for v in after})
                pipe.hset(NAMES_KEY, new.name, _latest(after).cid)
            for rec in names_only:
                pipe.hset(NAMES_KEY, rec.name, rec.cid)
            return results

        keys = [NAMES_KEY, *(entry_key(r.cid) for r in records)]
        keys += [versions_key(r.name) for r in records]
        return self._transaction(keys, body)

    def _versions(self, conn: Any, name: str) -> list[DatasetRecord]:
        """Every stored version of ``name`` (through ``conn``: a client or watching pipe)."""
        mapping = conn.hgetall(versions_key(name))
        if mapping:
            cids = [c.decode() for c in mapping.values()]
            entries = self._read_entries(conn, cids)
            return [e for e in entries.values() if e is not None and e.name == name]
        rec = self._named(conn, [name])[name]
        return [rec] if rec is not None else []

    @reaching
    def get_dataset_version(self, name: str, version: str) -> DatasetRecord | None:
        for rec in self._versions(self._client, name):
            if rec.version == version:
                return rec
        return None

    @reaching
    def iter_versions(self, name: str) -> list[DatasetRecord]:
        found = self._versions(self._client, name)
        found.sort(key=lambda r: vkey(r.version or "", r.created_at))
        return found

    @reaching
    def delete_dataset(self, name: str, version: str | None = None) -> DatasetRecord | None:
        def body(pipe: Any) -> DatasetRecord | None:
            versions = self._versions(pipe, name)
            gone = [v for v in versions if version is None or v.version == version]
            if not gone:
                return None
            _watch_more(pipe, [entry_key(v.cid) for v in gone])
            refs = {v.cid: list(pipe.smembers(label_refs_key(v.cid))) for v in gone}
            labels = {
                lkey: pipe.hmget(lkey, [b"name", b"version"])
                for keys in refs.values()
                for lkey in keys
            }
            left = [v for v in versions if v not in gone]
            pipe.multi()
            for v in gone:
                pipe.delete(entry_key(v.cid), label_refs_key(v.cid))
            for lkey, (lname, lversion) in labels.items():
                pipe.delete(lkey)
                if lname is not None:
                    pipe.srem(label_versions_key(lname.decode()), lversion or b"")
            pipe.delete(versions_key(name))
            if left:
                pipe.hset(versions_key(name), mapping={v.version: v.cid for v in left})
                pipe.hset(NAMES_KEY, name, _latest(left).cid)
            else:
                pipe.hdel(NAMES_KEY, name)
            return _latest(gone)

        return self._transaction([NAMES_KEY, versions_key(name)], body)

    @reaching
    def rename_dataset(self, old: str, new: str) -> DatasetRecord:
        def body(pipe: Any) -> DatasetRecord:
            versions = self._versions(pipe, old)
            if not versions:
                raise no_entry_named(self, old)
            rec = _latest(versions)
            if old == new:
                pipe.multi()
                return rec
            if self._versions(pipe, new):
                raise DatasetExistsError(
                    f"Cannot rename {old!r} to {new!r}: a dataset named {new!r} already exists."
                )
            _watch_more(pipe, [entry_key(v.cid) for v in versions])
            now = utcnow()
            pipe.multi()
            for v in versions:
                pipe.hset(
                    entry_key(v.cid),
                    mapping={b"name": new.encode(), b"atl_updated_at": now.isoformat().encode()},
                )
            pipe.delete(versions_key(old))
            pipe.hset(versions_key(new), mapping={v.version: v.cid for v in versions})
            pipe.hdel(NAMES_KEY, old)
            pipe.hset(NAMES_KEY, new, rec.cid)
            return dataclasses.replace(rec, name=new, updated_at=now)

        return self._transaction([NAMES_KEY, versions_key(old), versions_key(new)], body)

    # --- labels -----------------------------------------------------------------------

    @staticmethod
    def _label(fields: dict[bytes, bytes]) -> LabelRow | None:
        if not fields or b"cid" not in fields or b"name" not in fields:
            return None
        return LabelRow(
            fields[b"name"].decode(),
            fields.get(b"version", b"").decode(),
            fields[b"cid"].decode(),
            fields[b"description"].decode() if fields.get(b"description") else None,
            _timestamp(fields, b"atl_created_at"),
            _timestamp(fields, b"atl_updated_at"),
        )

    @reaching
    def set_label(self, name: str, version: str, cid: str, description: str | None) -> LabelRow:
        key = label_key(name, version)

        def body(pipe: Any) -> LabelRow:
            if not pipe.exists(entry_key(cid)):
                raise DatasetNotFoundError(
                    f"Cannot label {name!r}: no dataset with CID {cid} is in the index. Labels "
                    "point at stored datasets only; insert it first."
                )
            old = self._label(pipe.hgetall(key))
            now = utcnow()
            created = old.created_at if old is not None and old.created_at else now
            row = LabelRow(name, version, cid, description, created, now)
            mapping = {
                b"name": name.encode(),
                b"cid": cid.encode(),
                b"version": version.encode(),
                b"atl_created_at": created.isoformat().encode(),
                b"atl_updated_at": now.isoformat().encode(),
            }
            if description is not None:
                mapping[b"description"] = description.encode()
            pipe.multi()
            pipe.delete(key)
            pipe.hset(key, mapping=mapping)
            pipe.sadd(label_versions_key(name), version)
            if old is not None and old.cid != cid:
                pipe.srem(label_refs_key(old.cid), key)
            pipe.sadd(label_refs_key(cid), key)
            return row

        return self._transaction([key, entry_key(cid)], body)

    @reaching
    def get_label(self, name: str, version: str) -> LabelRow | None:
        # An exact key: a name holding * ? [ is never a pattern here (atdata's SCAN MATCH was).
        row = self._label(self._client.hgetall(label_key(name, version)))
        if row is None or row.name != name or not self._client.exists(entry_key(row.cid)):
            return None
        return row

    @reaching
    def iter_labels(self, name: str | None = None) -> list[LabelRow]:
        if name is not None:
            members = self._client.smembers(label_versions_key(name))
            keys = [label_key(name, v.decode()) for v in members]
        else:
            keys = list(self._scan(glob_escape(LABEL_PREFIX) + "*"))
        rows: list[LabelRow | None] = []
        if keys:
            pipe = self._client.pipeline(transaction=False)
            for key in keys:
                pipe.hgetall(key)
            rows = [self._label(f) for f in pipe.execute()]
        out = [r for r in rows if r is not None and (name is None or r.name == name)]
        out.sort(key=lambda r: (r.name, vkey(r.version)))
        return out

    @reaching
    def delete_label(self, name: str, version: str) -> LabelRow | None:
        key = label_key(name, version)

        def body(pipe: Any) -> LabelRow | None:
            row = self._label(pipe.hgetall(key))
            if row is None:
                return None
            pipe.multi()
            pipe.delete(key)
            pipe.srem(label_versions_key(name), version)
            pipe.srem(label_refs_key(row.cid), key)
            return row

        return self._transaction([key], body)

    # --- lenses -----------------------------------------------------------------------

    @staticmethod
    def _lens(name: str, version: str, raw: bytes | None, digest: bytes | None) -> LensRow | None:
        if raw is None:
            return None
        text = raw.decode("utf-8")
        try:
            record = json.loads(text)
        except ValueError:
            return None
        if not isinstance(record, dict):
            return None
        return LensRow(
            name,
            version,
            text,
            str(record.get("source_schema", "")),
            str(record.get("view_schema", "")),
            digest.decode() if digest else "",
        )

    @reaching
    def store_lens(
        self,
        name: str,
        version: str | None,
        render: Callable[[str], str],
        content_hash: str,
        source_schema: str,
        view_schema: str,
    ) -> tuple[LensRow, bool]:
        vkey_name = lens_versions_key(name)

        def body(pipe: Any) -> tuple[LensRow, bool]:
            if version is None:
                stored = [v.decode() for v in pipe.smembers(vkey_name)]
                semver = [v for v in stored if semver_tuple(v)]
                chosen = _next_patch(max(semver, key=vkey) if semver else "")
            else:
                chosen = version
            key = lens_key(name, chosen)
            pipe.watch(key)
            raw = pipe.get(key)
            if raw is not None:
                digest = pipe.hget(LENS_HASHES_KEY, f"{name}@{chosen}")
                found = self._lens(name, chosen, raw, digest)
                if found is not None and found.content_hash == content_hash:
                    pipe.multi()
                    return found, False
                raise SchemaConflictError(
                    f"Lens {name}@{chosen} is already stored with other content; stored lens "
                    "versions are immutable. Store a new version (omit the version)."
                )
            text = render(chosen)
            pipe.multi()
            pipe.set(key, text.encode("utf-8"))
            pipe.sadd(vkey_name, chosen)
            pipe.hset(LENS_HASHES_KEY, f"{name}@{chosen}", content_hash)
            return LensRow(name, chosen, text, source_schema, view_schema, content_hash), True

        return self._transaction([vkey_name], body)

    @reaching
    def get_lens(self, name: str, version: str) -> LensRow | None:
        raw = self._client.get(lens_key(name, version))
        digest = self._client.hget(LENS_HASHES_KEY, f"{name}@{version}")
        return self._lens(name, version, raw, digest)

    @reaching
    def iter_lenses(self) -> list[LensRow]:
        out: list[LensRow] = []
        hashes = self._client.hgetall(LENS_HASHES_KEY)
        for key in self._scan(glob_escape(LENS_PREFIX) + "*"):
            rest = key[len(LENS_PREFIX) :]
            if "@" not in rest:
                continue
            name, version = rest.rsplit("@", 1)
            digest = hashes.get(f"{name}@{version}".encode())
            row = self._lens(name, version, self._client.get(key), digest)
            if row is not None:
                out.append(row)
        out.sort(key=lambda r: (r.name, vkey(r.version)))
        return out

    # --- schemas --------------------------------------------------------------------

    def _row(
        self,
        name: str,
        version: str,
        raw: bytes | None,
        stored_hash: bytes | None,
        *,
        cache: bool = True,
    ):
        """The schema row for a stored record; its content hash is computed once and cached
        (``cache=False``: computed but not stored, for writes that must not touch the server
        before they commit, such as a dry run)."""
        if raw is None:
            return None
        key = schema_key(name, version)
        try:
            text = raw.decode("utf-8")
            if stored_hash:
                digest = stored_hash.decode()
            else:
                digest = _record_content_hash(text)
                if cache:
                    self._client.hsetnx(SCHEMA_HASHES_KEY, f"{name}@{version}", digest)
        except Exception as exc:  # undecodable JSON or a record the hasher refuses
            raise BadRow(f"{key}: {exc}") from None
        return SchemaRow(name=name, version=version, record_json=text, content_hash=digest)

    @reaching
    def get_schema(self, name: str, version: str) -> SchemaRow | None:
        pipe = self._client.pipeline(transaction=False)
        pipe.get(schema_key(name, version))
        pipe.hget(SCHEMA_HASHES_KEY, f"{name}@{version}")
        raw, digest = pipe.execute()
        try:
            return self._row(name, version, raw, digest)
        except BadRow as exc:
            log.warning("Unreadable schema %s: %s", schema_key(name, version), exc)
            return None

    def _schema_rows(self, pattern: str, *, legacy: bool) -> list[SchemaRow]:
        keys = list(self._scan(pattern))
        hashes = {k.decode(): v for k, v in self._client.hgetall(SCHEMA_HASHES_KEY).items()}
        rows: dict[tuple[str, str], tuple[bool, SchemaRow]] = {}
        for start in range(0, len(keys), _BATCH):
            chunk = keys[start : start + _BATCH]
            values = self._client.mget(chunk)
            for key, raw in zip(chunk, values, strict=True):
                parts = split_schema_key(key)
                if parts is None or raw is None:
                    continue
                name, version, is_legacy = parts
                if is_legacy and not legacy:
                    continue
                # A legacy key's hash is cached under its full key name, never under Name@v.
                field = key[len(SCHEMA_PREFIX) :]
                try:
                    row = self._row(name, version, raw, hashes.get(field))
                except BadRow as exc:
                    log.warning("Skipping unreadable schema %s: %s", key, exc)
                    continue
                if is_legacy:
                    field_hash = row.content_hash
                    if field not in hashes:
                        self._client.hsetnx(SCHEMA_HASHES_KEY, field, field_hash)
                seen = rows.get((name, version))
                if seen is None or (seen[0] and not is_legacy):
                    rows[(name, version)] = (is_legacy, row)
        return [row for _, row in rows.values()]

    @reaching
    def iter_schemas(self) -> Iterator[SchemaRow]:
        # atdata lists legacy module.Name keys with the module stripped; so do we, unless a
        # plain key holds the same Name@version.
        rows = self._schema_rows(glob_escape(SCHEMA_PREFIX) + "*", legacy=True)
        rows.sort(key=lambda r: (r.name, version_sort_key(r.version)))
        yield from rows

    @reaching
    def find_schema(self, name: str, content_hash: str) -> SchemaRow | None:
        pattern = glob_escape(f"{SCHEMA_PREFIX}{name}@") + "*"
        matches = [
            r
            for r in self._schema_rows(pattern, legacy=False)
            if r.name == name and r.content_hash == content_hash
        ]
        if not matches:
            return None
        return max(matches, key=lambda r: version_sort_key(r.version))

    @reaching
    def publish_schema(
        self,
        name: str,
        version: str | None,
        render: Callable[[str], str],
        content_hash: str,
    ) -> tuple[SchemaRow, bool]:
        if version is not None:
            return self._publish_exact_version(name, version, render(version), content_hash)
        patterns = [
            glob_escape(f"{SCHEMA_PREFIX}{name}@") + "*",
            glob_escape(SCHEMA_PREFIX) + "*." + glob_escape(f"{name}@") + "*",
        ]
        latest = self._latest(keys=[SCHEMA_HASHES_KEY], args=[name, *patterns, SCHEMA_PREFIX])
        latest = latest.decode() if latest else ""
        for _ in range(_MAX_RETRIES):
            candidate = _next_patch(latest)
            text = render(candidate)
            ok, value = self._publish_next(
                keys=[SCHEMA_HASHES_KEY],
                args=[name, *patterns, latest, candidate, text, content_hash, SCHEMA_PREFIX],
            )
            if ok:
                self._client.incr(DATA_VERSION_KEY)
                return SchemaRow(name, candidate, text, content_hash), True
            latest = value.decode()  # someone published meanwhile: go after their version
        raise RuntimeError(f"Could not pick a new version of schema {name!r}: too much contention")

    def _publish_exact_version(
        self, name: str, version: str, text: str, content_hash: str
    ) -> tuple[SchemaRow, bool]:
        field = f"{name}@{version}"
        res = self._publish_exact(
            keys=[schema_key(name, version), SCHEMA_HASHES_KEY],
            args=[field, text, content_hash],
        )
        if res[0]:
            self._client.incr(DATA_VERSION_KEY)
            return SchemaRow(name, version, text, content_hash), True
        stored = self._row(name, version, res[1], res[2] or None)
        if stored.content_hash == content_hash:
            return stored, False
        raise SchemaConflictError(
            f"Schema {name}@{version} is already published with different fields; published "
            "versions are immutable. Publish without a version to get the next one."
        )

    # --- whole catalog --------------------------------------------------------------

    @reaching
    def write_catalog(
        self,
        schemas: Sequence[SchemaRow],
        datasets: Sequence[DatasetRecord],
        *,
        dry_run: bool = False,
    ) -> CatalogWriteResult:
        schemas = list(schemas)
        datasets = list(datasets)
        checked_catalog(schemas, datasets)
        skeys = [schema_key(s.name, s.version) for s in schemas]
        dkeys = [entry_key(d.cid) for d in datasets]

        def body(pipe: Any) -> CatalogWriteResult:
            result = CatalogWriteResult()
            hashes = pipe.hgetall(SCHEMA_HASHES_KEY)
            new_schemas = []
            for key, row in zip(skeys, schemas, strict=True):
                raw = pipe.get(key)
                label = f"{row.name}@{row.version}"
                if raw is None:
                    new_schemas.append(row)
                    result.schemas_added.append(label)
                    continue
                try:
                    stored = self._row(
                        row.name, row.version, raw, hashes.get(label.encode()), cache=False
                    )
                except BadRow as exc:
                    raise SchemaConflictError(
                        f"Schema {label} is stored in {self.location} but unreadable ({exc}); "
                        "nothing was written. Remove that key or leave the schema out."
                    ) from None
                if stored.content_hash != row.content_hash:
                    raise SchemaConflictError(
                        f"Schema {label} is stored with different content in {self.location}; "
                        "nothing was written. Rename or drop that schema from the catalog."
                    )
                result.schemas_unchanged.append(label)
            by_cid = self._read_entries(pipe, [d.cid for d in datasets])
            now = utcnow()
            new_datasets = []
            names_only = []
            all_versions: dict[str, list[DatasetRecord]] = {}
            for rec in datasets:
                version = rec.version or "1.0.0"
                rec = rec.stamped(rec.created_at, rec.updated_at, version)
                versions = all_versions.setdefault(rec.name, self._versions(pipe, rec.name))
                named = next((v for v in versions if v.version == version), None)
                holder = by_cid[rec.cid]
                old = named or holder
                if old is None:
                    created = rec.created_at or now
                    added = rec.stamped(created, rec.updated_at or created)
                    new_datasets.append(added)
                    versions.append(added)
                    result.datasets_added.append(rec.name)
                elif old.same_content(rec) and old.version == version:
                    result.datasets_unchanged.append(rec.name)
                    if named is None:
                        names_only.append(old)  # stored by atdata: only index its name
                else:
                    what = "name" if old.name == rec.name else f"content (CID {rec.cid})"
                    raise DatasetExistsError(
                        f"Dataset {rec.name!r}: its {what} is already used by entry "
                        f"{old.name!r} in {self.location} with other content; nothing was "
                        "written."
                    )
            if dry_run:
                return result
            pipe.multi()
            for row in new_schemas:
                pipe.set(schema_key(row.name, row.version), row.record_json.encode("utf-8"))
                pipe.hset(SCHEMA_HASHES_KEY, f"{row.name}@{row.version}", row.content_hash)
            for rec in new_datasets:
                pipe.delete(entry_key(rec.cid))  # an unreadable leftover is replaced, not merged
                pipe.hset(entry_key(rec.cid), mapping=encode_entry(rec))
            for name, versions in all_versions.items():
                if versions:
                    pipe.hset(versions_key(name), mapping={v.version: v.cid for v in versions})
                    pipe.hset(NAMES_KEY, name, _latest(versions).cid)
            for rec in names_only:
                pipe.hset(NAMES_KEY, rec.name, rec.cid)
            return result

        vkeys = [versions_key(d.name) for d in datasets]
        return self._transaction([NAMES_KEY, SCHEMA_HASHES_KEY, *skeys, *dkeys, *vkeys], body)

    # --- secondary keys ---------------------------------------------------------------

    @reaching
    def reconcile(self) -> dict[str, int]:
        """Bring the name index in line with the entries actually stored.

        Adds names of entries written by atdata (which does not maintain the index) and
        drops names whose entry is gone or now carries another name. When atdata stored two
        entries under one name, the one with the smallest CID gets the name (a warning
        names the others; they stay listed and reachable by CID).

        Returns:
            Counts: ``{"added": n, "removed": m}``.
        """
        keys = list(self._scan(glob_escape(ENTRY_PREFIX) + "*"))
        actual: dict[str, list[str]] = {}
        for start in range(0, len(keys), _BATCH):
            chunk = keys[start : start + _BATCH]
            pipe = self._client.pipeline(transaction=False)
            for key in chunk:
                pipe.hmget(key, [b"name", b"cid"])
            for key, (name, cid) in zip(chunk, pipe.execute(), strict=True):
                if name is None:
                    continue
                cid_s = cid.decode() if cid else key[len(ENTRY_PREFIX) :]
                actual.setdefault(name.decode("utf-8", "replace"), []).append(cid_s)
        mapped = {k.decode(): v.decode() for k, v in self._client.hgetall(NAMES_KEY).items()}
        added = removed = 0
        for name, cid in mapped.items():
            if cid not in actual.get(name, ()):
                removed += self._hdel_if(keys=[NAMES_KEY], args=[name, cid])
        for name, cids in actual.items():
            if len(cids) > 1:
                log.warning(
                    "Redis index %s has %d entries named %r (CIDs %s): atdata allowed "
                    "duplicates. The name resolves to %s; rename the others.",
                    self.location,
                    len(cids),
                    name,
                    ", ".join(sorted(cids)),
                    mapped.get(name, min(cids)),
                )
            if mapped.get(name) not in cids:
                added += self._client.hsetnx(NAMES_KEY, name, min(cids))
        if added or removed:
            self._client.incr(DATA_VERSION_KEY)
        return {"added": added, "removed": removed}

    # --- change notification ------------------------------------------------------------

    @reaching
    def data_version(self) -> int:
        return int(self._client.get(DATA_VERSION_KEY) or 0)

    # --- lifecycle ------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        client, closed = self._client, _Closed(self._location)
        # Every later call fails clearly (redis-py would reconnect and go on as if open).
        self._client = closed
        self._get_by_name = self._latest = closed.script
        self._publish_next = self._publish_exact = self._hdel_if = closed.script
        if self._owns_client:
            client.close()


class _Closed:
    """Stands in for the client of a closed backend: any use raises ``IndexOpenError``."""

    def __init__(self, location: str) -> None:
        self._location = location

    def script(self, *args: Any, **kwargs: Any) -> Any:
        raise IndexOpenError(f"The index {self._location} was closed; open it again.")

    def __getattr__(self, name: str) -> Any:
        return self.script


def _watch_more(pipe: Any, keys: list[str]) -> None:
    if keys:  # WATCH with no key is an error
        pipe.watch(*keys)


def _next_patch(latest: str) -> str:
    sv = semver_tuple(latest) if latest else None
    if sv is None:
        return "1.0.0"
    return f"{sv[0]}.{sv[1]}.{sv[2] + 1}"


def _latest(records: list[DatasetRecord]) -> DatasetRecord:
    found = latest_of(records)
    assert isinstance(found, DatasetRecord)
    return found
