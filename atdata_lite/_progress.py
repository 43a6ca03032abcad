"""Progress reporting for long operations: a tqdm bar on stderr, only on a terminal.

The library (``write_samples(..., progress=None)``, ``import_catalog``) and the command line
draw their bars through :class:`Progress`, so both look and behave the same:

* the bar shows the count, the rate and the time left, and is redrawn a few times a second
  (tqdm's ``mininterval``), never once per item;
* nothing is ever printed to stdout (stdout belongs to the caller, e.g. ``--json`` output);
* nothing at all is printed when stderr is not a terminal (logs, CI, pipes), or when the
  caller passes ``progress=False``.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

__all__ = ["REDRAW_INTERVAL", "Progress", "progress_enabled"]

#: Seconds between two redraws of a bar (at most; tqdm may wait longer on a fast loop).
REDRAW_INTERVAL = 0.25


def progress_enabled(progress: bool | None = None) -> bool:
    """Whether to show a bar: never when ``progress`` is False or stderr is not a terminal.

    ``True`` asks for a bar but still draws none off a terminal: a bar written into a log
    file or a pipe is noise, not progress.
    """
    if progress is False:
        return False
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def _terminal_columns() -> int | None:
    """The width of the terminal behind stderr, or ``None`` when it reports none."""
    import os

    try:
        columns = os.get_terminal_size(sys.stderr.fileno()).columns
    except (AttributeError, OSError, ValueError):  # not a real file descriptor
        return None
    return columns or None


class Progress:
    """A context manager counting items; draws a tqdm bar only when :func:`progress_enabled`.

    Args:
        label: Text in front of the bar (``"writing samples"``).
        total: Number of items expected, if known (the bar then shows a percentage and
            the time left).
        progress: ``None``/``True`` show the bar on a terminal, ``False`` never.
        unit: What is counted, for the rate (``"sample"`` -> ``1.2k sample/s``).

    Example:
        >>> with Progress("copying", total=3, progress=False) as bar:
        ...     for _ in range(3):
        ...         bar.update()
        >>> bar.count
        3
    """

    def __init__(
        self,
        label: str,
        total: int | None = None,
        progress: bool | None = None,
        *,
        unit: str = "it",
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.count = 0
        self._bar: Any = None
        self._enabled = progress_enabled(progress)

    def __enter__(self) -> Progress:
        if self._enabled:
            from tqdm import tqdm

            width = _terminal_columns()
            self._bar = tqdm(
                desc=self.label,
                total=self.total or None,
                unit=self.unit,
                unit_scale=True,
                file=sys.stderr,
                mininterval=REDRAW_INTERVAL,
                # Follow the terminal's width; a terminal that reports none (0 columns, as
                # a bare pseudo-terminal does) gets 80, else tqdm would draw nothing at all.
                dynamic_ncols=width is not None,
                ncols=None if width is not None else 80,
                leave=True,
            )
        return self

    def update(self, n: int = 1) -> None:
        """Count ``n`` more items (cheap: the bar itself is redrawn a few times a second)."""
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
            bar, self._bar = self._bar, None
            bar.close()
