""" "Did you mean ...?" for names typed on the command line (datasets, schemas, classes)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["close_names", "did_you_mean"]


def close_names(name: str, candidates: Iterable[str], *, limit: int = 3) -> list[str]:
    """The candidates closest to ``name`` (difflib ratio >= 0.6, best first).

    A candidate that differs from ``name`` only in case always comes first.
    """
    pool = sorted(set(candidates))
    same_case = [c for c in pool if c.lower() == name.lower() and c != name]
    close = difflib.get_close_matches(name, pool, n=limit, cutoff=0.6)
    return list(dict.fromkeys(same_case + close))[:limit]


def did_you_mean(name: str, candidates: Iterable[str], list_command: str) -> str:
    """A sentence for an error message: the close names, else how to list them all.

    >>> did_you_mean("phtos", ["photos", "audio"], "atdata-lite ls")
    "Did you mean 'photos'?"
    >>> did_you_mean("zzz", ["photos"], "atdata-lite ls")
    'List them with: atdata-lite ls'
    """
    close = close_names(name, candidates)
    if not close:
        return f"List them with: {list_command}"
    if len(close) == 1:
        return f"Did you mean {close[0]!r}?"
    return f"Did you mean one of: {', '.join(repr(c) for c in close)}?"
