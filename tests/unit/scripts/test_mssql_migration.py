"""The checked-in T-SQL migration is what the schema's ADDED marks generate (mssql dialect)."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Integer, MetaData, Table

from include.carrier_optimization.amop.schema import ADDED, metadata
from scripts import mssql_migration as migration


def test_the_checked_in_script_is_the_generated_one():
    assert migration.SCRIPT.read_text() == migration.generate(), (
        "sql/mssql_migration.sql is stale: run python -m scripts.mssql_migration"
    )


def test_check_mode_reports_a_stale_file(tmp_path, capsys):
    stale = tmp_path / "m.sql"
    stale.write_text("-- old\n")
    assert migration.main(["--check", "--out", str(stale)]) == 1
    assert "not what the schema generates" in capsys.readouterr().out
    assert migration.main(["--out", str(stale)]) == 0
    assert migration.main(["--check", "--out", str(stale)]) == 0 and stale.read_text() == migration.generate()


def test_every_marked_table_and_column_is_in_the_script():
    script = migration.generate()
    for table in metadata.tables.values():
        if table.info.get("added"):
            assert f"CREATE TABLE [{table.name}]" in script
        else:
            assert f"CREATE TABLE [{table.name}]" not in script  # the legacy tables exist already
            for column in table.columns:
                if column.info.get("added"):
                    assert f"ALTER TABLE [{table.name}] ADD [{column.name}] " in script


def test_the_product_additions_are_marked():
    added = {
        f"{t.name}.{c.name}"
        for t in metadata.tables.values()
        if not t.info.get("added")
        for c in t.columns
        if c.info.get("added")
    }
    assert {
        "OptimizationQueue.QueueKind",
        "OptimizationQueue.SequenceIndex",
        "OptimizationSession.AirflowRunId",
        "OptimizationSession.Progress",
        "OptimizationInstance.DeviceCount",
    } <= added
    assert {"OptimizationCommGroupSummary", "OptimizationCheckpoint"} <= {
        t.name for t in metadata.tables.values() if t.info.get("added")
    }


def test_not_null_columns_get_a_default_and_uniqueness_skips_legacy_nulls():
    script = migration.generate()
    assert (
        "ADD [QueueKind] VARCHAR(20) NOT NULL CONSTRAINT [DF_OptimizationQueue_QueueKind] DEFAULT 'sequence';"
        in script
    )
    assert "([AirflowRunId]) WHERE [AirflowRunId] IS NOT NULL;" in script
    assert "WHERE [SequenceIndex] IS NOT NULL;" in script
    assert " TEXT " not in script and script.count("\nGO\n") >= 10


def test_a_not_null_addition_without_a_default_is_refused():
    table = Table(
        "Legacy",
        MetaData(),
        Column("Id", Integer, primary_key=True),
        Column("New", Integer, nullable=False, info=ADDED),
    )
    with pytest.raises(ValueError, match=r"^Added NOT NULL column Legacy.New needs a scalar default$"):
        migration._add_column(table.c.New)
