"""Per-type sample decoders: the common case of reading a sample, in one generated function.

Reading a plain ``@packable`` sample is a msgpack decode, a check of each field against its
annotation, and a new instance. Done with one generic loop, the per-field calls cost more
than the decode itself for small samples. :func:`make_decoder` writes, once per class, a
function that does the same checks inline (as :mod:`dataclasses` writes ``__init__``):

* fields annotated ``int``, ``float``, ``bool``, ``str`` or ``bytes`` are accepted when the
  decoded value has exactly that type (msgpack only decodes ints a field may hold);
* any other field goes through its own check (arrays, lists, optional fields);
* anything else (an unknown or missing field, an ``int`` in a ``float`` field, a value of
  the wrong type, bytes that are not msgpack) goes to the careful path, which converts
  what may be converted and words what is wrong, exactly as before.

So a generated decoder accepts, converts and refuses exactly what the careful path does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgpack

from ._checks import Check, Mismatch
from ._npy import accepting_loader
from ._types import is_ndarray_type

__all__ = ["make_decoder"]

_EXACT = ((int, "int"), (float, "float"), (bool, "bool"), (str, "str"), (bytes, "bytes"))


def _exact(annotation: Any) -> str | None:
    """The builtin a field annotated ``annotation`` must hold exactly, if it is one."""
    return next((name for tp, name in _EXACT if annotation is tp), None)


def _keyed(sample: Any, key: str | None, attr: str) -> Any:
    if key is not None:
        try:  # noqa: SIM105 - as Dataset sets keys: objects without attributes skip it
            object.__setattr__(sample, attr, key)
        except (AttributeError, TypeError):
            pass
    return sample


def make_decoder(
    cls: type,
    checks: tuple[tuple[str, Check], ...],
    hints: dict[str, Any],
    *,
    careful: Callable[[Any], Any],
    careful_bytes: Callable[[Any], Any],
    key_attr: str,
    in_place: Callable[[Any], Any] | None = None,
    in_place_min: int = 0,
    copy_arrays: bool = True,
) -> Callable[..., Any]:
    """Write the decoder of ``cls``: ``decode(payload, key=None)`` -> a sample.

    Args:
        cls: A dataclass whose instances keep their fields in a plain ``__dict__`` and
            whose ``__init__`` does nothing more than store them.
        checks: ``(field name, check)`` for every field, in order.
        hints: The resolved annotation of each field.
        careful: Builds a sample from a decoded value the slow way (``cls._build``),
            raising the worded error when it does not fit.
        careful_bytes: Builds a sample from a payload the slow way (msgpack maps with any
            keys, then ``careful``), for a payload the plain decode refused; raises the
            worded error when it is not msgpack or does not fit.
        key_attr: The attribute a sample's key is stored in (when ``key`` is given).
        in_place: Decodes payloads of at least ``in_place_min`` bytes another way (array
            fields as views of large payloads), or None.
        copy_arrays: Whether the array checks give copies (else views of the payload).
    """
    names = [name for name, _ in checks]
    env: dict[str, Any] = {
        "unpackb": msgpack.unpackb,
        "Mismatch": Mismatch,
        "new": cls.__new__,
        "cls": cls,
        "set_attr": object.__setattr__,
        "careful": careful,
        "careful_bytes": careful_bytes,
        "in_place": in_place,
        "keyed": _keyed,
        "KEY": key_attr,
    }
    lines = ["def decode(payload, key=None):"]
    if in_place is not None:
        lines += [
            f"    if len(payload) >= {int(in_place_min)}:",
            "        return keyed(in_place(payload), key, KEY)",
        ]
    lines += [
        "    try:",
        # msgpack's defaults (no keyword to parse): str or bytes map keys only, which
        # every sample has; anything else goes the careful way
        "        data = unpackb(payload)",
        "    except Exception:",
        "        return keyed(careful_bytes(payload), key, KEY)",
        f"    if type(data) is not dict or len(data) != {len(names)}:",
        "        return keyed(careful(data), key, KEY)",
        "    try:",
    ]
    lines += [f"        v{i} = data[{name!r}]" for i, name in enumerate(names)]
    lines += ["    except KeyError:", "        return keyed(careful(data), key, KEY)"]
    exact = [
        f"type(v{i}) is {_exact(hints[name])}"
        for i, name in enumerate(names)
        if _exact(hints[name]) is not None
    ]
    if exact:
        lines += [
            f"    if not ({' and '.join(exact)}):",
            "        return keyed(careful(data), key, KEY)",
        ]
    checked = [i for i, name in enumerate(names) if _exact(hints[name]) is None]
    if checked:
        lines.append("    try:")
        for i in checked:
            check = checks[i][1]
            if is_ndarray_type(hints[names[i]]):  # not Optional: a None goes the careful way
                check = accepting_loader(check, copy=copy_arrays)
            env[f"check{i}"] = check
            lines.append(f"        c{i} = check{i}(v{i})")
        lines += ["    except Mismatch:", "        return keyed(careful(data), key, KEY)"]
        lines += [f"    data[{names[i]!r}] = c{i}" for i in checked]
    lines += [
        "    if key is not None:",
        "        data[KEY] = key",
        "    sample = new(cls)",
        # a plain assignment when the class keeps object's __setattr__ (a frozen
        # dataclass refuses it: the explicit call then)
        "    sample.__dict__ = data"
        if getattr(cls, "__setattr__", None) is object.__setattr__
        else "    set_attr(sample, '__dict__', data)",
        "    return sample",
    ]
    source = "\n".join(lines) + "\n"
    code = compile(source, f"<atdata_lite decoder of {cls.__qualname__}>", "exec")
    exec(code, env)  # the source: fixed text and the field names (identifiers)
    decode: Callable[..., Any] = env["decode"]
    decode.__qualname__ = f"{cls.__qualname__}.<decoder>"
    return decode
