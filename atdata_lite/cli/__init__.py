"""The ``atdata-lite`` command line (click).

``main`` is the console script's entry point and the root click group, so tests can drive
it with ``click.testing.CliRunner().invoke(main, [...])``. Each command group lives in its
own module; importing them registers their commands on the root group. Heavy libraries
(numpy, webdataset, fsspec, SQLAlchemy) are imported inside the commands that need them.
"""

from __future__ import annotations

from . import cache, datasets, db, demo, relocate, schemas, transfer  # noqa: F401  (register the commands)
from ._app import cli

__all__ = ["main"]

#: The root command; calling it runs the command line (``atdata-lite = atdata_lite.cli:main``).
main = cli
