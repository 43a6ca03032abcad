"""Build the committed index files of older revisions (run once per released revision).

    python tests/data/index/make_index_files.py [REVISION ...]   # default: every revision

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
REV3 = "c4e6a8b0d2f5"  # named splits: dataset_shards.split
REV4 = "d7f9b1c3e5a8"  # dataset versions, labels, lenses

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


def _alembic_file(path: Path, revision: str) -> None:
    """An empty index file at ``revision``, made by Alembic (``path`` is overwritten)."""
    import sqlalchemy as sa
    from alembic import command

    from atdata_lite.index.sql.migrate import alembic_config

    path.unlink(missing_ok=True)
    engine = sa.create_engine(f"sqlite:///{path}", poolclass=sa.NullPool)
    with engine.connect() as conn, conn.begin():
        command.upgrade(alembic_config(conn), revision)
    engine.dispose()


def build_rev1(path: Path, *, duplicate_cid: bool = False) -> None:
    """Build an index at revision 1 at ``path`` (overwritten)."""
    _alembic_file(path, REV1)
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


# Revision 3 adds a dataset with named splits whose shards are real files, committed under
# SHARDS_REV3 and recorded store-relative (``store://pts/...``): a test copies them into a
# data store and loads the dataset after the upgrade.
SHARDS_REV3 = HERE / f"shards-{REV3}"
POINT_SCHEMA = (
    "Point",
    "1.0.0",
    '{"name": "Point", "version": "1.0.0", "fields": [{"name": "x", "fieldType": {"$type": '
    '"local#primitive", "primitive": "int"}, "optional": false}, {"name": "y", "fieldType": '
    '{"$type": "local#primitive", "primitive": "int"}, "optional": false}], "description": '
    'null, "createdAt": "2026-01-02T03:04:05+00:00"}',
    "200ad24e07e8071802da920613573303e5dd9ce3017a9930764446b906b33b19",
    1,
    0,
    0,
)
#: The split dataset of revision 3: split -> number of points in each of its shards.
POINT_SPLITS = {"train": [4, 3], "test": [2]}


def _write_point_shards() -> list[tuple[str, int, int, str, str]]:
    """Write the shards of ``pts`` (x counts up from 0 within each split); their rows."""
    import hashlib

    from atdata_lite.samples import packable
    from atdata_lite.shards import write_samples

    @packable
    class Point:
        x: int
        y: int

    rows = []
    for split, counts in POINT_SPLITS.items():
        start = 0
        for i, n in enumerate(counts):
            rel = f"pts/{split}-{i:03d}.tar"
            target = SHARDS_REV3 / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            write_samples([Point(x=start + j, y=i) for j in range(n)], str(target), progress=False)
            start += n
            data = target.read_bytes()
            rows.append((f"store://{rel}", len(data), n, hashlib.sha256(data).hexdigest(), split))
    return rows


def build_rev3(path: Path) -> None:
    """Build an index at revision 3 (named splits) at ``path``, and its shard files."""
    from atdata_lite.cid import dataset_cid

    _alembic_file(path, REV3)
    shards = _write_point_shards()
    ref = "atdata://local/sampleSchema/Point@1.0.0"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("BEGIN")
    created = "2026-01-02 03:04:05.000000"
    for s in [*SCHEMAS, POINT_SCHEMA]:
        conn.execute(
            "INSERT INTO schemas (name, version, record_json, content_hash, created_at, "
            "semver_major, semver_minor, semver_patch) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (s[0], s[1], s[2], s[3], created, *s[4:]),
        )
    datasets = [(*d[:5], [(*sh, None) for sh in d[5]]) for d in DATASETS]
    datasets.append(
        (dataset_cid(ref, [s[0] for s in shards]), "pts", ref, b"\x81\xa6source\xa4rev3",
         None, shards)
    )  # fmt: skip
    for cid, name, schema_ref, meta, legacy, rows in datasets:
        cur = conn.execute(
            "INSERT INTO datasets (cid, name, schema_ref, metadata, legacy_uuid, created_at, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (cid, name, schema_ref, meta, legacy, created, created),
        )
        for pos, (url, size, count, sha, split) in enumerate(rows):
            conn.execute(
                "INSERT INTO dataset_shards (dataset_id, position, url, size, sample_count, "
                "sha256, split) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (cur.lastrowid, pos, url, size, count, sha, split),
            )
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def _point_shard_rows() -> list[tuple[str, int, int, str, str]]:
    """The rows of revision 3's committed ``pts`` shards, read from the files themselves."""
    import hashlib

    rows = []
    for split, counts in POINT_SPLITS.items():
        for i, n in enumerate(counts):
            rel = f"pts/{split}-{i:03d}.tar"
            data = (SHARDS_REV3 / rel).read_bytes()
            rows.append((f"store://{rel}", len(data), n, hashlib.sha256(data).hexdigest(), split))
    return rows


