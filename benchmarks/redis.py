"""Get-by-name and list rates at 10,000 datasets: Redis backend next to the SQL backend.

Run:  python benchmarks/redis.py [--n 10000] [--redis redis://127.0.0.1:6379/15]
                                 [--postgres postgresql+psycopg://postgres@127.0.0.1/test]

The Redis database must be empty (it is flushed afterwards) unless --force is given. Each
backend gets the same 10,000 entries (bulk-written with write_catalog), then:

* get by name: random existing names through ``Index.get_dataset`` (decodes the entry),
  and through the backend alone;
* list: full ``Index.list_datasets()`` passes;
* for scale, atdata 0.2's own lookup (SCAN + HGETALL per key until the name matches) on
  the same Redis data, a few times.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# This file is called redis.py: keep its own directory off sys.path so that `import redis`
# finds redis-py, not this script.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from atdata_lite.index.api import Index  # noqa: E402
from atdata_lite.testing import make_record, make_schema_row  # noqa: E402


def rate(fn: Callable[[], object], *, min_seconds: float = 2.0, max_calls: int = 20000) -> float:
    """Calls per second of ``fn`` over at least ``min_seconds`` (or ``max_calls`` calls)."""
    fn()  # warm up (connections, prepared statements, script cache)
    calls = 0
    start = time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds or calls >= max_calls:
            return calls / elapsed


def populate(index: Index, n: int) -> None:
    schema = make_schema_row("Sample", "1.0.0")
    records = [
        make_record(f"dataset-{i:05d}", metadata={"split": "train", "i": i, "tags": ["a", "b"]})
        for i in range(n)
    ]
    start = time.perf_counter()
    index.backend.write_catalog([schema], records)
    print(f"  wrote {n} entries in {time.perf_counter() - start:.1f}s", flush=True)


def bench(label: str, index: Index, n: int, rng: random.Random) -> dict[str, float]:
    names = [f"dataset-{i:05d}" for i in range(n)]
    backend = index.backend
    out = {
        "get (Index)": rate(lambda: index.get_dataset(rng.choice(names))),
        "get (backend)": rate(lambda: backend.get_dataset(rng.choice(names))),
        "get miss (backend)": rate(lambda: backend.get_dataset("no-such-dataset")),
        "list (passes)": rate(lambda: index.list_datasets(), min_seconds=3.0, max_calls=50),
    }
    out["list (entries)"] = out["list (passes)"] * n
    print(f"  {label}: " + ", ".join(f"{k} {v:,.1f}/s" for k, v in out.items()), flush=True)
    return out


def atdata_scan_lookup(client, name: str) -> dict:
    """atdata 0.2's get_entry_by_name: SCAN every entry key, HGETALL each, compare names."""
    for key in client.scan_iter(match="LocalDatasetEntry:*"):
        fields = client.hgetall(key)
        if fields.get(b"name", b"").decode() == name:
            return fields
    raise KeyError(name)


def scratch_postgres(url: str) -> str:
    """Create a scratch database next to ``url``'s and return its URL (dropped at exit)."""
    import atexit

    import sqlalchemy as sa

    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"atl_bench_{random.randrange(1 << 30):x}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    atexit.register(drop)
    return sa.make_url(url).set(database=name).render_as_string(hide_password=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    parser.add_argument(
        "--postgres",
        default=None,
        help="also run on PostgreSQL: a server URL; a scratch database is created and dropped",
    )
    parser.add_argument("--atdata-lookups", type=int, default=3)
    parser.add_argument("--force", action="store_true", help="flush a non-empty Redis DB")
    args = parser.parse_args()

    import redis

    client = redis.Redis.from_url(args.redis)
    if client.dbsize() and not args.force:
        print(f"{args.redis} is not empty; pass --force to flush it", file=sys.stderr)
        return 2
    client.flushdb()
    rng = random.Random(0)
    results: dict[str, dict[str, float]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            targets = [("sqlite", str(Path(tmp) / "bench.db")), ("redis", args.redis)]
            if args.postgres:
                targets.insert(1, ("postgresql", scratch_postgres(args.postgres)))
            for label, location in targets:
                print(f"{label}: {location}", flush=True)
                with Index(location) as index:
                    populate(index, args.n)
                    results[label] = bench(label, index, args.n, rng)
        start = time.perf_counter()
        for _ in range(args.atdata_lookups):
            atdata_scan_lookup(client, f"dataset-{rng.randrange(args.n):05d}")
        scan_rate = args.atdata_lookups / (time.perf_counter() - start)
    finally:
        client.flushdb()
        client.close()

    print(f"\n{args.n:,} datasets, one process, loopback servers")
    cols = list(results)
    print(f"{'operation':<20}" + "".join(f"{c:>16}" for c in cols))
    for metric in next(iter(results.values())):
        print(f"{metric:<20}" + "".join(f"{results[c][metric]:>14,.1f}/s" for c in cols))
    pad = "".join(f"{'':>16}" for _ in cols[:-1])
    print(f"{'atdata 0.2 scan get':<20}{pad}{scan_rate:>14,.2f}/s   (atdata's own lookup)")
    ok = results["redis"]["get (Index)"] >= 1000
    print(f"\ntarget get-by-name on Redis >= 1,000/s: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
