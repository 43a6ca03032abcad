"""``load_dataset``: a typed ``Dataset`` from a name in the index, or from files, in one call.

The shape is atdata's (``atdata.load_dataset``, after Hugging Face ``datasets``):

* ``load_dataset("@local/photos", split="train")`` returns a ``Dataset``;
* without ``split`` it returns a :class:`DatasetDict` (a ``dict`` of split name to
  ``Dataset``);
* ``"@local/NAME"`` reads the entry ``NAME`` of an index (the default index unless
  ``index=`` is given) and decodes its sample type from the stored schema unless
  ``sample_type`` is given; ``len()`` of the result works when the entry records its
  shards' sample counts. ``NAME`` is anything :meth:`Index.get_dataset
  <atdata_lite.index.api.Index.get_dataset>` resolves: ``"@local/mnist"`` (the latest
  version), ``"@local/mnist@1.2.0"`` (one version), ``"@local/mnist:stable"`` or
  ``"@local/mnist@stable"`` (a label). Each version decodes its own stored schema, so an
  old version loads with the sample type it was written with;
* anything else is a path or URL: a shard file, a brace pattern (``data-{000..009}.tar``),
  a glob (``data/*.tar``, local or remote), or a directory (every ``.tar`` below it). The
  files are grouped into splits by their names (see :func:`detect_split`).

Where this differs from atdata 0.2 (decisions, each a fix):

* ``index=`` is optional (atdata required it);
* asking for a split the data does not have raises ``ValueError`` naming the splits it has
  (atdata returned the single indexed dataset whatever split was asked for);
* the files of a brace pattern are grouped by split like any other list
  (``{train,test}.tar`` gives two splits, not one), globs work on remote filesystems, a
  directory is searched recursively, split names are detected in ``train.tar`` and
  ``data-train.tar`` too, and a missing file is reported when loading, not when reading;
* several files are kept as a list of URLs (atdata joined them into one brace pattern,
  which broke for some lists).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, overload

from ._paths import is_local_path
from .errors import ShardNotFoundError

if TYPE_CHECKING:
    from .dataset import Dataset
    from .index.api import Index
    from .index.entries import LocalDatasetEntry

__all__ = ["DatasetDict", "detect_split", "entry_splits", "load_dataset"]

_SPLIT_NAMES = {
    "train": ("train", "training"),
    "test": ("test", "testing"),
    "validation": ("validation", "valid", "val", "dev", "development"),
}
_REMOTE_PREFIXES = ("s3://", "gs://", "gcs://", "http://", "https://", "az://", "abfs://")


class DatasetDict(dict[str, "Dataset[Any]"]):
    """Datasets by split name (a ``dict``), as ``load_dataset`` returns without ``split``.

    Args:
        splits: ``{split_name: Dataset}``.
        sample_type: The sample type; ``None`` takes the first dataset's.
        streaming: Recorded for atdata compatibility (every dataset streams its shards).
    """

    def __init__(
        self,
        splits: Mapping[str, Dataset[Any]] | None = None,
        sample_type: type | None = None,
        streaming: bool = False,
    ) -> None:
        super().__init__(splits or {})
        self._sample_type = sample_type
        self.streaming = streaming

    @property
    def sample_type(self) -> type | None:
        """The sample type of the datasets (``None`` for an empty dict)."""
        if self._sample_type is not None:
            return self._sample_type
        for ds in self.values():
            return ds.sample_type
        return None

    @property
    def num_shards(self) -> dict[str, int]:
        """The number of shards of each split."""
        return {name: len(ds.list_shards()) for name, ds in self.items()}


def entry_splits(entry: LocalDatasetEntry) -> dict[str, list[str]]:
    """The splits of an index entry: ``{split_name: shard URLs}``.

    An entry written with named splits has them; any other entry is one split, ``"train"``,
    holding all of its shards.
    """
    return entry.splits or {"train": list(entry.data_urls)}


def detect_split(path: str) -> str | None:
    """The split a file belongs to, from its name, then from its directories.

    ``train``/``training`` -> ``"train"``; ``test``/``testing`` -> ``"test"``;
    ``validation``/``valid``/``val``/``dev``/``development`` -> ``"validation"``. A name
    counts as a whole word of the file name, separated by ``-``, ``_`` or ``.``
    (``train.tar``, ``data-train-000.tar``, ``val_0.tar``; not ``trainset.tar``), or as a
    whole directory name (``data/train/000.tar``). Returns ``None`` when nothing matches.
    """
    parts = re.split(r"[/\\]", path)
    stem = parts[-1].lower()
    words = set(re.split(r"[-_.]", stem))
    for split, names in _SPLIT_NAMES.items():
        if words & set(names):
            return split
    for directory in reversed(parts[:-1]):
        directory = directory.lower()
        for split, names in _SPLIT_NAMES.items():
            if directory in names:
                return split
    return None


def _group(urls: Sequence[str], base: str | None = None) -> dict[str, list[str]]:
    """Group URLs by :func:`detect_split`; ``base`` is left out of what is examined."""
    out: dict[str, list[str]] = {}
    for url in urls:
        rel = url[len(base) :].lstrip("/") if base and url.startswith(base) else url
        out.setdefault(detect_split(rel) or "train", []).append(url)
    return out


def _join(base: str, path: str) -> str:
    if not is_local_path(path) or os.path.isabs(path) or base.startswith(_REMOTE_PREFIXES):
        return path
    return os.path.join(base, path)


def _from_data_files(path: str, data_files: Any) -> dict[str, list[str]]:
    def files(value: Any) -> list[str]:
        items = [value] if isinstance(value, str | os.PathLike) else list(value)
        return [_join(path, os.fspath(v)) for v in items]

    if isinstance(data_files, Mapping):
        return {str(k): files(v) for k, v in data_files.items()}
    return {"train": files(data_files)}


def _resolve_files(path: str, storage_options: dict[str, Any] | None) -> dict[str, list[str]]:
    from .sources import expand_urls, url_to_fs

    if re.search(r"\{[^}]+\}", path):
        return _group(expand_urls(path))
    fs, fs_path = url_to_fs(path, storage_options)
    remote = not is_local_path(path)

    def url_of(p: str) -> str:
        return fs.unstrip_protocol(p) if remote else p

    if any(ch in path for ch in "*?["):
        matches = sorted(p for p in fs.glob(fs_path) if fs.isfile(p))
        return _group([url_of(p) for p in matches])
    if fs.isdir(fs_path):
        matches = sorted(p for p in fs.find(fs_path) if p.endswith(".tar"))
        base = url_of(fs_path.rstrip("/"))
        return _group([url_of(p) for p in matches], base)
    if not fs.exists(fs_path):
        raise ShardNotFoundError(
            f"No data files found at path: {path}. Give a shard file, a directory, a glob "
            "('data/*.tar') or a brace pattern, or '@local/NAME' for a dataset in the index."
        )
    split = detect_split(path) or "train"
    return {split: [path]}


def _open_index(index: Index | None) -> tuple[Index, bool]:
    if index is not None:
        return index, False
    from .index.api import Index

    return Index(), True


def _parse_indexed(path: str) -> str:
    body = path[1:]
    handle, sep, name = body.partition("/")
    if not sep or not handle or not name:
        raise ValueError(
            f"Invalid indexed path: {path!r}. Use '@local/NAME' for the dataset NAME in the index."
        )
    if handle != "local":
        raise ValueError(
            f"Cannot load {path!r}: atdata-lite reads local indexes only, so the handle must "
            f"be 'local' ('@local/{name}'), not {handle!r}."
        )
    return name


def _from_index(
    path: str,
    sample_type: type | None,
    index: Index | None,
    storage_options: dict[str, Any] | None,
) -> tuple[dict[str, Dataset[Any]], type]:
    from .dataset import Dataset

    name = _parse_indexed(path)
    idx, owned = _open_index(index)
    try:
        entry = idx.get_dataset(name)
        if sample_type is None:
            sample_type = idx.decode_schema(entry.schema_ref)
        if storage_options is None and entry.recorded_urls != entry.data_urls:
            # Shards inside the store open with the store's own options (credentials...).
            storage_options = getattr(idx.data_store, "storage_options", None)
    finally:
        if owned:
            idx.close()
    out: dict[str, Dataset[Any]] = {}
    # The entry itself is the source: the dataset knows each shard's recorded sha256 (the
    # shard cache verifies remote copies with it) and sample count (len()).
    named: list[str | None] = list(entry.splits)
    for split in named or [None]:
        out[split or "train"] = Dataset[sample_type](  # type: ignore[valid-type]
            entry, split=split, storage_options=storage_options
        )
    return out, sample_type


_S = TypeVar("_S")


# For type checkers: a split gives one Dataset (of sample_type when given), none a DatasetDict.
@overload
def load_dataset(
    path: str | os.PathLike[str],
    sample_type: type[_S],
    *,
    split: str,
    data_files: str | Sequence[str] | Mapping[str, str | Sequence[str]] | None = None,
    streaming: bool = False,
    index: Index | None = None,
    storage_options: dict[str, Any] | None = None,
    copy_arrays: bool = False,
) -> Dataset[_S]: ...
@overload
def load_dataset(
    path: str | os.PathLike[str],
    sample_type: None = None,
    *,
    split: str,
    data_files: str | Sequence[str] | Mapping[str, str | Sequence[str]] | None = None,
    streaming: bool = False,
    index: Index | None = None,
    storage_options: dict[str, Any] | None = None,
    copy_arrays: bool = False,
) -> Dataset[Any]: ...
@overload
def load_dataset(
    path: str | os.PathLike[str],
    sample_type: type | None = None,
    *,
    split: None = None,
    data_files: str | Sequence[str] | Mapping[str, str | Sequence[str]] | None = None,
    streaming: bool = False,
    index: Index | None = None,
    storage_options: dict[str, Any] | None = None,
    copy_arrays: bool = False,
) -> DatasetDict: ...
def load_dataset(
    path: str | os.PathLike[str],
    sample_type: type | None = None,
    *,
    split: str | None = None,
    data_files: str | Sequence[str] | Mapping[str, str | Sequence[str]] | None = None,
    streaming: bool = False,
    index: Index | None = None,
    storage_options: dict[str, Any] | None = None,
    copy_arrays: bool = False,
) -> Dataset[Any] | DatasetDict:
    """Load a dataset by name from an index, or from shard files.

    Args:
        path: ``"@local/NAME"`` for the entry ``NAME`` of the index (``NAME@VERSION`` or
            ``NAME:LABEL`` for one version of it); otherwise a shard file,
            a brace pattern, a glob or a directory (local or any fsspec URL), or the base
            directory of ``data_files``.
        sample_type: The sample type. ``None``: for an indexed dataset, the type decoded
            from its stored schema; for files, :class:`~atdata_lite.samples.DictSample`.
        split: Return this split's ``Dataset`` instead of a :class:`DatasetDict`.
        data_files: Files instead of a search of ``path``: one path, a list (the
            ``"train"`` split), or ``{split: path or list}``. Relative paths are joined to
            ``path`` unless it is a remote URL.
        streaming: Recorded on the ``DatasetDict`` (shards are always streamed).
        index: The index for ``@local/...`` paths; ``None`` opens the default index (and
            closes it again).
        storage_options: fsspec options for opening the shards (credentials, endpoint);
            ``None`` uses the index's data store's options for shards inside it.
        copy_arrays: Give every array field its own writable memory instead of a
            read-only view of the bytes read (see ``Dataset(copy_arrays=...)``).

    Returns:
        A ``Dataset`` when ``split`` is given, otherwise a ``DatasetDict``.

    Raises:
        DatasetNotFoundError: (a ``KeyError``) no entry has that name; for an unknown
            version or label, the message lists the versions and labels the name has.
        SchemaNotFoundError: (a ``KeyError``) the entry's schema is not in the index.
        ValueError: A malformed ``@`` path, or ``split`` is not one of the splits.
        ShardNotFoundError: (a ``FileNotFoundError``) no file matches ``path``.

    Example::

        train = atdata_lite.load_dataset("@local/photos", split="train")
        for batch in torch.utils.data.DataLoader(train, batch_size=64, num_workers=2):
            ...
    """
    from .dataset import Dataset
    from .samples import DictSample

    path = os.fspath(path)
    if path.startswith("@"):
        splits, sample_type = _from_index(path, sample_type, index, storage_options)
    else:
        if data_files is not None:
            files = _from_data_files(path, data_files)
        else:
            files = _resolve_files(path, storage_options)
        files = {k: v for k, v in files.items() if v}
        if not files:
            raise ShardNotFoundError(f"No data files found at path: {path}")
        sample_type = sample_type or DictSample
        splits = {
            name: Dataset[sample_type](urls, storage_options=storage_options)  # type: ignore[valid-type]
            for name, urls in files.items()
        }
    for dataset in splits.values():
        dataset.copy_arrays = copy_arrays
    if split is not None:
        if split not in splits:
            raise ValueError(f"Split {split!r} not found. Available splits: {sorted(splits)}")
        return splits[split]
    return DatasetDict(splits, sample_type=sample_type, streaming=streaming)
