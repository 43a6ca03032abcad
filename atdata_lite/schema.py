"""Schema records: from a sample type to atdata's JSON record and back, refs and versions.

A schema record is atdata's JSON document, with keys in this order::

    {"name": "ImageSample", "version": "1.0.0",
     "fields": [{"name": "image", "fieldType": {"$type": "local#ndarray", "dtype": "uint8"},
                 "optional": false}, ...],
     "description": "...", "createdAt": "2026-01-01T00:00:00+00:00"}

atdata-lite adds one optional key per field, ``"default"``, holding the field's default
value when it can be written as JSON (see :func:`encode_default`). atdata's reader ignores
unknown keys, so every record stays readable by atdata.

This module is imported when an index opens: it must not import numpy at module level.
"""

from __future__ import annotations

import base64
import contextlib
import copyreg
import dataclasses
import hashlib
import json
import keyword
import math
import re
import threading
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from ._text import check_name
from .errors import (
    InvalidSchemaRefError,
    NotPackableError,
    SchemaDecodeError,
    UnsupportedFieldTypeError,
)

__all__ = [
    "ATDATA_URI_PREFIX",
    "LEGACY_URI_PREFIX",
    "SCHEMA_URI_PREFIX",
    "DecodedSampleType",
    "clear_type_cache",
    "content_hash",
    "decode_default",
    "encode_default",
    "field_kind",
    "make_schema_ref",
    "next_patch",
    "parse_schema_ref",
    "parse_semver",
    "render_record",
    "schema_record",
    "schema_to_type",
]

ATDATA_URI_PREFIX = "atdata://local/sampleSchema/"
LEGACY_URI_PREFIX = "local://schemas/"
# atdata 0.7's form of a local schema ref (``atdata://local/schema/{Name}@{version}``).
SCHEMA_URI_PREFIX = "atdata://local/schema/"

_PRIMITIVES: dict[type, str] = {
    str: "str",
    int: "int",
    float: "float",
    bool: "bool",
    bytes: "bytes",
}
_PRIMITIVE_TYPES: dict[str, type] = {v: k for k, v in _PRIMITIVES.items()}

# Strict semver core: no leading zeros, so that "1.01.0" and "1.1.0" cannot both exist.
# ASCII digits only, at most 9 per part (the SQL backend's integer semver columns, and its
# auto-versioning, hold no more), matched in full (``$`` would accept a trailing newline).
_SEMVER_RE = re.compile(r"(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})")

# Record keys in atdata's order; extra keys of a stored record follow them unchanged.
_RECORD_KEYS = ("name", "version", "fields", "description", "createdAt")

_MISSING = object()


# --- refs and versions ---------------------------------------------------------------


def parse_schema_ref(ref: str) -> tuple[str, str]:
    """Split a schema reference into ``(name, version)``, with atdata's grammar.

    Three forms are accepted: atdata 0.2's ``atdata://local/sampleSchema/{Name}@{version}``,
    atdata 0.7's ``atdata://local/schema/{Name}@{version}`` and the legacy
    ``local://schemas/{module}.{Name}@{version}``; all three name the same schema. The version
    is what follows the last ``@``; a dotted name keeps only its last component (the module
    is dropped), as atdata does.

    Args:
        ref: The schema reference.

    Returns:
        ``(name, version)``.

    Raises:
        InvalidSchemaRefError: (a ``ValueError``) ``ref`` has neither prefix, has no
            ``@version``, or has an empty name or version.
    """
    if not isinstance(ref, str):
        raise InvalidSchemaRefError(
            f"Invalid schema reference: {ref!r} (expected a string like "
            f"'{ATDATA_URI_PREFIX}Name@1.0.0')"
        )
    for prefix in (ATDATA_URI_PREFIX, SCHEMA_URI_PREFIX, LEGACY_URI_PREFIX):
        if ref.startswith(prefix):
            body = ref[len(prefix) :]
            break
    else:
        raise InvalidSchemaRefError(
            f"Invalid schema reference: {ref} (expected '{ATDATA_URI_PREFIX}Name@x.y.z', "
            f"'{SCHEMA_URI_PREFIX}Name@x.y.z' or the legacy '{LEGACY_URI_PREFIX}module.Name@x.y.z')"
        )
    if "@" not in body:
        raise InvalidSchemaRefError(f"Schema reference must include version (@version): {ref}")
    name, version = body.rsplit("@", 1)
    if "." in name:
        name = name.rsplit(".", 1)[-1]
    if not name or not version:
        raise InvalidSchemaRefError(
            f"Invalid schema reference: {ref} (the name and the version must not be empty)"
        )
    return name, version


