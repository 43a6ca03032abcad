"""``atdata-lite relocate``: rewrite recorded shard locations after moving files."""

from __future__ import annotations

import click

from ._app import AppState, cli, json_option, pass_state
from ._output import echo_json

__all__: list[str] = []


@cli.command()
@click.argument("old_prefix")
@click.argument("new_prefix")
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
@json_option
@pass_state
def relocate(state: AppState, old_prefix: str, new_prefix: str, dry_run: bool) -> None:
    """Rewrite shard locations that start with OLD_PREFIX to start with NEW_PREFIX.

    For shards moved outside the data store (shards inside it are recorded relative to its
    root and follow it). Prefixes match whole path segments; local paths are made
    absolute. Each changed dataset gets a new CID, computed over its new locations.

    Example: atdata-lite relocate /mnt/old-disk/data /mnt/new-disk/data --dry-run
    """
    index = state.index()
    changes = index.relocate(old_prefix, new_prefix, dry_run=dry_run)
    if state.json:
        echo_json(
            {
                "dry_run": dry_run,
                "datasets": [
                    {
                        "name": c.name,
                        "old_cid": c.old_cid,
                        "new_cid": c.new_cid,
                        "shards": [{"old": old, "new": new} for old, new in c.urls],
                    }
                    for c in changes
                ],
            }
        )
        return
    if not changes:
        click.echo(f"No recorded shard location starts with {old_prefix}; nothing to change.")
        return
    verb = "would relocate" if dry_run else "relocated"
    for c in changes:
        shards = f"{len(c.urls)} shard" + ("" if len(c.urls) == 1 else "s")
        click.echo(f"{verb} {c.name}: {shards}, cid {c.old_cid} -> {c.new_cid}")
        if dry_run:
            for old, new in c.urls:
                click.echo(f"  {old} -> {new}")
    if dry_run:
        click.echo("Dry run: nothing was changed. Run again without --dry-run to apply.")
