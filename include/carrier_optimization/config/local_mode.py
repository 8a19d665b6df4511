"""The explicit local mode: embedded defaults for a laptop, never a silent fallback on a deployed Airflow.

With ``CARRIER_OPT_LOCAL_MODE=true`` (set by ``make demo``, the tests and a local Airflow) a missing
connection falls back to its local default: the embedded SQLite AMOP database (schema created on first
use), the ``.eml`` outbox, progress in the task log only. Without it, a missing or unusable connection
is an error that names the connection id, and nothing creates tables at task time. Redis stays optional
in both modes (degraded mode, docs/architecture.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

LOCAL_MODE_ENV = "CARRIER_OPT_LOCAL_MODE"
_ON = frozenset({"true", "1", "yes", "on"})
_OFF = frozenset({"", "false", "0", "no", "off"})


class ConnectionNotUsable(RuntimeError):
    """A connection the task needs is missing or broken (outside local mode); names the connection id."""

    def __init__(self, conn_id: str, role: str, reason: str) -> None:
        super().__init__(f"Connection {conn_id!r} ({role}) {reason}")
        self.conn_id = conn_id
        self.role = role


class EmailNotDelivered(ConnectionNotUsable):
    """SMTP delivery failed after every retry (outside local mode)."""


def local_mode(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``$CARRIER_OPT_LOCAL_MODE`` switches the local defaults on.

    ``true``/``1``/``yes``/``on`` (any case) mean on; unset, empty, ``false``/``0``/``no``/``off`` mean
    off. Any other value is a ``ValueError`` naming the variable: a typo must not pick a mode silently.
    """
    raw = (os.environ if environ is None else environ).get(LOCAL_MODE_ENV, "")
    value = raw.strip().lower()
    if value in _ON:
        return True
    if value in _OFF:
        return False
    raise ValueError(f"{LOCAL_MODE_ENV}={raw!r} is not a boolean; use true or false")


def missing_connection(conn_id: str, role: str) -> ConnectionNotUsable:
    """The error for a connection that is not defined while local mode is off."""
    return ConnectionNotUsable(
        conn_id,
        role,
        f"is not defined. Define it (production), or set {LOCAL_MODE_ENV}=true to use the local "
        "defaults on a laptop",
    )
