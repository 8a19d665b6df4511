"""Fixtures of the operator tests: no package connection defined, an embedded AMOP database."""

from __future__ import annotations

import pytest

from include.carrier_optimization.core.fleet import TenantSpec

#: The tenant of the optimization step tests' fleet.
TENANT = TenantSpec(tenant_id=5, name="unit", service_provider_id=501)


@pytest.fixture
def no_connections(monkeypatch, tmp_path):
    """No Airflow connection of the package defined; embedded database and outbox in ``tmp_path``."""
    for name in ("AIRFLOW_CONN_AMOP_DB", "AIRFLOW_CONN_AMOP_API", "AIRFLOW_CONN_SMTP_NOTIFICATIONS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_REDIS_DEFAULT", raising=False)
    url = f"sqlite:///{tmp_path / 'amop.sqlite'}"
    monkeypatch.setenv("CARRIER_OPT_DB_URL", url)
    monkeypatch.setenv("CARRIER_OPT_OUTBOX", str(tmp_path / "outbox"))
    return url


@pytest.fixture
def fleet_amop(no_connections, local_amop):
    """The embedded AMOP database with 60 SIMs of :data:`TENANT` (the optimization step tests)."""
    return local_amop(TENANT, 60, seed=3)
