"""atdata 0.2.3b1's public API that users call, run as atdata's docs and tests call it:
``LocalDatasetEntry.write_to``/``from_redis`` on a real Redis server, ``Repo``,
``S3DataStore``/``S3Source`` against moto, ``Dataset.wrap``/``wrap_batch``/``to_parquet``,
the CID message, and every error class against the builtin atdata raised."""

from __future__ import annotations

import importlib
import tarfile
import warnings

import msgpack
import numpy as np
import pytest
from _data_helpers import Row, rows
from _redis_helpers import fixture_entries, load_fixture
from numpy.typing import NDArray

import atdata_lite
from atdata_lite import Dataset, packable
from atdata_lite.local import Index, LocalDatasetEntry, Repo, S3DataStore
from atdata_lite.shards import write_samples


@packable
class ImageSample:
    """An image with a label."""

    image: NDArray
    label: str
    confidence: float | None = None


def _images(n: int) -> list[ImageSample]:
    return [ImageSample(np.full((2, 2), i, np.float32), f"img{i}") for i in range(n)]


# --- 2. LocalDatasetEntry.write_to / from_redis ------------------------------------------


@pytest.mark.redis
def test_entry_write_to_and_from_redis_use_atdatas_layout(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    entry = LocalDatasetEntry(
        name="images-train",
        schema_ref="atdata://local/sampleSchema/ImageSample@1.0.0",
        data_urls=["data/shard-{000000..000002}.tar"],
        metadata={"split": "train", "n": 10, "classes": ["cat", "dog"]},
    )
    entry.write_to(client)
    # The CID and bytes of atdata 0.2's own write (fixture in the reference).
    key = "LocalDatasetEntry:bafyreid2avy6ldjllnqxs2krqq7whcdlxt4cp2hopbzmso6msw5xr6a3iy"
    assert entry.cid == key.split(":", 1)[1]
    fields = client.hgetall(key)
    assert fields[b"name"] == b"images-train"
    assert fields[b"cid"] == entry.cid.encode()
    assert msgpack.unpackb(fields[b"data_urls"]) == ["data/shard-{000000..000002}.tar"]
    assert fields[b"metadata"].hex() == (
        "83a573706c6974a5747261696ea16e0aa7636c617373657392a3636174a3646f67"
    )

    back = LocalDatasetEntry.from_redis(client, entry.cid)
    assert (back.name, back.schema_ref, back.data_urls, back.metadata) == (
        entry.name,
        entry.schema_ref,
        entry.data_urls,
        entry.metadata,
    )
    assert back.cid == entry.cid

    # Rewriting replaces the hash (atdata's HSET merged, keeping stale metadata).
    LocalDatasetEntry(entry.name, entry.schema_ref, entry.data_urls).write_to(client)
    assert b"metadata" not in client.hgetall(key)
    assert LocalDatasetEntry.from_redis(client, entry.cid).metadata is None

    with pytest.raises(KeyError, match="LocalDatasetEntry not found: bafynope"):
        LocalDatasetEntry.from_redis(client, "bafynope")
    client.hset("LocalDatasetEntry:bafybroken", mapping={"schema_ref": "x"})
    with pytest.raises(KeyError, match="name"):
        LocalDatasetEntry.from_redis(client, "bafybroken")


@pytest.mark.redis
def test_from_redis_reads_entries_atdata_wrote_and_index_finds_written_ones(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    doc = load_fixture(client)
    for cid, fields in fixture_entries(doc).items():
        entry = LocalDatasetEntry.from_redis(client, cid)
        assert entry.cid == cid
        assert entry.name == fields["name"].decode()
        assert entry.data_urls == msgpack.unpackb(fields["data_urls"])
    text = LocalDatasetEntry.from_redis(
        client, "bafyreicxlz4mb5rmpvmm7qlo57w7kf5nvaatblfgcipei7hhv2afonfepq"
    )
    assert text.metadata["blob"] == b"\x00\xff"

    new = LocalDatasetEntry("extra", "atdata://local/sampleSchema/ImageSample@1.0.0", ["x.tar"])
    new.write_to(client)
    with Index(redis=client) as index:  # reconciles the names on open
        assert index.get_dataset("extra").cid == new.cid
        assert index.get_dataset("images-train").metadata["classes"] == ["cat", "dog"]


# --- 3. Repo (deprecated) ------------------------------------------------------------------


@pytest.mark.s3
def test_repo_warns_and_inserts_through_s3(tmp_path, s3_bucket, s3_endpoint):
    bucket_url, _ = s3_bucket
    bucket = bucket_url[len("s3://") :]
    creds = {
        "AWS_ENDPOINT": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    with pytest.warns(DeprecationWarning, match="Use Index with a data store"):
        repo = Repo(s3_credentials=creds, hive_path=f"{bucket}/hive", index=tmp_path / "i.db")
    write_samples(_images(5), str(tmp_path / "src-%d.tar"), maxcount=2)
    ds = Dataset[ImageSample](str(tmp_path / "src-{0..2}.tar"))
    entry, new_ds = repo.insert(ds, name="images", metadata={"split": "train"}, maxcount=3)
    assert entry.name == "images" and len(entry.data_urls) == 2
    assert all(u.startswith(f"s3://{bucket}/hive/atdata--") for u in entry.data_urls)
    assert [s.label for s in new_ds.ordered()] == [f"img{i}" for i in range(5)]
    assert new_ds.metadata == {"split": "train"}
    assert repo.index.get_dataset("images").metadata == {"split": "train"}

    with pytest.warns(DeprecationWarning):
        plain = Repo(index=tmp_path / "j.db")
    with pytest.raises(ValueError, match="S3 credentials required"):
        plain.insert(ds, name="x")
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="hive path"):
        Repo(s3_credentials=creds)


# --- 4. S3DataStore / S3Source --------------------------------------------------------------


@pytest.mark.s3
def test_s3_data_store_from_env_file_with_custom_endpoint(tmp_path, s3_bucket, s3_endpoint):
    bucket = s3_bucket[0][len("s3://") :]
    env = tmp_path / ".env"
    env.write_text(
        f"# MinIO\nAWS_ENDPOINT={s3_endpoint}\nexport AWS_ACCESS_KEY_ID=testing\n"
        'AWS_SECRET_ACCESS_KEY="testing"\n'
    )
    store = S3DataStore(env, bucket=bucket)
    assert store.storage_options["endpoint_url"] == s3_endpoint
    write_samples(_images(4), str(tmp_path / "src.tar"))
    with Index(tmp_path / "i.db", data_store=store) as index:
        entry = index.insert_dataset(Dataset[ImageSample](str(tmp_path / "src.tar")), name="imgs")
    assert entry.data_urls[0].startswith(f"s3://{bucket}/imgs/data--")
    read = Dataset[ImageSample](entry.data_urls, storage_options=store.storage_options)
    assert [s.label for s in read.ordered()] == [f"img{i}" for i in range(4)]
    # atdata's signature: write_shards(ds, *, prefix, cache_local=False, **kwargs) -> list[str]
    urls = store.write_shards(read, prefix="copy", cache_local=True, maxcount=3)
    assert len(urls) == 2 and store.read_url(urls[0]) == urls[0]

    # A dict works the same; a missing key is a KeyError and a ValueError, naming the key.
    S3DataStore({"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}, bucket=bucket)
    for bad in ({"AWS_ACCESS_KEY_ID": "a"}, env.parent / "none.env"):
        if not isinstance(bad, dict):
            bad.write_text("AWS_ENDPOINT=http://x\n")
        with pytest.raises(KeyError, match="AWS_SECRET_ACCESS_KEY"):
            S3DataStore(bad, bucket=bucket)
        with pytest.raises(ValueError, match="Missing required keys"):
            S3DataStore(bad, bucket=bucket)


@pytest.mark.s3
def test_s3_source_reads_explicit_bucket_and_keys(tmp_path, s3_bucket, s3_endpoint):
    bucket_url, options = s3_bucket
    bucket = bucket_url[len("s3://") :]
    write_samples(rows(6), f"{bucket_url}/p/s-%02d.tar", maxcount=4, storage_options=options)
    source = atdata_lite.S3Source(
        bucket=bucket,
        keys=["p/s-00.tar", "p/s-01.tar"],
        endpoint=s3_endpoint,
        access_key="testing",
        secret_key="testing",
    )
    assert source.list_shards() == [f"s3://{bucket}/p/s-00.tar", f"s3://{bucket}/p/s-01.tar"]
    assert [r.idx for r in Dataset[Row](source).ordered()] == list(range(6))
    with pytest.raises(KeyError):
        source.open_shard(f"s3://{bucket}/p/other.tar")

    from atdata_lite._sources import S3Source

    again = S3Source.from_urls(source.list_shards(), endpoint=s3_endpoint,
                               access_key="testing", secret_key="testing")  # fmt: skip
    assert again.keys == source.keys
    creds = {"AWS_ENDPOINT": s3_endpoint, "AWS_ACCESS_KEY_ID": "testing",
             "AWS_SECRET_ACCESS_KEY": "testing"}  # fmt: skip
    assert (
        len(list(Dataset[Row](S3Source.from_credentials(creds, bucket, ["p/s-01.tar"])).ordered()))
        == 2
    )
    for urls, message in (
        ([], "urls cannot be empty"),
        (["/local/x.tar"], "Not an S3 URL"),
        ([f"s3://{bucket}"], "no key"),
        ([f"s3://{bucket}/a.tar", "s3://other/b.tar"], "same bucket"),
    ):
        with pytest.raises(ValueError, match=message):
            S3Source.from_urls(urls)


# --- 5. wrap / wrap_batch / to_parquet / WDSRawSample -----------------------------------------


def test_wrap_and_wrap_batch_decode_raw_webdataset_samples(tmp_path):
    from atdata_lite.dataset import WDSRawBatch, WDSRawSample

    write_samples(rows(3), str(tmp_path / "s.tar"))
    ds = Dataset[Row](str(tmp_path / "s.tar"))
    raw: WDSRawSample = {"__key__": "k0", "msgpack": rows(1)[0].packed}
    sample = ds.wrap(raw)
    assert isinstance(sample, Row) and sample.idx == 0
    assert np.array_equal(sample.vec, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=r"Sample missing 'msgpack' key, got keys: \['__key__'\]"):
        ds.wrap({"__key__": "k0"})
    with pytest.raises(ValueError, match="Expected sample\\['msgpack'\\] to be bytes"):
        ds.wrap({"msgpack": "text"})

    batch: WDSRawBatch = {"__key__": ["a", "b"], "msgpack": [r.packed for r in rows(2)]}
    out = ds.wrap_batch(batch)
    assert out.idx == [0, 1] and out.vec.shape == (2, 3)
    with pytest.raises(ValueError, match="Batch missing 'msgpack' key"):
        ds.wrap_batch({"__key__": ["a"]})


def test_to_parquet_one_file_and_segments(tmp_path):
    pd = pytest.importorskip("pandas", reason="to_parquet needs the parquet extra (pandas)")
    pytest.importorskip("pyarrow", reason="to_parquet needs the parquet extra (pyarrow)")
    write_samples(rows(5), str(tmp_path / "s.tar"))
    ds = Dataset[Row](str(tmp_path / "s.tar"))
    (one,) = ds.to_parquet(tmp_path / "all.parquet")
    df = pd.read_parquet(one)
    assert list(df.columns) == ["idx", "label", "vec"] and list(df.idx) == [0, 1, 2, 3, 4]
    assert list(df.vec[2]) == [2.0, 2.0, 2.0]

    written = ds.to_parquet(tmp_path / "seg.parquet", maxcount=2)
    assert [p.rsplit("/", 1)[-1] for p in map(str, written)] == [
        "seg-000000.parquet",
        "seg-000001.parquet",
        "seg-000002.parquet",
    ]
    assert sum(len(pd.read_parquet(p)) for p in written) == 5
    custom = ds.to_parquet(tmp_path / "c.parquet", sample_map=lambda s: {"twice": s.idx * 2})
    assert list(pd.read_parquet(custom[0]).twice) == [0, 2, 4, 6, 8]


# --- 6. exception types --------------------------------------------------------------------


def test_cid_that_does_not_parse_says_failed_to_decode_cid():
    from atdata_lite._cid import parse_cid

    for bad in ("not-a-cid", "bafy!!", 42):
        with pytest.raises(ValueError, match=r"^Failed to decode CID"):
            parse_cid(bad)


# Each error class that stands where atdata raised a builtin, with that builtin.
ATDATA_BUILTINS = {
    "UnsupportedFieldTypeError": TypeError,
    "NotPackableError": TypeError,
    "SampleDecodeError": ValueError,
    "ShardNotFoundError": FileNotFoundError,
    "CorruptShardError": (ValueError, tarfile.TarError),
    "UnsafeURLError": ValueError,
    "InvalidPrefixError": ValueError,
    "InvalidCredentialsError": (KeyError, ValueError),
    "InvalidCIDError": ValueError,
    "InvalidSchemaRefError": ValueError,
    "SchemaNotFoundError": KeyError,
    "SchemaConflictError": ValueError,
    "SchemaDecodeError": ValueError,
    "DatasetNotFoundError": KeyError,
    "DatasetExistsError": ValueError,
    "CorruptEntryError": KeyError,
    "InvalidMetadataError": (TypeError, ValueError),
    "UnknownBackendError": ValueError,
    "BackendUnavailableError": ImportError,
    "InvalidSampleKeyError": ValueError,
    "InvalidNameError": ValueError,
    "ShardNotCachedError": FileNotFoundError,
    # atdata 0.7 code catches tarfile.TarError / EOFError for damaged shards.
    "TruncatedShardError": (tarfile.TarError, EOFError),
    "FieldTypeError": TypeError,
    "SampleMismatchError": (ValueError, TypeError),
    "InvalidVersionError": ValueError,
    "LabelNotFoundError": KeyError,
    "LensNotFoundError": KeyError,
    "UntrustedLensError": ImportError,
}
# Errors of situations atdata had no error for (opening, migrating, the cache...).
OWN_ERRORS = {
    "AtdataLiteError",
    "IndexOpenError",
    "NotAnIndexError",
    "IndexTooNewError",
    "MigrationError",
    "IndexLockedError",
    "IndexUnreachableError",
    "IndexCorruptError",
    "IndexReadOnlyError",
    "IndexDiskFullError",
    "CacheFullError",
    "LensCheckError",
    "OperationCancelled",
    "ReadAheadStalledError",
    "ShardSkippedWarning",  # a warning category, not an error
}


def test_every_error_class_subclasses_the_builtin_atdata_raised():
    errors = importlib.import_module("atdata_lite.errors")
    listed = set(ATDATA_BUILTINS) | OWN_ERRORS
    assert set(errors.__all__) <= listed, (
        f"new error classes {sorted(set(errors.__all__) - listed)}: add each to "
        "ATDATA_BUILTINS (with the builtin atdata raised) or OWN_ERRORS"
    )
    for name, builtin in ATDATA_BUILTINS.items():
        if name not in errors.__all__:
            continue  # classes of other branches are checked once they land
        cls = getattr(errors, name)
        assert issubclass(cls, errors.AtdataLiteError), name
        assert issubclass(cls, builtin), f"{name} must subclass {builtin}"


# --- 7. module paths -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "names"),
    [
        ("local", ["Index", "LocalIndex", "LocalDatasetEntry", "BasicIndexEntry",
                   "LocalSchemaRecord", "SchemaNamespace", "S3DataStore", "Repo"]),
        ("dataset", ["Dataset", "WDSRawSample", "WDSRawBatch"]),
        ("lens", ["Lens", "LensNetwork", "lens"]),
        ("_protocols", ["Packable", "IndexEntry", "AbstractIndex", "AbstractDataStore",
                        "DataSource"]),
        ("_sources", ["DataSource", "URLSource", "S3Source"]),
        ("_cid", ["generate_cid", "generate_cid_from_bytes", "verify_cid", "parse_cid"]),
        ("_helpers", ["array_to_bytes", "bytes_to_array"]),
        ("_schema_codec", ["schema_to_type", "clear_type_cache"]),
        ("_stub_manager", ["StubManager"]),
        ("_type_utils", ["unwrap_optional", "is_ndarray_type"]),
        ("index", ["Index"]),
        ("stores", ["LocalDiskStore", "S3DataStore"]),
    ],
)  # fmt: skip
def test_every_atdata_module_path_has_a_counterpart(module, names):
    mod = importlib.import_module(f"atdata_lite.{module}")
    for name in names:
        assert getattr(mod, name) is not None, f"atdata_lite.{module}.{name}"
    if module == "_helpers":
        arr = np.arange(6, dtype=np.int16).reshape(2, 3)
        assert np.array_equal(mod.bytes_to_array(mod.array_to_bytes(arr)), arr)


def test_repo_is_deprecated_at_use_not_at_import():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        importlib.import_module("atdata_lite.repo")
        assert atdata_lite.Repo is Repo
