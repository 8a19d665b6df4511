"""OptimizationReportOperator and upload_report: real SQLite AMOP database, local outbox, moto S3."""

from __future__ import annotations

import email
import email.policy
import gzip
import json
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from sqlalchemy import select

from include.carrier_optimization import pipeline
from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.repository import AmopRepository
from include.carrier_optimization.amop.schema import OptimizationStatus
from include.carrier_optimization.amop.storage import make_engine
from include.carrier_optimization.core.engines.optimal import solve_optimal
from include.carrier_optimization.core.fleet import generate_fleet
from plugins.compat import AirflowFailException
from plugins.operators.optimization_report import OptimizationReportOperator, upload_report
from tests.conftest import start_instance

DAG_ID = "carrier_optimization__acme"
BUCKET = "carrier-optimization-reports"


@pytest.fixture
def amop(sqlite_url, tmp_path, monkeypatch):
    """The embedded AMOP database (no ``amop_db`` connection), an outbox folder, no progress API."""
    monkeypatch.setenv("CARRIER_OPT_DB_URL", sqlite_url)
    monkeypatch.setenv("CARRIER_OPT_OUTBOX", str(tmp_path / "outbox"))
    for name in ("AIRFLOW_CONN_AMOP_DB", "AIRFLOW_CONN_AMOP_API", "AIRFLOW_CONN_SMTP_NOTIFICATIONS"):
        monkeypatch.delenv(name, raising=False)
    engine = make_engine(sqlite_url)
    s.create_schema(engine)
    yield engine
    engine.dispose()


def finished_instance(engine, *, n_sims: int = 80, winners: bool = True) -> tuple[dict, dict | None]:
    """Session and winners summary of an instance optimized by the optimal engine."""
    fleet = generate_fleet(n_sims, seed=11)
    period_id = AmopRepository(engine).write_fleet(fleet)
    request = pipeline.Request(
        tenant_id=1, service_provider_id=101, bill_period_id=period_id, has_synced=True
    )
    session, plan = start_instance(engine, request, run_key=f"{DAG_ID}/run", now=fleet.as_of)
    for group in plan.groups:
        pipeline.run_engine_for_group(engine, comm_group_id=group["comm_group_id"], solve=solve_optimal)
    if not winners:
        return session, {"instance_id": plan.instance_id}
    summary = pipeline.select_winners(engine, instance_id=plan.instance_id)
    pipeline.set_progress(engine, session["session_id"], 50)
    return session, {k: v for k, v in summary.items() if k != "groups"}


def read_email(path: str):
    return email.message_from_bytes(Path(path).read_bytes(), policy=email.policy.default)


def context() -> dict:
    return {"dag": SimpleNamespace(dag_id=DAG_ID), "run_id": "manual__1"}


def operator(session, summary, **kwargs) -> OptimizationReportOperator:
    return OptimizationReportOperator(
        task_id="report",
        session=session,
        summary=summary,
        tenant_name="Acme Logistics",
        recipients=("ops@acme.example",),
        **kwargs,
    )


def instance_state(engine, instance_id: int, session_id: int) -> tuple[int, int]:
    with engine.connect() as conn:
        status = conn.execute(
            select(s.optimization_instance.c.RunStatusId).where(s.optimization_instance.c.Id == instance_id)
        ).scalar_one()
        progress = conn.execute(
            select(s.optimization_session.c.Progress).where(s.optimization_session.c.Id == session_id)
        ).scalar_one()
    return status, progress


