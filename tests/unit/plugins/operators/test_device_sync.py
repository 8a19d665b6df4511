"""Device-sync operators: the sync request (checks, staging cleared, published) and the paging deferral."""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import TaskDeferred
from sqlalchemy import func, select

from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.storage import make_engine
from include.carrier_optimization.messaging.sync_messages import NEXT_STEP_USAGE, legacy_last_sync_date
from include.carrier_optimization.sync.staging import PagesResult
from plugins.compat import AirflowFailException, AirflowSkipException
from plugins.hooks.jasper import JasperHook
from plugins.operators import device_sync as device_sync_operators
from plugins.operators.device_sync import (
    DeviceSyncMergeOperator,
    DeviceSyncPagesOperator,
    DeviceSyncRequestOperator,
)

REQUEST = {"tenant_id": 5, "service_provider_id": 501, "has_synced": False}
SESSION = {"session_id": 12, "session_guid": "g-12", "billing_period_id": 34, "request": REQUEST}
CONTEXT = {"dag": SimpleNamespace(dag_id="carrier_optimization__unit"), "run_id": "manual__1"}


@pytest.fixture
def amop(monkeypatch, tmp_path):
    for name in ("AIRFLOW_CONN_AMOP_DB", "AIRFLOW_CONN_AMOP_API"):
        monkeypatch.delenv(name, raising=False)
    url = f"sqlite:///{tmp_path / 'amop.sqlite'}"
    monkeypatch.setenv("CARRIER_OPT_DB_URL", url)
    engine = make_engine(url)
    s.create_schema(engine)
    yield engine
    engine.dispose()


def test_built_without_connections_template_fields_verbatim(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_AWS_DEFAULT", raising=False)
    op = DeviceSyncRequestOperator(
        task_id="sync_request", session="{{ ti.xcom_pull('session') }}", sqs_queue="q"
    )
    assert tuple(op.template_fields) == tuple(sorted(op.template_fields))
    assert op.__dict__["session"] == "{{ ti.xcom_pull('session') }}" and op.__dict__["sqs_queue"] == "q"
    assert "sqs" not in op.__dict__ and "db" not in op.__dict__


@pytest.mark.parametrize(
    ("session", "queue", "match"),
    [
        ("None", "q", "`session` must be the session step's dict"),
        ({**SESSION, "request": "x"}, "q", r"`session\['request'\]` must be the request dict"),
        (SESSION, "", "`sqs_queue` must name the device-sync queue"),
    ],
    ids=["session-text", "request-text", "empty-queue"],
)
def test_bad_templated_values_fail_without_retries(amop, session, queue, match):
    with pytest.raises(AirflowFailException, match=match):
        DeviceSyncRequestOperator(task_id="sync_request", session=session, sqs_queue=queue).execute(CONTEXT)


def test_synced_request_skips_without_touching_staging(amop):
    with amop.begin() as conn:
        conn.execute(s.jasper_device_staging.insert().values(ICCID="1", ServiceProviderId=501))
    session = {**SESSION, "request": {**REQUEST, "has_synced": True}}
    with pytest.raises(AirflowSkipException, match="HasSynced"):
        DeviceSyncRequestOperator(task_id="sync_request", session=session, sqs_queue="q").execute(CONTEXT)
    with amop.connect() as conn:
        assert conn.execute(select(func.count()).select_from(s.jasper_device_staging)).scalar_one() == 1


@pytest.mark.integration("sqs")
def test_clears_the_provider_s_staging_and_publishes_the_request(amop, sqs_client):
    with amop.begin() as conn:
        conn.execute(s.jasper_device_staging.insert(), [{"ICCID": "1", "ServiceProviderId": 501}])
        conn.execute(s.jasper_device_staging.insert(), [{"ICCID": "2", "ServiceProviderId": 777}])
        conn.execute(s.jasper_usage_iccids_to_process.insert(), [{"ICCID": "1", "ServiceProviderId": 501}])
    queue = f"device-sync-unit-{id(amop)}"
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    message_id = DeviceSyncRequestOperator(task_id="sync_request", session=SESSION, sqs_queue=queue).execute(
        CONTEXT
    )
    after = dt.datetime.now(dt.UTC)
    assert json.dumps(message_id) and len(message_id) < 100
    with amop.connect() as conn:
        left = conn.execute(select(s.jasper_device_staging.c.ServiceProviderId)).scalars().all()
        usage = conn.execute(select(func.count()).select_from(s.jasper_usage_iccids_to_process)).scalar_one()
    assert left == [777] and usage == 0, "only this provider's staging rows are cleared"
    url = sqs_client.get_queue_url(QueueName=queue)["QueueUrl"]
    (message,) = sqs_client.receive_message(QueueUrl=url, MessageAttributeNames=["All"], WaitTimeSeconds=0)[
        "Messages"
    ]
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert message["MessageId"] == message_id
    assert attributes == {
        "PageNumber": "1",
        "LastSyncDate": attributes["LastSyncDate"],  # checked exactly below
        "ServiceProviderId": "501",
        "NextStep": NEXT_STEP_USAGE,
        "OptimizationSessionId": "12",
        "TenantId": "5",
        "BillPeriodId": "34",
    }
    # One month and one day back, as the legacy computes it (not 32 days), to the second.
    sent = dt.datetime.strptime(attributes["LastSyncDate"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    assert legacy_last_sync_date(before) <= sent <= legacy_last_sync_date(after)


SYNC_REQUEST = {
    "service_provider_id": 501,
    "page_number": 1,
    "last_sync_date": "2026-10-27T17:42:07Z",
    "next_step": NEXT_STEP_USAGE,
    "session_id": 12,
    "tenant_id": 5,
    "bill_period_id": 34,
    "instance_id": None,
    "message_id": "m-1",
}


def test_paging_out_of_pages_defers_and_continues_in_execute_complete(amop, monkeypatch):
    """``max_pages_per_try`` reached: defer on the short timer; ``execute_complete`` pages on."""
    results = iter([(2, False), (3, True)])
    calls = []

    def fake_sync_pages(engine, client, request, *, key, max_pages, **kwargs):
        calls.append((request.message_id, key, max_pages))
        next_page, done = next(results)
        return PagesResult(next_page, next_page - 1, 1, 10, done, None)

    monkeypatch.setattr(device_sync_operators, "sync_pages", fake_sync_pages)
    monkeypatch.setattr(JasperHook, "get_conn", lambda self: object())
    op = DeviceSyncPagesOperator(task_id="sync_devices", request=SYNC_REQUEST, max_pages_per_try=1)
    ti = SimpleNamespace(dag_id="device_sync__unit", run_id="r1", task_id="sync_devices", map_index=-1)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({"ti": ti})
    assert (deferred.value.method_name, deferred.value.kwargs) == ("execute_complete", {"resumes": 1})

    result = op.execute_complete({"ti": ti}, event=None, **deferred.value.kwargs)

    assert result["done"] is True and result["next_page"] == 3 and result["resumes"] == 1
    assert [c[0] for c in calls] == ["m-1", "m-1"] and calls[0][1] == calls[1][1] and calls[0][2] == 1


def test_a_malformed_sync_request_fails_without_retries(amop):
    op = DeviceSyncMergeOperator(task_id="merge", request={"service_provider_id": 1}, tenant_id=5)
    with pytest.raises(AirflowFailException, match="`request` must be the sensor's device-sync request"):
        op.execute({})
