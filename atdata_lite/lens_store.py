"""Storing lenses in an index so that they round-trip (atdata 0.7's ``store_lens``/``load_lens``).

A stored lens is a JSON record of one of two kinds:

* ``"field_mapping"``: ``{view_field: source_field}``. Stored only after the lens has been
  *run* on a sample and the mapping reproduced its output exactly, so a lens that changes a
  value (upper-cases a string, scales a number) is never stored as a mapping and never comes
  back as an identity copy. The sample is the one given with ``sample=``, else a probe built
  from the source type's fields (distinctive strings, numbers and arrays).
* ``"code"``: ``{module, qualname}``, a reference to the lens's getter (or ``Lens`` object) in
  importable code, for every lens a mapping cannot reproduce. Lambdas and functions defined
  inside other functions have no importable name: storing one raises
  :class:`~atdata_lite.errors.LensCheckError`.

The trust rule: loading a ``"code"`` lens never imports anything on its own. Its module must
already be imported in the process (``import mylenses`` before ``load_lens``), or be named in
``trusted_modules=``; otherwise :class:`~atdata_lite.errors.UntrustedLensError` is raised. A
catalog from elsewhere therefore cannot make the process run code it did not choose to load.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import sys
import typing
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from .errors import LensCheckError, UntrustedLensError

__all__ = [
    "build_lens",
    "lens_content_hash",
    "lens_record",
    "parse_lens_ref",
    "schema_name",
]

LENS_REF_PREFIX = "atdata://local/lens/"


def schema_name(ref_or_name: Any) -> str:
    """The schema *name* of a schema ref, a name, or a sample type."""
    if isinstance(ref_or_name, type):
        return ref_or_name.__name__
    text = str(ref_or_name)
    if "://" in text:
        from .schema import parse_schema_ref

        return parse_schema_ref(text)[0]
    return text.rsplit("@", 1)[0] if "@" in text else text


def parse_lens_ref(ref: str) -> tuple[str, str | None]:
    """``atdata://local/lens/Name@1.0.0`` or ``Name@1.0.0`` or ``Name`` -> ``(name, version)``."""
    text = ref[len(LENS_REF_PREFIX) :] if ref.startswith(LENS_REF_PREFIX) else ref
    if "@" in text:
        name, version = text.rsplit("@", 1)
        return name, version
    return text, None


def lens_content_hash(record: dict[str, Any]) -> str:
    """Hex SHA-256 of a lens record without its version and creation time."""
    body = {k: v for k, v in record.items() if k not in ("version", "createdAt")}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _fields(cls: Any) -> list[str] | None:
    if isinstance(cls, type) and dataclasses.is_dataclass(cls):
        return [f.name for f in dataclasses.fields(cls)]
    return None


def _probe_value(hint: Any, i: int) -> Any:
    origin = typing.get_origin(hint)
    if origin is typing.Union or str(origin) == "types.UnionType":
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return _probe_value(args[0], i) if args else None
    if hint is str:
        return f"Probe-{i}-aB"
    if hint is bool:
        return bool(i % 2)
    if hint is int:
        return 7919 + i
    if hint is float:
        return 2.5 + i
    if hint is bytes:
        return bytes([1, 2, 3, i % 256])
    if origin is list:
        (arg,) = typing.get_args(hint) or (int,)
        return [_probe_value(arg, i), _probe_value(arg, i + 1)]
    from ._types import is_ndarray_type

    if is_ndarray_type(hint):
        import numpy as np

        return np.arange(6, dtype=np.float32).reshape(2, 3) + i
    raise TypeError(f"no probe value for {hint!r}")


def _probe(source_type: Any) -> Any:
    try:
        hints = typing.get_type_hints(source_type)
        kwargs = {
            f.name: _probe_value(hints.get(f.name), i)
            for i, f in enumerate(dataclasses.fields(source_type))
        }
        return source_type(**kwargs)
    except Exception:  # a field type with no probe value: the caller needs sample=
        return None


def _equal(a: Any, b: Any) -> bool:
    try:
        import numpy as np

        if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
            return bool(
                isinstance(a, np.ndarray)
                and isinstance(b, np.ndarray)
                and a.dtype == b.dtype
                and np.array_equal(a, b)
            )
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    return type(a) is type(b) and bool(a == b)


