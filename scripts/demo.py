"""`make demo`: run the main job end to end on embedded defaults and print the savings summary.

Creates a local Airflow home (SQLite metadata, no examples) and an embedded SQLite AMOP database,
generates the first tenant of dags/tenants.yaml from a seed, and runs its optimization DAG with
``dag.test()`` (manual trigger, devices already synced).
"""

from __future__ import annotations

import argparse
import os
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
    os.environ.setdefault("CARRIER_OPT_DB_URL", f"sqlite:///{home / 'amop.sqlite'}")
    os.environ.setdefault("CARRIER_OPT_OUTBOX", str(home / "outbox"))
    sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=None, help="SIMs to generate (default: tenants.yaml)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--engine", default="best", choices=["best", "optimal", "legacy"])
    args = parser.parse_args(argv)

    HOME.mkdir(exist_ok=True)
    _environment(HOME)
    started = time.perf_counter()

    from airflow.utils import db

    if not (HOME / "airflow.db").exists():
        print("Initializing the Airflow metadata database in", HOME)
        db.resetdb()

    from include.carrier_optimization.fleet import TenantSpec, generate_fleet
    from include.carrier_optimization.repository import AmopRepository
    from include.carrier_optimization.schema import create_schema, drop_schema
    from include.carrier_optimization.storage import make_engine
    from include.carrier_optimization.tenants import load_tenants

    tenant = load_tenants(ROOT / "dags" / "tenants.yaml")[0]
    provider = tenant.service_providers[0]
    sims = args.sims or int(tenant.extra.get("sample_sims", 5000))
    engine = make_engine(os.environ["CARRIER_OPT_DB_URL"])
    drop_schema(engine)
    create_schema(engine)
    spec = TenantSpec(
        tenant_id=tenant.tenant_id,
        name=tenant.slug,
        service_provider_id=provider.id,
        service_provider_name=provider.name,
        uses_proration=provider.uses_proration,
        start_hour=provider.start_hour,
    )
    fleet = generate_fleet(sims, seed=args.seed, tenant=spec)
    AmopRepository(engine).write_fleet(fleet)
    fleet.write_cli_files(HOME / "demo_input")
    print(
        f"Tenant {tenant.name}: {sims:,} SIMs, {len(fleet.plans)} plans, {len(fleet.comm_plans)} comm plans"
    )

    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(ROOT / "dags")).dags[tenant.dag_id]
    run = dag.test(run_conf={"service_provider_id": provider.id, "has_synced": True, "engine": args.engine})
    print(f"DAG {tenant.dag_id}: run {run.run_id} ended {run.state} in {time.perf_counter() - started:.1f} s")
    if str(run.state) != "success":
        return 1

    from include.carrier_optimization.pipeline import summary_of_instance
    from plugins.operators.optimization import format_summary

    print()
    print(format_summary(summary_of_instance(engine, tenant_id=tenant.tenant_id)))
    print()
    print("AMOP database:", os.environ["CARRIER_OPT_DB_URL"])
    print("E-mails (outbox):", os.environ["CARRIER_OPT_OUTBOX"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
