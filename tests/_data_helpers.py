"""Shared sample types and helpers for the data-path tests."""

from __future__ import annotations

import io
import uuid

import msgpack
import numpy as np
import webdataset as wds
from numpy.typing import NDArray

from atdata_lite.samples import packable


@packable
class Row:
    """A small sample with an array."""

    idx: int
    label: str
    vec: NDArray[np.float32]


def rows(n: int, start: int = 0) -> list[Row]:
    return [
        Row(idx=i, label=f"r{i}", vec=np.full(3, i, dtype=np.float32))
        for i in range(start, start + n)
    ]


def write_atdata_shard(path: str, n: int) -> list[int]:
    """Write a shard exactly as atdata 0.2 does: wds.TarWriter, uuid1(0, 0) keys,
    one ``{key}.msgpack`` member per sample, msgpack default options, np.save arrays."""
    with wds.TarWriter(path) as sink:
        for i in range(n):
            buf = io.BytesIO()
            np.save(buf, np.full(3, i, dtype=np.float32), allow_pickle=True)
            payload = msgpack.packb({"idx": i, "label": f"r{i}", "vec": buf.getvalue()})
            sink.write({"__key__": str(uuid.uuid1(0, 0)), "msgpack": payload})
    return list(range(n))


def make_s3_bucket(endpoint: str) -> tuple[str, dict]:
    """Create a fresh bucket on the moto server; return ``(bucket_url, storage_options)``.

    conftest's ``s3_bucket`` creates its bucket with ``region_name="us-east-1"`` in
    ``client_kwargs``, which makes s3fs send ``LocationConstraint=us-east-1`` and S3 (and
    moto) reject it; until that is fixed the data tests create buckets here.
    """
    import s3fs

    options = {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        "skip_instance_cache": True,
        "use_listings_cache": False,
    }
    maker = s3fs.S3FileSystem(
        key="testing",
        secret="testing",
        client_kwargs={"endpoint_url": endpoint},
        skip_instance_cache=True,
    )
    bucket = f"atl-data-{uuid.uuid4().hex[:12]}"
    maker.mkdir(bucket)
    return f"s3://{bucket}", options
