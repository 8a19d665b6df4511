"""What the report reads: the winners' device assignments and the costs before, from one snapshot read.

The instance's device snapshot is read once (`instance_results.instance_devices`): it gives the device
sheet's fields and, served to `pipeline.load_group` as a device cache (`SnapshotDevices`), the inputs of
the costs before, which the cost model prices (`costs_before`) exactly as from a read per comm group.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from include.carrier_optimization import pipeline
from include.carrier_optimization.amop.comm_groups import DEVICE_FRAME_COLUMNS
from include.carrier_optimization.amop.instance_results import (
    instance_devices,
    join_assignments,
    plan_codes,
    used_plan_ids,
    winner_assignments,
    winner_results,
)
from include.carrier_optimization.core.cost import evaluate
from include.carrier_optimization.core.engines import legacy

#: `DEVICE_FRAME_COLUMNS` as named in `instance_results.SNAPSHOT_COLUMNS`.
DEVICE_FRAME_COLUMNS_IN_SNAPSHOT = (
    "device_id", "comm_plan", "usage", "sms", "activated", "days", "current_id",
)  # fmt: skip


def assignments(engine: Engine, instance_id: int, winner_ids: list[int]) -> pd.DataFrame:
    """One row per SIM: snapshot fields, current and recommended plan codes, cost (winner rows)."""
    return assignment_frame(winner_assignments(engine, instance_id, winner_ids))


def assignment_frame(raw: pd.DataFrame) -> pd.DataFrame:
    """The report's columns of `instance_results.winner_assignments` rows: codes filled in, cost."""
    frame = raw.loc[:, ["device_id", "iccid", "msisdn", "comm_plan", "comm_group_id"]]
    frame = frame.astype({"device_id": np.int64, "comm_group_id": np.int64})
    frame["comm_plan"] = raw["comm_plan"].fillna("")
    frame["usage_mb"] = raw["usage_mb"].astype(float)
    frame["current"] = raw["current"].fillna(raw["code"]).fillna("")
    frame["recommended"] = raw["recommended"].fillna(raw["plan_id"].astype(str))
    frame["cost"] = raw["charge"].astype(float) + raw["sms_charge"].astype(float)
    return frame


class SnapshotDevices:
    """A device cache for `pipeline.load_group` serving each comm group from one read of the snapshot.

    ``devices``: `instance_results.instance_devices` of ``instance_id``. A group's frame is what
    ``comm_groups.devices`` reads (its columns, by device id), so the costs before are the same as
    from a read per group, without reading the devices a second time. A group the snapshot lacks (or
    another instance) goes to the loader, that is to the database.
    """

    def __init__(self, instance_id: int, devices: pd.DataFrame) -> None:
        self.instance_id = instance_id
        self.devices = devices
        self.rows = devices.groupby("comm_group_id", sort=False).indices if len(devices) else {}

    def get_or_load(self, instance_id: int, comm_group_id: int, loader: Any) -> pd.DataFrame:
        """The group's devices in ``DEVICE_FRAME_COLUMNS`` by device id; ``loader()`` when not held."""
        positions = self.rows.get(comm_group_id)
        if positions is None or instance_id != self.instance_id:
            return loader()
        group = self.devices.iloc[positions].loc[:, list(DEVICE_FRAME_COLUMNS_IN_SNAPSHOT)]
        group.columns = list(DEVICE_FRAME_COLUMNS)
        return group.sort_values("device_id", kind="stable").reset_index(drop=True)


def costs_before(
    engine: Engine, group_ids: list[int], snapshot: SnapshotDevices | None = None
) -> tuple[pd.Series, dict[str, float]]:
    """Per SIM (a Series by device id) and per plan code: the invoice as the SIMs are now.

    With ``snapshot`` the groups' devices come from the report's read of the snapshot, not the database.
    """
    ids: list[np.ndarray] = []
    costs: list[np.ndarray] = []
    per_plan: dict[str, float] = {}
    for group_id in group_ids:
        group = pipeline.load_group(engine, group_id, cache=snapshot)
        if group.n_devices == 0:
            continue
        now = np.where(group.current_plan >= 0, group.current_plan, legacy.base_assignment(group))
        breakdown = evaluate(group, now)
        ids.append(np.asarray(group.device_ids).astype(np.int64))
        costs.append(breakdown.fixed + breakdown.overage + breakdown.sms)
        for line in breakdown.plans:
            if line.devices:
                per_plan[line.code] = per_plan.get(line.code, 0.0) + line.total
    if not ids:
        return pd.Series(dtype=float), per_plan
    return pd.Series(np.concatenate(costs), index=np.concatenate(ids)), per_plan


def read_assignments_and_costs(
    engine: Engine, instance_id: int, groups: list[dict[str, Any]]
) -> tuple[pd.DataFrame, tuple[pd.Series, dict[str, float]]]:
    """`assignments` and `costs_before` of the instance, from one read of its device snapshot.

    The reads are made one after the other: the winners' rows read by a second thread while the server
    sorts the snapshot saved ~0.2 s at 100,000 SIMs but raised the peak memory at a million by ~150 MB.
    """
    devices = instance_devices(engine, instance_id)
    results = winner_results(engine, [g["winner_queue_id"] for g in groups])
    codes = plan_codes(engine, used_plan_ids(devices, results))
    frame = assignment_frame(join_assignments(devices, results, codes))
    del results  # the peak at a million SIMs: free what is no longer needed
    snapshot = SnapshotDevices(instance_id, devices)
    del devices
    return frame, costs_before(engine, [g["comm_group_id"] for g in groups], snapshot)
