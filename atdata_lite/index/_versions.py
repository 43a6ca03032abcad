"""Dataset versions and labels: parsing ``name@version`` / ``name:label``, ordering, bumping.

A dataset name has a history of versions. A version is any short string without ``@``,
``:``, ``/``, whitespace or control characters; the index numbers versions itself as
``x.y.z`` (semver without pre-release or build parts), and "the latest version" of a name is
its highest ``x.y.z`` version. Versions that are not ``x.y.z`` (imported from atdata, or
given by hand, such as ``"2024-06"``) are kept and reachable, but they only count as the
latest when a name has no ``x.y.z`` version at all; then the most recently created wins.

This module imports nothing heavy: it is on the path of every lookup.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from .._text import check_name
from ..errors import InvalidVersionError

__all__ = [
    "BUMPS",
    "bump",
    "check_label_version",
    "check_version",
    "is_bump",
    "latest_of",
    "semver_parts",
    "split_ref",
    "version_sort_key",
]

_SEMVER = re.compile(r"^(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})$")
_FORBIDDEN = re.compile(r"[@:/\s]")

#: The automatic versions ``insert_dataset(version=...)`` accepts, as the backend sees them.
BUMPS = {"next": "+patch", "patch": "+patch", "minor": "+minor", "major": "+major"}


def semver_parts(version: str) -> tuple[int, int, int] | None:
    """``(major, minor, patch)`` of a strict ``x.y.z`` version, else ``None``."""
    match = _SEMVER.match(version)
    if match is None:
        return None
    return int(match[1]), int(match[2]), int(match[3])


def version_sort_key(
    version: str, created_at: datetime | None = None
) -> tuple[int, tuple[int, int, int], float, str]:
    """Ascending order of versions: non-semver ones first (by creation), then semver ones.

    The last item of a list sorted by this key is the latest version (see the module doc).
    """
    parts = semver_parts(version)
    when = created_at.timestamp() if created_at is not None else 0.0
    if parts is None:
        return (0, (0, 0, 0), when, version)
    return (1, parts, when, version)


def latest_of(items: list[Any], version: str = "version", created: str = "created_at") -> object:
    """The item with the latest version among ``items`` (``None`` for none)."""
    if not items:
        return None
    return max(
        items, key=lambda i: version_sort_key(getattr(i, version), getattr(i, created, None))
    )


def is_bump(version: str | None) -> bool:
    """True for the backend's automatic-version markers (``"+patch"``, ...)."""
    return version is not None and version.startswith("+")


def bump(latest: str | None, kind: str) -> str:
    """The version after ``latest`` (``None``: the name has no ``x.y.z`` version yet).

    Args:
        latest: The highest ``x.y.z`` version of the name, or ``None``.
        kind: ``"+patch"``, ``"+minor"`` or ``"+major"``.

    Returns:
        ``1.0.0`` for a name without versions, else the bumped version.
    """
    parts = semver_parts(latest) if latest else None
    if parts is None:
        return "1.0.0"
    major, minor, patch = parts
    if kind == "+major":
        return f"{major + 1}.0.0"
    if kind == "+minor":
        return f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{patch + 1}"


def check_version(version: object, what: str = "version") -> str:
    """Return ``version`` if it can name a dataset version.

    Raises:
        InvalidVersionError: (a ``ValueError``) not a non-empty string of at most 64
            characters free of ``@``, ``:``, ``/``, whitespace and control characters.
    """
    if not isinstance(version, str) or not version:
        raise InvalidVersionError(f"A {what} must be a non-empty string, got {version!r}.")
    if len(version) > 64 or _FORBIDDEN.search(version) or version.startswith("+"):
        raise InvalidVersionError(
            f"Invalid {what} {version!r}: use at most 64 characters without '@', ':', '/', "
            "whitespace or a leading '+' (for example '1.2.0' or 'stable')."
        )
    try:
        return check_name(version, what)
    except ValueError as exc:
        raise InvalidVersionError(str(exc)) from None


def check_label_version(version: object) -> str:
    """Like :func:`check_version`, but ``None`` and ``""`` (atdata's "no version") give ``""``."""
    if version is None or version == "":
        return ""
    return check_version(version, "label version")


def split_ref(ref: str) -> tuple[str, str | None, str | None]:
    """Split ``name@version`` or ``name:label`` into ``(name, version, label)``.

    Only the *last* ``@`` or ``:`` splits, so a name that holds one (an older index allowed
    them) is still found by looking the whole string up first, which callers do.

    Example:
        >>> split_ref("mnist@1.2.0"), split_ref("mnist:stable"), split_ref("mnist")
        (('mnist', '1.2.0', None), ('mnist', None, 'stable'), ('mnist', None, None))
    """
    at, colon = ref.rfind("@"), ref.rfind(":")
    if at > 0 and at > colon:
        return ref[:at], ref[at + 1 :], None
    if colon > 0 and colon > at and "://" not in ref:
        return ref[:colon], None, ref[colon + 1 :]
    return ref, None, None
