"""A small client of a running Airflow's REST API (v2), as a person's script or the portal would use it.

Used by the end-to-end tests and ``bench/airflow.py``; it signs in with a user name and password
(``POST /auth/token``) and speaks only the public API.
"""

from __future__ import annotations

import time
from typing import Any

import requests

TERMINAL_RUN_STATES = {"success", "failed"}


class AirflowApiError(RuntimeError):
    """The API answered with an error status; the message carries the method, path and body."""


class AirflowApi:
    """Public REST API of the Airflow at ``base_url``, signed in as ``username``."""

    def __init__(self, base_url: str, *, username: str, password: str, timeout: float = 30) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self.timeout = timeout
        self.session = requests.Session()
        self._token: str | None = None

    # -- plumbing ----------------------------------------------------------------------------------

    def token(self) -> str:
        """A JWT for the user, fetched once."""
        if self._token is None:
            response = self.session.post(
                f"{self.base_url}/auth/token",
                json={"username": self.username, "password": self.password},
                timeout=self.timeout,
            )
            if response.status_code >= 400:
                raise AirflowApiError(
                    f"sign-in of {self.username!r} failed: {response.status_code} {response.text}"
                )
            self._token = response.json()["access_token"]
        return self._token

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """``method`` on ``/api/v2{path}``; the decoded JSON answer, or :class:`AirflowApiError`."""
        response = self.session.request(
            method,
            f"{self.base_url}/api/v2{path}",
            headers={"Authorization": f"Bearer {self.token()}"},
            timeout=self.timeout,
            **kwargs,
        )
        if response.status_code >= 400:
            raise AirflowApiError(f"{method} {path}: {response.status_code} {response.text[:2000]}")
        return response.json() if response.content else None

    def health(self) -> dict[str, Any]:
        """``/api/v2/monitor/health`` (no sign-in needed)."""
        response = self.session.get(f"{self.base_url}/api/v2/monitor/health", timeout=self.timeout)
        response.raise_for_status()
        return response.json()

    # -- DAGs and runs -----------------------------------------------------------------------------

    def dag_ids(self) -> list[str]:
        """Ids of the DAGs the scheduler knows."""
        return [d["dag_id"] for d in self.call("GET", "/dags", params={"limit": 1000})["dags"]]

    def set_paused(self, dag_id: str, paused: bool) -> None:
        """Pause or unpause ``dag_id``."""
        self.call("PATCH", f"/dags/{dag_id}", json={"is_paused": paused})

    def import_errors(self) -> list[dict[str, Any]]:
        """The DAG files that failed to import, with their tracebacks."""
        return self.call("GET", "/importErrors")["import_errors"]

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None, run_id: str | None = None) -> dict:
        """Trigger a manual run of ``dag_id`` with ``conf`` (the trigger form's fields)."""
        body: dict[str, Any] = {"logical_date": None, "conf": conf or {}}
        if run_id:
            body["dag_run_id"] = run_id
        return self.call("POST", f"/dags/{dag_id}/dagRuns", json=body)

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        """Every run of ``dag_id``, oldest first."""
        answer = self.call("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 1000, "order_by": "id"})
        return answer["dag_runs"]

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        """One run of ``dag_id``."""
        return self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of the run, mapped indexes included."""
        answer = self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 1000})
        return answer["task_instances"]

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        """The XCom ``key`` an unmapped task of the run pushed, deserialized."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        return self.call("GET", path, params={"deserialize": True})["value"]

    def clear(self, dag_id: str, run_id: str, task_ids: list[Any], *, downstream: bool = True) -> list:
        """Clear ``task_ids`` (ids or ``[task_id, map_index]`` pairs) of one run, downstream included."""
        answer = self.call(
            "POST",
            f"/dags/{dag_id}/clearTaskInstances",
            json={
                "dry_run": False,
                "dag_run_id": run_id,
                "task_ids": task_ids,
                "include_downstream": downstream,
                "only_failed": False,
                "reset_dag_runs": True,
            },
        )
        return answer["task_instances"]

    # -- waiting -----------------------------------------------------------------------------------

    def wait_for_run(
        self, dag_id: str, run_id: str, *, timeout: float, states: set[str] = TERMINAL_RUN_STATES
    ) -> dict[str, Any]:
        """Poll the run until its state is one of ``states``; :class:`TimeoutError` names the last state."""
        return wait_until(
            lambda: (run := self.run(dag_id, run_id))["state"] in states and run,
            timeout=timeout,
            what=lambda: f"run {dag_id}/{run_id} to reach {sorted(states)}",
        )


def wait_until(check, *, timeout: float, what, interval: float = 0.5):
    """Call ``check`` until it returns something truthy and return that; :class:`TimeoutError` after."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"timed out after {timeout:.0f} s waiting for {what() if callable(what) else what}"
            )
        time.sleep(interval)
