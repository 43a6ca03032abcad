"""Change notification: ``Index.data_version()`` and ``Index.watch()``, with the writer in
another process, on every backend."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from atdata_lite.index.api import Index
from tests._index_helpers import BACKENDS, Point, write_points

ROOT = Path(__file__).resolve().parent.parent

_WRITER = """
import sys
from atdata_lite.index.api import Index
from tests._index_helpers import Point
with Index(sys.argv[1]) as ix:
    ref = ix.publish_schema(Point)
    ix.add_shards([sys.argv[3]], name=sys.argv[2], schema_ref=ref)
"""


def _location(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "sqlite":
        return str(tmp_path / "index.db")
    return request.getfixturevalue("postgres_url" if kind == "postgres" else "redis_url")


def _insert_elsewhere(location: str, name: str, shard: str) -> None:
    subprocess.run(
        [sys.executable, "-c", _WRITER, location, name, shard],
        cwd=ROOT,
        check=True,
        timeout=120,
    )


@pytest.mark.parametrize("kind", BACKENDS)
def test_data_version_changes_after_another_process_inserts(kind, tmp_path, request) -> None:
    if kind != "sqlite":
        request.applymarker(getattr(pytest.mark, kind))
    location = _location(kind, tmp_path, request)
    shards = write_points(tmp_path / "src", shards=2)
    first, second = shards.replace("{000..001}", "000"), shards.replace("{000..001}", "001")
    with Index(location) as ix:
        before = ix.data_version()
        # Reads never change it.
        ix.list_datasets()
        ix.list_schemas()
        with pytest.raises(KeyError):
            ix.get_dataset("nothing-here")
        assert ix.data_version() == before
        _insert_elsewhere(location, "from-elsewhere", first)
        after = ix.data_version()
        assert after != before
        assert ix.data_version() == after  # stable while nothing changes
        # This index's own writes count too.
        ix.add_shards([second], name="from-here", schema_ref=ix.publish_schema(Point))
        assert ix.data_version() != after


@pytest.mark.parametrize("kind", BACKENDS)
def test_watch_calls_back_after_another_process_inserts(kind, tmp_path, request) -> None:
    if kind != "sqlite":
        request.applymarker(getattr(pytest.mark, kind))
    location = _location(kind, tmp_path, request)
    shard = write_points(tmp_path / "src", shards=1).replace("{000..000}", "000")
    seen: list[int] = []
    changed = threading.Event()

    def callback(version: int) -> None:
        seen.append(version)
        changed.set()

    ix = Index(location)
    try:
        watch = ix.watch(callback, interval=0.05)
        assert watch.running
        ix.list_datasets()
        assert not changed.wait(0.3)  # a read is not a change
        _insert_elsewhere(location, "from-elsewhere", shard)
        assert changed.wait(10), "the watch never called back"
        assert seen[-1] == ix.data_version()
        watch.stop()
        assert not watch.running
        # close() stops the watches still running: no thread outlives the index.
        other = ix.watch(callback, interval=0.05)
    finally:
        ix.close()
    assert not other.running
    assert not [t for t in threading.enumerate() if t.name == "atdata-lite-watch"]


def test_watch_refuses_a_bad_interval_and_a_closed_index(tmp_path) -> None:
    from atdata_lite.errors import IndexOpenError

    ix = Index(tmp_path / "index.db")
    with pytest.raises(ValueError, match="interval"):
        ix.watch(print, interval=0)
    ix.close()
    with pytest.raises(IndexOpenError):
        ix.watch(print)
