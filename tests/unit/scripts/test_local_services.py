"""The local stand-ins: the same fleets for the AMOP seed and the carrier simulators, every queue."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.storage import make_engine
from include.carrier_optimization.config.tenants import load_tenants
from scripts.local_services import STALE_DAYS, TENANTS_FILE, fleets, seed_amop, select_tenants, tenant_queues

NOW = dt.datetime(2026, 11, 25, 12, 0)


def test_every_queue_of_tenants_yaml_is_created_once():
    tenants = load_tenants(TENANTS_FILE)
    queues = tenant_queues(tenants)
    assert len(queues) == len(set(queues)) == 3 * len(tenants)
    assert "carrier-optimization-acme" in queues and "device-sync-globex" in queues


def test_the_seed_and_the_simulators_serve_the_same_sims_read_at_different_times():
    tenants = load_tenants(TENANTS_FILE)
    stale = list(fleets(tenants, sims=50, seed=7, age=dt.timedelta(days=STALE_DAYS), now=NOW))
    fresh = list(fleets(tenants, sims=50, seed=7, age=dt.timedelta(hours=1), now=NOW))
    assert [p.id for _, p, _ in stale] == [101, 201, 202]
    for (_, _, old), (_, _, new) in zip(stale, fresh, strict=True):
        assert old.devices.iccid.tolist() == new.devices.iccid.tolist()
        assert old.as_of < new.as_of


def test_seed_writes_every_provider_into_a_fresh_schema(tmp_path):
    url = f"sqlite:///{tmp_path / 'amop.sqlite'}"
    tenants = load_tenants(TENANTS_FILE)
    counts = seed_amop(url, tenants, sims=30, seed=1, now=NOW)
    again = seed_amop(url, tenants, sims=30, seed=1, now=NOW)  # idempotent: the schema is replaced
    assert counts == again == {101: 30, 201: 30, 202: 30}
    engine = make_engine(url)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(s.device)).scalar_one() == 90
    engine.dispose()


def test_select_tenants_keeps_the_chosen_slugs_in_file_order():
    tenants = load_tenants(TENANTS_FILE)
    assert select_tenants(tenants, None) == tenants
    assert [t.slug for t in select_tenants(tenants, ["acme"])] == ["acme"]
    with pytest.raises(ValueError, match="nobody"):
        select_tenants(tenants, ["nobody"])


def test_a_seed_read_late_in_the_period_has_usage_when_the_default_reading_has_none(tmp_path):
    month_start = dt.datetime(2026, 12, 1, 2, 0)  # three days ago is in November: nothing used yet
    tenants = select_tenants(load_tenants(TENANTS_FILE), ["acme"])

    def seeded(name: str, as_of: dt.datetime | None) -> tuple[int, set]:
        url = f"sqlite:///{tmp_path / name}"
        seed_amop(url, tenants, sims=40, seed=3, now=month_start, as_of=as_of)
        engine = make_engine(url)
        with engine.connect() as conn:
            used = conn.execute(select(func.sum(s.device.c.CtdDataUsage))).scalar_one()
            periods = set(
                conn.execute(select(s.billing_period.c.BillYear, s.billing_period.c.BillMonth)).all()
            )
        engine.dispose()
        return used, periods

    stale_usage, stale_periods = seeded("stale.sqlite", None)
    late_usage, late_periods = seeded("late.sqlite", dt.datetime(2026, 12, 26))
    assert stale_usage == 0 and late_usage > 0
    assert stale_periods == late_periods and (2026, 12) in late_periods
