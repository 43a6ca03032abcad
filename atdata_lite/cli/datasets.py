"""Dataset commands: ``ls``, ``show``, ``add``, ``rm``, ``mv``, ``verify``, ``preview``."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click

from ._app import AppState, CliError, cli, json_option, pass_state, wide_option
from ._output import (
    echo_json,
    escape_control,
    format_size,
    format_time,
    is_tty,
    progress,
    render_kv,
    render_table,
    short_path,
    table_width,
)
from ._suggest import did_you_mean
from .schemas import resolve_schema_ref, short_ref

if TYPE_CHECKING:
    from ..index.backend import ShardRecord

__all__ = ["entry_summary", "entry_to_dict"]


# --- entries as data ------------------------------------------------------------------


def _shards(entry: Any) -> list[ShardRecord]:
    shards = getattr(entry, "shards", None)
    if shards:
        return list(shards)
    from ..index.backend import ShardRecord

    return [ShardRecord(url) for url in entry.data_urls]


def _total(values: list[int | None]) -> int | None:
    """The sum, or ``None`` when any part is unknown (a partial sum would mislead)."""
    if not values or any(v is None for v in values):
        return None
    return sum(v for v in values if v is not None)


def entry_summary(entry: Any) -> dict[str, Any]:
    """One ``ls`` row as data: name, cid, schema_ref, shards, samples, size, created_at."""
    shards = _shards(entry)
    return {
        "name": entry.name,
        "cid": entry.cid,
        "schema_ref": entry.schema_ref,
        "shards": len(shards),
        "samples": _total([s.sample_count for s in shards]),
        "size": _total([s.size for s in shards]),
        "created_at": getattr(entry, "created_at", None),
    }


def entry_to_dict(entry: Any) -> dict[str, Any]:
    """Everything about one entry (``show --json``), every shard included."""
    shards = _shards(entry)
    doc = entry_summary(entry)
    doc["shards"] = [
        {"url": s.url, "size": s.size, "sample_count": s.sample_count, "sha256": s.sha256}
        for s in shards
    ]
    doc["shard_count"] = len(shards)
    doc["updated_at"] = getattr(entry, "updated_at", None)
    doc["metadata"] = entry.metadata
    return doc


def get_entry(state: AppState, name: str) -> Any:
    """The entry named ``name``, or a one-line error suggesting close names (difflib)."""
    from ..errors import DatasetNotFoundError

    index = state.index()
    try:
        return index.get_dataset(name)
    except DatasetNotFoundError as exc:
        raise not_found(state, name) from exc


def not_found(state: AppState, name: str) -> CliError:
    """The error for a dataset name that is not in the index: close names, or how to list."""
    from ..index._hints import close_dataset_names

    # The backend's bounded look-up of close names, not a listing of every entry.
    names = close_dataset_names(state.index().backend, name)
    hint = did_you_mean(name, names, "atdata-lite ls")
    if not hint.startswith("List"):
        hint += " List them all with: atdata-lite ls"
    return CliError(f"No dataset named {name!r} in {state.display_location}. {hint}")


def _fit_value(text: str, state: AppState, label_width: int = 10) -> str:
    """A ``key: value`` value cut in the middle to fit the table width, if there is one."""
    from ._output import ellipsize

    width = table_width(state.wide)
    return text if width is None else ellipsize(text, max(20, width - label_width))


def _store_root(state: AppState) -> str:
    """The root of the store that shard paths are shown relative to."""
    store = getattr(state.index(), "data_store", None)
    root = getattr(store, "root_url", None)
    if isinstance(root, str):
        return root
    from ..config import default_store_url

    return default_store_url()


def _first_sentence(text: str) -> str:
    """The library's message without its Python-API advice (``... . Re-create it, ...``)."""
    text = " ".join(text.split())
    return text.split(". ", 1)[0].rstrip(".")


# --- ls / show ------------------------------------------------------------------------


