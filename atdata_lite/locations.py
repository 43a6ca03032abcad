"""One normal form for shard locations, so that two spellings of one file compare equal.

``/p/g.tar``, ``file:///p/g.tar``, ``/p/./g.tar``, ``/p//g.tar`` and ``/p/sub/../g.tar`` all
name one file, and a symbolic link names the file it points to. Everything in atdata-lite
that asks "is this the same shard?" or "is this inside that store?" compares
:func:`normalise_location` results, never the URL strings as written.

This module imports nothing heavy; fsspec is only imported for remote URLs.
"""

from __future__ import annotations

import os
import posixpath
import re

__all__ = ["is_inside", "is_local", "local_path", "normalise_location"]

# A URL scheme (two characters or more, so that Windows drive letters stay paths).
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+):")
_LOCAL_SCHEMES = frozenset({"file", "local"})
# Aliases fsspec serves with one filesystem; used when the implementation is not installed.
_ALIASES = {"s3a": "s3", "gcs": "gs", "abfss": "abfs", "az": "abfs"}


def _target(url: str) -> str:
    # In a chained URL ("simplecache::s3://b/x") the last part is where the bytes live.
    return url.split("::")[-1]


def _scheme(url: str) -> str | None:
    match = _SCHEME.match(url)
    return match.group(1).lower() if match else None


def is_local(url: str) -> bool:
    """Whether ``url`` (its innermost part, for a chained URL) is on the local filesystem."""
    scheme = _scheme(_target(os.fspath(url)))
    return scheme is None or scheme in _LOCAL_SCHEMES


def local_path(url: str) -> str:
    """The local path ``url`` names, as written (``file://`` removed, ``~`` expanded).

    Raises:
        ValueError: ``url`` is not a local location (see :func:`is_local`).
    """
    target = _target(os.fspath(url))
    scheme = _scheme(target)
    if scheme is not None and scheme not in _LOCAL_SCHEMES:
        raise ValueError(f"{url!r} is not a local path.")
    if scheme is not None:
        target = target[len(scheme) + 1 :]
        if target.startswith("//"):
            target = target[2:]
    return os.path.expanduser(target)


def _remote(target: str, scheme: str) -> tuple[str, str]:
    """``(protocol, path)`` with the protocol's canonical name and the path as fsspec sees it."""
    try:
        import fsspec

        cls = fsspec.get_filesystem_class(scheme)
    except (ImportError, ValueError):
        rest = target[len(scheme) + 1 :]
        return _ALIASES.get(scheme, scheme), rest[2:] if rest.startswith("//") else rest
    protocol = cls.protocol[0] if isinstance(cls.protocol, tuple | list) else cls.protocol
    return str(protocol), str(cls._strip_protocol(target))


def normalise_location(url: str | os.PathLike[str]) -> str:
    """Return the normal form of a shard location, for comparing locations.

    * Local paths and ``file://`` URLs become absolute real paths: ``.``, ``..``, repeated
      slashes and symbolic links are resolved (a missing file resolves as far as it exists).
      A relative path is taken relative to the current directory.
    * Other URLs become ``protocol://path`` with fsspec's canonical protocol name
      (``s3a://`` is ``s3://``), ``.`` segments, ``..`` segments and repeated slashes
      collapsed. Nothing is read over the network.
    * A chained URL (``simplecache::s3://b/x``) is the location of its innermost part.

    Args:
        url: A path or fsspec URL.

    Returns:
        A string that is equal for two spellings of one location.

    Example:
        >>> normalise_location("file:///tmp//a/./b.tar") == normalise_location("/tmp/a/b.tar")
        True
    """
    url = os.fspath(url)
    target = _target(url)
    scheme = _scheme(target)
    if scheme is None or scheme in _LOCAL_SCHEMES:
        return os.path.realpath(os.path.abspath(local_path(target)))
    protocol, path = _remote(target, scheme)
    path = posixpath.normpath("/" + path.lstrip("/")).lstrip("/")
    return f"{protocol}://{'' if path == '.' else path}"


def is_inside(location: str, root: str) -> bool:
    """Whether normalised ``location`` lies strictly below normalised ``root``.

    Both arguments must already be :func:`normalise_location` results.
    """
    if location == root:
        return False
    if "://" not in root:  # a local path: compare whole path components
        if "://" in location:
            return False
        try:
            return os.path.commonpath([location, root]) == root
        except ValueError:  # different drives, or one relative
            return False
    prefix = root if root.endswith("/") else root + "/"
    return location.startswith(prefix)
