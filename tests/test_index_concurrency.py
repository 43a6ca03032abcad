"""One Index shared by threads, and used again in a forked child (DataLoader workers)."""

from __future__ import annotations

import multiprocessing
import os
import threading

import pytest
from _index_helpers import BACKENDS, Point, index_on

from atdata_lite.dataset import Dataset


@pytest.fixture(params=BACKENDS)
def any_index(request, tmp_path):
    yield from index_on(request.param, request, tmp_path)


def test_threads_share_one_index(any_index):
    ref = any_index.publish_schema(Point)
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(25):
                name = f"t{t}-{i:02d}"
                any_index.add_entry(Dataset[Point](f"{name}.tar"), name=name, schema_ref=ref)
                assert any_index.get_dataset(name).data_urls == [os.path.abspath(f"{name}.tar")]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(any_index.list_datasets()) == 200


def _child(index, queue) -> None:
    try:
        entry = index.get_dataset("before-fork")
        name = f"child-{os.getpid()}"
        index.add_entry(Dataset[Point](f"{name}.tar"), name=name)
        queue.put(("ok", entry.name))
    except BaseException as exc:  # report, don't hang the parent
        queue.put(("error", repr(exc)))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_index_is_usable_after_fork(any_index):
    any_index.add_entry(Dataset[Point]("a.tar"), name="before-fork")
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_child, args=(any_index, queue)) for _ in range(3)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(60)
    assert results == [("ok", "before-fork")] * 3
    # The parent keeps working on its own connections.
    assert len([e for e in any_index.list_datasets() if e.name.startswith("child-")]) == 3
    assert any_index.get_dataset("before-fork").name == "before-fork"
