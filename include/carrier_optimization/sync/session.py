"""What a device sync tells its session: the completion's tenant and billing period, the sync-error e-mail.

docs/architecture.md, "Device sync": :func:`completion_target` names the billing period the completion
message carries (the request's; the legacy device cleanup re-derived it from the clock). After a sync
failed for good the session is stopped (``amop.device_sync.stop_session``, the legacy
``ProcessStopCarrierOptimization``) and :func:`sync_error_email` is the e-mail that goes with it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Engine

from include.carrier_optimization.amop.repository import AmopRepository, utcnow
from include.carrier_optimization.messaging.sync_messages import DeviceSyncRequest
from include.carrier_optimization.reporting.notify import Email

__all__ = ["DEVICE_SYNC_ERROR_SUBJECT", "SYNC_ERROR_SUBJECT", "completion_target", "sync_error_email"]

#: Subject of the sync-error e-mail with a session (legacy ``OptimizationSyncDeviceErrorEmailSubject``).
SYNC_ERROR_SUBJECT = "[Error] Carrier Plan Optimization: Device Sync Failed for {provider}"
#: Subject of the sync-error e-mail without a session (legacy text).
DEVICE_SYNC_ERROR_SUBJECT = "Error in Device Sync for {provider}"


def completion_target(
    engine: Engine,
    request: DeviceSyncRequest,
    *,
    tenant_id: int | None = None,
    now: dt.datetime | None = None,
) -> dict[str, int]:
    """Tenant and billing period the completion message of ``request`` carries.

    The billing period is the request's ``BillPeriodId``; a legacy request without one gets the
    provider's current period (``now`` in local billing time), as the legacy device cleanup did. The
    tenant is the request's ``TenantId``, else ``tenant_id``, else the provider's ``TenantId``.

    Returns
    -------
    dict
        ``{"tenant_id", "bill_period_id", "bill_year", "bill_month"}``.

    Raises
    ------
    ValueError
        When the period or the tenant cannot be found, naming the request and the provider.
    """
    repo = AmopRepository(engine)
    sp = request.service_provider_id
    if request.bill_period_id is not None:
        period = repo.billing_period(request.bill_period_id)
        if period is None or period["ServiceProviderId"] != sp:
            raise ValueError(
                f"device-sync request {request.message_id}: billing period {request.bill_period_id} does not "
                f"exist for service provider {sp}"
            )
    else:
        period = repo.current_billing_period(sp, now or utcnow())
        if period is None:
            raise ValueError(
                f"device-sync request {request.message_id}: service provider {sp} has no current "
                "billing period"
            )
    tenant = request.tenant_id or tenant_id
    if tenant is None:
        provider = repo.service_provider(sp) or {}
        tenant = provider.get("TenantId")
    if tenant is None:
        raise ValueError(f"device-sync request {request.message_id}: service provider {sp} has no tenant")
    return {
        "tenant_id": int(tenant),
        "bill_period_id": int(period["id"]),
        "bill_year": int(period["BillYear"]),
        "bill_month": int(period["BillMonth"]),
    }


def sync_error_email(
    *,
    recipients: Sequence[str],
    provider_name: str,
    error: str,
    session_id: int | None = None,
    request: dict[str, Any] | None = None,
    environment: str | None = None,
) -> Email:
    """The sync-error e-mail.

    With a session: the optimization sync error (the session is stopped). Without one: the legacy
    "Error in Device Sync for {provider}", with `` ({environment})`` appended outside production.
    """
    if session_id is not None:
        subject = SYNC_ERROR_SUBJECT.format(provider=provider_name)
        lead = (
            f"The device sync for optimization session {session_id} of {provider_name} failed; the session "
            "was stopped (deleted, inactive). Start a new optimization once the carrier API answers."
        )
    else:
        subject = DEVICE_SYNC_ERROR_SUBJECT.format(provider=provider_name)
        if environment and environment.lower() not in ("prod", "production"):
            subject += f" ({environment})"
        lead = f"The device sync of {provider_name} failed."
    body = f"{lead}\n\nError: {error}\n\nRequest: {request}\n"
    return Email(tuple(recipients), subject, body)
