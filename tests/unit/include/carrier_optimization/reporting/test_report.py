"""Result report on a real AMOP database (SQLite and PostgreSQL): workbook, chart, summary, result file."""

from __future__ import annotations

import io
import struct

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from include.carrier_optimization import pipeline
from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.repository import AmopRepository
from include.carrier_optimization.amop.result_files import latest_result_file, store_result_file
from include.carrier_optimization.core.engines.optimal import solve_optimal
from include.carrier_optimization.core.fleet import generate_fleet
from include.carrier_optimization.reporting.report import ReportError, build_report
from include.carrier_optimization.reporting.report_files import (
    ASSIGNMENT_HEADERS,
    ASSIGNMENTS_SHEET,
    STATISTICS_HEADERS,
    STATISTICS_SHEET,
    SUMMARY_SHEET,
    TOTAL_LABEL,
)

N_SIMS = 180
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_instance(engine, *, n_sims: int = N_SIMS, seed: int = 5, winners: bool = True) -> dict:
    """A finished instance: fleet, session, count, one queue batch per group, engine, winners."""
    fleet = generate_fleet(n_sims, seed=seed)
    period_id = AmopRepository(engine).write_fleet(fleet)
    request = pipeline.Request(
        tenant_id=1, service_provider_id=101, bill_period_id=period_id, has_synced=True
    )
    session = pipeline.open_session(engine, request, run_key="dag/report-test", now=fleet.as_of)
    plan = pipeline.prepare_instance(
        engine, session_id=session["session_id"], request=request, batch_size=40, now=fleet.as_of
    )
    first_batch = {}
    for batch in plan.batches:
        first_batch.setdefault(batch["comm_group_id"], batch)
    for batch in first_batch.values():
        pipeline.write_queue_batch(engine, **batch)
        pipeline.run_optimizer_batch(engine, queues_per_instance=5, **batch)
    for group in plan.groups:
        pipeline.run_engine_for_group(engine, comm_group_id=group["comm_group_id"], solve=solve_optimal)
    summary = pipeline.select_winners(engine, instance_id=plan.instance_id) if winners else None
    return {"instance_id": plan.instance_id, "session": session, "summary": summary, "fleet": fleet}


def winners_total_cost(engine, instance_id: int) -> float:
    """Σ TotalCost of the winner queues, read from OptimizationQueue (not from the report)."""
    q, summary = s.optimization_queue, s.comm_group_summary
    with engine.connect() as conn:
        return float(
            conn.execute(
                select(func.sum(q.c.TotalCost)).where(
                    q.c.Id.in_(select(summary.c.WinnerQueueId).where(summary.c.InstanceId == instance_id))
                )
            ).scalar_one()
        )


def snapshot(engine, instance_id: int) -> dict[str, str]:
    """ICCID -> comm plan of the instance's device snapshot."""
    d = s.optimization_device
    with engine.connect() as conn:
        rows = conn.execute(
            select(d.c.ICCID, d.c.CommunicationPlan).where(d.c.InstanceId == instance_id)
        ).all()
    return dict(rows)


def allowed_codes(engine) -> dict[str, set[str]]:
    """Comm plan -> codes of its allowed carrier rate plans."""
    with engine.connect() as conn:
        codes = dict(conn.execute(select(s.carrier_rate_plan.c.Id, s.carrier_rate_plan.c.RatePlanCode)).all())
        comm = conn.execute(
            select(s.communication_plan.c.CommunicationPlanName, s.communication_plan.c.RatePlanIds)
        ).all()
    return {
        name: {codes[int(i)] for i in ids.split(",") if i.strip() and int(i) in codes} for name, ids in comm
    }


def rows_of(sheet) -> list[tuple]:
    return list(sheet.iter_rows(values_only=True))


