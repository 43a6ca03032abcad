"""Progress reporting for long operations: a click progress bar on stderr, only on a terminal.

Nothing is ever printed to stdout (stdout belongs to the caller, e.g. ``--json`` output),
and nothing at all is printed when stderr is not a terminal (logs, CI, pipes).
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

__all__ = ["Progress", "progress_enabled"]


def progress_enabled(progress: bool | None = None) -> bool:
    """Whether to show a bar: never when ``progress`` is False or stderr is not a terminal."""
    if progress is False:
        return False
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


class Progress:
    """A context manager counting items; draws a bar only when :func:`progress_enabled`.

    Args:
        label: Text in front of the bar.
        total: Number of items expected, if known.
        progress: ``None``/``True`` show the bar on a terminal, ``False`` never.
    """

    def __init__(self, label: str, total: int | None = None, progress: bool | None = None):
        self.label = label
        self.total = total
        self.count = 0
        self._bar: Any = None
        self._enabled = progress_enabled(progress)

    def __enter__(self) -> Progress:
        if self._enabled:
            import click

            # click needs a length or an iterable; a generator has no length hint, which
            # makes it draw a count without a percentage when the total is unknown.
            source = {"length": self.total} if self.total else {"iterable": (x for x in ())}
            self._bar = click.progressbar(
                label=self.label, file=sys.stderr, show_pos=True, **source
            )
            self._bar.__enter__()
        return self

    def update(self, n: int = 1) -> None:
        """Count ``n`` more items."""
        self.count += n
        if self._bar is not None:
            self._bar.update(n)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.__exit__(exc_type, exc, tb)
            self._bar = None
