"""Operators of the tenant optimization DAG; each delegates one step to the library pipeline."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import Any

from include.carrier_optimization import pipeline
from include.carrier_optimization.amop.checkpoints import DatabaseCheckpointStore, checkpoint_key
from include.carrier_optimization.amop.repository import AmopRepository, run_key
from include.carrier_optimization.amop.throttle import ThrottledWriter
from include.carrier_optimization.config.tenants import ENGINES
from include.carrier_optimization.pipeline.progress import additional_json, is_auto_carrier_optimization
from include.carrier_optimization.reporting.notify import (
    ALREADY_RUNNING_SUBJECT,
    CACHE_ISSUE_SUBJECT,
    RESULTS_SUBJECT,
    Email,
    sim_count_email,
    skipped_groups_email,
)
from include.carrier_optimization.reporting.report import ReportError, build_report, store_result_file
from plugins.compat import AirflowFailException, AirflowSkipException, BaseOperator, Context
from plugins.hooks.amop import AmopDatabaseHook
from plugins.hooks.amop_api import AmopApiHook
from plugins.hooks.checkpoint import CheckpointHook
from plugins.hooks.email import NotificationEmailHook


def _positive_int(name: str, value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number <= 0:
        raise AirflowFailException(f"`{name}` must be a positive integer; got {value!r}")
    return number


SESSION_KEYS = ("session_id", "session_guid", "billing_period_id", "request")


def check_session(value: Any) -> dict[str, Any]:
    """The session step's dict (templated values are checked in ``execute``); anything else fails."""
    if not isinstance(value, dict) or any(k not in value for k in SESSION_KEYS):
        raise AirflowFailException(
            f"`session` must be the session step's dict with {', '.join(SESSION_KEYS)}; got {value!r:.200}"
        )
    return value


def session_request(session: dict[str, Any], *, name: str = "session['request']") -> pipeline.Request:
    """The request carried by the session dict; a malformed one fails without retries."""
    try:
        return pipeline.Request.from_dict(session["request"])
    except (AttributeError, TypeError, ValueError) as error:
        raise AirflowFailException(
            f"`{name}` must be the request dict ({error}); got {session['request']!r:.200}"
        ) from error


