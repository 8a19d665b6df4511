"""The comm-group rows of an instance: its set-up writes, summaries, plans and device snapshot.

Each function runs in the caller's transaction (a ``Connection``); see docs/architecture.md.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection, Row

from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.bulk_rows import SNAPSHOT_COLUMNS, snapshot_rows
from include.carrier_optimization.amop.repository import plan_columns
from include.carrier_optimization.amop.storage import bulk_insert, frame_of

DEVICE_FRAME_COLUMNS = ["device_id", "comm_plan", "usage", "sms", "activated", "days", "current"]


def insert_group(
    conn: Connection,
    *,
    instance_id: int,
    key: str,
    comm_plan_ids: Iterable[int],
    plan_thresholds: Iterable[tuple[int, float | None]],
) -> int:
    """Write a comm group with its comm plans and its rate plans (``(plan id, MaxAvgUsage)``); its id."""
    group_id = conn.execute(
        insert(s.comm_group).values(InstanceId=instance_id, RatePlanIds=key)
    ).inserted_primary_key[0]
    conn.execute(
        insert(s.comm_group_comm_plan),
        [{"InstanceId": instance_id, "CommGroupId": group_id, "CommPlanId": c} for c in comm_plan_ids],
    )
    conn.execute(
        insert(s.comm_group_rate_plan),
        [
            {"InstanceId": instance_id, "CommGroupId": group_id, "CarrierRatePlanId": p, "MaxAvgUsage": t}
            for p, t in plan_thresholds
        ],
    )
    return group_id


def insert_devices(
    conn: Connection,
    devices: pd.DataFrame,
    *,
    instance_id: int,
    service_provider_id: int,
    comm_group_id: int,
    plan_codes: Mapping[int, str],
    now: dt.datetime,
) -> int:
    """Write the group's ``OptimizationDevice`` snapshot rows; returns the number written."""
    return bulk_insert(
        conn,
        s.optimization_device,
        snapshot_rows(
            devices,
            instance_id=instance_id,
            service_provider_id=service_provider_id,
            comm_group_id=comm_group_id,
            plan_codes=plan_codes,
            now=now,
        ),
        columns=SNAPSHOT_COLUMNS,
    )


def insert_summary(conn: Connection, **values: Any) -> None:
    """Write a group's ``OptimizationCommGroupSummary`` row (column values by name)."""
    conn.execute(insert(s.comm_group_summary).values(**values))


def summaries(conn: Connection, instance_id: int) -> list[Row]:
    """The instance's summary rows, by comm group id."""
    summary = s.comm_group_summary
    return conn.execute(
        select(summary).where(summary.c.InstanceId == instance_id).order_by(summary.c.CommGroupId)
    ).all()


def set_summary(conn: Connection, comm_group_id: int, **values: Any) -> None:
    """Update a group's summary row (column values by name)."""
    summary = s.comm_group_summary
    conn.execute(update(summary).where(summary.c.CommGroupId == comm_group_id).values(**values))


def expected_sequences(conn: Connection, instance_id: int) -> int:
    """The sum of the instance's summary ``SequenceCount`` (0 without groups)."""
    summary = s.comm_group_summary
    return conn.execute(
        select(func.coalesce(func.sum(summary.c.SequenceCount), 0)).where(summary.c.InstanceId == instance_id)
    ).scalar_one()


def instance_id_of(conn: Connection, comm_group_id: int) -> int:
    """The id of the instance a comm group belongs to (raises when missing)."""
    cg = s.comm_group
    return conn.execute(select(cg.c.InstanceId).where(cg.c.Id == comm_group_id)).scalar_one()


def plan_rows(conn: Connection, comm_group_id: int) -> list[Row]:
    """The group's plans in stored order, in the CLI plan columns plus ``group_plan_id``."""
    grp, plan = s.comm_group_rate_plan, s.carrier_rate_plan
    return conn.execute(
        select(grp.c.Id.label("group_plan_id"), *plan_columns(plan))
        .join(plan, plan.c.Id == grp.c.CarrierRatePlanId)
        .where(grp.c.CommGroupId == comm_group_id)
        .order_by(grp.c.Id)
    ).all()


def devices(conn: Connection, instance_id: int, comm_group_id: int) -> pd.DataFrame:
    """The group's device snapshot in ``DEVICE_FRAME_COLUMNS``, by device id."""
    d = s.optimization_device
    rows = conn.execute(
        select(
            d.c.AmopDeviceId,
            d.c.CommunicationPlan,
            d.c.ProjectedDataUsageMB,
            d.c.SmsUsage,
            d.c.WasActivatedInThisBillingPeriod,
            d.c.DaysActivatedInBillingPeriod,
            d.c.CurrentCarrierRatePlanId,
        )
        .where(d.c.InstanceId == instance_id, d.c.OptimizationCommGroupId == comm_group_id)
        .order_by(d.c.AmopDeviceId)
    ).all()
    return frame_of(rows, DEVICE_FRAME_COLUMNS)
