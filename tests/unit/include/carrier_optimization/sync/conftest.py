"""Shared fixtures and helpers of the device-sync tests: a fleet in AMOP, the carrier simulator, requests."""

from __future__ import annotations

import datetime as dt

import pytest
import requests
from sqlalchemy import func, select

from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.checkpoints import checkpoint_key
from include.carrier_optimization.amop.repository import AmopRepository
from include.carrier_optimization.core.fleet import TenantSpec, generate_fleet
from include.carrier_optimization.messaging.sync_messages import (
    build_sync_request_attributes,
    parse_sync_request,
)
from include.carrier_optimization.sync.carriers.jasper import JasperClient, RetryPolicy
from include.carrier_optimization.sync.carriers.jasper_payloads import DeviceUsage, JasperDevice
from include.carrier_optimization.sync.carriers.simulator import (
    DEFAULT_PASSWORD,
    DEFAULT_USER,
    CarrierSimulator,
)

SPEC = TenantSpec()
SP, TENANT = SPEC.service_provider_id, SPEC.tenant_id
FLEET = generate_fleet(600, seed=11, tenant=SPEC)
CARRIER = generate_fleet(650, seed=12, tenant=SPEC)  # 50 more SIMs, other usage and plans
KEY = checkpoint_key("device_sync__acme", "manual__1", "sync_devices", name="pages")
PAGE = 40


@pytest.fixture
def engine(db_engine):
    AmopRepository(db_engine).write_fleet(FLEET)
    return db_engine


@pytest.fixture
def sim():
    with CarrierSimulator.from_fleet(CARRIER, page_size=PAGE) as server:
        yield server


def client_of(sim) -> JasperClient:
    session = requests.Session()
    session.auth = (DEFAULT_USER, DEFAULT_PASSWORD)
    return JasperClient(session, sim.url, retry=RetryPolicy(backoff_seconds=0.0), bulk_usage=True)


def request_of(message_id="m-1", **fields):
    attributes = build_sync_request_attributes(
        **({"service_provider_id": SP, "last_sync_date": "2026-01-01T00:00:00Z", "session_id": 3} | fields)
    )
    return parse_sync_request({"MessageId": message_id, "MessageAttributes": attributes})


def count(engine, table, **where) -> int:
    query = select(func.count()).select_from(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def devices(engine) -> dict[str, dict]:
    with engine.connect() as conn:
        return {r["ICCID"]: dict(r) for r in conn.execute(select(s.device)).mappings()}


def device(iccid, status="ACTIVATED", plan="IND-1MB", comm="acme-mixed-a"):
    return JasperDevice(iccid, status, plan, comm)


def usage(iccid, ctd=1000, sms=2):
    return DeviceUsage(iccid, ctd, sms, dt.datetime(2026, 11, 20), dt.datetime(2025, 1, 1))
