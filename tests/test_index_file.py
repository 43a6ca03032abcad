"""The SQLite index file under faults: read-only media, corruption, backups, races, disk full."""

from __future__ import annotations

import random
import sqlite3
import stat
from pathlib import Path

import pytest
from _mount_helpers import read_only_bind, small_tmpfs
from _sql_helpers import REV1, copy_rev1, record, run_processes, sqlite_dump

from atdata_lite import Index
from atdata_lite.errors import (
    AtdataLiteError,
    BackendUnavailableError,
    IndexCorruptError,
    IndexDiskFullError,
    IndexOpenError,
    IndexReadOnlyError,
    MigrationError,
)
from atdata_lite.index.sql import HEAD_REVISION, _backups, _probe, open_sql_backend
from atdata_lite.index.sql.engine import check_sqlite_version
from atdata_lite.index.sql.tables import VERSION_TABLE


def _filled(path: Path, count: int = 20) -> list[str]:
    backend = open_sql_backend(str(path))
    try:
        backend.insert_datasets(
            [record(f"ds-{i:03d}", urls=(f"u{i}a", f"u{i}b")) for i in range(count)]
        )
        backend.publish_schema("S", "1.0.0", lambda v: f'{{"v": "{v}"}}', "h" * 64)
        return sorted(r.name for r in backend.iter_datasets())
    finally:
        backend.close()


def _listing(path: Path, **options) -> list[str]:
    backend = open_sql_backend(str(path), **options)
    try:
        return sorted(r.name for r in backend.iter_datasets())
    finally:
        backend.close()


# --- read-only media ------------------------------------------------------------------------


