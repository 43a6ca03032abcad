"""Ctrl-C on the command line: the library's cancellation path, not a bare KeyboardInterrupt.

The first Ctrl-C sets the operation's ``cancel`` event: the operation stops at its next
check, undoes what it had half-written and raises
:class:`~atdata_lite.errors.OperationCancelled`, which the command line reports (with what
was kept) before exiting with status 130. A second Ctrl-C interrupts at once, as usual.

The handler exists only while a command runs a cancellable operation, only on the main
thread, and the previous handler is put back afterwards (the library itself never installs
one: that is the host's business, and the command line is the host here).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["cancellable"]


@contextmanager
def cancellable() -> Iterator[threading.Event]:
    """An event set by the first Ctrl-C while the block runs."""
    event = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield event
        return
    previous = signal.getsignal(signal.SIGINT)

    def on_interrupt(signum: int, frame: Any) -> None:
        if event.is_set():  # the second Ctrl-C: stop now
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        event.set()

    signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield event
    finally:
        signal.signal(signal.SIGINT, previous)
