"""``atdata-lite schemas``, ``schema show REF``, ``schema diff A B`` and ``schema publish``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from ..errors import InvalidSchemaRefError, SchemaNotFoundError
from ._app import AppState, cli, json_option, pass_state, wide_option
from ._output import (
    echo_json,
    escape_control,
    format_time,
    render_kv,
    render_table,
    style,
    table_width,
)
from ._suggest import did_you_mean

if TYPE_CHECKING:
    from ..index.api import Index

__all__ = ["format_field_type", "resolve_schema_ref", "schema", "schemas", "short_ref"]

ATDATA_PREFIX = "atdata://local/sampleSchema/"
LEGACY_PREFIX = "local://schemas/"
SCHEMA_PREFIX = "atdata://local/schema/"  # atdata 0.7's form


def short_ref(ref: str) -> str:
    """``atdata://local/sampleSchema/Img@1.0.0`` (or another form) -> ``Img@1.0.0``."""
    for prefix in (ATDATA_PREFIX, SCHEMA_PREFIX, LEGACY_PREFIX):
        if ref.startswith(prefix):
            rest = ref[len(prefix) :]
            name, sep, version = rest.rpartition("@")
            if not sep:
                return rest
            return f"{name.rsplit('.', 1)[-1]}@{version}"
    return ref


def _semver_key(version: str) -> tuple[int, tuple[int, ...] | str]:
    try:
        return (1, tuple(int(p) for p in version.split(".")))
    except ValueError:
        return (0, version)


def resolve_schema_ref(index: Index, ref: str, *, param_hint: str = "REF") -> str:
    """Turn what a person typed into a full schema ref.

    Accepts a full ref (either form), ``Name@x.y.z``, or a bare ``Name`` (its highest
    version in the index).

    Raises:
        click.BadParameter: The ref is malformed (a usage error, exit code 2).
        SchemaNotFoundError: A bare name has no published version.
    """
    ref = ref.strip()
    if "://" in ref:
        from ..schema import parse_schema_ref

        try:
            parse_schema_ref(ref)
        except InvalidSchemaRefError as exc:
            raise click.BadParameter(
                f"{exc}. Short forms: Name@x.y.z, or a bare Name for its latest version.",
                param_hint=param_hint,
            ) from exc
        return ref
    name, sep, version = ref.partition("@")
    if not name.isidentifier() or (sep and not version):
        raise click.BadParameter(
            f"{ref!r} is not a schema ref; use Name@x.y.z, a bare Name for its latest "
            "version, or atdata://local/sampleSchema/Name@x.y.z.",
            param_hint=param_hint,
        )
    if sep:
        return f"{ATDATA_PREFIX}{name}@{version}"
    records = index.list_schemas()
    versions = [s["version"] for s in records if s.get("name") == name]
    if not versions:
        names = [str(s.get("name")) for s in records if s.get("name")]
        raise SchemaNotFoundError(
            f"No schema named {name!r} is published in this index. "
            f"{did_you_mean(name, names, 'atdata-lite schemas')} "
            "Publish one with: atdata-lite schema publish module:Class"
        )
    return f"{ATDATA_PREFIX}{name}@{max(versions, key=_semver_key)}"


def _get_schema(index: Index, ref: str, param_hint: str) -> dict[str, Any]:
    full = resolve_schema_ref(index, ref, param_hint=param_hint)
    try:
        return index.get_schema(full)
    except InvalidSchemaRefError as exc:
        raise click.BadParameter(str(exc), param_hint=param_hint) from exc
    except SchemaNotFoundError as exc:
        raise SchemaNotFoundError(
            f"No schema {short_ref(full)} in this index. " + _close_refs(index, short_ref(full))
        ) from exc


def _close_refs(index: Index, wanted: str) -> str:
    """ "Did you mean" over ``Name@version`` of every published schema."""
    name = wanted.partition("@")[0]
    records = index.list_schemas()
    same_name = [f"{r['name']}@{r['version']}" for r in records if r.get("name") == name]
    if same_name:
        return f"Published versions of {name}: {', '.join(same_name)}."
    refs = [f"{r.get('name')}@{r.get('version')}" for r in records]
    return did_you_mean(wanted, refs, "atdata-lite schemas")


