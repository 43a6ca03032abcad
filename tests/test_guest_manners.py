"""Good guest manners: an API workload leaves the host's process as it found it.

Nothing written to stdout or stderr (file-descriptor level), no signal handler installed,
no warning filter or logging configuration changed, no thread left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import subprocess
import sys
import threading
import warnings
from pathlib import Path

from atdata_lite.index.aio import AsyncIndex
from atdata_lite.index.api import Index
from tests._index_helpers import Point

ROOT = Path(__file__).resolve().parent.parent


def _global_state() -> dict[str, object]:
    handlers = {}
    for sig in signal.valid_signals():
        try:
            handlers[sig] = signal.getsignal(sig)
        except (OSError, ValueError):
            continue
    atdata_logger = logging.getLogger("atdata_lite")
    return {
        "signals": handlers,
        "warning_filters": list(warnings.filters),
        "root_handlers": list(logging.root.handlers),
        "root_level": logging.root.level,
        "atdata_logger": (atdata_logger.level, list(atdata_logger.handlers)),
        "threads": {t.ident for t in threading.enumerate()},
        "excepthook": (sys.excepthook, threading.excepthook),
    }


def _workload(tmp: Path) -> None:
    from atdata_lite.dataset import Dataset
    from atdata_lite.shards import write_samples
    from atdata_lite.transfer import export_catalog
    from atdata_lite.verify import verify_datasets

    write_samples([Point(x=i, y=i) for i in range(500)], str(tmp / "src-%02d.tar"), maxcount=200)
    with Index(tmp / "index.db", data_store=str(tmp / "store")) as ix:
        ix.insert_dataset(Dataset[Point](str(tmp / "src-{00..02}.tar")), name="pts")
        ix.list_datasets()
        ix.get_schema(ix.get_dataset("pts").schema_ref)
        verify_datasets(ix)
        export_catalog(ix, tmp / "backup.json")
        seen = threading.Event()
        with ix.watch(lambda v: seen.set(), interval=0.02):
            ix.delete_dataset("pts")
            seen.wait(5)
        ix.watch(lambda v: None, interval=0.02)  # left running: close() must stop it
        with contextlib.suppress(KeyError):
            ix.get_dataset("missing")
        list(Dataset[Point](str(tmp / "src-00.tar")).ordered())

    async def run_async() -> None:
        async with await AsyncIndex.open(tmp / "index.db") as aix:
            await aix.list_datasets()
            await aix.data_version()

    asyncio.run(run_async())


def test_api_workload_changes_no_global_state_and_prints_nothing(tmp_path: Path, capfd) -> None:
    capfd.readouterr()
    before = _global_state()
    _workload(tmp_path)
    after = _global_state()
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert after == before


def test_library_logger_has_a_null_handler_and_nothing_prints_without_logging_setup() -> None:
    # A fresh interpreter with no logging configured: a library warning must not reach stderr
    # through Python's last-resort handler.
    code = (
        "import sys, atdata_lite\n"
        "assert 'logging' not in sys.modules  # the bare import stays cheap\n"
        "import logging, atdata_lite.index.api\n"
        "assert any(isinstance(h, logging.NullHandler) "
        "for h in logging.getLogger('atdata_lite').handlers)\n"
        "atdata_lite.index.api.log.warning('hidden')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""
