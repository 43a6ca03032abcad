"""PyTorch integration: batches of samples that ``DataLoader`` collates into tensors.

torch stays optional. Nothing here imports it: :func:`register_collate` only acts when torch
is already imported (a program that builds a ``DataLoader`` has imported it), and is called
whenever a :class:`~atdata_lite.dataset.Dataset` starts iterating, in the main process and
in every worker process, before torch collates anything there.

Registration uses torch's documented extension point for ``default_collate``
(``torch.utils.data._utils.collate.default_collate_fn_map``): ``DataLoader(ds,
batch_size=64)`` then turns 64 samples into one :class:`~atdata_lite.samples.SampleBatch`
whose fields are columns:

* array fields of one shape and dtype become one stacked tensor (``batch.image`` is
  ``[64, ...]``); arrays of different shapes become a list of tensors;
* ``int``, ``float`` and ``bool`` fields become 1-D tensors (int64, float64, bool);
* anything else (``str``, ``bytes``, lists, fields holding ``None``) stays a list.

Only the columns travel from a worker to the main process (tensors through shared memory);
``batch.samples`` is rebuilt from them on first use. Batches support ``pin_memory=True``
and ``batch.to(device)``.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

__all__ = ["check_worker_picklable", "collate_samples", "register_collate"]

_registered = False
_checked: set[int] = set()


def check_worker_picklable(sample_type: Any) -> None:
    """In a ``DataLoader`` worker, check once that ``sample_type`` can be sent back.

    A worker sends its samples or batches to the main process through a queue whose
    background thread pickles them; if pickling fails there, torch never hears of it and
    the main process waits forever. Raising here instead, inside the worker's iteration,
    makes torch re-raise the error in the main process.

    Raises:
        TypeError: ``sample_type`` cannot be pickled (e.g. a class defined in a function).
    """
    if id(sample_type) in _checked or "torch" not in sys.modules:
        return
    from torch.utils.data import get_worker_info

    if get_worker_info() is None:
        return
    import pickle

    try:
        pickle.dumps(sample_type)
    except Exception as exc:
        name = getattr(sample_type, "__qualname__", sample_type)
        raise TypeError(
            f"Samples of type {name} cannot be sent from a DataLoader worker to the main "
            f"process: the class cannot be pickled ({exc}). Define it at module level in an "
            "importable module, or use the type decoded from the index "
            "(index.decode_schema(ref) or load_dataset('@local/NAME')), which pickles."
        ) from exc
    _checked.add(id(sample_type))


def register_collate() -> bool:
    """Teach torch's ``default_collate`` to batch atdata-lite samples (idempotent).

    Returns:
        True when registered (now or before), False when torch is not imported.
    """
    global _registered
    if _registered:
        return True
    if "torch" not in sys.modules:
        return False
    try:
        from torch.utils.data._utils.collate import default_collate_fn_map
    except ImportError:  # a torch without the extension point: collate as before
        return False
    from .samples import DictSample, PackableSample

    default_collate_fn_map.setdefault(PackableSample, collate_samples)
    default_collate_fn_map.setdefault(DictSample, collate_samples)
    _registered = True
    return True


def _field_names(sample_type: type, batch: list[Any]) -> list[str]:
    if dataclasses.is_dataclass(sample_type):
        return [f.name for f in dataclasses.fields(sample_type)]
    names: dict[str, None] = {}
    for sample in batch:
        names.update(dict.fromkeys(sample.keys()))
    return list(names)


def _column(values: list[Any]) -> Any:
    import numpy as np
    import torch

    if all(isinstance(v, np.ndarray) for v in values):
        if any(v.dtype.hasobject or v.dtype.kind in "USV" for v in values):
            return values  # torch has no string or object tensors
        first = values[0]
        if all(v.shape == first.shape and v.dtype == first.dtype for v in values):
            return torch.from_numpy(np.stack(values))
        return [torch.from_numpy(np.ascontiguousarray(v)) for v in values]
    if all(isinstance(v, bool | np.bool_) for v in values):
        return torch.tensor(values, dtype=torch.bool)
    if all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in values):
        return torch.tensor(values, dtype=torch.int64)
    if all(isinstance(v, float | int | np.floating) and not isinstance(v, bool) for v in values):
        return torch.tensor(values, dtype=torch.float64)
    return values


def collate_samples(batch: list[Any], *, collate_fn_map: Any = None) -> Any:
    """Collate samples of one type into a column-wise :class:`SampleBatch` (see module doc).

    Args:
        batch: The samples (``PackableSample`` instances or ``DictSample``).
        collate_fn_map: torch's collate map (unused; part of torch's calling convention).
    """
    from .samples import DictSample, SampleBatch

    del collate_fn_map
    sample_type = type(batch[0])
    check_worker_picklable(sample_type)
    columns = {}
    for name in _field_names(sample_type, batch):
        if issubclass(sample_type, DictSample):
            values = [s.get(name) for s in batch]
        else:
            values = [getattr(s, name) for s in batch]
        columns[name] = _column(values)
    return SampleBatch._from_columns(sample_type, len(batch), columns)
