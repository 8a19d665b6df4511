"""Client of the Jasper (Cisco IoT Control Center) REST API: device pages, cycle-to-date usage, retries.

The client receives a ``requests.Session``-like object (authentication, headers and TLS settings are
the session's) and the API's base URL; it never reads configuration. Behaviour follows the legacy
device-sync Lambda (docs/architecture.md) with its quirks corrected:

- ``GET {base}/api/v1/devices?modifiedSince=<ISO>Z&pageNumber=N`` returns
  ``{pageNumber, devices: [{iccid, status, ratePlan, communicationPlan}], lastPage}``; devices are
  de-duplicated by ICCID; paging stops on ``lastPage`` or at a page limit.
- ``GET {base}/api/v1/devices/{iccid}/ctdUsages`` returns
  ``{iccid, ctdDataUsage (bytes), ctdSMSUsage, usageDate, dateActivated}``; the carrier simulator also
  serves ``GET {base}/api/v1/devices/ctdUsages?iccids=a,b,...`` (many devices per call).
- 429, 5xx, timeouts and dropped connections are retried with exponential backoff (``Retry-After``
  honoured); other 4xx and malformed payloads fail at once with an error naming the page and field,
  instead of the legacy "count errors and carry on" loop that could end a sync half done.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

__all__ = [
    "DEVICES_PATH",
    "RETRY_STATUSES",
    "CarrierApiError",
    "DevicePage",
    "DeviceUsage",
    "JasperClient",
    "JasperDevice",
    "MalformedPageError",
    "RetryPolicy",
    "dedupe_by_iccid",
    "format_modified_since",
]

LOG = logging.getLogger(__name__)

DEVICES_PATH = "api/v1/devices"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: ICCIDs per call of the bulk usage endpoint (keeps the query string far below server limits).
BULK_USAGE_CHUNK = 200
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
class RetryPolicy:
    """When and how long to retry a carrier call.

    A call is retried on an HTTP status in ``retry_statuses``, on a timeout and on a connection error,
    at most ``max_retries`` times. Before retry ``k`` (1-based) the client sleeps
    ``min(backoff_max_seconds, backoff_seconds * 2**(k-1)) * U(0.5, 1)`` (equal jitter), or the
    response's ``Retry-After`` seconds when given (capped at ``backoff_max_seconds``).

    Attributes
    ----------
    max_retries : int
        Retries after the first call (default 3, as the legacy HTTP policy).
    backoff_seconds, backoff_max_seconds : float
        Base and cap of the exponential backoff.
    connect_timeout_seconds, read_timeout_seconds : float
        ``requests`` timeouts of one call.
    retry_statuses : frozenset of int
        Statuses worth retrying (default 429 and 500, 502, 503, 504).
    """

    max_retries: int = 3
    backoff_seconds: float = 0.5
    backoff_max_seconds: float = 30.0
    connect_timeout_seconds: float = 10.0
    read_timeout_seconds: float = 30.0
    retry_statuses: frozenset[int] = field(default=RETRY_STATUSES)

    def __post_init__(self) -> None:
        if (
            isinstance(self.max_retries, bool)
            or not isinstance(self.max_retries, int)
            or self.max_retries < 0
        ):
            raise ValueError(f"`max_retries` must be an integer >= 0; got {self.max_retries!r}")
        for name in ("backoff_seconds", "backoff_max_seconds"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"`{name}` must be >= 0; got {getattr(self, name)!r}")
        for name in ("connect_timeout_seconds", "read_timeout_seconds"):
            if not getattr(self, name) > 0:
                raise ValueError(f"`{name}` must be > 0; got {getattr(self, name)!r}")

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to sleep before retry number ``retry`` (1-based)."""
        if retry_after is not None:
            return max(0.0, min(self.backoff_max_seconds, retry_after))
        base = min(self.backoff_max_seconds, self.backoff_seconds * 2 ** (retry - 1))
        return base * random.uniform(0.5, 1.0)

    @property
    def timeout(self) -> tuple[float, float]:
        """``(connect, read)`` timeout tuple for ``requests``."""
        return (self.connect_timeout_seconds, self.read_timeout_seconds)


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


def _shown(value: Any) -> str:
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
            page=page, iccid=iccid, field=name, reason=f"must be {rule}; got {_shown(value)}", url=url
        )
    return value.strip()


