"""JasperClient against the carrier simulator: paging, usage, retries, validation, de-duplication."""

from __future__ import annotations

import datetime as dt

import pytest
import requests

from include.carrier_optimization.core.fleet import generate_fleet
from include.carrier_optimization.sync.carriers.jasper import JasperClient, RetryPolicy
from include.carrier_optimization.sync.carriers.jasper_payloads import CarrierApiError, MalformedPageError
from include.carrier_optimization.sync.carriers.simulator import (
    DEFAULT_PASSWORD,
    DEFAULT_USER,
    CarrierSimulator,
)
from include.carrier_optimization.sync.carriers.simulator_faults import Faults

SINCE = "2026-01-01T00:00:00Z"
FLEET = generate_fleet(2500, seed=3)


@pytest.fixture(scope="module")
def sim():
    with CarrierSimulator.from_fleet(FLEET, page_size=100) as server:
        yield server


@pytest.fixture(autouse=True)
def no_faults(sim):
    sim.faults.clear()
    yield
    sim.faults.clear()


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_client(sim, *, user=DEFAULT_USER, password=DEFAULT_PASSWORD, **retry) -> JasperClient:
    session = requests.Session()
    session.auth = (user, password)
    policy = RetryPolicy(**({"backoff_seconds": 0.01} | retry))
    return JasperClient(session, sim.url, retry=policy, sleep=Sleeps())


class TestPaging:
    def test_all_pages_until_last_page_with_every_device_once(self, sim):
        pages = list(make_client(sim).iter_device_pages(SINCE))

        assert [p.page_number for p in pages] == list(range(1, 26))
        assert [p.last_page for p in pages] == [False] * 24 + [True]
        iccids = [d.iccid for p in pages for d in p.devices]
        assert iccids == FLEET.devices.iccid.tolist()
        first = pages[0].devices[0]
        row = FLEET.devices.iloc[0]
        assert (first.status, first.communication_plan) == (row.status, row.comm_plan)

    def test_start_page_and_page_limit(self, sim):
        pages = list(make_client(sim).iter_device_pages(SINCE, start_page=7, max_pages=3))
        assert [p.page_number for p in pages] == [7, 8, 9]

    def test_modified_since_after_every_change_gives_one_empty_last_page(self, sim):
        later = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        (page,) = list(make_client(sim).iter_device_pages(later))
        assert (page.devices, page.last_page) == ((), True)


class TestUsage:
    def test_single_and_bulk_usage_agree_with_the_fleet(self, sim):
        client = make_client(sim)
        iccids = FLEET.devices.iccid.tolist()[:250]
        bulk = client.device_usages(iccids, bulk=True)
        single = client.device_usages(iccids[:20], workers=4)
        assert single == bulk[:20]
        assert [u.iccid for u in bulk] == iccids
        assert [u.ctd_data_usage for u in bulk] == FLEET.devices.ctd_bytes.tolist()[:250]
        assert [u.ctd_sms_usage for u in bulk] == FLEET.devices.sms.tolist()[:250]
        assert bulk[0].usage_date == FLEET.as_of
        assert sim.count("usage-bulk") >= 2  # 250 ICCIDs take two bulk calls of at most 200

    def test_unknown_iccid_is_a_clear_error(self, sim):
        with pytest.raises(CarrierApiError, match="Jasper usage of ICCID 000 failed with HTTP 404"):
            make_client(sim).device_usage("000")

    def test_bulk_answer_missing_a_device_names_it(self, sim):
        with pytest.raises(MalformedPageError, match="Jasper usage of ICCID 999: `usages` has no record"):
            make_client(sim).device_usages_bulk([FLEET.devices.iccid[0], "999"])


