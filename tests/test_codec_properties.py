"""Property-based tests of the sample codec and schema records (hypothesis).

* Any valid value of any supported field type round-trips, byte for byte.
* Whatever bytes or msgpack a shard member holds, decoding either gives a sample that can be
  written again or raises one of our errors (an ``AtdataLiteError``), never anything else.
* Schema records: a record built from a type turns back into a type that describes itself
  with the same fields and reads the first type's samples; random records are either
  accepted or refused with our error.
"""

from __future__ import annotations

import dataclasses
import io
import math
import typing
from typing import Any, Literal

import msgpack
import numpy as np
import pytest
from _samples_future import Child, FutureSample
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import NDArray

from atdata_lite._types import field_types, is_ndarray_type, ndarray_dtype, unwrap_optional
from atdata_lite.errors import AtdataLiteError
from atdata_lite.samples import DictSample, PackableSample
from atdata_lite.schema import schema_record, schema_to_type

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- values for annotations ---------------------------------------------------------------

_ANY_DTYPES = (
    hnp.boolean_dtypes()
    | hnp.integer_dtypes()
    | hnp.unsigned_integer_dtypes()
    | hnp.floating_dtypes()
    | hnp.complex_number_dtypes()
    | hnp.byte_string_dtypes()
    | hnp.unicode_string_dtypes()
    | hnp.datetime64_dtypes()
)
_SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)


def _shape_strategy(tp: Any) -> st.SearchStrategy[tuple[int, ...]]:
    args = typing.get_args(tp)
    if len(args) == 2 and typing.get_origin(args[0]) is tuple:
        dims = typing.get_args(args[0])
        if dims and Ellipsis not in dims:
            return st.tuples(
                *(
                    st.just(typing.get_args(d)[0])
                    if typing.get_origin(d) is Literal
                    else st.integers(0, 3)
                    for d in dims
                )
            )
    return _SHAPES


def values_for(tp: Any) -> st.SearchStrategy[Any]:
    """Every valid value of a field annotation (as the docs define valid)."""
    inner, optional = unwrap_optional(tp)
    if is_ndarray_type(inner):
        name = ndarray_dtype(inner)
        dtype = st.just(np.dtype(name)) if name else _ANY_DTYPES
        base: st.SearchStrategy[Any] = dtype.flatmap(
            lambda d: hnp.arrays(d, _shape_strategy(inner))
        )
    elif inner is int:
        base = st.integers(-(2**63), 2**64 - 1)
    elif inner is float:
        base = st.floats()
    elif inner is bool:
        base = st.booleans()
    elif inner is str:
        base = st.text()
    elif inner is bytes:
        base = st.binary()
    elif typing.get_origin(inner) is list and typing.get_args(inner):
        base = st.lists(values_for(typing.get_args(inner)[0]), max_size=4)
    else:  # bare list: items are not described; any msgpack value
        base = st.lists(st.integers(-100, 100) | st.text(max_size=3), max_size=4)
    return st.none() | base if optional else base


_LEAF_TYPES = [
    int,
    float,
    bool,
    str,
    bytes,
    NDArray,
    NDArray[np.uint8],
    NDArray[np.float32],
    np.ndarray[tuple[int, Literal[2]], np.dtype[np.int16]],
]


def _annotations(schema_safe: bool = False) -> st.SearchStrategy[Any]:
    leaves = st.sampled_from(_LEAF_TYPES)
    if schema_safe:  # schema records cannot describe a shape, or optional list items
        leaves = st.sampled_from([t for t in _LEAF_TYPES if typing.get_origin(t) is not np.ndarray])
        items = st.recursive(leaves, lambda inner: inner.map(lambda t: list[t]), max_leaves=3)
    else:
        items = st.recursive(
            leaves,
            lambda inner: inner.map(lambda t: list[t]) | inner.map(lambda t: list[t | None]),
            max_leaves=3,
        )
    return st.tuples(items, st.booleans()).map(lambda p: p[0] | None if p[1] else p[0])


@st.composite
def sample_types(draw: st.DrawFn, schema_safe: bool = False) -> type:
    annotations = draw(st.lists(_annotations(schema_safe), min_size=1, max_size=5))
    specs = [(f"f{i}", tp) for i, tp in enumerate(annotations)]
    return dataclasses.make_dataclass("Generated", specs, bases=(PackableSample,))


@st.composite
def samples_of(draw: st.DrawFn, cls: type) -> Any:
    return cls(**{name: draw(values_for(tp)) for name, tp in field_types(cls).items()})


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return (
            isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and a.tobytes() == b.tobytes()
        )
    if isinstance(a, float):
        return type(b) is float and (a == b or (math.isnan(a) and math.isnan(b)))
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_same, a, b))
    return type(a) is type(b) and a == b


def _assert_round_trip(sample: Any) -> None:
    cls = type(sample)
    payload = sample.packed
    back = cls.from_bytes(payload)
    for name in field_types(cls):
        assert _same(getattr(sample, name), getattr(back, name)), name
    assert back.packed == payload


# --- any valid value round-trips ----------------------------------------------------------


@SETTINGS
@given(st.data())
def test_any_valid_sample_of_a_generated_type_round_trips(data):
    cls = data.draw(sample_types())
    _assert_round_trip(data.draw(samples_of(cls)))


@pytest.mark.parametrize("cls", [FutureSample, Child])
@SETTINGS
@given(data=st.data())
def test_any_valid_sample_with_string_annotations_round_trips(cls, data):
    _assert_round_trip(data.draw(samples_of(cls)))


# --- random input never raises anything but our errors -------------------------------------


def _decode_or_our_error(cls: type, payload: bytes) -> None:
    try:
        sample = cls.from_bytes(payload)
    except AtdataLiteError:
        return
    # What reads is what can be written: a decoded sample packs again.
    assert cls.from_bytes(sample.packed).packed == sample.packed


