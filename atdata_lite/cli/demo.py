"""``atdata-lite demo``: the main job, end to end, on a fresh machine."""

from __future__ import annotations

import click

from ._app import AppState, cli, json_option, pass_state

__all__ = ["demo"]


@cli.command()
@json_option
@pass_state
def demo(state: AppState) -> None:
    """Write a small typed dataset to the default store, index it and read it back."""
    raise click.ClickException("demo is not available yet")
