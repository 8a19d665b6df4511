"""Device sync on the AMOP tables: carrier pages into staging, staging merged into ``Device``, session stop.

The steps of docs/architecture.md on the worker side (docs/architecture.md), each
idempotent:

1. :func:`sync_pages` pages the carrier API from the request's page (staging cleared first when that
   is page 1), fetches the page's cycle-to-date usage and writes device and usage staging rows in one
   transaction per page, keyed by (provider, ICCID) so a re-staged page replaces its rows. After each
   page the checkpoint (last completed page) is saved, so a retried or cleared task resumes after it.
2. :func:`merge_staging` merges staging into ``Device`` in one transaction: new ICCIDs inserted,
   changed status / comm plan / rate plan / usage / dates updated with ``ModifiedDate``; nothing is
   half-merged, and a second merge changes nothing.
3. :func:`completion_target` names the billing period the completion message carries (the request's;
   the legacy device cleanup re-derived it from the clock).
4. :func:`stop_session` is the legacy ``ProcessStopCarrierOptimization``: after a sync failed for good,
   the session is deleted and inactive (and any unfinished instance ends with errors), so nothing
   waits on it; :func:`sync_error_email` is the e-mail that goes with it.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import and_, bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine

from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.checkpoints import CheckpointStore
from include.carrier_optimization.amop.repository import AmopRepository, utcnow
from include.carrier_optimization.amop.schema import FINISHED_STATUSES, OptimizationStatus
from include.carrier_optimization.amop.storage import bulk_insert, chunks
from include.carrier_optimization.messaging.sync_messages import DeviceSyncRequest
from include.carrier_optimization.reporting.notify import Email
from include.carrier_optimization.sync.carriers.jasper import (
    DevicePage,
    DeviceUsage,
    JasperClient,
    JasperDevice,
)

__all__ = [
    "DEVICE_SYNC_ERROR_SUBJECT",
    "STAGING_CREATED_BY",
    "SYNC_ERROR_SUBJECT",
    "MergeResult",
    "PagesResult",
    "clear_staging",
    "completion_target",
    "merge_staging",
    "stage_page",
    "stage_pages",
    "stop_session",
    "sync_error_email",
    "sync_pages",
]

LOG = logging.getLogger(__name__)

STAGING_CREATED_BY = "AWS Lambda - Get Devices Service"  # the legacy CreatedBy of the staging rows
#: Subject of the sync-error e-mail with a session (legacy ``OptimizationSyncDeviceErrorEmailSubject``).
SYNC_ERROR_SUBJECT = "[Error] Carrier Plan Optimization: Device Sync Failed for {provider}"
#: Subject of the sync-error e-mail without a session (legacy text).
DEVICE_SYNC_ERROR_SUBJECT = "Error in Device Sync for {provider}"
_IN_CHUNK = 500
_UPSERT_CHUNK = 1000
#: Dialects with a native single-statement upsert; others delete then insert.
_NATIVE_UPSERT: dict[str, Any] = {"sqlite": sqlite_insert, "postgresql": postgresql_insert}
_SHOWN_IDS = 10
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


def stage_page(
    engine: Engine,
    service_provider_id: int,
    page: DevicePage,
    usages: Sequence[DeviceUsage],
    *,
    now: dt.datetime | None = None,
) -> int:
    """Write one page's devices and usage into staging (see :func:`stage_pages`); return the count."""
    return stage_pages(engine, service_provider_id, [(page, usages)], now=now)


