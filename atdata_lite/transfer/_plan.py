"""Deciding what an import writes: normalising names, resolving clashes, explaining each.

Policy:

* Schemas keep their key's name and version. A legacy ``module.Name@v`` key becomes
  ``Name@v`` (reported as renamed) unless the source also has ``Name@v``: identical content is
  then skipped as a duplicate, different content is skipped because atdata itself resolves
  every ``Name@v`` ref to the plain key. A non-semver version is kept as-is (refs use it)
  and reported.
* A dataset keeps its CID, ref, shard URLs and metadata bytes exactly. Rows atdata itself
  cannot decode but whose fields are intact (metadata with integer map keys) are imported
  as-is: atdata-lite reads them. Rows without a name, ref or readable ``data_urls`` are
  skipped, and so are rows whose name holds a control character (new names may not hold
  one; see ``atdata_lite._text``). Refs that do not parse, or name a schema neither side
  has, are imported and reported.
* Names: when atdata stored several entries under one name, the entry with the smallest CID
  keeps it; the others, and entries whose name the target already uses for other content,
  get ``{name}-{last 8 characters of the CID}``. Content (a CID) the target already holds is
  left alone: unchanged when identical, skipped otherwise. So a second run changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack

from .._text import first_control
from ..cid import dataset_cid
from ..index.backend import DatasetRecord, IndexBackend, SchemaRow, ShardRecord
from ..index.redis._layout import semver_tuple
from ..schema import content_hash, parse_schema_ref
from ._raw import RawCatalog, RawDataset, RawSchema

__all__ = ["Plan", "ReportItem", "plan_import"]

_CONTROL_REASON = (
    "its {} holds a control character (an escape sequence, newline or bidirectional "
    "control), which new names may not; rename it in the source and import again"
)


@dataclass(frozen=True)
class ReportItem:
    """One schema or dataset of the source, and what the import did with it.

    Attributes:
        kind: ``"schema"``, ``"dataset"``, or the kind of an ignored row (``"labels"``).
        key: Where it was in the source (a Redis key, ``table:id``, ``datasets[i]``).
        name: Its name in the target (``Name@version`` for a schema), when it has one.
        reason: Why it was renamed, skipped or imported with a remark; empty otherwise.
    """

    kind: str
    key: str
    name: str = ""
    reason: str = ""


@dataclass
class Plan:
    schemas: list[SchemaRow] = field(default_factory=list)
    datasets: list[DatasetRecord] = field(default_factory=list)
    imported: list[ReportItem] = field(default_factory=list)
    renamed: list[ReportItem] = field(default_factory=list)
    skipped: list[ReportItem] = field(default_factory=list)
    unchanged: list[ReportItem] = field(default_factory=list)


def _plan_schemas(raw: list[RawSchema], target: IndexBackend, plan: Plan) -> set[tuple[str, str]]:
    """Add the schema rows to write to ``plan``; return every Name@version known afterwards."""
    parsed: list[tuple[RawSchema, SchemaRow]] = []
    for s in raw:
        if s.error or s.record_json is None:
            plan.skipped.append(ReportItem("schema", s.key, "", s.error or "no value"))
            continue
        try:
            record = json.loads(s.record_json)
            if not isinstance(record, dict):
                raise ValueError("the record is not a JSON object")
            digest = content_hash(record)
        except Exception as exc:  # bad JSON, or fields content_hash cannot read
            plan.skipped.append(ReportItem("schema", s.key, "", f"unreadable record: {exc}"))
            continue
        if first_control(s.name) is not None:
            plan.skipped.append(ReportItem("schema", s.key, "", _CONTROL_REASON.format("name")))
            continue
        parsed.append((s, SchemaRow(s.name, s.version, s.record_json, digest)))

    # Plain keys first, so that a legacy key never takes a Name@v a plain key holds.
    parsed.sort(key=lambda p: (p[0].legacy, p[0].key))
    chosen: dict[tuple[str, str], tuple[RawSchema, SchemaRow]] = {}
    known: set[tuple[str, str]] = set()
    for s, row in parsed:
        label = f"{row.name}@{row.version}"
        ident = (row.name, row.version)
        if ident in chosen:
            first = chosen[ident][0].key
            same = chosen[ident][1].content_hash == row.content_hash
            why = (
                f"same record as {first}, imported as {label}"
                if same
                else f"{label} is taken by {first} with other fields (atdata resolves {label} "
                "to that key too)"
            )
            plan.skipped.append(ReportItem("schema", s.key, label, why))
            continue
        chosen[ident] = (s, row)
        known.add(ident)
        stored = target.get_schema(row.name, row.version)
        if stored is not None:
            if stored.content_hash == row.content_hash:
                plan.unchanged.append(ReportItem("schema", s.key, label))
            else:
                plan.skipped.append(
                    ReportItem(
                        "schema",
                        s.key,
                        label,
                        f"the target already has {label} with other fields; kept the target's",
                    )
                )
            continue
        remarks = []
        if semver_tuple(row.version) is None:
            remarks.append(
                f"version {row.version!r} is not x.y.z: kept as-is (refs use it); "
                "automatic versioning ignores it"
            )
        plan.schemas.append(row)
        if s.legacy:
            remarks.insert(0, f"legacy module-qualified key, stored as {label}")
            plan.renamed.append(ReportItem("schema", s.key, label, "; ".join(remarks)))
        else:
            plan.imported.append(ReportItem("schema", s.key, label, "; ".join(remarks)))
    return known


def _metadata_remark(metadata: bytes | None) -> str | None:
    """Why atdata cannot read this metadata (``None``: fine), or raise when nothing can."""
    if metadata is None:
        return None
    try:
        msgpack.unpackb(metadata, raw=False, strict_map_key=True)
        return None
    except ValueError as exc:
        if "map key" not in str(exc):
            raise
    msgpack.unpackb(metadata, raw=False, strict_map_key=False)  # raises if unreadable
    return (
        "metadata has non-string map keys, which atdata cannot read (its strict_map_key); "
        "imported as-is, atdata-lite reads it"
    )


def _free_name(name: str, cid: str, taken: Callable[[str], bool]) -> str:
    candidate = f"{name}-{cid[-8:]}"
    n = 2
    while taken(candidate):
        candidate = f"{name}-{cid[-8:]}-{n}"
        n += 1
    return candidate


def _plan_datasets(
    raw: list[RawDataset],
    target: IndexBackend,
    known_schemas: set[tuple[str, str]],
    plan: Plan,
    tick: Callable[[], None],
) -> None:
    readable: list[RawDataset] = []
    for d in raw:
        if d.error:
            plan.skipped.append(ReportItem("dataset", d.key, d.name, d.error))
            tick()
        elif first_control(d.name) is not None:
            plan.skipped.append(ReportItem("dataset", d.key, "", _CONTROL_REASON.format("name")))
            tick()
        else:
            readable.append(d)
    # Smallest CID first within a name: it keeps the name (as the Redis backend resolves it).
    readable.sort(key=lambda d: (d.name, d.cid))
    planned_names: set[tuple[str, str | None]] = set()
    planned_cids: set[str] = set()
    version: str | None = None

    def name_taken(n: str) -> bool:
        # A versioned row takes only its own (name, version) slot; an unversioned one the name.
        if version is not None:
            return (n, version) in planned_names or (
                target.get_dataset_version(n, version) is not None
            )
        return any(p[0] == n for p in planned_names) or target.get_dataset(n) is not None

    for d in readable:
        tick()
        version = d.version
        remarks: list[str] = []
        try:
            meta_remark = _metadata_remark(d.metadata)
        except Exception as exc:
            plan.skipped.append(
                ReportItem("dataset", d.key, d.name, f"metadata is not readable msgpack: {exc}")
            )
            continue
        if d.cid in planned_cids:
            plan.skipped.append(
                ReportItem("dataset", d.key, d.name, f"a second row with CID {d.cid}")
            )
            continue
        record = DatasetRecord(
            cid=d.cid,
            name=d.name,
            schema_ref=d.schema_ref,
            shards=d.shards or tuple(ShardRecord(u) for u in d.data_urls),
            metadata=d.metadata,
            legacy_uuid=d.legacy_uuid,
            created_at=d.created_at,
            updated_at=d.updated_at,
            version=d.version,
        )
        existing = target.get_dataset_by_cid(d.cid)
        if existing is not None:
            same = DatasetRecord(**{**_fields(record), "name": existing.name})
            if existing.same_content(same):
                why = "" if existing.name == d.name else f"in the target as {existing.name!r}"
                plan.unchanged.append(ReportItem("dataset", d.key, existing.name, why))
            else:
                plan.skipped.append(
                    ReportItem(
                        "dataset",
                        d.key,
                        existing.name,
                        f"the target holds this content (CID {d.cid}) as {existing.name!r} "
                        "with other metadata; kept the target's",
                    )
                )
            planned_cids.add(d.cid)
            planned_names.add((existing.name, existing.version))
            continue
        if d.key_cid is not None:
            remarks.append(f"key names CID {d.key_cid} but its cid field is {d.cid}; kept {d.cid}")
        try:
            if dataset_cid(d.schema_ref, d.data_urls) != d.cid:
                remarks.append("stored CID differs from the CID of its content; kept as stored")
        except ValueError:
            pass
        if meta_remark:
            remarks.append(meta_remark)
        try:
            ref = parse_schema_ref(d.schema_ref)
            if ref not in known_schemas and target.get_schema(*ref) is None:
                remarks.append(f"schema_ref points to {ref[0]}@{ref[1]}, which neither side has")
        except ValueError:
            remarks.append(f"schema_ref {d.schema_ref!r} is not a schema reference; kept as-is")
        name = d.name
        if name_taken(name):
            name = _free_name(d.name, d.cid, name_taken)
            record = DatasetRecord(**{**_fields(record), "name": name})
            remarks.insert(0, f"name {d.name!r} is taken by other content; imported as {name!r}")
            plan.renamed.append(ReportItem("dataset", d.key, name, "; ".join(remarks)))
        else:
            plan.imported.append(ReportItem("dataset", d.key, name, "; ".join(remarks)))
        plan.datasets.append(record)
        planned_names.add((name, version))
        planned_cids.add(d.cid)


def _fields(rec: DatasetRecord) -> dict[str, Any]:
    return {n: getattr(rec, n) for n in DatasetRecord.__slots__}


def plan_import(catalog: RawCatalog, target: IndexBackend, counter: Any = None) -> Plan:
    """Decide every row of ``catalog`` against ``target`` (reads the target, writes nothing).

    ``counter`` (a :class:`~atdata_lite.progress.Progress`) counts the rows, and raises
    :class:`~atdata_lite.errors.OperationCancelled` when its cancel token is set.
    """
    plan = Plan()

    def tick() -> None:
        if counter is not None:
            counter.update()

    known = _plan_schemas(catalog.schemas, target, plan)
    for _ in catalog.schemas:
        tick()
    _plan_datasets(catalog.datasets, target, known, plan, tick)
    for key, reason in catalog.ignored:
        # The kind is the key's table: "lenses:rowid=3" and "lenses[3]" are both "lenses".
        kind = key.split(":", 1)[0].split("[", 1)[0]
        plan.skipped.append(ReportItem(kind, key, "", reason))
    return plan
