"""``atdata-lite import SOURCE`` and ``atdata-lite export --to DEST`` (catalog moves)."""

from __future__ import annotations

from typing import Any

import click

from ._app import AppState, CliError, cli, json_option, pass_state
from ._cancel import cancellable
from ._output import echo_json, escape_control, render_table

__all__ = ["export_cmd", "import_cmd"]


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
    with cancellable() as cancel:
        report = import_catalog(source, target, dry_run=dry_run, cancel=cancel)
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
        with cancellable() as cancel:
            report = export_catalog(state.index(), dest, overwrite=overwrite, cancel=cancel)
    except FileExistsError as exc:
        raise CliError(
            f"{dest} already exists; choose another file name, or pass --overwrite to replace it."
        ) from exc
    if state.json:
        echo_json(report.to_dict())
    else:
        click.echo(escape_control(report.summary()))
