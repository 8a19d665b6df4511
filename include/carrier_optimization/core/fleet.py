"""Deterministic generator of sample tenants: plans, comm plans, SIMs with realistic usage.

The fleet is written into the AMOP schema (``amop.repository.AmopRepository.write_fleet``) or, in the
command-line format of docs/architecture.md, as CSV files (``files.write_fleet_files``). Usage follows
docs/architecture.md: a quarter of the SIMs idle, the rest lognormal (median 3 MB, sigma 1.6) capped at
20 GB.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from dateutil.relativedelta import relativedelta

from include.carrier_optimization.core.billing_period import project_usage

LOG = logging.getLogger(__name__)

MB = 1024 * 1024
LADDER_MB = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1024)
POOLED_PRICE_FACTOR = (1.0, 1.05, 1.08)
IDLE_SHARE = 0.25
DEACTIVATED_SHARE = 0.02
MID_PERIOD_ACTIVATION_SHARE = 0.05
USAGE_CAP_MB = 20 * 1024


@dataclass(frozen=True)
class TenantSpec:
    """Identity of a generated tenant: ids follow the AMOP tables."""

    tenant_id: int = 1
    name: str = "acme"
    service_provider_id: int = 101
    service_provider_name: str = "Jasper AT&T"
    integration_id: int = 1
    uses_proration: bool = True
    start_hour: int = 6


@dataclass
class Fleet:
    """A generated tenant: DataFrames in the CLI column format plus what the AMOP schema needs."""

    tenant: TenantSpec
    period_start: dt.datetime
    period_end: dt.datetime
    as_of: dt.datetime
    plans: pd.DataFrame
    comm_plans: pd.DataFrame
    devices: pd.DataFrame
    groups: dict[str, list[str]] = field(default_factory=dict)

    @property
    def days_in_period(self) -> int:
        """Whole days of the billing period."""
        return (self.period_end - self.period_start).days


CLI_DEVICE_COLUMNS = ("device_id", "comm_plan", "usage_mb", "sms", "days_active", "current_plan_id")
CLI_PLAN_COLUMNS = (
    "plan_id",
    "code",
    "monthly_charge",
    "included_mb",
    "overage_rate",
    "overage_block_mb",
    "pooled",
    "sms_rate",
)


def _plan_ladder(first_id: int) -> pd.DataFrame:
    """Ten ladder sizes as individual and pooled plans, plus pay-as-you-go: 21 plans."""
    rows = []
    plan_id = first_id
    for size in LADDER_MB:
        monthly = round(0.6 + 1.4 * math.sqrt(size), 2)
        per_mb = 1.2 / math.sqrt(size)
        block = 1.0 if size < 100 else 10.0
        rows.append((plan_id, f"IND-{size}MB", monthly, float(size), round(per_mb * block, 4), block, 0))
        plan_id += 1
    for i, size in enumerate(LADDER_MB):
        factor = POOLED_PRICE_FACTOR[i % len(POOLED_PRICE_FACTOR)]
        monthly = round((0.6 + 1.4 * math.sqrt(size)) * factor, 2)
        per_mb = 1.2 / math.sqrt(size)
        rows.append((plan_id, f"POOL-{size}MB", monthly, float(size), round(per_mb, 4), 1.0, 1))
        plan_id += 1
    rows.append((plan_id, "PAYG", 1.20, 0.0, 1.00, 1.0, 0))
    plans = pd.DataFrame(rows, columns=list(CLI_PLAN_COLUMNS[:-1]))
    plans["sms_rate"] = 0.0
    return plans


def _comm_group_plans(plans: pd.DataFrame) -> dict[str, list[int]]:
    """Three comm groups of at most 15 plans: mixed ladder, pool-heavy, individual only."""
    ind = plans.loc[plans.code.str.startswith("IND-"), "plan_id"].tolist()
    pool = plans.loc[plans.code.str.startswith("POOL-"), "plan_id"].tolist()
    payg = plans.loc[plans.code == "PAYG", "plan_id"].tolist()
    return {
        "mixed": ind[:8] + [pool[0], pool[2], pool[4], pool[6], pool[7]] + payg,
        "pooled": pool + ind[8:] + payg,
        "individual": ind + payg,
    }


GROUP_SHARES = {"mixed": 0.45, "pooled": 0.30, "individual": 0.25}


def generate_fleet(
    n_sims: int,
    *,
    seed: int = 0,
    tenant: TenantSpec | None = None,
    period_end: dt.datetime | None = None,
    as_of: dt.datetime | None = None,
    oversized_group: bool = False,
) -> Fleet:
    """Generate a tenant with ``n_sims`` SIMs, deterministically from ``seed``.

    Parameters
    ----------
    n_sims : int
        Number of SIMs, 1 to 500,000 (more works, slowly).
    seed : int
        Seed of ``numpy.random.default_rng``; the same seed gives the same fleet.
    tenant : TenantSpec, optional
        Ids and names; plan and comm plan ids are offset by the service provider id.
    period_end : datetime, optional
        End of the billing period (local billing time); default 2026-11-30 23:59:59.
    as_of : datetime, optional
        When the usage was read; default five days before the period end.
    oversized_group : bool
        Add a comm plan allowing all 21 plans, over the legacy limit of 15 plans.

    Returns
    -------
    Fleet
        ``devices`` carries the CLI columns (``usage_mb`` is the projected usage) and the raw data the
        AMOP tables hold: ``iccid``, ``msisdn``, ``status``, ``ctd_bytes``, ``usage_date``,
        ``date_activated``.
    """
    if n_sims < 1:
        raise ValueError(f"`n_sims` must be >= 1; got {n_sims}")
    tenant = tenant or TenantSpec()
    rng = np.random.default_rng(seed)
    period_end = period_end or dt.datetime(2026, 11, 30, 23, 59, 59)
    period_start = _month_before(period_end)
    as_of = as_of or (period_end - dt.timedelta(days=5))

    plans = _plan_ladder(first_id=tenant.service_provider_id * 1000 + 1)
    group_plans = _comm_group_plans(plans)
    if oversized_group:
        group_plans["oversized"] = plans.plan_id.tolist()
    comm_plans, groups = _comm_plan_table(tenant, group_plans)
    comm_plan = _draw_comm_plans(rng, groups, n_sims)

    full_usage, status = _draw_usage(rng, n_sims)
    date_activated, days_active = _draw_activations(rng, n_sims, period_start, period_end)
    ctd_bytes, cycle_mb, usage_mb = _usage_readings(full_usage, status, period_start, period_end, as_of)

    current_plan = _current_plans(rng, plans, group_plans, groups, comm_plan, full_usage)
    first_device_id = tenant.service_provider_id * 10_000_000 + 1
    device_ids = np.arange(first_device_id, first_device_id + n_sims, dtype=np.int64)
    devices = pd.DataFrame(
        {
            "device_id": device_ids,
            "comm_plan": comm_plan,
            "usage_mb": np.round(usage_mb, 6),
            "sms": rng.poisson(4.0, size=n_sims).astype(np.int64),
            "days_active": days_active,
            "current_plan_id": current_plan,
            "iccid": [f"8901{tenant.service_provider_id:03d}{i:012d}" for i in range(n_sims)],
            "msisdn": [f"1{tenant.service_provider_id:03d}{i:07d}" for i in range(n_sims)],
            "status": status,
            "ctd_bytes": ctd_bytes,
            "cycle_usage_mb": cycle_mb,
            "usage_date": as_of,
            "date_activated": date_activated,
        }
    )
    LOG.info(
        "Generated %d SIMs, %d plans, %d comm plans (seed %d)", n_sims, len(plans), len(comm_plans), seed
    )
    return Fleet(tenant, period_start, period_end, as_of, plans, comm_plans, devices, groups)


def _comm_plan_table(
    tenant: TenantSpec, group_plans: dict[str, list[int]]
) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Two comm plans per comm group (one for the oversized group) and the comm plan names per group."""
    comm_rows, groups = [], {}
    for group, ids in group_plans.items():
        names = (
            [f"{tenant.name}-{group}-{k}" for k in ("a", "b")]
            if group != "oversized"
            else [f"{tenant.name}-all"]
        )
        groups[group] = names
        for name in names:
            comm_rows.append((name, ",".join(str(i) for i in ids)))
    return pd.DataFrame(comm_rows, columns=["comm_plan", "allowed_plan_ids"]), groups


