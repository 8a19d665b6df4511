"""Benchmark: the engine and report steps again on the AMOP database of a finished run, with CPU and profile.

After ``bench/airflow.py --keep`` (or any finished run) the AMOP database holds the instance with its
comm groups and winners. This re-runs, in this process and without writing anything:

- ``engine``: ``load_group`` and ``solve_optimal`` of each ``--groups`` comm group (the engine task's
  work minus its result rows), under cProfile;
- ``report``: the parts of ``build_report`` one by one (reading the assignments, the costs before, the
  statistics, the workbook with and without the device sheet, the gzip CSV).

Prints wall and CPU time and the peak resident memory per part; asserts nothing::

    .venv/bin/python bench/kept_run.py --url postgresql+psycopg://postgres@127.0.0.1:5432/<amop db> \\
        --step report --instance 1
    .venv/bin/python bench/kept_run.py --url ... --step engine --groups 1,2
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import os
import pstats
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def load() -> str:
    return f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)"


def timed(name: str, function, *args, **kwargs):
    """Run ``function``; print its wall and CPU time and the peak RSS so far."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args, **kwargs)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(
        f"  {name:<28} wall {time.perf_counter() - wall:8.2f} s  CPU {time.process_time() - cpu:8.2f} s"
        f"  peak RSS {peak:6d} MiB",
        flush=True,
    )
    return result


def engine_step(engine, groups: list[int], top: int) -> None:
    from include.carrier_optimization.core.domain import Problem
    from include.carrier_optimization.core.engines.optimal import solve_optimal
    from include.carrier_optimization.pipeline import load_group

    for group_id in groups:
        group = timed(f"load_group {group_id}", load_group, engine, group_id)
        print(f"  comm group {group_id}: {group.n_devices:,} SIMs, {group.n_plans} plans")
        profiler = cProfile.Profile()
        profiler.enable()
        result = timed(f"solve_optimal {group_id}", solve_optimal, Problem((group,), days_in_period=30))
        profiler.disable()
        (outcome,) = result.groups
        print(f"  cost {outcome.cost:.2f}, bound {outcome.lower_bound}, gap {outcome.gap}, {result.message}")
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(top)


def report_step(engine, instance_id: int) -> None:
    from include.carrier_optimization.amop.instance_results import instance_header
    from include.carrier_optimization.reporting import report, report_files
    from include.carrier_optimization.reporting.summary import savings_summary

    groups = timed("_groups", report._groups, engine, instance_id)
    assignments = timed(
        "_assignments", report._assignments, engine, instance_id, [g["winner_queue_id"] for g in groups]
    )
    before, _ = timed("_costs_before", report._costs_before, engine, [g["comm_group_id"] for g in groups])
    statistics = timed("_statistics", report._statistics, assignments, before)
    header = instance_header(engine, instance_id)
    figures = savings_summary(instance_id, groups)
    figures.pop("groups")
    figures["comm_plans"] = len(statistics)
    stamp = dt.datetime(2026, 1, 1)
    args = (header, figures, statistics)
    xlsx = timed("render_workbook, sheet", report_files.render_workbook, *args, assignments, generated=stamp)
    small = timed(
        "render_workbook, no sheet",
        report_files.render_workbook,
        *args,
        None,
        generated=stamp,
        elsewhere="device_assignments.csv.gz",
    )
    csv = timed("render_assignments_csv", report_files.render_assignments_csv, assignments)
    print(
        f"  {len(assignments):,} SIMs: xlsx with the device sheet {len(xlsx):,} bytes; "
        f"xlsx without it {len(small):,} bytes + gzip CSV {len(csv):,} bytes"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="SQLAlchemy URL of the AMOP database")
    parser.add_argument("--step", choices=["engine", "report"], required=True)
    parser.add_argument("--instance", type=int, default=1, help="instance of the report step")
    parser.add_argument("--groups", default="1", help="comm group ids of the engine step, comma-separated")
    parser.add_argument("--top", type=int, default=30, help="profile lines printed")
    args = parser.parse_args(argv)
    from include.carrier_optimization.amop.storage import make_engine

    engine = make_engine(args.url)
    print(f"== {args.step} on {engine.url.database}; {load()} ==")
    try:
        if args.step == "engine":
            engine_step(engine, [int(g) for g in args.groups.split(",")], args.top)
        else:
            report_step(engine, args.instance)
    finally:
        engine.dispose()
    print(f"after: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
