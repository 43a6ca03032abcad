"""Code written against atdata's local index runs unchanged after the import swap, and
an index written by atdata 0.2 (a fixture written by atdata 0.2.3b1) reads through ``Index``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from numpy.typing import NDArray

# The import swap: `from atdata import packable, Dataset` / `from atdata.local import Index`.
from atdata_lite import Dataset, packable
from atdata_lite.index import Index, LocalDatasetEntry
from atdata_lite.shards import write_samples


@packable
class MySample:
    """A sample with an image and a label."""

    image: NDArray
    label: str
    score: float | None = None


def _atdata_style_session(index: Index, shard_dir) -> None:
    # --- written as atdata's docs show it -------------------------------------------------
    samples = [MySample(image=np.ones((2, 2)) * i, label=f"s{i}") for i in range(4)]
    shard_dir.mkdir(parents=True, exist_ok=True)
    write_samples(samples, str(shard_dir / "part-%06d.tar"), maxcount=2, progress=False)
    url = str(shard_dir / "part-{000000..000001}.tar")

    schema_ref = index.publish_schema(MySample, version="1.0.0")
    assert schema_ref == "atdata://local/sampleSchema/MySample@1.0.0"

    ds = Dataset[MySample](url)
    entry = index.insert_dataset(
        ds, name="my-dataset", schema_ref=schema_ref, metadata={"split": "train"}
    )
    assert isinstance(entry, LocalDatasetEntry)

    entry = index.get_dataset("my-dataset")
    assert entry.name == "my-dataset"
    assert entry.metadata == {"split": "train"}
    assert index.get_entry(entry.cid).name == "my-dataset"

    schema = index.get_schema(entry.schema_ref)
    assert schema["name"] == "MySample" and schema["$ref"] == schema_ref
    assert [f["name"] for f in schema["fields"]] == ["image", "label", "score"]

    SampleType = index.decode_schema(entry.schema_ref)
    labels = []
    for batch in Dataset[SampleType](entry.data_urls).ordered(batch_size=2):
        assert batch.image.shape == (2, 2, 2)
        labels.extend(batch.label)
    assert labels == ["s0", "s1", "s2", "s3"]

    index.load_schema(schema_ref)
    made = index.types.MySample(image=np.zeros(1), label="x")
    assert made.score is None

    assert [e.name for e in index.list_datasets()] == ["my-dataset"]
    assert [s["name"] for s in index.list_schemas()] == ["MySample"]
    assert index.publish_schema(MySample) == "atdata://local/sampleSchema/MySample@1.0.1"

    try:
        index.get_dataset("missing")
    except KeyError:
        pass
    else:
        raise AssertionError("KeyError expected")
    try:
        index.get_schema("not-a-ref")
    except ValueError:
        pass
    else:
        raise AssertionError("ValueError expected")
    try:
        index.publish_schema(int)
    except TypeError:
        pass
    else:
        raise AssertionError("TypeError expected")


def test_atdata_style_code_on_sqlite(tmp_path):
    with Index(tmp_path / "index.db") as index:
        _atdata_style_session(index, tmp_path / "shards")


def test_atdata_style_code_with_a_redis_client(redis_url, tmp_path):
    import redis

    r = redis.Redis.from_url(redis_url)
    index = Index(redis=r)  # atdata's constructor call
    _atdata_style_session(index, tmp_path / "shards")
    index.close()
    r.close()


def test_atdata_style_code_on_postgres(postgres_url, tmp_path):
    with Index(postgres_url) as index:
        _atdata_style_session(index, tmp_path / "shards")


# --- a fixture written by atdata 0.2.3b1 into Redis -------------------------------------

FIXTURE_SCHEMAS = {
    "LocalSchema:ImageSample@1.0.0": '{"name": "ImageSample", "version": "1.0.0", "fields": [{"name": "image", "fieldType": {"$type": "local#ndarray", "dtype": "float32"}, "optional": false}, {"name": "label", "fieldType": {"$type": "local#primitive", "primitive": "str"}, "optional": false}, {"name": "confidence", "fieldType": {"$type": "local#primitive", "primitive": "float"}, "optional": true}], "description": "An image with a label.", "createdAt": "2026-11-22T10:07:02.968078+00:00"}',  # noqa: E501
    "LocalSchema:ImageSample@1.0.1": '{"name": "ImageSample", "version": "1.0.1", "fields": [{"name": "image", "fieldType": {"$type": "local#ndarray", "dtype": "float32"}, "optional": false}, {"name": "label", "fieldType": {"$type": "local#primitive", "primitive": "str"}, "optional": false}, {"name": "confidence", "fieldType": {"$type": "local#primitive", "primitive": "float"}, "optional": true}], "description": "An image with a label.", "createdAt": "2026-11-22T10:07:02.969183+00:00"}',  # noqa: E501
    "LocalSchema:TextSample@1.0.0": '{"name": "TextSample", "version": "1.0.0", "fields": [{"name": "text", "fieldType": {"$type": "local#primitive", "primitive": "str"}, "optional": false}, {"name": "tokens", "fieldType": {"$type": "local#array", "items": {"$type": "local#primitive", "primitive": "int"}}, "optional": false}, {"name": "embedding", "fieldType": {"$type": "local#ndarray", "dtype": "float32"}, "optional": true}, {"name": "raw", "fieldType": {"$type": "local#primitive", "primitive": "bytes"}, "optional": false}, {"name": "flag", "fieldType": {"$type": "local#primitive", "primitive": "bool"}, "optional": false}, {"name": "count", "fieldType": {"$type": "local#primitive", "primitive": "int"}, "optional": false}], "description": "Tokenized text", "createdAt": "2026-11-22T10:07:02.970071+00:00"}',  # noqa: E501
}

FIXTURE_ENTRIES = {
    "bafyreid2avy6ldjllnqxs2krqq7whcdlxt4cp2hopbzmso6msw5xr6a3iy": {
        "name": "images-train",
        "schema_ref": "atdata://local/sampleSchema/ImageSample@1.0.0",
        "data_urls": "91bf646174612f73686172642d7b3030303030302e2e3030303030327d2e746172",
        "metadata": "83a573706c6974a5747261696ea16e0aa7636c617373657392a3636174a3646f67",
    },
    "bafyreicxlz4mb5rmpvmm7qlo57w7kf5nvaatblfgcipei7hhv2afonfepq": {
        "name": "text-train",
        "schema_ref": "atdata://local/sampleSchema/TextSample@1.0.0",
        "data_urls": "91d9252f646174612f746578742f747261696e2d7b3030303030302e2e3030303030397d2e746172",  # noqa: E501
        "metadata": "85a6736f75726365a477696b69aa73697a655f6279746573ce075bcd15a5726174696fcb3fe0000000000000a66e657374656481a161920102a4626c6f62c40200ff",  # noqa: E501
    },
    "bafyreifzccyodhpaxk5q6hfbek3rxo4uv3yhtvhbg2qi4x5qaromzxbusi": {
        "name": "images-val",
        "schema_ref": "local://schemas/__main__.ImageSample@1.0.0",
        "data_urls": "91d92173333a2f2f6275636b65742f696d616765732f76616c2d3030303030302e746172",
        "metadata": "81a573706c6974a376616c",
    },
}


@pytest.fixture
def atdata_redis(redis_url):
    import redis

    r = redis.Redis.from_url(redis_url)
    for key, value in FIXTURE_SCHEMAS.items():
        r.set(key, value)
    for cid, fields in FIXTURE_ENTRIES.items():
        mapping = {
            "name": fields["name"],
            "schema_ref": fields["schema_ref"],
            "data_urls": bytes.fromhex(fields["data_urls"]),
            "metadata": bytes.fromhex(fields["metadata"]),
            "cid": cid,
        }
        r.hset(f"LocalDatasetEntry:{cid}", mapping=mapping)
    yield r
    r.close()


def test_index_written_by_atdata_reads(atdata_redis):
    with Index(redis=atdata_redis) as index:
        names = [e.name for e in index.list_datasets()]
        assert names == ["images-train", "images-val", "text-train"]

        text = index.get_dataset("text-train")
        assert text.metadata == {
            "source": "wiki",
            "size_bytes": 123456789,
            "ratio": 0.5,
            "nested": {"a": [1, 2]},
            "blob": b"\x00\xff",
        }
        # The brace pattern atdata stored is kept as-is, so the CID stays atdata's.
        assert text.data_urls == ["/data/text/train-{000000..000009}.tar"]
        assert text.cid == "bafyreicxlz4mb5rmpvmm7qlo57w7kf5nvaatblfgcipei7hhv2afonfepq"

        # The legacy ref resolves (the module is dropped), as in atdata.
        val = index.get_dataset("images-val")
        assert index.get_schema(val.schema_ref)["$ref"] == (
            "atdata://local/sampleSchema/ImageSample@1.0.0"
        )

        # atdata itself cannot decode this record (non-default argument follows default);
        # atdata-lite can, keeping the record's field order.
        TextSample = index.decode_schema(text.schema_ref)
        sample = TextSample(text="t", tokens=[1], embedding=None, raw=b"", flag=False, count=1)
        assert TextSample.from_bytes(sample.packed).count == 1

        # Republishing a decoded atdata type finds the same content: no new version.
        ImageSample = index.decode_schema("atdata://local/sampleSchema/ImageSample@1.0.1")
        assert index.schema_ref_for_type(ImageSample).endswith("@1.0.1")

        assert [s["version"] for s in index.list_schemas()] == ["1.0.0", "1.0.1", "1.0.0"]
        assert json.loads(atdata_redis.get("LocalSchema:TextSample@1.0.0"))["name"] == "TextSample"
