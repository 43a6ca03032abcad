"""Progress as data, and cancellation, for hosts that embed atdata-lite.

Every long operation (:func:`~atdata_lite.shards.write_samples`,
:meth:`Index.insert_dataset <atdata_lite.index.api.Index.insert_dataset>` through a store,
:func:`~atdata_lite.verify.verify_datasets`, :func:`~atdata_lite.transfer.import_catalog`,
:func:`~atdata_lite.transfer.export_catalog`, :func:`atdata_lite.pull`) takes the same
two keywords:

* ``progress=``: ``None`` (the default) or ``True`` draw a bar on stderr when stderr is a
  terminal; ``False`` reports nothing; a callable receives :class:`ProgressEvent` objects.
  The command line's bars are one such callable (:class:`TerminalBar`).
* ``cancel=``: anything with an ``is_set()`` method (a :class:`threading.Event`). Once it is
  set, the operation stops at its next check, undoes what it had half-written, and raises
  :class:`~atdata_lite.errors.OperationCancelled`, whose ``kept`` says what stays.

Events are delivered on the thread that runs the operation: a GUI host hands them over to
its own loop (``call_soon_threadsafe``, ``post_message``...). An operation emits one event
when it starts (``done=0``), then at most one every :data:`EVENT_INTERVAL` seconds or when
the item it works on changes, and always one last event with ``finished=True`` (also when
it fails or is cancelled). ``done`` never decreases.

Example:
    >>> events = []
    >>> with Progress("counting", total=3, progress=events.append, unit="item") as p:
    ...     for name in "abc":
    ...         p.update(item=name)
    >>> [(e.done, e.finished) for e in events][-1]
    (3, True)
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "EVENT_INTERVAL",
    "REDRAW_INTERVAL",
    "CancelToken",
    "Progress",
    "ProgressArg",
    "ProgressCallback",
    "ProgressEvent",
    "TerminalBar",
    "check_cancel",
    "progress_enabled",
]

#: Seconds between two events of one operation (at most; an event is also sent whenever
#: the item being worked on changes, and the last one is always sent).
EVENT_INTERVAL = 0.1

#: Seconds between two redraws of a terminal bar (at most; tqdm may wait longer).
REDRAW_INTERVAL = 0.25


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """One report from a long operation.

    Attributes:
        operation: What the operation is (``"writing samples"``, ``"verifying shards"``).
        done: How many units are done so far; never decreases within one operation.
        total: How many units there are, or ``None`` when it is not known in advance.
        unit: What is counted: ``"sample"``, ``"shard"``, ``"byte"``, ``"row"``.
        item: What is being worked on (a shard URL, a dataset name), or ``None``.
        finished: True on the operation's last event (success, failure or cancellation).
    """

    operation: str
    done: int
    total: int | None
    unit: str
    item: str | None = None
    finished: bool = False

    @property
    def fraction(self) -> float | None:
        """``done / total`` between 0 and 1, or ``None`` when the total is unknown."""
        if not self.total:
            return None
        return min(1.0, self.done / self.total)


ProgressCallback = Callable[[ProgressEvent], None]
"""A function receiving each :class:`ProgressEvent`."""

ProgressArg = bool | Callable[[ProgressEvent], None] | None
"""What ``progress=`` accepts: ``None``/``True`` (a bar on a terminal), ``False``, a callback."""


@runtime_checkable
class CancelToken(Protocol):
    """What ``cancel=`` accepts: a :class:`threading.Event`, or anything with ``is_set()``."""

    def is_set(self) -> bool:
        """True once the operation should stop."""
        ...


def check_cancel(cancel: CancelToken | None, operation: str, *, kept: tuple[str, ...] = ()) -> None:
    """Raise :class:`~atdata_lite.errors.OperationCancelled` if ``cancel`` is set.

    Args:
        cancel: The caller's token, or ``None`` (never cancelled).
        operation: What stops, for the message (``"writing samples"``).
        kept: What stays after the stop (empty: nothing was kept).
    """
    if cancel is not None and cancel.is_set():
        from .errors import OperationCancelled

        raise OperationCancelled(operation, kept=kept)


def progress_enabled(progress: ProgressArg = None) -> bool:
    """Whether to draw a terminal bar: never for ``False`` or a callback, or off a terminal.

    ``True`` asks for a bar but still draws none off a terminal: a bar written into a log
    file or a pipe is noise, not progress.
    """
    if progress is False or callable(progress):
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


class TerminalBar:
    """A progress callback drawing a tqdm bar on stderr: count, rate and time left.

    The command line's bars are this callback; a script may pass ``progress=TerminalBar()``
    to get one even where the default would draw none. One instance draws one operation's
    bar at a time (a new operation after a finished one starts a new bar).
    """

    def __init__(self) -> None:
        self._bar: Any = None
        self._done = 0

    def __call__(self, event: ProgressEvent) -> None:
        if self._bar is None:
            if event.finished and event.done == 0 and event.total is None:
                return
            from tqdm import tqdm

            width = _terminal_columns()
            self._done = 0
            self._bar = tqdm(
                desc=event.operation,
                total=event.total or None,
                unit=event.unit,
                unit_scale=True,
                file=sys.stderr,
                mininterval=REDRAW_INTERVAL,
                # Follow the terminal's width; a terminal that reports none (0 columns, as
                # a bare pseudo-terminal does) gets 80, else tqdm would draw nothing at all.
                dynamic_ncols=width is not None,
                ncols=None if width is not None else 80,
                leave=True,
            )
        if event.total and self._bar.total != event.total:
            self._bar.total = event.total
        if event.done > self._done:
            self._bar.update(event.done - self._done)
            self._done = event.done
        if event.finished:
            bar, self._bar = self._bar, None
            bar.close()


class Progress:
    """Counts the units of one operation, reports them, and checks for cancellation.

    The one path every long operation reports through: events go to the caller's callback,
    or to a :class:`TerminalBar` when ``progress`` is ``None``/``True`` and stderr is a
    terminal, or nowhere.

    Args:
        label: The operation (``"writing samples"``); the events' ``operation``.
        total: Number of units expected, if known.
        progress: ``None``/``True`` a bar on a terminal, ``False`` nothing, or a callable
            receiving :class:`ProgressEvent` objects.
        unit: What is counted (``"sample"`` -> ``1.2k sample/s`` on a bar).
        cancel: Checked at every :meth:`update` (and :meth:`check`); once set, they raise
            :class:`~atdata_lite.errors.OperationCancelled`.

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
        progress: ProgressArg = None,
        *,
        unit: str = "it",
        cancel: CancelToken | None = None,
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.count = 0
        self.item: str | None = None
        self.cancel = cancel
        self._last = 0.0
        self._sent = -1
        self._callback: Callable[[ProgressEvent], None] | None
        if callable(progress):
            self._callback = progress
        elif progress_enabled(progress):
            self._callback = TerminalBar()
        else:
            self._callback = None

    def _emit(self, finished: bool = False) -> None:
        if self._callback is None:
            return
        self._last = time.monotonic()
        self._sent = self.count
        self._callback(
            ProgressEvent(self.label, self.count, self.total, self.unit, self.item, finished)
        )

    def __enter__(self) -> Progress:
        self._emit()
        try:
            self.check()
        except BaseException:
            self._emit(finished=True)  # every operation that started ends with one
            raise
        return self

    def check(self, kept: tuple[str, ...] = ()) -> None:
        """Raise :class:`~atdata_lite.errors.OperationCancelled` if cancellation was asked."""
        check_cancel(self.cancel, self.label, kept=kept)

    def set_total(self, total: int | None) -> None:
        """Set the total once it is known (reported with the next event)."""
        self.total = total

    def update(self, n: int = 1, *, item: str | None = None) -> None:
        """Count ``n`` more units (cheap: events are sent a few times a second at most).

        Args:
            n: Units just completed.
            item: What is being worked on now; a change sends an event at once.

        Raises:
            OperationCancelled: The cancel token is set.
        """
        self.count += n
        changed = item is not None and item != self.item
        if item is not None:
            self.item = item
        if self.cancel is not None and self.cancel.is_set():
            self.check()
        if self._callback is not None and (
            changed
            or self.count == self.total  # reaching the total is always reported
            or time.monotonic() - self._last >= EVENT_INTERVAL
        ):
            self._emit()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._callback is None:
            return
        if exc_type is None:
            self._emit(finished=True)
            return
        with contextlib.suppress(Exception):  # the operation's own error matters more
            self._emit(finished=True)
