"""``AsyncIndex``: the :class:`~atdata_lite.index.api.Index` methods as coroutines.

For hosts built on asyncio (a local web app, a Textual terminal UI). Each ``AsyncIndex``
runs its index's calls one at a time on a worker thread of its own (a single-thread
executor), so the event loop never waits on SQLite, a server or a disk: it stays free to
draw, answer and tick while a listing or an insert runs. :meth:`AsyncIndex.aclose` closes
the index and shuts the worker thread down; nothing outlives it.

Two conveniences for asyncio hosts:

* a ``progress=`` callback given to a method is called on the event loop's thread (the
  events are handed over with ``call_soon_threadsafe``), so it may touch the UI directly;
* cancelling the awaiting task cancels the operation: a long method (``insert_dataset``)
  gets a ``cancel`` event that is set when its task is cancelled, and the task ends once
  the operation has stopped and cleaned up.

Example:
    >>> async def main():  # doctest: +SKIP
    ...     async with await AsyncIndex.open("index.db") as index:
    ...         for entry in await index.list_datasets():
    ...             print(entry.name)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from .api import Index
from .entries import LocalDatasetEntry, LocalSchemaRecord

__all__ = ["AsyncIndex"]

T = TypeVar("T")


class AsyncIndex:
    """An :class:`~atdata_lite.index.api.Index` whose methods are coroutines.

    Args:
        index: The index to drive; the ``AsyncIndex`` owns it and closes it in
            :meth:`aclose`. Use :meth:`open` to open one without blocking the loop.

    Calls are run one at a time, in the order they were awaited, on one worker thread.
    """

    def __init__(self, index: Index) -> None:
        self._index = index
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="atdata-lite-aio")
        self._closed = False

    @classmethod
    async def open(cls, *args: Any, **kwargs: Any) -> AsyncIndex:
        """Open an index (``Index(*args, **kwargs)``) off the event loop.

        The arguments are :class:`~atdata_lite.index.api.Index`'s.
        """
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="atdata-lite-aio")
        loop = asyncio.get_running_loop()
        try:
            index = await loop.run_in_executor(executor, functools.partial(Index, *args, **kwargs))
        except BaseException:
            executor.shutdown(wait=False)
            raise
        self = cls.__new__(cls)
        self._index, self._executor, self._closed = index, executor, False
        return self

    @property
    def index(self) -> Index:
        """The synchronous index behind (call it from the worker thread only, or not at all)."""
        return self._index

    @property
    def location(self) -> str:
        """Where the index lives."""
        return self._index.location

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._closed:
            from ..errors import IndexOpenError

            raise IndexOpenError(f"The index {self.location} was closed; open it again.")
        loop = asyncio.get_running_loop()
        progress = kwargs.get("progress")
        if callable(progress):
            kwargs["progress"] = _on_loop(loop, progress)
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    async def _call_cancellable(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        # Cancelling the task sets the operation's cancel event; the task then waits (the
        # operation stops within a sample or a chunk) so that its cleanup is done when the
        # CancelledError arrives.
        event = kwargs.get("cancel")
        if event is None:
            event = kwargs["cancel"] = threading.Event()
        future = asyncio.ensure_future(self._call(fn, *args, **kwargs))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            event.set()
            with contextlib.suppress(BaseException):
                await future
            raise

    # --- lifecycle ------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the index (and its watches) and shut the worker thread down. Idempotent."""
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._index.close)
        finally:
            self._closed = True
            self._executor.shutdown(wait=True)  # idle by now: returns at once

    async def __aenter__(self) -> AsyncIndex:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncIndex({self._index!r})"

    # --- change notification --------------------------------------------------------------

    async def data_version(self) -> int:
        """See :meth:`Index.data_version <atdata_lite.index.api.Index.data_version>`."""
        return await self._call(self._index.data_version)

    async def changes(self, *, interval: float = 1.0) -> AsyncIterator[int]:
        """Yield the new data version after each change of the catalog (polls, no thread).

        Example:
            >>> async for _ in index.changes(interval=0.5):  # doctest: +SKIP
            ...     await refresh()
        """
        if not interval > 0:
            raise ValueError(f"changes(interval={interval!r}): the interval must be positive.")
        last = await self.data_version()
        while True:
            await asyncio.sleep(interval)
            version = await self.data_version()
            if version != last:
                last = version
                yield version

    # --- datasets -------------------------------------------------------------------------

    async def get_dataset(self, ref: str) -> LocalDatasetEntry:
        """See :meth:`Index.get_dataset <atdata_lite.index.api.Index.get_dataset>`."""
        return await self._call(self._index.get_dataset, ref)

    async def get_entry_by_name(self, name: str) -> LocalDatasetEntry:
        """See :meth:`Index.get_entry_by_name <atdata_lite.index.api.Index.get_entry_by_name>`."""
        return await self._call(self._index.get_entry_by_name, name)

    async def get_entry(self, cid: str) -> LocalDatasetEntry:
        """See :meth:`Index.get_entry <atdata_lite.index.api.Index.get_entry>`."""
        return await self._call(self._index.get_entry, cid)

    async def list_entries(self) -> list[LocalDatasetEntry]:
        """See :meth:`Index.list_entries <atdata_lite.index.api.Index.list_entries>`."""
        return await self._call(self._index.list_entries)

    async def list_datasets(self) -> list[LocalDatasetEntry]:
        """See :meth:`Index.list_datasets <atdata_lite.index.api.Index.list_datasets>`."""
        return await self._call(self._index.list_datasets)

    async def add_entry(self, ds: Any, **kwargs: Any) -> LocalDatasetEntry:
        """See :meth:`Index.add_entry <atdata_lite.index.api.Index.add_entry>`."""
        return await self._call(self._index.add_entry, ds, **kwargs)

    async def add_shards(self, shards: Any, **kwargs: Any) -> LocalDatasetEntry:
        """See :meth:`Index.add_shards <atdata_lite.index.api.Index.add_shards>`."""
        return await self._call(self._index.add_shards, shards, **kwargs)

    async def add_splits(self, splits: Any, **kwargs: Any) -> LocalDatasetEntry:
        """See :meth:`Index.add_splits <atdata_lite.index.api.Index.add_splits>`."""
        return await self._call(self._index.add_splits, splits, **kwargs)

    async def insert_dataset(self, ds: Any, **kwargs: Any) -> LocalDatasetEntry:
        """See :meth:`Index.insert_dataset <atdata_lite.index.api.Index.insert_dataset>`.

        Cancelling the awaiting task cancels the write (when the index has a data store):
        the shards written so far are removed and no entry is stored.
        """
        if self._index.data_store is None:
            return await self._call(self._index.insert_dataset, ds, **kwargs)
        return await self._call_cancellable(self._index.insert_dataset, ds, **kwargs)

    async def write_samples(self, samples: Any, **kwargs: Any) -> LocalDatasetEntry:
        """See :meth:`Index.write_samples <atdata_lite.index.api.Index.write_samples>`.

        Cancelling the awaiting task cancels the write: the shards written so far are
        removed and no entry is stored.
        """
        return await self._call_cancellable(self._index.write_samples, samples, **kwargs)

    async def relocate(self, old_prefix: str, new_prefix: str, **kwargs: Any) -> Any:
        """See :meth:`Index.relocate <atdata_lite.index.api.Index.relocate>`."""
        return await self._call(self._index.relocate, old_prefix, new_prefix, **kwargs)

    async def delete_dataset(self, name: str) -> LocalDatasetEntry:
        """See :meth:`Index.delete_dataset <atdata_lite.index.api.Index.delete_dataset>`."""
        return await self._call(self._index.delete_dataset, name)

    async def rename_dataset(self, old: str, new: str) -> LocalDatasetEntry:
        """See :meth:`Index.rename_dataset <atdata_lite.index.api.Index.rename_dataset>`."""
        return await self._call(self._index.rename_dataset, old, new)

    # --- schemas --------------------------------------------------------------------------

    async def publish_schema(self, sample_type: type, **kwargs: Any) -> str:
        """See :meth:`Index.publish_schema <atdata_lite.index.api.Index.publish_schema>`."""
        return await self._call(self._index.publish_schema, sample_type, **kwargs)

    async def schema_ref_for_type(self, sample_type: type) -> str:
        """See :meth:`Index.schema_ref_for_type
        <atdata_lite.index.api.Index.schema_ref_for_type>`."""
        return await self._call(self._index.schema_ref_for_type, sample_type)

    async def get_schema(self, ref: str) -> dict[str, Any]:
        """See :meth:`Index.get_schema <atdata_lite.index.api.Index.get_schema>`."""
        return await self._call(self._index.get_schema, ref)

    async def get_schema_record(self, ref: str) -> LocalSchemaRecord:
        """See :meth:`Index.get_schema_record <atdata_lite.index.api.Index.get_schema_record>`."""
        return await self._call(self._index.get_schema_record, ref)

    async def list_schemas(self) -> list[dict[str, Any]]:
        """See :meth:`Index.list_schemas <atdata_lite.index.api.Index.list_schemas>`."""
        return await self._call(self._index.list_schemas)

    async def decode_schema(self, ref: str) -> type:
        """See :meth:`Index.decode_schema <atdata_lite.index.api.Index.decode_schema>`."""
        return await self._call(self._index.decode_schema, ref)

    async def load_schema(self, ref: str) -> type:
        """See :meth:`Index.load_schema <atdata_lite.index.api.Index.load_schema>`."""
        return await self._call(self._index.load_schema, ref)

    async def get_import_path(self, ref: str) -> str | None:
        """See :meth:`Index.get_import_path <atdata_lite.index.api.Index.get_import_path>`."""
        return await self._call(self._index.get_import_path, ref)

    async def clear_stubs(self) -> int:
        """See :meth:`Index.clear_stubs <atdata_lite.index.api.Index.clear_stubs>`."""
        return await self._call(self._index.clear_stubs)

    # --- long operations on the index's data ------------------------------------------------

    async def verify(self, names: list[str] | None = None, **kwargs: Any) -> Any:
        """:func:`atdata_lite.verify.verify_datasets` on this index (cancellable by the task)."""
        from ..verify import verify_datasets

        return await self._call_cancellable(verify_datasets, self._index, names, **kwargs)


def _on_loop(
    loop: asyncio.AbstractEventLoop, callback: Callable[[Any], Any]
) -> Callable[..., None]:
    """``callback`` called on ``loop``'s thread, whichever thread reports."""

    def report(event: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(callback, event)

    return report
