"""Paths that survive: absolute local paths, store-relative shards, moving data, relocate."""

from __future__ import annotations

import json
import shutil

import pytest
from _cli_helpers import make_cli
from _index_helpers import BACKENDS, Point, open_index

from atdata_lite import Index, load_dataset
from atdata_lite.cid import dataset_cid
from atdata_lite.dataset import Dataset
from atdata_lite.errors import UnsafeURLError
from atdata_lite.shards import write_samples


def _points(n: int) -> list[Point]:
    return [Point(x=i, y=0) for i in range(n)]


def _use_home(monkeypatch, home) -> None:
    for var in ("ATDATA_LITE_INDEX", "ATDATA_LITE_STORE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ATDATA_LITE_HOME", str(home))


@pytest.mark.parametrize("kind", BACKENDS)
def test_relative_paths_are_recorded_absolute(kind, tmp_path, request, monkeypatch):
    work = tmp_path / "work"
    write_samples(_points(4), str(work / "raw" / "x-%02d.tar"), maxcount=2)
    monkeypatch.chdir(work)
    with open_index(kind, tmp_path, request) as index:
        entry = index.insert_dataset(Dataset[Point]("raw/x-{00..01}.tar"), name="x")
        shards = index.add_shards(["raw/x-00.tar"], name="y", schema_ref=entry.schema_ref)
        monkeypatch.chdir(tmp_path)  # somewhere else: the entries still read
        stored = index.get_dataset("x")
        assert stored.data_urls == [str(work / "raw" / f"x-0{i}.tar") for i in range(2)]
        assert stored.recorded_urls == stored.data_urls  # outside the store: as shown
        assert shards.data_urls == [str(work / "raw" / "x-00.tar")]
        assert [p.x for p in Dataset[Point](stored.data_urls)] == [0, 1, 2, 3]


def test_moving_the_data_directory_keeps_every_dataset_readable(tmp_path, monkeypatch):
    old, new = tmp_path / "old-home", tmp_path / "elsewhere" / "home"
    _use_home(monkeypatch, old)
    with Index() as index:
        written = index.write_samples(_points(9), name="pts", maxcount=4)
    shutil.move(str(old), str(new))
    _use_home(monkeypatch, new)
    with Index() as index:
        moved = index.get_dataset("pts")
        assert moved.cid == written.cid  # the CID is over the store-relative URLs
        assert moved.data_urls[0].startswith(str(new / "shards" / "pts") + "/")
        assert moved.shards[0].sha256 == written.shards[0].sha256
    train = load_dataset("@local/pts", split="train")
    assert len(train) == 9 and [p.x for p in train] == list(range(9))
    # The command line agrees: every shard is where the index says, with its facts.
    cli = make_cli(tmp_path, monkeypatch)
    _use_home(monkeypatch, new)
    report = json.loads(cli.ok("--index", str(new / "index.db"), "--json", "verify").stdout)
    assert report["counts"] == {"ok": 3, "mismatch": 0, "missing": 0}


def test_a_store_url_cannot_be_opened_without_its_index():
    with pytest.raises(UnsafeURLError, match="relative to a data store"):
        Dataset[Point]("store://pts/data--x--000000.tar")


