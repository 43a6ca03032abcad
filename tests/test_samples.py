"""Sample types and their wire format, byte-compatible with atdata 0.2."""

from __future__ import annotations

import dataclasses
import io
import multiprocessing
import typing
import uuid
from typing import Any, Optional

import msgpack
import numpy as np
import pytest
from _samples_future import Child, FutureSample, PlainSubclass
from hypothesis import given
from hypothesis import strategies as st
from numpy.typing import NDArray

from atdata_lite._types import field_types, is_ndarray_type, ndarray_dtype, unwrap_optional
from atdata_lite.errors import (
    InvalidSampleKeyError,
    SampleDecodeError,
    UnsupportedFieldTypeError,
)
from atdata_lite.samples import (
    DictSample,
    PackableSample,
    SampleBatch,
    check_key,
    new_key,
    packable,
)

# A sample as atdata 0.2 packs it: 188 bytes.
WIRE_VECTOR = bytes.fromhex(
    "87a46e616d65a161a16ecd012ca166cb3fd0000000000000a4666c6167c3a3726177c40101"
    "a3617272c48c934e554d505901007600"
    "7b276465736372273a20273c6934272c2027666f727472616e5f6f72646572273a2046616c73652c20"
    "277368617065273a2028332c292c207d" + "20" * 60 + "0a010000000200000003000000a36f7074c0"
)


@packable
class VectorSample:
    name: str
    n: int
    f: float
    flag: bool
    raw: bytes
    arr: NDArray
    opt: NDArray | None = None


def test_wire_vector_byte_for_byte():
    s = VectorSample(
        name="a", n=300, f=0.25, flag=True, raw=b"\x01", arr=np.array([1, 2, 3], dtype="<i4")
    )
    assert len(WIRE_VECTOR) == 188
    assert s.packed == WIRE_VECTOR


def test_wire_vector_decodes():
    s = VectorSample.from_bytes(WIRE_VECTOR)
    assert s.name == "a" and s.n == 300 and s.f == 0.25 and s.flag is True
    assert s.raw == b"\x01" and s.opt is None
    assert isinstance(s.arr, np.ndarray) and s.arr.dtype == np.dtype("<i4")
    assert s.arr.tolist() == [1, 2, 3]


def _future_sample() -> FutureSample:
    return FutureSample(
        text="héllo",
        count=-(2**40),
        score=1.5,
        ok=False,
        blob=b"\x00\xff",
        image=np.arange(12, dtype=np.uint8).reshape(3, 4),
        any_array=np.array([[1.0, 2.0]], dtype=np.float16),
        plain_array=np.array([True, False]),
        typed_array=np.linspace(0, 1, 5, dtype=np.float32),
        tags=["a", "b"],
        matrix=[[1.0], [2.0, 3.0]],
        arrays=[np.array([1, 2], dtype=np.int16), np.zeros((2, 2), dtype=np.int16)],
        maybe_array=np.array([7], dtype=np.int64),
        maybe_array2=np.array([0.5]),
        maybe_text="x",
        maybe_list=[1, 2],
    )


def _assert_same(a: Any, b: Any) -> None:
    assert type(a) is type(b)
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert isinstance(y, np.ndarray), f.name
            assert x.dtype == y.dtype and x.shape == y.shape, f.name
            np.testing.assert_array_equal(x, y)
        elif isinstance(x, list) and x and isinstance(x[0], np.ndarray):
            assert len(x) == len(y)
            for xi, yi in zip(x, y, strict=True):
                assert isinstance(yi, np.ndarray) and xi.dtype == yi.dtype
                np.testing.assert_array_equal(xi, yi)
        else:
            assert x == y, f.name


def test_round_trip_every_field_kind_with_string_annotations():
    s = _future_sample()
    back = FutureSample.from_bytes(s.packed)
    _assert_same(s, back)


def test_round_trip_optionals_absent():
    s = dataclasses.replace(
        _future_sample(), maybe_array=None, maybe_array2=None, maybe_text=None, maybe_list=None
    )
    back = FutureSample.from_bytes(s.packed)
    _assert_same(s, back)
    assert back.maybe_array is None


def test_packable_subclass_keeps_parent_fields_first_and_decodes_arrays():
    base = _future_sample()
    child = Child(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base)}, extra=3)
    assert [f.name for f in dataclasses.fields(Child)][-1] == "extra"
    back = Child.from_bytes(child.packed)
    _assert_same(child, back)
    assert isinstance(back, FutureSample) and isinstance(back, PackableSample)


def test_plain_dataclass_subclass_of_packable_sample():
    s = PlainSubclass(vec=np.ones(3, dtype=np.float32), label="x")
    back = PlainSubclass.from_bytes(s.packed)
    assert back.vec.dtype == np.float32 and back.label == "x"


