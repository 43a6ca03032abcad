"""Progress as data and cancellation: events from every long operation, and a cancelled
operation that leaves nothing behind (checked on disk and in a moto S3 bucket)."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from atdata_lite.errors import OperationCancelled
from atdata_lite.index.api import Index
from atdata_lite.progress import ProgressEvent
from atdata_lite.shards import write_samples
from atdata_lite.stores import FsspecDataStore
from tests._index_helpers import Point, write_points


def _check_events(events: list[ProgressEvent], *, total: int | None) -> None:
    assert events, "no progress event at all"
    dones = [e.done for e in events]
    assert dones == sorted(dones), dones  # done never decreases
    assert [e.finished for e in events].count(True) == 1  # one final event...
    assert events[-1].finished  # ...and it is the last one
    assert events[0].done == 0 and not events[0].finished  # a start event
    assert events[-1].total == total and {e.total for e in events} <= {None, total}
    if total is not None:
        assert events[-1].done == total


def _points(n: int):
    return [Point(x=i, y=-i) for i in range(n)]


def _files(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


class CancelAfter:
    """A progress callback that sets ``event`` once ``n`` units are done."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.event = threading.Event()
        self.events: list[ProgressEvent] = []

    def __call__(self, event: ProgressEvent) -> None:
        self.events.append(event)
        if event.done >= self.n:
            self.event.set()


def _slow_points(n: int, event: threading.Event, at: int):
    for i in range(n):
        if i == at:
            event.set()  # as if a host's cancel button was pressed mid-write
        yield Point(x=i, y=i)


# --- progress ------------------------------------------------------------------------------


def test_write_samples_reports_events(tmp_path: Path) -> None:
    events: list[ProgressEvent] = []
    records = write_samples(
        _points(250), str(tmp_path / "s-%03d.tar"), maxcount=100, progress=events.append
    )
    assert len(records) == 3
    _check_events(events, total=250)
    assert {e.unit for e in events} == {"sample"}
    assert events[-1].operation == "writing samples"
    # A new shard is reported as soon as it is started.
    assert {e.item for e in events if e.item} == {r.url for r in records}


def test_insert_through_a_store_and_verify_report_events(tmp_path: Path) -> None:
    with Index(tmp_path / "index.db", data_store=FsspecDataStore(str(tmp_path / "store"))) as ix:
        from atdata_lite.dataset import Dataset

        src = write_points(tmp_path / "src", shards=3, per_shard=40)
        events: list[ProgressEvent] = []
        ix.insert_dataset(Dataset[Point](src), name="pts", maxcount=50, progress=events.append)
        _check_events(events, total=None)  # a dataset does not know its length up front
        assert events[-1].done == 120

        from atdata_lite.verify import verify_datasets

        checks: list[ProgressEvent] = []
        report = verify_datasets(ix, ["pts"], progress=checks.append)
        assert report.ok and len(report.shards) == 3
        _check_events(checks, total=3)
        assert checks[-1].unit == "shard"


def test_failed_operation_still_sends_one_final_event(tmp_path: Path) -> None:
    events: list[ProgressEvent] = []

    def broken():
        yield Point(x=1, y=1)
        raise RuntimeError("source broke")

    with pytest.raises(RuntimeError):
        write_samples(broken(), str(tmp_path / "b-%d.tar"), progress=events.append)
    assert events[-1].finished and [e.finished for e in events].count(True) == 1
    assert _files(tmp_path) == []


# --- cancellation --------------------------------------------------------------------------


def test_cancel_mid_write_on_local_disk_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    cancel = threading.Event()
    with pytest.raises(OperationCancelled) as info:
        write_samples(
            _slow_points(10_000, cancel, at=2_500),
            str(out / "s-%04d.tar"),
            maxcount=1000,  # two shards complete before the cancel: removed too
            progress=False,
            cancel=cancel,
        )
    assert info.value.kept == ()
    assert "nothing was kept" in str(info.value)
    assert _files(out) == []  # no shard, no temporary file


def test_cancel_mid_insert_leaves_no_row_and_no_shard(tmp_path: Path) -> None:
    from atdata_lite.dataset import Dataset

    store = tmp_path / "store"
    src = write_points(tmp_path / "src", shards=4, per_shard=500)
    with Index(tmp_path / "index.db", data_store=str(store)) as ix:
        stop = CancelAfter(700)
        with pytest.raises(OperationCancelled):
            ix.insert_dataset(
                Dataset[Point](src),
                name="pts",
                maxcount=300,
                progress=stop,
                cancel=stop.event,
            )
        assert ix.list_datasets() == []
        assert _files(store) == [] if store.exists() else True
        # A cancel set before the call stops it before anything is written.
        with pytest.raises(OperationCancelled):
            ix.insert_dataset(Dataset[Point](src), name="pts", cancel=stop.event)
        assert ix.list_datasets() == []


