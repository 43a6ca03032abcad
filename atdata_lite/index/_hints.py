"""What a "not found" message adds: close matches among the stored names, and what to run.

Each function returns the advice appended to a ``DatasetNotFoundError`` or
``SchemaNotFoundError`` (after atdata's own message, which code matches on). They run when
the message is read, not when the error is raised, and look at no more than
:data:`MAX_NAMES` stored names, so the cost of a hint stays bounded on a large index.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from functools import partial
from itertools import islice
from typing import Any

from ..errors import DatasetNotFoundError
from .backend import IndexBackend

__all__ = [
    "MAX_NAMES",
    "cid_hint",
    "close_dataset_names",
    "dataset_name_hint",
    "no_entry_named",
    "schema_hint",
    "versions_hint",
]

#: How many stored names a hint compares against (the first ones, in name order).
MAX_NAMES = 2_000
#: How many versions of a name a hint lists (the latest ones).
MAX_VERSIONS = 20

_LIST_DATASETS = "List the entries with `atdata-lite ls` (or Index.list_datasets())."
_LIST_SCHEMAS = "List them with `atdata-lite schemas` (or Index.list_schemas())."


def _name(cid: Any, name: str, *_: Any) -> str:
    return name


def _close(wanted: str, names: Iterable[str]) -> list[str]:
    return difflib.get_close_matches(str(wanted), list(dict.fromkeys(names)), n=3, cutoff=0.6)


def _did_you_mean(wanted: str, names: Iterable[str]) -> str:
    matches = _close(wanted, names)
    if not matches:
        return ""
    return f"Did you mean {' or '.join(repr(m) for m in matches)}? "


def close_dataset_names(backend: IndexBackend, name: str) -> list[str]:
    """Up to three stored dataset names close to ``name``, closest first (may be empty)."""
    return _close(name, _dataset_names(backend))


def _dataset_names(backend: IndexBackend) -> list[str]:
    names = backend.iter_datasets_as(_name)
    try:
        return [n for n in islice(names, MAX_NAMES) if n is not None]
    finally:
        close = getattr(names, "close", None)  # stop a streaming cursor early
        if close is not None:
            close()


def dataset_name_hint(backend: IndexBackend, name: str) -> str:
    """Advice for a dataset name no entry has.

    Returns:
        ``"Did you mean 'images'? List the entries with `atdata-lite ls` ..."`` (the first
        sentence only when a stored name is close to ``name``).
    """
    versions = versions_hint(backend, str(name))
    if versions:
        return versions
    names = _dataset_names(backend)
    if not names:
        return "The index has no entries yet: add one with Index.add_entry or `atdata-lite add`."
    return _did_you_mean(str(name), names) + _LIST_DATASETS


def no_entry_named(backend: IndexBackend, name: str) -> DatasetNotFoundError:
    """The error for a dataset name no entry has: atdata's message, then the advice."""
    return DatasetNotFoundError(
        f"No entry with name: {name}", hint=partial(dataset_name_hint, backend, name)
    )


def versions_hint(backend: IndexBackend, ref: str) -> str:
    """Advice for ``name@version`` or ``name:label`` when ``name`` exists but that does not.

    Returns:
        ``"Versions of 'mnist': 1.2.0, 1.3.0 (latest 1.3.0); labels: stable -> 1.2.0. ..."``
        (at most :data:`MAX_VERSIONS` versions, the latest ones), or ``""`` when ``ref``
        names no version or label, or its name has neither versions nor labels.
    """
    from ._versions import split_ref

    name, version, label = split_ref(ref)
    if version is None and label is None:
        return ""
    rows = backend.iter_versions(name)
    labels = [lab for lab in backend.iter_labels(name) if lab.name == name and lab.version]
    if not rows and not labels:
        return ""
    # Stored records always have a version (the field is optional only on input).
    by_cid = {r.cid: str(r.version) for r in rows}
    parts = []
    if rows:
        shown = [str(r.version) for r in rows[-MAX_VERSIONS:]]
        more = f" (and {len(rows) - len(shown)} older)" if len(rows) > len(shown) else ""
        parts.append(
            f"Versions of {name!r}: {', '.join(shown)}{more}; the latest is {rows[-1].version}."
        )
    else:
        parts.append(f"{name!r} has no dataset versions, only labels.")
    if labels:
        tags = ", ".join(f"{lab.version} -> {by_cid.get(lab.cid, lab.cid)}" for lab in labels)
        parts.append(f"Labels: {tags}.")
    example = rows[-1].version if rows else labels[0].version
    parts.append(
        f"Ask for one as '{name}@{example}' (a label as '{name}:LABEL'); "
        f"`atdata-lite log {name}` shows the history."
    )
    return " ".join(parts)


def cid_hint(backend: IndexBackend, cid: str) -> str:
    """Advice for a CID no entry has (it may be a name given where a CID was expected)."""
    if isinstance(cid, str) and backend.get_dataset(cid) is not None:
        return f"An entry is named {cid!r}: look it up by name with get_dataset({cid!r})."
    return (
        "No entry has that content id; `atdata-lite ls --json` shows each entry's CID, and "
        "get_dataset(name) looks an entry up by name."
    )


def schema_hint(backend: IndexBackend, name: str, version: str) -> str:
    """Advice for ``name@version`` when nothing is published under it.

    Returns:
        The versions of ``name`` that are published, or the close schema names, and how to
        list every schema.
    """
    rows = list(islice(backend.iter_schemas(), MAX_NAMES))
    versions = [r.version for r in rows if r.name == name]
    if versions:
        return f"Published versions of {name}: {', '.join(versions)}. {_LIST_SCHEMAS}"
    return _did_you_mean(name, (r.name for r in rows)) + _LIST_SCHEMAS
