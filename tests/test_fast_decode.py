"""The generated per-type decoders accept, convert and refuse exactly what the careful
path (``PackableSample._build``) does, and set the sample's key."""

from __future__ import annotations

import random
from dataclasses import field
from typing import Annotated, Any

import msgpack
import numpy as np
import pytest
from numpy.typing import NDArray

from atdata_lite.errors import SampleDecodeError
from atdata_lite.samples import KEY_ATTR, array_to_bytes, codec_for, packable


@packable
class Plain:
    idx: int
    label: str
    score: float
    flag: bool
    blob: bytes


@packable
class Mixed:
    idx: int
    image: NDArray[np.uint8]
    tags: list[str]
    note: str | None = None
    weight: Annotated[float, "kg"] = 1.0
    extra: list[int] = field(default_factory=list)


def _outcome(decode: Any, payload: bytes) -> tuple[str, Any]:
    try:
        sample = decode(payload)
    except Exception as exc:  # the type and the words are compared
        return "error", (type(exc), str(exc))
    values = {k: v for k, v in vars(sample).items() if k != KEY_ATTR}
    return "sample", (type(sample), _comparable(values))


def _comparable(values: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in values.items():
        if isinstance(v, np.ndarray):
            out[k] = ("array", v.dtype.str, v.shape, v.tobytes())
        else:
            out[k] = (type(v), repr(v))  # repr: NaN equals NaN
    return out


def _values(rng: random.Random) -> list[Any]:
    return [
        0,
        -(2**63),
        2**64 - 1,
        1.5,
        2.0,
        float("nan"),
        True,
        False,
        "text",
        "",
        b"bytes",
        None,
        [1, 2],
        ["a", "b"],
        {"a": 1},
        array_to_bytes(np.arange(6, dtype=np.uint8).reshape(2, 3)),
        array_to_bytes(np.arange(3, dtype=np.float32)),
        b"\x93NUMPY junk",
        rng.randbytes(8),
    ]


def _maps(cls: type, rng: random.Random, good: dict[str, Any]) -> list[Any]:
    values = _values(rng)
    maps: list[Any] = [good, dict(reversed(good.items()))]
    for name in good:
        for value in values:
            maps.append({**good, name: value})
        maps.append({k: v for k, v in good.items() if k != name})  # one missing
    maps.append({**good, "unknown": 1})
    maps.append({**good, 7: "int key"})
    maps += [[1, 2, 3], "not a map", 5, None]
    for _ in range(200):  # several fields changed at once
        data = dict(good)
        for name in rng.sample(list(good), k=min(3, len(good))):
            data[name] = rng.choice(values)
        maps.append(data)
    return maps


CASES = {
    Plain: {"idx": 1, "label": "a", "score": 0.5, "flag": True, "blob": b"x"},
    Mixed: {
        "idx": 3,
        "image": array_to_bytes(np.ones((2, 2), np.uint8)),
        "tags": ["t"],
        "note": None,
        "weight": 2.5,
        "extra": [1],
    },
}


@pytest.mark.parametrize("cls", list(CASES), ids=lambda c: c.__name__)
def test_generated_decoders_match_the_careful_path(cls: type) -> None:
    codec = codec_for(cls)
    assert codec.decoder is not None and codec.view_decoder is not None
    rng = random.Random(5)
    payloads = [msgpack.packb(m) for m in _maps(cls, rng, CASES[cls])]
    payloads += [b"", b"\xc1", b"\x85\xa1", msgpack.packb(CASES[cls])[:-1]]  # not msgpack

    def careful(checks: Any) -> Any:
        def decode(payload: bytes) -> Any:
            try:
                data = msgpack.unpackb(payload, raw=False, strict_map_key=False)
            except Exception:
                raise SampleDecodeError(
                    f"Cannot decode a {cls.__qualname__} sample: not valid msgpack"
                ) from None
            return cls._build(data, checks)

        return decode

    kinds = set()
    for payload in payloads:
        for fast, checks in (
            (codec.decoder, codec.checks),
            (codec.view_decoder, codec.view_checks),
        ):
            want = _outcome(careful(checks), payload)
            got = _outcome(fast, payload)
            kinds.add(want[0])
            if want[0] == "error" and want[1][1].endswith("not valid msgpack"):
                assert got[0] == "error" and got[1][0] is want[1][0]
                assert "not valid msgpack" in got[1][1]
            else:
                assert got == want, msgpack.unpackb(payload, strict_map_key=False)
    assert kinds == {"error", "sample"}


def test_generated_decoder_sets_the_key_and_keeps_arrays_as_asked() -> None:
    codec = codec_for(Mixed)
    payload = msgpack.packb(CASES[Mixed])
    view = codec.view_decoder(memoryview(payload), "k1")
    copy = codec.decoder(payload, "k2")
    assert getattr(view, KEY_ATTR) == "k1" and getattr(copy, KEY_ATTR) == "k2"
    assert not view.image.flags.writeable
    assert copy.image.flags.writeable
    assert _outcome(codec.view_decoder, payload) == _outcome(Mixed.from_bytes, payload)


@packable
class Guarded:
    idx: int

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "__dict__":  # a class that refuses its dict being replaced
            raise AttributeError("no")
        object.__setattr__(self, name, value)


def test_generated_decoder_builds_a_class_with_its_own_setattr() -> None:
    codec = codec_for(Guarded)
    assert codec.decoder is not None  # the generated path, not the careful one
    sample = codec.view_decoder(Guarded(idx=3).packed, "k")
    assert sample.idx == 3 and getattr(sample, KEY_ATTR) == "k"


def test_int_in_a_float_field_becomes_a_float_as_before() -> None:
    payload = msgpack.packb({**CASES[Plain], "score": 3})
    sample = codec_for(Plain).decoder(payload)
    assert type(sample.score) is float and sample.score == 3.0


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.uint8).reshape(3, 4),
        np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4)),
        np.arange(6, dtype=">i4").reshape(2, 3),
        np.array(3.5),
        np.zeros((0, 4), np.int16),
        np.array([True, False]),
        np.arange(24, dtype=np.complex64).reshape(2, 3, 4),
    ],
    ids=["uint8", "fortran", "big-endian", "0-d", "empty", "bool", "3-d complex"],
)
def test_npy_headers_seen_before_read_the_same(array: np.ndarray) -> None:
    import io

    from atdata_lite._npy import npy_view

    data = array_to_bytes(array)
    want = np.load(io.BytesIO(data))
    for _ in range(3):  # the first read parses the header, the next ones reuse it
        for source in (data, memoryview(data), bytearray(data)):
            got = npy_view(source, copy=False)
            assert got is not None
            assert got.dtype == want.dtype and got.shape == want.shape
            assert got.tobytes(order="A") == want.tobytes(order="A")
            assert got.flags.f_contiguous == want.flags.f_contiguous
            assert got.flags.writeable == isinstance(source, bytearray)
            copied = npy_view(source, copy=True)
            assert copied.flags.writeable and copied.flags.owndata
        if array.size:
            with pytest.raises(ValueError, match="describes"):
                npy_view(data[:-1], copy=False)


@packable
class Shaped:
    grid: NDArray[np.float32]


def test_arrays_with_a_header_seen_before_are_checked_as_the_first_one() -> None:
    codec = codec_for(Shaped)
    good = array_to_bytes(np.ones((2, 3), np.float32))
    for decoder in (codec.decoder, codec.view_decoder):
        first = decoder(msgpack.packb({"grid": good}))
        again = decoder(msgpack.packb({"grid": array_to_bytes(np.zeros((2, 3), np.float32))}))
        assert first.grid.shape == again.grid.shape == (2, 3)
        assert not again.grid.any() and first.grid.all()
        assert again.grid.flags.writeable == (decoder is codec.decoder)
        # the same header with too few bytes behind it, then another dtype: refused
        with pytest.raises(SampleDecodeError, match="not valid NPY"):
            decoder(msgpack.packb({"grid": good[:-1]}))
        with pytest.raises(SampleDecodeError, match="float32"):
            decoder(msgpack.packb({"grid": array_to_bytes(np.ones((2, 3), np.int32))}))