_MSGPACK_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=8)
    | st.binary(max_size=16),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=4) | st.integers(-3, 3), inner, max_size=4)
    ),
    max_leaves=12,
)


def _npy_bytes() -> st.SearchStrategy[bytes]:
    """NPY-looking payloads: a real header (any dtype text, any shape) and random data."""
    header = st.fixed_dictionaries(
        {
            "descr": st.sampled_from(["<i4", "|u1", "<f8", "|O", "<U3", "zz", "|V0"]),
            "fortran_order": st.booleans(),
            "shape": st.lists(st.integers(0, 2**40), max_size=3).map(tuple),
        }
    )
    return st.tuples(header, st.binary(max_size=64)).map(
        lambda p: (
            b"\x93NUMPY\x01\x00"
            + len(repr(p[0]).encode()).to_bytes(2, "little")
            + repr(p[0]).encode()
            + p[1]
        )
    )


@SETTINGS
@given(st.binary(max_size=512))
def test_random_bytes_raise_only_our_errors(payload):
    for cls in (FutureSample, Child, DictSample):
        _decode_or_our_error(cls, payload)


@SETTINGS
@given(_MSGPACK_VALUES)
def test_random_msgpack_raises_only_our_errors(value):
    payload = msgpack.packb(value, use_bin_type=True)
    for cls in (FutureSample, DictSample):
        _decode_or_our_error(cls, payload)


@SETTINGS
@given(st.data())
def test_random_field_values_raise_only_our_errors(data):
    # Maps with the right field names (most of them), random values: reaches every check.
    cls = data.draw(st.sampled_from([FutureSample, Child]))
    names = list(field_types(cls))
    fields = data.draw(st.lists(st.sampled_from(names), unique=True, min_size=len(names) - 2))
    values = _MSGPACK_VALUES | _npy_bytes()
    value = {name: data.draw(values) for name in fields}
    _decode_or_our_error(cls, msgpack.packb(value, use_bin_type=True))


@SETTINGS
@given(st.data())
def test_random_values_on_write_raise_only_our_errors(data):
    cls = data.draw(sample_types())
    names = list(field_types(cls))
    sample = cls.__new__(cls)  # no __post_init__: the check on write sees the raw values
    for name in names:
        object.__setattr__(sample, name, data.draw(_MSGPACK_VALUES | _npy_bytes()))
    try:
        payload = sample.packed
    except AtdataLiteError:
        return
    _decode_or_our_error(cls, payload)


def test_npy_header_claiming_a_huge_array_is_refused_without_allocating():
    header = b"{'descr': '|u1', 'fortran_order': False, 'shape': (1099511627776,), }\n"
    payload = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + b"\x00" * 4
    cls = dataclasses.make_dataclass("OneArray", [("a", NDArray)], bases=(PackableSample,))
    with pytest.raises(AtdataLiteError, match=r"describes 1099511627776 bytes.*holds 4"):
        cls.from_data({"a": payload})
    from atdata_lite.samples import bytes_to_array

    with pytest.raises(AtdataLiteError, match="describes 1099511627776 bytes"):
        bytes_to_array(payload)
    buf = io.BytesIO()
    np.save(buf, np.arange(4, dtype=np.uint8))
    assert bytes_to_array(buf.getvalue()).tolist() == [0, 1, 2, 3]


# --- schema records -----------------------------------------------------------------------


@SETTINGS
@given(st.data())
def test_schema_record_of_any_type_round_trips(data):
    cls = data.draw(sample_types(schema_safe=True))
    record = schema_record(cls, version="1.2.3")
    back = schema_to_type(record, use_cache=False)
    assert schema_record(back, version="1.2.3")["fields"] == record["fields"]
    # The decoded type reads what the original type wrote, and writes the same bytes.
    sample = data.draw(samples_of(cls))
    decoded = back.from_bytes(sample.packed)
    assert decoded.packed == sample.packed


_FIELD_TYPES = st.recursive(
    st.fixed_dictionaries(
        {
            "$type": st.sampled_from(
                ["local#primitive", "local#ndarray", "local#ref", "x#nope", 5, None]
            ),
        },
        optional={
            "primitive": st.sampled_from(["str", "int", "float", "bool", "bytes", "x", 3]),
            "dtype": st.sampled_from(["uint8", "float32", "any", "nope", 1]),
            "kind": st.sampled_from(["primitive", "ndarray", "array"]),
        },
    ),
    lambda inner: st.fixed_dictionaries(
        {"$type": st.just("local#array")}, optional={"items": inner | _MSGPACK_VALUES}
    ),
    max_leaves=4,
)
_RECORDS = st.fixed_dictionaries(
    {},
    optional={
        "name": st.text(max_size=6) | _MSGPACK_VALUES,
        "version": st.sampled_from(["1.0.0", "x", ""]) | _MSGPACK_VALUES,
        "description": st.text(max_size=5) | _MSGPACK_VALUES,
        "fields": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "name": st.sampled_from(["a", "b", "class", "1x", ""]) | _MSGPACK_VALUES,
                    "fieldType": _FIELD_TYPES | _MSGPACK_VALUES,
                    "optional": _MSGPACK_VALUES,
                    "default": _MSGPACK_VALUES,
                },
            )
            | _MSGPACK_VALUES,
            max_size=4,
        )
        | _MSGPACK_VALUES,
    },
)


@SETTINGS
@given(_RECORDS | _MSGPACK_VALUES)
def test_random_schema_records_raise_only_our_errors(record):
    try:
        cls = schema_to_type(record, use_cache=False)
    except AtdataLiteError:
        return
    assert issubclass(cls, PackableSample)
