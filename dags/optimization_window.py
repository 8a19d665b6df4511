"""
### Scheduled window of the carrier optimizations (all tenants), hourly

One task per tenant applies the legacy `IsTimeToRun` rule to each service provider's current billing
period (the last 8 days, from the provider's start hour, in the tenant's billing time zone) and, when
due, publishes the legacy request on the tenant's request queue: once per provider and billing period,
again only after the provider's last instance ended `CompleteWithErrors`. Each published request is
written to `AirflowScheduleDecision`. The request starts `carrier_optimization__<tenant>` through its
queue's asset watcher. A closed window ends the task in seconds; nothing waits here.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import DAG

from include.carrier_optimization.config.tenants import load_tenants
from plugins.operators.window import OptimizationWindowOperator

TENANTS = load_tenants(Path(__file__).with_name("tenants.yaml"))
DAG_ID = "carrier_optimization_window"

with DAG(
    dag_id=DAG_ID,
    description="Publish the legacy scheduled optimization requests when a billing period is due",
    doc_md=__doc__,
    schedule="@hourly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=10),
    tags=["carrier-optimization", "schedule"],
    default_args={"owner": "telecom-expense", "retries": 2, "retry_delay": timedelta(seconds=30)},
) as dag:
    for _tenant in TENANTS:
        OptimizationWindowOperator(
            task_id=f"window__{_tenant.slug}",
            tenant_id=_tenant.tenant_id,
            request_queue=_tenant.request_queue,
            start_hours={sp.id: sp.start_hour for sp in _tenant.service_providers},
            billing_time_zone=_tenant.billing_time_zone,
            execution_timeout=timedelta(minutes=2),
        )
