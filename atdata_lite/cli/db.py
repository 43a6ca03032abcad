"""``atdata-lite info`` and ``atdata-lite db current|upgrade|history|check|recover``."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import click

from .. import __version__
from ..errors import AtdataLiteError
from ..index._registry import url_scheme
from ..index.backend import BACKEND_ENTRY_POINT_GROUP
from ._app import AppState, CliError, cli, json_option, pass_state
from ._output import echo_json, escape_control, hide_password, render_kv, render_table

__all__ = ["db", "info"]

_DEPENDENCIES = (
    "sqlalchemy",
    "alembic",
    "msgpack",
    "webdataset",
    "fsspec",
    "numpy",
    "click",
    "platformdirs",
    "redis",
    "psycopg",
    "s3fs",
)

_SQL_SCHEMES = (None, "sqlite", "postgresql", "postgres")


def _is_sql(location: str) -> bool:
    return url_scheme(location) in _SQL_SCHEMES


def _local_path(location: str) -> Path | None:
    """The file behind a plain path or ``sqlite:///path`` location, else ``None``."""
    scheme = url_scheme(location)
    if scheme is None:
        return Path(location).expanduser()
    if scheme == "sqlite":
        rest = location.split("://", 1)[1]
        path = rest[1:] if rest.startswith("/") else rest
        if path and path != ":memory:":
            return Path(path.split("?", 1)[0]).expanduser()
    return None


def _revision_status(location: str) -> dict[str, Any]:
    """Revision facts for ``info`` and ``db current``; never creates or modifies the index."""
    from ..index import sql
    from ..index.sql import migrate

    path = _local_path(location)
    if path is not None and not path.exists():
        return {"revision": None, "head": migrate.HEAD_REVISION, "status": "not created yet"}
    revision = sql.current_revision(location)  # (an unreachable server: a clear error)
    if revision is None:
        status = "empty (created on first use)"
    elif revision == migrate.HEAD_REVISION:
        status = "up to date"
    else:
        status = "needs upgrade (run: atdata-lite db upgrade)"
    return {"revision": revision, "head": migrate.HEAD_REVISION, "status": status}


def _require_sql(state: AppState) -> str:
    location = state.location
    if not _is_sql(location):
        raise CliError(
            f"The index {hide_password(location)} is a {url_scheme(location)} index, which "
            "has no schema revisions; db commands apply to SQLite and PostgreSQL indexes."
        )
    return location


# The built-in backends import their driver only when an index is opened, so loading the
# entry point says nothing about it: (driver module, extra that installs it) per scheme.
_DRIVERS = {
    "redis": ("redis", "redis"),
    "rediss": ("redis", "redis"),
    "postgresql": ("psycopg", "postgres"),
    "postgres": ("psycopg", "postgres"),
}


