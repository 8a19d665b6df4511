"""The local stand-ins of a deployment's outside services: an SQS endpoint and the carriers' APIs.

``make airflow`` and the end-to-end tests run this module as one process of their own
(``python -m scripts.local_services ...``): it serves a moto SQS endpoint with every queue of
``dags/tenants.yaml`` created, and one carrier simulator per service provider serving that provider's
generated fleet as of now. :func:`seed_amop` writes the same fleets, as they were three days ago, into
the AMOP database, so a device sync has fresh usage to bring in. Both derive every fleet from one seed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import signal
import sys
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from dateutil.relativedelta import relativedelta

ROOT = Path(__file__).resolve().parents[1]
TENANTS_FILE = ROOT / "dags" / "tenants.yaml"
STALE_DAYS = 3

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from include.carrier_optimization.config.tenants import (  # noqa: E402
    ServiceProviderConfig,
    TenantConfig,
    load_tenants,
)
from include.carrier_optimization.core.fleet import Fleet, TenantSpec, generate_fleet  # noqa: E402


def tenant_spec(tenant: TenantConfig, provider: ServiceProviderConfig) -> TenantSpec:
    """The fleet generator's identity of one service provider of ``tenant``."""
    return TenantSpec(
        tenant_id=tenant.tenant_id,
        name=tenant.slug,
        service_provider_id=provider.id,
        service_provider_name=provider.name,
        uses_proration=provider.uses_proration,
        start_hour=provider.start_hour,
    )


def current_period_end(now: dt.datetime) -> dt.datetime:
    """The last second of ``now``'s calendar month (the sample tenants bill monthly)."""
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return first + relativedelta(months=1) - dt.timedelta(seconds=1)


def sample_fleet(
    tenant: TenantConfig,
    provider: ServiceProviderConfig,
    *,
    sims: int,
    seed: int,
    as_of: dt.datetime,
    now: dt.datetime,
) -> Fleet:
    """One provider's fleet read at ``as_of``: the same SIMs and plans for any ``as_of``."""
    return generate_fleet(
        sims,
        seed=seed + provider.id,
        tenant=tenant_spec(tenant, provider),
        period_end=current_period_end(now),
        as_of=as_of,
    )