def stage_pages(
    engine: Engine,
    service_provider_id: int,
    batch: Sequence[tuple[DevicePage, Sequence[DeviceUsage]]],
    *,
    now: dt.datetime | None = None,
) -> int:
    """Write pages' devices and usage into staging in one transaction, replacing rows of the same ICCIDs.

    The rows of the batch's ICCIDs (of this provider) are deleted from ``JasperDeviceStaging`` and
    ``JasperDeviceUsageStaging``, then inserted; an ICCID listed on several pages of the batch keeps its
    last listing. A retried page, or a device listed again on a later page, therefore leaves one row.

    Returns
    -------
    int
        Distinct ICCIDs staged.
    """
    now = now or utcnow()
    listed: dict[str, JasperDevice] = {}
    used: dict[str, DeviceUsage] = {}
    for page, usages in batch:
        listed.update((d.iccid, d) for d in page.devices)
        used.update((u.iccid, u) for u in usages)
    iccids = list(listed)
    dev, use = s.jasper_device_staging, s.jasper_device_usage_staging
    device_rows = [
        {
            "ICCID": d.iccid,
            "Status": d.status,
            "RatePlan": d.rate_plan,
            "CommunicationPlan": d.communication_plan,
            "ServiceProviderId": service_provider_id,
            "CreatedBy": STAGING_CREATED_BY,
            "CreatedDate": now,
        }
        for d in listed.values()
    ]
    usage_rows = [
        {
            "ICCID": u.iccid,
            "CtdDataUsage": u.ctd_data_usage,
            "CtdSmsUsage": u.ctd_sms_usage,
            "UsageDate": u.usage_date,
            "DateActivated": u.date_activated,
            "ServiceProviderId": service_provider_id,
            "CreatedBy": STAGING_CREATED_BY,
            "CreatedDate": now,
        }
        for u in used.values()
        if u.iccid in listed
    ]
    with engine.begin() as conn:
        native = _NATIVE_UPSERT.get(conn.dialect.name)
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
            for chunk in chunks(iccids, _IN_CHUNK):
                for table in (dev, use):
                    conn.execute(
                        delete(table).where(
                            table.c.ServiceProviderId == service_provider_id, table.c.ICCID.in_(chunk)
                        )
                    )
            bulk_insert(conn, dev, device_rows)
            bulk_insert(conn, use, usage_rows)
        # A usage row of an ICCID re-listed without usage this time must not survive from before.
        stale = [i for i in iccids if i not in used]
        for chunk in chunks(stale, _IN_CHUNK):
            conn.execute(
                delete(use).where(use.c.ServiceProviderId == service_provider_id, use.c.ICCID.in_(chunk))
            )
    return len(iccids)


@dataclass(frozen=True)
class PagesResult:
    """Where paging stands after :func:`sync_pages` (JSON-ready through :meth:`to_dict`).

    Attributes
    ----------
    next_page : int
        The first page not yet staged.
    pages : int
        Pages staged in total for this request (over all attempts).
    pages_this_call : int
        Pages staged by this call.
    devices : int
        Devices staged in total for this request.
    done : bool
        Whether the last page was staged.
    resumed_from : int or None
        The page this call started from when it resumed a checkpoint, else ``None``.
    """

    next_page: int
    pages: int
    pages_this_call: int
    devices: int
    done: bool
    resumed_from: int | None

    def to_dict(self) -> dict[str, Any]:
        """The result as a dict (XCom value)."""
        return asdict(self)


