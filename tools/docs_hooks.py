"""mkdocs hooks for the atdata-lite documentation site (``hooks:`` in ``mkdocs.yml``).

``<!-- cli-reference -->`` in a page is replaced by the ``--help`` text of every
``atdata-lite`` command, generated from the click commands at build time, so the command
line reference never drifts from the code.
"""

from __future__ import annotations

from typing import Any

MARKER = "<!-- cli-reference -->"


def _walk(group: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    import click

    found = [(path, group)]
    for name in sorted(group.commands):
        command = group.commands[name]
        if isinstance(command, click.Group):
            found.extend(_walk(command, (*path, name)))
        else:
            found.append(((*path, name), command))
    return found


def cli_reference() -> str:
    """Markdown: one section per command, its ``--help`` text in a code block."""
    from click.testing import CliRunner

    from atdata_lite.cli import main

    sections = []
    for path, _command in _walk(main):
        result = CliRunner().invoke(main, [*path, "--help"], terminal_width=88)
        if result.exit_code != 0:
            raise RuntimeError(f"atdata-lite {' '.join(path)} --help failed: {result.output}")
        title = " ".join(("atdata-lite", *path))
        sections.append(f"## `{title}`\n\n```text\n{result.output.rstrip()}\n```\n")
    return "\n".join(sections)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Expand the CLI reference marker (mkdocs event)."""
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, cli_reference())
    return markdown
