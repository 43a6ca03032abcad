"""``datasets.packed_shards``: the shard list on each dataset row stays its shard rows.

Readers read an entry from its one row (see ``atdata_lite/index/sql/_packed.py``); every write
that touches shards writes both in one transaction. These tests drive the public API through
each kind of write and compare the two stored forms after each step.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3

import msgpack
import pytest
import sqlalchemy as sa
from _sql_helpers import record

from atdata_lite import Index, packable
from atdata_lite.index.backend import ShardRecord
from atdata_lite.index.sql import open_sql_backend
from atdata_lite.index.sql._check import check_index
from atdata_lite.index.sql._packed import pack_shards, unpack_shards


@packable
class S:
    x: int


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def location(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "index.db")
    return request.getfixturevalue("postgres_url")


def _stored(engine: sa.Engine) -> tuple[dict[str, list], dict[str, list]]:
    """Per ``name@version``: the packed list (as lists) and the shard rows, in order."""
    with engine.connect() as conn:
        packed = {
            f"{name}@{version}": [list(s) for s in msgpack.unpackb(blob)]
            for name, version, blob in conn.execute(
                sa.text("SELECT name, version, packed_shards FROM datasets")
            )
        }
        rows: dict[str, list] = {key: [] for key in packed}
        for name, version, *shard in conn.execute(
            sa.text(
                "SELECT d.name, d.version, s.url, s.size, s.sample_count, s.sha256, s.split "
                "FROM dataset_shards s JOIN datasets d ON d.id = s.dataset_id "
                "ORDER BY d.id, s.position"
            )
        ):
            rows[f"{name}@{version}"].append(shard)
    return packed, rows


def _assert_consistent(index: Index) -> dict[str, list]:
    packed, rows = _stored(index.backend.engine)
    assert packed == rows
    return packed


def test_every_write_keeps_the_packed_list_equal_to_the_shard_rows(location, tmp_path) -> None:
    from atdata_lite.transfer import export_catalog, import_catalog

    with Index(location) as index:
        REF = index.publish_schema(S)
        shards = [
            ShardRecord("/data/a-0.tar", 10, 1, "a" * 64, "train"),
            ShardRecord("/data/a-1.tar", 20, 2, None, "test"),
        ]
        index.add_shards(shards, name="a", schema_ref=REF)
        index.add_shards(["/data/b.tar"], name="b", schema_ref=REF, metadata={"k": 1})
        index.add_shards([], name="empty", schema_ref=REF)
        assert _assert_consistent(index)["a@1.0.0"] == [
            ["/data/a-0.tar", 10, 1, "a" * 64, "train"],
            ["/data/a-1.tar", 20, 2, None, "test"],
        ]
        # A replaced entry.
        index.add_shards(
            ["/data/b-new.tar", "/data/b-more.tar"], name="b", schema_ref=REF,
            on_conflict="replace",
        )  # fmt: skip
        packed = _assert_consistent(index)
        assert [s[0] for s in packed["b@1.0.0"]] == ["/data/b-new.tar", "/data/b-more.tar"]
        # Relocation rewrites URLs (and CIDs) of several entries in one step.
        index.relocate("/data", "/mnt/data")
        packed = _assert_consistent(index)
        assert packed["a@1.0.0"][0][0] == "/mnt/data/a-0.tar"
        assert index.get_entry(index.get_dataset("a@1.0.0").cid).data_urls == [
            "/mnt/data/a-0.tar",
            "/mnt/data/a-1.tar",
        ]
        # A new version.
        index.add_shards(["/mnt/data/a-2.tar"], name="a", schema_ref=REF, version="next")
        packed = _assert_consistent(index)
        assert packed["a@1.0.1"] == [["/mnt/data/a-2.tar", None, None, None, None]]
        assert index.get_dataset("a").data_urls == ["/mnt/data/a-2.tar"]
        index.rename_dataset("b", "c")
        index.delete_dataset("a", "1.0.1")
        packed = _assert_consistent(index)
        assert sorted(packed) == ["a@1.0.0", "c@1.0.0", "empty@1.0.0"]

        backup = tmp_path / "catalog.backup"
        export_catalog(index, backup)

    target = tmp_path / "imported.db"
    with Index(target) as imported:
        import_catalog(backup, imported)
        assert _assert_consistent(imported) == packed
        assert [e.data_urls for e in imported.list_datasets()] == [
            ["/mnt/data/a-0.tar", "/mnt/data/a-1.tar"],
            ["/mnt/data/b-new.tar", "/mnt/data/b-more.tar"],
            [],
        ]
    assert check_index(target).sound


def test_bulk_insert_packs_every_row(location) -> None:
    backend = open_sql_backend(location)
    try:
        records = [
            record(f"d{i}", urls=tuple(f"u{i}-{k}" for k in range(i % 4))) for i in range(900)
        ]
        backend.insert_datasets(records)
        packed, rows = _stored(backend.engine)
        assert packed == rows and len(packed) == 900
        assert [r.shards for r in backend.iter_datasets()] == [
            r.shards for r in sorted(records, key=lambda r: r.name)
        ]
    finally:
        backend.close()


def _sqlite(path: str, sql: str, *args: object) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(sql, args)
    conn.close()


def test_a_row_without_a_packed_list_is_read_from_its_shard_rows(tmp_path) -> None:
    path = str(tmp_path / "index.db")
    backend = open_sql_backend(path)
    backend.insert_datasets([record("a", urls=("u0", "u1")), record("b")])
    # What a write through the ORM, or by hand, leaves: shard rows and no packed list.
    _sqlite(path, "UPDATE datasets SET packed_shards = NULL WHERE name = 'a'")
    try:
        got = backend.get_dataset_by_cid("bafy-a")
        assert got is not None and got.data_urls == ["u0", "u1"]
        assert got.shards == record("a", urls=("u0", "u1")).shards
        assert backend.get_dataset("a") == got
        assert [r.data_urls for r in backend.iter_datasets()] == [["u0", "u1"], ["u0"]]
    finally:
        backend.close()
    assert check_index(tmp_path / "index.db").sound  # NULL is a valid state


def test_an_unreadable_packed_list_falls_back_to_the_shard_rows_and_is_reported(
    tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    path = str(tmp_path / "index.db")
    backend = open_sql_backend(path)
    backend.insert_datasets([record("a", urls=("u0", "u1")), record("b")])
    _sqlite(path, "UPDATE datasets SET packed_shards = X'C1' WHERE name = 'a'")
    try:
        with caplog.at_level(logging.WARNING):
            listed = list(backend.iter_datasets())
        assert [r.data_urls for r in listed] == [["u0", "u1"], ["u0"]]
        assert "'a'" in caplog.text and "shard rows instead" in caplog.text
        assert backend.get_dataset_by_cid("bafy-a").data_urls == ["u0", "u1"]
    finally:
        backend.close()
    report = check_index(tmp_path / "index.db")
    assert not report.sound
    assert any("'a'" in p and "unreadable" in p for p in report.problems)


@pytest.mark.parametrize(
    "value",
    [
        msgpack.packb([[1, None, None, None, None]]),  # a URL that is a number
        msgpack.packb([["u", "big", None, None, None]]),  # a size that is text
        msgpack.packb([["u", True, None, None, None]]),  # a size that is a bool
        msgpack.packb([["u", 1.5, None, None, None]]),  # a size that is a float
        msgpack.packb([["u", 1, "7", None, None]]),  # a sample count that is text
        msgpack.packb([["u", 1, 7, 12, None]]),  # a sha256 that is a number
        msgpack.packb([["u", 1, 7, "ab", b"train"]]),  # a split that is bytes
        msgpack.packb([["u", None]]) + b"x",  # trailing bytes
        msgpack.packb([["u", 1, 2, 3, 4, 5]]),  # too many fields
        msgpack.packb({"u": 1}),  # not a list
        msgpack.packb(["u"]),  # a shard that is not a list
    ],
)
def test_unpack_refuses_malformed_values(value: bytes) -> None:
    with pytest.raises(ValueError, match="packed shard list"):
        unpack_shards(value)


def test_pack_and_unpack_round_trip() -> None:
    shards = (ShardRecord("s3://b/x.tar", 2**40, 7, "f" * 64, "train"), ShardRecord("y"))
    assert unpack_shards(pack_shards(shards)) == shards
    assert unpack_shards(pack_shards(())) == ()


def test_check_reports_a_packed_list_that_differs_from_the_shard_rows(tmp_path) -> None:
    path = str(tmp_path / "index.db")
    backend = open_sql_backend(path)
    backend.insert_datasets([record("a", urls=("u0", "u1"))])
    backend.close()
    assert check_index(tmp_path / "index.db").sound
    _sqlite(path, "UPDATE dataset_shards SET url = 'elsewhere' WHERE position = 1")
    report = check_index(tmp_path / "index.db")
    assert any("'a'" in p and "differs from its shard rows" in p for p in report.problems)


def test_salvage_drops_a_dataset_that_lost_every_shard_row(tmp_path) -> None:
    from atdata_lite.index.sql._recover import recover_index

    path = tmp_path / "index.db"
    backend = open_sql_backend(str(path))
    backend.insert_datasets([record("a", urls=("u0", "u1")), record("b")])
    backend.close()
    # As if the page holding a's shard rows were lost: the numbering check cannot tell.
    _sqlite(str(path), "PRAGMA foreign_keys=OFF")
    _sqlite(
        str(path),
        "DELETE FROM dataset_shards WHERE dataset_id = (SELECT id FROM datasets WHERE name='a')",
    )
    report = recover_index(path)
    assert report.lost_datasets == ["a"]
    backend = open_sql_backend(str(path))
    try:
        assert [r.name for r in backend.iter_datasets()] == ["b"]
    finally:
        backend.close()
    assert check_index(path).sound


def test_packed_form_hands_over_the_checked_list_and_entries_decode_it_when_read(
    tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    path = str(tmp_path / "index.db")
    sized = (ShardRecord("u0", 10, 2, "f" * 64, "train"), ShardRecord("u1", None, 3, None, "test"))
    with Index(path) as index:
        index.backend.insert_datasets(
            [record("a", urls=("u0", "u1")), record("b", urls=("v0", "v1")), record("c")]
        )
        index.backend.insert_datasets([dataclasses.replace(record("d"), shards=sized)])
    # "a" keeps its packed list; "b" has none (ORM-style); "c" has a damaged one.
    _sqlite(path, "UPDATE datasets SET packed_shards = NULL WHERE name = 'b'")
    _sqlite(path, "UPDATE datasets SET packed_shards = X'C1' WHERE name = 'c'")
    with Index(path) as index:
        handed = {
            item[1]: item[3]
            for item in index.backend.iter_datasets_as(lambda *f: f, shard_fields="packed")
        }
        with caplog.at_level(logging.WARNING):
            entries = {e.name: e for e in index.list_entries()}
            by_cid = {n: index.get_entry(e.cid) for n, e in entries.items()}
    assert type(handed["a"]) is bytes
    assert unpack_shards(handed["a"]) == record("a", urls=("u0", "u1")).shards
    assert handed["b"] == (("v0", 10, 1, None, None), ("v1", 10, 1, None, None))
    assert type(handed["c"]) is tuple  # read from its shard rows, with a warning
    assert "'c'" in caplog.text and "shard rows instead" in caplog.text
    for got in (entries, by_cid):
        assert got["a"].data_urls == ["u0", "u1"] and got["b"].data_urls == ["v0", "v1"]
        assert got["c"].data_urls == record("c").data_urls
        assert got["d"].shards == sized and got["d"].data_urls == ["u0", "u1"]
        assert got["d"].splits == {"train": ["u0"], "test": ["u1"]}
