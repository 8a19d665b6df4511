"""The stored files of an instance's report: ``OptimizationInstanceResultFile`` rows, one per file.

The xlsx (`XLSX_NAME`) always; the gzip CSV of device assignments (`CSV_NAME`) when the SIMs do not fit in
one sheet (``report.build_report``). ``FileName`` names the file; legacy rows without one are the xlsx.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import delete, insert, or_, select
from sqlalchemy.engine import Engine

from include.carrier_optimization.amop import schema as s
from include.carrier_optimization.amop.repository import utcnow

LOG = logging.getLogger(__name__)

XLSX_NAME = "device_assignments.xlsx"
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_NAME = "device_assignments.csv.gz"
CSV_MIME = "application/gzip"


def store_result_file(
    engine: Engine,
    instance_id: int,
    xlsx: bytes,
    *,
    assignments_csv: bytes | None = None,
    now: dt.datetime | None = None,
) -> int:
    """Store the instance's xlsx and CSV (if any) as ``OptimizationInstanceResultFile`` rows.

    The instance's previous rows are replaced. One row per file, named in ``FileName`` (`XLSX_NAME`,
    `CSV_NAME`). Delete and inserts run in one transaction, so a retried report leaves exactly its
    files. Returns the id of the xlsx row.
    """
    if not xlsx:
        raise ValueError("`xlsx` must be the workbook's bytes; got an empty value")
    files = s.instance_result_file
    stamp = now or utcnow()
    stored = [(XLSX_NAME, xlsx)] + ([(CSV_NAME, assignments_csv)] if assignments_csv else [])
    with engine.begin() as conn:
        conn.execute(delete(files).where(files.c.InstanceId == instance_id))
        ids = [
            conn.execute(
                insert(files).values(
                    InstanceId=instance_id,
                    FileName=name,
                    AssignmentXlsxBytes=content,
                    IsDeleted=False,
                    CreatedBy="System",
                    CreatedDate=stamp,
                )
            ).inserted_primary_key[0]
            for name, content in stored
        ]
    LOG.info(
        "Instance %s: result files stored: %s",
        instance_id,
        ", ".join(
            f"{name} (id {i}, {len(content)} bytes)" for (name, content), i in zip(stored, ids, strict=True)
        ),
    )
    return int(ids[0])


def latest_result_file(engine: Engine, instance_id: int, name: str = XLSX_NAME) -> bytes | None:
    """The instance's stored file ``name`` (newest row not deleted), or None.

    Rows without a ``FileName`` (written before files were named) are the xlsx.
    """
    files = s.instance_result_file
    named = files.c.FileName == name
    if name == XLSX_NAME:
        named = or_(named, files.c.FileName.is_(None))
    with engine.connect() as conn:
        return conn.execute(
            select(files.c.AssignmentXlsxBytes)
            .where(files.c.InstanceId == instance_id, files.c.IsDeleted.is_(False), named)
            .order_by(files.c.Id.desc())
            .limit(1)
        ).scalar()
