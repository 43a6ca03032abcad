"""Everything the command line prints: tables, key/value blocks, JSON, colour, progress.

Rules kept here so that every command follows them:

* the command's output goes to stdout and nothing else does; warnings, progress bars and
  errors go to stderr;
* colour only when stdout is a terminal (``click.echo`` strips ANSI codes otherwise, but we
  also avoid styling so that widths stay right);
* progress bars only when stderr is a terminal;
* ``--json`` output is one JSON document, indented, with stable key order;
* data (names, URLs, metadata, messages quoting them) is printed through
  :func:`escape_control`, so control characters show as ``\\x1b``, ``\\n``... and never
  reach the terminal raw: tables and key/value blocks escape every cell, JSON escapes every
  control character as ``\\uXXXX``, and messages escape the values they quote.
* tables fit the terminal: paths are shown relative to the store (or with ``~`` for the home
  directory), and a column that is still too wide loses its middle (``/a/b/.../f.tar``);
  ``--wide`` prints every value in full. The width is the terminal's when stdout is one,
  or ``$COLUMNS`` when it is set; otherwise (a pipe, a file) nothing is cut.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

import click

from .._text import escape_control, format_size

__all__ = [
    "echo_json",
    "ellipsize",
    "escape_control",
    "format_size",
    "format_time",
    "hide_password",
    "is_tty",
    "progress",
    "render_kv",
    "render_table",
    "short_path",
    "style",
    "table_width",
]

T = TypeVar("T")


def is_tty(stream: Any) -> bool:
    """Whether ``stream`` is a terminal (False for anything without ``isatty``)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # replaced or closed streams
        return False


def _stdout_is_tty() -> bool:
    return is_tty(sys.stdout)


def style(text: str, **styles: Any) -> str:
    """Return ``text`` styled with :func:`click.style` when stdout is a terminal, else as is."""
    if not styles or not _stdout_is_tty():
        return text
    return click.style(text, **styles)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    # numpy scalars and arrays, without importing numpy here
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def hide_password(location: str) -> str:
    """``scheme://user:secret@host/db`` -> ``scheme://user:***@host/db``; paths unchanged."""
    from urllib.parse import urlsplit, urlunsplit

    if "://" not in location:
        return location
    try:
        parts = urlsplit(location)
    except ValueError:
        return location
    if parts.password is None:
        return location
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostinfo}"))


