"""The SQL backend beyond the conformance suite: settings, threads, fork, processes, ORM.

Backend-level tests run on SQLite and on PostgreSQL (``backend_location`` fixture).
"""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from _sql_helpers import record, run_processes

from atdata_lite.errors import DatasetExistsError, IndexOpenError
from atdata_lite.index import open_backend
from atdata_lite.index.backend import DatasetRecord, ShardRecord
from atdata_lite.index.sql import SqlBackend, open_sql_backend
from atdata_lite.index.sql.engine import resolve_location


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend_location(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "index.db")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def backend(backend_location):
    b = open_sql_backend(backend_location)
    yield b
    b.close()


# --- SQLite settings ----------------------------------------------------------------------


def test_sqlite_settings_on_every_connection(tmp_path) -> None:
    b = open_sql_backend(str(tmp_path / "index.db"), busy_timeout=7.5)
    try:
        for _ in range(2):  # a pooled and a second, fresh connection
            with b.engine.connect() as conn:
                pragma = {
                    name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                    for name in ("journal_mode", "foreign_keys", "synchronous", "busy_timeout",
                                 "cache_size")
                }  # fmt: skip
            assert pragma == {
                "journal_mode": "wal",
                "foreign_keys": 1,
                "synchronous": 1,  # NORMAL
                "busy_timeout": 7500,
                "cache_size": -16384,  # KiB: 16 MiB
            }
            b.engine.dispose()
    finally:
        b.close()


def test_writes_begin_immediate_and_reads_do_not_begin(tmp_path) -> None:
    b = open_sql_backend(str(tmp_path / "index.db"))
    seen: list[str] = []
    b._x.connection().set_trace_callback(seen.append)  # this thread's sqlite3 connection
    try:
        b.insert_datasets([record("a")])
        assert seen[0] == "BEGIN IMMEDIATE" and seen[-1] == "COMMIT"
        b.publish_schema("S", None, lambda v: v, "h")
        seen.clear()
        b.get_dataset("a")
        list(b.iter_datasets())
        b.get_schema("S", "1.0.0")
        assert [s.split()[0] for s in seen] == ["SELECT"] * 3
    finally:
        b.close()


def test_backend_connections_have_the_settings(tmp_path) -> None:
    b = open_sql_backend(str(tmp_path / "index.db"), busy_timeout=3)
    try:
        conn = b._x.connection()
        values = [conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("journal_mode",
                  "foreign_keys", "synchronous", "busy_timeout", "cache_size")]  # fmt: skip
        assert values == ["wal", 1, 1, 3000, -16384]
    finally:
        b.close()


def test_lookups_leave_no_read_snapshot_open(tmp_path) -> None:
    # Point reads share one cursor per thread: each must end its statement, or the snapshot
    # it holds would keep every checkpoint from emptying the WAL.
    import sqlite3

    path = tmp_path / "index.db"
    b = open_sql_backend(str(path))
    other = sqlite3.connect(path, timeout=0.2, isolation_level=None)
    try:
        b.insert_datasets([record("a"), record("b")])
        assert b.get_dataset_by_cid_as("bafy-a", lambda *f: f[1]) == "a"
        assert b.get_dataset_as("b", lambda *f: f[1]) == "b"
        assert b.resolve_name_as("a", lambda *f: f[1]) == "a"
        assert b.resolve_name_as("missing", lambda *f: f[1]) is None
        other.execute("UPDATE datasets SET legacy_uuid = 'x'")  # something to checkpoint
        busy, _, _ = other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0
        # What the check catches: a statement stopped before its end holds its snapshot.
        held = b._x.connection().execute("SELECT name FROM datasets")
        held.fetchone()
        other.execute("UPDATE datasets SET legacy_uuid = 'y'")
        assert other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 1
        held.close()
    finally:
        other.close()
        b.close()


