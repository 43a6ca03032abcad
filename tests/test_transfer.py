"""import_catalog / export_catalog against real Redis and real SQLite files."""

from __future__ import annotations

import json
import sqlite3

import msgpack
import pytest
from _index_helpers import BACKENDS, open_index
from _redis_helpers import (
    atdata_entries,
    atdata_get_schema,
    dump,
    fixture_entries,
    fixture_schemas,
    load_fixture,
)

from atdata_lite.errors import DatasetExistsError, IndexTooNewError, NotAnIndexError
from atdata_lite.index import open_backend
from atdata_lite.index.backend import ShardRecord
from atdata_lite.testing import make_record, make_schema_row
from atdata_lite.transfer import export_catalog, import_catalog


@pytest.fixture
def client(redis_url):
    import redis

    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()


@pytest.fixture
def target(tmp_path):
    return str(tmp_path / "target.db")


def _snapshot(location: str):
    b = open_backend(location)
    try:
        return list(b.iter_schemas()), list(b.iter_datasets())
    finally:
        b.close()


def _items(report, outcome: str) -> dict[str, str]:
    return {i.key: i.reason for i in getattr(report, outcome)}


# --- atdata 0.2's Redis fixture ---------------------------------------------------------


@pytest.mark.redis
def test_fixture_import_reproduces_every_entry_and_schema(client, redis_url, target):
    doc = load_fixture(client)
    before = dump(client)
    report = import_catalog(redis_url, target)
    assert len(report.imported) == 6 and not (report.skipped or report.renamed)
    schemas, datasets = _snapshot(target)
    want = fixture_entries(doc)
    assert {d.cid for d in datasets} == set(want)
    for d in datasets:
        raw = want[d.cid]
        assert d.name == raw["name"].decode()
        assert d.schema_ref == raw["schema_ref"].decode()
        assert d.data_urls == msgpack.unpackb(raw["data_urls"])
        assert d.metadata == raw["metadata"]  # byte for byte
    assert {(s.name, s.version): s.record_json for s in schemas} == fixture_schemas(doc)
    assert dump(client) == before  # the source is never modified


@pytest.mark.redis
def test_second_import_is_a_no_op(client, redis_url, target):
    load_fixture(client)
    import_catalog(redis_url, target)
    first = _snapshot(target)
    report = import_catalog(redis_url, target)
    assert not report.changed
    assert len(report.unchanged) == 6
    assert _snapshot(target) == first


@pytest.mark.redis
def test_dry_run_writes_nothing(client, redis_url, target):
    load_fixture(client)
    report = import_catalog(redis_url, target, dry_run=True)
    assert report.dry_run and len(report.imported) == 6
    assert "would import 6" in report.summary()
    assert _snapshot(target) == ([], [])


@pytest.mark.redis
def test_dry_run_into_a_new_file_creates_nothing(client, redis_url, tmp_path):
    load_fixture(client)
    new = tmp_path / "sub" / "new.db"
    report = import_catalog(redis_url, str(new), dry_run=True)
    assert report.target == str(new) and len(report.imported) == 6
    assert list(tmp_path.iterdir()) == []  # no index, no folder, no lock file


@pytest.mark.redis
def test_failure_midway_leaves_the_target_unchanged(client, redis_url, target):
    load_fixture(client)
    seed = open_backend(target)
    seed.insert_datasets([make_record("already-here")])
    seed.close()
    before = _snapshot(target)
    intruder = make_record("images-train", ["elsewhere.tar"])

    def progress(done: int, total: int) -> None:
        # Another writer takes a name after the import planned it, before it writes.
        if done == total:
            other = open_backend(target)
            other.insert_datasets([intruder])
            other.close()

    with pytest.raises(DatasetExistsError):
        import_catalog(redis_url, target, progress=progress)
    schemas, datasets = _snapshot(target)
    assert schemas == before[0] == []
    assert sorted(d.name for d in datasets) == ["already-here", "images-train"]
    assert {d.cid for d in datasets} == {before[1][0].cid, intruder.cid}


