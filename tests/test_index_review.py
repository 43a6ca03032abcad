"""Edge cases of the index (versions, names, foreign files, locks), each pinned by a test."""

from __future__ import annotations

import pytest
from _index_helpers import BACKENDS, Point, index_on

from atdata_lite.schema import parse_semver


@pytest.fixture(params=BACKENDS)
def any_index(request, tmp_path):
    yield from index_on(request.param, request, tmp_path)


@pytest.mark.parametrize(
    "bad",
    [
        "1.0.0\n",  # `$` matches before a trailing newline
        "1\u0661.0.0",  # a non-ASCII digit (ARABIC-INDIC ONE) matched `\d`
        "1234567890.0.0",  # more digits than the SQL backend's semver columns hold
    ],
)
def test_semver_is_strict(bad):
    with pytest.raises(ValueError, match="Invalid semver format"):
        parse_semver(bad)


def test_publish_refuses_version_with_trailing_newline(any_index):
    with pytest.raises(ValueError, match="Invalid semver format"):
        any_index.publish_schema(Point, version="1.0.0\n")
    assert any_index.list_schemas() == []


def test_publish_refuses_version_too_big_for_auto_versioning(any_index):
    # Accepted before on every backend, but the SQL backend's auto-versioning ignored it
    # (next version 1.0.0) while Redis's went on from it: the backends disagreed.
    with pytest.raises(ValueError, match="Invalid semver format"):
        any_index.publish_schema(Point, version="1234567890.0.0")
    assert any_index.publish_schema(Point).endswith("@1.0.0")


