"""Dataset metadata: checked before anything is written, so that it always reads back equal.

Stored as msgpack bytes exactly as atdata stores it in Redis (``use_bin_type=True``), read
with ``strict_map_key=False`` so that maps written by atdata with non-string keys can still
be rescued. What is accepted on write is what reads back ``==`` to what was given:

* maps with ``str`` keys (any ``dict``), lists, ``str``, ``bytes``, ``bool``, ``None``,
  ``float`` and ``int`` in msgpack's range (-2**63 .. 2**64-1);
* **not** tuples (they would read back as lists), sets, numpy scalars or arrays, non-string
  keys, or any other object. The error names the offending path, e.g. ``metadata['a'][0]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import InvalidMetadataError

__all__ = ["decode_metadata", "encode_metadata", "validate_metadata"]

_MIN_INT = -(2**63)
_MAX_INT = 2**64 - 1
_MAX_DEPTH = 100

# msgpack's unpackb, imported on first use (opening an index needs no msgpack).
_unpackb: Any = None


def _fail(path: str, what: str, fix: str) -> InvalidMetadataError:
    return InvalidMetadataError(
        f"Metadata cannot be stored so that it reads back equal: {path} {what}. {fix}"
    )


def _check_text(text: str, path: str, what: str) -> None:
    # msgpack stores str as UTF-8: a lone surrogate (from a mis-decoded file name, say)
    # cannot be encoded and would fail with a bare UnicodeEncodeError naming no path.
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise _fail(
                path,
                f"{what} that is not valid Unicode ({exc.reason} at position {exc.start})",
                "Store such data as bytes, or fix the text.",
            ) from None


def _check(value: Any, path: str, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise _fail(path, f"is nested more than {_MAX_DEPTH} levels deep", "Flatten it.")
    kind = type(value)
    if kind.__module__ == "numpy":
        # np.float64 subclasses float and would pass below, but the rule is simpler as
        # "no numpy values at all"; .item() / .tolist() give the exact Python value.
        fix = (
            "Convert it with .tolist()."
            if getattr(value, "ndim", 0)
            else "Convert it with .item()."
        )
        raise _fail(path, f"is a numpy {kind.__name__}", fix)
    if isinstance(value, str):
        _check_text(value, path, "is a string")
        return
    if value is None or isinstance(value, (bool, bytes, float)):
        return
    if isinstance(value, int):
        if not _MIN_INT <= value <= _MAX_INT:
            raise _fail(
                path, f"is the integer {value}, outside msgpack's range", "Store it as a string."
            )
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise _fail(
                    path,
                    f"has the non-string key {key!r} ({type(key).__name__})",
                    "Use string keys (e.g. str(key)).",
                )
            _check_text(key, path, f"has the key {key!r}, a string")
            _check(item, f"{path}[{key!r}]", depth + 1)
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check(item, f"{path}[{i}]", depth + 1)
        return
    if kind is tuple:
        raise _fail(path, "is a tuple, which would read back as a list", "Use a list.")
    if kind in (set, frozenset):
        raise _fail(path, f"is a {kind.__name__}", "Use a sorted list.")
    raise _fail(
        path,
        f"is a {kind.__module__}.{kind.__qualname__}",
        "Metadata values may be dicts with string keys, lists, str, bytes, int, float, bool "
        "and None.",
    )


def validate_metadata(metadata: object) -> dict[str, Any] | None:
    """Check that ``metadata`` round-trips through msgpack unchanged.

    Args:
        metadata: A mapping with ``str`` keys, or ``None``.

    Returns:
        The metadata as a plain ``dict`` (``None`` stays ``None``).

    Raises:
        InvalidMetadataError: Something in it would not read back equal; the message names
            where and what to do.
    """
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        raise _fail("metadata", f"is a {type(metadata).__name__}", "Pass a dict (or None).")
    metadata = dict(metadata)
    _check(metadata, "metadata", 0)
    return metadata


def encode_metadata(metadata: Any) -> bytes | None:
    """Validate and encode metadata as atdata does (msgpack, ``use_bin_type=True``).

    Raises:
        InvalidMetadataError: See :func:`validate_metadata`.
    """
    checked = validate_metadata(metadata)
    if checked is None:
        return None
    import msgpack

    encoded: bytes = msgpack.packb(checked, use_bin_type=True)
    return encoded


def decode_metadata(data: bytes | None) -> dict[str, Any] | None:
    """Decode stored metadata bytes (``strict_map_key=False``, so atdata's int keys read).

    Raises:
        ValueError: The bytes are not msgpack.
    """
    if data is None:
        return None
    global _unpackb
    if _unpackb is None:
        from msgpack import unpackb

        _unpackb = unpackb
    decoded: dict[str, Any] | None = _unpackb(data, raw=False, strict_map_key=False)
    return decoded
