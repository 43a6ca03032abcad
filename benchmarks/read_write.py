"""Read (and write) speed of atdata-lite shards on local disk, next to baselines and peers.

Run: ``python benchmarks/read_write.py [--quick] [--only CASES] [--rounds N] [--dir PATH]``

Three workloads, each the same records in every format:

* small: 100,000 samples of about 50 bytes (``idx: int, label: str, score: float``);
* medium: 20,000 samples of about 10 KB (``idx``, a 100x100 uint8 array);
* large: 2,000 samples of about 600 KB (``idx``, a 400x500x3 uint8 array).

Read cases, each run in a fresh process (this script with ``--case``), timed inside that
process from building the dataset object to the last sample (start-up and imports
excluded), with the process's peak RSS (``getrusage``) at its end:

* ours: ``Dataset[T](urls).ordered()``; the same reading one byte of every 4 KiB page of
  each array (arrays are views: this is what brings their bytes in from the page cache, as
  a training step using them would); ``ordered()`` with ``copy_arrays=True`` (array
  workloads; needs that argument); ``shuffled(seed=0)`` with the default buffer; and
  ``ordered(batch_size=256, batch_format="numpy")`` (small and medium; without
  ``batch_format`` where the installed version lacks it, every field read from each batch);
* baselines: a plain ``webdataset.WebDataset(urls, shardshuffle=False)`` loop decoding the
  msgpack (``np.load`` for arrays) over shards written by ``webdataset.TarWriter``; the same
  with ``.shuffle(10_000)``; the same mapped and ``.batched(256)`` (numpy columns); and a
  plain ``readinto`` loop (1 MiB buffer) over our shard files: the file-read bandwidth;
* peers, each only when it imports, with its version printed: LitData (``optimize()``, then
  ``StreamingDataset`` iterated directly), Mosaic streaming (``MDSWriter``, then a local
  ``StreamingDataset``), Hugging Face ``datasets`` (Arrow, ``load_from_disk``; the python
  format for small samples, numpy for arrays), each ordered and shuffled;
* loaders (when torch imports): ``DataLoader(ds.ordered(batch_size=256, batch_format=...),
  batch_size=None, num_workers=2)`` next to the same loader over the plain webdataset
  pipeline (batches of 16 for the large workload). Their RSS is the main process's; the
  note gives the largest worker's.

samples/s is comparable across formats; MB/s counts each format's own files (MB = 10**6
bytes), so a format with larger files shows more MB/s for the same samples/s. Ours and the
webdataset baseline write ``--shards`` shards (default 4) per workload; the peers use their
default chunk or shard size (64 MB). Writes (ours vs ``webdataset.TarWriter``; the peers'
for reference) are timed once each, before the reads. Every file is read from the page cache
(just written); ``--rounds N`` runs every read case N times in rotated order and keeps each
case's best round. The "targets" block at the end compares the figures with the targets,
ok or MISSED.

Options: ``--small/--medium/--large N`` (samples; 0 skips the workload), ``--dir PATH``
(where the data goes, a temporary directory inside it, removed at the end unless
``--keep``), ``--only a,b`` (workloads ``small``/``medium``/``large``, families ``ours``,
``wds``, ``readinto``, ``litdata``, ``mosaic``, ``hf``, ``peers``, ``loader``, ``write``,
or case names such as ``ours-shuffled`` or ``large/mosaic-ordered``), ``--quick`` (a smoke
test: tiny workloads, one round).

Installing the peers (Python 3.11, a venv outside the repository; torch first, so the peers
do not pull a CUDA build)::

    python3.11 -m venv bench-venv && . bench-venv/bin/activate
    pip install -e '.[test]'
    pip install torch --index-url https://download.pytorch.org/whl/cpu   # or a CPU wheel
    # LitData and Mosaic without their dependency lists: Mosaic pins numpy<2.2 and both
    # want torchvision, which has no CPU build on PyPI (a PyPI torchvision needs CUDA torch).
    pip install --no-deps litdata mosaicml-streaming
    pip install lightning-utilities filelock boto3 requests tifffile obstore \\
        'xxhash<4' zstd Brotli python-snappy pillow catalogue tqdm typing_extensions \\
        'transformers<5'
    # datasets 5.1 and later need huggingface-hub 1.x, which Mosaic's imports refuse
    pip install 'datasets==5.0.1' 'huggingface-hub<1.0'

LitData reads small records through pyarrow when it is installed (datasets brings it): its
fastest way, and the one the targets compare with.

Without torchvision, ``import streaming`` fails in its vision datasets: the Mosaic cases
then stub torchvision's two names that those import (``_peers.py``), which the local
``MDSWriter``/``StreamingDataset`` path does not use.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import io
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from dataclasses import dataclass, field
from functools import partial
from glob import glob
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _peers import PEERS, probe
from _workloads import WORKLOADS, Workload, sample

BATCH = 256
LOADER_BATCH = {"small": 256, "medium": 256, "large": 16}
WDS_SHUFFLE = 10_000
READ_BUFFER = 1 << 20

# Read cases in the order they are printed. (case, format it reads, family)
READ_CASES: list[tuple[str, str, str]] = [
    ("readinto", "ours", "readinto"),
    ("ours-ordered", "ours", "ours"),
    ("ours-copy", "ours", "ours"),
    ("ours-touched", "ours", "ours"),
    ("ours-shuffled", "ours", "ours"),
    ("ours-batched", "ours", "ours"),
    ("wds-ordered", "wds", "wds"),
    ("wds-shuffled", "wds", "wds"),
    ("wds-batched", "wds", "wds"),
    ("litdata-ordered", "litdata", "litdata"),
    ("litdata-shuffled", "litdata", "litdata"),
    ("mosaic-ordered", "mosaic", "mosaic"),
    ("mosaic-shuffled", "mosaic", "mosaic"),
    ("hf-ordered", "hf", "hf"),
    ("hf-shuffled", "hf", "hf"),
    ("loader-ours", "ours", "loader"),
    ("loader-wds", "wds", "loader"),
]
FORMATS = ["ours", "wds", "litdata", "mosaic", "hf"]


# --- the child: one case in a fresh process ---------------------------------------------


def _rss_now_kb() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def _dir_bytes(path: str) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            total += os.path.getsize(os.path.join(dirpath, name))
    return total


def _shard_paths(root: str, fmt: str) -> list[str]:
    return sorted(glob(os.path.join(root, fmt, "*.tar")))


def api_features() -> dict[str, bool]:
    """Which parts of the newer atdata-lite read API the installed version has."""
    from atdata_lite.dataset import Dataset

    init = inspect.signature(Dataset.__init__).parameters
    ordered = inspect.signature(Dataset.ordered).parameters
    shuffled = inspect.signature(Dataset.shuffled).parameters
    return {
        "copy_arrays": "copy_arrays" in init,
        "batch_format": "batch_format" in ordered,
        "buffer_bytes": "buffer_bytes" in shuffled,
    }


def wds_decode(raw: dict[str, Any], array_field: str | None) -> dict[str, Any]:
    """What a plain webdataset user writes: unpack the msgpack, np.load the array."""
    import msgpack
    import numpy as np

    d: dict[str, Any] = msgpack.unpackb(raw["msgpack"], raw=False)
    if array_field is not None:
        d[array_field] = np.load(io.BytesIO(d[array_field]))
    return d


def _batch_len(batch: Any) -> int:
    return len(batch["idx"]) if isinstance(batch, dict) else len(batch)


class NotAvailable(Exception):
    """The case needs something the installed software lacks."""


def write_case(w: Workload, case: str, root: str, n: int, shards: int) -> tuple[int, str]:
    """Write the workload in one format; returns (bytes written, note)."""
    fmt = case.removeprefix("write-")
    out = os.path.join(root, fmt)
    per_shard = max(1, math.ceil(n / shards))
    if fmt == "ours":
        from atdata_lite.shards import write_samples

        os.makedirs(out, exist_ok=True)
        samples = (sample(w.name, i) for i in range(n))
        write_samples(
            samples, os.path.join(out, "shard-%06d.tar"), maxcount=per_shard, progress=False
        )
        note = f"write_samples, {shards} shards"
    elif fmt == "wds":
        import webdataset as wds

        os.makedirs(out, exist_ok=True)
        for s in range(math.ceil(n / per_shard)):
            path = os.path.join(out, f"shard-{s:06d}.tar")
            with wds.TarWriter(path) as sink:
                for i in range(s * per_shard, min(n, (s + 1) * per_shard)):
                    key = str(uuid.uuid1(0, 0))  # atdata's keys, as our writer's
                    sink.write({"__key__": key, "msgpack": sample(w.name, i).packed})
        note = "webdataset.TarWriter, packed samples"
    else:
        peer = PEERS[fmt]
        version, why = probe(peer)
        if version is None:
            raise NotAvailable(f"{peer.dist} not importable ({why})")
        peer.write(w, out, n)
        note = f"{peer.dist} {version}"
    return _dir_bytes(out), note


def run_read(w: Workload, case: str, root: str) -> tuple[int, int, float, str]:
    """Run one read case; returns (samples, bytes of its files, seconds, note)."""
    feats = api_features() if case.startswith(("ours", "loader-ours")) else {}
    fmt = next(f for c, f, _ in READ_CASES if c == case)
    nbytes = _dir_bytes(os.path.join(root, fmt))
    note = ""

    if case == "readinto":
        paths = _shard_paths(root, "ours")
        buf = bytearray(READ_BUFFER)
        view = memoryview(buf)
        count = _count_samples(root)
        t0 = time.perf_counter()
        for p in paths:
            with open(p, "rb", buffering=0) as f:
                while f.readinto(view):
                    pass
        return count, nbytes, time.perf_counter() - t0, "1 MiB readinto over our shard files"

    if case.startswith("ours") or case == "loader-ours":
        from atdata_lite.dataset import Dataset

        urls = _shard_paths(root, "ours")
        T = w.sample_type
        if case == "ours-copy" and not feats["copy_arrays"]:
            raise NotAvailable("needs Dataset(..., copy_arrays=True)")
        if case == "ours-shuffled":
            note = "default buffer" + (
                " (samples and bytes)" if feats["buffer_bytes"] else " (10,000 samples)"
            )
        kwargs: dict[str, Any] = {}
        if case in ("ours-batched", "loader-ours"):
            if case == "loader-ours" and feats["batch_format"]:
                kwargs["batch_format"] = "torch"
                note = 'batch_format="torch"'
            elif feats["batch_format"]:
                kwargs["batch_format"] = "numpy"
                note = 'batch_format="numpy"'
            else:
                note = "SampleBatch, no numpy columns: n/a (needs batch_format)"
        t0 = time.perf_counter()
        ds_kwargs = {"copy_arrays": True} if case == "ours-copy" else {}
        ds = Dataset[T](urls, **ds_kwargs)
        n = 0
        if case in ("ours-ordered", "ours-copy"):
            for _ in ds.ordered():
                n += 1
        elif case == "ours-touched":
            # arrays are views: read one byte of every page, as a training step would
            field = w.array_field
            for sample in ds.ordered():
                getattr(sample, field).reshape(-1)[::4096].sum()
                n += 1
            note = "ordered, one byte of every 4 KiB page of each array read"
        elif case == "ours-shuffled":
            for _ in ds.shuffled(seed=0):
                n += 1
        elif case == "ours-batched":
            fields = w.fields
            for batch in ds.ordered(batch_size=BATCH, **kwargs):
                for name in fields:
                    getattr(batch, name)
                n += len(batch)
        else:
            from torch.utils.data import DataLoader

            size = LOADER_BATCH[w.name]
            loader = DataLoader(
                ds.ordered(batch_size=size, **kwargs), batch_size=None, num_workers=2
            )
            for batch in loader:
                n += _batch_len(batch)
            note = f"{note}, batch {size}".lstrip(", ")
        return n, nbytes, time.perf_counter() - t0, note

    if case.startswith("wds") or case == "loader-wds":
        import webdataset as wds

        urls = _shard_paths(root, "wds")
        decode = partial(wds_decode, array_field=w.array_field)
        t0 = time.perf_counter()
        n = 0
        if case == "wds-ordered":
            for raw in wds.WebDataset(urls, shardshuffle=False):
                decode(raw)
                n += 1
        elif case == "wds-shuffled":
            for raw in wds.WebDataset(urls, shardshuffle=False).shuffle(WDS_SHUFFLE):
                decode(raw)
                n += 1
            note = f".shuffle({WDS_SHUFFLE:,})"
        elif case == "wds-batched":
            for batch in wds.WebDataset(urls, shardshuffle=False).map(decode).batched(BATCH):
                n += _batch_len(batch)
            note = f".map(decode).batched({BATCH})"
        else:
            from torch.utils.data import DataLoader

            size = LOADER_BATCH[w.name]
            pipeline = wds.WebDataset(urls, shardshuffle=False).map(decode).batched(size)
            for batch in DataLoader(pipeline, batch_size=None, num_workers=2):
                n += _batch_len(batch)
            note = f".map(decode).batched({size})"
        return n, nbytes, time.perf_counter() - t0, note

    peer = PEERS[fmt]
    version, why = probe(peer)
    if version is None:
        raise NotAvailable(f"{peer.dist} not importable ({why})")
    shuffled = case.endswith("shuffled")
    out = os.path.join(root, fmt)
    if peer.name == "hf":
        note = "python format" if w.array_field is None else "numpy format"
        if shuffled:
            note += ", " + peer.shuffled_note
    elif shuffled:
        note = peer.shuffled_note
    t0 = time.perf_counter()
    n = 0
    for _ in peer.read(w, out, shuffled):
        n += 1
    return n, nbytes, time.perf_counter() - t0, note


def _count_samples(root: str) -> int:
    with open(os.path.join(root, "count")) as f:
        return int(f.read())


def child_main(args: argparse.Namespace) -> None:
    """Run one case and write its figures as JSON to ``args.result``."""
    result: dict[str, Any] = {}
    try:
        if args.case == "probe":
            result = _probe_all()
        else:
            wname, case = args.case.split("/", 1)
            w = WORKLOADS[wname]
            root = os.path.join(args.root, wname)
            if case.startswith("write-"):
                # The write cases include building the samples: each format's writer
                # receives them as its users would hand them over.
                _preimport(case)
                start_rss = _rss_now_kb()
                t0 = time.perf_counter()
                nbytes, note = write_case(w, case, root, args.count, args.shards)
                seconds = time.perf_counter() - t0
                n = args.count
            else:
                _preimport(case)
                start_rss = _rss_now_kb()
                n, nbytes, seconds, note = run_read(w, case, root)
            kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            result = {
                "n": n,
                "bytes": nbytes,
                "seconds": seconds,
                "note": note,
                "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "start_rss_kb": start_rss,
                "child_rss_kb": kids,
            }
    except NotAvailable as exc:
        result = {"na": str(exc)}
    except Exception as exc:
        traceback.print_exc()
        result = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0][:160]}
    with open(args.result, "w") as f:
        json.dump(result, f)


def _preimport(case: str) -> None:
    """Import what a case uses before its clock starts (start-up is not timed)."""
    import numpy  # noqa: F401

    if case == "write-ours":
        import atdata_lite.shards
    elif not case.startswith("write-"):
        import atdata_lite.dataset  # noqa: F401
    if case.startswith(("wds", "write-wds", "loader")):
        import webdataset  # noqa: F401
    if case.startswith("loader"):
        import torch.utils.data  # noqa: F401
    for name, peer in PEERS.items():
        if case.startswith((name + "-", "write-" + name)):
            probe(peer)


def _probe_all() -> dict[str, Any]:
    import importlib.metadata as md

    versions: dict[str, Any] = {}
    for dist in ("atdata-lite", "webdataset", "numpy", "msgpack", "torch"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            versions[dist] = None
    peers = {}
    for name, peer in PEERS.items():
        version, why = probe(peer)
        peers[name] = {"version": version, "why": why, "dist": peer.dist}
    try:
        import torch  # noqa: F401

        has_torch = True
    except Exception:
        has_torch = False
    return {"versions": versions, "peers": peers, "api": api_features(), "torch": has_torch}


# --- the parent: plan, run children, print ----------------------------------------------


@dataclass
class Plan:
    workloads: list[tuple[Workload, int]]
    reads: dict[str, list[str]] = field(default_factory=dict)  # workload -> cases
    writes: dict[str, list[str]] = field(default_factory=dict)  # workload -> formats


def _select(args: argparse.Namespace, info: dict[str, Any]) -> Plan:
    tokens = {t.strip() for t in (args.only or "").split(",") if t.strip()}
    if "peers" in tokens:
        tokens |= set(PEERS)
    wtokens = tokens & set(WORKLOADS)
    ctokens = tokens - wtokens
    counts = {"small": args.small, "medium": args.medium, "large": args.large}
    workloads = []
    for name, w in WORKLOADS.items():
        n = counts[name]
        if n is None:
            n = w.quick_count if args.quick else w.default_count
        if n > 0 and (not wtokens or name in wtokens):
            workloads.append((w, n))
    plan = Plan(workloads)
    for w, _ in workloads:
        cases = []
        for case, fmt, family in READ_CASES:
            if ctokens and not ({family, case, f"{w.name}/{case}"} & ctokens):
                continue
            if case in ("ours-copy", "ours-touched") and w.array_field is None:
                continue
            if case in ("ours-batched", "wds-batched") and w.name == "large":
                continue
            if family == "loader" and not info.get("torch"):
                continue
            if fmt in PEERS and info["peers"][fmt]["version"] is None:
                continue
            cases.append(case)
        formats = {f for c, f, _ in READ_CASES if c in cases}
        if "write" in ctokens:
            formats |= {"ours", "wds"}
        plan.reads[w.name] = cases
        plan.writes[w.name] = [f for f in FORMATS if f in formats]
    return plan


def _run_child(args: argparse.Namespace, case: str, root: str, count: int) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
        result_path = tmp.name
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--case",
        case,
        "--root",
        root,
        "--count",
        str(count),
        "--shards",
        str(args.shards),
        "--result",
        result_path,
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
        with open(result_path) as f:
            text = f.read()
        result: dict[str, Any] = json.loads(text) if text else {}
        if not result:
            result = {"error": f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}"}
        if "error" in result and args.verbose:
            print(proc.stderr, file=sys.stderr)
        return result
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {args.timeout:.0f} s"}
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(result_path)


def _label(case: str) -> str:
    labels = {
        "readinto": "readinto loop (file-read bandwidth)",
        "ours-ordered": "ours    ordered",
        "ours-copy": "ours    ordered, copy_arrays=True",
        "ours-touched": "ours    ordered, pages touched",
        "ours-shuffled": "ours    shuffled",
        "ours-batched": f"ours    batched {BATCH}, numpy",
        "wds-ordered": "wds     plain loop",
        "wds-shuffled": "wds     plain loop, shuffled",
        "wds-batched": f"wds     plain loop, batched {BATCH}",
        "loader-ours": "DataLoader(2 workers) ours",
        "loader-wds": "DataLoader(2 workers) wds",
    }
    if case in labels:
        return labels[case]
    peer, mode = case.split("-", 1)
    return f"{peer:<8}{mode}"


def _mb(kb: int) -> str:
    return f"{kb / 1024:,.0f} MB"


def _row(case: str, r: dict[str, Any], ref: dict[str, Any] | None) -> str:
    label = _label(case)
    if "na" in r:
        return f"  {label:<38} n/a ({r['na']})"
    if "error" in r:
        return f"  {label:<38} ERROR {r['error']}"
    rate = r["n"] / r["seconds"]
    mbs = r["bytes"] / r["seconds"] / 1e6
    grow = max(0, r["peak_rss_kb"] - r["start_rss_kb"])
    vs = ""
    if ref is not None and "n" in ref and case not in ("wds-ordered", "readinto"):
        vs = f"{rate / (ref['n'] / ref['seconds']):6.2f}x"
    note = r.get("note", "")
    if case.startswith("loader") and r.get("child_rss_kb"):
        note = f"{note}; largest worker {_mb(r['child_rss_kb'])}".lstrip("; ")
    return (
        f"  {label:<38} {rate:>11,.0f} {mbs:>9,.1f} {_mb(r['peak_rss_kb']):>9} "
        f"{'+' + _mb(grow):>9} {vs:>7}  {note}"
    )


def _better(new: dict[str, Any], old: dict[str, Any] | None) -> bool:
    if old is None or "n" not in old:
        return True
    if "n" not in new:
        return False
    return new["n"] / new["seconds"] > old["n"] / old["seconds"]


def _rate(r: dict[str, Any] | None, mb: bool = False) -> float | None:
    if r is None or "n" not in r:
        return None
    return (r["bytes"] / 1e6 if mb else r["n"]) / r["seconds"]


def _targets(plan: Plan, best: dict[str, dict[str, dict[str, Any]]], peers: dict[str, Any]) -> None:
    print("\ntargets")
    lines: list[tuple[str, float | None, float | None, float, str]] = []
    for w, _ in plan.workloads:
        res = best.get(w.name, {})
        for mode in ("ordered", "shuffled"):
            options = [
                (name, _rate(res.get(f"{name}-{mode}")))
                for name in PEERS
                if _rate(res.get(f"{name}-{mode}")) is not None
            ]
            if options:
                name, rate = max(options, key=lambda o: o[1] or 0.0)
                who = f"{name} {peers[name]['version']}"
                lines.append(
                    (
                        f"{w.name:<7}ours {mode} >= fastest peer ({who})",
                        _rate(res.get(f"ours-{mode}")),
                        rate,
                        1.0,
                        "samples/s",
                    )
                )
            else:
                lines.append(
                    (f"{w.name:<7}ours {mode} >= fastest peer", None, None, 1.0, "no peer ran")
                )
        if w.name in ("small", "medium"):
            lines.append(
                (
                    f"{w.name:<7}ours ordered >= 5x plain wds loop",
                    _rate(res.get("ours-ordered")),
                    _rate(res.get("wds-ordered")),
                    5.0,
                    "samples/s",
                )
            )
        if w.name == "large":
            lines.append(
                (
                    f"{w.name:<7}ours ordered >= 70% of readinto",
                    _rate(res.get("ours-ordered"), mb=True),
                    _rate(res.get("readinto"), mb=True),
                    0.7,
                    "MB/s",
                )
            )
        if w.name == "small":
            wds_rates = [
                r for r in (_rate(res.get("wds-ordered")), _rate(res.get("wds-batched"))) if r
            ]
            lines.append(
                (
                    f"{w.name:<7}ours batched >= 10x faster plain wds loop",
                    _rate(res.get("ours-batched")),
                    max(wds_rates) if wds_rates else None,
                    10.0,
                    "samples/s",
                )
            )
    for what, ours, bar, factor, unit in lines:
        if ours is None or bar is None:
            print(f"  {what:<58} n/a ({unit if unit == 'no peer ran' else 'not run'})")
            continue
        ratio = ours / bar
        verdict = "ok" if ratio >= factor else "MISSED"
        print(
            f"  {what:<58} {ours:>11,.0f} vs {bar:>11,.0f} {unit:<9} "
            f"{ratio:6.2f}x (need {factor:g}x)  {verdict}"
        )


def parent_main(args: argparse.Namespace) -> None:
    base = args.dir or None
    if base:
        os.makedirs(base, exist_ok=True)
    root = tempfile.mkdtemp(prefix="atl-bench-", dir=base)
    try:
        info = _run_child(args, "probe", root, 0)
        if "error" in info:
            raise SystemExit(f"probe failed: {info['error']}")
        v = info["versions"]
        print(
            f"atdata-lite {v['atdata-lite']}, webdataset {v['webdataset']}, numpy {v['numpy']}, "
            f"msgpack {v['msgpack']}, torch {v['torch'] or 'not installed'}; "
            f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
        )
        api = info["api"]
        print(
            "atdata-lite read API: "
            + ", ".join(f"{k} {'yes' if ok else 'no'}" for k, ok in api.items())
        )
        for name, p in info["peers"].items():
            state = p["version"] or f"not run ({p['why']})"
            print(f"peer {name:<8} {p['dist']} {state}")
        plan = _select(args, info)
        rounds = 1 if args.quick else args.rounds
        best: dict[str, dict[str, dict[str, Any]]] = {}
        for w, n in plan.workloads:
            wroot = os.path.join(root, w.name)
            os.makedirs(wroot, exist_ok=True)
            with open(os.path.join(wroot, "count"), "w") as f:
                f.write(str(n))
            payload = len(sample(w.name, 0).packed)
            print(f"\n{w.name}: {n:,} samples, {payload:,} bytes/sample packed")
            print(f"  {'write':<38} {'samples/s':>11} {'MB/s':>9} {'peak RSS':>9}")
            for fmt in plan.writes[w.name]:
                r = _run_child(args, f"{w.name}/write-{fmt}", root, n)
                label = f"write  {fmt}"
                if "n" in r:
                    print(
                        f"  {label:<38} {r['n'] / r['seconds']:>11,.0f} "
                        f"{r['bytes'] / r['seconds'] / 1e6:>9,.1f} {_mb(r['peak_rss_kb']):>9}  "
                        f"{r['bytes'] / 1e6:,.1f} MB on disk; {r['note']}"
                    )
                else:
                    print(f"  {label:<38} {r.get('na') or 'ERROR ' + r.get('error', '?')}")
            # Reads should not compete with the write-back of what was just written.
            os.sync()
            cases = plan.reads[w.name]
            res: dict[str, dict[str, Any]] = {}
            for rnd in range(rounds):
                shift = rnd % max(1, len(cases))
                for case in cases[shift:] + cases[:shift]:
                    r = _run_child(args, f"{w.name}/{case}", root, n)
                    if _better(r, res.get(case)):
                        res[case] = r
            best[w.name] = res
            print(
                f"  {'read (best of ' + str(rounds) + ')':<38} {'samples/s':>11} {'MB/s':>9} "
                f"{'peak RSS':>9} {'growth':>9} {'vs wds':>7}  notes"
            )
            for case in cases:
                print(_row(case, res[case], res.get("wds-ordered")))
            if not args.keep:
                shutil.rmtree(wroot, ignore_errors=True)
        _targets(plan, best, info["peers"])
    finally:
        if args.keep:
            print(f"\ndata kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--small", type=int, default=None, help="~50 B samples (100,000)")
    parser.add_argument("--medium", type=int, default=None, help="~10 KB samples (20,000)")
    parser.add_argument("--large", type=int, default=None, help="~600 KB samples (2,000)")
    parser.add_argument("--dir", default=None, help="local directory for the data")
    parser.add_argument("--only", default=None, help="comma-separated workloads/families/cases")
    parser.add_argument("--rounds", type=int, default=3, help="best of N rotated rounds")
    parser.add_argument("--quick", action="store_true", help="tiny workloads, one round")
    parser.add_argument("--shards", type=int, default=4, help="shards per workload (ours, wds)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per case")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    parser.add_argument("--verbose", action="store_true", help="show failing cases' stderr")
    # Internal: one case in a child process.
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        child_main(args)
    else:
        parent_main(args)


if __name__ == "__main__":
    main()
