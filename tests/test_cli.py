"""The command line: app-level behaviour, ``info`` and ``db`` (driven through ``main``)."""

from __future__ import annotations

import importlib.util
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from _cli_helpers import Cli, make_cli

import atdata_lite
from atdata_lite.index.sql import migrate


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    return make_cli(tmp_path, monkeypatch)


def test_version_and_help(cli: Cli) -> None:
    assert cli.ok("--version").stdout.strip() == f"atdata-lite {atdata_lite.__version__}"
    out = cli.ok("--help").stdout
    for command in ("demo", "ls", "show", "verify", "rm", "mv", "add", "preview", "db", "info"):
        assert f"  {command} " in out


def test_unknown_command_is_a_usage_error(cli: Cli) -> None:
    result = cli("frobnicate")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "No such command 'frobnicate'" in result.stderr


def test_info_on_a_new_machine_creates_nothing(cli: Cli) -> None:
    doc = cli.json("info")
    assert doc["versions"]["atdata-lite"] == atdata_lite.__version__
    assert doc["index"]["location"] == str(cli.index)
    assert doc["index"]["status"] == "not created yet"
    assert doc["index"]["head"] == migrate.HEAD_REVISION
    assert doc["default_store"] == str(cli.home / "atdata" / "shards")
    assert {p["scheme"] for p in doc["plugins"]} >= {"sqlite", "postgresql", "redis"}
    assert not cli.index.exists()
    text = cli.ok("info").stdout
    assert str(cli.index) in text
    assert "not created yet" in text
    assert "plugins" in text


def test_info_says_which_driver_a_plugin_lacks(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    plugins = {p["scheme"]: p["status"] for p in cli.json("info")["plugins"]}
    assert plugins["redis"] == plugins["sqlite"] == "ok"  # redis-py is installed here
    monkeypatch.setitem(sys.modules, "redis", None)  # as if it were not
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "redis" else real_find_spec(name, *a),
    )
    plugins = {p["scheme"]: p["status"] for p in cli.json("info")["plugins"]}
    assert plugins["redis"] == "needs: pip install 'atdata-lite[redis]'"
    assert plugins["sqlite"] == "ok"


def test_db_upgrade_then_current(cli: Cli) -> None:
    before = cli.json("db", "current")
    assert before["revision"] is None
    assert before["status"] == "not created yet"
    upgraded = cli.json("db", "upgrade")
    assert upgraded == {
        "location": str(cli.index),
        "from": None,
        "to": migrate.HEAD_REVISION,
        "changed": True,
    }
    assert cli.index.exists()
    after = cli.json("db", "current")
    assert after["revision"] == migrate.HEAD_REVISION
    assert after["status"] == "up to date"
    assert "already at" in cli.ok("db", "upgrade").stdout
    assert "up to date" in cli.ok("db", "current").stdout
    assert cli.json("info")["index"]["revision"] == migrate.HEAD_REVISION


def test_db_history_lists_head(cli: Cli) -> None:
    rows = cli.json("db", "history")
    assert next(r for r in rows if r["head"])["revision"] == migrate.HEAD_REVISION
    assert migrate.HEAD_REVISION in cli.ok("db", "history").stdout


