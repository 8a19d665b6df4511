"""Benchmark of the device sync against the carrier simulator: devices synced per second.

Usage (from the project root)::

    .venv/bin/python bench/sync.py                          # 100k SIMs, SQLite
    .venv/bin/python bench/sync.py --sims 100000 --db postgresql://postgres@127.0.0.1:5432/postgres
    .venv/bin/python bench/sync.py --sims 20000 --usage per-device --workers 8

The simulator runs in its own process (``python -m include.carrier_optimization.sync.carriers.simulator``),
so it does not share the benchmark's interpreter lock; on a 2-core machine the two still share the CPUs.
The AMOP database holds the same tenant with other usage (another seed), so the merge updates most rows
and inserts the SIMs the database lacks. Phases: paging (device pages + their usage + staging, one
transaction per page, checkpoint per page), merge (one transaction), total. Paging time includes the
HTTP round trips of the device list and of the usage calls.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from include.carrier_optimization.amop.checkpoints import DatabaseCheckpointStore, checkpoint_key  # noqa: E402
from include.carrier_optimization.amop.repository import AmopRepository  # noqa: E402
from include.carrier_optimization.amop.schema import create_schema, drop_schema  # noqa: E402
from include.carrier_optimization.amop.storage import make_engine  # noqa: E402
from include.carrier_optimization.core.fleet import generate_fleet  # noqa: E402
from include.carrier_optimization.messaging.sync_messages import (  # noqa: E402
    build_sync_request_attributes,
    parse_sync_request,
)
from include.carrier_optimization.sync.carriers.jasper import JasperClient, RetryPolicy  # noqa: E402
from include.carrier_optimization.sync.carriers.simulator import DEFAULT_PASSWORD, DEFAULT_USER  # noqa: E402
from include.carrier_optimization.sync.merge import merge_staging  # noqa: E402
from include.carrier_optimization.sync.staging import sync_pages  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_simulator(sims: int, page_size: int, seed: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "include.carrier_optimization.sync.carriers.simulator",
            "--sims",
            str(sims),
            "--port",
            str(port),
            "--page-size",
            str(page_size),
            "--seed",
            str(seed),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return process, url
        except requests.ConnectionError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the simulator did not start within 120 s")


def database(url: str | None, folder: Path):
    if url is None:
        return make_engine(f"sqlite:///{folder / 'amop.sqlite'}"), "sqlite"
    if url.startswith("postgresql"):
        import psycopg

        name = f"bench_sync_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return make_engine(url.rsplit("/", 1)[0] + f"/{name}"), "postgresql"
    return make_engine(url), url.split(":", 1)[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=50, help="devices per page (Jasper: 50)")
    parser.add_argument("--usage", choices=["bulk", "per-device"], default="bulk")
    parser.add_argument("--workers", type=int, default=8, help="threads for per-device usage calls")
    parser.add_argument("--db", default=None, help="database URL (default: a temporary SQLite file)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        engine, dialect = database(args.db, Path(tmp))
        drop_schema(engine)
        create_schema(engine)
        # The AMOP side: the same tenant, 2 % fewer SIMs, usage of another seed.
        AmopRepository(engine).write_fleet(generate_fleet(int(args.sims * 0.98), seed=args.seed + 1))
        started = time.perf_counter()
        process, url = start_simulator(args.sims, args.page_size, args.seed)
        print(f"simulator: {args.sims:,} SIMs on {url}, started in {time.perf_counter() - started:.1f} s")
        try:
            session = requests.Session()
            session.auth = (DEFAULT_USER, DEFAULT_PASSWORD)
            client = JasperClient(session, url, retry=RetryPolicy(), bulk_usage=args.usage == "bulk")
            attributes = build_sync_request_attributes(
                service_provider_id=101, last_sync_date="2026-01-01T00:00:00Z", session_id=1
            )
            request = parse_sync_request({"MessageId": "bench", "MessageAttributes": attributes})
            store = DatabaseCheckpointStore(engine)
            key = checkpoint_key("bench", "sync", "sync_devices", name="pages")

            t0 = time.perf_counter()
            pages = sync_pages(engine, client, request, store=store, key=key, usage_workers=args.workers)
            t1 = time.perf_counter()
            merged = merge_staging(engine, service_provider_id=101, tenant_id=1)
            t2 = time.perf_counter()
        finally:
            process.terminate()
            process.wait(timeout=10)
        engine.dispose()

    paging, merging, total = t1 - t0, t2 - t1, t2 - t0
    print(
        f"database: {dialect}; usage: {args.usage}"
        + (f" ({args.workers} threads)" if args.usage != "bulk" else "")
    )
    print(
        f"paging:  {pages.pages:,} pages, {pages.devices:,} devices in {paging:.1f} s "
        f"= {pages.devices / paging:,.0f} devices/s, {pages.pages / paging:,.1f} pages/s"
    )
    print(
        f"merge:   {merged.staged:,} staged -> {merged.inserted:,} inserted, {merged.updated:,} updated, "
        f"{merged.unchanged:,} unchanged in {merging:.1f} s = {merged.staged / merging:,.0f} devices/s"
    )
    print(
        f"total:   {pages.devices:,} devices synced in {total:.1f} s = {pages.devices / total:,.0f} devices/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
