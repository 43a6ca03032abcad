"""Concurrency soak: processes x threads inserting, publishing, renaming, deleting and listing.

On SQLite, PostgreSQL and Redis, several processes (each with several threads sharing one
backend) hammer one index for a while; every thread records what it believes it wrote. Then
the index must hold exactly that: zero lost, zero duplicates, no "database is locked" (nor
any other error), each shared name won by exactly one writer, and every publish a distinct
version that is stored.

CI runs 4 processes x 2 threads for about 10 s per backend; ``ATDATA_LITE_LONG_TESTS=1``
runs 6 x 2 for 60 s.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any

import pytest
from _soak_helpers import SCHEMA, run_soak

from atdata_lite.index import open_backend

LONG = os.environ.get("ATDATA_LITE_LONG_TESTS", "") not in ("", "0")
PROCESSES, THREADS, SECONDS = (6, 2, 60.0) if LONG else (4, 2, 10.0)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(SECONDS + 280),
]  # slow: the concurrency soak on three backends


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
def soak_location(request, tmp_path) -> str:
    if request.param == "sqlite":
        location = str(tmp_path / "soak.db")
    elif request.param == "postgresql":
        location = request.getfixturevalue("postgres_url")
    else:
        location = request.getfixturevalue("redis_url")
    open_backend(location).close()  # created before the race: this soak is about writes
    return location


def _stored(location: str) -> tuple[list[Any], list[str]]:
    backend = open_backend(location)
    try:
        datasets = list(backend.iter_datasets())
        versions = [s.version for s in backend.iter_schemas() if s.name == SCHEMA]
        for version in versions:  # each version holds the record of the publish that took it
            assert json.loads(backend.get_schema(SCHEMA, version).record_json)["version"] == (
                version
            )
        return datasets, versions
    finally:
        backend.close()


def test_soak_nothing_lost_nothing_duplicated(soak_location):
    reports = run_soak(soak_location, PROCESSES, THREADS, SECONDS)
    errors = [e for r in reports for e in r["errors"]]
    assert not errors, f"{len(errors)} errors, first ones:\n" + "\n".join(errors[:5])
    assert not any("database is locked" in e for e in errors)
    total_ops = sum(r["ops"] for r in reports)
    assert total_ops >= PROCESSES * THREADS * 10, f"only {total_ops} operations ran"

    datasets, versions = _stored(soak_location)
    names = [d.name for d in datasets]
    assert len(names) == len(set(names)), "a name is stored twice"
    cids = [d.cid for d in datasets]
    assert len(cids) == len(set(cids)), "a CID is stored twice"
    stored = {d.name: d.data_urls for d in datasets}

    # Each thread's own names: exactly what it believes it wrote.
    expected: dict[str, list[str]] = {}
    for report in reports:
        expected.update(report["live"])
    own = {n: u for n, u in stored.items() if not n.startswith("shared-")}
    lost = sorted(set(expected) - set(own))
    extra = sorted(set(own) - set(expected))
    assert not lost, f"lost: {lost[:10]}"
    assert not extra, f"stored but deleted or renamed away: {extra[:10]}"
    assert own == expected

    # Shared names: one winner each, and the stored entry is the winner's.
    winners = Counter(n for r in reports for n in r["won"])
    assert all(count == 1 for count in winners.values()), winners
    won = {n: u for r in reports for n, u in r["won"].items()}
    assert {n: u for n, u in stored.items() if n.startswith("shared-")} == won

    # Publishes: every one took its own version, and every version is stored.
    published = [v for r in reports for v in r["published"]]
    assert published, "no publish ran"
    assert len(published) == len(set(published)), "two publishes took one version"
    assert sorted(versions) == sorted(published)
