"""atdata-lite's public API as a user's type checker sees it.

mypy checks this file in CI (it is in ``[tool.mypy] files``), and ``tests/test_typing.py``
runs it. Each ``assert_type(value, T)`` fails the type check unless ``value`` is exactly
``T`` (``Any`` does not pass), so the types users see cannot silently decay to ``Any``.
"""

from __future__ import annotations

from pathlib import Path
from typing import assert_type

import numpy as np
from numpy.typing import NDArray

from atdata_lite import (
    Dataset,
    DatasetDict,
    Index,
    LocalDatasetEntry,
    PackableSample,
    SampleBatch,
    load_dataset,
    packable,
)
from atdata_lite.shards import write_samples


@packable
class Photo:
    """A tiny image and its label."""

    image: NDArray[np.uint8]
    label: int


@packable
class Caption(PackableSample):
    """Subclassing PackableSample shows its methods (``packed``, ``from_bytes``) to type
    checkers; a plain ``@packable`` class has them only at run time."""

    text: str


def use_the_public_api(root: Path) -> list[int]:
    """Write, index and read back a few samples; return the labels read."""
    photos = [Photo(np.full((2, 2), i, np.uint8), i) for i in range(5)]
    assert_type(photos[0], Photo)  # @packable keeps the class and its constructor
    assert_type(photos[0].label, int)

    index = Index(root / "index.db", data_store=root / "store")
    ref = index.publish_schema(Photo, version="1.0.0")
    assert_type(ref, str)

    shards = write_samples(photos, str(root / "new" / "photos-%06d.tar"), progress=False)
    ds = Dataset[Photo]([s.url for s in shards])
    assert_type(ds, Dataset[Photo])
    entry = index.insert_dataset(ds, name="photos", schema_ref=ref)
    assert_type(entry, LocalDatasetEntry)

    found = index.get_dataset("photos")
    assert_type(found.data_urls, list[str])
    stored = Dataset[Photo](found)  # an index entry is a source
    labels: list[int] = []
    for photo in stored.ordered():
        assert_type(photo, Photo)
        labels.append(photo.label)
    for batch in stored.ordered(batch_size=2):
        assert_type(batch, SampleBatch[Photo])
        assert all(isinstance(p, Photo) for p in batch)
    for photo in stored.shuffled(seed=0):
        assert_type(photo, Photo)
    assert_type(stored.as_type(Photo), Dataset[Photo])
    assert_type(len(stored), int)

    train = load_dataset("@local/photos", Photo, split="train", index=index)
    assert_type(train, Dataset[Photo])
    assert [p.label for p in train] == labels
    splits = load_dataset("@local/photos", index=index)
    assert_type(splits, DatasetDict)
    assert list(splits) == ["train"]
    caption = Caption("a photo")
    assert_type(caption.packed, bytes)
    assert_type(Caption.from_bytes(caption.packed), Caption)
    assert Caption.from_bytes(caption.packed).text == "a photo"
    index.close()
    return labels
