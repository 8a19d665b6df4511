"""The watcher trigger of a tenant's SQS queue: each request starts a DAG run (event-driven scheduling)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from include.carrier_optimization.messaging.intake import (
    event_payload,
    provider_verdict,
    tenant_verdict,
    watch_steps,
)
from include.carrier_optimization.messaging.parsing import parse_request
from include.carrier_optimization.messaging.queues import resolve_queue_url
from include.carrier_optimization.messaging.sqs_steps import receive_params, run_steps
from include.carrier_optimization.messaging.sync_messages import parse_sync_request
from plugins.compat import BaseEventTrigger, TriggerEvent

#: Kinds of queue a watcher reads: the tenant's request queue or its device-sync queue.
KINDS = ("optimization", "device_sync")


class SqsRequestWatcherTrigger(BaseEventTrigger):
    """Watch a tenant's SQS queue; yield one event per request, and never delete a request it takes.

    Each round receives up to 10 messages with all attributes, holding them invisible for
    ``hold_seconds``, and runs :func:`include.carrier_optimization.messaging.intake.watch_steps`:

    - a request of the tenant (``kind="optimization"``) or of one of its providers
      (``kind="device_sync"``) is taken: one ``TriggerEvent`` with ``message_id``, ``receipt_handle``,
      ``queue_url`` and the parsed ``request`` (the asset event's ``extra["payload"]``). The message
      stays on the queue; the run's intake task records its ``MessageId`` and then deletes it. If no
      run records it within ``hold_seconds`` (a triggerer that died before the event was stored) it
      reappears and is taken again;
    - a sync completion whose session's run waits in ``sync_wait`` is made visible again at once;
    - malformed messages and other tenants' (providers') requests go to ``dead_letter_queue`` with
      ``ErrorReason`` and are deleted.

    Blocking calls (boto3, the AMOP database) run in a worker thread; no I/O in ``__init__``.

    :param sqs_queue: name or URL of the queue.
    :param tenant_id: the tenant of the queue.
    :param kind: ``optimization`` (request queue) or ``device_sync``.
    :param service_provider_ids: the tenant's providers (``device_sync`` only).
    :param dead_letter_queue: name or URL of the dead-letter queue; ``None`` to log and delete.
    :param aws_conn_id: Airflow AWS connection id (default ``aws_default``).
    :param region_name: AWS region; ``None`` takes the connection's.
    :param amop_conn_id: AMOP database connection, read to leave sync completions to their wait.
    :param hold_seconds: visibility timeout of a taken message (default 300).
    :param wait_time_seconds: long-poll wait of one receive, 0 to 20 (default 10).
    :param poll_interval: seconds between rounds that took nothing (default 1).
    """

    def __init__(
        self,
        *,
        sqs_queue: str,
        tenant_id: int,
        kind: str = "optimization",
        service_provider_ids: list[int] | None = None,
        dead_letter_queue: str | None = None,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        amop_conn_id: str = "amop_db",
        hold_seconds: int = 300,
        wait_time_seconds: int = 10,
        poll_interval: float = 1.0,
    ) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"`kind` must be one of {KINDS}, got {kind!r}")
        self.sqs_queue = sqs_queue
        self.tenant_id = tenant_id
        self.kind = kind
        self.service_provider_ids = list(service_provider_ids or [])
        self.dead_letter_queue = dead_letter_queue
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.amop_conn_id = amop_conn_id
        self.hold_seconds = hold_seconds
        self.wait_time_seconds = wait_time_seconds
        self.poll_interval = poll_interval
        self._records: Any = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the classpath and the constructor keyword arguments."""
        names = [name for name in inspect.signature(type(self).__init__).parameters if name != "self"]
        return f"{type(self).__module__}.{type(self).__qualname__}", {n: getattr(self, n) for n in names}

    def _awaiting_sync(self, session_id: int) -> bool:
        from include.carrier_optimization.amop.repository import utcnow
        from include.carrier_optimization.amop.run_records import RunRecords
        from plugins.hooks.amop import AmopDatabaseHook

        if self._records is None:
            self._records = RunRecords(AmopDatabaseHook(amop_conn_id=self.amop_conn_id).get_conn())
        return self._records.awaiting_sync_in_a_run(session_id, now=utcnow())

    def _round(self, client: Any) -> list[dict[str, Any]]:
        """One blocking round: receive, sort, dead-letter; the event payloads of the taken messages."""
        queue_url = resolve_queue_url(client, self.sqs_queue)
        dead_letter = resolve_queue_url(client, self.dead_letter_queue) if self.dead_letter_queue else None
        if self.kind == "optimization":
            parse: Any = parse_request
            decide = partial(tenant_verdict, tenant_id=self.tenant_id, awaiting_sync=self._awaiting_sync)
        else:
            parse = parse_sync_request
            decide = partial(provider_verdict, service_provider_ids=self.service_provider_ids)
        receive = receive_params(
            queue_url=queue_url,
            max_messages=10,
            wait_time_seconds=self.wait_time_seconds,
            visibility_timeout=self.hold_seconds,
        )
        steps = watch_steps(receive, parse, decide, dead_letter_queue=dead_letter, logger=self.log)
        return [event_payload(item, queue_url=queue_url) for item in run_steps(client, steps)]

    def _client(self) -> Any:
        """The boto3 SQS client (blocking: the connection is read from the secrets backend or the API)."""
        from airflow.providers.amazon.aws.hooks.sqs import SqsHook

        return SqsHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name).get_conn()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll for ever; one event per taken request."""
        client = await asyncio.to_thread(self._client)
        while True:
            payloads = await asyncio.to_thread(self._round, client)
            for payload in payloads:
                yield TriggerEvent(payload)
            if not payloads:
                await asyncio.sleep(self.poll_interval)