def _page_iv(payload: Any, page_number: int, url: str) -> DevicePage:
    """Check one device page payload and convert it; raise naming the page and the field."""
    if not isinstance(payload, dict):
        raise MalformedPageError(
            page=page_number, field="<body>", reason=f"must be a JSON object; got {_shown(payload)}", url=url
        )
    number = payload.get("pageNumber")
    if isinstance(number, bool) or not isinstance(number, int) or number != page_number:
        raise MalformedPageError(
            page=page_number,
            field="pageNumber",
            reason=f"must be the requested page {page_number}; got {_shown(number)}",
            url=url,
        )
    last_page = payload.get("lastPage")
    if not isinstance(last_page, bool):
        raise MalformedPageError(
            page=page_number,
            field="lastPage",
            reason=f"must be true or false; got {_shown(last_page)}",
            url=url,
        )
    raw = payload.get("devices")
    if not isinstance(raw, list):
        raise MalformedPageError(
            page=page_number, field="devices", reason=f"must be a list; got {_shown(raw)}", url=url
        )
    devices = []
    for index, item in enumerate(raw):
        path = f"devices[{index}]"
        if not isinstance(item, dict):
            raise MalformedPageError(
                page=page_number, field=path, reason=f"must be an object; got {_shown(item)}", url=url
            )
        common = {"page": page_number, "iccid": None, "url": url}
        iccid = _text(item.get("iccid"), name=f"{path}.iccid", width=MAX_ICCID, optional=False, **common)
        devices.append(
            JasperDevice(
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
        )
    kept, dropped = dedupe_by_iccid(devices)
    if dropped:
        LOG.warning("Device page %d: %d duplicate ICCID entries dropped", page_number, dropped)
    return DevicePage(page_number, tuple(kept), last_page, dropped)


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
            reason=f"must be null or an ISO 8601 date-time; got {_shown(value)}",
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
            iccid=iccid, field=name, reason=f"must be an integer >= 0; got {_shown(value)}", url=url
        )
    return value


