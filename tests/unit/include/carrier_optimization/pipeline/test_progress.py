"""AMOP 2.0 progress API payloads: exact shapes of docs/architecture.md and the progress bounds."""

from __future__ import annotations

import json

import pytest

from include.carrier_optimization.pipeline.progress import (
    ERROR_PATH,
    PROGRESS_PATH,
    STEPS,
    error_payload,
    progress_payload,
)

SESSION_ID = 4711
SESSION_GUID = "0b8f6f7e-3c1d-4a55-9a57-3f0c2f6b9e11"
# docs/architecture.md: {"data": {path, job_name, SessionId, OptimizationSessionGuid, ErrorMessage,
# Progress, CustomerId, AdditionalJson, DeviceCount}}
DATA_KEYS = [
    "path",
    "job_name",
    "SessionId",
    "OptimizationSessionGuid",
    "ErrorMessage",
    "Progress",
    "CustomerId",
    "AdditionalJson",
    "DeviceCount",
]


class TestPaths:
    def test_paths_are_the_legacy_endpoints(self):
        assert PROGRESS_PATH == "/get_optimization_progress_bar_data"
        assert ERROR_PATH == "/get_optimization_error_details_data"

    def test_steps_follow_the_legacy_table(self):
        assert STEPS == {"session": 0, "sync": 20, "count": 30, "queues": 40, "winners": 50, "report": 100}


class TestProgressPayload:
    def test_exact_shape(self):
        payload = progress_payload(
            session_id=SESSION_ID, session_guid=SESSION_GUID, progress=40, device_count=1234
        )
        assert payload == {
            "data": {
                "path": "/get_optimization_progress_bar_data",
                "job_name": "Progress",
                "SessionId": SESSION_ID,
                "OptimizationSessionGuid": SESSION_GUID,
                "ErrorMessage": None,
                "Progress": 40,
                "CustomerId": None,
                "AdditionalJson": None,
                "DeviceCount": 1234,
            }
        }
        assert list(payload) == ["data"] and list(payload["data"]) == DATA_KEYS

    def test_defaults_device_count_zero_and_guid_may_be_null(self):
        data = progress_payload(session_id=1, session_guid=None, progress=0)["data"]
        assert data["DeviceCount"] == 0 and data["OptimizationSessionGuid"] is None

    def test_additional_is_a_json_string(self):
        additional = {"data": {"BillPeriodId": 9, "SiteId": 0, "OptimizationFrom": "group", "TenantId": 1}}
        data = progress_payload(session_id=1, session_guid=SESSION_GUID, progress=0, additional=additional)[
            "data"
        ]
        assert isinstance(data["AdditionalJson"], str)
        assert json.loads(data["AdditionalJson"]) == additional

    def test_empty_additional_is_null(self):
        data = progress_payload(session_id=1, session_guid=None, progress=0, additional={})["data"]
        assert data["AdditionalJson"] is None

    def test_payload_is_json_serializable(self):
        payload = progress_payload(session_id=1, session_guid=SESSION_GUID, progress=100, device_count=3)
        assert json.loads(json.dumps(payload)) == payload

    @pytest.mark.parametrize("progress", [0, 20, 30, 40, 50, 100], ids=lambda p: f"{p}%")
    def test_accepts_every_legacy_step(self, progress):
        assert progress_payload(session_id=1, session_guid=None, progress=progress)["data"]["Progress"] == (
            progress
        )

    @pytest.mark.parametrize("progress", [-1, 101, 1000], ids=["below-0", "above-100", "far-above"])
    def test_out_of_bounds_names_the_argument_and_value(self, progress):
        with pytest.raises(ValueError, match=rf"^`progress` must be within 0\.\.100; got {progress}$"):
            progress_payload(session_id=1, session_guid=None, progress=progress)


class TestErrorPayload:
    def test_exact_shape(self):
        payload = error_payload(session_id=SESSION_ID, session_guid=None, message="No rate plans found")
        assert payload == {
            "data": {
                "path": "/get_optimization_error_details_data",
                "job_name": "ErrorMessage",
                "SessionId": SESSION_ID,
                "OptimizationSessionGuid": None,
                "ErrorMessage": "No rate plans found",
                "Progress": 0,
                "CustomerId": None,
                "AdditionalJson": None,
                "DeviceCount": 0,
            }
        }
        assert list(payload["data"]) == DATA_KEYS

    def test_keeps_the_guid_when_given(self):
        data = error_payload(session_id=1, session_guid=SESSION_GUID, message="m")["data"]
        assert data["OptimizationSessionGuid"] == SESSION_GUID
