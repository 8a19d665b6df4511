"""Publishing requests: the attributes of an optimization request message, as legacy producers send them."""

from __future__ import annotations

from typing import Any

from include.carrier_optimization.config.tenants import PORTAL_TYPES
from include.carrier_optimization.messaging.attributes import (
    BILL_MONTH,
    BILL_PERIOD_ID,
    BILL_YEAR,
    HAS_SYNCED,
    OPTIMIZATION_SESSION_ID,
    PORTAL_TYPE_ID,
    SERVICE_PROVIDER_ID,
    TENANT_ID,
    shown,
    string_attribute,
)

__all__ = ["build_request_attributes"]


def _positive(name: str, value: Any, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer, got {shown(repr(value))}")


def _check_optional_values(portal_type_id: Any, bill_month: Any, has_synced: Any) -> None:
    """Raise ``ValueError`` naming ``portal_type_id``, ``bill_month`` or ``has_synced`` when invalid."""
    if portal_type_id is not None and (
        isinstance(portal_type_id, bool) or portal_type_id not in PORTAL_TYPES
    ):
        raise ValueError(
            f"`portal_type_id` must be one of {sorted(PORTAL_TYPES)}, got {shown(repr(portal_type_id))}"
        )
    if bill_month is not None:
        _positive("bill_month", bill_month)
        if bill_month > 12:
            raise ValueError(f"`bill_month` must be between 1 and 12, got {bill_month}")
    if has_synced is not None and not isinstance(has_synced, bool):
        raise ValueError(f"`has_synced` must be True, False or None, got {shown(repr(has_synced))}")


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

    ``tenant_id``, ``service_provider_id`` and ``bill_period_id`` are required, > 0; ``session_id`` and
    ``bill_year`` are > 0 when given, ``bill_month`` 1 to 12, ``portal_type_id`` a known portal type
    (0 M2M, 1 Mobility, 2 CrossProvider). Returns ``{name: {"DataType": "String", "StringValue": text}}``,
    which :func:`messaging.parsing.parse_request` reads back; raises ``ValueError`` naming the argument
    and the rule.

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
    _check_optional_values(portal_type_id, bill_month, has_synced)
    attributes = {
        SERVICE_PROVIDER_ID: string_attribute(service_provider_id),
        TENANT_ID: string_attribute(tenant_id),
        BILL_PERIOD_ID: string_attribute(bill_period_id),
    }
    optional = {
        BILL_YEAR: bill_year,
        BILL_MONTH: bill_month,
        OPTIMIZATION_SESSION_ID: session_id,
        PORTAL_TYPE_ID: portal_type_id,
        HAS_SYNCED: None if has_synced is None else ("True" if has_synced else "False"),
    }
    attributes.update(
        {name: string_attribute(value) for name, value in optional.items() if value is not None}
    )
    return attributes
