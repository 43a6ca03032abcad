"""The concurrency soak's workers: processes x threads writing to one index and keeping count.

Each thread owns the names that start with its own prefix (``p{process}t{thread}-``) and
remembers what it believes it wrote: the entries it inserted, renamed and deleted, and the
schema versions it published. Every thread also races the others for a few shared names
(``shared-{k}``), remembering the ones it won. The parent compares all of that with what the
index holds afterwards (see ``test_soak.py``).
"""

from __future__ import annotations

import json
import random
import threading
import time
import traceback
from typing import Any

from atdata_lite.errors import DatasetExistsError
from atdata_lite.index import open_backend
from atdata_lite.index.backend import DatasetRecord, ShardRecord

SCHEMA = "Soak"
SHARED_NAMES = 10
_OPS = ("insert", "rename", "delete", "publish", "list", "shared")
_WEIGHTS = (6, 2, 2, 2, 1, 2)


def soak_record(name: str, urls: tuple[str, ...]) -> DatasetRecord:
    """An entry with one shard per URL (its CID unique to its first URL)."""
    return DatasetRecord(
        cid=f"bafysoak-{urls[0]}",
        name=name,
        schema_ref=f"atdata://local/sampleSchema/{SCHEMA}@1.0.0",
        shards=tuple(ShardRecord(u, 100, 1, None) for u in urls),
        metadata=None,
    )


def _thread(backend: Any, prefix: str, seed: int, deadline: float) -> dict[str, Any]:
    rng = random.Random(seed)
    live: dict[str, list[str]] = {}  # what this thread believes is stored under its prefix
    published: list[str] = []
    won: dict[str, list[str]] = {}
    errors: list[str] = []
    ops = 0
    i = 0
    while time.monotonic() < deadline:
        i += 1
        op = rng.choices(_OPS, _WEIGHTS)[0]
        if op in ("rename", "delete") and not live:
            op = "insert"
        try:
            if op == "insert":
                name = f"{prefix}{i}"
                urls = [f"{name}-a.tar", f"{name}-b.tar"]
                backend.insert_datasets([soak_record(name, tuple(urls))])
                live[name] = urls
            elif op == "rename":
                old = rng.choice(sorted(live))
                new = f"{prefix}{i}-renamed"
                got = backend.rename_dataset(old, new)
                if got.name != new:
                    errors.append(f"rename {old} -> {new} returned {got.name}")
                live[new] = live.pop(old)
            elif op == "delete":
                old = rng.choice(sorted(live))
                got = backend.delete_dataset(old)
                if got is None or got.name != old:
                    errors.append(f"delete {old} returned {got}")
                del live[old]
            elif op == "publish":
                tag = f"{prefix}{i}"
                row, created = backend.publish_schema(
                    SCHEMA,
                    None,
                    lambda v, tag=tag: json.dumps({"name": SCHEMA, "version": v, "tag": tag}),
                    f"hash-{tag}",
                )
                if not created:
                    errors.append(f"publish {tag} did not create a version ({row.version})")
                published.append(row.version)
            elif op == "list":
                names = [r.name for r in backend.iter_datasets()]
                if len(names) != len(set(names)):
                    errors.append("a listing holds one name twice")
                mine = {n for n in names if n.startswith(prefix)}
                if mine != set(live):
                    errors.append(f"listing disagrees with own writes: {mine ^ set(live)}")
            elif op == "shared":
                name = f"shared-{rng.randrange(SHARED_NAMES)}"
                urls = [f"{name}-{prefix}{i}.tar"]
                try:
                    backend.insert_datasets([soak_record(name, tuple(urls))])
                except DatasetExistsError:
                    pass  # another writer won this name: expected
                else:
                    won[name] = urls
            ops += 1
        except Exception as exc:
            errors.append(f"{op}: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
    return {"live": live, "published": published, "won": won, "errors": errors, "ops": ops}


def soak_process(
    location: str, process: int, threads: int, seconds: float, barrier: Any, queue: Any
) -> None:
    """One process: open the index, run ``threads`` threads for ``seconds``, report."""
    try:
        backend = open_backend(location)
        results: list[dict[str, Any]] = [{} for _ in range(threads)]

        def run(t: int) -> None:
            results[t] = _thread(backend, f"p{process}t{t}-", process * 1000 + t, deadline)

        barrier.wait(timeout=120)
        deadline = time.monotonic() + seconds
        pool = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join(seconds + 120)
        backend.close()
        queue.put(("ok", results))
    except BaseException as exc:  # report everything to the parent
        queue.put(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))


def run_soak(location: str, processes: int, threads: int, seconds: float) -> list[dict[str, Any]]:
    """Run the soak on ``location``; return every thread's report."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes)
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=soak_process, args=(location, p, threads, seconds, barrier, queue))
        for p in range(processes)
    ]
    for proc in procs:
        proc.start()
    try:
        reports = [queue.get(timeout=seconds + 240) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=60)
            if proc.is_alive():
                proc.kill()
    failed = [r[1] for r in reports if r[0] == "error"]
    assert not failed, "\n".join(failed)
    return [thread for r in reports for thread in r[1]]
