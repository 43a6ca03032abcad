"""A loopback TCP proxy for fault tests: start it, kill it, freeze it, bring it back.

``FaultProxy(host, port)`` forwards ``127.0.0.1:<proxy.port>`` to a real server. Between the
client and the server it can:

* ``freeze()``: stop forwarding in both directions while keeping every connection open (and
  accept new connections without forwarding them) -- a server or network that went silent;
* ``thaw()``: forward again;
* ``kill()``: close the listening socket and reset every connection -- a crash or a cable
  pulled; ``start()`` afterwards listens again on the same port.

Threads and sockets only; every loop wakes up at least every 50 ms to check its flags, and
``close()`` joins every thread with a bound.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
from collections.abc import Callable

_TICK = 0.05


class FaultProxy:
    """A TCP proxy on 127.0.0.1 in front of ``(host, port)``.

    Attributes:
        port: The proxy's port (stable across ``kill()`` and ``start()``).
    """

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self.port = 0
        self._frozen = threading.Event()
        self._stop = threading.Event()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    # --- control ------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        """Listen (again, on the same port after ``kill()``) and forward."""
        self._stop.clear()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._spawn(self._accept_loop, listener)
        return self

    def freeze(self) -> None:
        """Stop forwarding; connections stay open and new ones are accepted, silently."""
        self._frozen.set()

    def thaw(self) -> None:
        """Forward again."""
        self._frozen.clear()

    def kill(self) -> None:
        """Stop listening and reset every connection, as a crashed server would."""
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            # Linger 0: close() sends a reset, not a polite end of stream.
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
        self._join()
        self._frozen.clear()

    def close(self) -> None:
        """``kill()``; for fixtures."""
        self.kill()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- forwarding ----------------------------------------------------------------------

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _join(self) -> None:
        threads, self._threads = self._threads, []
        for thread in threads:
            thread.join(timeout=5)

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([listener], [], [], _TICK)
                if not ready:
                    continue
                client, _ = listener.accept()
            except (OSError, ValueError):  # closed by kill()
                return
            try:
                server = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._stop.is_set():
                    client.close()
                    server.close()
                    return
                self._conns += [client, server]
            self._spawn(self._pump, client, server)
            self._spawn(self._pump, server, client)

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while not self._stop.is_set():
                if self._frozen.is_set():
                    self._stop.wait(_TICK)
                    continue
                ready, _, _ = select.select([src], [], [], _TICK)
                # Frozen while waiting: what arrived stays unread.
                if not ready or self._frozen.is_set():
                    continue
                data = src.recv(65536)
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                dst.sendall(data)
        except (OSError, ValueError):
            return
