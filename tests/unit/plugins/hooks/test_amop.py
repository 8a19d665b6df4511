"""AmopDatabaseHook: lazy cached engine; embedded SQLite, real PostgreSQL, SQL Server dialect, bad types."""

from __future__ import annotations

import inspect
import json

import pytest
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import make_url, select
from sqlalchemy.exc import OperationalError

import plugins.hooks.amop as amop_module
from include.carrier_optimization.amop.schema import (
    OptimizationStatus,
    drop_schema,
    metadata,
    optimization_status,
)
from include.carrier_optimization.amop.storage import make_engine
from include.carrier_optimization.config.local_mode import LOCAL_MODE_ENV, ConnectionNotUsable
from plugins.compat import BaseHook
from plugins.hooks.amop import EMBEDDED_DB_ENV, AmopDatabaseHook, embedded_database_url
from tests.conftest import free_port, not_defined

CONN_ID = "amop_test"
CONN_ENV = "AIRFLOW_CONN_AMOP_TEST"
DEFAULT_ENV = "AIRFLOW_CONN_AMOP_DB"
TABLES = set(metadata.tables)


def _postgres_conn(url: str, **overrides) -> str:
    parsed = make_url(url)
    conn = {
        "conn_type": "postgres",
        "host": parsed.host,
        "port": parsed.port or 5432,
        "login": parsed.username,
        "schema": parsed.database,
    }
    if parsed.password:
        conn["password"] = parsed.password
    return json.dumps(conn | overrides)


def _schema_is_complete(engine) -> bool:
    present = set(sa_inspect(engine).get_table_names())
    with engine.connect() as conn:
        statuses = {row.Id: row.Name for row in conn.execute(select(optimization_status))}
    return TABLES <= present and statuses == {int(s): s.name for s in OptimizationStatus}


@pytest.fixture
def no_amop_connections(monkeypatch):
    monkeypatch.delenv(DEFAULT_ENV, raising=False)
    monkeypatch.delenv(CONN_ENV, raising=False)


@pytest.fixture
def embedded(no_amop_connections, monkeypatch, tmp_path):
    """No connection; the embedded database is an SQLite file in the test's folder."""
    path = tmp_path / "embedded.sqlite"
    monkeypatch.setenv(EMBEDDED_DB_ENV, f"sqlite:///{path}")
    return path


@pytest.fixture
def schema_calls(monkeypatch):
    """Record create_schema calls while still creating the schema."""
    calls = []
    original = amop_module.create_schema

    def recording(engine):
        calls.append(engine)
        return original(engine)

    monkeypatch.setattr(amop_module, "create_schema", recording)
    return calls


@pytest.fixture
def fresh_postgres(postgres_url):
    """The session's throwaway PostgreSQL database with no AMOP tables in it."""
    engine = make_engine(postgres_url)
    drop_schema(engine)
    assert not TABLES & set(sa_inspect(engine).get_table_names())
    yield postgres_url
    engine.dispose()


class TestConstruction:
    def test_constructor_takes_only_the_connection_id(self):
        params = list(inspect.signature(AmopDatabaseHook.__init__).parameters)
        assert params == ["self", "amop_conn_id", "kwargs"]
        assert AmopDatabaseHook.default_conn_name == "amop_db"
        assert AmopDatabaseHook.conn_name_attr == "amop_conn_id"
        assert AmopDatabaseHook().amop_conn_id == "amop_db"

    def test_no_engine_and_no_lookup_after_construction(self, monkeypatch):
        lookups = []

        def recording(cls, conn_id):
            lookups.append(conn_id)
            raise AssertionError("no connection lookup expected")

        monkeypatch.setattr(BaseHook, "get_connection", classmethod(recording))
        hook = AmopDatabaseHook(amop_conn_id=CONN_ID)
        assert hook.engine is None and lookups == []


