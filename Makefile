# Two commands set up everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast test-e2e test-mwaa306 services airflow airflow-stop lint bench bundle clean

$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt -c constraints.txt
	touch $(STAMP)

## demo: generate a sample tenant into an embedded SQLite AMOP database and run the main job end to end
demo: $(STAMP)
	$(PY) scripts/demo.py

## test: start the local services if needed and run the whole test suite (tests/e2e runs alongside the
## others, its output printed at the end: scripts/run_tests.sh)
test: $(STAMP) services
	PY=$(PY) bash scripts/run_tests.sh $(PYTEST_ARGS)

## airflow: a running Airflow on the checkout (api-server, scheduler, dag-processor, triggerer) with the
## sample tenants, local SQS endpoint, carrier simulators and connections; prints the UI address and login
airflow: $(STAMP) services
	$(PY) -m scripts.local_airflow start $(AIRFLOW_ARGS)

## airflow-stop: stop exactly the processes `make airflow` started, by their process ids
airflow-stop:
	$(PY) -m scripts.local_airflow stop

## test-e2e: only the end-to-end tests against a real Airflow (both executors)
test-e2e: $(STAMP) services
	$(PY) -m pytest tests/e2e $(PYTEST_ARGS)

## test-fast: unit tests only (no services, no DAG runs)
test-fast: $(STAMP)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

## test-mwaa306: the DAGs and the library's SQLite tests on MWAA's Airflow 3.0.6 line (own venv)
test-mwaa306:
	bash scripts/check_mwaa_306.sh

services:
	bash scripts/services.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) bench/engines.py

## bundle: the MWAA layout (dags/ with include/, plugins.zip, requirements.txt) under build/mwaa
bundle: $(STAMP)
	$(PY) -m scripts.bundle_mwaa --out build/mwaa

clean:
	rm -rf .airflow_home .airflow_test_home .airflow_home_306 .airflow_local out build
