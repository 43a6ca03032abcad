"""Dataset.chunk(i, n): disjoint, covering, deterministic parts, checked exhaustively."""

from __future__ import annotations

import pytest
from _data_helpers import Row, rows

from atdata_lite.dataset import Dataset, chunk_plan
from atdata_lite.shards import write_samples


def _write(tmp_path, sizes: list[int]) -> list[str]:
    urls, start = [], 0
    for j, size in enumerate(sizes):
        url = str(tmp_path / f"s-{j:03d}.tar")
        write_samples(rows(size, start), url)
        urls.append(url)
        start += size
    return urls


@pytest.mark.parametrize("sizes", [[], [1], [4], [3, 3], [1, 5, 2], [2, 0, 3, 1], [7, 1, 1, 4, 2]])
def test_chunks_partition_every_sample_exactly_once(tmp_path, sizes):
    urls = _write(tmp_path, [s for s in sizes if s]) if any(sizes) else []
    total = sum(sizes)
    ds = Dataset[Row](urls) if urls else None
    for n in range(1, 2 * max(len(urls), 1) + 3):
        parts = [
            [r.idx for r in ds.chunk(i, n).ordered()] if ds is not None else [] for i in range(n)
        ]
        seen = sorted(x for part in parts for x in part)
        assert seen == list(range(total)), (sizes, n, parts)
        # deterministic: the same chunk twice gives the same samples in the same order
        if ds is not None:
            assert [r.idx for r in ds.chunk(n - 1, n).ordered()] == parts[n - 1]


def test_chunk_plan_exhaustive_small_cases():
    for shards in range(0, 6):
        for n in range(1, 14):
            cover: dict[tuple[int, int], int] = {}
            # a shard of 12 samples checks the sample-level split within shards
            for i in range(n):
                positions, offset, step = chunk_plan(shards, i, n)
                assert 0 <= offset < step
                for p in positions:
                    for k in range(offset, 12, step):
                        cover[(p, k)] = cover.get((p, k), 0) + 1
            expected = {(p, k) for p in range(shards) for k in range(12)}
            assert set(cover) == expected and set(cover.values()) <= {1}, (shards, n)


def test_more_chunks_than_shards_splits_inside_shards(tmp_path):
    urls = _write(tmp_path, [6, 4])
    ds = Dataset[Row](urls)
    parts = [[r.idx for r in ds.chunk(i, 5).ordered()] for i in range(5)]
    # shard 0 (0..5) is shared by chunks 0, 2, 4; shard 1 (6..9) by chunks 1, 3
    assert parts == [[0, 3], [6, 8], [1, 4], [7, 9], [2, 5]]


def test_fewer_chunks_than_shards_deals_whole_shards(tmp_path):
    urls = _write(tmp_path, [2, 2, 2])
    ds = Dataset[Row](urls)
    assert [r.idx for r in ds.chunk(0, 2).ordered()] == [0, 1, 4, 5]
    assert [r.idx for r in ds.chunk(1, 2).ordered()] == [2, 3]
    # shuffled iteration of a chunk keeps the same samples
    assert sorted(r.idx for r in ds.chunk(0, 2).shuffled(seed=3)) == [0, 1, 4, 5]


def test_chunk_keeps_lens_and_type(tmp_path):
    urls = _write(tmp_path, [3])
    ds = Dataset[Row](urls)
    assert ds.chunk(0, 1).sample_type is Row
    part = ds.chunk(1, 2)
    assert [r.label for r in part.ordered()] == ["r1"]


@pytest.mark.parametrize(
    ("i", "n", "error", "match"),
    [
        (0, 0, ValueError, "n must be at least 1"),
        (-1, 3, ValueError, r"i must be in \[0, 3\)"),
        (3, 3, ValueError, r"i must be in \[0, 3\)"),
        (0.5, 3, TypeError, "i must be an integer"),
        (0, True, TypeError, "n must be an integer"),
    ],
)
def test_bad_chunk_arguments(tmp_path, i, n, error, match):
    ds = Dataset[Row](_write(tmp_path, [2]))
    with pytest.raises(error, match=match):
        ds.chunk(i, n)


def test_chunk_of_a_chunk_is_refused(tmp_path):
    ds = Dataset[Row](_write(tmp_path, [2]))
    with pytest.raises(ValueError, match="already chunk 0 of 2"):
        ds.chunk(0, 2).chunk(0, 2)
