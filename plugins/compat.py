"""The one place that chooses import paths by Airflow version (MWAA 3.0.6 line vs local 3.3.x)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from airflow import __version__ as AIRFLOW_VERSION  # noqa: N812
from packaging.version import Version

AIRFLOW_V_3_0_PLUS = Version(Version(AIRFLOW_VERSION).base_version) >= Version("3.0.0")
AIRFLOW_V_3_1_PLUS = Version(Version(AIRFLOW_VERSION).base_version) >= Version("3.1.0")

from airflow.sdk import (  # noqa: E402  (names present in task-sdk 1.0.6 and later)
    DAG,
    BaseOperator,
    BaseSensorOperator,
    Context,
    Param,
    dag,
    get_current_context,
    get_parsing_context,
    task,
)

try:  # task-sdk >= 1.1
    from airflow.sdk import BaseHook
except ImportError:  # pragma: no cover - MWAA 3.0.6
    from airflow.hooks.base import BaseHook  # type: ignore[no-redef]

try:
    from airflow.sdk import TriggerRule
except ImportError:  # pragma: no cover - MWAA 3.0.6
    from airflow.utils.trigger_rule import TriggerRule  # type: ignore[no-redef]

try:
    from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException
except ImportError:  # pragma: no cover - MWAA 3.0.6
    from airflow.exceptions import (  # type: ignore[no-redef]
        AirflowException,
        AirflowFailException,
        AirflowSkipException,
    )

try:
    from airflow.sdk import conf
except ImportError:  # pragma: no cover - MWAA 3.0.6
    from airflow.configuration import conf  # type: ignore[no-redef]

from airflow.exceptions import AirflowNotFoundException  # noqa: E402  (same class on 3.0 and 3.3)
from airflow.triggers.base import BaseTrigger, TriggerEvent  # noqa: E402  (same path on 3.0 and 3.3)

try:  # event-driven scheduling: Airflow 3.0+ (AssetWatcher triggers must be BaseEventTrigger)
    from airflow.triggers.base import BaseEventTrigger
except ImportError:  # pragma: no cover - before 3.0
    BaseEventTrigger = BaseTrigger  # type: ignore[misc,assignment]

__all__ = [
    "AIRFLOW_VERSION",
    "AIRFLOW_V_3_0_PLUS",
    "AIRFLOW_V_3_1_PLUS",
    "DAG",
    "AirflowException",
    "AirflowFailException",
    "AirflowNotFoundException",
    "AirflowSkipException",
    "BaseHook",
    "BaseOperator",
    "BaseSensorOperator",
    "BaseEventTrigger",
    "BaseTrigger",
    "Context",
    "Param",
    "TriggerEvent",
    "TriggerRule",
    "conf",
    "dag",
    "default_deferrable",
    "get_current_context",
    "get_parsing_context",
    "readable_dag_ids",
    "task",
]


def default_deferrable() -> bool:
    """``[operators] default_deferrable``, read when an operator is built (not at import)."""
    return conf.getboolean("operators", "default_deferrable", fallback=False)


def readable_dag_ids(user: Any, dag_ids: Iterable[str]) -> set[str]:
    """The ``dag_ids`` that ``user`` may read (``GET``), asked of the API server's auth manager.

    Imported when called (API server only): ``get_auth_manager`` and ``DagDetails`` have these paths on
    3.0.6 and 3.3, and ``is_authorized_dag(method=, details=, user=)`` the same keywords.
    """
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

    manager = get_auth_manager()
    return {
        dag_id
        for dag_id in dag_ids
        if manager.is_authorized_dag(method="GET", details=DagDetails(id=dag_id), user=user)
    }