def test_make_dataclass_type_like_the_schema_module_builds():
    cls = dataclasses.make_dataclass(
        "Decoded",
        [
            ("opt", Optional[NDArray], dataclasses.field(default=None)),  # noqa: UP045
            ("raw", bytes),
            ("arr", NDArray[Any]),
        ],
        bases=(PackableSample,),
        kw_only=True,
    )
    s = cls(raw=b"r", arr=np.eye(2), opt=np.zeros(1))
    back = cls.from_bytes(s.packed)
    assert isinstance(back.arr, np.ndarray) and isinstance(back.opt, np.ndarray)
    np.testing.assert_array_equal(back.arr, np.eye(2))


def test_only_declared_fields_are_serialised():
    s = VectorSample(name="a", n=1, f=0.0, flag=False, raw=b"", arr=np.zeros(1))
    s.stray = "leak"  # type: ignore[attr-defined]
    assert set(msgpack.unpackb(s.packed)) == {"name", "n", "f", "flag", "raw", "arr", "opt"}


def test_numpy_scalars_are_written_as_python_values():
    s = VectorSample(name="a", n=np.int64(5), f=np.float32(0.5), flag=np.bool_(True), raw=b"",
                     arr=np.zeros(1))  # fmt: skip
    back = VectorSample.from_bytes(s.packed)
    assert (back.n, back.f, back.flag) == (5, 0.5, True)


def test_bytes_given_for_an_array_field_become_an_array():
    npy = io.BytesIO()
    np.save(npy, np.arange(3))
    s = VectorSample(name="a", n=1, f=0.0, flag=False, raw=b"", arr=npy.getvalue())
    assert isinstance(s.arr, np.ndarray) and s.arr.tolist() == [0, 1, 2]


# --- reading everything that writing produces -------------------------------------------


def test_dict_sample_with_int_keys_reads_back():
    d = DictSample(a={1: "one", 2: "two"}, b=[1, 2])
    back = DictSample.from_bytes(d.packed)
    assert back.a == {1: "one", 2: "two"} and back["b"] == [1, 2]


def test_dict_sample_api():
    d = DictSample.from_bytes(WIRE_VECTOR)
    assert d.keys() == ["name", "n", "f", "flag", "raw", "arr", "opt"]
    assert d.name == "a" and d["n"] == 300 and "flag" in d and d.get("nope", 1) == 1
    assert isinstance(d.arr, bytes)  # no schema: arrays stay NPY bytes, as in atdata
    with pytest.raises(AttributeError, match=r"has no field 'nope'\. Available fields"):
        _ = d.nope
    with pytest.raises(KeyError):
        _ = d["nope"]
    assert DictSample.from_bytes(d.packed) == d


# --- object arrays -------------------------------------------------------------------------


def test_object_array_refused_on_write():
    s = VectorSample(
        name="a", n=1, f=0.0, flag=False, raw=b"", arr=np.array([{"x": 1}], dtype=object)
    )
    with pytest.raises(UnsupportedFieldTypeError, match=r"'arr' of VectorSample.*dtype object"):
        _ = s.packed


def _object_array_payload() -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    return msgpack.packb(
        {"name": "a", "n": 1, "f": 0.0, "flag": False, "raw": b"", "arr": buf.getvalue()}
    )


def test_object_array_refused_on_read():
    with pytest.raises(SampleDecodeError, match=r"'arr' of VectorSample.*pickle"):
        VectorSample.from_bytes(_object_array_payload())


def test_object_array_allowed_when_the_class_opts_in():
    @packable(allow_pickle=True)
    class Trusted:
        name: str
        n: int
        f: float
        flag: bool
        raw: bytes
        arr: NDArray
        opt: NDArray | None = None

    back = Trusted.from_bytes(_object_array_payload())
    assert back.arr[0] == {"x": 1}
    assert Trusted.from_bytes(back.packed).arr[0] == {"x": 1}


# --- bad input ------------------------------------------------------------------------------


def test_unknown_field_in_data_names_field_and_type():
    payload = msgpack.packb({"name": "a", "n": 1, "f": 0.0, "flag": False, "raw": b"",
                             "arr": None, "colour": "red"})  # fmt: skip
    with pytest.raises(SampleDecodeError, match=r"\['colour'\].*VectorSample"):
        VectorSample.from_bytes(payload)


def test_missing_required_field_is_named():
    with pytest.raises(SampleDecodeError, match=r"\['raw'\].*VectorSample"):
        VectorSample.from_data({"name": "a", "n": 1, "f": 0.0, "flag": False, "arr": None})


@pytest.mark.parametrize("payload", [b"\xc1", b"", msgpack.packb([1, 2]), b"\x81\xa1"])
def test_corrupt_payload_is_a_sample_decode_error(payload):
    with pytest.raises(SampleDecodeError):
        VectorSample.from_bytes(payload)


@dataclasses.dataclass
class _Nested:
    x: int


