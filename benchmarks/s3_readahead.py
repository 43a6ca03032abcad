"""Reading S3 shards with and without read-ahead: one epoch each, samples decoded.

Run: ``python benchmarks/s3_readahead.py [--shape images|tokens] [--shards N] [--rounds N]``

A moto S3 server runs in its own process on loopback (as a real object store is another
machine, it does not share this process's interpreter lock); the dataset is written into it
with ``write_samples``. One epoch reads every shard in order through s3fs with its cache
disabled (``default_cache_type="none"``: each read is one ranged GET) and decodes every
sample (``iter_shard`` + ``from_bytes``), so the consumer does real per-sample work:

* ``direct``: each shard opened and read in turn; its download waits for the decoding of
  the previous one, and decoding waits for each read;
* ``direct, chunked``: as ``direct``, each shard read through an ``io.BufferedReader`` of
  ``--chunk-mb``, so its GETs are as large as read-ahead's: the ratio to this one is what
  the overlap alone gains (s3fs without a cache issues one GET per read, 1 MB for
  ``iter_shard``'s reads, and fewer, larger GETs are cheaper on any object store);
* ``read-ahead``: as ``direct``, through ``prefetch``: a background thread downloads the next
  shards (``--max-mb`` held ahead, ``--chunk-mb`` per GET) while this one is decoded.

Shapes (per-sample sizes of common training sets; shards of 10-40 MB, webdataset's usual
range being 10 MB-1 GB, kept small so one run takes well under a minute on a laptop):

* ``images``: a 224x224x3 uint8 image and a label (150 KB/sample, ImageNet-sized, decoded
  arrays), 128 samples per shard (19 MB);
* ``tokens``: 2,048 int32 token ids and a length (8 KB/sample, a language-model sequence),
  2,000 samples per shard (18 MB).

``--step-ms`` adds a simulated training step per sample (a sleep: a GPU step releases the
interpreter lock while the host waits for it), e.g. 1-2 ms/sample for an image model.

Sides alternate, ``--rounds`` times each, and each side keeps its best epoch. Target:
read-ahead >= 1.5x direct. Loopback is not a network: a download here costs the server's
and s3fs's CPU time, not latency, and on a small machine the background thread competes
with the decoder for the same cores, so this is the least favourable setting for
read-ahead; across a real network, where a download mostly waits, the overlap is larger.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from atdata_lite._readahead import prefetch
from atdata_lite.samples import packable
from atdata_lite.shards import iter_shard, write_samples
from atdata_lite.sources import open_url


@packable
class Image:
    image: NDArray[np.uint8]
    label: int


@packable
class Tokens:
    ids: NDArray[np.int32]
    length: int


def _images(n: int) -> Iterator[Image]:
    rng = np.random.default_rng(0)
    for i in range(n):
        yield Image(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8), i % 1000)


def _tokens(n: int) -> Iterator[Tokens]:
    rng = np.random.default_rng(0)
    for _ in range(n):
        yield Tokens(rng.integers(0, 50_000, 2048, dtype=np.int32), 2048)


SHAPES: dict[str, tuple[type[Any], Callable[[int], Iterator[Any]], int]] = {
    "images": (Image, _images, 128),
    "tokens": (Tokens, _tokens, 2000),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(endpoint, timeout=2).close()
            return server, endpoint
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise SystemExit("the moto server did not start within 60 s") from None
            time.sleep(0.2)


# Seconds of simulated training step per sample (--step-ms), slept: a GPU step releases the
# interpreter lock while the host waits for it, as sleeping does.
STEP = 0.0


def _decode_shard(stream: IO[bytes], url: str, sample_type: type[Any]) -> int:
    n = 0
    for raw in iter_shard(stream, url):
        sample_type.from_bytes(raw["msgpack"])
        if STEP:
            time.sleep(STEP)
        n += 1
    return n


def epoch_direct(urls: list[str], so: dict[str, Any], sample_type: type[Any]) -> int:
    n = 0
    for url in urls:
        with open_url(url, storage_options=so) as stream:
            n += _decode_shard(stream, url, sample_type)
    return n


def epoch_direct_chunked(
    urls: list[str], so: dict[str, Any], sample_type: type[Any], chunk: int
) -> int:
    n = 0
    for url in urls:
        with open_url(url, storage_options=so) as raw, io.BufferedReader(raw, chunk) as stream:
            n += _decode_shard(stream, url, sample_type)
    return n


def epoch_readahead(
    urls: list[str], so: dict[str, Any], sample_type: type[Any], max_bytes: int, chunk: int
) -> int:
    n = 0
    shards = prefetch(
        urls, lambda url: open_url(url, storage_options=so), max_bytes=max_bytes, chunk_bytes=chunk
    )
    for url, get_stream in shards:
        with get_stream() as stream:
            n += _decode_shard(stream, url, sample_type)
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="images")
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--per-shard", type=int, help="samples per shard (default: the shape's)")
    parser.add_argument("--max-mb", type=float, default=64.0, help="read-ahead bound (MB)")
    parser.add_argument("--chunk-mb", type=float, default=8.0, help="read-ahead chunk (MB)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--step-ms", type=float, default=0.0, help="simulated training step per sample (ms)"
    )
    args = parser.parse_args()
    global STEP
    STEP = args.step_ms / 1e3
    sample_type, make, per_shard = SHAPES[args.shape]
    per_shard = args.per_shard or per_shard
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    server, endpoint = _start_moto()
    try:
        import boto3

        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
            Bucket="bench"
        )
        so = {
            "key": "testing",
            "secret": "testing",
            "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
            "default_cache_type": "none",  # no s3fs cache: each read is one ranged GET
        }
        total = args.shards * per_shard
        records = write_samples(
            make(total), "s3://bench/ds-%06d.tar", maxcount=per_shard, storage_options=so
        )
        urls = [r.url for r in records]
        mb = sum(r.size for r in records) / 1e6
        print(
            f"{args.shape}: {total:,} samples in {len(urls)} shards of {mb / len(urls):.1f} MB "
            f"({mb * 1e6 / total / 1e3:.1f} KB/sample); read-ahead {args.max_mb:g} MB ahead, "
            f"{args.chunk_mb:g} MB chunks; step {args.step_ms:g} ms/sample"
        )
        max_bytes, chunk = int(args.max_mb * 1e6), int(args.chunk_mb * 1e6)
        best = dict.fromkeys(["direct", "direct, chunked", "read-ahead"], float("inf"))
        for _ in range(args.rounds):
            for side in best:
                start = time.perf_counter()
                if side == "direct":
                    n = epoch_direct(urls, so, sample_type)
                elif side == "direct, chunked":
                    n = epoch_direct_chunked(urls, so, sample_type, chunk)
                else:
                    n = epoch_readahead(urls, so, sample_type, max_bytes, chunk)
                seconds = time.perf_counter() - start
                assert n == total, (side, n)
                best[side] = min(best[side], seconds)
        for side, seconds in best.items():
            print(f"  {side:16s} {total / seconds:10,.0f} samples/s  {mb / seconds:7.1f} MB/s")
        ratio = best["direct"] / best["read-ahead"]
        print(f"  read-ahead / direct: {ratio:.2f}x (target >= 1.5x)")
        ratio = best["direct, chunked"] / best["read-ahead"]
        print(f"  read-ahead / direct, chunked: {ratio:.2f}x (the overlap alone)")
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)


if __name__ == "__main__":
    main()
