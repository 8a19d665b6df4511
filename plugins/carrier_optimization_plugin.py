"""Airflow UI plugin: a tenant's optimization sessions with their figures and result downloads.

A FastAPI app mounted by the API server at ``/carrier-optimization`` (``fastapi_apps``) and a navigation
entry under *Browse* that shows it inside the Airflow UI (``external_views``, Airflow 3.1 and later; on
3.0 the page is reached at its URL). The rows and the HTML are built by
:mod:`include.carrier_optimization.reporting.sessions_view`, the queries live in
:mod:`include.carrier_optimization.amop.sessions`; this module only wires them to HTTP.

Routes (below the prefix), all requiring an authenticated Airflow user (the UI's session cookie or a
``Bearer`` token, checked by Airflow's own ``get_user``). A user sees only the tenants whose DAG
(``carrier_optimization__<slug>`` in ``tenants.yaml``) the auth manager lets them read; another
tenant's sessions or reports answer 403:

- ``GET /?tenant_id=<id>&limit=<n>``: the sessions page (HTML);
- ``GET /api/sessions?tenant_id=<id>&limit=<n>``: the same rows as JSON;
- ``GET /reports/<instance_id>.xlsx``: the stored result workbook (404 when none).

The FastAPI app is built on its first request: Airflow loads plugins in every task process, and building
it there would import FastAPI and the API server's security module for nothing.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from airflow.plugins_manager import AirflowPlugin

LOG = logging.getLogger(__name__)

URL_PREFIX = "/carrier-optimization"
MAX_LIMIT = 500


def _tenants() -> list[Any]:
    from include.carrier_optimization.config.tenants import load_tenants
    from plugins.compat import conf

    return load_tenants(Path(conf.get("core", "dags_folder")) / "tenants.yaml")


def tenant_names() -> dict[int, str]:
    """Tenant id → name from the DAGs folder's ``tenants.yaml``; empty when it cannot be read."""
    try:
        return {t.tenant_id: t.name for t in _tenants()}
    except Exception as error:  # names are a nicety: the page works with ids alone
        LOG.warning("Tenant names unavailable (%s); showing ids", error)
        return {}


def tenant_dag_ids() -> dict[int, str]:
    """Tenant id → its optimization DAG id, from ``tenants.yaml`` (an unreadable file fails the request).

    Access follows the DAG: without the file nobody could be authorized, so the error is not hidden.
    """
    return {t.tenant_id: t.dag_id for t in _tenants()}


def default_engine() -> Any:
    """The AMOP database of the ``amop_db`` connection (the embedded default only in local mode)."""
    from plugins.hooks.amop import AmopDatabaseHook

    return AmopDatabaseHook().get_conn()


