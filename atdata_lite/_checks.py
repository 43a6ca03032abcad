"""The one validator of sample field values, used on write and on read.

:func:`build_check` turns a field annotation into a function ``check(value) -> value`` that
returns the value in its stored form or raises :class:`Mismatch`. The sample codec calls the
same function before encoding (``PackableSample.packed``) and after decoding
(``PackableSample.from_data``), so what can be written is exactly what reads back.

The rules (also in ``docs/samples-and-shards.md``):

* ``int``: a Python ``int`` in msgpack's range (-2**63 .. 2**64-1) or a numpy integer scalar;
  ``bool`` is not an int, nor is a float, even ``3.0``.
* ``float``: a Python ``float`` or numpy floating scalar; an ``int`` (or numpy integer) is
  accepted when it converts to a float exactly, and is stored as a float. ``bool`` is not.
* ``bool``: ``True``/``False`` or ``np.bool_``; not ``0``/``1``.
* ``str``: a ``str``. ``bytes``: ``bytes`` or ``bytearray``.
* ``list[T]``: a ``list`` (not a tuple: it would read back as a list) whose items are ``T``.
* arrays: a ``numpy.ndarray`` (or NPY bytes, as atdata allows), of the declared dtype when the
  annotation pins one (byte order aside), and of the declared shape when the annotation
  gives one (``np.ndarray[tuple[int, Literal[3]], np.dtype[np.uint8]]``: two dimensions, the
  second of size 3). A list is not an array: convert with ``np.asarray(value, dtype=...)``.
* ``Optional[T]``: ``None`` or ``T``. ``None`` in a field that is not optional is refused.

numpy scalars become the equal Python value: that changes no value, only the Python type,
which is what msgpack stores anyway.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from ._types import is_ndarray_type, ndarray_dtype, strip_annotated, unwrap_optional

__all__ = ["Check", "Mismatch", "build_check", "describe", "expected_text"]

Check = Callable[[Any], Any]

_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1


class Mismatch(Exception):
    """A value does not match its annotation (internal; the codec turns it into our errors).

    Attributes:
        expected: What the annotation allows, e.g. ``"int"``.
        got: A short description of the value, e.g. ``"str 'cat'"``.
        path: Where inside the field, e.g. ``"[3]"`` for a list item ("" for the field).
        hint: How to convert explicitly (for writers), e.g. ``"value.astype(np.uint8)"``.
    """

    def __init__(self, expected: str, value: Any, path: str = "", hint: str = "") -> None:
        super().__init__(expected)
        self.expected = expected
        self.got = describe(value)
        self.path = path
        self.hint = hint

    def at(self, prefix: str) -> Mismatch:
        """This mismatch, located one level further out (``prefix`` + its path)."""
        self.path = prefix + self.path
        return self


def describe(value: Any) -> str:
    """A short description of a value for error messages (type, and value or shape)."""
    if isinstance(value, np.ndarray):
        return f"ndarray of dtype {value.dtype.name} and shape {tuple(value.shape)}"
    name = type(value).__name__
    if value is None:
        return "None"
    if isinstance(value, list | tuple | dict | set):
        return f"{name} of length {len(value)}"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{name} {text}"


# --- primitives --------------------------------------------------------------------------


def _check_int(v: Any) -> Any:
    if type(v) is int:
        if _INT_MIN <= v <= _INT_MAX:
            return v
        raise Mismatch("int between -2**63 and 2**64-1 (what msgpack can store)", v)
    if isinstance(v, np.integer) or (isinstance(v, int) and not isinstance(v, bool)):
        return _check_int(int(v))  # numpy integer scalar, IntEnum: the same value as an int
    raise Mismatch("int", v, hint="int(value)" if isinstance(v, float | str) else "")


def _check_float(v: Any) -> Any:
    if type(v) is float:
        return v
    if isinstance(v, float | np.floating):
        f: float | None = float(v)  # None below, for an int too large for a float
        if f == v or f != f:  # exact (NaN compares unequal to itself)
            return f
        raise Mismatch("float (this value has no exact 64-bit float equivalent)", v)
    if (
        type(v) is int
        or isinstance(v, np.integer)
        or (isinstance(v, int) and not isinstance(v, bool))
    ):
        i = int(v)
        try:
            f = float(i)
        except OverflowError:
            f = None
        if f is not None and f == i:
            return f
        raise Mismatch("float (this int has no exact float equivalent)", v, hint="float(value)")
    raise Mismatch("float", v, hint="float(value)" if isinstance(v, str) else "")


def _check_bool(v: Any) -> Any:
    if type(v) is bool:
        return v
    if isinstance(v, np.bool_):
        return bool(v)
    raise Mismatch("bool", v)


def _check_str(v: Any) -> Any:
    if isinstance(v, str):
        return v
    raise Mismatch("str", v)


def _check_bytes(v: Any) -> Any:
    if isinstance(v, bytes | bytearray):
        return v
    raise Mismatch("bytes", v)


_PRIMITIVE_CHECKS: dict[Any, Check] = {
    int: _check_int,
    float: _check_float,
    bool: _check_bool,
    str: _check_str,
    bytes: _check_bytes,
}


def _check_any_list(v: Any) -> Any:
    if isinstance(v, list):
        return v
    raise Mismatch("list", v, hint="list(value)" if isinstance(v, tuple) else "")


# --- arrays ------------------------------------------------------------------------------


def declared_shape(tp: Any) -> tuple[int | None, ...] | None:
    """The shape an ndarray annotation declares (``None`` per free dimension), or ``None``.

    Only numpy's own shape parameter counts: ``np.ndarray[tuple[int, Literal[3]], ...]`` is
    two dimensions, the second of size 3. ``NDArray[...]`` and ``tuple[int, ...]`` declare
    no shape.
    """
    args = typing.get_args(strip_annotated(tp))
    if len(args) != 2:
        return None
    shape = args[0]
    if typing.get_origin(shape) is not tuple:
        return None
    dims = typing.get_args(shape)
    if not dims or Ellipsis in dims:
        return None
    out: list[int | None] = []
    for dim in dims:
        if typing.get_origin(dim) is Literal:
            (size, *rest) = typing.get_args(dim)
            out.append(size if isinstance(size, int) and not rest else None)
        else:
            out.append(None)  # int, Any, a TypeVar: any size
    return tuple(out)


def _array_text(dtype: np.dtype | None, shape: tuple[int | None, ...] | None) -> str:
    text = "ndarray"
    if dtype is not None:
        text += f" of dtype {dtype.name}"
    if shape is not None:
        dims = ", ".join("any" if d is None else str(d) for d in shape)
        dims += "," if len(shape) == 1 else ""
        text += f"{' and' if dtype is not None else ' of'} shape ({dims})"
    return text


def _array_check(tp: Any, load_array: Callable[[Any], Any]) -> Check:
    name = ndarray_dtype(tp)
    dtype = np.dtype(name) if name is not None else None
    dtype_type = dtype.type if dtype is not None else None
    shape = declared_shape(tp)
    expected = _array_text(dtype, shape)

    def check_array(v: Any) -> Any:
        if not isinstance(v, np.ndarray):
            if not isinstance(v, bytes | bytearray | memoryview):
                hint = f"np.asarray(value{f', dtype=np.{dtype.name}' if dtype else ''})"
                raise Mismatch(expected, v, hint=hint)
            v = load_array(v)  # NPY bytes (or a view of them), as atdata allows
        # the same type may come under another name (longlong/int64) or byte order
        if (
            dtype is not None
            and v.dtype.type is not dtype_type
            and (dtype.itemsize == 0 or v.dtype.newbyteorder("=") != dtype)
        ):
            raise Mismatch(expected, v, hint=f"value.astype(np.{dtype.name})")
        if (
            shape is not None
            and v.shape != shape  # the common case: a fully declared shape, matched
            and (
                v.ndim != len(shape)
                or any(d is not None and d != n for d, n in zip(shape, v.shape, strict=True))
            )
        ):
            raise Mismatch(expected, v)
        return v

    return check_array


# --- building ----------------------------------------------------------------------------


def expected_text(tp: Any) -> str:
    """What an annotation allows, in words (``"list of int"``, ``"None or str"``)."""
    inner, optional = unwrap_optional(tp)
    inner = strip_annotated(inner)
    if is_ndarray_type(inner):
        name = ndarray_dtype(inner)
        text = _array_text(np.dtype(name) if name else None, declared_shape(inner))
    elif inner in _PRIMITIVE_CHECKS:
        text = inner.__name__
    elif typing.get_origin(inner) is list and typing.get_args(inner)[:1] not in ((), (Any,)):
        text = f"list of {expected_text(typing.get_args(inner)[0])}"
    else:
        text = "list"
    return f"None or {text}" if optional else text


def _list_check(item_tp: Any, load_array: Callable[[Any], Any]) -> Check:
    inner, optional = unwrap_optional(item_tp)
    inner = strip_annotated(inner)
    item = build_check(item_tp, load_array)
    expected = f"list of {expected_text(item_tp)}"
    # Lists of plain values are common and can be long: one C-speed pass over the item
    # types first; the per-item path (conversions, exact positions) only when it fails.
    fast: Callable[[list[Any]], bool] | None = None
    if not optional and inner in (str, float, bytes, bool):

        def fast(v: list[Any], t: type = inner) -> bool:
            return all(type(x) is t for x in v)

    elif not optional and inner is int:

        def fast(v: list[Any]) -> bool:
            if not all(type(x) is int for x in v):
                return False
            return not v or (min(v) >= _INT_MIN and max(v) <= _INT_MAX)

    def check_list(v: Any) -> Any:
        if not isinstance(v, list):
            raise Mismatch(expected, v, hint="list(value)" if isinstance(v, tuple) else "")
        if fast is not None and fast(v):
            return v
        out = []
        for i, x in enumerate(v):
            try:
                out.append(item(x))
            except Mismatch as exc:
                raise exc.at(f"[{i}]") from None
        return out

    return check_list


def build_check(tp: Any, load_array: Callable[[Any], Any]) -> Check:
    """Build the check of a field annotation (already accepted by the codec).

    Args:
        tp: The resolved annotation (``int``, ``NDArray[np.uint8] | None``, ``list[str]``...).
        load_array: Turns NPY bytes into an array (raising the codec's own decode error).

    Returns:
        ``check(value)``: the value in its stored form (numpy scalars as Python values,
        ints in float fields as floats, NPY bytes as arrays), or :class:`Mismatch`.
    """
    inner, optional = unwrap_optional(tp)
    inner = strip_annotated(inner)
    if is_ndarray_type(inner):
        base = _array_check(inner, load_array)
    elif inner in _PRIMITIVE_CHECKS:
        base = _PRIMITIVE_CHECKS[inner]
    elif typing.get_origin(inner) is list and typing.get_args(inner)[:1] not in ((), (Any,)):
        base = _list_check(typing.get_args(inner)[0], load_array)
    else:  # bare list / list[Any]: the items are not described
        base = _check_any_list
    if not optional:
        return base
    expected = expected_text(tp)

    def check_optional(v: Any) -> Any:
        if v is None:
            return None
        try:
            return base(v)
        except Mismatch as exc:
            if not exc.path:
                exc.expected = expected
            raise

    return check_optional
