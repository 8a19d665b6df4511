"""Benchmark: one tenant run on a real local Airflow, split into time inside the library and Airflow overhead.

Prints figures and ratios; asserts nothing (timing lives here, never in tests). The machine is shared:
the load average is printed before and after every run, read the figures with it.

For each executor in ``--executors`` and each size in ``--sizes``: a fresh local Airflow
(:class:`scripts.local_airflow.LocalAirflow`: api-server, scheduler, dag-processor, triggerer, and two
Celery workers for CeleryExecutor) on a throwaway PostgreSQL metadata database, with only the tenant acme
seeded with that many SIMs in a throwaway AMOP database (PostgreSQL, or SQLite with ``--amop sqlite``).
One manual run of ``carrier_optimization__acme`` is triggered through the REST API with conf
``{"has_synced": true}`` (engine: the tenant's default) and waited for; then it prints

- the wall time of the run (its start_date to end_date);
- per task_id, from the task instances: map indexes, min / max / sum of durations, span (first start to
  last end), the sum of the time inside ``execute()`` and of the CPU the task processes used in it, of
  queued -> start, of start -> ``execute()``
  (task process start-up: DAG parse, context) and of ``execute()`` -> end (XCom push, state), and the
  peak resident memory of the task processes (``ru_maxrss``) and its growth during ``execute()``;
- the scheduling gap of every dependency: the downstream task's first start minus the latest end of its
  upstream tasks, split at the downstream task's first ``queued_when`` (the scheduler queues a task only
  into a free executor slot, so a wait for a slot falls before it);
- the split of the wall time into *time inside the library* and *Airflow overhead*. The time inside the
  library is measured by the listener :mod:`plugins.task_timings` (switched on by ``CARRIER_OPT_TIMINGS``
  in the deployment's settings): every task try records when its ``execute()`` started and ended in the
  task process; the library time is the union of those intervals (time during which at least one task
  was running operator code). Overhead = wall - library, itself split into time inside task instances
  (union of their start/end) but outside ``execute()``, and time no task instance was running;
- the CPU each component used from the trigger to the end of the run (its process group, read from
  ``/proc``: the scheduler's includes the LocalExecutor task processes, a Celery worker's its pool's),
  and the PostgreSQL and Redis servers'; on 2 cores, whatever Airflow uses is taken from the tasks.

Every Airflow started is stopped by process id, its databases dropped and its home removed (kept with
``--keep``)::

    .venv/bin/python bench/airflow.py --sizes 10000 --executors LocalExecutor
    .venv/bin/python bench/airflow.py --sizes 10000 --executors CeleryExecutor
    .venv/bin/python bench/airflow.py --sizes 100000 --executors LocalExecutor
    .venv/bin/python bench/airflow.py            # 10000,100000 x LocalExecutor,CeleryExecutor, PostgreSQL
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.machine import cpu_snapshot, cpu_used, load, reference  # noqa: E402
from scripts.local_airflow import (  # noqa: E402
    POSTGRES,
    WINDOW_DAG_ID,
    LocalAirflow,
    create_database,
    drop_database,
    free_port,
)
from scripts.local_services import STALE_DAYS, current_period_end  # noqa: E402

TENANT = "acme"
DAG_ID = f"carrier_optimization__{TENANT}"
CONF = {"has_synced": True}
#: Redis databases of the bench (broker ``n``, device cache ``n + 1``; both flushed at the start): apart
#: from `make airflow`'s (2, 3), the e2e tests' (6 to 9, 12, 13) and the unit tests' (15 by default).
REDIS_DB = {"LocalExecutor": 4, "CeleryExecutor": 0}


def when(value: str | None) -> float | None:
    """Epoch seconds of an ISO timestamp of the REST API."""
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


def union(intervals: list[tuple[float, float]]) -> float:
    """Seconds covered by at least one of ``intervals``."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


def all_task_instances(api, run_id: str) -> list[dict]:
    found, offset = [], 0
    while True:
        page = api.call(
            "GET",
            f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances",
            params={"limit": 100, "offset": offset},
        )["task_instances"]
        found += page
        offset += len(page)
        if len(page) < 100:
            return found


