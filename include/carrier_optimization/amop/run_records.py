"""Repository of the run model (docs/architecture.md): taken messages, window decisions, guard.

The SQL behind event-driven intake and the scheduled window, next to :mod:`repository`:

- ``AirflowProcessedMessage``: each SQS request a run took, by ``MessageId`` (a redelivered copy of a
  taken message never starts a second run);
- ``AirflowScheduleDecision``: each legacy request the scheduled window published;
- the session-guard reads (what the tenant is syncing or optimizing, what ended well in a period).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, exists, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.repository import utcnow
from include.carrier_optimization.amop.schema import OptimizationStatus

#: Progress the sync step stores while the devices sync (legacy progress 20).
SYNC_PROGRESS = 20
#: How long a session without an instance counts as syncing (the sync wait's own timeout).
SYNC_HORIZON = dt.timedelta(hours=6)


class SyncFailedError(RuntimeError):
    """The device sync of an awaited session failed: the session was stopped with its error.

    See :meth:`RunRecords.sync_error`; the sync-wait trigger raises it to end its wait at once.
    """


class RunRecords:
    """Reads and writes of the run model on the AMOP database (SQLAlchemy Core, no Airflow)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- taken messages ----------------------------------------------------------------------------

    def claim_message(self, message_id: str, *, queue: str, request: dict[str, Any], run_id: str) -> bool:
        """Record ``message_id`` as taken by ``run_id``; False when another run took it before.

        The same run claiming again (a retried task) gets True: the claim is the run's.
        """
        t = s.processed_message
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(t).values(
                        MessageId=message_id,
                        QueueName=queue,
                        TenantId=int(request["tenant_id"]),
                        ServiceProviderId=request.get("service_provider_id"),
                        BillingPeriodId=request.get("bill_period_id"),
                        OptimizationSessionId=request.get("session_id"),
                        AirflowRunId=run_id,
                        ReceivedDate=utcnow(),
                    )
                )
            return True
        except IntegrityError:
            return self.message_run(message_id) == run_id

    def message_run(self, message_id: str) -> str | None:
        """The run that took ``message_id``, or None."""
        t = s.processed_message
        with self.engine.connect() as conn:
            return conn.execute(select(t.c.AirflowRunId).where(t.c.MessageId == message_id)).scalar()

    # -- scheduled window --------------------------------------------------------------------------

    def record_decision(
        self,
        *,
        tenant_id: int,
        service_provider_id: int,
        billing_period_id: int,
        reason: str,
        message_id: str | None,
        at: dt.datetime,
    ) -> None:
        """Write down one published window request."""
        with self.engine.begin() as conn:
            conn.execute(
                insert(s.schedule_decision).values(
                    TenantId=tenant_id,
                    ServiceProviderId=service_provider_id,
                    BillingPeriodId=billing_period_id,
                    DecidedAt=at,
                    Reason=reason,
                    MessageId=message_id,
                )
            )

    def last_decision(self, service_provider_id: int, billing_period_id: int) -> dict[str, Any] | None:
        """The newest published window request of the provider and period, or None."""
        t = s.schedule_decision
        query = (
            select(t)
            .where(t.c.ServiceProviderId == service_provider_id, t.c.BillingPeriodId == billing_period_id)
            .order_by(t.c.Id.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return dict(row._mapping) if row else None

    def newest_instance(
        self, service_provider_id: int, billing_period_id: int, *, since: dt.datetime | None = None
    ) -> dict[str, Any] | None:
        """The provider's newest instance in the period (created at or after ``since``), or None."""
        ins = s.optimization_instance
        query = select(ins).where(
            ins.c.ServiceProviderId == service_provider_id,
            ins.c.OptimizationBillingPeriodId == billing_period_id,
        )
        if since is not None:
            query = query.where(ins.c.CreatedDate >= since)
        with self.engine.connect() as conn:
            row = conn.execute(query.order_by(ins.c.Id.desc()).limit(1)).first()
        return dict(row._mapping) if row else None

    # -- session guard -----------------------------------------------------------------------------

    def syncing_session(
        self, tenant_id: int, *, now: dt.datetime, exclude_session_id: int | None = None
    ) -> int | None:
        """A live session of the tenant waiting for its device sync (progress 20, no instance yet)."""
        ses, ins = s.optimization_session, s.optimization_instance
        query = select(ses.c.Id).where(
            *self._live(tenant_id, exclude_session_id),
            ses.c.Progress == SYNC_PROGRESS,
            ses.c.CreatedDate >= now - SYNC_HORIZON,
            ~exists().where(ins.c.OptimizationSessionId == ses.c.Id),
        )
        return self._first_id(query)

    def finished_well_session(
        self, tenant_id: int, service_provider_id: int, billing_period_id: int
    ) -> int | None:
        """A session of the tenant whose instance of the provider and period ended CompleteWithSuccess."""
        ses, ins = s.optimization_session, s.optimization_instance
        query = (
            select(ses.c.Id)
            .join(ins, ins.c.OptimizationSessionId == ses.c.Id)
            .where(
                *self._live(tenant_id, None),
                ins.c.ServiceProviderId == service_provider_id,
                ins.c.OptimizationBillingPeriodId == billing_period_id,
                ins.c.RunStatusId == int(OptimizationStatus.CompleteWithSuccess),
            )
        )
        return self._first_id(query)

    def awaiting_sync_in_a_run(self, session_id: int, *, now: dt.datetime) -> bool:
        """Whether one of our runs opened ``session_id`` and waits for its sync (its ``sync_wait``)."""
        ses, ins = s.optimization_session, s.optimization_instance
        query = select(ses.c.Id).where(
            ses.c.Id == session_id,
            ses.c.IsDeleted.is_(False),
            ses.c.AirflowRunId.is_not(None),
            ses.c.Progress == SYNC_PROGRESS,
            ses.c.CreatedDate >= now - SYNC_HORIZON,
            ~exists().where(ins.c.OptimizationSessionId == ses.c.Id),
        )
        return self._first_id(query) is not None

    def sync_error(self, session_id: int) -> str | None:
        """The error of a session its failed sync stopped (deleted, inactive, with an error), or None."""
        ses = s.optimization_session
        with self.engine.connect() as conn:
            row = conn.execute(
                select(ses.c.ErrorMessage).where(
                    and_(ses.c.Id == session_id, ses.c.IsDeleted.is_(True), ses.c.ErrorMessage.is_not(None))
                )
            ).first()
        return None if row is None else str(row[0])

    @staticmethod
    def _live(tenant_id: int, exclude_session_id: int | None) -> list[Any]:
        ses = s.optimization_session
        where = [ses.c.TenantId == tenant_id, ses.c.IsActive.is_(True), ses.c.IsDeleted.is_(False)]
        if exclude_session_id is not None:
            where.append(ses.c.Id != exclude_session_id)
        return where

    def _first_id(self, query: Any) -> int | None:
        ses = s.optimization_session
        with self.engine.connect() as conn:
            row = conn.execute(query.order_by(ses.c.CreatedDate.desc()).limit(1)).first()
        return int(row[0]) if row else None
