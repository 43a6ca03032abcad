"""How the backend runs its Core statements: through SQLAlchemy, or straight on sqlite3.

The backend's logic is written once, against :class:`Executor`. Two implementations:

* :class:`EngineExecutor` runs the statements on SQLAlchemy connections (PostgreSQL, and
  in-memory SQLite);
* :class:`SqliteExecutor` (SQLite files) has SQLAlchemy compile each Core statement once for
  the SQLite dialect, with its type processors, and runs the compiled SQL on one ``sqlite3``
  connection per thread, configured by the same function as the engine's connections
  (:func:`.engine.configure_sqlite_connection`). Why: SQLAlchemy's per-execution machinery
  (pool checkout, events, execution context, result object) costs several times a whole
  SQLite point lookup, and a lookup by name must stay within 2x of raw ``sqlite3`` (it is the
  call every dataset load makes; ``benchmarks/index.py`` checks the ratio). The SQL is still
  SQLAlchemy's, generated from the tables in :mod:`.tables`, never written by hand.

Writes run in a transaction: ``BEGIN IMMEDIATE`` on SQLite (the write lock is taken before
the first read, so check-then-write sequences are serialised between processes).
"""

from __future__ import annotations

import abc
import contextlib
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.sql.compiler import SQLCompiler

from ..._log import get_logger
from ._faults import translate
from ._pgread import DriverReads
from ._postgres import ReplyTimeout
from .engine import FORK, WRITE, configure_sqlite_connection, connect_read_only

__all__ = ["EngineExecutor", "Executor", "IntegrityErrors", "SqliteExecutor", "Writer"]

log = get_logger(__name__)

#: What a unique-constraint violation raises, whichever executor ran the statement.
IntegrityErrors = (sa.exc.IntegrityError, sqlite3.IntegrityError)

Row = Sequence[Any]
Converter = Callable[[Row], Row]


def same_row(row: Row) -> Row:
    return row


class Writer(abc.ABC):
    """The statements of one write transaction, as :meth:`Executor.write` yields it.

    A writer is valid only inside its ``with executor.write()`` block, on the thread that
    opened it; everything it runs commits together when the block ends, or not at all.
    """

    @abc.abstractmethod
    def rows(self, stmt: sa.Executable, params: dict[str, Any]) -> list[Row]:
        """Run a SELECT inside the transaction.

        Args:
            stmt: A Core SELECT built from :mod:`.tables`.
            params: Its bound parameter values, by name.

        Returns:
            Its rows, with the column types converted (timestamps are aware, in UTC).
        """

    @abc.abstractmethod
    def execute(self, stmt: sa.Executable, params: dict[str, Any] | list[dict[str, Any]]) -> None:
        """Run a statement once, or once per parameter set.

        Args:
            stmt: A Core INSERT, UPDATE or DELETE built from :mod:`.tables`.
            params: One parameter set, or a list of them (an empty list runs nothing).

        Raises:
            sqlalchemy.exc.IntegrityError | sqlite3.IntegrityError: A constraint is violated
                (catch :data:`IntegrityErrors`); the transaction is then unusable unless the
                statement ran inside :meth:`savepoint`.
        """

    @abc.abstractmethod
    def insert_ids(self, table: sa.Table, rows: list[dict[str, Any]]) -> list[int]:
        """Insert ``rows`` into ``table``, which has an integer ``id`` primary key.

        Args:
            table: The table.
            rows: The rows, without ``id``.

        Returns:
            The new ``id`` of each row, in the order of ``rows``.

        Raises:
            sqlalchemy.exc.IntegrityError | sqlite3.IntegrityError: A constraint is violated.
        """

    @abc.abstractmethod
    def savepoint(self) -> AbstractContextManager[None]:
        """A nested transaction: what runs inside is undone if it raises; the rest stays.

        Returns:
            A context manager; the exception that undid the block propagates.
        """