@pytest.mark.redis
def test_awkward_atdata_rows_are_imported_renamed_or_skipped_with_reasons(
    client, redis_url, target
):
    record = {"name": "Thing", "version": "1.0.0", "fields": []}
    other = {
        "name": "Thing",
        "version": "1.0.0",
        "fields": [
            {
                "name": "x",
                "fieldType": {"$type": "local#primitive", "primitive": "int"},
                "optional": False,
            }
        ],
    }
    client.set("LocalSchema:Thing@1.0.0", json.dumps(record))
    client.set("LocalSchema:a.Thing@1.0.0", json.dumps(record))  # duplicate of the plain key
    client.set("LocalSchema:b.Thing@1.0.0", json.dumps(other))  # clashes with the plain key
    client.set("LocalSchema:mod.Legacy@2.0.0", json.dumps({**record, "name": "Legacy"}))
    client.set("LocalSchema:Thing@banana", json.dumps(record))
    client.set("LocalSchema:Broken@1.0.0", "{not json")

    def entry(rec, name=None, **extra):
        fields = {
            "name": name or rec.name,
            "schema_ref": rec.schema_ref,
            "data_urls": msgpack.packb(rec.data_urls),
            "cid": rec.cid,
            **extra,
        }
        client.hset(f"LocalDatasetEntry:{rec.cid}", mapping=fields)

    ref = "atdata://local/sampleSchema/Thing@1.0.0"
    dup_a = make_record("dup", ["a.tar"], schema_ref=ref)
    dup_b = make_record("dup", ["b.tar"], schema_ref=ref)
    entry(dup_a)
    entry(dup_b)
    int_keys = make_record("int-keys", schema_ref=ref)
    int_meta = msgpack.packb({1: "one", "k": 2})
    entry(int_keys, metadata=int_meta)
    missing = make_record("missing-schema", schema_ref="atdata://local/sampleSchema/Gone@1.0.0")
    entry(missing)
    garbage = make_record("garbage-ref", schema_ref="!!garbage!!")
    entry(garbage)
    client.hset("LocalDatasetEntry:bafynoname", mapping={"schema_ref": ref, "cid": "x"})
    bad_urls = make_record("bad-urls")
    client.hset(
        f"LocalDatasetEntry:{bad_urls.cid}",
        mapping={"name": "bad-urls", "schema_ref": ref, "data_urls": b"\xc1"},
    )
    before = dump(client)

    report = import_catalog(redis_url, target)
    imported, renamed, skipped = (_items(report, o) for o in ("imported", "renamed", "skipped"))
    assert "LocalSchema:Thing@1.0.0" in imported
    assert "not x.y.z" in imported["LocalSchema:Thing@banana"]
    assert "legacy" in renamed["LocalSchema:mod.Legacy@2.0.0"]
    assert "same record" in skipped["LocalSchema:a.Thing@1.0.0"]
    assert "other fields" in skipped["LocalSchema:b.Thing@1.0.0"]
    assert "unreadable record" in skipped["LocalSchema:Broken@1.0.0"]
    small, big = sorted([dup_a, dup_b], key=lambda r: r.cid)
    assert f"LocalDatasetEntry:{small.cid}" in imported
    assert "taken" in renamed[f"LocalDatasetEntry:{big.cid}"]
    assert "non-string map keys" in imported[f"LocalDatasetEntry:{int_keys.cid}"]
    assert "Gone@1.0.0" in imported[f"LocalDatasetEntry:{missing.cid}"]
    assert "not a schema reference" in imported[f"LocalDatasetEntry:{garbage.cid}"]
    assert "name" in skipped["LocalDatasetEntry:bafynoname"]
    assert "data_urls" in skipped[f"LocalDatasetEntry:{bad_urls.cid}"]

    schemas, datasets = _snapshot(target)
    assert {(s.name, s.version) for s in schemas} == {
        ("Thing", "1.0.0"),
        ("Thing", "banana"),
        ("Legacy", "2.0.0"),
    }
    by_cid = {d.cid: d for d in datasets}
    assert by_cid[small.cid].name == "dup"
    assert by_cid[big.cid].name == f"dup-{big.cid[-8:]}"
    assert by_cid[int_keys.cid].metadata == int_meta
    assert dump(client) == before

    again = import_catalog(redis_url, target)
    assert not again.changed and _snapshot(target) == (schemas, datasets)


