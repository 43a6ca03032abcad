"""``atdata-lite import SOURCE`` and ``atdata-lite export --to DEST`` (catalog moves)."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from typing import Any

import click

from ._app import AppState, cli, json_option, pass_state
from ._output import echo_json, progress

__all__ = ["export_cmd", "import_cmd"]


def _as_dict(report: Any) -> dict[str, Any]:
    if report is None:
        return {}
    if is_dataclass(report) and not isinstance(report, type):
        return asdict(report)
    if isinstance(report, dict):
        return dict(report)
    if hasattr(report, "to_dict"):
        return report.to_dict()
    return {k: v for k, v in vars(report).items() if not k.startswith("_")}


def _print_report(doc: dict[str, Any]) -> None:
    for key, value in doc.items():
        if isinstance(value, list | tuple):
            click.echo(f"{key}: {len(value)}")
            for item in value:
                click.echo(f"  {_item_text(item)}")
        elif isinstance(value, dict):
            click.echo(f"{key}:")
            for k, v in value.items():
                click.echo(f"  {k}: {v}")
        else:
            click.echo(f"{key}: {value}")


def _item_text(item: Any) -> str:
    if isinstance(item, dict):
        return ", ".join(f"{k}={v}" for k, v in item.items() if v is not None)
    if is_dataclass(item) and not isinstance(item, type):
        return _item_text(asdict(item))
    if isinstance(item, tuple | list):
        return ": ".join(str(x) for x in item)
    return str(item)


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
    """Copy an atdata catalog (redis:// URL, atdata 0.7 SQLite file, or backup file) in.

    Idempotent: importing the same source twice changes nothing. The source is never modified.
    """
    from ..transfer import import_catalog

    target = target or state.location
    with _progress_callback("importing") as callback:
        report = import_catalog(source, target, dry_run=dry_run, progress=callback)
    doc = _as_dict(report)
    if state.json:
        echo_json(doc)
        return
    click.echo(f"{'dry run: nothing written to' if dry_run else 'imported into'} {target}")
    _print_report(doc)


@cli.command("export")
@click.option(
    "--to",
    "dest",
    required=True,
    metavar="DEST",
    help="A redis:// URL (atdata's layout) or a backup file path.",
)
@json_option
@pass_state
def export_cmd(state: AppState, dest: str) -> None:
    """Write the whole catalog to a Redis index or a portable backup file."""
    from ..transfer import export_catalog

    report = export_catalog(state.index(), dest)
    doc = _as_dict(report)
    if state.json:
        echo_json({"to": dest, **doc})
        return
    click.echo(f"exported {state.location} -> {dest}")
    _print_report(doc)


class _progress_callback:
    """A ``progress(done, total)`` callback driving a stderr bar on a terminal."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._bar: Any = None
        self._done = 0
        self._ctx: Any = None

    def __enter__(self) -> Any:
        return self

    def __call__(self, done: int, total: int | None = None) -> None:
        if self._ctx is None:
            self._ctx = progress(iter(()), length=total or 0, label=self.label)
            self._bar = self._ctx.__enter__()
        update = getattr(self._bar, "update", None)
        if update is not None:
            update(max(0, done - self._done))
        self._done = done

    def __exit__(self, *exc: Any) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(*exc)
