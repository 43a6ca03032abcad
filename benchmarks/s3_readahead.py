"""One epoch of a Dataset over S3, with and without read-ahead: what a training loop gets.

Run: ``python benchmarks/s3_readahead.py [--shape images|tokens] [--shards N] [--rounds N]
[--step-ms MS] [--link-mbps MB/s] [--readahead-mb MB ...]``

A moto S3 server runs in its own process on loopback (a real object store is another
machine: it does not share this process's interpreter lock); the dataset is written into it
with ``write_samples``. Each side is what a user writes::

    ds = Dataset[Image](urls, storage_options=so, cache=False, readahead=...)
    for sample in ds.ordered():
        ...  # the sample's fields are touched; --step-ms sleeps here

so an epoch includes everything the library does per sample (tar scan, msgpack and array
decode, sample objects). ``cache=False`` keeps the shard cache out: every epoch downloads.

* ``off`` (``readahead=0``): the baseline is what a user gets with read-ahead turned off,
  nothing tuned: s3fs's own defaults (its ``"readahead"`` block cache with 50 MiB blocks, so
  a shard of this size comes in one GET at its first read). The download of each shard
  waits for the decoding of the previous one, and the decoder waits for each download.
* ``default`` (``readahead=None``, i.e. ``DEFAULT_READAHEAD``, 256 MiB): a background thread
  downloads the next shards while this one is decoded.
* ``--readahead-mb`` adds sides with other bounds (e.g. 1024).

The network (``--link-mbps``, default 100 MB/s): loopback moves a shard at several hundred
MB/s for little more than the server's CPU time, which no object store does for one
stream. Reads go through a small proxy (its own process) that paces the answers of each
connection to at most ``--link-mbps`` (a plain sequential download through it gets
some 85 MB/s of the 100), of the order of one GET stream from an object store inside
its region; first-byte latency is not modelled (read-ahead would hide it too, so leaving it
out understates the gain). ``--link-mbps 0`` reads from moto directly.

Shapes (per-sample sizes of common training sets; shards of about 20 MB, at the small end of
webdataset's usual 10 MB-1 GB so that one run stays short; a shard is one GET either way):

* ``images`` (default): a 224x224x3 uint8 image and a label (150 KB/sample, ImageNet-sized,
  decoded arrays), 128 samples per shard (19 MB);
* ``tokens``: 2,048 int32 token ids and a length (9 KB/sample, a language-model sequence),
  2,000 samples per shard (18 MB).

``--step-ms`` is a training step per sample, slept (a GPU step releases the interpreter
lock while the host waits for it, as sleeping does; the sleep's own overhead, some 0.1 ms
on Linux, comes on top). The defaults, 1 ms/sample for images and 0.1 ms/sample for
tokens, stand for a training loop that does work per sample, a little of it (a ResNet-50
step on one GPU takes some 1-3 ms per 224x224 image; a small language model's step a
fraction of a ms per 2k-token sequence). With no step at all only decoding and the download
compete: a data-loading benchmark, not an epoch of training (``--step-ms 0`` measures it).
Images are the default shape because there the download and the per-sample work are of
the same order, which is where read-ahead matters; with small token samples the
per-sample work dominates and hiding the download gains less.

Sides alternate, ``--rounds`` times each, and each keeps its best epoch. Target: an epoch
with the default read-ahead >= 1.5x one with it off. At best read-ahead turns download +
work into the larger of the two, so the ratio is at most 2x, reached when they are equal.
On a small machine the background thread, s3fs, the proxy and the server compete with the
decoder for the same cores, which is unfavourable to read-ahead.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import resource
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray

from atdata_lite import Dataset
from atdata_lite.dataset import DEFAULT_READAHEAD
from atdata_lite.samples import packable
from atdata_lite.shards import write_samples


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


def _touch_image(s: Image) -> int:
    return int(s.image.shape[0]) + s.label


def _touch_tokens(s: Tokens) -> int:
    return int(s.ids.shape[0]) + s.length


# shape -> (sample type, samples, samples per shard, touch, default step in ms)
SHAPES: dict[str, tuple[type[Any], Callable[[int], Iterator[Any]], int, Callable[..., int], float]]
SHAPES = {
    "images": (Image, _images, 128, _touch_image, 1.0),
    "tokens": (Tokens, _tokens, 2000, _touch_tokens, 0.1),
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


def _serve_link(port: int, upstream: int, rate: float) -> None:
    """A TCP proxy from ``port`` to ``upstream`` whose answers flow at most ``rate`` bytes/s
    per connection (a network link in front of the loopback server; requests pass freely)."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, paced: bool) -> None:
        loop = asyncio.get_running_loop()
        free_at = 0.0  # when the link has sent what it was given so far
        try:
            while data := await reader.read(64 << 10):
                if paced:
                    # Late wake-ups are made up for (up to 5 ms of credit, so a pause
                    # does not turn into a burst), and sleeps shorter than 2 ms are
                    # gathered, so pacing keeps the rate.
                    free_at = max(free_at, loop.time() - 0.005) + len(data) / rate
                    if free_at - loop.time() > 0.002:
                        await asyncio.sleep(free_at - loop.time())
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream)
        await asyncio.gather(pipe(reader, up_writer, False), pipe(up_reader, writer, True))

    async def serve() -> None:
        server = await asyncio.start_server(connect, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


def _start_link(endpoint: str, mb_per_s: float) -> tuple[multiprocessing.Process, str]:
    port = _free_port()
    upstream = int(endpoint.rsplit(":", 1)[1])
    link = multiprocessing.Process(
        target=_serve_link, args=(port, upstream, mb_per_s * 1e6), daemon=True
    )
    link.start()
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            return link, f"http://127.0.0.1:{port}"
        except OSError:
            if time.monotonic() > deadline or not link.is_alive():
                link.kill()
                raise SystemExit("the link proxy did not start within 30 s") from None
            time.sleep(0.05)


def epoch(
    urls: list[str],
    so: dict[str, Any],
    sample_type: type[Any],
    touch: Callable[[Any], int],
    readahead: int | None,
    step: float,
) -> int:
    """One epoch as a user runs it; returns the number of samples seen."""
    ds = Dataset[sample_type](urls, storage_options=so, cache=False, readahead=readahead)  # type: ignore[valid-type]
    n = 0
    for sample in ds.ordered():
        touch(sample)
        if step:
            time.sleep(step)
        n += 1
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="images")
    parser.add_argument("--shards", type=int, default=8)  # 155 MB of images
    parser.add_argument("--per-shard", type=int, help="samples per shard (default: the shape's)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--step-ms",
        type=float,
        help="training step per sample in ms, slept (default: 1 for images, 0.1 for tokens)",
    )
    parser.add_argument(
        "--link-mbps",
        type=float,
        default=100.0,
        help="bandwidth of each connection to the server in MB/s (0: loopback, unlimited)",
    )
    parser.add_argument(
        "--readahead-mb",
        type=float,
        nargs="*",
        default=[],
        help="more read-ahead bounds to measure besides the default (MiB)",
    )
    args = parser.parse_args()
    sample_type, make, per_shard, touch, default_step = SHAPES[args.shape]
    per_shard = args.per_shard or per_shard
    step_ms = default_step if args.step_ms is None else args.step_ms
    sides: dict[str, int | None] = {"off": 0, "default": None}
    for mb in args.readahead_mb:
        sides[f"{mb:g} MiB"] = int(mb * (1 << 20))
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    server, endpoint = _start_moto()
    link = None
    try:
        import boto3

        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
            Bucket="bench"
        )
        # The user's options: credentials and endpoint only, s3fs's defaults for the rest.
        so: dict[str, Any] = {
            "key": "testing",
            "secret": "testing",
            "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        }
        total = args.shards * per_shard
        samples = make(total)
        peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        start = time.perf_counter()
        records = write_samples(
            samples, "s3://bench/ds-%06d.tar", maxcount=per_shard, storage_options=so
        )
        seconds = time.perf_counter() - start
        peak_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        del samples
        written = sum(r.size or 0 for r in records) / 1e6
        # Writing streams: s3fs uploads each shard in parts as it is written, so the
        # process's peak grows by about one part (s3fs's block size), not by a shard.
        print(
            f"write: {written:,.0f} MB to S3 in {seconds:.1f} s; peak RSS "
            f"{peak_before:,.0f} MB before (the samples themselves), {peak_after:,.0f} MB "
            f"after (+{peak_after - peak_before:,.0f} MB while writing)"
        )
        if args.link_mbps > 0:  # written directly, read through the link
            link, read_endpoint = _start_link(endpoint, args.link_mbps)
            so = {**so, "client_kwargs": {**so["client_kwargs"], "endpoint_url": read_endpoint}}
        urls = [r.url for r in records]
        mb = sum(r.size or 0 for r in records) / 1e6
        print(
            f"{args.shape}: {total:,} samples in {len(urls)} shards of {mb / len(urls):.1f} MB "
            f"({mb * 1e6 / total / 1e3:.1f} KB/sample); link "
            f"{f'{args.link_mbps:g} MB/s per connection' if link else 'loopback, unlimited'}; "
            f"step {step_ms:g} ms/sample "
            f"(alone: {total * step_ms / 1e3:.1f} s/epoch); default read-ahead "
            f"{DEFAULT_READAHEAD >> 20} MiB; best of {args.rounds}"
        )
        best = dict.fromkeys(sides, float("inf"))
        for _ in range(args.rounds):
            for side, readahead in sides.items():
                start = time.perf_counter()
                n = epoch(urls, so, sample_type, touch, readahead, step_ms / 1e3)
                seconds = time.perf_counter() - start
                assert n == total, (side, n)
                best[side] = min(best[side], seconds)
        for side, seconds in best.items():
            print(
                f"  readahead {side:10s} {total / seconds:9,.0f} samples/s  "
                f"{mb / seconds:7.1f} MB/s  {seconds:6.2f} s/epoch"
            )
        for side in list(sides)[1:]:
            ratio = best["off"] / best[side]
            target = " (target >= 1.5x)" if side == "default" else ""
            print(f"  {side} / off: {ratio:.2f}x{target}")
    finally:
        if link is not None:
            link.kill()
            link.join(10)
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)


if __name__ == "__main__":
    main()
