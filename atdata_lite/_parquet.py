"""``Dataset.to_parquet``: samples to Parquet files, through pandas (the ``parquet`` extra).

Kept out of :mod:`atdata_lite.dataset` so that pandas and pyarrow are imported only here,
and only when a dataset is exported.
"""

from __future__ import annotations

import dataclasses
import io
import os
import posixpath
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["default_sample_map", "to_parquet"]

SampleExportRow = dict[str, Any]
SampleExportMap = Callable[[Any], SampleExportRow]


def _column_value(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return value.item()
        if value.ndim == 1:
            return value  # a list column that keeps the array's dtype
        return [_column_value(row) for row in value]  # nested lists, dtype kept per row
    if isinstance(value, np.generic):
        return value.item()
    return value


def default_sample_map(sample: Any) -> SampleExportRow:
    """One row per sample: its fields (a ``DictSample``'s keys), arrays as list columns.

    A 1-D array becomes a list column of its dtype, an n-dimensional one nested lists, a
    0-d array or numpy scalar a plain value. Fields are read from the dataclass, so extra
    attributes (such as the sample's key) are not exported.
    """
    if dataclasses.is_dataclass(sample) and not isinstance(sample, type):
        data = {f.name: getattr(sample, f.name) for f in dataclasses.fields(sample)}
    elif callable(getattr(sample, "to_dict", None)):
        data = sample.to_dict()
    else:
        raise TypeError(
            f"Cannot export a {type(sample).__name__} to Parquet by default; pass "
            "sample_map= (a function from a sample to a dict of columns)."
        )
    return {k: _column_value(v) for k, v in data.items()}


def _segment_url(url: str, index: int) -> str:
    parent, name = posixpath.split(url)
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem:
        stem, suffix = name, ""
    else:
        suffix = "." + suffix
    return posixpath.join(parent, f"{stem}-{index:06d}{suffix}")


def _write(rows: list[SampleExportRow], url: str, storage_options: Any, kwargs: Any) -> None:
    import pandas as pd

    from .locations import is_local, local_path
    from .sources import open_url

    buffer = io.BytesIO()
    pd.DataFrame(rows).to_parquet(buffer, **kwargs)
    data = buffer.getvalue()
    if is_local(url):
        # Atomic: a reader never sees half a file under the final name.
        path = local_path(url)
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        tmp = os.path.join(parent, f".{os.path.basename(path)}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    else:
        # Object stores commit an upload when the file closes.
        with open_url(url, "wb", storage_options) as f:
            f.write(data)


def to_parquet(
    samples: Iterable[Any],
    path: str | os.PathLike[str],
    sample_map: SampleExportMap | None = None,
    maxcount: int | None = None,
    *,
    storage_options: dict[str, Any] | None = None,
    **kwargs: Any,
) -> list[str]:
    """Write samples to one Parquet file, or to numbered files of ``maxcount`` rows.

    See :meth:`atdata_lite.dataset.Dataset.to_parquet`.
    """
    from ._imports import optional_import

    optional_import("pandas", extra="parquet", purpose="Dataset.to_parquet()")
    if maxcount is not None and (isinstance(maxcount, bool) or maxcount < 1):
        raise ValueError(f"maxcount must be a positive integer or None, got {maxcount!r}.")
    # The pandas keyword atdata accepted but could not pass on: it only broke the call.
    kwargs.pop("verbose", None)
    url = os.fspath(path)
    mapper = sample_map or default_sample_map
    written: list[str] = []
    rows: list[SampleExportRow] = []
    for sample in samples:
        rows.append(mapper(sample))
        if maxcount is not None and len(rows) >= maxcount:
            target = _segment_url(url, len(written))
            _write(rows, target, storage_options, kwargs)
            written.append(target)
            rows = []
    if maxcount is None:
        _write(rows, url, storage_options, kwargs)
        written.append(url)
    elif rows:
        target = _segment_url(url, len(written))
        _write(rows, target, storage_options, kwargs)
        written.append(target)
    return written
