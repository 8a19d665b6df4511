"""Sorting a received batch: the request to take (tenant, session, synced), the rest, the malformed."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from include.carrier_optimization.messaging.attributes import (
    MESSAGE_ID,
    UNKNOWN_MESSAGE_ID,
    Malformed,
    MalformedMessageError,
    message_id_of,
    shown,
)
from include.carrier_optimization.messaging.parsing import INTEGER, parse_request
from include.carrier_optimization.messaging.request import Request

__all__ = [
    "Accepted",
    "BatchSplit",
    "MessageFilter",
    "matches",
    "sort_batch",
    "split_batch",
    "validate_filter",
]

log = logging.getLogger(__name__)

REASON_DUPLICATE = "occurs {count} times in one receive batch"
_NONE_TEXTS = ("", "none", "null")


@dataclass(frozen=True)
class MessageFilter:
    """Normalized filter of one sensor: whose messages it takes.

    Attributes
    ----------
    tenant_id : int
        Only messages with this ``TenantId`` match.
    session_id : int or None
        If set, only messages with this ``OptimizationSessionId`` match (continuations).
    require_synced : bool or None
        If set, only messages whose ``HasSynced`` equals it match.
    """

    tenant_id: int
    session_id: int | None = None
    require_synced: bool | None = None


@dataclass(frozen=True)
class Accepted:
    """The message a poke takes, with its parsed request."""

    message: dict[str, Any]
    request: Request


class BatchSplit(NamedTuple):
    """One received batch sorted into what to take, what to release and what to move away."""

    accepted: Accepted | None
    """The first message matching the filter, or ``None``."""
    others: list[dict[str, Any]]
    """Valid messages not taken (other tenants, other sessions, further matches): make visible again."""
    malformed: list[Malformed]
    """Invalid messages: dead-letter (if configured), then delete."""


def _filter_id(name: str, value: Any, *, optional: bool) -> int | None:
    if optional and (value is None or (isinstance(value, str) and value.strip().lower() in _NONE_TEXTS)):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"`{name}` must be a positive integer, got {shown(repr(value))}")
    if isinstance(value, str):
        if not INTEGER.fullmatch(value):
            raise ValueError(f"`{name}` must be a positive integer, got {shown(repr(value))}")
        value = int(value)
    if value <= 0:
        raise ValueError(f"`{name}` must be a positive integer, got {value}")
    return value


def validate_filter(
    *, tenant_id: Any, session_id: Any = None, require_synced: bool | None = None
) -> MessageFilter:
    """Normalize a sensor's (possibly rendered-template) filter values.

    Parameters
    ----------
    tenant_id : int or str
        A positive integer or its decimal text.
    session_id : int, str or None
        A positive integer, its text, or ``None``/``""``/``"None"``/``"null"`` for "any session".
    require_synced : bool or None
        ``True``/``False`` to require that ``HasSynced`` value, ``None`` for either.

    Returns
    -------
    MessageFilter

    Raises
    ------
    ValueError
        Naming the argument and the rule.
    """
    if require_synced is not None and not isinstance(require_synced, bool):
        raise ValueError(f"`require_synced` must be True, False or None, got {shown(repr(require_synced))}")
    return MessageFilter(
        tenant_id=_filter_id("tenant_id", tenant_id, optional=False),  # type: ignore[arg-type]
        session_id=_filter_id("session_id", session_id, optional=True),
        require_synced=require_synced,
    )


def matches(
    request: Request,
    *,
    tenant_id: int,
    session_id: int | None = None,
    require_synced: bool | None = None,
) -> bool:
    """Whether ``request`` belongs to this sensor.

    ``request.tenant_id == tenant_id``, and ``request.session_id == session_id`` when ``session_id``
    is given, and ``request.has_synced is require_synced`` when ``require_synced`` is given.

    Returns
    -------
    bool
    """
    if request.tenant_id != tenant_id:
        return False
    if session_id is not None and request.session_id != session_id:
        return False
    return require_synced is None or request.has_synced is require_synced


def split_batch(
    messages: Iterable[Mapping[str, Any]],
    *,
    tenant_id: Any,
    session_id: Any = None,
    require_synced: bool | None = None,
) -> BatchSplit:
    """Sort one received batch: the message to take, the messages to release, the malformed ones.

    The poke logic shared by the sensor and its trigger. A ``MessageId`` that occurs more than once in
    the batch makes one :class:`Malformed` entry (the last copy, whose receipt handle is the newest),
    whatever its content. Every other message is parsed with :func:`parse_request`; a parse failure is
    malformed; the first valid message that :func:`matches` the filter is accepted; all other valid
    messages (other tenants or sessions, and further matches, left for later runs) are ``others``.

    Parameters
    ----------
    messages : iterable of mappings
        ``response.get("Messages", [])`` of a ``receive_message`` call with ``MessageAttributeNames``.
    tenant_id, session_id, require_synced
        The filter, normalized by :func:`validate_filter`.

    Returns
    -------
    BatchSplit
        ``(accepted, others, malformed)``; ``accepted`` is ``None`` when nothing matched.

    Raises
    ------
    ValueError
        If the filter values are invalid (see :func:`validate_filter`).
    """
    flt = validate_filter(tenant_id=tenant_id, session_id=session_id, require_synced=require_synced)
    found, others, malformed = sort_batch(
        messages,
        parse=parse_request,
        accept=lambda request: matches(
            request, tenant_id=flt.tenant_id, session_id=flt.session_id, require_synced=flt.require_synced
        ),
    )
    return BatchSplit(None if found is None else Accepted(*found), others, malformed)


def _repeats(batch: list[dict[str, Any]]) -> tuple[dict[str, int], dict[str, dict[str, Any]]]:
    """How often each ``MessageId`` occurs in ``batch``, and its last copy (the newest receipt handle)."""
    counts: dict[str, int] = {}
    last_copy: dict[str, dict[str, Any]] = {}
    for message in batch:
        message_id = message_id_of(message)
        if message_id != UNKNOWN_MESSAGE_ID:
            counts[message_id] = counts.get(message_id, 0) + 1
            last_copy[message_id] = message
    return counts, last_copy


def sort_batch(
    messages: Iterable[Mapping[str, Any]],
    *,
    parse: Callable[[Mapping[str, Any]], Any],
    accept: Callable[[Any], bool],
) -> tuple[tuple[dict[str, Any], Any] | None, list[dict[str, Any]], list[Malformed]]:
    """Sort one received batch with any parser and filter (:func:`split_batch`, the watcher's round).

    A ``MessageId`` that occurs more than once in the batch makes one :class:`Malformed` entry (the last
    copy, whose receipt handle is the newest), whatever its content. Every other message is parsed with
    ``parse``; a :class:`MalformedMessageError` makes it malformed; the first parsed request for which
    ``accept`` is true is taken; all other valid messages are released.

    Parameters
    ----------
    messages : iterable of mappings
        ``response.get("Messages", [])`` of a ``receive_message`` call with ``MessageAttributeNames``.
    parse : callable
        Message to request; raises :class:`MalformedMessageError`.
    accept : callable
        Whether a parsed request belongs to the caller.

    Returns
    -------
    tuple
        ``((message, request) or None, others, malformed)``.
    """
    batch = [dict(message) for message in messages]
    counts, last_copy = _repeats(batch)
    accepted: tuple[dict[str, Any], Any] | None = None
    others: list[dict[str, Any]] = []
    malformed: list[Malformed] = []
    reported: set[str] = set()
    for message in batch:
        message_id = message_id_of(message)
        if counts.get(message_id, 0) > 1:
            if message_id not in reported:
                reported.add(message_id)
                error = MalformedMessageError(
                    message_id, MESSAGE_ID, REASON_DUPLICATE.format(count=counts[message_id])
                )
                malformed.append(Malformed(last_copy[message_id], error))
            continue
        try:
            request = parse(message)
        except MalformedMessageError as error:
            malformed.append(Malformed(message, error))
            continue
        if accepted is None and accept(request):
            accepted = (message, request)
        else:
            others.append(message)
    log.debug(
        "Batch of %d message(s): accepted %s, %d to release, %d malformed",
        len(batch),
        accepted[1].message_id if accepted else None,
        len(others),
        len(malformed),
    )
    return accepted, others, malformed
