"""Batches built from columns give what batches of samples give; the shuffle buffer is
bounded in bytes as well as in samples."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import msgpack
import numpy as np
import pytest
from numpy.typing import NDArray

from atdata_lite import Dataset
from atdata_lite._shuffle import ShuffleBuffer
from atdata_lite.errors import SampleMismatchError
from atdata_lite.samples import KEY_ATTR, DictSample, SampleBatch, packable
from atdata_lite.shards import write_samples


@packable
class Row:
    idx: int
    label: str
    score: float
    flag: bool
    vec: NDArray[np.float32]
    note: str | None = None


@packable
class Ragged:
    idx: int
    vec: NDArray[np.int16]


@packable
class Fortran:
    grid: NDArray[np.float64]


def _rows(n: int) -> list[Row]:
    return [
        Row(
            idx=i,
            label=f"r{i}",
            score=i / 4,
            flag=i % 2 == 0,
            vec=np.arange(3, dtype=np.float32) + i,
            note=None if i % 3 else "x",
        )
        for i in range(n)
    ]


@pytest.fixture
def shards(tmp_path: Path) -> str:
    write_samples(_rows(23), str(tmp_path / "d-%03d.tar"), maxcount=10, progress=False)
    return str(tmp_path / "d-{000..002}.tar")


def _same_samples(a: list[Row], b: list[Row]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert dataclasses.replace(x, vec=None) == dataclasses.replace(y, vec=None)
        np.testing.assert_array_equal(x.vec, y.vec)
        assert x.vec.dtype == y.vec.dtype
        assert getattr(x, KEY_ATTR) == getattr(y, KEY_ATTR)


def test_column_batches_hold_what_batches_of_samples_hold(shards: str) -> None:
    ds = Dataset[Row](shards)
    one_by_one = list(ds.ordered())
    batches = list(ds.ordered(batch_size=5))
    assert [len(b) for b in batches] == [5, 5, 5, 5, 3]
    first = batches[0]
    assert first.idx == [0, 1, 2, 3, 4] and first.label == ["r0", "r1", "r2", "r3", "r4"]
    assert first.note == ["x", None, None, "x", None]
    assert first.vec.shape == (5, 3) and first.vec.dtype == np.float32
    np.testing.assert_array_equal(first.vec, np.stack([s.vec for s in one_by_one[:5]]))
    _same_samples([s for b in batches for s in b.samples], one_by_one)
    # the same as SampleBatch built from the samples themselves
    classic = SampleBatch[Row](one_by_one[:5])
    assert classic.idx == first.idx and classic.score == first.score
    np.testing.assert_array_equal(classic.vec, first.vec)


def test_numpy_batches_give_arrays_for_numeric_fields(shards: str) -> None:
    batch = next(iter(Dataset[Row](shards).ordered(batch_size=4, batch_format="numpy")))
    assert batch.idx.dtype == np.int64 and batch.idx.tolist() == [0, 1, 2, 3]
    assert batch.score.dtype == np.float64 and batch.flag.dtype == np.bool_
    assert batch.label == ["r0", "r1", "r2", "r3"]
    # rebuilt samples get Python values, not numpy scalars
    assert type(batch.samples[1].idx) is int and batch.samples[1].idx == 1


def test_torch_batches_are_writable_tensors_a_dataloader_passes_on(shards: str) -> None:
    torch = pytest.importorskip("torch")
    batch = next(iter(Dataset[Row](shards).ordered(batch_size=4, batch_format="torch")))
    assert isinstance(batch.vec, torch.Tensor) and tuple(batch.vec.shape) == (4, 3)
    assert batch.idx.dtype == torch.int64 and batch.idx.tolist() == [0, 1, 2, 3]
    batch.vec[0, 0] = 99.0  # writable memory: torch shares it without a warning
    assert batch.label == ["r0", "r1", "r2", "r3"]
    loader = torch.utils.data.DataLoader(
        Dataset[Row](shards).ordered(batch_size=4, batch_format="torch"), batch_size=None
    )
    assert sum(len(b) for b in loader) == 23


def test_arrays_of_different_shapes_stay_a_list(tmp_path: Path) -> None:
    rows = [Ragged(idx=i, vec=np.arange(i + 1, dtype=np.int16)) for i in range(4)]
    write_samples(rows, str(tmp_path / "r.tar"), progress=False)
    batch = next(iter(Dataset[Ragged](str(tmp_path / "r.tar")).ordered(batch_size=4)))
    assert isinstance(batch.vec, list) and [v.tolist() for v in batch.vec] == [
        list(range(i + 1)) for i in range(4)
    ]


def test_fortran_ordered_arrays_stack_correctly(tmp_path: Path) -> None:
    grids = [np.asfortranarray(np.arange(12.0).reshape(3, 4) * (i + 1)) for i in range(3)]
    write_samples([Fortran(grid=g) for g in grids], str(tmp_path / "f.tar"), progress=False)
    batch = next(iter(Dataset[Fortran](str(tmp_path / "f.tar")).ordered(batch_size=3)))
    np.testing.assert_array_equal(batch.grid, np.stack(grids))


def test_a_bad_value_in_a_batch_raises_the_one_sample_error(tmp_path: Path) -> None:
    import io
    import tarfile

    path = tmp_path / "bad.tar"
    good = [_rows(1)[0].packed] * 3
    bad = msgpack.packb({**msgpack.unpackb(good[0]), "idx": "seven"})
    with tarfile.open(path, "w") as tar:
        for i, payload in enumerate([*good, bad]):
            info = tarfile.TarInfo(f"k{i}.msgpack")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    with pytest.raises(SampleMismatchError, match=r"bad.tar, sample 'k3'.*'idx'.*int"):
        list(Dataset[Row](str(path)).ordered(batch_size=4))
    with pytest.raises(SampleMismatchError, match=r"'idx'.*int"):
        list(Dataset[Row](str(path)).ordered())


def test_batch_format_needs_a_typed_dataset_and_a_batch_size(shards: str) -> None:
    with pytest.raises(ValueError, match="typed dataset"):
        Dataset[DictSample](shards).ordered(batch_size=2, batch_format="numpy")
    with pytest.raises(ValueError, match="needs a batch_size"):
        Dataset[Row](shards).ordered(batch_format="numpy")
    with pytest.raises(ValueError, match="batch_format must be one of"):
        Dataset[Row](shards).ordered(batch_size=2, batch_format="arrow")  # type: ignore[call-overload]


def test_shuffled_column_batches_are_a_permutation(shards: str) -> None:
    ds = Dataset[Row](shards)
    batches = list(ds.shuffled(seed=3, batch_size=6, batch_format="numpy"))
    seen = sorted(i for b in batches for i in b.idx.tolist())
    assert seen == list(range(23))
    again = [b.idx.tolist() for b in ds.shuffled(seed=3, batch_size=6, batch_format="numpy")]
    assert again == [b.idx.tolist() for b in batches]


def _held(
    buffer: ShuffleBuffer, sizes: list[int], groups: list[int] | None = None, lazy: bool = False
) -> tuple[list[int], int]:
    """Run the buffer over samples 0..n-1 of the given sizes, handed over in groups of the
    given lengths (one sample each by default; ``lazy``: payloads made as they are taken);
    the order, and the most payload bytes it ever held."""
    held = {"now": 0, "peak": 0}

    def take(i: int) -> bytes:
        held["now"] += sizes[i]
        held["peak"] = max(held["peak"], held["now"])
        return b"x" * sizes[i]

    def source():
        start = 0
        for length in groups or [1] * len(sizes):
            ids = range(start, min(start + length, len(sizes)))
            start = ids.stop
            payloads = map(take, ids) if lazy else [take(i) for i in ids]
            # what the reader yields: (payloads, keys, url, their bytes)
            yield payloads, [f"k{i}" for i in ids], "s.tar", sum(sizes[i] for i in ids)

    order = []
    for payload, key, _ in buffer(source()):
        i = int(key[1:])
        assert len(payload) == sizes[i]
        held["now"] -= sizes[i]
        order.append(i)
    return order, held["peak"]


def _reference_order(bufsize: int, seed: int, max_bytes: int, sizes: list[int]) -> list[int]:
    """The documented order, sample by sample (see atdata_lite._shuffle)."""
    import random

    rng = random.Random(f"{seed}/samples/0/1/0/1")
    buf: list[int] = []
    held = 0
    order = []
    for i, size in enumerate(sizes):
        if len(buf) < bufsize and (held + size <= max_bytes or not buf):
            buf.append(i)
            held += size
            continue
        j = rng.randrange(len(buf))
        order.append(buf[j])
        held += size - sizes[buf[j]]
        buf[j] = i
        while held > max_bytes and len(buf) > 1:
            j = rng.randrange(len(buf))
            buf[j], buf[-1] = buf[-1], buf[j]
            held -= sizes[buf[-1]]
            order.append(buf.pop())
    rng.shuffle(buf)
    return order + buf


def test_shuffle_buffer_is_bounded_in_bytes() -> None:
    sizes = [600_000] * 1500
    order, peak = _held(ShuffleBuffer(10_000, seed=1, max_bytes=50 * 600_000), sizes)
    assert sorted(order) == list(range(1500))
    assert peak <= 51 * 600_000  # the bound, plus the sample coming in
    assert order != list(range(1500))
    assert order == _reference_order(10_000, 1, 50 * 600_000, sizes)


def test_shuffle_buffer_keeps_one_sample_larger_than_the_bound() -> None:
    order, _ = _held(ShuffleBuffer(100, seed=1, max_bytes=10), [50, 5, 70, 1])
    assert sorted(order) == [0, 1, 2, 3]


def test_shuffle_order_unchanged_when_the_byte_bound_is_not_reached() -> None:
    # the same seed keeps giving the same order as before the byte bound existed
    small = _held(ShuffleBuffer(8, seed=7, max_bytes=1 << 30), [10] * 40)[0]
    import random

    rng = random.Random("7/samples/0/1/0/1")
    buf: list[int] = []
    expected = []
    for i in range(40):
        if len(buf) < 8:
            buf.append(i)
            continue
        j = rng.randrange(len(buf))
        expected.append(buf[j])
        buf[j] = i
    rng.shuffle(buf)
    assert small == expected + buf


def _random_case(seed: int, n: int, low: int, high: int, longest: int) -> tuple[list, list]:
    import random

    rng = random.Random(seed)
    sizes = [rng.randint(low, high) for _ in range(n)]
    groups = [rng.randint(1, longest) for _ in range(n)]
    return sizes, groups


@pytest.mark.parametrize(
    ("bufsize", "max_bytes", "case"),
    [
        (10, 1 << 30, (1, 3_000, 1, 100, 300)),  # full buffer, groups of up to 300
        (1_000, 1 << 30, (2, 20_000, 1, 100, 4_096)),  # rejection-heavy draws (1000 < 1024)
        (1, 1 << 30, (3, 500, 1, 10, 50)),
        (50, 2_000, (4, 5_000, 1, 100, 40)),  # the byte bound comes and goes
        (64, 10_000, (5, 5_000, 1, 400, 200)),  # bound reached after full, uneven groups
    ],
)
@pytest.mark.parametrize("lazy", [False, True])
def test_shuffle_order_is_the_documented_order_for_any_grouping(
    bufsize: int, max_bytes: int, case: tuple, lazy: bool
) -> None:
    sizes, groups = _random_case(*case)
    for seed in (0, 11):
        order, peak = _held(ShuffleBuffer(bufsize, seed, max_bytes), sizes, groups, lazy)
        assert order == _reference_order(bufsize, seed, max_bytes, sizes)
        if lazy:  # payloads are made as the buffer takes them: the bound holds
            assert peak <= max_bytes + max(sizes)


def test_shuffle_order_after_samples_grow_past_the_bound() -> None:
    # small samples fill the buffer, then large ones take it over its byte bound
    sizes = [10] * 2_000 + [900] * 2_000 + [10] * 2_000
    groups = [250] * 24
    order, _ = _held(ShuffleBuffer(100, 3, 20_000), sizes, groups)
    assert order == _reference_order(100, 3, 20_000, sizes)


def test_shuffled_refuses_a_byte_bound_below_one(shards: str) -> None:
    with pytest.raises(ValueError, match="buffer_bytes"):
        Dataset[Row](shards).shuffled(buffer_bytes=0)


@packable
class Label:
    label: str


def test_shuffled_through_a_lens_keeps_keys(shards: str) -> None:
    from atdata_lite.lenses import lens

    @lens
    def row_label(row: Row) -> Label:
        return Label(label=row.label)

    ordered = {getattr(r, KEY_ATTR): r.label for r in Dataset[Row](shards).ordered()}
    viewed = list(Dataset[Row](shards).as_type(Label).shuffled(seed=3))
    assert all(type(v) is Label for v in viewed)
    assert {getattr(v, KEY_ATTR): v.label for v in viewed} == ordered


def test_shuffled_samples_are_the_ordered_samples(shards: str) -> None:
    # the buffer keeps undecoded payloads: what leaves it decodes to the same samples
    ordered = list(Dataset[Row](shards).ordered())
    for kwargs in ({}, {"buffer_samples": 1}, {"buffer_bytes": 1}, {"buffer_samples": 5}):
        mixed = list(Dataset[Row](shards).shuffled(seed=2, **kwargs))
        _same_samples(sorted(mixed, key=lambda r: r.idx), ordered)
    copies = list(Dataset[Row](shards, copy_arrays=True).shuffled(seed=2))
    assert all(r.vec.flags.writeable for r in copies)
    views = list(Dataset[Row](shards).shuffled(seed=2))
    assert not any(r.vec.flags.writeable for r in views)


def test_shuffled_reads_large_payloads_in_place(tmp_path: Path) -> None:
    big = [Fortran(grid=np.full((120, 100), i, np.float64)) for i in range(6)]  # ~96 KB each
    write_samples(big, str(tmp_path / "big.tar"), progress=False)
    got = list(Dataset[Fortran](str(tmp_path / "big.tar")).shuffled(seed=1))
    assert sorted(int(s.grid[0, 0]) for s in got) == list(range(6))
    assert all(not s.grid.flags.owndata and not s.grid.flags.writeable for s in got)


def test_shuffled_bad_sample_raises_naming_shard_and_key(tmp_path: Path) -> None:
    import io
    import tarfile

    path = tmp_path / "bad.tar"
    good = _rows(1)[0].packed
    bad = msgpack.packb({**msgpack.unpackb(good), "idx": "seven"})
    with tarfile.open(path, "w") as tar:
        for i, payload in enumerate([good, good, bad, good]):
            info = tarfile.TarInfo(f"k{i}.msgpack")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    with pytest.raises(SampleMismatchError, match=r"bad.tar, sample 'k2'.*'idx'.*int") as err:
        list(Dataset[Row](str(path)).shuffled(seed=0))
    assert err.value.key == "k2" and err.value.shard == str(path)
    with pytest.raises(SampleMismatchError, match=r"bad.tar, sample 'k2'"):
        list(Dataset[Row](str(path)).shuffled(seed=0, batch_size=2, batch_format="numpy"))


def test_shuffled_dict_samples_are_every_sample(shards: str) -> None:
    ids = sorted(s["idx"] for s in Dataset[DictSample](shards).shuffled(seed=4))
    assert ids == list(range(23))


def test_pipelines_repeat_and_take_epochs_as_webdataset_does(shards: str) -> None:
    ds = Dataset[Row](shards)
    once = [r.idx for r in ds.ordered()]
    assert once == list(range(23)) and [r.idx for r in ds.ordered()] == once
    assert [r.idx for r in ds.ordered().repeat(2)] == once * 2
    assert len(list(ds.shuffled(seed=1).with_epoch(30))) == 30


def test_shuffled_long_runs_are_copied_as_the_buffer_takes_them(
    shards: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import atdata_lite.dataset as dataset_module

    eager = list(Dataset[Row](shards).shuffled(seed=5))
    monkeypatch.setattr(dataset_module, "_EAGER_RUN", 1)  # every run is a long one
    lazy = list(Dataset[Row](shards).shuffled(seed=5))
    assert sorted(r.idx for r in lazy) == list(range(23))
    _same_samples(lazy, eager)  # the same samples in the same order
