"""Run statuses of instances and queues, with their ids read by name from the AMOP lookup at run time.

The code speaks the product's ids (:class:`OptimizationStatus`, 1..6; SQLite and PostgreSQL are seeded
with them). On a database whose ``OptimizationStatus`` lookup numbers them differently (the AMOP SQL
Server: only NotStarted = 1 is evidenced, docs/architecture.md), :func:`bind_status_ids` reads the ids
by name once per engine, and the :class:`StatusId` column type translates every status written or
compared to the database's id and every status read back to the product's id.
"""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import Integer, column, select, table
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.types import TypeDecorator

_TO_DATABASE = "carrier_opt_status_to_database"
_FROM_DATABASE = "carrier_opt_status_from_database"


class OptimizationStatus(enum.IntEnum):
    """Run status of instances and queues (``OptimizationStatus`` lookup; only NotStarted=1 is evidenced)."""

    NotStarted = 1
    CommGroupSetup = 2
    RunningPermutations = 3
    CleaningUp = 4
    CompleteWithSuccess = 5
    CompleteWithErrors = 6


class StatusId(TypeDecorator):
    """An ``INTEGER`` status column: product ids in Python, the lookup's ids in the database."""

    impl = Integer
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> int | None:
        """Product id → database id (unchanged until :func:`bind_status_ids` ran on the engine)."""
        mapping = getattr(dialect, _TO_DATABASE, None)
        if value is None or mapping is None:
            return value
        return mapping[int(value)]

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        """Database id → product id; an id outside the six product statuses is returned as it is."""
        mapping = getattr(dialect, _FROM_DATABASE, None)
        if value is None or mapping is None:
            return value
        return mapping.get(int(value), int(value))


def bind_status_ids(engine: Engine) -> dict[str, int]:
    """Read the status ids by name from the engine's ``OptimizationStatus`` lookup and use them.

    Returns ``{name: database id}``. A lookup that lacks one of the product's statuses is a
    ``LookupError`` naming the missing names: no status is guessed.
    """
    lookup = table("OptimizationStatus", column("Id"), column("Name"))
    with engine.connect() as conn:
        rows = {str(name).strip(): int(id_) for id_, name in conn.execute(select(lookup.c.Id, lookup.c.Name))}
    missing = [status.name for status in OptimizationStatus if status.name not in rows]
    if missing:
        present = ", ".join(sorted(rows)) or "no rows"
        raise LookupError(f"The OptimizationStatus lookup lacks {', '.join(missing)} (it has {present})")
    to_database = {int(status): rows[status.name] for status in OptimizationStatus}
    setattr(engine.dialect, _TO_DATABASE, to_database)
    setattr(engine.dialect, _FROM_DATABASE, {db: product for product, db in to_database.items()})
    return {status.name: rows[status.name] for status in OptimizationStatus}