class Executor(abc.ABC):
    """Runs reads (autocommit, one statement each) and write transactions for one database.

    An executor is shared by every thread of the backend that owns it, and stays usable in a
    child process after ``os.fork`` (it opens new connections there). The backend owns it and
    closes it once, from :meth:`close`.
    """

    @abc.abstractmethod
    def read(self, stmt: sa.Executable, params: dict[str, Any] | None = None) -> list[Row]:
        """Run one SELECT outside any transaction.

        Args:
            stmt: A Core SELECT built from :mod:`.tables`.
            params: Its bound parameter values, by name (``None``: none).

        Returns:
            Its rows, with the column types converted.
        """

    @abc.abstractmethod
    def read_raw(
        self, stmt: sa.Executable, params: dict[str, Any] | None = None
    ) -> tuple[Iterable[Row], Converter]:
        """Rows as the driver returns them, and the function that converts one row.

        Joined rows repeat their parent's columns: the caller converts only the rows it
        uses (and skips, with a warning, one that cannot be converted).

        Args:
            stmt: A Core SELECT built from :mod:`.tables`.
            params: Its bound parameter values; ``None`` streams the rows instead of
                fetching them all.

        Returns:
            ``(rows, convert)``: the unconverted rows (an iterator when streamed), and the
            function that converts one of them (raising ``ValueError``/``TypeError`` on a
            value that cannot be converted).
        """

    def lookup(self, stmt: sa.Executable, name: str) -> Callable[[Any], Row | None]:
        """A function that runs ``stmt`` with its parameter ``name`` bound to its argument.

        For the point reads every entry lookup makes: an executor may prepare what it can
        once, so that a call costs the query. This default calls :meth:`read_raw`.

        Args:
            stmt: A Core SELECT built from :mod:`.tables` that finds one row at most, with
                the one parameter ``name`` (bound once or several times) besides values
                bound in the statement itself.
            name: The parameter's name.

        Returns:
            A function of the parameter's value returning the row, as :meth:`read_raw`
            returns rows (unconverted where the executor converts), or ``None``.
        """

        def row(value: Any) -> Row | None:
            rows = cast(list[Row], self.read_raw(stmt, {name: value})[0])
            return rows[0] if rows else None

        return row

    @abc.abstractmethod
    def write(self) -> AbstractContextManager[Writer]:
        """A write transaction: ``with executor.write() as w: ...``.

        Returns:
            A context manager yielding a :class:`Writer`. It commits when the block ends
            and rolls back when the block raises; on SQLite it takes the write lock first
            (``BEGIN IMMEDIATE``), so a check-then-write inside it is serialised between
            processes.

        Raises:
            sqlalchemy.exc.OperationalError | sqlite3.OperationalError: The database is
                locked for longer than the busy timeout, or cannot be written.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Close every connection this executor opened. The executor is unusable afterwards."""


# --- through SQLAlchemy ---------------------------------------------------------------------


class _EngineWriter(Writer):
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def rows(self, stmt: sa.Executable, params: dict[str, Any]) -> list[Row]:
        return [tuple(r) for r in self.conn.execute(stmt, params)]

    def execute(self, stmt: sa.Executable, params: dict[str, Any] | list[dict[str, Any]]) -> None:
        self.conn.execute(stmt, params)

    def insert_ids(self, table: sa.Table, rows: list[dict[str, Any]]) -> list[int]:
        stmt = sa.insert(table).returning(table.c.id, sort_by_parameter_order=True)
        return list(self.conn.execute(stmt, rows).scalars())

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        with self.conn.begin_nested():
            yield


