"""The AMOP base operator: templated-value checks, lazy hooks, the time-budget deferral."""

from __future__ import annotations

from datetime import timedelta

import pytest
from airflow.providers.amazon.aws.hooks.sqs import SqsHook
from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger
from airflow.sdk.exceptions import TaskDeferred

from plugins.compat import AirflowFailException
from plugins.hooks.amop import AmopDatabaseHook
from plugins.hooks.checkpoint import CheckpointHook
from plugins.operators.base import (
    RESUME_AFTER,
    RESUME_TIMEOUT,
    AmopBaseOperator,
    check_batch,
    check_session,
    positive_int,
    session_request,
)

REQUEST = {"tenant_id": 5, "service_provider_id": 501, "has_synced": True}
SESSION = {"session_id": 1, "session_guid": "g", "billing_period_id": 1, "request": REQUEST}


class _BudgetedOperator(AmopBaseOperator):
    """Records each slice of work; defers on the first ``defer_times`` slices."""

    def __init__(self, *, defer_times: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.defer_times = defer_times
        self.slices: list[int] = []

    def execute(self, context):
        return self.work(context, resumes=0)

    def work(self, context, *, resumes):
        self.slices.append(resumes)
        if resumes < self.defer_times:
            self.defer_to_continue(resumes)
        return {"resumes": resumes}


class TestChecks:
    @pytest.mark.parametrize("value", [1, "7", 3.0])
    def test_positive_int_accepts(self, value):
        assert positive_int("n", value) == int(value)

    @pytest.mark.parametrize("value", [0, -1, "x", None, "1.5"])
    def test_positive_int_fails_without_retries_naming_the_parameter(self, value):
        with pytest.raises(AirflowFailException, match=r"^`n` must be a positive integer; got "):
            positive_int("n", value)

    def test_check_session_needs_the_session_step_keys(self):
        assert check_session(SESSION) is SESSION
        with pytest.raises(
            AirflowFailException, match="session_id, session_guid, billing_period_id, request"
        ):
            check_session({"session_id": 1})

    def test_session_request_rebuilds_the_request(self):
        request = session_request(SESSION)
        assert (request.tenant_id, request.service_provider_id, request.has_synced) == (5, 501, True)
        with pytest.raises(AirflowFailException, match=r"^`request` must be the request dict"):
            session_request({"request": "oops"}, name="request")

    def test_check_batch_takes_exactly_the_three_keys_as_integers(self):
        assert check_batch({"comm_group_id": "3", "start": 0, "stop": "10"}) == {
            "comm_group_id": 3,
            "start": 0,
            "stop": 10,
        }
        with pytest.raises(AirflowFailException, match="`batch` must be"):
            check_batch({"comm_group_id": 3, "start": 0, "stop": 10, "extra": 1})


class TestHooks:
    def test_no_hook_is_built_at_construction_then_each_once_on_its_connection(self):
        op = AmopBaseOperator(task_id="t", amop_conn_id="db_x")
        assert not {"db", "api", "mail", "checkpoints", "sqs"} & set(op.__dict__)
        assert isinstance(op.db, AmopDatabaseHook) and op.db.amop_conn_id == "db_x"
        assert op.db is op.db and op.db.engine is None, "no engine before get_conn()"
        assert op.api.amop_api_conn_id == "amop_api" and op.mail.smtp_conn_id == "smtp_notifications"

    def test_checkpoints_and_sqs_follow_the_operator_s_connection_ids(self):
        op = AmopBaseOperator(task_id="t")
        assert isinstance(op.checkpoints, CheckpointHook) and op.checkpoints.redis_conn_id == "redis_default"
        assert isinstance(op.sqs, SqsHook) and op.sqs.aws_conn_id == "aws_default"
        op = AmopBaseOperator(task_id="u")
        op.redis_conn_id, op.aws_conn_id = None, "aws_other"
        assert op.checkpoints.redis_conn_id is None and op.sqs.aws_conn_id == "aws_other"


class TestTimeBudget:
    def test_budget_is_capped_at_90_percent_of_the_execution_timeout(self):
        assert AmopBaseOperator(task_id="t").time_budget(600.0) == 600.0
        capped = AmopBaseOperator(task_id="t", execution_timeout=timedelta(seconds=100))
        assert capped.time_budget(600.0) == pytest.approx(90.0)
        assert capped.time_budget(30.0) == 30.0

    def test_out_of_time_defers_on_a_short_timer_to_execute_complete(self):
        op = _BudgetedOperator(task_id="t", defer_times=1)
        with pytest.raises(TaskDeferred) as deferred:
            op.execute({})
        assert deferred.value.method_name == "execute_complete"
        assert deferred.value.kwargs == {"resumes": 1}
        assert deferred.value.timeout == RESUME_TIMEOUT == timedelta(hours=1)
        trigger = deferred.value.trigger
        assert isinstance(trigger, TimeDeltaTrigger) and RESUME_AFTER == timedelta(seconds=1)

    def test_execute_complete_continues_the_work_counting_resumes(self):
        op = _BudgetedOperator(task_id="t", defer_times=2)
        with pytest.raises(TaskDeferred) as deferred:
            op.execute_complete({}, event=None, resumes=1)
        assert deferred.value.kwargs == {"resumes": 2}
        assert op.execute_complete({}, event=None, **deferred.value.kwargs) == {"resumes": 2}
        assert op.slices == [1, 2]

    def test_execute_complete_without_kwargs_counts_zero_as_dag_test_does(self):
        op = _BudgetedOperator(task_id="t")
        assert op.execute_complete({}, event={"fired": True}) == {"resumes": 0}

    def test_an_operator_without_budgeted_work_says_so(self):
        with pytest.raises(NotImplementedError, match="AmopBaseOperator has no time-budgeted work"):
            AmopBaseOperator(task_id="t").execute_complete({}, resumes=1)
