"""Decoding a sample map with binary values in place gives what msgpack gives."""

from __future__ import annotations

import os
import random

import msgpack
import numpy as np
import pytest
from numpy.typing import NDArray

from atdata_lite._msgview import unpack_map_view
from atdata_lite.samples import packable


def _plain(decoded: dict) -> dict:
    return {k: bytes(v) if isinstance(v, memoryview) else v for k, v in decoded.items()}


def _value(rng: random.Random):
    return rng.choice(
        [
            None,
            True,
            False,
            rng.randrange(-40, 200),
            rng.randrange(-(2**63), 2**64),
            rng.randrange(-(2**31), 2**31),
            rng.random() * 1e9,
            "s" * rng.randrange(300),
            "é" * rng.randrange(40),
            os.urandom(rng.randrange(70_000)),
        ]
    )


def test_random_maps_decode_as_msgpack_decodes_them() -> None:
    rng = random.Random(11)
    for _ in range(1500):
        data = {f"k{j}" * rng.randrange(1, 40): _value(rng) for j in range(rng.randrange(20))}
        payload = msgpack.packb(data, use_single_float=rng.random() < 0.3)
        decoded = unpack_map_view(payload)
        assert decoded is not None
        assert _plain(decoded) == msgpack.unpackb(payload, raw=False, strict_map_key=False)
        # a damaged payload is never decoded into something msgpack would refuse
        cut = payload[: rng.randrange(len(payload) + 1)]
        partial = unpack_map_view(cut)
        if partial is not None:
            assert _plain(partial) == msgpack.unpackb(cut, raw=False, strict_map_key=False)


@pytest.mark.parametrize(
    "payload",
    [
        msgpack.packb({"a": [1, 2]}),  # nested array
        msgpack.packb({"a": {"b": 1}}),  # nested map
        msgpack.packb({1: 2}),  # a non-string key
        msgpack.packb([1, 2]),  # not a map
        msgpack.packb({"a": 1}) + b"\x00",  # trailing data
        b"\x81\xa1a\xa2\xff\xfe",  # invalid UTF-8
        b"",
    ],
)
def test_anything_else_is_left_to_msgpack(payload: bytes) -> None:
    assert unpack_map_view(payload) is None


@packable
class Image:
    label: bytes
    pixels: NDArray[np.uint8]


def test_large_array_fields_are_views_of_the_payload() -> None:
    pixels = np.arange(300_000, dtype=np.uint8).reshape(500, 600)
    payload = Image(label=b"cat", pixels=pixels).packed
    sample = Image._from_bytes_view(memoryview(payload))
    np.testing.assert_array_equal(sample.pixels, pixels)
    assert np.shares_memory(sample.pixels, np.frombuffer(payload, np.uint8))  # no copy
    assert not sample.pixels.flags.writeable
    assert type(sample.label) is bytes and sample.label == b"cat"
    assert Image.from_bytes(payload).pixels.flags.writeable