@cli.command("ls")
@json_option
@wide_option
@pass_state
def ls(state: AppState) -> None:
    """List the datasets: name, schema, shards, samples, size, created.

    Example:

    \b
        atdata-lite ls
        atdata-lite ls --json
    """
    rows = [entry_summary(e) for e in state.index().list_datasets()]
    if state.json:
        echo_json(rows)
        return
    if not rows:
        click.echo(
            "No datasets yet. Try `atdata-lite demo`, or `atdata-lite add NAME URL --schema REF`."
        )
        return
    click.echo(
        render_table(
            ["name", "schema", "shards", "samples", "size", "created"],
            [
                [
                    r["name"],
                    short_ref(r["schema_ref"]),
                    r["shards"],
                    "?" if r["samples"] is None else r["samples"],
                    format_size(r["size"]),
                    format_time(r["created_at"]),
                ]
                for r in rows
            ],
            fit={"name": "end", "schema": "end"},
            max_width=table_width(state.wide),
        )
    )


@cli.command()
@click.argument("name")
@json_option
@wide_option
@pass_state
def show(state: AppState, name: str) -> None:
    """Everything about dataset NAME, including each of its shards.

    Shard paths inside the store are shown relative to it (the store line says where it
    is); --wide or --json print them in full.

    Example:

    \b
        atdata-lite show demo
        atdata-lite show demo --wide
    """
    entry = get_entry(state, name)
    doc = entry_to_dict(entry)
    if state.json:
        echo_json(doc)
        return
    metadata = doc["metadata"]
    root = None if state.wide else _store_root(state)
    urls = [s["url"] for s in doc["shards"]]
    shown = [short_path(u, store_root=root) if root else u for u in urls]
    # A relative path is one inside the store (shortened here, or recorded that way).
    in_store = any(not p.startswith(("~", "/")) and "://" not in p for p in shown)
    click.echo(
        render_kv(
            [
                ("name", doc["name"]),
                ("cid", doc["cid"]),
                ("schema", doc["schema_ref"]),
                ("created", format_time(doc["created_at"])),
                ("updated", format_time(doc["updated_at"])),
                ("samples", "?" if doc["samples"] is None else doc["samples"]),
                ("size", format_size(doc["size"])),
                ("shards", doc["shard_count"]),
                (
                    "metadata",
                    "-"
                    if metadata is None
                    else json.dumps(metadata, default=str, ensure_ascii=False),
                ),
                *([("store", _fit_value(short_path(root), state))] if in_store and root else []),
            ]
        )
    )
    click.echo()
    click.echo(
        render_table(
            ["#", "url", "samples", "size", "sha256"],
            [
                [
                    i,
                    url,
                    "?" if s["sample_count"] is None else s["sample_count"],
                    format_size(s["size"]),
                    s["sha256"][:16] if s["sha256"] else "?",
                ]
                for i, (s, url) in enumerate(zip(doc["shards"], shown, strict=True))
            ],
            fit={"url": "middle"},
            max_width=table_width(state.wide),
        )
    )


# --- add ------------------------------------------------------------------------------


def expand_urls(patterns: tuple[str, ...]) -> list[str]:
    """Expand brace patterns and globs into shard URLs, in order, without duplicates
    (two spellings of one file, such as ``/p/g.tar`` and ``file:///p/g.tar``, count once).

    Local paths become absolute, so the index stays right from any working directory.

    Raises:
        ShardNotFoundError: A glob or a pattern matches nothing.
        CorruptShardError: A local path is a FIFO, a device or a socket.
    """
    import os

    from ..errors import ShardNotFoundError
    from ..locations import normalise_location
    from ..sources import check_url, refuse_special_file, url_to_fs
    from ..sources import expand_urls as expand_braces

    urls: list[str] = []
    seen: set[str] = set()
    for pattern in patterns:
        for candidate in expand_braces(pattern):
            check_url(candidate)  # no pipe: URLs, only schemes fsspec handles
            if any(ch in candidate for ch in "*?["):
                fs, path = url_to_fs(candidate)
                matches = sorted(fs.glob(path))
                if not matches:
                    raise ShardNotFoundError(
                        f"No shard matches {candidate}; check the pattern (quote it so the "
                        "shell does not expand it)."
                    )
                found = [fs.unstrip_protocol(m) if "://" in candidate else m for m in matches]
            else:
                found = [candidate]
            for url in found:
                if "://" not in url:
                    url = os.path.abspath(os.path.expanduser(url))
                refuse_special_file(url)  # a FIFO or a device: refused before any hashing
                location = normalise_location(url)  # one file, however it is spelled
                if location not in seen:
                    seen.add(location)
                    urls.append(url)
    return urls


