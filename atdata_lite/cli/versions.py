"""``atdata-lite log``, ``tag``, ``untag`` and ``gc``: dataset history, labels and cleanup."""

from __future__ import annotations

import time
from typing import Any

import click

from ._app import AppState, CliError, cli, json_option, pass_state
from ._output import echo_json, escape_control, format_size, format_time, render_table
from .datasets import configured_stores, get_entry

#: Shard files younger than this are never collected: a write may still be indexing them.
DEFAULT_GRACE_SECONDS = 3600


def _size(entry: Any) -> int | None:
    sizes = [s.size for s in entry.shards]
    return None if any(s is None for s in sizes) else sum(sizes)


@cli.command("log")
@click.argument("name")
@json_option
@pass_state
def log_cmd(state: AppState, name: str) -> None:
    """Show the history of dataset NAME: its versions, their labels, when, how big.

    Example:

    \b
        atdata-lite log mnist
        atdata-lite log mnist --json
    """
    index = state.index()
    versions = index.list_versions(name)
    if not versions:
        get_entry(state, name)  # the usual "no dataset named ..., did you mean" error
        raise CliError(f"{name!r} is a label, not a dataset name; try `atdata-lite log` on it.")
    labels: dict[str, list[str]] = {}
    for row in index.backend.iter_labels():
        shown = row.name if not row.version else f"{row.name}:{row.version}"
        labels.setdefault(row.cid, []).append(shown)
    latest = versions[-1].version
    rows: list[dict[str, Any]] = [  # JSON documents
        {
            "version": e.version,
            "cid": e.cid,
            "latest": e.version == latest,
            "labels": labels.get(e.cid, []),
            "created_at": e.created_at.isoformat() if e.created_at else None,
            "shards": len(e.shards),
            "size": _size(e),
        }
        for e in reversed(versions)
    ]
    if state.json:
        echo_json({"name": name, "versions": rows})
        return
    click.echo(
        render_table(
            ["version", "labels", "created", "shards", "size"],
            [
                [
                    escape_control(r["version"]) + (" (latest)" if r["latest"] else ""),
                    escape_control(", ".join(r["labels"])) or "-",
                    format_time(e.created_at),
                    r["shards"],
                    format_size(r["size"]),
                ]
                for r, e in zip(rows, reversed(versions), strict=True)
            ],
        )
    )


@cli.command()
@click.argument("ref")
@click.argument("label")
@json_option
@pass_state
def tag(state: AppState, ref: str, label: str) -> None:
    """Point the tag NAME:LABEL at the dataset version REF (NAME@VERSION); moves it if set.

    Example:

    \b
        atdata-lite tag mnist@1.2.0 stable
    """
    entry = get_entry(state, ref)
    row = state.index().tag(ref, label)
    doc = {"tag": f"{row.name}:{row.version}", "version": entry.version, "cid": row.cid}
    if state.json:
        echo_json(doc)
    else:
        click.echo(f"{escape_control(doc['tag'])} -> {escape_control(entry.name)}@{entry.version}")


@cli.command()
@click.argument("tag_ref", metavar="NAME:LABEL")
@json_option
@pass_state
def untag(state: AppState, tag_ref: str) -> None:
    """Remove the tag NAME:LABEL (the dataset stays).

    Example:

    \b
        atdata-lite untag mnist:stable
    """
    from ..errors import LabelNotFoundError

    name, _, label = tag_ref.rpartition(":")
    if not name:
        name, label = tag_ref, ""
    try:
        row = state.index().delete_label(name, label or None)
    except LabelNotFoundError as exc:
        raise CliError(f"No tag {tag_ref!r}. See the labels with `atdata-lite log NAME`.") from exc
    if state.json:
        echo_json({"removed": tag_ref, "cid": row.cid})
    else:
        click.echo(f"removed {escape_control(tag_ref)}")