@pytest.mark.parametrize(
    "annotation",
    [dict, dict[str, int], tuple[int, int], Any, int | str, _Nested, set[int], list[dict]],
)
def test_unsupported_field_type_is_refused_at_class_definition(annotation):
    # Built with type() so the annotation is the object itself, not a string.
    bad = type("Bad", (), {"__annotations__": {"ok": int, "bad": annotation}})
    with pytest.raises(UnsupportedFieldTypeError, match="'bad' of Bad"):
        packable(bad)


def test_unresolvable_annotation_is_refused_at_class_definition():
    with pytest.raises(UnsupportedFieldTypeError, match="Cannot resolve"):

        @packable
        class Bad:
            x: NoSuchType  # type: ignore[name-defined]  # noqa: F821


# --- keys -----------------------------------------------------------------------------------


def test_new_key_is_a_uuid7_and_sorts_in_creation_order():
    keys = [new_key() for _ in range(5000)]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)
    parsed = uuid.UUID(keys[0])
    assert str(parsed) == keys[0] and parsed.version == 7


def _keys_in_child(n: int) -> list[str]:
    return [new_key() for _ in range(n)]


def test_new_key_unique_across_processes():
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(4) as pool:
        batches = pool.map(_keys_in_child, [3000] * 4)
    flat = [k for b in batches for k in b] + _keys_in_child(3000)
    assert len(set(flat)) == len(flat)


@pytest.mark.parametrize("key", ["", "a.b", "a/b", "a\\b", "a\nb", 5, "x" * 201])
def test_invalid_user_key(key):
    with pytest.raises(InvalidSampleKeyError, match="Invalid sample key"):
        check_key(key)


def test_valid_user_key():
    assert check_key("img_0001-a") == "img_0001-a"


# --- batches --------------------------------------------------------------------------------


def test_batch_stacks_arrays_and_lists_other_fields_including_inherited():
    base = _future_sample()
    kids = [
        Child(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base)}, extra=i)
        for i in range(3)
    ]
    batch = SampleBatch[Child](kids)
    assert batch.image.shape == (3, 3, 4)  # inherited field
    assert batch.extra == [0, 1, 2]
    assert batch.sample_type is Child
    with pytest.raises(AttributeError, match="No sample attribute named nope"):
        _ = batch.nope


def test_batch_without_subscript_infers_the_type():
    s = PlainSubclass(vec=np.ones(2, dtype=np.float32))
    batch = SampleBatch([s, s])
    assert batch.vec.shape == (2, 2) and batch.sample_type is PlainSubclass


def test_batch_of_ragged_arrays_is_a_list():
    a = PlainSubclass(vec=np.ones(2, dtype=np.float32))
    b = PlainSubclass(vec=np.ones(3, dtype=np.float32))
    vecs = SampleBatch[PlainSubclass]([a, b]).vec
    assert isinstance(vecs, list) and [v.shape for v in vecs] == [(2,), (3,)]


def test_batch_of_dict_samples():
    batch = SampleBatch[DictSample]([DictSample(a=1, b="x"), DictSample(a=2, b="y")])
    assert batch.a == [1, 2] and batch.b == ["x", "y"]


def test_empty_batch():
    assert SampleBatch[PlainSubclass]([]).vec == []


# --- annotation helpers (used by the schema module too) ------------------------------------


def test_type_helpers():
    hints = field_types(FutureSample)
    assert list(hints)[:3] == ["text", "count", "score"]
    assert unwrap_optional(hints["maybe_array"])[1] is True
    assert unwrap_optional(typing.Union[int, None]) == (int, True)  # noqa: UP007
    assert unwrap_optional(int) == (int, False)
    assert is_ndarray_type(hints["plain_array"]) and is_ndarray_type(hints["any_array"])
    assert not is_ndarray_type(list[int])
    assert ndarray_dtype(hints["image"]) == "uint8"
    assert ndarray_dtype(hints["typed_array"]) == "float32"
    assert ndarray_dtype(hints["any_array"]) is None
    assert ndarray_dtype(NDArray[Any]) is None
    assert ndarray_dtype(NDArray[np.floating]) is None


# --- property: any primitive values round-trip ----------------------------------------------


@packable
class Prims:
    s: str
    i: int
    f: float
    b: bool
    raw: bytes
    li: list[int]
    o: str | None = None


@given(
    s=st.text(),
    i=st.integers(min_value=-(2**63), max_value=2**64 - 1),
    f=st.floats(allow_nan=False),
    b=st.booleans(),
    raw=st.binary(),
    li=st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1)),
    o=st.none() | st.text(),
)
def test_primitives_round_trip(s, i, f, b, raw, li, o):
    p = Prims(s=s, i=i, f=f, b=b, raw=raw, li=li, o=o)
    assert Prims.from_bytes(p.packed) == p