# What json.dumps(ensure_ascii=False) leaves raw inside strings (it escapes C0 itself; the
# newlines of the indentation are outside strings and must stay).
_JSON_RAW_CONTROL = re.compile(
    "[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def _json_escape(match: Any) -> str:
    return f"\\u{ord(match.group()):04x}"


def echo_json(document: Any) -> None:
    """Print ``document`` as indented JSON on stdout.

    ``json`` escapes C0 controls itself; DEL, C1 and the bidirectional controls are escaped
    here too (as ``\\uXXXX``, still valid JSON), so a raw one never reaches the terminal.
    """
    text = json.dumps(document, indent=2, default=_json_default, ensure_ascii=False)
    click.echo(_JSON_RAW_CONTROL.sub(_json_escape, text))


def format_time(value: datetime | str | None) -> str:
    """A timestamp for tables: ``2026-11-23 17:48`` in UTC, or ``"-"`` when unknown."""
    if value is None:
        return "-"
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return value
        value = parsed
    return value.strftime("%Y-%m-%d %H:%M")


def _is_number(text: str) -> bool:
    stripped = text.replace(",", "").replace(".", "", 1)
    return stripped.isdigit()


def table_width(wide: bool = False) -> int | None:
    """How many columns a table may take: ``None`` means no limit.

    ``--wide`` (``wide=True``) lifts the limit; otherwise ``$COLUMNS`` when set, else the
    terminal's width when stdout is a terminal, else no limit (a pipe or a file gets every
    value in full, for ``grep``).
    """
    if wide:
        return None
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if _stdout_is_tty():
        import shutil

        return shutil.get_terminal_size().columns
    return None


def ellipsize(text: str, width: int, *, where: str = "middle") -> str:
    """Cut ``text`` to ``width`` characters with ``...``, in the middle or at the end.

    The middle suits paths and URLs (their start says where, their end says which file):
    ``ellipsize("/data/a/b/c/shard-000001.tar", 20)`` -> ``"/data/a/...00001.tar"``.
    """
    if len(text) <= width:
        return text
    if width <= 3:
        return text[:width]
    if where == "end":
        return text[: width - 3] + "..."
    keep = width - 3
    head = keep // 2
    tail = keep - head
    return text[:head] + "..." + text[len(text) - tail :]


def short_path(url: str, *, store_root: str | None = None) -> str:
    """A shard path or URL as a table shows it.

    Inside the store: relative to the store's root (``demo/run-1/demo-000000.tar``);
    elsewhere under the home directory: ``~/...``; anything else (other URLs) as it is.
    """
    if store_root:
        root = store_root.rstrip("/")
        for candidate in (root, os.path.expanduser(root)):
            if url.startswith(candidate + "/"):
                return url[len(candidate) + 1 :]
    if "://" not in url:
        home = os.path.expanduser("~").rstrip(os.sep)
        if home and url.startswith(home + os.sep):
            return "~" + url[len(home) :]
    return url


def _fit(widths: list[int], fit: dict[int, str], limit: int | None, gap: int) -> list[int]:
    """Shrink the columns in ``fit`` (widest first) until the table fits ``limit``."""
    if limit is None or not fit:
        return widths
    widths = list(widths)
    minimum = 12
    total = sum(widths) + gap * (len(widths) - 1)
    while total > limit:
        candidates = [i for i in fit if widths[i] > minimum]
        if not candidates:
            break
        i = max(candidates, key=lambda c: widths[c])
        cut = min(total - limit, widths[i] - minimum)
        widths[i] -= cut
        total -= cut
    return widths


def render_table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    colours: dict[str, dict[str, Any]] | None = None,
    fit: dict[str, str] | None = None,
    max_width: int | None = None,
) -> str:
    """Format rows as an aligned plain-text table (numbers right-aligned).

    Args:
        headers: Column titles.
        rows: One sequence of cells per row; cells are turned into text with ``str``
            (``None`` prints as ``-``), control characters escaped (:func:`escape_control`).
        colours: Optional ``{cell text: click.style kwargs}``, applied after padding so the
            columns stay aligned (only on a terminal).
        fit: ``{column title: "middle" | "end"}``: the columns that may be cut, and where,
            when the table is wider than ``max_width`` (paths lose their middle, free text
            its end). Other columns are never cut.
        max_width: The width to fit (see :func:`table_width`); ``None`` cuts nothing.

    Returns:
        The table, without a trailing newline. Only the header when there are no rows.
    """
    text_rows = [["-" if c is None else escape_control(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in text_rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    where = {headers.index(title): how for title, how in (fit or {}).items() if title in headers}
    fitted = _fit(widths, where, max_width, gap=2)
    if fitted != widths:
        widths = fitted
        text_rows = [
            [
                ellipsize(cell, widths[i], where=where[i]) if i in where else cell
                for i, cell in enumerate(row)
            ]
            for row in text_rows
        ]
    numeric = [
        bool(text_rows) and all(_is_number(r[i]) or r[i] in ("-", "?") for r in text_rows)
        for i in range(len(headers))
    ]
    colours = colours or {}

    def line(cells: Sequence[str], header: bool = False) -> str:
        out = []
        for i, cell in enumerate(cells):
            last = i == len(cells) - 1
            padded = cell.rjust(widths[i]) if numeric[i] else cell.ljust(widths[i])
            if last and not numeric[i]:
                padded = cell  # no trailing spaces
            if header:
                padded = style(padded, bold=True)
            elif cell in colours:
                padded = style(padded, **colours[cell])
            out.append(padded)
        return "  ".join(out).rstrip()

    lines = [line(list(headers), header=True)]
    lines.extend(line(row) for row in text_rows)
    return "\n".join(lines)


def render_kv(pairs: Iterable[tuple[str, Any]]) -> str:
    """Format ``(key, value)`` pairs as an aligned ``key: value`` block (values escaped)."""
    pairs = [(escape_control(k), "-" if v is None else escape_control(v)) for k, v in pairs]
    width = max((len(k) for k, _ in pairs), default=0) + 1
    return "\n".join(f"{style((k + ':').ljust(width), bold=True)} {v}" for k, v in pairs)


@contextmanager
def progress(
    items: Iterable[T], *, length: int | None = None, label: str = "", unit: str = "it"
) -> Iterator[Iterable[T]]:
    """Wrap ``items`` in a progress bar on stderr when stderr is a terminal.

    The bar is the library's (:class:`atdata_lite._progress.Progress`, tqdm): count, rate
    and time left, redrawn a few times a second. Off a terminal the items come back
    unchanged, so logs and pipes stay clean.
    """
    from .._progress import Progress

    with Progress(label, total=length, unit=unit) as bar:

        def counted() -> Iterator[T]:
            for item in items:
                yield item
                bar.update()

        yield counted()
