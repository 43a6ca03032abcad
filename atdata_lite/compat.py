"""Run unmodified ``import atdata`` code on atdata-lite: :func:`install` the ``atdata`` aliases.

After ``atdata_lite.compat.install()``, ``import atdata``, ``from atdata.local import Index``,
``import atdata.dataset`` and every other ``atdata.X`` import whose counterpart
``atdata_lite.X`` exists resolve to atdata-lite's modules (see the mapping in the
compatibility guide). The alias modules forward every attribute to the real ones, so
``atdata.Dataset is atdata_lite.Dataset``; nothing is imported before it is used.

It only works when the real ``atdata`` is not installed: :func:`install` never shadows it
(it returns ``False`` and changes nothing). Modules atdata-lite does not offer (the ATProto
``atdata.atmosphere``, ``atdata.promote``...) raise ``ModuleNotFoundError`` as usual.

Example:
    >>> import atdata_lite.compat
    >>> atdata_lite.compat.install()
    True
    >>> import atdata
    >>> from atdata.local import Index
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from typing import Any

__all__ = ["ALIASES", "install", "installed", "uninstall"]

ROOT = "atdata"
TARGET = "atdata_lite"

#: atdata module -> atdata-lite module, where the path differs (others map name for name:
#: ``atdata.local`` -> ``atdata_lite.local``).
ALIASES: dict[str, str] = {
    "atdata.local._index": "atdata_lite.index.api",
    "atdata.local._entry": "atdata_lite.index.entries",
    "atdata.local._s3": "atdata_lite.s3",
    "atdata.local._disk": "atdata_lite.stores",
    "atdata.local._repo_legacy": "atdata_lite.repo",
    "atdata.stores._s3": "atdata_lite.s3",
    "atdata.stores._disk": "atdata_lite.stores",
    "atdata.index._index": "atdata_lite.index.api",
    "atdata.index._entry": "atdata_lite.index.entries",
}

# Paths atdata-lite has but that are not atdata's: never served under ``atdata.``.
_NOT_ATDATA = ("atdata.compat", "atdata.cli", "atdata.transfer", "atdata.testing")


def _target_of(name: str) -> str:
    if name in ALIASES:
        return ALIASES[name]
    return TARGET + name[len(ROOT) :]


class _AliasModule(types.ModuleType):
    """``atdata.X``: forwards attribute reads to ``atdata_lite.X``.

    Importing a submodule sets it as an attribute of its parent; on the alias of the
    package that would turn ``atdata.lens`` (the ``@lens`` decorator) into the module, as it
    did in atdata_lite itself, so that one assignment is refused here too.
    """

    __target__: str

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return getattr(importlib.import_module(self.__target__), name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "lens" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)

    def __dir__(self) -> list[str]:
        return sorted(set(dir(importlib.import_module(self.__target__))) | set(self.__dict__))


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = _AliasModule(spec.name)
        object.__setattr__(module, "__target__", self.target)
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        # Import the real module now, so that a failing import fails at `import atdata.X`.
        real = importlib.import_module(self.target)
        module.__doc__ = real.__doc__
        if hasattr(real, "__all__"):
            setattr(module, "__all__", list(real.__all__))  # noqa: B010 - typed ModuleType


class _AliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Any = None, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != ROOT and not fullname.startswith(ROOT + "."):
            return None
        if fullname.startswith(_NOT_ATDATA):
            return None
        real = _target_of(fullname)
        try:
            real_spec = importlib.util.find_spec(real)
        except ModuleNotFoundError:
            return None
        if real_spec is None:
            return None
        return importlib.util.spec_from_loader(
            fullname,
            _AliasLoader(real),
            is_package=real_spec.submodule_search_locations is not None,
        )


_FINDER = _AliasFinder()


def _real_atdata_available() -> bool:
    if installed():
        return False
    module = sys.modules.get(ROOT)
    if module is not None:
        return True
    return importlib.util.find_spec(ROOT) is not None


def install() -> bool:
    """Make ``import atdata`` (and ``atdata.X``) resolve to atdata-lite.

    Returns:
        ``True`` when the aliases are in place (also when they already were); ``False``
        when the real ``atdata`` is installed or imported, which is then left untouched.
    """
    if installed():
        return True
    if _real_atdata_available():
        return False
    sys.meta_path.insert(0, _FINDER)
    return True


def uninstall() -> None:
    """Remove the aliases, and the ``atdata`` modules they made, from this process."""
    if _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)
    for name in [n for n in sys.modules if n == ROOT or n.startswith(ROOT + ".")]:
        if isinstance(sys.modules[name], _AliasModule):
            del sys.modules[name]


def installed() -> bool:
    """Whether :func:`install` is in effect."""
    return _FINDER in sys.meta_path
