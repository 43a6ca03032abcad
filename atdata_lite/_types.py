"""Annotation helpers shared by the sample codec and the schema module.

Everything here works on *resolved* annotations (``typing.get_type_hints``), so classes
defined under ``from __future__ import annotations`` behave like any other.

This module is imported on the hot path of opening an index, which must stay numpy-free:
numpy is never imported here. A numpy type can only appear in an annotation once numpy has
been imported by whoever wrote it, so looking numpy up in ``sys.modules`` is enough.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
import warnings
import weakref
from typing import Annotated, Any, Union

from .errors import UnsupportedFieldTypeError

__all__ = [
    "expand_aliases",
    "field_types",
    "is_ndarray_type",
    "ndarray_dtype",
    "strip_annotated",
    "unwrap_optional",
]

_NoneType = type(None)

# Per-class cache of resolved field annotations. Weak keys: types built at run time by the
# schema module must be collectable once nobody uses them.
_FIELD_TYPES: weakref.WeakKeyDictionary[type, dict[str, Any]] = weakref.WeakKeyDictionary()


def field_types(cls: type) -> dict[str, Any]:
    """Return the resolved annotation of each dataclass field of ``cls``, in field order.

    Annotations are resolved with ``typing.get_type_hints(cls, include_extras=True)``, so
    string annotations (``from __future__ import annotations``) become real types. The
    result is computed once per class and cached; do not mutate it.

    Args:
        cls: A dataclass type.

    Returns:
        ``{field_name: annotation}`` for every field of ``cls`` (inherited ones first).

    Raises:
        TypeError: ``cls`` is not a dataclass.
        UnsupportedFieldTypeError: An annotation cannot be resolved (a name that is not
            importable from the class's module, e.g. a type defined inside a function).
    """
    try:
        return _FIELD_TYPES[cls]
    except (KeyError, TypeError):
        pass
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"{cls!r} is not a dataclass type")
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
    except Exception as exc:  # NameError for unknown names, TypeError for odd strings
        raise UnsupportedFieldTypeError(
            f"Cannot resolve the field annotations of {cls.__qualname__}: {exc}. Annotations "
            "must name types importable from the class's module (define helper types at "
            "module level, not inside a function)."
        ) from exc
    result = {f.name: expand_aliases(hints.get(f.name, f.type)) for f in dataclasses.fields(cls)}
    _FIELD_TYPES[cls] = result
    return result


def _is_type_alias(obj: Any) -> bool:
    # ``typing.TypeAliasType`` (the ``type`` statement, 3.12+) and its backport in
    # typing_extensions; both carry ``__value__`` and ``__type_params__``. numpy >= 2.3 on
    # Python >= 3.12 defines ``numpy.typing.NDArray`` this way.
    return type(obj).__name__ == "TypeAliasType" and hasattr(obj, "__value__")


def _expand_alias(alias: Any, args: tuple[Any, ...]) -> Any:
    """Return what ``alias[args]`` stands for, with its type parameters substituted."""
    value = alias.__value__
    params = getattr(alias, "__type_params__", ())
    if not args or not params:
        return value
    try:
        return value[args if len(args) > 1 else args[0]]
    except TypeError:
        # A value that cannot be subscripted (e.g. a bare class): the parameters are unused.
        return value


_MAX_ALIAS_DEPTH = 50


def expand_aliases(tp: Any, _depth: int = 0) -> Any:
    """Replace every type alias inside ``tp`` by what it stands for.

    Type aliases made with the ``type`` statement (``type Image = NDArray[np.uint8]``), and
    ``numpy.typing.NDArray`` on the numpy versions that define it as one, are expanded, also
    inside ``Optional[...]``, ``list[...]``, unions and ``Annotated[...]``, so the rest of the
    package only ever sees the plain forms (``np.ndarray[shape, np.dtype[np.uint8]]``).
    Annotations without aliases come back unchanged (the same object).

    Args:
        tp: A resolved annotation.

    Returns:
        The annotation with every alias expanded.

    Raises:
        UnsupportedFieldTypeError: The aliases refer to themselves (a recursive alias).
    """
    if _depth > _MAX_ALIAS_DEPTH:
        raise UnsupportedFieldTypeError(
            f"The type alias {tp!r} refers to itself; sample fields need concrete types."
        )
    if _is_type_alias(tp):
        return expand_aliases(_expand_alias(tp, ()), _depth + 1)
    origin = typing.get_origin(tp)
    if origin is None:
        return tp
    args = typing.get_args(tp)
    if _is_type_alias(origin):
        return expand_aliases(_expand_alias(origin, args), _depth + 1)
    if origin is Annotated:
        inner = expand_aliases(args[0], _depth + 1)
        return tp if inner is args[0] else Annotated[(inner, *tp.__metadata__)]
    new_args = tuple(expand_aliases(a, _depth + 1) for a in args)
    if all(n is a for n, a in zip(new_args, args, strict=True)):
        return tp
    if origin is Union or origin is types.UnionType:
        return Union[new_args]  # noqa: UP007 - builds a union from a runtime tuple
    if isinstance(tp, types.GenericAlias):
        return types.GenericAlias(origin, new_args)
    try:
        return tp.copy_with(new_args)  # typing's own generic aliases (typing.List[...])
    except AttributeError:
        return tp


def strip_annotated(tp: Any) -> Any:
    """Return ``T`` for ``Annotated[T, ...]`` (repeatedly), with type aliases expanded."""
    tp = expand_aliases(tp)
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def unwrap_optional(tp: Any) -> tuple[Any, bool]:
    """Split ``Optional[T]`` / ``T | None`` / ``Union[T, None]`` into ``(T, True)``.

    Args:
        tp: A resolved annotation.

    Returns:
        ``(T, True)`` for an optional ``T``, ``(tp, False)`` otherwise. A union of several
        non-None members is returned unchanged as the first element (with the flag telling
        whether None was among them); callers decide whether they support it.
    """
    tp = strip_annotated(tp)
    origin = typing.get_origin(tp)
    if origin is Union or origin is types.UnionType:
        args = typing.get_args(tp)
        rest = tuple(a for a in args if a is not _NoneType)
        if len(rest) == len(args):
            return tp, False
        if len(rest) == 1:
            return strip_annotated(rest[0]), True
        return Union[rest], True  # noqa: UP007 - builds a union from a runtime tuple
    return tp, False


def _numpy() -> Any:
    return sys.modules.get("numpy")


def is_ndarray_type(tp: Any) -> bool:
    """True when ``tp`` describes a numpy array.

    Recognises bare ``NDArray``, ``NDArray[np.float32]``, ``NDArray[Any]``, ``np.ndarray``
    and ``np.ndarray[Any, np.dtype[...]]`` (with or without ``Annotated``), whether numpy
    defines ``NDArray`` as a generic alias or as a ``type`` alias, and user aliases of any of
    them. ``Optional``
    is *not* unwrapped here: call :func:`unwrap_optional` first.
    """
    np = _numpy()
    if np is None:
        return False
    tp = strip_annotated(tp)
    return tp is np.ndarray or typing.get_origin(tp) is np.ndarray


def ndarray_dtype(tp: Any) -> str | None:
    """Return the exact dtype name an ndarray annotation declares, e.g. ``"uint8"``.

    Args:
        tp: An ndarray annotation (see :func:`is_ndarray_type`).

    Returns:
        The numpy dtype name, or ``None`` when the annotation does not pin one (bare
        ``NDArray``, ``np.ndarray``, ``NDArray[Any]``, ``np.generic``) or ``tp`` is not an
        ndarray annotation.
    """
    np = _numpy()
    if np is None or not is_ndarray_type(tp):
        return None
    args = typing.get_args(strip_annotated(tp))
    if len(args) != 2:
        return None
    dtype_arg = args[1]
    if typing.get_origin(dtype_arg) is not np.dtype:
        return None
    (scalar,) = typing.get_args(dtype_arg) or (None,)
    if not isinstance(scalar, type) or not issubclass(scalar, np.generic):
        return None  # Any, a TypeVar, ...
    try:
        with warnings.catch_warnings():
            # numpy < 2 turns an abstract scalar type into a guessed dtype with a
            # DeprecationWarning; numpy >= 2 raises TypeError. Both mean "no exact dtype".
            warnings.simplefilter("error", DeprecationWarning)
            dtype = np.dtype(scalar)
    except (TypeError, DeprecationWarning):  # abstract scalar types: np.generic, np.floating
        return None
    if scalar is not dtype.type:  # np.dtype(np.floating) -> float64 would be a guess
        return None
    return str(dtype.name)  # numpy is imported lazily here, so mypy sees it as Any
