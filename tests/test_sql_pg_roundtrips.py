"""Round trips of a PostgreSQL lookup, counted in libpq's protocol trace (no timing).

A lookup by name or by CID through the public ``Index`` API must cost one round trip once
psycopg has prepared its statement: one ``Sync`` (the client then waits for the server's
``ReadyForQuery``), no ``Query`` (no ``BEGIN``, ``ROLLBACK``, ping or version check) and no
``Parse``. The libpq trace records every protocol message the client sends.
"""

from __future__ import annotations

import collections
from pathlib import Path

import pytest
import sqlalchemy as sa

from atdata_lite import Index
from atdata_lite.testing import make_record, make_schema_row

pytestmark = pytest.mark.postgres

# psycopg prepares a statement on its sixth run on a connection (prepare_threshold 5).
_WARM_UP = 8
_CALLS = 10


def _frontend_messages(trace: Path, start: int) -> collections.Counter[str]:
    """Messages the client sent since byte ``start`` of the trace, by type."""
    with trace.open() as f:
        f.seek(start)
        lines = f.read().splitlines()
    kinds: collections.Counter[str] = collections.Counter()
    for line in lines:
        parts = line.split("\t")
        # "<timestamp>\tF\t<length>\t<Type> ..." (continuation lines of a query have no tabs)
        if len(parts) >= 4 and parts[1] == "F":
            kinds[parts[3].split(" ")[0]] += 1
    return kinds


def test_a_lookup_is_one_round_trip(postgres_url, tmp_path) -> None:
    psycopg = pytest.importorskip("psycopg")
    if psycopg.pq.version() < 140000:
        pytest.skip("libpq 14 or newer is needed for protocol traces")
    trace = tmp_path / "libpq.trace"
    with Index(postgres_url) as index, trace.open("w") as out:
        records = [make_record(f"d{i}") for i in range(20)]
        index.backend.write_catalog([make_schema_row("Sample", "1.0.0")], records)
        # The reads' own pool (an engine in autocommit, internal to the backend): trace
        # every connection it makes from now on.
        reads: sa.Engine = index.backend._x.engine  # type: ignore[attr-defined]
        reads.dispose()

        @sa.event.listens_for(reads, "connect")
        def _trace(dbapi_connection, _record) -> None:
            dbapi_connection.pgconn.trace(out.fileno())

        lookups = {
            "get_dataset": lambda: index.get_dataset("d3"),
            "get_entry": lambda: index.get_entry(records[4].cid),
            "get_entry_by_name": lambda: index.get_entry_by_name("d5"),
        }
        for label, lookup in lookups.items():
            for _ in range(_WARM_UP):
                lookup()
            out.flush()
            start = trace.stat().st_size
            for _ in range(_CALLS):
                assert lookup() is not None
            out.flush()
            sent = _frontend_messages(trace, start)
            # One Bind/Execute/Sync per call: a prepared statement, one round trip.
            assert sent["Sync"] == _CALLS, (label, sent)
            assert sent["Query"] == 0 and sent["Parse"] == 0, (label, sent)
            assert sent["Bind"] == sent["Execute"] == _CALLS, (label, sent)
