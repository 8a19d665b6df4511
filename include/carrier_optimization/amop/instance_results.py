"""The reads of a finished instance for its report: the header and the winners' device assignments.

The cost figures per comm group come from `amop.summaries`; ``reporting.report`` builds the files.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import Float, and_, cast, select
from sqlalchemy.engine import Engine

from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.storage import frame_of

#: Columns of `winner_assignments`, in order.
ASSIGNMENT_ROW_COLUMNS = (
    "device_id", "iccid", "msisdn", "comm_plan", "comm_group_id", "code", "usage_mb",
    "charge", "sms_charge", "plan_id", "recommended", "current",
)  # fmt: skip


def instance_header(engine: Engine, instance_id: int) -> dict[str, Any] | None:
    """The instance with its session guid and provider name (column names as in AMOP); None: no instance."""
    ins, ses, sp = s.optimization_instance, s.optimization_session, s.service_provider
    with engine.connect() as conn:
        row = conn.execute(
            select(
                ins.c.Id,
                ins.c.TenantId,
                ins.c.ServiceProviderId,
                ins.c.BillingPeriodStartDate,
                ins.c.BillingPeriodEndDate,
                ins.c.RunStartTime,
                ins.c.RunEndTime,
                ins.c.OptimizationSessionId,
                ses.c.SessionGuid,
                sp.c.DisplayName,
            )
            .join(ses, ses.c.Id == ins.c.OptimizationSessionId)
            .outerjoin(sp, sp.c.id == ins.c.ServiceProviderId)
            .where(ins.c.Id == instance_id)
        ).first()
    return None if row is None else dict(row._mapping)


def winner_assignments(engine: Engine, instance_id: int, winner_ids: list[int]) -> pd.DataFrame:
    """One row per SIM of the winners' results (`ASSIGNMENT_ROW_COLUMNS`), by comm plan and ICCID.

    The device snapshot's fields, its plan code, the usage and charges of the winning queue's row, the
    assigned plan's code (``recommended``) and the current plan's code (``current``).
    """
    r, d, plan = s.device_result, s.optimization_device, s.carrier_rate_plan
    current = plan.alias("current_plan")
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                d.c.AmopDeviceId,
                d.c.ICCID,
                d.c.MSISDN,
                d.c.CommunicationPlan,
                d.c.OptimizationCommGroupId,
                d.c.RatePlanCode,
                r.c.UsageMB,
                cast(r.c.ChargeAmt, Float),  # as floats: Decimal rows cost ~1 s per 100,000 SIMs
                cast(r.c.SmsChargeAmount, Float),
                r.c.AssignedCarrierRatePlanId,
                plan.c.RatePlanCode.label("recommended"),
                current.c.RatePlanCode.label("current"),
            )
            .join(d, and_(d.c.AmopDeviceId == r.c.AmopDeviceId, d.c.InstanceId == instance_id))
            .outerjoin(plan, plan.c.Id == r.c.AssignedCarrierRatePlanId)
            .outerjoin(current, current.c.Id == d.c.CurrentCarrierRatePlanId)
            .where(r.c.QueueId.in_(winner_ids))
            .order_by(d.c.CommunicationPlan, d.c.ICCID)
        ).all()
    return frame_of(rows, columns=list(ASSIGNMENT_ROW_COLUMNS))
