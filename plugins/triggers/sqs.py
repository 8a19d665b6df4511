"""The trigger waiting in the triggerer for this tenant's optimization request (or continuation) on SQS."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from airflow.providers.amazon.aws.hooks.sqs import SqsHook

from include.carrier_optimization.amop.run_records import SyncFailedError
from include.carrier_optimization.messaging.filtering import split_batch
from include.carrier_optimization.messaging.sqs_steps import arun_steps, poke_steps, receive_params
from plugins.compat import BaseTrigger, TriggerEvent


class OptimizationRequestSqsTrigger(BaseTrigger):
    """Poll an SQS queue until a message of this tenant (and session) arrives, then fire once.

    Each round is :func:`include.carrier_optimization.messaging.sqs_steps.poke_steps` with
    :func:`messaging.filtering.split_batch` (the same logic as the sensor's ``poke``): it receives up
    to ``max_messages`` messages with all message attributes, and

    - messages of other tenants or sessions, and further matches, are made visible again at once
      (``ChangeMessageVisibilityBatch`` with ``VisibilityTimeout=0``);
    - malformed messages are logged with their ``MessageId``, sent to ``dead_letter_queue`` when set
      (original body and attributes plus ``ErrorReason``) and deleted; when the dead-letter send fails the
      message is left on the queue (it reappears after its visibility timeout);
    - the first matching message is deleted and the trigger yields exactly one
      ``TriggerEvent({"status": "success", "message": ..., "request": {...}})``.

    Without a match it sleeps ``poll_interval`` seconds and polls again; the deadline is the timeout the
    sensor passes to ``defer``. Any exception ends the trigger with one
    ``{"status": "error", "message": ...}`` event. The hook is built inside ``run()``. ``serialize()``
    returns every constructor parameter, read from the attribute of the same name.

    :param sqs_queue: URL of the request queue.
    :param tenant_id: ``TenantId`` to take (a positive integer).
    :param session_id: ``OptimizationSessionId`` to take (continuations); ``None`` for any.
    :param require_synced: take only messages whose ``HasSynced`` equals this; ``None`` for either.
    :param dead_letter_queue: URL of the queue receiving malformed messages; ``None`` to log and delete.
    :param aws_conn_id: Airflow AWS connection id (default ``aws_default``).
    :param region_name: AWS region; ``None`` takes the connection's.
    :param wait_time_seconds: long-poll wait of one ``receive_message`` call, 0 to 20 (default 1).
    :param visibility_timeout: visibility timeout of received messages in seconds; ``None`` for the queue's.
    :param max_messages: messages received per round, 1 to 10 (default 10).
    :param poll_interval: seconds to sleep between rounds without a match (default 60).
    :param stop_on_sync_error: with ``session_id``, end at once with a ``sync_failed`` event when the
        session's device sync failed (the session stopped with its error) (default ``False``).
    :param amop_conn_id: AMOP database connection read for that (default ``amop_db``).
    """

    def __init__(
        self,
        *,
        sqs_queue: str,
        tenant_id: int,
        session_id: int | None = None,
        require_synced: bool | None = None,
        dead_letter_queue: str | None = None,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        wait_time_seconds: int = 1,
        visibility_timeout: int | None = None,
        max_messages: int = 10,
        poll_interval: float = 60.0,
        stop_on_sync_error: bool = False,
        amop_conn_id: str = "amop_db",
    ) -> None:
        super().__init__()
        self.sqs_queue = sqs_queue
        self.tenant_id = tenant_id
        self.session_id = session_id
        self.require_synced = require_synced
        self.dead_letter_queue = dead_letter_queue
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.wait_time_seconds = wait_time_seconds
        self.visibility_timeout = visibility_timeout
        self.max_messages = max_messages
        self.poll_interval = poll_interval
        self.stop_on_sync_error = stop_on_sync_error
        self.amop_conn_id = amop_conn_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the classpath and the constructor keyword arguments."""
        names = [name for name in inspect.signature(type(self).__init__).parameters if name != "self"]
        return (
            f"{self.__class__.__module__}.{self.__class__.__qualname__}",
            {name: getattr(self, name) for name in names},
        )

    def _receive_kwargs(self) -> dict[str, Any]:
        return receive_params(
            queue_url=self.sqs_queue,
            max_messages=self.max_messages,
            wait_time_seconds=self.wait_time_seconds,
            visibility_timeout=self.visibility_timeout,
        )

    async def poke(self, client: Any) -> dict[str, Any] | None:
        """Receive one batch and handle it; return the accepted request dict, or ``None``.

        Raises `SyncFailedError` first when the awaited session's sync failed.
        """
        if self.stop_on_sync_error and self.session_id is not None:
            error = await asyncio.to_thread(session_sync_error, self.amop_conn_id, self.session_id)
            if error is not None:
                raise SyncFailedError(f"Device sync of session {self.session_id} failed: {error}")
        split = partial(
            split_batch,
            tenant_id=self.tenant_id,
            session_id=self.session_id,
            require_synced=self.require_synced,
        )
        accepted = await arun_steps(
            client,
            poke_steps(
                self._receive_kwargs(), split, dead_letter_queue=self.dead_letter_queue, logger=self.log
            ),
        )
        return None if accepted is None else accepted.request.to_dict()

    async def _wait_for_request(self) -> dict[str, Any]:
        hook = SqsHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name)
        while True:
            async with await hook.get_async_conn() as client:
                request = await self.poke(client)
            if request is not None:
                return request
            self.log.info(
                "No request for tenant %s on %s; next poll in %s s",
                self.tenant_id,
                self.sqs_queue,
                self.poll_interval,
            )
            await asyncio.sleep(self.poll_interval)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until a wanted message is taken; yield one success or error event."""
        try:
            request = await self._wait_for_request()
        except SyncFailedError as failed:
            yield TriggerEvent({"status": "sync_failed", "message": str(failed)})
            return
        except Exception as error:
            self.log.exception("Waiting for a request on %s failed", self.sqs_queue)
            yield TriggerEvent(
                {
                    "status": "error",
                    "message": f"Waiting for a request on {self.sqs_queue} failed: "
                    f"{type(error).__name__}: {error}",
                }
            )
            return
        message = f"Accepted message {request['message_id']} for tenant {request['tenant_id']}"
        yield TriggerEvent({"status": "success", "message": message, "request": request})


def session_sync_error(amop_conn_id: str, session_id: int) -> str | None:
    """The error of the session's failed device sync, or None (blocking; the sensor shares it)."""
    from include.carrier_optimization.amop.run_records import RunRecords
    from plugins.hooks.amop import AmopDatabaseHook

    return RunRecords(AmopDatabaseHook(amop_conn_id=amop_conn_id).get_conn()).sync_error(int(session_id))
