"""`make airflow`'s launcher without Airflow running: its settings, its commands and how it stops."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from include.carrier_optimization.config.tenants import load_tenants
from scripts.local_airflow import LocalAirflow, _alive
from scripts.local_services import TENANTS_FILE


def configured(tmp_path, **kwargs) -> tuple[LocalAirflow, dict[str, str]]:
    tenants = load_tenants(TENANTS_FILE)
    airflow = LocalAirflow(home=tmp_path, port=8123, **kwargs)
    airflow._choose_ports(tenants)
    return airflow, airflow.environment(tenants)


def test_every_process_runs_in_local_mode_against_the_local_services(tmp_path):
    airflow, env = configured(tmp_path)
    assert env["CARRIER_OPT_LOCAL_MODE"] == "true"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:8123/execution/"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg://")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"].startswith("postgresql+psycopg_async://")
    aws = json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])
    assert aws["extra"]["endpoint_url"] == f"http://127.0.0.1:{airflow.ports['sqs']}"
    amop = json.loads(env["AIRFLOW_CONN_AMOP_DB"])
    assert amop == {"conn_type": "sqlite", "host": str(tmp_path / "amop.sqlite")}
    for tenant in load_tenants(TENANTS_FILE):
        for provider in tenant.service_providers:
            carrier = json.loads(env["AIRFLOW_CONN_" + provider.carrier_api_conn_id.upper()])
            assert carrier["host"] == f"http://127.0.0.1:{airflow.ports[f'carrier_{provider.id}']}"


def test_the_tests_amop_database_is_a_postgres_connection(tmp_path):
    _, env = configured(tmp_path, amop_url="postgresql+psycopg://postgres@127.0.0.1:5432/amop_x")
    amop = json.loads(env["AIRFLOW_CONN_AMOP_DB"])
    assert (amop["conn_type"], amop["schema"], amop["port"]) == ("postgres", "amop_x", 5432)


def test_the_celery_executor_adds_two_workers_and_the_local_one_none(tmp_path):
    local, _ = configured(tmp_path)
    celery, env = configured(tmp_path, executor="CeleryExecutor")
    assert "worker-1" not in local.commands()
    workers = [name for name in celery.commands() if name.startswith("worker-")]
    assert workers == ["worker-1", "worker-2"]
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://127.0.0.1:6379/2"
    assert set(local.commands()) >= {"services", "api-server", "scheduler", "dag-processor", "triggerer"}


def test_only_the_chosen_tenants_carriers_are_simulated(tmp_path):
    every, _ = configured(tmp_path)
    chosen, _ = configured(tmp_path, tenants=("acme",))
    assert "--tenants" not in every.commands()["services"]
    services = chosen.commands()["services"]
    assert services[services.index("--tenants") + 1] == "acme"


def test_extra_settings_override_the_defaults(tmp_path):
    _, env = configured(tmp_path, settings={"AIRFLOW__CORE__PARALLELISM": "2"})
    assert env["AIRFLOW__CORE__PARALLELISM"] == "2"


def test_stop_ends_exactly_the_recorded_processes_and_their_children(tmp_path):
    def sleeper(*args) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", *args], start_new_session=True)

    parent = sleeper(
        "import subprocess, sys, time;"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
    )
    stranger = sleeper("import time; time.sleep(60)")
    try:
        airflow = LocalAirflow(home=tmp_path, pids={"scheduler": parent.pid})
        assert airflow.stop(grace=5) == ["scheduler"]
        assert not _alive(parent.pid)
        assert stranger.poll() is None, "a process the launcher did not start was stopped"
        assert json.loads((tmp_path / "local_airflow.json").read_text())["pids"] == {}
    finally:
        stranger.kill()
        parent.kill()


def test_cli_runs_an_airflow_command_with_the_deployments_environment(tmp_path, monkeypatch):
    import scripts.local_airflow as launcher

    monkeypatch.setattr(launcher, "_airflow", lambda: sys.executable)  # `python <args>` stands for airflow
    airflow = LocalAirflow(home=tmp_path, port=8123, settings={"AIRFLOW__CORE__AUTH_MANAGER": "x.Y"})
    printed = airflow.cli(
        "-c", "import os; print(os.environ['AIRFLOW_HOME'], os.environ['AIRFLOW__CORE__AUTH_MANAGER'])"
    )
    assert printed.split() == [str(tmp_path), "x.Y"]
    with pytest.raises(RuntimeError, match="boom"):
        airflow.cli("-c", "import sys; sys.exit('boom')")


def test_the_timing_settings_measured_on_two_cores(tmp_path):
    _, env = configured(tmp_path)
    assert env["AIRFLOW__CORE__PARALLELISM"] == "5"
    assert env["AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME"] == "0.2"
    # a finished task's supervisor otherwise holds its executor slot up to 5 s (README, tuned settings)
    assert env["AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL"] == "1"
