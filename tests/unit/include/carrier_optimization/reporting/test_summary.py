"""The savings summary of an instance: totals, bound and gap from its comm groups, and its text."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pytest

from include.carrier_optimization import pipeline
from include.carrier_optimization.amop.repository import AmopRepository
from include.carrier_optimization.core.fleet import generate_fleet
from include.carrier_optimization.reporting.summary import (
    format_summary,
    group_figures,
    instance_groups,
    money,
    optional_float,
    savings_summary,
    summary_of_instance,
)
from tests.conftest import finish_instance, start_instance


def group(cost, current, bound, devices=10, changes=2):
    return {
        "cost": cost,
        "current_cost": current,
        "lower_bound": bound,
        "devices": devices,
        "changes": changes,
    }


def test_totals_savings_and_gap_add_up_over_the_groups():
    figures = savings_summary(9, [group(90.0, 100.0, 89.0), group(10.004, 12.0, 10.0, devices=5, changes=1)])
    assert figures["instance_id"] == 9
    assert figures["devices"] == 15 and figures["changes"] == 3
    assert figures["current_cost"] == 112.0
    assert figures["optimized_cost"] == 100.0
    assert figures["savings"] == 12.0
    assert figures["lower_bound"] == 99.0
    assert figures["gap"] == pytest.approx((100.004 - 99.0) / 99.0, abs=1e-6)


def test_no_bound_when_a_group_has_none_and_a_missing_current_cost_counts_as_zero():
    figures = savings_summary(1, [group(5.0, None, 4.0), group(5.0, 8.0, None)])
    assert figures["lower_bound"] is None and figures["gap"] is None
    assert figures["current_cost"] == 8.0 and figures["savings"] == -2.0


def test_optional_float_keeps_none():
    assert optional_float(None) is None
    assert optional_float("1.25") == 1.25


def summary_row(**values):
    row = {
        "CommGroupId": 7,
        "WinnerQueueId": 70,
        "WinnerKind": "engine",
        "WinnerCost": Decimal("12.3400"),
        "CurrentCost": Decimal("15.0000"),
        "LowerBound": Decimal("12.3400"),
        "DeviceCount": 4,
        "PlanChanges": 2,
    }
    return SimpleNamespace(**{**row, **values})


def test_group_figures_read_a_summary_row_with_its_proven_state():
    assert group_figures(summary_row()) == {
        "comm_group_id": 7,
        "winner_queue_id": 70,
        "winner_kind": "engine",
        "cost": 12.34,
        "current_cost": 15.0,
        "lower_bound": 12.34,
        "proven_optimal": True,
        "devices": 4,
        "changes": 2,
    }
    assert group_figures(summary_row(LowerBound=Decimal("12.30")))["proven_optimal"] is False
    # Before the winners step: no winner, cost 0, never proven, no changes counted.
    pending = group_figures(
        summary_row(WinnerQueueId=None, WinnerKind=None, WinnerCost=None, PlanChanges=None)
    )
    assert (pending["winner_queue_id"], pending["cost"], pending["proven_optimal"], pending["changes"]) == (
        None,
        0.0,
        False,
        0,
    )


def test_summary_of_instance_is_the_winners_steps_summary(db_engine):
    fleet = generate_fleet(40, seed=8)
    period_id = AmopRepository(db_engine).write_fleet(fleet)
    request = pipeline.Request(
        tenant_id=1, service_provider_id=101, bill_period_id=period_id, has_synced=True, manual=True
    )
    session, plan = start_instance(db_engine, request, run_key="dag/summary", now=fleet.as_of)
    winners = finish_instance(db_engine, session, plan)
    _, prepared = start_instance(db_engine, request, run_key="dag/later", now=fleet.as_of)

    summary = summary_of_instance(db_engine, tenant_id=1)  # the newest finished instance
    assert all(isinstance(g.pop("proven_optimal"), bool) for g in summary["groups"])
    assert summary == winners
    assert summary_of_instance(db_engine, tenant_id=1, instance_id=plan.instance_id) == {
        **summary,
        "groups": instance_groups(db_engine, plan.instance_id),
    }
    unfinished = summary_of_instance(db_engine, tenant_id=1, instance_id=prepared.instance_id)
    assert unfinished["optimized_cost"] == 0.0 and unfinished["changes"] == 0
    assert unfinished["current_cost"] == winners["current_cost"]
    assert instance_groups(db_engine, 999) == []


def test_money_is_dollars_and_cents_with_a_placeholder_for_none():
    assert money(1234.5) == "$1,234.50"
    assert money(-2.5) == "$-2.50"
    assert money(None) == "n/a" and money(None, "—") == "—"


def test_format_summary_lists_the_figures():
    text = format_summary(
        {
            "instance_id": 3,
            "devices": 1200,
            "current_cost": 1500.0,
            "optimized_cost": 1234.5,
            "savings": 265.5,
            "lower_bound": None,
            "gap": None,
            "changes": 17,
        }
    )
    assert text.splitlines() == [
        "Instance:        3",
        "SIMs:            1,200",
        "Current cost:    $1,500.00",
        "Optimized cost:  $1,234.50",
        "Savings:         $265.50",
        "Lower bound:     n/a",
        "Gap to bound:    n/a",
        "Plan changes:    17",
    ]
    assert "Gap to bound:    0.0123%" in format_summary({"gap": 0.000123, "lower_bound": 5.0})
    assert "Gap to bound:    n/a" in format_summary({"gap": float("inf")})
