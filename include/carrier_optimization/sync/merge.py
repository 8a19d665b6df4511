"""Staging merged into ``Device`` in one transaction: new ICCIDs inserted, changed devices updated.

docs/architecture.md, "Device sync": changed status / comm plan / rate plan / usage / dates are updated
with ``ModifiedDate``; nothing is half-merged, and a second merge changes nothing. The statements are
in ``amop.device_sync``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from include.carrier_optimization.amop import device_sync
from include.carrier_optimization.amop.device_sync import MERGED_COLUMNS
from include.carrier_optimization.amop.repository import utcnow

__all__ = ["MergeResult", "merge_staging"]

LOG = logging.getLogger(__name__)

_SHOWN_IDS = 10


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


@dataclass
class _Changes:
    """What the merge writes: new rows, (Id, merged columns) of changed rows, and what it noticed."""

    inserts: list[dict[str, Any]] = field(default_factory=list)
    updates: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    unknown: dict[str, None] = field(default_factory=dict)
    staged: int = 0
    without_usage: int = 0


def _carrier_values(row: Any, plan_ids: Mapping[str, int], changes: _Changes) -> dict[str, Any]:
    """The ``Device`` columns a staged row sets (usage only when it has a usage row)."""
    plan_id = plan_ids.get(row.RatePlan) if row.RatePlan is not None else None
    if row.RatePlan is not None and plan_id is None:
        changes.unknown.setdefault(row.RatePlan)
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
        changes.without_usage += 1
    return values


def _changes(
    staged: Iterable[Any],
    existing: Mapping[str, Mapping[str, Any]],
    plan_ids: Mapping[str, int],
    *,
    service_provider_id: int,
    tenant_id: int,
    now: dt.datetime,
) -> _Changes:
    """Compare the staged rows with the existing devices: inserts for new ICCIDs, updates for changed ones."""
    changes = _Changes()
    for row in staged:
        changes.staged += 1
        values = _carrier_values(row, plan_ids, changes)
        current = existing.get(row.ICCID)
        if current is None:
            changes.inserts.append(
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
            changes.updates.append((current["Id"], merged))
    return changes


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
    sp = service_provider_id
    with engine.begin() as conn:
        plan_ids = device_sync.rate_plan_ids(conn, sp)
        existing = device_sync.existing_devices(conn, sp)
        staged = device_sync.staged_devices(conn, sp)
        changes = _changes(staged, existing, plan_ids, service_provider_id=sp, tenant_id=tenant_id, now=now)
        device_sync.insert_devices(conn, changes.inserts)
        device_sync.update_devices(conn, changes.updates, now=now)
    unknown = list(changes.unknown)
    result = MergeResult(
        staged=changes.staged,
        inserted=len(changes.inserts),
        updated=len(changes.updates),
        unchanged=changes.staged - len(changes.inserts) - len(changes.updates),
        without_usage=changes.without_usage,
        unknown_rate_plans=tuple(unknown[:_SHOWN_IDS]),
    )
    if unknown:
        LOG.warning(
            "Provider %s: %d rate plan code(s) unknown to JasperCarrierRatePlan, CarrierRatePlanId left "
            "NULL: %s",
            sp,
            len(unknown),
            ", ".join(unknown[:_SHOWN_IDS]),
        )
    LOG.info("Merged staging of provider %s into Device: %s", sp, result)
    return result
