"""The index backend conformance suite, importable by anyone who writes a backend.

One class of pytest tests checks everything the contract in :mod:`atdata_lite.index.backend`
promises, plus what users see of it through :class:`atdata_lite.index.api.Index`. atdata-lite
runs it unchanged against SQLite, PostgreSQL and Redis; a third-party backend runs it by
subclassing and providing a location::

    import pytest
    from atdata_lite.testing import BackendConformance

    class TestMyBackend(BackendConformance):
        @pytest.fixture
        def location(self, my_server):
            return f"mydb://{my_server.host}/fresh-db"   # an empty index, per test

Overridable hooks:

* ``location`` (fixture, required): an empty index location; :func:`open_backend` must accept it
  (register your factory in the ``atdata_lite.backends`` entry-point group).
* :meth:`BackendConformance.open_backend`: how to open ``location`` (default
  :func:`atdata_lite.index.open_backend`).
* :meth:`BackendConformance.store_unreadable_dataset`: write one row the backend cannot read,
  straight into storage, to check that listing skips it (skipped when not overridden).

Requires pytest (this module is only imported by test suites).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, TypeVar

import msgpack
import pytest

from .cid import dataset_cid
from .errors import (
    AtdataLiteError,
    DatasetExistsError,
    DatasetNotFoundError,
    IndexOpenError,
    InvalidMetadataError,
    SchemaConflictError,
)
from .index._registry import open_backend
from .index.backend import DatasetRecord, IndexBackend, OnConflict, SchemaRow, ShardRecord

__all__ = [
    "BackendConformance",
    "IndexConformance",
    "VersionConformance",
    "make_record",
    "make_schema_row",
]

REF = "atdata://local/sampleSchema/Sample@1.0.0"


def make_record(
    name: str,
    urls: list[str] | None = None,
    *,
    schema_ref: str = REF,
    metadata: dict[str, Any] | None = None,
    shards: bool = True,
) -> DatasetRecord:
    """A dataset record with a correct CID (helper for backend tests).

    Args:
        name: The dataset name.
        urls: Shard URLs (default: one URL derived from ``name``).
        schema_ref: The schema reference.
        metadata: Metadata to encode with msgpack, or ``None``.
        shards: Give each shard a size, sample count and hash.
    """
    urls = urls if urls is not None else [f"file:///data/{name}/shard-000000.tar"]
    return DatasetRecord(
        cid=dataset_cid(schema_ref, urls),
        name=name,
        schema_ref=schema_ref,
        shards=tuple(
            ShardRecord(u, 1000 + i, 10 + i, f"{i:064x}") if shards else ShardRecord(u)
            for i, u in enumerate(urls)
        ),
        metadata=None if metadata is None else msgpack.packb(metadata, use_bin_type=True),
    )


def make_schema_row(name: str, version: str, field_type: str = "int") -> SchemaRow:
    """A schema row in atdata's record format whose content hash follows its fields."""
    import json

    from .schema import content_hash

    record = {
        "name": name,
        "version": version,
        "fields": [
            {
                "name": "x",
                "fieldType": {"$type": "local#primitive", "primitive": field_type},
                "optional": False,
            }
        ],
        "description": None,
        "createdAt": "2026-01-01T00:00:00+00:00",
    }
    return SchemaRow(name, version, json.dumps(record), content_hash(record))


def _render(name: str, field_type: str = "int") -> Callable[[str], str]:
    def render(version: str) -> str:
        return make_schema_row(name, version, field_type).record_json

    return render


