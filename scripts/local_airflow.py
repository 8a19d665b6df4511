"""`make airflow`: a running Airflow on the checkout, and the same launcher for the end-to-end tests.

It starts, as processes of their own, the local stand-ins of the outside services
(:mod:`scripts.local_services`: an SQS endpoint and the carrier simulators), then Airflow's api-server,
scheduler, dag-processor and triggerer, plus Celery workers when the executor is Celery. The metadata
database is a database on the local PostgreSQL; the AMOP database is an embedded SQLite file unless a
URL is given (the tests give a PostgreSQL one). Local mode (``CARRIER_OPT_LOCAL_MODE``) is switched on:
e-mails go to the outbox folder and no AMOP API is called.

Every process id is written to ``<home>/local_airflow.json``; ``stop`` ends exactly those processes
(and their children: each runs in a process group of its own). ``python -m scripts.local_airflow
start|stop|status``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.airflow_api import AirflowApi, wait_until  # noqa: E402
from scripts.local_services import TENANTS_FILE, seed_amop, select_tenants  # noqa: E402

STATE_FILE = "local_airflow.json"
POSTGRES = os.environ.get("CARRIER_OPT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = "redis://127.0.0.1:6379"
USER, PASSWORD = "admin", "admin"
#: api-server worker processes (uvicorn). Each builds the execution API's versioned routes on its first
#: request to it; :meth:`LocalAirflow.warm_execution_api` makes that happen before the first task.
API_WORKERS = 2
WINDOW_DAG_ID = "carrier_optimization_window"


def free_port() -> int:
    """An unused TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LocalAirflow:
    """One local Airflow deployment: its settings, its processes and how to reach it."""

    home: Path
    executor: str = "LocalExecutor"
    port: int = 8080
    metadata_db: str = "carrier_opt_airflow"
    amop_url: str | None = None
    redis_db: int = 2
    workers: int = 2
    sims: int | None = None
    seed: int = 42
    #: Slugs of the tenants whose fleets are seeded and simulated (default: every tenant of tenants.yaml).
    #: The others' DAGs still exist, on an empty AMOP database.
    tenants: tuple[str, ...] | None = None
    #: When the seeded fleet's usage was read (default: three days ago; see ``seed_amop``).
    seed_as_of: dt.datetime | None = None
    #: Extra Airflow settings (``AIRFLOW__SECTION__KEY`` names), e.g. faster zombie detection in tests.
    settings: dict[str, str] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    # -- where things are --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL of the api-server (UI and REST API)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def metadata_url(self) -> str:
        """SQLAlchemy URL of the metadata database."""
        return (
            POSTGRES.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
            + f"/{self.metadata_db}"
        )

    @property
    def amop(self) -> str:
        """SQLAlchemy URL of the AMOP database."""
        return self.amop_url or f"sqlite:///{self.home / 'amop.sqlite'}"

    @property
    def outbox(self) -> Path:
        """Folder the e-mails are written to (local mode)."""
        return self.home / "outbox"

    def api(self) -> AirflowApi:
        """A REST API client signed in as the admin user."""
        return AirflowApi(self.url, username=USER, password=PASSWORD)

    # -- configuration -----------------------------------------------------------------------------

    def _choose_ports(self, tenants) -> None:
        self.ports = {"sqs": free_port(), "worker_logs": free_port(), "trigger_logs": free_port()}
        for tenant in tenants:
            for provider in tenant.service_providers:
                self.ports[f"carrier_{provider.id}"] = free_port()

    def environment(self, tenants) -> dict[str, str]:
        """The environment every process of this deployment runs with."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__"))}
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                # scripts/local_config holds the airflow_local_settings module of local deployments
                "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "scripts" / "local_config")]),
                "CARRIER_OPT_LOCAL_MODE": "true",
                "CARRIER_OPT_OUTBOX": str(self.outbox),
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": self.executor,
                # 4 CPU-bound tasks at once (2 Celery workers x 2) and one slot for the small tasks
                # between them, whose executor slot a supervisor can hold up to a second after they end
                "AIRFLOW__CORE__PARALLELISM": "5",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.metadata_url,
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": self.metadata_url.replace(
                    "+psycopg", "+psycopg_async"
                ),
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__API_AUTH__JWT_SECRET": self._secret(),
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.ports["worker_logs"]),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.ports["trigger_logs"]),
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
                # a dependent task starts within a few tenths of a second instead of up to one second
                "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
                # a task's supervisor waits in select() up to this long between heartbeats, and now and
                # then notices its finished task only then: 5 s (the default) of a held executor slot
                "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
                "AIRFLOW__CELERY__BROKER_URL": f"{REDIS}/{self.redis_db}",
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + self.metadata_url,
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
                "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(
                    {
                        "conn_type": "aws",
                        "login": "local",
                        "password": "local",
                        "extra": {
                            "region_name": "us-east-1",
                            "endpoint_url": f"http://127.0.0.1:{self.ports['sqs']}",
                        },
                    }
                ),
                "AIRFLOW_CONN_REDIS_DEFAULT": f"{REDIS}/{self.redis_db + 1}",
                "AIRFLOW_CONN_AMOP_DB": self._amop_connection(),
            }
        )
        from include.carrier_optimization.sync.carriers.simulator import DEFAULT_PASSWORD, DEFAULT_USER

        for tenant in tenants:
            for provider in tenant.service_providers:
                env["AIRFLOW_CONN_" + provider.carrier_api_conn_id.upper()] = json.dumps(
                    {
                        "conn_type": "http",
                        "host": f"http://127.0.0.1:{self.ports[f'carrier_{provider.id}']}",
                        "login": DEFAULT_USER,
                        "password": DEFAULT_PASSWORD,
                        "extra": {"bulk_usage": True},
                    }
                )
        env.update(self.settings)
        return env

    def _secret(self) -> str:
        path = self.home / "jwt_secret"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(32))
        return path.read_text().strip()

    def _amop_connection(self) -> str:
        from sqlalchemy.engine import make_url

        url = make_url(self.amop)
        if url.get_backend_name() == "sqlite":
            return json.dumps({"conn_type": "sqlite", "host": url.database})
        return json.dumps(
            {
                "conn_type": "postgres",
                "host": url.host or "127.0.0.1",
                "port": url.port or 5432,
                "login": url.username or "postgres",
                "password": url.password or "",
                "schema": url.database,
            }
        )

    # -- set-up ------------------------------------------------------------------------------------

    def prepare(self, *, fresh: bool) -> None:
        """Folders, sign-in, the metadata database (migrated) and, when new or ``fresh``, the AMOP data."""
        from include.carrier_optimization.config.tenants import load_tenants

        tenants = load_tenants(TENANTS_FILE)
        self.home.mkdir(parents=True, exist_ok=True)
        self.outbox.mkdir(exist_ok=True)
        (self.home / "passwords.json").write_text(json.dumps({USER: PASSWORD}))
        self._choose_ports(tenants)
        create_database(self.metadata_db, drop=fresh)
        if fresh:
            _flush_redis(self.redis_db, self.redis_db + 1)
        amop_file = self.home / "amop.sqlite"
        if fresh or self.amop_url or not amop_file.exists():
            counts = seed_amop(
                self.amop,
                select_tenants(tenants, self.tenants),
                sims=self.sims,
                seed=self.seed,
                now=dt.datetime.now(),
                as_of=self.seed_as_of,
            )
            print(f"AMOP database {self.amop}: {sum(counts.values()):,} SIMs over {len(counts)} providers")
        self.cli("db", "migrate")

    def cli(self, *args: str) -> str:
        """Run ``airflow <args>`` with this deployment's environment; its output, or RuntimeError.

        For the set-up commands a deployment needs besides ``db migrate`` (e.g. the FAB auth manager's
        ``users create`` and ``roles add-perms``).
        """
        from include.carrier_optimization.config.tenants import load_tenants

        tenants = load_tenants(TENANTS_FILE)
        if not self.ports:
            self._choose_ports(tenants)
        done = subprocess.run(
            [_airflow(), *args],
            env=self.environment(tenants),
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode:
            raise RuntimeError(f"airflow {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    # -- processes ---------------------------------------------------------------------------------

    def commands(self) -> dict[str, list[str]]:
        """The command line of every process this deployment runs, by name."""
        carrier_ports = {k.split("_", 1)[1]: v for k, v in self.ports.items() if k.startswith("carrier_")}
        commands = {
            "services": [
                sys.executable,
                "-m",
                "scripts.local_services",
                "--sqs-port",
                str(self.ports["sqs"]),
                "--carrier-ports",
                json.dumps(carrier_ports),
                "--seed",
                str(self.seed),
            ]
            + (["--sims", str(self.sims)] if self.sims else [])
            + (["--tenants", ",".join(self.tenants)] if self.tenants is not None else []),
            "api-server": [
                _airflow(),
                "api-server",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(API_WORKERS),
            ],
            "scheduler": [_airflow(), "scheduler"],
            "dag-processor": [_airflow(), "dag-processor"],
            "triggerer": [_airflow(), "triggerer"],
        }
        if self.executor == "CeleryExecutor":
            for n in range(1, self.workers + 1):
                commands[f"worker-{n}"] = [
                    _airflow(),
                    "celery",
                    "worker",
                    "--celery-hostname",
                    f"worker{n}@%h",
                    "--concurrency",
                    "2",
                    "--skip-serve-logs",
                    "--without-gossip",
                    "--without-mingle",
                ]
        return commands

    def start(self, names: list[str] | None = None) -> None:
        """Start the processes (all, or ``names``), each in its own process group; record their ids."""
        from include.carrier_optimization.config.tenants import load_tenants

        env = self.environment(load_tenants(TENANTS_FILE))
        logs = self.home / "process-logs"
        logs.mkdir(exist_ok=True)
        for name, command in self.commands().items():
            if names is not None and name not in names:
                continue
            with open(logs / f"{name}.log", "ab") as log:
                process = subprocess.Popen(
                    command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            self.pids[name] = process.pid
        self.save()

    def wait_ready(self, timeout: float = 240, *, keep_paused: tuple[str, ...] = ()) -> AirflowApi:
        """Wait until every component is healthy and every product DAG is known; unpause them.

        ``keep_paused``: DAG ids left paused (the tests keep the window DAG paused, so that only the
        scenarios start optimizations).
        """
        from include.carrier_optimization.config.tenants import load_tenants

        api = self.api()
        components = ("metadatabase", "scheduler", "triggerer", "dag_processor")

        def healthy() -> bool:
            self._check_alive()
            with contextlib.suppress(Exception):
                health = api.health()
                return all(health.get(c, {}).get("status") == "healthy" for c in components)
            return False

        wait_until(healthy, timeout=timeout, what="the Airflow components to report healthy", interval=1)
        self.warm_execution_api(timeout=timeout)
        wanted = {t.dag_id for t in load_tenants(TENANTS_FILE)} | _other_dag_ids()

        def parsed() -> bool:
            self._check_alive()
            if errors := api.import_errors():
                raise RuntimeError(f"DAG files failed to import: {errors}")
            return wanted <= set(api.dag_ids())

        wait_until(
            parsed,
            timeout=timeout,
            what=lambda: f"the DAGs {sorted(wanted)} to be parsed",
            interval=1,
        )
        for dag_id in sorted(wanted - set(keep_paused)):
            api.set_paused(dag_id, False)
        watched = len(wanted - set(keep_paused) - {WINDOW_DAG_ID})  # each runs on its queue's watcher
        wait_until(
            lambda: self._check_alive() or self.running_watchers() >= watched,
            timeout=timeout,
            what=lambda: f"{watched} queue watchers to run in the triggerer ({self.running_watchers()} do)",
            interval=1,
        )
        return api

    def warm_execution_api(self, *, timeout: float = 240, slow: float = 1.0) -> None:
        """Have every api-server worker build the execution API before a task calls it.

        The execution API (a Cadwyn app) generates its versioned routes on its first request, in the
        worker's event loop: about 10 s on a 2-core machine, during which that worker answers nothing.
        Without this, the first task's ``PATCH /run`` times out (5 s) and is retried, and the run's first
        task starts 10 to 15 s late. Concurrent requests on fresh connections reach every worker; done
        when two rounds in a row all answer within ``slow`` seconds (see docs/architecture.md).
        """

        def probe(_: int) -> float:
            started = time.monotonic()
            requests.get(f"{self.url}/execution/health", timeout=timeout).raise_for_status()
            return time.monotonic() - started

        fast_rounds = 0
        deadline = time.monotonic() + timeout
        with ThreadPoolExecutor(max_workers=2 * API_WORKERS) as pool:
            while fast_rounds < 2:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the execution API still answers slowly after {timeout:.0f} s")
                slowest = max(pool.map(probe, range(2 * API_WORKERS)))
                fast_rounds = fast_rounds + 1 if slowest < slow else 0

    def running_watchers(self) -> int:
        """Asset watchers whose trigger a triggerer has taken (from the metadata database)."""
        import psycopg

        url = self.metadata_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(url, connect_timeout=5) as conn:
            query = (
                "SELECT count(DISTINCT t.id) FROM trigger t JOIN asset_watcher w ON w.trigger_id = t.id "
                "WHERE t.triggerer_id IS NOT NULL"
            )
            return int(conn.execute(query).fetchone()[0])

    def _check_alive(self) -> None:
        for name, pid in self.pids.items():
            if not _alive(pid):
                log = self.home / "process-logs" / f"{name}.log"
                tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
                raise RuntimeError(f"{name} (pid {pid}) exited; the end of {log}:\n{tail}")

    def signal(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the process group of ``name`` (the process and its children)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pids[name], sig)

    def stop(self, names: list[str] | None = None, *, grace: float = 20) -> list[str]:
        """End the recorded processes (all, or ``names``): SIGTERM, then SIGKILL after ``grace`` s."""
        chosen = {n: p for n, p in self.pids.items() if names is None or n in names}
        for name in chosen:
            self.signal(name, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_alive(p) for p in chosen.values()):
            time.sleep(0.2)
        for name, pid in chosen.items():
            if _alive(pid):
                self.signal(name, signal.SIGKILL)
        for name in chosen:
            del self.pids[name]
        self.save()
        return sorted(chosen)

    def restart(self, name: str) -> None:
        """Stop, then start again, the process ``name``."""
        self.stop([name])
        self.start([name])

    # -- state file --------------------------------------------------------------------------------

    def save(self) -> None:
        """Write the state file (executor, URL, process ids, ports)."""
        state = {"executor": self.executor, "url": self.url, "pids": self.pids, "ports": self.ports}
        (self.home / STATE_FILE).write_text(json.dumps(state, indent=2))

    @classmethod
    def load(cls, home: Path) -> LocalAirflow:
        """The deployment recorded in ``home``'s state file."""
        state = json.loads((home / STATE_FILE).read_text())
        port = int(state["url"].rsplit(":", 1)[1])
        return cls(home=home, executor=state["executor"], port=port, pids=state["pids"], ports=state["ports"])


