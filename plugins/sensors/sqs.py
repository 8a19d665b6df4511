"""The sensor taking this tenant's optimization request, or its sync continuation, from SQS."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property, partial
from typing import Any

from airflow.providers.amazon.aws.hooks.sqs import SqsHook

from include.carrier_optimization.messaging.filtering import split_batch, validate_filter
from include.carrier_optimization.messaging.queues import resolve_queue_url
from include.carrier_optimization.messaging.request import Request
from include.carrier_optimization.messaging.sqs_steps import poke_steps, receive_params, run_steps
from plugins.compat import (
    AirflowException,
    AirflowFailException,
    BaseSensorOperator,
    Context,
    default_deferrable,
)
from plugins.triggers.sqs import OptimizationRequestSqsTrigger, session_sync_error

#: SQS limits of ``receive_message``.
MAX_MESSAGES_LIMIT = 10
WAIT_TIME_SECONDS_LIMIT = 20
VISIBILITY_TIMEOUT_LIMIT = 43200


class OptimizationRequestSqsSensor(BaseSensorOperator):
    """Wait for this tenant's optimization request on SQS and return it as a small dict.

    Messages carry the legacy attributes (``ServiceProviderId``, ``BillPeriodId``, ``TenantId``,
    ``OptimizationSessionId``, ``HasSynced``, ``PortalTypeId``); they are received with all message
    attributes and handled by :func:`include.carrier_optimization.messaging.sqs_steps.poke_steps` with
    :func:`messaging.filtering.split_batch`, the logic shared with
    :class:`plugins.triggers.sqs.OptimizationRequestSqsTrigger`:

    - the first message of ``tenant_id`` (and of ``session_id`` / ``HasSynced == require_synced`` when
      given) is accepted and deleted; its ``Request.to_dict()`` (``tenant_id, service_provider_id,
      bill_period_id, session_id, has_synced, portal_type_id, message_id, manual``) is the return value
      (XCom ``return_value``);
    - every other valid message (other tenants, other sessions, further matches) is made visible again
      at once (``VisibilityTimeout=0``), so it is left for its own run;
    - malformed messages (required attribute missing or unparsable, ``MessageId`` repeated in a batch)
      are logged with their ``MessageId``, sent to ``dead_letter_queue`` when set (original body and
      attributes plus ``ErrorReason``) and deleted; without a dead-letter queue their body and attributes
      are logged before deletion. When the dead-letter send fails, the message stays on the queue.

    Taking a message from SQS means deleting it, and a malformed message left on the queue would come
    back on every poke: so the poke (or, deferred, the trigger) makes these calls itself.

    The same class serves the sync continuation: ``session_id`` set and ``require_synced=True``.
    In deferrable mode the wait runs in the triggerer with the sensor's ``timeout``; otherwise each poke
    receives one batch. Invalid rendered values (``tenant_id``, ``session_id``) fail the task without
    retries.

    :param sqs_queue: name or URL of the request queue (templated).
    :param tenant_id: ``TenantId`` to take, a positive integer or its text (templated).
    :param session_id: ``OptimizationSessionId`` to take; ``None``, ``""`` or ``"None"`` for any
        (templated, default ``None``).
    :param require_synced: take only messages whose ``HasSynced`` equals this; ``None`` for either
        (default ``None``).
    :param dead_letter_queue: name or URL of the queue receiving malformed messages; ``None`` or ``""``
        to log and delete them (templated, default ``None``).
    :param aws_conn_id: Airflow AWS connection id (default ``aws_default``).
    :param region_name: AWS region; ``None`` takes the connection's (default ``None``).
    :param wait_time_seconds: long-poll wait of one ``receive_message`` call, 0 to 20 (default 1).
    :param visibility_timeout: visibility timeout of received messages in seconds; ``None`` keeps the
        queue's (default ``None``).
    :param max_messages: messages received per poke, 1 to 10 (default 10).
    :param deferrable: wait in the triggerer; ``None`` reads ``[operators] default_deferrable``
        (default ``None``).
    :param poke_interval: seconds between pokes, and between trigger polls (default 60).
    :param stop_on_sync_error: with ``session_id``, fail at once (no retries) with the sync's error when
        the session's device sync failed: the sync stopped the session (default ``False``).
    :param amop_conn_id: AMOP database connection read for that (default ``amop_db``).
    """

    template_fields: Sequence[str] = ("dead_letter_queue", "session_id", "sqs_queue", "tenant_id")
    ui_color = "#ffd8b1"

    def __init__(
        self,
        *,
        sqs_queue: str,
        tenant_id: int | str,
        session_id: int | str | None = None,
        require_synced: bool | None = None,
        dead_letter_queue: str | None = None,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        wait_time_seconds: int = 1,
        visibility_timeout: int | None = None,
        max_messages: int = MAX_MESSAGES_LIMIT,
        deferrable: bool | None = None,
        poke_interval: float = 60,
        stop_on_sync_error: bool = False,
        amop_conn_id: str = "amop_db",
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
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
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.stop_on_sync_error = stop_on_sync_error
        self.amop_conn_id = amop_conn_id
        self._accepted_request: dict[str, Any] | None = None
        self._check_arguments()

    def _check_arguments(self) -> None:
        """Check the non-templated arguments (plain values, so at DAG parse time)."""
        if isinstance(self.max_messages, bool) or not isinstance(self.max_messages, int):
            raise ValueError(f"`max_messages` must be an integer from 1 to 10, got {self.max_messages!r}")
        if not 1 <= self.max_messages <= MAX_MESSAGES_LIMIT:
            raise ValueError(f"`max_messages` must be from 1 to 10 (SQS limit), got {self.max_messages}")
        if not 0 <= self.wait_time_seconds <= WAIT_TIME_SECONDS_LIMIT:
            raise ValueError(
                f"`wait_time_seconds` must be from 0 to 20 (SQS limit), got {self.wait_time_seconds}"
            )
        if self.visibility_timeout is not None and not (
            0 <= self.visibility_timeout <= VISIBILITY_TIMEOUT_LIMIT
        ):
            raise ValueError(
                "`visibility_timeout` must be None or from 0 to 43200 (SQS limit), "
                f"got {self.visibility_timeout}"
            )
        if self.require_synced is not None and not isinstance(self.require_synced, bool):
            raise ValueError(f"`require_synced` must be True, False or None, got {self.require_synced!r}")

    @cached_property
    def hook(self) -> SqsHook:
        """SQS hook on ``aws_conn_id`` (built on first use)."""
        return SqsHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name)

    def _filter_kwargs(self) -> dict[str, Any]:
        """Validate the rendered filter values; invalid values fail the task without retries."""
        try:
            flt = validate_filter(
                tenant_id=self.tenant_id, session_id=self.session_id, require_synced=self.require_synced
            )
        except ValueError as error:
            raise AirflowFailException(f"{self.task_id}: {error}") from error
        return {
            "tenant_id": flt.tenant_id,
            "session_id": flt.session_id,
            "require_synced": flt.require_synced,
        }

    def _resolve_queues(self) -> None:
        """Turn queue names (as ``tenants.yaml`` gives them) into URLs; URLs are kept as they are."""
        client = self.hook.get_conn()
        self.sqs_queue = resolve_queue_url(client, self.sqs_queue)
        if self.dead_letter_queue:
            self.dead_letter_queue = resolve_queue_url(client, self.dead_letter_queue)

    def _fail_on_sync_error(self) -> None:
        """End the wait for a sync completion at once when the session's sync failed (no retries)."""
        session_id = self._filter_kwargs()["session_id"]
        if not self.stop_on_sync_error or session_id is None:
            return
        error = session_sync_error(self.amop_conn_id, session_id)
        if error is not None:
            raise AirflowFailException(f"Device sync of session {session_id} failed: {error}")

    def execute(self, context: Context) -> dict[str, Any] | None:
        """Fail at once on a failed sync; defer to the trigger, or poke until a request is taken."""
        self._fail_on_sync_error()
        filter_kwargs = self._filter_kwargs()
        self._resolve_queues()
        if not self.deferrable:
            super().execute(context)
            return self._accepted_request
        self.defer(
            trigger=OptimizationRequestSqsTrigger(
                sqs_queue=self.sqs_queue,
                **filter_kwargs,
                dead_letter_queue=self.dead_letter_queue or None,
                aws_conn_id=self.aws_conn_id,
                region_name=self.region_name,
                wait_time_seconds=self.wait_time_seconds,
                visibility_timeout=self.visibility_timeout,
                max_messages=self.max_messages,
                poll_interval=self.poke_interval,
                stop_on_sync_error=self.stop_on_sync_error,
                amop_conn_id=self.amop_conn_id,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )
        return None  # not reached: defer raises TaskDeferred

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Check the trigger's event and return the accepted request dict.

        A ``sync_failed`` event fails the task without retries.
        """
        if event is not None and event.get("status") == "sync_failed":
            raise AirflowFailException(event.get("message", "Device sync failed"))
        if event is None:
            raise AirflowException("Trigger error: event is None")
        if event.get("status") != "success":
            raise AirflowException(f"Waiting for an optimization request failed: {event}")
        try:
            request = Request.from_dict(event["request"]).to_dict()
        except (KeyError, TypeError, ValueError) as error:
            raise AirflowException(f"Trigger event has no valid request ({error}): {event}") from error
        self.log.info("Took request %s", request)
        return request

    def poke(self, context: Context) -> bool:
        """Receive one batch; take the first wanted message, release the others, move malformed ones."""
        self._fail_on_sync_error()
        filter_kwargs = self._filter_kwargs()
        receive = receive_params(
            queue_url=self.sqs_queue,
            max_messages=self.max_messages,
            wait_time_seconds=self.wait_time_seconds,
            visibility_timeout=self.visibility_timeout,
        )
        accepted = run_steps(
            self.hook.get_conn(),
            poke_steps(
                receive,
                partial(split_batch, **filter_kwargs),
                dead_letter_queue=self.dead_letter_queue or None,
                logger=self.log,
            ),
        )
        if accepted is None:
            self.log.info("No request for tenant %s on %s", filter_kwargs["tenant_id"], self.sqs_queue)
            return False
        self._accepted_request = accepted.request.to_dict()
        return True
