"""Get-by-name and list rates at 10,000 datasets: SQLite, PostgreSQL and Redis, each next
to its own client library doing the same reads.

Run:  python benchmarks/redis.py [--n 10000] [--redis redis://127.0.0.1:6379/15]
                                 [--postgres postgresql+psycopg://postgres@127.0.0.1/test]

The Redis database must be empty (it is flushed afterwards) unless --force is given. Each
backend gets the same 10,000 entries (bulk-written with write_catalog), then:

* get by name: random existing names through ``Index.get_dataset`` (decodes the entry),
  and through the backend alone;
* list: full ``Index.list_datasets()`` passes;
* raw client: the driver alone, no atdata-lite, doing the same reads and returning its raw
  rows: ``sqlite3`` and psycopg (autocommit, psycopg's automatic prepared statements) run
  the very SQL the backend runs for a lookup by name and for a listing; redis-py runs
  ``HGETALL`` of the entry's hash (one round trip, the same bytes a lookup returns) and,
  for a listing, ``SCAN`` plus pipelined ``HGETALL`` as the backend does. Index and raw
  lookups alternate round by round and keep each side's best round;
* for scale, atdata 0.2's own lookup (SCAN + HGETALL per key until the name matches) on
  the same Redis data, a few times.

A lookup by name costs one round trip on PostgreSQL and on Redis (see
``atdata_lite/index/sql/_pgread.py`` and ``atdata_lite/index/redis/_scripts.py``); the
target checks that a PostgreSQL lookup through the Index stays within 2x of psycopg alone.
On Redis the raw side is a bare ``HGETALL`` while a lookup by name runs a script (name to
CID, then the hash) and decodes the entry, so its ratio is reported, not targeted.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def best_rates(sides: list[Callable[[str], object]], names: list[str], rounds: int) -> list[float]:
    """Best rate of each side over ``rounds`` rounds of ``names`` lookups, sides alternating."""
    best = [0.0] * len(sides)
    for side in sides:
        side(names[0])  # warm up (connections, prepared statements, script cache)
    for _ in range(rounds):
        for k, side in enumerate(sides):
            start = time.perf_counter()
            for name in names:
                side(name)
            best[k] = max(best[k], len(names) / (time.perf_counter() - start))
    return best


class RawSql:
    """The driver alone (``sqlite3`` or psycopg) running the backend's own SQL."""

    def __init__(self, index: Index) -> None:
        from atdata_lite.index.sql import backend as sql

        engine = index.backend.engine
        dialect = engine.dialect
        get = sql._RESOLVE_NAME.compile(dialect=dialect)
        self.list_sql = str(sql._LIST_DATASETS.compile(dialect=dialect))
        self.get_sql, self.params = str(get), dict(get.params)
        url = engine.url
        if url.get_backend_name() == "sqlite":
            import sqlite3

            self.conn: Any = sqlite3.connect(url.database, isolation_level=None)
            # sqlite3 takes ? placeholders in order: name, then the statement's own values.
            names = get.positiontup or []
            self.order = list(names)
        else:
            import psycopg

            dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
            self.conn = psycopg.connect(dsn, autocommit=True)
            self.order = None

    def get(self, name: str) -> object:
        params = {**self.params, "name": name}
        if self.order is not None:
            return self.conn.execute(self.get_sql, [params[k] for k in self.order]).fetchall()
        return self.conn.execute(self.get_sql, params).fetchall()

    def list(self) -> int:
        return len(self.conn.execute(self.list_sql).fetchall())

    def close(self) -> None:
        self.conn.close()


class RawRedis:
    """redis-py alone: ``HGETALL`` of an entry's hash; ``SCAN`` + pipelined ``HGETALL``."""

    def __init__(self, index: Index, url: str) -> None:
        import redis

        from atdata_lite.index.redis._layout import ENTRY_PREFIX, entry_key

        self.client = redis.Redis.from_url(url)
        self.keys = {r.name: entry_key(r.cid) for r in index.backend.iter_datasets()}
        self.pattern = ENTRY_PREFIX + "*"

    def get(self, name: str) -> object:
        return self.client.hgetall(self.keys[name])

    def list(self) -> int:
        keys = list(self.client.scan_iter(match=self.pattern, count=1000))
        rows = []
        for start in range(0, len(keys), 1000):
            pipe = self.client.pipeline(transaction=False)
            for key in keys[start : start + 1000]:
                pipe.hgetall(key)
            rows.extend(pipe.execute())
        return len(rows)

    def close(self) -> None:
        self.client.close()


def bench(label: str, index: Index, n: int, rng: random.Random, raw: Any) -> dict[str, float]:
    names = [f"dataset-{i:05d}" for i in range(n)]
    backend = index.backend
    sample = [rng.choice(names) for _ in range(min(n, 2000))]
    get_index, get_raw = best_rates([index.get_dataset, raw.get], sample, 5)
    list_index, list_raw = best_rates(
        [lambda _: index.list_datasets(), lambda _: raw.list()], [""], 5
    )
    out = {
        "get (Index)": get_index,
        "get (raw client)": get_raw,
        "get (backend)": rate(lambda: backend.get_dataset(rng.choice(names))),
        "get miss (backend)": rate(lambda: backend.get_dataset("no-such-dataset")),
        "list (passes)": list_index,
        "list (entries)": list_index * n,
        "list raw (entries)": list_raw * n,
    }
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
                    raw = RawRedis(index, location) if label == "redis" else RawSql(index)
                    try:
                        results[label] = bench(label, index, args.n, rng, raw)
                    finally:
                        raw.close()
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
    print("\nIndex / raw client (same reads); target: get >= 0.5 on PostgreSQL")
    ok = results["redis"]["get (Index)"] >= 1000
    for label, row in results.items():
        ratio = row["get (Index)"] / row["get (raw client)"]
        listing = row["list (entries)"] / row["list raw (entries)"]
        met = ("met" if ratio >= 0.5 else "NOT met") if label == "postgresql" else ""
        ok = ok and (label != "postgresql" or ratio >= 0.5)
        print(f"  {label:<12} get {ratio:5.2f} {met:8} list {listing:5.2f}")
    print(f"target get-by-name on Redis >= 1,000/s: "
          f"{'met' if results['redis']['get (Index)'] >= 1000 else 'NOT met'}")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