def format_field_type(field_type: dict[str, Any]) -> str:
    """A schema ``fieldType`` for people: ``str``, ``ndarray[uint8]``, ``list[int]``, ..."""
    kind = str(field_type.get("$type", "")).rpartition("#")[2] or field_type.get(
        "kind", "primitive"
    )
    if kind == "primitive":
        return str(field_type.get("primitive", "?"))
    if kind == "ndarray":
        text = f"ndarray[{field_type.get('dtype', 'any')}]"
        if field_type.get("shape"):
            text += f" shape {tuple(field_type['shape'])}"
        return text
    if kind == "array":
        return f"list[{format_field_type(field_type.get('items') or {})}]"
    if kind == "ref":
        return f"ref {field_type.get('ref')}"
    return kind


def _field_text(field: dict[str, Any]) -> str:
    text = format_field_type(field.get("fieldType") or {})
    if field.get("optional"):
        text += " | None"
    if "default" in field:
        text += f" = {field['default']!r}"
    return text


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3].rstrip() + "..."


@cli.command()
@json_option
@wide_option
@pass_state
def schemas(state: AppState) -> None:
    """List the published schemas (every version).

    Example:

    \b
        atdata-lite schemas
        atdata-lite schemas --json
    """
    records = state.index().list_schemas()
    if state.json:
        echo_json(records)
        return
    if not records:
        click.echo("No schemas yet. `atdata-lite demo` publishes one.")
        return
    rows = [
        [
            r.get("name"),
            r.get("version"),
            len(r.get("fields") or []),
            format_time(r.get("createdAt")),
            _clip((r.get("description") or "").strip().split("\n", 1)[0], 50),
        ]
        for r in records
    ]
    click.echo(
        render_table(
            ["name", "version", "fields", "created", "description"],
            rows,
            fit={"name": "end", "description": "end"},
            max_width=table_width(state.wide),
        )
    )


@cli.group()
def schema() -> None:
    """Publish a sample type's schema, look at one schema, or compare two.

    Example:

    \b
        atdata-lite schema publish mytypes:Photo
        atdata-lite schema show Photo
        atdata-lite schema diff Photo@1.0.0 Photo@1.0.1
    """


@schema.command("show")
@click.argument("ref")
@json_option
@pass_state
def schema_show(state: AppState, ref: str) -> None:
    """Show the schema REF: a full ref, Name@x.y.z, or Name (its latest version).

    Example:

    \b
        atdata-lite schema show DemoImage
        atdata-lite schema show DemoImage@1.0.0 --json
    """
    record = _get_schema(state.index(), ref, "REF")
    if state.json:
        echo_json(record)
        return
    click.echo(
        render_kv(
            [
                ("ref", record.get("$ref")),
                ("name", record.get("name")),
                ("version", record.get("version")),
                ("created", record.get("createdAt")),
                ("description", record.get("description") or ""),
            ]
        )
    )
    click.echo()
    rows = [
        [
            f.get("name"),
            format_field_type(f.get("fieldType") or {}),
            "yes" if f.get("optional") else "no",
            repr(f["default"]) if "default" in f else "",
        ]
        for f in record.get("fields") or []
    ]
    click.echo(render_table(["field", "type", "optional", "default"], rows))


