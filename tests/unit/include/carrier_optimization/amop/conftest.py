"""Shared helpers of the checkpoint tests: a key and value, fail-fast clients, private redis-servers."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from include.carrier_optimization.amop.checkpoints import checkpoint_key
from tests.conftest import free_port

DAG_ID = "carrier_optimization__acme"
RUN_ID = "manual__2025-01-31T00:00:00+00:00"
KEY = checkpoint_key(DAG_ID, RUN_ID, "optimize", 3)
VALUE = {"cursor": 17, "best": {"queue_id": 42, "total_cost": 1234.5678}, "done": [1, 2, 3], "note": None}


def fast_client(port: int) -> redis.Redis:
    """A client that fails at once when nothing listens (no retries, short timeouts)."""
    return redis.Redis(
        host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0), socket_connect_timeout=1, socket_timeout=1
    )


class redis_server_on:  # noqa: N801 - used like a function
    """Context manager: a fresh ``redis-server`` on ``port`` (no persistence), killed by pid on exit."""

    def __init__(self, port: int) -> None:
        self.port = port

    def __enter__(self) -> redis.Redis:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.client = fast_client(self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client.ping()
                return self.client
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.__exit__()
                    pytest.fail(f"redis-server did not start on port {self.port}")
                time.sleep(0.05)

    def __exit__(self, *exc_info) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def redis_server():
    """A private ``redis-server`` on a free port (no persistence); killed by pid at teardown."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not on PATH")
    server = redis_server_on(free_port())
    client = server.__enter__()
    yield server.process, client
    server.__exit__()