@pytest.mark.redis
def test_name_taken_in_the_target_is_renamed(client, redis_url, target):
    load_fixture(client)
    seed = open_backend(target)
    seed.insert_datasets([make_record("images-train", ["mine.tar"])])
    seed.close()
    report = import_catalog(redis_url, target)
    [item] = report.renamed
    assert item.name.startswith("images-train-")
    assert open_backend(target).get_dataset("images-train").data_urls == ["mine.tar"]


# --- atdata 0.7 SQLite -------------------------------------------------------------------

# atdata 0.7's providers/_sqlite.py tables (reference section 2.1).
ATDATA_07_SCHEMA = """
CREATE TABLE dataset_entries (
    cid TEXT PRIMARY KEY, name TEXT NOT NULL, schema_ref TEXT NOT NULL,
    data_urls BLOB NOT NULL, metadata BLOB, legacy_uuid TEXT,
    created_at TEXT DEFAULT (datetime('now')));
CREATE INDEX idx_entries_name ON dataset_entries(name);
CREATE TABLE schemas (
    name TEXT NOT NULL, version TEXT NOT NULL, schema_json TEXT NOT NULL,
    created_at TEXT DEFAULT (datetime('now')), PRIMARY KEY (name, version));
CREATE TABLE labels (
    name TEXT NOT NULL, cid TEXT NOT NULL, version TEXT NOT NULL DEFAULT '',
    description TEXT, created_at TEXT DEFAULT (datetime('now')), PRIMARY KEY (name, version));
CREATE TABLE lenses (
    name TEXT NOT NULL, version TEXT NOT NULL, lens_json TEXT NOT NULL,
    created_at TEXT DEFAULT (datetime('now')), PRIMARY KEY (name, version));
"""


def test_atdata_07_sqlite_file_imports(tmp_path, target):
    path = tmp_path / "atdata.db"
    conn = sqlite3.connect(path)
    conn.executescript(ATDATA_07_SCHEMA)
    row = make_schema_row("Img", "1.0.0")
    conn.execute(
        "INSERT INTO schemas (name, version, schema_json) VALUES (?, ?, ?)",
        (row.name, row.version, row.record_json),
    )
    ref = "atdata://local/sampleSchema/Img@1.0.0"
    recs = [
        make_record("train", ["s3://b/t-{000..009}.tar"], schema_ref=ref, metadata={"n": 1}),
        make_record("val", ["s3://b/v.tar"], schema_ref=ref),
    ]
    for rec in recs:
        conn.execute(
            "INSERT INTO dataset_entries (cid, name, schema_ref, data_urls, metadata, legacy_uuid)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                rec.cid,
                rec.name,
                rec.schema_ref,
                msgpack.packb(rec.data_urls),
                rec.metadata,
                "uuid-1" if rec.name == "val" else None,
            ),
        )
    conn.execute("INSERT INTO labels (name, cid) VALUES ('latest', ?)", (recs[0].cid,))
    conn.execute("INSERT INTO labels (name, cid) VALUES ('gone', 'bafy-missing')")
    lens = '{"name": "a", "source_schema": "Img", "view_schema": "Img", "kind": "field_mapping"'
    conn.execute("INSERT INTO lenses (name, version, lens_json) VALUES ('a', '1.0.0', ?)",
                 (lens + ', "field_mapping": {"x": "x"}}',))  # fmt: skip
    conn.commit()
    conn.close()
    raw_before = path.read_bytes()

    report = import_catalog(path, target)
    assert len(report.imported) == 5  # a schema, two datasets, a label, a lens
    assert [(i.kind, i.name) for i in report.skipped] == [("label", "gone")]
    backend = open_backend(target)
    assert backend.get_label("latest", "").cid == recs[0].cid
    assert backend.get_lens("a", "1.0.0").source_schema == "Img"
    backend.close()
    schemas, datasets = _snapshot(target)
    assert schemas == [row]
    by_name = {d.name: d for d in datasets}
    for rec in recs:
        got = by_name[rec.name]
        assert got.cid == rec.cid and got.data_urls == rec.data_urls
        assert got.metadata == rec.metadata
    assert by_name["val"].legacy_uuid == "uuid-1"
    assert by_name["train"].created_at is not None
    assert path.read_bytes() == raw_before
    assert not import_catalog(path, target).changed