def provider_sims(tenant: TenantConfig, sims: int | None) -> int:
    """SIMs per provider: ``sims`` when given, else the tenant's ``sample_sims`` split over providers."""
    if sims:
        return sims
    total = int(tenant.extra.get("sample_sims", 2000))
    return max(1, total // len(tenant.service_providers))


def fleets(
    tenants: list[TenantConfig], *, sims: int | None, seed: int, age: dt.timedelta, now: dt.datetime
) -> Iterator[tuple[TenantConfig, ServiceProviderConfig, Fleet]]:
    """Every provider's fleet of ``tenants``, read ``age`` before ``now``."""
    for tenant in tenants:
        for provider in tenant.service_providers:
            fleet = sample_fleet(
                tenant, provider, sims=provider_sims(tenant, sims), seed=seed, as_of=now - age, now=now
            )
            yield tenant, provider, fleet


def seed_amop(
    amop_url: str,
    tenants: list[TenantConfig],
    *,
    sims: int | None,
    seed: int,
    now: dt.datetime,
    as_of: dt.datetime | None = None,
) -> dict[int, int]:
    """Write every provider's fleet into a fresh AMOP schema at ``amop_url``, read ``as_of``.

    The reading is three days old by default (the device sync brings it up to date). The billing period
    is the one of ``now`` whatever ``as_of`` is: a benchmark reads late in the period so that its runs
    compare from one day to the next (a reading at the start of a month has no usage yet).
    Returns the SIM count per service provider id.
    """
    from include.carrier_optimization.amop.repository import AmopRepository
    from include.carrier_optimization.amop.schema import create_schema, drop_schema
    from include.carrier_optimization.amop.storage import make_engine

    engine = make_engine(amop_url)
    try:
        drop_schema(engine)
        create_schema(engine)
        repository = AmopRepository(engine)
        counts = {}
        age = now - as_of if as_of is not None else dt.timedelta(days=STALE_DAYS)
        for _, provider, fleet in fleets(tenants, sims=sims, seed=seed, age=age, now=now):
            repository.write_fleet(fleet)
            counts[provider.id] = len(fleet.devices)
        return counts
    finally:
        engine.dispose()


def select_tenants(tenants: list[TenantConfig], slugs: Iterable[str] | None) -> list[TenantConfig]:
    """The tenants whose slug is in ``slugs`` (all when ``slugs`` is None); an unknown slug is an error."""
    if slugs is None:
        return list(tenants)
    wanted = set(slugs)
    if unknown := wanted - {t.slug for t in tenants}:
        raise ValueError(f"unknown tenant(s): {sorted(unknown)}")
    return [t for t in tenants if t.slug in wanted]


def take_from_queue(dag: Any, *, timeout: float = 120.0, **watcher: Any) -> None:
    """Let ``dag.test()`` run as if the queue's asset watcher had started it.

    ``dag.test()`` has no triggerer: the ``request`` task's triggering events are replaced by what one
    round of :class:`plugins.triggers.intake.SqsRequestWatcherTrigger` (``watcher`` are its arguments)
    takes from the queue, polled until a message arrives or ``timeout`` seconds pass.
    """
    import time

    from airflow.providers.amazon.aws.hooks.sqs import SqsHook

    from plugins.triggers.intake import SqsRequestWatcherTrigger

    trigger = SqsRequestWatcherTrigger(**({"wait_time_seconds": 1} | watcher))

    def payloads(context) -> list[dict]:
        client = SqsHook(aws_conn_id="aws_default").get_conn()
        deadline = time.monotonic() + timeout
        while not (taken := trigger._round(client)) and time.monotonic() < deadline:
            time.sleep(0.2)
        return taken

    dag.get_task("request").payloads = payloads


def tenant_queues(tenants: list[TenantConfig]) -> list[str]:
    """Every SQS queue name ``tenants.yaml`` mentions, in file order, without repeats."""
    names: list[str] = []
    for tenant in tenants:
        for name in (tenant.request_queue, tenant.device_sync_queue, tenant.dead_letter_queue):
            if name and name not in names:
                names.append(name)
    return names


def serve(
    *,
    sqs_port: int,
    carrier_ports: dict[int, int],
    tenants: list[TenantConfig],
    sims: int | None,
    seed: int,
    now: dt.datetime,
    stop: threading.Event,
    queue_tenants: list[TenantConfig] | None = None,
) -> None:
    """Serve the SQS endpoint and the carrier simulators until ``stop`` is set.

    The queues are those of ``queue_tenants`` (default: ``tenants``): every DAG finds its queues even when
    only some tenants' carriers are simulated.
    """
    import boto3
    from moto.server import ThreadedMotoServer

    from include.carrier_optimization.sync.carriers.simulator import CarrierSimulator

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    sqs = ThreadedMotoServer(ip_address="127.0.0.1", port=sqs_port, verbose=False)
    sqs.start()
    client = boto3.client(
        "sqs",
        endpoint_url=f"http://127.0.0.1:{sqs_port}",
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    for name in tenant_queues(queue_tenants if queue_tenants is not None else tenants):
        client.create_queue(QueueName=name)
    simulators = [
        CarrierSimulator.from_fleet(fleet, port=carrier_ports[provider.id]).start()
        for _, provider, fleet in fleets(tenants, sims=sims, seed=seed, age=dt.timedelta(hours=1), now=now)
    ]
    print(json.dumps({"sqs": sqs_port, "carriers": [s.url for s in simulators]}), flush=True)
    try:
        stop.wait()
    finally:
        for simulator in simulators:
            simulator.stop()
        sqs.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sqs-port", type=int, required=True)
    parser.add_argument(
        "--carrier-ports", required=True, help='JSON object: service provider id -> port, e.g. {"101": 9101}'
    )
    parser.add_argument("--sims", type=int, default=None, help="SIMs per provider (default: tenants.yaml)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--tenants", default=None, help="comma-separated slugs whose carriers are simulated (default: all)"
    )
    parser.add_argument("--now", default=None, help="ISO time the fleets are generated for (default: now)")
    args = parser.parse_args(argv)
    now = dt.datetime.fromisoformat(args.now) if args.now else dt.datetime.now()
    all_tenants = load_tenants(TENANTS_FILE)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    serve(
        sqs_port=args.sqs_port,
        carrier_ports={int(k): int(v) for k, v in json.loads(args.carrier_ports).items()},
        tenants=select_tenants(all_tenants, args.tenants.split(",") if args.tenants else None),
        queue_tenants=all_tenants,
        sims=args.sims,
        seed=args.seed,
        now=now,
        stop=stop,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
