"""Opt-in per-try timings of task execution, for ``bench/airflow.py``: an Airflow listener plugin.

Only when the environment variable ``CARRIER_OPT_TIMINGS`` names a folder does the plugin register its
listener; otherwise ``listeners`` is empty and nothing is called, imported or written. The hooks run in
the task process: ``on_task_instance_running`` just before the operator's ``execute()`` and
``on_task_instance_success`` / ``_failed`` / ``_skipped`` after it (and after the task's callbacks). Each
finished try appends one JSON line to ``<folder>/timings-<pid>.jsonl``: dag_id, run_id, task_id,
map_index, try_number, start and end (epoch seconds), state, pid, and the task process's peak resident
memory (``ru_maxrss``, KiB) at start and end, and the CPU time the task process used inside ``execute()``
(``cpu``, seconds: ``time.process_time`` at the end minus at the start; every thread of the process).
``end`` is the try's ``end_date``, which the task runner sets as soon as ``execute()`` returns or raises
(the end hooks run later, after the task's callbacks);
``finalized`` is when the end hook ran.

A deferred task calls the running hook again on every resume; each resume is recorded as its own
interval (time spent waiting in the triggerer is not execution time).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin

ENV = "CARRIER_OPT_TIMINGS"
_started: dict[tuple, tuple[float, int, float]] = {}


def _key(ti: Any) -> tuple:
    return (ti.dag_id, ti.run_id, ti.task_id, getattr(ti, "map_index", -1), getattr(ti, "try_number", 0))


def _max_rss() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _epoch(value: Any) -> float | None:
    """Epoch seconds of a datetime (None when not one)."""
    return value.timestamp() if hasattr(value, "timestamp") else None


def _finish(ti: Any, state: str) -> None:
    folder = os.environ.get(ENV)
    if not folder:
        return
    finalized = time.time()
    key = _key(ti)
    cpu_end = time.process_time()
    start, rss_start, cpu_start = _started.pop(key, (None, None, None))
    end = _epoch(getattr(ti, "end_date", None))
    if end is None or (start is not None and end < start):  # not set by this try's runner
        end = finalized
    record = dict(zip(("dag_id", "run_id", "task_id", "map_index", "try_number"), key, strict=True))
    record.update(
        start=start,
        end=end,
        finalized=finalized,
        state=state,
        pid=os.getpid(),
        max_rss_start_kib=rss_start,
        max_rss_kib=_max_rss(),
        cpu=None if cpu_start is None else round(cpu_end - cpu_start, 4),
    )
    path = Path(folder) / f"timings-{os.getpid()}.jsonl"
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(record, default=str) + "\n")


class TaskTimingsListener:
    """The listener: remembers when a try starts executing, writes its interval when it ends."""

    @hookimpl
    def on_task_instance_running(self, previous_state: Any, task_instance: Any) -> None:
        """Remember when the try starts executing."""
        _started[_key(task_instance)] = (time.time(), _max_rss(), time.process_time())

    @hookimpl
    def on_task_instance_success(self, previous_state: Any, task_instance: Any) -> None:
        """Write the finished try."""
        _finish(task_instance, "success")

    @hookimpl
    def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any) -> None:
        """Write the failed try."""
        _finish(task_instance, "failed")

    @hookimpl
    def on_task_instance_skipped(self, previous_state: Any, task_instance: Any) -> None:
        """Write the skipped try."""
        _finish(task_instance, "skipped")


def listeners() -> list[TaskTimingsListener]:
    """The listener when ``CARRIER_OPT_TIMINGS`` is set, else none."""
    return [TaskTimingsListener()] if os.environ.get(ENV) else []


class TaskTimingsPlugin(AirflowPlugin):
    """Registers :class:`TaskTimingsListener` only when ``CARRIER_OPT_TIMINGS`` is set."""

    name = "carrier_optimization_task_timings"
    listeners = listeners()
