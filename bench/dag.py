"""Benchmark: Airflow overhead of a whole tenant DAG run, and COPY against row-by-row INSERTs.

Prints figures and ratios; asserts nothing (timing lives here, never in tests).

(a) For each size in ``--sizes``: write a generated fleet of that many SIMs to a throwaway PostgreSQL
    database, run ``carrier_optimization__acme`` with ``dag.test()`` and compare its wall time with
    - the time inside the library functions the operators call (timed in-process: dag.test runs
      the tasks in this process), of which the legacy evaluation (``run_optimizer_batch``) and the
      optimal engine (``run_engine_for_group``; its pure solver time from
      ``OptimizationCommGroupSummary.EngineSeconds``),
    - the task durations recorded in the Airflow metadata DB (``task_instance.duration``).
    Airflow overhead = wall - time inside the library functions.
(b) Rows per second of ``bulk_insert`` (PostgreSQL ``COPY``) against one ``INSERT`` execute per row
    (autocommit off, one commit at the end; and, on a tenth of the rows, a commit per row as the legacy
    CreateQueue does), for ``OptimizationQueue_RatePlan`` rows with their parent
    queues and comm group plans present (primary key and two foreign keys checked per row), then the same
    rows into an unconstrained twin table (transfer cost alone). SQLAlchemy ``executemany`` is shown too.

Everything runs in a throwaway PostgreSQL database (created and dropped) and a throwaway AIRFLOW_HOME under
/tmp (migrated with ``airflow.utils.db.resetdb()``)::

    .venv/bin/python bench/dag.py --sizes 10000,100000 --rows 200000
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ADMIN_URL = os.environ.get("CARRIER_OPT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
# Library functions the operators call, per task: (module, function names). Operators call the
# pipeline through its module; names an operator module imported directly are patched there too.
STEPS = {
    "session": ("pipeline", ("open_session",)),
    "count": ("pipeline", ("prepare_instance",)),
    "write_queues": ("pipeline", ("write_queue_batch",)),
    "optimize": ("pipeline", ("run_optimizer_batch",)),
    "engine": ("pipeline", ("run_engine_for_group",)),
    "winners": ("pipeline", ("select_winners",)),
    "report": ("reporting.report", ("build_report", "store_result_file")),
    "(progress)": ("pipeline", ("set_progress",)),
}


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} ({os.cpu_count()} CPUs)"


def set_airflow_env(home: Path, db_url: str) -> None:
    """Configure Airflow and the package before anything imports airflow."""
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
    os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
    os.environ["AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES_REGEXP"] = ".*"
    os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
    os.environ["CARRIER_OPT_DB_URL"] = db_url
    os.environ["CARRIER_OPT_OUTBOX"] = str(home / "outbox")
    sys.path.insert(0, str(ROOT))


def create_database() -> tuple[str, str]:
    import psycopg

    name = f"carrier_opt_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- (a) whole DAG run ----------------------------------------------------------------------------------


def instrument_library() -> dict[str, list[float]]:
    """Wrap the library functions of ``STEPS`` with wall-clock timers; return the timings by name."""
    import importlib

    operators = importlib.import_module("plugins.operators.optimization_report")  # holds library names itself
    spent: dict[str, list[float]] = defaultdict(list)
    for module_name, names in STEPS.values():
        module = importlib.import_module(f"include.carrier_optimization.{module_name}")
        for name in names:
            original = getattr(module, name, None)
            if original is None:
                continue

            @functools.wraps(original)
            def timed(*args, __original=original, __name=name, **kwargs):
                start = time.perf_counter()
                try:
                    return __original(*args, **kwargs)
                finally:
                    spent[__name].append(time.perf_counter() - start)

            setattr(module, name, timed)
            if getattr(operators, name, None) is original:
                setattr(operators, name, timed)
    return spent


def task_durations(run_id: str) -> list[tuple]:
    """``(task_id, tries, state, count, seconds)`` per task of the run, from the metadata DB."""
    from airflow import settings
    from sqlalchemy import text

    with settings.engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT task_id, MAX(try_number), MIN(state), COUNT(*), SUM(duration) "
                    "FROM task_instance WHERE run_id = :run GROUP BY task_id ORDER BY MIN(start_date)"
                ),
                {"run": run_id},
            )
        ]


def print_results(conn) -> None:
    """The run's costs, to compare before and after a change to the cent."""
    from sqlalchemy import func, select

    from include.carrier_optimization.amop import schema as s

    t = s.comm_group_summary
    rows = conn.execute(
        select(t.c.DeviceCount, t.c.BaseCost, t.c.EngineCost, t.c.WinnerKind, t.c.WinnerCost).order_by(
            t.c.CommGroupId
        )
    ).all()
    for devices, base, engine_cost, kind, winner in rows:
        print(
            f"results: group of {devices:,} devices: base {base}, engine {engine_cost}, {kind} wins {winner}"
        )
    q = s.optimization_queue
    queue_total = conn.execute(select(func.sum(q.c.TotalCost)).where(q.c.TotalCost.is_not(None))).scalar()
    charged = conn.execute(
        select(func.sum(s.device_result.c.ChargeAmt), func.count()).select_from(s.device_result)
    ).one()
    print(
        f"results: sum of queue totals {queue_total}; device results {charged[1]:,} rows, charge {charged[0]}"
    )


