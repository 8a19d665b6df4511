"""JasperHook: thin, lazy and cached; the client built from the `http` connection reaches the simulator."""

from __future__ import annotations

import inspect
import json

import pytest

from include.carrier_optimization.core.fleet import generate_fleet
from include.carrier_optimization.sync.carriers.jasper import JasperClient
from include.carrier_optimization.sync.carriers.simulator import (
    DEFAULT_PASSWORD,
    DEFAULT_USER,
    CarrierSimulator,
)
from plugins.hooks.jasper import JasperHook

CONN_ENV = "AIRFLOW_CONN_JASPER_DEFAULT"


def set_connection(monkeypatch, **fields):
    monkeypatch.setenv(CONN_ENV, json.dumps({"conn_type": "http"} | fields))


@pytest.fixture(scope="module")
def sim():
    with CarrierSimulator.from_fleet(generate_fleet(60, seed=2), page_size=25) as server:
        yield server


class TestJasperHook:
    def test_constructor_takes_only_the_connection_id(self):
        assert list(inspect.signature(JasperHook.__init__).parameters) == ["self", "jasper_conn_id", "kwargs"]
        assert (JasperHook.default_conn_name, JasperHook.conn_name_attr, JasperHook.conn_type) == (
            "jasper_default",
            "jasper_conn_id",
            "http",
        )

    def test_construction_does_no_io_and_get_conn_is_cached(self, monkeypatch, sim):
        monkeypatch.delenv(CONN_ENV, raising=False)
        hook = JasperHook()  # no connection defined: constructing must not need one
        assert hook.client is None
        set_connection(monkeypatch, host=sim.url, login=DEFAULT_USER, password=DEFAULT_PASSWORD)
        client = hook.get_conn()
        assert isinstance(client, JasperClient) and hook.get_conn() is client

    def test_client_pages_the_simulator_with_the_connection_settings(self, monkeypatch, sim):
        host, port = sim.url.removeprefix("http://").split(":")
        set_connection(
            monkeypatch,
            host=host,
            port=int(port),
            schema="http",
            login=DEFAULT_USER,
            password=DEFAULT_PASSWORD,
            extra={"bulk_usage": True, "max_retries": 5, "read_timeout_seconds": 7},
        )
        client = JasperHook().get_conn()
        assert client.base_url == sim.url
        assert (client.bulk_usage, client.retry.max_retries, client.retry.read_timeout_seconds) == (
            True,
            5,
            7.0,
        )
        pages = list(client.iter_device_pages("2026-01-01T00:00:00Z"))
        assert sum(len(p.devices) for p in pages) == 60

    @pytest.mark.parametrize(
        ("fields", "match"),
        [
            ({"login": "u"}, "Connection 'jasper_default' has no host: set it to the carrier API root URL"),
            ({"host": "rws.jasper.com"}, "Connection 'jasper_default' has no login"),
        ],
        ids=["missing-host", "missing-login"],
    )
    def test_incomplete_connection_names_the_fix(self, monkeypatch, fields, match):
        set_connection(monkeypatch, **fields)
        with pytest.raises(ValueError, match=match):
            JasperHook().get_conn()

    def test_test_connection_reports_status_and_message(self, monkeypatch, sim):
        set_connection(
            monkeypatch, host=sim.url, login=DEFAULT_USER, password="wrong", extra={"max_retries": 0}
        )
        ok, message = JasperHook().test_connection()
        assert ok is False and "HTTP 401" in message
        set_connection(monkeypatch, host=sim.url, login=DEFAULT_USER, password=DEFAULT_PASSWORD)
        assert JasperHook().test_connection() == (True, "Page 1 read: 25 device(s), last page False")
