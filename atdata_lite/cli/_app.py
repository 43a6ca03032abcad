"""The root ``atdata-lite`` command: global options, shared state, and error handling.

Errors: any :class:`~atdata_lite.errors.AtdataLiteError` (and the few OS errors a path or
URL can cause) becomes one line on stderr, ``Error: <what went wrong and what to do>``, and
exit code 1; click's usage errors keep exit code 2. ``--debug`` lets the exception through
with its traceback instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .. import __version__
from ..errors import AtdataLiteError

if TYPE_CHECKING:
    from ..index.api import Index

__all__ = ["AppState", "CliError", "cli", "json_option", "pass_state"]

F = TypeVar("F", bound=Callable[..., Any])

# Errors that come from the user's input or environment rather than from a bug: shown as one
# line. Anything else is a bug and says so.
_EXPECTED_ERRORS: tuple[type[BaseException], ...] = (AtdataLiteError, OSError)


class CliError(click.ClickException):
    """A failure explained in one line on stderr; exit code 1."""

    def __init__(self, message: str) -> None:
        from .._text import escape_control

        # One line, whatever the library's message looked like, and no control character
        # from a name or URL it quotes reaches the terminal raw.
        super().__init__(escape_control(" ".join(str(message).split())))


class AppState:
    """What the root command's options decided, shared with every sub-command.

    Attributes:
        index_location: ``--index`` (or ``$ATDATA_LITE_INDEX``), or ``None`` for the default.
        json: Whether to print JSON instead of tables.
        debug: Whether to show tracebacks.
    """

    def __init__(self, index_location: str | None, json: bool, debug: bool) -> None:
        self.index_location = index_location
        self.json = json
        self.debug = debug
        self._index: Index | None = None

    @property
    def display_location(self) -> str:
        """:attr:`location` for printing: any password in a URL is hidden."""
        from ._output import hide_password

        return hide_password(self.location)

    @property
    def location(self) -> str:
        """The index location in effect (the default one when none was given)."""
        if self.index_location:
            return self.index_location
        from ..config import default_index_location

        return default_index_location()

    def index(self, *, create: bool = False) -> Index:
        """Open the index once per command (closed when the command ends).

        Args:
            create: Whether a SQLite index that does not exist yet may be created. Only
                commands that write something (``demo``, ``add``) pass ``True``; the others
                refuse a path given with ``--index``/``$ATDATA_LITE_INDEX`` that holds nothing,
                rather than leaving an empty index behind a typo. The default location is
                created when needed, so a new user's first ``ls`` just shows no datasets.

        Raises:
            CliError: ``create`` is false and the given SQLite file does not exist.
        """
        if self._index is None:
            from ..index.api import Index

            if not create and self.index_location:
                path = _sqlite_path(self.index_location)
                if path is not None and not path.exists():
                    raise CliError(
                        f"No index at {path}: nothing is there. Check --index (or "
                        "$ATDATA_LITE_INDEX); 'atdata-lite add', 'demo' and 'import --into' "
                        "create an index."
                    )
            self._index = Index(self.location)
        return self._index

    def close(self) -> None:
        """Close the index if a command opened it."""
        if self._index is not None:
            index, self._index = self._index, None
            index.close()


def _sqlite_path(location: str) -> Path | None:
    """The file behind a SQLite location (a path or ``sqlite:///``), else ``None``."""
    from ..index._registry import url_scheme

    scheme = url_scheme(location)
    if scheme is None:
        return Path(location).expanduser()
    if scheme == "sqlite":
        from sqlalchemy.engine import make_url

        database = make_url(location).database
        return Path(database).expanduser() if database and database != ":memory:" else None
    return None


pass_state = click.make_pass_decorator(AppState)


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.find_object(AppState).json = True


def json_option(func: F) -> F:
    """``--json`` on a sub-command, the same as the global ``atdata-lite --json``."""
    return click.option(
        "--json",
        "json_",
        is_flag=True,
        expose_value=False,
        callback=_set_json,
        help="Print JSON for scripts instead of a table.",
    )(func)


class _ClickLogHandler(logging.Handler):
    """Send library log records (e.g. skipped unreadable rows) to stderr via click."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from .._text import escape_control

            message = escape_control(self.format(record))
            click.echo(f"{record.levelname.lower()}: {message}", err=True)
        except Exception:  # pragma: no cover - logging must never break a command
            self.handleError(record)


def _configure_logging(debug: bool) -> None:
    logger = logging.getLogger("atdata_lite")
    if not any(isinstance(h, _ClickLogHandler) for h in logger.handlers):
        logger.addHandler(_ClickLogHandler())
    logger.setLevel(logging.DEBUG if debug else logging.WARNING)


class _App(click.Group):
    """The root group: turns expected exceptions into one-line errors."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except BrokenPipeError:
            # The reader went away (`atdata-lite ls | head`): stop quietly, like other tools.
            _silence_stdout()
            raise click.exceptions.Exit(1) from None
        except _EXPECTED_ERRORS as exc:
            if _debug(ctx):
                raise
            raise CliError(_describe(exc)) from exc
        except Exception as exc:
            if _debug(ctx):
                raise
            if _is_database_error(exc):
                # SQLite/SQLAlchemy errors the library did not map: the file or the server,
                # not our code, is the likely cause. Say so, and where to look.
                raise CliError(
                    f"the index {ctx.find_object(AppState).display_location} reported "
                    f"{type(exc).__name__}: {exc}. Run 'atdata-lite db check' to check the "
                    "index file (--debug shows the traceback)."
                ) from exc
            raise CliError(
                f"unexpected {type(exc).__name__}: {exc}. This is a bug in atdata-lite; "
                "rerun with --debug for the traceback and report it."
            ) from exc


def _is_database_error(exc: BaseException) -> bool:
    import sqlite3

    return isinstance(exc, sqlite3.DatabaseError) or type(exc).__module__.startswith("sqlalchemy")


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    import os
    import sys

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # not a real file descriptor (e.g. a test runner)
        pass


def _debug(ctx: click.Context) -> bool:
    state = ctx.find_object(AppState)
    return bool(state and state.debug)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, AtdataLiteError):
        return str(exc)
    if isinstance(exc, OSError) and exc.filename is not None:
        reason = exc.strerror or type(exc).__name__
        return f"{exc.filename}: {reason}. Check the path or URL and its permissions."
    return f"{type(exc).__name__}: {exc}"


@click.group(cls=_App, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--index",
    "index_location",
    metavar="URL_OR_PATH",
    envvar="ATDATA_LITE_INDEX",
    help="The index to use: a SQLite file path or a sqlite://, postgresql:// or redis:// URL. "
    "Default: $ATDATA_LITE_INDEX, else index.db in the user data directory.",
)
@click.option("--json", "json_", is_flag=True, help="Print JSON for scripts instead of tables.")
@click.option("--debug", is_flag=True, help="Show the traceback when a command fails.")
@click.version_option(
    __version__, "--version", prog_name="atdata-lite", message="%(prog)s %(version)s"
)
@click.pass_context
def cli(ctx: click.Context, index_location: str | None, json_: bool, debug: bool) -> None:
    """See, check and manage a local atdata-lite datastore.

    Start with `atdata-lite demo`, then `atdata-lite ls` and `atdata-lite show demo`.
    """
    _configure_logging(debug)
    state = AppState(index_location, json_, debug)
    ctx.obj = state
    ctx.call_on_close(state.close)