class EngineExecutor(Executor):
    """Statements on SQLAlchemy connections from the engine's pool.

    ``serialize=True`` (in-memory SQLite: one connection, shared by every thread) runs one
    statement or transaction at a time and reads whole results instead of streaming them.

    ``translate_errors``, when set, maps a database error to the error to raise instead (or
    ``None`` to keep it): PostgreSQL turns a lost or timed-out connection into
    ``IndexUnreachableError`` this way.
    """

    translate_errors: Callable[[BaseException], BaseException | None] | None = None

    def __init__(
        self, engine: sa.Engine, *, serialize: bool = False, read_engine: sa.Engine | None = None
    ) -> None:
        self._write_engine = engine.execution_options(**{WRITE: True})
        self._read_engine = read_engine
        if read_engine is not None:
            engine = read_engine  # its own pool, every connection in autocommit
        elif engine.dialect.name == "postgresql":
            # Reads are single statements: autocommit spares each one the BEGIN and the
            # ROLLBACK on return to the pool, two of its three round trips.
            engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.engine = engine
        self._serial: threading.RLock | None = threading.RLock() if serialize else None
        # psycopg on an autocommit pool: reads skip SQLAlchemy's per-execution machinery
        # (see ._pgread).
        self._driver = (
            DriverReads(read_engine)
            if read_engine is not None and read_engine.dialect.driver == "psycopg"
            else None
        )

    def read(self, stmt: sa.Executable, params: dict[str, Any] | None = None) -> list[Row]:
        statement = self._driver.compiled(stmt) if self._driver is not None else None
        if statement is not None:
            assert self._driver is not None
            with self._translated():
                try:
                    return self._driver.rows(statement, params)
                except sa.exc.DBAPIError as exc:
                    if not _stale(exc):
                        raise
                log.debug("Retrying a read on a new connection: the pooled one was gone")
                return self._driver.rows(statement, params)
        with self._translated(), self._serialized():
            try:
                with self.engine.connect() as conn:
                    return [tuple(r) for r in conn.execute(stmt, params)]
            except sa.exc.DBAPIError as exc:
                if not _stale(exc):
                    raise
            # A pooled connection that died since its last use (the pool pings only those
            # that sat idle): a read is one autocommit statement, safe to run again once.
            log.debug("Retrying a read on a new connection: the pooled one was gone")
            with self.engine.connect() as conn:
                return [tuple(r) for r in conn.execute(stmt, params)]

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except sa.exc.DBAPIError as exc:
            error = self.translate_errors(exc) if self.translate_errors is not None else None
            if error is None:
                raise
            raise error from exc

    def read_raw(
        self, stmt: sa.Executable, params: dict[str, Any] | None = None
    ) -> tuple[Iterable[Row], Converter]:
        if params is not None or (
            self._driver is not None and self._driver.compiled(stmt) is not None
        ):
            # psycopg fetches a whole result anyway (a client-side cursor): nothing is
            # lost by reading it in one go, and the listing takes the driver path too.
            return self.read(stmt, params), same_row
        if self._serial is not None:
            with self._serial:
                return list(self._stream(stmt)), same_row
        return self._stream(stmt), same_row

    def _serialized(self) -> AbstractContextManager[Any]:
        return self._serial if self._serial is not None else contextlib.nullcontext()

    def _stream(self, stmt: sa.Executable) -> Iterator[Row]:
        # SQLAlchemy converts while fetching: a row it cannot convert (a timestamp mangled
        # by hand, say) raises here; skip it with a warning and go on.
        with self._translated(), contextlib.ExitStack() as stack:
            try:
                conn = stack.enter_context(self.engine.connect())
                result = conn.execute(stmt)
            except sa.exc.DBAPIError as exc:
                if not _stale(exc):
                    raise
                stack.close()  # as in read(): once, before any row was read
                conn = stack.enter_context(self.engine.connect())
                result = conn.execute(stmt)
            while True:
                try:
                    row = result.fetchone()
                except (ValueError, TypeError) as exc:
                    log.warning("Skipping an unreadable row: %s", exc)
                    continue
                if row is None:
                    return
                yield tuple(row)

    @contextmanager
    def write(self) -> Iterator[Writer]:
        with self._translated(), self._serialized(), self._write_engine.begin() as conn:
            yield _EngineWriter(conn)

    def close(self) -> None:
        self.engine.dispose()
        if self._read_engine is not None:
            self._read_engine.dispose()


