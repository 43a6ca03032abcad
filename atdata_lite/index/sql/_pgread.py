"""PostgreSQL reads straight on the pooled psycopg connection: one round trip, little else.

A lookup on PostgreSQL is one ``SELECT``; on loopback the server answers in about a tenth
of a millisecond, and SQLAlchemy's per-execution machinery (a ``Connection``, an execution
context, a result object) costs about as much again. :class:`DriverReads` takes a
connection from the pool of the backend's read engine (an engine of its own, in autocommit,
so the pool's checks, the reply bound of :mod:`._postgres` and fork safety all apply), runs
SQLAlchemy's compiled SQL for the statement on a psycopg cursor, and hands the pool the
connection back.

Round trips per lookup: one (Bind/Execute/Sync of a statement psycopg has prepared after its
fifth run; Parse/Bind/Describe/Execute/Sync before that). No ``BEGIN``, no ``ROLLBACK``, no
version check, no ping unless the pooled connection sat idle (see
:func:`._postgres.install_idle_ping`). ``tests/test_sql_pg_roundtrips.py`` counts them with
libpq's protocol trace.

Statements this cannot run as they are (an expanding ``IN``, a value that needs a bind
processor) go through SQLAlchemy as before: :meth:`DriverReads.compiled` returns ``None``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

__all__ = ["DriverReads"]


class _Statement:
    __slots__ = ("defaults", "sql")

    def __init__(self, sql: str, defaults: dict[str, Any]) -> None:
        self.sql = sql
        self.defaults = defaults


class DriverReads:
    """Runs read statements on the pooled connections of a PostgreSQL (psycopg) engine
    created with ``isolation_level="AUTOCOMMIT"`` (every connection in autocommit: no
    ``BEGIN`` before a statement, no ``ROLLBACK`` after it)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect
        self._cache: dict[int, tuple[sa.Executable, _Statement | None]] = {}

    def compiled(self, stmt: sa.Executable) -> _Statement | None:
        """The SQL and default parameters of ``stmt``, or ``None`` if it needs SQLAlchemy."""
        cached = self._cache.get(id(stmt))
        if cached is not None:
            return cached[1]
        # SQLAlchemy's Executable type lacks compile(), which every statement has.
        compiled = stmt.compile(dialect=self.dialect)  # type: ignore[attr-defined]
        simple = not any(
            b.expanding or b.type.dialect_impl(self.dialect).bind_processor(self.dialect)
            for b in compiled.binds.values()
        ) and not any(
            c.type.dialect_impl(self.dialect).result_processor(self.dialect, None)
            for c in getattr(stmt, "selected_columns", ())
        )
        entry = _Statement(compiled.string, dict(compiled.params)) if simple else None
        # The entry holds the statement: the cache is keyed by its id(), which must not be
        # reused while cached. One assignment: safe when threads race to fill it.
        self._cache[id(stmt)] = (stmt, entry)
        return entry

    def rows(self, statement: _Statement, params: dict[str, Any] | None) -> list[Any]:
        """Run ``statement`` in autocommit on a pooled connection; its rows as tuples.

        Raises:
            sqlalchemy.exc.DBAPIError: What SQLAlchemy would have raised for the driver's
                error (``connection_invalidated`` set when the connection was lost; the
                pool then drops it).
        """
        values = {**statement.defaults, **params} if params else statement.defaults
        fairy = self.engine.raw_connection()
        conn: Any = fairy.driver_connection
        try:
            with conn.cursor() as cursor:
                cursor.execute(statement.sql, values)
                rows: list[Any] = cursor.fetchall()
                return rows
        except self.dialect.loaded_dbapi.Error as exc:
            lost = self.dialect.is_disconnect(exc, conn, None)
            if lost:
                fairy.invalidate(exc)
            raise sa.exc.DBAPIError.instance(
                statement.sql,
                values,
                exc,
                self.dialect.loaded_dbapi.Error,
                connection_invalidated=lost,
                dialect=self.dialect,
            ) from exc
        finally:
            fairy.close()
