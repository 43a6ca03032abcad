"""The sample type ``atdata-lite demo`` writes (its own module: it imports numpy)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ..samples import packable

__all__ = ["DemoImage", "make_samples"]

LABELS = ("cat", "dog", "bird", "fish")


@packable
class DemoImage:
    """A small image-like sample: an RGB array, a class label and a score."""

    image: NDArray[np.uint8]
    label: str
    score: float


def make_samples(count: int, *, seed: int = 0, side: int = 32) -> list[DemoImage]:
    """``count`` reproducible samples: ``side x side x 3`` uint8 images, labels, scores."""
    rng = np.random.default_rng(seed)
    return [
        DemoImage(
            image=rng.integers(0, 256, size=(side, side, 3), dtype=np.uint8),
            label=LABELS[int(rng.integers(len(LABELS)))],
            score=round(float(rng.random()), 4),
        )
        for _ in range(count)
    ]
