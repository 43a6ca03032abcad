"""Typed samples and their wire format.

A sample is a dataclass whose instances serialise to one msgpack map (field name -> value),
byte for byte as atdata 0.2 writes it: numpy arrays become a msgpack ``bin`` holding the
exact output of ``np.save``; everything else is encoded by msgpack-python with its default
options. In a WebDataset shard each sample is one tar member ``{key}.msgpack``.

Differences from atdata, all deliberate (see ``docs/readme/data.md``):

* every ndarray annotation is decoded (``NDArray``, ``NDArray[np.float32]``,
  ``np.ndarray``, ``Optional[...]``, string annotations), and ``list[NDArray]`` too;
* only the declared fields are serialised (stray instance attributes never leak);
* msgpack is used both ways, reading with ``strict_map_key=False``, so whatever is written
  reads back;
* object-dtype arrays (which need pickle) are refused on write and on read unless the class
  opts in with ``__allow_pickle__ = True`` (or ``@packable(allow_pickle=True)``);
* every field value is checked against its annotation before it is written
  (:class:`FieldTypeError`) and after it is read (:class:`SampleMismatchError`), by one
  validator (``atdata_lite._checks``); an unknown or missing field in the data raises
  :class:`SampleMismatchError` naming it (a ``TypeError``, as in atdata);
* keys are time-ordered and unique across processes (:func:`new_key`), and a sample read
  from a shard remembers its key so that rewriting it keeps the key.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import re
import threading
import time
import typing
import uuid
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar, Generic, Self, TypeGuard, TypeVar, dataclass_transform

import msgpack
import numpy as np

from ._checks import Check, Mismatch, build_check
from ._fastdecode import make_decoder
from ._msgview import unpack_map_view
from ._npy import npy_view
from ._types import field_types, is_ndarray_type, strip_annotated, unwrap_optional
from .errors import (
    FieldTypeError,
    InvalidSampleKeyError,
    SampleDecodeError,
    SampleMismatchError,
    UnsupportedFieldTypeError,
)

__all__ = [
    "DictSample",
    "PackableSample",
    "SampleBatch",
    "array_to_bytes",
    "bytes_to_array",
    "check_key",
    "is_valid_key",
    "new_key",
    "packable",
    "sample_key",
]

# Attribute under which a sample read from a shard keeps its key (never serialised).
KEY_ATTR = "__atdata_key__"

# --- keys ------------------------------------------------------------------------------

_key_lock = threading.Lock()
_last_ms = 0
_counter = 0


def new_key() -> str:
    """Return a new sample key: a UUIDv7 string (RFC 9562), e.g. ``0190b2c4-...``.

    Keys sort as strings in creation order (48-bit millisecond timestamp first; within one
    millisecond of one process a 12-bit counter keeps them increasing) and are unique across
    processes and machines (62 random bits per key).
    """
    global _last_ms, _counter
    rand = int.from_bytes(os.urandom(8), "big")
    with _key_lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms = _last_ms
            _counter += 1
            if _counter > 0xFFF:  # counter exhausted: borrow the next millisecond
                ms += 1
                _counter = rand >> 53  # random start in the lower half: room to count up
        else:
            _counter = rand >> 53
        _last_ms = ms
        counter = _counter
    value = (
        (ms & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76
        | counter << 64
        | 0b10 << 62
        | (rand & 0x3FFF_FFFF_FFFF_FFFF)
    )
    return str(uuid.UUID(int=value))


_BAD_KEY = re.compile(r"[./\\\x00-\x1f\x7f]")


def is_valid_key(key: Any) -> TypeGuard[str]:
    """True when ``key`` is a valid sample key (see :func:`check_key`); the one key rule,
    applied to keys written and to keys read from shards."""
    return type(key) is str and 0 < len(key) <= 200 and _BAD_KEY.search(key) is None


def check_key(key: Any) -> str:
    """Validate a sample key (given by a caller, or remembered from a read) and return it.

    A key becomes the tar member name ``{key}.msgpack``; webdataset groups members by the
    part before the first dot, so a key may not contain ``.``, ``/``, ``\\`` or control
    characters, and may not be empty or longer than 200 characters. So no key can become a
    path (``../x``, ``/etc/x``) when samples are copied into a new shard.

    Raises:
        InvalidSampleKeyError: The key is not a non-empty string of allowed characters.
    """
    if not is_valid_key(key):
        raise InvalidSampleKeyError(
            f"Invalid sample key {key!r}: a key must be a non-empty string of at most 200 "
            "characters without '.', '/', '\\' or control characters (it names the tar "
            "member '{key}.msgpack'). Omit it to get a generated key."
        )
    return key


def sample_key(sample: Any) -> str | None:
    """Return the key a sample was read with (``None`` for a sample built in memory)."""
    return getattr(sample, KEY_ATTR, None)


# --- arrays -----------------------------------------------------------------------------


def array_to_bytes(arr: np.ndarray, *, allow_pickle: bool = False, where: str = "") -> bytes:
    """Serialise an array exactly as atdata does (``np.save`` output, NPY format).

    Raises:
        UnsupportedFieldTypeError: An object-dtype array without ``allow_pickle``.
    """
    if arr.dtype.hasobject and not allow_pickle:
        raise UnsupportedFieldTypeError(
            f"{where or 'An array'} has dtype object, which can only be stored with pickle "
            "(unsafe to read). Convert it to a numeric/str dtype, or opt in on the sample "
            "class with __allow_pickle__ = True (or @packable(allow_pickle=True))."
        )
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def bytes_to_array(
    data: bytes | bytearray | memoryview,
    *,
    allow_pickle: bool = False,
    where: str = "",
    copy: bool = True,
) -> np.ndarray:
    """Read NPY bytes written by :func:`array_to_bytes` (or by atdata).

    Args:
        data: The NPY bytes.
        allow_pickle: Allow object-dtype arrays (stored with pickle; only for data you trust).
        where: What the bytes are, for error messages.
        copy: ``True`` (default) returns an array owning its data, as ``np.load`` does.
            ``False`` returns a view of ``data`` where the format allows (read-only when
            ``data`` is ``bytes``): no copy, and it keeps ``data`` alive.

    Raises:
        SampleDecodeError: The bytes are not NPY data, or hold an object array and
            ``allow_pickle`` is false.
    """
    try:
        fast = npy_view(data, copy=copy)
        if fast is not None:
            return fast
        _check_npy_size(data)
        array: np.ndarray = np.load(io.BytesIO(data), allow_pickle=allow_pickle)
        return array
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise SampleDecodeError(
                f"{where or 'An array'} holds an object-dtype array, which is stored with "
                "pickle and refused because unpickling untrusted data can run code. If you "
                "trust the data, set __allow_pickle__ = True on the sample class (or use "
                "@packable(allow_pickle=True))."
            ) from exc
        raise SampleDecodeError(f"{where or 'An array'} is not valid NPY data: {exc}") from exc
    except Exception as exc:  # EOFError, OSError from a truncated header, MemoryError, ...
        raise SampleDecodeError(f"{where or 'An array'} is not valid NPY data: {exc}") from exc


def _check_npy_size(data: bytes | bytearray | memoryview) -> None:
    # np.load allocates the whole array its header describes before reading the data, so a
    # 100-byte payload claiming a terabyte would exhaust memory: compare first.
    from numpy.lib import format as npy

    buf = io.BytesIO(data)
    version = npy.read_magic(buf)
    if version == (1, 0):
        shape, _, dtype = npy.read_array_header_1_0(buf)
    elif version == (2, 0):
        shape, _, dtype = npy.read_array_header_2_0(buf)
    else:
        return  # np.load checks the version and refuses what it cannot read
    if dtype.hasobject:
        return  # pickled: its size is not known from the header
    need = int(np.prod(shape, dtype=object)) * dtype.itemsize
    have = len(data) - buf.tell()
    if need > have:
        raise ValueError(f"the header describes {need} bytes of data, the payload holds {have}")


# --- per-class codec --------------------------------------------------------------------

_PRIMITIVES = (str, int, float, bool, bytes)

Conv = Callable[[Any], Any]


def _has_array(tp: Any) -> bool:
    tp, _ = unwrap_optional(tp)
    if is_ndarray_type(tp):
        return True
    if typing.get_origin(tp) is list:
        args = typing.get_args(tp)
        return bool(args) and _has_array(args[0])
    return False


def _check_type(tp: Any, where: str) -> None:
    """Raise UnsupportedFieldTypeError unless ``tp`` can be stored and described."""
    inner, _ = unwrap_optional(tp)
    inner = strip_annotated(inner)
    origin = typing.get_origin(inner)
    if inner in _PRIMITIVES or is_ndarray_type(inner):
        return
    if inner is list:
        return
    if origin is list:
        args = typing.get_args(inner)
        if not args or args[0] is Any:
            return
        _check_type(args[0], where)
        return
    if origin is typing.Union or isinstance(inner, type(int | str)):
        raise UnsupportedFieldTypeError(
            f"{where} has the union type {inner!r}; only Optional[T] (T | None) unions are "
            "supported. Use one type, or separate optional fields."
        )
    raise UnsupportedFieldTypeError(
        f"{where} has the unsupported type {inner!r}. Supported: str, int, float, bool, "
        "bytes, numpy arrays (NDArray / np.ndarray), list[...] of these, and Optional of any "
        "of them."
    )


def _encoder(tp: Any, where: str, allow_pickle: bool) -> Conv | None:
    """Build the value -> msgpack-ready converter for a field, or None if not needed."""
    tp, _ = unwrap_optional(tp)
    if is_ndarray_type(tp):

        def enc_array(v: Any) -> Any:  # v has passed the field's check: an array or None
            return v if v is None else array_to_bytes(v, allow_pickle=allow_pickle, where=where)

        return enc_array
    if typing.get_origin(tp) is list and _has_array(tp):
        item = _encoder(typing.get_args(tp)[0], where, allow_pickle)
        assert item is not None

        def enc_list(v: Any) -> Any:
            return v if v is None else [item(x) for x in v]

        return enc_list
    return None


def _decoder(tp: Any, where: str, allow_pickle: bool) -> Conv | None:
    """Build the msgpack value -> field value converter, or None if not needed."""
    tp, _ = unwrap_optional(tp)
    if is_ndarray_type(tp):

        def dec_array(v: Any) -> Any:
            if isinstance(v, bytes | bytearray | memoryview):
                return bytes_to_array(v, allow_pickle=allow_pickle, where=where)
            return v

        return dec_array
    if typing.get_origin(tp) is list and _has_array(tp):
        item = _decoder(typing.get_args(tp)[0], where, allow_pickle)
        assert item is not None

        def dec_list(v: Any) -> Any:
            return [item(x) for x in v] if isinstance(v, list | tuple) else v

        return dec_list
    return None


@dataclasses.dataclass(frozen=True)
class _Codec:
    names: tuple[str, ...]
    name_set: frozenset[str]
    required: frozenset[str]
    checks: tuple[tuple[str, Check], ...]  # every field, in order: the one validator
    view_checks: tuple[tuple[str, Check], ...]  # the same, arrays as views of the payload
    not_init: frozenset[str]  # fields set after construction (dataclass field(init=False))
    encoders: tuple[tuple[str, Conv], ...]
    decoders: tuple[tuple[str, Conv], ...]
    # Reading may fill the instance dict directly: the class's __init__ is the one
    # dataclass generated, nothing runs after it but our own __post_init__, and the
    # instances keep their fields in a plain __dict__.
    plain_init: bool = False
    array_fields: frozenset[str] = frozenset()  # fields holding one array (or None)
    # Generated decoders (plain_init classes only): decode(payload, key=None) -> sample
    decoder: Callable[..., Any] | None = None  # arrays as writable copies
    view_decoder: Callable[..., Any] | None = None  # arrays as read-only views


_CODECS: weakref.WeakKeyDictionary[type, _Codec] = weakref.WeakKeyDictionary()
_CODEC_ATTR = "__atdata_lite_codec__"
# Payloads at least this large are decoded with their binary values in place.
_IN_PLACE_MIN = 64 << 10


def _numpy_default(obj: Any) -> Any:
    # msgpack calls this for objects it cannot encode. Numpy scalars (np.float32(1.0)) are
    # common in ML code and have an exact Python equivalent.
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        raise TypeError(
            "a numpy array inside a field not annotated as an array (annotate the field as "
            "NDArray, or list[NDArray])"
        )
    raise TypeError(f"can not serialize {type(obj).__name__!r} object")


def codec_for(cls: type) -> _Codec:
    """Return the (cached) codec of a packable class, checking its field types once."""
    codec = cls.__dict__.get(_CODEC_ATTR)  # its own, not a base class's
    if codec is not None:
        return codec  # type: ignore[no-any-return]
    try:
        return _CODECS[cls]
    except KeyError:
        pass
    hints = field_types(cls)
    allow_pickle = bool(getattr(cls, "__allow_pickle__", False))
    encoders = []
    decoders = []
    checks = []
    view_checks = []
    required = set()
    not_init = set()
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        where = f"Field {f.name!r} of {cls.__qualname__}"
        _check_type(tp, where)
        enc = _encoder(tp, where, allow_pickle)
        dec = _decoder(tp, where, allow_pickle)
        load = _array_loader(allow_pickle, where)
        checks.append((f.name, build_check(tp, load)))
        view_checks.append((f.name, build_check(tp, _array_loader(allow_pickle, where, False))))
        if not f.init:
            not_init.add(f.name)
        if enc is not None:
            encoders.append((f.name, enc))
        if dec is not None:
            decoders.append((f.name, dec))
        if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required.add(f.name)
    names = tuple(hints)
    init = getattr(cls, "__init__", None)
    plain_init = (
        not not_init
        and getattr(cls, "__post_init__", None) is PackableSample.__post_init__
        and getattr(getattr(init, "__code__", None), "co_filename", "") == "<string>"
        and all("__slots__" not in vars(k) for k in cls.__mro__[:-1])
        and set(names) == {f.name for f in dataclasses.fields(cls)}
    )
    array_fields = frozenset(
        name for name in names if is_ndarray_type(unwrap_optional(hints[name])[0])
    )
    decoder = view_decoder = None
    if plain_init:
        decoder, view_decoder = _decoders(
            cls, tuple(checks), tuple(view_checks), hints, array_fields
        )
    codec = _Codec(
        names=names,
        name_set=frozenset(names),
        required=frozenset(required),
        checks=tuple(checks),
        view_checks=tuple(view_checks),
        not_init=frozenset(not_init),
        encoders=tuple(encoders),
        decoders=tuple(decoders),
        plain_init=plain_init,
        array_fields=array_fields,
        decoder=decoder,
        view_decoder=view_decoder,
    )
    _CODECS[cls] = codec
    with contextlib.suppress(AttributeError, TypeError):
        setattr(cls, _CODEC_ATTR, codec)  # the fast lookup; the weak map is the fallback
    return codec


def _decoders(
    cls: Any,
    checks: tuple[tuple[str, Check], ...],
    view_checks: tuple[tuple[str, Check], ...],
    hints: dict[str, Any],
    array_fields: frozenset[str],
) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The generated decoders of a plain class (see :mod:`atdata_lite._fastdecode`)."""

    def generated(field_checks: tuple[tuple[str, Check], ...], **extra: Any) -> Callable[..., Any]:
        return make_decoder(
            cls,
            field_checks,
            hints,
            careful=lambda data: cls._build(data, field_checks),
            careful_bytes=lambda payload: cls._build(_unpack(payload, cls), field_checks),
            key_attr=KEY_ATTR,
            **extra,
        )

    in_place = (lambda payload: cls._from_bytes_in_place(payload)) if array_fields else None
    view = generated(view_checks, in_place=in_place, in_place_min=_IN_PLACE_MIN, copy_arrays=False)
    return generated(checks), view


