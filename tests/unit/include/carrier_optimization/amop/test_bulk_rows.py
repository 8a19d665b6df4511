"""Row tuples of the snapshot and the device results: the values the per-row code wrote."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.bulk_rows import (
    RESULT_COLUMNS,
    SNAPSHOT_COLUMNS,
    result_rows,
    snapshot_rows,
)
from include.carrier_optimization.core.commgroups import build_problem
from include.carrier_optimization.core.cost import evaluate
from include.carrier_optimization.core.domain import RatePlan

NOW = dt.datetime(2026, 11, 30, 10, 0)
PLANS = (
    RatePlan(11, "S", 5.0, 100.0, 0.5, 10.0, False, 0.0),
    RatePlan(12, "POOL", 9.0, 500.0, 0.25, 1.0, True, 0.01),
)


def test_snapshot_rows_convert_each_column_once():
    devices = pd.DataFrame(
        {
            "device_id": [7, 8],
            "cycle_mb": [1.5, 0.0],
            "projected_mb": [1.5151, 0.0],
            "usage_date": [NOW, None],
            "sms": [3, 0],
            "comm_plan": ["cp", "cp"],
            "msisdn": ["555", None],
            "iccid": ["8901", "8902"],
            "date_activated": [None, NOW - dt.timedelta(days=3)],
            "activated_in_period": [False, True],
            "days_active": [30, 3],
            "current_plan_id": [12.0, np.nan],
        }
    )
    rows = list(
        snapshot_rows(
            devices, instance_id=4, service_provider_id=101, comm_group_id=9, plan_codes={12: "POOL"}, now=NOW
        )
    )
    assert [dict(zip(SNAPSHOT_COLUMNS, row, strict=True)) for row in rows] == [
        {
            "InstanceId": 4, "AmopDeviceId": 7, "ServiceProviderId": 101, "CycleDataUsageMB": 1.5,
            "ProjectedDataUsageMB": 1.5151, "UsageDate": NOW, "SmsUsage": 3, "CommunicationPlan": "cp",
            "MSISDN": "555", "ICCID": "8901", "DateActivated": None, "WasActivatedInThisBillingPeriod": False,
            "DaysActivatedInBillingPeriod": 30, "AutoChangeRatePlan": True, "OptimizationCommGroupId": 9,
            "CurrentCarrierRatePlanId": 12, "RatePlanCode": "POOL", "CreatedBy": s.CREATED_BY,
            "CreatedDate": NOW,
        },
        {
            "InstanceId": 4, "AmopDeviceId": 8, "ServiceProviderId": 101, "CycleDataUsageMB": 0.0,
            "ProjectedDataUsageMB": 0.0, "UsageDate": None, "SmsUsage": 0, "CommunicationPlan": "cp",
            "MSISDN": None, "ICCID": "8902", "DateActivated": NOW - dt.timedelta(days=3),
            "WasActivatedInThisBillingPeriod": True, "DaysActivatedInBillingPeriod": 3,
            "AutoChangeRatePlan": True,
            "OptimizationCommGroupId": 9, "CurrentCarrierRatePlanId": None, "RatePlanCode": None,
            "CreatedBy": s.CREATED_BY, "CreatedDate": NOW,
        },
    ]  # fmt: skip
    assert all(type(v) is not np.float64 and type(v) is not np.int64 for row in rows for v in row)


def test_result_rows_round_as_python_round_per_device():
    problem = build_problem(
        PLANS,
        {"cp": [11, 12]},
        device_ids=np.array(["21", "22", "23"]),
        comm_plan=np.array(["cp"] * 3),
        usage_mb=np.array([120.12345, 480.0005, 7.0]),
        sms=np.array([2.0, 0.0, 5.0]),
        proration=np.array([1.0, 0.5, 1.0]),
        current_plan_id=np.array([-1, 11, 12]),
        days_in_period=30,
    )
    (group,) = problem.groups
    assignment = np.array([0, 1, 1])
    breakdown = evaluate(group, assignment)
    rows = [
        dict(zip(RESULT_COLUMNS, r, strict=True))
        for r in result_rows(5, group, assignment, breakdown, period_id=3, now=NOW)
    ]
    for i, row in enumerate(rows):
        assert row["QueueId"] == 5 and row["BillingPeriodId"] == 3 and row["CreatedDate"] == NOW
        assert row["AmopDeviceId"] == int(group.device_ids[i])
        assert row["UsageMB"] == round(float(group.usage_mb[i]), 3)
        assert row["SmsUsage"] == int(group.sms[i])
        assert row["AssignedCarrierRatePlanId"] == int(group.plan_ids[assignment[i]])
        assert row["ChargeAmt"] == round(float(breakdown.fixed[i] + breakdown.overage[i]), 4)
        assert row["RateChargeAmt"] == round(float(breakdown.fixed[i]), 4)
        assert row["OverageChargeAmt"] == round(float(breakdown.overage[i]), 4)
        assert row["SmsChargeAmount"] == round(float(breakdown.sms[i]), 4)
        assert row["BaseRateAmt"] == 0.0
    assert abs(sum(r["ChargeAmt"] + r["SmsChargeAmount"] for r in rows) - breakdown.total) < 3e-4
