"""Type stubs: .pyi only, only when asked, from validated identifiers, never executed."""

from __future__ import annotations

import ast
import json
import sys

import pytest
from _index_helpers import ImageSample, Point, TextSample

from atdata_lite.errors import SchemaDecodeError
from atdata_lite.index import Index, StubManager


def test_no_stub_files_unless_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("ATDATA_LITE_HOME", str(tmp_path / "home"))
    with Index(tmp_path / "i.db") as idx:
        ref = idx.publish_schema(TextSample)
        idx.load_schema(ref)
        idx.get_schema(ref)
        assert idx.get_import_path(ref) is None
        assert idx.stub_dir is None
    assert not (tmp_path / "home" / "stubs").exists()


def test_auto_stubs_write_pyi_modules(tmp_path):
    stubs = tmp_path / "stubs"
    with Index(tmp_path / "i.db", auto_stubs=True, stub_dir=stubs) as idx:
        assert idx.stub_dir == stubs
        ref = idx.publish_schema(TextSample)
        path = stubs / "local" / "TextSample_1_0_0.pyi"
        assert path.exists()
        assert (stubs / "local" / "__init__.pyi").exists()
        assert idx.get_import_path(ref) == "local.TextSample_1_0_0"
        idx.load_schema(ref)
    text = path.read_text()
    tree = ast.parse(text)  # valid syntax
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef))
    assert cls.name == "TextSample"
    assert "    text: str" in text
    assert "    tokens: list[int]" in text
    assert "    embedding: NDArray[Any] | None" in text
    assert (
        "def __init__(self, text: str, tokens: list[int], embedding: NDArray[Any] | None = ..."
        in text
    )
    assert not list(stubs.rglob("*.py"))  # nothing importable, nothing executed
    assert not any(m.startswith("local.") for m in sys.modules)


def test_stub_dir_alone_turns_stubs_on(tmp_path):
    with Index(tmp_path / "i.db", stub_dir=tmp_path / "s") as idx:
        ref = idx.publish_schema(Point)
        assert idx.get_import_path(ref) == "local.Point_1_0_0"
        assert idx.clear_stubs() == 1
        assert idx.clear_stubs() == 0
    assert not (tmp_path / "s" / "local").exists()


def test_default_stub_dir_is_under_home(tmp_path, monkeypatch):
    monkeypatch.setenv("ATDATA_LITE_HOME", str(tmp_path / "home"))
    with Index(tmp_path / "i.db", auto_stubs=True) as idx:
        idx.publish_schema(ImageSample)
        assert idx.stub_dir == tmp_path / "home" / "stubs"
    assert (tmp_path / "home" / "stubs" / "local" / "ImageSample_1_0_0.pyi").exists()


def _schema(name="S", fields=None, version="1.0.0", ref=None):
    return {
        "name": name,
        "version": version,
        "fields": fields
        if fields is not None
        else [{"name": "a", "fieldType": {"$type": "local#primitive", "primitive": "int"}}],
        "$ref": ref or f"atdata://local/sampleSchema/{name}@{version}",
    }


INJECTION = "a: int = print('INJECTED-CODE-RAN') or 0\n    b"


@pytest.mark.parametrize(
    "schema",
    [
        _schema(name="my-sample"),
        _schema(name="class"),
        _schema(fields=[{"name": INJECTION, "fieldType": {"kind": "primitive"}}]),
        _schema(fields=[{"name": "def", "fieldType": {"kind": "primitive"}}]),
        _schema(version="1.0.0'); import os; ('"),
        _schema(ref="atdata://evil-authority/sampleSchema/S@1.0.0"),
    ],
)
def test_unsafe_names_are_refused(tmp_path, schema):
    manager = StubManager(tmp_path / "s")
    with pytest.raises(SchemaDecodeError, match="Cannot write a type stub") as info:
        manager.ensure_stub(schema)
    assert isinstance(info.value, ValueError)
    assert manager.list_stubs() == []


def test_type_text_comes_from_a_table_not_the_record(tmp_path):
    manager = StubManager(tmp_path / "s")
    evil = {"$type": "local#primitive", "primitive": "int; import os"}
    path = manager.ensure_stub(_schema(fields=[{"name": "a", "fieldType": evil}]))
    assert "import os" not in path.read_text()
    assert "    a: Any" in path.read_text()


def test_injected_record_in_the_index_never_runs(tmp_path, capsys):
    with Index(tmp_path / "i.db", auto_stubs=True, stub_dir=tmp_path / "s") as idx:
        record = _schema(name="Evil", fields=[{"name": INJECTION, "fieldType": {}}])
        del record["$ref"]
        idx.backend.publish_schema("Evil", "1.0.0", lambda v: json.dumps(record), "h" * 64)
        ref = "atdata://local/sampleSchema/Evil@1.0.0"
        with pytest.raises(SchemaDecodeError):
            idx.decode_schema(ref)
        with pytest.raises(SchemaDecodeError):
            idx.get_import_path(ref)
    assert "INJECTED-CODE-RAN" not in capsys.readouterr().out
    assert not list((tmp_path / "s").rglob("Evil*"))


def test_changed_content_refreshes_the_stub(tmp_path):
    manager = StubManager(tmp_path / "s")
    path = manager.ensure_stub(_schema())
    first = path.read_text()
    mtime = path.stat().st_mtime_ns
    assert manager.ensure_stub(_schema()) == path
    assert path.stat().st_mtime_ns == mtime  # unchanged content: not rewritten
    fields = [{"name": "b", "fieldType": {"$type": "local#primitive", "primitive": "str"}}]
    manager.ensure_stub(_schema(fields=fields))
    assert path.read_text() != first and "    b: str" in path.read_text()


def test_authorities_and_clearing(tmp_path):
    manager = StubManager(tmp_path / "s")
    manager.ensure_stub(_schema())
    other = manager.ensure_stub(_schema(ref="atdata://did:plc:abc/sampleSchema/S@1.0.0"))
    assert other.parent.name == "did_plc_abc"
    assert manager.import_path(_schema()) == "local.S_1_0_0"
    assert len(manager.list_stubs()) == 2
    assert manager.list_stubs("local") == [tmp_path / "s" / "local" / "S_1_0_0.pyi"]
    assert manager.clear_stub("S", "1.0.0") is True
    assert manager.clear_stub("S", "1.0.0") is False
    assert manager.clear_stubs() == 1
    assert manager.list_stubs() == []
