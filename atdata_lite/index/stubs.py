"""Optional ``.pyi`` type stubs of published schemas, for IDEs (atdata's ``auto_stubs``).

atdata generated ``.py`` modules from schema records and imported them, pasting names from
the record into source code, so a crafted field name ran code on import. Here:

* stubs are ``.pyi`` files, which are never imported or executed;
* every name written into a stub (schema, field, authority, version) is checked to be a
  plain Python identifier first; type text comes from a fixed table, never from the record;
* files are written only when the index was asked to (``auto_stubs=True`` or ``stub_dir``),
  atomically (temporary file + ``os.replace``), and only when their content changed, so a
  schema republished with other fields never leaves a stale stub.

Layout, as atdata's: ``{stub_dir}/{authority}/{Name}_{1_2_3}.pyi`` with an
``__init__.pyi`` in each authority directory; the import path is ``local.Name_1_2_3``.
Point your IDE's ``extraPaths`` (or ``MYPYPATH``) at ``stub_dir``.
"""

from __future__ import annotations

import contextlib
import keyword
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Any

from ..errors import SchemaDecodeError
from ..schema import field_kind

__all__ = ["StubManager", "default_stub_dir"]

_AUTHORITY_RE = re.compile(r"^atdata://([^/]+)/")
_VERSION_PART_RE = re.compile(r"[0-9A-Za-z_]+")  # fullmatch: `$` accepts a final newline
_PRIMITIVE_TEXT = {"str": "str", "int": "int", "float": "float", "bool": "bool", "bytes": "bytes"}

_ROOT_INIT = '"""Type stubs of atdata-lite schemas (generated; never imported)."""\n'


def default_stub_dir() -> Path:
    """``<atdata-lite home>/stubs`` (see :mod:`atdata_lite.config`)."""
    from ..config import home_dir

    return home_dir() / "stubs"