def test_workbook_sheets_headers_rows_and_totals(db_engine):
    run = run_instance(db_engine)
    report = build_report(db_engine, run["instance_id"])
    book = load_workbook(io.BytesIO(report.xlsx), read_only=True)

    assert book.sheetnames == [SUMMARY_SHEET, STATISTICS_SHEET, ASSIGNMENTS_SHEET]
    devices = rows_of(book[ASSIGNMENTS_SHEET])
    stats = rows_of(book[STATISTICS_SHEET])
    assert devices[0] == ASSIGNMENT_HEADERS
    assert stats[0] == STATISTICS_HEADERS

    # One assignment row per SIM of the snapshot, each on a plan its comm plan allows.
    iccids = snapshot(db_engine, run["instance_id"])
    body = devices[1:]
    assert len(body) == N_SIMS == len(iccids)
    assert {row[0] for row in body} == set(iccids)
    allowed = allowed_codes(db_engine)
    for iccid, _msisdn, comm_plan, _usage, _current, recommended, _cost in body:
        assert comm_plan == iccids[iccid]
        assert recommended in allowed[comm_plan], f"{iccid}: {recommended} not allowed on {comm_plan}"

    # Totals: device costs and the statistics total both equal the winners' TotalCost.
    winners = winners_total_cost(db_engine, run["instance_id"])
    assert sum(row[6] for row in body) == pytest.approx(winners, abs=0.01)
    *per_plan, total = stats[1:]
    assert total[0] == TOTAL_LABEL
    assert total[1] == N_SIMS == sum(row[1] for row in per_plan)
    assert total[6] == pytest.approx(winners, abs=0.01)
    assert total[6] == pytest.approx(report.figures["optimized_cost"], abs=0.01)
    assert len(per_plan) == len(set(iccids.values())) == report.figures["comm_plans"]
    # Cost before recomputed by the report equals the count step's current cost per comm group.
    with db_engine.connect() as conn:
        current = conn.execute(
            select(func.sum(s.comm_group_summary.c.CurrentCost)).where(
                s.comm_group_summary.c.InstanceId == run["instance_id"]
            )
        ).scalar_one()
    assert total[5] == pytest.approx(float(current), abs=0.01)
    for row in per_plan:
        assert row[7] == pytest.approx(row[5] - row[6], abs=1e-3)
        assert row[2] == len(row[3].split(", "))


def test_figures_and_summary_text_match_the_winners_step(db_engine):
    run = run_instance(db_engine, n_sims=100)
    report = build_report(db_engine, run["instance_id"])
    summary = run["summary"]

    for key in ("devices", "current_cost", "optimized_cost", "savings", "lower_bound", "gap", "changes"):
        assert report.figures[key] == summary[key], key
    assert report.figures["lower_bound"] <= report.figures["optimized_cost"]
    text = report.summary_text
    assert f"${summary['optimized_cost']:,.2f}" in text
    assert f"${summary['current_cost']:,.2f}" in text
    assert f"${summary['savings']:,.2f}" in text
    assert f"${summary['lower_bound']:,.2f}" in text
    assert f"{summary['gap']:.4%}" in text
    assert run["session"]["session_guid"] in text
    for st in report.statistics:
        assert st.comm_plan in text


def test_chart_is_a_png_of_non_trivial_size(db_engine, tmp_path):
    run = run_instance(db_engine, n_sims=80)
    report = build_report(db_engine, run["instance_id"])
    png = report.chart_png

    assert png.startswith(PNG_SIGNATURE)
    assert png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    assert width >= 800 and height >= 400
    assert len(png) > 20_000
    (tmp_path / report.chart_name).write_bytes(png)
    assert dict(report.attachments) == {"device_assignments.xlsx": report.xlsx, "savings_chart.png": png}


