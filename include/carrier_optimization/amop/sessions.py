"""The reads of the sessions page: a tenant's sessions, their instances, which have a stored report.

The figures per comm group come from `amop.summaries`; ``reporting.sessions_view`` builds the rows and
the HTML (docs/architecture.md).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from include.carrier_optimization.amop import schema as s


def tenant_ids(engine: Engine) -> list[int]:
    """Tenants that have at least one optimization session, ascending."""
    ses = s.optimization_session
    with engine.connect() as conn:
        return [
            int(t)
            for t in conn.execute(
                select(ses.c.TenantId).where(ses.c.IsDeleted.is_(False)).distinct().order_by(ses.c.TenantId)
            ).scalars()
        ]


def instance_tenant_id(engine: Engine, instance_id: int) -> int | None:
    """The tenant of an instance, or None when there is no such instance."""
    ins = s.optimization_instance
    with engine.connect() as conn:
        tenant = conn.execute(select(ins.c.TenantId).where(ins.c.Id == instance_id)).scalar_one_or_none()
    return None if tenant is None else int(tenant)


def newest_sessions(engine: Engine, tenant_id: int, limit: int) -> list[Any]:
    """The tenant's newest sessions that are not deleted (at most ``limit``) with the provider's name."""
    ses, sp = s.optimization_session, s.service_provider
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(
                    ses.c.Id,
                    ses.c.SessionGuid,
                    ses.c.TenantId,
                    ses.c.CreatedDate,
                    ses.c.Progress,
                    ses.c.ErrorMessage,
                    ses.c.ServiceProviderId,
                    sp.c.DisplayName,
                )
                .outerjoin(sp, sp.c.id == ses.c.ServiceProviderId)
                .where(ses.c.TenantId == tenant_id, ses.c.IsDeleted.is_(False))
                .order_by(ses.c.CreatedDate.desc(), ses.c.Id.desc())
                .limit(limit)
            ).all()
        )


def session_instances(engine: Engine, session_ids: list[int]) -> list[Any]:
    """The instances of the sessions that are not deleted, by id, with the provider's name."""
    if not session_ids:
        return []
    ins, sp = s.optimization_instance, s.service_provider
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(
                    ins.c.Id,
                    ins.c.OptimizationSessionId,
                    ins.c.ServiceProviderId,
                    ins.c.RunStatusId,
                    ins.c.DeviceCount,
                    ins.c.ErrorMessage,
                    sp.c.DisplayName,
                )
                .outerjoin(sp, sp.c.id == ins.c.ServiceProviderId)
                .where(ins.c.OptimizationSessionId.in_(session_ids), ins.c.IsDeleted.is_(False))
                .order_by(ins.c.Id)
            ).all()
        )


def reported_instances(engine: Engine, instance_ids: list[int]) -> set[int]:
    """Those of the instances that have a stored result file (not deleted)."""
    if not instance_ids:
        return set()
    files = s.instance_result_file
    with engine.connect() as conn:
        return set(
            conn.execute(
                select(files.c.InstanceId)
                .where(files.c.InstanceId.in_(instance_ids), files.c.IsDeleted.is_(False))
                .distinct()
            ).scalars()
        )
