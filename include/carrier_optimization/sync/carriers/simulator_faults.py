"""Fault injection of the carrier simulator: queued statuses, slow and malformed pages, random errors."""

from __future__ import annotations

import random
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MALFORMED_KINDS", "Faults"]

MALFORMED_KINDS = ("missing_iccid", "not_json", "wrong_page_number", "devices_not_list", "truncated")


@dataclass
class Faults:
    """Fault injection knobs; every method is thread-safe and may be called while the server runs.

    Attributes
    ----------
    error_rate : float
        Share of requests answered 500 at random (seeded by ``seed``), on top of queued faults.
    seed : int
        Seed of the random errors.
    """

    error_rate: float = 0.0
    seed: int = 0
    _page_statuses: dict[int, deque[int]] = field(default_factory=dict)
    _usage_statuses: dict[str, deque[int]] = field(default_factory=dict)
    _slow_pages: dict[int, float] = field(default_factory=dict)
    _malformed_pages: dict[int, list[Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def fail_page(self, page: int, *statuses: int) -> None:
        """Answer the next requests of ``page`` with ``statuses``, one each, then normally."""
        with self._lock:
            self._page_statuses.setdefault(page, deque()).extend(statuses)

    def fail_usage(self, iccid: str, *statuses: int) -> None:
        """Answer the next usage requests of ``iccid`` (single or bulk) with ``statuses``."""
        with self._lock:
            self._usage_statuses.setdefault(iccid, deque()).extend(statuses)

    def slow_page(self, page: int, seconds: float) -> None:
        """Delay every answer of ``page`` by ``seconds``."""
        with self._lock:
            self._slow_pages[page] = seconds

    def malformed_page(self, page: int, kind: str = "missing_iccid", times: int | None = None) -> None:
        """Serve ``page`` malformed (``kind`` in :data:`MALFORMED_KINDS`), ``times`` times or always."""
        if kind not in MALFORMED_KINDS:
            raise ValueError(f"`kind` must be one of {', '.join(MALFORMED_KINDS)}; got {kind!r}")
        with self._lock:
            self._malformed_pages[page] = [kind, times]

    def clear(self) -> None:
        """Remove every queued and standing fault (the random error rate stays)."""
        with self._lock:
            self._page_statuses.clear()
            self._usage_statuses.clear()
            self._slow_pages.clear()
            self._malformed_pages.clear()

    def _pop(self, queue: deque[int] | None) -> int | None:
        if queue:
            return queue.popleft()
        if self.error_rate and self._rng.random() < self.error_rate:
            return 500
        return None

    def page_status(self, page: int) -> int | None:
        """Status to answer for ``page`` now (a queued or random fault), or ``None``."""
        with self._lock:
            return self._pop(self._page_statuses.get(page))

    def usage_status(self, iccids: list[str]) -> int | None:
        """Status to answer for a usage request of ``iccids`` now, or ``None``."""
        with self._lock:
            for iccid in iccids:
                queue = self._usage_statuses.get(iccid)
                if queue:
                    return queue.popleft()
            return self._pop(None)

    def page_delay(self, page: int) -> float:
        """Seconds to hold an answer of ``page``."""
        with self._lock:
            return self._slow_pages.get(page, 0.0)

    def page_malformation(self, page: int) -> str | None:
        """How to break ``page`` now (one of :data:`MALFORMED_KINDS`), or ``None``."""
        with self._lock:
            entry = self._malformed_pages.get(page)
            if entry is None:
                return None
            kind, times = entry
            if times is not None:
                if times <= 0:
                    return None
                entry[1] = times - 1
            return kind
