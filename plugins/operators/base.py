"""The AMOP base operator: lazy hooks, progress, templated-value checks and the time-budget deferral."""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger  # same path on 3.0.6 and 3.3

from include.carrier_optimization import pipeline
from plugins.compat import AirflowFailException, BaseOperator, Context
from plugins.hooks.amop import AmopDatabaseHook
from plugins.hooks.amop_api import AmopApiHook
from plugins.hooks.checkpoint import CheckpointHook
from plugins.hooks.email import NotificationEmailHook

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.sqs import SqsHook

SESSION_KEYS = ("session_id", "session_guid", "billing_period_id", "request")
BATCH_KEYS = {"comm_group_id", "start", "stop"}
#: The short timer a task defers on when its time budget is used: it continues in a fresh worker slot.
RESUME_AFTER = timedelta(seconds=1)
RESUME_TIMEOUT = timedelta(hours=1)


def positive_int(name: str, value: Any) -> int:
    """``value`` as an integer > 0; anything else fails without retries, naming the parameter."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number <= 0:
        raise AirflowFailException(f"`{name}` must be a positive integer; got {value!r}")
    return number


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


def check_batch(batch: Any) -> dict[str, int]:
    """A batch descriptor of the count step, ``{comm_group_id, start, stop}``; anything else fails."""
    if not isinstance(batch, dict) or set(batch) != BATCH_KEYS:
        raise AirflowFailException(f"`batch` must be {{comm_group_id, start, stop}}; got {batch!r}")
    return {k: int(v) for k, v in batch.items()}


class AmopBaseOperator(BaseOperator):
    """Shared parts of the optimization and device-sync steps (docs/architecture.md).

    Hooks are built on first use (construction does no I/O): the AMOP database (``db``), the AMOP 2.0
    progress API (``api``), e-mail (``mail``), the checkpoint store's Redis (``checkpoints``, on
    ``redis_conn_id``) and SQS (``sqs``, on ``aws_conn_id``); the operators that use the last two take
    their connection ids as parameters. A step with a time budget runs :meth:`work`, which calls
    :meth:`defer_to_continue` when the budget is used; Airflow then calls :meth:`execute_complete` in a
    fresh worker slot, which runs :meth:`work` again.

    :param amop_conn_id: AMOP database connection (default ``amop_db``).
    :param amop_api_conn_id: AMOP 2.0 API connection (default ``amop_api``).
    :param smtp_conn_id: e-mail connection (default ``smtp_notifications``).
    """

    #: Connection of :attr:`sqs` (operators that publish take it as a parameter).
    aws_conn_id: str | None = "aws_default"
    #: Connection of :attr:`checkpoints` (operators that checkpoint take it as a parameter).
    redis_conn_id: str | None = CheckpointHook.default_conn_name

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

    @cached_property
    def checkpoints(self) -> CheckpointHook:
        """Checkpoint hook: the checkpoint store and the device cache (Redis optional)."""
        return CheckpointHook(redis_conn_id=self.redis_conn_id)

    @cached_property
    def sqs(self) -> SqsHook:
        """The provider's SQS hook."""
        # Imported here: boto3 (~275 modules) would otherwise load when the device-sync DAG is parsed.
        from airflow.providers.amazon.aws.hooks.sqs import SqsHook

        return SqsHook(aws_conn_id=self.aws_conn_id)

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

    def time_budget(self, seconds: float) -> float:
        """``seconds`` of work before deferring, capped at 90 % of ``execution_timeout`` when that is set."""
        if self.execution_timeout is not None:
            return min(seconds, 0.9 * self.execution_timeout.total_seconds())
        return seconds

    def work(self, context: Context, *, resumes: int) -> Any:
        """One slice of a time-budgeted step (``resumes``: deferrals so far); such steps define it."""
        raise NotImplementedError(f"{type(self).__name__} has no time-budgeted work")

    def defer_to_continue(self, resumes: int) -> NoReturn:
        """Defer on a short timer; :meth:`execute_complete` continues the work in a fresh worker slot."""
        self.defer(
            trigger=TimeDeltaTrigger(RESUME_AFTER),
            method_name="execute_complete",
            kwargs={"resumes": resumes + 1},
            timeout=RESUME_TIMEOUT,
        )

    def execute_complete(self, context: Context, event: Any = None, **kwargs: Any) -> Any:
        """Continue the work after a time-budget deferral.

        ``resumes`` comes from the deferral's kwargs; ``dag.test()`` passes only the trigger's event, so
        it counts 0 there (as before).
        """
        return self.work(context, resumes=int(kwargs.get("resumes", 0)))
