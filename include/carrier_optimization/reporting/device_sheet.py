"""The device sheet of the report's workbook: its rows streamed as XML into the workbook's zip.

XlsxWriter's per-cell path, even in constant-memory mode, takes about 10 s for 100,000 SIMs; here the
rows are written as text, chunk by chunk (no cell objects, no sheet-sized string), one f-string a row,
and each chunk is compressed by a second thread while the next one is built (zlib releases the GIL).
"""

from __future__ import annotations

import io
import queue
import threading
import zipfile
from collections.abc import Iterator
from typing import Any
from xml.sax.saxutils import escape as xml_escape

import pandas as pd

#: Columns of the assignments frame, in the order of ``report_files.ASSIGNMENT_HEADERS``.
ASSIGNMENT_COLUMNS = ("iccid", "msisdn", "comm_plan", "usage_mb", "current", "recommended", "cost")
#: Device rows per write into the sheet's zip entry.
_ROW_CHUNK = 10_000


def assignment_rows(assignments: pd.DataFrame) -> pd.DataFrame:
    """The assignment columns as written to the sheet and the CSV: usage to 0.001 MB, cost to 0.0001."""
    rows = assignments.loc[:, list(ASSIGNMENT_COLUMNS)].copy()
    rows["usage_mb"] = rows["usage_mb"].round(3)
    rows["cost"] = rows["cost"].round(4)
    return rows


def _xml_text(values: pd.Series) -> list[str]:
    """Cell texts escaped for XML (``&``, ``<``, ``>``); missing values as empty strings.

    Whether any text needs escaping is asked of the texts joined (pandas' ``str.contains`` loops in
    Python over the str dtype: about 0.6 s for the five text columns of 100,000 SIMs).
    """
    text = values.fillna("").astype(str).tolist()
    joined = "".join(text)
    if "&" in joined or "<" in joined or ">" in joined:
        return [xml_escape(value) for value in text]
    return text


def _text(column: str, row: int, value: str) -> str:
    """An inline-string cell; an empty value writes no cell (a blank)."""
    return f'<c r="{column}{row}" t="inlineStr"><is><t>{value}</t></is></c>' if value else ""


def _rows_xml(rows: pd.DataFrame, first: int, styles: tuple) -> str:
    """``<row>`` elements of ``rows``, the first one at sheet row ``first`` (1-based).

    A row whose five texts are all non-empty (nearly every one) is one f-string, three times faster than
    a call per cell; a row with an empty text leaves that cell out (`_text`).
    """
    u, m = styles  # usage and money style ids
    names = ("iccid", "msisdn", "comm_plan", "current", "recommended")
    a, b, c, e, f = (_xml_text(rows[name]) for name in names)
    usage, cost = rows["usage_mb"].to_numpy(dtype=float).tolist(), rows["cost"].to_numpy(dtype=float).tolist()
    out: list[str] = []
    add = out.append
    numbers = range(first, first + len(rows))
    for r, va, vb, vc, vd, ve, vf, vg in zip(numbers, a, b, c, usage, e, f, cost, strict=True):
        if va and vb and vc and ve and vf:
            add(
                f'<row r="{r}"><c r="A{r}" t="inlineStr"><is><t>{va}</t></is></c>'
                f'<c r="B{r}" t="inlineStr"><is><t>{vb}</t></is></c>'
                f'<c r="C{r}" t="inlineStr"><is><t>{vc}</t></is></c><c r="D{r}" s="{u}"><v>{vd!r}</v></c>'
                f'<c r="E{r}" t="inlineStr"><is><t>{ve}</t></is></c>'
                f'<c r="F{r}" t="inlineStr"><is><t>{vf}</t></is></c>'
                f'<c r="G{r}" s="{m}"><v>{vg!r}</v></c></row>'
            )
        else:
            add(
                f'<row r="{r}">{_text("A", r, va)}{_text("B", r, vb)}{_text("C", r, vc)}'
                f'<c r="D{r}" s="{u}"><v>{vd!r}</v></c>{_text("E", r, ve)}{_text("F", r, vf)}'
                f'<c r="G{r}" s="{m}"><v>{vg!r}</v></c></row>'
            )
    return "".join(out)


def _write_behind(sheet: Any, chunks: Iterator[bytes]) -> None:
    """Write ``chunks`` to the zip entry ``sheet`` from a second thread, in order.

    zlib deflates (and checksums) without the GIL, so the entry's compression (about 0.5 s per 100,000
    SIMs) runs beside the building of the next chunk's XML instead of after it. At most two chunks wait.
    """
    pending: queue.Queue[bytes | None] = queue.Queue(maxsize=2)
    failure: list[BaseException] = []

    def drain() -> None:
        while (chunk := pending.get()) is not None:
            if not failure:
                try:
                    sheet.write(chunk)
                except BaseException as error:  # handed to the caller's thread below
                    failure.append(error)

    writer = threading.Thread(target=drain, name="report-sheet-writer", daemon=True)
    writer.start()
    try:
        for chunk in chunks:
            if failure:
                break
            pending.put(chunk)
    finally:
        pending.put(None)
        writer.join()
    if failure:
        raise failure[0]


def stream_device_rows(xlsx: bytes, sheet_path: str, assignments: pd.DataFrame, styles: tuple) -> bytes:
    """Copy the workbook, writing the device rows (from row 2) into the sheet ``sheet_path``.

    Strings are inline (``t="inlineStr"``), usage and cost numbers carry the column's style ids
    ``styles``; rows go to the zip entry in chunks of `_ROW_CHUNK`, never as one string, each chunk
    compressed while the next is built (`_write_behind`).
    """
    rows = assignment_rows(assignments)
    n = len(rows)
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(xlsx)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as target,
    ):
        for info in source.infolist():
            content = source.read(info.filename)
            if info.filename != sheet_path:
                target.writestr(info, content, compress_type=zipfile.ZIP_DEFLATED)
                continue
            head, tail = content.decode("utf-8").split("</sheetData>")
            head = head.replace('<dimension ref="A1:G1"/>', f'<dimension ref="A1:G{n + 1}"/>')
            # Opened by name, the entry gets the zip's fast compression level (an XML of ~370 bytes a row).
            with target.open(sheet_path, "w", force_zip64=True) as sheet:
                sheet.write(head.encode("utf-8"))
                _write_behind(
                    sheet,
                    (
                        _rows_xml(rows.iloc[first : first + _ROW_CHUNK], first + 2, styles).encode("utf-8")
                        for first in range(0, n, _ROW_CHUNK)
                    ),
                )
                sheet.write(("</sheetData>" + tail).encode("utf-8"))
    return out.getvalue()
