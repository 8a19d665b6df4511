"""The optimization run, one function per DAG step: orchestration of the AMOP repositories.

``from include.carrier_optimization import pipeline`` gives the steps the operators call.
"""

from include.carrier_optimization.amop.queues import KIND_BASE, KIND_ENGINE, KIND_SEQUENCE
from include.carrier_optimization.messaging.request import Request, request_from_params
from include.carrier_optimization.pipeline.engine_step import run_engine_for_group
from include.carrier_optimization.pipeline.instance import (
    BYTES_PER_MB,
    INVALID_PLANS_MESSAGE,
    MAX_BATCHES,
    NO_PLANS_MESSAGE,
    SEQUENCE_CAP,
    SETUP_FACTS_TTL,
    InstancePlan,
    current_cost,
    device_snapshot,
    forget_setup_facts,
    prepare_instance,
    rate_plans_from_frame,
    reopen_instance,
)
from include.carrier_optimization.pipeline.optimizer import (
    CHECKPOINT_SECONDS,
    BatchProgress,
    load_group,
    run_optimizer_batch,
)
from include.carrier_optimization.pipeline.queues import group_plans, queues_written, write_queue_batch
from include.carrier_optimization.pipeline.results import record_if_better
from include.carrier_optimization.pipeline.session import (
    RequestError,
    RunRefused,
    SessionFinished,
    check_guard,
    open_session,
    set_progress,
)
from include.carrier_optimization.pipeline.winners import select_winners

__all__ = [
    "BYTES_PER_MB",
    "BatchProgress",
    "CHECKPOINT_SECONDS",
    "INVALID_PLANS_MESSAGE",
    "InstancePlan",
    "KIND_BASE",
    "KIND_ENGINE",
    "KIND_SEQUENCE",
    "MAX_BATCHES",
    "NO_PLANS_MESSAGE",
    "Request",
    "RequestError",
    "RunRefused",
    "SEQUENCE_CAP",
    "SETUP_FACTS_TTL",
    "SessionFinished",
    "check_guard",
    "current_cost",
    "device_snapshot",
    "forget_setup_facts",
    "group_plans",
    "load_group",
    "open_session",
    "prepare_instance",
    "queues_written",
    "rate_plans_from_frame",
    "record_if_better",
    "reopen_instance",
    "request_from_params",
    "run_engine_for_group",
    "run_optimizer_batch",
    "select_winners",
    "set_progress",
    "write_queue_batch",
]
