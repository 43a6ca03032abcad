"""The library's loggers: all under ``atdata_lite``, which carries a ``NullHandler``.

The library logs and never configures logging; the host does. The ``NullHandler`` keeps
Python's last-resort handler from printing the library's warnings on stderr when the host
has configured nothing. It is installed here, by the modules that log, rather than by
``import atdata_lite``, which stays free of the ``logging`` import.
"""

from __future__ import annotations

import logging

__all__ = ["get_logger"]

logging.getLogger("atdata_lite").addHandler(logging.NullHandler())


def get_logger(name: str) -> logging.Logger:
    """The logger ``name`` (a module's ``__name__``, or ``"atdata_lite.<part>"``)."""
    return logging.getLogger(name)
