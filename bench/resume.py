"""Resume benchmark: work repeated after a kill at a random point, and the cost of checkpointing.

(a) An optimizer batch (legacy engine, chunks of ``queues_per_instance`` queues, a checkpoint commit
    of the finished queues and record-if-better every ``pipeline.CHECKPOINT_SECONDS``) runs in a child
    process that is killed with SIGKILL at a random moment, then is run again to the end. Repeated
    work = the time from the child's last commit (or the start of its batch call) to the kill, whose
    evaluations are lost and done again; and the extra wall time of the killed + resumed pair over an
    uninterrupted run; both as a share of the batch's time.
(b) The same batch uninterrupted with and without checkpoint writes (Redis + the database fallback,
    throttled to one write per 2 s, as the optimizer task does), as a ratio.

    .venv/bin/python bench/resume.py [--sims 20000] [--kills 3] [--queues-per-instance 5]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ADMIN_URL = os.environ.get("CARRIER_OPT_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("CARRIER_OPT_BENCH_REDIS", "redis://127.0.0.1:6379/8")


def create_database() -> tuple[str, str]:
    import psycopg

    name = f"carrier_opt_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def prepare(url: str, sims: int) -> dict:
    """A tenant with its instance set up and the largest comm group's queues written."""
    from include.carrier_optimization import pipeline
    from include.carrier_optimization.amop.repository import AmopRepository
    from include.carrier_optimization.amop.schema import create_schema
    from include.carrier_optimization.amop.storage import make_engine
    from include.carrier_optimization.core.fleet import generate_fleet

    engine = make_engine(url)
    create_schema(engine)
    fleet = generate_fleet(sims, seed=3)
    period = AmopRepository(engine).write_fleet(fleet)
    request = pipeline.Request(tenant_id=1, service_provider_id=101, bill_period_id=period, has_synced=True)
    session = pipeline.open_session(engine, request, run_key=f"bench/{uuid.uuid4()}", now=fleet.as_of)
    plan = pipeline.prepare_instance(
        engine, session_id=session["session_id"], request=request, batch_size=10_000, now=fleet.as_of
    )
    group = max(plan.groups, key=lambda g: g["sequences"])
    batch = {"comm_group_id": group["comm_group_id"], "start": 0, "stop": group["sequences"]}
    pipeline.write_queue_batch(engine, **batch)
    return batch


def reset_batch(url: str, batch: dict) -> None:
    """Mark the batch's queues unstarted again and drop their results (a fresh run of the same work)."""
    from sqlalchemy import delete, update

    from include.carrier_optimization.amop import schema as s
    from include.carrier_optimization.amop.storage import make_engine

    q = s.optimization_queue
    engine = make_engine(url)
    with engine.begin() as conn:
        ids = q.c.CommPlanGroupId == batch["comm_group_id"]
        conn.execute(
            delete(s.device_result_staging).where(
                s.device_result_staging.c.QueueId.in_(
                    q.select().with_only_columns(q.c.Id).where(ids, q.c.QueueKind == "sequence")
                )
            )
        )
        conn.execute(
            update(q)
            .where(ids, q.c.QueueKind == "sequence")
            .values(RunStatusId=1, RunStartTime=None, RunEndTime=None, TotalCost=None)
        )
    engine.dispose()


CHILD = r"""
import sys, time, json
sys.path.insert(0, {root!r})
import redis
from include.carrier_optimization import pipeline
from include.carrier_optimization.amop.checkpoints import DatabaseCheckpointStore
from include.carrier_optimization.amop.redis_checkpoints import FallbackCheckpointStore, RedisCheckpointStore
from include.carrier_optimization.amop.throttle import ThrottledWriter
from include.carrier_optimization.amop.storage import make_engine
engine = make_engine({url!r})
batch = {batch!r}
store = None
if {checkpoint!r}:
    store = FallbackCheckpointStore(RedisCheckpointStore(redis.Redis.from_url({redis_url!r})),
                                    DatabaseCheckpointStore(engine))
key = "bench:resume"
checkpoint = ThrottledWriter(lambda cursor: store.put(key, {{"cursor": cursor}}))  # as the optimizer task
def on_chunk(cursor):
    checkpoint(cursor)
    print(cursor, time.time(), flush=True)
def on_chunk_plain(cursor):
    print(cursor, time.time(), flush=True)
print("start", time.time(), flush=True)
t = time.perf_counter()
callback = on_chunk if store else on_chunk_plain
progress = pipeline.run_optimizer_batch(engine, queues_per_instance={qpi}, on_chunk=callback, **batch)
print(json.dumps({{"seconds": time.perf_counter() - t, "evaluated": progress.evaluated}}), flush=True)
"""