def _draw_comm_plans(rng: np.random.Generator, groups: dict[str, list[str]], n_sims: int) -> np.ndarray:
    """The comm plan of each SIM, drawn with the `GROUP_SHARES` of its comm group."""
    names = [name for group in groups for name in groups[group]]
    shares = np.array([GROUP_SHARES.get(g, 0.05) / len(groups[g]) for g in groups for _ in groups[g]])
    comm_index = rng.choice(len(names), size=n_sims, p=shares / shares.sum())
    return np.array(names, dtype=object)[comm_index]


def _draw_usage(rng: np.random.Generator, n_sims: int) -> tuple[np.ndarray, np.ndarray]:
    """Full-period usage (MB: idle share, else lognormal with median 3 MB, capped) and status of each SIM."""
    full_usage = np.where(
        rng.random(n_sims) < IDLE_SHARE,
        0.0,
        np.minimum(np.exp(np.log(3.0) + 1.6 * rng.standard_normal(n_sims)), USAGE_CAP_MB),
    )
    status = np.where(rng.random(n_sims) < DEACTIVATED_SHARE, "DEACTIVATED", "ACTIVATED")
    return full_usage, status


def _draw_activations(
    rng: np.random.Generator, n_sims: int, period_start: dt.datetime, period_end: dt.datetime
) -> tuple[np.ndarray, np.ndarray]:
    """Activation date and days active of each SIM: a few activated inside the period, the rest long ago."""
    days = (period_end - period_start).days
    activated_mid = rng.random(n_sims) < MID_PERIOD_ACTIVATION_SHARE
    activation_offset = rng.integers(1, days, size=n_sims)
    date_activated = np.array(
        [
            period_start + dt.timedelta(days=int(o)) if mid else period_start - dt.timedelta(days=400)
            for mid, o in zip(activated_mid, activation_offset, strict=True)
        ],
        dtype=object,
    )
    days_active = np.where(
        activated_mid,
        np.minimum(np.ceil([(period_end - d).total_seconds() / 86400 for d in date_activated]), days),
        days,
    ).astype(int)
    return date_activated, days_active