def test_foreign_wal_database_is_left_untouched(tmp_path):
    # A foreign SQLite database in WAL mode whose last commits are still in its -wal file
    # (copied while its writer had the file open). Probing it with a read-write connection
    # checkpointed the WAL into the file and deleted the -wal on close, although the error
    # says the file "was left untouched".
    import hashlib
    import shutil
    import sqlite3

    from atdata_lite.errors import NotAnIndexError
    from atdata_lite.index import Index

    writer = sqlite3.connect(tmp_path / "orig.db", isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("CREATE TABLE t(x)")
    writer.execute("INSERT INTO t VALUES (1)")
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(tmp_path / "orig.db", copy / "f.db")
    shutil.copy(tmp_path / "orig.db-wal", copy / "f.db-wal")
    writer.close()

    def digests():
        return [
            hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None
            for p in (copy / "f.db", copy / "f.db-wal")
        ]

    before = digests()
    with pytest.raises(NotAnIndexError, match="other tables"):
        Index(copy / "f.db")
    assert digests() == before


def test_failed_commit_does_not_leave_the_write_lock_held(tmp_path):
    # A COMMIT that fails (disk full, I/O error; here a deferred foreign key) left the
    # thread's sqlite3 connection inside its transaction: it kept SQLite's write lock, so
    # every other writer waited out its busy timeout, and this thread's next write failed
    # with "cannot start a transaction within a transaction".
    import sqlite3

    from _sql_helpers import record

    from atdata_lite.index.sql import open_sql_backend

    path = tmp_path / "index.db"
    b = open_sql_backend(str(path))
    try:
        with pytest.raises(sqlite3.IntegrityError), b._x.write() as w:
            w.conn.execute("PRAGMA defer_foreign_keys=ON")
            w.conn.execute(
                "INSERT INTO dataset_shards (dataset_id, position, url) VALUES (999, 0, 'x')"
            )
        assert not b._x.connection().in_transaction
        b.insert_datasets([record("a")])  # this thread can write again
        other = sqlite3.connect(path, timeout=0.1, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # and so can another connection
            other.execute("ROLLBACK")
        finally:
            other.close()
    finally:
        b.close()


@pytest.mark.parametrize(
    ("metadata", "where"),
    [({"a": ["\ud800"]}, r"metadata\['a'\]\[0\]"), ({"k\udcff": 1}, r"metadata has the key")],
)
def test_metadata_with_lone_surrogates_is_refused_clearly(tmp_path, metadata, where):
    # msgpack cannot encode such text: a bare UnicodeEncodeError named no place and was no
    # InvalidMetadataError.
    from atdata_lite.dataset import Dataset
    from atdata_lite.errors import InvalidMetadataError
    from atdata_lite.index import Index

    with Index(tmp_path / "index.db") as index:
        with pytest.raises(InvalidMetadataError, match=where):
            index.add_entry(Dataset[Point]("a.tar"), name="a", metadata=metadata)
        assert index.list_datasets() == []


def test_stub_module_name_refuses_a_version_ending_in_newline(tmp_path):
    # A record atdata wrote may carry any version string; "1.0.0\n" passed the check
    # (`$` matches before a final newline) and named a stub file "X_1_0_0\n.pyi".
    from atdata_lite.errors import SchemaDecodeError
    from atdata_lite.index.stubs import StubManager

    stubs = StubManager(tmp_path)
    with pytest.raises(SchemaDecodeError, match="cannot be part"):
        stubs.module_name("X", "1.0.0\n")
    assert stubs.module_name("X", "1.0.0") == "X_1_0_0"


def test_index_takes_atdata_positional_parameters(tmp_path):
    # atdata: Index(redis=None, data_store=None, auto_stubs=False, stub_dir=None, **kwargs);
    # Index(client, store) was a TypeError here (data_store was keyword-only).
    from atdata_lite.index import Index
    from atdata_lite.stores import FsspecDataStore

    store = FsspecDataStore(str(tmp_path / "store"))
    with Index(tmp_path / "index.db", store, False, tmp_path / "stubs") as index:
        assert index.data_store is store
        assert index.stub_dir == tmp_path / "stubs"


def test_backup_round_trip_keeps_updated_at(tmp_path):
    # The backup file holds updated_at, but importing it dropped the value: every restored
    # entry had updated_at == created_at.
    import time

    from atdata_lite.dataset import Dataset
    from atdata_lite.index import Index
    from atdata_lite.transfer import export_catalog, import_catalog

    with Index(tmp_path / "a.db") as a:
        a.add_entry(Dataset[Point]("p.tar"), name="old")
        time.sleep(0.01)
        renamed = a.rename_dataset("old", "new")
        assert renamed.updated_at > renamed.created_at
        export_catalog(a, tmp_path / "backup.json")
    with Index(tmp_path / "b.db") as b:
        import_catalog(tmp_path / "backup.json", b)
        got = b.get_dataset("new")
    assert (got.created_at, got.updated_at) == (renamed.created_at, renamed.updated_at)


@pytest.mark.parametrize("name", ["mod.Name", ""])
def test_publish_refuses_a_name_no_ref_can_name(any_index, name):
    # A ref keeps only the last dotted part of the name: "mod.Name" was stored, and its
    # returned ref then named "Name" (SchemaNotFoundError); "" was stored under a ref that
    # does not even parse.
    from atdata_lite.samples import packable

    @packable
    class Sample:
        a: int

    Sample.__name__ = Sample.__qualname__ = name
    with pytest.raises(ValueError, match="Cannot publish a schema named"):
        any_index.publish_schema(Sample)
    assert any_index.list_schemas() == []


def test_in_memory_index_is_shared_by_threads():
    # SQLAlchemy's default pool for an in-memory database gives each thread its own
    # connection, so each thread saw its own empty database ("no such table: schemas").
    import threading

    from atdata_lite.dataset import Dataset
    from atdata_lite.index import Index

    with Index("sqlite://") as index:
        ref = index.publish_schema(Point)
        errors: list[BaseException] = []

        def work(i: int) -> None:
            try:
                assert index.get_schema(ref)["name"] == "Point"
                index.add_entry(Dataset[Point](f"t{i}.tar"), name=f"t{i}", schema_ref=ref)
                assert len(index.list_datasets()) >= 1
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert sorted(e.name for e in index.list_datasets()) == [f"t{i}" for i in range(8)]
