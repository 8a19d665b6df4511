"""Airflow local settings of the local deployments (`make airflow`, the e2e tests, ``bench/airflow.py``).

Airflow imports this module (found on ``PYTHONPATH``, see :mod:`scripts.local_airflow`) in every one of
its processes, before anything else of theirs runs. In the processes whose forked children parse the DAG
files (the scheduler, whose LocalExecutor workers are forked from it, a Celery worker, whose pool
children are, and the dag-processor, which forks a process per file parse every 30 s), it imports the
heavy modules the DAG file and the operators need: pandas, numpy, HiGHS, boto3, Redis, the report's
XlsxWriter and matplotlib (Agg, no pyplot) and the product's library (``include/`` imports no Airflow, so
nothing here is circular). A child forked from them finds them loaded: parsing the DAG file before each
task takes about 0.1 s instead of 1 to 2.5 s on a 2-core machine (docs/architecture.md, "How a run is
timed"), and the dag-processor's periodic parses stop costing a tenth of a core. The other processes
(api-server, triggerer) import nothing more.
"""

from __future__ import annotations

import importlib
import os
import sys

#: Imported before the process forks its children: third-party first, then the library modules.
PRELOAD = (
    "pandas",
    "numpy",
    "highspy",
    "boto3",
    "redis",
    "requests",
    "xlsxwriter",
    "matplotlib.figure",  # the report's chart: about 0.5 s of import in each report task otherwise
    "matplotlib.backends.backend_agg",
    "include.carrier_optimization.pipeline",
    "include.carrier_optimization.amop.repository",
    "include.carrier_optimization.amop.device_cache",
    "include.carrier_optimization.reporting.report",
    "include.carrier_optimization.sync.staging",
    "include.carrier_optimization.sync.merge",
    "include.carrier_optimization.messaging.sqs_steps",
)


#: Imported just before such a process first forks, once Airflow is initialized: the task SDK names and the
#: product's plugin modules the DAG file imports. They import Airflow, which imports this module first, so
#: they cannot be imported with :data:`PRELOAD`; each task's process imported them again otherwise (about
#: 0.25 s of CPU per task on a 2-core machine, measured with py-spy).
PRELOAD_AT_FORK = (
    "airflow.sdk.definitions.dag",
    "airflow.sdk.definitions.param",
    "airflow.sdk.definitions.decorators",
    "airflow.sdk.bases.operator",
    "plugins.assets",
    "plugins.callbacks",
    "plugins.operators.device_sync",
    "plugins.operators.intake",
    "plugins.operators.optimization_report",
    "plugins.operators.optimization_setup",
    "plugins.operators.optimization_solve",
    "plugins.sensors.sqs",
)

_preloading_started = False


def forks_dag_file_parsers(argv: list[str]) -> bool:
    """Whether ``airflow <argv>`` starts a process whose forked children parse the DAG files.

    The scheduler (LocalExecutor workers, then each task's process), a Celery worker (its pool, then each
    task's process) and the dag-processor (a process per DAG file parse, every 30 s).
    """
    return argv[:1] in (["scheduler"], ["dag-processor"]) or argv[:2] == ["celery", "worker"]


def preload(argv: list[str]) -> list[str]:
    """Import :data:`PRELOAD` when ``argv`` is such a command; the modules imported."""
    if not forks_dag_file_parsers(argv):
        return []
    for name in PRELOAD:
        importlib.import_module(name)
    return list(PRELOAD)


def preload_at_fork() -> list[str]:
    """Import :data:`PRELOAD_AT_FORK` once, before the first fork; the modules imported by this call.

    A module that fails to import is reported and skipped: the fork goes on, and the task that needs the
    module fails on its own import with the real error.
    """
    global _preloading_started
    if _preloading_started:
        return []
    _preloading_started = True  # before the imports: at most once, even if an import forks
    done = []
    for name in PRELOAD_AT_FORK:
        try:
            importlib.import_module(name)
        except Exception as error:  # noqa: BLE001 - reported; the fork must not fail
            print(f"airflow_local_settings: could not preload {name}: {error!r}", file=sys.stderr)
        else:
            done.append(name)
    return done


if preload(sys.argv[1:]):
    os.register_at_fork(before=preload_at_fork)
