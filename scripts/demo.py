"""`make demo`: run the main job end to end on embedded defaults and print the savings summary.

Creates a local Airflow home (SQLite metadata, no examples) and an embedded SQLite AMOP database,
generates the first tenant of dags/tenants.yaml from a seed (the AMOP tables hold its usage of three
days ago), starts a local SQS endpoint (moto server) and the carrier simulator serving today's usage,
and runs the tenant's optimization DAG with ``dag.test()``: it publishes the device-sync request, the
device-sync DAG (in its own process) pages the carrier API and answers, and the optimization continues
on the synced devices. ``--no-sync`` skips the sync (``has_synced``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOME = ROOT / ".airflow_home"


def _environment(home: Path) -> None:
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
    os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    os.environ["CARRIER_OPT_LOCAL_MODE"] = "true"  # embedded defaults for missing connections
    os.environ.setdefault("CARRIER_OPT_DB_URL", f"sqlite:///{home / 'amop.sqlite'}")
    os.environ.setdefault("CARRIER_OPT_OUTBOX", str(home / "outbox"))
    sys.path.insert(0, str(ROOT))


SYNC_WORKER = """
import json, runpy, sys
from airflow.utils import db
db.resetdb()  # the worker's own metadata database: dag.test() needs the ORM of this process
from include.carrier_optimization.config.tenants import load_tenants
from scripts.local_services import TENANTS_FILE, take_from_queue
dag = runpy.run_path(sys.argv[1])[sys.argv[2]]
tenant = next(t for t in load_tenants(TENANTS_FILE) if t.slug == sys.argv[3])
for task in dag.tasks:
    if hasattr(task, "poke_interval"):
        task.poke_interval = 1
# dag.test() has no triggerer: the request task takes the device-sync request as the queue's watcher would
take_from_queue(dag, timeout=300, sqs_queue=tenant.device_sync_queue, tenant_id=tenant.tenant_id,
                kind="device_sync", service_provider_ids=[sp.id for sp in tenant.service_providers])
dr = dag.test()
print(json.dumps({"state": str(dr.state)}))
"""


@contextlib.contextmanager
def _sync_services(fleet, carrier_conn_id: str):
    """A local SQS endpoint, the carrier simulator and the device-sync DAG's worker process."""
    from moto.server import ThreadedMotoServer

    from include.carrier_optimization.sync.carriers.simulator import (
        DEFAULT_PASSWORD,
        DEFAULT_USER,
        CarrierSimulator,
    )

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the SQS endpoint's access log
    sqs = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    sqs.start()
    carrier = CarrierSimulator.from_fleet(fleet).start()
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "demo-key",
            "AWS_SECRET_ACCESS_KEY": "demo-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps(
        {
            "conn_type": "aws",
            "login": "demo-key",
            "password": "demo-secret",
            "extra": {"region_name": "us-east-1", "endpoint_url": f"http://127.0.0.1:{port}"},
        }
    )
    os.environ["AIRFLOW_CONN_" + carrier_conn_id.upper()] = json.dumps(
        {
            "conn_type": "http",
            "host": carrier.url,
            "login": DEFAULT_USER,
            "password": DEFAULT_PASSWORD,
            "extra": {"bulk_usage": True},
        }
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{HOME / 'sync-worker-airflow.db'}"
    worker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            SYNC_WORKER,
            str(ROOT / "dags" / "device_sync.py"),
            f"device_sync__{fleet.tenant.name}",
            fleet.tenant.name,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        yield worker
        out = worker.stdout.read() if worker.stdout else ""
        print("Device-sync DAG:", (out.strip().splitlines() or ["no result"])[-1])
    finally:
        if worker.poll() is None:
            worker.kill()
        carrier.stop()
        sqs.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=None, help="SIMs to generate (default: tenants.yaml)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--engine", default="best", choices=["best", "optimal", "legacy"])
    parser.add_argument("--no-sync", action="store_true", help="optimize the AMOP devices as they are")
    args = parser.parse_args(argv)

    HOME.mkdir(exist_ok=True)
    _environment(HOME)
    started = time.perf_counter()

    from airflow.utils import db

    # A fresh metadata database each time: dag.test()'s in-process execution API needs the ORM set up by
    # this process (reusing an old file fails with "error parsing the body"); the demo keeps no history.
    print("Initializing the Airflow metadata database in", HOME)
    db.resetdb()

    from include.carrier_optimization.amop.repository import AmopRepository
    from include.carrier_optimization.amop.schema import create_schema, drop_schema
    from include.carrier_optimization.amop.storage import make_engine
    from include.carrier_optimization.config.tenants import load_tenants
    from include.carrier_optimization.core.fleet import generate_fleet

    tenant = load_tenants(ROOT / "dags" / "tenants.yaml")[0]
    provider = tenant.service_providers[0]
    sims = args.sims or int(tenant.extra.get("sample_sims", 5000))
    engine = make_engine(os.environ["CARRIER_OPT_DB_URL"])
    drop_schema(engine)
    create_schema(engine)
    from scripts.local_services import current_period_end, tenant_spec

    spec = tenant_spec(tenant, provider)
    now = dt.datetime.now()
    period_end = current_period_end(now)
    today = generate_fleet(
        sims, seed=args.seed, tenant=spec, period_end=period_end, as_of=now - dt.timedelta(hours=1)
    )
    stale = generate_fleet(
        sims, seed=args.seed, tenant=spec, period_end=period_end, as_of=now - dt.timedelta(days=3)
    )
    AmopRepository(engine).write_fleet(today if args.no_sync else stale)
    today.write_cli_files(HOME / "demo_input")
    print(
        f"Tenant {tenant.name}: {sims:,} SIMs, {len(today.plans)} plans, {len(today.comm_plans)} comm plans"
    )

    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(ROOT / "dags")).dags[tenant.dag_id]
    conf = {"service_provider_id": provider.id, "has_synced": args.no_sync, "engine": args.engine}
    if args.no_sync:
        run = dag.test(run_conf=conf)
    else:
        with _sync_services(today, provider.carrier_api_conn_id) as worker:
            print("Carrier simulator and local SQS endpoint up; device-sync DAG waiting in its own process")
            run = dag.test(run_conf=conf)
            worker.wait(timeout=300)
    print(f"DAG {tenant.dag_id}: run {run.run_id} ended {run.state} in {time.perf_counter() - started:.1f} s")
    if str(run.state) != "success":
        return 1

    from include.carrier_optimization.reporting.summary import summary_of_instance
    from plugins.operators.optimization_report import format_summary

    print()
    print(format_summary(summary_of_instance(engine, tenant_id=tenant.tenant_id)))
    print()
    print("AMOP database:", os.environ["CARRIER_OPT_DB_URL"])
    print("E-mails (outbox):", os.environ["CARRIER_OPT_OUTBOX"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
