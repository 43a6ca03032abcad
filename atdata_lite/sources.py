"""Where shards come from: URLs on any fsspec filesystem, with a URL scheme policy.

Every URL is opened through fsspec (``fsspec.core.url_to_fs``), so local paths, ``file://``,
``memory://``, ``s3://``, ``gs://``, ``http(s)://`` and chained URLs (``simplecache::s3://``)
all work, with the caller's ``storage_options`` passed through untouched. WebDataset's
``pipe:`` URLs (which run a shell command) and schemes fsspec does not know are refused.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from typing import IO, Any, Protocol, cast, runtime_checkable

from braceexpand import braceexpand

from .errors import (
    BackendUnavailableError,
    CorruptShardError,
    ShardNotFoundError,
    UnsafeURLError,
)

__all__ = [
    "DataSource",
    "URLSource",
    "check_url",
    "expand_urls",
    "open_url",
    "refuse_special_file",
    "url_to_fs",
]


@runtime_checkable
class DataSource(Protocol):
    """Protocol for sources that provide shard streams to ``Dataset``.

    ``shards`` yields ``(identifier, stream)`` pairs fed straight to WebDataset's tar
    expander; ``open_shard`` gives random access, which DataLoader worker splitting needs.
    """

    @property
    def shards(self) -> Iterator[tuple[str, IO[bytes]]]:
        """Lazily yield ``(identifier, file_like_stream)`` for each shard."""
        ...

    def list_shards(self) -> list[str]:
        """Shard identifiers, without opening streams."""
        ...

    def open_shard(self, shard_id: str) -> IO[bytes]:
        """Open one shard by its identifier.

        Raises:
            KeyError: If ``shard_id`` is not one of :meth:`list_shards`.
        """
        ...


# A URL scheme (two characters or more, so that Windows drive letters stay paths).
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+):")


def check_url(url: str) -> str:
    """Refuse URLs atdata-lite will not open, and return ``url`` unchanged otherwise.

    Raises:
        UnsafeURLError: ``pipe:`` URLs (they run shell commands), and any scheme that no
            installed fsspec implementation handles.
    """
    if not isinstance(url, str) or not url:
        raise UnsafeURLError(f"Invalid shard URL {url!r}: expected a non-empty string.")
    for part in url.split("::"):
        match = _SCHEME.match(part)
        if match is None:
            continue  # a plain path
        scheme = match.group(1).lower()
        if scheme == "store":
            raise UnsafeURLError(
                f"Cannot open {url!r} directly: store:// URLs are relative to a data store's "
                "root. Read the dataset through its index (atdata_lite.load_dataset or "
                "Index.get_dataset(...).data_urls), which resolves them."
            )
        if scheme == "pipe":
            raise UnsafeURLError(
                f"Refusing to open {url!r}: 'pipe:' URLs run shell commands. Give the "
                "shard's real location (a path or an fsspec URL such as s3://...)."
            )
        from fsspec.registry import known_implementations, registry

        if scheme not in known_implementations and scheme not in registry:
            raise UnsafeURLError(
                f"Refusing to open {url!r}: no fsspec filesystem handles {scheme!r} URLs. "
                "Use a local path or an fsspec URL (file://, memory://, s3://, gs://, "
                "https://, ...); install the matching package (e.g. s3fs) if needed."
            )
    return url


def url_to_fs(url: str, storage_options: dict[str, Any] | None = None) -> tuple[Any, str]:
    """Check ``url`` and return ``(filesystem, path)`` for it through fsspec.

    Raises:
        UnsafeURLError: The URL is refused (see :func:`check_url`), or its filesystem cannot
            be set up from the URL alone (``reference://`` needs a reference set).
        BackendUnavailableError: The package for the URL's scheme is not installed.
    """
    import fsspec.core

    check_url(url)
    try:
        return cast(tuple[Any, str], fsspec.core.url_to_fs(url, **(storage_options or {})))
    except ImportError as exc:
        raise BackendUnavailableError(
            f"Cannot open {url!r}: {exc}. Install the package that handles this URL scheme."
        ) from exc
    except (TypeError, ValueError) as exc:
        # Schemes fsspec knows but that need more than a URL (reference://, dir://, ...),
        # or a URL their filesystem cannot parse.
        raise UnsafeURLError(
            f"Cannot open {url!r}: its filesystem could not be set up from the URL alone "
            f"({type(exc).__name__}: {exc}). Give a shard's own location: a path or a URL "
            "such as file://, s3://, gs://, https://."
        ) from exc


def _protocols(fs: Any) -> set[str]:
    return set(fs.protocol if isinstance(fs.protocol, tuple | list) else (fs.protocol,))


def refuse_special_file(url: str) -> None:
    """Refuse a local path that exists but is not a regular file or a directory.

    Reading a FIFO blocks until something writes to it, and a device such as ``/dev/zero``
    never ends, so both are refused before anything opens them. Remote URLs and missing
    paths pass (opening them gives the usual errors).

    Raises:
        CorruptShardError: ``url`` is a local FIFO, device or socket.
    """
    from .locations import is_local, local_path

    if is_local(url):
        _check_regular_file(url, local_path(url))


def _check_regular_file(url: str, path: str) -> None:
    import stat

    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # missing or unreadable: opening it says so
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return  # a directory: opening it gives the usual "is a directory" error
    kind = (
        "a FIFO"
        if stat.S_ISFIFO(mode)
        else "a device"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "a special file"
    )
    raise CorruptShardError(
        f"Cannot read {url}: it is {kind}, not a regular file. A shard is a regular .tar "
        "file; give the path of one."
    )


def open_url(url: str, mode: str = "rb", storage_options: dict[str, Any] | None = None) -> IO[Any]:
    """Open ``url`` through fsspec.

    Args:
        url: A path or fsspec URL (not ``pipe:``).
        mode: File mode, ``"rb"`` by default.
        storage_options: Passed to the filesystem unchanged (credentials, endpoint, ...).

    Returns:
        An open file object; close it (or use ``with``).

    Raises:
        UnsafeURLError: The URL is refused.
        ShardNotFoundError: Reading, and nothing exists at ``url``.
        CorruptShardError: Reading a local path that is not a regular file (a FIFO or a
            device such as ``/dev/zero``): refused before opening, which could block or
            never end.
    """
    if mode == "rb" and _SCHEME.match(url) is None and "::" not in url:
        return _open_plain_path(check_url(url))
    fs, path = url_to_fs(url, storage_options)
    if "r" in mode and "file" in _protocols(fs):
        _check_regular_file(url, path)
    try:
        return cast(IO[Any], fs.open(path, mode))  # fsspec is untyped
    except FileNotFoundError as exc:
        raise ShardNotFoundError(
            f"Shard not found: {url}. Check the URL (and storage_options for remote "
            "filesystems), or re-create the shard."
        ) from exc
    except IsADirectoryError as exc:
        raise ShardNotFoundError(f"Shard not found: {url} is a directory, not a file.") from exc


def _open_plain_path(url: str) -> IO[bytes]:
    """Open a plain local path for reading with the standard library: the same file fsspec's
    local filesystem would give, without importing fsspec (a process that only reads local
    shards starts faster)."""
    path = os.path.expanduser(url)
    _check_regular_file(url, path)
    try:
        return open(path, "rb")  # the caller closes it
    except FileNotFoundError as exc:
        raise ShardNotFoundError(
            f"Shard not found: {url}. Check the path, or re-create the shard."
        ) from exc
    except IsADirectoryError as exc:
        raise ShardNotFoundError(f"Shard not found: {url} is a directory, not a file.") from exc


def expand_urls(url_or_urls: str | os.PathLike[str] | Sequence[str]) -> list[str]:
    """Expand brace patterns (``shard-{000..009}.tar``) in one URL or a list of URLs."""
    if isinstance(url_or_urls, str | os.PathLike):
        items = [os.fspath(url_or_urls)]
    else:
        items = [os.fspath(u) for u in url_or_urls]
    out: list[str] = []
    for item in items:
        out.extend(braceexpand(item))
    return out


class URLSource:
    """Shards named by URLs: one URL, a brace pattern, or a list of either.

    Args:
        url_or_urls: ``"data/shard-{000..009}.tar"``, ``"s3://b/x.tar"``, or a list.
        storage_options: fsspec options for opening the shards (credentials, endpoint...).

    Raises:
        UnsafeURLError: A URL is refused (``pipe:``, unknown scheme).
    """

    def __init__(
        self,
        url_or_urls: str | os.PathLike[str] | Sequence[str],
        *,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        self.url = (
            os.fspath(url_or_urls)
            if isinstance(url_or_urls, str | os.PathLike)
            else [os.fspath(u) for u in url_or_urls]
        )
        self.storage_options = dict(storage_options or {})
        self._shards = expand_urls(url_or_urls)
        for u in self._shards:
            check_url(u)
        self._known = frozenset(self._shards)

    def list_shards(self) -> list[str]:
        """The shard URLs in order (braces expanded)."""
        return list(self._shards)

    @property
    def shard_list(self) -> list[str]:
        """Legacy alias of :meth:`list_shards`."""
        return self.list_shards()

    @property
    def shards(self) -> Iterator[tuple[str, IO[bytes]]]:
        """Yield ``(url, stream)`` for each shard, opening them one at a time."""
        for url in self._shards:
            yield url, self.open_shard(url)

    def open_shard(self, shard_id: str) -> IO[bytes]:
        """Open one shard.

        Raises:
            KeyError: ``shard_id`` is not one of this source's shards.
            ShardNotFoundError: The shard does not exist.
        """
        if shard_id not in self._known:
            raise KeyError(f"Shard not found: {shard_id}")
        return open_url(shard_id, "rb", self.storage_options)

    def __repr__(self) -> str:
        return f"URLSource({self.url!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, URLSource):
            return NotImplemented
        return self._shards == other._shards and self.storage_options == other.storage_options

    __hash__ = None  # type: ignore[assignment]