class TestEmbeddedDatabaseUrl:
    def test_env_url_wins(self, monkeypatch):
        monkeypatch.setenv(EMBEDDED_DB_ENV, "postgresql://u@h/db")
        assert embedded_database_url() == "postgresql://u@h/db"

    def test_sqlite_file_in_airflow_home(self, monkeypatch, tmp_path):
        monkeypatch.delenv(EMBEDDED_DB_ENV, raising=False)
        monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
        assert embedded_database_url() == f"sqlite:///{tmp_path.resolve() / 'amop.sqlite'}"

    def test_home_airflow_without_airflow_home(self, monkeypatch, tmp_path):
        monkeypatch.delenv(EMBEDDED_DB_ENV, raising=False)
        monkeypatch.delenv("AIRFLOW_HOME", raising=False)
        monkeypatch.setenv("HOME", str(tmp_path))
        assert embedded_database_url() == f"sqlite:///{tmp_path.resolve() / 'airflow' / 'amop.sqlite'}"

    def test_empty_env_falls_back(self, monkeypatch, tmp_path):
        monkeypatch.setenv(EMBEDDED_DB_ENV, "")
        monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
        assert embedded_database_url().endswith("/amop.sqlite")


class TestEmbedded:
    def test_get_conn_is_cached(self, embedded):
        hook = AmopDatabaseHook()
        engine = hook.get_conn()
        assert hook.get_conn() is engine and hook.engine is engine

    def test_schema_created_in_the_env_database(self, embedded, schema_calls):
        engine = AmopDatabaseHook().get_conn()
        assert engine.dialect.name == "sqlite"
        assert make_url(str(engine.url)).database == str(embedded)
        assert embedded.is_file()
        assert _schema_is_complete(make_engine(f"sqlite:///{embedded}"))
        assert schema_calls == [engine]

    def test_schema_created_once_per_hook(self, embedded, schema_calls):
        hook = AmopDatabaseHook()
        hook.get_conn()
        hook.get_conn()
        assert len(schema_calls) == 1

    def test_sqlite_under_airflow_home(self, no_amop_connections, monkeypatch, tmp_path):
        monkeypatch.delenv(EMBEDDED_DB_ENV, raising=False)
        monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
        engine = AmopDatabaseHook().get_conn()
        assert (tmp_path / "amop.sqlite").is_file()
        assert _schema_is_complete(engine)

    def test_logs_the_fallback(self, embedded, hook_logs):
        AmopDatabaseHook(amop_conn_id=CONN_ID).get_conn()
        assert {
            "event": f"Connection {CONN_ID} not defined: using the embedded database",
            "log_level": "info",
        } in (hook_logs)

    def test_sqlite_connection(self, monkeypatch, tmp_path):
        path = tmp_path / "conn.sqlite"
        monkeypatch.setenv(CONN_ENV, json.dumps({"conn_type": "sqlite", "host": str(path)}))
        engine = AmopDatabaseHook(amop_conn_id=CONN_ID).get_conn()
        assert engine.dialect.name == "sqlite" and make_url(str(engine.url)).database == str(path.resolve())
        assert _schema_is_complete(engine)


