"""The optimize step: its checkpoints (issue #12 §5), so a killed batch repeats at most one interval.

The kill is simulated at library level: the legacy evaluation raises on its k-th chunk, as a worker
killed mid-chunk would stop. What the database holds then is all a retry starts from.
"""

from __future__ import annotations

import math

import pytest
from sqlalchemy import delete, func, select, update

from include.carrier_optimization import pipeline
from include.carrier_optimization.amop import queues
from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.schema import OptimizationStatus
from include.carrier_optimization.core.cost import evaluate
from include.carrier_optimization.core.engines import legacy
from include.carrier_optimization.pipeline import optimizer
from include.carrier_optimization.pipeline.queues import _plans_only, group_plans
from tests.unit.include.carrier_optimization.pipeline.conftest import counts, prepare

QUEUES_PER_CHUNK = 3


class Killed(Exception):
    """Stands in for the worker's death."""


def kill_at(monkeypatch, chunk: int) -> list[int]:
    """Make the ``chunk``-th evaluation (1-based) raise `Killed`; returns the list of evaluated sizes."""
    original, calls = legacy.evaluate_sequences, []

    def evaluate_sequences(group, sequences, **kwargs):
        if len(calls) + 1 == chunk:
            raise Killed(f"killed in chunk {chunk}")
        calls.append(len(sequences))
        return original(group, sequences, **kwargs)

    monkeypatch.setattr(legacy, "evaluate_sequences", evaluate_sequences)
    return calls


def finished(engine, batch) -> int:
    q = s.optimization_queue
    with engine.connect() as conn:
        return conn.execute(
            select(func.count()).where(
                q.c.CommPlanGroupId == batch["comm_group_id"],
                q.c.QueueKind == pipeline.KIND_SEQUENCE,
                q.c.RunEndTime.is_not(None),
            )
        ).scalar_one()


def lowest_cost(engine, group_id: int) -> float:
    q = s.optimization_queue
    with engine.connect() as conn:
        return float(
            conn.execute(select(func.min(q.c.TotalCost)).where(q.c.CommPlanGroupId == group_id)).scalar()
        )


def expected_lowest(engine, batch) -> float:
    """The group's best after the batch, computed in memory: base or the batch's best sequence."""
    group = pipeline.load_group(engine, batch["comm_group_id"])
    _, _, sequences, _ = optimizer._pending_queues(
        engine, batch["comm_group_id"], batch["start"], batch["stop"]
    )
    best = legacy.evaluate_sequences(group, sequences)
    base = evaluate(group, legacy.base_assignment(group)).total
    return min(round(base, 4), round(evaluate(group, best.assignment).total, 4))


@pytest.mark.parametrize("kill_chunk", [1, 4])
def test_checkpoint_every_chunk_repeats_nothing_but_the_killed_chunk(
    db_engine, session, monkeypatch, kill_chunk
):
    batch = prepare(db_engine, session).batches[0]
    pipeline.write_queue_batch(db_engine, **batch)
    size = batch["stop"] - batch["start"]
    expected = expected_lowest(db_engine, batch)
    cursors: list[int] = []
    kill_at(monkeypatch, kill_chunk)
    with pytest.raises(Killed):
        pipeline.run_optimizer_batch(
            db_engine,
            queues_per_instance=QUEUES_PER_CHUNK,
            checkpoint_seconds=0,
            on_chunk=cursors.append,
            **batch,
        )
    monkeypatch.undo()
    done_before = (kill_chunk - 1) * QUEUES_PER_CHUNK
    assert finished(db_engine, batch) == done_before
    assert cursors == list(range(QUEUES_PER_CHUNK, done_before + 1, QUEUES_PER_CHUNK))

    resumed = pipeline.run_optimizer_batch(
        db_engine, queues_per_instance=QUEUES_PER_CHUNK, checkpoint_seconds=0, **batch
    )
    assert resumed.done and resumed.cursor == size
    assert resumed.evaluated == size - done_before  # the evaluated work of the killed run is not repeated
    assert finished(db_engine, batch) == size
    assert lowest_cost(db_engine, batch["comm_group_id"]) == pytest.approx(expected, abs=1e-9)


