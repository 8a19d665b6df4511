"""Fixtures of the plugin tests."""

from __future__ import annotations

import datetime as dt

import pytest

from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.repository import AmopRepository
from include.carrier_optimization.amop.storage import make_engine
from include.carrier_optimization.core.fleet import TenantSpec, generate_fleet


@pytest.fixture
def local_amop(monkeypatch, tmp_path):
    """Factory ``(tenant, devices, seed)`` → engine of an embedded SQLite AMOP database with a fleet.

    No connection of the package is defined: the hooks use this database and the outbox in ``tmp_path``.
    """
    engines = []

    def make(tenant: TenantSpec, devices: int, seed: int):
        for name in ("AIRFLOW_CONN_AMOP_DB", "AIRFLOW_CONN_AMOP_API", "AIRFLOW_CONN_SMTP_NOTIFICATIONS"):
            monkeypatch.delenv(name, raising=False)
        url = f"sqlite:///{tmp_path / 'amop.sqlite'}"
        monkeypatch.setenv("CARRIER_OPT_DB_URL", url)
        monkeypatch.setenv("CARRIER_OPT_OUTBOX", str(tmp_path / "outbox"))
        engine = make_engine(url)
        engines.append(engine)
        s.create_schema(engine)
        end = (dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(days=3)).replace(microsecond=0)
        AmopRepository(engine).write_fleet(generate_fleet(devices, seed=seed, tenant=tenant, period_end=end))
        return engine

    yield make
    for engine in engines:
        engine.dispose()
