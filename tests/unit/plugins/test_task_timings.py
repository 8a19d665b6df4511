"""The task-timings listener: registered only when CARRIER_OPT_TIMINGS is set, one JSON line per try."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import plugins.task_timings as timings


def _ti(**kw):
    values = dict(dag_id="d", run_id="r", task_id="t", map_index=3, try_number=1)
    values.update(kw)
    return SimpleNamespace(**values)


def test_no_listener_and_no_file_without_the_variable(monkeypatch, tmp_path):
    monkeypatch.delenv(timings.ENV, raising=False)
    assert timings.listeners() == []
    listener = timings.TaskTimingsListener()
    listener.on_task_instance_running(None, _ti())
    listener.on_task_instance_success(None, _ti())
    assert list(tmp_path.iterdir()) == []


def test_the_listener_is_registered_when_the_variable_is_set(monkeypatch, tmp_path):
    monkeypatch.setenv(timings.ENV, str(tmp_path))
    assert [type(x) for x in timings.listeners()] == [timings.TaskTimingsListener]


def test_each_finished_try_appends_one_line_with_its_interval(monkeypatch, tmp_path):
    monkeypatch.setenv(timings.ENV, str(tmp_path))
    listener = timings.TaskTimingsListener()
    listener.on_task_instance_running(None, _ti())
    listener.on_task_instance_success(None, _ti())
    listener.on_task_instance_running(None, _ti(map_index=-1, try_number=2))
    listener.on_task_instance_failed(None, _ti(map_index=-1, try_number=2), error=RuntimeError("x"))
    (path,) = tmp_path.iterdir()
    first, second = (json.loads(line) for line in path.read_text().splitlines())
    assert [first[k] for k in ("task_id", "map_index", "try_number", "state")] == ["t", 3, 1, "success"]
    assert first["start"] <= first["end"] and first["max_rss_kib"] > 0
    assert (second["map_index"], second["try_number"], second["state"]) == (-1, 2, "failed")
    assert timings._started == {}


def test_the_end_is_the_tries_end_date_when_the_runner_set_it(monkeypatch, tmp_path):
    import datetime as dt

    monkeypatch.setenv(timings.ENV, str(tmp_path))
    listener = timings.TaskTimingsListener()
    listener.on_task_instance_running(None, _ti())
    ended = dt.datetime.now(dt.UTC)
    listener.on_task_instance_success(None, _ti(end_date=ended))
    record = json.loads(next(tmp_path.iterdir()).read_text())
    assert record["start"] <= record["end"] == ended.timestamp() <= record["finalized"]


def test_an_end_date_before_the_start_is_a_previous_tries_and_ignored(monkeypatch, tmp_path):
    import datetime as dt

    monkeypatch.setenv(timings.ENV, str(tmp_path))
    listener = timings.TaskTimingsListener()
    listener.on_task_instance_running(None, _ti())
    listener.on_task_instance_success(None, _ti(end_date=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)))
    record = json.loads(next(tmp_path.iterdir()).read_text())
    assert record["end"] == record["finalized"] >= record["start"]


def test_an_end_without_a_start_is_still_written(monkeypatch, tmp_path):
    monkeypatch.setenv(timings.ENV, str(tmp_path))
    timings.TaskTimingsListener().on_task_instance_skipped(None, _ti(task_id="lonely"))
    (line,) = next(tmp_path.iterdir()).read_text().splitlines()
    assert json.loads(line)["start"] is None


def test_the_cpu_time_of_execute_is_recorded(monkeypatch, tmp_path):
    monkeypatch.setenv(timings.ENV, str(tmp_path))
    listener = timings.TaskTimingsListener()
    listener.on_task_instance_running(None, _ti())
    spent = 0.0
    started = time.process_time()
    while spent < 0.05:  # burn CPU in this process
        spent = time.process_time() - started
    listener.on_task_instance_success(None, _ti())
    record = json.loads(next(tmp_path.iterdir()).read_text())
    assert 0.05 <= record["cpu"] <= record["end"] - record["start"] + 0.01
