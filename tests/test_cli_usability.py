"""The command line speaks command line: schema publish, flags in errors, "did you mean",
tables that fit the terminal, an example in every help text, progress bars with rate and ETA.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import click
import pytest
from _cli_helpers import Cli, make_cli

from atdata_lite._progress import Progress
from atdata_lite.cli import main
from atdata_lite.cli._app import cli_advice
from atdata_lite.cli._output import ellipsize, render_table, short_path


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    return make_cli(tmp_path, monkeypatch)


@pytest.fixture
def demo(cli: Cli) -> dict:
    return cli.json("demo", "--samples", "30", "--shard-size", "10")


# --- schema publish ---------------------------------------------------------------------

TYPES_SOURCE = '''
import numpy as np
from numpy.typing import NDArray
from atdata_lite import packable

@packable
class Photo:
    """A photo and its label."""
    image: NDArray[np.uint8]
    label: int

class NotASample:
    x: int

def helper():
    return 1
'''


@pytest.fixture
def types_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module with a sample type in the working directory; returns its (unique) name."""
    name = f"mytypes_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(TYPES_SOURCE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the loader may add the cwd
    yield name
    sys.modules.pop(name, None)


def test_schema_publish_module_class(cli: Cli, types_module: str) -> None:
    doc = cli.json("schema", "publish", f"{types_module}:Photo")
    assert doc["name"] == "Photo" and doc["version"] == "1.0.0" and doc["created"] is True
    assert doc["fields"] == ["image", "label"]
    assert doc["ref"] == "atdata://local/sampleSchema/Photo@1.0.0"
    # The same fields again: the published version is reused, nothing new is written.
    again = cli.json("schema", "publish", f"{types_module}:Photo")
    assert again["ref"] == doc["ref"] and again["created"] is False
    assert (
        "already published Photo@1.0.0"
        in cli.ok("schema", "publish", f"{types_module}:Photo").stdout
    )
    shown = cli.json("schema", "show", "Photo")
    assert shown["description"] == "A photo and its label."
    assert [f["name"] for f in shown["fields"]] == ["image", "label"]


def test_schema_publish_file_and_version(cli: Cli, types_module: str, tmp_path: Path) -> None:
    path = tmp_path / f"{types_module}.py"
    doc = cli.json("schema", "publish", f"{path}:Photo", "--version", "2.0.0")
    assert doc["version"] == "2.0.0" and doc["created"] is True
    out = cli.ok("schema", "publish", f"{path}:Photo", "--version", "2.1.0").stdout
    assert out.startswith("published Photo@2.1.0 (2 fields)")
    assert [r["version"] for r in cli.json("schemas")] == ["2.0.0", "2.1.0"]
    result = cli("schema", "publish", f"{path}:Photo", "--version", "two")
    assert result.exit_code == 2 and "--version" in result.stderr


def test_schema_publish_bad_specs(cli: Cli, types_module: str) -> None:
    for bad in (types_module, f"{types_module}:", ":Photo", f"{types_module}:1x", "a b:Photo"):
        result = cli("schema", "publish", bad)
        assert result.exit_code == 2, (bad, result.stderr)
        assert "module:Class" in result.stderr and "MODULE:CLASS" in result.stderr
    err = cli.fails("schema", "publish", "no_such_module_xyz:Photo").stderr
    assert "No module named 'no_such_module_xyz'" in err
    err = cli.fails("schema", "publish", f"{types_module}:Phto").stderr
    assert "has no 'Phto'. Did you mean 'Photo'?" in err
    err = cli.fails("schema", "publish", f"{types_module}:helper").stderr
    assert "is a function, not a class" in err
    err = cli.fails("schema", "publish", f"{types_module}:NotASample").stderr
    assert "NotASample" in err
    err = cli.fails("schema", "publish", "missing/types.py:Photo").stderr
    assert "no such Python file" in err
    assert cli.json("schemas") == []  # nothing was published by any of these


