"""``atdata-lite pull`` and ``atdata-lite cache``: take datasets offline, see and trim the cache.

The shard cache itself is :class:`atdata_lite.cache.ShardCache`; these commands use the
default one (``$ATDATA_LITE_CACHE``, ``$ATDATA_LITE_CACHE_SIZE``).
"""

from __future__ import annotations

import sys
from typing import Any

import click

from ._app import AppState, CliError, cli, json_option, pass_state
from ._output import echo_json, format_size, render_kv, render_table
from .datasets import get_entry


def _cache() -> Any:
    from ..cache import ShardCache

    try:
        return ShardCache()
    except ValueError as exc:  # a bad $ATDATA_LITE_CACHE_SIZE
        raise CliError(str(exc)) from exc


def _entry_shards(entry: Any, split: str | None) -> list[Any]:
    from .._pull import entry_shards

    try:
        return entry_shards(entry, split)
    except KeyError as exc:
        raise CliError(str(exc.args[0])) from exc


def _status(cache: Any, entry: Any) -> dict[str, Any]:
    """Per dataset: remote shards, how many are cached, bytes, available offline."""
    from ..cache import is_remote

    shards = _entry_shards(entry, None)
    remote = [s for s in shards if is_remote(s.url)]
    cached_bytes = 0
    cached = 0
    total: int | None = 0
    for s in remote:
        item = cache.lookup(s.url, s.sha256)
        if item is not None:
            cached += 1
            cached_bytes += item.size
            size = s.size if s.size is not None else item.size
        else:
            size = s.size
        total = None if total is None or size is None else total + size
    return {
        "name": entry.name,
        "shards": len(shards),
        "remote_shards": len(remote),
        "cached_shards": cached,
        "cached_bytes": cached_bytes,
        "remote_bytes": total,
        "offline": cached == len(remote),
    }


@cli.command()
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@click.option("--split", default=None, help="Fetch only this split of each dataset.")
@json_option
@pass_state
def pull(state: AppState, names: tuple[str, ...], split: str | None) -> None:
    """Fetch every remote shard of datasets into the shard cache, for offline use.

    Each copy is verified against the SHA-256 the index records. Interrupted and run again,
    it resumes: shards already cached are skipped and a partly downloaded shard continues
    where it stopped. Local shards are read in place and never copied.

    Example:

    \b
        atdata-lite pull mnist
        atdata-lite pull mnist --split train
    """
    from .._pull import pull
    from ..cache import offline_enabled
    from ._cancel import cancellable

    if offline_enabled():
        raise CliError("Offline mode is on ($ATDATA_LITE_OFFLINE); pull needs the network.")
    cache = _cache()
    entries = [get_entry(state, name) for name in names]
    for entry in entries:
        _entry_shards(entry, split)  # an unknown split is refused before any download
    with cancellable() as cancel:
        results = [r.to_dict() for r in pull(entries, split=split, cache=cache, cancel=cancel)]
    if state.json:
        echo_json(results)
        return
    for r in results:
        what = f"{r['name']}" + (f" (split {split})" if split else "")
        if not r["remote_shards"]:
            click.echo(f"{what}: no remote shards; it reads from local disk.")
        else:
            click.echo(
                f"{what}: fetched {r['fetched']} shards ({format_size(r['fetched_bytes'])}), "
                f"{r['already_cached']} already cached; ready for offline use."
            )


@cli.group("cache")
def cache_group() -> None:
    """The shard cache: local copies of remote shards (see `atdata-lite pull`).

    Example:

    \b
        atdata-lite cache ls
        atdata-lite cache prune --to 10GB
    """


@cache_group.command("ls")
@json_option
@pass_state
def cache_ls(state: AppState) -> None:
    """Per dataset: cached / remote bytes and whether it is available offline.

    Example:

    \b
        atdata-lite cache ls
    """
    cache = _cache()
    rows = [_status(cache, e) for e in state.index().list_datasets()]
    if state.json:
        echo_json(rows)
        return
    if not rows:
        click.echo("No datasets in the index.")
        return
    click.echo(
        render_table(
            ["name", "remote shards", "cached", "cached size", "remote size", "offline"],
            [
                [
                    r["name"],
                    r["remote_shards"],
                    r["cached_shards"],
                    format_size(r["cached_bytes"]),
                    format_size(r["remote_bytes"]),
                    "yes" if r["offline"] else "no",
                ]
                for r in rows
            ],
            colours={"yes": {"fg": "green"}, "no": {"fg": "yellow"}},
        )
    )


