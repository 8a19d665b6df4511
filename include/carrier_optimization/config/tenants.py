"""Tenant configuration (``dags/tenants.yaml``): loading and validation, no Airflow."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SLUG = re.compile(r"^[a-z0-9][a-z0-9_]{0,63}$")
ENGINES = ("best", "optimal", "legacy")
PORTAL_TYPES = {0: "M2M", 1: "Mobility", 2: "CrossProvider"}


class TenantConfigError(ValueError):
    """``tenants.yaml`` is invalid; the message names the tenant and the field."""


@dataclass(frozen=True)
class ServiceProviderConfig:
    """A carrier account of a tenant."""

    id: int
    name: str
    integration: str = "Jasper"
    uses_proration: bool = True
    start_hour: int | None = None
    #: Airflow ``http`` connection of the carrier API account (device sync).
    carrier_api_conn_id: str = "jasper_default"


@dataclass(frozen=True)
class TenantConfig:
    """One tenant: its DAG, queues and run defaults."""

    slug: str
    tenant_id: int
    name: str
    service_providers: tuple[ServiceProviderConfig, ...]
    schedule: str | None = None
    billing_time_zone: str = "UTC"
    request_queue: str = ""
    device_sync_queue: str = ""
    dead_letter_queue: str = ""
    alert_emails: tuple[str, ...] = ()
    engine: str = "best"
    batch_size: int = 500
    queues_per_instance: int = 5
    time_budget_seconds: int = 600
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def dag_id(self) -> str:
        """Stable DAG id of the tenant."""
        return f"carrier_optimization__{self.slug}"

    def provider(self, service_provider_id: int) -> ServiceProviderConfig:
        """The configured provider with this id; raises ``TenantConfigError`` naming the known ids."""
        for sp in self.service_providers:
            if sp.id == service_provider_id:
                return sp
        known = ", ".join(str(sp.id) for sp in self.service_providers)
        raise TenantConfigError(
            f"tenant {self.slug}: service provider {service_provider_id} unknown; known: {known}"
        )


def _provider(slug: str, raw: dict[str, Any]) -> ServiceProviderConfig:
    try:
        provider = ServiceProviderConfig(
            id=int(raw["id"]),
            name=str(raw["name"]),
            integration=str(raw.get("integration", "Jasper")),
            uses_proration=bool(raw.get("uses_proration", True)),
            start_hour=None if raw.get("start_hour") is None else int(raw["start_hour"]),
            carrier_api_conn_id=str(raw.get("carrier_api_conn_id") or "jasper_default"),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise TenantConfigError(f"tenant {slug}: service provider {raw!r} is invalid ({error})") from error
    if provider.start_hour is not None and not 0 <= provider.start_hour <= 23:
        raise TenantConfigError(
            f"tenant {slug}: service provider {provider.id} start_hour must be within 0..23; "
            f"got {provider.start_hour}"
        )
    return provider


def _integer(slug: str, field: str, value: Any) -> int:
    """``value`` as an int, or a TenantConfigError naming the tenant and the field."""
    try:
        if isinstance(value, bool):
            raise TypeError("a boolean is not a number")
        return int(value)
    except (TypeError, ValueError) as error:
        raise TenantConfigError(f"tenant {slug}: {field} must be an integer; got {value!r}") from error


def parse_tenants(data: dict[str, Any]) -> list[TenantConfig]:
    """Validate the parsed YAML document and return the tenants sorted by slug."""
    if not isinstance(data, dict) or not isinstance(data.get("tenants"), list):
        raise TenantConfigError("tenants.yaml must hold a mapping with a list under `tenants`")
    tenants, seen = [], set()
    for raw in data["tenants"]:
        if not isinstance(raw, dict):
            raise TenantConfigError(f"tenant entry {raw!r} must be a mapping of fields")
        slug = str(raw.get("slug", ""))
        if not SLUG.match(slug):
            raise TenantConfigError(f"tenant slug {slug!r} must match {SLUG.pattern}")
        if slug in seen:
            raise TenantConfigError(f"tenant slug {slug!r} appears twice")
        seen.add(slug)
        providers = tuple(_provider(slug, sp) for sp in raw.get("service_providers") or [])
        if not providers:
            raise TenantConfigError(f"tenant {slug}: `service_providers` must list at least one provider")
        defaults = raw.get("defaults") or {}
        engine = str(defaults.get("engine", "best"))
        if engine not in ENGINES:
            raise TenantConfigError(f"tenant {slug}: engine {engine!r} must be one of {', '.join(ENGINES)}")
        numbers = {}
        for key, fallback in (("batch_size", 500), ("queues_per_instance", 5), ("time_budget_seconds", 600)):
            numbers[key] = _integer(slug, f"defaults.{key}", defaults.get(key, fallback))
            if numbers[key] <= 0:
                raise TenantConfigError(f"tenant {slug}: defaults.{key} must be > 0; got {defaults[key]}")
        if "tenant_id" not in raw:
            raise TenantConfigError(f"tenant {slug}: tenant_id is required")
        emails = raw.get("alert_emails") or ()
        emails = (emails,) if isinstance(emails, str) else tuple(str(e) for e in emails)
        tenants.append(
            TenantConfig(
                slug=slug,
                tenant_id=_integer(slug, "tenant_id", raw["tenant_id"]),
                name=str(raw.get("name", slug)),
                service_providers=providers,
                schedule=raw.get("schedule"),
                billing_time_zone=str(raw.get("billing_time_zone", "UTC")),
                request_queue=str(raw.get("request_queue", f"carrier-optimization-{slug}")),
                device_sync_queue=str(raw.get("device_sync_queue", f"device-sync-{slug}")),
                dead_letter_queue=str(raw.get("dead_letter_queue", f"carrier-optimization-{slug}-dlq")),
                alert_emails=emails,
                engine=engine,
                batch_size=numbers["batch_size"],
                queues_per_instance=numbers["queues_per_instance"],
                time_budget_seconds=numbers["time_budget_seconds"],
                extra={k: v for k, v in raw.items() if k not in _KNOWN},
            )
        )
    return sorted(tenants, key=lambda t: t.slug)


_KNOWN = {
    "slug",
    "tenant_id",
    "name",
    "service_providers",
    "schedule",
    "billing_time_zone",
    "request_queue",
    "device_sync_queue",
    "dead_letter_queue",
    "alert_emails",
    "defaults",
}


def load_tenants(path: str | Path) -> list[TenantConfig]:
    """Read and validate ``tenants.yaml``."""
    with open(path, encoding="utf-8") as handle:
        return parse_tenants(yaml.safe_load(handle))