class _BackendTests:
    """The contract every index backend keeps, checked on the backend itself."""

    # --- hooks ----------------------------------------------------------------------

    @pytest.fixture
    def location(self) -> str:
        """An empty index location, fresh for each test. Override this fixture."""
        raise NotImplementedError("Override the `location` fixture with an empty index location")

    def open_backend(self, location: str) -> IndexBackend:
        """Open a backend on ``location``; override if your factory needs options."""
        return open_backend(location)

    def store_unreadable_dataset(self, backend: IndexBackend, location: str) -> None:
        """Store a dataset row that ``backend`` cannot read, bypassing the contract."""
        pytest.skip("this backend provides no way to store an unreadable row")

    @pytest.fixture
    def backend(self, location: str) -> Iterator[IndexBackend]:
        b = self.open_backend(location)
        try:
            yield b
        finally:
            b.close()

    # --- datasets: reading back -----------------------------------------------------

    def test_insert_then_get_returns_every_field(self, backend: IndexBackend) -> None:
        rec = make_record("mnist", ["a.tar", "b-{000..009}.tar"], metadata={"n": 1, "b": b"\0"})
        rec = DatasetRecord(**{**_fields(rec), "legacy_uuid": "0000-legacy"})
        [stored] = backend.insert_datasets([rec])
        got = backend.get_dataset("mnist")
        assert got is not None
        assert got.same_content(rec)
        assert got.shards == rec.shards
        assert got.metadata == rec.metadata  # exact bytes
        assert got.legacy_uuid == "0000-legacy"
        assert isinstance(got.created_at, datetime) and got.created_at.utcoffset() is not None
        assert stored.created_at is not None
        assert _dataset_by_cid(backend, rec.cid).name == "mnist"

    def test_missing_lookups_return_none(self, backend: IndexBackend) -> None:
        assert backend.get_dataset("nope") is None
        assert backend.get_dataset_by_cid(make_record("nope").cid) is None
        assert backend.get_schema("Nope", "1.0.0") is None
        assert backend.delete_dataset("nope") is None

    def test_shards_without_sizes_and_empty_metadata(self, backend: IndexBackend) -> None:
        rec = make_record("plain", ["x.tar"], shards=False, metadata={})
        backend.insert_datasets([rec])
        got = _dataset(backend, "plain")
        assert got.shards == (ShardRecord("x.tar"),)
        assert got.metadata == msgpack.packb({})

    def test_splits_round_trip(self, backend: IndexBackend) -> None:
        urls = ["file:///d/train-0.tar", "file:///d/train-1.tar", "file:///d/test-0.tar"]
        base = make_record("splitted", urls)
        shards = tuple(
            ShardRecord(s.url, s.size, s.sample_count, s.sha256, split)
            for s, split in zip(base.shards, ["train", "train", "test"], strict=True)
        )
        rec = DatasetRecord(base.cid, base.name, base.schema_ref, shards, base.metadata)
        backend.insert_datasets([rec])
        for got in (
            _dataset(backend, "splitted"),
            _dataset_by_cid(backend, rec.cid),
            next(r for r in backend.iter_datasets() if r.name == "splitted"),
        ):
            assert got.shards == shards and got.data_urls == urls
        # The same URLs without splits are other content.
        assert not _dataset(backend, "splitted").same_content(base)
        backend.write_catalog([], [rec])  # unchanged, and no error
        assert _dataset(backend, "splitted").shards == shards

    def test_empty_shard_list(self, backend: IndexBackend) -> None:
        rec = make_record("empty", [])
        backend.insert_datasets([rec])
        assert _dataset(backend, "empty").data_urls == []

    def test_iter_datasets_is_ordered_by_name(self, backend: IndexBackend) -> None:
        names = ["b", "a", "c-2", "c-10", "Z"]
        backend.insert_datasets([make_record(n) for n in names])
        assert [r.name for r in backend.iter_datasets()] == sorted(names)

    def test_names_with_glob_characters_match_literally(self, backend: IndexBackend) -> None:
        names = ["a*", "a?", "[ab]", "ab", "a\\b", "a%", "a_"]
        backend.insert_datasets([make_record(n) for n in names])
        for n in names:
            assert _dataset(backend, n).name == n
        assert backend.get_dataset("a") is None
        assert backend.get_dataset("aa") is None

    def test_unicode_names_and_urls(self, backend: IndexBackend) -> None:
        rec = make_record("données-ü", ["file:///tmp/ü.tar"])
        backend.insert_datasets([rec])
        assert _dataset(backend, "données-ü").data_urls == ["file:///tmp/ü.tar"]

    # --- datasets: uniqueness and on_conflict ---------------------------------------

    def test_name_taken_raises_by_default(self, backend: IndexBackend) -> None:
        backend.insert_datasets([make_record("d", ["1.tar"])])
        with pytest.raises(DatasetExistsError) as info:
            backend.insert_datasets([make_record("d", ["2.tar"])])
        assert isinstance(info.value, ValueError) and isinstance(info.value, AtdataLiteError)
        assert "d" in str(info.value)
        assert _dataset(backend, "d").data_urls == ["1.tar"]

    def test_identical_content_is_never_a_conflict(self, backend: IndexBackend) -> None:
        rec = make_record("d", metadata={"k": "v"})
        [first] = backend.insert_datasets([rec])
        for policy in ("error", "skip", "replace"):
            [again] = backend.insert_datasets([rec], on_conflict=policy)
            assert again.same_content(rec)
            assert again.created_at == first.created_at
        assert [r.name for r in backend.iter_datasets()] == ["d"]

    def test_on_conflict_skip_keeps_the_stored_entry(self, backend: IndexBackend) -> None:
        backend.insert_datasets([make_record("d", ["1.tar"])])
        [kept] = backend.insert_datasets([make_record("d", ["2.tar"])], on_conflict="skip")
        assert kept.data_urls == ["1.tar"]
        assert _dataset(backend, "d").data_urls == ["1.tar"]
        assert backend.get_dataset_by_cid(make_record("d", ["2.tar"]).cid) is None

    def test_on_conflict_replace_replaces_and_keeps_created_at(self, backend: IndexBackend) -> None:
        [old] = backend.insert_datasets([make_record("d", ["1.tar"], metadata={"stale": 1})])
        new = make_record("d", ["2.tar"], metadata=None)
        [stored] = backend.insert_datasets([new], on_conflict="replace")
        got = _dataset(backend, "d")
        assert got.data_urls == ["2.tar"] and got.cid == new.cid
        # A replace is not a merge: the old metadata must not survive (atdata merged them).
        assert got.metadata is None
        assert got.created_at == old.created_at == stored.created_at
        assert _present(got.updated_at) >= _present(old.updated_at)
        assert backend.get_dataset_by_cid(old.cid) is None
        assert [r.name for r in backend.iter_datasets()] == ["d"]

    def test_replace_metadata_of_same_content(self, backend: IndexBackend) -> None:
        backend.insert_datasets([make_record("d", metadata={"v": 1})])
        with pytest.raises(DatasetExistsError):
            backend.insert_datasets([make_record("d", metadata={"v": 2})])
        backend.insert_datasets([make_record("d", metadata={"v": 2})], on_conflict="replace")
        assert msgpack.unpackb(_dataset(backend, "d").metadata) == {"v": 2}

    @pytest.mark.parametrize("policy", ["error", "skip", "replace"])
    def test_one_insert_stores_each_dataset_once(
        self, backend: IndexBackend, policy: OnConflict
    ) -> None:
        first = make_record("a", ["x.tar"])
        twin = DatasetRecord(**{**_fields(first), "name": "b"})  # same CID, other name
        for records in ([first, twin], [first, make_record("a", ["y.tar"])]):
            with pytest.raises(ValueError, match=r"same (CID|name)"):
                backend.insert_datasets(records, on_conflict=policy)
        with pytest.raises(ValueError, match="on_conflict"):
            backend.insert_datasets([first], on_conflict="merge")  # type: ignore[arg-type]
        assert list(backend.iter_datasets()) == []

    def test_iter_datasets_as_lists_the_same_fields(self, backend: IndexBackend) -> None:
        backend.insert_datasets(
            [make_record("b", ["b1.tar", "b2.tar"], metadata={"k": 1}), make_record("a")]
        )
        rebuilt = list(backend.iter_datasets_as(DatasetRecord))
        assert rebuilt == list(backend.iter_datasets())
        assert [r.name for r in rebuilt] == ["a", "b"]
        assert [s.url for s in rebuilt[1].shards] == ["b1.tar", "b2.tar"]

    def test_list_datasets_as_lists_what_iter_datasets_yields_in_its_order(
        self, backend: IndexBackend
    ) -> None:
        # Names whose order differs between byte, code point and locale orderings, and two
        # versions of one name stored in an order that is not their version order.
        names = ["b", "a", "Z", "é", "ß", "日本", "a-1", "_x", "A"]
        backend.insert_datasets([make_record(n) for n in names])
        later = make_record("a", ["a-older.tar"]).stamped(None, None, "0.5.0")
        backend.insert_datasets([later])
        listed = backend.list_datasets_as(DatasetRecord)
        assert listed == list(backend.iter_datasets())
        assert [(r.name, r.version) for r in listed if r.name == "a"] == [
            ("a", "1.0.0"), ("a", "0.5.0")
        ]  # fmt: skip
        assert sorted(r.name for r in listed) == sorted([*names, "a"])

    def test_shard_fields_and_lookup_by_cid_as_give_the_same_entries(
        self, backend: IndexBackend
    ) -> None:
        rec = make_record("b", ["b1.tar", "b2.tar"], metadata={"k": 1})
        backend.insert_datasets([rec, make_record("a")])

        given: list[Any] = []

        def as_record(*fields: Any) -> DatasetRecord:
            given.append(fields[3])
            values = list(fields)
            values[3] = tuple(ShardRecord(*f) for f in fields[3])
            return DatasetRecord(*values)

        listed = list(backend.iter_datasets_as(as_record, shard_fields=True))
        assert listed == list(backend.iter_datasets())
        assert given[1] == tuple((s.url, s.size, s.sample_count, s.sha256, s.split)
                                 for s in rec.shards)  # fmt: skip
        assert all(type(f) is tuple for shards in given for f in shards)
        assert backend.get_dataset_by_cid_as(rec.cid, DatasetRecord) == _dataset_by_cid(
            backend, rec.cid
        )
        assert backend.get_dataset_by_cid_as(rec.cid, as_record, shard_fields=True) == listed[1]
        assert backend.get_dataset_by_cid_as(make_record("nope").cid, DatasetRecord) is None
        assert backend.get_dataset_as("b", DatasetRecord) == backend.get_dataset("b")
        assert backend.get_dataset_as("b", as_record, shard_fields=True) == listed[1]
        assert backend.resolve_name_as("b", as_record, shard_fields=True) == listed[1]
        assert backend.get_dataset_as("nope", DatasetRecord) is None
        assert backend.resolve_name_as("nope", DatasetRecord) is None

    def test_write_catalog_refuses_a_catalog_that_names_a_thing_twice(
        self, backend: IndexBackend
    ) -> None:
        row = make_schema_row("S", "1.0.0")
        with pytest.raises(SchemaConflictError, match=r"S@1\.0\.0"):
            backend.write_catalog([row, row], [])
        first = make_record("a", ["x.tar"])
        for twin in (make_record("a", ["y.tar"]), DatasetRecord(**{**_fields(first), "name": "b"})):
            with pytest.raises(DatasetExistsError):
                backend.write_catalog([row], [first, twin])
        assert list(backend.iter_schemas()) == [] and list(backend.iter_datasets()) == []

    def test_changed_shard_facts_are_other_content(self, backend: IndexBackend) -> None:
        # Same name and URLs, but the files were rewritten: the stored hashes must not be
        # kept silently (verify would then report a mismatch on good files).
        stored = make_record("d", ["1.tar"])
        backend.insert_datasets([stored])
        rewritten = DatasetRecord(
            **{**_fields(stored), "shards": (ShardRecord("1.tar", 5, 1, "f" * 64),)}
        )
        with pytest.raises(DatasetExistsError):
            backend.insert_datasets([rewritten])
        assert _dataset(backend, "d").shards == stored.shards
        backend.insert_datasets([rewritten], on_conflict="replace")
        assert _dataset(backend, "d").shards == rewritten.shards
        # Facts left unknown assert nothing: an entry re-added without them is the same.
        [same] = backend.insert_datasets([make_record("d", ["1.tar"], shards=False)])
        assert same.shards == rewritten.shards

    @pytest.mark.parametrize("policy", ["error", "replace"])
    def test_same_content_under_another_name_is_refused(
        self, backend: IndexBackend, policy: OnConflict
    ) -> None:
        backend.insert_datasets([make_record("first", ["s.tar"])])
        twin = DatasetRecord(**{**_fields(make_record("first", ["s.tar"])), "name": "second"})
        with pytest.raises(DatasetExistsError) as info:
            backend.insert_datasets([twin], on_conflict=policy)
        assert "first" in str(info.value)
        assert backend.get_dataset("second") is None
        assert _dataset(backend, "first").cid == twin.cid

    def test_same_content_under_another_name_skip_returns_it(self, backend: IndexBackend) -> None:
        backend.insert_datasets([make_record("first", ["s.tar"])])
        twin = DatasetRecord(**{**_fields(make_record("first", ["s.tar"])), "name": "second"})
        [got] = backend.insert_datasets([twin], on_conflict="skip")
        assert got.name == "first"
        assert backend.get_dataset("second") is None

    def test_insert_is_all_or_nothing(self, backend: IndexBackend) -> None:
        backend.insert_datasets([make_record("taken", ["t.tar"])])
        batch = [make_record("new-1"), make_record("taken", ["other.tar"]), make_record("new-2")]
        with pytest.raises(DatasetExistsError):
            backend.insert_datasets(batch)
        assert [r.name for r in backend.iter_datasets()] == ["taken"]
        assert backend.get_dataset("new-1") is None

    def test_concurrent_inserts_of_one_name_have_one_winner(
        self, backend: IndexBackend, location: str
    ) -> None:
        n = 8
        barrier = threading.Barrier(n)
        won: list[str] = []
        lost: list[BaseException] = []

        def insert(i: int) -> None:
            other = self.open_backend(location)
            try:
                barrier.wait()
                other.insert_datasets([make_record("contested", [f"{i}.tar"])])
                won.append(f"{i}.tar")
            except DatasetExistsError as exc:
                lost.append(exc)
            finally:
                other.close()

        threads = [threading.Thread(target=insert, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(won) == 1 and len(lost) == n - 1
        assert _dataset(backend, "contested").data_urls == won
        assert [r.name for r in backend.iter_datasets()] == ["contested"]

    def test_another_connection_sees_committed_writes(
        self, backend: IndexBackend, location: str
    ) -> None:
        backend.insert_datasets([make_record("shared")])
        other = self.open_backend(location)
        try:
            assert other.get_dataset("shared") is not None
            other.rename_dataset("shared", "renamed")
        finally:
            other.close()
        assert backend.get_dataset("shared") is None
        assert backend.get_dataset("renamed") is not None

    def test_bad_on_conflict_value(self, backend: IndexBackend) -> None:
        with pytest.raises(ValueError):
            backend.insert_datasets([make_record("d")], on_conflict="merge")  # type: ignore[arg-type]

    # --- datasets: delete and rename ------------------------------------------------

    def test_delete_returns_the_removed_entry(self, backend: IndexBackend) -> None:
        rec = make_record("d")
        backend.insert_datasets([rec, make_record("e")])
        removed = backend.delete_dataset("d")
        assert removed is not None and removed.same_content(rec)
        assert backend.get_dataset("d") is None
        assert backend.get_dataset_by_cid(rec.cid) is None
        assert [r.name for r in backend.iter_datasets()] == ["e"]
        backend.insert_datasets([rec])  # the name and the content are free again
        assert backend.get_dataset("d") is not None

    def test_rename(self, backend: IndexBackend) -> None:
        rec = make_record("old", metadata={"k": 1})
        [stored] = backend.insert_datasets([rec])
        renamed = backend.rename_dataset("old", "new")
        assert renamed.name == "new" and renamed.cid == rec.cid
        assert backend.get_dataset("old") is None
        got = _dataset(backend, "new")
        assert got.metadata == rec.metadata and got.created_at == stored.created_at
        assert _dataset_by_cid(backend, rec.cid).name == "new"
        backend.insert_datasets([make_record("old", ["fresh.tar"])])  # old name is free

    def test_rename_errors(self, backend: IndexBackend) -> None:
        backend.insert_datasets([make_record("a"), make_record("b")])
        with pytest.raises(DatasetNotFoundError) as info:
            backend.rename_dataset("missing", "c")
        assert isinstance(info.value, KeyError)
        with pytest.raises(DatasetExistsError):
            backend.rename_dataset("a", "b")
        assert _dataset(backend, "a").name == "a" and _dataset(backend, "b").name == "b"

    def test_unreadable_dataset_rows_are_skipped_with_a_warning(
        self, backend: IndexBackend, location: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        backend.insert_datasets([make_record("good-1"), make_record("good-2")])
        self.store_unreadable_dataset(backend, location)
        with caplog.at_level(logging.WARNING):
            names = [r.name for r in backend.iter_datasets()]
        assert names == ["good-1", "good-2"]
        assert any(rec.levelno == logging.WARNING for rec in caplog.records)

    # --- schemas --------------------------------------------------------------------

    def test_publish_explicit_version(self, backend: IndexBackend) -> None:
        want = make_schema_row("S", "2.0.0")
        row, created = backend.publish_schema("S", "2.0.0", _render("S"), want.content_hash)
        assert created and row.version == "2.0.0"
        assert backend.get_schema("S", "2.0.0") == want

    def test_republishing_same_content_is_a_no_op(self, backend: IndexBackend) -> None:
        h = make_schema_row("S", "1.0.0").content_hash
        first, _ = backend.publish_schema("S", "1.0.0", _render("S"), h)
        again, created = backend.publish_schema("S", "1.0.0", _render("S"), h)
        assert not created and again == first

    def test_published_versions_are_immutable(self, backend: IndexBackend) -> None:
        backend.publish_schema("S", "1.0.0", _render("S"), make_schema_row("S", "1").content_hash)
        other = make_schema_row("S", "1.0.0", "str")
        with pytest.raises(SchemaConflictError) as info:
            backend.publish_schema("S", "1.0.0", _render("S", "str"), other.content_hash)
        assert isinstance(info.value, ValueError)
        assert "S@1.0.0" in str(info.value)
        assert backend.get_schema("S", "1.0.0") == make_schema_row("S", "1.0.0")

    def test_auto_versioning(self, backend: IndexBackend) -> None:
        h = make_schema_row("S", "x").content_hash
        versions = [backend.publish_schema("S", None, _render("S"), h)[0].version for _ in "abc"]
        assert versions == ["1.0.0", "1.0.1", "1.0.2"]
        backend.publish_schema("S", "1.9.0", _render("S"), h)
        assert backend.publish_schema("S", None, _render("S"), h)[0].version == "1.9.1"
        backend.publish_schema("S", "1.10.0", _render("S"), h)  # numeric, not string, order
        assert backend.publish_schema("S", None, _render("S"), h)[0].version == "1.10.1"
        # Other names do not count, even when one name is a prefix of another.
        assert backend.publish_schema("S2", None, _render("S2"), h)[0].version == "1.0.0"
        row = backend.get_schema("S", "1.10.1")
        assert row is not None and '"1.10.1"' in row.record_json

    def test_auto_versioning_is_atomic_across_connections(
        self, backend: IndexBackend, location: str
    ) -> None:
        h = make_schema_row("Race", "x").content_hash
        n = 16
        barrier = threading.Barrier(n)
        versions: list[str] = []
        errors: list[BaseException] = []

        def publish() -> None:
            other = self.open_backend(location)
            try:
                barrier.wait()
                versions.append(other.publish_schema("Race", None, _render("Race"), h)[0].version)
            except BaseException as exc:
                errors.append(exc)
            finally:
                other.close()

        threads = [threading.Thread(target=publish) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert sorted(versions, key=lambda v: int(v.rsplit(".", 1)[1])) == [
            f"1.0.{i}" for i in range(n)
        ]
        assert len([r for r in backend.iter_schemas() if r.name == "Race"]) == n

    def test_find_schema_returns_highest_matching_version(self, backend: IndexBackend) -> None:
        a = make_schema_row("S", "x").content_hash
        b = make_schema_row("S", "x", "str").content_hash
        backend.publish_schema("S", "1.0.0", _render("S"), a)
        backend.publish_schema("S", "1.2.0", _render("S"), a)
        backend.publish_schema("S", "1.10.0", _render("S", "str"), b)
        assert _present(backend.find_schema("S", a)).version == "1.2.0"
        assert _present(backend.find_schema("S", b)).version == "1.10.0"
        assert backend.find_schema("S", "0" * 64) is None
        assert backend.find_schema("T", a) is None

    def test_schema_names_with_glob_characters(self, backend: IndexBackend) -> None:
        h = make_schema_row("S", "x").content_hash
        backend.publish_schema("S*", "3.0.0", _render("S*"), h)
        assert backend.publish_schema("S", None, _render("S"), h)[0].version == "1.0.0"
        assert backend.publish_schema("S?", None, _render("S?"), h)[0].version == "1.0.0"
        assert _present(backend.find_schema("S*", h)).version == "3.0.0"

    def test_iter_schemas_order(self, backend: IndexBackend) -> None:
        h = make_schema_row("S", "x").content_hash
        for name, version in [("B", "1.10.0"), ("B", "1.9.0"), ("A", "2.0.0"), ("B", "1.0.0")]:
            backend.publish_schema(name, version, _render(name), h)
        got = [(r.name, r.version) for r in backend.iter_schemas()]
        assert got == [("A", "2.0.0"), ("B", "1.0.0"), ("B", "1.9.0"), ("B", "1.10.0")]

    # --- whole catalog --------------------------------------------------------------

    def _catalog(self) -> tuple[list[SchemaRow], list[DatasetRecord]]:
        schemas = [make_schema_row("A", "1.0.0"), make_schema_row("A", "banana", "str")]
        datasets = [
            make_record("one", metadata={"blob": b"\x00\xff", "n": 1}),
            make_record("two", ["p-{000..009}.tar"], schema_ref="local://schemas/m.A@1.0.0"),
            make_record("three", [], schema_ref="!!garbage!!"),
        ]
        return schemas, datasets

    def test_write_catalog_writes_rows_as_they_are(self, backend: IndexBackend) -> None:
        schemas, datasets = self._catalog()
        result = backend.write_catalog(schemas, datasets)
        assert sorted(result.schemas_added) == ["A@1.0.0", "A@banana"]
        assert sorted(result.datasets_added) == ["one", "three", "two"]
        for row in schemas:
            assert backend.get_schema(row.name, row.version) == row
        for rec in datasets:
            got = _dataset(backend, rec.name)
            assert got.same_content(rec) and got.shards == rec.shards

    def test_write_catalog_twice_changes_nothing(self, backend: IndexBackend) -> None:
        schemas, datasets = self._catalog()
        backend.write_catalog(schemas, datasets)
        before = list(backend.iter_datasets())
        result = backend.write_catalog(schemas, datasets)
        assert result.schemas_added == [] and result.datasets_added == []
        assert sorted(result.schemas_unchanged) == ["A@1.0.0", "A@banana"]
        assert sorted(result.datasets_unchanged) == ["one", "three", "two"]
        assert list(backend.iter_datasets()) == before

    def test_write_catalog_dry_run_writes_nothing(self, backend: IndexBackend) -> None:
        schemas, datasets = self._catalog()
        result = backend.write_catalog(schemas, datasets, dry_run=True)
        assert sorted(result.datasets_added) == ["one", "three", "two"]
        assert list(backend.iter_datasets()) == []
        assert list(backend.iter_schemas()) == []

    @pytest.mark.parametrize("clash", ["schema", "name", "cid"])
    def test_write_catalog_is_all_or_nothing(self, backend: IndexBackend, clash: str) -> None:
        backend.publish_schema("A", "1.0.0", _render("A", "bool"), "f" * 64)
        backend.insert_datasets([make_record("kept", ["kept.tar"])])
        schemas, datasets = self._catalog()
        if clash == "schema":
            expected: type[Exception] = SchemaConflictError
        elif clash == "name":
            schemas = schemas[1:]
            datasets = [*datasets, make_record("kept", ["else.tar"])]
            expected = DatasetExistsError
        else:
            schemas = schemas[1:]
            twin = DatasetRecord(**{**_fields(make_record("kept", ["kept.tar"])), "name": "x"})
            datasets = [*datasets, twin]
            expected = DatasetExistsError
        with pytest.raises(expected):
            backend.write_catalog(schemas, datasets)
        assert [r.name for r in backend.iter_datasets()] == ["kept"]
        assert [(r.name, r.version) for r in backend.iter_schemas()] == [("A", "1.0.0")]

    def test_close_is_idempotent(self, location: str) -> None:
        b = self.open_backend(location)
        b.close()
        b.close()

    def test_closed_backend_refuses_use(self, location: str) -> None:
        b = self.open_backend(location)
        b.insert_datasets([make_record("d")])
        b.close()
        with pytest.raises(IndexOpenError, match="closed"):
            b.get_dataset("d")
        with pytest.raises(IndexOpenError, match="closed"):
            b.insert_datasets([make_record("e")])
        with pytest.raises(IndexOpenError, match="closed"):
            list(b.iter_datasets())


def _fields(rec: DatasetRecord) -> dict[str, Any]:
    return {name: getattr(rec, name) for name in DatasetRecord.__slots__}


_T = TypeVar("_T")


def _present(value: _T | None) -> _T:
    """``value``, failing the test when it is missing (``None``)."""
    assert value is not None
    return value


def _dataset(backend: IndexBackend, name: str) -> DatasetRecord:
    """The stored entry named ``name``, failing the test when there is none."""
    return _present(backend.get_dataset(name))


def _dataset_by_cid(backend: IndexBackend, cid: str) -> DatasetRecord:
    """The stored entry with content ``cid``, failing the test when there is none."""
    return _present(backend.get_dataset_by_cid(cid))


def _sample_type() -> type:
    from .samples import packable

    @packable
    class ConformanceSample:
        """A sample for the conformance suite."""

        text: str
        label: int

    return ConformanceSample


class IndexConformance:
    """What users see of the contract through :class:`~atdata_lite.index.api.Index`.

    Mixed into :class:`BackendConformance`; uses the same ``location`` fixture.
    """

    @pytest.fixture
    def index(self, location: str) -> Iterator[Any]:
        from .index.api import Index

        idx = Index(location)
        try:
            yield idx
        finally:
            idx.close()

    def test_index_round_trip(self, index: Any) -> None:
        sample = _sample_type()
        ref = index.publish_schema(sample)
        assert ref == "atdata://local/sampleSchema/ConformanceSample@1.0.0"
        meta = {"split": "train", "n": 10, "nested": {"a": [1, 2]}, "blob": b"\x00\xff"}
        entry = index.add_shards(
            [ShardRecord("file:///d/s-0.tar", 10, 2, "a" * 64), "file:///d/s-1.tar"],
            name="train",
            schema_ref=ref,
            metadata=meta,
        )
        assert entry.cid == dataset_cid(ref, ["file:///d/s-0.tar", "file:///d/s-1.tar"])
        got = index.get_dataset("train")
        assert got.cid == entry.cid and got.metadata == meta
        assert got.data_urls == ["file:///d/s-0.tar", "file:///d/s-1.tar"]
        assert index.get_entry(entry.cid).name == "train"
        assert [e.name for e in index.list_datasets()] == ["train"]
        schema = index.get_schema(ref)
        assert schema["name"] == "ConformanceSample" and schema["$ref"] == ref
        assert [f["name"] for f in schema["fields"]] == ["text", "label"]
        assert index.decode_schema(ref).__name__ == "ConformanceSample"

    def test_index_splits(self, index: Any) -> None:
        ref = index.publish_schema(_sample_type())
        entry = index.add_splits(
            {
                "train": [ShardRecord("file:///d/tr-0.tar", 10, 2, "a" * 64), "file:///d/tr-1.tar"],
                "test": ["file:///d/te-0.tar"],
            },
            name="with-splits",
            schema_ref=ref,
        )
        got = index.get_dataset("with-splits")
        expected = {"train": ["file:///d/tr-0.tar", "file:///d/tr-1.tar"],
                    "test": ["file:///d/te-0.tar"]}  # fmt: skip
        assert entry.splits == expected and got.splits == expected
        assert got.data_urls == [*expected["train"], *expected["test"]]
        assert got.shards[0].sha256 == "a" * 64
        plain = index.add_shards(["file:///d/p.tar"], name="plain", schema_ref=ref)
        assert plain.splits == {} and index.get_dataset("plain").splits == {}

    def test_index_error_types(self, index: Any) -> None:
        sample = _sample_type()
        ref = index.publish_schema(sample, version="1.0.0")
        with pytest.raises(KeyError):
            index.get_dataset("nope")
        with pytest.raises(KeyError):
            index.get_schema("atdata://local/sampleSchema/Nope@1.0.0")
        with pytest.raises(ValueError):
            index.get_schema("foo://bar")
        index.add_shards(["a.tar"], name="d", schema_ref=ref)
        with pytest.raises(DatasetExistsError):
            index.add_shards(["b.tar"], name="d", schema_ref=ref)
        with pytest.raises(DatasetExistsError):  # same shards under another name
            index.add_shards(["a.tar"], name="e", schema_ref=ref)
        # The index records local paths absolute.
        assert index.add_shards(
            ["b.tar"], name="d", schema_ref=ref, on_conflict="skip"
        ).data_urls == [os.path.abspath("a.tar")]
        with pytest.raises(KeyError):
            index.delete_dataset("nope")
        assert index.delete_dataset("d").name == "d"

    def test_index_schema_versions(self, index: Any) -> None:
        sample = _sample_type()
        assert index.publish_schema(sample).endswith("@1.0.0")
        assert index.publish_schema(sample).endswith("@1.0.1")
        assert index.publish_schema(sample, version="1.0.1").endswith("@1.0.1")  # same content

        from .samples import packable

        @packable
        class ConformanceSample:  # same name, other fields
            other: bytes

        with pytest.raises(SchemaConflictError):
            index.publish_schema(ConformanceSample, version="1.0.0")
        assert index.publish_schema(ConformanceSample).endswith("@1.0.2")
        with pytest.raises(ValueError):
            index.publish_schema(sample, version="banana")

    def test_index_lists_past_unreadable_rows(
        self, index: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        good = make_record("good", metadata={"k": "v"})
        bad_meta = DatasetRecord(**{**_fields(make_record("bad-meta")), "metadata": b"\xc1"})
        bad_schema = SchemaRow("Broken", "1.0.0", "{not json", "0" * 64)
        index.backend.write_catalog(
            [make_schema_row("Sample", "1.0.0"), bad_schema],
            [
                good,
                bad_meta,
            ],
        )
        with caplog.at_level(logging.WARNING):
            entries = index.list_datasets()
            assert [s["name"] for s in index.list_schemas()] == ["Sample"]
        assert "Broken" in caplog.text  # the unreadable schema row is skipped, and said
        # Broken metadata bytes: the entry is listed, its metadata raises naming it.
        assert [e.name for e in entries] == ["bad-meta", "good"]
        assert entries[1].metadata == {"k": "v"}
        with pytest.raises(InvalidMetadataError, match="bad-meta"):
            _ = entries[0].metadata


from .samples import packable as _packable  # noqa: E402 -- the lens types below need it


@_packable
class LensSource:
    """Source type of the stored-lens conformance tests."""

    name: str
    n: int


@_packable
class LensView:
    """View type of the stored-lens conformance tests."""

    name: str


def copy_name(s: LensSource) -> LensView:
    """A lens that copies a field (storable as a field mapping)."""
    return LensView(name=s.name)


def upper_name(s: LensSource) -> LensView:
    """A lens that transforms a field (stored as a code reference, never as a mapping)."""
    return LensView(name=s.name.upper())


def _versioned(name: str, version: str | None, tag: str = "") -> DatasetRecord:
    rec = make_record(name, [f"file:///data/{name}/{version}{tag}.tar"])
    return rec.stamped(None, None, version)


class VersionConformance:
    """Dataset versions and labels, on the backend and through the Index.

    Mixed into :class:`BackendConformance`; uses the same ``location`` fixture and
    ``open_backend`` hook.
    """

    def test_latest_is_the_highest_version_not_the_newest(self, backend: IndexBackend) -> None:
        # atdata 0.7 returned the most recently created label: 0.9.0 here.
        for version in ("1.0.0", "2.0.0", "0.9.0"):
            backend.insert_datasets([_versioned("mnist", version)])
        assert _dataset(backend, "mnist").version == "2.0.0"
        assert [r.version for r in backend.iter_versions("mnist")] == ["0.9.0", "1.0.0", "2.0.0"]
        assert _present(backend.get_dataset_version("mnist", "0.9.0")).data_urls == [
            "file:///data/mnist/0.9.0.tar"
        ]
        assert backend.get_dataset_version("mnist", "3.0.0") is None
        assert sorted(_present(r.version) for r in backend.iter_datasets()) == [
            "0.9.0",
            "1.0.0",
            "2.0.0",
        ]

    def test_non_semver_versions_count_only_without_semver(self, backend: IndexBackend) -> None:
        backend.insert_datasets([_versioned("d", "2024-06")])
        backend.insert_datasets([_versioned("d", "2024-07")])
        assert _dataset(backend, "d").version == "2024-07"  # the newest of non-semver
        backend.insert_datasets([_versioned("d", "0.1.0")])
        assert _dataset(backend, "d").version == "0.1.0"

    def test_unversioned_insert_is_1_0_0_and_conflicts_with_the_latest(
        self, backend: IndexBackend
    ) -> None:
        (first,) = backend.insert_datasets([make_record("plain")])
        assert first.version == "1.0.0"
        backend.insert_datasets([_versioned("plain", "1.5.0")])
        with pytest.raises(DatasetExistsError):
            backend.insert_datasets([make_record("plain", ["file:///other.tar"])])
        (replaced,) = backend.insert_datasets(
            [make_record("plain", ["file:///other.tar"])], on_conflict="replace"
        )
        assert replaced.version == "1.5.0"
        assert _present(backend.get_dataset_version("plain", "1.0.0")).cid == first.cid

    def test_bumps(self, backend: IndexBackend) -> None:
        got = [
            backend.insert_datasets([_versioned("b", bump, str(i))])[0].version
            for i, bump in enumerate(["+patch", "+patch", "+minor", "+major", "+patch"])
        ]
        assert got == ["1.0.0", "1.0.1", "1.1.0", "2.0.0", "2.0.1"]
        # The same content again under "next" is the stored version, not a new one.
        again = _versioned("b", "+patch", "4")
        assert backend.insert_datasets([again])[0].version == "2.0.1"

    def test_same_content_is_stored_once(self, backend: IndexBackend) -> None:
        backend.insert_datasets([_versioned("c", "1.0.0")])
        with pytest.raises(DatasetExistsError, match=r"c@1\.0\.0"):
            backend.insert_datasets([_versioned("c", "1.0.0").stamped(None, None, "2.0.0")])

    def test_concurrent_next_versions_are_distinct(
        self, backend: IndexBackend, location: str
    ) -> None:
        n = 16
        barrier = threading.Barrier(n)
        got: list[str] = []
        errors: list[BaseException] = []

        def insert(i: int) -> None:
            other = self.open_backend(location)  # type: ignore[attr-defined]
            try:
                barrier.wait()
                (stored,) = other.insert_datasets([_versioned("race", "+patch", f"-{i}")])
                got.append(stored.version)
            except BaseException as exc:
                errors.append(exc)
            finally:
                other.close()

        threads = [threading.Thread(target=insert, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert sorted(got) == sorted(f"1.0.{i}" for i in range(n))
        assert len(backend.iter_versions("race")) == n
        assert _dataset(backend, "race").version == f"1.0.{n - 1}"

    def test_labels_point_at_stored_content_only(self, backend: IndexBackend) -> None:
        (a,) = backend.insert_datasets([_versioned("m", "1.0.0")])
        (b,) = backend.insert_datasets([_versioned("m", "2.0.0")])
        # atdata 0.7 accepted a label on a CID nobody stored.
        with pytest.raises(DatasetNotFoundError):
            backend.set_label("m", "stable", "bafy-missing", None)
        label = backend.set_label("m", "stable", a.cid, "the good one")
        assert (label.cid, label.description) == (a.cid, "the good one")
        assert _present(backend.get_label("m", "stable")).cid == a.cid
        moved = backend.set_label("m", "stable", b.cid, None)
        assert moved.cid == b.cid and moved.created_at == label.created_at
        backend.set_label("alias", "", a.cid, None)  # a second name, no second row
        assert [(r.name, r.version) for r in backend.iter_labels()] == [
            ("alias", ""),
            ("m", "stable"),
        ]
        assert [r.version for r in backend.iter_labels("m")] == ["stable"]
        assert len(list(backend.iter_datasets())) == 2
        assert _present(backend.delete_label("m", "stable")).cid == b.cid
        assert backend.get_label("m", "stable") is None
        assert backend.delete_label("m", "stable") is None
        # Removing a version removes the labels on it: none dangles.
        backend.delete_dataset("m", "1.0.0")
        assert backend.get_label("alias", "") is None
        assert backend.iter_labels() == []
        assert _dataset(backend, "m").version == "2.0.0"
        assert _present(backend.delete_dataset("m")).version == "2.0.0"
        assert backend.get_dataset("m") is None and backend.iter_versions("m") == []

    def test_replaced_version_keeps_its_labels(self, backend: IndexBackend) -> None:
        backend.insert_datasets([_versioned("r", "1.0.0")])
        old = _dataset(backend, "r")
        backend.set_label("r", "stable", old.cid, None)
        new = _versioned("r", "1.0.0", "-fixed")
        backend.insert_datasets([new], on_conflict="replace")
        assert _present(backend.get_label("r", "stable")).cid == new.cid

    def test_label_lookups_are_never_patterns(self, backend: IndexBackend) -> None:
        (rec,) = backend.insert_datasets([_versioned("mnist-train", "1.0.0")])
        backend.set_label("mnist-train", "", rec.cid, None)
        for pattern in ("*", "mnist*", "mnist?train", "mnist-t[er]*"):
            assert backend.get_label(pattern, "") is None
            assert backend.iter_labels(pattern) == []

    def test_resolve_name_takes_the_unversioned_label_first(self, backend: IndexBackend) -> None:
        assert backend.resolve_name("m") is None
        (old,) = backend.insert_datasets([_versioned("m", "1.0.0")])
        (new,) = backend.insert_datasets([_versioned("m", "2.0.0")])
        (other,) = backend.insert_datasets([_versioned("o", "1.0.0")])
        assert _present(backend.resolve_name("m")).cid == new.cid  # no label: the latest version
        backend.set_label("m", "stable", old.cid, None)  # a versioned label does not pin
        assert _present(backend.resolve_name("m")).cid == new.cid
        backend.set_label("m", "", old.cid, None)  # atdata's unversioned label pins the name
        pinned = _present(backend.resolve_name("m"))
        assert (pinned.cid, pinned.version, pinned.shards) == (old.cid, "1.0.0", old.shards)
        backend.set_label("alias", "", other.cid, None)  # a name no dataset has
        assert _present(backend.resolve_name("alias")).name == "o"
        assert backend.resolve_name("m*") is None and backend.resolve_name("alia?") is None
        backend.delete_label("m", "")
        assert _present(backend.resolve_name("m")).cid == new.cid

    def test_rename_moves_every_version(self, backend: IndexBackend) -> None:
        backend.insert_datasets([_versioned("old", "1.0.0")])
        backend.insert_datasets([_versioned("old", "1.1.0")])
        assert backend.rename_dataset("old", "new").version == "1.1.0"
        assert [r.version for r in backend.iter_versions("new")] == ["1.0.0", "1.1.0"]
        assert backend.iter_versions("old") == []

    def test_index_refs_resolve(self, index: Any) -> None:
        ref = index.publish_schema(_sample_type())
        v1 = index.add_shards(["v1.tar"], name="mnist", schema_ref=ref, version="1.2.0")
        v2 = index.add_shards(["v2.tar"], name="mnist", schema_ref=ref, version="next")
        assert (v1.version, v2.version) == ("1.2.0", "1.2.1")
        assert index.get_dataset("mnist").cid == v2.cid
        assert index.get_dataset("mnist@1.2.0").cid == v1.cid
        index.tag("mnist@1.2.0", "stable")
        assert index.get_dataset("mnist:stable").cid == v1.cid
        assert index.get_dataset("mnist@stable").cid == v1.cid
        assert index.get_label("mnist").cid == v2.cid
        assert index.get_label("mnist", "1.2.0").cid == v1.cid
        index.label("digits", v1.cid, description="same content, another name")
        assert index.get_dataset("digits").cid == v1.cid
        assert ("digits", v1.cid, None) in index.list_labels()
        assert ("mnist", v2.cid, "1.2.1") in index.list_labels()
        # atdata's unversioned label on a dataset's own name pins it, and resolves first.
        index.label("mnist", v1.cid)
        assert index.get_dataset("mnist").cid == v1.cid
        index.delete_label("mnist")
        assert index.get_dataset("mnist").cid == v2.cid
        with pytest.raises(DatasetExistsError):
            index.label("mnist", v2.cid, version="1.2.0")  # a version is not re-pointable
        with pytest.raises(KeyError):
            index.get_dataset("*")
        with pytest.raises(KeyError):
            index.get_label("mnist", "9.9.9")
        assert [e.version for e in index.list_versions("mnist")] == ["1.2.0", "1.2.1"]
        assert index.delete_dataset("mnist@1.2.0").version == "1.2.0"
        with pytest.raises(KeyError):
            index.get_dataset("mnist:stable")
        with pytest.raises(ValueError):
            index.add_shards(["v3.tar"], name="mnist", schema_ref=ref, version="bad version")

    def test_index_lenses_round_trip(self, index: Any) -> None:
        from .errors import LensCheckError, LensNotFoundError
        from .lenses import Lens

        src = LensSource(name="abc", n=3)
        copy_ref = index.store_lens(
            Lens(copy_name), name="copy", source_schema=LensSource, view_schema=LensView
        )
        assert copy_ref == "atdata://local/lens/copy@1.0.0"
        assert index.get_lens(copy_ref)["kind"] == "field_mapping"
        # atdata 0.7 stored this one as an identity mapping and lost the upper-casing.
        upper_ref = index.store_lens(
            Lens(upper_name), name="upper", source_schema=LensSource, view_schema=LensView
        )
        record = index.get_lens(upper_ref)
        assert record["kind"] == "code" and record["code"]["qualname"] == "upper_name"
        loaded = index.load_lens(upper_ref, source_type=LensSource, view_type=LensView)
        assert loaded(src) == LensView(name="ABC")
        assert index.load_lens(copy_ref, source_type=LensSource, view_type=LensView)(
            src
        ) == LensView(name="abc")
        with pytest.raises(LensCheckError):
            index.store_lens(
                Lens(lambda s: LensView(name=s.name.upper()), source_type=LensSource,
                     view_type=LensView),
                name="lost", source_schema=LensSource, view_schema=LensView,
            )  # fmt: skip
        again = index.store_lens(
            Lens(upper_name), name="upper", source_schema=LensSource, view_schema=LensView,
            description="v2",
        )  # fmt: skip
        assert again.endswith("@1.0.1")
        assert [r["name"] for r in index.find_lenses("LensSource")] == ["copy", "upper", "upper"]
        assert index.find_lenses("LensSource", "Nope") == []
        assert [r["$ref"] for r in index.list_lenses()][-1] == again
        with pytest.raises(LensNotFoundError):
            index.get_lens("missing@1.0.0")


class BackendConformance(_BackendTests, IndexConformance, VersionConformance):
    """The whole suite: the backend contract and the Index on top of it.

    Subclass it and override the ``location`` fixture (see the module docstring).
    """