def test_a_kill_inside_an_interval_repeats_that_interval_and_leaves_nothing_half_written(
    db_engine, session, monkeypatch
):
    batch = prepare(db_engine, session).batches[0]
    pipeline.write_queue_batch(db_engine, **batch)
    size = batch["stop"] - batch["start"]
    expected = expected_lowest(db_engine, batch)
    staging_before = pipeline_rows(db_engine)
    evaluated = kill_at(monkeypatch, 4)
    with pytest.raises(Killed):
        pipeline.run_optimizer_batch(
            db_engine, queues_per_instance=QUEUES_PER_CHUNK, checkpoint_seconds=math.inf, **batch
        )
    monkeypatch.undo()
    assert sum(evaluated) == 3 * QUEUES_PER_CHUNK  # one interval of work, lost with the worker
    assert finished(db_engine, batch) == 0
    assert pipeline_rows(db_engine) == staging_before

    resumed = pipeline.run_optimizer_batch(db_engine, queues_per_instance=QUEUES_PER_CHUNK, **batch)
    assert resumed.done and resumed.evaluated == size
    assert lowest_cost(db_engine, batch["comm_group_id"]) == pytest.approx(expected, abs=1e-9)


def pipeline_rows(engine) -> tuple[int, int]:
    """Device result staging rows and queues with a total: what recording writes."""
    q = s.optimization_queue
    with engine.connect() as conn:
        return (
            conn.execute(select(func.count()).select_from(s.device_result_staging)).scalar_one(),
            conn.execute(select(func.count()).where(q.c.TotalCost.is_not(None))).scalar_one(),
        )


def best_sequence_queue(engine, group_id: int) -> tuple[int, float] | None:
    """The sequence queue record-if-better kept last: lowest total, then lowest id."""
    q = s.optimization_queue
    with engine.connect() as conn:
        row = conn.execute(
            select(q.c.Id, q.c.TotalCost)
            .where(
                q.c.CommPlanGroupId == group_id,
                q.c.QueueKind == pipeline.KIND_SEQUENCE,
                q.c.TotalCost.is_not(None),
            )
            .order_by(q.c.TotalCost, q.c.Id)
            .limit(1)
        ).first()
    return None if row is None else (int(row.Id), float(row.TotalCost))


def reset(engine, batch) -> None:
    """The batch's sequence queues unstarted again, their results dropped."""
    q = s.optimization_queue
    ids = select(q.c.Id).where(
        q.c.CommPlanGroupId == batch["comm_group_id"], q.c.QueueKind == pipeline.KIND_SEQUENCE
    )
    with engine.begin() as conn:
        conn.execute(delete(s.device_result_staging).where(s.device_result_staging.c.QueueId.in_(ids)))
        conn.execute(
            update(q)
            .where(q.c.Id.in_(ids))
            .values(RunStartTime=None, RunEndTime=None, TotalCost=None, RunStatusId=1)
        )


def test_the_recorded_queue_does_not_depend_on_the_checkpoint_interval(db_engine, session):
    batch = prepare(db_engine, session).batches[0]
    pipeline.write_queue_batch(db_engine, **batch)
    with db_engine.begin() as conn:  # no base queue to beat: every improvement counts
        conn.execute(
            update(s.optimization_queue)
            .where(s.optimization_queue.c.QueueKind == "base")
            .values(TotalCost=None)
        )
    kept = []
    for seconds in (math.inf, 0, math.inf):
        reset(db_engine, batch)
        pipeline.run_optimizer_batch(
            db_engine, queues_per_instance=QUEUES_PER_CHUNK, checkpoint_seconds=seconds, **batch
        )
        kept.append(best_sequence_queue(db_engine, batch["comm_group_id"]))
    assert kept[0] is not None
    assert kept[0] == kept[1] == kept[2]


def test_only_the_checkpointed_candidate_builds_its_assignment(db_engine, session, monkeypatch):
    from include.carrier_optimization.core.engines.legacy import evaluation

    batch = prepare(db_engine, session).batches[0]
    pipeline.write_queue_batch(db_engine, **batch)
    original, built = evaluation._materialize, []

    def materialize(*args, **kwargs):
        built.append(args[2])
        return original(*args, **kwargs)

    monkeypatch.setattr(evaluation, "_materialize", materialize)
    progress = pipeline.run_optimizer_batch(
        db_engine, queues_per_instance=1, checkpoint_seconds=math.inf, **batch
    )
    assert progress.done and progress.evaluated == batch["stop"] - batch["start"] > 1
    assert len(built) == 1  # one checkpoint: one assignment, not one per chunk


