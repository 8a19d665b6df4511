"""CSV files of the command line (docs/architecture.md): read a `Problem`, write assignment and summary."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from include.carrier_optimization.core.billing_period import proration_factor
from include.carrier_optimization.core.commgroups import DEFAULT_PLAN_LIMIT, build_problem, parse_plan_list
from include.carrier_optimization.core.cost import evaluate
from include.carrier_optimization.core.domain import Problem, RatePlan
from include.carrier_optimization.core.engines.result import EngineResult
from include.carrier_optimization.core.fleet import CLI_DEVICE_COLUMNS, CLI_PLAN_COLUMNS, Fleet
from include.carrier_optimization.core.validation import InvalidInputError, mask_errors

__all__ = [
    "DEVICE_COLUMNS",
    "PLAN_COLUMNS",
    "COMM_PLAN_COLUMNS",
    "read_problem",
    "problem_from_frames",
    "write_assignment",
    "write_summary",
    "summary",
]

LOG = logging.getLogger(__name__)

#: Required and optional columns of each file.
DEVICE_COLUMNS = (("device_id", "comm_plan", "usage_mb"), ("sms", "days_active", "current_plan_id"))
PLAN_COLUMNS = (
    ("plan_id", "code", "monthly_charge", "included_mb", "overage_rate", "overage_block_mb", "pooled"),
    ("sms_rate",),
)
COMM_PLAN_COLUMNS = (("comm_plan", "allowed_plan_ids"), ())

_TEXT_COLUMNS = {"device_id": str, "comm_plan": str, "code": str, "allowed_plan_ids": str}


def _read_csv(path: str | Path, argument: str) -> pd.DataFrame:
    try:
        return pd.read_csv(
            path, dtype=_TEXT_COLUMNS, skipinitialspace=True, keep_default_na=False, na_values=[""]
        )
    except FileNotFoundError as error:
        raise InvalidInputError(f"`{argument}`: file not found: {path}") from error
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise InvalidInputError(f"`{argument}`: not a readable CSV file ({path}): {error}") from error


def read_problem(
    devices_csv: str | Path,
    plans_csv: str | Path,
    comm_plans_csv: str | Path,
    *,
    days_in_period: int = 30,
    plan_limit: int = DEFAULT_PLAN_LIMIT,
) -> Problem:
    """Read the three CSV files of docs/architecture.md and build the `Problem`.

    Parameters
    ----------
    devices_csv, plans_csv, comm_plans_csv : path-like
        ``device_id, comm_plan, usage_mb[, sms, days_active, current_plan_id]``;
        ``plan_id, code, monthly_charge, included_mb, overage_rate, overage_block_mb, pooled[, sms_rate]``;
        ``comm_plan, allowed_plan_ids`` (ids joined by ``,``).
    days_in_period : int
        ``D``; a device with ``days_active < D`` is prorated by ``days_active / D``.
    plan_limit : int
        Comm groups with more plans are skipped and reported.

    Returns
    -------
    Problem
        See `problem_from_frames`.

    Raises
    ------
    InvalidInputError
        For a missing or unreadable file, missing columns, values that are not numbers, and every rule of
        `problem_from_frames`; the message names the file argument and the offending ids.
    """
    return problem_from_frames(
        _read_csv(devices_csv, "devices"),
        _read_csv(plans_csv, "plans"),
        _read_csv(comm_plans_csv, "comm_plans"),
        days_in_period=days_in_period,
        plan_limit=plan_limit,
    )


def _check_columns(frame: pd.DataFrame, argument: str, columns) -> None:
    required, _ = columns
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"`{argument}` must be a pandas DataFrame")
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise InvalidInputError(f"`{argument}`: missing required columns {', '.join(missing)}")


def _numbers(frame, argument, label, ids, specs) -> dict[str, np.ndarray]:
    """Parse numeric columns; rows that are not numbers (or not integers where required) are named."""
    values, errors = {}, []
    for column, default, integral in specs:
        if column not in frame.columns:
            values[column] = np.full(len(frame), default, dtype=np.float64)
            continue
        raw = frame[column]
        parsed = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        missing = raw.isna().to_numpy()
        parsed = np.where(missing, default, parsed)
        bad = np.isnan(parsed)  # unparsable, or missing in a required column
        rule = f"{column} must be a number"
        if integral:
            bad |= np.isfinite(parsed) & (parsed != np.round(parsed))
            rule = f"{column} must be an integer"
        errors += mask_errors(argument, label, ids, [(rule, bad)])
        values[column] = parsed
    if errors:
        raise InvalidInputError("\n".join(errors))
    return values


def _plans_from_frame(plans_df: pd.DataFrame) -> list[RatePlan]:
    _check_columns(plans_df, "plans", PLAN_COLUMNS)
    ids = plans_df["plan_id"].astype(str).to_numpy(dtype=object)
    numbers = _numbers(
        plans_df,
        "plans",
        "plan_id",
        ids,
        [
            ("plan_id", np.nan, True),
            ("monthly_charge", np.nan, False),
            ("included_mb", np.nan, False),
            ("overage_rate", np.nan, False),
            ("overage_block_mb", np.nan, False),
            ("pooled", np.nan, True),
            ("sms_rate", 0.0, False),
        ],
    )
    pooled = numbers["pooled"]
    errors = mask_errors("plans", "plan_id", ids, [("pooled must be 0 or 1", ~np.isin(pooled, (0.0, 1.0)))])
    if errors:
        raise InvalidInputError("\n".join(errors))
    codes = plans_df["code"].fillna("").astype(str).to_numpy()
    return [
        RatePlan(
            plan_id=int(numbers["plan_id"][k]),
            code=str(codes[k]),
            monthly_charge=float(numbers["monthly_charge"][k]),
            included_mb=float(numbers["included_mb"][k]),
            overage_rate=float(numbers["overage_rate"][k]),
            overage_block_mb=float(numbers["overage_block_mb"][k]),
            pooled=bool(pooled[k]),
            sms_rate=float(numbers["sms_rate"][k]),
        )
        for k in range(len(plans_df))
    ]


def _comm_plans_from_frame(comm_plans_df: pd.DataFrame) -> list[tuple[str, tuple[int, ...]]]:
    _check_columns(comm_plans_df, "comm_plans", COMM_PLAN_COLUMNS)
    names = comm_plans_df["comm_plan"].astype(str).to_numpy(dtype=object)
    lists, bad = [], np.zeros(len(names), dtype=bool)
    for k, text in enumerate(comm_plans_df["allowed_plan_ids"].tolist()):
        try:
            lists.append(parse_plan_list("" if pd.isna(text) else text))
        except ValueError:
            lists.append(())
            bad[k] = True
    unique, counts = np.unique(names.astype(str), return_counts=True)
    duplicated = np.isin(names.astype(str), unique[counts > 1])
    errors = mask_errors(
        "comm_plans",
        "comm_plan",
        names,
        [
            ("allowed_plan_ids must be integer plan ids joined by ','", bad),
            ("comm_plan must be unique", duplicated),
        ],
    )
    if errors:
        raise InvalidInputError("\n".join(errors))
    return list(zip(names.tolist(), lists, strict=True))


def problem_from_frames(
    devices_df: pd.DataFrame,
    plans_df: pd.DataFrame,
    comm_plans_df: pd.DataFrame,
    *,
    days_in_period: int = 30,
    plan_limit: int = DEFAULT_PLAN_LIMIT,
) -> Problem:
    """Build a `Problem` from DataFrames with the CSV columns (docs/architecture.md; extra ones are ignored).

    ``usage_mb`` is the usage to optimize for (already projected); ``sms`` defaults to 0,
    ``days_active`` to ``D`` (proration ``f = days_active / D`` when below ``D``), ``current_plan_id`` to
    none.

    Parameters
    ----------
    devices_df, plans_df, comm_plans_df : pandas.DataFrame
        Devices, plans and comm plans.
    days_in_period : int
        ``D``.
    plan_limit : int
        Comm groups with more plans are skipped and reported in ``Problem.skipped``.

    Returns
    -------
    Problem
        One `GroupProblem` per comm group with devices (devices in input order).

    Raises
    ------
    InvalidInputError
        Missing columns; non-numeric values; ``pooled`` not 0/1; invalid plans (``overage_rate <= 0``,
        ``overage_block_mb <= 0``, ...); negative usage, SMS or days; duplicate ids; devices on an unknown
        comm plan or on a comm plan allowing no known plan. Messages name the rows, e.g.
        "`plans`: overage_block_mb must be > 0; plan_id 17, 42 (2 of 310)".
    """
    if not isinstance(days_in_period, int) or days_in_period < 1:
        raise ValueError(f"`days_in_period` must be an integer >= 1; got {days_in_period!r}")
    plans = _plans_from_frame(plans_df)
    comm_plans = _comm_plans_from_frame(comm_plans_df)
    _check_columns(devices_df, "devices", DEVICE_COLUMNS)
    ids = devices_df["device_id"].astype(str).to_numpy(dtype=object)
    numbers = _numbers(
        devices_df,
        "devices",
        "device_id",
        ids,
        [
            ("usage_mb", np.nan, False),
            ("sms", 0.0, False),
            ("days_active", float(days_in_period), False),
            ("current_plan_id", -1.0, True),
        ],
    )
    days = numbers["days_active"]
    errors = mask_errors(
        "devices",
        "device_id",
        ids,
        [("days_active must be a finite number >= 0", ~(days >= 0) | ~np.isfinite(days))],
    )
    if errors:
        raise InvalidInputError("\n".join(errors))
    return build_problem(
        plans,
        comm_plans,
        device_ids=ids,
        comm_plan=devices_df["comm_plan"].astype(str).to_numpy(dtype=object),
        usage_mb=numbers["usage_mb"],
        sms=numbers["sms"],
        proration=proration_factor(days, days_in_period),
        current_plan_id=numbers["current_plan_id"].astype(np.int64),
        days_in_period=days_in_period,
        plan_limit=plan_limit,
    )


def _money(value: float | None) -> float | None:
    return None if value is None else round(float(value), 2)


def _write_assignment_iv(problem, result):
    if result.assignment is None:
        raise ValueError("`result` has no assignment (status 2)")
    if len(result.assignment) != len(problem.groups):
        raise ValueError("`result` must come from `problem`: one assignment per comm group")
    return problem, result


def write_assignment(path: str | Path, problem: Problem, result: EngineResult) -> Path:
    """Write ``assignment.csv``: ``device_id, plan_id, cost`` (cost per device in $, in whole cents).

    The costs are `CostBreakdown.device_cents`: they add up to each comm group's invoice to the cent.

    Devices of skipped groups are not written (see ``skipped`` in the summary).

    Raises
    ------
    ValueError
        When the result has no assignment (status 2).
    """
    problem, result = _write_assignment_iv(problem, result)
    frames = []
    for group, assignment in zip(problem.groups, result.assignment, strict=True):
        fixed, overage, sms = evaluate(group, assignment).device_cents()
        frames.append(
            pd.DataFrame(
                {
                    "device_id": group.device_ids,
                    "plan_id": group.plan_ids[assignment],
                    "cost": (fixed + overage + sms) / 100,
                }
            )
        )
    table = pd.concat(frames) if frames else pd.DataFrame(columns=["device_id", "plan_id", "cost"])
    target = Path(path)
    table.to_csv(target, index=False)
    return target


def summary(problem: Problem, result: EngineResult) -> dict:
    """The summary document: totals, then one entry per comm group and the skipped groups."""
    groups = [
        {
            "comm_group": g.key,
            "comm_plans": list(group.comm_plans),
            "devices": group.n_devices,
            "total_cost": _money(g.cost),
            "lower_bound": _money(g.lower_bound),
            "gap": g.gap,
            "proven_optimal": g.proven,
            "engine": g.engine,
            "seconds": round(g.seconds, 3),
            "status": g.status,
            "changes": g.changes,
            "pool_prices": {str(k): v for k, v in g.pool_prices.items()},
        }
        for g, group in zip(result.groups, problem.groups, strict=False)
    ]
    # the invoice total is the sum of the comm groups' invoices in cents, as assignment.csv adds up
    total = None if result.cost is None else sum(int(round(g.cost * 100)) for g in result.groups) / 100
    return {
        "total_cost": total,
        "lower_bound": _money(result.lower_bound),
        "gap": result.gap,
        "proven_optimal": result.proven,
        "proven_groups": sum(g.proven for g in result.groups),
        "engine": result.engine,
        "seconds": round(result.seconds, 3),
        "status": result.status,
        "message": result.message,
        "changes": result.changes,
        "comm_groups": groups,
        "skipped": [
            {
                "comm_group": s.key,
                "comm_plans": list(s.comm_plans),
                "devices": s.n_devices,
                "reason": s.reason,
            }
            for s in problem.skipped
        ],
    }


def write_summary(
    path: str | Path, problem: Problem, result: EngineResult, extra: Mapping | None = None
) -> Path:
    """Write ``summary.json`` (see `summary`), with optional extra top-level keys."""
    document = {**summary(problem, result), **dict(extra or {})}
    target = Path(path)
    target.write_text(json.dumps(document, indent=2) + "\n")
    return target


def write_fleet_files(fleet: Fleet, directory: str | Path) -> dict[str, Path]:
    """Write a sample fleet's ``devices.csv``, ``plans.csv`` and ``comm_plans.csv`` (command-line format)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / f"{name}.csv" for name in ("devices", "plans", "comm_plans")}
    fleet.devices[list(CLI_DEVICE_COLUMNS)].to_csv(paths["devices"], index=False)
    fleet.plans[list(CLI_PLAN_COLUMNS)].to_csv(paths["plans"], index=False)
    fleet.comm_plans[["comm_plan", "allowed_plan_ids"]].to_csv(paths["comm_plans"], index=False)
    return paths
