"""How shard locations are recorded in an index, and turned back into URLs to open.

Three rules, applied on every route into the index (``write_samples``, ``insert_dataset``,
``add_entry``, ``add_shards``, the CLI's ``add``):

* a local path is recorded **absolute** (``~`` expanded), so an entry reads the same from
  any working directory;
* a shard inside the data store is recorded **relative to the store root**, as
  ``store://{path under the root}``, so moving the whole store (and pointing the
  configuration at its new place) keeps every dataset readable;
* anything else (``s3://...``, ``https://...``, a path outside the store) is recorded as
  given.

Reading resolves ``store://`` URLs against the root of the index's data store (the default
store when the index has none). The CID of an entry is computed over the URLs *as
recorded*, so it does not change when the store moves.

This module is on the hot path of listing an index: it imports nothing heavy.
"""

from __future__ import annotations

import os
import re

__all__ = [
    "STORE_SCHEME",
    "is_local_path",
    "local_root",
    "rebase",
    "recorded_url",
    "resolve_url",
]

#: Prefix of a URL recorded relative to the data store's root.
STORE_SCHEME = "store://"

# A URL scheme of two characters or more (so that Windows drive letters stay paths).
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+:")


def is_local_path(url: str) -> bool:
    """True for a plain path (no ``scheme:``), which is a file on the local disk."""
    return _SCHEME.match(url) is None


def absolute(url: str) -> str:
    """``url`` with a local path made absolute (``~`` expanded); URLs unchanged."""
    if is_local_path(url):
        return os.path.abspath(os.path.expanduser(url))
    return url


def local_root(root_url: str) -> str:
    """A store root in the form shard URLs are compared with: absolute, no trailing slash."""
    root = absolute(os.fspath(root_url))
    return root.rstrip("/") or "/"


def _under(url: str, root: str) -> str | None:
    """The part of ``url`` below ``root`` (a directory), or ``None`` when it is not inside."""
    base = root if root.endswith("/") else root + "/"
    if url.startswith(base) and len(url) > len(base):
        return url[len(base) :]
    return None


def recorded_url(url: str, store_root: str | None) -> str:
    """The form in which the index records a shard location (see the module docstring).

    Args:
        url: A path or URL as the caller gave it; a ``store://`` URL is kept as it is.
        store_root: The data store's root (see :func:`local_root`), or ``None``.
    """
    if url.startswith(STORE_SCHEME):
        return url
    url = absolute(url)
    if store_root is not None:
        inside = _under(url, store_root)
        if inside is not None:
            return STORE_SCHEME + inside
    return url


def resolve_url(url: str, store_root: str) -> str:
    """The URL to open for a recorded location: ``store://`` joined to the store root."""
    if url.startswith(STORE_SCHEME):
        rest = url[len(STORE_SCHEME) :]
        return (store_root if store_root.endswith("/") else store_root + "/") + rest
    return url


def _prefix(prefix: str) -> str:
    return prefix if prefix.startswith(STORE_SCHEME) else absolute(prefix)


def rebase(url: str, old_prefix: str, new_prefix: str) -> str | None:
    """``url`` with ``old_prefix`` replaced by ``new_prefix``, or ``None`` if it does not match.

    A prefix matches whole path segments: ``/data/a`` matches ``/data/a`` and
    ``/data/a/x.tar`` but not ``/data/ab.tar``. Local paths in either prefix are made
    absolute first; ``store://`` stands for the data store's root.
    """
    old, new = _prefix(old_prefix), _prefix(new_prefix)
    if url == old.rstrip("/") and not old.endswith("://"):
        return new.rstrip("/")
    old_base = old if old.endswith("/") else old + "/"
    if not url.startswith(old_base) or len(url) == len(old_base):
        return None
    return (new if new.endswith("/") else new + "/") + url[len(old_base) :]