def test_index_on_read_only_mount_is_readable_and_refuses_writes(tmp_path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "index.db"
    names = _filled(path)
    (folder / "index.db.lock").unlink(missing_ok=True)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with read_only_bind(folder):
        backend = open_sql_backend(str(path))
        try:
            assert backend.read_only and backend.describe()["read_only"] is True
            assert sorted(r.name for r in backend.iter_datasets()) == names
            assert backend.get_dataset("ds-003").data_urls == ["u3a", "u3b"]
            assert [s.version for s in backend.iter_schemas()] == ["1.0.0"]
            with pytest.raises(IndexReadOnlyError, match="read-only"):
                backend.insert_datasets([record("new")])
            with pytest.raises(IndexReadOnlyError):
                backend.delete_dataset("ds-001")
        finally:
            backend.close()
        # Through the public API as well.
        with Index(path) as index:
            assert len(list(index.list_datasets())) == len(names)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # nothing written


def test_new_index_on_read_only_mount_is_a_clear_error(tmp_path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    with read_only_bind(folder):
        with pytest.raises(IndexReadOnlyError, match="Choose a writable location"):
            open_sql_backend(str(folder / "index.db"))
        with pytest.raises(IndexReadOnlyError):
            open_sql_backend(str(folder / "sub" / "index.db"))
    assert list(folder.iterdir()) == []


def test_old_index_on_read_only_mount_says_it_needs_an_upgrade(tmp_path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    path = copy_rev1(folder)
    with (
        read_only_bind(folder),
        pytest.raises(IndexReadOnlyError, match=rf"revision {REV1}.*upgrade"),
    ):
        open_sql_backend(str(path))


def test_read_only_flag_writes_nothing_next_to_the_file(tmp_path) -> None:
    path = tmp_path / "index.db"
    names = _filled(path)
    for leftover in tmp_path.glob("index.db?*"):
        leftover.unlink()
    before = path.read_bytes()
    with Index(path, read_only=True) as index:
        assert sorted(e.name for e in index.list_datasets()) == names
        with pytest.raises(IndexReadOnlyError, match="read_only=True"):
            index.backend.insert_datasets([record("new")])
    assert path.read_bytes() == before
    # No lock file, no backup (SQLite's own -wal/-shm for readers may appear).
    assert {p.name for p in tmp_path.iterdir()} - {"index.db-wal", "index.db-shm"} == {"index.db"}
    # An old file is neither backed up nor upgraded.
    old = copy_rev1(tmp_path, "old.db")
    old_bytes = old.read_bytes()
    with pytest.raises(IndexReadOnlyError, match="needs an upgrade"):
        open_sql_backend(str(old), read_only=True)
    assert old.read_bytes() == old_bytes
    assert {p.name for p in tmp_path.glob("old.db?*")} <= {"old.db-wal", "old.db-shm"}
    with pytest.raises(IndexReadOnlyError, match="No index"):
        open_sql_backend(str(tmp_path / "missing.db"), read_only=True)
    assert not (tmp_path / "missing.db").exists()


# --- environment faults when creating ------------------------------------------------------


def test_parent_path_that_is_a_file_is_a_clear_error(tmp_path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("mine")
    with pytest.raises(IndexOpenError, match="is a file, not a directory"):
        open_sql_backend(str(blocker / "sub" / "index.db"))
    assert blocker.read_text() == "mine"


def test_lock_path_that_is_a_directory_is_a_clear_error(tmp_path) -> None:
    (tmp_path / "index.db.lock").mkdir()
    (tmp_path / "index.db.lock" / "keep").write_text("mine")
    with pytest.raises(IndexOpenError, match=r"lock file .* is a directory"):
        open_sql_backend(str(tmp_path / "index.db"))
    assert (tmp_path / "index.db.lock" / "keep").read_text() == "mine"


def test_new_index_file_is_private_to_its_owner(tmp_path) -> None:
    path = tmp_path / "index.db"
    _filled(path, 2)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for sidecar in tmp_path.glob("index.db-*"):
        assert stat.S_IMODE(sidecar.stat().st_mode) == 0o600, sidecar


def test_disk_full_is_a_clear_error_and_the_index_stays_intact(tmp_path) -> None:
    with small_tmpfs(tmp_path / "small", "400k") as folder:
        path = folder / "index.db"
        backend = open_sql_backend(str(path))
        stored: list[str] = []
        try:
            with pytest.raises(IndexDiskFullError, match=r"full|disk"):
                for i in range(10_000):
                    name = f"big-{i:05d}"
                    urls = tuple(f"s3://bucket/{'x' * 200}/{i}/{j}.tar" for j in range(20))
                    backend.insert_datasets([record(name, urls=urls)])
                    stored.append(name)
            assert stored, "the tmpfs filled before the first insert"
        finally:
            backend.close()
        # Free a little space (the WAL), then everything written before is there, intact.
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        conn.close()
        assert _listing(path) == stored


def test_minimum_sqlite_version_is_checked() -> None:
    check_sqlite_version()  # this Python's is fine
    with pytest.raises(BackendUnavailableError, match=r"needs SQLite 3\.35\.0 or newer.*3\.31\.1"):
        check_sqlite_version((3, 31, 1))


# --- corruption ------------------------------------------------------------------------------


def _flip_bits(path: Path, rng: random.Random, count: int) -> None:
    data = bytearray(path.read_bytes())
    for _ in range(count):
        at = rng.randrange(100, len(data))  # past the header: that case is "not SQLite"
        data[at] ^= 1 << rng.randrange(8)
    path.write_bytes(bytes(data))


def _read_everything(path: Path) -> tuple[list, list]:
    backend = open_sql_backend(str(path))
    try:
        records = [(r.name, r.cid, r.data_urls) for r in backend.iter_datasets()]
        for name, _, _ in records:
            backend.get_dataset(name)
        schemas = [(s.name, s.version) for s in backend.iter_schemas()]
        backend.insert_datasets([record("after-damage")])
        return records, schemas
    finally:
        backend.close()


def test_flipped_bits_never_surface_raw_sqlite_errors(tmp_path) -> None:
    pristine = tmp_path / "pristine.db"
    _filled(pristine, 60)
    conn = sqlite3.connect(pristine)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    backup = None
    outcomes = {"corrupt": 0, "read": 0}
    for seed in range(30):
        path = tmp_path / f"index-{seed}.db"
        path.write_bytes(pristine.read_bytes())
        if seed == 0:
            backup = _backups.backup_sqlite(path, HEAD_REVISION)
        _flip_bits(path, random.Random(seed), 8)
        try:
            _read_everything(path)
        except IndexCorruptError as exc:
            outcomes["corrupt"] += 1
            assert str(path) in str(exc) and "db recover" in str(exc)
            if seed == 0:
                assert str(backup) in str(exc)
        except AtdataLiteError:
            outcomes["read"] += 1  # another of our errors (a decoded value out of range, ...)
        else:
            outcomes["read"] += 1
    assert outcomes["corrupt"] > 0, outcomes


# --- backups ---------------------------------------------------------------------------------


def test_failed_backup_leaves_nothing_named_like_a_backup(tmp_path, monkeypatch) -> None:
    path = copy_rev1(tmp_path)
    before = sqlite_dump(path)

    class FailingConnection:
        def __init__(self, conn):
            self._conn = conn

        def backup(self, dest, **kwargs):
            dest.execute("CREATE TABLE half (x)")  # something already written to the target
            raise sqlite3.OperationalError("simulated: disk I/O error")

        def __getattr__(self, name):
            return getattr(self._conn, name)

    real_connect = sqlite3.connect
    monkeypatch.setattr(
        _backups.sqlite3,
        "connect",
        lambda target, *a, **k: (
            FailingConnection(real_connect(target, *a, **k))
            if Path(target) == path
            else real_connect(target, *a, **k)
        ),
    )
    with pytest.raises(MigrationError, match="Could not back up"):
        open_sql_backend(str(path))
    monkeypatch.undo()
    names = {p.name for p in tmp_path.iterdir()} - {"index.db-wal", "index.db-shm"}
    assert names == {"index.db", "index.db.lock"}
    assert sqlite_dump(path) == before


def test_only_the_newest_backups_are_kept(tmp_path) -> None:
    path = tmp_path / "index.db"
    _filled(path, 2)
    made = [_backups.backup_sqlite(path, REV1) for _ in range(_backups.KEEP_BACKUPS + 2)]
    kept = _backups.list_backups(path)
    assert kept == made[::-1][: _backups.KEEP_BACKUPS]
    assert _backups.newest_backup(path) == made[-1]
    for backup in kept:
        assert stat.S_IMODE(backup.stat().st_mode) == 0o600
        conn = sqlite3.connect(backup)
        assert conn.execute("SELECT count(*) FROM datasets").fetchone() == (2,)
        conn.close()
    # A leftover temporary file is never taken for a backup.
    (tmp_path / f"{made[-1].name}9.tmp-123").write_bytes(b"")
    (tmp_path / f"index.db.backup-{REV1}-20990101T000000000000Z.tmp-1").write_bytes(b"")
    assert _backups.list_backups(path) == kept


# --- several processes creating one new index ------------------------------------------------


def test_probe_sees_a_concurrent_creation_whole_or_not_at_all(tmp_path, monkeypatch) -> None:
    """Another process commits the new tables between the probe's two reads."""
    path = tmp_path / "index.db"
    creator = tmp_path / "creator.db"
    _filled(creator, 0)
    # An empty SQLite file in WAL mode: "new" to the probe.
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x)")
    conn.execute("DROP TABLE t")
    conn.commit()
    conn.close()

    def create_now() -> None:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        for (sql,) in sqlite3.connect(creator).execute(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'"
        ):
            other.execute(sql)
        other.execute(f"INSERT INTO {VERSION_TABLE} VALUES (?)", (HEAD_REVISION,))
        other.execute("COMMIT")
        other.close()

    real = _probe.connect_read_only

    class Racing:
        def __init__(self, conn):
            self._conn, self._fired = conn, False

        def execute(self, sql, *args):
            cursor = self._conn.execute(sql, *args)
            if not self._fired and ("sqlite_master" in sql or VERSION_TABLE in sql):
                rows = cursor.fetchall()
                self._fired = True
                create_now()  # commits right after the probe's first read
                return iter(rows)
            return cursor

        def __getattr__(self, name):
            return getattr(self._conn, name)

    monkeypatch.setattr(_probe, "connect_read_only", lambda *a, **k: Racing(real(*a, **k)))
    state = _probe.probe_sqlite(path, 5.0)
    assert state.revision in (None, HEAD_REVISION)


@pytest.mark.slow
def test_many_processes_create_one_new_index_repeatedly(tmp_path) -> None:
    for round_ in range(6):
        path = str(tmp_path / f"index-{round_}.db")
        results = run_processes("open_and_describe", [(path,)] * 10)
        assert results == [(HEAD_REVISION, 0)] * 10


def test_a_damaged_column_name_in_the_schema_is_reported_as_damage(tmp_path) -> None:
    from atdata_lite.errors import IndexCorruptError
    from atdata_lite.index.sql import open_sql_backend

    path = tmp_path / "index.db"
    backend = open_sql_backend(str(path))
    backend.insert_datasets([record("a")])
    backend.close()
    # One flipped byte inside the CREATE TABLE text: the revision is current, a column is not.
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA writable_schema=ON")
    conn.execute(
        "UPDATE sqlite_master SET sql = replace(sql, 'schema_ref VARCHAR', 'schemb_ref VARCHAR') "
        "WHERE name = 'datasets'"
    )
    conn.commit()
    conn.close()
    backend = open_sql_backend(str(path))
    try:
        with pytest.raises(IndexCorruptError, match=r"damaged.*no such column.*db recover"):
            backend.get_dataset_by_cid("bafy-a")
    finally:
        backend.close()
