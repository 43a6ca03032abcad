"""Write and read throughput of atdata-lite shards on local disk, next to plain webdataset.

Run: ``python benchmarks/read_write.py [--small N] [--large N] [--dir PATH]``

Two workloads: 100k small samples (~50 B payload) and 2k large ones (a ~600 KB array).
For each, in the same run:

* write: ``atdata_lite.write_samples`` (atomic rename, sha256 while writing) vs a plain
  ``webdataset.TarWriter`` loop writing ``{"__key__", "msgpack": sample.packed}``;
* read: ``Dataset[T].ordered()`` (typed samples, arrays decoded) vs a plain
  ``webdataset.WebDataset(...)`` loop decoding the msgpack (and the array with ``np.load``).

Prints samples/s and MB/s (MB = 10**6 bytes of shard file).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import tempfile
import time
import uuid

import msgpack
import numpy as np
import webdataset as wds
from numpy.typing import NDArray

from atdata_lite.dataset import Dataset
from atdata_lite.samples import packable
from atdata_lite.shards import write_samples


@packable
class SmallSample:
    idx: int
    label: str
    score: float


@packable
class LargeSample:
    idx: int
    image: NDArray[np.uint8]


def small_samples(n: int) -> list[SmallSample]:
    return [
        SmallSample(idx=i, label=f"small-sample-label-{i % 1000:04d}", score=i * 0.5)
        for i in range(n)
    ]


def large_samples(n: int) -> list[LargeSample]:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, size=(400, 500, 3), dtype=np.uint8)  # 600 KB
    return [LargeSample(idx=i, image=base) for i in range(n)]


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def baseline_write(samples, path: str) -> None:
    with wds.TarWriter(path) as sink:
        for s in samples:
            sink.write({"__key__": str(uuid.uuid1(0, 0)), "msgpack": s.packed})


def baseline_read(path: str, has_array: bool) -> int:
    n = 0
    for s in wds.WebDataset(path, shardshuffle=False):
        d = msgpack.unpackb(s["msgpack"], raw=False)
        if has_array:
            d["image"] = np.load(io.BytesIO(d["image"]))
        n += 1
    return n


def ours_read(path: str, cls) -> int:
    n = 0
    for _ in Dataset[cls](path).ordered():
        n += 1
    return n


def line(what: str, n: int, seconds: float, nbytes: int) -> str:
    return f"  {what:<38} {n / seconds:>12,.0f} samples/s {nbytes / seconds / 1e6:>9,.1f} MB/s"


def run(name: str, samples, cls, has_array: bool, root: str) -> None:
    n = len(samples)
    ours_path = os.path.join(root, f"{name}-ours.tar")
    base_path = os.path.join(root, f"{name}-wds.tar")
    t_ours_w, records = timed(lambda: write_samples(samples, ours_path, progress=False))
    t_base_w, _ = timed(lambda: baseline_write(samples, base_path))
    size_ours = records[0].size
    size_base = os.path.getsize(base_path)
    t_ours_r, n1 = timed(lambda: ours_read(ours_path, cls))
    t_base_r, n2 = timed(lambda: baseline_read(base_path, has_array))
    assert n1 == n2 == n
    print(f"{name}: {n:,} samples, shard {size_ours / 1e6:,.1f} MB")
    print(line("write  atdata-lite write_samples", n, t_ours_w, size_ours))
    print(line("write  baseline wds.TarWriter", n, t_base_w, size_base))
    print(line("read   atdata-lite Dataset.ordered", n, t_ours_r, size_ours))
    print(line("read   baseline wds.WebDataset+msgpack", n, t_base_r, size_base))
    os.remove(ours_path)
    os.remove(base_path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--large", type=int, default=2_000)
    parser.add_argument("--dir", default=None, help="local directory for the shards")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="atl-bench-", dir=args.dir)
    try:
        small = small_samples(args.small)
        print(f"small payload: {len(small[0].packed)} bytes/sample")
        run("small", small, SmallSample, False, root)
        del small
        large = large_samples(args.large)
        print(f"large payload: {len(large[0].packed):,} bytes/sample")
        run("large", large, LargeSample, True, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
