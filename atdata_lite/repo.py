"""``Repo``: atdata 0.2's deprecated pairing of an index with an S3 "hive", kept for old code.

New code uses :class:`~atdata_lite.index.api.Index` with a data store::

    index = Index("catalog.db", data_store=S3DataStore(credentials, bucket="bucket/hive"))
    entry = index.insert_dataset(ds, name="mnist")
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Mapping
from typing import Any

__all__ = ["Repo"]

_DEPRECATION = (
    "Repo is deprecated. Use Index with a data store instead: "
    "Index(url, data_store=S3DataStore(credentials, bucket='bucket/path')) and "
    "index.insert_dataset(ds, name=...)."
)


class Repo:
    """An index plus a place in S3 to copy datasets to (deprecated, as in atdata).

    Args:
        s3_credentials: atdata-style credentials (a dict or a ``.env`` file path, see
            :mod:`atdata_lite.s3`); needed by :meth:`insert`.
        hive_path: ``bucket/path`` inside S3 where :meth:`insert` writes shards.
        redis: A ``redis.Redis`` client: the index is the Redis index on it (atdata's only
            kind). Without it (and without ``index``), the default index is used -- atdata
            connected to Redis on localhost instead.
        index: An :class:`~atdata_lite.index.api.Index` (or its location) to use.

    Raises:
        ValueError: Credentials without ``hive_path``.

    Warns:
        DeprecationWarning: Always; the message says what to use instead.
    """

    def __init__(
        self,
        s3_credentials: Mapping[str, Any] | str | os.PathLike[str] | None = None,
        hive_path: str | os.PathLike[str] | None = None,
        redis: Any = None,
        *,
        index: Any = None,
    ) -> None:
        warnings.warn(_DEPRECATION, DeprecationWarning, stacklevel=2)
        from .index.api import Index

        if s3_credentials is not None and hive_path is None:
            raise ValueError("Must specify hive path within bucket")
        self.s3_credentials = s3_credentials
        self.hive_path = os.fspath(hive_path).strip("/") if hive_path is not None else None
        if self.hive_path is not None and self.hive_path.startswith("s3://"):
            self.hive_path = self.hive_path[len("s3://") :]
        self.hive_bucket = self.hive_path.split("/", 1)[0] if self.hive_path else None
        self.store = None
        if s3_credentials is not None:
            from .s3 import S3DataStore

            self.store = S3DataStore(s3_credentials, bucket=self.hive_path or "")
        if index is None:
            index = Index(redis=redis) if redis is not None else Index()
        elif not isinstance(index, Index):
            index = Index(index)
        self.index = index

    def insert(
        self,
        ds: Any,
        *,
        name: str,
        cache_local: bool = False,
        schema_ref: str | None = None,
        **kwargs: Any,
    ) -> tuple[Any, Any]:
        """Copy ``ds`` into the hive and index the copy under ``name``.

        Args:
            ds: A typed ``Dataset``.
            name: The entry's name.
            cache_local: Accepted and ignored (shards are always buffered locally, then
                uploaded whole).
            schema_ref: The samples' schema; ``None`` uses (and publishes if needed) the
                schema of ``ds.sample_type``.
            **kwargs: ``maxcount`` / ``maxsize`` per shard, and ``metadata`` (otherwise the
                dataset's own metadata is used).

        Returns:
            ``(entry, new_ds)``: the index entry and a ``Dataset`` over the copied shards.
            When the dataset has metadata, it is also written next to the shards and
            ``new_ds.metadata_url`` is its ``s3://`` URL.

        Raises:
            ValueError: The repo has no credentials.
            AtdataLiteError: As :meth:`Index.add_shards`; the shards just written are
                removed again when the entry cannot be stored.
        """
        del cache_local
        if self.store is None:
            raise ValueError(
                "S3 credentials required for insert(). Initialize Repo with s3_credentials."
            )
        from .dataset import Dataset
        from .index._metadata import encode_metadata
        from .shards import remove_shards, write_samples
        from .sources import open_url

        metadata = kwargs.pop("metadata", None)
        if metadata is None:
            metadata = ds.metadata if getattr(ds, "metadata_url", None) else ds._metadata
        packed = encode_metadata(metadata)  # checked before anything is written
        ref = schema_ref or self.index.schema_ref_for_type(ds.sample_type)
        options = self.store.storage_options
        run = uuid.uuid4()
        records = write_samples(
            ds.ordered(),
            f"s3://{self.hive_path}/atdata--{run}--%06d.tar",
            storage_options=options,
            **kwargs,
        )
        if not records:
            raise RuntimeError("Cannot form new dataset entry -- did not write any shards")
        metadata_url = None
        try:
            if packed is not None:
                metadata_url = f"s3://{self.hive_path}/metadata/atdata-metadata--{run}.msgpack"
                with open_url(metadata_url, "wb", options) as f:
                    f.write(packed)
            entry = self.index.add_shards(records, name=name, schema_ref=ref, metadata=metadata)
        except BaseException:
            urls = [r.url for r in records] + ([metadata_url] if metadata_url else [])
            remove_shards(urls, storage_options=options)
            raise
        new_ds = Dataset[ds.sample_type](
            [r.url for r in records], metadata_url, storage_options=options
        )
        new_ds._shard_facts = {r.url: r for r in records}
        return entry, new_ds

    def __repr__(self) -> str:
        return f"Repo(hive_path={self.hive_path!r}, index={self.index!r})"
