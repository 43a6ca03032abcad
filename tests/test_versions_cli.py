"""``atdata-lite log``, ``tag``, ``rm NAME@VERSION`` and ``gc`` (with a concurrent writer)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _cli_helpers import Cli, make_cli

from atdata_lite import Index


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    return make_cli(tmp_path, monkeypatch)


def _versions(cli: Cli) -> None:
    with Index(cli.index) as index:
        ref = index.publish_schema(_Point)
        index.add_shards(["/d/a.tar"], name="mnist", schema_ref=ref, version="1.0.0")
        index.add_shards(["/d/b.tar"], name="mnist", schema_ref=ref, version="2.0.0")
        index.add_shards(["/d/c.tar"], name="mnist", schema_ref=ref, version="0.9.0")


from atdata_lite import packable  # noqa: E402


@packable
class _Point:
    x: int


def test_log_tag_untag_and_rm_one_version(cli: Cli) -> None:
    _versions(cli)
    doc = cli.json("log", "mnist")
    assert [v["version"] for v in doc["versions"]] == ["2.0.0", "1.0.0", "0.9.0"]
    assert doc["versions"][0]["latest"] is True  # highest, not the last inserted (0.9.0)
    assert cli.json("tag", "mnist@1.0.0", "stable")["version"] == "1.0.0"
    doc = cli.json("log", "mnist")
    assert doc["versions"][1]["labels"] == ["mnist:stable"]
    with Index(cli.index) as index:
        assert index.get_dataset("mnist:stable").data_urls == ["/d/a.tar"]
    text = cli.ok("log", "mnist").stdout
    assert "2.0.0 (latest)" in text and "mnist:stable" in text
    cli.ok("untag", "mnist:stable")
    cli.fails("untag", "mnist:stable")
    cli.ok("rm", "mnist@2.0.0")
    assert [v["version"] for v in cli.json("log", "mnist")["versions"]] == ["1.0.0", "0.9.0"]
    cli.ok("rm", "mnist")
    cli.fails("log", "mnist")


def _orphan(path: Path, age: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * 1024)
    old = time.time() - age
    os.utime(path, (old, old))
    return path


def test_gc_dry_run_then_yes(cli: Cli) -> None:
    demo = cli.json("demo", "--samples", "20", "--shard-size", "10")
    store = cli.home / "atdata" / "shards"
    old = _orphan(store / "left" / "data-000000.tar", 7200)
    young = _orphan(store / "new" / "data-000000.tar", 10)
    dry = cli.json("gc")
    assert dry["dry_run"] is True
    assert [Path(o["url"]) for o in dry["orphans"]] == [old]
    assert dry["total_size"] == 1024 and old.exists()
    done = cli.json("gc", "--yes")
    assert [Path(u) for u in done["deleted"]] == [old]
    assert not old.exists() and young.exists()
    assert all(Path(u).exists() for u in demo["shards"])  # referenced: never collected
    assert [Path(o["url"]) for o in cli.json("gc", "--grace", "0")["orphans"]] == [young]


def test_gc_while_another_process_writes_into_the_store(cli: Cli) -> None:
    store = cli.home / "atdata" / "shards"
    old = _orphan(store / "left" / "data-000000.tar", 7200)
    Index(cli.index).close()  # the index exists before gc first looks
    writer = subprocess.Popen(
        [sys.executable, "-m", "atdata_lite", "--index", str(cli.index), "--json", "demo",
         "--name", "written", "--samples", "400", "--shard-size", "10"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy(),
    )  # fmt: skip
    deleted: list[str] = []
    try:
        while writer.poll() is None:
            deleted += cli.json("gc", "--yes")["deleted"]
        _out, err = writer.communicate(timeout=120)
    finally:
        if writer.poll() is None:
            writer.kill()
    assert writer.returncode == 0, err
    assert [Path(u) for u in deleted] == [old]
    assert cli.json("verify", "written")["ok"] is True
