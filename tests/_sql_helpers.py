"""Helpers shared by the SQL backend and migration tests."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from atdata_lite.index.backend import DatasetRecord, ShardRecord

DATA = Path(__file__).parent / "data" / "index"
REV1 = "a1c3e0d9b7f1"


def copy_rev1(tmp_path: Path, name: str = "index.db") -> Path:
    """A private copy of the committed revision-1 index file."""
    dest = tmp_path / name
    shutil.copyfile(DATA / f"index-{REV1}.db", dest)
    return dest


def sqlite_dump(path: Path) -> list[str]:
    """The file's whole content as SQL (read with a plain connection, no settings)."""
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def record(name: str, cid: str | None = None, urls: tuple[str, ...] = ("u0",)) -> DatasetRecord:
    return DatasetRecord(
        cid=cid or f"bafy-{name}",
        name=name,
        schema_ref="atdata://local/sampleSchema/S@1.0.0",
        shards=tuple(ShardRecord(u, 10, 1, None) for u in urls),
        metadata=b"\x80",
    )


def reflect_schema(url: str) -> dict[str, Any]:
    """Tables, columns (type, nullability), keys, uniques and indexes, comparably."""
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        inspector = sa.inspect(engine)
        out: dict[str, Any] = {}
        for table in sorted(inspector.get_table_names()):
            out[table] = {
                "columns": [
                    (c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)
                ],
                "pk": (
                    inspector.get_pk_constraint(table)["name"],
                    inspector.get_pk_constraint(table)["constrained_columns"],
                ),
                "fks": sorted(
                    (
                        f["name"],
                        tuple(f["constrained_columns"]),
                        f["referred_table"],
                        str(f.get("options")),
                    )
                    for f in inspector.get_foreign_keys(table)
                ),
                "uniques": sorted(
                    (u["name"], tuple(u["column_names"]))
                    for u in inspector.get_unique_constraints(table)
                ),
                "indexes": sorted(
                    (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                    for i in inspector.get_indexes(table)
                ),
            }
        return out
    finally:
        engine.dispose()


# --- several processes at once ----------------------------------------------------------


def _worker(func_name: str, barrier: Any, queue: Any, args: tuple[Any, ...]) -> None:
    try:
        barrier.wait(timeout=120)
        queue.put(("ok", globals()[func_name](*args)))
    except BaseException as exc:  # report everything to the parent
        import traceback

        queue.put(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))


def run_processes(func_name: str, args_list: list[tuple[Any, ...]]) -> list[Any]:
    """Run ``func_name(*args)`` (a function of this module) in one process per ``args``,
    all released at the same moment; return their results, or fail with their errors."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(args_list))
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(func_name, barrier, queue, a)) for a in args_list]
    for p in procs:
        p.start()
    results = [queue.get(timeout=280) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    errors = [r[1] for r in results if r[0] == "error"]
    assert not errors, "\n".join(errors)
    return [r[1] for r in results]


def open_and_describe(location: str) -> tuple[str, int]:
    from atdata_lite.index.sql import open_sql_backend

    backend = open_sql_backend(location)
    try:
        return backend.describe()["revision"], sum(1 for _ in backend.iter_datasets())
    finally:
        backend.close()


def insert_many(location: str, worker: int, count: int) -> int:
    from atdata_lite.index.sql import open_sql_backend

    backend = open_sql_backend(location)
    try:
        for i in range(count):
            backend.insert_datasets([record(f"w{worker}-{i:04d}")])
        return count
    finally:
        backend.close()


def publish_auto(location: str, tag: str) -> str:
    from atdata_lite.index.sql import open_sql_backend

    backend = open_sql_backend(location)
    try:
        row, created = backend.publish_schema(
            "Concurrent", None, lambda v: f'{{"version": "{v}", "tag": "{tag}"}}', f"hash-{tag}"
        )
        assert created
        return row.version
    finally:
        backend.close()
