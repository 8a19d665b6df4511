"""Row tuples for the large inserts of a run, built column by column (for `storage.bulk_insert`).

The device snapshot of the count step and the device results of a queue (base assignment, engine and
recorded sequences) are one row per SIM: building a dict per row from ``itertuples`` took about 2 s per
100,000 SIMs. Here each column is converted once (``tolist``), and the values are exactly those the
per-row code wrote (Python ``round``, not ``numpy.round``, for the usage; the money columns are whole
cents divided by 100, the doubles ``round(amount, 4)`` gave).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.core.cost import CostBreakdown
from include.carrier_optimization.core.domain import GroupProblem

SNAPSHOT_COLUMNS = (
    "InstanceId",
    "AmopDeviceId",
    "ServiceProviderId",
    "CycleDataUsageMB",
    "ProjectedDataUsageMB",
    "UsageDate",
    "SmsUsage",
    "CommunicationPlan",
    "MSISDN",
    "ICCID",
    "DateActivated",
    "WasActivatedInThisBillingPeriod",
    "DaysActivatedInBillingPeriod",
    "AutoChangeRatePlan",
    "OptimizationCommGroupId",
    "CurrentCarrierRatePlanId",
    "RatePlanCode",
    "CreatedBy",
    "CreatedDate",
)
RESULT_COLUMNS = (
    "QueueId",
    "AmopDeviceId",
    "BillingPeriodId",
    "UsageMB",
    "SmsUsage",
    "AssignedCarrierRatePlanId",
    "ChargeAmt",
    "BaseRateAmt",
    "RateChargeAmt",
    "OverageChargeAmt",
    "SmsChargeAmount",
    "CreatedBy",
    "CreatedDate",
)


def _datetimes(values: pd.Series) -> list[dt.datetime | None]:
    """Python datetimes (naive as stored), None for missing values."""
    stamps = pd.to_datetime(values)
    python = np.array(stamps.dt.to_pydatetime(), dtype=object)
    python[stamps.isna().to_numpy()] = None
    return python.tolist()


def _texts(values: pd.Series) -> list[Any]:
    """Column values, None for missing ones (pandas may hold them as NaN, which COPY would write as text)."""
    if not values.isna().any():
        return values.tolist()
    return [None if v is None or (isinstance(v, float) and v != v) else v for v in values.tolist()]


def _ids(values: pd.Series) -> list[int | None]:
    missing = values.isna().to_numpy()
    ids = values.fillna(0).astype(np.int64).tolist()
    if not missing.any():
        return ids
    return [None if gone else i for i, gone in zip(ids, missing.tolist(), strict=True)]


def snapshot_rows(
    devices: pd.DataFrame,
    *,
    instance_id: int,
    service_provider_id: int | None,
    comm_group_id: int,
    plan_codes: dict[int, str],
    now: dt.datetime,
) -> Iterator[tuple[Any, ...]]:
    """``OptimizationDevice`` rows (`SNAPSHOT_COLUMNS`) of one comm group's snapshot frame.

    ``devices`` has the columns of ``pipeline.device_snapshot``; ``plan_codes`` maps the group's plan
    ids to their codes (the current plan's code, None when the SIM's plan is not one of them).
    """
    n = len(devices)
    current = _ids(devices["current_plan_id"])
    return zip(
        [instance_id] * n,
        devices["device_id"].astype(np.int64).tolist(),
        [service_provider_id] * n,
        devices["cycle_mb"].astype(float).tolist(),
        devices["projected_mb"].astype(float).tolist(),
        _datetimes(devices["usage_date"]),
        devices["sms"].astype(np.int64).tolist(),
        _texts(devices["comm_plan"]),
        _texts(devices["msisdn"]),
        _texts(devices["iccid"]),
        _datetimes(devices["date_activated"]),
        devices["activated_in_period"].astype(bool).tolist(),
        devices["days_active"].astype(np.int64).tolist(),
        [True] * n,
        [comm_group_id] * n,
        current,
        [plan_codes.get(p) for p in current],
        [s.CREATED_BY] * n,
        [now] * n,
        strict=True,
    )


def result_rows(
    queue_id: int,
    group: GroupProblem,
    assignment: Any,
    breakdown: CostBreakdown,
    *,
    period_id: int | None,
    now: dt.datetime,
) -> Iterator[tuple[Any, ...]]:
    """Device result rows (`RESULT_COLUMNS`) of ``assignment`` (local plan indices) of ``group``."""
    n = group.n_devices
    # per-device cents by largest remainder: the rows add up to the invoice total to the cent. Whole cents
    # divided by 100 are the doubles nearest the amounts: what round(amount, 4) gave, at a tenth the cost
    fixed, overage, sms = breakdown.device_cents()
    return zip(
        [queue_id] * n,
        [int(d) for d in group.device_ids],
        [period_id] * n,
        [round(u, 3) for u in np.asarray(group.usage_mb, dtype=float).tolist()],
        [int(m) for m in np.asarray(group.sms).tolist()],
        group.plan_ids[np.asarray(assignment)].astype(np.int64).tolist(),
        ((fixed + overage) / 100).tolist(),
        [0.0] * n,
        (fixed / 100).tolist(),
        (overage / 100).tolist(),
        (sms / 100).tolist(),
        [s.CREATED_BY] * n,
        [now] * n,
        strict=True,
    )
