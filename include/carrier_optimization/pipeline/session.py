"""The session step: open or resume the request's session behind the legacy guard; its progress.

Every step is idempotent: run again after a retry, a clear or a kill, it first reads what is already
written and continues from there, so a run ends with the same result as an uninterrupted one.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.engine import Engine

from include.carrier_optimization.amop import instances
from include.carrier_optimization.amop.repository import AmopRepository, utcnow
from include.carrier_optimization.amop.run_records import RunRecords
from include.carrier_optimization.messaging.request import Request


class RunRefused(Exception):
    """Another optimization of the tenant is running; this request is refused without side effects."""


class RequestError(ValueError):
    """The request names something that does not exist (billing period, session, provider)."""


class SessionFinished(Exception):
    """The request continues a session whose instance already ended ``CompleteWithSuccess``: nothing to do.

    A duplicated continuation message (SQS delivers at least once) must not optimize the session again.
    """


def open_session(
    engine: Engine, request: Request, *, run_key: str, now: dt.datetime | None = None
) -> dict[str, Any]:
    """Resume the request's session or start one, with the legacy guard (:func:`check_guard`).

    ``run_key`` identifies the Airflow run: a retried step finds the session it opened before.
    Returns ``{session_id, session_guid, billing_period_id, resumed}``. Another run's request naming a
    session whose instance ended ``CompleteWithSuccess`` raises `SessionFinished`; a refused request
    raises `RunRefused` before anything is written.
    """
    repo = AmopRepository(engine)
    if repo.service_provider(request.service_provider_id) is None:
        raise RequestError(f"service provider {request.service_provider_id} does not exist")
    now = now or utcnow()
    period = billing_period(repo, request, now)
    mine = repo.session_for_run(run_key)
    if mine is not None:
        return {**mine, "billing_period_id": period["id"], "resumed": True}
    if request.session_id is not None:
        found = _continued_session(engine, repo, request)
        check_guard(engine, request, billing_period_id=period["id"], now=now)
        return {
            "session_id": int(found["Id"]),
            "session_guid": found["SessionGuid"],
            "billing_period_id": period["id"],
            "resumed": True,
        }
    check_guard(engine, request, billing_period_id=period["id"], now=now)
    created = repo.create_session(request.tenant_id, request.service_provider_id, period["id"])
    with engine.begin() as conn:
        instances.set_run_key(conn, created["session_id"], run_key)
    return {**created, "billing_period_id": period["id"], "resumed": False}


def _continued_session(engine: Engine, repo: AmopRepository, request: Request) -> dict[str, Any]:
    """The session the request continues; raises when it is missing or its instance already finished."""
    found = repo.session(request.session_id)
    if found is None:
        raise RequestError(f"optimization session {request.session_id} does not exist or is deleted")
    with engine.connect() as conn:
        done = instances.finished_instance_id(
            conn,
            session_id=request.session_id,
            service_provider_id=request.service_provider_id,
            portal_type_id=request.portal_type_id,
        )
    if done is not None:
        raise SessionFinished(
            f"optimization session {request.session_id} already finished (instance {done} "
            f"CompleteWithSuccess); request {request.message_id or '(form)'} not run again"
        )
    return found


def check_guard(engine: Engine, request: Request, *, billing_period_id: int, now: dt.datetime) -> None:
    """The legacy ``IsOptimizationRunning`` guard; raises `RunRefused` when the request must not start.

    - Every request: refused while an optimization of the tenant is in progress (another session
      with an unfinished instance).
    - A request without a session id that no person made (the scheduled window, the legacy scheduler):
      also refused while a session of the tenant is syncing, or when a session already optimized this
      provider's billing period without errors. One scheduled optimization per provider and period;
      after ``CompleteWithErrors`` the next one runs.
    - Explicit requests (the form, a portal request with its ``OptimizationSessionId``) start or resume
      their session otherwise: a person can always re-run after a finished optimization.
    """
    records = RunRecords(engine)
    tenant, own = request.tenant_id, request.session_id
    optimizing = AmopRepository(engine).running_session_id(tenant, exclude_session_id=own)
    if optimizing is not None:
        raise RunRefused(f"Optimization Is Already Running for tenant {tenant} (session {optimizing})")
    if request.explicit:
        return
    syncing = records.syncing_session(tenant, now=now, exclude_session_id=own)
    if syncing is not None:
        raise RunRefused(
            f"Optimization Is Already Running for tenant {tenant} (session {syncing} is syncing devices)"
        )
    done = records.finished_well_session(tenant, request.service_provider_id, billing_period_id)
    if done is not None:
        raise RunRefused(
            f"Optimization Is Already Running for tenant {tenant}: session {done} already optimized "
            f"service provider {request.service_provider_id} in billing period {billing_period_id}"
        )


def billing_period(repo: AmopRepository, request: Request, now: dt.datetime) -> dict[str, Any]:
    """The request's billing period: the one it names, else the provider's current one."""
    if request.bill_period_id is not None:
        period = repo.billing_period(request.bill_period_id)
        if period is None or period["ServiceProviderId"] != request.service_provider_id:
            raise RequestError(
                f"billing period {request.bill_period_id} does not exist for service provider "
                f"{request.service_provider_id}"
            )
        return period
    period = repo.current_billing_period(request.service_provider_id, now)
    if period is None:
        raise RequestError(f"service provider {request.service_provider_id} has no current billing period")
    return period


def set_progress(engine: Engine, session_id: int, progress: int, *, error: str | None = None) -> None:
    """Store the session's progress (0-100) and error text, as the portal reads them."""
    with engine.begin() as conn:
        instances.set_session_progress(conn, session_id, progress, error=error)
