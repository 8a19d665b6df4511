"""
### Device sync, one DAG per tenant

Worker side of docs/architecture.md: a device-sync request of one of the tenant's service providers on
the tenant's device-sync SQS queue starts a run within seconds (the queue's asset watcher, no polling
runs); the run pages the carrier API (Jasper REST) into the staging tables, merges them into the
devices, and publishes the completion message (`HasSynced=True`, the session, the billing period) that
lets the waiting optimization continue.

**request → sync_devices → merge → complete**, and **failed** when a step fails for good

- *Resume*: a retried or cleared `sync_devices` continues after the last completed page; `merge` is
  one transaction; `complete` publishes once per request.
- *Failure*: the sync-error e-mail goes out and the optimization session is stopped (deleted, inactive),
  as the legacy system does; the optimization's `sync_wait` then fails at once with the sync's error.

Carrier accounts are `http` connections named by `carrier_api_conn_id` in `dags/tenants.yaml`.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import DAG, get_parsing_context

from include.carrier_optimization.config.tenants import TenantConfig, load_tenants
from plugins.assets import device_sync_asset
from plugins.compat import TriggerRule
from plugins.operators.device_sync import (
    DeviceSyncCompleteOperator,
    DeviceSyncFailedOperator,
    DeviceSyncMergeOperator,
    DeviceSyncPagesOperator,
)
from plugins.operators.intake import DeviceSyncIntakeOperator

TENANTS = load_tenants(Path(__file__).with_name("tenants.yaml"))
SYNC_STEPS = ("sync_devices", "merge", "complete")


def sync_dag_id(tenant: TenantConfig) -> str:
    """Stable id of the tenant's device-sync DAG."""
    return f"device_sync__{tenant.slug}"


def build_device_sync_dag(tenant: TenantConfig) -> DAG:
    """The device-sync DAG of one tenant."""
    providers = tenant.service_providers
    with DAG(
        dag_id=sync_dag_id(tenant),
        description=f"Carrier device sync of {tenant.name}",
        doc_md=__doc__,
        schedule=device_sync_asset(tenant),
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        tags=["carrier-optimization", "device-sync", f"tenant:{tenant.slug}"],
        default_args={
            "owner": "telecom-expense",
            "retries": 2,
            "retry_delay": timedelta(seconds=30),
        },
    ) as dag:
        request = DeviceSyncIntakeOperator(task_id="request", tenant_id=tenant.tenant_id)
        sync_devices = DeviceSyncPagesOperator(
            task_id="sync_devices",
            request=request.output,
            carrier_api_conn_ids={str(sp.id): sp.carrier_api_conn_id for sp in providers},
            execution_timeout=timedelta(hours=2),
        )
        merge = DeviceSyncMergeOperator(task_id="merge", request=request.output, tenant_id=tenant.tenant_id)
        complete = DeviceSyncCompleteOperator(
            task_id="complete",
            request=request.output,
            sqs_queue=tenant.request_queue,
            tenant_id=tenant.tenant_id,
        )
        failed = DeviceSyncFailedOperator(
            task_id="failed",
            request=request.output,
            failed_task_ids=SYNC_STEPS,
            provider_names={str(sp.id): sp.name for sp in providers},
            alert_emails=tenant.alert_emails,
            trigger_rule=TriggerRule.ONE_FAILED,
        )
        request >> sync_devices >> merge >> complete
        [sync_devices, merge, complete] >> failed
    return dag


_parsing_for = get_parsing_context().dag_id
for _tenant in TENANTS:
    if _parsing_for is None or _parsing_for == sync_dag_id(_tenant):
        globals()[sync_dag_id(_tenant)] = build_device_sync_dag(_tenant)
