"""The watched assets of a tenant: names, URIs and the watcher trigger of each queue."""

from __future__ import annotations

from dataclasses import replace

from include.carrier_optimization.config.tenants import ServiceProviderConfig, TenantConfig
from plugins.assets import HOLD_SECONDS, device_sync_asset, request_asset
from plugins.triggers.intake import SqsRequestWatcherTrigger

TENANT = TenantConfig(
    slug="acme",
    tenant_id=12,
    name="Acme",
    service_providers=(ServiceProviderConfig(id=301, name="A"), ServiceProviderConfig(id=302, name="B")),
    request_queue="acme-requests",
    device_sync_queue="acme-device-sync",
    dead_letter_queue="acme-dlq",
)


def only_trigger(asset) -> SqsRequestWatcherTrigger:
    (watcher,) = asset.watchers
    assert watcher.name == f"{asset.name}__watcher"
    assert isinstance(watcher.trigger, SqsRequestWatcherTrigger)
    return watcher.trigger


def test_request_asset_watches_the_tenant_request_queue():
    asset = request_asset(TENANT)
    assert asset.name == "carrier_optimization_requests__acme"
    assert asset.uri == "x-carrier-optimization://sqs/acme-requests"
    assert asset.group == "carrier-optimization"
    trigger = only_trigger(asset)
    assert (trigger.sqs_queue, trigger.tenant_id, trigger.kind) == ("acme-requests", 12, "optimization")
    assert (trigger.dead_letter_queue, trigger.hold_seconds) == ("acme-dlq", HOLD_SECONDS)


def test_device_sync_asset_watches_the_sync_queue_for_the_tenant_providers():
    asset = device_sync_asset(TENANT)
    assert asset.name == "device_sync_requests__acme"
    assert asset.uri == "x-carrier-optimization://sqs/acme-device-sync"
    trigger = only_trigger(asset)
    assert (trigger.sqs_queue, trigger.kind, trigger.service_provider_ids) == (
        "acme-device-sync",
        "device_sync",
        [301, 302],
    )


def test_watcher_hold_seconds_of_the_tenant_entry_overrides_the_default():
    tenant = replace(TENANT, extra={"watcher_hold_seconds": "5"})
    assert only_trigger(request_asset(tenant)).hold_seconds == 5
    assert only_trigger(device_sync_asset(tenant)).hold_seconds == 5
