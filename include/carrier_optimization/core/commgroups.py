"""Comm groups (comm plans with identical allowed-plan lists) and the `Problem` built from them."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd

from include.carrier_optimization.core.domain import GroupProblem, Problem, RatePlan, SkippedGroup
from include.carrier_optimization.core.validation import (
    InvalidInputError,
    mask_errors,
    plan_errors,
)

__all__ = [
    "DEFAULT_PLAN_LIMIT",
    "CommGroup",
    "parse_plan_list",
    "build_comm_groups",
    "build_problem",
    "describe_skipped",
]

LOG = logging.getLogger(__name__)

#: Legacy limit of plans per M2M comm group ("Rate plans are limited to 15").
DEFAULT_PLAN_LIMIT = 15


@dataclass(frozen=True)
class CommGroup:
    """Comm plans sharing one allowed-plan list; the scope of pools, queues and winner selection.

    Attributes
    ----------
    key : str
        The allowed-plan list, ids joined by ``,`` in the given order.
    comm_plans : tuple of str
        Member comm plans, in input order.
    plan_ids : tuple of int
        Candidate plans: the distinct ids of the list that match a known plan, first occurrence order.
    unknown_plan_ids : tuple of int
        Ids of the list that match no known plan (skipped).
    """

    key: str
    comm_plans: tuple[str, ...]
    plan_ids: tuple[int, ...]
    unknown_plan_ids: tuple[int, ...]


def parse_plan_list(text: str | int | float) -> tuple[int, ...]:
    """Parse an allowed-plan list such as ``"17, 42,43"`` into ``(17, 42, 43)``.

    Raises
    ------
    ValueError
        When an element is not an integer.
    """
    if isinstance(text, int | np.integer):
        return (int(text),)
    if isinstance(text, float) and text.is_integer():
        return (int(text),)
    parts = [part.strip() for part in str(text).split(",")]
    return tuple(int(part) for part in parts if part)


def _build_comm_groups_iv(comm_plans, known_plan_ids):
    pairs = comm_plans.items() if isinstance(comm_plans, Mapping) else comm_plans
    items = []
    for entry in pairs:
        try:
            name, ids = entry
            items.append((str(name), tuple(int(i) for i in ids)))
        except (TypeError, ValueError) as error:
            raise ValueError(f"`comm_plans`: each entry must be (name, plan ids); got {entry!r}") from error
    return items, {int(p) for p in known_plan_ids}


def build_comm_groups(
    comm_plans: Mapping[str, Sequence[int]] | Iterable[tuple[str, Sequence[int]]],
    known_plan_ids: Iterable[int],
) -> list[CommGroup]:
    """Group comm plans by their allowed-plan list (legacy: the identical ``RatePlanIds`` string).

    Lists are compared element by element in the given order, so ``1,2`` and ``2,1`` form two groups as in
    the legacy system (which compares the strings).

    Parameters
    ----------
    comm_plans : mapping or iterable of (name, plan ids)
        Allowed plan ids per comm plan.
    known_plan_ids : iterable of int
        Ids of the loaded plans; other ids are skipped (and logged).

    Returns
    -------
    list of CommGroup
        In order of the first comm plan of each group.
    """
    items, known = _build_comm_groups_iv(comm_plans, known_plan_ids)
    members: dict[tuple[int, ...], list[str]] = {}
    for name, ids in items:
        members.setdefault(ids, []).append(name)
    groups = []
    for ids, names in members.items():
        plan_ids = tuple(dict.fromkeys(i for i in ids if i in known))
        unknown = tuple(dict.fromkeys(i for i in ids if i not in known))
        if unknown:
            LOG.warning("Comm plans %s allow unknown plan ids %s; skipped", ", ".join(names), unknown)
        groups.append(CommGroup(",".join(str(i) for i in ids), tuple(names), plan_ids, unknown))
    return groups


class _Devices(NamedTuple):
    """The validated device columns of `build_problem`, in input order."""

    ids: np.ndarray
    names: np.ndarray
    usage: np.ndarray
    sms: np.ndarray
    proration: np.ndarray
    current: np.ndarray


def _strings(values: npt.ArrayLike) -> np.ndarray:
    """``values`` as an object array of ``str``, in one pass.

    numpy's ``astype(str)`` round trip took four times as long; every optimize task loads its comm group
    (45,000 SIMs in the 100k bench fleet).
    """
    array = np.asarray(values, dtype=object)
    strings = [v if type(v) is str else str(v) for v in array.ravel().tolist()]
    return np.array(strings, dtype=object).reshape(array.shape)


def _duplicated(ids: np.ndarray) -> np.ndarray:
    """Which of the (string) ids occur more than once, every occurrence; a set answers the usual case."""
    if len(set(ids.ravel().tolist())) == ids.size:
        return np.zeros(ids.shape, dtype=bool)
    unique_ids, counts = np.unique(ids.astype(str), return_counts=True)
    return np.isin(ids.astype(str), unique_ids[counts > 1])


def _build_problem_iv(plans, comm_plans, device_ids, comm_plan, usage_mb, sms, proration, current_plan_id):
    plans = tuple(plans)
    errors = plan_errors(plans)
    if errors:
        raise InvalidInputError("\n".join(errors))
    ids = _strings(device_ids)
    n = len(ids)

    def vector(name, values, default, dtype):
        if values is None:
            return np.full(n, default, dtype=dtype)
        array = np.ascontiguousarray(values, dtype=dtype)
        if array.shape != (n,):
            raise ValueError(f"`{name}` must have shape ({n},); got {array.shape}")
        return array

    usage = vector("usage_mb", usage_mb, 0.0, np.float64)
    sms = vector("sms", sms, 0.0, np.float64)
    proration = vector("proration", proration, 1.0, np.float64)
    current = vector("current_plan_id", current_plan_id, -1, np.int64)
    names = _strings(comm_plan)
    if names.shape != (n,):
        raise ValueError(f"`comm_plan` must have shape ({n},); got {names.shape}")

    checks = [
        ("device_id must be unique", _duplicated(ids)),
        ("usage_mb must be a finite number >= 0", ~np.isfinite(usage) | (usage < 0)),
        ("sms must be a finite number >= 0", ~np.isfinite(sms) | (sms < 0)),
        ("proration must be in [0, 1]", ~((proration >= 0) & (proration <= 1))),
    ]
    errors = mask_errors("devices", "device_id", ids, checks)
    if errors:
        raise InvalidInputError("\n".join(errors))
    return plans, comm_plans, _Devices(ids, names, usage, sms, proration, current)


def build_problem(
    plans: Sequence[RatePlan],
    comm_plans: Mapping[str, Sequence[int]] | Iterable[tuple[str, Sequence[int]]],
    *,
    device_ids: npt.ArrayLike,
    comm_plan: npt.ArrayLike,
    usage_mb: npt.ArrayLike,
    sms: npt.ArrayLike | None = None,
    proration: npt.ArrayLike | None = None,
    current_plan_id: npt.ArrayLike | None = None,
    days_in_period: int = 30,
    plan_limit: int = DEFAULT_PLAN_LIMIT,
) -> Problem:
    """Validate plans and devices, form comm groups and split the devices into per-group arrays.

    Groups with more than ``plan_limit`` plans are reported in ``Problem.skipped`` (and logged), not
    optimized; groups without devices are left out.

    Parameters
    ----------
    plans : sequence of RatePlan
        All loaded plans.
    comm_plans : mapping or iterable of (name, plan ids)
        Allowed plan ids per comm plan.
    device_ids, comm_plan : array_like
        Id and comm plan name of each device.
    usage_mb : array_like of float
        Usage to optimize for (MB, already projected).
    sms, proration : array_like of float, optional
        SMS count (default 0) and proration factor ``f`` (default 1).
    current_plan_id : array_like of int, optional
        Current carrier plan id (-1 or unknown ids: none).
    days_in_period : int
        Days of the billing period (kept on the problem).
    plan_limit : int
        Maximum number of plans of an optimized group.

    Returns
    -------
    Problem
        The groups to optimize (device order within a group = input order) and the skipped groups.

    Raises
    ------
    InvalidInputError
        Invalid plans (non-positive overage rate or block size, ...), duplicate device ids, negative or
        non-finite usage or SMS, devices on an unknown comm plan or on a comm plan allowing no known plan;
        each message names the offending ids.
    """
    plans, comm_plans, devices = _build_problem_iv(
        plans, comm_plans, device_ids, comm_plan, usage_mb, sms, proration, current_plan_id
    )
    plan_by_id = {p.plan_id: p for p in plans}
    groups = build_comm_groups(comm_plans, plan_by_id)
    comm_names, comm_inverse, device_group = _device_groups(groups, devices.ids, devices.names)

    order = np.argsort(device_group, kind="stable")
    bounds = np.searchsorted(device_group[order], np.arange(len(groups) + 1))
    built, skipped = [], []
    for g, group in enumerate(groups):
        members = order[bounds[g] : bounds[g + 1]]
        if members.size == 0:
            LOG.info("Comm group %s has no devices; left out", group.key)
            continue
        if len(group.plan_ids) > plan_limit:
            skipped.append(_skipped_group(group, members.size, plan_limit))
            continue
        local_index = {name: k for k, name in enumerate(group.comm_plans)}
        comm_index = _local_positions(comm_names, local_index)[comm_inverse[members]]
        built.append(_group_problem(group, plan_by_id, devices, members, comm_index))
    return Problem(groups=tuple(built), skipped=tuple(skipped), days_in_period=days_in_period)


def _device_groups(
    groups: Sequence[CommGroup], ids: np.ndarray, names: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Comm group index of each device, with the sorted comm plan names and each device's position in them.

    Devices on an unknown comm plan, or on a comm plan allowing no known plan, are invalid input.
    """
    group_of_comm_plan = {name: g for g, group in enumerate(groups) for name in group.comm_plans}
    # hashed, then the few names sorted: np.unique sorted the strings of every SIM
    comm_inverse, comm_names = pd.factorize(names, sort=True)
    comm_names = comm_names.astype(str)
    group_of_name = np.array([group_of_comm_plan.get(name, -1) for name in comm_names], dtype=np.int64)
    device_group = group_of_name[comm_inverse] if len(ids) else np.zeros(0, dtype=np.int64)
    no_plan = np.array([len(groups[g].plan_ids) == 0 if g >= 0 else False for g in group_of_name], dtype=bool)
    errors = mask_errors(
        "devices",
        "device_id",
        ids,
        [
            ("comm_plan must be a known comm plan", device_group < 0),
            (
                "comm_plan must allow at least one known plan",
                no_plan[comm_inverse] if len(ids) else no_plan[:0],
            ),
        ],
    )
    if errors:
        raise InvalidInputError("\n".join(errors))
    return comm_names, comm_inverse, device_group