def run_child(url: str, batch: dict, qpi: int, *, checkpoint: bool, kill_after: float | None = None):
    """Run the batch in a child process.

    Returns (wall seconds, queues committed, exit code, seconds of work lost: from the last commit, or
    the start of the batch call, to the kill; 0 without a kill).
    """
    code = CHILD.format(
        root=str(ROOT), url=url, batch=batch, checkpoint=checkpoint, redis_url=REDIS_URL, qpi=qpi
    )
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    killed = None
    if kill_after is not None:
        time.sleep(kill_after)
        if child.poll() is None:
            killed = time.time()
            child.send_signal(signal.SIGKILL)
    out, _ = child.communicate()
    wall = time.perf_counter() - start
    lines = [line for line in out.splitlines() if line.strip()]
    marks = [line.split() for line in lines if line.split()[0].isdigit() or line.startswith("start")]
    cursors = [int(m[0]) for m in marks if m[0].isdigit()]
    last = max((float(m[1]) for m in marks), default=None)  # the start or the last commit
    lost = killed - last if killed is not None and last is not None else 0.0
    return wall, (cursors[-1] if cursors else 0), child.returncode, lost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=20_000)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--queues-per-instance", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=3, help="uninterrupted runs per variant (median)")
    args = parser.parse_args()
    from include.carrier_optimization.pipeline.optimizer import CHECKPOINT_SECONDS

    rng = random.Random(args.seed)
    qpi = args.queues_per_instance

    name, url = create_database()
    try:
        batch = prepare(url, args.sims)
        queues = batch["stop"] - batch["start"]
        print(
            f"resume benchmark: {args.sims:,} SIMs, one batch of {queues:,} sequence queues, "
            f"{qpi} queues per chunk, PostgreSQL + Redis; load {os.getloadavg()[0]:.1f}"
        )

        plains, checkpointeds = [], []
        for _ in range(args.repeats):  # alternate the two so drifting load hits both alike
            reset_batch(url, batch)
            plains.append(run_child(url, batch, qpi, checkpoint=False)[0])
            reset_batch(url, batch)
            checkpointeds.append(run_child(url, batch, qpi, checkpoint=True)[0])
        plain, checkpointed = statistics.median(plains), statistics.median(checkpointeds)
        print(
            f"(b) uninterrupted, median of {args.repeats}: {plain:.2f} s without checkpoints, "
            f"{checkpointed:.2f} s with a checkpoint "
            f"every 2 s → overhead {100 * (checkpointed - plain) / plain:+.2f} % (target ≤ 3 %)"
        )

        shares, repeats = [], []
        for k in range(args.kills):
            reset_batch(url, batch)
            kill_at = rng.uniform(0.1, 0.9) * checkpointed
            first, done_before, code, lost = run_child(url, batch, qpi, checkpoint=True, kill_after=kill_at)
            second, _, _, _ = run_child(url, batch, qpi, checkpoint=True)
            # Queues finished (committed) before the kill are skipped; the work since the last commit
            # (at most one checkpoint interval) is redone.
            from sqlalchemy import func, select

            from include.carrier_optimization.amop import schema as s
            from include.carrier_optimization.amop.storage import make_engine

            engine = make_engine(url)
            with engine.connect() as conn:
                finished = conn.execute(
                    select(func.count())
                    .select_from(s.optimization_queue)
                    .where(
                        s.optimization_queue.c.CommPlanGroupId == batch["comm_group_id"],
                        s.optimization_queue.c.QueueKind == "sequence",
                        s.optimization_queue.c.RunEndTime.is_not(None),
                    )
                ).scalar_one()
            engine.dispose()
            assert finished == queues, f"resume left {queues - finished} queues unfinished"
            extra = (first + second - checkpointed) / checkpointed
            shares.append(lost / checkpointed)
            repeats.append(extra)
            print(
                f"(a) kill {k + 1}: SIGKILL at {kill_at:.2f} s after {done_before:,} queues committed "
                f"(exit {code}); work lost since the last commit {lost:.2f} s "
                f"(checkpoint interval {CHECKPOINT_SECONDS:g} s) = {100 * lost / checkpointed:.1f} % of the "
                f"batch's time; resumed in {second:.2f} s; wall time killed+resumed vs uninterrupted "
                f"{100 * extra:+.1f} % (process start and group load included)"
            )
        print(
            f"(a) mean repeated work {100 * sum(shares) / len(shares):.1f} % of the batch's time; "
            f"mean extra wall time {100 * sum(repeats) / len(repeats):+.1f} %"
        )
    finally:
        drop_database(name)


if __name__ == "__main__":
    main()