def make_schema_ref(name: str, version: str) -> str:
    """Return the canonical reference ``atdata://local/sampleSchema/{name}@{version}``."""
    return f"{ATDATA_URI_PREFIX}{name}@{version}"


def parse_semver(version: str) -> tuple[int, int, int]:
    """Parse ``"x.y.z"`` into a tuple of ints (no leading zeros, no suffixes).

    Raises:
        InvalidSchemaRefError: (a ``ValueError``) ``version`` is not ``x.y.z``.
    """
    match = _SEMVER_RE.fullmatch(version) if isinstance(version, str) else None
    if match is None:
        raise InvalidSchemaRefError(
            f"Invalid semver format: {version!r}. Schema versions are three dot-separated "
            "integers (up to 9 digits each) without leading zeros, e.g. '1.0.0'."
        )
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch)


def next_patch(version: str) -> str:
    """Return ``version`` with its patch number increased by one (``1.2.3`` -> ``1.2.4``)."""
    major, minor, patch = parse_semver(version)
    return f"{major}.{minor}.{patch + 1}"


# --- field types -----------------------------------------------------------------------


def field_kind(field_type: dict[str, Any]) -> str:
    """Return the kind of a ``fieldType`` dict: ``primitive``, ``ndarray``, ``array``, ``ref``.

    ``$type`` may come from any namespace (``local#ndarray``,
    ``ac.foundation.dataset.schemaType#ndarray``); without a ``#`` the ``kind`` key is
    used, as atdata's reader does. Returns ``""`` when neither says anything.
    """
    type_tag = field_type.get("$type")
    if isinstance(type_tag, str) and "#" in type_tag:
        return type_tag.split("#")[-1]
    kind = field_type.get("kind")
    if isinstance(kind, str):
        return kind
    if isinstance(type_tag, str) and type_tag in ("primitive", "ndarray", "array", "ref"):
        return type_tag
    return ""


def _field_type_of(tp: Any, owner: str, field_name: str) -> dict[str, Any]:
    from . import _types

    if tp in _PRIMITIVES:
        return {"$type": "local#primitive", "primitive": _PRIMITIVES[tp]}
    if _types.is_ndarray_type(tp):
        # "any" when the annotation pins no dtype: atdata wrote "float32" there, a guess.
        return {"$type": "local#ndarray", "dtype": _types.ndarray_dtype(tp) or "any"}
    import typing

    origin = typing.get_origin(tp)
    if tp is list or origin is list:
        args = typing.get_args(tp)
        if not args:
            items: dict[str, Any] = {"$type": "local#primitive", "primitive": "str"}
        else:
            inner, inner_optional = _types.unwrap_optional(args[0])
            if inner_optional:
                raise UnsupportedFieldTypeError(
                    f"Unsupported type for schema field: {tp} (field {owner}.{field_name}: "
                    "list items cannot be optional in a schema record)"
                )
            items = _field_type_of(inner, owner, field_name)
        return {"$type": "local#array", "items": items}
    if origin is typing.Union or type(tp).__name__ == "UnionType":
        raise UnsupportedFieldTypeError(f"Complex union types not supported: {tp}")
    if dataclasses.is_dataclass(tp):
        raise UnsupportedFieldTypeError(
            f"Nested dataclass types not yet supported: {getattr(tp, '__name__', tp)}. "
            "Publish nested types separately and use references."
        )
    raise UnsupportedFieldTypeError(
        f"Unsupported type for schema field: {tp} (field {owner}.{field_name}; supported: "
        "str, int, float, bool, bytes, NDArray, list[...] of those, and Optional of each)"
    )