def _array_loader(allow_pickle: bool, where: str, copy: bool = True) -> Callable[[Any], np.ndarray]:
    def load(data: Any) -> np.ndarray:
        return bytes_to_array(data, allow_pickle=allow_pickle, where=where, copy=copy)

    return load


def _mismatch_text(cls: type, name: str, exc: Mismatch) -> str:
    return f"field {name + exc.path!r} of {cls.__qualname__} expects {exc.expected}, got {exc.got}"


def unpack_payload(data: bytes | memoryview, what: str | type) -> Any:
    """Decode one sample's msgpack payload (``what``: the sample type, for errors).

    Raises:
        SampleDecodeError: Not valid msgpack.
    """
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception:
        return _unpack(data, what)  # raises the worded error


def _unpack(data: bytes | memoryview, what: str | type) -> Any:
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:
        if isinstance(what, type):
            what = f"a {what.__qualname__} sample"
        raise SampleDecodeError(f"Cannot decode {what}: not valid msgpack ({exc}).") from exc


# --- PackableSample ---------------------------------------------------------------------


@dataclasses.dataclass
class PackableSample:
    """Base class of typed samples (a dataclass; subclass it with ``@dataclass``).

    Fields may be ``str``, ``int``, ``float``, ``bool``, ``bytes``, numpy arrays
    (``NDArray`` / ``np.ndarray``, any parametrisation), ``list[...]`` of these, and
    ``Optional`` of any of them. Use :func:`packable` to turn a plain class into one.

    Class attributes:
        __allow_pickle__: Set to ``True`` to allow object-dtype arrays (stored with pickle;
            only for data you trust).
    """

    __allow_pickle__: ClassVar[bool] = False

    def __post_init__(self) -> None:
        # Arrays given as NPY bytes (as atdata allows) become arrays.
        codec = codec_for(type(self))
        for name, dec in codec.decoders:
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, dec(value))

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Self:
        """Build a sample from a decoded msgpack map.

        Every value is checked against its field's annotation (the same check as on write;
        see :func:`~atdata_lite.samples.PackableSample.packed`); an ``int`` in a ``float``
        field becomes a float.

        Raises:
            SampleDecodeError: ``data`` is not a map, or an array field holds bytes that are
                not NPY data.
            SampleMismatchError: ``data`` names a field the class does not have, lacks a
                required field, or holds a value that does not match its field's type (also
                a ``TypeError``).
        """
        return cls._build(data, codec_for(cls).checks)

    @classmethod
    def _build(cls, data: Any, checks: tuple[tuple[str, Check], ...]) -> Self:
        codec = cls.__dict__.get(_CODEC_ATTR) or codec_for(cls)
        if codec.plain_init and type(data) is dict and len(data) == len(checks):
            # The common case, every field present and well-typed: one pass. Anything else
            # (a missing or unknown field, a mismatch) goes the careful way below, which
            # finds and words the problem.
            try:
                kwargs = {name: check(data[name]) for name, check in checks}
            except (KeyError, Mismatch):
                pass
            else:
                sample = cls.__new__(cls)
                object.__setattr__(sample, "__dict__", kwargs)
                return sample
        if not isinstance(data, dict):
            raise SampleDecodeError(
                f"Cannot decode a {cls.__qualname__}: expected a map of fields, got "
                f"{type(data).__name__}."
            )
        keys = data.keys()
        if not (keys <= codec.name_set and codec.required <= keys):
            unknown = [k for k in keys if k not in codec.name_set]
            if unknown:
                raise SampleMismatchError(
                    f"Unknown field(s) {unknown} in data for {cls.__qualname__} (fields: "
                    f"{list(codec.names)}). The data was written with another sample type: "
                    "read it with that type, or as DictSample.",
                    field=str(unknown[0]) if len(unknown) == 1 else None,
                )
            missing = sorted(codec.required - keys)
            raise SampleMismatchError(
                f"Missing required field(s) {missing} in data for {cls.__qualname__}. The "
                "data was written with another sample type: read it with that type, or as "
                "DictSample.",
                field=missing[0] if len(missing) == 1 else None,
            )
        kwargs = {}
        for name, check in checks:
            if name in data:
                try:
                    kwargs[name] = check(data[name])
                except Mismatch as exc:
                    text = _mismatch_text(cls, name, exc)
                    raise SampleMismatchError(
                        f"{text[0].upper()}{text[1:]}. The data was written with another "
                        "sample type: read it with that type, or as DictSample.",
                        field=name,
                    ) from None
        if codec.not_init:
            late = {k: kwargs.pop(k) for k in codec.not_init if k in kwargs}
            sample = cls(**kwargs)
            for k, v in late.items():
                object.__setattr__(sample, k, v)
            return sample
        return cls(**kwargs)

    @classmethod
    def from_bytes(cls, bs: bytes) -> Self:
        """Decode one msgpack payload (the content of a ``{key}.msgpack`` member).

        Raises:
            SampleDecodeError: The bytes are not msgpack, or do not match the class.
        """
        codec = cls.__dict__.get(_CODEC_ATTR) or codec_for(cls)
        if codec.decoder is not None:
            return codec.decoder(bs)  # type: ignore[no-any-return]
        return cls._build(_unpack(bs, cls), codec.checks)

    @classmethod
    def _from_bytes_view(cls, bs: bytes | memoryview) -> Self:
        """:meth:`from_bytes`, with array fields as read-only views (no copy of the data).

        Large payloads are decoded keeping binary values in place, so an array field is a
        view of ``bs`` itself; other binary fields still become ``bytes``.
        """
        codec = cls.__dict__.get(_CODEC_ATTR) or codec_for(cls)
        if codec.view_decoder is not None:
            return codec.view_decoder(bs)  # type: ignore[no-any-return]
        return cls._from_bytes_in_place(bs)

    @classmethod
    def _from_bytes_in_place(cls, bs: bytes | memoryview) -> Self:
        """:meth:`_from_bytes_view` the general way (large payloads decoded in place)."""
        codec = cls.__dict__.get(_CODEC_ATTR) or codec_for(cls)
        data = unpack_map_view(bs) if len(bs) >= _IN_PLACE_MIN and codec.array_fields else None
        if data is None:
            return cls._build(_unpack(bs, cls), codec.view_checks)
        for name, value in data.items():
            if type(value) is memoryview and name not in codec.array_fields:
                data[name] = value.tobytes()
        return cls._build(data, codec.view_checks)

    @property
    def packed(self) -> bytes:
        """The msgpack payload of this sample (atdata's wire format).

        Every field value is checked against its annotation first. Accepted as they are:
        values of the declared type; numpy scalars (stored as the equal Python value); an
        ``int`` in a ``float`` field when it converts exactly (stored as a float). Refused:
        everything else, e.g. ``True`` or ``3.0`` in an ``int`` field, ``"3"`` anywhere but
        a ``str`` field, a list or an array of another dtype (or shape, where the annotation
        declares one) in an array field, ``None`` in a field that is not ``Optional``, a
        tuple in a list field. Convert explicitly (``int(x)``, ``np.asarray(x, dtype=...)``,
        ``arr.astype(np.uint8)``).

        Raises:
            FieldTypeError: A field value does not match its annotation (a ``TypeError``).
            UnsupportedFieldTypeError: An object-dtype array without ``__allow_pickle__``.
        """
        cls = type(self)
        codec = codec_for(cls)
        data = {}
        try:
            for name, check in codec.checks:
                data[name] = check(getattr(self, name))
        except Mismatch as exc:
            if exc.hint:
                fix = f"Convert the value explicitly ({exc.hint}), or fix the annotation."
            elif exc.got == "None" and not exc.path:
                fix = "Declare the field Optional (T | None) to allow None."
            else:
                fix = "Convert the value explicitly, or fix the field's annotation."
            raise FieldTypeError(
                f"Cannot write a {cls.__qualname__} sample: {_mismatch_text(cls, name, exc)}. "
                + fix,
                field=name,
                expected=exc.expected,
                got=exc.got,
            ) from None
        for name, enc in codec.encoders:
            data[name] = enc(data[name])
        try:
            payload: bytes = msgpack.packb(data, use_bin_type=True, default=_numpy_default)
            return payload
        except (TypeError, ValueError, OverflowError) as exc:
            raise UnsupportedFieldTypeError(
                f"Cannot serialise a {type(self).__qualname__} sample: {exc}. Field values "
                "must match their annotations."
            ) from exc

    @property
    def as_wds(self) -> dict[str, Any]:
        """The WebDataset sample dict ``{"__key__": key, "msgpack": packed}``.

        The key is the one the sample was read with, if any, otherwise a new one.
        """
        return {"__key__": getattr(self, KEY_ATTR, None) or new_key(), "msgpack": self.packed}