def _stale(exc: sa.exc.DBAPIError) -> bool:
    """Whether ``exc`` says the connection was gone (not a silent server: never retried)."""
    return bool(exc.connection_invalidated) and not isinstance(exc.orig, ReplyTimeout)


# --- straight on sqlite3 --------------------------------------------------------------------


class _Compiled:
    """One statement compiled for SQLite, with its parameter order and type processors."""

    __slots__ = (
        "binds", "compiled", "constants", "expanding", "getter", "lists", "memo", "memo_sql",
        "processed", "results", "single", "sql",
    )  # fmt: skip

    def __init__(self, compiled: SQLCompiler, dialect: sa.Dialect) -> None:
        self.compiled = compiled
        self.sql = compiled.string
        self.expanding = any(b.expanding for b in compiled.binds.values())
        # (name, bind processor, value bound in the statement itself, e.g. LIMIT's)
        self.binds: list[tuple[str, Callable[[Any], Any] | None, Any]] = []
        for name in compiled.positiontup or ():
            bind = compiled.binds[name]
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if isinstance(bind.type, sa.LargeBinary):
                # SQLAlchemy wraps bytes in sqlite3.Binary (a memoryview); sqlite3 binds
                # bytes as the same BLOB, and skipping the wrapper is a call less per value.
                processor = None
            self.binds.append((name, processor, bind.effective_value))
        # Fast path when every parameter is given: one itemgetter, then only the processed
        # positions (timestamps) converted, each remembering its last value -- a bulk insert
        # stamps every row with the same time.
        names = [name for name, _, _ in self.binds]
        self.getter = itemgetter(*names) if len(names) > 1 else None
        self.processed = [(i, proc) for i, (_, proc, _) in enumerate(self.binds) if proc]
        # One parameter needing no conversion (a lookup by CID or name): read it straight.
        self.single = (
            names[0] if len(names) == 1 and not self.expanding and not self.processed else None
        )
        self.memo: list[tuple[Any, Any]] = [(_UNSET, None)] * len(self.processed)
        # Only lists bound, none converted: see _expanded.
        self.lists = (
            names
            if self.expanding
            and not self.processed
            and all(compiled.binds[name].expanding for name in names)
            else None
        )
        self.memo_sql: dict[tuple[int, ...], str] = {}
        # Values bound in the statement itself (LIMIT's, a literal compared with): when no
        # value needs converting, the caller's parameters are laid over them and read with
        # the one itemgetter, at C speed (a lookup by name binds the name three times).
        constants = {name: value for name, _, value in self.binds if value is not None}
        self.constants = (
            constants
            if constants and self.getter is not None and not self.processed and not self.expanding
            else None
        )
        # Result columns that need converting (timestamps on SQLite), by position.
        self.results: list[tuple[int, Callable[[Any], Any]]] = []
        as_utc = None  # one converter for all the row's timestamps: see _as_utc
        for i, col in enumerate(getattr(compiled.statement, "selected_columns", ())):
            result_proc = col.type.dialect_impl(dialect).result_processor(dialect, None)
            if result_proc is not None:
                if isinstance(col.type, sa.DateTime) and col.type.timezone:
                    as_utc = as_utc or _as_utc(result_proc)
                    result_proc = as_utc
                self.results.append((i, result_proc))

    def parameters(self, params: dict[str, Any]) -> tuple[str, Sequence[Any]]:
        if self.single is not None and self.single in params:
            return self.sql, (params[self.single],)
        if self.constants is not None:
            try:
                return self.sql, self.getter({**self.constants, **params})  # type: ignore[misc]
            except KeyError:  # a parameter not given: bound as NULL below, as before
                pass
        if self.expanding:
            return self._expanded(params)
        if self.getter is not None:
            try:
                values = list(self.getter(params))
            except KeyError:  # a value bound in the statement itself (LIMIT's, say)
                pass
            else:
                for k, (i, proc) in enumerate(self.processed):
                    value = values[i]
                    last = self.memo[k]
                    if last[0] is value:
                        values[i] = last[1]
                    else:
                        values[i] = converted = proc(value)
                        self.memo[k] = (value, converted)  # one assignment: thread-safe
                return self.sql, values
        values = []
        for name, bind_proc, default in self.binds:
            value = params.get(name, default)
            values.append(value if bind_proc is None else bind_proc(value))
        return self.sql, values

    def _expanded(self, params: dict[str, Any]) -> tuple[str, Sequence[Any]]:
        # Statements whose parameters are all lists (``IN (...)`` of names or CIDs, read in
        # chunks of one size): the SQL for those list lengths is expanded once, and the
        # values are the lists one after another, in the order the statement binds them.
        if self.lists:
            try:
                lists = [params[name] for name in self.lists]
            except KeyError:
                pass
            else:
                lengths = tuple(map(len, lists))
                sql = self.memo_sql.get(lengths)
                if sql is not None:
                    return sql, [value for values in lists for value in values]
                state = self.compiled.construct_expanded_state(params)
                if len(self.memo_sql) < 16:
                    self.memo_sql[lengths] = state.statement
                return state.statement, state.positional_parameters
        state = self.compiled.construct_expanded_state(params)
        return state.statement, state.positional_parameters

    def rows_with_ids(self, ids: Iterable[int], rows: Iterable[dict[str, Any]]) -> Iterator[Any]:
        """The parameters of an INSERT of ``rows`` (all with the same keys) under ``ids``.

        What :meth:`parameters` of ``{"id": id, **row}`` returns, without building that dict
        per row: the values read by one itemgetter, the id put in its place and the
        timestamps converted (each remembering its last value, as :meth:`parameters` does).
        """
        names = [name for name, _, _ in self.binds]
        at = names.index("id")
        getter = itemgetter(*(n for n in names if n != "id"))
        processed = [(i, proc, [_UNSET, None]) for i, (_, proc, _) in enumerate(self.binds) if proc]
        for did, row in zip(ids, rows, strict=True):
            values = list(getter(row))
            values.insert(at, did)
            for i, proc, last in processed:
                value = values[i]
                if last[0] is not value:
                    last[0], last[1] = value, proc(value)
                values[i] = last[1]
            yield values

    def convert(self, row: Row) -> Row:
        """Apply the type processors to one row (raises on a value that cannot convert)."""
        values = list(row)  # a list is a row too: callers only index it
        for i, processor in self.results:
            value = values[i]
            if value is not None:
                values[i] = processor(value)
        return values


