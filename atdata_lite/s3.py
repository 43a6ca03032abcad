"""S3 in atdata's words: ``S3DataStore(credentials, bucket=...)`` and ``S3Source``.

Both are thin layers over fsspec's ``s3fs`` (``pip install 'atdata-lite[s3]'``), so anything
S3-compatible works (AWS, MinIO, moto, Ceph...). Credentials are atdata's: a dict, or the
path of a ``.env``-style file, with the keys

``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``
    required;
``AWS_ENDPOINT``
    a custom endpoint URL (MinIO, moto...); absent means AWS itself;
``AWS_REGION``, ``AWS_SESSION_TOKEN``
    optional.

They become fsspec ``storage_options`` (``key``, ``secret``, ``endpoint_url``, ...), which
is all the rest of atdata-lite needs: ``store.storage_options`` and ``source.storage_options``
can be passed to :class:`~atdata_lite.dataset.Dataset` or ``write_samples`` unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import InvalidCredentialsError
from .sources import URLSource
from .stores import FsspecDataStore

__all__ = ["S3DataStore", "S3Source", "credentials_to_storage_options", "read_credentials"]

REQUIRED_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


def _read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines (``export`` prefix, quotes and ``#`` comments allowed)."""
    values: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        if not sep:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key.strip()] = value
    return values


def read_credentials(credentials: Mapping[str, Any] | str | os.PathLike[str]) -> dict[str, str]:
    """Return atdata-style S3 credentials as a dict.

    Args:
        credentials: A dict (used as-is), or the path of a ``.env``-style file.

    Returns:
        The credentials, with at least ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY``.

    Raises:
        InvalidCredentialsError: (a ``KeyError`` and a ``ValueError``) a required key is
            missing or empty; the message names the keys and where they were looked for.
        FileNotFoundError: The file does not exist.
    """
    if isinstance(credentials, Mapping):
        found = {str(k): str(v) for k, v in credentials.items() if v is not None}
        where = "the credentials dict"
    else:
        path = Path(credentials).expanduser()
        found = _read_env_file(path)
        where = str(path)
    missing = [k for k in REQUIRED_KEYS if not found.get(k)]
    if missing:
        raise InvalidCredentialsError(
            f"Missing required keys in {where}: {', '.join(missing)}. S3 credentials need "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_ENDPOINT for a non-AWS "
            "server such as MinIO)."
        )
    return found


def credentials_to_storage_options(credentials: Mapping[str, str]) -> dict[str, Any]:
    """fsspec/s3fs ``storage_options`` for atdata-style credentials."""
    options: dict[str, Any] = {
        "key": credentials["AWS_ACCESS_KEY_ID"],
        "secret": credentials["AWS_SECRET_ACCESS_KEY"],
    }
    if credentials.get("AWS_SESSION_TOKEN"):
        options["token"] = credentials["AWS_SESSION_TOKEN"]
    if credentials.get("AWS_ENDPOINT"):
        options["endpoint_url"] = credentials["AWS_ENDPOINT"]
    if credentials.get("AWS_REGION"):
        options["client_kwargs"] = {"region_name": credentials["AWS_REGION"]}
    return options


class S3DataStore(FsspecDataStore):
    """A data store in an S3 bucket (atdata's ``S3DataStore``), over s3fs.

    Shards are written as ``s3://{bucket}/{prefix}/data--{uuid4}--%06d.tar``, each upload
    committed only when the shard is complete.

    Args:
        credentials: A dict or the path of a ``.env`` file (see the module docs).
        bucket: The bucket's name (``s3://`` and a trailing path are accepted too: the
            store's root is then that path inside the bucket).

    Raises:
        InvalidCredentialsError: A required credential is missing.

    Example:
        >>> store = S3DataStore({"AWS_ENDPOINT": "http://localhost:9000",
        ...     "AWS_ACCESS_KEY_ID": "minioadmin", "AWS_SECRET_ACCESS_KEY": "minioadmin"},
        ...     bucket="datasets")
        >>> index = Index("catalog.db", data_store=store)
    """

    def __init__(
        self, credentials: Mapping[str, Any] | str | os.PathLike[str], *, bucket: str
    ) -> None:
        self.credentials = read_credentials(credentials)
        root = bucket.strip()
        if root.startswith("s3://"):
            root = root[len("s3://") :]
        root = root.strip("/")
        if not root:
            raise ValueError("S3DataStore(bucket=...): give the bucket's name.")
        self.bucket = root.split("/", 1)[0]
        super().__init__(f"s3://{root}", credentials_to_storage_options(self.credentials))

    @property
    def fs(self) -> Any:
        """The ``s3fs.S3FileSystem`` the store writes through."""
        from .sources import url_to_fs

        return url_to_fs(self.root_url, self.storage_options)[0]

    def write_shards(self, ds: Any, *, prefix: str, **writer_options: Any) -> list[str]:
        """Write ``ds`` as new shards and return their ``s3://`` URLs (atdata's interface).

        ``cache_local`` is accepted and ignored: every shard is buffered locally and
        uploaded when complete anyway. Other options are as in :meth:`write_dataset`.
        """
        writer_options.pop("cache_local", None)
        return super().write_shards(ds, prefix=prefix, **writer_options)

    def read_url(self, url: str) -> str:
        """Return ``url`` unchanged: ``s3://`` URLs are read through s3fs with
        :attr:`storage_options` (atdata turned them into unauthenticated HTTP URLs)."""
        return url

    def __repr__(self) -> str:
        endpoint = self.storage_options.get("endpoint_url")
        where = f", endpoint={endpoint!r}" if endpoint else ""
        return f"S3DataStore(bucket={self.bucket!r}{where})"


