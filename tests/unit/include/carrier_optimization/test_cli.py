"""The command line on files: outputs, exit codes and error messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from include.carrier_optimization.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[4]

PLANS = """plan_id,code,monthly_charge,included_mb,overage_rate,overage_block_mb,pooled
1,IND-5,3.0,5,0.5,1,0
2,POOL-10,5.0,10,1.0,1,1
3,PAYG,1.0,0,1.0,1,0
"""
COMM_PLANS = 'comm_plan,allowed_plan_ids\ncp-a,"1,2,3"\n'
DEVICES = "device_id,comm_plan,usage_mb\n" + "".join(
    f"d{i},cp-a,{u}\n" for i, u in enumerate([0, 3, 9, 14, 2.5])
)


@pytest.fixture
def inputs(tmp_path):
    for name, text in {"devices": DEVICES, "plans": PLANS, "comm_plans": COMM_PLANS}.items():
        (tmp_path / f"{name}.csv").write_text(text)
    return tmp_path


def _args(directory, *extra):
    return [
        "optimize",
        "--devices",
        str(directory / "devices.csv"),
        "--plans",
        str(directory / "plans.csv"),
        "--comm-plans",
        str(directory / "comm_plans.csv"),
        "--out",
        str(directory / "out"),
        *extra,
    ]


@pytest.mark.parametrize("engine", ["best", "optimal", "legacy"])
def test_optimize_writes_assignment_and_summary(inputs, capsys, engine):
    assert main(_args(inputs, "--engine", engine)) == 0
    summary = json.loads((inputs / "out" / "summary.json").read_text())
    table = pd.read_csv(inputs / "out" / "assignment.csv")
    assert summary["engine"] == engine and len(table) == 5
    assert round(table.cost.sum() * 100) == round(summary["total_cost"] * 100)  # to the cent
    assert set(table.plan_id) <= {1, 2, 3}
    if engine == "legacy":
        assert summary["lower_bound"] is None and summary["gap"] is None
        assert summary["proven_optimal"] is False and summary["proven_groups"] == 0
    else:  # a tiny fleet: the exact MILP proves every comm group
        assert summary["lower_bound"] <= summary["total_cost"] + 1e-9
        assert summary["proven_optimal"] is True
        assert all(g["proven_optimal"] for g in summary["comm_groups"])
    out = capsys.readouterr().out
    assert f"engine {engine}: total cost" in out
    assert f"({summary['proven_groups']} proven optimal)" in out


def test_malformed_file_gives_a_clear_error_and_exit_code_2(inputs, capsys):
    (inputs / "plans.csv").write_text(PLANS.replace("1.0,1,1", "1.0,0,1"))
    assert main(_args(inputs)) == 2
    error = capsys.readouterr().err
    assert "error: invalid input" in error
    assert "`plans`: overage_block_mb must be > 0; plan_id 2 (1 of 3)" in error
    assert not (inputs / "out").exists()


def test_bad_arguments_are_rejected_by_the_parser(inputs):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(_args(inputs, "--days-in-period", "0"))
    assert exit_info.value.code == 2


def test_runs_as_a_module(inputs):
    completed = subprocess.run(
        [sys.executable, "-m", "include.carrier_optimization", *_args(inputs, "--days-in-period", "31")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert (inputs / "out" / "assignment.csv").exists()
    assert "wrote" in completed.stdout
