"""Carrier simulator: a small HTTP server speaking the Jasper device API over a generated fleet.

Used by the tests, the benchmark and ``make demo`` in place of the carrier (docs/architecture.md). Endpoints,
all behind HTTP basic auth:

- ``GET /api/v1/devices?modifiedSince=<ISO>&pageNumber=N`` →
  ``{"pageNumber": N, "devices": [{"iccid", "status", "ratePlan", "communicationPlan"}], "lastPage"}``;
  devices whose modification time is before ``modifiedSince`` are left out; an empty last page is
  served when nothing matches;
- ``GET /api/v1/devices/{iccid}/ctdUsages`` →
  ``{"iccid", "ctdDataUsage" (bytes), "ctdSMSUsage", "usageDate", "dateActivated"}`` (404 if unknown);
- ``GET /api/v1/devices/ctdUsages?iccids=a,b,...`` → ``{"usages": [...]}`` (many devices per call).

Faults are injected through ``simulator_faults.Faults``: queued statuses (429 with ``Retry-After``, 500, ...)
for a page or an ICCID, slow pages, malformed pages, and a seeded random error rate. Every request is
counted in :attr:`CarrierSimulator.requests` so tests can check what was fetched and how often.

Run it standalone with ``python -m include.carrier_optimization.sync.carriers.simulator --sims N --port P``.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import logging
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

from include.carrier_optimization.core.fleet import Fleet, generate_fleet
from include.carrier_optimization.sync.carriers.simulated_fleet import SimulatedDevice, simulated_devices
from include.carrier_optimization.sync.carriers.simulator_faults import Faults

__all__ = ["DEFAULT_PASSWORD", "DEFAULT_USER", "CarrierSimulator", "main"]

LOG = logging.getLogger(__name__)

DEFAULT_USER = "jasper-user"
DEFAULT_PASSWORD = "jasper-secret"  # noqa: S105 - a local simulator's default, not a credential
DEFAULT_PAGE_SIZE = 50  # Jasper's own page size


class CarrierSimulator:
    """A threaded HTTP server serving ``devices`` as the Jasper API does.

    Parameters
    ----------
    devices : list of SimulatedDevice
        The carrier's SIMs, in listing order.
    host, port : str, int
        Where to listen; port 0 picks a free port (see :attr:`url`).
    user, password : str
        HTTP basic auth credentials the server accepts.
    page_size : int
        Devices per page (Jasper: 50).
    faults : Faults, optional
        Fault injection knobs (default: none).

    Examples
    --------
    >>> with CarrierSimulator.from_fleet(generate_fleet(100)) as sim:  # doctest: +SKIP
    ...     print(sim.url)
    """

    def __init__(
        self,
        devices: list[SimulatedDevice],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        user: str = DEFAULT_USER,
        password: str = DEFAULT_PASSWORD,
        page_size: int = DEFAULT_PAGE_SIZE,
        faults: Faults | None = None,
    ) -> None:
        if page_size < 1:
            raise ValueError(f"`page_size` must be >= 1; got {page_size}")
        self.devices = devices
        self.by_iccid = {d.iccid: d for d in devices}
        self.page_size = page_size
        self.faults = faults or Faults()
        self.requests: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self._lock = threading.Lock()
        self._listings: dict[dt.datetime, list[SimulatedDevice]] = {}
        self._auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @classmethod
    def from_fleet(
        cls, fleet: Fleet, *, modified: dt.datetime | None = None, **kwargs: Any
    ) -> CarrierSimulator:
        """Serve ``fleet``'s SIMs (see :func:`simulated_devices`; ``modified`` is their modification time)."""
        return cls(simulated_devices(fleet, modified=modified), **kwargs)

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL of the running server, e.g. ``http://127.0.0.1:40123``."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> CarrierSimulator:
        """Serve in a daemon thread; returns ``self``."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
            )
            self._thread.start()
            LOG.info("Carrier simulator serving %d SIMs on %s", len(self.devices), self.url)
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> CarrierSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- content -----------------------------------------------------------------------------------

    def page_count(self, modified_since: dt.datetime | None = None) -> int:
        """Pages the listing has for ``modified_since`` (at least 1)."""
        return max(1, -(-len(self._listed(modified_since)) // self.page_size))

    def _listed(self, modified_since: dt.datetime | None) -> list[SimulatedDevice]:
        if modified_since is None:
            return self.devices
        with self._lock:
            listed = self._listings.get(modified_since)
        if listed is None:  # filtering 100k SIMs per page would make paging quadratic: cache per date
            listed = [d for d in self.devices if d.modified >= modified_since]
            with self._lock:
                self._listings[modified_since] = listed
        return listed

    def invalidate(self) -> None:
        """Forget the cached listings; call after changing devices' ``modified`` times or the list."""
        with self._lock:
            self._listings.clear()
            self.by_iccid = {d.iccid: d for d in self.devices}

    def count(self, key: str) -> int:
        """Requests counted under ``key``: ``page:N``, ``usage:<iccid>``, ``usage-bulk``, ``unauthorized``."""
        with self._lock:
            return self.requests[key]

    def _record(self, key: str, status: int) -> None:
        with self._lock:
            self.requests[key] += 1
            self.statuses[status] += 1

    def _page_body(self, page: int, modified_since: dt.datetime | None) -> tuple[int, Any]:
        listed = self._listed(modified_since)
        start = (page - 1) * self.page_size
        chunk = listed[start : start + self.page_size]
        last = start + self.page_size >= len(listed)
        body = {"pageNumber": page, "devices": [d.listing() for d in chunk], "lastPage": last}
        kind = self.faults.page_malformation(page)
        if kind == "missing_iccid" and body["devices"]:
            body["devices"][len(body["devices"]) // 2].pop("iccid")
        elif kind == "not_json":
            return 200, "<html>gateway error</html>"
        elif kind == "wrong_page_number":
            body["pageNumber"] = page + 1
        elif kind == "devices_not_list":
            body["devices"] = {"count": len(chunk)}
        elif kind == "truncated":
            return 200, json.dumps(body)[:-17]
        return 200, body


def _parse_since(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return parsed


class _Handler(BaseHTTPRequestHandler):
    """Answers the Jasper routes from :attr:`sim` (set per server by :func:`_handler_for`)."""

    sim: ClassVar[CarrierSimulator]
    protocol_version = "HTTP/1.1"
    server_version = "CarrierSimulator/1.0"
    # Headers and body go out as two writes: without TCP_NODELAY each keep-alive answer waits
    # for the client's delayed ACK (~40 ms).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        LOG.debug("simulator: " + format, *args)

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        payload = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _fault(self, key: str, status: int) -> None:
        self.sim._record(key, status)
        headers = {"Retry-After": "0"} if status == 429 else {}
        self._send(status, {"errorMessage": f"injected fault {status}"}, headers)

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        if self.headers.get("Authorization") != self.sim._auth:
            self.sim._record("unauthorized", 401)
            self._send(401, {"errorMessage": "Invalid credentials"}, {"WWW-Authenticate": "Basic"})
            return
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        segments = [unquote(s) for s in parts.path.strip("/").split("/")]
        try:
            if segments == ["api", "v1", "devices"]:
                self._devices(query)
            elif segments == ["api", "v1", "devices", "ctdUsages"]:
                self._usage_bulk(query)
            elif (
                len(segments) == 5 and segments[:3] == ["api", "v1", "devices"] and segments[4] == "ctdUsages"
            ):
                self._usage(segments[3])
            else:
                self.sim._record("not-found", 404)
                self._send(404, {"errorMessage": f"no route {parts.path}"})
        except (ValueError, KeyError) as error:
            self.sim._record("bad-request", 400)
            self._send(400, {"errorMessage": f"bad request: {error}"})

    def _devices(self, query: dict[str, str]) -> None:
        page = int(query["pageNumber"])
        if page < 1:
            raise ValueError("pageNumber must be >= 1")
        since = _parse_since(query.get("modifiedSince"))
        key = f"page:{page}"
        if delay := self.sim.faults.page_delay(page):
            time.sleep(delay)
        if status := self.sim.faults.page_status(page):
            self._fault(key, status)
            return
        status, body = self.sim._page_body(page, since)
        self.sim._record(key, status)
        self._send(status, body)

    def _usage(self, iccid: str) -> None:
        key = f"usage:{iccid}"
        if status := self.sim.faults.usage_status([iccid]):
            self._fault(key, status)
            return
        device = self.sim.by_iccid.get(iccid)
        if device is None:
            self.sim._record(key, 404)
            self._send(404, {"errorMessage": f"ICCID {iccid} not found"})
            return
        self.sim._record(key, 200)
        self._send(200, device.usage())

    def _usage_bulk(self, query: dict[str, str]) -> None:
        iccids = [i for i in query.get("iccids", "").split(",") if i]
        if status := self.sim.faults.usage_status(iccids):
            self._fault("usage-bulk", status)
            return
        usages = [self.sim.by_iccid[i].usage() for i in iccids if i in self.sim.by_iccid]
        self.sim._record("usage-bulk", 200)
        self._send(200, {"usages": usages})


def _handler_for(sim: CarrierSimulator) -> type[BaseHTTPRequestHandler]:
    return type("Handler", (_Handler,), {"sim": sim})


def main(argv: list[str] | None = None) -> int:
    """Command line: serve a generated fleet until interrupted."""
    parser = argparse.ArgumentParser(description="Serve a generated fleet through the Jasper device API.")
    parser.add_argument("--sims", type=int, default=5000, help="SIMs to generate (default 5000)")
    parser.add_argument("--port", type=int, default=8099, help="port to listen on (0: any free port)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--page-size", type=int, default=DEFAULT_PAGE_SIZE)
    parser.add_argument("--user", default=DEFAULT_USER)
    parser.add_argument("--password", default=DEFAULT_PASSWORD)
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of requests answered 500")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    sim = CarrierSimulator.from_fleet(
        generate_fleet(args.sims, seed=args.seed),
        host=args.host,
        port=args.port,
        user=args.user,
        password=args.password,
        page_size=args.page_size,
        faults=Faults(error_rate=args.error_rate, seed=args.seed),
    )
    sim.start()
    LOG.info("Carrier simulator on %s (user %s); Ctrl-C to stop", sim.url, args.user)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
