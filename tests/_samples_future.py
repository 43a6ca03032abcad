"""Sample types defined under ``from __future__ import annotations`` (all annotations are
strings), used by the sample round-trip tests."""

from __future__ import annotations

from typing import Optional

import numpy as np
from numpy.typing import NDArray

from atdata_lite.samples import PackableSample, packable


@packable
class FutureSample:
    """Every supported field kind, with string annotations."""

    text: str
    count: int
    score: float
    ok: bool
    blob: bytes
    image: NDArray[np.uint8]
    any_array: NDArray
    plain_array: np.ndarray
    typed_array: np.ndarray[tuple[int, ...], np.dtype[np.float32]]
    tags: list[str]
    matrix: list[list[float]]
    arrays: list[NDArray[np.int16]]
    maybe_array: Optional[NDArray] = None  # noqa: UP045 - typing.Optional on purpose
    maybe_array2: NDArray[np.float64] | None = None
    maybe_text: str | None = None
    maybe_list: list[int] | None = None


@packable
class Child(FutureSample):
    """A packable subclass of a packable class: parent fields come first."""

    extra: int = 0


from dataclasses import dataclass  # noqa: E402


@dataclass
class PlainSubclass(PackableSample):
    """A PackableSample subclass made with plain @dataclass (no @packable)."""

    vec: NDArray[np.float32]
    label: str = ""
