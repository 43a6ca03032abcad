"""Fast NPY decoding: a header parsed once per distinct header, data read in place.

``np.load`` parses every array's header with ``ast.literal_eval`` and copies the data into a
new array. Samples of one dataset share a handful of headers (same dtype and shape), so
:func:`npy_view` keeps the parsed headers (a bounded table) and returns the data as an array
over the caller's buffer: a read-only view when the buffer is ``bytes`` or a read-only
``memoryview``, or a copy on request.

Anything unusual (object dtypes, NPY format 3.0, a malformed header) returns ``None``: the
caller then goes the general way (``np.load``), which decides and words the error.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from numpy.lib import format as npy_format

__all__ = ["accepting_loader", "npy_header", "npy_view"]

_MAGIC = b"\x93NUMPY"
_MAX_HEADERS = 1024  # distinct headers kept; a dataset of varied shapes just re-parses


class _Header:
    __slots__ = ("count", "dtype", "nbytes", "order", "shape")

    def __init__(self, shape: tuple[int, ...], fortran: bool, dtype: np.dtype) -> None:
        self.shape = shape
        self.order: Literal["C", "F"] = "F" if fortran else "C"
        self.dtype = dtype
        count = 1
        for dim in shape:
            count *= dim
        self.count = count
        self.nbytes = count * dtype.itemsize


_HEADERS: dict[bytes, _Header | None] = {}


def _parse(prefix: bytes, major: int) -> _Header | None:
    buf = io.BytesIO(prefix)
    npy_format.read_magic(buf)
    try:
        if major == 1:
            shape, fortran, dtype = npy_format.read_array_header_1_0(buf)
        else:
            shape, fortran, dtype = npy_format.read_array_header_2_0(buf)
    except (ValueError, SyntaxError, TypeError):
        return None
    if dtype.hasobject:
        return None
    return _Header(tuple(shape), bool(fortran), dtype)


def npy_header(data: Any) -> tuple[int, _Header] | None:
    """``(data offset, parsed header)`` of NPY ``data``, or ``None`` to use ``np.load``."""
    view = memoryview(data)
    if len(view) < 10 or view[:6] != _MAGIC:
        return None
    major = view[6]
    if major == 1:
        start = 10
        header_len = view[8] | view[9] << 8
    elif major == 2:
        start = 12
        header_len = int.from_bytes(view[8:12], "little")
    else:
        return None
    offset = start + header_len
    text = bytes(view[start:offset])
    if text in _HEADERS:
        header = _HEADERS[text]
    else:
        header = _parse(bytes(view[:offset]), major)
        if len(_HEADERS) >= _MAX_HEADERS:
            _HEADERS.clear()
        _HEADERS[text] = header
    if header is None:
        return None
    return offset, header


# Whole NPY 1.0 prefixes (magic, version, length, header) already seen and valid: the
# common case skips the parsing steps below.
_PREFIXES: dict[bytes, _Header] = {}


def _too_short(header: _Header, have: int) -> ValueError:
    return ValueError(
        f"the header describes {header.nbytes} bytes of data, the payload holds {have}"
    )


def npy_view(data: Any, *, copy: bool) -> np.ndarray | None:
    """The array NPY ``data`` holds, without ``np.load``; ``None`` to use ``np.load``.

    Args:
        data: ``bytes``, ``bytearray`` or ``memoryview`` holding one NPY file.
        copy: Return an array that owns its (writable) data; otherwise the array is a view
            of ``data`` (read-only for ``bytes``).

    Raises:
        ValueError: The header describes more data than ``data`` holds.
    """
    if len(data) >= 10 and data[6] == 1:
        offset = 10 + (data[8] | data[9] << 8)
        prefix = data[:offset]
        known = _PREFIXES.get(prefix if type(prefix) is bytes else bytes(prefix))
        if known is not None:
            have = len(data) - offset
            if have < known.nbytes:
                raise _too_short(known, have)
            seen = np.ndarray(known.shape, known.dtype, data, offset, order=known.order)
            return seen.copy(order="K") if copy else seen
    found = npy_header(data)
    if found is None:
        return None
    offset, header = found
    view = memoryview(data)
    have = len(view) - offset
    if have < header.nbytes:
        raise _too_short(header, have)
    flat = np.frombuffer(view, dtype=header.dtype, count=header.count, offset=offset)
    array: np.ndarray = flat.reshape(header.shape, order=header.order)
    if view[6] == 1 and header.count:  # the fast way above, next time
        if len(_PREFIXES) >= _MAX_HEADERS:
            _PREFIXES.clear()
        _PREFIXES[bytes(view[:offset])] = header
    return array.copy(order="K") if copy else array


def accepting_loader(check: Callable[[Any], Any], *, copy: bool) -> Callable[[Any], Any]:
    """``check`` (a field's array check), remembering the NPY headers it accepted.

    A field's arrays share a handful of headers. Once ``check`` has accepted an array read
    from ``bytes`` with a given header (dtype, shape and order all fit the field), the
    next payload with the very same header is read in one step, as ``check`` would read
    it: a view of the payload, or a copy with ``copy``. Anything else goes to ``check``.
    """
    accepted: dict[bytes, _Header] = {}
    ndarray = np.ndarray

    def load(value: Any) -> Any:
        if type(value) is bytes and len(value) >= 10 and value[6] == 1:
            offset = 10 + (value[8] | value[9] << 8)
            header = accepted.get(value[:offset])
            if header is not None and len(value) - offset >= header.nbytes:
                array = ndarray(header.shape, header.dtype, value, offset, order=header.order)
                return array.copy(order="K") if copy else array
            result = check(value)  # accepted, or raises
            known = _PREFIXES.get(value[:offset])
            if known is not None and len(accepted) < _MAX_HEADERS:
                accepted[value[:offset]] = known
            return result
        return check(value)

    return load
