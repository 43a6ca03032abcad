"""Import a sample type named on the command line: ``module:Class`` or ``file.py:Class``."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from pathlib import Path
from typing import Any

import click

from ._app import CliError
from ._suggest import did_you_mean

__all__ = ["load_class"]

_FORMS = "module:Class (e.g. mypkg.types:Photo) or path/to/file.py:Class"


def _bad_spec(spec: str, why: str, param_hint: str) -> click.BadParameter:
    return click.BadParameter(f"{spec!r} {why}; expected {_FORMS}.", param_hint=param_hint)


def _import_module(module_name: str) -> Any:
    """Import ``module_name`` as ``python -c 'import module_name'`` would from here."""
    # A console script does not put the working directory on sys.path (python -m does);
    # users expect `atdata-lite schema publish mytypes:Photo` to find ./mytypes.py.
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    return importlib.import_module(module_name)


def _import_file(path: Path) -> Any:
    name = f"_atdata_lite_user_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise CliError(f"{path} cannot be imported as Python source.")
    module = importlib.util.module_from_spec(spec)
    # Registered before running it, so dataclasses and pickling can find the module.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_class(spec: str, *, param_hint: str = "SPEC") -> type:
    """Import the class named by ``spec``.

    Args:
        spec: ``module:Class`` (``mypkg.types:Photo``; the working directory is searched
            first, as ``python -m`` does) or ``path/to/file.py:Class``. ``Class`` may be
            dotted (``Outer.Inner``).
        param_hint: The parameter named in usage errors.

    Returns:
        The class.

    Raises:
        click.BadParameter: ``spec`` is malformed (exit code 2).
        CliError: The module cannot be imported, has no such class, or the
            name is not a class (exit code 1, one line).
    """
    module_part, sep, attr_path = spec.strip().rpartition(":")
    if not sep or not module_part or not attr_path:
        raise _bad_spec(spec, "names no class", param_hint)
    if not all(part.isidentifier() for part in attr_path.split(".")):
        raise _bad_spec(spec, f"has {attr_path!r} where a class name belongs", param_hint)
    is_file = module_part.endswith(".py") or os.sep in module_part or "/" in module_part
    if is_file:
        path = Path(module_part).expanduser()
        if not path.is_file():
            raise CliError(f"{path}: no such Python file. Check the path in {spec}.")
        where = str(path)
    else:
        if not all(part.isidentifier() for part in module_part.split(".")):
            raise _bad_spec(spec, f"has {module_part!r} where a module name belongs", param_hint)
        where = f"module {module_part!r}"
    try:
        module = _import_file(path) if is_file else _import_module(module_part)
    except ModuleNotFoundError as exc:
        if exc.name and module_part.startswith(exc.name):
            raise CliError(
                f"No module named {exc.name!r} (from {spec}). Run the command from the "
                "directory that holds it, install its package, or give a file: "
                f"path/to/{module_part.rsplit('.', 1)[-1]}.py:{attr_path}"
            ) from exc
        raise CliError(f"Importing {where} failed: {exc}") from exc
    except Exception as exc:  # the user's module raised while being imported
        raise CliError(f"Importing {where} failed: {type(exc).__name__}: {exc}") from exc
    obj: Any = module
    for part in attr_path.split("."):
        if not hasattr(obj, part):
            classes = [n for n, v in vars(obj).items() if inspect.isclass(v)]
            raise CliError(
                f"{where} has no {part!r}. "
                f"{did_you_mean(part, classes, f'look inside {where} for its classes')}"
            )
        obj = getattr(obj, part)
    if not inspect.isclass(obj):
        raise CliError(
            f"{attr_path} in {where} is a {type(obj).__name__}, not a class; name a "
            "@packable sample class."
        )
    return obj