def read_timings(folder: Path, run_id: str) -> list[dict]:
    records = []
    for path in folder.glob("timings-*.jsonl"):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record["dag_id"] == DAG_ID and record["run_id"] == run_id and record["start"] is not None:
                records.append(record)
    return records


def report(api, run: dict, timings: list[dict]) -> None:
    run_id = run["dag_run_id"]
    start, end = when(run["start_date"]), when(run["end_date"])
    wall = end - start
    tis = [t for t in all_task_instances(api, run_id) if t.get("start_date")]
    upstream: dict[str, set[str]] = defaultdict(set)
    for task in api.call("GET", f"/dags/{DAG_ID}/tasks")["tasks"]:
        for child in task.get("downstream_task_ids", []):
            upstream[child].add(task["task_id"])
    by_task: dict[str, list[dict]] = defaultdict(list)
    for ti in tis:
        by_task[ti["task_id"]].append(ti)
    executing: dict[str, list[dict]] = defaultdict(list)
    for record in timings:
        executing[record["task_id"]].append(record)
    order = sorted(by_task, key=lambda t: min(when(ti["start_date"]) for ti in by_task[t]))
    states = sorted({ti["state"] for ti in tis})
    print(f"run {run_id}: state {run['state']}, {len(tis)} task instances ({', '.join(states)})")
    print(
        f"{'task_id':<22}{'n':>5}{'tries':>6}{'min s':>8}{'max s':>8}{'sum s':>9}{'span s':>9}"
        f"{'exec s':>9}{'cpu s':>7}{'queued':>8}{'pre':>7}{'post':>7}{'peak MiB':>10}{'+MiB':>6}"
    )
    tries = {(ti["task_id"], ti["map_index"], ti.get("try_number")): ti for ti in tis}
    first_start: dict[str, float] = {}
    last_end: dict[str, float] = {}
    for task_id in order:
        group = by_task[task_id]
        durations = [ti.get("duration") or 0.0 for ti in group]
        first_start[task_id] = min(when(ti["start_date"]) for ti in group)
        last_end[task_id] = max(when(ti["end_date"]) or end for ti in group)
        records = executing.get(task_id, [])
        executed = sum(r["end"] - r["start"] for r in records)
        cpu = sum(r.get("cpu") or 0.0 for r in records)
        peak = max((r["max_rss_kib"] for r in records), default=0) / 1024
        growth = max((r["max_rss_kib"] - (r["max_rss_start_kib"] or 0) for r in records), default=0) / 1024
        queued = sum(
            when(ti["start_date"]) - when(ti["queued_when"]) for ti in group if ti.get("queued_when")
        )
        matched = [
            (r, tries[key]) for r in records if (key := (task_id, r["map_index"], r["try_number"])) in tries
        ]
        pre = sum(r["start"] - when(ti["start_date"]) for r, ti in matched)
        post = sum((when(ti["end_date"]) or r["end"]) - r["end"] for r, ti in matched)
        print(
            f"{task_id:<22}{len(group):>5}{max(ti.get('try_number') or 0 for ti in group):>6}"
            f"{min(durations):>8.2f}{max(durations):>8.2f}{sum(durations):>9.2f}"
            f"{last_end[task_id] - first_start[task_id]:>9.2f}{executed:>9.2f}{cpu:>7.2f}"
            f"{queued:>8.2f}{pre:>7.2f}{post:>7.2f}{peak:>10.0f}{growth:>6.0f}"
        )
    for task_id in order:
        records = sorted(executing.get(task_id, []), key=lambda r: (r["map_index"], r["try_number"]))
        if len(records) > 1:  # mapped: each index's execute() and the CPU it had in it
            print(
                f"  {task_id} per index, execute s / cpu s: "
                + ", ".join(
                    f"[{r['map_index']}] {r['end'] - r['start']:.2f} / {r.get('cpu') or 0:.2f}"
                    for r in records
                )
            )
    print(
        "scheduling gaps (first start of a task - latest end of its upstream tasks), split at its first "
        "queued_when (the scheduler queues a task only into a free executor slot):"
    )
    gaps = []
    for task_id in order:
        parents = [p for p in upstream.get(task_id, ()) if p in last_end]
        if parents:
            latest = max(parents, key=last_end.__getitem__)
            gap = first_start[task_id] - last_end[latest]
            gaps.append(gap)
            queued = [when(ti["queued_when"]) for ti in by_task[task_id] if ti.get("queued_when")]
            split = ""
            if queued:
                scheduler, slot = min(queued) - last_end[latest], first_start[task_id] - min(queued)
                split = f"   to queued {scheduler:5.2f} s, queued to start {slot:5.2f} s"
            print(f"  {latest:>22} -> {task_id:<22}{gap:8.2f} s{split}")
    print(f"  first task start - run start: {first_start[order[0]] - start:8.2f} s")
    print(f"  run end - last task end:      {end - max(last_end.values()):8.2f} s")
    library = union([(r["start"], r["end"]) for r in timings])
    in_tis = union([(when(ti["start_date"]), when(ti["end_date"]) or end) for ti in tis])
    task_sum = sum(ti.get("duration") or 0.0 for ti in tis)
    exec_sum = sum(r["end"] - r["start"] for r in timings)
    overhead = wall - library
    print(f"wall time of the run (start_date -> end_date):   {wall:9.2f} s")
    print(f"sum of task durations / of execute() times:      {task_sum:9.2f} s / {exec_sum:.2f} s")
    print(
        f"time inside the library (union of execute()):    {library:9.2f} s  ({library / wall:.1%} of wall)"
    )
    print(
        f"Airflow overhead = wall - library:               {overhead:9.2f} s  ({overhead / wall:.1%} of wall)"
    )
    outside, idle = in_tis - library, wall - in_tis
    print(f"  in task instances, outside execute():          {outside:9.2f} s  ({outside / wall:.1%})")
    print(f"  no task instance running:                      {idle:9.2f} s  ({idle / wall:.1%})")
    print(f"sum of scheduling gaps on the edges:             {sum(gaps):9.2f} s")
    print(f"ratio wall / library: {wall / library:.2f}x   overhead target <= 15 % of wall at 100k")