def test_not_a_source(tmp_path, target):
    with pytest.raises(NotAnIndexError):
        import_catalog(tmp_path / "missing.db", target)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(NotAnIndexError, match="not an atdata index"):
        import_catalog(other, target)
    text = tmp_path / "x.json"
    text.write_text('{"format": "something-else"}')
    with pytest.raises(NotAnIndexError):
        import_catalog(text, target)


# --- export ------------------------------------------------------------------------------


def _populate(location: str) -> None:
    b = open_backend(location)
    b.write_catalog(
        [make_schema_row("Img", "1.0.0"), make_schema_row("Img", "1.0.1", "str")],
        [
            make_record("a", ["a-0.tar", "a-1.tar"], metadata={"blob": b"\x00", "n": [1, 2]}),
            make_record("b", ["b.tar"], shards=False),
        ],
    )
    b.close()


def test_export_to_file_and_import_round_trips(tmp_path, target):
    _populate(target)
    backup = tmp_path / "backup.json"
    report = export_catalog(target, backup)
    assert (report.schemas, report.datasets) == (2, 2)
    doc = json.loads(backup.read_text())
    assert doc["format"] == "atdata-lite-catalog" and doc["version"] == 2
    restored = str(tmp_path / "restored.db")
    assert len(import_catalog(backup, restored).imported) == 4
    src, dst = _snapshot(target), _snapshot(restored)
    assert src[0] == dst[0]
    for a, b in zip(src[1], dst[1], strict=True):
        assert a.same_content(b) and a.shards == b.shards and a.legacy_uuid == b.legacy_uuid
    assert dst[1][0].shards[0] == ShardRecord("a-0.tar", 1000, 10, f"{0:064x}")
    with pytest.raises(FileExistsError):
        export_catalog(target, backup)
    export_catalog(target, backup, overwrite=True)


def test_backup_from_a_newer_version_is_refused(tmp_path, target):
    _populate(target)
    backup = tmp_path / "backup.json"
    export_catalog(target, backup)
    doc = json.loads(backup.read_text())
    doc["version"] = 99
    backup.write_text(json.dumps(doc))
    with pytest.raises(IndexTooNewError, match="Upgrade atdata-lite"):
        import_catalog(backup, str(tmp_path / "x.db"))


@pytest.mark.redis
def test_export_to_redis_is_read_by_atdata_and_imports_back(client, redis_url, tmp_path, target):
    _populate(target)
    report = export_catalog(target, redis_url)
    assert (report.kind, report.schemas, report.datasets) == ("redis", 2, 2)
    entries = {e["name"]: e for e in atdata_entries(client)}
    assert entries["a"]["metadata"] == {"blob": b"\x00", "n": [1, 2]}
    assert entries["b"]["data_urls"] == ["b.tar"]
    assert atdata_get_schema(client, "Img", "1.0.1")["version"] == "1.0.1"
    again = export_catalog(target, redis_url)
    assert (again.schemas, again.datasets, again.datasets_unchanged) == (0, 0, 2)

    back = str(tmp_path / "back.db")
    import_catalog(redis_url, back)
    src, dst = _snapshot(target), _snapshot(back)
    assert src[0] == dst[0]
    for a, b in zip(src[1], dst[1], strict=True):
        assert a.same_content(b) and a.shards == b.shards


@pytest.mark.redis
def test_export_to_redis_clash_writes_nothing(client, redis_url, target):
    _populate(target)
    client.set("LocalSchema:Img@1.0.0", json.dumps({"name": "Img", "fields": []}))
    before = dump(client)
    with pytest.raises(ValueError):
        export_catalog(target, redis_url)
    # Only a cached content hash of the stored schema may appear; no entry or schema.
    after = {k: v for k, v in dump(client).items() if k != b"atdata_lite:schema_hashes"}
    assert after == before