T = TypeVar("T")


def _wrap_post_init(user_post_init: Callable[..., None]) -> Callable[..., None]:
    def __post_init__(self: Any, *args: Any) -> None:
        PackableSample.__post_init__(self)
        user_post_init(self, *args)

    # For inspect.unwrap; mypy's function type has no __wrapped__ attribute.
    __post_init__.__wrapped__ = user_post_init  # type: ignore[attr-defined]
    return __post_init__


def _register_dict_lens(cls: type) -> None:
    """Register the ``DictSample -> cls`` lens that ``@packable`` adds (atdata's behaviour)."""
    # Imported here: the lens registry knows nothing of sample types; samples use it.
    from .lenses import Lens, LensNetwork

    def get(d: DictSample) -> Any:
        # cls is a @packable class: from_data comes from PackableSample at run time.
        return cls.from_data(d._data)  # type: ignore[attr-defined]

    def put(v: Any, d: DictSample) -> DictSample:
        return DictSample.from_bytes(v.packed)

    LensNetwork().register(Lens(get, put, source_type=DictSample, view_type=cls))


def _make_packable(cls: type, allow_pickle: bool | None) -> type:
    own_doc = cls.__dict__.get("__doc__")
    if isinstance(cls, type) and issubclass(cls, PackableSample):
        if "__post_init__" in cls.__dict__:
            # Replacing a method on the user's class is the point here (mypy forbids it).
            cls.__post_init__ = _wrap_post_init(cls.__dict__["__post_init__"])  # type: ignore[method-assign]
        new_cls = dataclasses.dataclass(cls)
    else:
        base = dataclasses.dataclass(cls)
        ns: dict[str, Any] = {
            "__module__": cls.__module__,
            "__qualname__": cls.__qualname__,
            "__doc__": own_doc,
        }
        user_post_init = getattr(base, "__post_init__", None)
        if user_post_init is not None:
            ns["__post_init__"] = _wrap_post_init(user_post_init)
        # Subclassing the user's class (as atdata does) keeps zero-argument super() in its
        # methods working.
        new_cls = dataclasses.dataclass(type(cls.__name__, (base, PackableSample), ns))
    new_cls.__doc__ = own_doc  # dataclass() invents a signature docstring; keep the real one
    if allow_pickle is not None:
        new_cls.__allow_pickle__ = allow_pickle
    codec_for(new_cls)  # checks every field type now, at class definition
    _register_dict_lens(new_cls)
    return new_cls


