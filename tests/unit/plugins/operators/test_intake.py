"""The intake operators: claim the run's request by MessageId, delete it, release or drop the others."""

from __future__ import annotations

from types import SimpleNamespace
from unittest.mock import MagicMock, call

import pytest

from include.carrier_optimization.amop.run_records import RunRecords
from include.carrier_optimization.amop.schema import create_schema
from include.carrier_optimization.amop.storage import make_engine
from include.carrier_optimization.messaging.sync_messages import DeviceSyncRequest
from plugins.compat import AirflowSkipException
from plugins.operators.intake import DeviceSyncIntakeOperator, OptimizationIntakeOperator

TENANT, PROVIDER, PERIOD = 7, 3, 55
QUEUE = "https://sqs/requests"


@pytest.fixture
def records(sqlite_url):
    engine = make_engine(sqlite_url)
    create_schema(engine)
    yield RunRecords(engine)
    engine.dispose()


def payload(message_id: str, **request) -> dict:
    fields = {"tenant_id": TENANT, "service_provider_id": PROVIDER, "bill_period_id": PERIOD}
    return {
        "message_id": message_id,
        "receipt_handle": f"rh-{message_id}",
        "queue_url": QUEUE,
        "request": fields | {"message_id": message_id} | request,
    }


def context(payloads: list[dict], run_id: str = "asset_triggered__1", **extra) -> dict:
    events = [
        SimpleNamespace(extra={"payload": p}, timestamp=f"2026-11-30T00:00:0{i}")
        for i, p in enumerate(payloads)
    ]
    return {"triggering_asset_events": {"asset": events}, "run_id": run_id, "params": {}, **extra}


def operator(records: RunRecords, cls=OptimizationIntakeOperator):
    op = cls(task_id="request", tenant_id=TENANT)
    op.__dict__["sqs"] = MagicMock()  # the cached clients, never built from connections here
    op.__dict__["records"] = records
    return op


def test_built_without_connections():
    op = OptimizationIntakeOperator(task_id="request", tenant_id="{{ params.tenant }}")
    assert op.template_fields == ("tenant_id",) and op.tenant_id == "{{ params.tenant }}"
    assert "sqs" not in op.__dict__ and "records" not in op.__dict__


def test_the_first_new_message_is_recorded_then_deleted_and_returned(records):
    op = operator(records)
    request = op.execute(context([payload("a", session_id=901, has_synced=True)]))
    assert request["message_id"] == "a" and request["session_id"] == 901 and request["has_synced"] is True
    assert request["manual"] is False
    assert records.message_run("a") == "asset_triggered__1"
    op.sqs.delete_message.assert_called_once_with(QueueUrl=QUEUE, ReceiptHandle="rh-a")


def test_taken_messages_are_deleted_and_further_new_ones_released(records):
    records.claim_message("old", queue=QUEUE, request={"tenant_id": TENANT}, run_id="another_run")
    op = operator(records)
    request = op.execute(context([payload("old"), payload("a"), payload("b")]))
    assert request["message_id"] == "a"
    assert op.sqs.delete_message.call_args_list == [
        call(QueueUrl=QUEUE, ReceiptHandle="rh-old"),
        call(QueueUrl=QUEUE, ReceiptHandle="rh-a"),
    ]
    op.sqs.change_message_visibility.assert_called_once_with(
        QueueUrl=QUEUE, ReceiptHandle="rh-b", VisibilityTimeout=0
    )
    assert records.message_run("b") is None


def test_a_run_whose_messages_were_all_taken_is_skipped(records):
    records.claim_message("a", queue=QUEUE, request={"tenant_id": TENANT}, run_id="another_run")
    op = operator(records)
    with pytest.raises(AirflowSkipException, match="taken by another run"):
        op.execute(context([payload("a")]))
    op.sqs.delete_message.assert_called_once_with(QueueUrl=QUEUE, ReceiptHandle="rh-a")


def test_a_retried_task_takes_its_own_message_again(records):
    op = operator(records)
    op.execute(context([payload("a")]))
    assert op.execute(context([payload("a")]))["message_id"] == "a"


def test_a_failed_sqs_call_is_only_logged(records):
    op = operator(records)
    op.sqs.delete_message.side_effect = RuntimeError("receipt handle expired")
    assert op.execute(context([payload("a")]))["message_id"] == "a"
    assert records.message_run("a") == "asset_triggered__1"


def test_a_manual_run_takes_its_form(records):
    op = operator(records)
    form = {"service_provider_id": PROVIDER, "billing_period_id": "", "session_id": "12"}
    request = op.execute(
        context([], run_id="manual__1", params=form, dag_run=SimpleNamespace(run_type="manual"))
    )
    assert (
        request["tenant_id"] == TENANT and request["session_id"] == 12 and request["bill_period_id"] is None
    )
    assert request["manual"] is True
    op.sqs.assert_not_called()


def test_an_asset_event_without_a_message_is_skipped(records):
    op = operator(records)
    run = SimpleNamespace(run_type=SimpleNamespace(value="asset_triggered"))
    with pytest.raises(AirflowSkipException, match="without an SQS request"):
        op.execute(context([], dag_run=run))


def test_device_sync_intake_claims_a_sync_request_and_skips_without_one(records):
    op = operator(records, DeviceSyncIntakeOperator)
    sync = payload("s")
    sync["request"] = DeviceSyncRequest(
        service_provider_id=PROVIDER,
        page_number=1,
        last_sync_date="2026-11-01T00:00:00Z",
        next_step="DeviceUsageByRatePlan",
        session_id=None,
        tenant_id=TENANT,
        bill_period_id=None,
        instance_id=None,
        message_id="s",
    ).to_dict()
    request = op.execute(context([sync]))
    assert request["service_provider_id"] == PROVIDER and request["message_id"] == "s"
    assert records.message_run("s") == "asset_triggered__1"
    with pytest.raises(AirflowSkipException, match="not started by a message"):
        op.execute(context([]))
