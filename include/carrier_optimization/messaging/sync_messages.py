"""Device-sync request messages on SQS: the request, parsing and building it, the completion message.

A device-sync request is what the optimization DAG (or the legacy QueueCarrierPlanOptimization)
publishes to the device-sync queue (docs/architecture.md): ``PageNumber``,
``LastSyncDate`` (ISO 8601 here; the legacy ``DateTime.ToString()`` is culture-formatted),
``ServiceProviderId``, ``NextStep``, ``OptimizationSessionId`` and, from this package's producer,
``TenantId`` and ``BillPeriodId``. The completion is an optimization continuation
(``HasSynced=True`` with the session and the billing period of the request, not one re-derived from
the clock as the legacy device cleanup did).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from include.carrier_optimization.messaging.attributes import (
    BILL_PERIOD_ID,
    MESSAGE_ID,
    OPTIMIZATION_SESSION_ID,
    REASON_MISSING,
    SERVICE_PROVIDER_ID,
    TENANT_ID,
    UNKNOWN_MESSAGE_ID,
    MalformedMessageError,
    attribute_text,
    message_id_of,
    optional_attribute,
    shown,
    string_attribute,
)
from include.carrier_optimization.messaging.publishing import build_request_attributes

__all__ = [
    "LAST_SYNC_DATE",
    "NEXT_STEP",
    "NEXT_STEPS",
    "OPTIMIZATION_INSTANCE_ID",
    "PAGE_NUMBER",
    "DeviceSyncRequest",
    "build_completion_attributes",
    "build_sync_request_attributes",
    "legacy_last_sync_date",
    "parse_sync_request",
]

PAGE_NUMBER = "PageNumber"
LAST_SYNC_DATE = "LastSyncDate"
NEXT_STEP = "NextStep"
OPTIMIZATION_INSTANCE_ID = "OptimizationInstanceId"
#: ``JasperDeviceSyncNextStep`` names; the numbers 0, 1, 2 are accepted for the legacy int form.
NEXT_STEP_USAGE = "DeviceUsageByRatePlan"
NEXT_STEPS = (NEXT_STEP_USAGE, "DeviceUsageExport", "UpdateDeviceRatePlan")
_NEXT_STEP_ALIASES = {
    **{name.lower(): name for name in NEXT_STEPS},
    **{str(index): name for index, name in enumerate(NEXT_STEPS)},
    "device_usage_by_rate_plan": NEXT_STEP_USAGE,
}

REASON_NOT_INTEGER = "must be an integer > 0, got {value!r}"
REASON_NOT_ISO = "must be an ISO 8601 date-time such as 2026-10-27T17:42:07Z, got {value!r}"
REASON_NOT_STEP = "must be one of " + ", ".join(NEXT_STEPS) + ", got {value!r}"


@dataclass(frozen=True)
class DeviceSyncRequest:
    """One parsed device-sync request (the sensor's XCom value, via :meth:`to_dict`).

    Attributes
    ----------
    service_provider_id : int
        ``ServiceProviderId``; the carrier account to sync.
    page_number : int
        ``PageNumber`` to start from (1 for a new sync: staging is cleared first).
    last_sync_date : str
        ``LastSyncDate`` as ISO 8601 UTC (``2026-10-27T17:42:07Z``): the ``modifiedSince`` of the pages.
    next_step : str
        ``NextStep`` name (default ``DeviceUsageByRatePlan``).
    session_id : int or None
        ``OptimizationSessionId``; with it the sync ends by continuing that optimization.
    tenant_id, bill_period_id, instance_id : int or None
        ``TenantId``, ``BillPeriodId``, ``OptimizationInstanceId`` when given.
    message_id : str
        SQS ``MessageId``.
    """

    service_provider_id: int
    page_number: int
    last_sync_date: str
    next_step: str
    session_id: int | None
    tenant_id: int | None
    bill_period_id: int | None
    instance_id: int | None
    message_id: str

    def to_dict(self) -> dict[str, Any]:
        """Return the request as a small JSON-serializable dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeviceSyncRequest:
        """Rebuild a request from :meth:`to_dict` output; raises ``ValueError`` on missing or unknown keys."""
        expected = set(cls.__dataclass_fields__)
        if not isinstance(data, Mapping):
            raise ValueError(f"`data` must be a mapping with the keys {sorted(expected)}; got {shown(data)}")
        missing = sorted(expected - set(data))
        unknown = sorted(set(data) - expected)
        if missing or unknown:
            raise ValueError(
                f"`data` must have exactly the keys {sorted(expected)}; missing {missing}, unknown {unknown}"
            )
        return cls(**data)

    @property
    def modified_since(self) -> dt.datetime:
        """``last_sync_date`` as a naive UTC datetime."""
        return _parse_iso(self.last_sync_date)


def _parse_id(message_id: str, name: str, text: str) -> int:
    stripped = text.strip()
    digits = stripped[1:] if stripped[:1] == "+" else stripped
    if not digits.isdigit() or not digits.isascii() or int(digits) <= 0:
        raise MalformedMessageError(message_id, name, REASON_NOT_INTEGER.format(value=shown(text)))
    return int(digits)


def _parse_iso(text: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(text.strip())
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return parsed


def _iso_z(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def legacy_last_sync_date(now: dt.datetime) -> dt.datetime:
    """``now`` minus one calendar month minus one day, as the legacy ``UtcNow.AddMonths(-1).AddDays(-1)``.

    ``AddMonths`` keeps the time of day and clamps the day to the target month's length (31 March →
    28/29 February); then one day is taken off.
    """
    year, month = (now.year, now.month - 1) if now.month > 1 else (now.year - 1, 12)
    next_first = dt.date(year + month // 12, month % 12 + 1, 1)
    last_day = (next_first - dt.timedelta(days=1)).day
    return now.replace(year=year, month=month, day=min(now.day, last_day)) - dt.timedelta(days=1)


def parse_sync_request(message: Mapping[str, Any]) -> DeviceSyncRequest:
    """Parse one boto3 message of the device-sync queue into a :class:`DeviceSyncRequest`.

    Rules: ``ServiceProviderId`` is a required integer > 0; ``LastSyncDate`` is a required ISO 8601
    date-time (normalized to UTC ``...Z``); ``PageNumber`` is an integer > 0 (absent: 1);
    ``NextStep`` a ``JasperDeviceSyncNextStep`` name or number (absent: ``DeviceUsageByRatePlan``);
    ``OptimizationSessionId``, ``TenantId``, ``BillPeriodId`` and ``OptimizationInstanceId`` optional
    integers > 0.

    Raises
    ------
    MalformedMessageError
        Naming the message id and the first offending attribute.

    Examples
    --------
    >>> message = {"MessageId": "m-1", "MessageAttributes": build_sync_request_attributes(
    ...     service_provider_id=3, last_sync_date="2026-10-27T17:42:07Z", session_id=9)}
    >>> parse_sync_request(message).session_id
    9
    """
    message_id = message_id_of(message)
    if message_id == UNKNOWN_MESSAGE_ID:
        raise MalformedMessageError(message_id, MESSAGE_ID, REASON_MISSING)
    provider_text = attribute_text(message, SERVICE_PROVIDER_ID)
    if provider_text is None:
        raise MalformedMessageError(message_id, SERVICE_PROVIDER_ID, REASON_MISSING)
    service_provider_id = _parse_id(message_id, SERVICE_PROVIDER_ID, provider_text)
    date_text = attribute_text(message, LAST_SYNC_DATE)
    if date_text is None:
        raise MalformedMessageError(message_id, LAST_SYNC_DATE, REASON_MISSING)
    try:
        last_sync = _iso_z(_parse_iso(date_text))
    except ValueError as error:
        raise MalformedMessageError(
            message_id, LAST_SYNC_DATE, REASON_NOT_ISO.format(value=shown(date_text))
        ) from error
    page_text = attribute_text(message, PAGE_NUMBER)
    page_number = 1 if page_text is None else _parse_id(message_id, PAGE_NUMBER, page_text)
    step_text = attribute_text(message, NEXT_STEP)
    if step_text is None:
        next_step = NEXT_STEP_USAGE
    else:
        next_step = _NEXT_STEP_ALIASES.get(step_text.strip().lower())
        if next_step is None:
            raise MalformedMessageError(message_id, NEXT_STEP, REASON_NOT_STEP.format(value=shown(step_text)))
    return DeviceSyncRequest(
        service_provider_id=service_provider_id,
        page_number=page_number,
        last_sync_date=last_sync,
        next_step=next_step,
        session_id=optional_attribute(message, message_id, OPTIMIZATION_SESSION_ID, _parse_id),
        tenant_id=optional_attribute(message, message_id, TENANT_ID, _parse_id),
        bill_period_id=optional_attribute(message, message_id, BILL_PERIOD_ID, _parse_id),
        instance_id=optional_attribute(message, message_id, OPTIMIZATION_INSTANCE_ID, _parse_id),
        message_id=message_id,
    )


def build_sync_request_attributes(
    *,
    service_provider_id: int,
    last_sync_date: dt.datetime | str,
    page_number: int = 1,
    next_step: str = NEXT_STEP_USAGE,
    session_id: int | None = None,
    tenant_id: int | None = None,
    bill_period_id: int | None = None,
) -> dict[str, dict[str, str]]:
    """boto3 ``MessageAttributes`` of a device-sync request (all DataType ``String``, dates ISO ``...Z``).

    :func:`parse_sync_request` reads them back. Raises ``ValueError`` naming an invalid argument.
    """
    for name, value, optional in (
        ("service_provider_id", service_provider_id, False),
        ("page_number", page_number, False),
        ("session_id", session_id, True),
        ("tenant_id", tenant_id, True),
        ("bill_period_id", bill_period_id, True),
    ):
        if optional and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"`{name}` must be a positive integer, got {shown(value)}")
    if next_step not in NEXT_STEPS:
        raise ValueError(f"`next_step` must be one of {', '.join(NEXT_STEPS)}, got {shown(next_step)}")
    if isinstance(last_sync_date, str):
        last_sync_date = _parse_iso(last_sync_date)
    elif last_sync_date.tzinfo is not None:
        last_sync_date = last_sync_date.astimezone(dt.UTC).replace(tzinfo=None)
    attributes = {
        PAGE_NUMBER: string_attribute(page_number),
        LAST_SYNC_DATE: string_attribute(_iso_z(last_sync_date)),
        SERVICE_PROVIDER_ID: string_attribute(service_provider_id),
        NEXT_STEP: string_attribute(next_step),
    }
    for name, value in (
        (OPTIMIZATION_SESSION_ID, session_id),
        (TENANT_ID, tenant_id),
        (BILL_PERIOD_ID, bill_period_id),
    ):
        if value is not None:
            attributes[name] = string_attribute(value)
    return attributes


def build_completion_attributes(
    request: DeviceSyncRequest,
    *,
    tenant_id: int,
    bill_period_id: int,
    bill_year: int | None = None,
    bill_month: int | None = None,
) -> dict[str, dict[str, str]]:
    """Attributes of the completion message: the optimization continuation of the request's session.

    ``HasSynced=True``, the request's ``OptimizationSessionId`` and ``ServiceProviderId``, the
    ``TenantId`` and ``BillPeriodId`` given (the request's own when it carried them), ``BillYear`` and
    ``BillMonth`` when known: what :func:`messaging.parsing.parse_request` and the
    optimization DAG's ``sync_wait`` sensor take.

    Raises
    ------
    ValueError
        When the request has no session (nothing to continue) or an id is invalid.
    """
    if request.session_id is None:
        raise ValueError(
            f"device-sync request {request.message_id} has no OptimizationSessionId: "
            "there is no optimization to continue"
        )
    return build_request_attributes(
        tenant_id=tenant_id,
        service_provider_id=request.service_provider_id,
        bill_period_id=bill_period_id,
        session_id=request.session_id,
        has_synced=True,
        bill_year=bill_year,
        bill_month=bill_month,
    )
