"""The root ``atdata-lite`` command: global options, shared state, and error handling.

Errors: any :class:`~atdata_lite.errors.AtdataLiteError` (and the few OS errors a path or
URL can cause) becomes one line on stderr, ``Error: <what went wrong and what to do>``, and
exit code 1; click's usage errors keep exit code 2. ``--debug`` lets the exception through
with its traceback instead.

The library's messages give advice in Python (``Pass on_conflict='replace'``). On the
command line that advice is translated into the running command's flags
(``--on-conflict replace``) by :func:`cli_advice`, which reads the command's own click
options, so the translation follows the options as they are declared.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .. import __version__
from ..errors import AtdataLiteError, OperationCancelled

if TYPE_CHECKING:
    from ..index.api import Index

__all__ = ["AppState", "CliError", "cli", "cli_advice", "json_option", "pass_state", "wide_option"]

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
        wide: Whether tables print full values instead of fitting the terminal.
    """

    def __init__(
        self, index_location: str | None, json: bool, debug: bool, wide: bool = False
    ) -> None:
        self.index_location = index_location
        self.json = json
        self.debug = debug
        self.wide = wide
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


def _set_wide(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.find_object(AppState).wide = True


def wide_option(func: F) -> F:
    """``--wide`` on a table command: print every value in full, however wide the table."""
    return click.option(
        "--wide",
        "wide_",
        is_flag=True,
        expose_value=False,
        callback=_set_wide,
        help="Print full values (paths, URLs) even when the table is wider than the terminal.",
    )(func)


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


# Python-API advice that has a command of its own on the command line.
_METHOD_COMMANDS = {
    "rename_dataset": "atdata-lite mv",
    "delete_dataset": "atdata-lite rm",
    "publish_schema": "atdata-lite schema publish",
}

# `keyword=value`, optionally followed by `or 'other'` alternatives, as library messages
# write them: on_conflict='replace' or 'skip', overwrite=True, schema_ref=.
_KEYWORD = re.compile(
    r"\b(?P<kw>[a-z_][a-z0-9_]*)="
    r"(?P<val>'[^']*'|\"[^\"]*\"|True|False|None|[A-Za-z0-9_.+-]+)?"
    r"(?P<alts>(?:,?\s+or\s+(?:'[^']*'|\"[^\"]*\"))*)"
)
_COMMAND_KEY = "atdata_lite.command"


def _flag_names(command: click.Command | None) -> dict[str, click.Option]:
    """``{python keyword: option}`` for the options of ``command`` (``on_conflict`` ->
    ``--on-conflict``); an option's keyword is its click parameter name."""
    if command is None:
        return {}
    return {p.name: p for p in command.params if isinstance(p, click.Option) and p.name}


def _long_flag(option: click.Option) -> str:
    longs = [o for o in option.opts if o.startswith("--")]
    return max(longs, key=len) if longs else option.opts[0]


def cli_advice(message: str, command: click.Command | None) -> str:
    """Rewrite a library message's Python advice into the flags of ``command``.

    ``Pass on_conflict='replace' or 'skip'`` becomes ``Pass --on-conflict replace or
    skip`` for ``atdata-lite add``; ``overwrite=True`` becomes ``--overwrite``; a keyword
    the command has no option for is left as it is. Method names with a command of their
    own become that command (``rename_dataset`` -> ``atdata-lite mv``).

    Args:
        message: The library's message.
        command: The click command that was running (its options decide the flags).

    Returns:
        The message as a command-line user should read it.
    """
    flags = _flag_names(command)

    def replace(match: re.Match[str]) -> str:
        option = flags.get(match["kw"])
        if option is None:
            return match[0]
        flag = _long_flag(option)
        value = match["val"]
        if option.is_flag:
            if value == "False" and option.secondary_opts:
                return option.secondary_opts[0]
            return flag
        if value is None or value == "None":
            return flag
        alts = re.sub(r"""['"]""", "", match["alts"] or "")
        return f"{flag} {value.strip(chr(39) + chr(34))}{alts}"

    message = _KEYWORD.sub(replace, message)
    for method, command_line in _METHOD_COMMANDS.items():
        message = re.sub(rf"\b{method}\b(\(\))?", command_line, message)
    return message


class _Command(click.Command):
    """A command that tells the root group it is the one running (for :func:`cli_advice`)."""

    def invoke(self, ctx: click.Context) -> Any:
        ctx.meta[_COMMAND_KEY] = self
        return super().invoke(ctx)


class _Group(click.Group):
    """A sub-group (``schema``, ``db``) whose commands are :class:`_Command` s."""

    command_class = _Command


class _App(click.Group):
    """The root group: turns expected exceptions into one-line errors."""

    command_class = _Command
    group_class = _Group

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except OperationCancelled as exc:
            # Ctrl-C (or a cancel) went through the library's path: say what was kept.
            click.echo(str(exc), err=True)
            raise click.exceptions.Exit(130) from None
        except BrokenPipeError:
            # The reader went away (`atdata-lite ls | head`): stop quietly, like other tools.
            _silence_stdout()
            raise click.exceptions.Exit(1) from None
        except _EXPECTED_ERRORS as exc:
            if _debug(ctx):
                raise
            raise CliError(cli_advice(_describe(exc), ctx.meta.get(_COMMAND_KEY))) from exc
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
@click.option(
    "--wide",
    is_flag=True,
    help="Print full values in tables instead of fitting them to the terminal.",
)
@click.version_option(
    __version__, "--version", prog_name="atdata-lite", message="%(prog)s %(version)s"
)
@click.pass_context
def cli(
    ctx: click.Context, index_location: str | None, json_: bool, debug: bool, wide: bool
) -> None:
    """See, check and manage a local atdata-lite datastore.

    Start with `atdata-lite demo`, then `atdata-lite ls` and `atdata-lite show demo`.
    Every command has --help with an example.

    Example:

    \b
        atdata-lite demo
        atdata-lite ls
        atdata-lite --index team.db show photos
    """
    _configure_logging(debug)
    state = AppState(index_location, json_, debug, wide)
    ctx.obj = state
    ctx.call_on_close(state.close)
