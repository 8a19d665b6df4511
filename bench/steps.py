"""Benchmark: the library steps of one tenant run, without Airflow, with per-step time and peak memory.

Runs the functions the operators call, in DAG order, on a generated fleet in a throwaway database
(PostgreSQL by default, or an SQLite file): ``open_session``, ``prepare_instance`` (count),
``write_queue_batch`` per batch, ``run_engine_for_group`` (optimal; before the legacy batches, as the
engine tasks' priority has them start first in Airflow), ``run_optimizer_batch`` per batch (legacy),
``select_winners``, ``build_report`` + ``store_result_file``. Prints per step the wall time
and the growth of the process's peak resident memory, the legacy optimizer's share of time spent in
the evaluation itself (``legacy.evaluate_sequences``), and the run's costs to the cent, to compare
before and after a change. With ``--redis-db`` the engine and optimize steps read the groups through
the Redis device cache, as the operators do. Prints figures; asserts nothing::

    .venv/bin/python bench/steps.py --sims 100000
    .venv/bin/python bench/steps.py --sims 100000 --sqlite
    .venv/bin/python bench/steps.py --sims 100000 --batch-size 2000 --redis-db 5   # acme's batches, cache
    .venv/bin/python bench/steps.py --sims 1000000 --until count --profile count   # cProfile of one step
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ADMIN_URL = os.environ.get("CARRIER_OPT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def peak_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


#: The steps in DAG order (``--until``, ``--profile``).
STEP_NAMES = ("count", "write_queues", "engine", "optimize", "winners", "report")


class Steps:
    """Times steps by name and prints one line per step; ``profile``: the step run under cProfile."""

    def __init__(self, profile: str | None = None) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.profile = profile

    def run(self, name: str, function, *args, **kwargs):
        import cProfile
        import pstats

        before = peak_mb()
        profiler = cProfile.Profile() if name == self.profile else None
        start, cpu = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        result = function(*args, **kwargs)
        if profiler:
            profiler.disable()
        spent, cpu = time.perf_counter() - start, time.process_time() - cpu
        self.seconds[name] = self.seconds.get(name, 0.0) + spent
        self.cpu[name] = self.cpu.get(name, 0.0) + cpu
        print(
            f"  {name:<14}{spent:9.2f} s  (this process's CPU {cpu:6.2f} s)"
            f"   peak RSS {peak_mb():8.0f} MB (+{peak_mb() - before:.0f})"
        )
        if profiler:
            stats = pstats.Stats(profiler, stream=sys.stdout)
            stats.sort_stats("cumulative").print_stats(40)
            stats.sort_stats("tottime").print_stats(25)
        return result


def evaluation_timer():
    """Wrap ``legacy.evaluate_sequences`` (as the pipeline calls it) with a timer; return the timings."""
    from include.carrier_optimization.core.engines import legacy

    spent = [0.0]
    original = legacy.evaluate_sequences

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - start

    legacy.evaluate_sequences = timed
    return spent


def run(
    url: str,
    n_sims: int,
    batch_size: int,
    queues_per_instance: int,
    until: str = "report",
    profile: str | None = None,
    redis_db: int | None = None,
) -> None:
    from bench.machine import load, reference
    from include.carrier_optimization import pipeline
    from include.carrier_optimization.amop.repository import AmopRepository
    from include.carrier_optimization.amop.result_files import store_result_file
    from include.carrier_optimization.amop.schema import create_schema
    from include.carrier_optimization.amop.storage import make_engine
    from include.carrier_optimization.core.engines.optimal import solve_optimal
    from include.carrier_optimization.core.fleet import generate_fleet
    from include.carrier_optimization.reporting.report import build_report

    engine = make_engine(url)
    create_schema(engine)
    cache = device_cache(redis_db)
    steps = Steps(profile)
    wanted = set(STEP_NAMES[: STEP_NAMES.index(until) + 1])
    print(f"== library steps, {n_sims:,} SIMs on {engine.dialect.name}; {load()} ==")
    print(reference())
    fleet = steps.run("fleet", generate_fleet, n_sims, seed=1)
    steps.run("write fleet", AmopRepository(engine).write_fleet, fleet)
    request = pipeline.Request(
        tenant_id=fleet.tenant.tenant_id,
        service_provider_id=fleet.tenant.service_provider_id,
        has_synced=True,
    )
    # the run's clock: an hour after the fleet's usage reading, inside its fixed billing period (which ends
    # 2026-11-30), so the figures do not depend on the day the benchmark runs
    now = fleet.as_of + dt.timedelta(hours=1)
    session = steps.run("session", pipeline.open_session, engine, request, run_key=uuid.uuid4().hex, now=now)
    plan = steps.run(
        "count",
        pipeline.prepare_instance,
        engine,
        session_id=session["session_id"],
        request=request,
        batch_size=batch_size,
        now=now,
    )
    spent = evaluation_timer()
    if "write_queues" in wanted:
        for batch in plan.batches:
            steps.run("write_queues", pipeline.write_queue_batch, engine, **batch)
    if "engine" in wanted:  # before the legacy batches, as their priority has them start in Airflow
        for group in plan.groups:
            steps.run(
                "engine",
                pipeline.run_engine_for_group,
                engine,
                comm_group_id=group["comm_group_id"],
                solve=solve_optimal,
                cache=cache,
            )
    if "optimize" in wanted:
        for batch in plan.batches:
            steps.run(
                "optimize",
                pipeline.run_optimizer_batch,
                engine,
                queues_per_instance=queues_per_instance,
                load=None if cache is None else load_through(engine, batch["comm_group_id"], cache),
                **batch,
            )
    if "winners" in wanted:
        steps.run("winners", pipeline.select_winners, engine, instance_id=plan.instance_id)

    def report() -> object:
        result = build_report(engine, plan.instance_id)
        store_result_file(engine, plan.instance_id, result.xlsx, assignments_csv=result.assignments_csv)
        return result

    result = steps.run("report", report) if "report" in wanted else None
    print("per step (s): " + ", ".join(f"{k} {v:.2f}" for k, v in steps.seconds.items()))
    print("per step, CPU of this process (s): " + ", ".join(f"{k} {v:.2f}" for k, v in steps.cpu.items()))
    print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    optimize = steps.seconds.get("optimize", 0.0)
    if optimize:
        print(
            f"legacy optimize: {optimize:.2f} s, of which evaluation {spent[0]:.2f} s "
            f"= {spent[0] / optimize:.1%} of task time"
        )
    if result is not None:
        figures = result.figures
        print(
            f"results: cost before {figures['current_cost']:.2f}, after {figures['optimized_cost']:.2f}, "
            f"savings {figures['savings']:.2f}, devices {figures['devices']:,}, "
            f"changes {figures['changes']:,}"
        )
        csv = result.assignments_csv
        print(
            f"report: xlsx {len(result.xlsx):,} bytes, gzip CSV {len(csv):,} bytes"
            if csv
            else f"report: xlsx {len(result.xlsx):,} bytes, no CSV (the device sheet holds every SIM)"
        )
    engine.dispose()
    if cache is not None:
        cache.client.flushdb()


def device_cache(redis_db: int | None):
    """The operators' Redis device cache on database ``redis_db`` (flushed), or None."""
    if redis_db is None:
        return None
    import redis

    from include.carrier_optimization.amop.device_cache import DeviceCache

    client = redis.Redis.from_url(f"redis://127.0.0.1:6379/{redis_db}")
    client.flushdb()
    return DeviceCache(client)


