"""The device sheet's XML: one f-string a full row, blanks left out, chunks written by a second thread."""

from __future__ import annotations

import io
import zipfile

import pandas as pd
import pytest

from include.carrier_optimization.reporting import device_sheet
from include.carrier_optimization.reporting.device_sheet import _rows_xml, _text, _write_behind, _xml_text

ROWS = pd.DataFrame(
    {
        "iccid": ["8901", "8902", "8903"],
        "msisdn": ["555-1", None, "555<3>"],
        "comm_plan": ["A & B", "A & B", "C"],
        "usage_mb": [1.235, 0.0, 2048.5],
        "current": ["P1", "", "P2"],
        "recommended": ["P2", "P1", "P<2>"],
        "cost": [10.1235, 0.0, 10.5],
    }
)


EMPTY_SHEET = '<dimension ref="A1:G1"/><sheetData><row r="1"/></sheetData>'


def cell_by_cell(rows: pd.DataFrame, first: int) -> str:
    """The XML as written one call per cell (the former way): the reference."""
    names = ("iccid", "msisdn", "comm_plan", "current", "recommended")
    a, b, c, e, f = (_xml_text(rows[n]) for n in names)
    usage, cost = rows["usage_mb"].tolist(), rows["cost"].tolist()
    return "".join(
        f'<row r="{r}">{_text("A", r, a[i])}{_text("B", r, b[i])}{_text("C", r, c[i])}'
        f'<c r="D{r}" s="5"><v>{usage[i]!r}</v></c>{_text("E", r, e[i])}{_text("F", r, f[i])}'
        f'<c r="G{r}" s="6"><v>{cost[i]!r}</v></c></row>'
        for i, r in enumerate(range(first, first + len(rows)))
    )


def test_texts_are_escaped_and_missing_ones_empty():
    assert _xml_text(ROWS["msisdn"]) == ["555-1", "", "555&lt;3&gt;"]
    assert _xml_text(ROWS["comm_plan"]) == ["A &amp; B", "A &amp; B", "C"]
    assert _xml_text(pd.Series(["x", None, 3], dtype=object)) == ["x", "", "3"]


def test_full_rows_and_rows_with_blanks_match_the_cell_by_cell_xml():
    xml = _rows_xml(ROWS, 2, (5, 6))
    assert xml == cell_by_cell(ROWS, 2)
    assert '<row r="2"><c r="A2" t="inlineStr"><is><t>8901</t></is></c>' in xml
    assert '<c r="B3"' not in xml and '<c r="E3"' not in xml  # blanks write no cell
    assert '<c r="G4" s="6"><v>10.5</v></c></row>' in xml


def test_chunks_are_written_in_order_and_a_writer_error_reaches_the_caller():
    written = io.BytesIO()
    _write_behind(written, (str(i).encode() for i in range(100)))
    assert written.getvalue() == "".join(map(str, range(100))).encode()

    class Broken:
        def write(self, chunk):
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        _write_behind(Broken(), (b"x" for _ in range(10)))


def test_the_sheet_is_the_same_whatever_the_chunk_size(monkeypatch):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as book:
        book.writestr(
            "sheet.xml", '<worksheet><dimension ref="A1:G1"/><sheetData><row r="1"/></sheetData></worksheet>'
        )
    frame = pd.concat([ROWS] * 5, ignore_index=True)
    whole = device_sheet.stream_device_rows(buffer.getvalue(), "sheet.xml", frame, (5, 6))
    monkeypatch.setattr(device_sheet, "_ROW_CHUNK", 2)
    chunked = device_sheet.stream_device_rows(buffer.getvalue(), "sheet.xml", frame, (5, 6))
    texts = [zipfile.ZipFile(io.BytesIO(x)).read("sheet.xml").decode() for x in (whole, chunked)]
    assert texts[0] == texts[1]
    assert texts[0].startswith('<worksheet><dimension ref="A1:G16"/><sheetData><row r="1"/><row r="2">')
    assert texts[0].endswith(f"{cell_by_cell(frame, 2)}</sheetData></worksheet>")
