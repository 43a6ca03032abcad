"""The shard cache: reading a remote dataset through it, next to local disk and plain fsspec.

Run: ``python benchmarks/cache.py [--samples N] [--shards N]``

One run, the same shards (a ~20 KB array per sample) in three places: on local disk, and
behind an HTTP server on loopback (fsspec's http filesystem). Each read is one full epoch of
``Dataset[T].ordered()`` (typed samples, arrays decoded):

* ``local``: the shards on local disk (read in place, never cached);
* ``remote, direct``: the remote shards read straight through fsspec (``cache=False``);
* ``remote, first epoch``: through an empty shard cache (download, hash, copy while reading);
* ``remote, second epoch``: through the now-filled cache (local reads of the copies).

Targets: second epoch >= 90% of local samples/s; first epoch no more than 10% slower than
direct. Loopback is far faster than a real network, so the first-epoch overhead (hashing and
writing the copy) shows here at its largest.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _remote_helpers import ShardServer

from atdata_lite.cache import ShardCache
from atdata_lite.dataset import Dataset
from atdata_lite.index.backend import ShardRecord
from atdata_lite.index.entries import LocalDatasetEntry
from atdata_lite.samples import packable
from atdata_lite.shards import write_samples


@packable
class Sample:
    idx: int
    image: NDArray[np.float32]


def _epoch(ds: Dataset) -> tuple[int, float]:
    start = time.perf_counter()
    n = sum(1 for _ in ds.ordered())
    return n, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--shards", type=int, default=20)
    args = parser.parse_args()
    per_shard = -(-args.samples // args.shards)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "remote"
        root.mkdir()
        samples = (
            Sample(idx=i, image=np.full(5000, i, dtype=np.float32)) for i in range(args.samples)
        )
        records = write_samples(samples, str(root / "s-%04d.tar"), maxcount=per_shard)
        total_mb = sum(r.size for r in records) / 1e6
        server = ShardServer(root).start()
        try:
            remote = [
                ShardRecord(f"{server.url}/{Path(r.url).name}", r.size, r.sample_count, r.sha256)
                for r in records
            ]
            ref = "atdata://local/sampleSchema/Sample@1.0.0"
            entry = LocalDatasetEntry("bench", ref, [r.url for r in remote], shards=tuple(remote))
            cache = ShardCache(Path(tmp) / "cache", max_bytes="100GiB")
            runs = [
                ("local", Dataset[Sample]([r.url for r in records])),
                ("remote, direct", Dataset[Sample](entry, cache=False)),
                ("remote, first epoch", Dataset[Sample](entry, cache=cache)),
                ("remote, second epoch", Dataset[Sample](entry, cache=cache)),
            ]
            print(f"{args.samples} samples in {len(records)} shards, {total_mb:.0f} MB")
            rates = {}
            for label, ds in runs:
                n, seconds = _epoch(ds)
                assert n == args.samples, (label, n)
                rates[label] = n / seconds
                print(f"{label:22s} {rates[label]:10.0f} samples/s  {total_mb / seconds:8.1f} MB/s")
        finally:
            server.stop()
    second = rates["remote, second epoch"] / rates["local"]
    first = rates["remote, first epoch"] / rates["remote, direct"]
    print(f"second epoch / local:  {second:.2f} (target >= 0.90)")
    print(f"first epoch / direct:  {first:.2f} (target >= 0.90, i.e. at most 10% slower)")


if __name__ == "__main__":
    main()
