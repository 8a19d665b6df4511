"""The scheduled window: publish the legacy request of each provider whose billing period is due."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from plugins.compat import BaseOperator, Context


class OptimizationWindowOperator(BaseOperator):
    """One scheduled tick of one tenant (docs/architecture.md); ends in seconds.

    For each service provider, the legacy ``IsTimeToRun`` rule on the provider's current billing period
    (last 8 days, from its start hour, in the tenant's billing time zone). When the window is open and
    the period has no published request yet, or the provider's newest instance since then ended
    ``CompleteWithErrors``, the legacy request is published on the tenant's request queue (body "Carrier
    to optimize is for Billing Period Y/M"; String attributes ``BillYear``, ``BillMonth``,
    ``ServiceProviderId``, ``TenantId``, ``BillPeriodId``, ``HasSynced=False``; no session id) and the
    decision is written to ``AirflowScheduleDecision``. Logic:
    :func:`include.carrier_optimization.pipeline.schedule.publish_due_requests`.

    Returns the published decisions (``[]`` on a closed window).

    :param tenant_id: the tenant.
    :param request_queue: name or URL of the tenant's request queue (templated).
    :param start_hours: ``{service provider id: start hour or None}``.
    :param billing_time_zone: IANA zone of the billing periods (default ``UTC``).
    :param aws_conn_id: Airflow AWS connection id (default ``aws_default``).
    :param amop_conn_id: AMOP database connection (default ``amop_db``).
    """

    template_fields: Sequence[str] = ("request_queue",)
    ui_color = "#e0e8ff"

    def __init__(
        self,
        *,
        tenant_id: int,
        request_queue: str,
        start_hours: dict[int, int | None],
        billing_time_zone: str = "UTC",
        aws_conn_id: str | None = "aws_default",
        amop_conn_id: str = "amop_db",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.tenant_id = tenant_id
        self.request_queue = request_queue
        self.start_hours = start_hours
        self.billing_time_zone = billing_time_zone
        self.aws_conn_id = aws_conn_id
        self.amop_conn_id = amop_conn_id

    def execute(self, context: Context) -> list[dict[str, Any]]:
        """Decide and publish (see the class docstring)."""
        # Imported here: the hourly window DAG parses without boto3, pandas and numpy (~900 modules).
        from airflow.providers.amazon.aws.hooks.sqs import SqsHook

        from include.carrier_optimization.amop.repository import utcnow
        from include.carrier_optimization.pipeline.schedule import publish_due_requests
        from plugins.hooks.amop import AmopDatabaseHook

        published = publish_due_requests(
            AmopDatabaseHook(amop_conn_id=self.amop_conn_id).get_conn(),
            SqsHook(aws_conn_id=self.aws_conn_id).get_conn(),
            tenant_id=self.tenant_id,
            request_queue=self.request_queue,
            start_hours={int(k): v for k, v in self.start_hours.items()},
            billing_time_zone=self.billing_time_zone,
            now_utc=utcnow(),
        )
        for item in published:
            self.log.info("Published %s (%s)", item["message_id"], item["reason"])
        if not published:
            self.log.info("Nothing due for tenant %s", self.tenant_id)
        return published
