"""Hostile catalogs and odd input through the command line: ``rm --delete-shards`` deletes
only matching shards inside a store, old names cannot drive the terminal, odd inputs fail
cleanly."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from _cli_helpers import Cli, make_cli

from atdata_lite.cid import dataset_cid
from atdata_lite.index import Index
from atdata_lite.index.backend import DatasetRecord, ShardRecord

# Anything a terminal would act on: C0 (but newline, which separates lines), DEL, C1, and
# the Unicode line separators and bidirectional controls.
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    return make_cli(tmp_path, monkeypatch)


@pytest.fixture
def demo(cli: Cli) -> dict:
    return cli.json("demo", "--samples", "20", "--shard-size", "10")


def store_of(cli: Cli) -> Path:
    return cli.home / "atdata" / "shards"


def facts(path: Path | str, url: str | None = None) -> ShardRecord:
    data = Path(path).read_bytes()
    return ShardRecord(url or str(path), len(data), None, hashlib.sha256(data).hexdigest())


def index_raw(cli: Cli, name: str, schema_ref: str, shards: list[ShardRecord]) -> None:
    """Store an entry as an imported catalog or an old index could hold it: unchecked."""
    with Index(cli.index) as index:
        cid = dataset_cid(schema_ref, [s.url for s in shards])
        index.backend.insert_datasets(
            [DatasetRecord(cid, name, schema_ref, tuple(shards))], on_conflict="error"
        )


# --- rm --delete-shards: only matching shards inside a store ----------------------------------


def test_rm_never_deletes_a_file_outside_every_store(cli: Cli, demo: dict, tmp_path: Path) -> None:
    secret = tmp_path / "victim" / ".ssh" / "id_ed25519"
    secret.parent.mkdir(parents=True)
    secret.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    copied = tmp_path / "victim" / "copy.tar"
    shutil.copy(demo["shards"][0], copied)
    index_raw(cli, "hostile", demo["schema_ref"], [facts(secret), facts(copied)])
    doc = cli.json("rm", "hostile", "--delete-shards", "--yes")
    assert doc["deleted_shards"] == []
    assert [k["url"] for k in doc["kept_shards"]] == [str(secret), str(copied)]
    assert all("outside every store" in k["reason"] for k in doc["kept_shards"])
    assert secret.exists() and copied.exists()
    assert [r["name"] for r in cli.json("ls")] == ["demo"]


def test_rm_text_output_names_each_kept_file_and_why(cli: Cli, demo: dict, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("keep me")
    index_raw(cli, "hostile", demo["schema_ref"], [facts(secret)])
    out = cli.ok("rm", "hostile", "--delete-shards", "--yes").stdout
    assert "kept 1 shard file" in out
    assert f"{secret}: outside every store" in out
    assert secret.exists()


def test_rm_keeps_shards_inside_the_store_that_do_not_match(cli: Cli, demo: dict) -> None:
    store = store_of(cli)
    notes = store / "notes.txt"
    notes.write_text("not a shard")
    changed = Path(demo["shards"][1])
    recorded = facts(changed)
    changed.write_bytes(Path(demo["shards"][0]).read_bytes())  # other bytes since indexed
    no_hash = Path(demo["shards"][0])
    cli.ok("rm", "demo")
    index_raw(
        cli,
        "mixed",
        demo["schema_ref"],
        [facts(notes), recorded, ShardRecord(str(no_hash))],
    )
    doc = cli.json("rm", "mixed", "--delete-shards", "--yes")
    assert doc["deleted_shards"] == []
    reasons = {k["url"]: k["reason"] for k in doc["kept_shards"]}
    assert "not a shard file name" in reasons[str(notes)]
    assert "sha256" in reasons[str(changed)]
    assert "no sha256" in reasons[str(no_hash)]
    assert notes.exists() and changed.exists() and no_hash.exists()


def test_rm_keeps_a_symlink_escape(cli: Cli, demo: dict, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.tar"
    shutil.copy(demo["shards"][0], victim)
    (store_of(cli) / "escape").symlink_to(outside)
    index_raw(
        cli,
        "hostile",
        demo["schema_ref"],
        [facts(victim, str(store_of(cli) / "escape" / "victim.tar"))],
    )
    doc = cli.json("rm", "hostile", "--delete-shards", "--yes")
    assert doc["deleted_shards"] == [] and victim.exists()
    assert "outside every store" in doc["kept_shards"][0]["reason"]


def test_rm_store_option_adds_a_store(cli: Cli, demo: dict, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shard = elsewhere / "a.tar"
    shutil.copy(demo["shards"][0], shard)
    cli.json("add", "outside", str(shard), "--schema", "DemoImage")
    doc = cli.json("rm", "outside", "--delete-shards", "--yes", "--store", str(elsewhere))
    assert doc["deleted_shards"] == [str(shard)] and not shard.exists()


def test_rm_confirmation_lists_only_what_can_be_deleted(
    cli: Cli, demo: dict, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("keep me")
    index_raw(cli, "hostile", demo["schema_ref"], [facts(secret)])
    # Nothing can be deleted: no confirmation is needed, and nothing is deleted.
    doc = cli.json("rm", "hostile", "--delete-shards")
    assert doc["deleted_shards"] == [] and secret.exists()


@pytest.mark.parametrize("spelling", ["file://{p}", "{d}/./{n}", "{d}//{n}", "{d}/{{{n},x}}"])
def test_rm_keeps_a_shard_another_entry_spells_differently(
    cli: Cli, demo: dict, spelling: str
) -> None:
    path = Path(demo["shards"][0])
    other_url = spelling.format(p=path, d=path.parent, n=path.name)
    index_raw(cli, "other", demo["schema_ref"], [ShardRecord(other_url)])
    doc = cli.json("rm", "demo", "--delete-shards", "--yes")
    assert doc["deleted_shards"] == [demo["shards"][1]]
    assert doc["kept_shards"] == [{"url": str(path), "reason": "still used by dataset 'other'"}]
    assert path.exists() and not Path(demo["shards"][1]).exists()


# --- control characters ---------------------------------------------------------------------

EVIL = "evil\x1b[2J\x1b]0;pwned\x07\nfake-row\x9b31m\u202e"


def test_add_and_mv_refuse_names_with_control_characters(cli: Cli, demo: dict) -> None:
    result = cli.fails("add", EVIL, demo["shards"][0], "--schema", "DemoImage")
    assert "control character" in result.stderr
    assert not RAW_CONTROL.search(result.stderr)
    result = cli.fails("mv", "demo", "x\x1b[31m")
    assert "control character" in result.stderr and not RAW_CONTROL.search(result.stderr)
    assert [r["name"] for r in cli.json("ls")] == ["demo"]


def _assert_clean(text: str) -> None:
    assert not RAW_CONTROL.search(text), repr(text)
    assert "fake-row" not in [line.split(" ")[0] for line in text.splitlines()]


def test_old_names_and_urls_are_escaped_in_every_output(cli: Cli, demo: dict) -> None:
    path = Path(demo["shards"][0])
    evil_url = str(path.parent / "sub\x1b[31m") + "/../" + path.name
    index_raw(cli, EVIL, demo["schema_ref"], [ShardRecord(evil_url)])
    for args in (["ls"], ["show", EVIL], ["verify"], ["mv", EVIL, "renamed"]):
        result = cli(*args)
        assert result.exit_code in (0, 1), result
        _assert_clean(result.stdout)
        _assert_clean(result.stderr)
        assert "\\x1b" in result.stdout + result.stderr
    index_raw(cli, EVIL + "2", demo["schema_ref"], [ShardRecord(evil_url + "2")])
    result = cli("rm", EVIL + "2", "--delete-shards", "--yes")
    assert result.exit_code == 0, result
    _assert_clean(result.stdout)
    assert "\\x1b" in result.stdout


def test_json_output_escapes_c1_and_bidi_controls(cli: Cli, demo: dict) -> None:
    index_raw(cli, EVIL, demo["schema_ref"], [ShardRecord("/nowhere/x.tar")])
    result = cli("--json", "ls")
    assert result.exit_code == 0
    assert not RAW_CONTROL.search(result.stdout)
    assert EVIL in [row["name"] for row in json.loads(result.stdout)]


def test_errors_escape_names_and_urls(cli: Cli, demo: dict, tmp_path: Path) -> None:
    index_raw(cli, EVIL, demo["schema_ref"], [ShardRecord("/nowhere/x.tar")])
    result = cli.fails("mv", EVIL, "demo")  # taken: the error names both
    assert not RAW_CONTROL.search(result.stderr), repr(result.stderr)
    missing = str(tmp_path / "no\x1b]0;pwned\x07.tar")
    result = cli.fails("add", "x", missing, "--schema", "DemoImage")
    assert "no\\x1b]0;pwned\\x07.tar" in result.stderr
    assert not RAW_CONTROL.search(result.stderr), repr(result.stderr)


# --- odd input to add -----------------------------------------------------------------------


def test_add_reference_url_is_a_clear_error(cli: Cli, demo: dict) -> None:
    result = cli.fails("add", "x", "reference://x.tar", "--schema", "DemoImage")
    assert "reference" in result.stderr and "bug" not in result.stderr


@pytest.mark.timeout(60)
def test_add_dev_zero_and_a_fifo_are_refused_up_front(cli: Cli, demo: dict, tmp_path: Path) -> None:
    result = cli.fails("add", "x", "/dev/zero", "--schema", "DemoImage")
    assert "not a regular file" in result.stderr
    fifo = tmp_path / "pipe.tar"
    os.mkfifo(fifo)
    result = cli.fails("add", "x", str(fifo), "--schema", "DemoImage")
    assert "not a regular file" in result.stderr
    # listed after a good shard: refused before anything is hashed or indexed
    result = cli.fails("add", "x", demo["shards"][0], str(fifo), "--schema", "DemoImage")
    assert "FIFO" in result.stderr
    assert [r["name"] for r in cli.json("ls")] == ["demo"]


def test_add_counts_one_file_spelled_twice_once(cli: Cli, demo: dict) -> None:
    path = demo["shards"][0]
    cli.ok("rm", "demo")
    doc = cli.json("add", "once", path, f"file://{path}", "--schema", "DemoImage")
    assert [s["url"] for s in doc["shards"]] == [path]


def test_old_schema_names_are_escaped(cli: Cli, demo: dict) -> None:
    from atdata_lite.testing import make_schema_row

    evil = "Evil\x1b[2J\u202e"
    with Index(cli.index) as index:
        index.backend.write_catalog(
            [make_schema_row(evil, "1.0.0"), make_schema_row(evil, "1.0.1", "str")], []
        )
    ref = f"atdata://local/sampleSchema/{evil}@1.0.0"
    for args in (
        ["schemas"],
        ["schema", "show", ref],
        ["schema", "diff", ref, ref.replace("1.0.0", "1.0.1")],
    ):
        result = cli(*args)
        assert result.exit_code == 0, result
        assert not RAW_CONTROL.search(result.stdout), repr(result.stdout)
        assert "\\x1b" in result.stdout