@pytest.mark.redis
def test_import_into_an_index_object_reports_progress(client, redis_url, tmp_path):
    from atdata_lite.index.api import Index

    load_fixture(client)
    calls: list[tuple[int, int]] = []
    with Index(str(tmp_path / "idx.db")) as index:
        report = import_catalog(redis_url, index, progress=lambda d, t: calls.append((d, t)))
        assert report.target == index.location
        assert index.get_dataset("images-train").metadata["classes"] == ["cat", "dog"]
        assert report.to_dict()["summary"]["imported"] == 6
    assert calls and calls[-1] == (6, 6)


# --- versions, labels and lenses in backups ----------------------------------------------


def _versioned_catalog(index) -> None:
    """Three versions of a name (one not x.y.z), labels of every kind, two lenses."""
    from atdata_lite.lenses import Lens
    from atdata_lite.testing import LensSource, LensView, copy_name, upper_name

    ref = index.publish_schema(LensSource)
    for version, url in (("1.2.0", "a"), ("2024-06", "b"), ("2.0.0", "c")):
        index.add_shards([f"/data/mnist-{url}.tar"], name="mnist", schema_ref=ref, version=version)
    index.add_shards(["/data/other.tar"], name="other", schema_ref=ref)
    index.tag("mnist@1.2.0", "stable", description="pinned for the paper")
    index.label("digits", index.get_dataset("mnist@2.0.0").cid)  # unversioned: another name
    index.label("digits", index.get_dataset("mnist@1.2.0").cid, version="v1")
    for name, getter in (("copy", copy_name), ("upper", upper_name), ("upper", upper_name)):
        index.store_lens(
            Lens(getter), name=name, source_schema=LensSource, view_schema=LensView,
            description=f"{name} lens",
        )  # fmt: skip


def _state(index) -> dict:
    """Everything a backup must carry, as seen through the Index."""
    return {
        "versions": {
            name: [(e.version, e.cid, e.data_urls, e.created_at) for e in index.list_versions(name)]
            for name in ("mnist", "other")
        },
        "labels": index.list_labels(),
        "label_rows": [
            (r.name, r.version, r.cid, r.description) for r in index.backend.iter_labels()
        ],
        "lenses": index.list_lenses(),
        "resolved": {
            ref: index.get_dataset(ref).cid
            for ref in ("mnist", "mnist:stable", "digits", "digits@v1", "mnist@2024-06")
        },
    }


def _document(path) -> dict:
    """A backup's content, without what differs from one export to the next (when and from
    where, the order of a name's versions, and label times, which are the import's)."""
    doc = json.loads(path.read_text())
    del doc["exported_at"], doc["source"]
    doc["datasets"].sort(key=lambda d: (d["name"], d["version"]))
    for label in doc["labels"]:
        del label["created_at"], label["updated_at"]
    return doc


@pytest.mark.parametrize("kind", BACKENDS)
def test_backup_round_trips_versions_labels_and_lenses(kind, tmp_path, request):
    from atdata_lite import Index
    from atdata_lite.testing import LensSource, LensView

    with Index(tmp_path / "source.db") as source:
        _versioned_catalog(source)
        expected = _state(source)
        report = export_catalog(source, tmp_path / "backup.json")
    assert (report.datasets, report.labels, report.lenses) == (4, 3, 3)
    assert "4 datasets, 3 labels, 3 lenses" in report.summary()
    doc = _document(tmp_path / "backup.json")
    assert doc["version"] == 2
    assert sorted(d["version"] for d in doc["datasets"] if d["name"] == "mnist") == [
        "1.2.0", "2.0.0", "2024-06",
    ]  # fmt: skip

    with open_index(kind, tmp_path, request) as restored:
        result = import_catalog(tmp_path / "backup.json", restored)
        assert not result.renamed and not result.skipped
        kinds = [i.kind for i in result.imported]
        assert (kinds.count("dataset"), kinds.count("label"), kinds.count("lens")) == (4, 3, 3)
        assert _state(restored) == expected
        upper = restored.load_lens("upper@1.0.1", source_type=LensSource, view_type=LensView)
        assert upper(LensSource(name="abc", n=1)) == LensView(name="ABC")
        # A second import changes nothing, and exporting the restored index gives the same file.
        again = import_catalog(tmp_path / "backup.json", restored)
        assert not again.changed and len(again.unchanged) == len(result.imported)
        export_catalog(restored, tmp_path / "again.json")
    assert _document(tmp_path / "again.json") == doc


