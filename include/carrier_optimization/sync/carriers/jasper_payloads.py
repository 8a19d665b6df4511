"""The Jasper API's payloads: device, page and usage records, their errors, and the checks that build them.

A payload that does not have the documented shape (docs/architecture.md, "Device sync") fails at once
with an error naming the page (or the ICCID of a usage record), the field and the rule.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CarrierApiError",
    "DevicePage",
    "DeviceUsage",
    "JasperDevice",
    "MalformedPageError",
    "dedupe_by_iccid",
    "format_modified_since",
    "parse_device_page",
    "parse_usage",
    "shown",
]

LOG = logging.getLogger(__name__)

#: Widths of the staging columns the values go to (``JasperDeviceStaging``).
MAX_ICCID, MAX_STATUS, MAX_RATE_PLAN, MAX_COMM_PLAN = 30, 30, 100, 200
_MAX_SHOWN = 64


class CarrierApiError(RuntimeError):
    """A carrier API call failed for good (after the retries the policy allows, or at once on 4xx).

    Attributes
    ----------
    url : str or None
        The URL of the failed call.
    page : int or None
        The device page concerned, when the call was a page.
    status : int or None
        The last HTTP status, ``None`` for a timeout or a connection error.
    attempts : int
        Calls made, the first included.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        page: int | None = None,
        status: int | None = None,
        attempts: int = 1,
    ) -> None:
        self.url = url
        self.page = page
        self.status = status
        self.attempts = attempts
        super().__init__(message)


class MalformedPageError(CarrierApiError):
    """A carrier response that does not have the documented shape.

    The message names the page (or the ICCID of a usage record), the offending field as a path
    (``devices[3].iccid``) and the rule, e.g. "Jasper device page 7: `devices[3].iccid` must be a
    non-empty string of at most 30 characters; got None". It is never retried: the same request
    returns the same page.
    """

    def __init__(
        self,
        *,
        field: str,
        reason: str,
        page: int | None = None,
        iccid: str | None = None,
        url: str | None = None,
    ) -> None:
        self.field = field
        self.reason = reason
        self.iccid = iccid
        where = f"Jasper device page {page}" if page is not None else f"Jasper usage of ICCID {iccid}"
        super().__init__(f"{where}: `{field}` {reason}", url=url, page=page)


@dataclass(frozen=True)
class JasperDevice:
    """One device of a device page."""

    iccid: str
    status: str
    rate_plan: str | None
    communication_plan: str | None


@dataclass(frozen=True)
class DevicePage:
    """One device page, de-duplicated by ICCID.

    Attributes
    ----------
    page_number : int
    devices : tuple of JasperDevice
        In page order, the first occurrence of each ICCID kept.
    last_page : bool
    duplicates : int
        Device entries dropped because their ICCID occurred earlier on the page.
    """

    page_number: int
    devices: tuple[JasperDevice, ...]
    last_page: bool
    duplicates: int = 0


@dataclass(frozen=True)
class DeviceUsage:
    """Cycle-to-date usage of one device (dates naive UTC)."""

    iccid: str
    ctd_data_usage: int
    ctd_sms_usage: int
    usage_date: dt.datetime | None
    date_activated: dt.datetime | None


def format_modified_since(value: dt.datetime | dt.date | str) -> str:
    """``modifiedSince`` as the API takes it: ``yyyy-MM-ddTHH:mm:ssZ`` in UTC.

    Naive datetimes are taken as UTC; strings must be ISO 8601 (a trailing ``Z`` is allowed).

    Examples
    --------
    >>> format_modified_since("2026-10-27T17:42:07+00:00")
    '2026-10-27T17:42:07Z'
    """
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError as error:
            raise ValueError(f"`modified_since` must be an ISO 8601 date-time; got {value!r}") from error
    if not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def dedupe_by_iccid(devices: Iterable[JasperDevice]) -> tuple[list[JasperDevice], int]:
    """Keep the first device of each ICCID, in order; return the devices and the number dropped."""
    seen: set[str] = set()
    kept: list[JasperDevice] = []
    dropped = 0
    for device in devices:
        if device.iccid in seen:
            dropped += 1
            continue
        seen.add(device.iccid)
        kept.append(device)
    return kept, dropped


# -- validation ------------------------------------------------------------------------------------


def shown(value: Any) -> str:
    """``repr(value)``, cut to 64 characters for an error message."""
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _text(
    value: Any, *, name: str, width: int, optional: bool, page: int | None, iccid: str | None, url: str
) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > width:
        rule = f"a non-empty string of at most {width} characters"
        rule = f"null or {rule}" if optional else rule
        raise MalformedPageError(
            page=page, iccid=iccid, field=name, reason=f"must be {rule}; got {shown(value)}", url=url
        )
    return value.strip()


