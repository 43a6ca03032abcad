"""Alembic environment for the atdata-lite index.

atdata-lite builds the Alembic ``Config`` in code
(:func:`atdata_lite.index.sql.migrate.alembic_config`) and passes the connection to migrate in
``config.attributes["connection"]``, inside a transaction it owns. Run by hand
(``alembic -x url=sqlite:///index.db ...``), this file connects to that URL (or
``sqlalchemy.url``) itself.

Only ``target_metadata`` comes from the live tables (for ``alembic check`` / autogenerate);
the migration scripts in ``versions/`` freeze what they need and never import them.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, NullPool, create_engine

from atdata_lite.index.sql.tables import VERSION_TABLE, metadata

config = context.config


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        compare_type=True,
        **kwargs,
    )


def _run(connection: Connection) -> None:
    # SQLite can alter almost nothing in place: batch mode rebuilds the table (copy, drop,
    # rename). The caller turns foreign keys off first, or the drop would cascade.
    _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    return context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )


if context.is_offline_mode():
    url = _url()
    _configure(url=url, literal_binds=True, render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()
else:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
    else:
        engine = create_engine(_url(), poolclass=NullPool)
        with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
                conn.commit()
            _run(conn)
            conn.commit()
