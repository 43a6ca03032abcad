"""The example host (examples/browser.py), driven headless by Textual's own pilot."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip(
    "textual", reason="textual is not installed: pip install 'atdata-lite[examples]'"
)

from atdata_lite.errors import OperationCancelled
from atdata_lite.index.api import Index
from tests._index_helpers import Point

ROOT = Path(__file__).resolve().parent.parent


def _load_browser():
    spec = importlib.util.spec_from_file_location(
        "atl_example_browser", ROOT / "examples" / "browser.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def _until(pilot, condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the app did not get there in time")
        await pilot.pause(0.05)


def test_browser_lists_shows_verifies_cancels_and_follows_changes(tmp_path: Path) -> None:
    location = str(tmp_path / "index.db")
    with Index(location, data_store=str(tmp_path / "store")) as ix:
        ix.write_samples([Point(x=i, y=2 * i) for i in range(40)], name="points", maxcount=5)
    browser = _load_browser()
    app = browser.Browser(location, str(tmp_path / "store"), watch_interval=0.1)

    async def scenario() -> None:
        async with app.run_test() as pilot:
            await _until(pilot, lambda: app.names == ["points"])
            await _until(pilot, lambda: app.selected == "points")  # the first row is highlighted
            schema = app.query_one("#schema")
            await _until(pilot, lambda: "Point@" in str(schema.render()))
            samples = app.query_one("#samples")
            await _until(pilot, lambda: "x=0" in str(samples.render()))

            await pilot.press("v")
            await _until(pilot, lambda: app.last_report is not None and app.cancel_event is None)
            assert app.last_report.ok and len(app.last_report.shards) == 8
            bar = app.query_one("#progress")
            assert bar.progress == bar.total == 8

            app.last_report = None
            # The cancel key right after the verify key, before the worker's first shard:
            app.action_verify()
            app.action_cancel()
            await _until(pilot, lambda: app.last_report is not None)
            assert isinstance(app.last_report, OperationCancelled)

            # Another process adds a dataset: the list follows.
            code = (
                "import sys\n"
                "from atdata_lite.index.api import Index\n"
                "from tests._index_helpers import Point\n"
                "with Index(sys.argv[1], data_store=sys.argv[2]) as ix:\n"
                "    ix.write_samples([Point(x=1, y=1)], name='more')\n"
            )
            await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-c", code, location, str(tmp_path / "store")],
                cwd=ROOT,
                check=True,
                timeout=120,
            )
            await _until(pilot, lambda: app.names == ["more", "points"])
            await pilot.press("q")

    asyncio.run(scenario())
