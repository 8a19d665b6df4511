"""Operator that starts a device sync for an optimization session (DESIGN §6 step 4)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import cached_property
from typing import Any

from sqlalchemy import delete

from include.carrier_optimization import pipeline
from include.carrier_optimization.queues import resolve_queue_url
from include.carrier_optimization.schema import STAGING_TABLES
from plugins.compat import AirflowSkipException, Context
from plugins.operators.optimization import AmopBaseOperator

NEXT_STEP = "DeviceUsageByRatePlan"


class DeviceSyncRequestOperator(AmopBaseOperator):
    """Clear the provider's staging tables and publish the device-sync request (progress 20).

    Skipped when the request says the devices are synced (``HasSynced``). The message carries the
    legacy attributes (``PageNumber``, ``LastSyncDate`` as ISO, ``ServiceProviderId``, ``NextStep``,
    ``OptimizationSessionId``) plus ``TenantId`` and ``BillPeriodId``, so the sync worker's completion
    message can name the session it continues. Returns the SQS ``MessageId``.

    :param session: the session step's dict (templated).
    :param sqs_queue: name or URL of the device-sync queue (templated).
    :param aws_conn_id: Airflow AWS connection (default ``aws_default``).
    """

    template_fields: Sequence[str] = ("session", "sqs_queue")

    def __init__(
        self, *, session: Any, sqs_queue: str, aws_conn_id: str | None = "aws_default", **kwargs: Any
    ):
        super().__init__(**kwargs)
        self.session = session
        self.sqs_queue = sqs_queue
        self.aws_conn_id = aws_conn_id

    @cached_property
    def sqs(self):
        """The provider's SQS hook."""
        from airflow.providers.amazon.aws.hooks.sqs import SqsHook

        return SqsHook(aws_conn_id=self.aws_conn_id)

    def execute(self, context: Context) -> str:
        """Clear staging and publish the sync request, or skip when synced."""
        request = pipeline.Request.from_dict(self.session["request"])
        if request.has_synced:
            raise AirflowSkipException("HasSynced: the devices are synced, no sync needed")
        self.progress(self.session, 20)
        engine = self.db.get_conn()
        with engine.begin() as conn:
            for table in STAGING_TABLES:
                conn.execute(delete(table).where(table.c.ServiceProviderId == request.service_provider_id))
        last_sync = dt.datetime.now(dt.UTC) - dt.timedelta(days=32)
        attributes = {
            "PageNumber": "1",
            "LastSyncDate": last_sync.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "ServiceProviderId": str(request.service_provider_id),
            "NextStep": NEXT_STEP,
            "OptimizationSessionId": str(self.session["session_id"]),
            "TenantId": str(request.tenant_id),
            "BillPeriodId": str(self.session["billing_period_id"]),
        }
        url = resolve_queue_url(self.sqs.conn, self.sqs_queue)
        response = self.sqs.send_message(
            queue_url=url,
            message_body=f"Next page number is 1 for the last sync date {attributes['LastSyncDate']}",
            message_attributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
        )
        self.log.info(
            "Device-sync request %s sent for session %s", response["MessageId"], self.session["session_id"]
        )
        return response["MessageId"]