def find_orphans(
    index: Any, roots: list[Any], *, grace_seconds: float, now: float | None = None
) -> list[dict[str, Any]]:
    """Shard files (``*.tar``) under ``roots`` that no version of any dataset refers to.

    Files modified within ``grace_seconds`` are left out: a dataset being written into the
    store is indexed only after its shards are complete.

    Returns:
        ``[{"url", "size", "mtime"}]`` sorted by URL.
    """
    from ..deletion import shards_in_use
    from ..locations import normalise_location

    now = time.time() if now is None else now
    used = {normalise_location(u) for u in shards_in_use(index)}
    found: dict[str, dict[str, Any]] = {}
    for root in roots:
        root_url = getattr(root, "root_url", root)
        options = getattr(root, "storage_options", None) or {}
        from fsspec.core import url_to_fs

        fs, base = url_to_fs(str(root_url), **options)
        if not fs.exists(base):
            continue
        for path, info in fs.find(base, detail=True).items():
            if not path.endswith(".tar") or info.get("type") == "directory":
                continue
            url = path if fs.protocol in ("file", ("file", "local")) else fs.unstrip_protocol(path)
            if isinstance(fs.protocol, tuple) and "file" in fs.protocol:
                url = path
            if normalise_location(url) in used:
                continue
            mtime = info.get("mtime") or info.get("LastModified") or info.get("created")
            if hasattr(mtime, "timestamp"):
                mtime = mtime.timestamp()
            if mtime is None or now - float(mtime) < grace_seconds:
                continue  # too young (or of unknown age): a write may be in progress
            found[normalise_location(url)] = {
                "url": url,
                "size": info.get("size"),
                "mtime": float(mtime),
            }
    return [found[k] for k in sorted(found)]


@cli.command()
@click.option(
    "--store",
    "stores",
    multiple=True,
    metavar="ROOT",
    help="A further store root (path or URL) to collect in, besides the default store and "
    "the index's data store. Repeatable.",
)
@click.option(
    "--grace",
    "grace_seconds",
    type=click.FloatRange(min=0),
    default=DEFAULT_GRACE_SECONDS,
    show_default=True,
    help="Never collect shard files modified less than this many seconds ago.",
)
@click.option("-y", "--yes", is_flag=True, help="Delete the files (without it: a dry run).")
@json_option
@pass_state
def gc(state: AppState, stores: tuple[str, ...], grace_seconds: float, yes: bool) -> None:
    """List (or with --yes delete) shard files in the stores that no dataset version uses.

    Without --yes nothing is deleted: the files and their total size are listed. Files
    younger than the grace period are never collected, so a dataset being written is safe.

    Example:

    \b
        atdata-lite gc
        atdata-lite gc --yes
    """
    from ..deletion import shards_in_use
    from ..locations import normalise_location

    index = state.index()
    roots = configured_stores(index, stores)
    orphans = find_orphans(index, roots, grace_seconds=grace_seconds)
    total = sum(o["size"] or 0 for o in orphans)
    deleted: list[str] = []
    failed: list[dict[str, str]] = []
    if yes and orphans:
        from fsspec.core import url_to_fs

        # Checked again just before deleting: a dataset indexed meanwhile keeps its files.
        used = {normalise_location(u) for u in shards_in_use(index)}
        for o in orphans:
            if normalise_location(o["url"]) in used:
                continue
            try:
                fs, path = url_to_fs(o["url"])
                fs.rm(path)
                deleted.append(o["url"])
            except OSError as exc:
                failed.append({"url": o["url"], "error": str(exc)})
    doc = {
        "dry_run": not yes,
        "orphans": orphans,
        "total_size": total,
        "deleted": deleted,
        "failed": failed,
    }
    if state.json:
        echo_json(doc)
    else:
        for o in orphans:
            click.echo(f"{escape_control(o['url'])}  {format_size(o['size'])}")
        verb = "deleted" if yes else "would delete (rerun with --yes)"
        count = len(deleted) if yes else len(orphans)
        click.echo(f"{count} unreferenced shard file(s), {format_size(total)}: {verb}")
    if failed:
        raise CliError(f"Could not delete {len(failed)} file(s): {failed[0]['error']}")
