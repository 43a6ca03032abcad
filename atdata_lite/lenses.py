"""Lenses: typed views from one sample type to another (atdata's ``Lens`` / ``@lens``).

A lens has a getter ``S -> V`` and an optional putter ``(V, S) -> S``. ``@lens`` registers
one in the process-wide :class:`LensNetwork`, which ``Dataset.as_type`` consults. Unlike
atdata, the network also offers the identity lens (``as_type(T)`` on a ``Dataset[T]``) and
composes registered lenses along the shortest path (``A -> B -> C``), and string
annotations (``from __future__ import annotations``) are resolved.
"""

from __future__ import annotations

import inspect
import typing
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeAlias, TypeVar

__all__ = ["Lens", "LensGetter", "LensNetwork", "LensPutter", "lens"]

S = TypeVar("S")
V = TypeVar("V")

# atdata spells these with PEP 695 ``type`` statements, which Python 3.11 cannot parse.
LensGetter: TypeAlias = Callable[[Any], Any]
LensPutter: TypeAlias = Callable[[Any, Any], Any]


def _resolve_types(get: Callable[..., Any]) -> tuple[Any, Any]:
    params = list(inspect.signature(get).parameters.values())
    if len(params) != 1:
        raise ValueError(
            f"Lens getter must have exactly one parameter, got {len(params)}: "
            f"{[p.name for p in params]}"
        )
    try:
        hints = typing.get_type_hints(get)
    except Exception:  # unresolvable string annotations: fall back to what is written
        hints = getattr(get, "__annotations__", {})
    return hints.get(params[0].name), hints.get("return")


class Lens(Generic[S, V]):
    """A view from a source sample type to a view type.

    Args:
        get: ``source -> view``; its one parameter's annotation is the source type and its
            return annotation the view type.
        put: ``(view, source) -> source``; defaults to returning the source unchanged.

    Raises:
        ValueError: ``get`` does not take exactly one parameter.
    """

    def __init__(
        self,
        get: Callable[[S], V],
        put: Callable[[V, S], S] | None = None,
        *,
        source_type: Any = None,
        view_type: Any = None,
    ) -> None:
        self._getter = get
        self._putter = put if put is not None else (lambda v, s: s)
        if source_type is None or view_type is None:
            src, view = _resolve_types(get)
            source_type = source_type if source_type is not None else src
            view_type = view_type if view_type is not None else view
        self.source_type = source_type
        self.view_type = view_type
        self.__name__ = getattr(get, "__name__", "lens")
        self.__doc__ = getattr(get, "__doc__", None)

    def putter(self, put: Callable[[V, S], S]) -> Callable[[V, S], S]:
        """Decorator that sets the putter."""
        self._putter = put
        return put

    def put(self, view: V, source: S) -> S:
        """Write ``view`` back into ``source``."""
        return self._putter(view, source)

    def get(self, source: S) -> V:
        """The view of ``source``."""
        return self._getter(source)

    def __call__(self, source: S) -> V:
        return self._getter(source)

    def then(self, other: Lens[V, Any]) -> Lens[S, Any]:
        """Compose: ``self`` then ``other`` (``S -> V -> W``)."""
        return _compose(self, other)

    def __or__(self, other: Lens[V, Any]) -> Lens[S, Any]:
        """``a | b``: ``a`` then ``b``, read left to right like a pipe (``S -> V -> W``).

        Raises:
            TypeError: ``other`` is not a lens, or ``a``'s view type is not ``b``'s source
                type (when both are known).
        """
        if not isinstance(other, Lens):
            return NotImplemented
        return _compose(self, other)

    def __matmul__(self, other: Lens[Any, S]) -> Lens[Any, V]:
        """``b @ a``: composition as in mathematics, ``b`` after ``a`` (``b @ a == a | b``).

        Raises:
            TypeError: As :meth:`__or__`.
        """
        if not isinstance(other, Lens):
            return NotImplemented
        return _compose(other, self)

    @classmethod
    def identity(cls, sample_type: Any = None) -> Lens[Any, Any]:
        """The lens that views a sample as itself (``get(s) is s``; ``put(v, s)`` is ``v``).

        Args:
            sample_type: The source and view type (``None``: any).
        """
        return _identity(sample_type)

    def __repr__(self) -> str:
        name = getattr(self.source_type, "__name__", self.source_type)
        view = getattr(self.view_type, "__name__", self.view_type)
        return f"Lens({name} -> {view})"


def _compose(first: Lens, second: Lens) -> Lens:
    # Only real classes are compared: an unresolved annotation (a string) proves nothing.
    known = isinstance(first.view_type, type) and isinstance(second.source_type, type)
    if known and first.view_type is not second.source_type:
        raise TypeError(
            f"Cannot compose {first!r} with {second!r}: the first lens views "
            f"{getattr(first.view_type, '__name__', first.view_type)}, the second reads "
            f"{getattr(second.source_type, '__name__', second.source_type)}."
        )

    def get(s: Any) -> Any:
        return second.get(first.get(s))

    def put(w: Any, s: Any) -> Any:
        return first.put(second.put(w, first.get(s)), s)

    return Lens(get, put, source_type=first.source_type, view_type=second.view_type)


def _identity(source_type: Any) -> Lens:
    return Lens(lambda s: s, lambda v, s: v, source_type=source_type, view_type=source_type)


class LensNetwork:
    """The process-wide registry of lenses (a singleton, as in atdata)."""

    _instance: LensNetwork | None = None

    def __new__(cls) -> LensNetwork:
        if cls._instance is None:
            inst = super().__new__(cls)
            inst._registry = {}
            cls._instance = inst
        return cls._instance

    _registry: dict[tuple[Any, Any], Lens]

    def register(self, _lens: Lens) -> None:
        """Register (or replace) the lens for its ``(source_type, view_type)`` pair."""
        self._registry[(_lens.source_type, _lens.view_type)] = _lens

    def transform(self, source: Any, view: Any) -> Lens:
        """Return a lens from ``source`` to ``view``.

        The identity lens when they are the same type; a registered lens; or the
        composition of registered lenses along the shortest path.

        Raises:
            ValueError: No lens or chain of lenses leads from ``source`` to ``view``.
        """
        if source is view:
            return _identity(source)
        direct = self._registry.get((source, view))
        if direct is not None:
            return direct
        # Breadth-first search: the shortest chain wins, ties by registration order.
        previous: dict[Any, tuple[Any, Lens]] = {}
        queue = deque([source])
        seen = {source}
        while queue:
            node = queue.popleft()
            for (src, dst), edge in list(self._registry.items()):
                if src is not node or dst in seen:
                    continue
                previous[dst] = (node, edge)
                if dst is view:
                    chain = []
                    cur = view
                    while cur is not source:
                        cur, e = previous[cur]
                        chain.append(e)
                    chain.reverse()
                    result = chain[0]
                    for e in chain[1:]:
                        result = _compose(result, e)
                    return result
                seen.add(dst)
                queue.append(dst)
        raise ValueError(f"No registered lens from source {source} to view {view}")


def lens(func: Callable[[S], V]) -> Lens[S, V]:
    """Decorator: build a :class:`Lens` from a getter and register it.

    Example:
        >>> @lens
        ... def to_gray(s: RGBSample) -> GraySample:
        ...     return GraySample(image=s.image.mean(axis=-1))
    """
    result = Lens(func)
    LensNetwork().register(result)
    return result
