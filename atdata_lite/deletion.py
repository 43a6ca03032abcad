"""Deleting the shard files of index entries, only when they are provably ours.

An index entry is a list of URLs, and an index can come from anywhere (an imported catalog,
a shared PostgreSQL database, an old file): it may name ``~/.ssh/id_ed25519``. So
:func:`delete_shards` deletes a file only when every one of these holds:

1. it is inside one of the given stores, after normalising the location
   (:func:`~atdata_lite.locations.normalise_location`: ``..`` and symbolic links resolved, so
   neither can lead out of the store), and the URL is absolute;
2. no other entry still uses it, however that entry spells the URL;
3. its name is a shard's (``.tar``, ``.tar.gz``, ``.tgz``), and it is a regular file, not a
   symbolic link, a directory, a FIFO or a device;
4. the index recorded its sha256, and the file's bytes still hash to it (and its size and
   sample count match what was recorded) when it is deleted; it is read as a shard to check.

Any file that fails a check is kept, and the report says which check and why. A shard
whose sha256 was never recorded (entries imported from atdata, or indexed by URL with
``add_entry``) is always kept: nothing shows that the file is still the one that was indexed.
``atdata-lite add`` and every write through a store record the sha256.

Files already missing are reported as missing. What remains is a small window between the
last check and the delete in which another process could replace the file; the file's
identity (device, inode, size, mtime) is compared again just before deleting to narrow it.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .index.backend import ShardRecord
from .locations import is_inside, is_local, local_path, normalise_location

__all__ = ["SHARD_SUFFIXES", "DeletionReport", "delete_shards", "plan_deletion", "shards_in_use"]

SHARD_SUFFIXES = (".tar", ".tar.gz", ".tgz")
# A brace pattern in another entry (atdata stored some) is expanded to see what it uses;
# past this many files, the whole directory it names counts as in use.
_MAX_PATTERN_FILES = 10_000
_NO_SHA256 = (
    "no sha256 recorded, so nothing shows the file is still the one that was indexed; "
    "delete it by hand if it is yours"
)


@dataclass
class DeletionReport:
    """What :func:`delete_shards` did with each shard.

    Attributes:
        deleted: URLs of the files deleted.
        missing: URLs of files that were already gone.
        kept: ``(url, reason)`` for every file kept because a check failed.
        failed: ``(url, error)`` for every file whose deletion was attempted and failed.
    """

    deleted: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    kept: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _Store:
    url: str
    root: str  # normalised
    storage_options: dict[str, Any] | None


@dataclass
class _InUse:
    exact: dict[str, str] = field(default_factory=dict)  # normalised location -> name
    below: dict[str, str] = field(default_factory=dict)  # normalised directory -> name

    def user(self, location: str) -> str | None:
        if location in self.exact:
            return self.exact[location]
        for directory, name in self.below.items():
            if is_inside(location, directory):
                return name
        return None


def _stores(stores: Iterable[Any], storage_options: dict[str, Any] | None) -> list[_Store]:
    out = []
    for store in stores:
        if isinstance(store, str | os.PathLike):
            url, options = os.fspath(store), storage_options
        else:  # a data store object (FsspecDataStore or atdata-style, with root_url)
            url = getattr(store, "root_url", None)
            if not isinstance(url, str):
                continue
            options = getattr(store, "storage_options", None) or storage_options
        out.append(_Store(url, normalise_location(url), options))
    return out


def _in_use(in_use: Mapping[str, str] | Iterable[str]) -> _InUse:
    from braceexpand import braceexpand

    pairs = in_use.items() if isinstance(in_use, Mapping) else ((u, "") for u in in_use)
    result = _InUse()
    for url, name in pairs:
        if "{" not in url:
            result.exact.setdefault(normalise_location(url), name)
            continue
        expanded = []
        for i, part in enumerate(braceexpand(url)):
            if i >= _MAX_PATTERN_FILES:
                directory = url.split("{", 1)[0].rsplit("/", 1)[0] or "/"
                result.below.setdefault(normalise_location(directory), name)
                break
            expanded.append(part)
        else:
            for part in expanded:
                result.exact.setdefault(normalise_location(part), name)
    return result


def shards_in_use(index: Any, *, excluding: str | None = None) -> dict[str, str]:
    """Every shard URL the entries of ``index`` use, mapped to the name of one entry using it.

    Args:
        index: An :class:`~atdata_lite.index.Index`.
        excluding: What to leave out (what is being removed): a dataset name (every
            version of it) or ``name@version`` (that version only).

    Returns:
        ``{url: dataset name}``, URLs as stored (give it to :func:`delete_shards`, which
        compares normalised locations).
    """
    used: dict[str, str] = {}
    for entry in index.list_datasets():
        if excluding is not None and excluding in (
            entry.name,
            f"{entry.name}@{getattr(entry, 'version', None)}",
        ):
            continue
        for url in entry.data_urls:
            used.setdefault(url, entry.name)
    return used


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _cheap_reason(
    shard: ShardRecord, stores: list[_Store], in_use: _InUse
) -> tuple[str | None, _Store | None, str]:
    """Checks that read no file: ``(reason to keep or None, its store, normalised location)``."""
    from .errors import UnsafeURLError
    from .sources import check_url

    url = shard.url
    if "{" in url:
        return "a brace pattern, not one file; delete its files by hand", None, ""
    try:
        check_url(url)
    except UnsafeURLError as exc:
        return f"refused URL: {exc}", None, ""
    if is_local(url) and not os.path.isabs(local_path(url)):
        return "a relative path (what it names depends on the working directory)", None, ""
    location = normalise_location(url)
    store = next((s for s in stores if is_inside(location, s.root)), None)
    if store is None:
        roots = ", ".join(s.url for s in stores) or "none given"
        return f"outside every store (stores: {roots})", None, location
    user = in_use.user(location)
    if user is not None:
        return f"still used by dataset {user!r}" if user else "still used", store, location
    if not location.lower().endswith(SHARD_SUFFIXES):
        return f"not a shard file name (shards end in {', '.join(SHARD_SUFFIXES)})", store, location
    if not shard.sha256:
        return _NO_SHA256, store, location
    return None, store, location


def plan_deletion(
    shards: Sequence[ShardRecord],
    *,
    stores: Iterable[Any],
    in_use: Mapping[str, str] | Iterable[str] = (),
    storage_options: dict[str, Any] | None = None,
) -> tuple[list[ShardRecord], list[tuple[str, str]]]:
    """Sort shards into deletion candidates and files to keep, without reading any file.

    The checks that need no file contents (location, other entries, name, recorded sha256)
    are made here, e.g. to ask for confirmation; :func:`delete_shards` makes them again,
    then checks each file's bytes.

    Args:
        shards: The shards of the entry being removed.
        stores: The store roots (URLs, paths, or data store objects with ``root_url``)
            inside which files may be deleted.
        in_use: URLs other entries still use (or ``{url: dataset name}``), in any spelling.
        storage_options: fsspec options for stores given as URLs.

    Returns:
        ``(candidates, kept)``: the shards that pass these checks (each location once), and
        ``(url, reason)`` for the others.
    """
    roots = _stores(stores, storage_options)
    used = _in_use(in_use)
    candidates: list[ShardRecord] = []
    kept: list[tuple[str, str]] = []
    seen: set[str] = set()
    for shard in shards:
        reason, _, location = _cheap_reason(shard, roots, used)
        if reason is None:
            if location in seen:  # one file named twice: handled once
                continue
            seen.add(location)
        if reason is None:
            candidates.append(shard)
        else:
            kept.append((shard.url, reason))
    return candidates, kept


def _bytes_reason(shard: ShardRecord, actual: ShardRecord) -> str | None:
    if shard.size is not None and actual.size != shard.size:
        return f"size {actual.size}, but {shard.size} was recorded: the file changed"
    if actual.sha256 != shard.sha256:
        return "its sha256 differs from the recorded one: the file changed"
    if shard.sample_count is not None and actual.sample_count != shard.sample_count:
        return f"{actual.sample_count} samples, but {shard.sample_count} were recorded"
    return None


def _inspect(url: str, storage_options: dict[str, Any] | None) -> ShardRecord | str:
    from .errors import AtdataLiteError
    from .shards import inspect_shard

    try:
        return inspect_shard(url, storage_options=storage_options)
    except (AtdataLiteError, OSError) as exc:
        return f"not a readable shard ({' '.join(str(exc).split())})"


def _remove(fs: Any, path: str) -> None:
    """Delete one file (a seam for tests that simulate a failing delete)."""
    if fs is None:
        os.unlink(path)
    else:
        fs.rm_file(path)


def _delete_local(shard: ShardRecord, location: str) -> str | None:
    """Check and delete one local file; return ``"missing"``, a reason to keep, or None."""
    written = os.path.normpath(os.path.abspath(local_path(shard.url)))
    # The directories resolved, the last component not: a symbolic link stays one.
    unresolved = os.path.join(os.path.realpath(os.path.dirname(written)), os.path.basename(written))
    try:
        before = os.lstat(unresolved)
    except FileNotFoundError:
        return "missing"
    if stat.S_ISLNK(before.st_mode) or unresolved != location:
        return "a symbolic link; only the files of a store are deleted, never what links name"
    if not stat.S_ISREG(before.st_mode):
        return f"{_kind(before.st_mode)}, not a regular file"
    if shard.size is not None and before.st_size != shard.size:
        return f"size {before.st_size}, but {shard.size} was recorded: the file changed"
    actual = _inspect(location, None)
    if isinstance(actual, str):
        return actual
    reason = _bytes_reason(shard, actual)
    if reason is not None:
        return reason
    after = os.lstat(location)
    identity = ("st_dev", "st_ino", "st_size", "st_mtime_ns")
    if any(getattr(before, a) != getattr(after, a) for a in identity):
        return "it changed while it was being checked"
    _remove(None, location)
    return None


def _delete_remote(shard: ShardRecord, store: _Store) -> str | None:
    from .sources import url_to_fs

    target = shard.url.split("::")[-1]
    fs, path = url_to_fs(target, store.storage_options)
    stripped = path.strip("/")
    if posixpath.normpath("/" + stripped).lstrip("/") != stripped:
        # An object store takes "p/../g.tar" as a literal key, outside what was checked.
        return "the URL has '.', '..' or repeated '/' segments; delete it by hand"
    try:
        info = fs.info(path)
    except FileNotFoundError:
        return "missing"
    if info.get("type") != "file":
        return f"a {info.get('type') or 'non-file'}, not a shard file"
    actual = _inspect(target, store.storage_options)
    if isinstance(actual, str):
        return actual
    reason = _bytes_reason(shard, actual)
    if reason is not None:
        return reason
    _remove(fs, path)
    return None


def delete_shards(
    shards: Sequence[ShardRecord],
    *,
    stores: Iterable[Any],
    in_use: Mapping[str, str] | Iterable[str] = (),
    storage_options: dict[str, Any] | None = None,
) -> DeletionReport:
    """Delete the files of ``shards`` that are provably the indexed shards of a store.

    See the module documentation for the checks; a file failing any of them is kept.

    Args:
        shards: Shard records as the index holds them (with their sha256).
        stores: Store roots (URLs, paths, or data store objects with ``root_url`` and
            ``storage_options``) inside which files may be deleted.
        in_use: URLs other entries still use (or ``{url: dataset name}`` to name them in
            the report), in any spelling; see :func:`shards_in_use`.
        storage_options: fsspec options for stores given as URLs.

    Returns:
        A :class:`DeletionReport`. Errors while deleting a file are reported in
        ``failed``, not raised, so that one bad file does not hide what happened to others.

    Example:
        >>> report = delete_shards(entry.shards, stores=[default_store()])  # doctest: +SKIP
    """
    roots = _stores(stores, storage_options)
    used = _in_use(in_use)
    report = DeletionReport()
    seen: set[str] = set()
    for shard in shards:
        reason, store, location = _cheap_reason(shard, roots, used)
        if reason is None:
            if location in seen:  # one file named twice: handled once
                continue
            seen.add(location)
        if reason is None:
            assert store is not None
            try:
                if is_local(shard.url):
                    reason = _delete_local(shard, location)
                else:
                    reason = _delete_remote(shard, store)
            except Exception as exc:
                report.failed.append((shard.url, " ".join(str(exc).split()) or repr(exc)))
                continue
        if reason is None:
            report.deleted.append(shard.url)
        elif reason == "missing":
            report.missing.append(shard.url)
        else:
            report.kept.append((shard.url, reason))
    return report
