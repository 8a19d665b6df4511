"""Carrier pages into staging: page the carrier API from the request's page, checkpointing each commit.

docs/architecture.md, "Device sync", on the worker side, idempotent: :func:`sync_pages` pages the
carrier API from the request's page (staging cleared first when that is page 1), fetches the page's
cycle-to-date usage and writes device and usage staging rows in one transaction per batch of pages,
keyed by (provider, ICCID) so a re-staged page replaces its rows. After each commit the checkpoint
(first page not yet staged) is saved, so a retried or cleared task resumes after it.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy.engine import Engine

from include.carrier_optimization.amop.checkpoints import CheckpointStore
from include.carrier_optimization.amop.device_sync import clear_staging, write_staging
from include.carrier_optimization.amop.repository import utcnow
from include.carrier_optimization.messaging.sync_messages import DeviceSyncRequest
from include.carrier_optimization.sync.carriers.jasper import JasperClient
from include.carrier_optimization.sync.carriers.jasper_payloads import DevicePage, DeviceUsage, JasperDevice

__all__ = ["STAGING_CREATED_BY", "PagesResult", "stage_page", "stage_pages", "sync_pages"]

LOG = logging.getLogger(__name__)

STAGING_CREATED_BY = "AWS Lambda - Get Devices Service"  # the legacy CreatedBy of the staging rows


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

    The rows of the batch's ICCIDs (of this provider) are replaced in ``JasperDeviceStaging`` and
    ``JasperDeviceUsageStaging``; an ICCID listed on several pages of the batch keeps its last listing.
    A retried page, or a device listed again on a later page, therefore leaves one row.

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
    common = {"ServiceProviderId": service_provider_id, "CreatedBy": STAGING_CREATED_BY, "CreatedDate": now}
    device_rows = [
        {
            "ICCID": d.iccid,
            "Status": d.status,
            "RatePlan": d.rate_plan,
            "CommunicationPlan": d.communication_plan,
            **common,
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
            **common,
        }
        for u in used.values()
        if u.iccid in listed
    ]
    without_usage = [i for i in listed if i not in used]
    write_staging(engine, service_provider_id, device_rows, usage_rows, without_usage=without_usage)
    return len(listed)


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


class _Batch:
    """Pages read but not yet staged; :meth:`commit` stages them and saves the checkpoint after them."""

    def __init__(
        self,
        engine: Engine,
        service_provider_id: int,
        store: CheckpointStore,
        key: str,
        state: dict[str, Any],
    ) -> None:
        self.engine, self.service_provider_id = engine, service_provider_id
        self.store, self.key, self.state = store, key, state
        self.pages: list[tuple[DevicePage, list[DeviceUsage]]] = []

    def commit(self) -> None:
        if not self.pages:
            return
        stage_pages(self.engine, self.service_provider_id, self.pages)
        last = self.pages[-1][0]
        self.state = {
            **self.state,
            "next_page": last.page_number + 1,
            "pages": int(self.state["pages"]) + len(self.pages),
            "devices": int(self.state["devices"]) + sum(len(p.devices) for p, _ in self.pages),
            "done": last.last_page,
        }
        self.store.put(self.key, self.state)
        LOG.debug("Staged pages %d-%d", self.pages[0][0].page_number, last.page_number)
        self.pages = []


def _checkpoint_or_start(
    engine: Engine, request: DeviceSyncRequest, store: CheckpointStore, key: str
) -> tuple[dict[str, Any], int | None]:
    """The request's checkpoint and the page it resumes from, or a new checkpoint (page 1 clears staging)."""
    state = store.get(key)
    if state is not None and state.get("message_id") == request.message_id:
        resumed_from = int(state["next_page"])
        LOG.info("Resuming sync of request %s at page %d", request.message_id, resumed_from)
        return state, resumed_from
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
    return state, None


def _page_into(
    batch: _Batch,
    client: JasperClient,
    request: DeviceSyncRequest,
    *,
    max_pages: int | None,
    deadline: float | None,
    bulk_usage: bool | None,
    usage_workers: int,
    commit_every: int,
) -> int:
    """Page into ``batch`` (one commit per ``commit_every`` devices); return the pages read."""
    pages_read = pending = 0
    try:
        for page in client.iter_device_pages(
            request.modified_since, start_page=int(batch.state["next_page"]), max_pages=max_pages
        ):
            iccids = [d.iccid for d in page.devices]
            usages = client.device_usages(iccids, bulk=bulk_usage, workers=usage_workers) if iccids else []
            batch.pages.append((page, usages))
            pages_read += 1
            pending += len(iccids)
            out_of_time = deadline is not None and time.monotonic() > deadline
            if pending >= commit_every or page.last_page or out_of_time:
                batch.commit()
                pending = 0
            if out_of_time:
                break
    except Exception:
        batch.commit()  # the pages read before the failure are complete: keep them and their checkpoint
        raise
    batch.commit()  # the page limit ended the loop with pages pending
    return pages_read


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
    state, resumed_from = _checkpoint_or_start(engine, request, store, key)
    batch = _Batch(engine, request.service_provider_id, store, key, state)
    pages_this_call = 0
    if not state["done"]:
        pages_this_call = _page_into(
            batch,
            client,
            request,
            max_pages=max_pages,
            deadline=deadline,
            bulk_usage=bulk_usage,
            usage_workers=usage_workers,
            commit_every=commit_every,
        )
    state = batch.state
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