def diff_schemas(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Compare two schema records field by field.

    Returns:
        ``{"a", "b", "identical", "added", "removed", "changed", "reordered", "description"}``:
        added/removed are fields (name and type text), changed lists ``{name, a, b}``.
    """
    fa = {f["name"]: f for f in a.get("fields") or []}
    fb = {f["name"]: f for f in b.get("fields") or []}
    added = [{"name": n, "type": _field_text(fb[n])} for n in fb if n not in fa]
    removed = [{"name": n, "type": _field_text(fa[n])} for n in fa if n not in fb]
    changed = [
        {"name": n, "a": _field_text(fa[n]), "b": _field_text(fb[n])}
        for n in fa
        if n in fb and _field_text(fa[n]) != _field_text(fb[n])
    ]
    common_a = [n for n in fa if n in fb]
    common_b = [n for n in fb if n in fa]
    description = None
    if (a.get("description") or "") != (b.get("description") or ""):
        description = {"a": a.get("description"), "b": b.get("description")}
    identical_fields = not (added or removed or changed) and common_a == common_b
    return {
        "a": a.get("$ref"),
        "b": b.get("$ref"),
        "identical": identical_fields and a.get("name") == b.get("name"),
        "name": None
        if a.get("name") == b.get("name")
        else {"a": a.get("name"), "b": b.get("name")},
        "added": added,
        "removed": removed,
        "changed": changed,
        "reordered": common_a != common_b,
        "description": description,
    }


@schema.command("diff")
@click.argument("a")
@click.argument("b")
@json_option
@pass_state
def schema_diff(state: AppState, a: str, b: str) -> None:
    """Show what changed from schema A to schema B (fields added, removed, retyped).

    The exit code is 0 whether or not they differ; `--json` has "identical".

    Example:

    \b
        atdata-lite schema diff Photo@1.0.0 Photo@1.1.0
    """
    index = state.index()
    result = diff_schemas(_get_schema(index, a, "A"), _get_schema(index, b, "B"))
    if state.json:
        echo_json(result)
        return
    e = escape_control
    click.echo(f"--- {e(short_ref(result['a'] or a))}")
    click.echo(f"+++ {e(short_ref(result['b'] or b))}")
    if result["name"]:
        click.echo(f"~ name: {e(result['name']['a'])} -> {e(result['name']['b'])}")
    for f in result["removed"]:
        click.echo(style(f"- {e(f['name'])}: {e(f['type'])}", fg="red"))
    for f in result["added"]:
        click.echo(style(f"+ {e(f['name'])}: {e(f['type'])}", fg="green"))
    for f in result["changed"]:
        click.echo(style(f"~ {e(f['name'])}: {e(f['a'])} -> {e(f['b'])}", fg="yellow"))
    if result["reordered"]:
        click.echo("~ field order changed")
    if result["description"]:
        click.echo("~ description changed")
    if result["identical"] and not result["description"]:
        click.echo("no differences")
    elif result["identical"]:
        click.echo("fields identical")


@schema.command("publish")
@click.argument("spec", metavar="MODULE:CLASS")
@click.option(
    "--version",
    "version",
    metavar="X.Y.Z",
    help="Publish under this version. Default: reuse the published version with the same "
    "fields, else the next patch version.",
)
@click.option(
    "--description",
    metavar="TEXT",
    help="The schema's description (default: the class docstring).",
)
@json_option
@pass_state
def schema_publish(
    state: AppState, spec: str, version: str | None, description: str | None
) -> None:
    """Publish the schema of a @packable sample class, imported from MODULE:CLASS.

    MODULE:CLASS is a module and a class in it (mypkg.types:Photo; the current directory
    is searched first, as `python -m` does) or a Python file and a class
    (path/to/types.py:Photo). Publishing a class whose fields match a published version
    reuses that version, so running it twice changes nothing.

    Example:

    \b
        atdata-lite schema publish mytypes:Photo
        atdata-lite schema publish src/mytypes.py:Photo --version 2.0.0
    """
    from ..errors import InvalidSchemaRefError as BadRef
    from ._loader import load_class

    sample_type = load_class(spec, param_hint="MODULE:CLASS")
    index = state.index(create=True)
    before = {r.get("$ref") for r in index.list_schemas()}
    if version is None and description is None:
        ref = index.schema_ref_for_type(sample_type)
    else:
        try:
            ref = index.publish_schema(sample_type, version=version, description=description)
        except BadRef as exc:
            raise click.BadParameter(str(exc), param_hint="--version") from exc
    record = index.get_schema(ref)
    created = ref not in before
    doc = {
        "ref": ref,
        "name": record.get("name"),
        "version": record.get("version"),
        "created": created,
        "fields": [f.get("name") for f in record.get("fields") or []],
    }
    if state.json:
        echo_json(doc)
        return
    verb = "published" if created else "already published"
    click.echo(f"{verb} {short_ref(ref)} ({len(doc['fields'])} fields): {ref}")