def _plugins() -> list[dict[str, Any]]:
    from importlib import metadata
    from importlib.util import find_spec

    rows = []
    for ep in sorted(metadata.entry_points(group=BACKEND_ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            ep.load()
            status = "ok"
        except Exception as exc:  # a broken plugin must not break `info`
            status = f"cannot load: {type(exc).__name__}: {exc}"
        driver = _DRIVERS.get(ep.name) if ep.value.startswith("atdata_lite.") else None
        if status == "ok" and driver is not None and find_spec(driver[0]) is None:
            status = f"needs: pip install 'atdata-lite[{driver[1]}]'"
        dist = ep.dist.name if ep.dist is not None else None
        rows.append({"scheme": ep.name, "target": ep.value, "package": dist, "status": status})
    return rows


def _versions() -> dict[str, str | None]:
    from importlib import metadata

    versions: dict[str, str | None] = {
        "atdata-lite": __version__,
        "python": platform.python_version(),
    }
    for name in _DEPENDENCIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@cli.command()
@json_option
@pass_state
def info(state: AppState) -> None:
    """Versions, the index (location, kind, revision), the default store and the plugins.

    Example:

    \b
        atdata-lite info
        atdata-lite --index postgresql://me@db.internal/catalog info --json
    """
    from ..config import ENV_HOME, ENV_INDEX, ENV_STORE, default_store_url

    location = state.location
    index: dict[str, Any] = {
        "location": hide_password(location),
        "kind": url_scheme(location) or "sqlite",
    }
    if _is_sql(location):
        try:
            index.update(_revision_status(location))
        except Exception as exc:  # `info` reports a broken index, it does not fail on it
            index["status"] = f"error: {' '.join(str(exc).split())}"
    document = {
        "versions": _versions(),
        "index": index,
        "default_store": default_store_url(),
        "environment": {k: os.environ.get(k) for k in (ENV_HOME, ENV_INDEX, ENV_STORE)},
        "plugins": _plugins(),
    }
    if state.json:
        echo_json(document)
        return
    found = {k: v for k, v in document["versions"].items() if v is not None}
    core = ("atdata-lite", "python")
    pairs: list[tuple[str, Any]] = [
        ("atdata-lite", found["atdata-lite"]),
        ("python", found["python"]),
        ("libraries", ", ".join(f"{k} {v}" for k, v in found.items() if k not in core)),
        ("index", index["location"]),
        ("index kind", index["kind"]),
    ]
    if "status" in index:
        if index.get("revision") is not None or "head" in index:
            pairs.append(
                ("index revision", f"{index.get('revision') or '-'} (head {index['head']})")
            )
        pairs.append(("index status", index["status"]))
    pairs.append(("default store", document["default_store"]))
    click.echo(render_kv(pairs))
    click.echo()
    click.echo("plugins (entry points in group atdata_lite.backends):")
    click.echo(
        render_table(
            ["scheme", "target", "package", "status"],
            [[p["scheme"], p["target"], p["package"], p["status"]] for p in document["plugins"]],
        )
    )


@cli.group()
def db() -> None:
    """Schema revisions of a SQL index (upgrades also happen by themselves on open).

    Example:

    \b
        atdata-lite db current
        atdata-lite db upgrade
    """


@db.command("current")
@json_option
@pass_state
def db_current(state: AppState) -> None:
    """Show the index's revision and whether it needs an upgrade (changes nothing).

    Example:

    \b
        atdata-lite db current
    """
    location = _require_sql(state)
    facts = {"location": hide_password(location), **_revision_status(location)}
    if state.json:
        echo_json(facts)
        return
    click.echo(
        render_kv(
            [
                ("index", facts["location"]),
                ("revision", facts["revision"] or "-"),
                ("head", facts["head"]),
                ("status", facts["status"]),
            ]
        )
    )


@db.command("upgrade")
@json_option
@pass_state
def db_upgrade(state: AppState) -> None:
    """Upgrade the index to the newest revision (a backup is taken first).

    Example:

    \b
        atdata-lite --index ~/old-index.db db upgrade
    """
    from ..index import sql

    location = _require_sql(state)
    before, after = sql.upgrade(location)
    shown = hide_password(location)
    facts = {"location": shown, "from": before, "to": after, "changed": before != after}
    if state.json:
        echo_json(facts)
    elif before == after:
        click.echo(f"{escape_control(shown)} is already at {after} (up to date)")
    else:
        click.echo(f"upgraded {escape_control(shown)}: {before or 'empty'} -> {after}")


def _history_rows() -> list[dict[str, Any]]:
    """Normalise ``migrate.history()`` (oldest first) to plain dicts."""
    from ..index.sql import migrate

    rows = []
    for item in migrate.history():
        if isinstance(item, dict):
            row = dict(item)
        elif isinstance(item, tuple | list):  # (revision, down_revision, message)
            row = {
                "revision": item[0],
                "down_revision": item[1] if len(item) > 2 else None,
                "description": item[-1] if len(item) > 1 else None,
            }
        else:  # an Alembic Script or a small dataclass
            row = {
                "revision": getattr(item, "revision", str(item)),
                "down_revision": getattr(item, "down_revision", None),
                "description": getattr(item, "doc", None) or getattr(item, "description", None),
            }
        rows.append(row)
    return rows


@db.command("history")
@json_option
@pass_state
def db_history(state: AppState) -> None:
    """List the schema revisions this atdata-lite knows, marking the index's own.

    Example:

    \b
        atdata-lite db history
    """
    from ..index.sql import migrate

    rows = _history_rows()
    current = None
    location = state.location
    if _is_sql(location):
        # The code's revisions are listed even when the index itself cannot be read.
        try:
            current = _revision_status(location)["revision"]
        except AtdataLiteError:
            current = None
    for row in rows:
        row["head"] = row.get("revision") == migrate.HEAD_REVISION
        row["current"] = current is not None and row.get("revision") == current
    if state.json:
        echo_json(rows)
        return
    table = []
    for row in rows:
        marks = ",".join(m for m in ("head", "current") if row[m])
        table.append([row.get("revision"), marks or "", row.get("description") or ""])
    click.echo(render_table(["revision", "", "description"], table))


def _require_sqlite_file(state: AppState, command: str) -> Path:
    location = _require_sql(state)
    path = _local_path(location)
    if path is None:
        raise CliError(
            f"'db {command}' works on SQLite index files; {hide_password(location)} is not one "
            "(PostgreSQL checks and repairs its own storage)."
        )
    path = path.resolve()
    if not path.is_file():
        raise CliError(f"No index file at {path}. Check --index (or $ATDATA_LITE_INDEX).")
    return path


@db.command("check")
@click.option(
    "--store",
    "stores",
    multiple=True,
    metavar="URL_OR_PATH",
    help="A shard store to look for leftovers in (repeatable). Default: the default store.",
)
@click.option(
    "--clean",
    is_flag=True,
    help="Delete the temporary files (.tmp-) older than the grace period. Orphan shards "
    "are only reported.",
)
@click.option(
    "--grace",
    type=float,
    default=1.0,
    show_default=True,
    metavar="HOURS",
    help="With --clean: keep temporary files younger than this (a write may still run).",
)
@json_option
@pass_state
def db_check(state: AppState, stores: tuple[str, ...], clean: bool, grace: float) -> None:
    """Check the SQLite index file and list what interrupted writes left behind.

    Runs SQLite's integrity_check and the index's own consistency checks (read-only), and
    lists temporary files and orphan shards. Exit code 1 if the index is damaged or
    inconsistent; leftovers alone do not fail the check.

    Example:

    \b
        atdata-lite db check
        atdata-lite db check --clean
    """
    from ..config import default_store_url
    from ..index.sql._check import check_index, clean_leftovers

    path = _require_sqlite_file(state, "check")
    report = check_index(path, stores=list(stores) or [default_store_url()])
    deleted: list[str] = []
    kept: list[str] = []
    if clean:
        deleted, kept = clean_leftovers(report, grace=grace * 3600)
    document = {
        "index": str(path),
        "sound": report.sound,
        "integrity": report.integrity,
        "problems": report.problems,
        "counts": report.counts,
        "leftovers": [vars(x) for x in report.leftovers],
        "deleted": deleted,
        "kept": kept,
    }
    if state.json:
        echo_json(document)
    else:
        verdict = "ok" if report.sound else "DAMAGED"
        click.echo(render_kv([("index", str(path)), ("status", verdict)]))
        for line in report.integrity if report.integrity != ["ok"] else []:
            click.echo(f"  sqlite: {line}")
        for line in report.problems:
            click.echo(f"  problem: {line}")
        for item in report.leftovers:
            age = "?" if item.age is None else f"{item.age / 3600:.1f} h"
            status = " (deleted)" if item.path in deleted else ""
            click.echo(f"  leftover {item.kind}: {item.path} ({age} old){status}")
        if not report.sound:
            click.echo(
                f"Run 'atdata-lite --index {path} db recover' to rebuild it (the damaged file "
                "is kept)."
            )
    if not report.sound:
        raise click.exceptions.Exit(1)


@db.command("recover")
@click.option(
    "--from-backup",
    "from_backup",
    is_flag=False,
    flag_value="newest",
    default=None,
    metavar="[PATH]",
    help="Restore a backup (the newest one when no PATH is given) instead of salvaging.",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@pass_state
def db_recover(state: AppState, from_backup: str | None, yes: bool) -> None:
    """Rebuild a damaged SQLite index, keeping the damaged file next to it.

    By default every row that can still be read is salvaged into a new file; datasets that
    lost shard rows are dropped whole and listed. With --from-backup the index becomes the
    backup (older content). Stop other programs using the index first.

    Example:

    \b
        atdata-lite db recover --yes
        atdata-lite db recover --from-backup --yes
    """
    from ..index.sql._recover import recover_index

    path = _require_sqlite_file(state, "recover")
    if not yes and not state.json:
        click.confirm(
            f"Rebuild {path} ({'from a backup' if from_backup else 'by salvaging rows'})? "
            "The current file is kept as <file>.damaged-<time>.",
            abort=True,
            err=True,
        )
    report = recover_index(path, from_backup=from_backup)
    if state.json:
        echo_json(vars(report))
        return
    click.echo(f"recovered {path} from {report.source}")
    click.echo(f"damaged file kept as {report.damaged}")
    for table, count in report.kept.items():
        click.echo(f"  {table}: {count} rows kept, {report.lost.get(table, 0)} lost")
    for name in report.lost_datasets:
        click.echo(f"  dropped dataset {name!r} (some of its shard rows were unreadable)")