def bench_dag(db_url: str, n_sims: int, spent: dict[str, list[float]]) -> None:
    import runpy

    from sqlalchemy import func, select

    from include.carrier_optimization.amop import schema as s
    from include.carrier_optimization.amop.repository import AmopRepository
    from include.carrier_optimization.amop.schema import create_schema, drop_schema
    from include.carrier_optimization.amop.storage import make_engine
    from include.carrier_optimization.core.fleet import generate_fleet

    engine = make_engine(db_url)
    drop_schema(engine)
    create_schema(engine)
    start = time.perf_counter()
    AmopRepository(engine).write_fleet(generate_fleet(n_sims, seed=1))
    fleet_seconds = time.perf_counter() - start
    spent.clear()
    dag = runpy.run_path(str(ROOT / "dags" / "carrier_optimization.py"))["carrier_optimization__acme"]
    print(f"\n== (a) dag.test() of {dag.dag_id}, {n_sims:,} SIMs on PostgreSQL ==")
    print(f"before: {load()}; fleet written in {fleet_seconds:.1f} s")
    start = time.perf_counter()
    dr = dag.test(run_conf={"has_synced": True, "engine": "best"})
    wall = time.perf_counter() - start
    print(f"after:  {load()}")
    with engine.connect() as conn:
        summary = conn.execute(
            select(
                func.count(),
                func.sum(s.comm_group_summary.c.DeviceCount),
                func.sum(s.comm_group_summary.c.SequenceCount),
                func.sum(s.comm_group_summary.c.EngineSeconds),
            )
        ).one()
        queues = conn.execute(select(func.count()).select_from(s.optimization_queue)).scalar_one()
        print_results(conn)
    engine.dispose()
    groups, devices, sequences, engine_seconds = summary
    tasks = task_durations(dr.run_id)
    task_seconds = sum(t[4] or 0.0 for t in tasks)
    library = sum(sum(v) for v in spent.values())
    legacy = sum(spent["run_optimizer_batch"])
    optimal = sum(spent["run_engine_for_group"])
    solver = float(engine_seconds or 0.0)
    print(
        f"run state {dr.state}; {groups} comm groups, {devices:,} devices, {sequences:,} sequences, "
        f"{queues:,} queues, {sum(t[3] for t in tasks)} task instances"
    )
    print(
        f"{'task':<14}{'tis':>5}{'tries':>6}  {'state':<9}{'task s':>9}{'library s':>12}  library functions"
    )
    for task_id, tries, state, count, seconds in tasks:
        names = STEPS.get(task_id, ("", ()))[1]
        inside = sum(sum(spent[n]) for n in names) if names else float("nan")
        print(
            f"{task_id:<14}{count:>5}{tries:>6}  {state or '-':<9}"
            f"{seconds or 0.0:>9.2f}{inside:>12.2f}  {', '.join(names) or '-'}"
        )
    calls = spent["set_progress"]
    print(f"set_progress (in several tasks): {sum(calls):.2f} s in {len(calls)} calls")
    print(f"wall time of dag.test():                   {wall:9.2f} s")
    print(f"sum of task durations (metadata DB):       {task_seconds:9.2f} s")
    print(f"inside library functions (all):            {library:9.2f} s")
    print(f"  legacy evaluation (run_optimizer_batch): {legacy:9.2f} s")
    print(f"  optimal engine (run_engine_for_group):   {optimal:9.2f} s")
    print(f"    of which solver (sum EngineSeconds):   {solver:9.2f} s")
    overhead = wall - library
    print(f"Airflow overhead = wall - library:         {overhead:9.2f} s  ({overhead / wall:.1%} of wall)")
    print(f"  outside any task = wall - task sum:      {wall - task_seconds:9.2f} s")
    print(f"  inside tasks, outside library:           {task_seconds - library:9.2f} s")
    print(f"ratio wall / library time:                 {wall / library:9.2f}x")
    print(f"ratio wall / engines (legacy + optimal):   {wall / (legacy + optimal):9.2f}x")