# --- defaults --------------------------------------------------------------------------


def encode_default(value: Any, field_type: dict[str, Any]) -> Any:
    """Encode a field default as a JSON value, for the record's optional ``"default"`` key.

    Encoding: ``None``, ``str``, ``int``, ``bool`` and finite ``float`` as themselves;
    ``bytes`` as ``{"$bytes": "<base64>"}`` (ATProto's JSON form of bytes); lists item by
    item. An ndarray default can only be ``None``.

    Args:
        value: The default value.
        field_type: The field's ``fieldType`` dict.

    Returns:
        The JSON-ready value.

    Raises:
        ValueError: The value cannot be represented (the caller then stores no default).
    """
    if value is None:
        return None
    kind = field_kind(field_type)
    if kind == "primitive":
        prim = field_type.get("primitive", "str")
        expected = _PRIMITIVE_TYPES.get(prim)
        if prim == "bytes" and isinstance(value, (bytes, bytearray)):
            return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
        if prim == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ValueError("non-finite float")
            return float(value)
        if prim == "int" and isinstance(value, int) and not isinstance(value, bool):
            return int(value)
        if expected is not None and type(value) is expected and prim in ("str", "bool"):
            return value
        raise ValueError(f"default {value!r} does not match primitive {prim}")
    if kind == "array" and isinstance(value, (list, tuple)):
        items = field_type.get("items") or {"$type": "local#primitive", "primitive": "str"}
        return [encode_default(v, items) for v in value]
    raise ValueError(f"default {value!r} cannot be stored for a {kind or 'unknown'} field")


def decode_default(value: Any, field_type: dict[str, Any]) -> Any:
    """Inverse of :func:`encode_default`.

    Raises:
        SchemaDecodeError: The stored default does not fit the field type.
    """
    if value is None:
        return None
    kind = field_kind(field_type)
    if kind == "primitive":
        prim = field_type.get("primitive", "str")
        if prim == "bytes":
            if isinstance(value, dict) and isinstance(value.get("$bytes"), str):
                raw = value["$bytes"]
                return base64.b64decode(raw + "=" * (-len(raw) % 4))
        elif prim == "float":
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
        elif prim in _PRIMITIVE_TYPES and type(value) is _PRIMITIVE_TYPES[prim]:
            return value  # str, int, bool: exactly that JSON type (True is not an int here)
    elif kind == "array" and isinstance(value, list):
        items = field_type.get("items") or {"$type": "local#primitive", "primitive": "str"}
        return [decode_default(v, items) for v in value]
    raise SchemaDecodeError(
        f"Stored default {value!r} does not fit the field type {field_type!r}; remove the "
        "field's 'default' key from the schema record or fix its value."
    )


