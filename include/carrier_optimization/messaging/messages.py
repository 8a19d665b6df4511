"""Optimization request messages on SQS: legacy attribute names, parsing, tenant filtering, publishing."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

from include.carrier_optimization.config.tenants import PORTAL_TYPES

__all__ = [
    "BILL_MONTH",
    "BILL_PERIOD_ID",
    "BILL_YEAR",
    "ERROR_REASON",
    "HAS_SYNCED",
    "MESSAGE_ID",
    "OPTIMIZATION_SESSION_ID",
    "PORTAL_TYPE_ID",
    "REQUEST_ATTRIBUTE_NAMES",
    "SERVICE_PROVIDER_ID",
    "TENANT_ID",
    "Accepted",
    "BatchSplit",
    "MalformedMessageError",
    "Malformed",
    "MessageFilter",
    "OptimizationRequest",
    "SqsCall",
    "arun_steps",
    "build_request_attributes",
    "dead_letter_params",
    "matches",
    "parse_request",
    "poke_steps",
    "receive_params",
    "release_entries",
    "run_steps",
    "sort_batch",
    "split_batch",
    "validate_filter",
]

log = logging.getLogger(__name__)

# Legacy message attribute names (QueueCarrierPlanOptimization and its producers); all DataType String.
SERVICE_PROVIDER_ID = "ServiceProviderId"
BILL_PERIOD_ID = "BillPeriodId"
TENANT_ID = "TenantId"
OPTIMIZATION_SESSION_ID = "OptimizationSessionId"
HAS_SYNCED = "HasSynced"
PORTAL_TYPE_ID = "PortalTypeId"
BILL_YEAR = "BillYear"
BILL_MONTH = "BillMonth"
#: Attribute added to a message moved to the dead-letter queue, saying why it was moved.
ERROR_REASON = "ErrorReason"

REQUEST_ATTRIBUTE_NAMES = (
    SERVICE_PROVIDER_ID,
    BILL_PERIOD_ID,
    TENANT_ID,
    OPTIMIZATION_SESSION_ID,
    HAS_SYNCED,
    PORTAL_TYPE_ID,
    BILL_YEAR,
    BILL_MONTH,
)

#: Pseudo attribute named by errors about the message envelope (missing or duplicated id).
MESSAGE_ID = "MessageId"
UNKNOWN_MESSAGE_ID = "<no MessageId>"

# Standard reasons (the rule that was broken); values are shown with ``repr`` and cut to _MAX_SHOWN chars.
REASON_MISSING = "is missing (required)"
REASON_NOT_TEXT = "must have DataType String or Number with a StringValue, got DataType {data_type!r}"
REASON_NOT_INTEGER = "must be an integer, got {value!r}"
REASON_NOT_POSITIVE = "must be > 0, got {value}"
REASON_NOT_BOOLEAN = "must be 'True' or 'False', got {value!r}"
REASON_DUPLICATE = "occurs {count} times in one receive batch"

#: SQS allows at most 10 message attributes per message.
SQS_MAX_ATTRIBUTES = 10
#: SQS batch calls (ChangeMessageVisibilityBatch, DeleteMessageBatch) take at most 10 entries.
SQS_MAX_BATCH = 10

_MAX_SHOWN = 64
_INTEGER = re.compile(r"\s*[+-]?[0-9]+\s*")
_TRUE = "true"
_FALSE = "false"
_NONE_TEXTS = ("", "none", "null")


class MalformedMessageError(ValueError):
    """A received SQS message that is not a valid optimization request.

    Parameters
    ----------
    message_id : str
        ``MessageId`` of the message (``"<no MessageId>"`` when it has none).
    attribute : str
        Name of the offending message attribute (``"MessageId"`` for envelope errors).
    reason : str
        The rule that was broken, with the offending value.
    """

    def __init__(self, message_id: str, attribute: str, reason: str) -> None:
        self.message_id = message_id
        self.attribute = attribute
        self.reason = reason
        super().__init__(f"SQS message {message_id}: `{attribute}` {reason}")


@dataclass(frozen=True)
class OptimizationRequest:
    """One parsed optimization request or continuation (the sensor's XCom value).

    Attributes
    ----------
    tenant_id : int
        ``TenantId``; the tenant whose DAG may take the message.
    service_provider_id : int
        ``ServiceProviderId`` (carrier account).
    bill_period_id : int
        ``BillPeriodId``.
    session_id : int or None
        ``OptimizationSessionId`` to resume; ``None`` starts a new session.
    has_synced : bool
        ``HasSynced``; ``False`` when the attribute is absent (legacy rule).
    portal_type_id : int or None
        ``PortalTypeId``; ``None`` when absent (the session step defaults to M2M).
    message_id : str
        SQS ``MessageId`` of the message the request came from.
    """

    tenant_id: int
    service_provider_id: int
    bill_period_id: int
    session_id: int | None
    has_synced: bool
    portal_type_id: int | None
    message_id: str

    def to_dict(self) -> dict[str, Any]:
        """Return the request as a small JSON-serializable dict (the XCom value)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OptimizationRequest:
        """Rebuild a request from :meth:`to_dict` output.

        Raises
        ------
        ValueError
            If keys are missing or unknown.
        """
        return cls(**_exact_fields(cls, data))


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
    request: OptimizationRequest


@dataclass(frozen=True)
class Malformed:
    """A message to move out of the way (dead-letter queue, then delete), with the reason."""

    message: dict[str, Any]
    error: MalformedMessageError

    @property
    def message_id(self) -> str:
        """``MessageId`` named by the error."""
        return self.error.message_id


class BatchSplit(NamedTuple):
    """One received batch sorted into what to take, what to release and what to move away."""

    accepted: Accepted | None
    """The first message matching the filter, or ``None``."""
    others: list[dict[str, Any]]
    """Valid messages not taken (other tenants, other sessions, further matches): make visible again."""
    malformed: list[Malformed]
    """Invalid messages: dead-letter (if configured), then delete."""


def _exact_fields(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of dataclass ``cls`` from ``data``; ``ValueError`` on missing or unknown keys."""
    expected = set(cls.__dataclass_fields__)  # type: ignore[attr-defined]
    missing = sorted(expected - set(data))
    unknown = sorted(set(data) - expected)
    if missing or unknown:
        raise ValueError(
            f"`data` must have exactly the keys {sorted(expected)}; missing {missing}, unknown {unknown}"
        )
    return {name: data[name] for name in expected}


def _shown(value: Any) -> str:
    text = str(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _message_id(message: Mapping[str, Any]) -> str:
    message_id = message.get("MessageId")
    return message_id if isinstance(message_id, str) and message_id else UNKNOWN_MESSAGE_ID


def _attribute_text(message: Mapping[str, Any], name: str) -> str | None:
    """Return the ``StringValue`` of attribute ``name``, ``None`` when absent."""
    value = (message.get("MessageAttributes") or {}).get(name)
    if value is None:
        return None
    data_type = str(value.get("DataType", ""))
    text = value.get("StringValue")
    if not data_type.startswith(("String", "Number")) or not isinstance(text, str):
        raise MalformedMessageError(
            _message_id(message), name, REASON_NOT_TEXT.format(data_type=_shown(data_type))
        )
    return text


def _parse_id(message_id: str, name: str, text: str) -> int:
    """Parse a legacy integer id (``int.TryParse`` style: optional sign and blanks, no ``_``) that is > 0."""
    if not _INTEGER.fullmatch(text):
        raise MalformedMessageError(message_id, name, REASON_NOT_INTEGER.format(value=_shown(text)))
    number = int(text)
    if number <= 0:
        raise MalformedMessageError(message_id, name, REASON_NOT_POSITIVE.format(value=number))
    return number


#: Portal types optimized today: M2M (0). Mobility and CrossProvider are refused until supported.
SUPPORTED_PORTAL_TYPES = frozenset({0})


def portal_type_problem(portal_type_id: int) -> str | None:
    """Why ``portal_type_id`` cannot be optimized (a reason naming the portal type), or None for M2M."""
    if portal_type_id in SUPPORTED_PORTAL_TYPES:
        return None
    known = ", ".join(f"{number} {name}" for number, name in PORTAL_TYPES.items())
    if portal_type_id not in PORTAL_TYPES:
        return f"is {portal_type_id}, not a known portal type ({known})"
    return f"is {portal_type_id} ({PORTAL_TYPES[portal_type_id]}): not supported yet, only 0 (M2M) is"


def _parse_portal_type(message_id: str, name: str, text: str) -> int:
    """Parse ``PortalTypeId``: an integer naming a supported portal type (0, M2M)."""
    if not _INTEGER.fullmatch(text):
        raise MalformedMessageError(message_id, name, REASON_NOT_INTEGER.format(value=_shown(text)))
    number = int(text)
    if (problem := portal_type_problem(number)) is not None:
        raise MalformedMessageError(message_id, name, problem)
    return number


def _parse_bool(message_id: str, name: str, text: str) -> bool:
    """Parse a .NET ``bool.ToString()`` value (``True``/``False``, any case, blanks trimmed)."""
    folded = text.strip().lower()
    if folded == _TRUE:
        return True
    if folded == _FALSE:
        return False
    raise MalformedMessageError(message_id, name, REASON_NOT_BOOLEAN.format(value=_shown(text)))


def _required_id(message: Mapping[str, Any], message_id: str, name: str) -> int:
    text = _attribute_text(message, name)
    if text is None:
        raise MalformedMessageError(message_id, name, REASON_MISSING)
    return _parse_id(message_id, name, text)


def _optional_id(
    message: Mapping[str, Any],
    message_id: str,
    name: str,
    parse: Callable[[str, str, str], int] = _parse_id,
) -> int | None:
    text = _attribute_text(message, name)
    return None if text is None else parse(message_id, name, text)


def parse_request(message: Mapping[str, Any]) -> OptimizationRequest:
    """Parse one boto3 ``receive_message`` message into an :class:`OptimizationRequest`.

    The message must have been received with ``MessageAttributeNames=["All"]``. Rules (legacy §2.3):
    ``ServiceProviderId``, ``BillPeriodId`` and ``TenantId`` are required integers > 0;
    ``OptimizationSessionId`` is an optional integer > 0; ``PortalTypeId`` is optional and must be 0
    (M2M: Mobility and CrossProvider are refused, naming the type); ``HasSynced`` is optional
    (absent means ``False``) and must read ``True`` or ``False`` when present. Attributes have DataType
    ``String`` (or ``Number``). ``BillYear``/``BillMonth`` are informational and not read: the period
    is ``BillPeriodId``. The body is free text and not read.

    Parameters
    ----------
    message : mapping
        One element of ``response["Messages"]``.

    Returns
    -------
    OptimizationRequest
        The parsed request, with the message's ``MessageId``.

    Raises
    ------
    MalformedMessageError
        Naming the message id and the first offending attribute. Deviation from legacy: a present but
        unparsable ``HasSynced`` or ``PortalTypeId`` is an error here (legacy read it as false / M2M),
        because it means the producer is broken.

    Examples
    --------
    >>> message = {"MessageId": "m-1", "MessageAttributes": build_request_attributes(
    ...     tenant_id=7, service_provider_id=3, bill_period_id=55)}
    >>> parse_request(message).tenant_id
    7
    """
    message_id = _message_id(message)
    if message_id == UNKNOWN_MESSAGE_ID:
        raise MalformedMessageError(message_id, MESSAGE_ID, REASON_MISSING)
    service_provider_id = _required_id(message, message_id, SERVICE_PROVIDER_ID)
    bill_period_id = _required_id(message, message_id, BILL_PERIOD_ID)
    tenant_id = _required_id(message, message_id, TENANT_ID)
    session_id = _optional_id(message, message_id, OPTIMIZATION_SESSION_ID)
    synced_text = _attribute_text(message, HAS_SYNCED)
    has_synced = False if synced_text is None else _parse_bool(message_id, HAS_SYNCED, synced_text)
    portal_type_id = _optional_id(message, message_id, PORTAL_TYPE_ID, _parse_portal_type)
    return OptimizationRequest(
        tenant_id=tenant_id,
        service_provider_id=service_provider_id,
        bill_period_id=bill_period_id,
        session_id=session_id,
        has_synced=has_synced,
        portal_type_id=portal_type_id,
        message_id=message_id,
    )


def _filter_id(name: str, value: Any, *, optional: bool) -> int | None:
    if optional and (value is None or (isinstance(value, str) and value.strip().lower() in _NONE_TEXTS)):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"`{name}` must be a positive integer, got {_shown(repr(value))}")
    if isinstance(value, str):
        if not _INTEGER.fullmatch(value):
            raise ValueError(f"`{name}` must be a positive integer, got {_shown(repr(value))}")
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
        raise ValueError(f"`require_synced` must be True, False or None, got {_shown(repr(require_synced))}")
    return MessageFilter(
        tenant_id=_filter_id("tenant_id", tenant_id, optional=False),  # type: ignore[arg-type]
        session_id=_filter_id("session_id", session_id, optional=True),
        require_synced=require_synced,
    )


def matches(
    request: OptimizationRequest,
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


def sort_batch(
    messages: Iterable[Mapping[str, Any]],
    *,
    parse: Callable[[Mapping[str, Any]], Any],
    accept: Callable[[Any], bool],
    label: str = "Batch",
) -> tuple[tuple[dict[str, Any], Any] | None, list[dict[str, Any]], list[Malformed]]:
    """Sort one received batch with any parser and filter (the core of every ``split_*`` function).

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
    label : str
        Names the batch in the debug log line.

    Returns
    -------
    tuple
        ``((message, request) or None, others, malformed)``.
    """
    batch = [dict(message) for message in messages]
    counts: dict[str, int] = {}
    last_copy: dict[str, dict[str, Any]] = {}
    for message in batch:
        message_id = _message_id(message)
        if message_id != UNKNOWN_MESSAGE_ID:
            counts[message_id] = counts.get(message_id, 0) + 1
            last_copy[message_id] = message

    accepted: tuple[dict[str, Any], Any] | None = None
    others: list[dict[str, Any]] = []
    malformed: list[Malformed] = []
    reported: set[str] = set()
    for message in batch:
        message_id = _message_id(message)
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
        "%s of %d message(s): accepted %s, %d to release, %d malformed",
        label,
        len(batch),
        accepted[1].message_id if accepted else None,
        len(others),
        len(malformed),
    )
    return accepted, others, malformed


def release_entries(messages: Sequence[Mapping[str, Any]]) -> list[list[dict[str, Any]]]:
    """``ChangeMessageVisibilityBatch`` entries making ``messages`` visible again at once.

    Returns
    -------
    list of lists of dicts
        Chunks of at most 10 entries ``{"Id", "ReceiptHandle", "VisibilityTimeout": 0}``; entry ids are
        positional (``m0``, ``m1``, ...) so they are unique and valid batch ids; map them back with the
        same index into ``messages``.
    """
    entries = [
        {"Id": f"m{index}", "ReceiptHandle": message["ReceiptHandle"], "VisibilityTimeout": 0}
        for index, message in enumerate(messages)
    ]
    return [entries[start : start + SQS_MAX_BATCH] for start in range(0, len(entries), SQS_MAX_BATCH)]


class SqsCall(NamedTuple):
    """One SQS client call asked for by :func:`poke_steps`."""

    method: str
    """Client method name (``receive_message``, ``delete_message``, ...)."""
    kwargs: dict[str, Any]
    """Its keyword arguments."""


def receive_params(
    *, queue_url: str, max_messages: int, wait_time_seconds: int, visibility_timeout: int | None
) -> dict[str, Any]:
    """``receive_message`` keyword arguments of one poke, with all message attributes.

    ``visibility_timeout=None`` leaves the queue's own visibility timeout.
    """
    params: dict[str, Any] = {
        "QueueUrl": queue_url,
        "MaxNumberOfMessages": max_messages,
        "WaitTimeSeconds": wait_time_seconds,
        "MessageAttributeNames": ["All"],
    }
    if visibility_timeout is not None:
        params["VisibilityTimeout"] = visibility_timeout
    return params


def poke_steps(
    receive: Mapping[str, Any],
    split: Callable[[list[dict[str, Any]]], Any],
    *,
    dead_letter_queue: str | None,
    logger: Any = log,
    label: str = "message",
) -> Generator[SqsCall, Any, Any]:
    """One poke, the logic shared by the sensors and their triggers, as SQS calls to make (sans I/O).

    Receive one batch with ``receive`` (see :func:`receive_params`) and sort it with ``split`` (a
    ``split_*`` function with its filter bound); then:

    - release the other valid messages at once (:func:`release_entries`); a failed entry is logged,
      the message reappears after its visibility timeout;
    - log each malformed message with its ``MessageId``; send it to ``dead_letter_queue`` when set
      (:func:`dead_letter_params`), else log its body and attributes; then delete it. When the
      dead-letter send fails the message stays on the queue; a failed delete is logged;
    - delete the accepted message (a failure here propagates, as does a failed receive).

    The generator yields each :class:`SqsCall` and expects the call's response to be sent back, or the
    call's exception thrown in; :func:`run_steps` and :func:`arun_steps` do that with a boto3 or
    aiobotocore client.

    Parameters
    ----------
    receive : mapping
        ``receive_message`` keyword arguments; ``QueueUrl`` is the queue every other call works on.
    split : callable
        ``messages -> (accepted, others, malformed)``, e.g. :func:`split_batch` with its filter bound.
    dead_letter_queue : str or None
        URL of the dead-letter queue; ``None`` or ``""`` to log and delete malformed messages.
    logger : logging.Logger
        Where to log (the caller's task or trigger logger).
    label : str
        Names an accepted message in the log ("Accepted and deleted <label> <id>").

    Returns
    -------
    accepted or None
        ``split(...).accepted``: the message taken (and deleted) with its request, or ``None``.
    """
    queue_url = receive["QueueUrl"]
    response = yield SqsCall("receive_message", dict(receive))
    batch = split(response.get("Messages", []))

    for chunk in release_entries(batch.others):
        response = yield SqsCall("change_message_visibility_batch", {"QueueUrl": queue_url, "Entries": chunk})
        for failure in response.get("Failed", []):
            message = batch.others[int(failure["Id"][1:])]
            logger.warning(
                "Could not release message %s on %s (it reappears after its visibility timeout): %s",
                message.get("MessageId"),
                queue_url,
                failure,
            )
    if batch.others:
        logger.info("Released %d message(s) left for other runs", len(batch.others))

    for malformed in batch.malformed:
        logger.error("Malformed message %s on %s: %s", malformed.message_id, queue_url, malformed.error)
        if dead_letter_queue:
            try:
                yield SqsCall("send_message", dead_letter_params(malformed, queue_url=dead_letter_queue))
            except Exception:
                logger.exception(
                    "Could not move message %s to dead-letter queue %s; left on the queue",
                    malformed.message_id,
                    dead_letter_queue,
                )
                continue
            logger.info("Moved message %s to %s", malformed.message_id, dead_letter_queue)
        else:
            logger.error(
                "No dead-letter queue set: deleting message %s; body %r; attributes %r",
                malformed.message_id,
                malformed.message.get("Body"),
                malformed.message.get("MessageAttributes"),
            )
        receipt_handle = malformed.message.get("ReceiptHandle")
        if receipt_handle is None:
            logger.warning("Message %s has no ReceiptHandle: cannot delete it", malformed.message_id)
            continue
        try:
            yield SqsCall("delete_message", {"QueueUrl": queue_url, "ReceiptHandle": receipt_handle})
        except Exception:
            logger.exception("Could not delete malformed message %s", malformed.message_id)

    if batch.accepted is None:
        return None
    yield SqsCall(
        "delete_message", {"QueueUrl": queue_url, "ReceiptHandle": batch.accepted.message["ReceiptHandle"]}
    )
    logger.info("Accepted and deleted %s %s", label, batch.accepted.request.message_id)
    return batch.accepted


def run_steps(client: Any, steps: Generator[SqsCall, Any, Any]) -> Any:
    """Make the calls of :func:`poke_steps` on a boto3 SQS client; return the generator's result."""
    try:
        call = next(steps)
        while True:
            try:
                response = getattr(client, call.method)(**call.kwargs)
            except Exception as error:
                call = steps.throw(error)
            else:
                call = steps.send(response)
    except StopIteration as stop:
        return stop.value


async def arun_steps(client: Any, steps: Generator[SqsCall, Any, Any]) -> Any:
    """As :func:`run_steps`, awaiting each call of an aiobotocore SQS client."""
    try:
        call = next(steps)
        while True:
            try:
                response = await getattr(client, call.method)(**call.kwargs)
            except Exception as error:
                call = steps.throw(error)
            else:
                call = steps.send(response)
    except StopIteration as stop:
        return stop.value


def _clean_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    """Keep only the fields ``send_message`` accepts from a received attribute value."""
    return {key: value[key] for key in ("DataType", "StringValue", "BinaryValue") if key in value}


def dead_letter_params(malformed: Malformed, *, queue_url: str) -> dict[str, Any]:
    """``send_message`` keyword arguments moving a malformed message to the dead-letter queue.

    The original body and message attributes are kept, plus ``ErrorReason`` (String) holding the error
    text. SQS allows 10 attributes: if the original has 10 already, the attributes beyond the first 9
    (the legacy request attributes first, then by name) are dropped and named in ``ErrorReason``.

    Parameters
    ----------
    malformed : Malformed
        The message and its error, from :func:`split_batch`.
    queue_url : str
        URL of the dead-letter queue.

    Returns
    -------
    dict
        ``QueueUrl``, ``MessageBody``, ``MessageAttributes``.
    """
    original = malformed.message.get("MessageAttributes") or {}
    names = sorted(
        (name for name in original if name != ERROR_REASON),
        key=lambda name: (name not in REQUEST_ATTRIBUTE_NAMES, name),
    )
    kept, dropped = names[: SQS_MAX_ATTRIBUTES - 1], names[SQS_MAX_ATTRIBUTES - 1 :]
    reason = str(malformed.error)
    if dropped:
        reason += f" (attributes dropped for the dead-letter copy: {', '.join(dropped)})"
    attributes = {name: _clean_attribute(original[name]) for name in kept}
    attributes[ERROR_REASON] = {"DataType": "String", "StringValue": reason}
    body = malformed.message.get("Body")
    return {
        "QueueUrl": queue_url,
        "MessageBody": body if isinstance(body, str) and body else "(empty body)",
        "MessageAttributes": attributes,
    }


def _string_attribute(value: Any) -> dict[str, str]:
    """A DataType ``String`` message attribute holding ``str(value)``."""
    return {"DataType": "String", "StringValue": str(value)}


def _positive(name: str, value: Any, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer, got {_shown(repr(value))}")


def build_request_attributes(
    *,
    tenant_id: int,
    service_provider_id: int,
    bill_period_id: int,
    session_id: int | None = None,
    has_synced: bool | None = None,
    portal_type_id: int | None = None,
    bill_year: int | None = None,
    bill_month: int | None = None,
) -> dict[str, dict[str, str]]:
    """boto3 ``MessageAttributes`` of an optimization request or continuation, as the legacy producers send.

    Every attribute is DataType ``String`` (legacy format): ids in decimal, ``HasSynced`` as ``True`` or
    ``False``. Unset optional values are left out (the legacy portal omits ``HasSynced`` when not synced).

    Parameters
    ----------
    tenant_id, service_provider_id, bill_period_id : int
        Required, > 0.
    session_id : int, optional
        > 0 when given.
    portal_type_id : int, optional
        A known portal type id (0 M2M, 1 Mobility, 2 CrossProvider) when given.
    has_synced : bool, optional
        ``HasSynced``; left out when ``None``.
    bill_year : int, optional
        > 0 when given.
    bill_month : int, optional
        1 to 12 when given.

    Returns
    -------
    dict
        ``{name: {"DataType": "String", "StringValue": text}}``; :func:`parse_request` reads it back.

    Raises
    ------
    ValueError
        Naming the argument and the rule.

    Examples
    --------
    >>> build_request_attributes(tenant_id=7, service_provider_id=3, bill_period_id=55, has_synced=True)[
    ...     "HasSynced"]
    {'DataType': 'String', 'StringValue': 'True'}
    """
    for name, value in (
        ("tenant_id", tenant_id),
        ("service_provider_id", service_provider_id),
        ("bill_period_id", bill_period_id),
    ):
        _positive(name, value)
    for name, value in (("session_id", session_id), ("bill_year", bill_year)):
        _positive(name, value, optional=True)
    if portal_type_id is not None and (
        isinstance(portal_type_id, bool) or portal_type_id not in PORTAL_TYPES
    ):
        raise ValueError(
            f"`portal_type_id` must be one of {sorted(PORTAL_TYPES)}, got {_shown(repr(portal_type_id))}"
        )
    if bill_month is not None:
        _positive("bill_month", bill_month)
        if bill_month > 12:
            raise ValueError(f"`bill_month` must be between 1 and 12, got {bill_month}")
    if has_synced is not None and not isinstance(has_synced, bool):
        raise ValueError(f"`has_synced` must be True, False or None, got {_shown(repr(has_synced))}")

    attributes = {
        SERVICE_PROVIDER_ID: _string_attribute(service_provider_id),
        TENANT_ID: _string_attribute(tenant_id),
        BILL_PERIOD_ID: _string_attribute(bill_period_id),
    }
    optional = {
        BILL_YEAR: bill_year,
        BILL_MONTH: bill_month,
        OPTIMIZATION_SESSION_ID: session_id,
        PORTAL_TYPE_ID: portal_type_id,
        HAS_SYNCED: None if has_synced is None else ("True" if has_synced else "False"),
    }
    attributes.update(
        {name: _string_attribute(value) for name, value in optional.items() if value is not None}
    )
    return attributes