@pytest.fixture
def s3(sqs_endpoint):
    """A client of the local moto server (it serves S3 beside SQS) and an empty report bucket."""
    client = boto3.client("s3", endpoint_url=sqs_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    yield client
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


class TestUploadReport:
    def test_uploads_each_file_and_overwrites_on_rerun(self, s3):
        files = (("device_assignments.xlsx", b"xlsx v1"), ("savings_chart.png", b"png v1"))
        uris = upload_report(files, bucket=BUCKET, key_prefix="/reports/acme/instance-7/")
        assert uris == [
            f"s3://{BUCKET}/reports/acme/instance-7/device_assignments.xlsx",
            f"s3://{BUCKET}/reports/acme/instance-7/savings_chart.png",
        ]
        upload_report(
            ((files[0][0], b"xlsx v2"), files[1]), bucket=BUCKET, key_prefix="reports/acme/instance-7"
        )
        keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"])
        assert keys == [
            "reports/acme/instance-7/device_assignments.xlsx",
            "reports/acme/instance-7/savings_chart.png",
        ]
        body = s3.get_object(Bucket=BUCKET, Key=keys[0])["Body"].read()
        assert body == b"xlsx v2"


class TestOptimizationReportOperator:
    def test_template_fields_assigned_verbatim_and_no_io_in_constructor(self):
        op = operator({"session_id": 1}, "{{ ti.xcom_pull('winners') }}", s3_bucket="{{ var.value.bucket }}")
        for name in op.template_fields:
            assert name in op.__dict__
        assert op.s3_bucket == "{{ var.value.bucket }}"
        assert "db" not in op.__dict__ and "mail" not in op.__dict__

    def test_report_is_stored_uploaded_and_attached_with_progress_100(self, amop, s3, tmp_path):
        session, summary = finished_instance(amop)
        result = operator(session, summary, s3_bucket=BUCKET).execute(context())

        assert json.dumps(result) and len(json.dumps(result)) < 16 * 1024
        assert result["instance_id"] == summary["instance_id"]
        assert result["savings"] == summary["savings"]
        # Result file: exactly one row with the workbook.
        repo = AmopRepository(amop)
        assert repo.count_rows("OptimizationInstanceResultFile", InstanceId=summary["instance_id"]) == 1
        # S3: both files under the DAG, session and instance.
        prefix = f"carrier-optimization/reports/{DAG_ID}/session-{session['session_id']}"
        prefix += f"/instance-{summary['instance_id']}"
        assert result["s3"] == [
            f"s3://{BUCKET}/{prefix}/device_assignments.xlsx",
            f"s3://{BUCKET}/{prefix}/savings_chart.png",
        ]
        stored = s3.get_object(Bucket=BUCKET, Key=f"{prefix}/savings_chart.png")["Body"].read()
        assert stored.startswith(b"\x89PNG")
        # E-mail: the summary body and both attachments.
        message = read_email(result["email"])
        assert message["Subject"] == "Carrier Plan Optimization Results: Acme Logistics"
        parts = {p.get_filename(): p for p in message.walk() if p.get_filename()}
        assert set(parts) == {"device_assignments.xlsx", "savings_chart.png"}
        assert parts["savings_chart.png"].get_payload(decode=True) == stored
        text = next(p for p in message.walk() if p.get_content_type() == "text/plain").get_content()
        assert f"${summary['optimized_cost']:,.2f}" in text
        # Instance untouched, progress 100.
        status, progress = instance_state(amop, summary["instance_id"], session["session_id"])
        assert (status, progress) == (OptimizationStatus.CompleteWithSuccess, 100)

    def test_above_the_row_limit_the_csv_is_stored_uploaded_and_attached(self, amop, s3, monkeypatch):
        from include.carrier_optimization.amop import result_files
        from include.carrier_optimization.reporting import report

        monkeypatch.setattr(report, "DEVICE_SHEET_MAX_ROWS", 10)  # the 40 SIMs do not fit in a sheet
        session, summary = finished_instance(amop, n_sims=40)
        result = operator(session, summary, s3_bucket=BUCKET).execute(context())

        instance_id = summary["instance_id"]
        assert AmopRepository(amop).count_rows("OptimizationInstanceResultFile", InstanceId=instance_id) == 2
        csv_gz = result_files.latest_result_file(amop, instance_id, result_files.CSV_NAME)
        assert gzip.decompress(csv_gz).decode().count("\n") == 41  # header + 40 SIMs
        assert [uri.rsplit("/", 1)[1] for uri in result["s3"]] == [
            "device_assignments.xlsx",
            "device_assignments.csv.gz",
            "savings_chart.png",
        ]
        message = read_email(result["email"])
        parts = {p.get_filename(): p for p in message.walk() if p.get_filename()}
        assert set(parts) == {"device_assignments.xlsx", "device_assignments.csv.gz", "savings_chart.png"}
        assert parts["device_assignments.csv.gz"].get_payload(decode=True) == csv_gz
        text = next(p for p in message.walk() if p.get_content_type() == "text/plain").get_content()
        assert "device_assignments.csv.gz (all 40 device assignments" in text

    def test_rerun_replaces_the_result_file(self, amop):
        session, summary = finished_instance(amop, n_sims=40)
        first = operator(session, summary).execute(context())
        second = operator(session, summary).execute(context())
        assert first["s3"] == second["s3"] == []
        repo = AmopRepository(amop)
        assert repo.count_rows("OptimizationInstanceResultFile", InstanceId=summary["instance_id"]) == 1

    def test_large_workbook_is_not_attached(self, amop):
        session, summary = finished_instance(amop, n_sims=40)
        result = operator(session, summary, max_attachment_bytes=100).execute(context())
        message = read_email(result["email"])
        assert [p.get_filename() for p in message.walk() if p.get_filename()] == ["savings_chart.png"]
        text = next(p for p in message.walk() if p.get_content_type() == "text/plain").get_content()
        assert f"stored as result file {result['result_file_id']}" in text

    def test_failure_leaves_instance_and_progress_untouched(self, amop):
        session, summary = finished_instance(amop, n_sims=40, winners=False)
        before = instance_state(amop, summary["instance_id"], session["session_id"])
        with pytest.raises(AirflowFailException, match="have no winner yet"):
            operator(session, summary).execute(context())
        assert instance_state(amop, summary["instance_id"], session["session_id"]) == before
        assert before[0] == OptimizationStatus.RunningPermutations

    @pytest.mark.parametrize("summary", [None, {}, {"instance_id": "x"}], ids=["none", "empty", "text"])
    def test_summary_without_instance_id_fails(self, summary):
        with pytest.raises(
            AirflowFailException, match=r"`summary\['instance_id'\]` must be a positive integer"
        ):
            operator({"session_id": 1}, summary).execute(context())
