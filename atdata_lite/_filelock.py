"""Advisory file locks between processes, with timeouts, that a killed process never leaves held.

On POSIX the lock is ``fcntl.flock`` on a small lock file: the kernel releases it when the
holder's file descriptor closes, including when the process is killed (``SIGKILL``, OOM), so
there are no stale locks to detect: a lock file left on disk is just an empty file. Shared
locks (``shared=True``) let many holders in at once and keep exclusive ones out.

Elsewhere (Windows) the lock is a file created with ``O_EXCL`` holding the owner's PID; a
lock whose owner is no longer running, or older than ``stale_after`` seconds, is broken.
Shared locks are not supported there and always succeed.

These locks are for one machine's local disk: ``flock`` over NFS is not reliable.
"""

from __future__ import annotations

import contextlib
import os
import time
from types import EllipsisType, TracebackType

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["FileLock", "LockTimeout"]


class LockTimeout(TimeoutError):
    """The lock could not be taken within the timeout."""


class FileLock:
    """An inter-process lock on ``path`` (created if needed).

    Args:
        path: The lock file.
        shared: Take a shared (reader) lock instead of an exclusive one.
        timeout: Seconds to wait in :meth:`acquire` (``None`` waits forever, ``0`` tries once).
        stale_after: Windows only: seconds after which a lock file is considered abandoned.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        shared: bool = False,
        timeout: float | None = 60.0,
        stale_after: float = 3600.0,
    ) -> None:
        self.path = os.fspath(path)
        self.shared = shared
        self.timeout = timeout
        self.stale_after = stale_after
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self, timeout: float | EllipsisType | None = ...) -> bool:
        """Take the lock, waiting at most ``timeout`` seconds (default: the constructor's).

        Returns:
            True when taken; False when ``timeout`` ran out.
        """
        if self._fd is not None:
            return True
        limit = self.timeout if timeout is ... else timeout
        deadline = None if limit is None else time.monotonic() + limit
        delay = 0.005
        while True:
            if self._try():
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            if deadline is not None:
                delay = min(delay, max(0.0, deadline - time.monotonic()))
            time.sleep(delay)
            delay = min(max(delay, 0.005) * 2, 0.1)

    def _try(self) -> bool:
        if fcntl is not None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                return False
            self._fd = fd
            return True
        if self.shared:  # pragma: no cover - Windows
            self._fd = -1
            return True
        return self._try_exclusive_file()  # pragma: no cover - Windows

    def _try_exclusive_file(self) -> bool:  # pragma: no cover - Windows
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            if self._stale():
                with contextlib.suppress(OSError):
                    os.unlink(self.path)
            return False
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return True

    def _stale(self) -> bool:  # pragma: no cover - Windows
        try:
            with open(self.path) as f:
                pid = int(f.read() or "0")
            age = time.time() - os.stat(self.path).st_mtime
        except (OSError, ValueError):
            return False
        if age > self.stale_after:
            return True
        try:
            os.kill(pid, 0)
        except OSError:
            return True
        return False

    def release(self) -> None:
        """Release the lock (a no-op when not held)."""
        fd, self._fd = self._fd, None
        if fd is None or fd < 0:
            return
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        else:  # pragma: no cover - Windows
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(self.path)

    def __enter__(self) -> FileLock:
        if not self.acquire():
            raise LockTimeout(
                f"Timed out after {self.timeout}s waiting for the lock {self.path}; another "
                "process holds it."
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.release()
