"""Payloads of the AMOP 2.0 progress API (docs/architecture.md)."""

from __future__ import annotations

import json
from typing import Any

PROGRESS_PATH = "/get_optimization_progress_bar_data"
ERROR_PATH = "/get_optimization_error_details_data"
STEPS = {"session": 0, "sync": 20, "count": 30, "queues": 40, "winners": 50, "report": 100}


def progress_payload(
    *,
    session_id: int,
    session_guid: str | None,
    progress: int,
    device_count: int = 0,
    additional: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Body of a ``Progress`` call (job name and path as the legacy Lambda sends them)."""
    if not 0 <= progress <= 100:
        raise ValueError(f"`progress` must be within 0..100; got {progress}")
    return {
        "data": {
            "path": PROGRESS_PATH,
            "job_name": "Progress",
            "SessionId": session_id,
            "OptimizationSessionGuid": session_guid,
            "ErrorMessage": None,
            "Progress": progress,
            "CustomerId": None,
            "AdditionalJson": json.dumps(additional) if additional else None,
            "DeviceCount": device_count,
        }
    }


def error_payload(*, session_id: int, session_guid: str | None, message: str) -> dict[str, Any]:
    """Body of an ``ErrorMessage`` call (progress 0, the message for the portal)."""
    return {
        "data": {
            "path": ERROR_PATH,
            "job_name": "ErrorMessage",
            "SessionId": session_id,
            "OptimizationSessionGuid": session_guid,
            "ErrorMessage": message,
            "Progress": 0,
            "CustomerId": None,
            "AdditionalJson": None,
            "DeviceCount": 0,
        }
    }


def is_auto_carrier_optimization(*, session_id: int | None, has_synced: bool) -> bool:
    """Whether AMOP progress calls are made for this request (legacy ``isAutoCarrierOptimization``).

    Computed per request (the legacy kept it on a warm container). The legacy rule: a scheduled
    invocation, or a message with both ``OptimizationSessionId`` and ``HasSynced``. Here a request
    without a session id comes from a scheduler (the window DAG, the legacy scheduler) or the trigger
    form, which nobody else reports progress for: it counts as scheduled. A portal request carries its
    session id and the portal reports progress itself until the continuation with ``HasSynced``.
    """
    return session_id is None or bool(has_synced)


def additional_json(*, tenant_id: int, service_provider_id: int, period: dict[str, Any]) -> dict[str, Any]:
    """The legacy ``additionalData`` of a new session (sent with its progress as ``AdditionalJson``).

    ``{"data": {BillPeriodId, SiteId: 0, ServiceProviderId, OptimizationType: 0, OptimizationFrom:
    "group", BillingPeriodStartDate, BillingPeriodEndDate, DeviceCount: 0, TenantId}}``; dates ISO
    (the .NET serializer's round-trip form without a zone). AMOP 2.0 creates its session rows from it.
    """
    return {
        "data": {
            "BillPeriodId": int(period["id"]),
            "SiteId": 0,
            "ServiceProviderId": int(service_provider_id),
            "OptimizationType": 0,
            "OptimizationFrom": "group",
            "BillingPeriodStartDate": period["BillingCycleStartDate"].isoformat(),
            "BillingPeriodEndDate": period["BillingCycleEndDate"].isoformat(),
            "DeviceCount": 0,
            "TenantId": int(tenant_id),
        }
    }
