"""Named splits end to end: writing, reading one split, export/import, pull --split."""

from __future__ import annotations

import json

import pytest
from _data_helpers import Row, rows
from _remote_helpers import ShardServer
from click.testing import CliRunner

from atdata_lite.cache import ShardCache
from atdata_lite.cli import main
from atdata_lite.dataset import Dataset
from atdata_lite.index.api import Index
from atdata_lite.index.backend import ShardRecord
from atdata_lite.shards import write_samples
from atdata_lite.transfer import export_catalog, import_catalog


@pytest.fixture
def index(tmp_path):
    with Index(str(tmp_path / "index.db")) as idx:
        yield idx


def test_write_and_read_splits(index, tmp_path):
    train = write_samples(rows(7), str(tmp_path / "train-%03d.tar"), maxcount=3)
    test = write_samples(rows(2, start=100), str(tmp_path / "test-%03d.tar"))
    entry = index.add_splits({"train": Dataset[Row]([r.url for r in train]), "test": test},
                             name="mnist")  # fmt: skip
    assert list(entry.splits) == ["train", "test"]
    stored = index.get_dataset("mnist")
    assert stored.shards[-1].sha256 == test[0].sha256  # facts kept from write_samples
    assert [r.idx for r in Dataset[Row](stored, split="train").ordered()] == list(range(7))
    assert [r.idx for r in Dataset[Row](stored, split="test").ordered()] == [100, 101]
    assert len(list(Dataset[Row](stored).ordered())) == 9  # no split: every shard
    with pytest.raises(KeyError, match=r"no split 'val'.*test, train"):
        Dataset[Row](stored, split="val")
    with pytest.raises(ValueError, match="needs an index entry"):
        Dataset[Row](str(tmp_path / "test-000.tar"), split="test")


def test_bad_splits_are_refused(index, tmp_path):
    ref = index.publish_schema(Row)
    with pytest.raises(ValueError, match="has no shards"):
        index.add_splits({"train": []}, name="x", schema_ref=ref)
    with pytest.raises(ValueError, match="at least one split"):
        index.add_splits({}, name="x", schema_ref=ref)
    with pytest.raises(ValueError, match="invalid split name"):
        index.add_splits({" ": ["a.tar"]}, name="x", schema_ref=ref)
    with pytest.raises(ValueError, match="some shards name a split"):
        index.add_shards([ShardRecord("a.tar", split="train"), "b.tar"], name="x", schema_ref=ref)
    assert index.list_datasets() == []


def test_export_and_import_carry_splits(index, tmp_path):
    ref = index.publish_schema(Row)
    a, b, c, d = (str(tmp_path / f"{x}.tar") for x in "abcd")
    index.add_splits({"train": [a, b], "test": [c]}, name="s", schema_ref=ref)
    index.add_shards([d], name="plain", schema_ref=ref)
    backup = tmp_path / "backup.json"
    export_catalog(index, str(backup))
    doc = json.loads(backup.read_text())
    plain = next(d for d in doc["datasets"] if d["name"] == "plain")
    assert "split" not in plain["shards"][0]  # files without splits look as before
    with Index(str(tmp_path / "copy.db")) as copy:
        import_catalog(str(backup), copy)
        assert copy.get_dataset("s").splits == {"train": [a, b], "test": [c]}
        assert copy.get_dataset("plain").splits == {}


def test_pull_one_split(tmp_path):
    root = tmp_path / "remote"
    root.mkdir()
    train = write_samples(rows(4), str(root / "train.tar"))
    test = write_samples(rows(2), str(root / "test.tar"))
    server = ShardServer(root).start()
    try:

        def remote(recs, name):
            return [ShardRecord(f"{server.url}/{name}", r.size, r.sample_count, r.sha256)
                    for r in recs]  # fmt: skip

        path = str(tmp_path / "index.db")
        with Index(path) as idx:
            ref = idx.publish_schema(Row)
            idx.add_splits({"train": remote(train, "train.tar"), "test": remote(test, "test.tar")},
                           name="ds", schema_ref=ref)  # fmt: skip
        result = CliRunner().invoke(main, ["--index", path, "pull", "ds", "--split", "test"])
        assert result.exit_code == 0, result.output
        assert dict(server.sent) == {"test.tar": test[0].size}
        with Index(path) as idx:
            entry = idx.get_dataset("ds")
        assert [r.idx for r in Dataset[Row](entry, split="test", offline=True).ordered()] == [0, 1]
        assert len(ShardCache().keys()) == 1
        bad = CliRunner().invoke(main, ["--index", path, "pull", "ds", "--split", "val"])
        assert bad.exit_code == 1 and "no split 'val'" in bad.stderr
    finally:
        server.stop()