def test_result_file_is_replaced_not_duplicated(db_engine):
    run = run_instance(db_engine, n_sims=60)
    report = build_report(db_engine, run["instance_id"])
    store_result_file(db_engine, run["instance_id"], b"an older workbook")
    store_result_file(db_engine, run["instance_id"], report.xlsx)

    repo = AmopRepository(db_engine)
    assert repo.count_rows("OptimizationInstanceResultFile", InstanceId=run["instance_id"]) == 1
    assert latest_result_file(db_engine, run["instance_id"]) == report.xlsx
    assert latest_result_file(db_engine, run["instance_id"] + 1) is None


def test_report_refuses_an_instance_without_winners(db_engine):
    run = run_instance(db_engine, n_sims=40, winners=False)
    with pytest.raises(ReportError, match=r"comm groups .* have no winner yet"):
        build_report(db_engine, run["instance_id"])
    with pytest.raises(ReportError, match="instance 999 does not exist"):
        build_report(db_engine, 999)


@pytest.mark.parametrize("bad", [0, -3, "x", None, 1.5], ids=["zero", "negative", "text", "none", "float"])
def test_build_report_iv(bad):
    with pytest.raises(ValueError, match="`instance_id` must be a positive integer"):
        build_report(None, bad)


def test_store_result_file_rejects_empty_bytes():
    with pytest.raises(ValueError, match="`xlsx` must be the workbook's bytes"):
        store_result_file(None, 1, b"")


def test_above_the_row_limit_assignments_go_to_a_gzip_csv_and_both_files_are_stored(db_engine):
    import csv
    import gzip

    from include.carrier_optimization.amop.result_files import CSV_NAME, XLSX_NAME

    run = run_instance(db_engine, n_sims=60)
    whole = build_report(db_engine, run["instance_id"])
    report = build_report(db_engine, run["instance_id"], max_rows=60)  # 60 SIMs + header do not fit

    book = load_workbook(io.BytesIO(report.xlsx), read_only=True)
    assert book.sheetnames == [SUMMARY_SHEET, STATISTICS_SHEET]
    summary = dict(rows_of(book[SUMMARY_SHEET]))
    assert CSV_NAME in summary["Device assignments"]
    assert rows_of(book[STATISTICS_SHEET]) == rows_of(
        load_workbook(io.BytesIO(whole.xlsx), read_only=True)[STATISTICS_SHEET]
    )
    # The CSV holds exactly the rows the device sheet holds below the limit.
    table = list(csv.reader(io.StringIO(gzip.decompress(report.assignments_csv).decode("utf-8"))))
    assert tuple(table[0]) == ASSIGNMENT_HEADERS
    sheet = rows_of(load_workbook(io.BytesIO(whole.xlsx), read_only=True)[ASSIGNMENTS_SHEET])[1:]
    assert [row[0] for row in table[1:]] == [row[0] for row in sheet]
    assert sum(float(row[6]) for row in table[1:]) == pytest.approx(sum(row[6] for row in sheet), abs=1e-6)
    assert whole.assignments_csv is None
    # The e-mail names both files and carries them.
    assert CSV_NAME in report.summary_text and XLSX_NAME in report.summary_text
    assert "60 device assignments" in report.summary_text
    assert [name for name, _ in report.attachments] == [XLSX_NAME, CSV_NAME, report.chart_name]

    store_result_file(db_engine, run["instance_id"], whole.xlsx)
    store_result_file(db_engine, run["instance_id"], report.xlsx, assignments_csv=report.assignments_csv)
    store_result_file(db_engine, run["instance_id"], report.xlsx, assignments_csv=report.assignments_csv)
    repo = AmopRepository(db_engine)
    assert repo.count_rows("OptimizationInstanceResultFile", InstanceId=run["instance_id"]) == 2
    assert latest_result_file(db_engine, run["instance_id"]) == report.xlsx
    assert latest_result_file(db_engine, run["instance_id"], CSV_NAME) == report.assignments_csv
    # Back under the limit, the CSV row goes away.
    store_result_file(db_engine, run["instance_id"], whole.xlsx)
    assert latest_result_file(db_engine, run["instance_id"], CSV_NAME) is None
