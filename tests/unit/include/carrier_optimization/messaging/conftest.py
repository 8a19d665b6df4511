"""Shared helpers of the messaging tests: received SQS messages of optimization requests."""

from __future__ import annotations

from include.carrier_optimization.messaging.attributes import BILL_PERIOD_ID, SERVICE_PROVIDER_ID, TENANT_ID
from include.carrier_optimization.messaging.publishing import build_request_attributes

TENANT = 7
OTHER_TENANT = 8
PROVIDER = 3
PERIOD = 55
SESSION = 901


def s(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}


def make_message(message_id: str = "m-1", body: str = "Carrier to optimize", **attributes) -> dict:
    """A received message; attribute keyword ``None`` removes a default attribute."""
    base = {SERVICE_PROVIDER_ID: s(str(PROVIDER)), BILL_PERIOD_ID: s(str(PERIOD)), TENANT_ID: s(str(TENANT))}
    base.update(attributes)
    return {
        "MessageId": message_id,
        "ReceiptHandle": f"rh-{message_id}",
        "MD5OfBody": "x",
        "Body": body,
        "MessageAttributes": {name: value for name, value in base.items() if value is not None},
    }


def request_message(message_id: str, **kwargs) -> dict:
    """A received message whose attributes come from build_request_attributes."""
    fields = {"tenant_id": TENANT, "service_provider_id": PROVIDER, "bill_period_id": PERIOD} | kwargs
    return {
        "MessageId": message_id,
        "ReceiptHandle": f"rh-{message_id}",
        "Body": "b",
        "MessageAttributes": build_request_attributes(**fields),
    }