_UNSET = object()


def _repeats(compiled: _Compiled, name: str) -> int:
    """How many times ``compiled`` binds ``name`` when it binds nothing else (a lookup by
    name binds it once per subquery), converted by no processor; else 0."""
    names = [n for n, _, _ in compiled.binds]
    if compiled.expanding or compiled.processed or not names or set(names) != {name}:
        return 0
    return len(names)


def _as_utc(processor: Callable[[Any], Any]) -> Callable[[Any], Any]:
    # SQLite keeps no time zone; the backend writes UTC, so what comes back is UTC. Parsing
    # SQLAlchemy's storage format with the offset appended is several times cheaper than
    # converting and then calling .replace(tzinfo=...). (Rows read and converted whole:
    # writers' reads, labels. Dataset rows are read unconverted and their timestamps parsed
    # by ._rows.read_row.) A row's timestamps are often the same string, so the last
    # conversion is remembered.
    parse = datetime.fromisoformat
    last: tuple[Any, Any] = (None, None)

    def convert(value: Any) -> Any:
        nonlocal last
        seen, result = last
        if value == seen:
            return result
        try:
            result = parse(value + "+00:00")
        except (TypeError, ValueError):  # another format: SQLAlchemy's own parser decides
            result = processor(value).replace(tzinfo=UTC)
        last = (value, result)  # one assignment: safe when threads share the statement
        return result

    return convert


