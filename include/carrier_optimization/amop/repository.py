"""Parameterized reads and writes of the AMOP tables used by the pipeline (SQLAlchemy Core only)."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import Table, and_, delete, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import Label

from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.schema import OptimizationStatus
from include.carrier_optimization.amop.storage import bulk_insert, frame_of

if TYPE_CHECKING:
    from include.carrier_optimization.core.fleet import Fleet

LOG = logging.getLogger(__name__)


def utcnow() -> dt.datetime:
    """Naive UTC now, the form the AMOP DateTime columns hold."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def run_key(dag_id: str, run_id: str) -> str:
    """The key of an Airflow run in ``OptimizationSession.AirflowRunId``: ``<dag_id>/<run_id>``."""
    return f"{dag_id}/{run_id}"


def plan_columns(plan: Table) -> list[Label]:
    """A carrier plan's columns under the command-line plan names (``plan_id``, ``code``, ... ``pooled``)."""
    return [
        plan.c.Id.label("plan_id"),
        plan.c.RatePlanCode.label("code"),
        plan.c.DisplayRate.label("monthly_charge"),
        plan.c.PlanMB.label("included_mb"),
        plan.c.OverageRateCost.label("overage_rate"),
        plan.c.DataPerOverageCharge.label("overage_block_mb"),
        plan.c.AllowsSimPooling.label("pooled"),
    ]


