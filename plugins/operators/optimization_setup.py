"""Operators that set a run up: the session, the cache check, the instance count and the queue rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from include.carrier_optimization import pipeline
from include.carrier_optimization.amop.checkpoints import DatabaseCheckpointStore
from include.carrier_optimization.amop.repository import AmopRepository, run_key
from include.carrier_optimization.config.tenants import ENGINES
from include.carrier_optimization.pipeline.progress import additional_json, is_auto_carrier_optimization
from include.carrier_optimization.reporting.notify import (
    ALREADY_RUNNING_SUBJECT,
    CACHE_ISSUE_SUBJECT,
    Email,
    sim_count_email,
    skipped_groups_email,
)
from plugins.compat import AirflowFailException, AirflowSkipException, Context
from plugins.operators.base import (
    AmopBaseOperator,
    check_batch,
    check_session,
    positive_int,
    session_request,
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


class OptimizationCacheCheckOperator(AmopBaseOperator):
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
        if self.checkpoints.get_conn() is None:
            return {"status": CACHE_ABSENT, "message": f"no connection {self.redis_conn_id!r}: database only"}
        ok, message = self.checkpoints.test_connection()
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
        batch_size = positive_int("batch_size", self.batch_size)
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
        batch = check_batch(self.batch)
        session = None if self.session is None else check_session(self.session)
        written = pipeline.write_queue_batch(self.db.get_conn(), **batch)
        if session is not None:
            queues = pipeline.queues_written(self.db.get_conn(), comm_group_id=batch["comm_group_id"])
            if queues["complete"]:
                self.progress(session, 40, queues["devices"])
        return written
