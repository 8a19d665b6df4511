"""The simulated carrier's SIMs: one record per SIM, built from a generated fleet."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np

from include.carrier_optimization.core.fleet import Fleet

__all__ = ["SimulatedDevice", "simulated_devices"]


@dataclass
class SimulatedDevice:
    """One SIM as the carrier knows it (mutable: tests change usage or plans between syncs)."""

    iccid: str
    status: str
    rate_plan: str | None
    communication_plan: str | None
    ctd_bytes: int
    ctd_sms: int
    usage_date: dt.datetime | None
    date_activated: dt.datetime | None
    modified: dt.datetime

    def listing(self) -> dict[str, Any]:
        """The device-list entry."""
        return {
            "iccid": self.iccid,
            "status": self.status,
            "ratePlan": self.rate_plan,
            "communicationPlan": self.communication_plan,
        }

    def usage(self) -> dict[str, Any]:
        """The ``ctdUsages`` record."""
        return {
            "iccid": self.iccid,
            "ctdDataUsage": self.ctd_bytes,
            "ctdSMSUsage": self.ctd_sms,
            "usageDate": _iso(self.usage_date),
            "dateActivated": _iso(self.date_activated),
        }


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def simulated_devices(fleet: Fleet, *, modified: dt.datetime | None = None) -> list[SimulatedDevice]:
    """``fleet``'s SIMs as the carrier knows them: status, plan code, comm plan, usage bytes, SMS, dates.

    ``modified`` is every device's modification time (default: now, UTC), which ``modifiedSince``
    filters on.
    """
    modified = modified or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    d = fleet.devices
    code = dict(zip(fleet.plans.plan_id.tolist(), fleet.plans.code.tolist(), strict=True))
    usage_date = d.usage_date.tolist()
    activated = d.date_activated.tolist()
    return [
        SimulatedDevice(
            iccid=iccid,
            status=status,
            rate_plan=code.get(int(plan)),
            communication_plan=comm,
            ctd_bytes=int(ctd),
            ctd_sms=int(sms),
            usage_date=_py_datetime(usage_date[i]),
            date_activated=_py_datetime(activated[i]),
            modified=modified,
        )
        for i, (iccid, status, plan, comm, ctd, sms) in enumerate(
            zip(
                d.iccid.tolist(),
                d.status.tolist(),
                d.current_plan_id.tolist(),
                d.comm_plan.tolist(),
                np.asarray(d.ctd_bytes),
                np.asarray(d.sms),
                strict=True,
            )
        )
    ]


def _py_datetime(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if isinstance(value, np.datetime64):
        value = value.astype("datetime64[us]").astype(dt.datetime)
    return value
