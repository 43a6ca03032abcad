"""``atdata-lite import`` and ``export``: backup files and atdata's Redis layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _cli_helpers import Cli, make_cli


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    return make_cli(tmp_path, monkeypatch)


@pytest.fixture
def demo(cli: Cli) -> dict:
    return cli.json("demo", "--samples", "10", "--shard-size", "5")


def test_export_file_then_import_into_a_new_index(cli: Cli, demo: dict, tmp_path: Path) -> None:
    backup = tmp_path / "catalog.json"
    doc = cli.json("export", "--to", str(backup))
    assert doc["kind"] == "file" and doc["schemas"] == 1 and doc["datasets"] == 1
    assert backup.is_file()
    # a second export does not overwrite silently
    assert cli.fails("export", "--to", str(backup)).stderr.startswith("Error: ")
    assert (
        "exported 1 schemas and 1 datasets"
        in cli.ok("export", "--to", str(backup), "--overwrite").stdout
    )

    other = tmp_path / "other.db"
    dry = cli.json("import", str(backup), "--into", str(other), "--dry-run")
    assert dry["dry_run"] is True
    assert dry["summary"] == {"imported": 2, "renamed": 0, "skipped": 0, "unchanged": 0}
    assert [(i["kind"], i["name"]) for i in dry["imported"]] == [
        ("schema", demo["schema_ref"].rsplit("/", 1)[1]),
        ("dataset", "demo"),
    ]
    assert not other.exists()  # a dry run writes nothing, not even an empty index

    out = cli.ok("import", str(backup), "--into", str(other)).stdout
    assert out.startswith("imported 2, renamed 0, skipped 0, unchanged 0")
    again = cli.json("import", str(backup), "--into", str(other))
    assert again["summary"] == {"imported": 0, "renamed": 0, "skipped": 0, "unchanged": 2}

    copied = json.loads(cli.ok("--index", str(other), "--json", "show", "demo").stdout)
    original = cli.json("show", "demo")
    assert copied["cid"] == original["cid"]
    assert copied["shards"] == original["shards"]
    assert copied["metadata"] == original["metadata"]


def test_import_errors(cli: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here.json"
    assert "nothing-here.json" in cli.fails("import", str(missing)).stderr
    junk = tmp_path / "junk.json"
    junk.write_text('{"hello": "world"}')
    cli.fails("import", str(junk))
    assert junk.read_text() == '{"hello": "world"}'
    assert cli("export").exit_code == 2  # --to is required: a usage error


@pytest.mark.redis
def test_export_to_redis_and_import_back(
    cli: Cli, demo: dict, redis_url: str, tmp_path: Path
) -> None:
    doc = cli.json("export", "--to", redis_url)
    assert doc["kind"] == "redis"
    assert (doc["schemas"], doc["datasets"]) == (1, 1)
    # The Redis index is usable directly, in atdata's layout.
    shown = json.loads(cli.ok("--index", redis_url, "--json", "show", "demo").stdout)
    assert shown["cid"] == demo["cid"]
    target = tmp_path / "from-redis.db"
    report = cli.json("import", redis_url, "--into", str(target))
    assert report["summary"]["imported"] == 2
    rows = json.loads(cli.ok("--index", str(target), "--json", "ls").stdout)
    assert [(r["name"], r["cid"]) for r in rows] == [("demo", demo["cid"])]


@pytest.mark.redis
def test_import_atdata_redis_fixture(cli: Cli, redis_url: str) -> None:
    """atdata 0.2's own Redis index, moved in by the command line, then looked at."""
    import redis
    from _redis_helpers import fixture_entries, load_fixture

    client = redis.Redis.from_url(redis_url)
    doc = load_fixture(client)
    want = fixture_entries(doc)

    dry = cli.ok("import", redis_url, "--dry-run").stdout
    assert dry.startswith("dry run: would import 6, renamed 0, skipped 0, unchanged 0")
    assert not cli.index.exists()  # a dry run writes nothing, not even an empty index

    report = cli.json("import", redis_url)
    assert report["summary"] == {"imported": 6, "renamed": 0, "skipped": 0, "unchanged": 0}
    rows = cli.json("ls")
    assert {r["cid"] for r in rows} == set(want)
    # atdata recorded no sizes, counts or hashes: shown as unknown, never as 0
    assert all(r["samples"] is None and r["size"] is None for r in rows)
    assert "?" in cli.ok("ls").stdout.splitlines()[1]
    name = rows[0]["name"]
    shown = cli.json("show", name)
    assert shown["shards"] and all(s["sha256"] is None for s in shown["shards"])
    assert cli.json("import", redis_url)["summary"]["unchanged"] == 6
    client.close()
