"""The optimization request: from a manual run's form, a scheduled tick or an SQS message."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from include.carrier_optimization.messaging.messages import portal_type_problem


@dataclass(frozen=True)
class Request:
    """One optimization request: from a manual run's form, a scheduled tick or an SQS message."""

    tenant_id: int
    service_provider_id: int
    bill_period_id: int | None = None
    session_id: int | None = None
    has_synced: bool = False
    portal_type_id: int = 0
    message_id: str | None = None
    #: A person's request (the trigger form): explicit like one naming its session.
    manual: bool = False

    @property
    def explicit(self) -> bool:
        """Whether the request names its session or comes from a person (the guard lets it re-run)."""
        return self.session_id is not None or self.manual

    def __post_init__(self) -> None:
        if (problem := portal_type_problem(self.portal_type_id)) is not None:
            raise ValueError(f"`PortalTypeId` {problem}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the XCom of the request step)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Request:
        """Inverse of `to_dict`, ignoring unknown keys."""
        known = {k: data.get(k) for k in cls.__dataclass_fields__ if k in data}
        known["portal_type_id"] = int(known.get("portal_type_id") or 0)
        return cls(**known)


def request_from_params(params: Any, *, tenant_id: int) -> dict[str, Any]:
    """The request of a manual run: its trigger form (``Request.to_dict`` form)."""

    def optional(name: str) -> int | None:
        value = params.get(name)
        return None if value in (None, "") else int(value)

    return Request(
        tenant_id=tenant_id,
        service_provider_id=int(params["service_provider_id"]),
        bill_period_id=optional("billing_period_id"),
        session_id=optional("session_id"),
        has_synced=bool(params.get("has_synced", False)),
        portal_type_id=int(params.get("portal_type_id") or 0),
        manual=True,
    ).to_dict()