@cli.command()
@click.argument("name")
@click.argument("patterns", nargs=-1, required=True, metavar="URL_OR_PATTERN...")
@click.option(
    "--schema",
    "schema_ref",
    required=True,
    metavar="REF",
    help="The samples' schema: a full ref, Name@x.y.z, or Name (its latest version).",
)
@click.option("--metadata", "metadata_json", metavar="JSON", help="Metadata as a JSON object.")
@click.option(
    "--on-conflict",
    type=click.Choice(["error", "skip", "replace"]),
    default="error",
    show_default=True,
    help="What to do when NAME is taken by other shards.",
)
@json_option
@pass_state
def add(
    state: AppState,
    name: str,
    patterns: tuple[str, ...],
    schema_ref: str,
    metadata_json: str | None,
    on_conflict: str,
) -> None:
    """Index existing shards as dataset NAME (each shard is counted and hashed).

    URL_OR_PATTERN is a path or fsspec URL, a brace pattern (data-{000..009}.tar) or a glob.
    The schema must be published first: `atdata-lite schema publish module:Class`.

    Example:

    \b
        atdata-lite add photos 'shards/photos-{000000..000009}.tar' --schema Photo
        atdata-lite add photos 's3://bucket/photos/*.tar' --schema Photo@1.0.0 \\
            --metadata '{"split": "train"}' --on-conflict replace
    """
    from ..shards import inspect_shard

    metadata = None
    if metadata_json is not None:
        try:
            metadata = json.loads(metadata_json)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--metadata") from exc
        if not isinstance(metadata, dict):
            raise click.BadParameter("must be a JSON object", param_hint="--metadata")
    index = state.index(create=True)
    ref = resolve_schema_ref(index, schema_ref, param_hint="--schema")
    index.get_schema(ref)  # a ref to a missing schema fails here, before any reading
    urls = expand_urls(patterns)
    with progress(urls, length=len(urls), label="hashing shards", unit="shard") as bar:
        records = [inspect_shard(url) for url in bar]
    entry = index.add_shards(
        records, name=name, schema_ref=ref, metadata=metadata, on_conflict=on_conflict
    )
    doc = entry_to_dict(entry)
    if state.json:
        echo_json(doc)
        return
    click.echo(
        f"indexed {escape_control(doc['name'])}: {_plural(doc['shard_count'], 'shard')}, "
        f"{'?' if doc['samples'] is None else doc['samples']} samples, "
        f"{format_size(doc['size'])} ({short_ref(doc['schema_ref'])})"
    )


# --- rm / mv --------------------------------------------------------------------------


def configured_stores(index: Any, extra: tuple[str, ...] = ()) -> list[Any]:
    """The stores inside which ``rm --delete-shards`` may delete: the default store
    (``$ATDATA_LITE_STORE``), the index's data store if it has one, and ``--store`` roots."""
    from ..stores import default_store

    stores: list[Any] = [default_store()]
    if getattr(index, "data_store", None) is not None:
        stores.append(index.data_store)
    stores.extend(extra)
    return stores