class AmopRepository:
    """Reads and writes of one AMOP database; receives its engine, connects only when used."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- reference data ---------------------------------------------------------------------------

    def write_fleet(self, fleet: Fleet) -> int:
        """Replace the tenant's provider, billing period, plans, comm plans and devices by ``fleet``'s.

        Returns the id of the billing period written.
        """
        t = fleet.tenant
        with self.engine.begin() as conn:
            self._delete_provider(conn, t.service_provider_id)
            if (
                conn.execute(select(s.integration.c.id).where(s.integration.c.id == t.integration_id)).first()
                is None
            ):
                conn.execute(insert(s.integration).values(id=t.integration_id, Name="Jasper", PortalTypeId=0))
            conn.execute(
                insert(s.service_provider).values(
                    id=t.service_provider_id,
                    IntegrationId=t.integration_id,
                    TenantId=t.tenant_id,
                    Name=t.service_provider_name,
                    DisplayName=t.service_provider_name,
                    UsesProration=t.uses_proration,
                    OptimizationStartHourLocalTime=t.start_hour,
                )
            )
            period_id = conn.execute(
                insert(s.billing_period).values(
                    ServiceProviderId=t.service_provider_id,
                    BillYear=fleet.period_end.year,
                    BillMonth=fleet.period_end.month,
                    BillingCycleStartDate=fleet.period_start,
                    BillingCycleEndDate=fleet.period_end,
                    BillPeriodEndDay=fleet.period_end.day,
                    BillPeriodEndHour=fleet.period_end.hour,
                )
            ).inserted_primary_key[0]
            bulk_insert(conn, s.carrier_rate_plan, _plan_rows(fleet))
            bulk_insert(
                conn,
                s.communication_plan,
                (
                    {
                        "ServiceProviderId": t.service_provider_id,
                        "CommunicationPlanName": r.comm_plan,
                        "RatePlanIds": r.allowed_plan_ids,
                        "IsDeleted": False,
                    }
                    for r in fleet.comm_plans.itertuples()
                ),
            )
            bulk_insert(conn, s.device, _device_rows(fleet))
        LOG.info("Wrote tenant %s: %d SIMs, %d plans", t.name, len(fleet.devices), len(fleet.plans))
        return int(period_id)

    @staticmethod
    def _delete_provider(conn, service_provider_id: int) -> None:
        sp = service_provider_id
        for table, column in (
            (s.device, s.device.c.ServiceProviderId),
            (s.communication_plan, s.communication_plan.c.ServiceProviderId),
            (s.carrier_rate_plan, s.carrier_rate_plan.c.ServiceProviderId),
            (s.billing_period, s.billing_period.c.ServiceProviderId),
        ):
            conn.execute(delete(table).where(column == sp))
        conn.execute(delete(s.service_provider).where(s.service_provider.c.id == sp))

    def service_provider(self, service_provider_id: int) -> dict[str, Any] | None:
        """The provider row as a dict, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(s.service_provider).where(s.service_provider.c.id == service_provider_id)
            ).first()
        return dict(row._mapping) if row else None

    def billing_period(self, billing_period_id: int) -> dict[str, Any] | None:
        """The billing period row as a dict, or None when it is missing or deleted."""
        bp = s.billing_period
        with self.engine.connect() as conn:
            row = conn.execute(
                select(bp).where(and_(bp.c.id == billing_period_id, bp.c.IsDeleted.is_(False)))
            ).first()
        return dict(row._mapping) if row else None

    def current_billing_period(self, service_provider_id: int, now: dt.datetime) -> dict[str, Any] | None:
        """The provider's period containing ``now`` (local billing time), else the next one to end."""
        bp = s.billing_period
        query = (
            select(bp)
            .where(
                bp.c.ServiceProviderId == service_provider_id,
                bp.c.IsDeleted.is_(False),
                bp.c.BillingCycleEndDate >= now,
            )
            .order_by(bp.c.BillingCycleEndDate)
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return dict(row._mapping) if row else None

    def rate_plans(self, service_provider_id: int) -> pd.DataFrame:
        """Carrier plans of the provider (not deleted) in the CLI plan columns."""
        p = s.carrier_rate_plan
        query = (
            select(*plan_columns(p))
            .where(p.c.ServiceProviderId == service_provider_id, p.c.IsDeleted.is_(False))
            .order_by(p.c.Id)
        )
        with self.engine.connect() as conn:
            frame = pd.DataFrame(
                conn.execute(query).mappings().all(), columns=list(query.selected_columns.keys())
            )
        frame = frame.astype(
            {"monthly_charge": float, "overage_rate": float, "included_mb": float, "overage_block_mb": float}
        )
        frame["pooled"] = frame["pooled"].astype(int)
        frame["sms_rate"] = 0.0  # carrier plans carry no SMS rate (legacy: constant 0)
        return frame

    def comm_plans(self, service_provider_id: int) -> pd.DataFrame:
        """Communication plans with their allowed plan ids (``comm_plan, allowed_plan_ids``)."""
        c = s.communication_plan
        query = (
            select(
                c.c.Id.label("comm_plan_id"),
                c.c.CommunicationPlanName.label("comm_plan"),
                c.c.RatePlanIds.label("allowed_plan_ids"),
            )
            .where(c.c.ServiceProviderId == service_provider_id, c.c.IsDeleted.is_(False))
            .order_by(c.c.Id)
        )
        with self.engine.connect() as conn:
            return pd.DataFrame(
                conn.execute(query).mappings().all(),
                columns=["comm_plan_id", "comm_plan", "allowed_plan_ids"],
            )

    def devices(self, service_provider_id: int, tenant_id: int) -> pd.DataFrame:
        """The provider's SIMs of the tenant, as the legacy ``vwOptimizationSimCard`` gives them."""
        d = s.device
        query = (
            select(
                d.c.Id.label("device_id"),
                d.c.ICCID.label("iccid"),
                d.c.MSISDN.label("msisdn"),
                d.c.Status.label("status"),
                d.c.CommunicationPlan.label("comm_plan"),
                d.c.CarrierRatePlanId.label("current_plan_id"),
                d.c.CtdDataUsage.label("ctd_bytes"),
                d.c.UsageDate.label("usage_date"),
                d.c.SmsUsage.label("sms"),
                d.c.ProviderDateActivated.label("date_activated"),
            )
            .where(
                d.c.ServiceProviderId == service_provider_id,
                d.c.TenantId == tenant_id,
                d.c.IsDeleted.is_(False),
            )
            .order_by(d.c.Id)
        )
        with self.engine.connect() as conn:
            return frame_of(conn.execute(query).all(), list(query.selected_columns.keys()))

    # -- sessions and instances ---------------------------------------------------------------------

    def create_session(
        self, tenant_id: int, service_provider_id: int, billing_period_id: int
    ) -> dict[str, Any]:
        """Start an optimization session (``usp_Optimization_Create_OptimizationSession``)."""
        guid = str(uuid.uuid4())
        with self.engine.begin() as conn:
            session_id = conn.execute(
                insert(s.optimization_session).values(
                    SessionGuid=guid,
                    TenantId=tenant_id,
                    ServiceProviderId=service_provider_id,
                    BillingPeriodId=billing_period_id,
                    OptimizationTypeId=0,
                    CreatedDate=utcnow(),
                )
            ).inserted_primary_key[0]
        return {"session_id": int(session_id), "session_guid": guid}

    def session(self, session_id: int) -> dict[str, Any] | None:
        """The session row, or None when missing or deleted."""
        t = s.optimization_session
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.Id == session_id, t.c.IsDeleted.is_(False))).first()
        return dict(row._mapping) if row else None

    def session_for_run(self, run_key: str) -> dict[str, Any] | None:
        """The session an Airflow run (``<dag_id>/<run_id>``) opened, or None."""
        t = s.optimization_session
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.c.Id, t.c.SessionGuid).where(t.c.AirflowRunId == run_key).order_by(t.c.Id.desc())
            ).first()
        return {"session_id": int(row.Id), "session_guid": row.SessionGuid} if row else None

    def running_session_id(self, tenant_id: int, *, exclude_session_id: int | None = None) -> int | None:
        """Id of the tenant's active session with an unfinished instance, or None."""
        ses, ins = s.optimization_session, s.optimization_instance
        finished = [
            int(x) for x in (OptimizationStatus.CompleteWithSuccess, OptimizationStatus.CompleteWithErrors)
        ]
        query = (
            select(ses.c.Id)
            .join(ins, ins.c.OptimizationSessionId == ses.c.Id)
            .where(
                ses.c.TenantId == tenant_id,
                ses.c.IsActive.is_(True),
                ses.c.IsDeleted.is_(False),
                ins.c.RunStatusId.not_in(finished),
            )
            .order_by(ses.c.CreatedDate.desc())
        )
        if exclude_session_id is not None:
            query = query.where(ses.c.Id != exclude_session_id)
        with self.engine.connect() as conn:
            row = conn.execute(query.limit(1)).first()
        return int(row[0]) if row else None

    def start_instance(
        self,
        *,
        session_id: int,
        tenant_id: int,
        service_provider_id: int,
        billing_period: dict[str, Any],
        portal_type_id: int = 0,
        sqs_message_id: str | None = None,
    ) -> int:
        """Insert the (session, provider, portal type) instance as NotStarted, or return the existing one.

        ``sqs_message_id`` is the id of the SQS message that requested the run (None for the form).
        """
        ins = s.optimization_instance
        key = and_(
            ins.c.OptimizationSessionId == session_id,
            ins.c.ServiceProviderId == service_provider_id,
            ins.c.PortalTypeId == portal_type_id,
        )
        with self.engine.begin() as conn:
            existing = conn.execute(select(ins.c.Id).where(key)).first()
            if existing:
                return int(existing[0])
            return int(
                conn.execute(
                    insert(ins).values(
                        RunStatusId=int(OptimizationStatus.NotStarted),
                        RunStartTime=utcnow(),
                        BillingPeriodStartDate=billing_period["BillingCycleStartDate"],
                        BillingPeriodEndDate=billing_period["BillingCycleEndDate"],
                        OptimizationBillingPeriodId=billing_period["id"],
                        ServiceProviderId=service_provider_id,
                        TenantId=tenant_id,
                        PortalTypeId=portal_type_id,
                        OptimizationSessionId=session_id,
                        SqsMessageId=sqs_message_id,
                        CreatedDate=utcnow(),
                    )
                ).inserted_primary_key[0]
            )

    def instance_id_for_session(self, session_id: int) -> int | None:
        """Id of the session's newest instance, or None."""
        ins = s.optimization_instance
        with self.engine.connect() as conn:
            row = conn.execute(
                select(ins.c.Id)
                .where(ins.c.OptimizationSessionId == session_id)
                .order_by(ins.c.Id.desc())
                .limit(1)
            ).first()
        return int(row[0]) if row else None

    def instance(self, instance_id: int) -> dict[str, Any] | None:
        """The instance row as a dict, or None."""
        ins = s.optimization_instance
        with self.engine.connect() as conn:
            row = conn.execute(select(ins).where(ins.c.Id == instance_id)).first()
        return dict(row._mapping) if row else None

    def set_instance_status(
        self, instance_id: int, status: OptimizationStatus, *, error: str | None = None
    ) -> None:
        """Move the instance to ``status``; finished statuses also stamp ``RunEndTime``."""
        values: dict[str, Any] = {"RunStatusId": int(status)}
        if status in s.FINISHED_STATUSES:
            values["RunEndTime"] = utcnow()
        if error is not None:
            values["ErrorMessage"] = error
        with self.engine.begin() as conn:
            conn.execute(
                update(s.optimization_instance)
                .where(s.optimization_instance.c.Id == instance_id)
                .values(**values)
            )

    def count_rows(self, table_name: str, **where: Any) -> int:
        """Row count of a schema table filtered by equality on columns (tests and reports)."""
        table = s.metadata.tables[table_name]
        query = select(func.count()).select_from(table)
        for column, value in where.items():
            query = query.where(table.c[column] == value)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())


