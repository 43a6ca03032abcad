"""Build the committed index files of older revisions (run once per released revision).

    python tests/data/index/make_index_files.py

Each file is built by Alembic at that revision (never by the current code) and filled with
plain SQL, so it is what an atdata-lite of that revision would have left on a user's disk:
WAL mode, checkpointed, no ``-wal`` file. ``tests/test_migrations.py`` opens copies of them
with the current code.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

REV1 = "a1c3e0d9b7f1"

SCHEMAS = [
    # name, version, record_json, content_hash, semver parts
    (
        "ImageSample",
        "1.0.0",
        '{"name": "ImageSample", "version": "1.0.0", "fields": []}',
        "a" * 64,
        1,
        0,
        0,
    ),
    (
        "ImageSample",
        "1.0.1",
        '{"name": "ImageSample", "version": "1.0.1", "fields": []}',
        "b" * 64,
        1,
        0,
        1,
    ),
    (
        "Legacy",
        "banana",
        '{"name": "Legacy", "version": "banana", "fields": []}',
        "c" * 64,
        None,
        None,
        None,
    ),
]
DATASETS = [
    # cid, name, schema_ref, metadata (msgpack), legacy_uuid, shards [(url, size, count, sha)]
    (
        "bafyreione",
        "mnist-train",
        "atdata://local/sampleSchema/ImageSample@1.0.0",
        b"\x81\xa5split\xa5train",
        None,
        [
            ("s3://b/mnist/data-000000.tar", 1000, 10, "d" * 64),
            ("s3://b/mnist/data-000001.tar", 900, 9, None),
        ],
    ),
    (
        "bafyreitwo",
        "mnist-test",
        "atdata://local/sampleSchema/ImageSample@1.0.1",
        None,
        "uuid-1",
        [("/data/mnist-test-{0..2}.tar", None, None, None)],
    ),
    ("bafyreithree", "empty", "local://schemas/mod.Legacy@banana", None, None, []),
]


def build_rev1(path: Path, *, duplicate_cid: bool = False) -> None:
    """Build an index at revision 1 at ``path`` (overwritten)."""
    import sqlalchemy as sa
    from alembic import command

    from atdata_lite.index.sql.migrate import alembic_config

    path.unlink(missing_ok=True)
    engine = sa.create_engine(f"sqlite:///{path}", poolclass=sa.NullPool)
    with engine.connect() as conn, conn.begin():
        command.upgrade(alembic_config(conn), REV1)
    engine.dispose()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("BEGIN")
    created = "2026-01-02 03:04:05.000000"
    for s in SCHEMAS:
        conn.execute(
            "INSERT INTO schemas (name, version, record_json, content_hash, created_at, "
            "semver_major, semver_minor, semver_patch) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (s[0], s[1], s[2], s[3], created, *s[4:]),
        )
    datasets = list(DATASETS)
    if duplicate_cid:  # allowed at revision 1, refused from revision 2 on
        datasets.append(("bafyreione", "mnist-again", DATASETS[0][2], None, None, []))
    for cid, name, ref, meta, legacy, shards in datasets:
        cur = conn.execute(
            "INSERT INTO datasets (cid, name, schema_ref, metadata, legacy_uuid, created_at, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (cid, name, ref, meta, legacy, created, created),
        )
        for pos, (url, size, count, sha) in enumerate(shards):
            conn.execute(
                "INSERT INTO dataset_shards (dataset_id, position, url, size, sample_count, "
                "sha256) VALUES (?, ?, ?, ?, ?, ?)",
                (cur.lastrowid, pos, url, size, count, sha),
            )
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


if __name__ == "__main__":
    build_rev1(HERE / f"index-{REV1}.db")
    print("wrote", HERE / f"index-{REV1}.db")
