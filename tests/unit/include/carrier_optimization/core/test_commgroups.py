"""Comm groups from identical allowed-plan lists, and the Problem built from plans, comm plans, devices."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from include.carrier_optimization.core.commgroups import (
    build_comm_groups,
    build_problem,
    describe_skipped,
    parse_plan_list,
)
from include.carrier_optimization.core.domain import RatePlan
from include.carrier_optimization.core.validation import InvalidInputError


def _plans(*ids, **changes):
    values = dict(monthly_charge=5.0, included_mb=10.0, overage_rate=1.0, overage_block_mb=1.0, pooled=False)
    values.update(changes)
    return [RatePlan(i, f"P{i}", **values) for i in ids]


class TestParsePlanList:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [("1,2,3", (1, 2, 3)), (" 4 , 5,", (4, 5)), (7, (7,)), (8.0, (8,)), ("", ())],
        ids=["plain", "spaces-and-trailing-comma", "int", "float", "empty"],
    )
    def test_parses(self, text, expected):
        assert parse_plan_list(text) == expected

    def test_rejects_non_integers(self):
        with pytest.raises(ValueError):
            parse_plan_list("1,x")


class TestBuildCommGroups:
    def test_identical_lists_form_one_group_and_order_matters(self):
        groups = build_comm_groups({"a": [1, 2], "b": [1, 2], "c": [2, 1], "d": [3]}, [1, 2, 3])
        assert [(g.key, g.comm_plans, g.plan_ids) for g in groups] == [
            ("1,2", ("a", "b"), (1, 2)),
            ("2,1", ("c",), (2, 1)),
            ("3", ("d",), (3,)),
        ]

    def test_build_comm_groups_iv(self):
        with pytest.raises(ValueError, match=r"`comm_plans`: each entry must be \(name, plan ids\)"):
            build_comm_groups([("a", ["x"])], [1])
        with pytest.raises(ValueError, match="each entry must be"):
            build_comm_groups([("a",)], [1])

    def test_unknown_ids_are_skipped_and_logged(self, caplog):
        with caplog.at_level(logging.WARNING):
            (group,) = build_comm_groups([("a", [1, 99, 1])], [1])
        assert group.plan_ids == (1,) and group.unknown_plan_ids == (99,)
        assert "unknown plan ids (99,)" in caplog.text


class TestBuildProblem:
    def test_devices_are_split_by_group_in_input_order(self):
        problem = build_problem(
            _plans(1, 2, 3),
            {"a": [1, 2], "b": [3], "c": [1, 2]},
            device_ids=["x", "y", "z", "w"],
            comm_plan=["b", "a", "c", "a"],
            usage_mb=[1.0, 2.0, 3.0, 4.0],
            sms=[1, 2, 3, 4],
            proration=[1, 1, 0.5, 1],
            current_plan_id=[3, 2, 7, -1],
        )
        first, second = problem.groups
        assert first.key == "1,2" and first.comm_plans == ("a", "c")
        assert first.device_ids.tolist() == ["y", "z", "w"]
        np.testing.assert_array_equal(first.usage_mb, [2.0, 3.0, 4.0])
        np.testing.assert_array_equal(first.comm_plan_index, [0, 1, 0])
        np.testing.assert_array_equal(first.current_plan, [1, -1, -1])  # plan 7 is not in the group
        np.testing.assert_array_equal(first.proration, [1.0, 0.5, 1.0])
        assert second.device_ids.tolist() == ["x"] and second.current_plan.tolist() == [0]
        assert problem.skipped == () and problem.n_devices == 4

    def test_groups_over_the_plan_limit_are_reported_and_skipped(self):
        problem = build_problem(
            _plans(1, 2, 3),
            {"small": [1], "big": [1, 2, 3]},
            device_ids=["a", "b", "c"],
            comm_plan=["small", "big", "big"],
            usage_mb=[1.0, 2.0, 3.0],
            plan_limit=2,
        )
        assert [g.key for g in problem.groups] == ["1"]
        (skipped,) = problem.skipped
        assert (skipped.key, skipped.n_plans, skipped.n_devices) == ("1,2,3", 3, 2)
        assert describe_skipped(problem) == [
            "comm group 1,2,3 (big; 2 devices) skipped: 3 plans, over the limit of 2"
        ]

    def test_groups_without_devices_are_left_out(self):
        problem = build_problem(
            _plans(1), {"a": [1], "b": [1, 1]}, device_ids=["d"], comm_plan=["a"], usage_mb=[0]
        )
        assert [g.key for g in problem.groups] == ["1"]

    @pytest.mark.parametrize(
        ("devices", "message"),
        [
            (
                {"comm_plan": ["a", "zz", "yy"]},
                r"`devices`: comm_plan must be a known comm plan; device_id e2, e3 \(2 of 3\)",
            ),
            (
                {"comm_plan": ["a", "none", "a"]},
                r"comm_plan must allow at least one known plan; device_id e2 \(1 of 3\)",
            ),
            (
                {"usage_mb": [1.0, -2.0, np.nan]},
                r"usage_mb must be a finite number >= 0; device_id e2, e3 \(2 of 3\)",
            ),
            ({"sms": [0, -1, 0]}, r"sms must be a finite number >= 0; device_id e2 \(1 of 3\)"),
            ({"device_ids": ["e1", "e1", "e3"]}, r"device_id must be unique; device_id e1, e1 \(2 of 3\)"),
            ({"proration": [1.0, 1.5, 0.5]}, r"proration must be in \[0, 1\]; device_id e2 \(1 of 3\)"),
        ],
        ids=[
            "unknown-comm-plan",
            "no-known-plan",
            "negative-usage",
            "negative-sms",
            "duplicate-id",
            "proration",
        ],
    )
    def test_invalid_devices_are_named(self, devices, message):
        arguments = dict(device_ids=["e1", "e2", "e3"], comm_plan=["a", "a", "a"], usage_mb=[1.0, 2.0, 3.0])
        arguments.update(devices)
        with pytest.raises(InvalidInputError, match=message):
            build_problem(_plans(1), {"a": [1], "none": [99]}, **arguments)

    def test_invalid_plans_are_named(self):
        plans = _plans(1) + _plans(17, overage_block_mb=0.0)
        with pytest.raises(
            InvalidInputError, match=r"`plans`: overage_block_mb must be > 0; plan_id 17 \(1 of 2\)"
        ):
            build_problem(plans, {"a": [1]}, device_ids=["d"], comm_plan=["a"], usage_mb=[1.0])

    def test_vector_shape_is_checked(self):
        with pytest.raises(ValueError, match=r"`sms` must have shape \(1,\)"):
            build_problem(
                _plans(1), {"a": [1]}, device_ids=["d"], comm_plan=["a"], usage_mb=[1.0], sms=[1, 2]
            )