def report_cpu(cpu: dict[str, float], timings: list[dict], seconds: float) -> None:
    """Where the machine's CPU went between the trigger and the end of the run, per component."""
    cores = os.cpu_count() or 1
    total = sum(cpu.values())
    in_execute = sum(r.get("cpu") or 0.0 for r in timings)
    print(
        f"CPU from trigger to end seen ({seconds:.1f} s x {cores} cores = {seconds * cores:.1f} core-s): "
        f"{total:.1f} s used"
    )
    for label, used in sorted(cpu.items(), key=lambda item: -item[1]):
        print(f"  {label:<16}{used:8.1f} s  ({used / total if total else 0:.0%})")
    print(f"  of which inside execute() of the task processes (listener): {in_execute:.1f} s")


def print_results(api, run: dict) -> None:
    """The run's totals as its ``winners`` task returned them (compare runs of the same fleet to the cent)."""
    totals = api.xcom(DAG_ID, run["dag_run_id"], "winners")
    gap = "none" if totals["gap"] is None else f"{totals['gap']:.4%}"
    print(
        f"results: {totals['devices']:,} SIMs, cost before {totals['current_cost']:,.2f}, after "
        f"{totals['optimized_cost']:,.2f}, savings {totals['savings']:,.2f}, {totals['changes']:,} changes, "
        f"gap to bound {gap}"
    )


def late_reading(now: dt.datetime) -> dt.datetime:
    """Five days before the current billing period ends: the usage a run sees on any day of the month.

    The deployments' own seed is three days old, which has no usage at all early in a month.
    """
    return current_period_end(now) - dt.timedelta(days=5)