@cache_group.command("du")
@json_option
@pass_state
def cache_du(state: AppState) -> None:
    """How much the cache holds, and its budget.

    Example:

    \b
        atdata-lite cache du --json
    """
    cache = _cache()
    doc = {
        "location": str(cache.root),
        "items": len(cache.keys()),
        "bytes": cache.total_bytes(),
        "budget": cache.max_bytes,
    }
    if state.json:
        echo_json(doc)
        return
    click.echo(
        render_kv(
            [
                ("location", doc["location"]),
                ("items", doc["items"]),
                ("size", format_size(doc["bytes"])),
                ("budget", format_size(doc["budget"])),
            ]
        )
    )


def _parse_size(text: str | None) -> int | None:
    from ..cache import parse_size

    if text is None:
        return None
    try:
        return parse_size(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--to") from exc


@cache_group.command("prune")
@click.option("--to", "to", metavar="SIZE", help="Target size (e.g. 5GB); default: the budget.")
@click.option("--dry-run", is_flag=True, help="Only show what would be evicted.")
@json_option
@pass_state
def cache_prune(state: AppState, to: str | None, dry_run: bool) -> None:
    """Evict least recently used copies until the cache fits; copies in use are kept.

    Example:

    \b
        atdata-lite cache prune --to 5GB --dry-run
    """
    cache = _cache()
    evicted = cache.prune(_parse_size(to), dry_run=dry_run)
    freed = sum(i.size for i in evicted)
    if state.json:
        echo_json(
            {
                "dry_run": dry_run,
                "evicted": [{"key": i.key, "url": i.url, "size": i.size} for i in evicted],
                "freed": freed,
                "bytes": cache.total_bytes(),
            }
        )
        return
    verb = "would evict" if dry_run else "evicted"
    click.echo(
        f"{verb} {len(evicted)} copies ({format_size(freed)}); the cache holds "
        f"{format_size(cache.total_bytes())}."
    )


@cache_group.command("rm")
@click.argument("name")
@click.option("-y", "--yes", is_flag=True, help="Delete; without it, only show what would go.")
@json_option
@pass_state
def cache_rm(state: AppState, name: str, yes: bool) -> None:
    """Delete the cached copies of one dataset's shards (a dry run unless --yes).

    Example:

    \b
        atdata-lite cache rm mnist --yes
    """
    cache = _cache()
    entry = get_entry(state, name)
    items = [
        item
        for s in _entry_shards(entry, None)
        if (item := cache.lookup(s.url, s.sha256)) is not None
    ]
    for item in items:
        cache.delete(item.key, dry_run=not yes)
    freed = sum(i.size for i in items)
    if state.json:
        echo_json({"name": name, "dry_run": not yes, "copies": len(items), "bytes": freed})
        return
    if yes:
        click.echo(f"deleted {len(items)} cached copies of {name} ({format_size(freed)}).")
    else:
        click.echo(
            f"would delete {len(items)} cached copies of {name} ({format_size(freed)}); "
            "run again with --yes to delete them."
        )


@cache_group.command("clear")
@click.option("-y", "--yes", is_flag=True, help="Delete; without it, only show what would go.")
@json_option
@pass_state
def cache_clear(state: AppState, yes: bool) -> None:
    """Delete every cached copy (a dry run unless --yes).

    Example:

    \b
        atdata-lite cache clear --yes
    """
    cache = _cache()
    size = cache.total_bytes() if cache.root.is_dir() else 0
    freed = cache.clear() if yes else size
    if state.json:
        echo_json({"dry_run": not yes, "bytes": freed, "location": str(cache.root)})
        return
    if yes:
        click.echo(f"cleared the cache at {cache.root} ({format_size(freed)}).")
    else:
        click.echo(
            f"would clear the cache at {cache.root} ({format_size(freed)}); run again with "
            "--yes to clear it."
        )
    sys.stdout.flush()
