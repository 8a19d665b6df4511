"""The report step: build the result report, store and upload it, e-mail it, report progress 100."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook

from include.carrier_optimization.amop.result_files import store_result_file
from include.carrier_optimization.reporting.notify import RESULTS_SUBJECT, Email
from include.carrier_optimization.reporting.report import ReportError, build_report
from plugins.compat import AirflowFailException, Context
from plugins.operators.base import AmopBaseOperator, positive_int


class OptimizationReportOperator(AmopBaseOperator):
    """Build the result report, store it, upload it, e-mail it, and report progress 100.

    The report (:func:`reporting.report.build_report`) is an xlsx with a statistics
    sheet per communication plan and a device assignment sheet, a savings chart (PNG) and the e-mail
    summary. The xlsx is stored in ``OptimizationInstanceResultFile`` (replacing the instance's previous
    row); with ``s3_bucket`` set both files are uploaded (overwritten on a rerun); the result e-mail
    carries both as attachments (the xlsx only up to ``max_attachment_bytes``). Above 200,000 SIMs (the
    device sheet's limit) the device assignments come as a gzip CSV beside the xlsx: stored, uploaded and
    attached the same way.

    A report failure fails this task only: the winners step has already written the result rows and
    ended the instance ``CompleteWithSuccess``, and this task never changes the instance status, so the
    optimization is not lost and the report can be retried or cleared on its own. An instance without
    winners fails at once (:class:`AirflowFailException`, no retries); database, S3 or rendering errors
    raise and are retried.

    :param session: the session step's dict (templated).
    :param summary: the winners step's summary; its ``instance_id`` is reported (templated).
    :param tenant_name: shown in the subject.
    :param recipients: result e-mail recipients.
    :param s3_bucket: bucket receiving the xlsx and the PNG (templated; empty: no upload).
    :param s3_key_prefix: key prefix (templated, default ``carrier-optimization/reports``); the files go
        to ``<prefix>/<dag_id>/session-<session_id>/instance-<instance_id>/<file>``.
    :param aws_conn_id: AWS connection of the upload (default ``aws_default``).
    :param max_attachment_bytes: largest xlsx or CSV attached to the e-mail (default 10 MiB, the SES limit).
    """

    template_fields: Sequence[str] = ("s3_bucket", "s3_key_prefix", "session", "summary")

    def __init__(
        self,
        *,
        session: Any,
        summary: Any,
        tenant_name: str,
        recipients: Sequence[str] = (),
        s3_bucket: str | None = None,
        s3_key_prefix: str = "carrier-optimization/reports",
        aws_conn_id: str | None = "aws_default",
        max_attachment_bytes: int = 10 * 1024 * 1024,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.session = session
        self.summary = summary
        self.tenant_name = tenant_name
        self.recipients = recipients
        self.s3_bucket = s3_bucket
        self.s3_key_prefix = s3_key_prefix
        self.aws_conn_id = aws_conn_id
        self.max_attachment_bytes = max_attachment_bytes

    def execute(self, context: Context) -> dict[str, Any]:
        """Run the step (see the class docstring)."""
        instance_id = positive_int("summary['instance_id']", (self.summary or {}).get("instance_id"))
        engine = self.db.get_conn()
        try:
            result = build_report(engine, instance_id)
        except ReportError as error:
            raise AirflowFailException(str(error)) from error
        file_id = store_result_file(engine, instance_id, result.xlsx, assignments_csv=result.assignments_csv)
        uploaded: list[str] = []
        if self.s3_bucket:
            prefix = (
                f"{self.s3_key_prefix.strip('/')}/{context['dag'].dag_id}/"
                f"session-{self.session['session_id']}/instance-{instance_id}"
            )
            uploaded = upload_report(
                result.attachments, bucket=self.s3_bucket, key_prefix=prefix, aws_conn_id=self.aws_conn_id
            )
        body, attachments = result.summary_text, result.attachments
        for name, content in result.attachments:
            if name != result.chart_name and len(content) > self.max_attachment_bytes:
                attachments = tuple(a for a in attachments if a[0] != name)
                where = [uri for uri in uploaded if uri.endswith("/" + name)]
                body += (
                    f"\n\n{name} ({len(content):,} bytes) is too large to attach; it is stored as result "
                    f"file {file_id}" + (f" and at {where[0]}" if where else "") + "."
                )
        self.log.info("Result report of instance %s\n%s", instance_id, result.summary_text)
        where = self.mail.send(
            Email(tuple(self.recipients), RESULTS_SUBJECT.format(tenant=self.tenant_name), body, attachments)
        )
        self.progress(self.session, 100, int(result.figures["devices"]))
        return {
            "instance_id": instance_id,
            "result_file_id": file_id,
            "email": where,
            "s3": uploaded,
            "savings": result.figures["savings"],
        }


def upload_report(
    files: Sequence[tuple[str, bytes]],
    *,
    bucket: str,
    key_prefix: str,
    aws_conn_id: str | None = "aws_default",
) -> list[str]:
    """Upload ``(name, bytes)`` pairs to ``s3://<bucket>/<key_prefix>/<name>``, overwriting; return URIs."""
    hook = S3Hook(aws_conn_id=aws_conn_id)
    uris = []
    for name, content in files:
        key = f"{key_prefix.strip('/')}/{name}"
        hook.load_bytes(content, key=key, bucket_name=bucket, replace=True)
        uris.append(f"s3://{bucket}/{key}")
    return uris