@pytest.mark.s3
def test_cancel_mid_write_on_s3_leaves_nothing_in_the_bucket(s3_bucket) -> None:
    import s3fs

    bucket_url, options = s3_bucket
    cancel = threading.Event()
    with pytest.raises(OperationCancelled):
        write_samples(
            _slow_points(3_000, cancel, at=1_500),
            f"{bucket_url}/pts/s-%04d.tar",
            maxcount=500,
            storage_options=options,
            progress=False,
            cancel=cancel,
        )
    fs = s3fs.S3FileSystem(**options)
    bucket = bucket_url.removeprefix("s3://")
    assert fs.find(bucket) == []
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=options["client_kwargs"]["endpoint_url"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_cancelled_verify_raises_and_writes_nothing(tmp_path: Path) -> None:
    from atdata_lite.dataset import Dataset
    from atdata_lite.verify import verify_datasets

    src = write_points(tmp_path / "src", shards=5, per_shard=2)
    with Index(tmp_path / "index.db") as ix:
        ix.insert_dataset(Dataset[Point](src), name="pts")
        stop = CancelAfter(2)
        with pytest.raises(OperationCancelled):
            verify_datasets(ix, progress=stop, cancel=stop.event)
        assert stop.events[-1].finished and stop.events[-1].done == 2


def test_cancelled_import_writes_nothing(tmp_path: Path) -> None:
    from atdata_lite.dataset import Dataset
    from atdata_lite.transfer import export_catalog, import_catalog

    src = write_points(tmp_path / "src", shards=2, per_shard=2)
    with Index(tmp_path / "a.db") as ix:
        ix.insert_dataset(Dataset[Point](src), name="pts")
        events: list[ProgressEvent] = []
        export_catalog(ix, tmp_path / "backup.json", progress=events.append)
        _check_events(events, total=2)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(OperationCancelled):
        import_catalog(tmp_path / "backup.json", str(tmp_path / "b.db"), cancel=cancel)
    with Index(tmp_path / "b.db") as target:
        assert target.list_datasets() == [] and target.list_schemas() == []
        events = []
        import_catalog(tmp_path / "backup.json", target, progress=events.append)
        _check_events(events, total=2)
        assert [d.name for d in target.list_datasets()] == ["pts"]


# --- Ctrl-C on the command line ---------------------------------------------------------------


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="signals need the main thread"
)
def test_ctrl_c_in_verify_goes_through_cancellation(tmp_path: Path, monkeypatch) -> None:
    from atdata_lite import verify as verify_module
    from atdata_lite.cli import main
    from atdata_lite.dataset import Dataset

    src = write_points(tmp_path / "src", shards=4, per_shard=2)
    with Index(tmp_path / "index.db") as ix:
        ix.insert_dataset(Dataset[Point](src), name="pts")
    real = verify_module.check_shard
    calls = []

    def interrupted(shard, **kwargs):
        calls.append(shard.url)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the first shard is read
        return real(shard, **kwargs)

    monkeypatch.setattr(verify_module, "check_shard", interrupted)
    before = signal.getsignal(signal.SIGINT)
    result = CliRunner().invoke(main, ["--index", str(tmp_path / "index.db"), "verify"])
    assert result.exit_code == 130, result.output
    assert "verifying shards was cancelled: nothing was kept." in result.output
    assert len(calls) == 1  # stopped at the next shard
    assert signal.getsignal(signal.SIGINT) is before  # the CLI put the handler back


def test_index_write_samples_reports_progress_and_cancels_cleanly(tmp_path: Path) -> None:
    store = tmp_path / "store"
    with Index(tmp_path / "index.db", data_store=str(store)) as ix:
        events: list[ProgressEvent] = []
        entry = ix.write_samples(_points(300), name="pts", maxcount=100, progress=events.append)
        _check_events(events, total=None)  # samples are read once, as they come
        assert events[-1].done == 300 and len(entry.data_urls) == 3
        kept = _files(store)
        cancel = threading.Event()
        with pytest.raises(OperationCancelled):
            ix.write_samples(
                _slow_points(5_000, cancel, at=2_500), name="cut", maxcount=1000, cancel=cancel
            )
        assert [d.name for d in ix.list_datasets()] == ["pts"]
        assert _files(store) == kept  # the cancelled write left no shard and no temp file
