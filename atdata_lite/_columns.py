"""Batches built column by column, straight from the decoded msgpack maps.

A batch of ``n`` samples of a plain sample type never becomes ``n`` objects: each field's
values are checked as one column (the same checks, and the same conversions, as one sample
at a time) and become one column of the :class:`~atdata_lite.samples.SampleBatch`:

* an array field whose values share one NPY header (dtype and shape) becomes one stacked
  array, made by joining the values' data into one buffer (a single copy, no array object
  per sample); arrays of different shapes become a list of arrays;
* ``int``, ``float`` and ``bool`` fields are lists of Python values, as a batch of samples
  gives them, or with ``batch_format="numpy"`` one 1-D array each (int64, float64, bool);
* with ``batch_format="torch"`` the arrays and numeric columns are torch tensors (sharing
  the arrays' memory), which a ``DataLoader(pin_memory=True)`` pins;
* everything else (``str``, ``bytes``, lists, optional fields) stays a list.

When a column does not pass the quick checks, every sample of the batch is built the usual
way, so a bad value raises exactly the error one-at-a-time reading raises, naming it.
``batch.samples`` is rebuilt from the columns on first use, keys included.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

from ._npy import npy_header
from ._types import field_types, is_ndarray_type, unwrap_optional
from .samples import KEY_ATTR, PackableSample, SampleBatch, _aggregate, codec_for

__all__ = ["BatchFormat", "ColumnBuilder", "can_build_columns"]

BatchFormat = Literal["samples", "numpy", "torch"]
BATCH_FORMATS: tuple[str, ...] = typing.get_args(BatchFormat)

_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
_NUMPY_SCALARS: dict[Any, Any] = {int: np.int64, float: np.float64, bool: np.bool_}


def can_build_columns(sample_type: Any) -> bool:
    """True for sample types whose batches can be built from columns (plain dataclasses)."""
    return (
        isinstance(sample_type, type)
        and issubclass(sample_type, PackableSample)
        and codec_for(sample_type).plain_init
    )


def _quick_scalar(kind: Any) -> Callable[[list[Any]], bool] | None:
    """A one-pass check that a column holds only exact ``kind`` values, or None."""
    only = {kind}
    if kind is int:
        return lambda col: (
            set(map(type, col)) == only and min(col) >= _INT_MIN and max(col) <= _INT_MAX
        )
    if kind in (float, str, bool, bytes):
        return lambda col: set(map(type, col)) == only
    return None


class ColumnBuilder:
    """Builds :class:`SampleBatch` objects of one sample type from decoded maps."""

    def __init__(self, sample_type: type, batch_format: BatchFormat, copy_arrays: bool) -> None:
        self.sample_type = sample_type
        self.batch_format = batch_format
        self.copy_arrays = copy_arrays or batch_format == "torch"  # torch wants writable memory
        codec = codec_for(sample_type)
        self.checks = codec.view_checks if not copy_arrays else codec.checks
        hints = field_types(sample_type)
        self.fields: list[tuple[str, Any, Any]] = []  # name, check, kind
        for name, check in self.checks:
            inner, optional = unwrap_optional(hints[name])
            kind: Any = None
            if not optional:
                if is_ndarray_type(inner):
                    kind = np.ndarray
                elif inner in _NUMPY_SCALARS or inner in (str, bytes):
                    kind = inner
            self.fields.append((name, check, kind))
        self.quick = {name: _quick_scalar(kind) for name, _, kind in self.fields}

    def build(self, keys: Sequence[str], maps: Sequence[Any]) -> SampleBatch[Any]:
        """One batch from ``maps`` (decoded msgpack maps) and their sample keys.

        Raises:
            SampleDecodeError / SampleMismatchError: A sample does not match the type (as
                decoding it alone would raise).
        """
        columns = self._columns(maps) if maps else None
        if columns is None:  # the careful way: each sample alone, which words the problem
            build = self.sample_type._build  # type: ignore[attr-defined]
            samples = [build(m, self.checks) for m in maps]
            columns = self._columns_of_samples(samples)
        return self._finish(columns, len(maps), keys)

    def _finish(
        self, columns: dict[str, Any], length: int, keys: Sequence[str] | None
    ) -> SampleBatch[Any]:
        scalars = {}
        if self.batch_format != "samples":
            for name, _, kind in self.fields:
                if kind in _NUMPY_SCALARS:
                    scalars[name] = values = columns[name]
                    try:
                        columns[name] = np.array(values, dtype=_NUMPY_SCALARS[kind])
                    except OverflowError:  # ints beyond int64 (msgpack allows uint64)
                        columns[name] = np.array(values)
        if self.batch_format == "torch":
            import torch

            for name, value in columns.items():
                if isinstance(value, np.ndarray):
                    columns[name] = torch.from_numpy(value)
                elif isinstance(value, list) and value and isinstance(value[0], np.ndarray):
                    columns[name] = [torch.from_numpy(v) for v in value]
        return SampleBatch._from_columns(self.sample_type, length, columns, keys, scalars)

    def from_samples(self, samples: Sequence[Any]) -> SampleBatch[Any]:
        """One batch from sample objects (e.g. what a lens made), in this batch format."""
        columns = self._columns_of_samples(list(samples))
        keys = [getattr(s, KEY_ATTR, None) for s in samples]
        known = [k for k in keys if isinstance(k, str)]
        return self._finish(columns, len(samples), known if len(known) == len(keys) else None)

    def _columns(self, maps: Sequence[Any]) -> dict[str, Any] | None:
        if set(map(type, maps)) != {dict} or set(map(len, maps)) != {len(self.fields)}:
            return None
        columns: dict[str, Any] = {}
        try:
            for name, check, kind in self.fields:
                col = [m[name] for m in maps]
                if kind is np.ndarray:
                    stacked = self._stack(col, check)
                    columns[name] = stacked if stacked is not None else [check(v) for v in col]
                    if stacked is None:
                        columns[name] = _aggregate(columns[name])
                    continue
                quick = self.quick[name]
                columns[name] = col if quick is not None and quick(col) else [check(v) for v in col]
        except Exception:  # KeyError, Mismatch, a decode error: let one sample tell
            return None
        return columns

    def _stack(self, col: list[Any], check: Any) -> np.ndarray | None:
        """One array from NPY values sharing one header, or None to go value by value."""
        if not col or set(map(type, col)) != {bytes}:
            return None
        first = col[0]
        header = npy_header(first)
        if header is None:
            return None
        offset, parsed = header
        size = offset + parsed.nbytes
        head = first[:offset]
        if not all(len(v) == size and v.startswith(head) for v in col):
            return None
        check(first)  # dtype and shape against the annotation (raises Mismatch)
        joiner = bytearray() if self.copy_arrays else b""
        data = joiner.join([memoryview(v)[offset:] for v in col])
        flat = np.frombuffer(data, dtype=parsed.dtype)
        if parsed.order == "F":
            return flat.reshape((len(col), *parsed.shape[::-1])).transpose(
                0, *range(len(parsed.shape), 0, -1)
            )
        return flat.reshape((len(col), *parsed.shape))

    def _columns_of_samples(self, samples: list[Any]) -> dict[str, Any]:
        columns: dict[str, Any] = {}
        for name, _, kind in self.fields:
            values = [getattr(s, name) for s in samples]
            columns[name] = _aggregate(values) if kind is np.ndarray else values
        return columns