def _airflow() -> str:
    return str(Path(sys.executable).parent / "airflow")


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)  # reap our own children so they do not linger as zombies
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _other_dag_ids() -> set[str]:
    """The product's DAGs besides the tenant ones: device sync per tenant and the scheduling window."""
    from include.carrier_optimization.config.tenants import load_tenants

    return {f"device_sync__{t.slug}" for t in load_tenants(TENANTS_FILE)} | {WINDOW_DAG_ID}


def create_database(name: str, *, drop: bool) -> None:
    """Create the PostgreSQL database ``name`` unless it exists (dropped first when ``drop``)."""
    import psycopg

    with psycopg.connect(POSTGRES, autocommit=True, connect_timeout=5) as conn:
        if drop:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(name: str) -> None:
    """Drop the PostgreSQL database ``name`` (metadata or AMOP of a finished deployment)."""
    import psycopg

    with psycopg.connect(POSTGRES, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _flush_redis(*dbs: int) -> None:
    import redis

    for db in dbs:
        client = redis.Redis.from_url(f"{REDIS}/{db}", socket_connect_timeout=5)
        client.flushdb()
        client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("--home", type=Path, default=ROOT / ".airflow_local")
    parser.add_argument("--port", type=int, default=int(os.environ.get("AIRFLOW_PORT", 8080)))
    parser.add_argument("--executor", default="LocalExecutor", choices=["LocalExecutor", "CeleryExecutor"])
    parser.add_argument("--sims", type=int, default=None, help="SIMs per provider (default: tenants.yaml)")
    parser.add_argument("--fresh", action="store_true", help="new metadata and AMOP databases")
    args = parser.parse_args(argv)
    if args.action == "stop":
        if not (args.home / STATE_FILE).exists():
            print("No local Airflow recorded in", args.home)
            return 0
        stopped = LocalAirflow.load(args.home).stop()
        print("Stopped:", ", ".join(stopped) or "nothing (already stopped)")
        return 0
    if args.action == "status":
        airflow = LocalAirflow.load(args.home)
        for name, pid in airflow.pids.items():
            print(f"{name:14} pid {pid:7} {'running' if _alive(pid) else 'gone'}")
        return 0
    if (args.home / STATE_FILE).exists() and any(
        _alive(p) for p in LocalAirflow.load(args.home).pids.values()
    ):
        print("A local Airflow is already running from", args.home, "- `make airflow-stop` first.")
        return 1
    airflow = LocalAirflow(home=args.home, port=args.port, executor=args.executor, sims=args.sims)
    airflow.prepare(fresh=args.fresh)
    airflow.start()
    try:
        airflow.wait_ready()
    except Exception:
        airflow.stop()
        raise
    print(f"\nAirflow is up: {airflow.url}  (user {USER}, password {PASSWORD})")
    print(f"Sessions view: {airflow.url}/carrier-optimization/  ·  outbox: {airflow.outbox}")
    print(f"Logs: {args.home / 'process-logs'}  ·  stop with: make airflow-stop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
