"""Where atdata-lite keeps things when nobody says otherwise.

With no configuration the index is one SQLite file and shards live on local disk, both under
the platform's per-user data directory (``platformdirs.user_data_dir("atdata-lite")``, e.g.
``~/.local/share/atdata-lite`` on Linux). Environment variables override each default:

``ATDATA_LITE_HOME``
    the directory that holds both defaults;
``ATDATA_LITE_INDEX``
    the index: a file path, or any URL an index backend accepts
    (``sqlite:///...``, ``postgresql+psycopg://...``, ``redis://...``);
``ATDATA_LITE_STORE``
    the default shard store: a local directory or an fsspec URL (``s3://bucket/prefix``).

This module is on the hot path of opening an index: it imports nothing heavy.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "ENV_HOME",
    "ENV_INDEX",
    "ENV_STORE",
    "default_index_location",
    "default_store_url",
    "home_dir",
]

ENV_HOME = "ATDATA_LITE_HOME"
ENV_INDEX = "ATDATA_LITE_INDEX"
ENV_STORE = "ATDATA_LITE_STORE"

INDEX_FILENAME = "index.db"
STORE_DIRNAME = "shards"


def home_dir() -> Path:
    """Return the directory that holds the default index and store (not created here)."""
    override = os.environ.get(ENV_HOME)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("atdata-lite", appauthor=False))


def default_index_location() -> str:
    """Return the index location to use when none is given: ``$ATDATA_LITE_INDEX`` or the file."""
    override = os.environ.get(ENV_INDEX)
    if override:
        return override
    return str(home_dir() / INDEX_FILENAME)


def default_store_url() -> str:
    """Return the shard store root to use when none is given: ``$ATDATA_LITE_STORE`` or a dir."""
    override = os.environ.get(ENV_STORE)
    if override:
        return override
    return str(home_dir() / STORE_DIRNAME)
