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
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from include.carrier_optimization.sync.carriers.jasper_payloads import (
    CarrierApiError,
    DevicePage,
    DeviceUsage,
    MalformedPageError,
    format_modified_since,
    parse_device_page,
    parse_usage,
    shown,
)

__all__ = ["BULK_USAGE_CHUNK", "DEVICES_PATH", "RETRY_STATUSES", "JasperClient", "RetryPolicy"]

LOG = logging.getLogger(__name__)

DEVICES_PATH = "api/v1/devices"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: ICCIDs per call of the bulk usage endpoint (keeps the query string far below server limits).
BULK_USAGE_CHUNK = 200


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
                            reason=f"must be JSON; got {shown(response.text[:200])} ({error})",
                            url=url,
                        ) from error
                problem = f"HTTP {status}: {shown(response.text[:200])}"
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
        return parse_device_page(payload, page_number, url)

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
        return parse_usage(payload, iccid, url)

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
                    iccid=chunk[0], field="usages", reason=f"must be a list; got {shown(records)}", url=url
                )
            by_iccid = {r.get("iccid"): r for r in records if isinstance(r, dict)}
            for iccid in chunk:
                if iccid not in by_iccid:
                    raise MalformedPageError(
                        iccid=iccid, field="usages", reason="has no record for this ICCID", url=url
                    )
                out.append(parse_usage(by_iccid[iccid], iccid, url, path=f"usages[{iccid}]"))
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