def build_rev4(path: Path) -> None:
    """Build an index at revision 4 (versions, labels) at ``path``.

    It holds revision 3's datasets (``pts`` names the committed shards of revision 3), a
    second version of ``mnist-train`` and two labels: the last revision before entries
    carried their packed shard list.
    """
    from atdata_lite.cid import dataset_cid

    _alembic_file(path, REV4)
    shards = _point_shard_rows()
    ref = "atdata://local/sampleSchema/Point@1.0.0"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("BEGIN")
    created = "2026-01-02 03:04:05.000000"
    later = "2026-02-03 04:05:06.000000"
    for s in [*SCHEMAS, POINT_SCHEMA]:
        conn.execute(
            "INSERT INTO schemas (name, version, record_json, content_hash, created_at, "
            "semver_major, semver_minor, semver_patch) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (s[0], s[1], s[2], s[3], created, *s[4:]),
        )
    datasets = [(*d[:5], [(*sh, None) for sh in d[5]], "1.0.0", created) for d in DATASETS]
    datasets.append(
        (dataset_cid(ref, [s[0] for s in shards]), "pts", ref, b"\x81\xa6source\xa4rev4",
         None, shards, "1.0.0", created)
    )  # fmt: skip
    datasets.append(
        ("bafyreifour", "mnist-train", DATASETS[0][2], None, None,
         [("s3://b/mnist/v2/data-000000.tar", 2000, 20, "e" * 64, None)], "1.0.1", later)
    )  # fmt: skip
    ids = {}
    for cid, name, schema_ref, meta, legacy, rows, version, when in datasets:
        major, minor, patch = (int(p) for p in version.split("."))
        cur = conn.execute(
            "INSERT INTO datasets (cid, name, schema_ref, metadata, legacy_uuid, created_at, "
            "updated_at, version, semver_major, semver_minor, semver_patch) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (cid, name, schema_ref, meta, legacy, when, when, version, major, minor, patch),
        )
        ids[cid] = cur.lastrowid
        for pos, (url, size, count, sha, split) in enumerate(rows):
            conn.execute(
                "INSERT INTO dataset_shards (dataset_id, position, url, size, sample_count, "
                "sha256, split) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (cur.lastrowid, pos, url, size, count, sha, split),
            )
    for name, version, cid in (
        ("mnist-train", "stable", "bafyreione"),
        ("pts", "", datasets[3][0]),
    ):
        conn.execute(
            "INSERT INTO labels (name, version, dataset_id, description, created_at, "
            "updated_at) VALUES (?, ?, ?, NULL, ?, ?)",
            (name, version, ids[cid], later, later),
        )
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


BUILDERS = {REV1: build_rev1, REV3: build_rev3, REV4: build_rev4}

if __name__ == "__main__":
    for revision in sys.argv[1:] or list(BUILDERS):
        BUILDERS[revision](HERE / f"index-{revision}.db")
        print("wrote", HERE / f"index-{revision}.db")
