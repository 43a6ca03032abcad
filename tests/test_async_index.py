"""``AsyncIndex``: the index as coroutines that never block the event loop."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from pathlib import Path

import pytest

from atdata_lite.errors import OperationCancelled
from atdata_lite.index.aio import AsyncIndex
from atdata_lite.index.api import Index
from atdata_lite.index.backend import DatasetRecord, ShardRecord
from atdata_lite.progress import ProgressEvent
from tests._index_helpers import Point

TICK = 0.01
# A call that blocked the loop would let no tick through until it returned. The timing of
# the ticks themselves (largest gap against the interval) is measured by
# benchmarks/embedding.py, not asserted here: on a loaded machine the OS alone can pause a
# thread for longer than any bound a test could keep.
MIN_TICKS = 3


def _fill(path: Path, n: int) -> str:
    with Index(path) as ix:
        ref = ix.publish_schema(Point)
        records = [
            DatasetRecord(
                cid=f"bafy{i:08d}",
                name=f"ds-{i:05d}",
                schema_ref=ref,
                shards=(ShardRecord(f"/data/ds-{i:05d}.tar"),),
                metadata=None,
            )
            for i in range(n)
        ]
        ix.backend.insert_datasets(records)
    return ref


async def _with_heartbeat(work):
    """Run ``work`` while a heartbeat task ticks: (result, seconds, ticks during it, gap)."""
    beats: list[float] = []
    done = asyncio.Event()

    async def heartbeat() -> None:
        while not done.is_set():
            beats.append(time.monotonic())
            await asyncio.sleep(TICK)

    task = asyncio.create_task(heartbeat())
    await asyncio.sleep(TICK)
    start = time.monotonic()
    try:
        result = await work
    finally:
        end = time.monotonic()
        done.set()
        await task
    gaps = [b - a for a, b in itertools.pairwise(beats)]
    during = [b for b in beats if start < b < end]
    return result, end - start, len(during), max(gaps)


def test_heartbeat_keeps_ticking_during_a_10k_listing_and_a_long_insert(tmp_path: Path) -> None:
    path = tmp_path / "index.db"
    _fill(path, 10_000)

    async def main() -> None:
        async with await AsyncIndex.open(path, data_store=str(tmp_path / "store")) as ix:

            async def listings() -> list[list[object]]:
                # several in a row: one 10k listing can take less than three ticks
                return [await ix.list_datasets() for _ in range(8)]

            lists, elapsed, beats, gap = await _with_heartbeat(listings())
            assert [len(entries) for entries in lists] == [10_000] * 8
            assert beats >= MIN_TICKS, (beats, gap, elapsed)

            samples = [Point(x=i, y=i) for i in range(30_000)]
            from atdata_lite.dataset import Dataset
            from atdata_lite.shards import write_samples

            write_samples(samples, str(tmp_path / "src" / "p-%02d.tar"), progress=False)
            ds = Dataset[Point](str(tmp_path / "src" / "p-00.tar"))
            events: list[tuple[ProgressEvent, bool]] = []

            def on_event(event: ProgressEvent) -> None:
                # Progress callbacks run on the loop's own thread.
                events.append((event, threading.current_thread() is threading.main_thread()))

            entry, elapsed, beats, gap = await _with_heartbeat(
                ix.insert_dataset(ds, name="big", maxcount=5000, progress=on_event)
            )
            assert entry.name == "big" and len(entry.data_urls) == 6
            assert beats >= MIN_TICKS, (beats, gap, elapsed)
            await asyncio.sleep(0)  # let the last handed-over events run
            assert events and events[-1][0].finished and all(on_loop for _, on_loop in events)
            assert (await ix.get_dataset("big")).cid == entry.cid

    asyncio.run(main())
    assert not [t for t in threading.enumerate() if t.name.startswith("atdata-lite-aio")]


def test_async_methods_mirror_the_index(tmp_path: Path) -> None:
    async def main() -> None:
        ix = await AsyncIndex.open(tmp_path / "index.db")
        try:
            ref = await ix.publish_schema(Point)
            assert (await ix.get_schema(ref))["name"] == "Point"
            v = await ix.data_version()
            await ix.add_shards([str(tmp_path / "x.tar")], name="x", schema_ref=ref)
            assert await ix.data_version() != v
            assert [e.name for e in await ix.list_entries()] == ["x"]
            renamed = await ix.rename_dataset("x", "y")
            assert renamed.name == "y"
            with pytest.raises(KeyError):
                await ix.get_dataset("x")
        finally:
            await ix.aclose()
        await ix.aclose()  # idempotent
        from atdata_lite.errors import IndexOpenError

        with pytest.raises(IndexOpenError):
            await ix.list_datasets()

    asyncio.run(main())


def test_cancelling_the_task_cancels_the_insert(tmp_path: Path) -> None:
    store = tmp_path / "store"

    def endless():
        i = 0
        while True:
            i += 1
            yield Point(x=i, y=i)

    class Endless:
        sample_type = Point

        def ordered(self):
            return endless()

    async def main() -> None:
        async with await AsyncIndex.open(tmp_path / "index.db", data_store=str(store)) as ix:
            task = asyncio.create_task(ix.insert_dataset(Endless(), name="never", maxcount=500))
            await asyncio.sleep(0.5)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(task, 30)
            assert await ix.list_datasets() == []

    asyncio.run(main())
    leftovers = [p for p in store.rglob("*") if p.is_file()] if store.exists() else []
    assert leftovers == []
    assert OperationCancelled  # the insert stopped through the cancellation path
