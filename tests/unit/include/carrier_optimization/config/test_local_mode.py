"""The explicit local mode flag: one reader, strict values, errors that name the connection."""

from __future__ import annotations

import pytest

from include.carrier_optimization.config.local_mode import (
    LOCAL_MODE_ENV,
    ConnectionNotUsable,
    local_mode,
    missing_connection,
)


@pytest.mark.parametrize("value", ["true", "TRUE", " True ", "1", "yes", "on"])
def test_on_values(value):
    assert local_mode({LOCAL_MODE_ENV: value}) is True


@pytest.mark.parametrize("value", ["", "false", "False", "0", "no", "off"])
def test_off_values(value):
    assert local_mode({LOCAL_MODE_ENV: value}) is False


def test_unset_is_off():
    assert local_mode({}) is False


@pytest.mark.parametrize("value", ["ture", "local", "2"])
def test_other_values_are_an_error(value):
    with pytest.raises(
        ValueError, match=rf"^{LOCAL_MODE_ENV}='{value}' is not a boolean; use true or false$"
    ):
        local_mode({LOCAL_MODE_ENV: value})


def test_reads_the_process_environment(monkeypatch):
    monkeypatch.setenv(LOCAL_MODE_ENV, "false")
    assert local_mode() is False
    monkeypatch.setenv(LOCAL_MODE_ENV, "true")
    assert local_mode() is True


def test_the_tests_run_in_local_mode():
    assert local_mode() is True  # tests/conftest.py switches it on at import


def test_missing_connection_names_id_role_and_flag():
    error = missing_connection("amop_db", "AMOP database")
    assert isinstance(error, ConnectionNotUsable) and error.conn_id == "amop_db"
    assert str(error).startswith("Connection 'amop_db' (AMOP database) is not defined.")
    assert f"{LOCAL_MODE_ENV}=true" in str(error)
