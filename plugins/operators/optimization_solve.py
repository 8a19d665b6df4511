"""Operators that solve a run: legacy batches (time-budgeted), the optimal engine per comm group, winners."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from include.carrier_optimization import pipeline
from include.carrier_optimization.amop.checkpoints import checkpoint_key
from include.carrier_optimization.amop.throttle import ThrottledWriter
from include.carrier_optimization.core.engines.optimal import solve_optimal
from plugins.compat import AirflowSkipException, Context
from plugins.operators.base import AmopBaseOperator, check_batch, check_session, positive_int


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

    def execute(self, context: Context) -> dict[str, Any]:
        """Run the step (see the class docstring)."""
        return self.work(context, resumes=0)

    def work(self, context: Context, *, resumes: int) -> dict[str, Any]:
        """Evaluate from the checkpoint until done or out of time (then defer to continue)."""
        batch = check_batch(self.batch)
        ti = context["ti"]
        key = checkpoint_key(ti.dag_id, ti.run_id, ti.task_id, ti.map_index)
        engine = self.db.get_conn()
        store = self.checkpoints.get_store(engine, on_degrade=self._degraded)
        saved = store.get(key) or {}
        if saved:
            self.log.info("Resuming batch %s from checkpoint: %s queues done", batch, saved.get("cursor"))
        budget = self.time_budget(float(positive_int("time_budget_seconds", self.time_budget_seconds)))
        deadline = time.monotonic() + budget
        cache = self.checkpoints.get_device_cache()
        progress = pipeline.run_optimizer_batch(
            engine,
            queues_per_instance=positive_int("queues_per_instance", self.queues_per_instance),
            deadline=deadline,
            on_chunk=ThrottledWriter(lambda cursor: store.put(key, {"cursor": cursor, "batch": batch})),
            load=lambda: pipeline.load_group(engine, batch["comm_group_id"], cache=cache),
            **batch,
        )
        if not progress.done:
            store.put(key, {"cursor": progress.cursor, "batch": batch})
            self.log.info("Time budget used after %d queues; deferring to continue", progress.cursor)
            self.defer_to_continue(resumes)
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

    def __init__(
        self, *, comm_group_id: Any, engine: str = "best", time_limit_seconds: Any = 600, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.comm_group_id = comm_group_id
        self.engine = engine
        self.time_limit_seconds = time_limit_seconds

    def execute(self, context: Context) -> dict[str, Any]:
        """Run the step (see the class docstring)."""
        if self.engine == "legacy":
            raise AirflowSkipException("engine=legacy: the optimal engine does not run")
        return pipeline.run_engine_for_group(
            self.db.get_conn(),
            comm_group_id=positive_int("comm_group_id", self.comm_group_id),
            solve=solve_optimal,
            time_limit=float(positive_int("time_limit_seconds", self.time_limit_seconds)),
            cache=self.checkpoints.get_device_cache(),
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
        instance_id = positive_int("count['instance_id']", count)
        summary = pipeline.select_winners(self.db.get_conn(), instance_id=instance_id)
        pipeline.forget_setup_facts(self.db.get_conn(), instance_id)
        self.progress(self.session, 50, summary["devices"])
        return {k: v for k, v in summary.items() if k != "groups"} | {"groups": len(summary["groups"])}
