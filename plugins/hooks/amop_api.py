"""Hook to the AMOP 2.0 progress API: progress and error messages of an optimization session."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from requests import RequestException

from include.carrier_optimization.config.local_mode import local_mode, missing_connection
from include.carrier_optimization.pipeline.progress import error_payload, progress_payload
from plugins.compat import AirflowException, AirflowNotFoundException, BaseHook

if TYPE_CHECKING:
    from airflow.providers.http.hooks.http import HttpHook


class AmopApiHook(BaseHook):
    """Send progress (0/20/30/40/50/100) and error messages to AMOP 2.0, and always to the task log.

    In local mode (``CARRIER_OPT_LOCAL_MODE=true``) a missing ``http`` connection means the task log
    only; outside it a missing connection raises ``ConnectionNotUsable`` naming the connection id (the
    portal depends on progress 100 to load results). A call the API rejects or that cannot reach it is
    logged and returns False: one lost progress call never fails an optimization.

    :param amop_api_conn_id: Airflow HTTP connection of the AMOP 2.0 API (default ``amop_api``).
    """

    conn_name_attr = "amop_api_conn_id"
    default_conn_name = "amop_api"
    conn_type = "http"
    hook_name = "AMOP 2.0 API"

    def __init__(self, amop_api_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.amop_api_conn_id = amop_api_conn_id
        self._http: HttpHook | None = None
        self._checked = False

    def get_conn(self) -> HttpHook | None:
        """The HTTP hook; None in local mode when the connection is not defined (checked once)."""
        if not self._checked:
            try:
                self.get_connection(self.amop_api_conn_id)
            except AirflowNotFoundException:
                if not local_mode():
                    raise missing_connection(self.amop_api_conn_id, "AMOP progress API") from None
                self._checked = True
                self.log.info(
                    "Connection %s not defined: progress goes to the task log only", self.amop_api_conn_id
                )
                return None
            # Imported here: the HTTP provider (aiohttp, ~90 modules, 0.6 s) would load at every DAG parse.
            from airflow.providers.http.hooks.http import HttpHook

            self._checked = True
            self._http = HttpHook(method="POST", http_conn_id=self.amop_api_conn_id)
        return self._http

    def send_progress(
        self,
        *,
        session_id: int,
        session_guid: str | None,
        progress: int,
        device_count: int = 0,
        additional: dict[str, Any] | None = None,
    ) -> bool:
        """Report ``progress`` (and a new session's ``AdditionalJson``); returns whether it was accepted."""
        self.log.info("Optimization session %s: progress %d%% (%d SIMs)", session_id, progress, device_count)
        payload = progress_payload(
            session_id=session_id,
            session_guid=session_guid,
            progress=progress,
            device_count=device_count,
            additional=additional,
        )
        return self._post(payload)

    def send_error(self, *, session_id: int, session_guid: str | None, message: str) -> bool:
        """Report an error message for the session; returns whether the API accepted it."""
        self.log.error("Optimization session %s: %s", session_id, message)
        return self._post(error_payload(session_id=session_id, session_guid=session_guid, message=message))

    def _post(self, payload: dict[str, Any]) -> bool:
        http = self.get_conn()
        if http is None:
            return False
        try:
            http.run(endpoint=payload["data"]["path"], json=payload, extra_options={"timeout": 10})
        except (AirflowException, RequestException) as error:  # HTTP status / transport errors
            self.log.warning("AMOP API call %s failed: %s", payload["data"]["path"], error)
            return False
        return True
