"""One call to write and register (Index.write_samples), and load_dataset in every form."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from _index_helpers import BACKENDS, ImageSample, Point, images, open_index

import atdata_lite
from atdata_lite import DatasetDict, Index, load_dataset
from atdata_lite.dataset import Dataset
from atdata_lite.errors import DatasetExistsError, NotPackableError, ShardNotFoundError
from atdata_lite.loading import detect_split, entry_splits
from atdata_lite.samples import DictSample
from atdata_lite.shards import inspect_shard, write_samples


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A user data directory of our own: the default index and store live in it."""
    for var in ("ATDATA_LITE_INDEX", "ATDATA_LITE_STORE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ATDATA_LITE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _points(n: int) -> list[Point]:
    return [Point(x=i, y=-i) for i in range(n)]


# --- Index.write_samples ---------------------------------------------------------------


@pytest.mark.parametrize("kind", BACKENDS)
def test_write_samples_publishes_writes_and_records_facts(kind, tmp_path, request):
    with open_index(kind, tmp_path, request, data_store=tmp_path / "store") as index:
        entry = index.write_samples(_points(25), name="pts", maxcount=10, metadata={"v": 1})
        assert entry.schema_ref == "atdata://local/sampleSchema/Point@1.0.0"
        assert [s.sample_count for s in entry.shards] == [10, 10, 5]
        for shard in entry.shards:  # what was recorded is what is on disk
            assert inspect_shard(shard.url) == shard
            assert shard.url.startswith(str(tmp_path / "store" / "pts") + "/")
        assert entry.recorded_urls[0].startswith("store://pts/data--")
        # An identical type reuses the published schema; a second dataset, no new version.
        again = index.write_samples(_points(3), name="more")
        assert again.schema_ref == entry.schema_ref
        assert [s["version"] for s in index.list_schemas()] == ["1.0.0"]
        stored = index.get_dataset("pts")
        assert stored.shards == entry.shards and stored.metadata == {"v": 1}
        assert [p.x for p in Dataset[Point](stored.data_urls)] == list(range(25))


def test_write_samples_conflicts_are_decided_before_writing(tmp_path):
    store = tmp_path / "store"
    with Index(tmp_path / "i.db", data_store=store) as index:
        first = index.write_samples(_points(3), name="pts")
        files = sorted(store.rglob("*.tar"))
        with pytest.raises(DatasetExistsError, match="on_conflict='replace' to replace it"):
            index.write_samples(_points(4), name="pts")
        assert index.write_samples(_points(4), name="pts", on_conflict="skip") == first
        assert sorted(store.rglob("*.tar")) == files  # nothing written for either
        replaced = index.write_samples(iter(_points(4)), name="pts", on_conflict="replace")
        assert sum(s.sample_count for s in replaced.shards) == 4


def test_write_samples_bad_input(tmp_path):
    with Index(tmp_path / "i.db", data_store=tmp_path / "store") as index:
        with pytest.raises(ValueError, match="got no samples"):
            index.write_samples([], name="empty")
        with pytest.raises(NotPackableError, match="schema_ref"):
            index.write_samples([DictSample(x=1)], name="d")
        ref = index.publish_schema(Point)
        entry = index.write_samples([DictSample(x=1, y=2)], name="d", schema_ref=ref)
        assert entry.schema_ref == ref
        # A name that is not a store path still gets a directory of its own.
        odd = index.write_samples(_points(1), name="my photos/v1")
        assert "/my_photos_v1/" in odd.data_urls[0]
        assert index.list_datasets()[0].name == "d"
    assert not list((tmp_path / "store").rglob(".*tmp*"))


def test_index_without_arguments_has_the_default_store(home):
    with Index() as index:
        assert index.data_store.root_url == str(home / "shards")
        entry = index.write_samples(images(3), name="imgs")
        assert entry.data_urls[0].startswith(str(home / "shards" / "imgs") + "/")
    with Index(home / "other.db") as explicit:
        assert explicit.data_store is None  # an explicit index keeps its explicit store
    # Opening the default index and reading from it stays light (no numpy, no fsspec).
    code = (
        "import sys\n"
        "from atdata_lite import Index\n"
        "idx = Index(); idx.get_dataset('imgs'); idx.list_datasets()\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('numpy', 'webdataset', 'fsspec', 'alembic'))\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_insert_dataset_through_the_default_store_records_facts(home, tmp_path):
    write_samples(_points(7), str(tmp_path / "src-%02d.tar"), maxcount=4)
    with Index() as index:
        src = Dataset[Point]([str(tmp_path / "src-00.tar"), str(tmp_path / "src-01.tar")])
        entry = index.insert_dataset(src, name="copied")
    assert sum(s.sample_count for s in entry.shards) == 7
    assert all(s.size and s.sha256 for s in entry.shards)
    assert entry.recorded_urls[0].startswith("store://copied/")


# --- load_dataset by name --------------------------------------------------------------


def test_load_by_name_with_the_default_index(home):
    with Index() as index:
        index.write_samples(images(5), name="photos", maxcount=2)
    train = atdata_lite.load_dataset("@local/photos", split="train")
    assert isinstance(train, Dataset) and len(train) == 5
    assert train.sample_type.__name__ == "ImageSample"  # decoded from the stored schema
    assert [s.label for s in train] == [f"l{i}" for i in range(5)]
    splits = load_dataset("@local/photos")
    assert isinstance(splits, DatasetDict) and isinstance(splits, dict)
    assert list(splits) == ["train"] and splits.num_shards == {"train": 3}
    assert splits.sample_type is train.sample_type
    typed = load_dataset("@local/photos", ImageSample, split="train")
    assert typed.sample_type is ImageSample and len(typed) == 5


def test_load_by_name_errors(tmp_path):
    with Index(tmp_path / "i.db", data_store=tmp_path / "s") as index:
        index.write_samples(_points(2), name="pts")
        with pytest.raises(
            ValueError, match=r"Split 'test' not found. Available splits: \['train'\]"
        ):
            load_dataset("@local/pts", split="test", index=index)
        with pytest.raises(KeyError, match="No entry with name: nope"):
            load_dataset("@local/nope", index=index)
        with pytest.raises(ValueError, match="handle must be 'local'"):
            load_dataset("@alice.bsky.social/pts", index=index)
        with pytest.raises(ValueError, match="Invalid indexed path"):
            load_dataset("@local", index=index)
        # the index given is not closed by load_dataset
        assert entry_splits(index.get_dataset("pts")) == {
            "train": index.get_dataset("pts").data_urls
        }


@pytest.mark.parametrize("kind", BACKENDS)
def test_load_by_version_and_label(kind, tmp_path, request):
    with open_index(kind, tmp_path, request, data_store=tmp_path / "store") as index:
        old = index.write_samples(_points(3), name="pts", version="1.2.0")
        # A later version with another sample type: each version decodes its own schema.
        new = index.write_samples(images(2), name="pts", version="2.0.0")
        index.tag("pts@1.2.0", "stable")
        index.label("favourite", old.cid)

        def load(ref: str) -> Dataset:
            return load_dataset(ref, index=index, split="train")

        latest = load("@local/pts")
        assert latest.sample_type.__name__ == "ImageSample"
        assert [s.label for s in latest] == ["l0", "l1"]
        for ref in ("@local/pts@1.2.0", "@local/pts:stable", "@local/pts@stable"):
            pinned = load(ref)
            assert pinned.sample_type.__name__ == "Point", ref
            assert sorted(p.x for p in pinned) == [0, 1, 2], ref
            assert len(pinned) == 3
        assert [s.label for s in load("@local/pts@2.0.0")] == ["l0", "l1"]
        assert len(load("@local/favourite")) == 3  # another name for the same content
        # A type passed by the caller wins over the stored schema.
        assert load_dataset("@local/pts@1.2.0", Point, index=index)["train"].sample_type is Point
        assert index.get_dataset("pts@2.0.0").cid == new.cid

        wanted = r"No entry with name: pts@9\.9\.9\. Versions of 'pts': 1\.2\.0, 2\.0\.0;"
        with pytest.raises(KeyError, match=wanted) as info:
            load("@local/pts@9.9.9")
        assert "Labels: stable -> 1.2.0." in str(info.value)
        with pytest.raises(KeyError, match=r"pts:nope\. Versions of 'pts': 1\.2\.0, 2\.0\.0"):
            load("@local/pts:nope")
        with pytest.raises(KeyError, match=r"No entry with name: nope@1\.0\.0\. List the entries"):
            load("@local/nope@1.0.0")  # no such name at all: the usual advice


# --- load_dataset from files -----------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "split"),
    [
        ("data/train.tar", "train"),
        ("data/mnist-train-000000.tar", "train"),
        ("data/val_0.tar", "validation"),
        ("data/dev-3.tar", "validation"),
        ("out/test/000.tar", "test"),
        ("TRAINING/x.tar", "train"),
        ("data/trainset.tar", None),
        ("data/mytraining.tar", None),
        ("/home/u/train_project/shard.tar", None),
    ],
)
def test_detect_split(path, split):
    assert detect_split(path) == split


@pytest.fixture
def split_files(tmp_path):
    for name in ("train-000.tar", "train-001.tar", "test-000.tar"):
        write_samples(_points(2), str(tmp_path / "d" / name))
    write_samples(_points(3), str(tmp_path / "d" / "validation" / "000.tar"))
    (tmp_path / "d" / "README.md").write_text("not a shard")
    return tmp_path / "d"


def test_directory_glob_brace_and_single_file(split_files, monkeypatch):
    d = str(split_files)
    found = load_dataset(d)
    assert found.num_shards == {"train": 2, "test": 1, "validation": 1}
    assert found.sample_type is DictSample
    assert [s.x for s in found["validation"]] == [0, 1, 2]
    assert load_dataset(f"{d}/train-*.tar", Point).num_shards == {"train": 2}
    braced = load_dataset(f"{d}/{{train-000,test-000}}.tar", Point)
    assert braced.num_shards == {"train": 1, "test": 1}  # one split per detected name
    one = load_dataset(f"{d}/test-000.tar", Point, split="test")
    assert [p.x for p in one] == [0, 1]
    monkeypatch.chdir(split_files)
    assert load_dataset("train-001.tar", Point, split="train").list_shards() == ["train-001.tar"]


def test_data_files_and_missing_paths(split_files):
    d = str(split_files)
    chosen = load_dataset(d, Point, data_files={"train": ["train-000.tar"], "eval": "test-000.tar"})
    assert chosen.num_shards == {"train": 1, "eval": 1}
    assert chosen["eval"].list_shards() == [os.path.join(d, "test-000.tar")]
    with pytest.raises(ShardNotFoundError, match="No data files found"):
        load_dataset(f"{d}/nothing.tar")
    with pytest.raises(FileNotFoundError):
        load_dataset(f"{d}/*.zip")


def test_remote_glob_through_fsspec():
    import fsspec

    fs = fsspec.filesystem("memory")
    write_samples(_points(2), "memory://ld/train-0.tar")
    write_samples(_points(2), "memory://ld/test-0.tar")
    try:
        found = load_dataset("memory://ld/*.tar", Point)
        assert found.num_shards == {"test": 1, "train": 1}
        assert [p.x for p in found["train"]] == [0, 1]
    finally:
        fs.rm("/ld", recursive=True)


# --- named splits ------------------------------------------------------------------------


def test_load_dataset_gives_each_named_split_with_its_length(home, tmp_path):
    import dataclasses

    train = write_samples(_points(25), str(tmp_path / "train-%02d.tar"), maxcount=10)
    test = write_samples(_points(7), str(tmp_path / "test-%02d.tar"), maxcount=10)
    shards = [dataclasses.replace(s, split="train") for s in train]
    shards += [dataclasses.replace(s, split="test") for s in test]
    with Index() as index:
        index.add_shards(shards, name="pts", schema_ref=index.publish_schema(Point))

    splits = load_dataset("@local/pts")
    assert isinstance(splits, DatasetDict) and sorted(splits) == ["test", "train"]
    assert len(splits["train"]) == 25 and len(splits["test"]) == 7
    assert sorted(p.x for p in splits["test"].ordered()) == list(range(7))
    only = load_dataset("@local/pts", split="test")
    assert [p.x for p in only.ordered()] == [p.x for p in splits["test"].ordered()]
    with pytest.raises(ValueError, match="train"):
        load_dataset("@local/pts", split="validation")

    # Chunks of a split partition it, and each chunk's len() counts its own samples.
    for n in (1, 2, 3, 5):
        parts = [splits["train"].chunk(i, n) for i in range(n)]
        seen = sorted(p.x for part in parts for p in part.ordered())
        assert seen == list(range(25))
        assert [len(part) for part in parts] == [sum(1 for _ in part.ordered()) for part in parts]
