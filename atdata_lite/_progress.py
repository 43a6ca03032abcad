"""Progress reporting for long operations (kept for imports; see :mod:`atdata_lite.progress`)."""

from __future__ import annotations

from .progress import REDRAW_INTERVAL, Progress, TerminalBar, check_cancel, progress_enabled

__all__ = ["REDRAW_INTERVAL", "Progress", "TerminalBar", "check_cancel", "progress_enabled"]
