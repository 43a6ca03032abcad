"""What an embedding host pays: the import, and how steadily its event loop keeps ticking.

Run:  python benchmarks/embedding.py [--runs 15] [--n 10000]

* import: ``python -c "import atdata_lite"`` against ``python -c pass`` (best and median of
  ``--runs`` fresh interpreters), so the figure is what the package adds. Also opening an
  index and one lookup, for the modules that pulls in.
* heartbeat: an asyncio task ticking every 10 ms while :class:`AsyncIndex` lists ``--n``
  entries and inserts a dataset through a store; the largest gap between two ticks and
  the number of ticks are reported (a loop blocked by the call would show one gap as long
  as the call).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _interpreter(code: str, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - start)
    return times


def bench_import(runs: int) -> None:
    base = _interpreter("pass", runs)
    pkg = _interpreter("import atdata_lite", runs)
    lookup = _interpreter(
        "import atdata_lite, tempfile, os\n"
        "d = tempfile.mkdtemp()\n"
        "ix = atdata_lite.Index(os.path.join(d, 'i.db'))\n"
        "ix.list_datasets(); ix.close()",
        runs,
    )
    for label, times in (("python -c pass", base), ("import atdata_lite", pkg)):
        print(f"{label:<28} best {min(times) * 1e3:7.1f} ms  median "
              f"{statistics.median(times) * 1e3:7.1f} ms")  # fmt: skip
    added = statistics.median(pkg) - statistics.median(base)
    print(f"{'  added by the import':<28} median {added * 1e3:7.1f} ms")
    opened = statistics.median(lookup) - statistics.median(base)
    print(f"{'  import + open + list':<28} median {opened * 1e3:7.1f} ms")


async def _heartbeat(work, tick: float = 0.01) -> tuple[float, int, float]:
    beats: list[float] = []
    done = asyncio.Event()

    async def beat() -> None:
        while not done.is_set():
            beats.append(time.monotonic())
            await asyncio.sleep(tick)

    task = asyncio.create_task(beat())
    await asyncio.sleep(tick)
    start = time.monotonic()
    await work
    elapsed = time.monotonic() - start
    done.set()
    await task
    gaps = [b - a for a, b in itertools.pairwise(beats)]
    return elapsed, len(beats), max(gaps)


def bench_heartbeat(n: int) -> None:
    from atdata_lite.dataset import Dataset
    from atdata_lite.index.aio import AsyncIndex
    from atdata_lite.index.api import Index
    from atdata_lite.index.backend import DatasetRecord, ShardRecord
    from atdata_lite.samples import packable
    from atdata_lite.shards import write_samples

    @packable
    class Point:
        x: int
        y: int

    tmp = Path(tempfile.mkdtemp())
    with Index(tmp / "index.db") as ix:
        ref = ix.publish_schema(Point)
        ix.backend.insert_datasets(
            [
                DatasetRecord(f"bafy{i:08d}", f"ds-{i:05d}", ref, (ShardRecord(f"/d/{i}.tar"),))
                for i in range(n)
            ]
        )
    write_samples([Point(x=i, y=i) for i in range(50_000)], str(tmp / "src.tar"), progress=False)

    async def main() -> None:
        async with await AsyncIndex.open(tmp / "index.db", data_store=str(tmp / "store")) as ix:
            for label, work in (
                (f"list {n} entries", ix.list_datasets()),
                ("insert 50k samples", ix.insert_dataset(Dataset[Point](str(tmp / "src.tar")),
                                                         name="big", progress=False)),
            ):  # fmt: skip
                elapsed, beats, gap = await _heartbeat(work)
                print(f"{label:<28} {elapsed * 1e3:7.0f} ms, {beats} ticks of 10 ms, "
                      f"largest gap {gap * 1e3:5.1f} ms")  # fmt: skip

    asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--n", type=int, default=10_000)
    args = parser.parse_args()
    bench_import(args.runs)
    bench_heartbeat(args.n)


if __name__ == "__main__":
    main()
