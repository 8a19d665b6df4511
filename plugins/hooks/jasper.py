"""Hook giving library code a Jasper (Cisco IoT Control Center) API client from an `http` connection."""

from __future__ import annotations

import datetime as dt
from typing import Any

import requests

from include.carrier_optimization.sync.carriers.jasper import JasperClient, RetryPolicy
from plugins.compat import BaseHook


class JasperHook(BaseHook):
    """Build the carrier API client of one carrier account.

    The Airflow connection is of type ``http``: ``host`` is the API root (``ProductionApiUrl``, with or
    without scheme; ``schema`` gives the scheme when the host has none, default https), ``port``
    optional, ``login`` / ``password`` the HTTP basic-auth credentials. Optional extras:
    ``devices_path`` (default ``api/v1/devices``), ``max_retries``, ``backoff_seconds``,
    ``read_timeout_seconds``, ``connect_timeout_seconds``, ``verify`` (TLS verification, default
    true) and ``bulk_usage`` (the server has the bulk usage endpoint, as the carrier simulator does).

    Construction does no I/O; :meth:`get_conn` looks the connection up, builds a ``requests.Session``
    and the client once, and returns the same client afterwards.

    :param jasper_conn_id: Airflow connection id of the carrier account (default ``jasper_default``).
    """

    conn_name_attr = "jasper_conn_id"
    default_conn_name = "jasper_default"
    conn_type = "http"
    hook_name = "Jasper carrier API"

    def __init__(self, jasper_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.jasper_conn_id = jasper_conn_id
        self.client: JasperClient | None = None

    def get_conn(self) -> JasperClient:
        """Return the cached client, building it from the connection on the first call."""
        if self.client is None:
            self.client = self._build_client()
        return self.client

    def _build_client(self) -> JasperClient:
        conn = self.get_connection(self.jasper_conn_id)
        if not conn.host:
            raise ValueError(
                f"Connection {self.jasper_conn_id!r} has no host: set it to the carrier API root URL, "
                "e.g. https://rws.jasper.com"
            )
        if not conn.login:
            raise ValueError(
                f"Connection {self.jasper_conn_id!r} has no login: set the API user name and password"
            )
        extra = conn.extra_dejson or {}
        host = conn.host
        if "://" not in host:
            host = f"{conn.schema or 'https'}://{host}"
        if conn.port:
            host = f"{host.rstrip('/')}:{conn.port}"
        session = requests.Session()
        session.auth = (conn.login, conn.password or "")
        session.headers.update({"Accept": "application/json"})
        session.verify = extra.get("verify", True)
        defaults = RetryPolicy()
        retry = RetryPolicy(
            max_retries=int(extra.get("max_retries", defaults.max_retries)),
            backoff_seconds=float(extra.get("backoff_seconds", defaults.backoff_seconds)),
            connect_timeout_seconds=float(
                extra.get("connect_timeout_seconds", defaults.connect_timeout_seconds)
            ),
            read_timeout_seconds=float(extra.get("read_timeout_seconds", defaults.read_timeout_seconds)),
        )
        self.log.info("Jasper API client for %s on %s (user %s)", self.jasper_conn_id, host, conn.login)
        return JasperClient(
            session,
            host,
            devices_path=str(extra.get("devices_path", "api/v1/devices")),
            retry=retry,
            bulk_usage=bool(extra.get("bulk_usage", False)),
        )

    def test_connection(self) -> tuple[bool, str]:
        """Read page 1 of the devices modified in the last day; return ``(status, message)``."""
        try:
            page = self.get_conn().device_page(1, dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
        except Exception as error:
            return False, f"{type(error).__name__}: {error}"
        return True, f"Page 1 read: {len(page.devices)} device(s), last page {page.last_page}"
