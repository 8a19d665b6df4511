"""The reads of a finished instance for its report: the header and the winners' device assignments.

The cost figures per comm group come from `amop.summaries`; ``reporting.report`` builds the files.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd
from sqlalchemy import Float, cast, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.expression import Select  # also on SQLAlchemy 1.4 (MWAA 3.0.6)

from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.storage import frame_of

#: Columns of `winner_assignments`, in order.
ASSIGNMENT_ROW_COLUMNS = (
    "device_id", "iccid", "msisdn", "comm_plan", "comm_group_id", "code", "usage_mb",
    "charge", "sms_charge", "plan_id", "recommended", "current",
)  # fmt: skip
#: Columns of `instance_devices`, in order: the snapshot's fields for the sheet and, as named in
#: ``comm_groups.DEVICE_FRAME_COLUMNS`` (``current_id`` there ``current``), the cost model's inputs.
SNAPSHOT_COLUMNS = (
    "device_id", "iccid", "msisdn", "comm_plan", "comm_group_id", "code",
    "usage", "sms", "activated", "days", "current_id",
)  # fmt: skip
#: Columns of `winner_results`, in order.
RESULT_COLUMNS = ("device_id", "usage_mb", "charge", "sms_charge", "plan_id")


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
    assigned plan's code (``recommended``) and the current plan's code (``current``): `join_assignments`
    of `instance_devices` and `winner_results`. The report makes those reads itself, to price the
    snapshot as it is now (its costs before) from the same read.
    """
    devices, results = instance_devices(engine, instance_id), winner_results(engine, winner_ids)
    return join_assignments(devices, results, plan_codes(engine, used_plan_ids(devices, results)))


def instance_devices(engine: Engine, instance_id: int) -> pd.DataFrame:
    """The instance's whole device snapshot (`SNAPSHOT_COLUMNS`), by comm plan and ICCID.

    It holds the columns of ``comm_groups.devices`` too (`DEVICE_FRAME_COLUMNS`), so that the report
    prices the SIMs as they are now from this one read instead of reading each comm group again.
    """
    d = s.optimization_device
    with engine.connect() as conn:
        return _frame(
            conn,
            select(
                d.c.AmopDeviceId,
                d.c.ICCID,
                d.c.MSISDN,
                d.c.CommunicationPlan,
                d.c.OptimizationCommGroupId,
                d.c.RatePlanCode,
                d.c.ProjectedDataUsageMB,
                d.c.SmsUsage,
                d.c.WasActivatedInThisBillingPeriod,
                d.c.DaysActivatedInBillingPeriod,
                d.c.CurrentCarrierRatePlanId,
            )
            .where(d.c.InstanceId == instance_id)
            .order_by(d.c.CommunicationPlan, d.c.ICCID),
            SNAPSHOT_COLUMNS,
        )


def winner_results(engine: Engine, winner_ids: list[int]) -> pd.DataFrame:
    """The winning queues' device rows (`RESULT_COLUMNS`), in no particular order."""
    r = s.device_result
    with engine.connect() as conn:
        return _frame(
            conn,
            select(
                r.c.AmopDeviceId,
                r.c.UsageMB,
                cast(r.c.ChargeAmt, Float),  # as floats: Decimal rows cost ~1 s per 100,000 SIMs
                cast(r.c.SmsChargeAmount, Float),
                r.c.AssignedCarrierRatePlanId,
            ).where(r.c.QueueId.in_(winner_ids)),
            RESULT_COLUMNS,
        )


def _frame(conn: Connection, statement: Select, columns: tuple[str, ...]) -> pd.DataFrame:
    """The rows of ``statement`` as a frame of ``columns``, from the driver's tuples when possible.

    When SQLAlchemy has no conversion to apply to any column (its type's result processor for the
    column's type code is None: so on PostgreSQL for these reads), the driver's tuples are the values
    SQLAlchemy's rows would hold, and skipping the ``Row`` objects and `frame_of`'s transposition halves
    the client's time (about 0.5 s of CPU per 100,000 SIMs); otherwise (SQLite's booleans) `frame_of`.
    """
    result = conn.execute(statement)
    dialect, description = conn.dialect, result.cursor.description
    plain = len(description) == len(columns) and all(
        column.type.dialect_impl(dialect).result_processor(dialect, code) is None
        for column, (_, code, *_) in zip(statement.selected_columns, description, strict=True)
    )
    if not plain:
        return frame_of(result.all(), columns=list(columns))
    rows = result.cursor.fetchall()
    result.close()
    if not rows:
        return frame_of([], columns=list(columns))
    return pd.DataFrame.from_records(rows, columns=list(columns))


def plan_codes(engine: Engine, plan_ids: Iterable[int]) -> dict[int, str]:
    """``RatePlanCode`` of each carrier rate plan of ``plan_ids`` that exists."""
    ids = sorted({int(i) for i in plan_ids})
    if not ids:
        return {}
    plan = s.carrier_rate_plan
    with engine.connect() as conn:
        rows = conn.execute(select(plan.c.Id, plan.c.RatePlanCode).where(plan.c.Id.in_(ids))).all()
    return {int(plan_id): code for plan_id, code in rows}


def used_plan_ids(devices: pd.DataFrame, results: pd.DataFrame) -> set[int]:
    """The plans named by ``devices`` (current) and ``results`` (assigned): the ids for `plan_codes`."""
    ids = (frame[column].dropna() for frame, column in ((devices, "current_id"), (results, "plan_id")))
    return {int(i) for column in ids for i in column.unique()}


def join_assignments(devices: pd.DataFrame, results: pd.DataFrame, codes: dict[int, str]) -> pd.DataFrame:
    """`ASSIGNMENT_ROW_COLUMNS`: ``devices`` joined with their rows of ``results``, plan codes added.

    ``devices`` (`instance_devices`) inner-joined with ``results`` (`winner_results`) on the device id,
    in the order of ``devices``, with the codes (``codes``, `plan_codes`) of the assigned plan
    (``recommended``) and of the current one (``current``).

    The joins of a single SQL query, done here: the database then sorts only the snapshot (sorting the
    joined rows spilled to disk), and its read also gives the report the inputs of the costs before.
    """
    if devices.empty or results.empty:
        return pd.DataFrame({name: pd.Series(dtype=object) for name in ASSIGNMENT_ROW_COLUMNS})
    columns = ["device_id", "iccid", "msisdn", "comm_plan", "comm_group_id", "code", "current_id"]
    rows = devices.loc[:, columns].merge(results, on="device_id", how="inner", sort=False)
    rows["recommended"] = rows["plan_id"].map(codes)
    rows["current"] = rows.pop("current_id").map(codes)
    return rows.loc[:, list(ASSIGNMENT_ROW_COLUMNS)]