def test_version_1_backup_still_imports(tmp_path, target):
    _populate(target)
    backup = tmp_path / "v1.json"
    export_catalog(target, backup)
    doc = json.loads(backup.read_text())
    # What atdata-lite wrote before versions existed: no versions, labels or lenses.
    doc["version"] = 1
    for item in doc["datasets"]:
        del item["version"]
    del doc["labels"], doc["lenses"]
    backup.write_text(json.dumps(doc))
    restored = str(tmp_path / "restored.db")
    report = import_catalog(backup, restored)
    assert not report.renamed and not report.skipped and len(report.imported) == 4
    _, datasets = _snapshot(restored)
    assert [(d.name, d.version) for d in datasets] == [("a", "1.0.0"), ("b", "1.0.0")]


def test_backup_labels_and_lenses_that_cannot_be_imported_are_reported(tmp_path):
    from atdata_lite import Index
    from atdata_lite.testing import LensSource

    with Index(tmp_path / "source.db") as source:
        _versioned_catalog(source)
        export_catalog(source, tmp_path / "backup.json")
    doc = json.loads((tmp_path / "backup.json").read_text())
    doc["labels"].append({"name": "ghost", "version": "", "cid": "bafy-not-stored"})
    doc["labels"].append({"name": 7, "version": "", "cid": "x"})
    doc["lenses"][0]["record_json"] = "[1, 2]"
    (tmp_path / "backup.json").write_text(json.dumps(doc))
    with Index(tmp_path / "target.db") as target:
        # The target already has another dataset as mnist@2.0.0: that version is renamed.
        ref = target.publish_schema(LensSource)
        target.add_shards(["/data/mine.tar"], name="mnist", schema_ref=ref, version="2.0.0")
        report = import_catalog(tmp_path / "backup.json", target)
        skipped = {(i.kind, i.name): i.reason for i in report.skipped}
        assert skipped[("label", "ghost")] == "points at CID bafy-not-stored, which is not imported"
        assert "name must be strings" in skipped[("labels", "")]
        assert "not a JSON object" in skipped[("lens", "copy@1.0.0")]
        moved = next(d for d in doc["datasets"] if d["version"] == "2.0.0")
        assert [i.name for i in report.renamed] == [f"mnist-{moved['cid'][-8:]}"]
        # The label that named the renamed content still points at it.
        assert target.get_dataset("digits").name == report.renamed[0].name
        assert target.get_dataset("mnist@2.0.0").data_urls == ["/data/mine.tar"]


@pytest.mark.redis
def test_export_to_redis_carries_versions_labels_and_lenses(client, redis_url, tmp_path):
    from atdata_lite import Index
    from atdata_lite.errors import SchemaConflictError

    with Index(tmp_path / "source.db") as source:
        _versioned_catalog(source)
        expected = _state(source)
        # A lens version the Redis index holds with other content: nothing at all is written.
        client.set("LocalLens:copy@1.0.0", json.dumps({"name": "copy", "kind": "other"}))
        before = dump(client)
        with pytest.raises(SchemaConflictError, match=r"lens copy.*nothing was written"):
            export_catalog(source, redis_url)
        assert dump(client) == before
        client.delete("LocalLens:copy@1.0.0")
        report = export_catalog(source, redis_url)
        assert (report.datasets, report.labels, report.lenses) == (4, 3, 3)
    with Index(redis_url) as exported:
        assert _state(exported) == expected
