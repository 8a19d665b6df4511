"""Command line: ``python -m include.carrier_optimization optimize`` on CSV files (docs/architecture.md)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from include.carrier_optimization.core.commgroups import DEFAULT_PLAN_LIMIT, describe_skipped
from include.carrier_optimization.core.engines import ENGINES, solve
from include.carrier_optimization.core.engines.result import STATUS_INFEASIBLE
from include.carrier_optimization.core.validation import InvalidInputError
from include.carrier_optimization.files import read_problem, write_assignment, write_summary

__all__ = ["build_parser", "main"]

LOG = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID_INPUT = 2


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1; got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0; got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (one sub-command, ``optimize``)."""
    parser = argparse.ArgumentParser(
        prog="python -m include.carrier_optimization", description="Carrier rate plan optimization on files."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    optimize = commands.add_parser("optimize", help="assign a rate plan to every device of the CSV files")
    optimize.add_argument("--devices", required=True, type=Path, help="devices.csv")
    optimize.add_argument("--plans", required=True, type=Path, help="plans.csv")
    optimize.add_argument("--comm-plans", required=True, type=Path, help="comm_plans.csv")
    optimize.add_argument("--days-in-period", type=_positive_int, default=30, help="days of the period (30)")
    optimize.add_argument("--engine", choices=sorted(ENGINES), default="best", help="engine (best)")
    optimize.add_argument("--out", required=True, type=Path, help="output directory")
    optimize.add_argument("--time-limit", type=_positive_float, default=None, help="seconds for the engine")
    optimize.add_argument(
        "--plan-limit", type=_positive_int, default=DEFAULT_PLAN_LIMIT, help="max plans per comm group (15)"
    )
    optimize.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 engine failed, 2 invalid input)."""
    args = build_parser().parse_args(argv)
    # the command prints its own warnings; library logs show with --verbose
    level = logging.INFO if args.verbose else logging.ERROR
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        problem = read_problem(
            args.devices,
            args.plans,
            args.comm_plans,
            days_in_period=args.days_in_period,
            plan_limit=args.plan_limit,
        )
    except InvalidInputError as error:
        print(f"error: invalid input\n{error}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    for line in describe_skipped(problem):
        print(f"warning: {line}", file=sys.stderr)
    result = solve(problem, engine=args.engine, time_limit=args.time_limit)
    args.out.mkdir(parents=True, exist_ok=True)
    summary_path = write_summary(args.out / "summary.json", problem, result)
    if result.status == STATUS_INFEASIBLE:
        print(f"error: {result.message}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    assignment_path = write_assignment(args.out / "assignment.csv", problem, result)
    gap = "n/a" if result.gap is None else f"{100 * result.gap:.4f} %"
    bound = "n/a" if result.lower_bound is None else f"{result.lower_bound:,.2f}"
    print(f"engine {result.engine}: total cost {result.cost:,.2f}, lower bound {bound}, gap {gap}")
    print(
        f"{problem.n_devices} devices in {len(problem.groups)} comm groups "
        f"({sum(g.proven for g in result.groups)} proven optimal), {result.changes} plan changes, "
        f"{result.seconds:.2f} s"
    )
    print(f"wrote {assignment_path} and {summary_path}")
    if not result.success:
        print(f"warning: {result.message}", file=sys.stderr)
    return EXIT_OK if result.status in (0, 1) else EXIT_FAILED
