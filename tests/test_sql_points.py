"""SQLite's point reads (six columns, see atdata_lite.index.sql._points) against full rows.

Every kind of row a lookup can meet -- plain, versioned, replaced, renamed, imported with a
legacy UUID, reached through a label under another name, hand-edited -- must read the same
through the lookups (by CID, by name, resolving a name) as through the listing, which reads
the full row.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3

import pytest

from atdata_lite.index.backend import DatasetRecord
from atdata_lite.index.sql import open_sql_backend
from atdata_lite.index.sql._points import compact_select
from atdata_lite.index.sql.tables import datasets
from atdata_lite.testing import make_record


@pytest.fixture
def path(tmp_path):
    return tmp_path / "index.db"


@pytest.fixture
def backend(path):
    b = open_sql_backend(str(path))
    yield b
    b.close()


def _listed(backend) -> dict[str, DatasetRecord]:
    return {r.cid: r for r in backend.iter_datasets()}


def _assert_lookups_match_listing(backend) -> None:
    listed = _listed(backend)
    assert listed
    for cid, record in listed.items():
        assert backend.get_dataset_by_cid(cid) == record
        assert backend.get_dataset_by_cid_as(cid, DatasetRecord) == record
    by_name: dict[str, DatasetRecord] = {}
    for record in listed.values():
        latest = by_name.get(record.name)
        if latest is None or record.version > latest.version:
            by_name[record.name] = record
    for name, record in by_name.items():
        assert backend.get_dataset_as(name, DatasetRecord) == record
        assert backend.resolve_name_as(name, DatasetRecord) == record


def test_every_kind_of_row_reads_as_its_full_row(backend) -> None:
    plain = make_record("plain")
    backend.insert_datasets([plain, make_record("v"), make_record("renamed")])
    v2 = dataclasses.replace(make_record("v", ["s3://b/v2.tar"]), version="2.0.0")
    backend.insert_datasets([v2])
    legacy = dataclasses.replace(make_record("legacy"), legacy_uuid="0000-legacy")
    backend.insert_datasets([legacy])
    backend.insert_datasets([make_record("plain", ["s3://b/new.tar"])], on_conflict="replace")
    backend.rename_dataset("renamed", "new-name")

    _assert_lookups_match_listing(backend)
    listed = {r.name: r for r in _listed(backend).values()}
    assert listed["plain"].updated_at > listed["plain"].created_at
    assert listed["legacy"].legacy_uuid == "0000-legacy"
    assert backend.resolve_name_as("v", DatasetRecord).version == "2.0.0"


def test_a_label_under_another_name_reads_the_labelled_dataset(backend) -> None:
    target = make_record("target")
    backend.insert_datasets([target])
    backend.set_label("alias", "", target.cid, None)
    found = backend.resolve_name_as("alias", DatasetRecord)
    assert found == backend.get_dataset_by_cid(target.cid)
    assert found.name == "target"


def test_the_compact_read_flags_only_rare_rows(backend, path) -> None:
    backend.insert_datasets([make_record("a"), make_record("b")])
    backend.insert_datasets([make_record("b", ["s3://b/b2.tar"])], on_conflict="replace")
    backend.insert_datasets([dataclasses.replace(make_record("c"), version="stable")])
    sql = str(compact_select(datasets.c.name).compile(dialect=backend.engine.dialect))
    with sqlite3.connect(path) as conn:
        extras = dict(conn.execute(f"SELECT name, extras FROM ({sql})").fetchall())
    # Never updated, default version: NULL; another version: the version; replaced: 0, so
    # that the lookup reads the row whole.
    assert extras == {"a": None, "b": 0, "c": "stable"}


def test_a_point_read_skips_an_unparseable_timestamp_with_a_warning(backend, path, caplog):
    record = make_record("broken")
    backend.insert_datasets([record])
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE datasets SET created_at = 'not a time', updated_at = 'not a time'")
    with caplog.at_level(logging.WARNING):
        assert backend.get_dataset_by_cid_as(record.cid, DatasetRecord) is None
        assert backend.resolve_name_as("broken", DatasetRecord) is None
    assert "Skipping unreadable dataset 'broken'" in caplog.text


def test_a_point_read_accepts_another_iso_timestamp(backend, path) -> None:
    record = make_record("iso")
    backend.insert_datasets([record])
    with sqlite3.connect(path) as conn:
        conn.execute(
            "UPDATE datasets SET created_at = '2024-01-02T03:04:05+01:00', "
            "updated_at = '2024-01-02T03:04:05+01:00'"
        )
    found = backend.get_dataset_by_cid_as(record.cid, DatasetRecord)
    assert found == _listed(backend)[record.cid]
    assert found.created_at.isoformat() == "2024-01-02T03:04:05+00:00"  # taken as UTC


def test_a_point_read_of_a_damaged_shard_list_reads_the_shard_rows(backend, path, caplog):
    record = make_record("damaged", ["s3://b/1.tar", "s3://b/2.tar"])
    backend.insert_datasets([record])
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE datasets SET packed_shards = X'c1'")
    with caplog.at_level(logging.WARNING):
        found = backend.get_dataset_by_cid_as(record.cid, DatasetRecord, shard_fields="packed")
    assert [f[0] for f in found.shards] == ["s3://b/1.tar", "s3://b/2.tar"]
    assert "reading its shard rows instead" in caplog.text