def _skipped_group(group: CommGroup, n_devices: int, plan_limit: int) -> SkippedGroup:
    """A comm group over the plan limit: logged and reported, not optimized."""
    reason = f"{len(group.plan_ids)} plans, over the limit of {plan_limit}"
    LOG.warning("Comm group %s (%s) skipped: %s", group.key, ", ".join(group.comm_plans), reason)
    return SkippedGroup(group.key, group.comm_plans, len(group.plan_ids), n_devices, reason)


def _group_problem(
    group: CommGroup,
    plan_by_id: Mapping[int, RatePlan],
    devices: _Devices,
    members: np.ndarray,
    comm_index: np.ndarray,
) -> GroupProblem:
    """The `GroupProblem` of one comm group: its plans and its member devices' columns."""
    return GroupProblem(
        key=group.key,
        comm_plans=group.comm_plans,
        plans=tuple(plan_by_id[i] for i in group.plan_ids),
        device_ids=devices.ids[members],
        usage_mb=devices.usage[members],
        sms=devices.sms[members],
        proration=devices.proration[members],
        comm_plan_index=comm_index,
        current_plan=_local_plan_index(group.plan_ids, devices.current[members]),
    )


def _local_positions(comm_names: np.ndarray, local_index: Mapping[str, int]) -> np.ndarray:
    """Position of each (sorted, unique) comm plan name in the group, -1 outside the group."""
    return np.array([local_index.get(name, -1) for name in comm_names], dtype=np.int64)


def _local_plan_index(plan_ids: Sequence[int], current: np.ndarray) -> np.ndarray:
    """Map carrier plan ids to local plan indices of the group; -1 for ids outside the group."""
    ids = np.asarray(plan_ids, dtype=np.int64)
    order = np.argsort(ids)
    pos = np.searchsorted(ids[order], current)
    pos = np.minimum(pos, len(ids) - 1)
    found = ids[order][pos] == current
    local = np.where(found, order[pos], -1).astype(np.int64)
    outside = int(np.count_nonzero(~found & (current >= 0)))
    if outside:
        LOG.info("%d devices are on a plan outside their comm group; treated as no current plan", outside)
    return local


def describe_skipped(problem: Problem) -> list[str]:
    """One line per skipped group, for reports and logs."""
    return [
        f"comm group {s.key} ({', '.join(s.comm_plans)}; {s.n_devices} devices) skipped: {s.reason}"
        for s in problem.skipped
    ]
