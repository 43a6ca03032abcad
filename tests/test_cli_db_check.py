"""``atdata-lite db check`` and ``db recover`` on sound, damaged and littered indexes."""

from __future__ import annotations

import os
import random
import sqlite3
import time
from pathlib import Path

import pytest
from _cli_helpers import make_cli
from _sql_helpers import record

from atdata_lite.index.sql import _backups, open_sql_backend
from atdata_lite.index.sql.tables import HEAD_REVISION


@pytest.fixture
def cli(tmp_path, monkeypatch):
    return make_cli(tmp_path, monkeypatch)


def _fill(path: Path, count: int) -> dict[str, list[str]]:
    backend = open_sql_backend(str(path))
    try:
        backend.insert_datasets(
            [
                record(f"ds-{i:04d}", urls=tuple(f"/s/{i}/{j}.tar" for j in range(3)))
                for i in range(count)
            ]
        )
        return {r.name: r.data_urls for r in backend.iter_datasets()}
    finally:
        backend.close()


def _checkpoint(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def _damage_pages(path: Path, pages: list[int], seed: int = 1) -> None:
    rng = random.Random(seed)
    data = bytearray(path.read_bytes())
    size = int.from_bytes(data[16:18], "big")
    for page in pages:
        start = (page - 1) * size + 8  # keep the page header's first bytes: the tree stays
        data[start : start + size - 8] = bytes(rng.randrange(256) for _ in range(size - 8))
    path.write_bytes(bytes(data))


def test_check_reports_a_sound_index_and_its_leftovers(cli, tmp_path) -> None:
    _fill(cli.index, 5)
    store = tmp_path / "store"
    (store / "p").mkdir(parents=True)
    old_temp = store / "p" / f".data-000000.tar.tmp-{'a' * 32}"
    young_temp = store / "p" / f".data-000001.tar.tmp-{'b' * 32}"
    orphan = store / "p" / "data-000009.tar"
    backup_temp = tmp_path / f"index.db.backup-x-20200101T000000000000Z.tmp-{os.getpid()}"
    for f in (old_temp, young_temp, orphan, backup_temp):
        f.write_bytes(b"partial")
    two_hours_ago = time.time() - 7200
    for f in (old_temp, orphan, backup_temp):
        os.utime(f, (two_hours_ago, two_hours_ago))

    doc = cli.json("db", "check", "--store", str(store))
    assert doc["sound"] and doc["integrity"] == ["ok"] and doc["problems"] == []
    kinds = {Path(x["path"]).name: x["kind"] for x in doc["leftovers"]}
    assert kinds == {
        old_temp.name: "temporary",
        young_temp.name: "temporary",
        orphan.name: "orphan shard",
        backup_temp.name: "temporary",
    }
    doc = cli.json("db", "check", "--store", str(store), "--clean", "--grace", "1")
    assert sorted(Path(p).name for p in doc["deleted"]) == sorted([old_temp.name, backup_temp.name])
    assert not old_temp.exists() and not backup_temp.exists()
    assert young_temp.exists() and orphan.exists()  # too young; orphans are only reported
    assert "orphan shard" in cli.ok("db", "check", "--store", str(store)).stdout


def test_damaged_index_is_checked_and_salvaged_keeping_the_damaged_file(cli, tmp_path) -> None:
    original = _fill(cli.index, 300)
    _checkpoint(cli.index)
    pages = os.path.getsize(cli.index) // 4096
    _damage_pages(cli.index, [pages // 2, pages // 2 + 1])
    damaged_bytes = cli.index.read_bytes()

    result = cli("db", "check")
    assert result.exit_code == 1 and "DAMAGED" in result.stdout and "db recover" in result.stdout
    listing = cli("ls")
    assert "bug in atdata-lite" not in listing.stderr

    doc = cli.json("db", "recover", "--yes")
    assert doc["source"] == "salvage"
    assert Path(doc["damaged"]).read_bytes() == damaged_bytes  # kept, unchanged
    assert cli.json("db", "check")["sound"]
    backend = open_sql_backend(str(cli.index))
    try:
        recovered = {r.name: r.data_urls for r in backend.iter_datasets()}
    finally:
        backend.close()
    assert recovered and len(recovered) + len(doc["lost_datasets"]) <= len(original)
    for name, urls in recovered.items():  # whatever came back is whole and right
        assert original[name] == urls


def test_recover_from_the_newest_backup(cli, tmp_path) -> None:
    original = _fill(cli.index, 50)
    _checkpoint(cli.index)
    backup = _backups.backup_sqlite(cli.index, HEAD_REVISION)
    _damage_pages(cli.index, [2, 3, 4])
    doc = cli.json("db", "recover", "--from-backup")
    assert doc["source"] == str(backup) and Path(doc["damaged"]).exists()
    backend = open_sql_backend(str(cli.index))
    try:
        assert {r.name: r.data_urls for r in backend.iter_datasets()} == original
    finally:
        backend.close()
