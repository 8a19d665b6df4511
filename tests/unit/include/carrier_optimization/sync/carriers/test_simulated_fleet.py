"""The simulated carrier's SIMs built from a generated fleet, and their API records."""

from __future__ import annotations

import datetime as dt

from include.carrier_optimization.core.fleet import generate_fleet
from include.carrier_optimization.sync.carriers.simulated_fleet import simulated_devices

FLEET = generate_fleet(40, seed=2)


def test_one_device_per_sim_with_the_plan_code_and_usage():
    modified = dt.datetime(2026, 11, 1)
    devices = simulated_devices(FLEET, modified=modified)
    row = FLEET.devices.iloc[5]
    device = devices[5]
    code = FLEET.plans.set_index("plan_id").at[row.current_plan_id, "code"]
    assert len(devices) == len(FLEET.devices)
    assert (device.iccid, device.rate_plan, device.ctd_bytes) == (row.iccid, code, int(row.ctd_bytes))
    assert {d.modified for d in devices} == {modified}


def test_listing_and_usage_records():
    device = simulated_devices(FLEET)[0]
    assert device.listing() == {
        "iccid": device.iccid,
        "status": device.status,
        "ratePlan": device.rate_plan,
        "communicationPlan": device.communication_plan,
    }
    usage = device.usage()
    assert (usage["ctdDataUsage"], usage["ctdSMSUsage"]) == (device.ctd_bytes, device.ctd_sms)
    assert usage["dateActivated"] == device.date_activated.strftime("%Y-%m-%dT%H:%M:%SZ")