class S3Source(URLSource):
    """Shards in one S3 bucket, named by their keys (atdata's ``S3Source``), over s3fs.

    A :class:`~atdata_lite.sources.URLSource` of ``s3://{bucket}/{key}`` URLs whose
    ``storage_options`` carry the endpoint and keys, so ``Dataset[T](source)`` reads it
    (through the shard cache, like any remote source).

    Args:
        bucket: The bucket's name.
        keys: Object keys of the shards, in order.
        endpoint: A custom endpoint URL (MinIO, moto...); ``None`` means AWS.
        access_key: Access key id (used with ``secret_key``; without both, s3fs's usual
            credential chain applies).
        secret_key: Secret access key.
        region: Region name.
        storage_options: Further s3fs options.

    Raises:
        ValueError: No keys.
    """

    def __init__(
        self,
        bucket: str,
        keys: Sequence[str],
        endpoint: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        region: str | None = None,
        *,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        if isinstance(keys, str):
            keys = [keys]
        self.bucket = bucket
        self.keys = [k.lstrip("/") for k in keys]
        if not self.keys:
            raise ValueError("S3Source needs at least one key.")
        self.endpoint = endpoint
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region
        options = dict(storage_options or {})
        if endpoint:
            options["endpoint_url"] = endpoint
        if access_key and secret_key:
            options["key"], options["secret"] = access_key, secret_key
        if region:
            options.setdefault("client_kwargs", {})["region_name"] = region
        super().__init__([f"s3://{bucket}/{k}" for k in self.keys], storage_options=options)

    @classmethod
    def from_urls(
        cls,
        urls: Sequence[str],
        *,
        endpoint: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        region: str | None = None,
    ) -> S3Source:
        """Build a source from ``s3://bucket/key`` URLs (all in one bucket).

        Raises:
            ValueError: ``"urls cannot be empty"``, ``"Not an S3 URL"``, ``"Invalid S3 URL
                (no key)"`` or ``"All URLs must be in the same bucket"``, as atdata.
        """
        if not urls:
            raise ValueError("urls cannot be empty")
        bucket: str | None = None
        keys: list[str] = []
        for url in urls:
            if not url.startswith("s3://"):
                raise ValueError(f"Not an S3 URL: {url}")
            name, _, key = url[len("s3://") :].partition("/")
            if not key:
                raise ValueError(f"Invalid S3 URL (no key): {url}")
            if bucket is not None and name != bucket:
                raise ValueError(f"All URLs must be in the same bucket: {bucket} != {name}")
            bucket = name
            keys.append(key)
        assert bucket is not None
        return cls(bucket, keys, endpoint, access_key, secret_key, region)

    @classmethod
    def from_credentials(
        cls,
        credentials: Mapping[str, Any] | str | os.PathLike[str],
        bucket: str,
        keys: Sequence[str],
    ) -> S3Source:
        """Build a source from atdata-style credentials (a dict or a ``.env`` file).

        Raises:
            InvalidCredentialsError: A required credential is missing.
        """
        creds = read_credentials(credentials)
        return cls(
            bucket,
            keys,
            endpoint=creds.get("AWS_ENDPOINT") or None,
            access_key=creds["AWS_ACCESS_KEY_ID"],
            secret_key=creds["AWS_SECRET_ACCESS_KEY"],
            region=creds.get("AWS_REGION") or None,
        )

    def __repr__(self) -> str:
        return f"S3Source(bucket={self.bucket!r}, keys={self.keys!r})"