def test_schema_publish_module_that_fails_to_import(cli: Cli, tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "broken_types.py").write_text("raise RuntimeError('no GPU here')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    err = cli.fails("schema", "publish", "broken_types:Photo").stderr
    sys.modules.pop("broken_types", None)
    assert "Importing module 'broken_types' failed: RuntimeError: no GPU here" in err


def test_published_schema_is_usable_by_add(cli: Cli, demo: dict, types_module: str) -> None:
    cli.ok("schema", "publish", f"{types_module}:Photo")
    err = cli.fails("add", "x", demo["shards"][0], "--schema", "Phot").stderr
    assert "Did you mean 'Photo'?" in err


# --- errors name flags and suggest names ------------------------------------------------


def test_conflict_advice_names_the_flag(cli: Cli, demo: dict) -> None:
    first, second, _ = demo["shards"]
    cli.ok("add", "part", first, "--schema", "DemoImage")
    err = cli.fails("add", "part", second, "--schema", "DemoImage").stderr
    assert "--on-conflict replace" in err and "--on-conflict skip" in err
    assert "on_conflict" not in err and "'replace'" not in err
    # The same shards under another name: the advice names the command, not the method.
    err = cli.fails("add", "other", first, "--schema", "DemoImage").stderr
    assert "atdata-lite mv" in err and "rename_dataset" not in err


def _command(*params: click.Parameter) -> click.Command:
    return click.Command("x", params=list(params))


def test_cli_advice_translates_only_the_commands_own_options() -> None:
    add = _command(
        click.Option(["--on-conflict"], type=click.Choice(["error", "skip", "replace"])),
        click.Option(["--schema", "schema_ref"]),
    )
    assert (
        cli_advice("Pass on_conflict='replace' or 'skip'.", add)
        == "Pass --on-conflict replace or skip."
    )
    assert cli_advice("pass schema_ref= explicitly", add) == "pass --schema explicitly"
    export = _command(click.Option(["--overwrite"], is_flag=True))
    assert cli_advice("or pass overwrite=True.", export) == "or pass --overwrite."
    # A keyword the command has no option for stays as it is.
    assert cli_advice("pass data_store= to Index()", add) == "pass data_store= to Index()"
    assert cli_advice("delete it (delete_dataset)", None) == "delete it (atdata-lite rm)"


def test_did_you_mean_dataset_names(cli: Cli, demo: dict) -> None:
    for args in (["show", "dmeo"], ["verify", "deom"], ["rm", "Demo"], ["mv", "dem", "x"]):
        err = cli.fails(*args).stderr
        assert "Did you mean 'demo'?" in err, (args, err)
    err = cli.fails("show", "zzzzzz").stderr
    assert "No dataset named 'zzzzzz'" in err and "List them with: atdata-lite ls" in err


def test_did_you_mean_schema_names(cli: Cli, demo: dict) -> None:
    err = cli.fails("schema", "show", "DemoImag").stderr
    assert "Did you mean 'DemoImage'?" in err
    assert "atdata-lite schema publish" in err
    err = cli.fails("schema", "show", "DemoImage@9.9.9").stderr
    assert "No schema DemoImage@9.9.9" in err
    assert "Published versions of DemoImage: DemoImage@1.0.0" in err


# --- tables fit the terminal ------------------------------------------------------------


def test_tables_fit_columns(cli: Cli, demo: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "70")
    for args in (["show", "demo"], ["verify"], ["ls"], ["schemas"]):
        out = cli.ok(*args).stdout
        # Every line but the CID's (an identifier is never cut) fits.
        lines = [line for line in out.splitlines() if not line.startswith("cid:")]
        too_wide = [line for line in lines if len(line) > 70]
        assert not too_wide, (args, too_wide)
    rows = [line for line in cli.ok("show", "demo").stdout.splitlines() if ".tar" in line]
    assert len(rows) == 3 and all("..." in row for row in rows)
    assert all(re.search(r"\.\.\.\S*\.tar ", row) for row in rows)  # the file end is kept
    wide = cli.ok("show", "demo", "--wide").stdout
    for url in demo["shards"]:
        assert url in wide
    assert cli.ok("--wide", "show", "demo").stdout == wide


def test_off_a_terminal_nothing_is_cut(cli: Cli, demo: dict) -> None:
    out = cli.ok("verify").stdout
    store = str(cli.home / "atdata" / "shards")
    for url in demo["shards"]:
        assert f"demo     {url[len(store) + 1 :]}  ok" in out


def test_ellipsize_and_short_path(monkeypatch: pytest.MonkeyPatch) -> None:
    path = "/data/a/b/c/shard-000001.tar"
    assert ellipsize(path, 20) == "/data/a/...00001.tar"
    assert len(ellipsize(path, 20)) == 20
    assert ellipsize(path, 100) == path
    assert ellipsize("a long description", 10, where="end") == "a long ..."
    monkeypatch.setenv("HOME", "/home/me")
    assert short_path("/home/me/x/s.tar") == "~/x/s.tar"
    assert short_path("/home/me/store/p/s.tar", store_root="/home/me/store") == "p/s.tar"
    assert short_path("~/store/p/s.tar", store_root="~/store/") == "p/s.tar"
    assert short_path("s3://b/p/s.tar", store_root="/home/me/store") == "s3://b/p/s.tar"
    assert short_path("/elsewhere/s.tar", store_root="/home/me/store") == "/elsewhere/s.tar"


def test_render_table_cuts_only_the_fit_columns() -> None:
    rows = [["a" * 40, "x" * 30, 7]]
    text = render_table(["path", "note", "n"], rows, fit={"path": "middle"}, max_width=50)
    line = text.splitlines()[1]
    assert len(line) == 50 and "x" * 30 in line and "..." in line
    assert render_table(["path"], [["a" * 40]], fit={"path": "middle"}, max_width=None) == (
        "path\n" + "a" * 40
    )


# --- help texts -------------------------------------------------------------------------


def _commands(group: click.Group, path: tuple[str, ...] = ()):
    yield path, group
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name), command