def _usage_iv(payload: Any, iccid: str, url: str, *, path: str = "") -> DeviceUsage:
    """Check one usage record and convert it; raise naming the ICCID and the field."""
    if not isinstance(payload, dict):
        raise MalformedPageError(
            iccid=iccid,
            field=path or "<body>",
            reason=f"must be a JSON object; got {_shown(payload)}",
            url=url,
        )
    prefix = f"{path}." if path else ""
    if payload.get("iccid") != iccid:
        raise MalformedPageError(
            iccid=iccid,
            field=f"{prefix}iccid",
            reason=f"must be the requested ICCID; got {_shown(payload.get('iccid'))}",
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


# -- client ----------------------------------------------------------------------------------------


class JasperClient:
    """Calls of the Jasper REST API over a ``requests.Session``-like object, with retries.

    Parameters
    ----------
    session : requests.Session or compatible
        Carries authentication (HTTP basic auth for Jasper), headers and TLS settings; must offer
        ``get(url, params=..., timeout=...)`` returning a response with ``status_code``, ``headers``,
        ``json()`` and ``text``. Thread-safe for concurrent GETs (``requests.Session`` is, in practice).
    base_url : str
        API root, e.g. ``https://rws.jasper.com`` (``ProductionApiUrl``); a missing scheme means https.
    devices_path : str, optional
        Path of the device list below ``base_url`` (legacy ``JasperDevicesGetPath``).
    retry : RetryPolicy, optional
        Retry and timeout policy (default ``RetryPolicy()``).
    sleep : callable, optional
        Called with the seconds to wait before a retry (tests pass a recorder).
    bulk_usage : bool, optional
        Whether the server offers the bulk usage endpoint (the carrier simulator does); the default
        of :meth:`device_usages`.

    Examples
    --------
    >>> import requests
    >>> session = requests.Session(); session.auth = ("user", "secret")
    >>> client = JasperClient(session, "http://127.0.0.1:8099")
    >>> for page in client.iter_device_pages("2026-10-27T00:00:00Z"):  # doctest: +SKIP
    ...     usages = client.device_usages([d.iccid for d in page.devices], bulk=True)
    """

    def __init__(
        self,
        session: Any,
        base_url: str,
        *,
        devices_path: str = DEVICES_PATH,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        bulk_usage: bool = False,
    ) -> None:
        if not isinstance(base_url, str) or not base_url.strip():
            raise ValueError("`base_url` must be the carrier API root URL; got an empty value")
        base_url = base_url.strip()
        if "://" not in base_url:
            base_url = "https://" + base_url
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.devices_path = devices_path.strip("/")
        self.retry = retry or RetryPolicy()
        self.sleep = sleep
        self.bulk_usage = bulk_usage

    # -- transport ---------------------------------------------------------------------------------

    def _url(self, *parts: str) -> str:
        return "/".join([self.base_url, self.devices_path, *parts])

    def _get_json(self, url: str, params: dict[str, Any] | None, *, page: int | None, what: str) -> Any:
        """GET ``url`` with retries; return the decoded JSON body."""
        import requests  # the library's only HTTP dependency, imported on first call

        policy = self.retry
        attempts = 0
        while True:
            attempts += 1
            retry_after: float | None = None
            try:
                response = self.session.get(url, params=params, timeout=policy.timeout)
            except (requests.Timeout, requests.ConnectionError) as error:
                status, problem = None, f"{type(error).__name__}: {error}"
            else:
                status = response.status_code
                if 200 <= status < 300:
                    try:
                        return response.json()
                    except ValueError as error:
                        raise MalformedPageError(
                            page=page,
                            iccid=None if page is not None else what,
                            field="<body>",
                            reason=f"must be JSON; got {_shown(response.text[:200])} ({error})",
                            url=url,
                        ) from error
                problem = f"HTTP {status}: {_shown(response.text[:200])}"
                if status not in policy.retry_statuses:
                    hint = " (check the connection's login and password)" if status in (401, 403) else ""
                    raise CarrierApiError(
                        f"{what} failed with {problem}{hint}; url {url}",
                        url=url,
                        page=page,
                        status=status,
                        attempts=attempts,
                    )
                retry_after = _retry_after(response.headers.get("Retry-After"))
            if attempts > policy.max_retries:
                raise CarrierApiError(
                    f"{what} failed after {attempts} attempts; last error {problem}; url {url}",
                    url=url,
                    page=page,
                    status=status,
                    attempts=attempts,
                )
            delay = policy.delay(attempts, retry_after)
            LOG.warning(
                "%s: %s; retry %d of %d in %.2f s", what, problem, attempts, policy.max_retries, delay
            )
            self.sleep(delay)

    # -- devices -----------------------------------------------------------------------------------

    def device_page(self, page_number: int, modified_since: dt.datetime | str) -> DevicePage:
        """One page of the devices modified since ``modified_since`` (pages count from 1).

        Raises
        ------
        CarrierApiError
            After the retries, or at once on a non-retryable status.
        MalformedPageError
            When the page does not have the documented shape.
        """
        if isinstance(page_number, bool) or not isinstance(page_number, int) or page_number < 1:
            raise ValueError(f"`page_number` must be an integer >= 1; got {page_number!r}")
        url = self._url()
        payload = self._get_json(
            url,
            {"modifiedSince": format_modified_since(modified_since), "pageNumber": page_number},
            page=page_number,
            what=f"Jasper device page {page_number}",
        )
        return _page_iv(payload, page_number, url)

    def iter_device_pages(
        self, modified_since: dt.datetime | str, *, start_page: int = 1, max_pages: int | None = None
    ) -> Iterator[DevicePage]:
        """Pages ``start_page, start_page + 1, ...`` until ``lastPage`` or ``max_pages`` pages were read."""
        if max_pages is not None and max_pages < 1:
            raise ValueError(f"`max_pages` must be None or >= 1; got {max_pages!r}")
        number, read = start_page, 0
        while max_pages is None or read < max_pages:
            page = self.device_page(number, modified_since)
            read += 1
            yield page
            if page.last_page:
                return
            number += 1

    # -- usage -------------------------------------------------------------------------------------

    def device_usage(self, iccid: str) -> DeviceUsage:
        """Cycle-to-date usage of one device (``GET devices/{iccid}/ctdUsages``)."""
        url = self._url(quote(iccid, safe=""), "ctdUsages")
        payload = self._get_json(url, None, page=None, what=f"Jasper usage of ICCID {iccid}")
        return _usage_iv(payload, iccid, url)

    def device_usages_bulk(self, iccids: Sequence[str]) -> list[DeviceUsage]:
        """Usage of many devices per call (``GET devices/ctdUsages?iccids=...``; simulator extension).

        Returns one record per requested ICCID, in request order; a missing or extra record is a
        :class:`MalformedPageError`.
        """
        url = self._url("ctdUsages")
        out: list[DeviceUsage] = []
        for start in range(0, len(iccids), BULK_USAGE_CHUNK):
            chunk = list(iccids[start : start + BULK_USAGE_CHUNK])
            payload = self._get_json(
                url, {"iccids": ",".join(chunk)}, page=None, what=f"Jasper usage of {len(chunk)} ICCIDs"
            )
            records = payload.get("usages") if isinstance(payload, dict) else None
            if not isinstance(records, list):
                raise MalformedPageError(
                    iccid=chunk[0], field="usages", reason=f"must be a list; got {_shown(records)}", url=url
                )
            by_iccid = {r.get("iccid"): r for r in records if isinstance(r, dict)}
            for iccid in chunk:
                if iccid not in by_iccid:
                    raise MalformedPageError(
                        iccid=iccid, field="usages", reason="has no record for this ICCID", url=url
                    )
                out.append(_usage_iv(by_iccid[iccid], iccid, url, path=f"usages[{iccid}]"))
        return out

    def device_usages(
        self, iccids: Sequence[str], *, bulk: bool | None = None, workers: int = 1
    ) -> list[DeviceUsage]:
        """Usage of ``iccids`` in order: bulk calls, or one call per device on ``workers`` threads.

        ``bulk=None`` takes the client's ``bulk_usage``.
        """
        if self.bulk_usage if bulk is None else bulk:
            return self.device_usages_bulk(iccids)
        if workers <= 1 or len(iccids) <= 1:
            return [self.device_usage(iccid) for iccid in iccids]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="jasper-usage") as pool:
            return list(pool.map(self.device_usage, iccids))


def _retry_after(value: str | None) -> float | None:
    """Seconds of a ``Retry-After`` header given in seconds; ``None`` when absent or a date."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
