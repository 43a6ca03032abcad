"""Optional dependencies that fail with an install hint instead of a bare ImportError."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import BackendUnavailableError

__all__ = ["optional_import"]


def optional_import(module: str, *, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` or explain which extra to install.

    Args:
        module: The module to import, e.g. ``"redis"``.
        extra: The atdata-lite extra that installs it, e.g. ``"redis"``.
        purpose: What the module is needed for, used in the message.

    Returns:
        The imported module.

    Raises:
        BackendUnavailableError: The module is not installed. The message carries the
            ``pip install 'atdata-lite[extra]'`` command.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise BackendUnavailableError(
            f"{purpose} needs the Python package {module!r}, which is not installed. "
            f"Install it with: pip install 'atdata-lite[{extra}]'"
        ) from exc