def _identifier(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.isidentifier() or keyword.iskeyword(value):
        raise SchemaDecodeError(
            f"Cannot write a type stub: the {what} {value!r} is not a valid Python identifier "
            "(or is a keyword). The schema can still be decoded with decode_schema(); only "
            "the IDE stub is refused."
        )
    return value


def _type_text(field_type: Any) -> str:
    if not isinstance(field_type, dict):
        return "Any"
    kind = field_kind(field_type)
    if kind == "primitive":
        return _PRIMITIVE_TEXT.get(field_type.get("primitive") or "str", "Any")
    if kind == "ndarray":
        return "NDArray[Any]"
    if kind == "array":
        items = field_type.get("items")
        return f"list[{_type_text(items)}]" if items else "list[Any]"
    return "Any"


class StubManager:
    """Writes and removes ``.pyi`` stubs under one directory.

    Args:
        stub_dir: Where to write; default ``<atdata-lite home>/stubs``.
    """

    def __init__(self, stub_dir: str | os.PathLike[str] | None = None) -> None:
        self._stub_dir = Path(stub_dir).expanduser() if stub_dir is not None else None
        self._lock = threading.Lock()

    @property
    def stub_dir(self) -> Path:
        """The directory that holds the stubs (created on first write)."""
        if self._stub_dir is None:
            self._stub_dir = default_stub_dir()
        return self._stub_dir

    # --- naming -----------------------------------------------------------------------

    @staticmethod
    def authority_of(schema: dict[str, Any]) -> str:
        """The authority part of the schema's ``$ref`` (``local`` when there is none)."""
        ref = schema.get("$ref")
        match = _AUTHORITY_RE.match(ref) if isinstance(ref, str) else None
        authority = match.group(1).replace(":", "_") if match else "local"
        return _identifier(authority, "authority")

    @staticmethod
    def module_name(name: str, version: str) -> str:
        """``Name_1_2_3`` for ``Name@1.2.3``.

        Raises:
            SchemaDecodeError: The name or version cannot form a module name.
        """
        _identifier(name, "schema name")
        part = str(version).replace(".", "_")
        if not _VERSION_PART_RE.fullmatch(part):
            raise SchemaDecodeError(
                f"Cannot write a type stub: the version {version!r} of {name!r} cannot be part "
                "of a module name."
            )
        return f"{name}_{part}"

    def get_stub_path(self, name: str, version: str, authority: str = "local") -> Path:
        """Where the stub of ``name@version`` is (or would be) written."""
        _identifier(authority, "authority")
        return self.stub_dir / authority / f"{self.module_name(name, version)}.pyi"

    def import_path(self, schema: dict[str, Any]) -> str:
        """``{authority}.{Name}_{1_2_3}``, e.g. ``local.ImageSample_1_0_0``."""
        return f"{self.authority_of(schema)}.{self.module_name(schema['name'], schema['version'])}"

    # --- writing ----------------------------------------------------------------------

    def render(self, schema: dict[str, Any]) -> str:
        """The text of the stub for ``schema`` (validated names only).

        Raises:
            SchemaDecodeError: A name in the record is not a Python identifier.
        """
        name = _identifier(schema.get("name"), "schema name")
        version = str(schema.get("version", ""))
        self.module_name(name, version)
        positional: list[str] = []
        keyword_only: list[str] = []
        attrs: list[str] = []
        after_default = False
        for raw in schema.get("fields") or []:
            fname = _identifier(raw.get("name") if isinstance(raw, dict) else None, "field name")
            text = _type_text(raw.get("fieldType"))
            if raw.get("optional"):
                text += " | None"
            has_default = bool(raw.get("optional")) or "default" in raw
            attrs.append(f"    {fname}: {text}")
            param = f"{fname}: {text}" + (" = ..." if has_default else "")
            if has_default:
                after_default = True
                positional.append(param)
            elif after_default:
                keyword_only.append(param)
            else:
                positional.append(param)
        params = ["self", *positional]
        if keyword_only:
            params += ["*", *keyword_only]
        lines = [
            f'"""Type stub of the schema {name}@{version} (generated by atdata-lite)."""',
            "",
            "from typing import Any",
            "",
            "from numpy.typing import NDArray",
            "",
            "from atdata_lite.samples import PackableSample",
            "",
            f"__all__ = [{name!r}]",
            "",
            f"class {name}(PackableSample):",
            *attrs,
            f"    def __init__({', '.join(params)}) -> None: ...",
            "",
        ]
        return "\n".join(lines)

    def _write_if_changed(self, path: Path, text: str) -> bool:
        try:
            if path.read_text(encoding="utf-8") == text:
                return False
        except (FileNotFoundError, UnicodeDecodeError):
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return True

    def ensure_stub(self, schema: dict[str, Any]) -> Path:
        """Write (or refresh) the stub of ``schema``; return its path.

        Raises:
            SchemaDecodeError: A name in the record is not a Python identifier.
        """
        text = self.render(schema)
        authority = self.authority_of(schema)
        path = self.get_stub_path(schema["name"], str(schema["version"]), authority)
        with self._lock:
            self._write_if_changed(self.stub_dir / "__init__.pyi", _ROOT_INIT)
            self._write_if_changed(
                path.parent / "__init__.pyi",
                f'"""Type stubs of the schemas of {authority} (generated)."""\n',
            )
            self._write_if_changed(path, text)
        return path

    # --- listing and removing ---------------------------------------------------------

    def list_stubs(self, authority: str | None = None) -> list[Path]:
        """Every stub file (``__init__.pyi`` excluded), of one authority or all."""
        root = self.stub_dir if authority is None else self.stub_dir / authority
        if not root.is_dir():
            return []
        pattern = "**/*.pyi" if authority is None else "*.pyi"
        return sorted(p for p in root.glob(pattern) if p.name != "__init__.pyi")

    def clear_stub(self, name: str, version: str, authority: str = "local") -> bool:
        """Remove one stub; True when a file was removed."""
        path = self.get_stub_path(name, version, authority)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        self._prune(path.parent)
        return True

    def clear_stubs(self, authority: str | None = None) -> int:
        """Remove every stub (of one authority, or all); return how many were removed."""
        removed = 0
        with self._lock:
            for path in self.list_stubs(authority):
                try:
                    path.unlink()
                    removed += 1
                except FileNotFoundError:
                    pass
            for directory in {p.parent for p in self.stub_dir.glob("*/__init__.pyi")}:
                self._prune(directory)
        return removed

    def _prune(self, directory: Path) -> None:
        # An authority directory that holds nothing but its __init__.pyi goes too.
        if directory == self.stub_dir or not directory.is_dir():
            return
        rest = [p for p in directory.iterdir() if p.name != "__init__.pyi"]
        if not rest:
            (directory / "__init__.pyi").unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                directory.rmdir()
