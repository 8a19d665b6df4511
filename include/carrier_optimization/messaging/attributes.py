"""Legacy SQS message attributes: their names, reading and writing values, the error naming a bad one."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

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
    "Malformed",
    "MalformedMessageError",
    "attribute_text",
    "message_id_of",
    "optional_attribute",
    "shown",
    "string_attribute",
]

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

_MAX_SHOWN = 64


class MalformedMessageError(ValueError):
    """A received SQS message that is not a valid request.

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
class Malformed:
    """A message to move out of the way (dead-letter queue, then delete), with the reason."""

    message: dict[str, Any]
    error: MalformedMessageError

    @property
    def message_id(self) -> str:
        """``MessageId`` named by the error."""
        return self.error.message_id


def shown(value: Any) -> str:
    """``str(value)`` cut to 64 characters, for error messages."""
    text = str(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def message_id_of(message: Mapping[str, Any]) -> str:
    """The message's ``MessageId``, or ``"<no MessageId>"``."""
    message_id = message.get("MessageId")
    return message_id if isinstance(message_id, str) and message_id else UNKNOWN_MESSAGE_ID


def attribute_text(message: Mapping[str, Any], name: str) -> str | None:
    """Return the ``StringValue`` of attribute ``name``, ``None`` when absent.

    Raises
    ------
    MalformedMessageError
        When the attribute is neither DataType String nor Number with a ``StringValue``.
    """
    value = (message.get("MessageAttributes") or {}).get(name)
    if value is None:
        return None
    data_type = str(value.get("DataType", ""))
    text = value.get("StringValue")
    if not data_type.startswith(("String", "Number")) or not isinstance(text, str):
        raise MalformedMessageError(
            message_id_of(message), name, REASON_NOT_TEXT.format(data_type=shown(data_type))
        )
    return text


def optional_attribute(
    message: Mapping[str, Any], message_id: str, name: str, parse: Callable[[str, str, str], Any]
) -> Any:
    """``parse(message_id, name, text)`` of attribute ``name``, or ``None`` when it is absent."""
    text = attribute_text(message, name)
    return None if text is None else parse(message_id, name, text)


def string_attribute(value: Any) -> dict[str, str]:
    """A DataType ``String`` message attribute holding ``str(value)``."""
    return {"DataType": "String", "StringValue": str(value)}