def bench(
    executor: str,
    sims: int,
    amop: str,
    timeout: float,
    keep: bool,
    redis_db: int | None,
    extra: dict[str, str] | None = None,
    stale_seed: bool = False,
) -> None:
    tag = f"{executor[:5].lower()}_{sims}_{uuid.uuid4().hex[:6]}"
    home = Path(tempfile.mkdtemp(prefix=f"bench_airflow_{tag}_"))
    timings_dir = home / "timings"
    timings_dir.mkdir()
    metadata_db, amop_db = f"carrier_opt_bench_{tag}", f"carrier_opt_bench_amop_{tag}"
    if amop == "postgres":
        create_database(amop_db, drop=True)
        amop_url = (
            POSTGRES.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{amop_db}"
        )
    else:
        amop_url = None  # the deployment's embedded SQLite file
    airflow = LocalAirflow(
        home=home,
        executor=executor,
        port=free_port(),
        metadata_db=metadata_db,
        amop_url=amop_url,
        redis_db=REDIS_DB[executor] if redis_db is None else redis_db,
        sims=sims,
        tenants=(TENANT,),
        settings={"CARRIER_OPT_TIMINGS": str(timings_dir), **(extra or {})},
        seed_as_of=None if stale_seed else late_reading(dt.datetime.now()),
    )
    print(f"\n== {DAG_ID}, {sims:,} SIMs, {executor}, AMOP on {amop}, conf {json.dumps(CONF)} ==")
    if extra:
        print(f"settings: {json.dumps(extra)}")
    reading = f"{STALE_DAYS} days ago" if stale_seed else f"{airflow.seed_as_of:%Y-%m-%d %H:%M}"
    print(f"home {home}; usage read {reading}; before: {load()}; {reference()}")
    try:
        begin = time.perf_counter()
        airflow.prepare(fresh=True)
        prepared = time.perf_counter()
        airflow.start()
        api = airflow.wait_ready(keep_paused=(WINDOW_DAG_ID,))
        ready = time.perf_counter()
        print(f"seeded + migrated in {prepared - begin:.1f} s; processes ready in {ready - prepared:.1f} s")
        cpu_before = cpu_snapshot(airflow.pids)
        run = api.trigger(DAG_ID, CONF)
        run = api.wait_for_run(DAG_ID, run["dag_run_id"], timeout=timeout)
        cpu = cpu_used(cpu_before, cpu_snapshot(airflow.pids))
        print(f"after:  {load()}; trigger -> end seen in {time.perf_counter() - ready:.1f} s")
        timings = read_timings(timings_dir, run["dag_run_id"])
        report(api, run, timings)
        print_results(api, run)
        report_cpu(cpu, timings, time.perf_counter() - ready)
    finally:
        airflow.stop()
        if not keep:
            drop_database(metadata_db)
            if amop == "postgres":
                drop_database(amop_db)
            shutil.rmtree(home, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="SIMs of acme, comma-separated")
    parser.add_argument("--executors", default="LocalExecutor,CeleryExecutor")
    parser.add_argument("--amop", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for one run")
    parser.add_argument("--keep", action="store_true", help="keep the home folder and the databases")
    parser.add_argument(
        "--redis-db",
        type=int,
        default=None,
        help="Redis database of the broker (the device cache uses the next one; both are flushed); "
        "default: LocalExecutor 4, CeleryExecutor 0",
    )
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment setting of the deployment, e.g. AIRFLOW__CORE__PARALLELISM=6 (repeatable)",
    )
    parser.add_argument(
        "--stale-seed",
        action="store_true",
        help="seed the usage of three days ago, as make airflow does (default: five days before the "
        "billing period ends, so that runs compare from day to day)",
    )
    args = parser.parse_args(argv)
    extra = dict(item.split("=", 1) for item in args.setting)
    for executor in args.executors.split(","):
        for size in args.sizes.split(","):
            bench(
                executor.strip(),
                int(size),
                args.amop,
                args.timeout,
                args.keep,
                args.redis_db,
                extra,
                stale_seed=args.stale_seed,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
