"""Operators of device sync: the optimization's sync request and the steps of the device-sync DAG."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from typing import Any

from include.carrier_optimization.amop.checkpoints import DatabaseCheckpointStore, checkpoint_key
from include.carrier_optimization.amop.device_sync import clear_staging, session_guid, stop_session
from include.carrier_optimization.messaging.queues import resolve_queue_url
from include.carrier_optimization.messaging.sync_messages import (
    LAST_SYNC_DATE,
    NEXT_STEP_USAGE,
    DeviceSyncRequest,
    build_completion_attributes,
    build_sync_request_attributes,
    legacy_last_sync_date,
)
from include.carrier_optimization.sync.carriers.jasper_payloads import CarrierApiError
from include.carrier_optimization.sync.merge import merge_staging
from include.carrier_optimization.sync.session import completion_target, sync_error_email
from include.carrier_optimization.sync.staging import sync_pages
from plugins.compat import AirflowFailException, AirflowSkipException, Context
from plugins.hooks.jasper import JasperHook
from plugins.operators.base import AmopBaseOperator, check_session, session_request


class DeviceSyncRequestOperator(AmopBaseOperator):
    """Clear the provider's staging tables and publish the device-sync request (progress 20).

    Skipped when the request says the devices are synced (``HasSynced``). The message carries the
    legacy attributes (``PageNumber``, ``LastSyncDate`` as ISO, ``ServiceProviderId``, ``NextStep``,
    ``OptimizationSessionId``) plus ``TenantId`` and ``BillPeriodId``, so the sync worker's completion
    message can name the session it continues. Returns the SQS ``MessageId``.

    :param session: the session step's dict (templated).
    :param sqs_queue: name or URL of the device-sync queue (templated).
    :param aws_conn_id: Airflow AWS connection (default ``aws_default``).
    """

    template_fields: Sequence[str] = ("session", "sqs_queue")

    def __init__(
        self, *, session: Any, sqs_queue: str, aws_conn_id: str | None = "aws_default", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.session = session
        self.sqs_queue = sqs_queue
        self.aws_conn_id = aws_conn_id

    def execute(self, context: Context) -> str:
        """Clear staging and publish the sync request, or skip when synced."""
        session = check_session(self.session)
        request = session_request(session)
        if not self.sqs_queue:
            raise AirflowFailException("`sqs_queue` must name the device-sync queue (a name or a URL)")
        if request.has_synced:
            raise AirflowSkipException("HasSynced: the devices are synced, no sync needed")
        self.progress(self.session, 20)
        clear_staging(self.db.get_conn(), request.service_provider_id)
        attributes = build_sync_request_attributes(
            service_provider_id=request.service_provider_id,
            last_sync_date=legacy_last_sync_date(dt.datetime.now(dt.UTC)),
            next_step=NEXT_STEP_USAGE,
            session_id=self.session["session_id"],
            tenant_id=request.tenant_id,
            bill_period_id=self.session["billing_period_id"],
        )
        url = resolve_queue_url(self.sqs.conn, self.sqs_queue)
        since = attributes[LAST_SYNC_DATE]["StringValue"]
        response = self.sqs.send_message(
            queue_url=url,
            message_body=f"Next page number is 1 for the last sync date {since}",
            message_attributes=attributes,
        )
        self.log.info(
            "Device-sync request %s sent for session %s", response["MessageId"], self.session["session_id"]
        )
        return response["MessageId"]


# -- the device-sync DAG (worker side, docs/architecture.md) ---------------------------------------------


def device_sync_request(value: Any) -> DeviceSyncRequest:
    """The sensor's request dict as a ``DeviceSyncRequest``; anything else fails without retries."""
    try:
        return DeviceSyncRequest.from_dict(value)
    except (TypeError, ValueError) as error:
        raise AirflowFailException(
            f"`request` must be the sensor's device-sync request dict: {error}"
        ) from error


