"""A writer called from a hot loop that writes at most every few seconds (checkpoint throttling)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["ThrottledWriter"]


class ThrottledWriter:
    """Call ``write(cursor)`` at most every ``seconds`` (checkpoint writes of a hot loop).

    Where the work itself commits a durable cursor (the optimizer's finished queues), the checkpoint only
    has to be recent: writing it after every chunk would cost more than it saves (``bench/resume.py``).

    Parameters
    ----------
    write : callable
        Receives the cursor.
    seconds : float
        Least time between two writes.
    """

    def __init__(self, write: Callable[[Any], None], seconds: float = 2.0) -> None:
        self.write = write
        self.seconds = seconds
        self.last = time.monotonic()

    def __call__(self, cursor: Any) -> None:
        """Write ``cursor`` when the last write is at least ``seconds`` old."""
        now = time.monotonic()
        if now - self.last >= self.seconds:
            self.write(cursor)
            self.last = now
