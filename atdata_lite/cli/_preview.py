"""Reading the first samples of an entry for ``atdata-lite preview``."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from itertools import islice
from typing import Any

__all__ = ["first_samples"]

log = logging.getLogger(__name__)


def _as_dict(sample: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(sample) and not isinstance(sample, type):
        return {f.name: getattr(sample, f.name) for f in dataclasses.fields(sample)}
    to_dict = getattr(sample, "to_dict", None)  # DictSample
    if callable(to_dict):
        return dict(to_dict())
    return dict(vars(sample))


def first_samples(index: Any, entry: Any, count: int) -> Iterator[dict[str, Any]]:
    """Yield up to ``count`` samples of ``entry`` as ``{field: value}`` dicts, in order.

    Samples are decoded with the entry's schema; when the schema cannot be turned into a
    type (missing, or written by a newer tool), they are read as plain dicts instead, with
    a warning, so a preview still shows what is in the shards.

    Raises:
        ShardNotFoundError, CorruptShardError: A shard cannot be read.
    """
    from ..dataset import Dataset
    from ..errors import AtdataLiteError

    try:
        sample_type: Any = index.decode_schema(entry.schema_ref)
        dataset: Any = Dataset[sample_type](entry.data_urls)
    except AtdataLiteError as exc:
        log.warning("showing raw fields: the schema cannot be decoded (%s)", exc)
        dataset = Dataset(entry.data_urls)
    for sample in islice(dataset.ordered(), count):
        yield _as_dict(sample)
