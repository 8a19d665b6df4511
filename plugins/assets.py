"""The assets whose watchers start the tenant DAGs: one per SQS queue a tenant DAG takes requests from."""

from __future__ import annotations

from airflow.sdk import Asset, AssetWatcher

from include.carrier_optimization.config.tenants import TenantConfig
from plugins.triggers.intake import SqsRequestWatcherTrigger

#: Seconds a taken message stays invisible until its run records it; ``watcher_hold_seconds`` in a
#: tenant's entry of ``tenants.yaml`` overrides it (a short hold shows a redelivery sooner in tests).
HOLD_SECONDS = 300


def _hold_seconds(tenant: TenantConfig) -> int:
    return int(tenant.extra.get("watcher_hold_seconds", HOLD_SECONDS))


def _watched_queue(name: str, queue: str, trigger: SqsRequestWatcherTrigger) -> Asset:
    return Asset(
        name=name,
        uri=f"x-carrier-optimization://sqs/{queue}",
        group="carrier-optimization",
        watchers=[AssetWatcher(name=f"{name}__watcher", trigger=trigger)],
    )


def request_asset(tenant: TenantConfig) -> Asset:
    """``carrier_optimization_requests__<slug>``: the tenant's request queue, watched for requests."""
    trigger = SqsRequestWatcherTrigger(
        sqs_queue=tenant.request_queue,
        tenant_id=tenant.tenant_id,
        kind="optimization",
        dead_letter_queue=tenant.dead_letter_queue,
        hold_seconds=_hold_seconds(tenant),
    )
    return _watched_queue(f"carrier_optimization_requests__{tenant.slug}", tenant.request_queue, trigger)


def device_sync_asset(tenant: TenantConfig) -> Asset:
    """``device_sync_requests__<slug>``: the tenant's device-sync queue, watched for sync requests."""
    trigger = SqsRequestWatcherTrigger(
        sqs_queue=tenant.device_sync_queue,
        tenant_id=tenant.tenant_id,
        kind="device_sync",
        service_provider_ids=[sp.id for sp in tenant.service_providers],
        dead_letter_queue=tenant.dead_letter_queue,
        hold_seconds=_hold_seconds(tenant),
    )
    return _watched_queue(f"device_sync_requests__{tenant.slug}", tenant.device_sync_queue, trigger)
