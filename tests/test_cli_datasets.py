"""The dataset and schema commands, on a dataset written by ``atdata-lite demo``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from _cli_helpers import Cli, fresh_user_env, make_cli

SHA256_HEX = set("0123456789abcdef")


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    return make_cli(tmp_path, monkeypatch)


@pytest.fixture
def demo(cli: Cli) -> dict:
    """A 30-sample, 3-shard demo dataset named ``demo``; returns ``demo --json``."""
    return cli.json("demo", "--samples", "30", "--shard-size", "10")


def shard_paths(doc: dict) -> list[Path]:
    return [Path(url) for url in doc["shards"]]


# --- demo, ls, show --------------------------------------------------------------------


def test_demo_writes_indexes_and_reads_back(cli: Cli, demo: dict) -> None:
    assert demo["name"] == "demo"
    assert demo["samples_written"] == demo["samples_read"] == 30
    assert len(demo["shards"]) == 3
    store = cli.home / "atdata" / "shards"
    assert all(p.is_file() and store in p.parents for p in shard_paths(demo))
    assert demo["schema_ref"].startswith("atdata://local/sampleSchema/DemoImage@")
    assert demo["first_sample"]["image"] == "ndarray shape=(32, 32, 3) dtype=uint8"
    assert demo["replaced_previous"] is False


def test_demo_text_output_says_where_things_are(cli: Cli) -> None:
    out = cli.ok("demo", "--samples", "12", "--shard-size", "5").stdout
    assert "Wrote 12 DemoImage samples" in out
    assert "into 3 shards" in out
    assert str(cli.index) in out
    assert str(cli.home / "atdata" / "shards") in out


def test_demo_rerun_replaces_and_cleans_up(cli: Cli, demo: dict) -> None:
    again = cli.json("demo", "--samples", "20", "--shard-size", "10")
    assert again["replaced_previous"] is True
    assert sorted(again["deleted_previous_shards"]) == sorted(demo["shards"])
    assert not any(p.exists() for p in shard_paths(demo))
    assert all(p.exists() for p in shard_paths(again))
    rows = cli.json("ls")
    assert [(r["name"], r["samples"]) for r in rows] == [("demo", 20)]
    assert cli.json("verify")["ok"] is True


def test_ls(cli: Cli, demo: dict) -> None:
    rows = cli.json("ls")
    assert len(rows) == 1
    row = rows[0]
    assert row["name"] == "demo"
    assert row["cid"] == demo["cid"]
    assert row["shards"] == 3
    assert row["samples"] == 30
    assert row["size"] == sum(p.stat().st_size for p in shard_paths(demo))
    assert row["created_at"]
    lines = cli.ok("ls").stdout.splitlines()
    assert lines[0].split() == ["name", "schema", "shards", "samples", "size", "created"]
    cells = lines[1].split()
    assert cells[0] == "demo"
    assert cells[1].startswith("DemoImage@")
    assert cells[2:4] == ["3", "30"]


def test_ls_on_a_new_default_index(cli: Cli) -> None:
    # A new user's first command: the default location is created, and is empty.
    result = cli("ls", index=False)
    assert result.exit_code == 0, result.stderr
    assert "No datasets yet" in result.stdout
    assert json.loads(cli("--json", "ls", index=False).stdout) == []


def test_read_commands_refuse_a_given_index_path_that_holds_nothing(cli: Cli) -> None:
    # A typo in --index must not silently create (and list) a new empty index.
    for args in (["ls"], ["show", "x"], ["verify"], ["schemas"], ["rm", "x", "--yes"]):
        result = cli.fails(*args, code=1)
        assert f"No index at {cli.index}" in result.stderr and "--index" in result.stderr
        assert not cli.index.exists()
        assert not cli.index.parent.joinpath(cli.index.name + ".lock").exists()
    cli.json("demo", "--samples", "3")  # a command that writes creates it
    assert cli.index.exists()


def test_show_lists_every_shard(cli: Cli, demo: dict) -> None:
    doc = cli.json("show", "demo")
    assert doc["name"] == "demo"
    assert doc["cid"] == demo["cid"]
    assert doc["metadata"] == {"source": "atdata-lite demo", "samples": 30}
    assert [s["url"] for s in doc["shards"]] == demo["shards"]
    for shard, path in zip(doc["shards"], shard_paths(demo), strict=True):
        assert shard["sample_count"] == 10
        assert shard["size"] == path.stat().st_size
        assert len(shard["sha256"]) == 64 and set(shard["sha256"]) <= SHA256_HEX
    # Paths inside the store are shown relative to it; the store line says where it is.
    out = cli.ok("show", "demo").stdout
    store = str(cli.home / "atdata" / "shards")
    assert f"store:    {store}\n" in out
    for url in demo["shards"]:
        assert url not in out
        assert f"  {url[len(store) + 1 :]}  " in out
    assert demo["cid"] in out
    wide = cli.ok("show", "demo", "--wide").stdout
    for url in demo["shards"]:
        assert url in wide


def test_unknown_dataset_is_one_line_exit_1(cli: Cli, demo: dict) -> None:
    for args in (["show", "nope"], ["verify", "nope"], ["preview", "nope"], ["rm", "nope"]):
        assert "nope" in cli.fails(*args).stderr
    assert "nope" in cli.fails("mv", "nope", "other").stderr


def test_unknown_dataset_suggests_a_close_name(cli: Cli, demo: dict) -> None:
    err = cli.fails("show", "dmeo").stderr
    assert "did you mean 'demo'?" in err.lower() and "atdata-lite ls" in err


# --- verify -----------------------------------------------------------------------------


def test_verify_ok(cli: Cli, demo: dict) -> None:
    doc = cli.json("verify")
    assert doc["ok"] is True
    assert doc["counts"] == {"ok": 3, "mismatch": 0, "missing": 0}
    assert [s["url"] for s in doc["shards"]] == demo["shards"]
    out = cli.ok("verify", "demo").stdout
    assert "3 shards: 3 ok, 0 mismatch, 0 missing" in out


def _verify_fails(cli: Cli) -> dict:
    result = cli("--json", "verify", "demo")
    assert result.exit_code == 1, result.stderr
    doc = json.loads(result.stdout)
    assert doc["ok"] is False
    return doc


def test_verify_corrupt_shard(cli: Cli, demo: dict) -> None:
    path = shard_paths(demo)[1]
    data = bytearray(path.read_bytes())
    data[700] ^= 0xFF  # same size, different bytes: only the hash can tell
    path.write_bytes(bytes(data))
    doc = _verify_fails(cli)
    statuses = [s["status"] for s in doc["shards"]]
    assert statuses == ["ok", "mismatch", "ok"]
    assert any("sha256" in p or "unreadable" in p for p in doc["shards"][1]["problems"])
    text = cli("verify")
    assert text.exit_code == 1
    assert "mismatch" in text.stdout


def test_verify_truncated_shard(cli: Cli, demo: dict) -> None:
    path = shard_paths(demo)[0]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    doc = _verify_fails(cli)
    assert doc["counts"] == {"ok": 2, "mismatch": 1, "missing": 0}
    assert doc["shards"][0]["status"] == "mismatch"


def test_verify_missing_shard(cli: Cli, demo: dict) -> None:
    shard_paths(demo)[2].unlink()
    doc = _verify_fails(cli)
    assert doc["counts"] == {"ok": 2, "mismatch": 0, "missing": 1}
    assert doc["shards"][2]["status"] == "missing"
    assert "1 missing" in cli("verify").stdout


# --- preview ----------------------------------------------------------------------------


def test_preview(cli: Cli, demo: dict) -> None:
    samples = cli.json("preview", "demo", "-n", "2")
    assert len(samples) == 2
    for sample in samples:
        assert sample["image"] == "ndarray shape=(32, 32, 3) dtype=uint8"
        assert isinstance(sample["label"], str)
        assert isinstance(sample["score"], float)
    assert samples[0]["label"] == demo["first_sample"]["label"]
    out = cli.ok("preview", "demo").stdout
    assert out.count("ndarray shape=(32, 32, 3) dtype=uint8") == 5


def test_preview_of_missing_shard_fails_cleanly(cli: Cli, demo: dict) -> None:
    for path in shard_paths(demo):
        path.unlink()
    assert cli.fails("preview", "demo").stderr.startswith("Error: ")


# --- add / mv / rm ----------------------------------------------------------------------


def test_add_counts_and_hashes(cli: Cli, demo: dict) -> None:
    first, second, _ = demo["shards"]
    doc = cli.json("add", "pair", first, second, "--schema", "DemoImage")
    assert doc["name"] == "pair"
    assert doc["samples"] == 20
    assert doc["schema_ref"] == demo["schema_ref"]
    assert [s["url"] for s in doc["shards"]] == [first, second]
    shown = cli.json("show", "demo")["shards"]
    assert doc["shards"] == shown[:2]  # same facts as the writer recorded


def test_add_brace_pattern_and_glob(cli: Cli, demo: dict) -> None:
    paths = shard_paths(demo)
    directory = paths[0].parent
    braces = f"{directory}/{{{paths[2].name},{paths[0].name}}}"
    doc = cli.json("add", "two", braces, "--schema", "DemoImage")
    assert [s["url"] for s in doc["shards"]] == [str(paths[2]), str(paths[0])]
    cli.ok("rm", "two")
    cli.ok("rm", "demo")  # the same shards cannot be indexed twice under two names
    glob = cli.json("add", "all", str(directory / "*.tar"), "--schema", demo["schema_ref"])
    assert glob["shard_count"] == 3 and glob["samples"] == 30
    assert sorted(s["url"] for s in glob["shards"]) == sorted(demo["shards"])


def test_add_errors(cli: Cli, demo: dict, tmp_path: Path) -> None:
    shard = demo["shards"][0]
    assert (
        "missing.tar"
        in cli.fails("add", "x", str(tmp_path / "missing.tar"), "--schema", "DemoImage").stderr
    )
    bad_ref = cli("add", "x", shard, "--schema", "foo://nope")
    assert bad_ref.exit_code == 2 and "--schema" in bad_ref.stderr
    assert "Nope" in cli.fails("add", "x", shard, "--schema", "Nope@1.0.0").stderr
    not_a_shard = tmp_path / "junk.tar"
    not_a_shard.write_bytes(b"this is not a tar file" * 40)
    assert cli.fails("add", "x", str(not_a_shard), "--schema", "DemoImage").stderr
    # nothing was added by the failures
    assert [r["name"] for r in cli.json("ls")] == ["demo"]
    # the same shards under another name are refused, naming the existing entry
    assert (
        "demo" in cli.fails("add", "copy", *demo["shards"], "--schema", demo["schema_ref"]).stderr
    )


def test_mv(cli: Cli, demo: dict) -> None:
    assert cli.json("mv", "demo", "pictures") == {
        "old": "demo",
        "new": "pictures",
        "cid": demo["cid"],
    }
    assert [r["name"] for r in cli.json("ls")] == ["pictures"]
    cli.json("demo", "--samples", "5")
    assert "pictures" in cli.fails("mv", "demo", "pictures").stderr


def test_rm_keeps_shards_by_default(cli: Cli, demo: dict) -> None:
    assert cli.ok("rm", "demo").stdout.strip() == "removed demo"
    assert cli.json("ls") == []
    assert all(p.exists() for p in shard_paths(demo))


def test_rm_delete_shards_needs_confirmation(cli: Cli, demo: dict) -> None:
    result = cli.fails("rm", "demo", "--delete-shards")
    assert "--yes" in result.stderr
    assert [r["name"] for r in cli.json("ls")] == ["demo"]
    assert all(p.exists() for p in shard_paths(demo))


def test_rm_delete_shards_spares_shared_ones(cli: Cli, demo: dict) -> None:
    shared = demo["shards"][2]
    cli.json("add", "last", shared, "--schema", "DemoImage")
    doc = cli.json("rm", "demo", "--delete-shards", "--yes")
    assert sorted(doc["deleted_shards"]) == sorted(demo["shards"][:2])
    assert doc["kept_shards"] == [{"url": shared, "reason": "still used by dataset 'last'"}]
    assert [p.exists() for p in shard_paths(demo)] == [False, False, True]
    assert [r["name"] for r in cli.json("ls")] == ["last"]
    assert cli.json("verify")["ok"] is True


def test_rm_says_which_shards_were_already_missing(cli: Cli, demo: dict) -> None:
    gone = shard_paths(demo)[0]
    gone.unlink()
    doc = cli.json("rm", "demo", "--delete-shards", "--yes")
    assert doc["missing_shards"] == [demo["shards"][0]]
    assert sorted(doc["deleted_shards"]) == sorted(demo["shards"][1:])
    assert not any(p.exists() for p in shard_paths(demo))
    cli.json("demo", "--samples", "3")
    Path(cli.json("show", "demo")["shards"][0]["url"]).unlink()
    out = cli.ok("rm", "demo", "--delete-shards", "--yes").stdout.splitlines()
    assert out == ["removed demo", "1 shard file already missing"]


# --- schemas ----------------------------------------------------------------------------


def test_schemas_and_schema_show(cli: Cli, demo: dict) -> None:
    records = cli.json("schemas")
    assert [(r["name"], r["$ref"]) for r in records] == [("DemoImage", demo["schema_ref"])]
    shown = cli.json("schema", "show", demo["schema_ref"])
    assert [f["name"] for f in shown["fields"]] == ["image", "label", "score"]
    assert cli.json("schema", "show", "DemoImage") == shown
    version = shown["version"]
    assert cli.json("schema", "show", f"DemoImage@{version}") == shown
    out = cli.ok("schema", "show", "DemoImage").stdout
    assert "ndarray[uint8]" in out
    assert "DemoImage" in cli.ok("schemas").stdout


def test_schema_errors(cli: Cli, demo: dict) -> None:
    for bad in ("foo://bar", "atdata://local/sampleSchema/DemoImage", "not a ref"):
        result = cli("schema", "show", bad)
        assert result.exit_code == 2, (bad, result.stderr)
        assert result.stdout == ""
    assert "Nope" in cli.fails("schema", "show", "Nope@1.0.0").stderr
    assert "Nope" in cli.fails("schema", "show", "Nope").stderr


def test_schema_diff(cli: Cli, demo: dict) -> None:
    from dataclasses import make_dataclass

    import numpy as np
    from numpy.typing import NDArray

    from atdata_lite import Index, packable

    newer = packable(
        make_dataclass(
            "DemoImage",
            [("image", NDArray[np.uint8]), ("label", int), ("weight", float)],
            namespace={"__doc__": "Changed.", "__module__": "atdata_lite.cli._demo_sample"},
        )
    )
    with Index(str(cli.index)) as index:
        new_ref = index.publish_schema(newer)
    doc = cli.json("schema", "diff", demo["schema_ref"], new_ref)
    assert doc["identical"] is False
    assert doc["added"] == [{"name": "weight", "type": "float"}]
    assert doc["removed"] == [{"name": "score", "type": "float"}]
    assert doc["changed"] == [{"name": "label", "a": "str", "b": "int"}]
    out = cli.ok("schema", "diff", demo["schema_ref"], new_ref).stdout.splitlines()
    assert "+ weight: float" in out and "- score: float" in out and "~ label: str -> int" in out
    same = cli.json("schema", "diff", demo["schema_ref"], demo["schema_ref"])
    assert same["identical"] is True
    assert "no differences" in cli.ok("schema", "diff", "DemoImage", "DemoImage").stdout


# --- a new user, through the real console script ----------------------------------------


def test_new_user_demo_then_ls_show_verify_rm(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = fresh_user_env(home)
    exe = str(Path(sys.executable).with_name("atdata-lite"))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [exe, *args], env=env, cwd=tmp_path, capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        assert proc.stderr == "", proc.stderr
        return proc

    out = run("demo").stdout
    data_dir = home / ".local" / "share" / "atdata-lite"
    assert str(data_dir / "index.db") in out
    assert (data_dir / "index.db").is_file()
    assert "demo" in run("ls").stdout
    shown = json.loads(run("--json", "show", "demo").stdout)
    assert shown["samples"] == 300
    shards = [Path(s["url"]) for s in shown["shards"]]
    assert shards and all(data_dir / "shards" in p.parents and p.is_file() for p in shards)
    assert "0 mismatch, 0 missing" in run("verify").stdout
    run("rm", "demo", "--delete-shards", "--yes")
    assert not any(p.exists() for p in shards)
    assert json.loads(run("--json", "ls").stdout) == []


def test_verify_brace_pattern_entry(cli: Cli, demo: dict) -> None:
    """atdata entries may hold one brace pattern as their URL: each file it names is checked."""
    from atdata_lite import Index

    paths = shard_paths(demo)
    stem = paths[0].name[: -len("000000.tar")]
    pattern = f"{paths[0].parent}/{stem}{{000000..000002}}.tar"
    with Index(str(cli.index)) as index:
        index.add_shards([pattern], name="legacy", schema_ref=demo["schema_ref"])
    doc = cli.json("verify", "legacy")
    assert doc["shards"][0]["status"] == "ok"
    assert "nothing recorded" in doc["shards"][0]["problems"][0]
    paths[1].unlink()
    result = cli("--json", "verify", "legacy")
    assert result.exit_code == 1
    shard = json.loads(result.stdout)["shards"][0]
    assert shard["status"] == "missing"
    assert str(paths[1]) in shard["problems"][0]


def test_json_flag_works_before_or_after_the_command(cli: Cli, demo: dict) -> None:
    after = json.loads(cli.ok("ls", "--json").stdout)
    assert after == cli.json("ls")


@pytest.mark.s3
def test_demo_verify_rm_with_an_s3_store(
    tmp_path: Path, s3_endpoint: str, s3_bucket: tuple[str, dict]
) -> None:
    """The default store can be any fsspec URL; shards are written, verified and deleted there."""
    import os

    import s3fs

    endpoint = s3_endpoint
    bucket_url, options = s3_bucket
    fs = s3fs.S3FileSystem(**options)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATDATA_LITE_")}
    env.update(
        ATDATA_LITE_HOME=str(tmp_path),
        ATDATA_LITE_STORE=f"{bucket_url}/datasets",
        # fsspec reads FSSPEC_<PROTOCOL>_<ARG> into the filesystem's arguments
        FSSPEC_S3_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    exe = str(Path(sys.executable).with_name("atdata-lite"))

    def run(*args: str) -> str:
        proc = subprocess.run([exe, *args], env=env, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, (args, proc.stderr)
        return proc.stdout

    doc = json.loads(run("--json", "demo", "--samples", "6", "--shard-size", "3"))
    assert all(url.startswith(f"{bucket_url}/datasets/demo/") for url in doc["shards"])
    assert all(fs.exists(url) for url in doc["shards"])
    assert json.loads(run("--json", "verify"))["ok"] is True
    run("rm", "demo", "--delete-shards", "--yes")
    assert not any(fs.exists(url) for url in doc["shards"])


def test_add_metadata_and_on_conflict(cli: Cli, demo: dict) -> None:
    first, second, third = demo["shards"]
    doc = cli.json("add", "part", first, "--schema", "DemoImage", "--metadata", '{"split": "a"}')
    assert doc["metadata"] == {"split": "a"}
    assert "part" in cli.fails("add", "part", second, "--schema", "DemoImage").stderr
    replaced = cli.json("add", "part", second, "--schema", "DemoImage", "--on-conflict", "replace")
    assert [s["url"] for s in replaced["shards"]] == [second]
    kept = cli.json("add", "part", third, "--schema", "DemoImage", "--on-conflict", "skip")
    assert [s["url"] for s in kept["shards"]] == [second]
    for bad in ("{not json", "[1, 2]"):
        result = cli("add", "x", third, "--schema", "DemoImage", "--metadata", bad)
        assert result.exit_code == 2 and "--metadata" in result.stderr


def test_demo_never_replaces_a_dataset_it_did_not_write(cli: Cli, demo: dict, tmp_path: Path):
    # `demo --name X` on a user's own dataset X must not replace it and delete its shards.
    own = tmp_path / "own"
    own.mkdir()
    for path in shard_paths(demo):
        (own / path.name).write_bytes(path.read_bytes())
    cli.json("add", "train", str(own / "*.tar"), "--schema", "DemoImage")
    before = cli.json("show", "train")
    error = cli.fails("demo", "--name", "train").stderr
    assert "train" in error and "atdata-lite rm train" in error
    assert cli.json("show", "train") == before
    assert sorted(p.name for p in own.iterdir()) == sorted(p.name for p in shard_paths(demo))
    # its own earlier runs are still replaced
    assert cli.json("demo", "--samples", "5")["replaced_previous"] is True


def test_demo_bad_name_is_a_usage_error(cli: Cli) -> None:
    result = cli.fails("demo", "--name", "my demo", code=2)
    assert "--name" in result.stderr and "Invalid prefix" not in result.stderr
    assert not cli.index.exists()  # refused before the index was opened


def test_one_shard_is_said_in_the_singular(cli: Cli) -> None:
    assert "into 1 shard, " in cli.ok("demo", "--samples", "3").stdout
    shard = cli.json("show", "demo")["shards"][0]["url"]
    cli.ok("rm", "demo")
    cli.json("add", "one", shard, "--schema", "DemoImage")
    out = cli.ok("rm", "one", "--delete-shards", "--yes").stdout
    assert out.splitlines() == ["removed one", "deleted 1 shard file"]


def test_rm_reports_exactly_which_shard_deletions_failed(
    cli: Cli, demo: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    import atdata_lite.deletion

    real = atdata_lite.deletion._remove
    bad = demo["shards"][1]

    def flaky(fs, path):
        if path == bad:
            raise PermissionError(13, "Permission denied", bad)
        return real(fs, path)

    monkeypatch.setattr(atdata_lite.deletion, "_remove", flaky)
    result = cli("--json", "rm", "demo", "--delete-shards", "--yes")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert sorted(doc["deleted_shards"]) == sorted([demo["shards"][0], demo["shards"][2]])
    assert [f["urls"] for f in doc["failed"]] == [bad]
    assert [p.exists() for p in shard_paths(demo)] == [False, True, False]
    assert bad in result.stderr and demo["shards"][0] not in result.stderr


def test_verify_checks_a_name_given_twice_once(cli: Cli, demo: dict) -> None:
    doc = cli.json("verify", "demo", "demo")
    assert [s["url"] for s in doc["shards"]] == demo["shards"]
    assert "1 dataset, 3 shards: 3 ok" in cli.ok("verify", "demo", "demo").stdout