# -- a batch run twice, stopped, or without its queues ---------------------------------------------


def test_optimizer_batch_twice_evaluates_once(db_engine, session):
    plan = prepare(db_engine, session)
    batch = plan.batches[0]
    pipeline.write_queue_batch(db_engine, **batch)
    cursors = []
    first = pipeline.run_optimizer_batch(db_engine, queues_per_instance=7, on_chunk=cursors.append, **batch)
    written = counts(db_engine)
    second = pipeline.run_optimizer_batch(db_engine, queues_per_instance=7, **batch)
    assert first.done and first.evaluated == batch["stop"] - batch["start"]
    assert cursors[-1] == first.cursor == first.evaluated
    assert second.done and second.evaluated == second.recorded == 0
    assert counts(db_engine) == written


def test_optimizer_batch_stops_at_the_deadline_and_resumes(db_engine, session):
    plan = prepare(db_engine, session)
    batch = plan.batches[0]
    pipeline.write_queue_batch(db_engine, **batch)
    stopped = pipeline.run_optimizer_batch(db_engine, queues_per_instance=5, deadline=0.0, **batch)
    assert not stopped.done and stopped.evaluated == 0
    resumed = pipeline.run_optimizer_batch(db_engine, queues_per_instance=5, **batch)
    assert resumed.done and resumed.evaluated == batch["stop"] - batch["start"]


def test_optimizer_batch_without_its_queues_fails(db_engine, session):
    batch = prepare(db_engine, session).batches[0]
    with pytest.raises(RuntimeError, match="the queue batch was not written"):
        pipeline.run_optimizer_batch(db_engine, queues_per_instance=5, **batch)


# -- the batch's sequences, read back from its queue rate plans -------------------------------------


def test_the_pending_sequences_are_the_written_ones_in_sequence_order(db_engine, session):
    batch = prepare(db_engine, session).batches[0]
    group_id, start, stop = batch["comm_group_id"], batch["start"], batch["stop"]
    middle = (start + stop) // 2
    # the second half first: queue ids then do not follow the sequence indices
    pipeline.write_queue_batch(db_engine, comm_group_id=group_id, start=middle, stop=stop)
    pipeline.write_queue_batch(db_engine, **batch)
    with db_engine.begin() as conn:  # every other queue finished: the pending ones are not contiguous
        ids = queues.sequence_queue_ids(conn, group_id, start, stop)
        queues.finish_queues(
            conn, [ids[i] for i in range(start, stop, 2)], OptimizationStatus.CompleteWithSuccess
        )
        plans, _ = group_plans(conn, group_id)
    assert ids[middle] < ids[start]
    order = legacy.canonical_plan_order(_plans_only(plans))
    wanted = list(range(start + 1, stop, 2))

    finished, pending, sequences, _ = optimizer._pending_queues(db_engine, group_id, start, stop)

    assert finished == len(range(start, stop, 2)) and pending == [ids[i] for i in wanted]
    assert sequences.tolist() == [list(legacy.sequence_at(order, i, pipeline.SEQUENCE_CAP)) for i in wanted]


def test_a_queue_missing_one_of_its_rate_plans_fails_the_batch_and_names_why(db_engine, session):
    batch = prepare(db_engine, session).batches[0]
    pipeline.write_queue_batch(db_engine, **batch)
    qrp = s.queue_rate_plan
    with db_engine.begin() as conn:
        queue_id = queues.sequence_queue_ids(conn, batch["comm_group_id"], batch["start"], batch["stop"])[1]
        conn.execute(delete(qrp).where(qrp.c.QueueId == queue_id, qrp.c.SequenceOrder == 0))
    with pytest.raises(RuntimeError, match="must hold each of its comm group's rate plans once"):
        pipeline.run_optimizer_batch(db_engine, queues_per_instance=5, **batch)
    assert finished(db_engine, batch) == 0  # nothing evaluated, nothing finished
