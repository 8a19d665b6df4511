"""What the benchmarks print about the machine they ran on: its load and a reference CPU figure.

Machines of the same kind differ: on 2026-11-30 every library step ran about twice as long as on the
machine of the previous session (count 6.6 s against ~3 s at 100k SIMs, quiet in both). Quote a
benchmark's figures with the reference it printed, and compare runs only at similar references.
"""

from __future__ import annotations

import os
import time

import numpy as np


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} ({os.cpu_count()} CPUs)"


def reference() -> str:
    """Seconds for a fixed pure-Python loop and a fixed numpy sort, on one core."""
    started = time.perf_counter()
    total = 0
    for i in range(10_000_000):
        total += i
    python = time.perf_counter() - started
    values = np.random.default_rng(0).random(5_000_000)
    started = time.perf_counter()
    np.sort(values)
    numpy = time.perf_counter() - started
    return f"machine reference: python loop {python:.2f} s, numpy sort {numpy:.2f} s (lower is faster)"


TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: str) -> tuple[str, int, float] | None:
    """(command name, process group, CPU seconds of the process and its reaped children) of one pid."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    name, rest = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()
    return name, int(rest[2]), sum(int(v) for v in rest[11:15]) / TICKS


def cpu_snapshot(groups: dict[str, int], servers: tuple[str, ...] = ("postgres", "redis-server")) -> dict:
    """CPU seconds used so far per process group (``{label: pgid}``) and per server command name.

    A group counts every live process in it with its reaped children, so the task processes that a
    scheduler or a Celery worker forked count in that component. Take one snapshot before and one after
    a run; their difference (:func:`cpu_used`) is what each component cost during it.
    """
    by_group = {pgid: label for label, pgid in groups.items()}
    used: dict[str, float] = dict.fromkeys([*groups, *servers], 0.0)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        found = _stat(pid)
        if found is None:
            continue
        name, group, seconds = found
        label = by_group.get(group) or (name if name in servers else None)
        if label is not None:
            used[label] += seconds
    return used


def cpu_used(before: dict, after: dict) -> dict[str, float]:
    """CPU seconds per component between two snapshots (never negative: a process may have ended)."""
    return {label: max(0.0, after[label] - before.get(label, 0.0)) for label in after}
