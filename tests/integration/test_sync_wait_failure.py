"""`sync_wait` ends at once with the sync's error when the session's device sync failed."""

from __future__ import annotations

import asyncio

import pytest

from include.carrier_optimization.amop.device_sync import stop_session
from include.carrier_optimization.amop.repository import AmopRepository
from plugins.compat import AirflowFailException
from plugins.sensors.sqs import OptimizationRequestSqsSensor
from plugins.triggers.sqs import OptimizationRequestSqsTrigger

pytestmark = pytest.mark.integration("sqs")

TENANT = 7


@pytest.fixture
def queue(fresh_queue):
    return fresh_queue[0]


@pytest.fixture
def session_id(amop) -> int:
    return AmopRepository(amop).create_session(TENANT, 3, 55)["session_id"]


def sync_wait(queue: str, session_id: int, **kwargs) -> OptimizationRequestSqsSensor:
    fields = {
        "task_id": "sync_wait",
        "sqs_queue": queue,
        "tenant_id": str(TENANT),
        "session_id": str(session_id),
        "require_synced": True,
        "stop_on_sync_error": True,
        "wait_time_seconds": 0,
        "poke_interval": 0.1,
        "timeout": 30,
    }
    return OptimizationRequestSqsSensor(**(fields | kwargs))


def test_a_failed_sync_fails_the_wait_before_it_defers(amop, queue, session_id):
    stop_session(amop, session_id, error="Jasper page 3: HTTP 500")
    with pytest.raises(AirflowFailException, match="Jasper page 3: HTTP 500"):
        sync_wait(queue, session_id, deferrable=True).execute({})


def test_a_sync_failing_while_waiting_ends_the_trigger_at_once(amop, queue, session_id):
    trigger = OptimizationRequestSqsTrigger(
        sqs_queue=queue,
        tenant_id=TENANT,
        session_id=session_id,
        require_synced=True,
        wait_time_seconds=0,
        poll_interval=0.1,
        stop_on_sync_error=True,
    )

    async def first_event():
        async for event in trigger.run():
            return event

    async def fail_later():
        await asyncio.sleep(0.5)
        await asyncio.to_thread(stop_session, amop, session_id, error="carrier API 401")
        return await asyncio.wait_for(first_event(), 10)

    event = asyncio.run(fail_later())
    assert event.payload["status"] == "sync_failed" and "carrier API 401" in event.payload["message"]
    with pytest.raises(AirflowFailException, match="carrier API 401"):
        sync_wait(queue, session_id).execute_complete({}, event.payload)


def test_a_poking_wait_fails_at_once_too(amop, queue, session_id):
    op = sync_wait(queue, session_id, deferrable=False)
    assert op.poke({}) is False  # nothing yet, the sync runs
    stop_session(amop, session_id, error="merge failed")
    with pytest.raises(AirflowFailException, match="merge failed"):
        op.poke({})
