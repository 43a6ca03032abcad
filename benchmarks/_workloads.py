"""The three read_write.py workloads: sample types and the records every format stores.

Every format (ours, plain webdataset, the peers) stores the same records: the fields of
``record(workload, i)``. Arrays are one shared random array per workload (no format here
compresses, so identical arrays cost what different ones would).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

from atdata_lite.samples import packable


@packable
class SmallSample:
    """About 50 bytes: an int, a short string and a float."""

    idx: int
    label: str
    score: float


@packable
class MediumSample:
    """About 10 KB: a 100x100 uint8 array (a small grayscale image)."""

    idx: int
    data: NDArray[np.uint8]


@packable
class LargeSample:
    """About 600 KB: a 400x500x3 uint8 array (an RGB image)."""

    idx: int
    image: NDArray[np.uint8]


@dataclass(frozen=True)
class Workload:
    """One workload: its sample type, default size and array field (if any)."""

    name: str
    sample_type: type
    default_count: int
    quick_count: int
    array_field: str | None = None
    array_shape: tuple[int, ...] | None = None

    @property
    def fields(self) -> list[str]:
        return list(self.sample_type.__annotations__)


WORKLOADS: dict[str, Workload] = {
    "small": Workload("small", SmallSample, 100_000, 2_000),
    "medium": Workload("medium", MediumSample, 20_000, 500, "data", (100, 100)),
    "large": Workload("large", LargeSample, 2_000, 40, "image", (400, 500, 3)),
}


@cache
def _array(shape: tuple[int, ...]) -> NDArray[np.uint8]:
    return np.random.default_rng(0).integers(0, 255, size=shape, dtype=np.uint8)


def record(name: str, i: int) -> dict[str, Any]:
    """The fields of sample ``i`` of workload ``name``, as a plain dict."""
    w = WORKLOADS[name]
    if w.array_field is None:
        return {"idx": i, "label": f"small-sample-label-{i % 1000:04d}", "score": i * 0.5}
    assert w.array_shape is not None
    return {"idx": i, w.array_field: _array(w.array_shape)}


def sample(name: str, i: int) -> Any:
    """Sample ``i`` of workload ``name`` as its atdata-lite type."""
    return WORKLOADS[name].sample_type(**record(name, i))
