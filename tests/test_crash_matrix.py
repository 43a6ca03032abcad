"""Kill -9 at random points in writes, inserts, migrations (backup included) and imports.

After every kill: ``PRAGMA integrity_check`` is ok, every entry's shards exist whole with
their recorded size and sha256, no file under a final shard or backup name is partial, and
running the job again succeeds. The short matrix runs every time; set
``ATDATA_LITE_LONG_TESTS=1`` for the long one.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from _sql_helpers import REV1, copy_rev1, record

from atdata_lite.index.sql import HEAD_REVISION, current_revision, open_sql_backend
from atdata_lite.index.sql._backups import list_backups

pytestmark = pytest.mark.slow  # processes killed at random points, many times

CHILD = Path(__file__).with_name("_crash_child.py")
LONG = os.environ.get("ATDATA_LITE_LONG_TESTS") == "1"
# Kills per job: 21 in the short matrix (about a minute on a loaded 2-core machine).
KILLS = {"write": 10, "migrate": 6, "import": 5}
if LONG:
    KILLS = {job: 10 * n for job, n in KILLS.items()}


def _run_child(args: list[str], delay: float | None) -> None:
    """Start the child; kill it ``delay`` s after it is ready (``None``: let it finish)."""
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.strip() == "ready", (line, proc.stderr.read())
        if delay is None:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            return
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_sound(index: Path, store: Path | None) -> None:
    conn = sqlite3.connect(index)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()
    for backup in list_backups(index):  # a file named like a backup is a whole database
        conn = sqlite3.connect(f"{backup.as_uri()}?mode=ro", uri=True)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)], backup
        finally:
            conn.close()
    if store is None:
        return
    backend = open_sql_backend(str(index))
    try:
        named = set()
        for entry in backend.iter_datasets():
            for shard in entry.shards:
                path = Path(shard.url)
                named.add(path)
                assert path.stat().st_size == shard.size, shard
                assert _sha256(path) == shard.sha256, shard
    finally:
        backend.close()
    for path in store.rglob("*.tar"):  # final names only: temporaries start with "."
        with tarfile.open(path) as tar:  # a partial tar raises here
            assert tar.getmembers(), path


def test_kill_during_write_and_insert(tmp_path) -> None:
    index, store = tmp_path / "index.db", tmp_path / "store"
    open_sql_backend(str(index)).close()
    rng = random.Random(9)
    for _ in range(KILLS["write"]):
        _run_child(["write", str(index), str(store)], rng.uniform(0.0, 1.5))
        _assert_sound(index, store)
    _run_child(["write", str(index), str(store), "--once"], None)
    _assert_sound(index, store)


def test_kill_during_migration_and_its_backup(tmp_path) -> None:
    rng = random.Random(7)
    for i in range(KILLS["migrate"]):
        folder = tmp_path / f"m{i}"
        folder.mkdir()
        index = copy_rev1(folder)
        _run_child(["migrate", str(index), "-"], rng.uniform(0.0, 0.4))
        _assert_sound(index, None)
        assert current_revision(index) in (REV1, HEAD_REVISION)
        _run_child(["migrate", str(index), "-"], None)  # the re-run succeeds
        assert current_revision(index) == HEAD_REVISION
        _assert_sound(index, None)
        shutil.rmtree(folder)


def test_kill_during_import(tmp_path) -> None:
    from atdata_lite.transfer import export_catalog

    source_index = tmp_path / "source.db"
    backend = open_sql_backend(str(source_index))
    backend.insert_datasets(
        [record(f"imp-{i:05d}", urls=(f"/nowhere/{i}.tar",)) for i in range(3000)]
    )
    backend.close()
    from atdata_lite import Index

    with Index(source_index) as source:
        export_catalog(source, tmp_path / "catalog.json")
    rng = random.Random(5)
    for i in range(KILLS["import"]):
        index = tmp_path / f"target-{i}.db"
        open_sql_backend(str(index)).close()
        _run_child(
            ["import", str(index), "-", str(tmp_path / "catalog.json")], rng.uniform(0.0, 1.5)
        )
        _assert_sound(index, None)
        conn = sqlite3.connect(index)
        count = conn.execute("SELECT count(*) FROM datasets").fetchone()[0]
        conn.close()
        assert count in (0, 3000)  # one transaction: all or nothing
        _run_child(["import", str(index), "-", str(tmp_path / "catalog.json")], None)
        _assert_sound(index, None)