class TestPostgres:
    @pytest.mark.parametrize("conn_type", ["postgres", "postgresql"])
    def test_connection_builds_the_schema_on_the_real_database(
        self, monkeypatch, fresh_postgres, conn_type, schema_calls
    ):
        monkeypatch.setenv(CONN_ENV, _postgres_conn(fresh_postgres, conn_type=conn_type))
        hook = AmopDatabaseHook(amop_conn_id=CONN_ID)
        engine = hook.get_conn()
        try:
            expected = make_url(fresh_postgres)
            assert engine.dialect.name == "postgresql" and engine.driver == "psycopg"
            assert (engine.url.host, engine.url.port, engine.url.database) == (
                expected.host,
                expected.port or 5432,
                expected.database,
            )
            assert engine.pool._pre_ping is True
            assert schema_calls == [engine]
            assert _schema_is_complete(engine)
            assert hook.get_conn() is engine
        finally:
            engine.dispose()

    def test_defaults_port_login_and_database(self, monkeypatch, fresh_postgres):
        # Only the host is given: port 5432, login postgres, database postgres.
        host = make_url(fresh_postgres).host
        monkeypatch.setenv(CONN_ENV, json.dumps({"conn_type": "postgres", "host": host}))
        hook = AmopDatabaseHook(amop_conn_id=CONN_ID)
        monkeypatch.setattr(amop_module, "create_schema", lambda engine: None)  # not on the admin database
        monkeypatch.setattr(amop_module, "bind_status_ids", lambda engine: {})
        engine = hook.get_conn()
        assert (engine.url.username, engine.url.port, engine.url.database) == ("postgres", 5432, "postgres")

    def test_password_with_url_characters(self, monkeypatch, fresh_postgres):
        # The local server trusts 127.0.0.1, so any password is accepted once it reaches the server.
        monkeypatch.setenv(CONN_ENV, _postgres_conn(fresh_postgres, password="p@ss/w:rd"))
        engine = AmopDatabaseHook(amop_conn_id=CONN_ID).get_conn()
        try:
            assert engine.url.password == "p@ss/w:rd"
            assert _schema_is_complete(engine)
        finally:
            engine.dispose()

    def test_failed_schema_creation_is_not_cached(self, monkeypatch):
        port = free_port()  # nothing listens here
        monkeypatch.setenv(
            CONN_ENV, json.dumps({"conn_type": "postgres", "host": "127.0.0.1", "port": port, "login": "x"})
        )
        hook = AmopDatabaseHook(amop_conn_id=CONN_ID)
        with pytest.raises(ConnectionNotUsable, match=rf"^Connection '{CONN_ID}' \(AMOP database\) cannot"):
            hook.get_conn()
        with pytest.raises(ConnectionNotUsable) as raised:
            hook.get_conn()  # still unreachable: must fail again, not hand out a schema-less engine
        assert isinstance(raised.value.__cause__, OperationalError) and hook.engine is None


class TestMsSql:
    @pytest.fixture(autouse=True)
    def _mssql_connection(self, monkeypatch):
        self.status_reads = []  # the status lookup read (stubbed: no SQL Server here)
        monkeypatch.setattr(amop_module, "bind_status_ids", lambda engine: self.status_reads.append(engine))
        self.port = free_port()  # nothing listens: connecting would fail loudly
        monkeypatch.setenv(
            CONN_ENV,
            json.dumps(
                {
                    "conn_type": "mssql",
                    "host": "127.0.0.1",
                    "port": self.port,
                    "login": "sa",
                    "password": "secret-pw",
                    "schema": "AMOP",
                }
            ),
        )

    def test_engine_uses_the_pymssql_dialect(self, schema_calls):
        engine = AmopDatabaseHook(amop_conn_id=CONN_ID).get_conn()
        assert engine.dialect.name == "mssql" and engine.driver == "pymssql"
        assert engine.pool._pre_ping is True
        assert schema_calls == []

    def test_creator_is_the_mssql_hooks_get_conn(self):
        from airflow.providers.microsoft.mssql.hooks.mssql import MsSqlHook

        creator = AmopDatabaseHook(amop_conn_id=CONN_ID).get_conn().pool._creator
        assert inspect.ismethod(creator)
        assert creator.__func__ is MsSqlHook.get_conn
        assert isinstance(creator.__self__, MsSqlHook)
        assert creator.__self__.mssql_conn_id == CONN_ID

    def test_no_schema_is_created_only_the_status_lookup_is_read(self, schema_calls, monkeypatch):
        from airflow.providers.microsoft.mssql.hooks.mssql import MsSqlHook

        connects = []
        monkeypatch.setattr(MsSqlHook, "get_conn", lambda self: connects.append(self) or 1 / 0)
        hook = AmopDatabaseHook(amop_conn_id=CONN_ID)
        engine = hook.get_conn()
        assert schema_calls == [] and connects == [] and self.status_reads == [engine]
        assert hook.get_conn() is engine and self.status_reads == [engine]

    def test_unreachable_server_names_the_connection(self, monkeypatch):
        from include.carrier_optimization.amop.statuses import bind_status_ids

        monkeypatch.setattr(amop_module, "bind_status_ids", bind_status_ids)  # the real lookup read
        hook = AmopDatabaseHook(amop_conn_id=CONN_ID)
        with pytest.raises(ConnectionNotUsable, match=rf"^Connection '{CONN_ID}' \(AMOP database\) cannot"):
            hook.get_conn()
        assert hook.engine is None


