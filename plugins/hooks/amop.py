"""Hook to the AMOP database: SQL Server on MWAA, PostgreSQL when given, embedded SQLite in local mode."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import DBAPIError

from include.carrier_optimization.amop.schema import create_schema, missing_tables
from include.carrier_optimization.amop.statuses import bind_status_ids
from include.carrier_optimization.amop.storage import make_engine, sqlite_url
from include.carrier_optimization.config.local_mode import ConnectionNotUsable, local_mode, missing_connection
from plugins.compat import AirflowNotFoundException, BaseHook

EMBEDDED_DB_ENV = "CARRIER_OPT_DB_URL"
MIGRATION_SCRIPT = "sql/mssql_migration.sql"


def embedded_database_url() -> str:
    """``$CARRIER_OPT_DB_URL``, else an SQLite file ``amop.sqlite`` in ``$AIRFLOW_HOME``."""
    if url := os.environ.get(EMBEDDED_DB_ENV):
        return url
    home = Path(os.environ.get("AIRFLOW_HOME", Path.home() / "airflow"))
    return sqlite_url(home / "amop.sqlite")


class AmopDatabaseHook(BaseHook):
    """Give library code a SQLAlchemy engine on the AMOP database.

    The Airflow connection decides the database: ``mssql`` (the existing AMOP tables), ``postgres`` or
    ``sqlite``. In local mode (``CARRIER_OPT_LOCAL_MODE=true``, see
    :mod:`include.carrier_optimization.config.local_mode`) a missing connection means the embedded default of
    :func:`embedded_database_url`, and the schema is created on ``postgres``/``sqlite`` if missing.
    Outside local mode no DDL runs: a missing connection, an unreachable database or missing tables
    fail with :class:`ConnectionNotUsable` naming the connection id. In both modes the run status ids
    are read by name from the ``OptimizationStatus`` lookup (:mod:`amop.statuses`).
    The engine is built on the first ``get_conn()`` and cached.

    :param amop_conn_id: Airflow connection id of the AMOP database (default ``amop_db``).
    """

    conn_name_attr = "amop_conn_id"
    default_conn_name = "amop_db"
    conn_type = "generic"
    hook_name = "AMOP database"

    def __init__(self, amop_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.amop_conn_id = amop_conn_id
        self.engine: Engine | None = None

    def get_conn(self) -> Engine:
        """Return the cached engine, building it (and, in local mode, the schema) on first use."""
        if self.engine is None:
            engine = self._build_engine()
            try:
                if local_mode():
                    if engine.dialect.name in ("sqlite", "postgresql"):
                        create_schema(engine)  # cached only once the schema exists
                elif missing := missing_tables(engine):
                    raise ConnectionNotUsable(
                        self.amop_conn_id,
                        "AMOP database",
                        f"lacks the tables {', '.join(missing)}: create them before running (SQL Server: "
                        f"{MIGRATION_SCRIPT}); nothing is created at task time outside local mode",
                    )
                self.log.info("Status ids of %s: %s", self.amop_conn_id, bind_status_ids(engine))
            except LookupError as error:
                raise ConnectionNotUsable(self.amop_conn_id, "AMOP database", str(error)) from error
            except DBAPIError as error:
                raise ConnectionNotUsable(
                    self.amop_conn_id, "AMOP database", f"cannot be used: {error.orig or error}"
                ) from error
            self.engine = engine
        return self.engine

    def _build_engine(self) -> Engine:
        conn = self._connection()
        if conn is None:
            self.log.info("Connection %s not defined: using the embedded database", self.amop_conn_id)
            return make_engine(embedded_database_url())
        if conn.conn_type == "mssql":
            # Imported here: only an mssql connection needs it (~60 modules at every DAG parse otherwise).
            from airflow.providers.microsoft.mssql.hooks.mssql import MsSqlHook

            mssql = MsSqlHook(mssql_conn_id=self.amop_conn_id)
            # get_uri() appends JSON extras pymssql rejects: give SQLAlchemy the DB-API connection.
            return create_engine("mssql+pymssql://", creator=mssql.get_conn, pool_pre_ping=True)
        if conn.conn_type in ("postgres", "postgresql"):
            url = URL.create(
                "postgresql+psycopg",
                username=conn.login or "postgres",
                password=conn.password or None,
                host=conn.host or "127.0.0.1",
                port=conn.port or 5432,
                database=conn.schema or "postgres",
            )
            return make_engine(url.render_as_string(hide_password=False), pool_pre_ping=True)
        if conn.conn_type == "sqlite":
            return make_engine(sqlite_url(conn.host))
        raise ValueError(
            f"Connection {self.amop_conn_id!r} has type {conn.conn_type!r}; use mssql, postgres or sqlite"
        )

    def _connection(self):
        """The Airflow connection; None only in local mode when it is not defined."""
        try:
            return self.get_connection(self.amop_conn_id)
        except AirflowNotFoundException:
            if local_mode():
                return None
            raise missing_connection(self.amop_conn_id, "AMOP database") from None
