"""Field values are checked against their annotations, by one validator, on write and read."""

from __future__ import annotations

import re
from typing import Literal

import msgpack
import numpy as np
import pytest
from numpy.typing import NDArray

from atdata_lite.dataset import Dataset
from atdata_lite.errors import (
    AtdataLiteError,
    FieldTypeError,
    SampleDecodeError,
    SampleMismatchError,
)
from atdata_lite.samples import packable
from atdata_lite.shards import write_samples


@packable
class Photo:
    label: int
    score: float
    name: str
    flag: bool
    raw: bytes
    image: NDArray[np.uint8]
    tags: list[str]
    grid: np.ndarray[tuple[int, Literal[3]], np.dtype[np.float32]] | None = None
    note: str | None = None
    nested: list[list[int]] | None = None


def _photo(**changes):
    values = dict(
        label=1,
        score=0.5,
        name="n",
        flag=False,
        raw=b"r",
        image=np.zeros((2, 2), dtype=np.uint8),
        tags=["a"],
    )
    values.update(changes)
    return Photo(**values)


# (field, bad value, what the message says was expected)
BAD_VALUES = [
    ("label", "cat", "int"),
    ("label", True, "int"),
    ("label", 3.0, "int"),
    ("label", None, "int"),
    ("label", 2**64, "int between"),
    ("score", "0.5", "float"),
    ("score", True, "float"),
    ("score", 2**53 + 1, "no exact float"),
    ("name", b"n", "str"),
    ("name", 5, "str"),
    ("flag", 1, "bool"),
    ("flag", "true", "bool"),
    ("raw", "r", "bytes"),
    ("tags", ("a",), "list of str"),
    ("tags", "a", "list of str"),
    ("tags", ["a", 3], "str"),
    ("note", 5, "None or str"),
    ("nested", [[1], [2.5]], "int"),
]
BAD_ARRAYS = [
    ("image", np.zeros(2, dtype=np.float64), "ndarray of dtype uint8"),
    ("image", [1, 2], "ndarray of dtype uint8"),
    ("image", 5, "ndarray of dtype uint8"),
    ("grid", np.zeros((2, 4), dtype=np.float32), "shape (any, 3)"),
    ("grid", np.zeros(3, dtype=np.float32), "shape (any, 3)"),
    ("grid", np.zeros((2, 3), dtype=np.float64), "dtype float32"),
]


@pytest.mark.parametrize(("field", "value", "expected"), BAD_VALUES + BAD_ARRAYS)
def test_bad_value_is_refused_on_write_naming_field_and_expectation(field, value, expected):
    sample = _photo()
    setattr(sample, field, value)
    with pytest.raises(FieldTypeError) as info:
        _ = sample.packed
    exc = info.value
    assert isinstance(exc, TypeError) and isinstance(exc, AtdataLiteError)
    assert exc.field == field and expected in exc.expected
    assert f"field {field!r}" in str(exc) or f"field '{field}[" in str(exc)
    assert expected in str(exc)


def _payload(**changes) -> bytes:
    data = msgpack.unpackb(_photo().packed)
    data.update(changes)
    return msgpack.packb(data, use_bin_type=True)


# msgpack has no tuples (a tuple reads back as a list, which is valid) and cannot hold 2**64
READ_BAD_VALUES = [v for v in BAD_VALUES if not isinstance(v[1], tuple) and v[1] != 2**64]


@pytest.mark.parametrize(("field", "value", "expected"), READ_BAD_VALUES)
def test_the_same_values_are_refused_on_read(field, value, expected):
    with pytest.raises(SampleMismatchError) as info:
        Photo.from_bytes(_payload(**{field: value}))
    exc = info.value
    assert isinstance(exc, TypeError) and isinstance(exc, SampleDecodeError)
    assert exc.field == field and expected in str(exc)


def _npy(arr: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("image", 5, "ndarray of dtype uint8, got int 5"),
        ("image", "x", "ndarray of dtype uint8, got str"),
        (
            "image",
            _npy(np.zeros(2, np.float64)),
            "uint8, got ndarray of dtype float64",
        ),
        ("grid", _npy(np.zeros((2, 4), np.float32)), "shape (any, 3), got ndarray"),
    ],
)
def test_bad_arrays_are_refused_on_read(field, value, expected):
    with pytest.raises(SampleMismatchError, match=re.escape(expected)):
        Photo.from_bytes(_payload(**{field: value}))


def test_decoding_errors_in_a_dataset_name_shard_key_and_field(tmp_path):
    path = tmp_path / "s.tar"
    import webdataset as wds

    with wds.TarWriter(str(path)) as sink:
        sink.write({"__key__": "good", "msgpack": _photo().packed})
        sink.write({"__key__": "bad", "msgpack": _payload(label="notint")})
    with pytest.raises(SampleMismatchError) as info:
        list(Dataset[Photo](str(path)).ordered())
    message = str(info.value)
    assert "s.tar" in message and "'bad'" in message and "'label'" in message
    assert "notint" in message
    assert info.value.shard == str(path) and info.value.key == "bad"
    assert info.value.field == "label"


def test_missing_or_unknown_field_is_a_type_error_as_in_atdata():
    data = msgpack.unpackb(_photo().packed)
    del data["label"]
    with pytest.raises(SampleMismatchError, match=r"\['label'\]") as info:
        Photo.from_data(data)
    assert info.value.field == "label" and isinstance(info.value, TypeError)
    with pytest.raises(TypeError, match=r"Unknown field\(s\) \['colour'\]"):
        Photo.from_bytes(_payload(colour="red"))


# --- what is accepted, and how -----------------------------------------------------------


def test_accepted_conversions_are_exact_and_documented():
    sample = _photo(
        label=np.int64(7),
        score=3,  # an int in a float field: stored as a float
        flag=np.bool_(True),
        raw=bytearray(b"xy"),
        image=np.zeros(2, dtype=">u1"),  # byte order is not part of the dtype check
    )
    back = Photo.from_bytes(sample.packed)
    assert back.label == 7 and type(back.label) is int
    assert back.score == 3.0 and type(back.score) is float
    assert back.flag is True and back.raw == b"xy"
    assert np.float32(0.25) == Photo.from_bytes(_photo(score=np.float32(0.25)).packed).score
    # atdata wrote whatever it was given: an int in a float field reads as a float
    assert type(Photo.from_bytes(_payload(score=2)).score) is float


def test_npy_bytes_are_accepted_for_an_array_field_on_write():
    sample = _photo()
    sample.image = _npy(np.arange(3, dtype=np.uint8))  # set after construction
    assert Photo.from_bytes(sample.packed).image.tolist() == [0, 1, 2]
    sample.image = _npy(np.arange(3, dtype=np.int64))
    with pytest.raises(FieldTypeError, match="dtype uint8"):
        _ = sample.packed


def test_write_samples_names_the_position_and_leaves_nothing(tmp_path):
    samples = [_photo(), _photo(), _photo(label="cat")]
    with pytest.raises(FieldTypeError) as info:
        write_samples(samples, str(tmp_path / "s-%d.tar"), maxcount=1)
    exc = info.value
    assert exc.position == 2 and exc.field == "label" and exc.expected == "int"
    assert str(exc).startswith("Sample at position 2 of the input (counting from 0)")
    assert "field 'label' of Photo expects int, got str 'cat'" in str(exc)
    assert "int(value)" in str(exc)
    assert list(tmp_path.iterdir()) == []


def test_none_in_a_required_field_says_how_to_allow_it():
    with pytest.raises(FieldTypeError, match=r"Declare the field Optional"):
        _ = _photo(name=None).packed