def _usage_readings(
    full_usage: np.ndarray,
    status: np.ndarray,
    period_start: dt.datetime,
    period_end: dt.datetime,
    as_of: dt.datetime,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Month-to-date bytes as the carrier reports them, in MB, and the legacy projection of that (MB).

    A reading at or before the period start has no usage of the period yet, one after its end all of it
    (the first hours of a month: a reading an hour old would otherwise be negative).
    """
    period_seconds = (period_end - period_start).total_seconds()
    elapsed = min(max((as_of - period_start).total_seconds(), 0.0), period_seconds)
    mtd_mb = np.where(status == "ACTIVATED", full_usage * elapsed / period_seconds, full_usage)
    ctd_bytes = np.round(mtd_mb * MB).astype(np.int64)
    cycle_mb = np.round(ctd_bytes / MB, 3)
    usage_mb = project_usage(
        cycle_mb,
        period_start=period_start,
        period_end=period_end,
        now=as_of,
        status=status,
        usage_date=np.full(len(full_usage), np.datetime64(as_of, "ms")),
    )
    return ctd_bytes, cycle_mb, usage_mb


def _month_before(end: dt.datetime) -> dt.datetime:
    """Legacy rule: a billing period starts one calendar month before its end."""
    return end - relativedelta(months=1)


def _current_plans(
    rng: np.random.Generator,
    plans: pd.DataFrame,
    group_plans: dict[str, list[int]],
    groups: dict[str, list[str]],
    comm_plan: np.ndarray,
    usage: np.ndarray,
) -> np.ndarray:
    """A plausible current plan: the smallest allowed allowance above a noisy guess of the usage."""
    current = np.zeros(len(comm_plan), dtype=np.int64)
    guess = usage * rng.uniform(0.5, 2.0, size=len(usage))
    by_id = plans.set_index("plan_id")
    for group, names in groups.items():
        ids = np.array(sorted(group_plans[group], key=lambda p: (by_id.at[p, "included_mb"], p)))
        allowance = by_id.loc[ids, "included_mb"].to_numpy()
        mask = np.isin(comm_plan, names)
        pos = np.searchsorted(allowance, guess[mask], side="left")
        current[mask] = ids[np.minimum(pos, len(ids) - 1)]
    return current