def create_app(
    *,
    engine_factory: Callable[[], Any] | None = None,
    names: Callable[[], dict[int, str]] | None = None,
    authenticate: bool = True,
    tenant_dags: Callable[[], dict[int, str]] | None = None,
    readable_dags: Callable[[Any, set[str]], set[str]] | None = None,
) -> Any:
    """Build the FastAPI app of the sessions page.

    :param engine_factory: returns the AMOP engine; called once, on the first request (default: the
        ``amop_db`` connection through :class:`~plugins.hooks.amop.AmopDatabaseHook`).
    :param names: returns tenant id → display name (default: :func:`tenant_names`).
    :param authenticate: require an Airflow user on every route, and show only the tenants whose DAG
        the user may read (default True; False shows every tenant, for local tools only).
    :param tenant_dags: returns tenant id → DAG id (default: :func:`tenant_dag_ids`).
    :param readable_dags: ``(user, dag_ids)`` → the DAG ids the user may read (default: the auth
        manager, :func:`plugins.compat.readable_dag_ids`).
    """
    from fastapi import Depends, FastAPI

    dependencies = []
    current_user: Callable[..., Any] = _anonymous
    if authenticate:
        from airflow.api_fastapi.core_api.security import get_user

        dependencies.append(Depends(get_user))
        current_user = get_user
    app = FastAPI(
        title="Carrier optimization sessions",
        dependencies=dependencies,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    engine_of = functools.cache(engine_factory or default_engine)
    access = TenantAccess(
        enabled=authenticate,
        tenant_dags=functools.cache(tenant_dags or tenant_dag_ids),
        readable_dags=readable_dags or _auth_manager_readable,
    )
    user_dependency = Depends(current_user)
    _session_routes(app, engine_of, functools.cache(names or tenant_names), access, user_dependency)
    _report_routes(app, engine_of, access, user_dependency)
    return app


def _session_routes(
    app: Any,
    engine_of: Callable[[], Any],
    names_of: Callable[[], dict[int, str]],
    access: TenantAccess,
    user_dependency: Any,
) -> None:
    """``GET /`` (the page) and ``GET /api/sessions`` (its rows as JSON)."""
    from fastapi import Query
    from fastapi.responses import HTMLResponse

    from include.carrier_optimization.amop import sessions
    from include.carrier_optimization.reporting import sessions_view as view

    limit_query = Query(view.DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)

    # Plain `def` endpoints: FastAPI runs them in its thread pool, so database calls never block the loop.
    @app.get("/", response_class=HTMLResponse)
    def sessions_page(
        tenant_id: int | None = None, limit: int = limit_query, user: Any = user_dependency
    ) -> HTMLResponse:
        engine, known, allowed = engine_of(), names_of(), access.visible(user)
        access.check(allowed, tenant_id)
        ids = sorted(set(sessions.tenant_ids(engine)) | set(known))
        ids = ids if allowed is None else [t for t in ids if t in allowed]
        chosen = tenant_id if tenant_id is not None else (ids[0] if ids else None)
        if chosen is not None and chosen not in ids:
            ids.append(chosen)
        rows = view.list_sessions(engine, chosen, limit=limit) if chosen is not None else []
        tenants = [(t, known.get(t, f"Tenant {t}")) for t in ids]
        return HTMLResponse(view.render_sessions_page(rows, tenant_id=chosen, tenants=tenants))

    @app.get("/api/sessions")
    def sessions_json(
        tenant_id: int, limit: int = limit_query, user: Any = user_dependency
    ) -> list[dict[str, Any]]:
        access.check(access.visible(user), tenant_id)
        return [row.to_dict() for row in view.list_sessions(engine_of(), tenant_id, limit=limit)]


def _report_routes(
    app: Any, engine_of: Callable[[], Any], access: TenantAccess, user_dependency: Any
) -> None:
    """``GET /reports/<id>.xlsx`` and ``GET /reports/<id>.csv.gz``: the stored result files."""
    from fastapi import HTTPException
    from fastapi.responses import Response

    from include.carrier_optimization.amop.result_files import (
        CSV_MIME,
        CSV_NAME,
        XLSX_MIME,
        latest_result_file,
    )
    from include.carrier_optimization.amop.sessions import instance_tenant_id

    @app.get("/reports/{instance_id}.xlsx")
    def report_file(instance_id: int, user: Any = user_dependency) -> Response:
        allowed = access.visible(user)
        if allowed is not None:  # an unknown instance has no report: the 404 below
            access.check(allowed, instance_tenant_id(engine_of(), instance_id))
        content = latest_result_file(engine_of(), instance_id)
        if content is None:
            raise HTTPException(status_code=404, detail=f"instance {instance_id} has no stored report")
        name = f"device_assignments_instance_{instance_id}.xlsx"
        return Response(
            content, media_type=XLSX_MIME, headers={"Content-Disposition": f'attachment; filename="{name}"'}
        )

    @app.get("/reports/{instance_id}.csv.gz")
    def report_csv(instance_id: int) -> Response:
        content = latest_result_file(engine_of(), instance_id, CSV_NAME)
        if content is None:
            raise HTTPException(
                status_code=404, detail=f"instance {instance_id} has no stored assignments CSV"
            )
        name = f"device_assignments_instance_{instance_id}.csv.gz"
        return Response(
            content, media_type=CSV_MIME, headers={"Content-Disposition": f'attachment; filename="{name}"'}
        )


class TenantAccess:
    """Which tenants a signed-in user may see: those whose optimization DAG they may read.

    :param enabled: False lets everybody see every tenant (an app built without authentication).
    :param tenant_dags: returns tenant id → DAG id.
    :param readable_dags: ``(user, dag_ids)`` → the DAG ids the user may read.
    """

    def __init__(
        self,
        *,
        enabled: bool,
        tenant_dags: Callable[[], dict[int, str]],
        readable_dags: Callable[[Any, set[str]], set[str]],
    ) -> None:
        self.enabled = enabled
        self.tenant_dags = tenant_dags
        self.readable_dags = readable_dags

    def visible(self, user: Any) -> set[int] | None:
        """Tenants ``user`` may see; None when access is not enforced (every tenant)."""
        from include.carrier_optimization.reporting.sessions_view import readable_tenants

        if not self.enabled:
            return None
        dags = self.tenant_dags()
        return readable_tenants(dags, self.readable_dags(user, set(dags.values())))

    @staticmethod
    def check(allowed: set[int] | None, tenant_id: int | None) -> None:
        """403 when ``tenant_id`` is not among ``allowed``."""
        from fastapi import HTTPException

        if allowed is not None and tenant_id is not None and tenant_id not in allowed:
            raise HTTPException(status_code=403, detail=f"not allowed to read tenant {tenant_id}")


def _anonymous() -> None:
    """The user of an app built with ``authenticate=False``: nobody."""
    return None


def _auth_manager_readable(user: Any, dag_ids: set[str]) -> set[str]:
    from plugins.compat import readable_dag_ids

    return readable_dag_ids(user, dag_ids)


class LazyAsgiApp:
    """An ASGI app that builds the real one (``factory()``) on its first request."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self.factory = factory
        self.app: Any = None

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        """Serve ``scope`` with the real app, building it first when needed."""
        if self.app is None:
            self.app = self.factory()
        await self.app(scope, receive, send)


sessions_app = LazyAsgiApp(create_app)


class CarrierOptimizationPlugin(AirflowPlugin):
    """Registers the sessions page (FastAPI app) and its navigation entry."""

    name = "carrier_optimization"
    fastapi_apps = [{"app": sessions_app, "url_prefix": URL_PREFIX, "name": "Carrier optimization sessions"}]
    external_views = [
        {
            "name": "Carrier optimization",
            # Relative to the UI's base URL (no leading slash), so it also works behind a proxy prefix.
            "href": URL_PREFIX.lstrip("/") + "/",
            "destination": "nav",
            "category": "browse",
            "url_route": "carrier-optimization",
        }
    ]