def _plan_rows(fleet: Fleet):
    sp = fleet.tenant.service_provider_id
    for r in fleet.plans.itertuples():
        yield {
            "Id": int(r.plan_id),
            "ServiceProviderId": sp,
            "RatePlanCode": r.code,
            "DisplayRate": float(r.monthly_charge),
            "PlanMB": float(r.included_mb),
            "OverageRateCost": float(r.overage_rate),
            "DataPerOverageCharge": float(r.overage_block_mb),
            "AllowsSimPooling": bool(r.pooled),
            "IsDeleted": False,
            "IsRetired": False,
            "CreatedBy": s.CREATED_BY,
            "CreatedDate": utcnow(),
        }


def _device_rows(fleet: Fleet):
    t = fleet.tenant
    code = dict(zip(fleet.plans.plan_id, fleet.plans.code, strict=True))
    now = utcnow()
    d = fleet.devices
    for row in zip(
        d.device_id,
        d.iccid,
        d.msisdn,
        d.status,
        d.comm_plan,
        d.current_plan_id,
        d.ctd_bytes,
        d.usage_date,
        d.sms,
        d.date_activated,
        strict=True,
    ):
        yield {
            "Id": int(row[0]),
            "TenantId": t.tenant_id,
            "ServiceProviderId": t.service_provider_id,
            "ICCID": row[1],
            "MSISDN": row[2],
            "Status": row[3],
            "CommunicationPlan": row[4],
            "CarrierRatePlanId": int(row[5]),
            "CarrierRatePlanCode": code[int(row[5])],
            "CtdDataUsage": int(row[6]),
            "UsageDate": pd.Timestamp(row[7]).to_pydatetime(),
            "SmsUsage": int(row[8]),
            "ProviderDateActivated": pd.Timestamp(row[9]).to_pydatetime(),
            "IsDeleted": False,
            "ModifiedDate": now,
        }
