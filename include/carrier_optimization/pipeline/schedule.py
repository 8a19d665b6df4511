"""The legacy "is it time to run" window of scheduled carrier optimizations (docs/architecture.md)."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any
from zoneinfo import ZoneInfo

from include.carrier_optimization.amop.schema import OptimizationStatus

WINDOW_DAYS = 8


def local_billing_time(now_utc: dt.datetime, time_zone: str) -> dt.datetime:
    """``now_utc`` (aware, or naive UTC) as naive local billing time, the form billing periods use."""
    if now_utc.tzinfo is None:
        now_utc = now_utc.replace(tzinfo=dt.UTC)
    return now_utc.astimezone(ZoneInfo(time_zone)).replace(tzinfo=None)


def is_time_to_run(period_end: dt.datetime, now_local: dt.datetime, start_hour: int | None) -> bool:
    """Whether a scheduled tick optimizes: the last days of the period, from the provider's start hour.

    Runs when ``(days_until_end < 8 and today <= end day) or (today == end day)``, and the local hour
    is at least ``start_hour``. Decision (the legacy code throws on a missing start hour inside the
    window): a provider without a start hour is never scheduled; it runs on request only.
    """
    if start_hour is None:
        return False
    days_until_end = (period_end - now_local).total_seconds() / 86400
    in_window = (days_until_end < WINDOW_DAYS and now_local.date() <= period_end.date()) or (
        now_local.date() == period_end.date()
    )
    return in_window and now_local.hour >= start_hour


@dataclass(frozen=True)
class WindowDecision:
    """One provider's decision on a scheduled tick: publish the legacy request, and why."""

    tenant_id: int
    service_provider_id: int
    billing_period_id: int
    bill_year: int
    bill_month: int
    reason: str


def window_reason(
    *,
    window_open: bool,
    last_decision: dict[str, Any] | None,
    newest_instance: dict[str, Any] | None,
    started_nothing: bool = False,
) -> str | None:
    """Why a tick publishes the provider's request, or None: once per period, again after errors.

    ``newest_instance`` is the provider's newest instance in the period created since ``last_decision``;
    ``started_nothing``: a run took the last request, and it left no instance and nothing of the tenant
    syncs or optimizes (the guard refused it while another session ran, or its sync failed).
    """
    if not window_open:
        return None
    if last_decision is None:
        return "window open: first request of the billing period"
    failed = int(OptimizationStatus.CompleteWithErrors)
    if newest_instance is not None and newest_instance["RunStatusId"] == failed:
        return f"window open: instance {newest_instance['Id']} ended CompleteWithErrors, retried"
    if newest_instance is None and started_nothing:
        return f"window open: request {last_decision['MessageId']} started no optimization, retried"
    return None


def due_requests(
    repo: Any,
    records: Any,
    *,
    tenant_id: int,
    start_hours: dict[int, int | None],
    billing_time_zone: str,
    now_utc: dt.datetime,
) -> list[WindowDecision]:
    """The requests a scheduled tick publishes for one tenant.

    ``repo`` is an ``AmopRepository``, ``records`` a ``RunRecords``; a closed window reads one billing
    period per provider and nothing more.
    """
    now_local = local_billing_time(now_utc, billing_time_zone)
    decisions = []
    for provider_id, start_hour in start_hours.items():
        period = repo.current_billing_period(int(provider_id), now_local)
        if period is None:
            continue
        end = period["BillingCycleEndDate"]
        window_open = is_time_to_run(end, now_local, start_hour)
        last = records.last_decision(int(provider_id), period["id"]) if window_open else None
        newest = (
            records.newest_instance(int(provider_id), period["id"], since=last["DecidedAt"]) if last else None
        )
        idle = last is not None and newest is None and _started_nothing(repo, records, tenant_id, last)
        reason = window_reason(
            window_open=window_open, last_decision=last, newest_instance=newest, started_nothing=idle
        )
        if reason is not None:
            decisions.append(
                WindowDecision(tenant_id, int(provider_id), int(period["id"]), end.year, end.month, reason)
            )
    return decisions


def _started_nothing(repo: Any, records: Any, tenant_id: int, last: dict[str, Any]) -> bool:
    from include.carrier_optimization.amop.repository import utcnow

    return (
        records.message_run(last["MessageId"]) is not None
        and repo.running_session_id(tenant_id) is None
        and records.syncing_session(tenant_id, now=utcnow()) is None
    )


def publish_due_requests(
    engine: Any,
    client: Any,
    *,
    tenant_id: int,
    request_queue: str,
    start_hours: dict[int, int | None],
    billing_time_zone: str,
    now_utc: dt.datetime,
) -> list[dict[str, Any]]:
    """One scheduled tick of one tenant: publish each due legacy request, then write the decision down.

    Publish first, record second: a crash in between publishes again on the next tick, and the session
    guard refuses the second request (a scheduled request never optimizes a period twice).
    """
    from include.carrier_optimization.amop.repository import AmopRepository, utcnow
    from include.carrier_optimization.amop.run_records import RunRecords
    from include.carrier_optimization.messaging.publishing import build_request_attributes
    from include.carrier_optimization.messaging.queues import resolve_queue_url

    records = RunRecords(engine)
    decisions = due_requests(
        AmopRepository(engine),
        records,
        tenant_id=tenant_id,
        start_hours=start_hours,
        billing_time_zone=billing_time_zone,
        now_utc=now_utc,
    )
    published = []
    for d in decisions:
        response = client.send_message(
            QueueUrl=resolve_queue_url(client, request_queue),
            MessageBody=f"Carrier to optimize is for Billing Period {d.bill_year}/{d.bill_month}",
            MessageAttributes=build_request_attributes(
                tenant_id=d.tenant_id,
                service_provider_id=d.service_provider_id,
                bill_period_id=d.billing_period_id,
                has_synced=False,
                bill_year=d.bill_year,
                bill_month=d.bill_month,
            ),
        )
        records.record_decision(
            tenant_id=d.tenant_id,
            service_provider_id=d.service_provider_id,
            billing_period_id=d.billing_period_id,
            reason=d.reason,
            message_id=response["MessageId"],
            at=utcnow(),
        )
        published.append({**asdict(d), "message_id": response["MessageId"]})
    return published