# -- (b) COPY against row-by-row INSERTs ---------------------------------------------------------------


def seed_parents(engine, n_queues: int, n_plans: int) -> tuple[list[int], list[int]]:
    """Session, instance, one comm group with ``n_plans`` plans and ``n_queues`` queues; their ids."""
    import datetime as dt

    from sqlalchemy import insert, select

    from include.carrier_optimization.amop import schema as s
    from include.carrier_optimization.amop.storage import bulk_insert

    now = dt.datetime(2026, 11, 25, 6, 0)
    with engine.begin() as conn:
        session_id = conn.execute(
            insert(s.optimization_session)
            .values(SessionGuid=str(uuid.uuid4()), TenantId=1)
            .returning(s.optimization_session.c.Id)
        ).scalar_one()
        instance_id = conn.execute(
            insert(s.optimization_instance)
            .values(
                RunStatusId=1,
                BillingPeriodStartDate=now - dt.timedelta(days=30),
                BillingPeriodEndDate=now + dt.timedelta(days=5),
                TenantId=1,
                OptimizationSessionId=session_id,
            )
            .returning(s.optimization_instance.c.Id)
        ).scalar_one()
        group_id = conn.execute(
            insert(s.comm_group)
            .values(InstanceId=instance_id, RatePlanIds="bench")
            .returning(s.comm_group.c.Id)
        ).scalar_one()
        bulk_insert(
            conn,
            s.comm_group_rate_plan,
            (
                {"InstanceId": instance_id, "CommGroupId": group_id, "CarrierRatePlanId": p}
                for p in range(n_plans)
            ),
        )
        bulk_insert(
            conn,
            s.optimization_queue,
            (
                {
                    "InstanceId": instance_id,
                    "CommPlanGroupId": group_id,
                    "RunStatusId": 1,
                    "QueueKind": "sequence",
                    "SequenceIndex": i,
                    "CreatedBy": s.CREATED_BY,
                    "CreatedDate": now,
                }
                for i in range(n_queues)
            ),
        )
        plans = list(
            conn.execute(select(s.comm_group_rate_plan.c.Id).order_by(s.comm_group_rate_plan.c.Id)).scalars()
        )
        queues = list(
            conn.execute(select(s.optimization_queue.c.Id).order_by(s.optimization_queue.c.Id)).scalars()
        )
    return queues, plans