def test_engine_transactions_begin_immediate_for_writes(tmp_path) -> None:
    from atdata_lite.index.sql.engine import WRITE

    b = open_sql_backend(str(tmp_path / "index.db"))
    seen: list[str] = []
    sa.event.listen(b.engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
    try:
        with b.engine.execution_options(**{WRITE: True}).begin() as conn:
            conn.exec_driver_sql("SELECT 1")
        with b.engine.begin() as conn:  # the ORM's sessions, for instance
            conn.exec_driver_sql("SELECT 2")
    finally:
        b.close()
    assert seen == ["BEGIN IMMEDIATE", "SELECT 1", "BEGIN", "SELECT 2"]


def test_delete_cascades_to_shards(backend) -> None:
    backend.insert_datasets([record("a", urls=("u0", "u1", "u2")), record("b")])
    backend.delete_dataset("a")
    with backend.engine.connect() as conn:
        count = conn.execute(sa.text("SELECT count(*) FROM dataset_shards")).scalar()
    assert count == 1


# --- URLs, identity, lifecycle ------------------------------------------------------------


def test_postgres_urls_use_psycopg_and_hide_passwords() -> None:
    for url in ("postgresql://u:secret@h/db", "postgres://u:secret@h/db"):
        target = resolve_location(url)
        assert target.kind == "postgresql"
        assert target.url.drivername == "postgresql+psycopg"
        assert "secret" not in target.display and "***" in target.display
    assert resolve_location("postgresql+psycopg://u@h/db").url.drivername == "postgresql+psycopg"


def test_unsupported_sql_url_is_a_clear_error() -> None:
    with pytest.raises(IndexOpenError, match="mysql"):
        resolve_location("mysql://u@h/db")


def test_describe_and_location(backend, backend_location) -> None:
    facts = backend.describe()
    assert facts["kind"] in ("sqlite", "postgresql") and facts["revision"]
    if facts["kind"] == "sqlite":
        assert backend.location == str(Path(backend_location).resolve())


def test_open_backend_routes_paths_and_urls_here(backend_location) -> None:
    b = open_backend(backend_location)
    assert isinstance(b, SqlBackend)
    b.close()


def test_closed_backend_refuses_work(backend_location) -> None:
    b = open_sql_backend(backend_location)
    b.close()
    b.close()
    with pytest.raises(IndexOpenError, match="closed"):
        b.get_dataset("a")
    with pytest.raises(IndexOpenError, match="closed"):
        b.insert_datasets([record("a")])


# --- bulk inserts -------------------------------------------------------------------------


def test_bulk_insert_across_chunks_with_existing_rows(backend) -> None:
    backend.insert_datasets([record(f"d{i:04d}") for i in range(0, 1000, 7)])
    changed = record("d0007", cid="bafy-new-content")
    records = [record(f"d{i:04d}") for i in range(1000)]
    records[7] = changed
    with pytest.raises(DatasetExistsError, match="d0007"):
        backend.insert_datasets(records)
    assert backend.get_dataset("d0001") is None  # all or nothing
    stored = backend.insert_datasets(records, on_conflict="skip")
    assert stored[7].cid == "bafy-d0007"  # skipped: the stored entry comes back
    assert len(list(backend.iter_datasets())) == 1000
    replaced = backend.insert_datasets([changed], on_conflict="replace")[0]
    assert backend.get_dataset("d0007").cid == "bafy-new-content"
    assert replaced.created_at == stored[7].created_at


def test_duplicate_cid_within_one_call(backend) -> None:
    # One call stores each dataset once, whatever the policy (as every backend does).
    for policy in ("error", "skip", "replace"):
        with pytest.raises(ValueError, match="same CID"):
            backend.insert_datasets(
                [record("a", cid="same"), record("b", cid="same")], on_conflict=policy
            )
    assert list(backend.iter_datasets()) == []


def test_auto_versioning_uses_numeric_semver_order(backend) -> None:
    for version in ("1.9.0", "1.10.0", "banana", "2.0"):
        backend.publish_schema("S", version, lambda v: v, f"h-{version}")
    row, created = backend.publish_schema("S", None, lambda v: v, "h-next")
    assert created and row.version == "1.10.1"
    assert [s.version for s in backend.iter_schemas()] == [
        "1.9.0",
        "1.10.0",
        "1.10.1",
        "2.0",
        "banana",
    ]


# --- threads, fork, processes -------------------------------------------------------------


def test_threads_share_one_backend(backend) -> None:
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(40):
                backend.insert_datasets([record(f"t{t}-{i}")])
                assert backend.get_dataset(f"t{t}-{i}") is not None
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(list(backend.iter_datasets())) == 320


@pytest.mark.skipif(not hasattr(multiprocessing, "get_context"), reason="no fork")
def test_usable_in_a_forked_child(backend) -> None:
    backend.insert_datasets([record("parent")])
    assert backend.get_dataset("parent") is not None  # the pool now holds a connection
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()

    def child() -> None:
        try:
            backend.insert_datasets([record("child")])
            queue.put(sorted(r.name for r in backend.iter_datasets()))
        except BaseException as exc:
            queue.put(repr(exc))

    proc = ctx.Process(target=child)
    proc.start()
    result = queue.get(timeout=60)
    proc.join(timeout=60)
    assert result == ["child", "parent"]
    assert proc.exitcode == 0
    # The parent's connections were not disturbed by the child.
    assert sorted(r.name for r in backend.iter_datasets()) == ["child", "parent"]


@pytest.mark.slow
def test_four_processes_by_500_inserts_lose_nothing(backend_location) -> None:
    open_sql_backend(backend_location).close()
    results = run_processes("insert_many", [(backend_location, w, 500) for w in range(4)])
    assert results == [500] * 4
    b = open_sql_backend(backend_location)
    names = [r.name for r in b.iter_datasets()]
    b.close()
    assert names == sorted(f"w{w}-{i:04d}" for w in range(4) for i in range(500))


@pytest.mark.slow
def test_sixteen_concurrent_auto_versioned_publishes(backend_location) -> None:
    open_sql_backend(backend_location).close()
    versions = run_processes("publish_auto", [(backend_location, str(i)) for i in range(16)])
    assert sorted(versions, key=lambda v: tuple(map(int, v.split(".")))) == [
        f"1.0.{i}" for i in range(16)
    ]
    b = open_sql_backend(backend_location)
    rows = list(b.iter_schemas())
    b.close()
    assert len(rows) == 16
    # Each version's record was rendered for that version.
    assert all(json.loads(r.record_json)["version"] == r.version for r in rows)


# --- the hot path and the ORM -------------------------------------------------------------


def test_open_and_lookup_import_no_orm_nor_alembic(tmp_path) -> None:
    path = tmp_path / "index.db"
    b = open_sql_backend(str(path))
    b.insert_datasets([record("a")])
    b.close()
    code = (
        "import sys\n"
        "from atdata_lite.index import open_backend\n"
        f"b = open_backend({str(path)!r})\n"
        "assert b.get_dataset('a') is not None\n"
        "heavy = ('sqlalchemy.orm', 'alembic', 'numpy', 'webdataset', 'fsspec')\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_orm_models_read_what_the_backend_wrote(backend) -> None:
    from sqlalchemy.orm import Session

    from atdata_lite.index.sql.models import Dataset, Schema

    backend.insert_datasets([record("a", urls=("u0", "u1"))])
    backend.publish_schema("S", "1.2.3", lambda v: "{}", "h")
    with Session(backend.engine) as session:
        dataset = session.scalars(sa.select(Dataset)).one()
        assert [s.url for s in dataset.shards] == ["u0", "u1"]
        assert dataset.metadata_ == b"\x80"
        schema = session.scalars(sa.select(Schema)).one()
        assert (schema.semver_major, schema.semver_minor, schema.semver_patch) == (1, 2, 3)
        session.delete(dataset)
        session.commit()
    assert backend.get_dataset("a") is None


def test_memory_location_is_an_in_memory_index_not_a_file(tmp_path, monkeypatch):
    from atdata_lite import Index, packable

    @packable
    class A:
        x: int

    monkeypatch.chdir(tmp_path)
    with Index(":memory:") as index:
        index.add_shards(["/data/a.tar"], name="a", schema_ref=index.publish_schema(A))
        assert [e.name for e in index.list_datasets()] == ["a"]
    assert list(tmp_path.iterdir()) == []  # no file named ":memory:" (nor its lock)


def test_shards_with_and_without_facts_in_one_insert(backend) -> None:
    # Shards that state nothing but their URL are stored as rows of NULL facts, next to
    # shards that state facts, in the same call, for new and replaced entries alike.
    bare, full = ShardRecord("u-bare"), ShardRecord("u-full", 10, 3, "ab" * 32, "train")
    mixed = record("mixed")
    mixed = DatasetRecord(mixed.cid, "mixed", mixed.schema_ref, (bare, full, ShardRecord("u2")))
    only_bare = DatasetRecord("bafy-only-bare", "only-bare", mixed.schema_ref, (bare,))
    backend.insert_datasets([mixed, only_bare, record("facts")])
    replacement = DatasetRecord("bafy-facts-2", "facts", mixed.schema_ref, (full, bare))
    backend.insert_datasets([replacement], on_conflict="replace")
    expected = {
        "mixed": [("u-bare", None, None, None, None), ("u-full", 10, 3, "ab" * 32, "train"),
                  ("u2", None, None, None, None)],
        "only-bare": [("u-bare", None, None, None, None)],
        "facts": [("u-full", 10, 3, "ab" * 32, "train"), ("u-bare", None, None, None, None)],
    }  # fmt: skip
    with backend.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT d.name, s.url, s.size, s.sample_count, s.sha256, s.split FROM "
                "dataset_shards s JOIN datasets d ON d.id = s.dataset_id "
                "ORDER BY d.name, s.position"
            )
        ).all()
    stored: dict[str, list[tuple[object, ...]]] = {}
    for name, *fields in rows:
        stored.setdefault(name, []).append(tuple(fields))
    assert stored == expected
    for name, shards in expected.items():
        record_ = backend.get_dataset(name)
        assert [
            (s.url, s.size, s.sample_count, s.sha256, s.split) for s in record_.shards
        ] == shards
