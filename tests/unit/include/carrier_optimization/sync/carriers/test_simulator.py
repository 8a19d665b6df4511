"""Carrier simulator: the documented endpoints, basic auth, fault knobs, the command line."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import requests

from include.carrier_optimization.core.fleet import generate_fleet
from include.carrier_optimization.sync.carriers.simulator import (
    DEFAULT_PASSWORD,
    DEFAULT_USER,
    CarrierSimulator,
)
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[6]
FLEET = generate_fleet(120, seed=9)


@pytest.fixture
def sim():
    with CarrierSimulator.from_fleet(FLEET, page_size=50) as server:
        yield server


def get(sim, path, *, auth=(DEFAULT_USER, DEFAULT_PASSWORD), **params):
    return requests.get(sim.url + path, params=params, auth=auth, timeout=5)


class TestEndpoints:
    def test_device_pages(self, sim):
        bodies = [
            get(sim, "/api/v1/devices", pageNumber=n, modifiedSince="2026-01-01T00:00:00Z").json()
            for n in (1, 3)
        ]
        assert [b["pageNumber"] for b in bodies] == [1, 3]
        assert [len(b["devices"]) for b in bodies] == [50, 20]
        assert [b["lastPage"] for b in bodies] == [False, True]
        first = bodies[0]["devices"][0]
        row = FLEET.devices.iloc[0]
        plan_code = FLEET.plans.set_index("plan_id").at[row.current_plan_id, "code"]
        assert first == {
            "iccid": row.iccid,
            "status": row.status,
            "ratePlan": plan_code,
            "communicationPlan": row.comm_plan,
        }
        assert sim.page_count() == 3

    def test_usage_record(self, sim):
        row = FLEET.devices.iloc[7]
        body = get(sim, f"/api/v1/devices/{row.iccid}/ctdUsages").json()
        assert body == {
            "iccid": row.iccid,
            "ctdDataUsage": int(row.ctd_bytes),
            "ctdSMSUsage": int(row.sms),
            "usageDate": FLEET.as_of.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "dateActivated": row.date_activated.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

    def test_bulk_usage(self, sim):
        iccids = FLEET.devices.iccid.tolist()[:3]
        body = get(sim, "/api/v1/devices/ctdUsages", iccids=",".join(iccids)).json()
        assert [u["iccid"] for u in body["usages"]] == iccids

    def test_modified_since_filters(self, sim):
        get(sim, "/api/v1/devices", pageNumber=1, modifiedSince="2029-01-01T00:00:00Z")  # cached: empty
        sim.devices[0].modified = dt.datetime(2030, 1, 1)
        sim.invalidate()
        body = get(sim, "/api/v1/devices", pageNumber=1, modifiedSince="2029-01-01T00:00:00Z").json()
        assert [d["iccid"] for d in body["devices"]] == [sim.devices[0].iccid] and body["lastPage"] is True

    @pytest.mark.parametrize(
        ("path", "params", "status"),
        [
            ("/api/v1/devices", {}, 400),
            ("/api/v1/devices", {"pageNumber": "x"}, 400),
            ("/api/v1/devices/0/ctdUsages", {}, 404),
            ("/api/v2/other", {}, 404),
        ],
        ids=["no-page", "bad-page", "unknown-iccid", "unknown-route"],
    )
    def test_bad_requests(self, sim, path, params, status):
        assert get(sim, path, **params).status_code == status

    def test_basic_auth_is_required(self, sim):
        response = get(sim, "/api/v1/devices", auth=("someone", "else"), pageNumber=1)
        assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Basic"
        assert sim.count("unauthorized") == 1


class TestFaults:
    def test_queued_statuses_then_normal(self, sim):
        sim.faults.fail_page(1, 429, 500)
        statuses = [get(sim, "/api/v1/devices", pageNumber=1).status_code for _ in range(3)]
        assert statuses == [429, 500, 200]
        assert sim.count("page:1") == 3 and sim.statuses[429] == 1

    def test_retry_after_on_429(self, sim):
        sim.faults.fail_page(2, 429)
        assert get(sim, "/api/v1/devices", pageNumber=2).headers["Retry-After"] == "0"

    def test_slow_page(self, sim):
        sim.faults.slow_page(2, 0.3)
        start = time.perf_counter()
        get(sim, "/api/v1/devices", pageNumber=2)
        assert time.perf_counter() - start >= 0.3

    def test_malformed_page_a_number_of_times(self, sim):
        sim.faults.malformed_page(1, "wrong_page_number", times=1)
        first = get(sim, "/api/v1/devices", pageNumber=1).json()
        second = get(sim, "/api/v1/devices", pageNumber=1).json()
        assert (first["pageNumber"], second["pageNumber"]) == (2, 1)

    def test_usage_fault(self, sim):
        iccid = FLEET.devices.iccid[0]
        sim.faults.fail_usage(iccid, 503)
        assert get(sim, f"/api/v1/devices/{iccid}/ctdUsages").status_code == 503
        assert get(sim, f"/api/v1/devices/{iccid}/ctdUsages").status_code == 200


def test_command_line_serves_a_generated_fleet():
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "include.carrier_optimization.sync.carriers.simulator",
            "--sims",
            "30",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/devices?pageNumber=1")
        request.add_header(
            "Authorization",
            "Basic " + __import__("base64").b64encode(f"{DEFAULT_USER}:{DEFAULT_PASSWORD}".encode()).decode(),
        )
        for _ in range(100):
            try:
                with urllib.request.urlopen(request, timeout=2) as response:
                    body = json.load(response)
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("the simulator did not start: " + process.stdout.read1().decode())
        assert (len(body["devices"]), body["lastPage"]) == (30, True)
    finally:
        process.terminate()
        process.wait(timeout=10)
