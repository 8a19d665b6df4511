"""
### Carrier rate plan optimization, one DAG per tenant

Puts every SIM of the tenant on the carrier rate plan that makes the invoice smallest, and states how
far from the optimum the result can at most be (lower bound and gap).

**request → session → sync → count → write_queues[] → optimize[] + engine[] → winners → report**

- *A request on the tenant's SQS queue* (portal, legacy scheduler, the `carrier_optimization_window`
  DAG): the queue's asset watcher starts a run within seconds; the message is the run's triggering
  asset event and its request; a redelivered message never runs twice.
- *Trigger with config* (the form): the form is the request; no wait.
- There are no scheduled runs: the hourly window DAG publishes the legacy request when it is due.
- *Resume*: clear the failed task (or the run from a point); every step continues from what is done.

Tenants are listed in `dags/tenants.yaml`.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pendulum
from airflow.sdk import DAG, Param, get_parsing_context, task

from include.carrier_optimization.config.tenants import ENGINES, PORTAL_TYPES, TenantConfig, load_tenants
from plugins.assets import request_asset
from plugins.callbacks import instance_failure_callback, run_failure_callback
from plugins.operators.device_sync import DeviceSyncRequestOperator
from plugins.operators.intake import OptimizationIntakeOperator
from plugins.operators.optimization_report import OptimizationReportOperator
from plugins.operators.optimization_setup import (
    OptimizationCacheCheckOperator,
    OptimizationCountOperator,
    OptimizationQueueInsertOperator,
    OptimizationSessionOperator,
)
from plugins.operators.optimization_solve import (
    OptimizationEngineOperator,
    OptimizationLegacyOperator,
    OptimizationWinnersOperator,
)
from plugins.sensors.sqs import OptimizationRequestSqsSensor

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator

TENANTS = load_tenants(Path(__file__).with_name("tenants.yaml"))
ENGINE_NAMES = {
    "best": "Best of legacy and optimal",
    "optimal": "Optimal engine only",
    "legacy": "Legacy only",
}


def tenant_params(tenant: TenantConfig) -> dict[str, Param]:
    """The trigger form: typed, titled, described and grouped."""
    providers = tenant.service_providers
    return {
        "service_provider_id": Param(
            providers[0].id,
            type="integer",
            enum=[sp.id for sp in providers],
            values_display={sp.id: f"{sp.name} ({sp.id})" for sp in providers},
            title="Service provider",
            description="Carrier account to optimize.",
            section="Request",
        ),
        "billing_period_id": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            title="Billing period id",
            description="Empty: the provider's current billing period.",
            section="Request",
        ),
        "portal_type_id": Param(
            0,
            type="integer",
            enum=list(PORTAL_TYPES),
            values_display=PORTAL_TYPES,
            title="Portal type",
            section="Request",
        ),
        "has_synced": Param(
            False,
            type="boolean",
            title="Devices already synced",
            description="Skip the device sync and optimize the devices as they are.",
            section="Request",
        ),
        "session_id": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            title="Session to resume",
            description="Continue this optimization session instead of starting one.",
            section="Resume",
        ),
        "engine": Param(
            tenant.engine,
            type="string",
            enum=list(ENGINES),
            values_display=ENGINE_NAMES,
            title="Engine",
            description="best runs both and keeps the cheaper result per comm group.",
            section="Engine",
        ),
        "batch_size": Param(
            tenant.batch_size,
            type="integer",
            minimum=1,
            maximum=100_000,
            title="Batch size",
            description="Rate plan sequences per mapped batch (raised to keep at most 128 batches).",
            section="Engine",
        ),
        "queues_per_instance": Param(
            tenant.queues_per_instance,
            type="integer",
            minimum=1,
            maximum=1000,
            title="Queues per instance",
            description="Sequences evaluated per record-if-better step (legacy QueuesPerInstance).",
            section="Engine",
        ),
        "time_budget_seconds": Param(
            tenant.time_budget_seconds,
            type="integer",
            minimum=5,
            maximum=86_400,
            title="Time budget (s)",
            description="Work per optimizer slot before it checkpoints and continues in a fresh slot.",
            section="Engine",
        ),
    }


@task
def batches_of(plan: dict) -> list[dict]:
    """The queue batches of the instance plan (mapped tasks need a list as their own return value)."""
    return plan["batches"]


@task
def groups_of(plan: dict) -> list[int]:
    """The comm group ids of the instance plan."""
    return plan["groups"]


def device_sync_steps(tenant: TenantConfig, session: BaseOperator) -> BaseOperator:
    """The device sync of a run: request it on the sync queue, wait for its completion message."""
    sync_request = DeviceSyncRequestOperator(
        task_id="sync_request", session=session.output, sqs_queue=tenant.device_sync_queue
    )
    sync_wait = OptimizationRequestSqsSensor(
        task_id="sync_wait",
        sqs_queue=tenant.request_queue,
        dead_letter_queue=tenant.dead_letter_queue,
        tenant_id=tenant.tenant_id,
        session_id="{{ ti.xcom_pull(task_ids='session')['session_id'] }}",
        require_synced=True,
        stop_on_sync_error=True,
        poke_interval=5,
        timeout=6 * 3600,
        deferrable=True,
    )
    session >> sync_request >> sync_wait
    return sync_wait


def solve_steps(tenant: TenantConfig, session: BaseOperator, count: BaseOperator) -> None:
    """Queues, optimizers and engines of the counted batches and groups, then winners and report."""
    batches = batches_of(count.output)
    groups = groups_of(count.output)
    write_queues = OptimizationQueueInsertOperator.partial(
        task_id="write_queues", session=session.output, max_active_tis_per_dagrun=4
    ).expand(batch=batches)
    optimize = OptimizationLegacyOperator.partial(
        task_id="optimize",
        queues_per_instance="{{ params.queues_per_instance }}",
        time_budget_seconds="{{ params.time_budget_seconds }}",
        max_active_tis_per_dagrun=4,  # CPU-bound: a 2-core worker gains nothing from more
    ).expand(batch=batches)
    engine = OptimizationEngineOperator.partial(
        task_id="engine",
        engine="{{ params.engine }}",
        priority_weight=10,  # a run's longest single tasks: queued before the legacy batches' tasks
    ).expand(comm_group_id=groups)
    winners = OptimizationWinnersOperator(
        task_id="winners",
        session=session.output,
        count=count.output,
        trigger_rule="none_failed_min_one_success",
    )
    report = OptimizationReportOperator(
        task_id="report",
        session=session.output,
        summary=winners.output,
        tenant_name=tenant.name,
        recipients=tenant.alert_emails,
        s3_bucket="{{ var.value.get('carrier_optimization_report_bucket', '') }}",
        s3_key_prefix=f"carrier-optimization/{tenant.slug}",
    )
    write_queues >> optimize >> winners
    engine >> winners
    winners >> report


def build_tenant_dag(tenant: TenantConfig) -> DAG:
    """The optimization DAG of one tenant."""
    with DAG(
        dag_id=tenant.dag_id,
        description=f"Carrier rate plan optimization of {tenant.name}",
        doc_md=__doc__,
        schedule=request_asset(tenant),
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        tags=["carrier-optimization", f"tenant:{tenant.slug}"],
        params=tenant_params(tenant),
        on_failure_callback=run_failure_callback(alert_emails=tenant.alert_emails),
        default_args={
            "owner": "telecom-expense",
            "retries": 2,
            "retry_delay": timedelta(seconds=30),
            "on_failure_callback": instance_failure_callback(alert_emails=tenant.alert_emails),
        },
    ) as dag:
        request = OptimizationIntakeOperator(task_id="request", tenant_id=tenant.tenant_id)
        cache_check = OptimizationCacheCheckOperator(task_id="cache_check")
        session = OptimizationSessionOperator(
            task_id="session", request=request.output, alert_emails=tenant.alert_emails
        )
        request >> cache_check >> session
        sync_wait = device_sync_steps(tenant, session)
        count = OptimizationCountOperator(
            task_id="count",
            session=session.output,
            engine="{{ params.engine }}",
            batch_size="{{ params.batch_size }}",
            alert_emails=tenant.alert_emails,
            trigger_rule="none_failed_min_one_success",
        )
        session >> count
        sync_wait >> count
        solve_steps(tenant, session, count)
    return dag


_parsing_for = get_parsing_context().dag_id
for _tenant in TENANTS:
    if _parsing_for is None or _parsing_for == _tenant.dag_id:
        globals()[_tenant.dag_id] = build_tenant_dag(_tenant)