def parse_device_page(payload: Any, page_number: int, url: str) -> DevicePage:
    """Check one device page payload and convert it; raise :class:`MalformedPageError` naming the field."""
    if not isinstance(payload, dict):
        raise MalformedPageError(
            page=page_number, field="<body>", reason=f"must be a JSON object; got {shown(payload)}", url=url
        )
    number = payload.get("pageNumber")
    if isinstance(number, bool) or not isinstance(number, int) or number != page_number:
        raise MalformedPageError(
            page=page_number,
            field="pageNumber",
            reason=f"must be the requested page {page_number}; got {shown(number)}",
            url=url,
        )
    last_page = payload.get("lastPage")
    if not isinstance(last_page, bool):
        raise MalformedPageError(
            page=page_number,
            field="lastPage",
            reason=f"must be true or false; got {shown(last_page)}",
            url=url,
        )
    raw = payload.get("devices")
    if not isinstance(raw, list):
        raise MalformedPageError(
            page=page_number, field="devices", reason=f"must be a list; got {shown(raw)}", url=url
        )
    devices = [_device(item, f"devices[{index}]", page_number, url) for index, item in enumerate(raw)]
    kept, dropped = dedupe_by_iccid(devices)
    if dropped:
        LOG.warning("Device page %d: %d duplicate ICCID entries dropped", page_number, dropped)
    return DevicePage(page_number, tuple(kept), last_page, dropped)


def _device(item: Any, path: str, page_number: int, url: str) -> JasperDevice:
    """Check one entry of a page's ``devices`` (``path`` names it) and convert it."""
    if not isinstance(item, dict):
        raise MalformedPageError(
            page=page_number, field=path, reason=f"must be an object; got {shown(item)}", url=url
        )
    common = {"page": page_number, "iccid": None, "url": url}
    iccid = _text(item.get("iccid"), name=f"{path}.iccid", width=MAX_ICCID, optional=False, **common)
    return JasperDevice(
        iccid=iccid,  # type: ignore[arg-type]
        status=_text(  # type: ignore[arg-type]
            item.get("status"), name=f"{path}.status", width=MAX_STATUS, optional=False, **common
        ),
        rate_plan=_text(
            item.get("ratePlan"),
            name=f"{path}.ratePlan",
            width=MAX_RATE_PLAN,
            optional=True,
            **common,
        ),
        communication_plan=_text(
            item.get("communicationPlan"),
            name=f"{path}.communicationPlan",
            width=MAX_COMM_PLAN,
            optional=True,
            **common,
        ),
    )


def _parse_time(value: Any, *, name: str, iccid: str, url: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise MalformedPageError(
            iccid=iccid,
            field=name,
            reason=f"must be null or an ISO 8601 date-time; got {shown(value)}",
            url=url,
        )
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return parsed


def _count(value: Any, *, name: str, iccid: str, url: str, default: int | None = None) -> int:
    if value is None and default is not None:
        return default
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedPageError(
            iccid=iccid, field=name, reason=f"must be an integer >= 0; got {shown(value)}", url=url
        )
    return value


def parse_usage(payload: Any, iccid: str, url: str, *, path: str = "") -> DeviceUsage:
    """Check one usage record and convert it; raise :class:`MalformedPageError` naming ICCID and field."""
    if not isinstance(payload, dict):
        raise MalformedPageError(
            iccid=iccid,
            field=path or "<body>",
            reason=f"must be a JSON object; got {shown(payload)}",
            url=url,
        )
    prefix = f"{path}." if path else ""
    if payload.get("iccid") != iccid:
        raise MalformedPageError(
            iccid=iccid,
            field=f"{prefix}iccid",
            reason=f"must be the requested ICCID; got {shown(payload.get('iccid'))}",
            url=url,
        )
    return DeviceUsage(
        iccid=iccid,
        ctd_data_usage=_count(
            payload.get("ctdDataUsage"), name=f"{prefix}ctdDataUsage", iccid=iccid, url=url
        ),
        ctd_sms_usage=_count(
            payload.get("ctdSMSUsage"), name=f"{prefix}ctdSMSUsage", iccid=iccid, url=url, default=0
        ),
        usage_date=_parse_time(payload.get("usageDate"), name=f"{prefix}usageDate", iccid=iccid, url=url),
        date_activated=_parse_time(
            payload.get("dateActivated"), name=f"{prefix}dateActivated", iccid=iccid, url=url
        ),
    )