def test_text_file_is_not_an_index(cli: Cli, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    cli.index = notes
    for args in (["db", "current"], ["db", "upgrade"], ["ls"]):
        result = cli.fails(*args)
        assert str(notes) in result.stderr
        assert "not an atdata-lite index" in result.stderr
    assert notes.read_text() == "my notes\n"
    # info reports the problem instead of failing
    assert "not an atdata-lite index" in cli.json("info")["index"]["status"]


def test_foreign_sqlite_file_is_not_an_index(cli: Cli, tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("create table t (x)")
    before = other.read_bytes()
    cli.index = other
    assert "not an atdata-lite index" in cli.fails("ls").stderr
    assert other.read_bytes() == before


def test_debug_shows_the_traceback(cli: Cli, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    cli.index = notes
    result = cli("--debug", "db", "current")
    assert result.exit_code == 1
    assert isinstance(result.exception, atdata_lite.errors.NotAnIndexError)


def test_db_commands_refuse_redis(cli: Cli) -> None:
    cli.index = "redis://127.0.0.1:6379/13"  # type: ignore[assignment]
    assert "SQLite and PostgreSQL" in cli.fails("db", "current").stderr


def test_console_script_runs(tmp_path: Path) -> None:
    """The installed `atdata-lite` script and `python -m atdata_lite` are the same program."""
    exe = Path(sys.executable).with_name("atdata-lite")
    index = tmp_path / "i.db"
    for argv in ([str(exe)], [sys.executable, "-m", "atdata_lite"]):
        proc = subprocess.run(
            [*argv, "--index", str(index), "--json", "db", "current"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["location"] == str(index)
        bad = subprocess.run(
            [*argv, "--index", str(tmp_path), "ls"], capture_output=True, text=True, check=False
        )
        assert bad.returncode == 1
        assert bad.stdout == ""
        assert bad.stderr.startswith("Error: ") and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.postgres
def test_postgres_index(cli: Cli, postgres_url: str) -> None:
    # trust auth ignores the password; the CLI must never print it
    with_password = postgres_url.replace("postgres@", "postgres:s3cret@", 1)
    assert "s3cret" in with_password
    cli.index = with_password  # type: ignore[assignment]
    demo = cli.json("demo", "--samples", "4", "--shard-size", "2")
    assert [r["cid"] for r in cli.json("ls")] == [demo["cid"]]
    current = cli.json("db", "current")
    assert current["revision"] == migrate.HEAD_REVISION
    assert cli.json("verify")["ok"] is True
    for args in (["info"], ["db", "current"], ["demo", "--samples", "2"]):
        out = cli.ok(*args).stdout
        assert "s3cret" not in out and "postgres:***@" in out


def _run_on_terminal(argv: list[str], env: dict[str, str], answer: bytes = b"") -> tuple[str, str]:
    """Run with stdin and stdout on a pseudo-terminal (stderr piped); return (stdout, stderr)."""
    import os
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=subprocess.PIPE, env=env)
    os.close(slave)
    if answer:
        os.write(master, answer)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    proc.wait()
    os.close(master)
    return b"".join(chunks).decode(errors="replace"), stderr


def test_colour_and_prompt_only_on_a_terminal(tmp_path: Path) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("ATDATA_LITE_")}
    env["ATDATA_LITE_HOME"] = str(tmp_path)
    exe = str(Path(sys.executable).with_name("atdata-lite"))
    subprocess.run(
        [exe, "demo", "--samples", "4", "--shard-size", "2"],
        env=env,
        check=True,
        capture_output=True,
    )
    out, err = _run_on_terminal([exe, "verify"], env)
    assert "\x1b[32m" in out  # "ok" in green on a terminal
    assert err == ""  # stderr is a pipe: no progress bar
    piped = subprocess.run([exe, "verify"], env=env, capture_output=True, text=True, check=True)
    assert "\x1b[" not in piped.stdout

    # `rm --delete-shards` asks on a terminal; answering no keeps everything
    out, err = _run_on_terminal([exe, "rm", "demo", "--delete-shards"], env, answer=b"n\n")
    assert "Remove the dataset and delete these files?" in err
    listed = subprocess.run([exe, "--json", "ls"], env=env, capture_output=True, text=True)
    assert [r["name"] for r in json.loads(listed.stdout)] == ["demo"]
    out, err = _run_on_terminal([exe, "rm", "demo", "--delete-shards"], env, answer=b"y\n")
    assert "deleted 2 shard files" in out
    listed = subprocess.run([exe, "--json", "ls"], env=env, capture_output=True, text=True)
    assert json.loads(listed.stdout) == []


def test_closed_stdout_is_not_an_error_message(tmp_path: Path) -> None:
    """`atdata-lite info | head -1`: the reader going away prints no error or traceback."""
    exe = str(Path(sys.executable).with_name("atdata-lite"))
    proc = subprocess.Popen(
        [exe, "--index", str(tmp_path / "i.db"), "info"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the command writes anything
    stderr = proc.stderr.read().decode()
    proc.wait()
    assert stderr == ""
    assert proc.returncode == 1