def sync_pages(
    engine: Engine,
    client: JasperClient,
    request: DeviceSyncRequest,
    *,
    store: CheckpointStore,
    key: str,
    max_pages: int | None = None,
    deadline: float | None = None,
    bulk_usage: bool | None = None,
    usage_workers: int = 4,
    commit_every: int = 1000,
) -> PagesResult:
    """Stage the request's device pages with their usage, resuming from the checkpoint under ``key``.

    The checkpoint ``{"message_id", "next_page", "pages", "devices", "done"}`` belongs to one request
    (its SQS ``MessageId``); a checkpoint of another request is replaced. A new request starting at
    page 1 first clears the provider's staging (legacy rule). Paging stops at the last page, after
    ``max_pages`` pages of this call, or when ``time.monotonic()`` passes ``deadline``; call again to
    continue.

    Parameters
    ----------
    engine : Engine
        The AMOP database (staging tables).
    client : JasperClient
        The carrier API client (retries are its own).
    request : DeviceSyncRequest
        Provider, ``LastSyncDate`` (``modifiedSince``), first page, message id.
    store : CheckpointStore
        Where the paging checkpoint lives (the database store: it must survive retries and clears).
    key : str
        Checkpoint key, from :func:`include.carrier_optimization.amop.checkpoints.checkpoint_key`.
    max_pages : int, optional
        Page limit of this call (the legacy ``MaxPagesToProcess``).
    deadline : float, optional
        ``time.monotonic()`` value after which no new page is started.
    bulk_usage : bool, optional
        Fetch usage with the bulk endpoint (the simulator's) instead of one call per device; ``None``
        takes the client's setting.
    usage_workers : int
        Threads for per-device usage calls.
    commit_every : int
        Devices staged per transaction (whole pages; default 1000): each commit is followed by a
        checkpoint, so a resumed task repeats at most the pages of one uncommitted batch. ``1``
        commits every page.

    Returns
    -------
    PagesResult

    Raises
    ------
    CarrierApiError, MalformedPageError
        From the client; the page concerned is not staged and the checkpoint still names it.
    """
    state = store.get(key)
    resumed_from: int | None = None
    if state is not None and state.get("message_id") == request.message_id:
        resumed_from = int(state["next_page"])
        LOG.info("Resuming sync of request %s at page %d", request.message_id, resumed_from)
    else:
        if request.page_number == 1:
            clear_staging(engine, request.service_provider_id)
        state = {
            "message_id": request.message_id,
            "next_page": request.page_number,
            "pages": 0,
            "devices": 0,
            "done": False,
        }
        store.put(key, state)
    pages_this_call = 0
    batch: list[tuple[DevicePage, list[DeviceUsage]]] = []

    def commit() -> None:
        nonlocal state, batch
        if not batch:
            return
        stage_pages(engine, request.service_provider_id, batch)
        last = batch[-1][0]
        state = {
            **state,
            "next_page": last.page_number + 1,
            "pages": int(state["pages"]) + len(batch),
            "devices": int(state["devices"]) + sum(len(p.devices) for p, _ in batch),
            "done": last.last_page,
        }
        store.put(key, state)
        LOG.debug("Staged pages %d-%d", batch[0][0].page_number, last.page_number)
        batch = []

    if not state["done"]:
        pending = 0
        try:
            for page in client.iter_device_pages(
                request.modified_since, start_page=int(state["next_page"]), max_pages=max_pages
            ):
                iccids = [d.iccid for d in page.devices]
                usages = (
                    client.device_usages(iccids, bulk=bulk_usage, workers=usage_workers) if iccids else []
                )
                batch.append((page, usages))
                pages_this_call += 1
                pending += len(iccids)
                out_of_time = deadline is not None and time.monotonic() > deadline
                if pending >= commit_every or page.last_page or out_of_time:
                    commit()
                    pending = 0
                if out_of_time:
                    break
        except Exception:
            commit()  # the pages read before the failure are complete: keep them and their checkpoint
            raise
        commit()  # the page limit ended the loop with pages pending
    result = PagesResult(
        next_page=int(state["next_page"]),
        pages=int(state["pages"]),
        pages_this_call=pages_this_call,
        devices=int(state["devices"]),
        done=bool(state["done"]),
        resumed_from=resumed_from,
    )
    LOG.info(
        "Sync of provider %s: %d pages this call, %d pages / %d devices staged, done=%s",
        request.service_provider_id,
        pages_this_call,
        result.pages,
        result.devices,
        result.done,
    )
    return result


