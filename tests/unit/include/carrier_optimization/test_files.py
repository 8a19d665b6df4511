"""CSV files of the command line: reading a Problem, clear errors for malformed files, writing results."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from include.carrier_optimization.core.engines import solve_optimal
from include.carrier_optimization.core.fleet import generate_fleet
from include.carrier_optimization.core.validation import InvalidInputError
from include.carrier_optimization.files import (
    CLI_DEVICE_COLUMNS,
    CLI_PLAN_COLUMNS,
    problem_from_frames,
    read_problem,
    summary,
    write_assignment,
    write_fleet_files,
    write_summary,
)

PLANS = """plan_id,code,monthly_charge,included_mb,overage_rate,overage_block_mb,pooled,sms_rate
1,IND-5,3.0,5,0.5,1,0,0
2,POOL-10,5.0,10,1.0,1,1,0.01
3,PAYG,1.0,0,1.0,1,0,
"""
COMM_PLANS = """comm_plan,allowed_plan_ids
cp-a,"1,2,3"
cp-b,"1,2,3"
cp-c,3
"""
DEVICES = """device_id,comm_plan,usage_mb,sms,days_active,current_plan_id
0001,cp-a,4.5,2,30,1
0002,cp-b,12.0,,15,2
0003,cp-c,0.0,0,30,
0004,cp-a,7.25,1,30,9
"""


@pytest.fixture
def files(tmp_path):
    paths = {}
    for name, text in {"devices": DEVICES, "plans": PLANS, "comm_plans": COMM_PLANS}.items():
        paths[name] = tmp_path / f"{name}.csv"
        paths[name].write_text(text)
    return paths


def _read(files, **kwargs):
    return read_problem(files["devices"], files["plans"], files["comm_plans"], **kwargs)


class TestReadProblem:
    def test_reads_groups_devices_and_defaults(self, files):
        problem = _read(files)
        first, second = problem.groups
        assert first.key == "1,2,3" and first.comm_plans == ("cp-a", "cp-b")
        assert first.device_ids.tolist() == ["0001", "0002", "0004"]  # ids stay text
        np.testing.assert_allclose(first.usage_mb, [4.5, 12.0, 7.25])
        np.testing.assert_allclose(first.sms, [2, 0, 1])  # empty sms is 0
        np.testing.assert_allclose(first.proration, [1.0, 0.5, 1.0])  # 15 of 30 days
        np.testing.assert_array_equal(first.current_plan, [0, 1, -1])  # unknown plan 9: none
        assert first.plans[1].pooled and first.plans[1].sms_rate == 0.01
        assert first.plans[2].sms_rate == 0.0  # empty optional value
        assert second.key == "3" and second.current_plan.tolist() == [-1]

    def test_days_in_period_sets_proration(self, files):
        problem = _read(files, days_in_period=60)
        np.testing.assert_allclose(problem.groups[0].proration, [0.5, 0.25, 0.5])
        assert problem.days_in_period == 60

    def test_optional_columns_may_be_absent(self, tmp_path, files):
        files["devices"].write_text("device_id,comm_plan,usage_mb\nx,cp-c,1.5\n")
        (group,) = _read(files).groups
        assert group.sms.tolist() == [0.0] and group.proration.tolist() == [1.0]
        assert group.current_plan.tolist() == [-1]

    @pytest.mark.parametrize(
        ("name", "text", "message"),
        [
            ("devices", "device_id,usage_mb\n1,2\n", "`devices`: missing required columns comm_plan"),
            (
                "devices",
                DEVICES.replace("4.5", "lots"),
                r"`devices`: usage_mb must be a number; device_id 0001 \(1 of 4\)",
            ),
            (
                "devices",
                DEVICES.replace("12.0", ""),
                r"`devices`: usage_mb must be a number; device_id 0002 \(1 of 4\)",
            ),
            (
                "devices",
                DEVICES.replace(",15,", ",-3,"),
                r"days_active must be a finite number >= 0; device_id 0002",
            ),
            (
                "devices",
                DEVICES.replace("cp-c", "cp-x"),
                r"comm_plan must be a known comm plan; device_id 0003 \(1 of 4\)",
            ),
            (
                "devices",
                DEVICES.replace("7.25", "-7.25"),
                r"usage_mb must be a finite number >= 0; device_id 0004",
            ),
            (
                "devices",
                DEVICES.replace(",30,1\n", ",30,1.5\n"),
                r"current_plan_id must be an integer; device_id 0001",
            ),
            (
                "plans",
                PLANS.replace("1.0,1,1,0.01", "1.0,0,1,0.01"),
                r"`plans`: overage_block_mb must be > 0; plan_id 2 \(1 of 3\)",
            ),
            (
                "plans",
                PLANS.replace("0.5,1,0", "0,1,0"),
                r"`plans`: overage_rate must be > 0; plan_id 1 \(1 of 3\)",
            ),
            (
                "plans",
                PLANS.replace("1,1,0.01", "1,2,0.01"),
                r"`plans`: pooled must be 0 or 1; plan_id 2 \(1 of 3\)",
            ),
            (
                "plans",
                PLANS.replace("IND-5,3.0", "IND-5,three"),
                r"`plans`: monthly_charge must be a number; plan_id 1",
            ),
            (
                "comm_plans",
                COMM_PLANS.replace('"1,2,3"\ncp-b', '"1,x"\ncp-b'),
                r"allowed_plan_ids must be integer plan ids",
            ),
            (
                "comm_plans",
                COMM_PLANS.replace("cp-c,3", "cp-a,3"),
                r"`comm_plans`: comm_plan must be unique; comm_plan cp-a",
            ),
            (
                "comm_plans",
                'comm_plan,allowed_plan_ids\ncp-a,"1,2"\n"unterminated,1\n',
                r"`comm_plans`: not a readable CSV",
            ),
        ],
        ids=[
            "missing-column",
            "usage-not-a-number",
            "usage-missing",
            "negative-days",
            "unknown-comm-plan",
            "negative-usage",
            "fractional-current-plan",
            "zero-block",
            "zero-rate",
            "pooled-not-boolean",
            "charge-not-a-number",
            "bad-plan-list",
            "duplicate-comm-plan",
            "malformed-csv",
        ],
    )
    def test_malformed_files_are_named(self, files, name, text, message):
        files[name].write_text(text)
        with pytest.raises(InvalidInputError, match=message):
            _read(files)

    def test_missing_file(self, files, tmp_path):
        files["plans"] = tmp_path / "nope.csv"
        with pytest.raises(InvalidInputError, match="`plans`: file not found"):
            _read(files)

    def test_empty_file(self, files):
        files["devices"].write_text("")
        with pytest.raises(InvalidInputError, match="`devices`: not a readable CSV file"):
            _read(files)


def test_problem_from_frames_accepts_numeric_ids_and_extra_columns():
    devices = pd.DataFrame(
        {"device_id": [10, 11], "comm_plan": ["cp", "cp"], "usage_mb": [1, 2], "iccid": ["x", "y"]}
    )
    plans = pd.read_csv(__import__("io").StringIO(PLANS))
    comm_plans = pd.DataFrame({"comm_plan": ["cp"], "allowed_plan_ids": ["2,3"]})
    (group,) = problem_from_frames(devices, plans, comm_plans).groups
    assert group.device_ids.tolist() == ["10", "11"] and group.plan_ids.tolist() == [2, 3]
    with pytest.raises(ValueError, match="`days_in_period` must be an integer >= 1"):
        problem_from_frames(devices, plans, comm_plans, days_in_period=0)


class TestWriters:
    def test_assignment_and_summary(self, files, tmp_path, reference):
        problem = _read(files)
        result = solve_optimal(problem)
        path = write_assignment(tmp_path / "assignment.csv", problem, result)
        table = pd.read_csv(path, dtype={"device_id": str})
        assert table.columns.tolist() == ["device_id", "plan_id", "cost"]
        assert sorted(table.device_id) == ["0001", "0002", "0003", "0004"]
        expected = sum(reference(g, a) for g, a in zip(problem.groups, result.assignment, strict=True))
        invoice = sum(round(g.cost * 100) for g in result.groups)
        assert round(table.cost.sum() * 100) == invoice  # to the cent
        assert table.cost.sum() == pytest.approx(expected, abs=0.01 * len(problem.groups))
        allowed = {d: set(g.plan_ids.tolist()) for g in problem.groups for d in g.device_ids}
        assert all(p in allowed[d] for d, p in zip(table.device_id, table.plan_id, strict=True))

        with pytest.raises(ValueError, match="one assignment per comm group"):
            write_assignment(tmp_path / "x.csv", problem, dataclasses.replace(result, assignment=()))

        document = json.loads(
            write_summary(tmp_path / "summary.json", problem, result, {"input": "x"}).read_text()
        )
        assert document == {**summary(problem, result), "input": "x"}
        assert {"total_cost", "lower_bound", "gap", "engine", "seconds"} <= set(document)
        assert document["total_cost"] == pytest.approx(round(expected, 2))
        assert document["engine"] == "optimal"
        assert [g["comm_group"] for g in document["comm_groups"]] == ["1,2,3", "3"]
        assert round(document["total_cost"] * 100) == invoice
        assert document["proven_optimal"] is True and document["proven_groups"] == 2
        for group in document["comm_groups"]:
            assert {"total_cost", "lower_bound", "gap", "engine", "seconds", "proven_optimal"} <= set(group)
            assert group["proven_optimal"] is True
            assert group["lower_bound"] <= group["total_cost"] + 0.01


def test_a_sample_fleet_is_written_in_the_command_line_format(tmp_path):
    paths = write_fleet_files(generate_fleet(50, seed=1), tmp_path)
    assert list(pd.read_csv(paths["devices"]).columns) == list(CLI_DEVICE_COLUMNS)
    assert list(pd.read_csv(paths["plans"]).columns) == list(CLI_PLAN_COLUMNS)
    assert list(pd.read_csv(paths["comm_plans"]).columns) == ["comm_plan", "allowed_plan_ids"]
    assert len(pd.read_csv(paths["devices"])) == 50
