"""Trigger waiting in the triggerer for this tenant's optimization request on SQS."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.providers.amazon.aws.hooks.sqs import SqsHook

from include.carrier_optimization.messages import (
    BatchSplit,
    dead_letter_params,
    release_entries,
    split_batch,
)
from plugins.compat import BaseTrigger, TriggerEvent


class OptimizationRequestSqsTrigger(BaseTrigger):
    """Poll an SQS queue until a message of this tenant (and session) arrives, then fire once.

    Each round receives up to ``max_messages`` messages with all message attributes and sorts them with
    :func:`include.carrier_optimization.messages.split_batch` (the same logic as the sensor's ``poke``):

    - messages of other tenants or sessions, and further matches, are made visible again at once
      (``ChangeMessageVisibilityBatch`` with ``VisibilityTimeout=0``);
    - malformed messages are logged with their ``MessageId``, sent to ``dead_letter_queue`` when set
      (original body and attributes plus ``ErrorReason``) and deleted; when the dead-letter send fails the
      message is left on the queue (it reappears after its visibility timeout);
    - the first matching message is deleted and the trigger yields exactly one
      ``TriggerEvent({"status": "success", "message": ..., "request": {...}})``.

    Without a match it sleeps ``poll_interval`` seconds and polls again; the deadline is the timeout the
    sensor passes to ``defer``. Any exception ends the trigger with one
    ``{"status": "error", "message": ...}`` event. The hook is built inside ``run()``.

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

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the classpath and the constructor keyword arguments."""
        return (
            f"{self.__class__.__module__}.{self.__class__.__qualname__}",
            {
                "sqs_queue": self.sqs_queue,
                "tenant_id": self.tenant_id,
                "session_id": self.session_id,
                "require_synced": self.require_synced,
                "dead_letter_queue": self.dead_letter_queue,
                "aws_conn_id": self.aws_conn_id,
                "region_name": self.region_name,
                "wait_time_seconds": self.wait_time_seconds,
                "visibility_timeout": self.visibility_timeout,
                "max_messages": self.max_messages,
                "poll_interval": self.poll_interval,
            },
        )

    def _receive_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "QueueUrl": self.sqs_queue,
            "MaxNumberOfMessages": self.max_messages,
            "WaitTimeSeconds": self.wait_time_seconds,
            "MessageAttributeNames": ["All"],
        }
        if self.visibility_timeout is not None:
            kwargs["VisibilityTimeout"] = self.visibility_timeout
        return kwargs

    async def _release(self, client: Any, split: BatchSplit) -> None:
        for chunk in release_entries(split.others):
            response = await client.change_message_visibility_batch(QueueUrl=self.sqs_queue, Entries=chunk)
            for failure in response.get("Failed", []):
                message = split.others[int(failure["Id"][1:])]
                self.log.warning(
                    "Could not release message %s on %s (it reappears after its visibility timeout): %s",
                    message.get("MessageId"),
                    self.sqs_queue,
                    failure,
                )
        if split.others:
            self.log.info("Released %d message(s) left for other runs", len(split.others))

    async def _dispose_malformed(self, client: Any, split: BatchSplit) -> None:
        for malformed in split.malformed:
            self.log.error(
                "Malformed message %s on %s: %s", malformed.message_id, self.sqs_queue, malformed.error
            )
            if self.dead_letter_queue:
                try:
                    params = dead_letter_params(malformed, queue_url=self.dead_letter_queue)
                    await client.send_message(**params)
                except Exception:
                    self.log.exception(
                        "Could not move message %s to dead-letter queue %s; left on the queue",
                        malformed.message_id,
                        self.dead_letter_queue,
                    )
                    continue
                self.log.info("Moved message %s to %s", malformed.message_id, self.dead_letter_queue)
            else:
                self.log.error(
                    "No dead-letter queue set: deleting message %s; body %r; attributes %r",
                    malformed.message_id,
                    malformed.message.get("Body"),
                    malformed.message.get("MessageAttributes"),
                )
            receipt_handle = malformed.message.get("ReceiptHandle")
            if receipt_handle is None:
                self.log.warning("Message %s has no ReceiptHandle: cannot delete it", malformed.message_id)
                continue
            try:
                await client.delete_message(QueueUrl=self.sqs_queue, ReceiptHandle=receipt_handle)
            except Exception:
                self.log.exception("Could not delete malformed message %s", malformed.message_id)

    async def poke(self, client: Any) -> dict[str, Any] | None:
        """Receive one batch and handle it; return the accepted request dict, or ``None``."""
        response = await client.receive_message(**self._receive_kwargs())
        split = split_batch(
            response.get("Messages", []),
            tenant_id=self.tenant_id,
            session_id=self.session_id,
            require_synced=self.require_synced,
        )
        await self._release(client, split)
        await self._dispose_malformed(client, split)
        if split.accepted is None:
            return None
        await client.delete_message(
            QueueUrl=self.sqs_queue, ReceiptHandle=split.accepted.message["ReceiptHandle"]
        )
        self.log.info("Accepted and deleted message %s", split.accepted.request.message_id)
        return split.accepted.request.to_dict()

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
        """Poll until a matching message is taken; yield one success or error event."""
        try:
            request = await self._wait_for_request()
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
        yield TriggerEvent(
            {
                "status": "success",
                "message": f"Accepted message {request['message_id']} for tenant {request['tenant_id']}",
                "request": request,
            }
        )


class DeviceSyncRequestSqsTrigger(OptimizationRequestSqsTrigger):
    """Poll the device-sync queue until a request for one of ``service_provider_ids`` arrives, then fire once.

    The same machinery as :class:`OptimizationRequestSqsTrigger` (release others at once, dead-letter
    malformed messages, one event), sorting batches with
    :func:`include.carrier_optimization.sync_messages.split_sync_batch`. The success event carries the
    request as ``DeviceSyncRequest.to_dict()``.

    :param sqs_queue: URL of the device-sync queue.
    :param service_provider_ids: ``ServiceProviderId`` values to take (the tenant's providers).
    :param tenant_id: the tenant, for logs only (default ``None``).
    :param dead_letter_queue: URL of the queue receiving malformed messages; ``None`` to log and delete.
    :param aws_conn_id: Airflow AWS connection id (default ``aws_default``).
    :param region_name: AWS region; ``None`` takes the connection's.
    :param wait_time_seconds: long-poll wait of one ``receive_message`` call, 0 to 20 (default 1).
    :param visibility_timeout: visibility timeout of received messages in seconds; ``None`` for the queue's.
    :param max_messages: messages received per round, 1 to 10 (default 10).
    :param poll_interval: seconds to sleep between rounds without a match (default 60).
    """

    def __init__(
        self,
        *,
        sqs_queue: str,
        service_provider_ids: list[int],
        tenant_id: int | None = None,
        dead_letter_queue: str | None = None,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        wait_time_seconds: int = 1,
        visibility_timeout: int | None = None,
        max_messages: int = 10,
        poll_interval: float = 60.0,
    ) -> None:
        super().__init__(
            sqs_queue=sqs_queue,
            tenant_id=tenant_id,  # type: ignore[arg-type]
            dead_letter_queue=dead_letter_queue,
            aws_conn_id=aws_conn_id,
            region_name=region_name,
            wait_time_seconds=wait_time_seconds,
            visibility_timeout=visibility_timeout,
            max_messages=max_messages,
            poll_interval=poll_interval,
        )
        self.service_provider_ids = list(service_provider_ids)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the classpath and the constructor keyword arguments."""
        _, kwargs = super().serialize()
        for name in ("session_id", "require_synced"):
            kwargs.pop(name)
        return (
            f"{self.__class__.__module__}.{self.__class__.__qualname__}",
            {**kwargs, "service_provider_ids": self.service_provider_ids},
        )

    async def poke(self, client: Any) -> dict[str, Any] | None:
        """Receive one batch and handle it; return the accepted sync request dict, or ``None``."""
        from include.carrier_optimization.sync_messages import split_sync_batch

        response = await client.receive_message(**self._receive_kwargs())
        split = split_sync_batch(response.get("Messages", []), service_provider_ids=self.service_provider_ids)
        await self._release(client, split)  # type: ignore[arg-type]
        await self._dispose_malformed(client, split)  # type: ignore[arg-type]
        if split.accepted is None:
            return None
        await client.delete_message(
            QueueUrl=self.sqs_queue, ReceiptHandle=split.accepted.message["ReceiptHandle"]
        )
        self.log.info("Accepted and deleted device-sync request %s", split.accepted.request.message_id)
        return split.accepted.request.to_dict()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until a request of these providers is taken; yield one success or error event."""
        try:
            request = await self._wait_for_request()
        except Exception as error:
            self.log.exception("Waiting for a device-sync request on %s failed", self.sqs_queue)
            yield TriggerEvent(
                {
                    "status": "error",
                    "message": f"Waiting for a device-sync request on {self.sqs_queue} failed: "
                    f"{type(error).__name__}: {error}",
                }
            )
            return
        yield TriggerEvent(
            {
                "status": "success",
                "message": f"Accepted device-sync request {request['message_id']} for service provider "
                f"{request['service_provider_id']}",
                "request": request,
            }
        )
