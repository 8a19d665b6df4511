"""The first task of a run started by a request on SQS: claim the request, then delete the message."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any, ClassVar

from include.carrier_optimization.amop.run_records import RunRecords
from include.carrier_optimization.messaging.intake import event_payloads, plan_claims
from include.carrier_optimization.messaging.request import Request, request_from_params
from include.carrier_optimization.messaging.sync_messages import DeviceSyncRequest
from plugins.compat import AirflowSkipException, BaseOperator, Context
from plugins.hooks.amop import AmopDatabaseHook


class _SqsIntakeOperator(BaseOperator):
    """Take the run's request from its triggering asset events (docs/architecture.md).

    The events come from :class:`plugins.triggers.intake.SqsRequestWatcherTrigger`, which never deletes
    a message. Here, in order (:func:`include.carrier_optimization.messaging.intake.plan_claims`):

    1. a message another run already recorded (a redelivered copy) is deleted and not run again;
    2. the first new message is recorded in ``AirflowProcessedMessage`` (AMOP database) under this run,
       and only then deleted from SQS; its request is the return value;
    3. further new messages (events that arrived while the DAG was busy) are made visible again at
       once: each starts its own run.

    A crash between 2's record and delete leaves a message whose redelivery step 1 removes. Without a
    new message the task is skipped, and so is the rest of the run. A run without asset events is
    handled by :meth:`without_event`.

    :param tenant_id: the tenant (templated).
    :param aws_conn_id: Airflow AWS connection id (default ``aws_default``).
    :param region_name: AWS region; ``None`` takes the connection's.
    :param amop_conn_id: AMOP database connection (default ``amop_db``).
    """

    template_fields: Sequence[str] = ("tenant_id",)
    ui_color = "#ffd8b1"
    #: Rebuilds the request of a payload (``from_dict``/``to_dict``).
    request_class: ClassVar[Any]

    def __init__(
        self,
        *,
        tenant_id: int | str,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        amop_conn_id: str = "amop_db",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.tenant_id = tenant_id
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.amop_conn_id = amop_conn_id

    @cached_property
    def sqs(self) -> Any:
        """boto3 SQS client of ``aws_conn_id`` (built on first use)."""
        # Imported here: boto3 (~275 modules) would otherwise load when the device-sync DAG is parsed.
        from airflow.providers.amazon.aws.hooks.sqs import SqsHook

        return SqsHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name).get_conn()

    @cached_property
    def records(self) -> RunRecords:
        """The run model's repository on the AMOP database (built on first use)."""
        return RunRecords(AmopDatabaseHook(amop_conn_id=self.amop_conn_id).get_conn())

    def without_event(self, context: Context) -> dict[str, Any]:
        """The request of a run that no message started."""
        raise AirflowSkipException("No request: this run was not started by a message on the queue")

    def payloads(self, context: Context) -> list[dict[str, Any]]:
        """The SQS payloads of the run's triggering asset events, oldest first."""
        return event_payloads(context.get("triggering_asset_events") or {})

    def execute(self, context: Context) -> dict[str, Any]:
        """Claim the first new request of the run's events and return it (see the class docstring)."""
        payloads = self.payloads(context)
        if not payloads:
            return self.without_event(context)
        run_id = context["run_id"]
        plan = plan_claims(payloads, taken_by=self.records.message_run, run_id=run_id)
        for payload in plan.duplicates:
            self.log.warning(
                "Message %s was taken by another run: deleted, not run again", payload["message_id"]
            )
            self._sqs_call("delete_message", payload)
        for payload in plan.release:
            self.log.info("Message %s is left for its own run", payload["message_id"])
            self._sqs_call("change_message_visibility", payload, VisibilityTimeout=0)
        if plan.claim is None:
            raise AirflowSkipException("Every message of this run's events was taken by another run")
        claim = plan.claim
        request = self.request_class.from_dict(claim["request"]).to_dict()
        keys = {
            "tenant_id": int(self.tenant_id),
            **{k: request.get(k) for k in ("service_provider_id", "bill_period_id", "session_id")},
        }
        if not self.records.claim_message(
            claim["message_id"], queue=claim["queue_url"], request=keys, run_id=run_id
        ):
            self._sqs_call("delete_message", claim)
            raise AirflowSkipException(f"Message {claim['message_id']} was taken by another run meanwhile")
        self._sqs_call("delete_message", claim)
        self.log.info("Took message %s: %s", claim["message_id"], request)
        return request

    def _sqs_call(self, method: str, payload: dict[str, Any], **extra: Any) -> None:
        """Best effort: a stale receipt handle only means the message comes back, and is deduplicated."""
        try:
            getattr(self.sqs, method)(
                QueueUrl=payload["queue_url"], ReceiptHandle=payload["receipt_handle"], **extra
            )
        except Exception as error:  # noqa: BLE001 - logged; the redelivery is handled by MessageId
            self.log.warning("%s of message %s failed: %s", method, payload["message_id"], error)


class OptimizationIntakeOperator(_SqsIntakeOperator):
    """The ``request`` task of a tenant DAG: the triggering SQS request, or a manual run's form.

    Returns the request dict of :class:`include.carrier_optimization.messaging.request.Request`.
    """

    request_class = Request

    def without_event(self, context: Context) -> dict[str, Any]:
        """A manual run: its trigger form is the request (an asset event without a message: skipped)."""
        run_type = getattr(context.get("dag_run"), "run_type", "manual")
        if str(getattr(run_type, "value", run_type)) == "asset_triggered":
            raise AirflowSkipException("Asset-triggered run without an SQS request: nothing to run")

        request = request_from_params(context["params"], tenant_id=int(self.tenant_id))
        self.log.info("Manual run: the form is the request %s", request)
        return request


class DeviceSyncIntakeOperator(_SqsIntakeOperator):
    """The ``request`` task of a device-sync DAG: the triggering device-sync request.

    Returns ``DeviceSyncRequest.to_dict()``; a run without a message is skipped.
    """

    request_class = DeviceSyncRequest
