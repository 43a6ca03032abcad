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
