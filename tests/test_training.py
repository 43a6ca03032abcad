"""Training: decoded types in DataLoader workers (fork and spawn), collation, len(), failures.

Every DataLoader test has a time limit: a worker that cannot send its result makes torch
wait forever, so a hang must fail the test rather than the suite.
"""

from __future__ import annotations

import importlib.util
import pickle

import numpy as np
import pytest
from numpy.typing import NDArray

from atdata_lite import Index, load_dataset
from atdata_lite.dataset import Dataset
from atdata_lite.samples import SampleBatch, packable
from atdata_lite.schema import DecodedSampleType, clear_type_cache, schema_to_type

needs_torch = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="torch is not installed"
)


@packable
class Photo:
    image: NDArray[np.uint8]
    label: int
    caption: str
    score: float | None = None


def _photos(n: int) -> list[Photo]:
    return [
        Photo(image=np.full((4, 4), i % 256, np.uint8), label=i, caption=f"c{i}") for i in range(n)
    ]


@pytest.fixture
def photo_index(tmp_path):
    """An index (with its own store) holding 'photos': 100 samples in 4 shards."""
    index = Index(tmp_path / "index.db", data_store=tmp_path / "store")
    index.write_samples(_photos(100), name="photos", maxcount=25)
    yield index
    index.close()


# --- pickling decoded types ------------------------------------------------------------


def test_decoded_type_and_its_samples_pickle(photo_index):
    ref = photo_index.get_dataset("photos").schema_ref
    cls = photo_index.decode_schema(ref)
    assert isinstance(cls, DecodedSampleType)
    assert pickle.loads(pickle.dumps(cls)) is cls  # the type cache gives the same class
    sample = cls(image=np.zeros((2, 2), np.uint8), label=3, caption="x")
    back = pickle.loads(pickle.dumps(sample))
    assert type(back) is cls and back.label == 3 and back.image.shape == (2, 2)


def test_decoded_type_rebuilds_from_its_record_in_a_fresh_cache():
    record = {
        "name": "Fresh",
        "version": "1.0.0",
        "fields": [
            {"name": "x", "fieldType": {"$type": "local#primitive", "primitive": "int"}},
        ],
    }
    cls = schema_to_type(record)
    data = pickle.dumps(cls(x=5))
    clear_type_cache()  # as in a spawned worker: nothing cached
    back = pickle.loads(data)
    assert type(back).__name__ == "Fresh" and back.x == 5 and type(back) is not cls


# --- DataLoader ------------------------------------------------------------------------


def _loader(ds, start_method, **kwargs):
    import torch.utils.data

    return torch.utils.data.DataLoader(
        ds, num_workers=2, multiprocessing_context=start_method, **kwargs
    )


@needs_torch
@pytest.mark.timeout(180)
@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_dataloader_with_decoded_type_under_fork_and_spawn(photo_index, start_method):
    import torch

    train = load_dataset("@local/photos", split="train", index=photo_index)
    assert isinstance(train.sample_type, DecodedSampleType)
    labels = []
    for batch in _loader(train, start_method, batch_size=16):
        assert isinstance(batch, SampleBatch)
        assert isinstance(batch.image, torch.Tensor) and batch.image.dtype == torch.uint8
        assert batch.image.shape[1:] == (4, 4) and batch.image.shape[0] == len(batch)
        assert batch.label.dtype == torch.int64
        assert batch.caption == [f"c{i}" for i in batch.label.tolist()]
        assert batch.score == [None] * len(batch)  # a column holding None stays a list
        labels += batch.label.tolist()
    assert sorted(labels) == list(range(100))  # each shard read by exactly one worker


@needs_torch
@pytest.mark.timeout(180)
@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_a_failing_worker_raises_in_the_main_process(tmp_path, photo_index, start_method):
    from atdata_lite.errors import ShardNotFoundError

    train = load_dataset("@local/photos", split="train", index=photo_index)
    broken = Dataset[train.sample_type]([*train.list_shards(), str(tmp_path / "gone.tar")])
    with pytest.raises(ShardNotFoundError, match=r"gone\.tar"):
        for _ in _loader(broken, start_method, batch_size=8):
            pass


@needs_torch
@pytest.mark.timeout(120)
def test_an_unpicklable_sample_type_fails_instead_of_hanging(tmp_path):
    from atdata_lite.shards import write_samples

    @packable
    class Local:  # defined in a function: pickle cannot find it by name
        x: int

    write_samples([Local(x=i) for i in range(6)], str(tmp_path / "l-%02d.tar"), maxcount=3)
    ds = Dataset[Local]([str(tmp_path / "l-00.tar"), str(tmp_path / "l-01.tar")])
    with pytest.raises(TypeError, match="cannot be sent from a DataLoader worker"):
        for _ in _loader(ds, "fork", batch_size=2):
            pass


@needs_torch
@pytest.mark.timeout(120)
def test_batches_pin_and_move_and_rebuild_samples(photo_index):
    import torch

    train = load_dataset("@local/photos", split="train", index=photo_index)
    batch = next(iter(torch.utils.data.DataLoader(train, batch_size=5)))
    assert len(batch) == 5 and batch["label"].tolist() == [0, 1, 2, 3, 4]
    moved = batch.to(torch.float32)
    assert moved.image.dtype == torch.float32 and moved.caption == batch.caption
    assert batch[1].label == 1 and batch.samples[4].caption == "c4"


@needs_torch
def test_ragged_arrays_collate_to_a_list_of_tensors():
    import torch

    from atdata_lite._torch import collate_samples

    batch = collate_samples(
        [Photo(image=np.zeros((n, 2), np.uint8), label=n, caption="") for n in (1, 2)]
    )
    assert [t.shape for t in batch.image] == [(1, 2), (2, 2)]
    assert all(isinstance(t, torch.Tensor) for t in batch.image)


def test_without_a_dataloader_batches_stay_numpy(photo_index):
    train = load_dataset("@local/photos", split="train", index=photo_index)
    batch = next(iter(train.ordered(batch_size=10)))
    assert isinstance(batch.image, np.ndarray) and batch.image.shape == (10, 4, 4)


# --- len() ---------------------------------------------------------------------------


def test_len_from_the_recorded_sample_counts(photo_index):
    train = load_dataset("@local/photos", split="train", index=photo_index)
    assert len(train) == 100
    assert bool(train)


def test_len_without_recorded_counts_is_a_clear_type_error(photo_index):
    urls = photo_index.get_dataset("photos").data_urls
    ds = Dataset[Photo](urls)
    with pytest.raises(TypeError, match="sample count of 4 of its 4 shard"):
        len(ds)
    assert bool(ds) and len(list(ds)) == 100  # list() and truth tests do not need len()
