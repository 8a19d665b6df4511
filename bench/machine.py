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