@cli.command()
@click.argument("name")
@click.option(
    "--delete-shards",
    is_flag=True,
    help="Also delete the shard files that no other dataset references: only files inside "
    "a store whose bytes still match the sha256 the index recorded; others are kept and "
    "listed with the reason.",
)
@click.option(
    "--store",
    "stores",
    multiple=True,
    metavar="ROOT",
    help="With --delete-shards: a further store root (path or URL) inside which shards may "
    "be deleted, besides the default store. Repeatable.",
)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@pass_state
def rm(state: AppState, name: str, delete_shards: bool, stores: tuple[str, ...], yes: bool) -> None:
    """Remove dataset NAME (every version) or NAME@VERSION from the index (its shards stay
    unless --delete-shards).

    Example:

    \b
        atdata-lite rm old-photos
        atdata-lite rm mnist@1.0.0
        atdata-lite rm old-photos --delete-shards --yes
    """
    from ..deletion import delete_shards as delete_files
    from ..deletion import plan_deletion, shards_in_use

    index = state.index()
    entry = get_entry(state, name)
    if index.backend.get_dataset(name) is None:
        # A ref (NAME@VERSION, NAME:LABEL): that one version goes.
        name = f"{entry.name}@{entry.version}"
        removed = [entry]
    else:
        removed = index.list_versions(name) or [entry]
    roots = configured_stores(index, stores) if delete_shards else []
    to_delete: list[Any] = []
    planned_kept: list[tuple[str, str]] = []
    if delete_shards:
        to_delete, planned_kept = plan_deletion(
            [s for e in removed for s in _shards(e)],
            stores=roots,
            in_use=shards_in_use(index, excluding=name),
        )
    if to_delete and not yes:
        shown = escape_control(name)
        if not is_tty(sys.stdin):
            raise CliError(
                f"Deleting {_plural(len(to_delete), 'shard file')} of {shown!r} needs "
                "confirmation; rerun with --yes to confirm without a terminal."
            )
        click.echo(
            f"{shown}: {_plural(len(to_delete), 'shard file')} will be deleted if their bytes "
            "still match the index:",
            err=True,
        )
        for shard in to_delete:
            click.echo(f"  {escape_control(shard.url)}", err=True)
        for url, reason in planned_kept:
            click.echo(f"  kept: {escape_control(url)}: {escape_control(reason)}", err=True)
        click.confirm("Remove the dataset and delete these files?", abort=True, err=True)
    # The entry goes first: if deleting a file fails afterwards, what is left is an orphan
    # file, never an entry pointing at missing shards.
    if "@" in name and index.backend.get_dataset(name) is None:
        index.delete_dataset(entry.name, entry.version)
    else:
        index.delete_dataset(name)
    kept = list(planned_kept)
    deleted: list[str] = []
    missing: list[str] = []
    failed: list[dict[str, str]] = []
    if to_delete:
        # Every check again, now that the entry is gone (another entry may have been added
        # meanwhile), plus the bytes of each file.
        report = delete_files(to_delete, stores=roots, in_use=shards_in_use(index, excluding=name))
        deleted, missing = report.deleted, report.missing
        kept.extend(report.kept)
        failed = [{"urls": url, "error": error} for url, error in report.failed]
    kept_order = {url: i for i, url in enumerate(entry.data_urls)}
    kept.sort(key=lambda k: kept_order.get(k[0], len(kept_order)))
    doc = {
        "removed": name,
        "cid": entry.cid,
        "deleted_shards": deleted,
        "missing_shards": missing,
        "kept_shards": [{"url": url, "reason": reason} for url, reason in kept],
        "failed": failed,
    }
    if state.json:
        echo_json(doc)
    else:
        click.echo(f"removed {escape_control(name)}")
        if deleted:
            click.echo(f"deleted {_plural(len(deleted), 'shard file')}")
        if missing:
            click.echo(f"{_plural(len(missing), 'shard file')} already missing")
        if kept:
            click.echo(f"kept {_plural(len(kept), 'shard file')}:")
            for url, reason in kept:
                click.echo(f"  {escape_control(url)}: {escape_control(reason)}")
    if failed:
        raise CliError(
            f"{name} was removed from the index, but deleting "
            f"{_plural(len(failed), 'shard file')} failed: {failed[0]['error']}. "
            f"Delete them by hand: {', '.join(f['urls'] for f in failed)}"
        )


@cli.command()
@click.argument("old")
@click.argument("new")
@json_option
@pass_state
def mv(state: AppState, old: str, new: str) -> None:
    """Rename dataset OLD to NEW (its CID and shards do not change).

    Example:

    \b
        atdata-lite mv photos photos-v1
    """
    from ..errors import DatasetNotFoundError

    try:
        entry = state.index().rename_dataset(old, new)
    except DatasetNotFoundError as exc:
        raise not_found(state, old) from exc
    if state.json:
        echo_json({"old": old, "new": entry.name, "cid": entry.cid})
    else:
        click.echo(f"renamed {escape_control(old)} -> {escape_control(entry.name)}")


