"""The ``OptimizationQueue`` rows and their queue rate plans: write, read per batch, finish, close.

Each function runs in the caller's transaction (a ``Connection``); see docs/architecture.md.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain
from typing import Any

import numpy as np
from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.sql.elements import ColumnElement

from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.instances import provider_uses_proration
from include.carrier_optimization.amop.repository import utcnow
from include.carrier_optimization.amop.schema import OptimizationStatus
from include.carrier_optimization.amop.storage import bulk_insert

KIND_BASE, KIND_SEQUENCE, KIND_ENGINE = "base", "sequence", "engine"


def insert_queue(
    conn: Connection,
    instance: Mapping[str, Any],
    service_provider_id: int,
    group_id: int,
    kind: str,
    index: int,
) -> int:
    """The id of the group's ``(kind, index)`` queue, inserted ``NotStarted`` when missing."""
    q = s.optimization_queue
    existing = conn.execute(
        select(q.c.Id).where(
            q.c.CommPlanGroupId == group_id, q.c.QueueKind == kind, q.c.SequenceIndex == index
        )
    ).first()
    if existing:
        return int(existing[0])
    return int(
        conn.execute(
            insert(q).values(
                InstanceId=int(instance["Id"]),
                CommPlanGroupId=group_id,
                RunStatusId=int(OptimizationStatus.NotStarted),
                ServiceProviderId=service_provider_id,
                QueueKind=kind,
                SequenceIndex=index,
                RunStartTime=utcnow(),
                CreatedDate=utcnow(),
                **queue_source(conn, instance),
            )
        ).inserted_primary_key[0]
    )


def queue_source(conn: Connection, instance: Mapping[str, Any]) -> dict[str, Any]:
    """Queue columns taken as the legacy does: the provider's ``UsesProration``, the ``SqsMessageId``."""
    prorates = provider_uses_proration(conn, instance["ServiceProviderId"])
    return {"UsesProration": bool(prorates), "SqsMessageId": instance["SqsMessageId"]}


def _in_range(comm_group_id: int, start: int, stop: int) -> ColumnElement[bool]:
    q = s.optimization_queue
    return and_(
        q.c.CommPlanGroupId == comm_group_id,
        q.c.QueueKind == KIND_SEQUENCE,
        q.c.SequenceIndex >= start,
        q.c.SequenceIndex < stop,
    )


def sequence_indices(conn: Connection, comm_group_id: int, start: int, stop: int) -> set[int]:
    """The sequence indices in ``[start, stop)`` whose queue is written."""
    q = s.optimization_queue
    found = conn.execute(select(q.c.SequenceIndex).where(_in_range(comm_group_id, start, stop))).scalars()
    return {int(i) for i in found}


def insert_sequence_queues(
    conn: Connection, instance: Row, comm_group_id: int, indices: Iterable[int], *, now: dt.datetime
) -> int:
    """Write ``NotStarted`` sequence queues at ``indices``; returns the number written."""
    source = queue_source(conn, instance._mapping)
    return bulk_insert(
        conn,
        s.optimization_queue,
        (
            {
                "InstanceId": instance.Id,
                "CommPlanGroupId": comm_group_id,
                "RunStatusId": int(OptimizationStatus.NotStarted),
                "ServiceProviderId": instance.ServiceProviderId,
                "IsBillInAdvance": False,
                "QueueKind": KIND_SEQUENCE,
                "SequenceIndex": i,
                "IsDeleted": False,
                "CreatedBy": s.CREATED_BY,
                "CreatedDate": now,
                **source,
            }
            for i in indices
        ),
    )


def sequence_queue_ids(conn: Connection, comm_group_id: int, start: int, stop: int) -> dict[int, int]:
    """``{sequence index: queue id}`` of the group's sequence queues in ``[start, stop)``."""
    q = s.optimization_queue
    return dict(
        conn.execute(select(q.c.SequenceIndex, q.c.Id).where(_in_range(comm_group_id, start, stop))).all()
    )


def queues_with_plans(conn: Connection, queue_ids: Iterable[int]) -> set[int]:
    """Those of ``queue_ids`` that have queue rate plan rows."""
    qrp = s.queue_rate_plan
    query = select(qrp.c.QueueId).where(qrp.c.QueueId.in_(list(queue_ids))).distinct()
    return set(conn.execute(query).scalars())