def bench_insert(db_url: str, n_rows: int, repeat: int) -> None:
    import datetime as dt

    import psycopg
    from sqlalchemy import Column, MetaData, Table, func, insert, select, text

    from include.carrier_optimization.amop import schema as s
    from include.carrier_optimization.amop.schema import create_schema, drop_schema
    from include.carrier_optimization.amop.storage import bulk_insert, make_engine

    n_plans = 10
    engine = make_engine(db_url)
    drop_schema(engine)
    create_schema(engine)
    queues, plans = seed_parents(engine, -(-n_rows // n_plans), n_plans)
    now = dt.datetime(2026, 11, 25, 6, 0, 0, 123456)
    rows = [
        {
            "QueueId": queues[i // n_plans],
            "SequenceOrder": i % n_plans,
            "CommGroup_RatePlanId": plans[(i * 7 + i // n_plans) % n_plans],
            "CreatedBy": s.CREATED_BY,
            "CreatedDate": now,
        }
        for i in range(n_rows)
    ]
    cols = list(rows[0])
    # The same columns without primary key, foreign keys or defaults: what transfer alone costs.
    twin = Table(
        "QueueRatePlanUnconstrained", MetaData(), *[Column(c.name, c.type) for c in s.queue_rate_plan.columns]
    )
    twin.metadata.create_all(engine)
    tables = {
        "OptimizationQueue_RatePlan (PK + 2 FKs, as written by the DAG)": s.queue_rate_plan,
        "unconstrained twin (no PK, FK or index)": twin,
    }
    print(
        f"\n== (b) {n_rows:,} OptimizationQueue_RatePlan-shaped rows into PostgreSQL, {repeat} run(s) each =="
    )
    print(f"parents: {len(queues):,} queues, {len(plans)} comm group plans; before: {load()}")
    for title, table in tables.items():

        def reset(table=table) -> None:
            with engine.begin() as conn:
                conn.execute(text(f'TRUNCATE "{table.name}"'))

        def check(table=table) -> str:
            with engine.connect() as conn:
                count, total = conn.execute(
                    select(func.count(), func.sum(table.c.CommGroup_RatePlanId * 100 + table.c.SequenceOrder))
                ).one()
            return f"{count:,} rows, checksum {total}"

        def copy(table=table) -> None:
            with engine.begin() as conn:
                bulk_insert(conn, table, rows)

        def executemany(table=table) -> None:
            with engine.begin() as conn:
                conn.execute(insert(table), rows)

        def row_by_row(table=table) -> None:
            statement = 'INSERT INTO "{}" ({}) VALUES ({})'.format(
                table.name, ", ".join(f'"{c}"' for c in cols), ", ".join(["%s"] * len(cols))
            )
            with psycopg.connect(db_url) as pg:  # autocommit off: one transaction, one commit at the end
                with pg.cursor() as cursor:
                    for row in rows:
                        cursor.execute(statement, [row[c] for c in cols])
                pg.commit()

        autocommit_rows = rows[: max(1, n_rows // 10)]

        def row_by_row_autocommit(table=table, autocommit_rows=autocommit_rows) -> None:
            statement = 'INSERT INTO "{}" ({}) VALUES ({})'.format(
                table.name, ", ".join(f'"{c}"' for c in cols), ", ".join(["%s"] * len(cols))
            )
            with psycopg.connect(db_url, autocommit=True) as pg:  # a commit per row, as legacy CreateQueue
                with pg.cursor() as cursor:
                    for row in autocommit_rows:
                        cursor.execute(statement, [row[c] for c in cols])

        methods = {
            "bulk_insert (COPY, 10k-row chunks)": copy,
            "SQLAlchemy executemany (one call)": executemany,
            "row-by-row INSERT, one commit": row_by_row,
            "row-by-row INSERT, commit per row": row_by_row_autocommit,
        }
        counts = {label: n_rows for label in methods} | {
            "row-by-row INSERT, commit per row": len(autocommit_rows)
        }
        print(f"-- {title}")
        rates: dict[str, list[float]] = defaultdict(list)
        for attempt in range(repeat):
            for label, method in methods.items():
                reset()
                start = time.perf_counter()
                method()
                seconds = time.perf_counter() - start
                rates[label].append(counts[label] / seconds)
                print(
                    f"  run {attempt + 1} {label:<36}{seconds:8.2f} s"
                    f" {counts[label] / seconds:>10,.0f} rows/s"
                    f"  {check()}  ({load()})"
                )
        baseline = max(rates["row-by-row INSERT, one commit"])
        per_row = max(rates["row-by-row INSERT, commit per row"])
        for label, r in rates.items():
            print(
                f"  best  {label:<36}{max(r):>19,.0f} rows/s"
                f" {max(r) / baseline:6.1f}x row-by-row (one commit)"
                f" {max(r) / per_row:7.1f}x row-by-row (commit per row)"
            )
        reset()
    twin.metadata.drop_all(engine)
    engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="10000", help="SIM counts of the DAG runs, comma-separated")
    parser.add_argument("--rows", type=int, default=200_000, help="rows of the insert benchmark")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each insert method")
    parser.add_argument("--skip-dag", action="store_true", help="only the insert benchmark")
    parser.add_argument("--skip-insert", action="store_true", help="only the DAG runs")
    args = parser.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",") if x.strip()]

    home = Path(tempfile.mkdtemp(prefix="carrier_opt_bench_airflow_", dir="/tmp"))
    name, db_url = create_database()
    set_airflow_env(home, db_url)
    print(f"PostgreSQL database {name} (throwaway); AIRFLOW_HOME {home} (throwaway); {load()}")
    try:
        if not args.skip_insert:
            bench_insert(db_url, args.rows, args.repeat)
        if not args.skip_dag:
            from airflow.utils import db

            db.resetdb()
            spent = instrument_library()
            for n_sims in sizes:
                bench_dag(db_url, n_sims, spent)
    finally:
        drop_database(name)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
