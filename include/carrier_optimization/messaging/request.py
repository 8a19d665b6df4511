"""The optimization request: from a manual run's form, a scheduled tick or an SQS message."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from include.carrier_optimization.config.tenants import PORTAL_TYPES

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


@dataclass(frozen=True)
class Request:
    """One optimization request: from a manual run's form, a scheduled tick or an SQS message.

    The parsed SQS message (``messaging.parsing.parse_request``), the XCom of the ``request`` task and
    of the ``sync_wait`` sensor, and what every pipeline step reads.

    Attributes
    ----------
    tenant_id, service_provider_id : int
        ``TenantId``, ``ServiceProviderId``.
    bill_period_id : int or None
        ``BillPeriodId``; ``None`` (a form left empty) means the provider's current period.
    session_id : int or None
        ``OptimizationSessionId`` to resume; ``None`` starts a new session.
    has_synced : bool
        ``HasSynced``; ``False`` when the attribute is absent (legacy rule).
    portal_type_id : int
        ``PortalTypeId``; 0 (M2M) when absent, the only type supported.
    message_id : str or None
        SQS ``MessageId`` of the message the request came from (``None``: not from a message).
    manual : bool
        A person's request (the trigger form): explicit like one naming its session.
    """

    tenant_id: int
    service_provider_id: int
    bill_period_id: int | None = None
    session_id: int | None = None
    has_synced: bool = False
    portal_type_id: int = 0
    message_id: str | None = None
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
    def from_dict(cls, data: Mapping[str, Any]) -> Request:
        """Inverse of `to_dict`, ignoring unknown keys; ``portal_type_id`` ``None`` is 0 (M2M).

        Raises
        ------
        ValueError
            If ``data`` is not a mapping or lacks ``tenant_id`` or ``service_provider_id``.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"`data` must be a mapping of request fields, got {type(data).__name__}")
        missing = [name for name in ("tenant_id", "service_provider_id") if name not in data]
        if missing:
            raise ValueError(f"`data` is missing the required request key(s) {missing}")
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
