#!/usr/bin/env bash
# Compatibility check on the MWAA Airflow 3.0.6 line: in a separate virtualenv (.venv306) with MWAA's
# provider versions and SQLAlchemy 1.4 / pandas 2.1 / numpy 1.26, every DAG file imports, the compat
# module picks the 3.0 import paths, and the library's SQLite pipeline tests pass.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv306
if [ ! -f "$VENV/.installed" ] || [ requirements-mwaa306.txt -nt "$VENV/.installed" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -r requirements-mwaa306.txt
  touch "$VENV/.installed"
fi
export AIRFLOW_HOME="$PWD/.airflow_home_306" AIRFLOW__CORE__LOAD_EXAMPLES=False PYTHONPATH="$PWD"
export AIRFLOW__CORE__DAGS_FOLDER="$PWD/dags" AIRFLOW__CORE__PLUGINS_FOLDER="$PWD/plugins"
export CARRIER_OPT_AIRFLOW_TEST_HOME="$PWD/.airflow_home_306"
"$VENV/bin/python" - <<'PY'
import airflow
from airflow.models.dagbag import DagBag

import plugins.compat as compat

assert airflow.__version__ == "3.0.6", airflow.__version__
assert compat.BaseHook.__module__ == "airflow.hooks.base", compat.BaseHook.__module__
bag = DagBag(dag_folder="dags")
assert not bag.import_errors, bag.import_errors
print(f"Airflow {airflow.__version__}: {len(bag.dag_ids)} DAGs import without errors: {sorted(bag.dag_ids)}")
PY
"$VENV/bin/python" -m pytest -q -p no:cacheprovider -k sqlite \
  tests/unit/include/carrier_optimization/pipeline/test_session.py \
  tests/unit/include/carrier_optimization/pipeline/test_instance.py \
  tests/unit/include/carrier_optimization/pipeline/test_queues.py \
  tests/unit/include/carrier_optimization/pipeline/test_optimizer.py \
  tests/unit/include/carrier_optimization/pipeline/test_results.py \
  tests/unit/include/carrier_optimization/pipeline/test_engine_step.py \
  tests/unit/include/carrier_optimization/pipeline/test_winners.py \
  tests/unit/include/carrier_optimization/amop/test_schema.py \
  tests/unit/include/carrier_optimization/amop/test_repository.py
