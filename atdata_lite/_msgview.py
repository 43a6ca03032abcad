"""Decode a sample's msgpack map keeping its binary values in place (no copy).

``msgpack.unpackb`` copies every ``bin`` value into a new ``bytes`` object: for a sample
holding a 600 KB array that is a 600 KB allocation and copy per sample, before the array
is even made. :func:`unpack_map_view` reads the top-level map itself and returns ``bin``
values as ``memoryview`` slices of the payload, so an array field becomes a view of the
shard's bytes (a memory-mapped page cache for local shards).

It handles the maps atdata-lite and atdata write (string keys; nil, booleans, integers,
floats, strings and binary values). For anything else (nested arrays or maps, extension
types, damaged data) it returns ``None`` and the caller decodes with ``msgpack.unpackb``,
which gives the same values, or the error.
"""

from __future__ import annotations

from struct import Struct
from typing import Any

__all__ = ["unpack_map_view"]

_U16, _U32, _U64 = Struct(">H"), Struct(">I"), Struct(">Q")
_I8, _I16, _I32, _I64 = Struct(">b"), Struct(">h"), Struct(">i"), Struct(">q")
_F32, _F64 = Struct(">f"), Struct(">d")
# fixed-size scalars: type byte -> (struct, size)
_SCALARS = {
    0xCC: (Struct(">B"), 1),
    0xCD: (_U16, 2),
    0xCE: (_U32, 4),
    0xCF: (_U64, 8),
    0xD0: (_I8, 1),
    0xD1: (_I16, 2),
    0xD2: (_I32, 4),
    0xD3: (_I64, 8),
    0xCA: (_F32, 4),
    0xCB: (_F64, 8),
}


class _Unsupported(Exception):
    pass


def _length(view: memoryview, pos: int, width: int) -> tuple[int, int]:
    if width == 1:
        return view[pos], pos + 1
    if width == 2:
        return _U16.unpack_from(view, pos)[0], pos + 2
    return _U32.unpack_from(view, pos)[0], pos + 4


def _value(view: memoryview, pos: int) -> tuple[Any, int]:
    """One value at ``pos`` and the position after it."""
    tag = view[pos]
    pos += 1
    if tag <= 0x7F:
        return tag, pos
    if tag >= 0xE0:
        return tag - 0x100, pos
    if 0xA0 <= tag <= 0xBF:
        end = pos + (tag & 0x1F)
        return str(view[pos:end], "utf-8"), end
    if tag == 0xC0:
        return None, pos
    if tag == 0xC2:
        return False, pos
    if tag == 0xC3:
        return True, pos
    if tag in (0xC4, 0xC5, 0xC6):  # bin 8/16/32: the point of this module
        size, pos = _length(view, pos, 1 << (tag - 0xC4))
        return view[pos : pos + size], pos + size
    if tag in (0xD9, 0xDA, 0xDB):  # str 8/16/32
        size, pos = _length(view, pos, 1 << (tag - 0xD9))
        return str(view[pos : pos + size], "utf-8"), pos + size
    scalar = _SCALARS.get(tag)
    if scalar is None:
        raise _Unsupported
    fmt, size = scalar
    return fmt.unpack_from(view, pos)[0], pos + size


def unpack_map_view(payload: Any) -> dict[str, Any] | None:
    """The top-level map of ``payload`` with ``bin`` values as views, or None.

    Args:
        payload: A buffer (``bytes``, ``memoryview``...) holding one msgpack map.

    Returns:
        ``{key: value}`` as ``msgpack.unpackb`` would give it, except that binary values
        are read-only ``memoryview`` slices of ``payload``; ``None`` when the payload holds
        something else, or is damaged (decode it with ``msgpack.unpackb`` then).
    """
    view = memoryview(payload)
    try:
        tag = view[0]
        if 0x80 <= tag <= 0x8F:
            count, pos = tag & 0x0F, 1
        elif tag == 0xDE:
            count, pos = _U16.unpack_from(view, 1)[0], 3
        elif tag == 0xDF:
            count, pos = _U32.unpack_from(view, 1)[0], 5
        else:
            return None
        out: dict[str, Any] = {}
        end = len(view)
        for _ in range(count):
            key, pos = _value(view, pos)
            if type(key) is not str:
                return None
            value, pos = _value(view, pos)
            if pos > end:
                return None  # a value runs past the end: let msgpack word it
            out[key] = value
    except Exception:  # unsupported, truncated, not UTF-8...: msgpack decides and words it
        return None
    return out if pos == end else None