class TestUnknownType:
    @pytest.mark.parametrize("conn_type", ["http", "mysql", "generic"])
    def test_names_the_connection_and_the_types(self, monkeypatch, conn_type):
        monkeypatch.setenv(CONN_ENV, json.dumps({"conn_type": conn_type, "host": "db.example"}))
        hook = AmopDatabaseHook(amop_conn_id=CONN_ID)
        with pytest.raises(
            ValueError,
            match=rf"^Connection '{CONN_ID}' has type '{conn_type}'; use mssql, postgres or sqlite$",
        ):
            hook.get_conn()
        assert hook.engine is None


@pytest.mark.usefixtures("production_mode")
class TestProductionMode:
    """``CARRIER_OPT_LOCAL_MODE`` off: no embedded fallback, no DDL, errors name the connection."""

    def test_missing_connection_fails_naming_it(self, embedded, schema_calls):
        hook = AmopDatabaseHook(amop_conn_id=CONN_ID)
        with pytest.raises(ConnectionNotUsable, match=not_defined(CONN_ID, "AMOP database")):
            hook.get_conn()
        assert not embedded.exists() and schema_calls == [] and hook.engine is None

    def test_typo_in_the_flag_is_an_error(self, embedded, monkeypatch):
        monkeypatch.setenv(LOCAL_MODE_ENV, "ture")
        with pytest.raises(ValueError, match=rf"^{LOCAL_MODE_ENV}='ture' is not a boolean"):
            AmopDatabaseHook(amop_conn_id=CONN_ID).get_conn()
        assert not embedded.exists()

    def test_empty_database_is_refused_without_ddl(self, monkeypatch, tmp_path, schema_calls):
        path = tmp_path / "prod.sqlite"
        monkeypatch.setenv(CONN_ENV, json.dumps({"conn_type": "sqlite", "host": str(path)}))
        hook = AmopDatabaseHook(amop_conn_id=CONN_ID)
        with pytest.raises(
            ConnectionNotUsable, match=r"lacks the tables .*OptimizationQueue.*mssql_migration"
        ):
            hook.get_conn()
        assert schema_calls == [] and sa_inspect(make_engine(f"sqlite:///{path}")).get_table_names() == []

    def test_complete_schema_is_used_as_is(self, monkeypatch, tmp_path, schema_calls):
        from include.carrier_optimization.amop.schema import create_schema

        path = tmp_path / "prod.sqlite"
        create_schema(make_engine(f"sqlite:///{path}"))
        monkeypatch.setenv(CONN_ENV, json.dumps({"conn_type": "sqlite", "host": str(path)}))
        engine = AmopDatabaseHook(amop_conn_id=CONN_ID).get_conn()
        assert engine.dialect.name == "sqlite" and schema_calls == []
        assert _schema_is_complete(engine)

    def test_unreachable_database_names_the_connection(self, monkeypatch):
        monkeypatch.setenv(
            CONN_ENV, json.dumps({"conn_type": "postgres", "host": "127.0.0.1", "port": free_port()})
        )
        with pytest.raises(ConnectionNotUsable, match=rf"^Connection '{CONN_ID}' \(AMOP database\) cannot"):
            AmopDatabaseHook(amop_conn_id=CONN_ID).get_conn()