def _mapping_if_faithful(lens: Any, samples: Iterable[Any]) -> dict[str, str] | None:
    """The field mapping that reproduces ``lens`` on every sample, or ``None``."""
    view_fields = _fields(lens.view_type)
    source_fields = _fields(lens.source_type)
    if view_fields is None or source_fields is None or not set(view_fields) <= set(source_fields):
        return None
    mapping = {f: f for f in view_fields}
    checked = 0
    for sample in samples:
        if sample is None:
            continue
        view = lens.get(sample)
        for f in view_fields:
            if not _equal(getattr(view, f), getattr(sample, mapping[f])):
                return None
        checked += 1
    return mapping if checked else None


def _code_ref(lens: Any) -> dict[str, str] | None:
    getter = getattr(lens, "_getter", lens)
    module = getattr(getter, "__module__", None)
    qualname = getattr(getter, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        return None  # a lambda or a function inside another: no importable name
    target = sys.modules.get(module)
    for part in qualname.split("."):
        target = getattr(target, part, None)
    if target is not lens and target is not getter:
        return None
    return {"module": module, "qualname": qualname}


def lens_record(
    lens: Any,
    *,
    name: str,
    description: str | None,
    source_schema: Any,
    view_schema: Any,
    sample: Any = None,
) -> dict[str, Any]:
    """The JSON record that stores ``lens`` faithfully (see the module docstring).

    Raises:
        LensCheckError: (a ``ValueError``) no faithful mapping and no importable code.
    """
    samples = [sample] if sample is not None else [_probe(lens.source_type)]
    record: dict[str, Any] = {
        "name": name,
        "version": "",
        "description": description if description is not None else lens.__doc__,
        "source_schema": schema_name(source_schema),
        "view_schema": schema_name(view_schema),
    }
    mapping = _mapping_if_faithful(lens, samples)
    if mapping is not None:
        record["kind"] = "field_mapping"
        record["field_mapping"] = mapping
    else:
        code = _code_ref(lens)
        if code is None:
            raise LensCheckError(
                f"Cannot store lens {name!r} faithfully: its output is not a copy of source "
                "fields (checked on a sample), and its getter has no importable name (a "
                "lambda or a nested function). Define the getter at module level in an "
                "importable module, then store it again."
            )
        record["kind"] = "code"
        record["code"] = code
    record["createdAt"] = datetime.now(UTC).isoformat()
    return record


def build_lens(
    record: dict[str, Any],
    *,
    source_type: Any,
    view_type: Any,
    trusted_modules: Iterable[str] = (),
) -> Any:
    """Rebuild a working :class:`~atdata_lite.lenses.Lens` from a stored record.

    Raises:
        UntrustedLensError: (an ``ImportError``) a code lens's module is neither imported
            already nor in ``trusted_modules``.
        LensCheckError: The record is of no known kind, or its code is gone.
    """
    from .lenses import Lens

    kind = record.get("kind")
    if kind == "field_mapping" or (kind is None and "field_mapping" in record):
        mapping = dict(record["field_mapping"])

        def get(source: Any) -> Any:
            return view_type(**{v: getattr(source, s) for v, s in mapping.items()})

        def put(view: Any, source: Any) -> Any:
            return dataclasses.replace(source, **{s: getattr(view, v) for v, s in mapping.items()})

        return Lens(get, put, source_type=source_type, view_type=view_type)
    if kind == "code" or "code" in record:
        module = str(record["code"]["module"])
        qualname = str(record["code"]["qualname"])
        if module not in sys.modules:
            if module not in set(trusted_modules):
                raise UntrustedLensError(
                    f"Lens {record.get('name')!r} runs code from module {module!r}, which is "
                    "not imported. Import it yourself first (you decide which code runs), or "
                    f"pass trusted_modules=[{module!r}]."
                )
            importlib.import_module(module)
        target: Any = sys.modules[module]
        for part in qualname.split("."):
            target = getattr(target, part, None)
        if target is None:
            raise LensCheckError(f"Lens code {module}:{qualname} no longer exists.")
        if isinstance(target, Lens):
            return Lens(
                target._getter, target._putter, source_type=source_type, view_type=view_type
            )
        return Lens(target, source_type=source_type, view_type=view_type)
    raise LensCheckError(f"Stored lens {record.get('name')!r} has an unknown kind {kind!r}.")
