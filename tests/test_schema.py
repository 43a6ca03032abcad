"""Schema records: refs, semver, records from types (atdata's format + fixes), back to types."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from _index_helpers import ImageSample, TextSample
from numpy.typing import NDArray

from atdata_lite.errors import (
    InvalidSchemaRefError,
    NotPackableError,
    SchemaDecodeError,
    UnsupportedFieldTypeError,
)
from atdata_lite.samples import PackableSample, packable
from atdata_lite.schema import (
    clear_type_cache,
    content_hash,
    make_schema_ref,
    next_patch,
    parse_schema_ref,
    parse_semver,
    render_record,
    schema_record,
    schema_to_type,
)

# A record written by atdata 0.2.3b1 (the Redis fixture): an optional field before
# required ones, which atdata itself cannot decode.
FIXTURE_TEXT_SAMPLE = (
    '{"name": "TextSample", "version": "1.0.0", "fields": [{"name": "text", "fieldType": '
    '{"$type": "local#primitive", "primitive": "str"}, "optional": false}, {"name": "tokens", '
    '"fieldType": {"$type": "local#array", "items": {"$type": "local#primitive", "primitive": '
    '"int"}}, "optional": false}, {"name": "embedding", "fieldType": {"$type": "local#ndarray", '
    '"dtype": "float32"}, "optional": true}, {"name": "raw", "fieldType": {"$type": '
    '"local#primitive", "primitive": "bytes"}, "optional": false}, {"name": "flag", '
    '"fieldType": {"$type": "local#primitive", "primitive": "bool"}, "optional": false}, '
    '{"name": "count", "fieldType": {"$type": "local#primitive", "primitive": "int"}, '
    '"optional": false}], "description": "Tokenized text", "createdAt": '
    '"2026-11-22T10:07:02.970071+00:00"}'
)
FIXTURE_IMAGE_SAMPLE = (
    '{"name": "ImageSample", "version": "1.0.0", "fields": [{"name": "image", "fieldType": '
    '{"$type": "local#ndarray", "dtype": "float32"}, "optional": false}, {"name": "label", '
    '"fieldType": {"$type": "local#primitive", "primitive": "str"}, "optional": false}, '
    '{"name": "confidence", "fieldType": {"$type": "local#primitive", "primitive": "float"}, '
    '"optional": true}], "description": "An image with a label.", "createdAt": '
    '"2026-11-22T10:07:02.968078+00:00"}'
)


# --- refs and semver ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("atdata://local/sampleSchema/ImageSample@1.0.0", ("ImageSample", "1.0.0")),
        ("local://schemas/any.module.path.ImageSample@1.0.1", ("ImageSample", "1.0.1")),
        ("local://schemas/__main__.ImageSample@1.0.0", ("ImageSample", "1.0.0")),
        ("atdata://local/sampleSchema/A@b@2.0.0", ("A@b", "2.0.0")),
        ("atdata://local/sampleSchema/X@banana", ("X", "banana")),
    ],
)
def test_parse_schema_ref_both_forms(ref, expected):
    assert parse_schema_ref(ref) == expected


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("foo://bar", "Invalid schema reference: foo://bar"),
        ("at://did:plc:x/ac.foundation.dataset.sampleSchema/abc", "Invalid schema reference"),
        (
            "atdata://local/sampleSchema/ImageSample",
            r"^Schema reference must include version \(@version\): "
            "atdata://local/sampleSchema/ImageSample",
        ),
        ("atdata://local/sampleSchema/@1.0.0", "must not be empty"),
        ("atdata://local/sampleSchema/X@", "must not be empty"),
    ],
)
def test_parse_schema_ref_errors_are_value_errors(ref, message):
    with pytest.raises(InvalidSchemaRefError, match=message) as info:
        parse_schema_ref(ref)
    assert isinstance(info.value, ValueError)


def test_make_schema_ref_round_trips():
    ref = make_schema_ref("ImageSample", "1.2.3")
    assert ref == "atdata://local/sampleSchema/ImageSample@1.2.3"
    assert parse_schema_ref(ref) == ("ImageSample", "1.2.3")


def test_semver():
    assert parse_semver("1.10.0") > parse_semver("1.9.0")
    assert parse_semver("0.0.0") == (0, 0, 0)
    assert next_patch("1.2.3") == "1.2.4"
    assert next_patch("1.0.9") == "1.0.10"
    for bad in ["banana", "2.0", "1.0.0.0", "1.01.0", "1.0.0-rc1", "", " 1.0.0", "v1.0.0"]:
        with pytest.raises(ValueError, match="Invalid semver format"):
            parse_semver(bad)


# --- records from types ------------------------------------------------------------------


def test_record_has_atdata_key_order_and_shape():
    record = schema_record(ImageSample, version="1.0.0")
    assert list(record) == ["name", "version", "fields", "description", "createdAt"]
    assert record["name"] == "ImageSample"
    assert record["description"] == "An image with a label."
    assert record["fields"][0] == {
        "name": "image",
        "fieldType": {"$type": "local#ndarray", "dtype": "any"},
        "optional": False,
    }
    assert record["fields"][1]["fieldType"] == {"$type": "local#primitive", "primitive": "str"}
    assert record["fields"][2]["optional"] is True
    assert [list(f) for f in record["fields"]] == [["name", "fieldType", "optional"]] * 3
    # atdata's storage format: json.dumps defaults, no $ref.
    text = render_record(record)
    assert text.startswith('{"name": "ImageSample", "version": "1.0.0", "fields": [')
    assert "$ref" not in text


def test_description_argument_wins_and_missing_docstring_is_none():
    assert schema_record(ImageSample, version="1.0.0", description="d")["description"] == "d"
    assert schema_record(TextSample, version="1.0.0")["description"] is None


def test_exact_dtypes_including_unsigned():
    @packable
    class Arrays:
        a: NDArray[np.uint8]
        b: NDArray[np.uint16]
        c: NDArray[np.uint32]
        d: NDArray[np.uint64]
        e: NDArray[np.int8]
        f: NDArray[np.float16]
        g: NDArray[np.complex128]
        h: NDArray[np.bool_]
        i: np.ndarray
        j: NDArray | None = None

    dtypes = [f["fieldType"]["dtype"] for f in schema_record(Arrays, version="1.0.0")["fields"]]
    assert dtypes == [
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "int8",
        "float16",
        "complex128",
        "bool",
        "any",
        "any",
    ]


def test_nested_lists_and_optional_lists():
    @packable
    class Lists:
        grid: list[list[float]]
        tags: list[str] | None = None

    fields = schema_record(Lists, version="1.0.0")["fields"]
    assert fields[0]["fieldType"] == {
        "$type": "local#array",
        "items": {
            "$type": "local#array",
            "items": {"$type": "local#primitive", "primitive": "float"},
        },
    }
    assert fields[1]["optional"] is True


def test_defaults_are_stored_with_bytes_as_base64():
    record = schema_record(TextSample, version="1.0.0")
    by_name = {f["name"]: f for f in record["fields"]}
    assert "default" not in by_name["text"]
    assert "default" not in by_name["embedding"]  # optional with default None: implied
    assert by_name["raw"]["default"] == {"$bytes": ""}
    assert by_name["flag"]["default"] is False
    assert by_name["count"]["default"] == 0

    @packable
    class D:
        blob: bytes = b"\x00\xff"
        xs: list[int] = None  # type: ignore[assignment]
        ratio: float = 0.5

    fields = {f["name"]: f for f in schema_record(D, version="1.0.0")["fields"]}
    assert fields["blob"]["default"] == {"$bytes": "AP8="}
    assert fields["ratio"]["default"] == 0.5


def test_list_default_factory_is_stored():
    import dataclasses

    @packable
    class L:
        xs: list[int] = dataclasses.field(default_factory=lambda: [1, 2])

    (field,) = schema_record(L, version="1.0.0")["fields"]
    assert field["default"] == [1, 2]
    cls = schema_to_type(schema_record(L, version="1.0.0"), use_cache=False)
    a, b = cls(), cls()
    assert a.xs == [1, 2] and a.xs is not b.xs


def test_not_packable_types_are_refused_with_atdata_messages():
    import dataclasses

    class Plain:
        x: int

    @dataclasses.dataclass
    class PlainDC:
        x: int

    for cls in (Plain, PlainDC):
        with pytest.raises(NotPackableError, match="does not satisfy the Packable protocol"):
            schema_record(cls, version="1.0.0")
    with pytest.raises(TypeError, match="sample_type must be a class, got int"):
        schema_record(42, version="1.0.0")  # type: ignore[arg-type]


def test_zero_field_type_is_refused():
    @dataclass_subclass
    class Empty(PackableSample):
        pass

    with pytest.raises(NotPackableError, match="no fields"):
        schema_record(Empty, version="1.0.0")


def dataclass_subclass(cls):
    import dataclasses

    return dataclasses.dataclass(cls)


def test_unsupported_field_types():
    @dataclass_subclass
    class Bad(PackableSample):
        x: dict  # type: ignore[type-arg]

    with pytest.raises(UnsupportedFieldTypeError) as info:
        schema_record(Bad, version="1.0.0")
    assert isinstance(info.value, TypeError)


# --- content hash --------------------------------------------------------------------------


def test_content_hash_ignores_version_description_created_at_and_namespace():
    a = schema_record(ImageSample, version="1.0.0")
    b = dict(a, version="2.0.0", description="other", createdAt="x", **{"$ref": "r"})
    assert content_hash(a) == content_hash(b)
    c = json.loads(json.dumps(a))
    for f in c["fields"]:
        kind = f["fieldType"]["$type"].split("#")[1]
        f["fieldType"]["$type"] = "ac.foundation.dataset.schemaType#" + kind
    assert content_hash(c) == content_hash(a)


def test_content_hash_sees_fields_and_defaults():
    a = schema_record(TextSample, version="1.0.0")
    b = json.loads(json.dumps(a))
    b["fields"][-1]["default"] = 1
    assert content_hash(a) != content_hash(b)
    c = json.loads(json.dumps(a))
    c["fields"][0]["fieldType"]["primitive"] = "bytes"
    assert content_hash(a) != content_hash(c)


# --- records back to types ---------------------------------------------------------------


def test_fixture_text_sample_decodes_in_field_order():
    cls = schema_to_type(json.loads(FIXTURE_TEXT_SAMPLE))
    import dataclasses

    assert [f.name for f in dataclasses.fields(cls)] == [
        "text",
        "tokens",
        "embedding",
        "raw",
        "flag",
        "count",
    ]
    assert issubclass(cls, PackableSample)
    sample = cls(
        text="t", tokens=[1], embedding=np.arange(3, dtype="float32"), raw=b"r", flag=True, count=2
    )
    back = cls.from_bytes(sample.packed)
    assert back.text == "t" and back.raw == b"r" and back.count == 2
    assert isinstance(back.embedding, np.ndarray)
    assert back.embedding.tolist() == [0.0, 1.0, 2.0]
    assert (
        cls.from_bytes(cls(text="t", tokens=[], raw=b"", flag=False, count=0).packed).embedding
        is None
    )


def test_round_trip_keeps_defaults():
    cls = schema_to_type(schema_record(TextSample, version="1.0.0"), use_cache=False)
    sample = cls(text="a", tokens=[1])
    assert (sample.embedding, sample.raw, sample.flag, sample.count) == (None, b"", False, 0)
    assert cls.__schema_version__ == "1.0.0"


def test_decoded_type_republishes_the_same_content():
    record = json.loads(FIXTURE_IMAGE_SAMPLE)
    cls = schema_to_type(record)
    again = schema_record(cls, version="1.0.1")
    assert content_hash(again) == content_hash(record)
    assert again["fields"][0]["fieldType"]["dtype"] == "float32"


def test_foreign_namespace_and_bare_kind_are_accepted():
    record = {
        "name": "S",
        "fields": [
            {
                "name": "a",
                "fieldType": {
                    "$type": "ac.foundation.dataset.schemaType#primitive",
                    "primitive": "int",
                },
                "optional": False,
            },
            {
                "name": "b",
                "fieldType": {"kind": "array", "items": {"kind": "primitive", "primitive": "str"}},
            },
            {
                "name": "c",
                "fieldType": {
                    "$type": "ac.foundation.dataset.schemaType#ndarray",
                    "dtype": "uint8",
                    "shape": [2],
                },
            },
        ],
    }
    cls = schema_to_type(record)
    s = cls(a=1, b=["x"], c=np.zeros(2, dtype=np.uint8))
    back = cls.from_bytes(s.packed)
    assert back.a == 1 and back.b == ["x"] and back.c.dtype == np.uint8


def test_type_cache_keys_on_the_full_record():
    clear_type_cache()
    as_int = {
        "name": "X",
        "version": "1.0.0",
        "fields": [
            {
                "name": "x",
                "fieldType": {"$type": "local#primitive", "primitive": "int"},
                "optional": False,
            }
        ],
    }
    as_str = json.loads(json.dumps(as_int))
    as_str["fields"][0]["fieldType"]["primitive"] = "str"
    a = schema_to_type(as_int)
    b = schema_to_type(as_str)
    assert a is not b
    assert a.__dataclass_fields__["x"].type is int
    assert b.__dataclass_fields__["x"].type is str
    assert schema_to_type(json.loads(json.dumps(as_int))) is a
    assert schema_to_type(as_int, use_cache=False) is not a


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"fields": [{"name": "a", "fieldType": {}}]}, "Schema must have a 'name' field"),
        ({"name": "X", "fields": []}, "Schema must have at least one field"),
        ({"name": "X", "fields": [{"fieldType": {}}]}, "Each field must have a 'name'"),
        (
            {
                "name": "X",
                "fields": [
                    {"name": "a", "fieldType": {"$type": "local#primitive", "primitive": "date"}}
                ],
            },
            "Unknown primitive type: date",
        ),
        (
            {
                "name": "X",
                "fields": [{"name": "a", "fieldType": {"$type": "local#ref", "ref": "r"}}],
            },
            "Schema references",
        ),
        ({"name": "X", "fields": [{"name": "a", "fieldType": {}}]}, "Unknown field type kind: "),
        (
            {"name": "X", "fields": [{"name": "a: int = print('x') or 0\n    b", "fieldType": {}}]},
            "not a valid Python identifier",
        ),
        (
            {"name": "X", "fields": [{"name": "class", "fieldType": {"kind": "primitive"}}]},
            "not a valid Python identifier",
        ),
        (
            {
                "name": "X",
                "fields": [
                    {"name": "a", "fieldType": {"kind": "primitive"}},
                    {"name": "a", "fieldType": {"kind": "primitive"}},
                ],
            },
            "appears twice",
        ),
        (
            {
                "name": "X",
                "fields": [
                    {
                        "name": "a",
                        "fieldType": {"kind": "primitive", "primitive": "int"},
                        "default": "zero",
                    }
                ],
            },
            "does not fit",
        ),
    ],
)
def test_malformed_records_raise_value_errors(record, message):
    with pytest.raises(SchemaDecodeError, match=message) as info:
        schema_to_type(record, use_cache=False)
    assert isinstance(info.value, ValueError)


def test_missing_primitive_means_str():
    cls = schema_to_type(
        {"name": "P", "fields": [{"name": "a", "fieldType": {"kind": "primitive"}}]}
    )
    assert cls.__dataclass_fields__["a"].type is str


def test_schema_module_does_not_import_numpy():
    code = (
        "import sys, atdata_lite.schema, atdata_lite.cid;"
        "assert 'numpy' not in sys.modules, 'numpy imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