@typing.overload
def packable(cls: type[T], /) -> type[T]: ...
@typing.overload
def packable(*, allow_pickle: bool | None = None) -> Callable[[type[T]], type[T]]: ...


@dataclass_transform()
def packable(cls: type | None = None, /, *, allow_pickle: bool | None = None) -> Any:
    """Turn a class into a packable sample type (a dataclass subclassing PackableSample).

    Use as ``@packable`` or ``@packable(allow_pickle=True)``. Also registers a lens
    ``DictSample -> cls`` so that ``Dataset[DictSample](...).as_type(cls)`` works.

    Args:
        cls: The class to convert.
        allow_pickle: Allow object-dtype array fields (stored with pickle). Only for data
            you trust.

    Returns:
        The packable class.

    Raises:
        UnsupportedFieldTypeError: A field's type cannot be serialised (e.g. ``dict``,
            ``tuple``, ``Any``, a union, a nested dataclass) or its annotation cannot be
            resolved.
    """
    if cls is None:
        return lambda c: _make_packable(c, allow_pickle)
    return _make_packable(cls, allow_pickle)


# --- DictSample --------------------------------------------------------------------------


class DictSample:
    """A schema-less sample: the decoded msgpack map, with attribute and item access.

    Array fields stay as NPY ``bytes`` (there is no schema saying which fields are arrays);
    convert with ``.as_type(T)`` on the dataset or :func:`bytes_to_array`.
    """

    __slots__ = ("__atdata_key__", "_data")

    def __init__(self, _data: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self._data = dict(_data) if _data is not None else dict(kwargs)
        self.__atdata_key__: str | None = None

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> DictSample:
        """Wrap a decoded msgpack map.

        Raises:
            SampleDecodeError: ``data`` is not a map.
        """
        if not isinstance(data, dict):
            raise SampleDecodeError(
                f"Cannot decode a DictSample: expected a map, got {type(data).__name__}."
            )
        return cls(data)

    @classmethod
    def from_bytes(cls, bs: bytes) -> DictSample:
        """Decode one msgpack payload.

        Raises:
            SampleDecodeError: The bytes are not a msgpack map.
        """
        return cls.from_data(_unpack(bs, "a DictSample"))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in DictSample.__slots__:
            raise AttributeError(name)
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(
                f"'DictSample' has no field '{name}'. Available fields: {list(self._data)}"
            ) from None

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DictSample):
            return NotImplemented
        return self._data == other._data

    __hash__ = None  # type: ignore[assignment]

    def keys(self) -> list[str]:
        """The field names."""
        return list(self._data.keys())

    def values(self) -> list[Any]:
        """The field values."""
        return list(self._data.values())

    def items(self) -> list[tuple[str, Any]]:
        """``(name, value)`` pairs."""
        return list(self._data.items())

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default``."""
        return self._data.get(key, default)

    def to_dict(self) -> dict[str, Any]:
        """A shallow copy of the fields."""
        return dict(self._data)

    @property
    def packed(self) -> bytes:
        """The msgpack payload."""
        data = {
            k: array_to_bytes(v, where=f"Field {k!r} of a DictSample")
            if isinstance(v, np.ndarray)
            else v
            for k, v in self._data.items()
        }
        try:
            payload: bytes = msgpack.packb(data, use_bin_type=True, default=_numpy_default)
            return payload
        except (TypeError, ValueError, OverflowError) as exc:
            raise UnsupportedFieldTypeError(f"Cannot serialise a DictSample: {exc}.") from exc

    @property
    def as_wds(self) -> dict[str, Any]:
        """The WebDataset sample dict ``{"__key__": key, "msgpack": packed}``."""
        return {"__key__": self.__atdata_key__ or new_key(), "msgpack": self.packed}

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._data.items())
        return f"DictSample({inner})"


# --- SampleBatch ------------------------------------------------------------------------

DT = TypeVar("DT")


class SampleBatch(Generic[DT]):
    """A batch of samples with per-field aggregation: ``batch.image`` stacks the arrays.

    ``SampleBatch[T](samples)`` or ``SampleBatch(samples)`` (the sample type is then taken
    from the first sample). ``batch.<field>`` returns a stacked array (new leading batch
    dimension) when the values are arrays of one shape and dtype, otherwise a list. Works for
    inherited fields and for :class:`DictSample` batches. ``batch["field"]`` is the same as
    ``batch.field``; ``batch[i]`` is the i-th sample.

    A ``torch.utils.data.DataLoader`` builds column-wise batches instead (see
    :mod:`atdata_lite._torch`): their fields are tensors, and ``samples`` is rebuilt from the
    columns on first use.
    """

    _length: int  # the batch size, for a batch built from columns
    _keys: list[str] | None  # the samples' keys, for a batch built from columns
    _values: dict[str, list[Any]]  # Python values of array-held columns, for rebuilding

    def __init__(self, samples: Iterable[DT]) -> None:
        self.samples: list[DT] = list(samples)
        self._aggregates: dict[str, Any] = {}
        self._sample_type: type | None = None

    @classmethod
    def _from_columns(
        cls,
        sample_type: type,
        length: int,
        columns: dict[str, Any],
        keys: Sequence[str] | None = None,
        values: dict[str, list[Any]] | None = None,
    ) -> SampleBatch[Any]:
        """A batch holding only its columns (``samples`` is rebuilt from them when read).

        ``keys`` are the samples' keys; ``values`` the Python values of columns held as
        arrays or tensors (the rebuilt samples get those, not numpy scalars).
        """
        self = cls.__new__(cls)
        self._aggregates = dict(columns)
        self._sample_type = sample_type
        self._length = length
        self._keys = list(keys) if keys is not None else None
        self._values = dict(values or {})
        return self

    def _rebuild_samples(self) -> list[Any]:
        st = self._sample_type
        columns = {**self._aggregates, **self.__dict__.get("_values", {})}
        rows = [{k: col[i] for k, col in columns.items()} for i in range(self._length)]
        if st is not None and issubclass(st, DictSample):
            samples: list[Any] = [DictSample(row) for row in rows]
        else:
            samples = [st(**row) for row in rows]  # type: ignore[misc]
        keys = self.__dict__.get("_keys")
        if keys is not None:
            for sample, key in zip(samples, keys, strict=True):
                object.__setattr__(sample, KEY_ATTR, key)
        return samples

    def __len__(self) -> int:
        if "samples" not in self.__dict__:
            return self._length
        return len(self.samples)

    def __getitem__(self, key: str | int | slice) -> Any:
        if isinstance(key, str):
            try:
                return getattr(self, key)
            except AttributeError as exc:
                raise KeyError(key) from exc
        return self.samples[key]

    def _map_columns(self, fn: Callable[[Any], Any]) -> SampleBatch[DT]:
        names = self._field_names() or list(self._aggregates)
        columns = {}
        for name in names:
            col = getattr(self, name)
            if isinstance(col, list):
                columns[name] = [fn(v) if hasattr(v, "pin_memory") else v for v in col]
            else:
                columns[name] = fn(col) if hasattr(col, "pin_memory") else col
        return SampleBatch._from_columns(self.sample_type, len(self), columns)  # type: ignore[arg-type]

    def pin_memory(self, device: Any = None) -> SampleBatch[DT]:
        """A batch whose tensor columns are in pinned memory (``DataLoader(pin_memory=True)``)."""
        return self._map_columns(
            lambda t: t.pin_memory() if device is None else t.pin_memory(device)
        )

    def to(self, *args: Any, **kwargs: Any) -> SampleBatch[DT]:
        """A batch whose tensor columns are moved with ``tensor.to(*args, **kwargs)``."""
        return self._map_columns(lambda t: t.to(*args, **kwargs))

    def __iter__(self) -> typing.Iterator[DT]:
        return iter(self.samples)

    @property
    def sample_type(self) -> type | None:
        """The sample type: from ``SampleBatch[T]``, else the first sample's type."""
        if self._sample_type is None:
            orig = self.__dict__.get("__orig_class__")
            args = typing.get_args(orig) if orig is not None else ()
            if args and isinstance(args[0], type):
                self._sample_type = args[0]
            elif self.samples:
                self._sample_type = type(self.samples[0])
        return self._sample_type

    def _field_names(self) -> Sequence[str] | None:
        st = self.sample_type
        if st is None:
            return None
        if dataclasses.is_dataclass(st):
            return [f.name for f in dataclasses.fields(st)]
        if isinstance(st, type) and issubclass(st, DictSample):
            names: dict[str, None] = {}
            for s in self.samples:
                # The batch holds DictSamples (checked above), which DT cannot express.
                names.update(dict.fromkeys(s.keys()))  # type: ignore[attr-defined]
            return list(names)
        return None

    def __getattr__(self, name: str) -> Any:
        # Private and dunder names never aggregate: this keeps copy/pickle and typing's
        # __orig_class__ lookups from recursing.
        if name.startswith("_"):
            raise AttributeError(name)
        if name == "samples":  # a column-wise batch: rebuild the samples once
            samples = self._rebuild_samples()
            self.__dict__["samples"] = samples
            return samples
        if name in self._aggregates:
            return self._aggregates[name]
        names = self._field_names()
        if names is not None and name not in names:
            raise AttributeError(f"No sample attribute named {name}")
        if names is None and not self.samples:
            return []
        values = [s[name] if isinstance(s, DictSample) else getattr(s, name) for s in self]
        result = _aggregate(values)
        self._aggregates[name] = result
        return result


def _aggregate(values: list[Any]) -> Any:
    if values and all(isinstance(v, np.ndarray) for v in values):
        first = values[0]
        if all(v.shape == first.shape and v.dtype == first.dtype for v in values):
            return np.stack(values)
    return values