class _Connection:
    """A thread's sqlite3 connection; closed when the thread (and so this object) goes."""

    __slots__ = ("__weakref__", "conn", "cursor")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        # The thread's cursor for point reads (SqliteExecutor.lookup), which end their
        # statement before they return: one cursor, instead of a new one per lookup.
        self.cursor = conn.cursor()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown, or already closed
            self.conn.close()


class _SqliteWriter(Writer):
    def __init__(self, executor: SqliteExecutor, conn: sqlite3.Connection) -> None:
        self.executor = executor
        self.conn = conn

    def rows(self, stmt: sa.Executable, params: dict[str, Any]) -> list[Row]:
        compiled = self.executor.compiled(stmt)
        sql, args = compiled.parameters(params)
        rows = self.conn.execute(sql, args).fetchall()
        return [compiled.convert(r) for r in rows] if compiled.results else rows

    def execute(self, stmt: sa.Executable, params: dict[str, Any] | list[dict[str, Any]]) -> None:
        if isinstance(params, dict):
            params = [params]
        if not params:
            return
        compiled = self.executor.compiled(stmt, tuple(params[0]))
        if compiled.expanding:
            for p in params:
                self.conn.execute(*compiled.parameters(p))
        elif compiled.getter is not None and not compiled.processed:
            # Nothing to convert (shard rows): the driver reads tuples made at C speed.
            self.conn.executemany(compiled.sql, map(compiled.getter, params))
        else:
            self.conn.executemany(compiled.sql, [compiled.parameters(p)[1] for p in params])

    def insert_ids(self, table: sa.Table, rows: list[dict[str, Any]]) -> list[int]:
        if not rows:
            return []
        # This transaction holds SQLite's write lock (BEGIN IMMEDIATE), so nobody else can
        # take ids meanwhile: number the rows ourselves and insert them in one executemany,
        # instead of one execute per row to learn each lastrowid.
        (start,) = self.rows(self.executor.max_id(table), {})[0]
        ids = range(start + 1, start + 1 + len(rows))
        compiled = self.executor.compiled(self.executor.inserts(table), ("id", *rows[0]))
        self.conn.executemany(compiled.sql, compiled.rows_with_ids(ids, rows))
        return list(ids)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        self.conn.execute("SAVEPOINT atdata_lite")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK TO atdata_lite")
            self.conn.execute("RELEASE atdata_lite")
            raise
        self.conn.execute("RELEASE atdata_lite")


