"""Control characters in names and in what the command line prints.

A terminal acts on some characters instead of showing them: ESC starts ANSI sequences
(colours, cursor moves, window titles, clearing the screen), C1 codes such as U+009B do the
same on some terminals, a newline starts a new line (a fake table row), and bidirectional
controls such as U+202E reverse the text after them. A dataset name or a shard URL that
holds one could make ``atdata-lite ls`` lie about what is in the index.

So names written from now on may not hold them (:func:`check_name`), and everything the
command line prints passes through :func:`escape_control`, which shows them as ``\\x1b``,
``\\n``, ``\\u202e``: old data, imported catalogs and foreign indexes print safely too.
"""

from __future__ import annotations

import re
from typing import TypeVar

from .errors import InvalidNameError

_V = TypeVar("_V")

__all__ = ["CONTROL_CHARACTERS", "check_name", "escape_control", "first_control", "format_size"]

# C0 and C1 control codes and DEL (Unicode category Cc), the line and paragraph separators,
# and the bidirectional formatting controls (marks, embeddings, overrides, isolates).
CONTROL_CHARACTERS = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ABBREVIATIONS = {
    "\x00": "NUL",
    "\x07": "BEL",
    "\x08": "BS",
    "\t": "TAB",
    "\n": "newline",
    "\r": "carriage return",
    "\x1b": "ESC",
    "\x7f": "DEL",
    "\x9b": "CSI",
}


def _escape_one(match: re.Match[str]) -> str:
    ch = match.group()
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_control(text: object) -> str:
    """Return ``str(text)`` with every control character shown as an escape (``\\x1b``).

    Printable text, including non-ASCII letters, is unchanged; a backslash is left as is.

    Example:
        >>> escape_control("evil\\x1b[2J\\nrow")
        'evil\\\\x1b[2J\\\\nrow'
    """
    text = str(text)
    if CONTROL_CHARACTERS.search(text) is None:  # the common case: nothing to copy
        return text
    return CONTROL_CHARACTERS.sub(_escape_one, text)


def first_control(text: str) -> str | None:
    """The first control character in ``text``, or ``None`` when it has none."""
    match = CONTROL_CHARACTERS.search(text)
    return match.group() if match else None


def check_name(value: _V, what: str = "dataset name") -> _V:
    """Refuse a new name (or other identifier) that holds a control character.

    Args:
        value: The name to check; non-strings are passed through for the caller to judge.
        what: What the value is, for the message (``"dataset name"``, ``"shard URL"``).

    Returns:
        ``value`` unchanged.

    Raises:
        InvalidNameError: (a ``ValueError``) ``value`` holds a C0/C1 control character, DEL,
            a newline, a line separator or a bidirectional control.
    """
    if not isinstance(value, str):
        return value
    ch = first_control(value)
    if ch is None:
        return value
    label = f"U+{ord(ch):04X}"
    if ch in _ABBREVIATIONS:
        label += f" ({_ABBREVIATIONS[ch]})"
    raise InvalidNameError(
        f"Invalid {what} '{escape_control(value)}': it holds the control character {label}. "
        f"A {what} cannot hold control characters, newlines or bidirectional-text controls "
        "(they would garble or spoof terminal output); choose one without them."
    )


def format_size(size: int | None) -> str:
    """``1536`` -> ``"1.5 KiB"`` (binary units); ``None`` (unknown) -> ``"?"``."""
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