class AmopBaseOperator(BaseOperator):
    """Shared connections of the optimization steps: AMOP database, AMOP API, e-mail."""

    def __init__(
        self,
        *,
        amop_conn_id: str = AmopDatabaseHook.default_conn_name,
        amop_api_conn_id: str = AmopApiHook.default_conn_name,
        smtp_conn_id: str = NotificationEmailHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.amop_conn_id = amop_conn_id
        self.amop_api_conn_id = amop_api_conn_id
        self.smtp_conn_id = smtp_conn_id

    @cached_property
    def db(self) -> AmopDatabaseHook:
        """AMOP database hook (engine built on first use)."""
        return AmopDatabaseHook(amop_conn_id=self.amop_conn_id)

    @cached_property
    def api(self) -> AmopApiHook:
        """AMOP 2.0 progress hook."""
        return AmopApiHook(amop_api_conn_id=self.amop_api_conn_id)

    @cached_property
    def mail(self) -> NotificationEmailHook:
        """E-mail hook (SMTP or the local outbox)."""
        return NotificationEmailHook(smtp_conn_id=self.smtp_conn_id)

    def progress(self, session: dict[str, Any], value: int, device_count: int = 0) -> None:
        """Store the session's progress; report it to AMOP only for an auto carrier optimization."""
        pipeline.set_progress(self.db.get_conn(), session["session_id"], value)
        if not session.get("auto", True):
            self.log.info(
                "Session %s: progress %d%% stored; not sent to AMOP (the portal reports this request)",
                session["session_id"],
                value,
            )
            return
        self.api.send_progress(
            session_id=session["session_id"],
            session_guid=session.get("session_guid"),
            progress=value,
            device_count=device_count,
            additional=session.get("additional_json"),
        )


class OptimizationSessionOperator(AmopBaseOperator):
    """Resume the request's optimization session or start one (progress 0).

    While another optimization of the tenant runs, the request is refused: a warning e-mail goes to
    ``alert_emails`` and the task is skipped, so the run ends without touching the running one.
    Returns ``{session_id, session_guid, billing_period_id, resumed, request}``.

    :param request: the request dict of the intake step (templated; an XComArg in the DAG).
    :param alert_emails: recipients of warnings and alerts.
    """

    template_fields: Sequence[str] = ("request",)

    def __init__(self, *, request: Any, alert_emails: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.request = request
        self.alert_emails = alert_emails

    def execute(self, context: Context) -> dict[str, Any]:
        """Run the step (see the class docstring)."""
        if not isinstance(self.request, dict):
            raise AirflowFailException(f"`request` must be the intake step's dict; got {self.request!r:.200}")
        request = session_request({"request": self.request}, name="request")
        key = run_key(context["dag"].dag_id, context["run_id"])
        try:
            session = pipeline.open_session(self.db.get_conn(), request, run_key=key)
        except pipeline.RunRefused as refused:
            self.mail.send_or_log(
                Email(
                    tuple(self.alert_emails), ALREADY_RUNNING_SUBJECT, f"{refused}. Request: {self.request}"
                )
            )
            raise AirflowSkipException(str(refused)) from refused
        except pipeline.SessionFinished as finished:
            self.log.warning("%s", finished)
            raise AirflowSkipException(str(finished)) from finished
        except pipeline.RequestError as error:
            raise AirflowFailException(str(error)) from error
        session = {**session, **self._progress_fields(session, request)}
        self.progress(session, 0)
        return {**session, "request": request.to_dict()}

    def _progress_fields(self, session: dict[str, Any], request: pipeline.Request) -> dict[str, Any]:
        """``auto`` (legacy isAutoCarrierOptimization) and the ``additional_json`` sent with progress.

        ``additional_json`` is set when the request has no session id (it started the session), as the
        legacy builds ``additionalData``.
        """
        auto = is_auto_carrier_optimization(session_id=request.session_id, has_synced=request.has_synced)
        additional = None
        if request.session_id is None:
            period = AmopRepository(self.db.get_conn()).billing_period(session["billing_period_id"])
            additional = additional_json(
                tenant_id=request.tenant_id, service_provider_id=request.service_provider_id, period=period
            )
        return {"auto": auto, "additional_json": additional}


CACHE_OK, CACHE_DEGRADED, CACHE_ABSENT = "ok", "degraded", "absent"


class OptimizationCacheCheckOperator(BaseOperator):
    """Test the Redis cache before the run (legacy ``TestRedisConnection``).

    Returns ``{"status": "ok" | "degraded" | "absent", "message": ...}``: ``absent`` when no Redis
    connection is defined (database-only by design), ``degraded`` when it is defined but does not answer;
    the run then continues in database-only mode and the count step sends the configuration-issue
    e-mail once per instance. Never fails the run.

    :param redis_conn_id: Redis connection of the checkpoint store (default ``redis_default``).
    """

    def __init__(self, *, redis_conn_id: str | None = "redis_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.redis_conn_id = redis_conn_id

    def execute(self, context: Context) -> dict[str, str]:
        """Ping Redis once; report what the run will use."""
        hook = CheckpointHook(redis_conn_id=self.redis_conn_id)
        if hook.get_conn() is None:
            return {"status": CACHE_ABSENT, "message": f"no connection {self.redis_conn_id!r}: database only"}
        ok, message = hook.test_connection()
        if not ok:
            self.log.warning("Redis configured but unreachable, continuing database-only: %s", message)
        return {"status": CACHE_OK if ok else CACHE_DEGRADED, "message": message}


class OptimizationCountOperator(AmopBaseOperator):
    """Start the instance, validate plans, build comm groups, snapshot and count SIMs (progress 30).

    Returns ``{instance_id, device_count, groups, batches, skipped}``: the comm group ids, the batch
    descriptors (``comm_group_id, start, stop``) the mapped tasks fan out over and the comm groups left
    out (over the rate plan limit; the "Rate Plans limit exceeded" e-mail goes out once per instance, as
    does "SIM Counts not Expected" when fewer SIMs were set up than the provider has). Invalid
    plans end the instance ``CompleteWithErrors``, send the ``ErrorMessage`` and fail the task.

    :param session: the session step's dict (templated; an XComArg in the DAG).
    :param engine: ``best``, ``optimal`` or ``legacy`` (templated).
    :param batch_size: rate plan sequences per batch; raised so batches stay within ``max_batches``
        (templated).
    :param max_batches: most mapped batches per run (default 128).
    :param cache_check_task_id: task whose result says whether Redis is configured but unreachable; then
        the configuration-issue e-mail naming session and instance goes out once per instance (pulled at
        run time, so the cache check adds no dependency to this step's trigger rule).
    :param alert_emails: recipients of that e-mail.
    """

    template_fields: Sequence[str] = ("batch_size", "engine", "session")

    def __init__(
        self,
        *,
        session: Any,
        engine: str = "best",
        batch_size: Any = 500,
        max_batches: int = 128,
        cache_check_task_id: str | None = "cache_check",
        alert_emails: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.session = session
        self.engine = engine
        self.batch_size = batch_size
        self.max_batches = max_batches
        self.cache_check_task_id = cache_check_task_id
        self.alert_emails = alert_emails

    def execute(self, context: Context) -> dict[str, Any]:
        """Run the step (see the class docstring)."""
        if self.engine not in ENGINES:
            raise AirflowFailException(f"`engine` must be one of {', '.join(ENGINES)}; got {self.engine!r}")
        batch_size = _positive_int("batch_size", self.batch_size)
        session = check_session(self.session)
        request = session_request(session)
        plan = pipeline.prepare_instance(
            self.db.get_conn(),
            session_id=session["session_id"],
            request=request,
            batch_size=batch_size,
            engine_name=self.engine,
            max_batches=self.max_batches,
        )
        if plan.error:  # the failure callback reports the instance's message to AMOP and alerts
            raise AirflowFailException(f"Instance {plan.instance_id}: {plan.error}")
        cache = (
            context["ti"].xcom_pull(task_ids=self.cache_check_task_id) if self.cache_check_task_id else None
        )
        if isinstance(cache, dict) and cache.get("status") == CACHE_DEGRADED:
            self._alert_cache_issue(session, plan.instance_id, str(cache.get("message")))
        self._alert_set_up(plan)
        self.progress(self.session, 30, plan.device_count)
        if not plan.batches:  # no sequence queues to write: the instance's queues are complete
            self.progress(self.session, 40, plan.device_count)
        self.log.info(
            "Instance %s: %d SIMs in %d comm groups, %d queue batches",
            plan.instance_id,
            plan.device_count,
            len(plan.groups),
            len(plan.batches),
        )
        return {
            "instance_id": plan.instance_id,
            "device_count": plan.device_count,
            "groups": [g["comm_group_id"] for g in plan.groups],
            "batches": plan.batches,
            "skipped": plan.skipped,
        }

    def _alert_cache_issue(self, session: dict[str, Any], instance_id: int, message: str) -> None:
        """The legacy configuration-issue e-mail, exactly once per instance."""
        body = (
            f"Redis is configured but unreachable ({message}). Optimization session {session['session_id']}, "
            f"instance {instance_id} continues without the cache (database-only checkpoints)."
        )
        self._alert_once(
            f"redis:{instance_id}",
            Email(tuple(self.alert_emails), CACHE_ISSUE_SUBJECT.format(ou="Carrier Optimization"), body),
        )

    def _alert_set_up(self, plan: pipeline.InstancePlan) -> None:
        """The legacy set-up e-mails, once per instance: skipped comm groups, SIM counts not expected."""
        to = tuple(self.alert_emails)
        if plan.skipped:
            email = skipped_groups_email(to, instance_id=plan.instance_id, skipped=plan.skipped)
            self._alert_once(f"skipped:{plan.instance_id}", email)
        if plan.sim_counts:
            email = sim_count_email(to, instance_id=plan.instance_id, **plan.sim_counts)
            self._alert_once(f"sims:{plan.instance_id}", email)

    def _alert_once(self, name: str, email: Email) -> None:
        """Send ``email`` unless already sent for ``name`` (a marker in the database)."""
        store = DatabaseCheckpointStore(self.db.get_conn())
        marker = f"carrier_opt:alert:{name}"
        if store.get(marker) is not None:
            return
        self.mail.send_or_log(email)  # undeliverable: the alert goes to the task log
        store.put(marker, {"sent": True})


class OptimizationQueueInsertOperator(AmopBaseOperator):
    """Bulk-insert the queue rows and queue-rate-plan rows of one batch of rate plan sequences.

    PostgreSQL uses ``COPY``, SQLite ``executemany``, SQL Server ``bulk_copy`` into a staging table and
    one set-based insert. One transaction per batch; rows already present are kept, so a retried or
    cleared batch writes no duplicates. The batch that completes the instance's queues reports
    progress 40 (when ``session`` is given). Returns the row counts written.

    :param batch: ``{"comm_group_id", "start", "stop"}`` (templated; mapped in the DAG).
    :param session: the session step's dict, for progress 40 (templated; default ``None``: no report).
    """

    template_fields: Sequence[str] = ("batch", "session")
    ui_color = "#cfe3ff"

    def __init__(self, *, batch: Any, session: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batch = batch
        self.session = session

    def execute(self, context: Context) -> dict[str, int]:
        """Run the step (see the class docstring)."""
        batch = _batch(self.batch)
        session = None if self.session is None else check_session(self.session)
        written = pipeline.write_queue_batch(self.db.get_conn(), **batch)
        if session is not None:
            queues = pipeline.queues_written(self.db.get_conn(), comm_group_id=batch["comm_group_id"])
            if queues["complete"]:
                self.progress(session, 40, queues["devices"])
        return written


def _batch(batch: Any) -> dict[str, int]:
    if not isinstance(batch, dict) or set(batch) != {"comm_group_id", "start", "stop"}:
        raise AirflowFailException(f"`batch` must be {{comm_group_id, start, stop}}; got {batch!r}")
    return {k: int(v) for k, v in batch.items()}


class OptimizationLegacyOperator(AmopBaseOperator):
    """Evaluate one batch of sequence queues with the legacy engine, record if better, checkpoint.

    Works ``queues_per_instance`` queues at a time, each chunk committed with its queues' end times (the
    durable cursor); the cursor also goes to the checkpoint store (Redis with the database as fallback,
    at most every 2 s) and the comm group's device list is read through the Redis cache. When the time
    budget runs out the task saves its checkpoint and defers itself on a short timer, continuing in a
    fresh worker slot from the checkpoint: the Airflow form of the Lambda timeout continuation. The
    budget is ``time_budget_seconds``, capped at 90 % of ``execution_timeout`` when that is set.

    :param batch: ``{"comm_group_id", "start", "stop"}`` (templated; mapped in the DAG).
    :param queues_per_instance: queues per record-if-better chunk (templated).
    :param time_budget_seconds: seconds of work before deferring (templated).
    :param redis_conn_id: Redis connection of the checkpoint store (default ``redis_default``).
    """

    template_fields: Sequence[str] = ("batch", "queues_per_instance", "time_budget_seconds")

    def __init__(
        self,
        *,
        batch: Any,
        queues_per_instance: Any = 5,
        time_budget_seconds: Any = 600,
        redis_conn_id: str | None = "redis_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.batch = batch
        self.queues_per_instance = queues_per_instance
        self.time_budget_seconds = time_budget_seconds
        self.redis_conn_id = redis_conn_id

    def _degraded(self, error: BaseException) -> None:
        # The legacy optimizer only logs a lost cache (the count step sends the one e-mail).
        self.log.warning("Redis went away mid-run (%s); checkpoints continue in the database", error)

    def _budget(self) -> float:
        budget = float(_positive_int("time_budget_seconds", self.time_budget_seconds))
        if self.execution_timeout is not None:
            budget = min(budget, 0.9 * self.execution_timeout.total_seconds())
        return budget

    def execute(self, context: Context, event: Any = None, resumes: int = 0) -> dict[str, Any]:
        """Run the step (see the class docstring)."""
        batch = _batch(self.batch)
        ti = context["ti"]
        key = checkpoint_key(ti.dag_id, ti.run_id, ti.task_id, ti.map_index)
        hook = CheckpointHook(redis_conn_id=self.redis_conn_id)
        engine = self.db.get_conn()
        store = hook.get_store(engine, on_degrade=self._degraded)
        saved = store.get(key) or {}
        if saved:
            self.log.info("Resuming batch %s from checkpoint: %s queues done", batch, saved.get("cursor"))
        deadline = time.monotonic() + self._budget()
        cache = hook.get_device_cache()
        progress = pipeline.run_optimizer_batch(
            engine,
            queues_per_instance=_positive_int("queues_per_instance", self.queues_per_instance),
            deadline=deadline,
            on_chunk=ThrottledWriter(lambda cursor: store.put(key, {"cursor": cursor, "batch": batch})),
            load=lambda: pipeline.load_group(engine, batch["comm_group_id"], cache=cache),
            **batch,
        )
        if not progress.done:
            store.put(key, {"cursor": progress.cursor, "batch": batch})
            self.log.info("Time budget used after %d queues; deferring to continue", progress.cursor)
            from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger

            self.defer(
                trigger=TimeDeltaTrigger(timedelta(seconds=1)),
                method_name="execute",
                kwargs={"resumes": resumes + 1},
                timeout=timedelta(hours=1),
            )
        store.delete(key)
        return {**batch, "evaluated": progress.evaluated, "recorded": progress.recorded, "resumes": resumes}


class OptimizationEngineOperator(AmopBaseOperator):
    """Solve one comm group with the optimal engine and record it as the group's engine queue.

    Skipped when the run's engine is ``legacy``. Returns cost, lower bound and gap of the group.

    :param comm_group_id: the comm group (templated; mapped in the DAG).
    :param engine: the run's engine choice (templated).
    :param time_limit_seconds: limit handed to the engine (templated, default 600).
    """

    template_fields: Sequence[str] = ("comm_group_id", "engine", "time_limit_seconds")

    def __init__(self, *, comm_group_id: Any, engine: str = "best", time_limit_seconds: Any = 600, **kwargs):
        super().__init__(**kwargs)
        self.comm_group_id = comm_group_id
        self.engine = engine
        self.time_limit_seconds = time_limit_seconds

    def execute(self, context: Context) -> dict[str, Any]:
        """Run the step (see the class docstring)."""
        if self.engine == "legacy":
            raise AirflowSkipException("engine=legacy: the optimal engine does not run")
        from include.carrier_optimization.core.engines.optimal import solve_optimal

        return pipeline.run_engine_for_group(
            self.db.get_conn(),
            comm_group_id=_positive_int("comm_group_id", self.comm_group_id),
            solve=solve_optimal,
            time_limit=float(_positive_int("time_limit_seconds", self.time_limit_seconds)),
        )


class OptimizationWinnersOperator(AmopBaseOperator):
    """Pick each comm group's winner, close stragglers, remove losing rows, finish the instance (progress 50).

    :param session: the session step's dict (templated).
    :param count: the count step's dict (templated).
    """

    template_fields: Sequence[str] = ("count", "session")

    def __init__(self, *, session: Any, count: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.session = session
        self.count = count

    def execute(self, context: Context) -> dict[str, Any]:
        """Run the step (see the class docstring)."""
        check_session(self.session)
        count = self.count.get("instance_id") if isinstance(self.count, dict) else self.count
        instance_id = _positive_int("count['instance_id']", count)
        summary = pipeline.select_winners(self.db.get_conn(), instance_id=instance_id)
        pipeline.forget_setup_facts(self.db.get_conn(), instance_id)
        self.progress(self.session, 50, summary["devices"])
        return {k: v for k, v in summary.items() if k != "groups"} | {"groups": len(summary["groups"])}


class OptimizationReportOperator(AmopBaseOperator):
    """Build the result report, store it, upload it, e-mail it, and report progress 100.

    The report (:func:`reporting.report.build_report`) is an xlsx with a statistics
    sheet per communication plan and a device assignment sheet, a savings chart (PNG) and the e-mail
    summary. The xlsx is stored in ``OptimizationInstanceResultFile`` (replacing the instance's previous
    row); with ``s3_bucket`` set both files are uploaded (overwritten on a rerun); the result e-mail
    carries both as attachments (the xlsx only up to ``max_attachment_bytes``). Above Excel's row limit the
    device assignments come as a gzip CSV beside the xlsx: stored, uploaded and attached the same way.

    A report failure fails this task only: the winners step has already written the result rows and
    ended the instance ``CompleteWithSuccess``, and this task never changes the instance status, so the
    optimization is not lost and the report can be retried or cleared on its own. An instance without
    winners fails at once (:class:`AirflowFailException`, no retries); database, S3 or rendering errors
    raise and are retried.

    :param session: the session step's dict (templated).
    :param summary: the winners step's summary; its ``instance_id`` is reported (templated).
    :param tenant_name: shown in the subject.
    :param recipients: result e-mail recipients.
    :param s3_bucket: bucket receiving the xlsx and the PNG (templated; empty: no upload).
    :param s3_key_prefix: key prefix (templated, default ``carrier-optimization/reports``); the files go
        to ``<prefix>/<dag_id>/session-<session_id>/instance-<instance_id>/<file>``.
    :param aws_conn_id: AWS connection of the upload (default ``aws_default``).
    :param max_attachment_bytes: largest xlsx or CSV attached to the e-mail (default 10 MiB, the SES limit).
    """

    template_fields: Sequence[str] = ("s3_bucket", "s3_key_prefix", "session", "summary")

    def __init__(
        self,
        *,
        session: Any,
        summary: Any,
        tenant_name: str,
        recipients: Sequence[str] = (),
        s3_bucket: str | None = None,
        s3_key_prefix: str = "carrier-optimization/reports",
        aws_conn_id: str | None = "aws_default",
        max_attachment_bytes: int = 10 * 1024 * 1024,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.session = session
        self.summary = summary
        self.tenant_name = tenant_name
        self.recipients = recipients
        self.s3_bucket = s3_bucket
        self.s3_key_prefix = s3_key_prefix
        self.aws_conn_id = aws_conn_id
        self.max_attachment_bytes = max_attachment_bytes

    def execute(self, context: Context) -> dict[str, Any]:
        """Run the step (see the class docstring)."""
        instance_id = _positive_int("summary['instance_id']", (self.summary or {}).get("instance_id"))
        engine = self.db.get_conn()
        try:
            result = build_report(engine, instance_id)
        except ReportError as error:
            raise AirflowFailException(str(error)) from error
        file_id = store_result_file(engine, instance_id, result.xlsx, assignments_csv=result.assignments_csv)
        uploaded: list[str] = []
        if self.s3_bucket:
            prefix = (
                f"{self.s3_key_prefix.strip('/')}/{context['dag'].dag_id}/"
                f"session-{self.session['session_id']}/instance-{instance_id}"
            )
            uploaded = upload_report(
                result.attachments, bucket=self.s3_bucket, key_prefix=prefix, aws_conn_id=self.aws_conn_id
            )
        body, attachments = result.summary_text, result.attachments
        for name, content in result.attachments:
            if name != result.chart_name and len(content) > self.max_attachment_bytes:
                attachments = tuple(a for a in attachments if a[0] != name)
                where = [uri for uri in uploaded if uri.endswith("/" + name)]
                body += (
                    f"\n\n{name} ({len(content):,} bytes) is too large to attach; it is stored as result "
                    f"file {file_id}" + (f" and at {where[0]}" if where else "") + "."
                )
        self.log.info("Result report of instance %s\n%s", instance_id, result.summary_text)
        where = self.mail.send(
            Email(tuple(self.recipients), RESULTS_SUBJECT.format(tenant=self.tenant_name), body, attachments)
        )
        self.progress(self.session, 100, int(result.figures["devices"]))
        return {
            "instance_id": instance_id,
            "result_file_id": file_id,
            "email": where,
            "s3": uploaded,
            "savings": result.figures["savings"],
        }


def upload_report(
    files: Sequence[tuple[str, bytes]],
    *,
    bucket: str,
    key_prefix: str,
    aws_conn_id: str | None = "aws_default",
) -> list[str]:
    """Upload ``(name, bytes)`` pairs to ``s3://<bucket>/<key_prefix>/<name>``, overwriting; return URIs."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    hook = S3Hook(aws_conn_id=aws_conn_id)
    uris = []
    for name, content in files:
        key = f"{key_prefix.strip('/')}/{name}"
        hook.load_bytes(content, key=key, bucket_name=bucket, replace=True)
        uris.append(f"s3://{bucket}/{key}")
    return uris
