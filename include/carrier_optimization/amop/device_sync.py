"""SQL of the device sync: the Jasper staging tables, the ``Device`` merge's reads and writes, session stop.

The steps themselves (paging, the merge's comparison, the completion) are in ``sync/``
(docs/architecture.md, "Device sync"); every statement they run is here.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import and_, bindparam, delete, select, update
from sqlalchemy.engine import Connection, Engine, Result

from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.repository import utcnow
from include.carrier_optimization.amop.schema import FINISHED_STATUSES, OptimizationStatus
from include.carrier_optimization.amop.storage import bulk_insert, chunks, native_upsert

__all__ = [
    "MERGED_COLUMNS",
    "clear_staging",
    "existing_devices",
    "insert_devices",
    "rate_plan_ids",
    "staged_devices",
    "stop_session",
    "update_devices",
    "write_staging",
]

LOG = logging.getLogger(__name__)

_IN_CHUNK = 500
_UPSERT_CHUNK = 1000
_UPDATE_CHUNK = 5000
#: Device columns the merge owns, in comparison order.
MERGED_COLUMNS = (
    "Status",
    "CommunicationPlan",
    "CarrierRatePlanCode",
    "CarrierRatePlanId",
    "CtdDataUsage",
    "SmsUsage",
    "UsageDate",
    "ProviderDateActivated",
    "IsDeleted",
)


# -- staging ----------------------------------------------------------------------------------------


def clear_staging(engine: Engine, service_provider_id: int) -> dict[str, int]:
    """Delete the provider's rows of every Jasper staging table (one transaction); return counts by table."""
    deleted = {}
    with engine.begin() as conn:
        for table in s.STAGING_TABLES:
            result = conn.execute(delete(table).where(table.c.ServiceProviderId == service_provider_id))
            deleted[table.name] = int(result.rowcount or 0)
    LOG.info("Cleared staging of service provider %s: %s", service_provider_id, deleted)
    return deleted


def write_staging(
    engine: Engine,
    service_provider_id: int,
    device_rows: Sequence[Mapping[str, Any]],
    usage_rows: Sequence[Mapping[str, Any]],
    *,
    without_usage: Sequence[str],
) -> None:
    """Write staging rows in one transaction, replacing the rows of the same (provider, ICCID).

    ``device_rows`` go to ``JasperDeviceStaging``, ``usage_rows`` to ``JasperDeviceUsageStaging``
    (each a dict of columns, ``ICCID`` and ``ServiceProviderId`` included); the usage rows of the
    ICCIDs in ``without_usage`` (listed again, this time without usage) are deleted.
    """
    dev, use = s.jasper_device_staging, s.jasper_device_usage_staging
    with engine.begin() as conn:
        native = native_upsert(conn)
        if native is not None:
            # Upsert on the (ServiceProviderId, ICCID) key: the conflict check always uses the unique
            # index, where a DELETE ... IN (...) on a growing table is planned on stale statistics.
            for table, rows in ((dev, device_rows), (use, usage_rows)):
                if not rows:
                    continue
                statement = native(table)
                keep = [c for c in rows[0] if c not in ("ICCID", "ServiceProviderId")]
                statement = statement.on_conflict_do_update(
                    index_elements=[table.c.ServiceProviderId, table.c.ICCID],
                    set_={c: statement.excluded[c] for c in keep},
                )
                for chunk in chunks(rows, _UPSERT_CHUNK):
                    conn.execute(statement, chunk)
        else:
            for chunk in chunks([row["ICCID"] for row in device_rows], _IN_CHUNK):
                for table in (dev, use):
                    _delete_iccids(conn, table, service_provider_id, chunk)
            bulk_insert(conn, dev, device_rows)
            bulk_insert(conn, use, usage_rows)
        # A usage row of an ICCID re-listed without usage this time must not survive from before.
        for chunk in chunks(without_usage, _IN_CHUNK):
            _delete_iccids(conn, use, service_provider_id, chunk)


def _delete_iccids(conn: Connection, table: Any, service_provider_id: int, iccids: list[str]) -> None:
    conn.execute(
        delete(table).where(table.c.ServiceProviderId == service_provider_id, table.c.ICCID.in_(iccids))
    )


# -- the merge into Device ---------------------------------------------------------------------------


def rate_plan_ids(conn: Connection, service_provider_id: int) -> dict[str, int]:
    """The provider's ``JasperCarrierRatePlan`` ids by rate plan code (deleted plans left out)."""
    plans = s.carrier_rate_plan
    return {
        row.RatePlanCode: int(row.Id)
        for row in conn.execute(
            select(plans.c.RatePlanCode, plans.c.Id).where(
                plans.c.ServiceProviderId == service_provider_id, plans.c.IsDeleted.is_(False)
            )
        )
    }


