"""``atdata-lite demo``: the main job, end to end, on a fresh machine.

It writes a few hundred typed samples (an image-like uint8 array, a label, a score) into
WebDataset shards in the default store, indexes them with their schema, reads them back and
says where everything is.

Re-running it replaces the dataset: the new shards go under a new prefix, the entry is
replaced in one step, and only then are the previous run's shards deleted (those no other
entry references). So a re-run never leaves an entry pointing at missing files, and never
piles up orphan shards.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import click

from ._app import AppState, CliError, cli, json_option, pass_state
from ._output import echo_json, format_size, render_kv

__all__ = ["demo"]


def _run_prefix(name: str) -> str:
    # A new prefix per run: the previous run's shards stay intact until the entry is replaced.
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{name}/{stamp}-{uuid.uuid4().hex[:6]}"


_DEMO_SOURCE = "atdata-lite demo"


def _written_by_demo(entry: Any) -> bool:
    metadata = entry.metadata
    return isinstance(metadata, dict) and metadata.get("source") == _DEMO_SOURCE


@cli.command()
@click.option("--name", default="demo", show_default=True, help="The dataset's name.")
@click.option(
    "--samples",
    "count",
    type=click.IntRange(min=1, max=100_000),
    default=300,
    show_default=True,
    help="How many samples to write.",
)
@click.option(
    "--shard-size",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Samples per shard.",
)
@json_option
@pass_state
def demo(state: AppState, name: str, count: int, shard_size: int) -> None:
    """Write a small typed dataset to the default store, index it and read it back.

    Run it again to replace the dataset (its old shards are deleted); a dataset NAME that
    demo did not write is never replaced.

    Example:

    \b
        atdata-lite demo
        atdata-lite demo --name demo2 --samples 1000 --shard-size 250
    """
    from ..dataset import Dataset
    from ..deletion import delete_shards, shards_in_use
    from ..errors import DatasetNotFoundError, InvalidPrefixError
    from ..shards import remove_shards, write_samples
    from ..stores import default_store, validate_prefix
    from ._demo_sample import DemoImage, make_samples
    from .datasets import _plural

    try:
        validate_prefix(name)
    except InvalidPrefixError:
        # The name is also the store directory and the shard file names.
        raise click.BadParameter(
            f"{name!r} cannot name the demo's files: use letters, digits and '_.-=+@' "
            "(e.g. demo2).",
            param_hint="--name",
        ) from None
    index = state.index(create=True)
    store = default_store()
    try:
        previous = index.get_dataset(name)
    except DatasetNotFoundError:
        previous = None
    if previous is not None and not _written_by_demo(previous):
        # Replacing would also delete its shards: only ever do that to an earlier demo run.
        raise CliError(
            f"A dataset named {name!r} already exists in {state.display_location} and was "
            f"not written by `atdata-lite demo`; choose another --name, or remove it first "
            f"with: atdata-lite rm {name}"
        )

    # The schema that matches DemoImage's content (published on the first run only).
    schema_ref = index.schema_ref_for_type(DemoImage)
    prefix = validate_prefix(_run_prefix(name))
    pattern = f"{store.root_url.replace('%', '%%')}/{prefix}/{name}-%06d.tar"
    records = write_samples(
        make_samples(count),
        pattern,
        maxcount=shard_size,
        storage_options=store.storage_options,
    )
    try:
        entry = index.add_shards(
            records,
            name=name,
            schema_ref=schema_ref,
            metadata={"source": _DEMO_SOURCE, "samples": count},
            on_conflict="replace",
        )
    except BaseException:
        # Nothing indexed: leave no orphan shards behind.
        remove_shards([r.url for r in records], storage_options=store.storage_options)
        raise

    # Read back through the index, as a user would.
    sample_type = index.decode_schema(entry.schema_ref)
    read = 0
    first: Any = None
    # The subscript is a class known only at run time, which type checkers cannot follow.
    dataset = Dataset[sample_type](entry.data_urls, storage_options=store.storage_options)  # type: ignore[valid-type]
    for sample in dataset.ordered():
        if first is None:
            first = sample
        read += 1
    if read != count:
        raise click.ClickException(f"wrote {count} samples but read back {read}")

    removed_old: list[str] = []
    if previous is not None and previous.data_urls != entry.data_urls:
        # The same checks as `rm --delete-shards`: only matching shards inside the store,
        # and none that another entry (the new one included) still uses.
        removed_old = delete_shards(
            previous.shards, stores=[store], in_use=shards_in_use(index)
        ).deleted

    size = sum(r.size or 0 for r in records)
    doc: dict[str, Any] = {  # a JSON document
        "name": entry.name,
        "cid": entry.cid,
        "schema_ref": entry.schema_ref,
        "index": state.display_location,
        "store": store.root_url,
        "prefix": prefix,
        "samples_written": count,
        "samples_read": read,
        "size": size,
        "shards": entry.data_urls,
        "replaced_previous": previous is not None,
        "deleted_previous_shards": removed_old,
        "first_sample": {
            "image": f"ndarray shape={tuple(first.image.shape)} dtype={first.image.dtype}",
            "label": first.label,
            "score": first.score,
        },
    }
    if state.json:
        echo_json(doc)
        return
    click.echo(
        f"Wrote {count} DemoImage samples (image uint8[32,32,3], label, score) "
        f"into {_plural(len(records), 'shard')}, {format_size(size)}."
    )
    pairs = [
        ("dataset", entry.name),
        ("schema", entry.schema_ref),
        ("index", state.display_location),
        ("shards", f"{doc['store'].rstrip('/')}/{prefix}/"),
        ("read back", f"{read} samples, first: label={first.label} score={first.score}"),
    ]
    if previous is not None:
        pairs.append(("replaced", f"the previous {name!r} ({len(removed_old)} old shards deleted)"))
    click.echo(render_kv(pairs))
    click.echo()
    click.echo(
        f"Next: atdata-lite ls; atdata-lite show {name}; atdata-lite verify {name}; "
        f"atdata-lite preview {name}"
    )
