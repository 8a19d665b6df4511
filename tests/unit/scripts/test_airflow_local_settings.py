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


PLUGIN_MODULES = [
    "plugins.operators.optimization_solve",
    "plugins.operators.optimization_report",
    "plugins.sensors.sqs",
]


def imported_around_a_fork(tmp_path, argv: list[str]) -> dict[str, dict[str, bool]]:
    """Run as ``airflow <argv>`` in a fresh interpreter: initialise Airflow, fork once; what was imported.

    As in a real process, Airflow imports the settings module while it initialises itself.
    """
    code = (
        "import sys, os, json; modules = json.loads(sys.argv[2]); "
        "sys.argv = ['airflow', *json.loads(sys.argv[1])]; import airflow; "
        "assert 'airflow_local_settings' in sys.modules; "
        "before = {m: m in sys.modules for m in modules}; pid = os.fork(); "
        "os._exit(0) if pid == 0 else os.waitpid(pid, 0); "
        "print(json.dumps({'before': before, 'after': {m: m in sys.modules for m in modules}}))"
    )
    _, env = configured(tmp_path)
    env = {**os.environ, **env, "PYTHONPATH": os.pathsep.join([str(ROOT), str(LOCAL_CONFIG)])}
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(argv), json.dumps(PLUGIN_MODULES)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert "could not preload" not in done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_scheduler_imports_the_dag_files_plugins_before_its_first_fork(tmp_path):
    seen = imported_around_a_fork(tmp_path, ["scheduler"])
    assert not any(seen["before"].values()), seen  # not while Airflow initialised itself
    assert all(seen["after"].values()), seen


def test_an_api_server_does_not_import_them_when_it_forks(tmp_path):
    seen = imported_around_a_fork(tmp_path, ["api-server"])
    assert not any(seen["after"].values()), seen