# --- verify ---------------------------------------------------------------------------


def check_shard(shard: ShardRecord) -> dict[str, Any]:
    """Re-read one shard and compare it with the index (:func:`atdata_lite.verify.check_shard`)."""
    from ..verify import check_shard as check

    return check(shard)


@cli.command()
@click.argument("names", nargs=-1, metavar="[NAME]...")
@json_option
@wide_option
@pass_state
def verify(state: AppState, names: tuple[str, ...]) -> None:
    """Re-hash shards and compare size, sample count and sha256 with the index.

    Checks the named datasets, or all of them. Exit code 1 if any shard is not ok.
    Shard paths inside the store are shown relative to it.

    Example:

    \b
        atdata-lite verify
        atdata-lite verify photos --json
    """
    from ..verify import verify_datasets
    from ._cancel import cancellable

    index = state.index()
    names = tuple(dict.fromkeys(names))  # a name given twice is checked once
    entries = [get_entry(state, n) for n in names] if names else list(index.list_datasets())
    with cancellable() as cancel:
        report = verify_datasets(index, [e.name for e in entries], cancel=cancel)
    results = [c.to_dict() for c in report.shards]
    counts = {s: sum(r["status"] == s for r in results) for s in ("ok", "mismatch", "missing")}
    bad = counts["mismatch"] + counts["missing"]
    if state.json:
        echo_json({"ok": bad == 0, "counts": counts, "shards": results})
    else:
        if results:
            root = None if state.wide else _store_root(state)
            click.echo(
                render_table(
                    ["dataset", "shard", "status", "detail"],
                    [
                        [
                            r["dataset"],
                            short_path(r["url"], store_root=root) if root else r["url"],
                            r["status"],
                            "; ".join(r["problems"]),
                        ]
                        for r in results
                    ],
                    fit={"dataset": "end", "shard": "middle", "detail": "end"},
                    max_width=table_width(state.wide),
                    colours={
                        "ok": {"fg": "green"},
                        "mismatch": {"fg": "red", "bold": True},
                        "missing": {"fg": "red", "bold": True},
                    },
                )
            )
        click.echo(
            f"{_plural(len(entries), 'dataset')}, {_plural(len(results), 'shard')}: "
            f"{counts['ok']} ok, "
            f"{counts['mismatch']} mismatch, {counts['missing']} missing"
        )
    if bad:
        raise click.exceptions.Exit(1)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# --- preview --------------------------------------------------------------------------


def summarise_value(value: Any) -> Any:
    """Arrays become ``"ndarray shape=(32, 32, 3) dtype=uint8"``; long values are cut."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"ndarray shape={tuple(value.shape)} dtype={value.dtype}"
    if isinstance(value, bytes):
        return f"bytes[{len(value)}]"
    if isinstance(value, str) and len(value) > 80:
        return value[:77] + "..."
    if isinstance(value, list):
        if len(value) > 8:
            return [summarise_value(v) for v in value[:8]] + [f"... {len(value)} items"]
        return [summarise_value(v) for v in value]
    if isinstance(value, dict):
        return {k: summarise_value(v) for k, v in value.items()}
    return value


@cli.command()
@click.argument("name")
@click.option(
    "-n",
    "count",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="How many samples to print.",
)
@json_option
@pass_state
def preview(state: AppState, name: str, count: int) -> None:
    """Print the first samples of dataset NAME (arrays as shape and dtype).

    Example:

    \b
        atdata-lite preview demo -n 2
    """
    from ..errors import CorruptShardError, ShardNotFoundError
    from ._preview import first_samples

    index = state.index()
    entry = get_entry(state, name)
    try:
        samples = [
            {k: summarise_value(v) for k, v in sample.items()}
            for sample in first_samples(index, entry, count)
        ]
    except (CorruptShardError, ShardNotFoundError) as exc:
        raise CliError(
            f"{name}: {_first_sentence(str(exc))}. Check every shard with: "
            f"atdata-lite verify {name}"
        ) from exc
    if state.json:
        echo_json(samples)
        return
    for i, sample in enumerate(samples):
        if i:
            click.echo()
        click.echo(render_kv([(k, v) for k, v in sample.items()]))