def existing_devices(conn: Connection, service_provider_id: int) -> dict[str, Mapping[str, Any]]:
    """The provider's ``Device`` rows by ICCID: ``Id``, ``ICCID`` and the :data:`MERGED_COLUMNS`."""
    d = s.device
    query = select(d.c.Id, d.c.ICCID, *[d.c[c] for c in MERGED_COLUMNS]).where(
        d.c.ServiceProviderId == service_provider_id
    )
    return {row.ICCID: row._mapping for row in conn.execute(query)}


def staged_devices(conn: Connection, service_provider_id: int) -> Result[Any]:
    """The provider's staged devices joined to their usage row (``UsageICCID`` is ``NULL`` without one).

    Columns: ``ICCID, Status, RatePlan, CommunicationPlan, UsageICCID, CtdDataUsage, CtdSmsUsage,
    UsageDate, DateActivated``.
    """
    dev, use = s.jasper_device_staging, s.jasper_device_usage_staging
    query = (
        select(
            dev.c.ICCID,
            dev.c.Status,
            dev.c.RatePlan,
            dev.c.CommunicationPlan,
            use.c.ICCID.label("UsageICCID"),
            use.c.CtdDataUsage,
            use.c.CtdSmsUsage,
            use.c.UsageDate,
            use.c.DateActivated,
        )
        .select_from(
            dev.outerjoin(
                use, and_(use.c.ServiceProviderId == dev.c.ServiceProviderId, use.c.ICCID == dev.c.ICCID)
            )
        )
        .where(dev.c.ServiceProviderId == service_provider_id)
    )
    return conn.execute(query)


def insert_devices(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert new ``Device`` rows (dicts of columns) inside the caller's transaction."""
    if rows:
        bulk_insert(conn, s.device, rows)


def update_devices(
    conn: Connection, changes: Iterable[tuple[int, Mapping[str, Any]]], *, now: dt.datetime
) -> None:
    """Set the :data:`MERGED_COLUMNS` and ``ModifiedDate = now`` of ``Device`` rows, given as (Id, values)."""
    rows = [{"b_id": device_id, **{f"b_{c}": v for c, v in values.items()}} for device_id, values in changes]
    if not rows:
        return
    d = s.device
    statement = (
        update(d)
        .where(d.c.Id == bindparam("b_id"))
        .values({**{c: bindparam(f"b_{c}") for c in MERGED_COLUMNS}, "ModifiedDate": bindparam("b_now")})
    )
    for chunk in chunks(rows, _UPDATE_CHUNK):
        conn.execute(statement, [{**row, "b_now": now} for row in chunk])


# -- session stop -------------------------------------------------------------------------------------


def stop_session(engine: Engine, session_id: int, *, error: str) -> bool:
    """End the session after a failed sync (legacy ``ProcessStopCarrierOptimization``).

    In one transaction: ``IsDeleted = True``, ``IsActive = False`` and ``ErrorMessage`` on the session;
    its instances not yet finished become ``CompleteWithErrors`` with the same message. Idempotent.

    Returns
    -------
    bool
        Whether the session exists.
    """
    ses, ins = s.optimization_session, s.optimization_instance
    message = error[:4000]
    with engine.begin() as conn:
        found = conn.execute(
            update(ses)
            .where(ses.c.Id == session_id)
            .values(IsDeleted=True, IsActive=False, ErrorMessage=message)
        ).rowcount
        conn.execute(
            update(ins)
            .where(
                ins.c.OptimizationSessionId == session_id,
                ins.c.RunStatusId.not_in([int(x) for x in FINISHED_STATUSES]),
            )
            .values(
                RunStatusId=int(OptimizationStatus.CompleteWithErrors),
                RunEndTime=utcnow(),
                ErrorMessage=message,
            )
        )
    if found:
        LOG.warning("Session %s stopped after a failed device sync: %s", session_id, message)
    else:
        LOG.warning("Session %s to stop after a failed device sync does not exist", session_id)
    return bool(found)


def session_guid(engine: Engine, session_id: int) -> str | None:
    """The ``SessionGuid`` of a session, deleted or not (a stopped session is read for its e-mail)."""
    ses = s.optimization_session
    with engine.connect() as conn:
        return conn.execute(select(ses.c.SessionGuid).where(ses.c.Id == session_id)).scalar_one_or_none()