def insert_queue_rate_plans(
    conn: Connection, rows: Iterable[tuple[int, int, int]], *, now: dt.datetime
) -> int:
    """Write ``(queue id, sequence order, comm group rate plan id)`` rows; returns the number written."""
    return bulk_insert(
        conn,
        s.queue_rate_plan,
        (
            {
                "QueueId": queue_id,
                "SequenceOrder": position,
                "CommGroup_RatePlanId": group_plan_id,
                "CreatedBy": s.CREATED_BY,
                "CreatedDate": now,
            }
            for queue_id, position, group_plan_id in rows
        ),
    )


def count_sequence_queues(conn: Connection, instance_id: int) -> int:
    """How many sequence queues the instance has."""
    q = s.optimization_queue
    return conn.execute(
        select(func.count())
        .select_from(q)
        .where(q.c.InstanceId == instance_id, q.c.QueueKind == KIND_SEQUENCE)
    ).scalar_one()


def batch_queues(conn: Connection, comm_group_id: int, start: int, stop: int) -> list[Row]:
    """``(Id, RunEndTime)`` of the group's sequence queues in ``[start, stop)``, by sequence index."""
    q = s.optimization_queue
    return conn.execute(
        select(q.c.Id, q.c.RunEndTime)
        .where(_in_range(comm_group_id, start, stop))
        .order_by(q.c.SequenceIndex)
    ).all()


def pending_queue_plans(conn: Connection, comm_group_id: int, start: int, stop: int) -> np.ndarray:
    """``(QueueId, CommGroup_RatePlanId)`` rows of the unfinished sequence queues in ``[start, stop)``.

    An ``(N, 2)`` int64 array, by queue and sequence order. One join on the batch's range (a list of
    2,000 queue ids as bound parameters cost more to send and compile than the rows themselves), its
    rows fetched from the driver's cursor at once: SQLAlchemy's ``Row`` per row cost more than the query
    (~28,000 rows per batch of 2,000 sequences of 14 plans).
    """
    q, qrp = s.optimization_queue, s.queue_rate_plan
    result = conn.execute(
        select(qrp.c.QueueId, qrp.c.CommGroup_RatePlanId)
        .join(q, q.c.Id == qrp.c.QueueId)
        .where(_in_range(comm_group_id, start, stop), q.c.RunEndTime.is_(None))
        .order_by(qrp.c.QueueId, qrp.c.SequenceOrder)
    )
    try:  # not `with result:`, which SQLAlchemy 1.4 (MWAA's Airflow 3.0.6 line) does not support
        rows = result.cursor.fetchall()
    finally:
        result.close()
    return np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=2 * len(rows)).reshape(-1, 2)


def finish_queues(
    conn: Connection,
    queue_ids: Sequence[int],
    status: OptimizationStatus,
    *,
    started: dt.datetime | None = None,
) -> None:
    """End the queues with ``status`` now; ``started`` also sets their ``RunStartTime``."""
    _finish(conn, s.optimization_queue.c.Id.in_(list(queue_ids)), status, started)


def finish_batch(
    conn: Connection,
    comm_group_id: int,
    start: int,
    stop: int,
    status: OptimizationStatus,
    *,
    started: dt.datetime | None = None,
) -> None:
    """End the unfinished sequence queues in ``[start, stop)`` as `finish_queues` does, by range."""
    unfinished = s.optimization_queue.c.RunEndTime.is_(None)
    _finish(conn, and_(_in_range(comm_group_id, start, stop), unfinished), status, started)


def _finish(
    conn: Connection, which: ColumnElement[bool], status: OptimizationStatus, started: dt.datetime | None
) -> None:
    """End the ``which`` queues with ``status`` now (and ``RunStartTime`` = ``started`` when given)."""
    values: dict[str, Any] = {"RunStatusId": int(status), "RunEndTime": utcnow()}
    if started is not None:
        values["RunStartTime"] = started
    q = s.optimization_queue
    conn.execute(update(q).where(which).values(**values))


def engine_queue(conn: Connection, comm_group_id: int) -> Row | None:
    """``(Id, RunEndTime, TotalCost)`` of the group's engine queue, or None."""
    q = s.optimization_queue
    return conn.execute(
        select(q.c.Id, q.c.RunEndTime, q.c.TotalCost).where(
            q.c.CommPlanGroupId == comm_group_id, q.c.QueueKind == KIND_ENGINE
        )
    ).first()


def close_open_queues(conn: Connection, comm_group_id: int) -> None:
    """End the group's unfinished queues ``CompleteWithErrors`` without a cost (the stragglers)."""
    q = s.optimization_queue
    conn.execute(
        update(q)
        .where(q.c.CommPlanGroupId == comm_group_id, q.c.RunEndTime.is_(None))
        .values(RunEndTime=utcnow(), RunStatusId=int(OptimizationStatus.CompleteWithErrors), TotalCost=None)
    )
