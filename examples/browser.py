"""A small terminal dataset browser: atdata-lite embedded in a Textual app.

Run:  pip install 'atdata-lite[examples]'
      python examples/browser.py [INDEX [STORE]]

(INDEX defaults to $ATDATA_LITE_INDEX, STORE, the root its shards live under, to
$ATDATA_LITE_STORE.)

* the left pane lists the datasets; the right pane shows the selected one's schema and
  its first samples;
* ``v`` verifies the selected dataset with a live progress bar, ``c`` cancels it;
* the list refreshes by itself when another process adds or removes a dataset;
* ``q`` quits.

What it shows about embedding: every index call is awaited on :class:`AsyncIndex` (the UI
never freezes), progress arrives as events on the UI's own loop, cancellation is a
``threading.Event``, and change notification is ``AsyncIndex.changes()``.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import Any

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Header, Label, ListItem, ListView, ProgressBar, Static

from atdata_lite.errors import OperationCancelled
from atdata_lite.index.aio import AsyncIndex
from atdata_lite.progress import ProgressEvent


def _summary(value: Any) -> str:
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"ndarray shape={tuple(value.shape)} dtype={value.dtype}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Browser(App[None]):
    """Lists datasets, shows a schema and samples, verifies with progress and cancel."""

    CSS = """
    #datasets { width: 32; border: solid $accent; }
    #details { padding: 0 1; }
    #status { height: 1; }
    """
    BINDINGS = [
        Binding("v", "verify", "Verify"),
        Binding("c", "cancel", "Cancel"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self, location: str, data_store: str | None = None, *, watch_interval: float = 0.5
    ) -> None:
        super().__init__()
        self.location = location
        self.data_store = data_store
        self.watch_interval = watch_interval
        self.index: AsyncIndex | None = None
        self.names: list[str] = []
        self.selected: str | None = None
        self.cancel_event: threading.Event | None = None
        self.last_report: Any = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            yield ListView(id="datasets")
            with Vertical(id="details"):
                yield Static("Select a dataset.", id="schema")
                yield Static("", id="samples")
                yield ProgressBar(id="progress", show_eta=False)
                yield Label("", id="status")
        yield Footer()

    async def on_mount(self) -> None:
        self.index = await AsyncIndex.open(self.location, data_store=self.data_store)
        await self.refresh_list()
        self.run_worker(self.follow_changes(), exclusive=False, group="watch")

    async def on_unmount(self) -> None:
        if self.cancel_event is not None:
            self.cancel_event.set()
        if self.index is not None:
            await self.index.aclose()

    # --- the list, kept up to date -------------------------------------------------------

    async def refresh_list(self) -> None:
        assert self.index is not None
        entries = await self.index.list_datasets()
        names = [e.name for e in entries]
        if names == self.names:
            return
        self.names = names
        view = self.query_one("#datasets", ListView)
        await view.clear()
        await view.extend([ListItem(Label(n), name=n) for n in names])
        keep = self.selected if self.selected in names else (names[0] if names else None)
        if keep is not None:
            view.index = names.index(keep)
        self.query_one("#status", Label).update(f"{len(names)} datasets")

    async def follow_changes(self) -> None:
        assert self.index is not None
        async for _ in self.index.changes(interval=self.watch_interval):
            await self.refresh_list()

    # --- details --------------------------------------------------------------------------

    async def on_list_view_highlighted(self, message: ListView.Highlighted) -> None:
        if message.item is None or message.item.name is None:
            return
        await self.show(message.item.name)

    async def show(self, name: str) -> None:
        from atdata_lite.dataset import Dataset

        assert self.index is not None
        self.selected = name
        entry = await self.index.get_dataset(name)
        schema = await self.index.get_schema(entry.schema_ref)
        fields = "\n".join(
            f"  {f['name']}: {f.get('fieldType', {}).get('$type', '?')}"
            for f in schema.get("fields", [])
        )
        self.query_one("#schema", Static).update(
            f"{name}  ({schema['name']}@{schema['version']})\n{fields}"
        )
        sample_type = await self.index.decode_schema(entry.schema_ref)

        def first_samples() -> list[Any]:
            ds = Dataset[sample_type](entry.data_urls[0])  # type: ignore[valid-type]
            out = []
            for sample in ds.ordered():
                out.append(sample)
                if len(out) == 3:
                    break
            return out

        samples = await asyncio.to_thread(first_samples)
        lines = [
            ", ".join(f"{k}={_summary(v)}" for k, v in vars(s).items() if not k.startswith("_"))
            for s in samples
        ]
        self.query_one("#samples", Static).update("\n".join(lines) or "(no samples)")

    # --- verify, with progress and cancel ------------------------------------------------------

    def on_progress(self, event: ProgressEvent) -> None:
        bar = self.query_one("#progress", ProgressBar)
        bar.update(total=event.total, progress=event.done)
        if not event.finished:
            self.query_one("#status", Label).update(f"verifying {event.done}/{event.total}")

    def action_verify(self) -> None:
        if self.selected is None or self.cancel_event is not None:
            return
        self.cancel_event = threading.Event()
        self.run_worker(self.verify(self.selected, self.cancel_event), group="verify")

    async def verify(self, name: str, cancel: threading.Event) -> None:
        assert self.index is not None
        status = self.query_one("#status", Label)
        try:
            report = await self.index.verify([name], progress=self.on_progress, cancel=cancel)
        except OperationCancelled as exc:
            status.update(str(exc))
            self.last_report = exc
        else:
            counts = report.counts
            status.update(
                f"{name}: {counts['ok']} ok, {counts['mismatch']} mismatch, "
                f"{counts['missing']} missing"
            )
            self.last_report = report
        finally:
            self.cancel_event = None

    def action_cancel(self) -> None:
        if self.cancel_event is not None:
            self.cancel_event.set()


def main() -> None:
    from atdata_lite.config import default_index_location

    location = sys.argv[1] if len(sys.argv) > 1 else str(default_index_location())
    Browser(location, sys.argv[2] if len(sys.argv) > 2 else None).run()


if __name__ == "__main__":
    main()
