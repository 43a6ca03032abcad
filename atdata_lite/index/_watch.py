"""``Index.watch``: call back when the catalog changes, from one polling thread per watch.

The thread polls :meth:`Index.data_version <atdata_lite.index.api.Index.data_version>`
(a cheap query) every ``interval`` seconds and calls the callback, on that thread, after
each change it sees. It is a daemon thread named ``atdata-lite-watch``; it ends when the
handle is stopped, and the index stops (and joins) every watch of its own when it closes,
so no thread outlives the index.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .._log import get_logger

__all__ = ["Watch"]

log = get_logger("atdata_lite.index")


class Watch:
    """A running watch: :meth:`stop` it, or use it as a context manager.

    Args:
        read: Returns the current data version.
        callback: Called with the new version after each change seen.
        interval: Seconds between two polls.
        on_stop: Called once when the watch stops (the index forgets it).
    """

    def __init__(
        self,
        read: Callable[[], Any],
        callback: Callable[[Any], None],
        interval: float,
        on_stop: Callable[[Watch], None] | None = None,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"watch(interval={interval!r}): the interval must be positive.")
        self.interval = interval
        self._read = read
        self._callback = callback
        self._on_stop = on_stop
        self._stopped = threading.Event()
        self._last = read()  # a change after watch() returns is seen, one before it is not
        self._thread = threading.Thread(target=self._run, name="atdata-lite-watch", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        """True until the watch is stopped and its thread has ended."""
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            try:
                version = self._read()
            except Exception as exc:  # a server away for a moment: try again next time
                if self._stopped.is_set():
                    break
                log.warning("watch: could not read the index's data version: %s", exc)
                continue
            if version == self._last or self._stopped.is_set():
                continue
            self._last = version
            try:
                self._callback(version)
            except Exception:
                log.exception("watch: the callback raised; the watch goes on")

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop polling and wait (up to ``timeout`` seconds) for the thread to end.

        Idempotent; may be called from the callback itself (it then does not wait).
        """
        first = not self._stopped.is_set()
        self._stopped.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        if first and self._on_stop is not None:
            self._on_stop(self)

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
