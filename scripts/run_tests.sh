#!/usr/bin/env bash
# `make test`: the whole suite as two pytest processes side by side.
#
# tests/e2e spends most of its time waiting on the real Airflow it starts (scheduler loops, task
# processes, retries), so it runs in the background while the other tests (unit, integration, dags)
# run in the foreground. They share nothing: the e2e deployments have their own homes, metadata and
# AMOP databases, ports and Redis databases (tests/e2e/conftest.py). The e2e output goes to
# build/test-e2e.log and is printed when both are done. Arguments go to both pytest runs, e.g.
# `make test PYTEST_ARGS="-x -k sync"`. Exits non-zero when either fails (no test selected is fine).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
mkdir -p build
log=build/test-e2e.log

"$PY" -m pytest tests/e2e "$@" >"$log" 2>&1 &
e2e=$!
trap 'kill -INT "$e2e" 2>/dev/null' INT TERM  # pytest stops its Airflow on SIGINT

"$PY" -m pytest tests --ignore=tests/e2e "$@"
rest=$?
wait "$e2e"
e2e_rc=$?
trap - INT TERM

echo
echo "==================== tests/e2e (ran alongside; output also in $log) ===================="
cat "$log"
status=0
for rc in "$rest" "$e2e_rc"; do
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then  # 5: pytest collected no test
    status=1
  fi
done
echo "tests outside e2e: exit $rest; tests/e2e: exit $e2e_rc"
exit "$status"
