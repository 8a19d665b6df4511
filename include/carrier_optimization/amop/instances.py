"""The session and instance rows as the run's steps move them: run key, progress, status, end.

Each function runs in the caller's transaction (a ``Connection``); see docs/architecture.md.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Row

from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.repository import utcnow
from include.carrier_optimization.amop.schema import OptimizationStatus


def finished_instance_id(
    conn: Connection, *, session_id: int, service_provider_id: int, portal_type_id: int
) -> int | None:
    """Id of the session's instance for the provider and portal type that ended ``CompleteWithSuccess``."""
    ins = s.optimization_instance
    row = conn.execute(
        select(ins.c.Id).where(
            ins.c.OptimizationSessionId == session_id,
            ins.c.ServiceProviderId == service_provider_id,
            ins.c.PortalTypeId == portal_type_id,
            ins.c.RunStatusId == int(OptimizationStatus.CompleteWithSuccess),
        )
    ).first()
    return None if row is None else int(row.Id)


def set_run_key(conn: Connection, session_id: int, run_key: str) -> None:
    """Store the Airflow run (``<dag_id>/<run_id>``) that opened the session."""
    ses = s.optimization_session
    conn.execute(update(ses).where(ses.c.Id == session_id).values(AirflowRunId=run_key))


def set_session_progress(conn: Connection, session_id: int, progress: int, *, error: str | None) -> None:
    """Store the session's progress and, when given, its error text."""
    values: dict[str, Any] = {"Progress": progress}
    if error is not None:
        values["ErrorMessage"] = error
    ses = s.optimization_session
    conn.execute(update(ses).where(ses.c.Id == session_id).values(**values))


def instance_row(conn: Connection, instance_id: int) -> Row:
    """The instance row (raises when missing)."""
    ins = s.optimization_instance
    return conn.execute(select(ins).where(ins.c.Id == instance_id)).one()


def instance_of_group(conn: Connection, comm_group_id: int) -> Row:
    """The row of the instance a comm group belongs to (raises when missing)."""
    ins = s.optimization_instance
    return conn.execute(
        select(ins)
        .join(s.comm_group, s.comm_group.c.InstanceId == ins.c.Id)
        .where(s.comm_group.c.Id == comm_group_id)
    ).one()


def status_and_error(conn: Connection, instance_id: int) -> Row:
    """``(RunStatusId, ErrorMessage)`` of the instance (raises when missing)."""
    ins = s.optimization_instance
    return conn.execute(select(ins.c.RunStatusId, ins.c.ErrorMessage).where(ins.c.Id == instance_id)).one()


def has_comm_groups(conn: Connection, instance_id: int) -> bool:
    """Whether the instance's set-up wrote comm groups."""
    cg = s.comm_group
    return conn.execute(select(cg.c.Id).where(cg.c.InstanceId == instance_id).limit(1)).first() is not None


def reopen(conn: Connection, instance_id: int, status: OptimizationStatus) -> None:
    """Move the instance back to ``status`` with no error text and no end time."""
    _update(conn, instance_id, RunStatusId=int(status), ErrorMessage=None, RunEndTime=None)


def set_status(conn: Connection, instance_id: int, status: OptimizationStatus) -> None:
    """Move the instance to ``status`` (nothing else changes)."""
    _update(conn, instance_id, RunStatusId=int(status))


def set_up_done(conn: Connection, instance_id: int, device_count: int) -> None:
    """The set-up is written: store the SIM count and move to ``RunningPermutations``."""
    _update(
        conn, instance_id, DeviceCount=device_count, RunStatusId=int(OptimizationStatus.RunningPermutations)
    )


def device_count(conn: Connection, instance_id: int) -> int:
    """The instance's ``DeviceCount``."""
    ins = s.optimization_instance
    return conn.execute(select(ins.c.DeviceCount).where(ins.c.Id == instance_id)).scalar_one()


def finish(conn: Connection, instance_id: int) -> None:
    """End the instance ``CompleteWithSuccess`` now, clearing the error of a failed try it resumed."""
    _update(
        conn,
        instance_id,
        RunStatusId=int(OptimizationStatus.CompleteWithSuccess),
        RunEndTime=utcnow(),
        ErrorMessage=None,
    )


def provider_uses_proration(conn: Connection, service_provider_id: int) -> bool | None:
    """The provider's ``UsesProration`` (None when the provider is missing)."""
    sp = s.service_provider
    return conn.execute(select(sp.c.UsesProration).where(sp.c.id == service_provider_id)).scalar_one_or_none()


def _update(conn: Connection, instance_id: int, **values: Any) -> None:
    ins = s.optimization_instance
    conn.execute(update(ins).where(ins.c.Id == instance_id).values(**values))