class TestRetries:
    def test_429_and_5xx_are_retried_with_exponential_backoff(self, sim):
        sim.faults.fail_page(2, 500, 502, 503)
        client = make_client(sim, backoff_seconds=1.0, backoff_max_seconds=3.0)

        page = client.device_page(2, SINCE)

        assert page.page_number == 2 and sim.count("page:2") >= 4
        assert len(client.sleep) == 3
        for retry, slept in enumerate(client.sleep, start=1):
            base = min(3.0, 2 ** (retry - 1))
            assert base * 0.5 <= slept <= base  # equal jitter

    def test_retry_after_of_a_429_is_honoured(self, sim):
        sim.faults.fail_page(3, 429)
        client = make_client(sim, backoff_seconds=5.0)
        client.device_page(3, SINCE)
        assert client.sleep == [0.0]  # the simulator sends Retry-After: 0

    def test_gives_up_after_max_retries_naming_page_and_status(self, sim):
        sim.faults.fail_page(4, 500, 500, 500, 500)
        client = make_client(sim, max_retries=3)
        with pytest.raises(
            CarrierApiError, match="Jasper device page 4 failed after 4 attempts; last error HTTP 500"
        ):
            client.device_page(4, SINCE)

    def test_usage_faults_are_retried(self, sim):
        iccid = FLEET.devices.iccid[5]
        sim.faults.fail_usage(iccid, 503, 429)
        assert make_client(sim).device_usage(iccid).iccid == iccid

    def test_timeouts_are_retried(self, sim):
        sim.faults.slow_page(6, 0.5)
        client = make_client(sim, read_timeout_seconds=0.1, max_retries=1)
        with pytest.raises(CarrierApiError, match="page 6 failed after 2 attempts; last error ReadTimeout"):
            client.device_page(6, SINCE)
        assert len(client.sleep) == 1

    def test_rejected_credentials_fail_at_once_with_the_fix(self, sim):
        client = make_client(sim, password="wrong")
        with pytest.raises(
            CarrierApiError, match="HTTP 401.*check the connection's login and password"
        ) as info:
            client.device_page(1, SINCE)
        assert (info.value.status, info.value.attempts, client.sleep) == (401, 1, [])


class TestMalformedPages:
    @pytest.mark.parametrize(
        ("kind", "match"),
        [
            ("missing_iccid", r"page 8: `devices\[50\].iccid` must be a non-empty string .*; got None"),
            ("not_json", r"page 8: `<body>` must be JSON; got '<html>gateway error</html>'"),
            ("wrong_page_number", r"page 8: `pageNumber` must be the requested page 8; got 9"),
            ("devices_not_list", r"page 8: `devices` must be a list; got \{'count': 100\}"),
            ("truncated", r"page 8: `<body>` must be JSON"),
        ],
        ids=["missing-iccid", "not-json", "wrong-page-number", "devices-not-list", "truncated"],
    )
    def test_page_and_field_are_named_and_nothing_is_retried(self, sim, kind, match):
        sim.faults.malformed_page(8, kind)
        client = make_client(sim)
        with pytest.raises(MalformedPageError, match=match):
            client.device_page(8, SINCE)
        assert client.sleep == []


class TestConstruction:
    def test_base_url_without_scheme_means_https(self):
        client = JasperClient(requests.Session(), "rws.jasper.com/", devices_path="/api/v1/devices/")
        assert client._url() == "https://rws.jasper.com/api/v1/devices"

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"max_retries": -1}, "`max_retries` must be an integer >= 0; got -1"),
            ({"backoff_seconds": -0.5}, "`backoff_seconds` must be >= 0; got -0.5"),
            ({"read_timeout_seconds": 0}, "`read_timeout_seconds` must be > 0; got 0"),
        ],
        ids=["negative-retries", "negative-backoff", "zero-timeout"],
    )
    def test_retry_policy_iv(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            RetryPolicy(**kwargs)

    def test_empty_base_url_is_refused(self):
        with pytest.raises(ValueError, match="`base_url` must be the carrier API root URL"):
            JasperClient(requests.Session(), " ")


def test_faults_object_is_shared_by_the_server():
    faults = Faults(error_rate=1.0, seed=1)
    with CarrierSimulator.from_fleet(generate_fleet(10), faults=faults) as server:
        with pytest.raises(CarrierApiError, match="after 2 attempts; last error HTTP 500"):
            make_client(server, max_retries=1).device_page(1, SINCE)