class DeviceSyncBaseOperator(AmopBaseOperator):
    """Shared parts of the device-sync steps: the request, the checkpoint store, error records.

    Each step keeps what it must remember across retries and clears in the ``OptimizationCheckpoint``
    table under keys of its run, and records the error that failed it (name ``error``) so the failure
    step can say what went wrong.

    :param request: the sensor's device-sync request dict (templated; an XComArg in the DAG).
    """

    template_fields: Sequence[str] = ("request",)

    def __init__(self, *, request: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.request = request

    def store(self) -> DatabaseCheckpointStore:
        """The database checkpoint store (survives retries, clears and a missing Redis)."""
        return DatabaseCheckpointStore(self.db.get_conn())

    def key(self, context: Context, name: str) -> str:
        """Checkpoint key ``name`` of this task instance."""
        ti = context["ti"]
        return checkpoint_key(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, name=name)

    def record_error(self, context: Context, error: BaseException) -> None:
        """Keep ``error``'s text for the failure step (best effort)."""
        try:
            self.store().put(
                self.key(context, "error"),
                {"task_id": self.task_id, "error": f"{type(error).__name__}: {error}"[:4000]},
            )
        except Exception:
            self.log.exception("Could not record the error of %s", self.task_id)


class DeviceSyncPagesOperator(DeviceSyncBaseOperator):
    """Page the carrier API into the staging tables, resuming from the last completed page.

    A new request starting at page 1 clears the provider's staging tables first; each page's devices
    and cycle-to-date usage are staged in one transaction keyed by (provider, ICCID), then the page is
    checkpointed. A retried or cleared task continues after the last completed page. After
    ``max_pages_per_try`` pages or ``time_budget_seconds`` the task checkpoints and defers itself on a
    short timer, continuing in a fresh worker slot (the legacy ``MaxPagesToProcess`` re-enqueue).
    Carrier errors after the client's retries fail the try (Airflow retries it); rejected credentials
    fail the task at once. Returns ``{next_page, pages, pages_this_call, devices, done, resumed_from,
    resumes}``.

    :param request: the sensor's device-sync request dict (templated).
    :param carrier_api_conn_ids: ``{service provider id (text): http connection id}``; providers not
        listed use ``jasper_default``.
    :param max_pages_per_try: pages per worker slot before deferring (default 500).
    :param time_budget_seconds: seconds of paging per worker slot before deferring (default 900).
    :param usage_workers: threads for per-device usage calls (default 4).
    """

    ui_color = "#cde8c0"

    def __init__(
        self,
        *,
        request: Any,
        carrier_api_conn_ids: dict[str, str] | None = None,
        max_pages_per_try: int = 500,
        time_budget_seconds: float = 900,
        usage_workers: int = 4,
        **kwargs: Any,
    ) -> None:
        super().__init__(request=request, **kwargs)
        self.carrier_api_conn_ids = carrier_api_conn_ids or {}
        self.max_pages_per_try = max_pages_per_try
        self.time_budget_seconds = time_budget_seconds
        self.usage_workers = usage_workers

    def conn_id_for(self, service_provider_id: int) -> str:
        """The carrier API connection of a provider."""
        return self.carrier_api_conn_ids.get(str(service_provider_id), JasperHook.default_conn_name)

    def execute(self, context: Context) -> dict[str, Any]:
        """Run the step (see the class docstring)."""
        return self.work(context, resumes=0)

    def work(self, context: Context, *, resumes: int) -> dict[str, Any]:
        """Page from the checkpoint until done or out of pages or time (then defer to continue)."""
        request = device_sync_request(self.request)
        budget = self.time_budget(float(self.time_budget_seconds))
        try:
            client = JasperHook(jasper_conn_id=self.conn_id_for(request.service_provider_id)).get_conn()
            result = sync_pages(
                self.db.get_conn(),
                client,
                request,
                store=self.store(),
                key=self.key(context, "pages"),
                max_pages=self.max_pages_per_try,
                deadline=time.monotonic() + budget,
                usage_workers=self.usage_workers,
            )
        except CarrierApiError as error:
            self.record_error(context, error)
            if error.status in (401, 403):
                raise AirflowFailException(str(error)) from error
            raise
        except Exception as error:
            self.record_error(context, error)
            raise
        if not result.done:
            self.log.info("Paged to page %d; deferring to continue in a fresh slot", result.next_page - 1)
            self.defer_to_continue(resumes)
        return {**result.to_dict(), "resumes": resumes}


class DeviceSyncMergeOperator(DeviceSyncBaseOperator):
    """Merge the provider's staging rows into the ``Device`` table in one transaction.

    New ICCIDs are inserted for ``tenant_id``; changed status, comm plan, rate plan and usage are
    updated with ``ModifiedDate``. A failure rolls back the whole merge; a re-run changes nothing more.
    Returns the counts (``staged, inserted, updated, unchanged, without_usage, unknown_rate_plans``).

    :param request: the sensor's device-sync request dict (templated).
    :param tenant_id: the tenant new devices belong to.
    """

    ui_color = "#cde8c0"

    def __init__(self, *, request: Any, tenant_id: int, **kwargs: Any) -> None:
        super().__init__(request=request, **kwargs)
        self.tenant_id = tenant_id

    def execute(self, context: Context) -> dict[str, Any]:
        """Run the step (see the class docstring)."""
        request = device_sync_request(self.request)
        try:
            result = merge_staging(
                self.db.get_conn(),
                service_provider_id=request.service_provider_id,
                tenant_id=int(self.tenant_id),
            )
        except Exception as error:
            self.record_error(context, error)
            raise
        return result.to_dict()


class DeviceSyncCompleteOperator(DeviceSyncBaseOperator):
    """Publish the completion message: the optimization continues with ``HasSynced=True``.

    The message goes to the tenant's optimization request queue with the legacy attributes
    (``ServiceProviderId``, ``TenantId``, ``BillPeriodId`` of the request, ``OptimizationSessionId``,
    ``HasSynced=True``, ``BillYear``, ``BillMonth``), which the optimization DAG's ``sync_wait`` takes.
    It is published once per request: a retried or cleared task finds the message id in its checkpoint
    and does not publish again. Skipped when the request has no session (a plain device sync) or a
    ``NextStep`` this package does not continue. Returns ``{message_id, session_id, bill_period_id}``.

    :param request: the sensor's device-sync request dict (templated).
    :param sqs_queue: name or URL of the optimization request queue (templated).
    :param tenant_id: the tenant (used when the request carries no ``TenantId``).
    :param aws_conn_id: Airflow AWS connection (default ``aws_default``).
    """

    template_fields: Sequence[str] = ("request", "sqs_queue")
    ui_color = "#cde8c0"

    def __init__(
        self,
        *,
        request: Any,
        sqs_queue: str,
        tenant_id: int | None = None,
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(request=request, **kwargs)
        self.request = request
        self.sqs_queue = sqs_queue
        self.tenant_id = tenant_id
        self.aws_conn_id = aws_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        """Run the step (see the class docstring)."""
        request = device_sync_request(self.request)
        if request.session_id is None:
            raise AirflowSkipException(
                "The request has no OptimizationSessionId: no optimization to continue"
            )
        if request.next_step != NEXT_STEP_USAGE:
            raise AirflowSkipException(f"NextStep {request.next_step} is not continued by this package")
        store, key = self.store(), self.key(context, "completion")
        done = store.get(key)
        if done and done.get("request_message_id") == request.message_id:
            self.log.info(
                "Completion %s already published for request %s", done["message_id"], request.message_id
            )
            return {k: done[k] for k in ("message_id", "session_id", "bill_period_id")}
        try:
            target = completion_target(
                self.db.get_conn(), request, tenant_id=None if self.tenant_id is None else int(self.tenant_id)
            )
            attributes = build_completion_attributes(
                request,
                tenant_id=target["tenant_id"],
                bill_period_id=target["bill_period_id"],
                bill_year=target["bill_year"],
                bill_month=target["bill_month"],
            )
            url = resolve_queue_url(self.sqs.conn, self.sqs_queue)
            response = self.sqs.send_message(
                queue_url=url,
                message_body=(
                    f"Devices synced for session {request.session_id}: carrier to optimize is for billing "
                    f"period {target['bill_year']}/{target['bill_month']}"
                ),
                message_attributes=attributes,
            )
        except Exception as error:
            self.record_error(context, error)
            raise
        result = {
            "message_id": response["MessageId"],
            "session_id": request.session_id,
            "bill_period_id": target["bill_period_id"],
        }
        store.put(key, {**result, "request_message_id": request.message_id})
        self.log.info("Completion %s published for session %s", response["MessageId"], request.session_id)
        return result


class DeviceSyncFailedOperator(DeviceSyncBaseOperator):
    """After a sync step failed for good: the sync-error e-mail, and the session stopped.

    Runs with trigger rule ``one_failed`` (after the last retry of a failed step). With a session, the
    session is deleted and made inactive and its unfinished instances end ``CompleteWithErrors`` (the
    legacy ``ProcessStopCarrierOptimization``), the error goes to the AMOP API and the e-mail to
    ``alert_emails``; without one, the legacy "Error in Device Sync for {provider}" e-mail is sent.
    The error text is the one the failed step recorded. The task then fails itself (no retries): it
    is the run's leaf, so the run ends ``failed`` (Airflow's watcher pattern).

    :param request: the sensor's device-sync request dict, ``None`` when the sensor itself failed
        (templated).
    :param failed_task_ids: the steps whose recorded errors to report.
    :param provider_names: ``{service provider id (text): display name}``.
    :param alert_emails: recipients of the sync-error e-mail.
    :param environment: environment name appended to the subject outside production (default ``None``).
    """

    ui_color = "#f4c6c6"

    def __init__(
        self,
        *,
        request: Any,
        failed_task_ids: Sequence[str] = (),
        provider_names: dict[str, str] | None = None,
        alert_emails: Sequence[str] = (),
        environment: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(request=request, **kwargs)
        self.failed_task_ids = failed_task_ids
        self.provider_names = provider_names or {}
        self.alert_emails = alert_emails
        self.environment = environment

    def _errors(self, context: Context) -> str:
        ti = context["ti"]
        store, errors = self.store(), []
        for task_id in self.failed_task_ids:
            saved = store.get(checkpoint_key(ti.dag_id, ti.run_id, task_id, name="error"))
            if saved:
                errors.append(f"{task_id}: {saved['error']}")
        return "; ".join(errors) or f"a device-sync step of run {ti.run_id} failed (see its log)"

    def execute(self, context: Context) -> None:
        """Run the step (see the class docstring)."""
        error = self._errors(context)
        request = None
        if isinstance(self.request, dict):
            try:
                request = DeviceSyncRequest.from_dict(self.request)
            except ValueError:
                self.log.warning("Request %r is not a device-sync request", self.request)
        provider = "the carrier account"
        session_id = None
        stopped = False
        if request is not None:
            provider = self.provider_names.get(
                str(request.service_provider_id), f"service provider {request.service_provider_id}"
            )
            session_id = request.session_id
        if session_id is not None:
            stopped = stop_session(self.db.get_conn(), session_id, error=f"Device sync failed: {error}")
            try:
                session = session_guid(self.db.get_conn(), session_id)
                self.api.send_error(
                    session_id=session_id, session_guid=session, message=f"Device sync failed: {error}"
                )
            except Exception:
                self.log.exception("Could not report the sync error of session %s to AMOP", session_id)
        where = self.mail.send_or_log(  # undeliverable: the alert goes to the task log
            sync_error_email(
                recipients=tuple(self.alert_emails),
                provider_name=provider,
                error=error,
                session_id=session_id,
                request=self.request if isinstance(self.request, dict) else None,
                environment=self.environment,
            )
        )
        self.log.error(
            "Device sync failed (%s); session %s stopped: %s; e-mail: %s", error, session_id, stopped, where
        )
        # The watcher pattern: this task is a leaf, so failing it (without retries) fails the run.
        raise AirflowFailException(
            f"Device sync failed: {error}. Session {session_id} stopped: {stopped}; e-mail: {where}"
        )
