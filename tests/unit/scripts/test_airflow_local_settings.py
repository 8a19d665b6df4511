"""The local deployments' airflow_local_settings: the task-forking processes preload the heavy modules."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from scripts.local_airflow import ROOT
from tests.unit.scripts.test_local_airflow import configured

LOCAL_CONFIG = ROOT / "scripts" / "local_config"
sys.path.insert(0, str(LOCAL_CONFIG))
import airflow_local_settings as settings  # noqa: E402


@pytest.mark.parametrize(
    ("argv", "forks"),
    [
        (["scheduler"], True),
        (["celery", "worker", "--concurrency", "2"], True),
        (["api-server", "--port", "8080"], False),
        (["dag-processor"], True),
        (["triggerer"], False),
        (["celery", "flower"], False),
        ([], False),
    ],
)
def test_only_the_processes_that_fork_dag_file_parsers_preload(argv, forks):
    assert settings.forks_dag_file_parsers(argv) is forks
    assert (settings.preload(argv) == list(settings.PRELOAD)) is forks


def imported_by_settings(argv: list[str]) -> dict[str, bool]:
    """Import the settings module in a fresh interpreter run as ``airflow <argv>``; what got imported."""
    code = (
        "import sys, json; sys.argv = ['airflow', *json.loads(sys.argv[1])]; import airflow_local_settings; "
        "print(json.dumps({m: m in sys.modules for m in ['pandas', 'highspy', 'airflow', "
        "'include.carrier_optimization.pipeline', 'include.carrier_optimization.reporting.report']}))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(LOCAL_CONFIG)])}
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(argv)], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def test_a_scheduler_preloads_the_library_without_importing_airflow():
    loaded = imported_by_settings(["scheduler"])
    assert loaded.pop("airflow") is False  # nothing circular: the library imports no Airflow
    assert all(loaded.values()), loaded


def test_an_api_server_imports_nothing_more():
    assert not any(imported_by_settings(["api-server"]).values())


def test_every_local_process_finds_the_settings_module(tmp_path):
    _, env = configured(tmp_path)
    assert str(LOCAL_CONFIG) in env["PYTHONPATH"].split(os.pathsep)
    assert (LOCAL_CONFIG / "airflow_local_settings.py").is_file()
