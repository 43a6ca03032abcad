"""atdata 0.7.0b1's API where it does not contradict 0.2, called as 0.7's docs call it:
``Index(provider=...)``, ``atdata://local/schema/...`` refs, ``get_schema_type``, lens
composition and ``Lens.identity``, ``LocalDiskStore``, and ``write_samples`` returning
something that reads as a ``Dataset``."""

from __future__ import annotations

import os

import numpy as np
import pytest
from _data_helpers import Row, rows
from numpy.typing import NDArray

from atdata_lite import Dataset, Lens, packable, write_samples
from atdata_lite.index import Index
from atdata_lite.shards import WrittenShards
from atdata_lite.stores import LocalDiskStore


@packable
class Point:
    x: float
    y: float
    tag: str = ""


@packable
class XOnly:
    x: float


@packable
class Doubled:
    x2: float


# --- 8. Index(provider=...) ---------------------------------------------------------------


def test_provider_sqlite_with_path(tmp_path):
    path = tmp_path / "sub" / "index.db"
    path.parent.mkdir()
    with Index(provider="sqlite", path=str(path)) as index:
        index.publish_schema(Point)
        assert index.backend.kind == "sqlite"
    assert path.exists()
    # 0.7 silently ignored a path without provider; here it selects that SQLite file.
    with Index(path=path) as again:
        assert [s["name"] for s in again.list_schemas()] == ["Point"]


def test_unknown_provider_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match=r"^Unknown provider 'mongo'"):
        Index(provider="mongo", path=tmp_path / "x.db")
    with pytest.raises(ValueError, match="needs dsn="):
        Index(provider="postgres")
    with pytest.raises(TypeError, match="does not take dsn="):
        Index(provider="sqlite", dsn="postgresql://x/y")
    assert not (tmp_path / "x.db").exists()


