"""``FsspecDataStore``: atdata's ``AbstractDataStore`` over any fsspec filesystem.

Shards are written as ``{root}/{prefix}/data--{uuid4}--%06d.tar`` (atdata's naming), each
atomically (see :mod:`atdata_lite.shards`), with samples re-encoded but keeping their keys.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ._records import ShardRecord
from .errors import InvalidPrefixError
from .sources import check_url

if TYPE_CHECKING:
    from .dataset import Dataset

__all__ = ["FsspecDataStore", "LocalDiskStore", "default_store", "validate_prefix"]


def __getattr__(name: str) -> Any:
    # atdata 0.7's ``atdata.stores`` has S3DataStore; it lives in atdata_lite.s3 (s3fs).
    if name == "S3DataStore":
        import importlib

        # By name: atdata_lite.s3 builds on this module (no import cycle).
        return importlib.import_module("atdata_lite.s3").S3DataStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# One path segment: letters, digits and a few safe punctuation marks. Anything else
# (spaces, quotes, glob and brace characters, '%', control characters) is refused because
# it would break brace patterns, printf shard patterns, shells or URLs.
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._=+\-@]*")


def validate_prefix(prefix: str) -> str:
    """Check a store prefix and return it normalised (no leading/trailing slashes).

    Raises:
        InvalidPrefixError: Empty, absolute, containing ``..``/``.``, backslashes,
            ``scheme://``, or characters outside ``A-Z a-z 0-9 _ . - = + @`` in a segment.
    """
    if not isinstance(prefix, str):
        raise InvalidPrefixError(f"Invalid prefix {prefix!r}: expected a string.")
    problem = None
    if not prefix.strip("/"):
        problem = "it is empty"
    elif prefix.startswith("/") or re.match(r"^[A-Za-z]:", prefix):
        problem = "it is an absolute path"
    elif "\\" in prefix:
        problem = "it contains a backslash"
    elif "://" in prefix:
        problem = "it contains a URL scheme"
    else:
        for segment in prefix.strip("/").split("/"):
            if segment in ("", ".", ".."):
                problem = f"it contains the segment {segment!r}"
                break
            if not _SEGMENT.fullmatch(segment):
                problem = f"the segment {segment!r} contains characters that are not allowed"
                break
    if problem is not None:
        raise InvalidPrefixError(
            f"Invalid prefix {prefix!r}: {problem}. A prefix is a relative path inside the "
            "store, made of segments of letters, digits and '_.-=+@' (e.g. "
            "'datasets/mnist/v1'); it cannot leave the store's root."
        )
    return prefix.strip("/")


class FsspecDataStore:
    """Shard storage under one root URL on any fsspec filesystem.

    Args:
        root_url: A local directory or fsspec URL (``s3://bucket/datasets``). A relative
            local path is made absolute (``~`` expanded), so the store stays the same
            whatever the working directory later is.
        storage_options: fsspec options (credentials, endpoint...), passed unchanged.

    Raises:
        UnsafeURLError: The root URL is refused (``pipe:``, unknown scheme).
    """

    def __init__(self, root_url: str, storage_options: dict[str, Any] | None = None) -> None:
        root_url = os.fspath(root_url)
        check_url(root_url)
        from ._paths import local_root

        self.root_url = local_root(root_url)
        self.storage_options = dict(storage_options or {})

    def _pattern(self, prefix: str) -> str:
        prefix = validate_prefix(prefix)
        # '%' cannot appear in the prefix (validated), so the only conversion is ours;
        # a '%' in the root must be escaped for the printf pattern.
        root = self.root_url.replace("%", "%%")
        return f"{root}/{prefix}/data--{uuid.uuid4()}--%06d.tar"

    def write_dataset(
        self, ds: Dataset[Any], *, prefix: str, **writer_options: Any
    ) -> list[ShardRecord]:
        """Write ``ds`` as new shards and describe them.

        Args:
            ds: The dataset to copy; samples are read in order (lenses applied), re-encoded
                and keep their keys.
            prefix: Relative path under the root (validated, see :func:`validate_prefix`).
            **writer_options: ``maxcount``, ``maxsize``, ``progress`` for
                :func:`~atdata_lite.shards.write_samples`.

        Returns:
            One ShardRecord per shard (URL, size, sample count, sha256); ``[]`` for an
            empty dataset.

        Raises:
            InvalidPrefixError: The prefix would escape the root or has odd characters.
        """
        return self.write_samples(ds.ordered(), prefix=prefix, **writer_options)

    def write_samples(
        self, samples: Iterable[Any], *, prefix: str, **writer_options: Any
    ) -> list[ShardRecord]:
        """Write samples as new shards under ``prefix`` and describe them.

        Args:
            samples: Packable samples or ``(key, sample)`` pairs (see
                :func:`~atdata_lite.shards.write_samples`).
            prefix: Relative path under the root (validated, see :func:`validate_prefix`).
            **writer_options: ``maxcount``, ``maxsize``, ``progress``.

        Returns:
            One ShardRecord per shard (URL, size, sample count, sha256).

        Raises:
            InvalidPrefixError: The prefix would escape the root or has odd characters.
        """
        # Imported here: opening the default index (which has this store) stays light.
        from .shards import write_samples

        pattern = self._pattern(prefix)
        return write_samples(
            samples, pattern, storage_options=self.storage_options, **writer_options
        )

    def write_shards(self, ds: Dataset[Any], *, prefix: str, **writer_options: Any) -> list[str]:
        """Write ``ds`` as new shards and return their URLs (atdata's interface).

        See :meth:`write_dataset` for the arguments.
        """
        return [r.url for r in self.write_dataset(ds, prefix=prefix, **writer_options)]

    def read_url(self, url: str) -> str:
        """Return ``url`` unchanged: every fsspec URL is read directly."""
        return url

    def supports_streaming(self) -> bool:
        """True: shards are streamed through fsspec."""
        return True

    def __repr__(self) -> str:
        return f"FsspecDataStore({self.root_url!r})"


def default_store() -> FsspecDataStore:
    """The store at :func:`atdata_lite.config.default_store_url` (``ATDATA_LITE_STORE``)."""
    from .config import default_store_url

    return FsspecDataStore(default_store_url())


class LocalDiskStore(FsspecDataStore):
    """A data store in a local directory (atdata 0.7's ``LocalDiskStore``).

    Args:
        root: The directory (``~`` expanded, made absolute, created if missing). ``None``
            uses ``$ATDATA_LITE_STORE`` when it is a local directory, else ``shards`` under
            ``$ATDATA_LITE_HOME`` (atdata 0.7 used ``~/.atdata/data``).

    Shards are named ``{root}/{prefix}/data--{uuid4}--%06d.tar``.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        from pathlib import Path

        from . import config
        from .locations import is_local, local_path

        if root is None:
            url = config.default_store_url()
            root = local_path(url) if is_local(url) else config.home_dir() / config.STORE_DIRNAME
        path = Path(os.fspath(root)).expanduser().resolve()
        path.mkdir(parents=True, exist_ok=True)
        super().__init__(str(path))
        self.root = path

    def __repr__(self) -> str:
        return f"LocalDiskStore({str(self.root)!r})"
