"""Code written for atdata, as its README, docstrings and the reference's examples write it.

Nothing here names atdata_lite: tests/test_compat_shim.py runs this file in a fresh
interpreter after ``atdata_lite.compat.install()``. Argument: ``sqlite`` (atdata 0.7's
default provider) or ``redis`` (atdata 0.2's only index; the URL comes from REDIS_URL).
"""

import os
import sys

import atdata
import numpy as np
import webdataset as wds
from atdata.lens import Lens
from atdata.local import Index, LocalDatasetEntry
from numpy.typing import NDArray


@atdata.packable
class ImageSample:
    """An image with a label."""

    image: NDArray
    label: str
    confidence: float | None = None


@atdata.packable
class TextSample:
    text: str
    tokens: list[int]
    embedding: NDArray | None = None
    raw: bytes = b""
    flag: bool = False
    count: int = 0


@atdata.packable
class LabelOnly:
    label: str


@atdata.lens
def label_view(full: ImageSample) -> LabelOnly:
    return LabelOnly(label=full.label)


@label_view.putter
def label_view_put(view: LabelOnly, source: ImageSample) -> ImageSample:
    return ImageSample(image=source.image, label=view.label, confidence=source.confidence)


def open_index():
    if sys.argv[1] == "redis":
        from redis import Redis

        return Index(redis=Redis.from_url(os.environ["REDIS_URL"]))
    return Index(provider="sqlite", path="index.db")


def main():
    os.makedirs("data", exist_ok=True)
    # atdata 0.2's docs write shards with webdataset directly.
    with wds.writer.ShardWriter("data/shard-%06d.tar", maxcount=10, verbose=0) as sink:
        for i in range(30):
            sink.write(ImageSample(np.zeros((4, 4), np.float32), f"img{i}").as_wds)

    ds = atdata.Dataset[ImageSample]("data/shard-{000000..000002}.tar")
    n = 0
    for batch in ds.shuffled(batch_size=8):
        images = batch.image  # stacked numpy array
        labels = batch.label  # list of strings
        assert images.shape[1:] == (4, 4) and len(labels) == images.shape[0]
        n += len(labels)
    assert n == 30

    idx = open_index()
    ref = idx.publish_schema(ImageSample, version="1.0.0")
    assert ref == "atdata://local/sampleSchema/ImageSample@1.0.0"
    auto = idx.publish_schema(ImageSample)
    assert auto == "atdata://local/sampleSchema/ImageSample@1.0.1"
    text_ref = idx.publish_schema(TextSample, description="Tokenized text")
    entry = idx.insert_dataset(
        ds, name="images-train", schema_ref=ref, metadata={"split": "train", "n": 30}
    )
    assert isinstance(entry, LocalDatasetEntry)
    val = idx.add_entry(
        atdata.Dataset[ImageSample]("data/shard-000000.tar"),
        name="images-val",
        metadata={"split": "val"},
    )
    assert val.data_urls[0].endswith("data/shard-000000.tar")

    got = idx.get_dataset("images-train")
    assert got.cid == entry.cid and got.metadata == {"split": "train", "n": 30}
    assert idx.get_entry(entry.cid).name == "images-train"
    assert sorted(e.name for e in idx.list_datasets()) == ["images-train", "images-val"]
    try:
        idx.get_dataset("nope")
    except KeyError:
        pass
    else:
        raise AssertionError("a missing dataset is a KeyError")

    schema = idx.get_schema(got.schema_ref)
    assert [f["name"] for f in schema["fields"]] == ["image", "label", "confidence"]
    SampleType = idx.decode_schema(got.schema_ref)
    first = next(iter(atdata.Dataset[SampleType](got.data_urls[0]).ordered()))
    assert first.image.shape == (4, 4)
    Text = idx.decode_schema(text_ref)  # atdata 0.2 raised TypeError on this record
    assert Text(text="t", tokens=[1]).count == 0
    idx.load_schema(ref)
    assert idx.types.ImageSample(image=np.zeros(1), label="x").label == "x"

    splits = atdata.load_dataset("@local/images-train", index=idx)
    assert isinstance(splits, atdata.DatasetDict) and list(splits) == ["train"]
    assert len(list(splits["train"].ordered())) == 30
    local = atdata.load_dataset("data/shard-{000000..000002}.tar", ImageSample, split="train")
    assert next(iter(local.ordered())).label == "img0"

    labels = [s.label for s in ds.as_type(LabelOnly).ordered()]
    assert labels[:2] == ["img0", "img1"]
    assert isinstance(label_view, Lens)

    cid = atdata.generate_cid({"schema_ref": ref, "data_urls": ["data/shard-{000000..000002}.tar"]})
    assert cid.startswith("bafyrei") and atdata.verify_cid(
        cid, {"schema_ref": ref, "data_urls": ["data/shard-{000000..000002}.tar"]}
    )

    from atdata._helpers import array_to_bytes, bytes_to_array

    arr = np.arange(4)
    assert (bytes_to_array(array_to_bytes(arr)) == arr).all()
    print("ok")


main()
