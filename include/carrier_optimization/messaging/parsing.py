"""Parsing an optimization request message into a `Request`; a malformed one names its attribute."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from include.carrier_optimization.messaging.attributes import (
    BILL_PERIOD_ID,
    HAS_SYNCED,
    MESSAGE_ID,
    OPTIMIZATION_SESSION_ID,
    PORTAL_TYPE_ID,
    REASON_MISSING,
    SERVICE_PROVIDER_ID,
    TENANT_ID,
    UNKNOWN_MESSAGE_ID,
    MalformedMessageError,
    attribute_text,
    message_id_of,
    optional_attribute,
    shown,
)
from include.carrier_optimization.messaging.request import Request, portal_type_problem

__all__ = ["INTEGER", "parse_request"]

REASON_NOT_INTEGER = "must be an integer, got {value!r}"
REASON_NOT_POSITIVE = "must be > 0, got {value}"
REASON_NOT_BOOLEAN = "must be 'True' or 'False', got {value!r}"

#: A legacy integer (``int.TryParse`` style: optional sign and blanks, no ``_``).
INTEGER = re.compile(r"\s*[+-]?[0-9]+\s*")
_TRUE = "true"
_FALSE = "false"


def _parse_id(message_id: str, name: str, text: str) -> int:
    """Parse a legacy integer id (``int.TryParse`` style: optional sign and blanks, no ``_``) that is > 0."""
    if not INTEGER.fullmatch(text):
        raise MalformedMessageError(message_id, name, REASON_NOT_INTEGER.format(value=shown(text)))
    number = int(text)
    if number <= 0:
        raise MalformedMessageError(message_id, name, REASON_NOT_POSITIVE.format(value=number))
    return number


def _parse_portal_type(message_id: str, name: str, text: str) -> int:
    """Parse ``PortalTypeId``: an integer naming a supported portal type (0, M2M)."""
    if not INTEGER.fullmatch(text):
        raise MalformedMessageError(message_id, name, REASON_NOT_INTEGER.format(value=shown(text)))
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
    raise MalformedMessageError(message_id, name, REASON_NOT_BOOLEAN.format(value=shown(text)))


def _required_id(message: Mapping[str, Any], message_id: str, name: str) -> int:
    text = attribute_text(message, name)
    if text is None:
        raise MalformedMessageError(message_id, name, REASON_MISSING)
    return _parse_id(message_id, name, text)


def parse_request(message: Mapping[str, Any]) -> Request:
    """Parse one boto3 ``receive_message`` message into a :class:`Request`.

    The message must have been received with ``MessageAttributeNames=["All"]``. Rules (legacy §2.3):
    ``ServiceProviderId``, ``BillPeriodId`` and ``TenantId`` are required integers > 0;
    ``OptimizationSessionId`` is an optional integer > 0; ``PortalTypeId`` is optional (absent: 0, M2M)
    and must be 0 (Mobility and CrossProvider are refused, naming the type); ``HasSynced`` is optional
    (absent means ``False``) and must read ``True`` or ``False`` when present. Attributes have DataType
    ``String`` (or ``Number``). ``BillYear``/``BillMonth`` are informational and not read: the period
    is ``BillPeriodId``. The body is free text and not read.

    Parameters
    ----------
    message : mapping
        One element of ``response["Messages"]``.

    Returns
    -------
    Request
        The parsed request, with the message's ``MessageId`` (``manual`` is ``False``).

    Raises
    ------
    MalformedMessageError
        Naming the message id and the first offending attribute. Deviation from legacy: a present but
        unparsable ``HasSynced`` or ``PortalTypeId`` is an error here (legacy read it as false / M2M),
        because it means the producer is broken.

    Examples
    --------
    >>> from include.carrier_optimization.messaging.publishing import build_request_attributes
    >>> message = {"MessageId": "m-1", "MessageAttributes": build_request_attributes(
    ...     tenant_id=7, service_provider_id=3, bill_period_id=55)}
    >>> parse_request(message).tenant_id
    7
    """
    message_id = message_id_of(message)
    if message_id == UNKNOWN_MESSAGE_ID:
        raise MalformedMessageError(message_id, MESSAGE_ID, REASON_MISSING)
    service_provider_id = _required_id(message, message_id, SERVICE_PROVIDER_ID)
    bill_period_id = _required_id(message, message_id, BILL_PERIOD_ID)
    tenant_id = _required_id(message, message_id, TENANT_ID)
    session_id = optional_attribute(message, message_id, OPTIMIZATION_SESSION_ID, _parse_id)
    has_synced = optional_attribute(message, message_id, HAS_SYNCED, _parse_bool)
    portal_type_id = optional_attribute(message, message_id, PORTAL_TYPE_ID, _parse_portal_type)
    return Request(
        tenant_id=tenant_id,
        service_provider_id=service_provider_id,
        bill_period_id=bill_period_id,
        session_id=session_id,
        has_synced=bool(has_synced),
        portal_type_id=0 if portal_type_id is None else portal_type_id,
        message_id=message_id,
    )