# -- merge --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MergeResult:
    """Counts of one merge of staging into ``Device``.

    Attributes
    ----------
    staged : int
        Devices in staging for the provider.
    inserted, updated, unchanged : int
        New ICCIDs, ICCIDs with at least one changed column, ICCIDs already up to date.
    without_usage : int
        Staged devices with no usage row (their usage columns are kept as they are).
    unknown_rate_plans : tuple of str
        Rate plan codes the provider's ``JasperCarrierRatePlan`` does not know (``CarrierRatePlanId``
        left ``NULL``), first ten.
    """

    staged: int
    inserted: int
    updated: int
    unchanged: int
    without_usage: int
    unknown_rate_plans: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """The result as a JSON-ready dict."""
        return {**asdict(self), "unknown_rate_plans": list(self.unknown_rate_plans)}


def merge_staging(
    engine: Engine, *, service_provider_id: int, tenant_id: int, now: dt.datetime | None = None
) -> MergeResult:
    """Merge the provider's staging rows into ``Device`` in one transaction.

    Per staged ICCID: a new ICCID is inserted for ``tenant_id``; an existing one gets the carrier's
    status, comm plan, rate plan (code, and id when the provider's plan list knows the code), usage
    (bytes, SMS, usage date, activation date; kept when the device has no usage row) and
    ``IsDeleted = False``; ``ModifiedDate = now`` is set on inserted and changed rows only. Devices the
    carrier did not list are left alone (``modifiedSince`` lists only changed devices).

    Returns
    -------
    MergeResult

    Raises
    ------
    sqlalchemy.exc.SQLAlchemyError
        The transaction is rolled back: ``Device`` is as before.
    """
    now = now or utcnow()
    dev, use, d = s.jasper_device_staging, s.jasper_device_usage_staging, s.device
    plans = s.carrier_rate_plan
    staged_query = (
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
    existing_query = select(d.c.Id, d.c.ICCID, *[d.c[c] for c in MERGED_COLUMNS]).where(
        d.c.ServiceProviderId == service_provider_id
    )
    with engine.begin() as conn:
        plan_ids = {
            row.RatePlanCode: int(row.Id)
            for row in conn.execute(
                select(plans.c.RatePlanCode, plans.c.Id).where(
                    plans.c.ServiceProviderId == service_provider_id, plans.c.IsDeleted.is_(False)
                )
            )
        }
        existing = {row.ICCID: row._mapping for row in conn.execute(existing_query)}
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        unknown: dict[str, None] = {}
        staged = without_usage = 0
        for row in conn.execute(staged_query):
            staged += 1
            plan_id = plan_ids.get(row.RatePlan) if row.RatePlan is not None else None
            if row.RatePlan is not None and plan_id is None:
                unknown.setdefault(row.RatePlan)
            values: dict[str, Any] = {
                "Status": row.Status,
                "CommunicationPlan": row.CommunicationPlan,
                "CarrierRatePlanCode": row.RatePlan,
                "CarrierRatePlanId": plan_id,
                "IsDeleted": False,
            }
            if row.UsageICCID is not None:
                values |= {
                    "CtdDataUsage": int(row.CtdDataUsage),
                    "SmsUsage": int(row.CtdSmsUsage),
                    "UsageDate": row.UsageDate,
                    "ProviderDateActivated": row.DateActivated,
                }
            else:
                without_usage += 1
            current = existing.get(row.ICCID)
            if current is None:
                inserts.append(
                    {
                        "TenantId": tenant_id,
                        "ServiceProviderId": service_provider_id,
                        "ICCID": row.ICCID,
                        "CtdDataUsage": 0,
                        "SmsUsage": 0,
                        "UsageDate": None,
                        "ProviderDateActivated": None,
                        "MSISDN": None,
                        **values,
                        "ModifiedDate": now,
                    }
                )
                continue
            merged = {c: values.get(c, current[c]) for c in MERGED_COLUMNS}
            if any(merged[c] != current[c] for c in MERGED_COLUMNS):
                updates.append({"b_id": current["Id"], **{f"b_{c}": v for c, v in merged.items()}})
        if inserts:
            bulk_insert(conn, d, inserts)
        if updates:
            statement = (
                update(d)
                .where(d.c.Id == bindparam("b_id"))
                .values(
                    {**{c: bindparam(f"b_{c}") for c in MERGED_COLUMNS}, "ModifiedDate": bindparam("b_now")}
                )
            )
            for chunk in chunks(updates, 5000):
                conn.execute(statement, [{**u, "b_now": now} for u in chunk])
    result = MergeResult(
        staged=staged,
        inserted=len(inserts),
        updated=len(updates),
        unchanged=staged - len(inserts) - len(updates),
        without_usage=without_usage,
        unknown_rate_plans=tuple(list(unknown)[:_SHOWN_IDS]),
    )
    if unknown:
        LOG.warning(
            "Provider %s: %d rate plan code(s) unknown to JasperCarrierRatePlan, CarrierRatePlanId left "
            "NULL: %s",
            service_provider_id,
            len(unknown),
            ", ".join(list(unknown)[:_SHOWN_IDS]),
        )
    LOG.info("Merged staging of provider %s into Device: %s", service_provider_id, result)
    return result


# -- completion and failure ------------------------------------------------------------------------------


def completion_target(
    engine: Engine,
    request: DeviceSyncRequest,
    *,
    tenant_id: int | None = None,
    now: dt.datetime | None = None,
) -> dict[str, int]:
    """Tenant and billing period the completion message of ``request`` carries.

    The billing period is the request's ``BillPeriodId``; a legacy request without one gets the
    provider's current period (``now`` in local billing time), as the legacy device cleanup did. The
    tenant is the request's ``TenantId``, else ``tenant_id``, else the provider's ``TenantId``.

    Returns
    -------
    dict
        ``{"tenant_id", "bill_period_id", "bill_year", "bill_month"}``.

    Raises
    ------
    ValueError
        When the period or the tenant cannot be found, naming the request and the provider.
    """
    repo = AmopRepository(engine)
    sp = request.service_provider_id
    if request.bill_period_id is not None:
        period = repo.billing_period(request.bill_period_id)
        if period is None or period["ServiceProviderId"] != sp:
            raise ValueError(
                f"device-sync request {request.message_id}: billing period {request.bill_period_id} does not "
                f"exist for service provider {sp}"
            )
    else:
        period = repo.current_billing_period(sp, now or utcnow())
        if period is None:
            raise ValueError(
                f"device-sync request {request.message_id}: service provider {sp} has no current "
                "billing period"
            )
    tenant = request.tenant_id or tenant_id
    if tenant is None:
        provider = repo.service_provider(sp) or {}
        tenant = provider.get("TenantId")
    if tenant is None:
        raise ValueError(f"device-sync request {request.message_id}: service provider {sp} has no tenant")
    return {
        "tenant_id": int(tenant),
        "bill_period_id": int(period["id"]),
        "bill_year": int(period["BillYear"]),
        "bill_month": int(period["BillMonth"]),
    }


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


def sync_error_email(
    *,
    recipients: Sequence[str],
    provider_name: str,
    error: str,
    session_id: int | None = None,
    request: dict[str, Any] | None = None,
    environment: str | None = None,
) -> Email:
    """The sync-error e-mail.

    With a session: the optimization sync error (the session is stopped). Without one: the legacy
    "Error in Device Sync for {provider}", with `` ({environment})`` appended outside production.
    """
    if session_id is not None:
        subject = SYNC_ERROR_SUBJECT.format(provider=provider_name)
        lead = (
            f"The device sync for optimization session {session_id} of {provider_name} failed; the session "
            "was stopped (deleted, inactive). Start a new optimization once the carrier API answers."
        )
    else:
        subject = DEVICE_SYNC_ERROR_SUBJECT.format(provider=provider_name)
        if environment and environment.lower() not in ("prod", "production"):
            subject += f" ({environment})"
        lead = f"The device sync of {provider_name} failed."
    body = f"{lead}\n\nError: {error}\n\nRequest: {request}\n"
    return Email(tuple(recipients), subject, body)