def test_every_help_text_has_an_example() -> None:
    from click.testing import CliRunner

    seen = 0
    for path, _command_obj in _commands(main):
        result = CliRunner().invoke(main, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Example:" in result.output, path
        examples = result.output.split("Example:", 1)[1]
        wanted = " ".join(("atdata-lite", *path))
        lines = [line.strip() for line in examples.splitlines()]
        assert any(
            line.startswith("atdata-lite") and wanted.split()[-1] in line.split() for line in lines
        ), (path, examples)
        seen += 1
    assert seen >= 18


# --- progress bars ----------------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_redraws_a_few_times_with_rate_and_eta(monkeypatch: pytest.MonkeyPatch):
    stderr = _Terminal()
    monkeypatch.setattr(sys, "stderr", stderr)
    with Progress("writing samples", total=3000, unit="sample") as bar:
        for _ in range(3000):
            bar.update()
    assert bar.count == 3000
    text = stderr.getvalue()
    redraws = text.count("\r")
    assert 1 <= redraws <= 20, redraws  # not one per sample
    last = text.rsplit("\r", 1)[-1]
    assert "writing samples: 100%" in last
    assert "3.00k/3.00k" in last
    assert re.search(r"\[\d\d:\d\d<\d\d:\d\d, [\d.]+[kMG]?sample/s\]", last), last  # ETA, rate


def test_progress_draws_nothing_off_a_terminal_or_when_off(monkeypatch: pytest.MonkeyPatch):
    pipe = io.StringIO()
    monkeypatch.setattr(sys, "stderr", pipe)
    with Progress("x", total=10, progress=True) as bar:
        bar.update(10)
    assert pipe.getvalue() == ""
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with Progress("x", total=10, progress=False) as bar:
        bar.update(10)
    assert terminal.getvalue() == "" and bar.count == 10


def test_demo_progress_on_a_terminal(tmp_path: Path) -> None:
    """The reported case: 3,000 samples drew 3,001 bars; now a few, with rate and ETA."""
    import fcntl
    import pty
    import struct
    import termios

    env = {k: v for k, v in os.environ.items() if not k.startswith("ATDATA_LITE_")}
    env["ATDATA_LITE_HOME"] = str(tmp_path)
    exe = str(Path(sys.executable).with_name("atdata-lite"))
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen(
        [exe, "demo", "--samples", "3000", "--shard-size", "1000"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=slave,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=120)
    os.close(master)
    assert proc.returncode == 0
    err = b"".join(chunks).decode(errors="replace")
    assert "writing samples" in err
    assert err.count("\r") < 60, err.count("\r")
    assert "3.00k/3.00k" in err and "sample/s]" in err


def test_help_example_in_root_help() -> None:
    from click.testing import CliRunner

    out = CliRunner().invoke(main, ["--help"]).output
    assert "--wide" in out
    assert textwrap.dedent("atdata-lite demo") in out