def _default_of(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        try:
            return f.default_factory()
        except Exception:  # a factory that needs context: no default in the record
            return _MISSING
    return _MISSING


# --- building records ------------------------------------------------------------------


def _check_packable(sample_type: Any) -> None:
    if not isinstance(sample_type, type):
        raise NotPackableError(f"sample_type must be a class, got {type(sample_type).__name__}")
    for attr in ("from_data", "from_bytes"):
        if not callable(getattr(sample_type, attr, None)):
            raise NotPackableError(
                f"{sample_type.__name__} does not satisfy the Packable protocol. Use @packable "
                "decorator or inherit from PackableSample."
            )
    if not dataclasses.is_dataclass(sample_type):
        raise NotPackableError(f"{sample_type.__name__} must be a dataclass (use @packable)")


def _description_of(sample_type: type) -> str | None:
    doc = sample_type.__doc__
    if not doc:
        return None
    # dataclass() fills a missing docstring with the signature ("Name(a: int, ...)");
    # atdata stored that as the description. It says nothing the fields do not.
    import inspect

    try:
        auto = sample_type.__name__ + str(inspect.signature(sample_type)).replace(" -> None", "")
    except (TypeError, ValueError):
        auto = None
    if doc == auto:
        return None
    return doc


def _record_fields(sample_type: type) -> list[dict[str, Any]]:
    from . import _types

    stored = sample_type.__dict__.get("__schema_fields__")
    if stored is not None:
        # A class decoded from a record describes itself exactly as that record did (so
        # re-publishing it finds the same content, e.g. an atdata "float32" dtype).
        return json.loads(stored)

    owner = sample_type.__name__
    hints = _types.field_types(sample_type)
    out: list[dict[str, Any]] = []
    for f in dataclasses.fields(sample_type):
        inner, optional = _types.unwrap_optional(hints[f.name])
        field_type = _field_type_of(inner, owner, f.name)
        entry: dict[str, Any] = {"name": f.name, "fieldType": field_type, "optional": optional}
        default = _default_of(f)
        if default is not _MISSING and not (optional and default is None):
            # Not representable as JSON: the record says nothing about that default.
            with contextlib.suppress(ValueError):
                entry["default"] = encode_default(default, field_type)
        out.append(entry)
    return out


def schema_record(
    sample_type: type, *, version: str, description: str | None = None
) -> dict[str, Any]:
    """Build atdata's schema record for a packable sample type.

    Args:
        sample_type: A ``@packable`` class or ``PackableSample`` subclass.
        version: The version to write into the record.
        description: The description; ``None`` uses the class docstring (a docstring that
            ``dataclass`` generated from the signature counts as none).

    Returns:
        ``{"name", "version", "fields", "description", "createdAt"}`` in that order.

    Raises:
        NotPackableError: ``sample_type`` is not a class, not packable, not a dataclass, or
            has no fields.
        InvalidSchemaRefError: The class's name is empty or dotted (no ref could name it).
        InvalidNameError: The class's name or a field name holds a control character.
        UnsupportedFieldTypeError: A field's type cannot be described.
    """
    _check_packable(sample_type)
    name = sample_type.__name__
    if not name or "." in name:
        # A ref keeps only the last dotted part of a name (atdata's grammar), so such a
        # schema would be stored under a ref that names another schema, or nothing.
        raise InvalidSchemaRefError(
            f"Cannot publish a schema named {name!r} (the class's __name__): a schema name "
            "must be non-empty and contain no '.', or its ref cannot name it. Rename the class."
        )
    check_name(name, "schema name")
    fields = _record_fields(sample_type)
    for field in fields:
        check_name(field.get("name"), "field name")
    if not fields:
        raise NotPackableError(
            f"{sample_type.__name__} has no fields; a schema needs at least one field "
            "(atdata could publish such a type but never decode it)."
        )
    return {
        "name": sample_type.__name__,
        "version": version,
        "fields": fields,
        "description": description if description is not None else _description_of(sample_type),
        "createdAt": datetime.now(UTC).isoformat(),
    }


def render_record(record: dict[str, Any], version: str | None = None) -> str:
    """Serialise a record as atdata stores it (``json.dumps`` defaults), without ``$ref``.

    Args:
        record: The record.
        version: When given, replaces the record's ``version``.
    """
    out = {k: record[k] for k in _RECORD_KEYS if k in record}
    if version is not None:
        out["version"] = version
    for key, value in record.items():
        if key not in out and key != "$ref":
            out[key] = value
    return json.dumps(out)


def _canonical_field_type(field_type: Any) -> Any:
    if not isinstance(field_type, dict):
        return field_type
    out = {k: v for k, v in field_type.items() if k not in ("$type", "kind")}
    out["$type"] = "local#" + field_kind(field_type)
    if "items" in out:
        out["items"] = _canonical_field_type(out["items"])
    return out


def _canonical_fields(fields: Any) -> Any:
    if not isinstance(fields, list):
        return fields
    out = []
    for f in fields:
        if isinstance(f, dict):
            g = dict(f)
            g["fieldType"] = _canonical_field_type(f.get("fieldType", {}))
            g["optional"] = bool(f.get("optional", False))
            out.append(g)
        else:
            out.append(f)
    return out


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(record: dict[str, Any]) -> str:
    """Return the hex SHA-256 that identifies a record's content: its name and fields.

    ``version``, ``description``, ``createdAt`` and ``$ref`` are not content. ``$type``
    namespaces are normalised (``ac.foundation.dataset.schemaType#ndarray`` equals
    ``local#ndarray``) and a missing ``optional`` counts as ``false``.
    """
    body = {"name": record.get("name"), "fields": _canonical_fields(record.get("fields"))}
    return hashlib.sha256(_canonical_json(body).encode("utf-8")).hexdigest()


# --- records back to types -------------------------------------------------------------

_TYPE_CACHE_MAX = 256
_type_cache: OrderedDict[str, type] = OrderedDict()
_type_cache_lock = threading.Lock()


def clear_type_cache() -> None:
    """Forget every type built by :func:`schema_to_type`."""
    with _type_cache_lock:
        _type_cache.clear()


def _python_type(field_type: dict[str, Any], where: str) -> Any:
    kind = field_kind(field_type)
    if kind == "primitive":
        prim = field_type.get("primitive") or "str"
        if prim not in _PRIMITIVE_TYPES:
            raise SchemaDecodeError(f"Unknown primitive type: {prim} (field {where})")
        return _PRIMITIVE_TYPES[prim]
    if kind == "ndarray":
        from numpy.typing import NDArray

        return NDArray
    if kind == "array":
        items = field_type.get("items")
        if not items:
            return list
        return list[_python_type(items, where)]  # type: ignore[misc]
    if kind == "ref":
        raise SchemaDecodeError(
            "Schema references ('ref') are not yet supported for dynamic type generation. "
            f"Referenced schema: {field_type.get('ref')}"
        )
    raise SchemaDecodeError(f"Unknown field type kind: {kind} (field {where})")


class DecodedSampleType(type):
    """The metaclass of every class :func:`schema_to_type` builds.

    Such a class lives in no module, so pickle cannot find it by name (a ``DataLoader``
    worker would fail with "attribute lookup ... failed"). Instead it pickles as its schema
    record, and unpickling rebuilds it with :func:`schema_to_type` (the type cache returns
    the same class for the same record within a process). Its instances pickle through it,
    so samples and whole datasets cross into worker processes under both the ``fork`` and
    the ``spawn`` start methods.
    """


def _reduce_decoded_type(cls: type) -> tuple[Any, tuple[str]]:
    record_json = cls.__dict__.get("__schema_record_json__")
    if record_json is None:
        import pickle

        raise pickle.PicklingError(
            f"Cannot pickle {cls.__qualname__}: it was derived from a class built from a "
            "schema record but has no record of its own. Pickle the decoded class itself."
        )
    return _type_from_record_json, (record_json,)


copyreg.pickle(DecodedSampleType, _reduce_decoded_type)  # type: ignore[arg-type]


def _type_from_record_json(record_json: str) -> type:
    """Unpickling a decoded class: rebuild it (or take it from the cache) from its record."""
    return schema_to_type(json.loads(record_json))


_decoded_base: type | None = None


def _decoded_sample_base() -> type:
    # Built on first use: PackableSample lives in samples.py, which imports numpy.
    global _decoded_base
    if _decoded_base is None:
        from .samples import PackableSample

        _decoded_base = DecodedSampleType(
            "DecodedSample",
            (PackableSample,),
            {"__module__": __name__, "__doc__": "Base of classes built from schema records."},
        )
    return _decoded_base


def _build_type(schema: dict[str, Any]) -> type:
    name = schema.get("name")
    if not name or not isinstance(name, str):
        raise SchemaDecodeError("Schema must have a 'name' field")
    raw_fields = schema.get("fields")
    if not raw_fields or not isinstance(raw_fields, list):
        raise SchemaDecodeError("Schema must have at least one field")
    version = schema.get("version") or "1.0.0"

    specs: list[tuple[str, Any, dataclasses.Field[Any]]] = []
    seen: set[str] = set()
    after_default = False
    for raw in raw_fields:
        if not isinstance(raw, dict) or not raw.get("name"):
            raise SchemaDecodeError("Each field must have a 'name'")
        fname = raw["name"]
        where = f"{name}.{fname}"
        if not isinstance(fname, str) or not fname.isidentifier() or keyword.iskeyword(fname):
            raise SchemaDecodeError(
                f"Field name {fname!r} of schema {name!r} is not a valid Python identifier; "
                "the record cannot become a Python type."
            )
        if fname in seen:
            raise SchemaDecodeError(f"Field name {fname!r} appears twice in schema {name!r}")
        seen.add(fname)
        field_type = raw.get("fieldType") or {}
        if not isinstance(field_type, dict):
            raise SchemaDecodeError(f"Field {where} has a fieldType that is not an object")
        tp = _python_type(field_type, where)
        optional = bool(raw.get("optional", False))
        if optional:
            tp = tp | None
        default: Any = _MISSING
        if "default" in raw:
            default = decode_default(raw["default"], field_type)
        elif optional:
            default = None
        if default is _MISSING:
            # A required field after a defaulted one is keyword-only, so the field order
            # of the record is kept and the class can still be built (atdata's TypeError).
            f = dataclasses.field(kw_only=True) if after_default else dataclasses.field()
        else:
            after_default = True
            if isinstance(default, list):
                f = dataclasses.field(default_factory=lambda d=default: list(d))
            else:
                f = dataclasses.field(default=default)
        specs.append((fname, tp, f))

    try:
        record_json: str | None = json.dumps(schema)
    except (TypeError, ValueError):
        record_json = None  # not JSON: the class works but cannot be pickled
    namespace = {
        "__schema_record_json__": record_json,
        "__schema_version__": version,
        "__schema_ref__": schema.get("$ref"),
        "__schema_fields__": json.dumps(raw_fields),
        "__doc__": schema.get("description") or None,
    }
    try:
        cls = dataclasses.make_dataclass(
            name, specs, bases=(_decoded_sample_base(),), namespace=namespace, eq=True
        )
    except TypeError as exc:
        raise SchemaDecodeError(f"Schema {name!r} cannot become a Python type: {exc}") from exc
    cls.__module__ = __name__
    return cls


def schema_to_type(schema: dict[str, Any], *, use_cache: bool = True) -> type:
    """Build a ``PackableSample`` subclass from a schema record.

    Field order and stored defaults are kept; optional fields default to ``None``. A
    required field that follows a defaulted one becomes keyword-only, so records such as
    atdata's ``TextSample@1.0.0`` (an optional field before required ones) decode.

    The class (and its instances) can be pickled: it travels as its record and is rebuilt
    on unpickling (see :class:`DecodedSampleType`), e.g. into ``DataLoader`` workers.

    Args:
        schema: A schema record (``$ref`` optional). ``$type`` may use any namespace; a bare
            ``kind`` key is accepted too.
        use_cache: Return the same class for the same record. The cache key is the whole
            record in canonical JSON, and holds at most 256 classes.

    Returns:
        The new (or cached) class.

    Raises:
        SchemaDecodeError: (a ``ValueError``) the record is malformed or uses a field type
            that cannot become a Python type.
    """
    if not isinstance(schema, dict):
        raise SchemaDecodeError(f"A schema record must be a dict, got {type(schema).__name__}")
    if not use_cache:
        return _build_type(schema)
    try:
        key = _canonical_json(schema)
    except (TypeError, ValueError) as exc:
        raise SchemaDecodeError(f"Schema record is not JSON-serialisable: {exc}") from exc
    with _type_cache_lock:
        cached = _type_cache.get(key)
        if cached is not None:
            _type_cache.move_to_end(key)
            return cached
    cls = _build_type(schema)
    with _type_cache_lock:
        existing = _type_cache.get(key)
        if existing is not None:
            return existing
        _type_cache[key] = cls
        while len(_type_cache) > _TYPE_CACHE_MAX:
            _type_cache.popitem(last=False)
    return cls