@pytest.mark.parametrize("kind", BACKENDS)
def test_relocate_rewrites_prefixes_and_recomputes_cids(kind, tmp_path, request):
    old, new = tmp_path / "disk-a" / "data", tmp_path / "disk-b" / "data"
    write_samples(_points(4), str(old / "p-%02d.tar"), maxcount=2)
    write_samples(_points(1), str(tmp_path / "disk-a" / "database.tar"))  # not under old
    with open_index(kind, tmp_path, request, data_store=tmp_path / "store") as index:
        ref = index.publish_schema(Point)
        before = index.add_shards(
            [str(old / "p-00.tar"), str(old / "p-01.tar")],
            name="p",
            schema_ref=ref,
            metadata={"keep": True},
        )
        index.add_shards([str(tmp_path / "disk-a" / "database.tar")], name="q", schema_ref=ref)
        shutil.move(str(old), str(new))

        plan = index.relocate(str(old), str(new), dry_run=True)
        assert [c.name for c in plan] == ["p"]
        assert plan[0].urls[0] == (str(old / "p-00.tar"), str(new / "p-00.tar"))
        assert index.get_dataset("p").cid == before.cid  # a dry run changes nothing

        (change,) = index.relocate(str(old) + "/", str(new))
        after = index.get_dataset("p")
        assert after.data_urls == [str(new / "p-00.tar"), str(new / "p-01.tar")]
        assert after.cid == change.new_cid == dataset_cid(ref, after.data_urls) != before.cid
        assert after.metadata == {"keep": True} and after.created_at == before.created_at
        assert index.get_entry(after.cid) == after
        with pytest.raises(KeyError):
            index.get_entry(before.cid)
        assert [p.x for p in Dataset[Point](after.data_urls)] == [0, 1, 2, 3]
        assert index.get_dataset("q").data_urls == [str(tmp_path / "disk-a" / "database.tar")]

        # Moving shards into the store: they become store-relative.
        shutil.move(str(new), str(tmp_path / "store" / "moved"))
        (into,) = index.relocate(str(new), str(tmp_path / "store" / "moved"))
        assert into.urls[0][1] == "store://moved/p-00.tar"
        assert index.get_dataset("p").recorded_urls[0] == "store://moved/p-00.tar"


@pytest.mark.parametrize("kind", BACKENDS)
def test_relocate_keeps_each_version_of_a_name(kind, tmp_path, request):
    old, new = tmp_path / "a", tmp_path / "b"
    write_samples(_points(2), str(old / "v1.tar"))
    write_samples(_points(3), str(old / "v2.tar"))
    write_samples(_points(4), str(tmp_path / "elsewhere" / "v3.tar"))
    with open_index(kind, tmp_path, request) as index:
        ref = index.publish_schema(Point)
        v1 = index.add_shards([str(old / "v1.tar")], name="p", schema_ref=ref)
        v2 = index.add_shards([str(old / "v2.tar")], name="p", schema_ref=ref, version="next")
        v3 = index.add_shards(
            [str(tmp_path / "elsewhere" / "v3.tar")], name="p", schema_ref=ref, version="next"
        )
        shutil.move(str(old), str(new))
        changes = index.relocate(str(old), str(new))
        assert sorted(c.old_cid for c in changes) == sorted([v1.cid, v2.cid])
        # each version keeps its own shards; the latest, which did not move, is untouched
        assert index.get_dataset(f"p@{v1.version}").data_urls == [str(new / "v1.tar")]
        assert index.get_dataset(f"p@{v2.version}").data_urls == [str(new / "v2.tar")]
        assert index.get_dataset("p") == v3
        assert len(index.get_dataset(f"p@{v2.version}").shards) == 1


def test_relocate_command(tmp_path, monkeypatch):
    cli = make_cli(tmp_path, monkeypatch)
    old = tmp_path / "old"
    write_samples(_points(2), str(old / "a.tar"))
    with Index(cli.index) as index:
        ref = index.publish_schema(Point)
        index.add_shards([str(old / "a.tar")], name="a", schema_ref=ref)
    dry = cli.ok("relocate", str(old), str(tmp_path / "new"), "--dry-run").stdout
    assert "would relocate a: 1 shard" in dry and "Dry run: nothing was changed" in dry
    assert f"{old}/a.tar -> {tmp_path}/new/a.tar" in dry
    doc = cli.json("relocate", str(old), str(tmp_path / "new"))
    assert doc["dry_run"] is False and doc["datasets"][0]["name"] == "a"
    assert doc["datasets"][0]["shards"] == [
        {"old": str(old / "a.tar"), "new": str(tmp_path / "new" / "a.tar")}
    ]
    assert "nothing to change" in cli.ok("relocate", str(old), str(tmp_path / "new")).stdout