def load_through(engine, comm_group_id: int, cache):
    """The optimize operator's ``load``: the group read through the device cache."""
    from include.carrier_optimization import pipeline

    return lambda: pipeline.load_group(engine, comm_group_id, cache=cache)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sims", type=int, default=100_000)
    parser.add_argument("--sqlite", action="store_true", help="an SQLite file instead of PostgreSQL")
    parser.add_argument("--batch-size", type=int, default=500, help="sequences per batch (the DAG's default)")
    parser.add_argument("--queues-per-instance", type=int, default=5)
    parser.add_argument("--until", choices=STEP_NAMES, default="report", help="last step to run")
    parser.add_argument("--profile", choices=STEP_NAMES, help="run this step under cProfile, print the top")
    parser.add_argument(
        "--redis-db",
        type=int,
        help="read the groups through the Redis device cache on this database, as the operators do "
        "(flushed before and after; e.g. 5)",
    )
    args = parser.parse_args(argv)
    options = {"until": args.until, "profile": args.profile, "redis_db": args.redis_db}
    if args.sqlite:
        with tempfile.TemporaryDirectory(prefix="carrier_opt_steps_") as folder:
            run(
                f"sqlite:///{folder}/amop.db", args.sims, args.batch_size, args.queues_per_instance, **options
            )
        return
    import psycopg

    name = f"carrier_opt_steps_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
        run(url, args.sims, args.batch_size, args.queues_per_instance, **options)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