class SqliteExecutor(Executor):
    """SQLAlchemy-compiled statements on one sqlite3 connection per thread.

    ``read_only=True`` opens every connection read-only (see
    :func:`.engine.connect_read_only`): no WAL switch, nothing written next to the file.
    A SQLite error about the file or the disk (damaged, full, read-only) is raised as the
    matching :mod:`atdata_lite.errors` class (see :mod:`._faults`).
    """

    def __init__(
        self, path: Path, dialect: sa.Dialect, *, busy_timeout: float, read_only: bool = False
    ) -> None:
        self.path = path
        self.read_only = read_only
        self.dialect = dialect
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._generation = FORK.generation
        self._connections: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._cache: dict[tuple[int, tuple[str, ...] | None], _Compiled] = {}
        self._reads: dict[int, _Compiled] = {}  # the same entries, for keys=None, by id()
        # Statements built here are cached too: the compiled cache is keyed by their id().
        self._inserts: dict[str, sa.Insert] = {}
        self._max_ids: dict[str, sa.Select[Any]] = {}
        self._closed = False

    # Compiled statements, cached by the statement's id(): the cache entry holds the
    # statement (compiled.statement), so the id cannot be reused while cached.
    def compiled(self, stmt: sa.Executable, keys: tuple[str, ...] | None = None) -> _Compiled:
        if keys is None:  # reads: one dict lookup on the hot path
            found = self._reads.get(id(stmt))
            if found is not None:
                return found
        cache_key = (id(stmt), keys if isinstance(stmt, sa.Insert) else None)
        found = self._cache.get(cache_key)
        if found is None:
            kwargs: dict[str, Any] = {}
            if cache_key[1] is not None:
                kwargs["column_keys"] = list(cache_key[1])
            # SQLAlchemy's Executable type lacks compile(), which every statement has.
            found = _Compiled(stmt.compile(dialect=self.dialect, **kwargs), self.dialect)  # type: ignore[attr-defined]
            self._cache[cache_key] = found
            if keys is None:
                self._reads[id(stmt)] = found
        return found

    def max_id(self, table: sa.Table) -> sa.Select[Any]:
        stmt = self._max_ids.get(table.name)
        if stmt is None:
            stmt = sa.select(sa.func.coalesce(sa.func.max(table.c.id), 0))
            self._max_ids[table.name] = stmt
        return stmt

    def inserts(self, table: sa.Table) -> sa.Insert:
        stmt = self._inserts.get(table.name)
        if stmt is None:
            stmt = self._inserts[table.name] = sa.insert(table)
        return stmt

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (opened and configured on first use)."""
        if self._generation != FORK.generation:
            self._forget_after_fork()
        holder = getattr(self._local, "holder", None)
        if holder is None:
            if self._closed:
                raise sqlite3.ProgrammingError("closed")
            if self.read_only:
                conn = connect_read_only(self.path, busy_timeout=self.busy_timeout)
            else:
                conn = sqlite3.connect(
                    self.path,
                    timeout=self.busy_timeout,
                    isolation_level=None,  # autocommit; writes BEGIN themselves
                    check_same_thread=False,  # close() may run on another thread
                )
            configure_sqlite_connection(
                conn, busy_timeout=self.busy_timeout, wal=not self.read_only
            )
            holder = self._local.holder = _Connection(conn)
            with self._lock:
                self._connections.add(holder)
        return holder.conn

    def _forget_after_fork(self) -> None:
        # The parent's connections must be neither used nor closed here (closing could
        # checkpoint or unlock the parent's database state): keep them referenced forever.
        _INHERITED.extend(self._connections)
        self._connections = weakref.WeakSet()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._generation = FORK.generation

    def _raise_fault(self, exc: BaseException) -> None:
        """Raise our error for ``exc`` if it is about the file or disk; else return."""
        translated = translate(self.path, exc)
        if translated is not None:
            raise translated from exc

    def read(self, stmt: sa.Executable, params: dict[str, Any] | None = None) -> list[Row]:
        compiled = self.compiled(stmt)
        sql, args = compiled.parameters(params or {})
        try:
            rows = self.connection().execute(sql, args).fetchall()
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            self._raise_fault(exc)
            raise
        return [compiled.convert(r) for r in rows] if compiled.results else rows

    def read_raw(
        self, stmt: sa.Executable, params: dict[str, Any] | None = None
    ) -> tuple[Iterable[Row], Converter]:
        # Every lookup of an entry comes here: the cached statement and this thread's
        # connection are read inline (compiled() and connection() are the slow paths).
        compiled = self._reads.get(id(stmt)) or self.compiled(stmt)
        convert = compiled.convert if compiled.results else same_row
        sql, args = compiled.parameters(params or {})
        if params is not None:
            holder = getattr(self._local, "holder", None)
            if holder is None or self._generation != FORK.generation:
                conn = self.connection()
            else:
                conn = holder.conn
            try:
                return conn.execute(sql, args).fetchall(), convert
            except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
                self._raise_fault(exc)
                raise
        return self._stream(sql, args), convert

    def lookup(self, stmt: sa.Executable, name: str) -> Callable[[Any], Row | None]:
        # One call per lookup: the SQL and the thread's cursor are at hand (compiled on the
        # first call, not when the index opens: a short-lived process pays for what it uses).
        # fetchone() reads the row and steps once more, which ends a one-row statement and
        # resets it: no read snapshot is left open on the thread's cursor.
        # (sql, how many times it binds ``name``, getter, constants): made whole, then
        # published in one assignment, so that a thread racing the first call sees either
        # nothing or all of it.
        plan: tuple[str, int, Callable[[dict[str, Any]], Any] | None, dict[str, Any]] | None
        plan = None

        def row(value: Any) -> Row | None:
            nonlocal plan
            if plan is None:
                plan = self._lookup_plan(stmt, name)
            sql, repeat, getter, constants = plan
            holder = getattr(self._local, "holder", None)
            if holder is None or self._generation != FORK.generation:
                self.connection()
                holder = self._local.holder
            try:
                if repeat == 1:
                    return holder.cursor.execute(sql, (value,)).fetchone()  # type: ignore[no-any-return]
                if repeat:
                    return holder.cursor.execute(sql, {name: value}).fetchone()  # type: ignore[no-any-return]
                if getter is not None:
                    args = getter({**constants, name: value})
                    return holder.cursor.execute(sql, args).fetchone()  # type: ignore[no-any-return]
                return holder.cursor.execute(  # type: ignore[no-any-return]
                    *self.compiled(stmt).parameters({name: value})
                ).fetchone()
            except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
                self._raise_fault(exc)
                raise

        return row

    def _lookup_plan(
        self, stmt: sa.Executable, name: str
    ) -> tuple[str, int, Callable[[dict[str, Any]], Any] | None, dict[str, Any]]:
        """How :meth:`lookup` runs ``stmt``: its SQL, how many times it binds ``name`` alone
        (0: it binds more), and the getter and constants of a statement whose other binds
        are all values written in it (else None and {})."""
        compiled = self.compiled(stmt)
        sql, repeat = compiled.sql, _repeats(compiled, name)
        if repeat > 1:
            # Bound once, by name, rather than once per subquery (SQLite copies every text
            # it is bound).
            named = type(self.dialect)(paramstyle="named")  # type: ignore[call-arg]
            sql = stmt.compile(dialect=named).string  # type: ignore[attr-defined]
        # Several binds, each ``name`` or a value in the statement: one dict and one
        # itemgetter per call.
        if compiled.constants is not None and all(
            n == name or n in compiled.constants for n, _, _ in compiled.binds
        ):
            return sql, repeat, compiled.getter, compiled.constants
        return sql, repeat, None, {}

    def _stream(self, sql: str, args: Sequence[Any]) -> Iterator[Row]:
        # A cursor of its own: the generator may be consumed while this thread does other
        # reads. Autocommit: the SELECT is one snapshot, released when the cursor ends.
        try:
            cursor = self.connection().execute(sql, args)
            try:
                yield from cursor
            finally:
                cursor.close()
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            self._raise_fault(exc)
            raise

    @contextmanager
    def write(self) -> Iterator[Writer]:
        try:
            conn = self.connection()
            conn.execute("BEGIN IMMEDIATE")
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            self._raise_fault(exc)
            raise
        try:
            yield _SqliteWriter(self, conn)
        except BaseException as exc:
            if conn.in_transaction:  # SQLite may have rolled back already (disk full...)
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            self._raise_fault(exc)
            raise
        try:
            conn.execute("COMMIT")
        except BaseException as exc:
            # A failed COMMIT (disk full, I/O error, a deferred constraint) leaves the
            # transaction open, holding the write lock: end it, or every later write here
            # fails and other writers wait out their busy timeout.
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            self._raise_fault(exc)
            raise

    def close(self) -> None:
        self._closed = True
        with self._lock:
            holders = list(self._connections)
            self._connections = weakref.WeakSet()
        for holder in holders:
            holder.conn.close()
        self._local = threading.local()


# Kept by _forget_after_fork: a parent's connections, never used nor closed in the child.
_INHERITED: list[_Connection] = []