@pytest.mark.redis
def test_provider_redis_with_client(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    with Index(provider="redis", redis=client) as index:
        ref = index.publish_schema(Point)
        assert index.backend.kind == "redis"
    assert client.exists("LocalSchema:Point@1.0.0")
    with Index(redis=client) as index:  # redis= alone, as in 0.7
        assert index.get_schema(ref)["name"] == "Point"


@pytest.mark.postgres
def test_provider_postgres_with_dsn(postgres_url):
    with Index(provider="postgres", dsn=postgres_url) as index:
        ref = index.publish_schema(Point)
        assert index.backend.kind == "postgresql"
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    # libpq's key=value form of the same DSN works too.
    keyword_dsn = make_conninfo(**conninfo_to_dict(postgres_url.replace("+psycopg", "")))
    with Index(provider="postgresql", dsn=keyword_dsn) as index:
        assert index.get_schema(ref)["name"] == "Point"


# --- 9 + 10. 0.7 schema refs, get_schema_type -----------------------------------------------


def test_07_schema_refs_work_wherever_a_ref_does(tmp_path):
    write_samples([Point(1.0, 2.0, "a")], str(tmp_path / "p.tar"))
    with Index(tmp_path / "i.db") as index:
        index.publish_schema(Point, version="1.2.0")
        ref07 = "atdata://local/schema/Point@1.2.0"
        assert index.get_schema(ref07)["version"] == "1.2.0"
        assert index.get_schema_record(ref07).name == "Point"
        entry = index.insert_dataset(
            Dataset[Point](str(tmp_path / "p.tar")), name="points", schema_ref=ref07
        )
        assert entry.schema_ref == ref07  # kept as given (it is part of the CID)
        T = index.get_schema_type(entry.schema_ref)
        assert index.types.Point is T
        assert [p.y for p in Dataset[T](entry.data_urls).ordered()] == [2.0]
        assert index.get_schema_type(ref07, register=False) is T
        assert index.decode_schema("local://schemas/mod.Point@1.2.0") is T
        with pytest.raises(KeyError, match="Schema not found"):
            index.get_schema("atdata://local/schema/Point@9.9.9")
        with pytest.raises(ValueError, match="must include version"):
            index.get_schema("atdata://local/schema/Point")


# --- 10. lens composition, identity -----------------------------------------------------------

to_x = Lens(lambda p: XOnly(p.x), source_type=Point, view_type=XOnly)
double = Lens(lambda v: Doubled(v.x * 2), source_type=XOnly, view_type=Doubled)


def test_lens_pipe_and_matmul_compose():
    p = Point(3.0, 4.0)
    assert (to_x | double)(p) == Doubled(6.0)
    assert (double @ to_x)(p) == Doubled(6.0)
    both = to_x | double
    assert (both.source_type, both.view_type) == (Point, Doubled)
    with pytest.raises(TypeError, match="Cannot compose"):
        _ = double | to_x
    with pytest.raises(TypeError):
        _ = to_x | (lambda v: v)
    ident = Lens.identity(Point)
    assert ident(p) is p and ident.put(Point(0.0, 0.0), p) == Point(0.0, 0.0)
    assert (ident | to_x)(p) == XOnly(3.0)


def test_composed_lens_views_a_dataset(tmp_path):
    from atdata_lite import LensNetwork

    LensNetwork().register(to_x | double)
    write_samples([Point(float(i), 0.0) for i in range(3)], str(tmp_path / "p.tar"))
    view = Dataset[Point](str(tmp_path / "p.tar")).as_type(Doubled)
    assert [d.x2 for d in view.ordered()] == [0.0, 2.0, 4.0]
    same = Dataset[Point](str(tmp_path / "p.tar")).as_type(Point)  # the identity lens
    assert [p.x for p in same.ordered()] == [0.0, 1.0, 2.0]


# --- 10. LocalDiskStore ---------------------------------------------------------------------


def test_local_disk_store_root(tmp_path):
    store = LocalDiskStore(tmp_path / "data")
    assert store.root == (tmp_path / "data").resolve() and store.root.is_dir()
    write_samples(rows(4), str(tmp_path / "src.tar"))
    with Index(tmp_path / "i.db", data_store=store) as index:
        entry = index.insert_dataset(Dataset[Row](str(tmp_path / "src.tar")), name="rows")
    (url,) = entry.data_urls
    assert url.startswith(str(store.root / "rows" / "data--")) and url.endswith("--000000.tar")
    assert entry.shards[0].sample_count == 4


# --- 11. write_samples: records and a Dataset --------------------------------------------


@packable
class Img:
    image: NDArray
    label: str


def test_write_samples_result_serves_records_and_dataset(tmp_path):
    samples = [Img(np.full((2, 2), i, np.uint8), f"l{i}") for i in range(5)]
    # 0.7: a single path with maxcount is sharded as {stem}-%06d{suffix}.
    ds = write_samples(samples, tmp_path / "out.tar", maxcount=2)
    assert sorted(os.listdir(tmp_path)) == [f"out-00000{i}.tar" for i in range(3)]
    # 0.7's use: a Dataset of what was written, typed to the samples' type.
    assert [s.label for s in ds.ordered()] == [f"l{i}" for i in range(5)]
    assert ds.list_shards() == [str(tmp_path / f"out-00000{i}.tar") for i in range(3)]
    assert [b.image.shape for b in ds.ordered(batch_size=5)] == [(5, 2, 2)]
    assert ds.sample_type is Img and ds.dataset.sample_type is Img
    assert isinstance(ds.dataset, Dataset)
    assert len(ds.dataset) == 5  # samples, from the recorded counts (len(ds) counts shards)
    assert [s.label for s in ds.dataset][-1] == "l4"
    # atdata-lite's use: the list of shard records.
    assert isinstance(ds, WrittenShards) and isinstance(ds, list) and len(ds) == 3
    assert [r.sample_count for r in ds] == [2, 2, 1] and ds.sample_count == 5
    assert all(len(r.sha256) == 64 for r in ds)
    # ...which an index takes with its sizes and hashes.
    with Index(tmp_path / "i.db") as index:
        entry = index.add_shards(ds, name="imgs", schema_ref=index.schema_ref_for_type(Img))
        assert entry.shards == tuple(ds)
    assert write_samples([], tmp_path / "none.tar") == []
    with pytest.raises(AttributeError):
        _ = ds.no_such_attribute
