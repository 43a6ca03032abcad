"""Sample types and fixtures shared by the Index tests (module level, so hints resolve)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from atdata_lite.index.api import Index
from atdata_lite.samples import packable


@packable
class ImageSample:
    """An image with a label."""

    image: NDArray
    label: str
    confidence: float | None = None


@packable
class TextSample:
    text: str
    tokens: list[int]
    embedding: NDArray | None = None
    raw: bytes = b""
    flag: bool = False
    count: int = 0


@packable
class Point:
    x: int
    y: int


def write_points(directory: Path, shards: int = 3, per_shard: int = 2) -> str:
    """Write ``shards`` real shards of Points; return their brace pattern."""
    from atdata_lite.shards import write_samples

    directory.mkdir(parents=True, exist_ok=True)
    n = 0
    for i in range(shards):
        samples = [Point(x=n + j, y=i) for j in range(per_shard)]
        n += per_shard
        write_samples(samples, str(directory / f"pts-{i:03d}.tar"), progress=False)
    return str(directory / f"pts-{{000..{shards - 1:03d}}}.tar")


def images(n: int = 3) -> list[ImageSample]:
    return [ImageSample(image=np.full((2, 2), i, dtype=np.uint8), label=f"l{i}") for i in range(n)]


def open_index(kind: str, tmp_path: Path, request: pytest.FixtureRequest, **kwargs) -> Index:
    """An empty index on the named backend (sqlite, postgres or redis)."""
    if kind == "sqlite":
        return Index(tmp_path / "index.db", **kwargs)
    if kind == "postgres":
        return Index(request.getfixturevalue("postgres_url"), **kwargs)
    if kind == "redis":
        return Index(request.getfixturevalue("redis_url"), **kwargs)
    raise ValueError(kind)


BACKENDS = ["sqlite", "postgres", "redis"]


def index_on(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Index]:
    """Body of an index fixture: an empty index of ``kind``, closed afterwards."""
    idx = open_index(kind, tmp_path, request)
    try:
        yield idx
    finally:
        idx.close()
