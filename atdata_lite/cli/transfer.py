"""``atdata-lite import SOURCE`` and ``atdata-lite export --to DEST`` (catalog moves)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from ._app import AppState, CliError, cli, json_option, pass_state
from ._output import echo_json, escape_control, render_table

__all__ = ["export_cmd", "import_cmd"]


class _ProgressCallback:
    """``progress(done, total)`` for the transfer functions, drawn by ``_progress.Progress``."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._bar: Any = None
        self._done = 0

    def __call__(self, done: int, total: int) -> None:
        if self._bar is None:
            from .._progress import Progress

            self._bar = Progress(self.label, total=total or None, unit="row")
            self._bar.__enter__()
        self._bar.update(max(0, done - self._done))
        self._done = done

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None


@contextmanager
def _progress_callback(label: str) -> Iterator[_ProgressCallback]:
    callback = _ProgressCallback(label)
    try:
        yield callback
    finally:
        callback.close()


def _items_table(items: list[Any]) -> str:
    return render_table(
        ["kind", "source key", "name", "reason"],
        [[i.kind, i.key, i.name or "-", i.reason or ""] for i in items],
    )


@cli.command("import")
@click.argument("source")
@click.option(
    "--into",
    "target",
    metavar="INDEX",
    help="The index to import into (default: the --index in effect).",
)
@click.option("--dry-run", is_flag=True, help="Report what would be imported; write nothing.")
@json_option
@pass_state
def import_cmd(state: AppState, source: str, target: str | None, dry_run: bool) -> None:
    """Copy a catalog in: an atdata redis:// URL, an atdata 0.7 SQLite file, or a backup file.

    All or nothing, and idempotent: importing the same source twice changes nothing. The
    source is never modified. Rows that cannot be imported as they are get renamed or
    skipped, each listed with its key and the reason.

    Example:

    \b
        atdata-lite import redis://localhost:6379/0 --dry-run
        atdata-lite import catalog-backup.json --into team.db
    """
    from ..transfer import import_catalog

    target = target or state.location
    with _progress_callback("importing") as callback:
        report = import_catalog(source, target, dry_run=dry_run, progress=callback)
    if state.json:
        echo_json(report.to_dict())
        return
    click.echo(escape_control(report.summary()))
    for title, items in (("renamed", report.renamed), ("skipped", report.skipped)):
        if items:
            click.echo()
            click.echo(f"{title}:")
            click.echo(_items_table(items))


@cli.command("export")
@click.option(
    "--to",
    "dest",
    required=True,
    metavar="DEST",
    help="A redis:// URL (written in atdata 0.2's layout) or a backup file path.",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing backup file.")
@json_option
@pass_state
def export_cmd(state: AppState, dest: str, overwrite: bool) -> None:
    """Write the whole catalog to a Redis index (atdata's layout) or a portable backup file.

    `atdata-lite import FILE` reads the backup back.

    Example:

    \b
        atdata-lite export --to catalog-backup.json
        atdata-lite export --to redis://localhost:6379/1
    """
    from ..transfer import export_catalog

    try:
        with _progress_callback("exporting") as callback:
            report = export_catalog(state.index(), dest, overwrite=overwrite, progress=callback)
    except FileExistsError as exc:
        raise CliError(
            f"{dest} already exists; choose another file name, or pass --overwrite to replace it."
        ) from exc
    if state.json:
        echo_json(report.to_dict())
    else:
        click.echo(escape_control(report.summary()))
